//! Join tokens (JWT over a JWKS), session binding tokens and development keys.
pub mod binding;
pub mod devkeys;
pub mod jwks;
pub mod jwt;

//! Join tokens (JWT over a JWKS), session binding tokens and development keys.
//!
//! - [`jwt`]: [`JwtVerifier::verify`] checks a join token (EdDSA only) against a
//!   snapshot of trusted keys; [`JwtError::reason`] labels `mc_jwt_validations_total`.
//! - [`jwks`]: parsing a JWKS, where it comes from ([`JwksSource`]), and when to reload
//!   it ([`JwksRefresher`], sans-IO) — the load itself ([`jwks::fetch`]) blocks and runs
//!   off the shards (a file, or a GET over [`crate::http1`] for `--jwks-url`).
//! - [`secret`]: [`BindingSecret`], never printed.
//! - [`config`]: [`AuthConfig`] (clap flags) → [`ValidatedAuth`] → [`ResolvedAuth`].
//! - [`devkeys`]: [`DevKeys`] in `--dev-dir`; [`devtoken`]: the `dev-token` command.
//! - [`binding`]: session binding tokens (`docs/protocol.md` "Session recovery").
//!
//! Flow: a blocking thread owns the [`JwksRefresher`] and publishes each new
//! `Arc<Jwks>` to every shard, which swaps it into its own [`JwtVerifier`]
//! ([`JwtVerifier::set_keys`]). A join whose token fails with
//! [`JwtError::UnknownKid`] asks that thread for a refresh (rate-limited by
//! `--jwks-refresh-min-interval-secs`) and is retried once with the new keys.

pub mod binding;
pub mod config;
pub mod devkeys;
pub mod devtoken;
pub mod jwks;
pub mod jwt;
pub mod keystore;
pub mod secret;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod jwks_tests;
#[cfg(test)]
mod jwt_tests;

pub use config::{AuthConfig, AuthConfigError, ResolvedAuth, ValidatedAuth};
pub use devkeys::DevKeys;
pub use jwks::{Jwks, JwksError, JwksRefresher, JwksSource, RefreshPolicy};
pub use jwt::{
    JwtError, JwtVerifier, Role, TokenClaims, VerifiedClaims, VerifierConfig, CLIENT_ERROR_MESSAGE,
};
pub use secret::BindingSecret;

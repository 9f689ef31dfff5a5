//! The Global Controller client (gc-api.md).

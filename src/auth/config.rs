//! Authentication settings: where trusted token keys come from, the JWT checks, and the
//! session-binding secret. Secrets never come from the command line and are never
//! logged: the binding secret is read from the environment (`MC_BINDING_TOKEN_SECRET`,
//! base64) or from a file (`--binding-token-secret-file`).
//!
//! Two steps, so that configuration errors surface before anything starts and dev keys
//! are created only when the service really runs: [`AuthConfig::validate`] (no file
//! writes) then [`ValidatedAuth::resolve`] with the [`DevKeys`] in dev mode.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use thiserror::Error;

use super::devkeys::DevKeys;
use super::jwks::{Jwks, JwksRefresher, JwksSource, RefreshPolicy, FILE_CHECK_INTERVAL};
use super::jwt::{JwtVerifier, VerifierConfig};
use super::secret::BindingSecret;
use crate::http1::HttpUrl;

/// Environment variable holding the base64 binding secret (environment only).
pub const BINDING_SECRET_ENV: &str = "MC_BINDING_TOKEN_SECRET";
/// Largest binding-secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 8 * 1024;

/// Join-token (JWT/JWKS) and binding-secret flags.
#[derive(Clone, Debug, Args)]
pub struct AuthConfig {
    /// JWKS file holding the Ed25519 public keys that sign join tokens; re-read when it
    /// changes. Required unless --jwks-url or --dev.
    #[arg(long, env = "MC_JWKS_PATH", value_name = "FILE")]
    pub jwks_path: Option<PathBuf>,

    /// http:// URL serving the JWKS; refetched periodically and on an unknown kid (or a
    /// known kid whose key does not verify the token).
    #[arg(long, env = "MC_JWKS_URL", value_name = "URL")]
    pub jwks_url: Option<String>,

    /// Expected `aud` claim of join tokens (not checked when unset).
    #[arg(long, env = "MC_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,

    /// Expected `iss` claim of join tokens (not checked when unset).
    #[arg(long, env = "MC_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,

    /// Clock skew allowed on `iat`, `nbf` and `exp`, in seconds (at most 300).
    #[arg(long, env = "MC_JWT_CLOCK_SKEW_SECS", default_value = "5")]
    pub jwt_clock_skew_secs: u64,

    /// Largest join token accepted, in bytes (512..=65536).
    #[arg(long, env = "MC_JWT_MAX_TOKEN_BYTES", default_value = "8192")]
    pub jwt_max_token_bytes: usize,

    /// Least time between two JWKS reloads triggered by an unknown kid, a signature the
    /// known key does not verify, or a failed load, in seconds (rate limit against
    /// tokens with invented kids).
    #[arg(long, env = "MC_JWKS_REFRESH_MIN_INTERVAL_SECS", default_value = "10")]
    pub jwks_refresh_min_interval_secs: u64,

    /// Time between two periodic refetches of --jwks-url, in seconds.
    #[arg(long, env = "MC_JWKS_REFRESH_INTERVAL_SECS", default_value = "300")]
    pub jwks_refresh_interval_secs: u64,

    /// Connect/read timeout of one --jwks-url fetch, in milliseconds.
    #[arg(long, env = "MC_JWKS_FETCH_TIMEOUT_MS", default_value = "3000")]
    pub jwks_fetch_timeout_ms: u64,

    /// File holding the base64 session-binding secret (≥ 32 bytes decoded). Instead,
    /// the secret may be given in the environment as MC_BINDING_TOKEN_SECRET (never as
    /// a flag). Required unless --dev.
    #[arg(long, env = "MC_BINDING_TOKEN_SECRET_FILE", value_name = "FILE")]
    pub binding_token_secret_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    /// The same values as the flags' defaults (no JWKS source, no secret file).
    fn default() -> Self {
        Self {
            jwks_path: None,
            jwks_url: None,
            jwt_audience: None,
            jwt_issuer: None,
            jwt_clock_skew_secs: 5,
            jwt_max_token_bytes: 8192,
            jwks_refresh_min_interval_secs: 10,
            jwks_refresh_interval_secs: 300,
            jwks_fetch_timeout_ms: 3000,
            binding_token_secret_file: None,
        }
    }
}

/// A configuration problem: names the flag and its variable. Never contains a secret.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{flag} / {env}: {reason}")]
pub struct AuthConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

fn err(flag: &'static str, env: &'static str, reason: impl Into<String>) -> AuthConfigError {
    AuthConfigError {
        flag,
        env,
        reason: reason.into(),
    }
}

const SECRET_FLAG: &str = "--binding-token-secret-file";
const SECRET_FILE_ENV: &str = "MC_BINDING_TOKEN_SECRET_FILE";

/// Which keys sign trusted join tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustedKeys {
    Jwks(JwksSource),
    /// Dev mode without an explicit source: the dev keys' `jwks.json`.
    DevKeys,
}

/// Where the binding secret comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFrom {
    Configured(BindingSecret),
    /// Dev mode without a configured secret: the dev dir's `binding-secret`.
    DevKeys,
}

/// Validated settings; may still name the dev keys (see [`ValidatedAuth::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatedAuth {
    pub keys: TrustedKeys,
    pub binding_secret: SecretFrom,
    pub verifier: VerifierConfig,
    pub refresh: RefreshPolicy,
}

/// Fully resolved settings: what the service runs with.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedAuth {
    pub jwks: JwksSource,
    pub binding_secret: BindingSecret,
    pub verifier: VerifierConfig,
    pub refresh: RefreshPolicy,
}

impl AuthConfig {
    /// Validate, reading `MC_BINDING_TOKEN_SECRET` from the process environment and
    /// the secret file if named. Production (`dev = false`) requires a JWKS source
    /// and a binding secret; dev mode falls back to the dev keys for what is unset.
    pub fn validate(&self, dev: bool) -> Result<ValidatedAuth, AuthConfigError> {
        let env_secret = std::env::var(BINDING_SECRET_ENV).ok();
        self.validate_with(dev, env_secret.as_deref())
    }

    /// [`validate`](Self::validate) with the environment's secret passed in (tests).
    pub fn validate_with(
        &self,
        dev: bool,
        env_secret: Option<&str>,
    ) -> Result<ValidatedAuth, AuthConfigError> {
        let keys = match (&self.jwks_path, &self.jwks_url) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "--jwks-path",
                    "MC_JWKS_PATH",
                    "give either --jwks-path (MC_JWKS_PATH) or --jwks-url (MC_JWKS_URL), not both",
                ))
            }
            (Some(p), None) if p.as_os_str().is_empty() => {
                return Err(err("--jwks-path", "MC_JWKS_PATH", "must not be empty"))
            }
            (Some(p), None) => TrustedKeys::Jwks(JwksSource::File(p.clone())),
            (None, Some(u)) => TrustedKeys::Jwks(JwksSource::Url(
                HttpUrl::parse(u).map_err(|e| err("--jwks-url", "MC_JWKS_URL", e.to_string()))?,
            )),
            (None, None) if dev => TrustedKeys::DevKeys,
            (None, None) => {
                return Err(err(
                    "--jwks-path",
                    "MC_JWKS_PATH",
                    "a JWKS source is required (unless --dev): --jwks-path / MC_JWKS_PATH \
                     or --jwks-url / MC_JWKS_URL",
                ))
            }
        };

        let binding_secret = match (env_secret, &self.binding_token_secret_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    SECRET_FLAG,
                    SECRET_FILE_ENV,
                    "set either MC_BINDING_TOKEN_SECRET or the secret file, not both",
                ))
            }
            (Some(text), None) => SecretFrom::Configured(
                BindingSecret::from_base64(text)
                    .map_err(|e| err("(environment only)", BINDING_SECRET_ENV, e.to_string()))?,
            ),
            (None, Some(path)) => SecretFrom::Configured(read_secret_file(path)?),
            (None, None) if dev => SecretFrom::DevKeys,
            (None, None) => {
                return Err(err(
                    SECRET_FLAG,
                    SECRET_FILE_ENV,
                    "a binding secret is required (unless --dev): MC_BINDING_TOKEN_SECRET \
                     (base64, environment only) or --binding-token-secret-file / \
                     MC_BINDING_TOKEN_SECRET_FILE",
                ))
            }
        };

        let non_empty = |v: &Option<String>, flag, env| match v {
            Some(s) if s.trim().is_empty() => Err(err(flag, env, "must not be empty")),
            other => Ok(other.clone()),
        };
        let audience = non_empty(&self.jwt_audience, "--jwt-audience", "MC_JWT_AUDIENCE")?;
        let issuer = non_empty(&self.jwt_issuer, "--jwt-issuer", "MC_JWT_ISSUER")?;
        if self.jwt_clock_skew_secs > 300 {
            return Err(err(
                "--jwt-clock-skew-secs",
                "MC_JWT_CLOCK_SKEW_SECS",
                "must be at most 300",
            ));
        }
        if !(512..=65536).contains(&self.jwt_max_token_bytes) {
            return Err(err(
                "--jwt-max-token-bytes",
                "MC_JWT_MAX_TOKEN_BYTES",
                "must be between 512 and 65536",
            ));
        }
        let min_interval = self.jwks_refresh_min_interval_secs;
        if min_interval == 0 {
            return Err(err(
                "--jwks-refresh-min-interval-secs",
                "MC_JWKS_REFRESH_MIN_INTERVAL_SECS",
                "must be at least 1",
            ));
        }
        if self.jwks_refresh_interval_secs < min_interval {
            return Err(err(
                "--jwks-refresh-interval-secs",
                "MC_JWKS_REFRESH_INTERVAL_SECS",
                "must be at least --jwks-refresh-min-interval-secs",
            ));
        }
        if !(100..=60_000).contains(&self.jwks_fetch_timeout_ms) {
            return Err(err(
                "--jwks-fetch-timeout-ms",
                "MC_JWKS_FETCH_TIMEOUT_MS",
                "must be between 100 and 60000",
            ));
        }
        Ok(ValidatedAuth {
            keys,
            binding_secret,
            verifier: VerifierConfig {
                audience,
                issuer,
                clock_skew: Duration::from_secs(self.jwt_clock_skew_secs),
                max_token_bytes: self.jwt_max_token_bytes,
            },
            refresh: RefreshPolicy {
                min_interval: Duration::from_secs(min_interval),
                url_interval: Duration::from_secs(self.jwks_refresh_interval_secs),
                file_interval: FILE_CHECK_INTERVAL,
                fetch_timeout: Duration::from_millis(self.jwks_fetch_timeout_ms),
            },
        })
    }
}

impl ValidatedAuth {
    /// True when [`resolve`](Self::resolve) needs the dev keys.
    pub fn needs_dev_keys(&self) -> bool {
        self.keys == TrustedKeys::DevKeys || self.binding_secret == SecretFrom::DevKeys
    }

    /// Fill what dev mode left to the dev keys. Fails if they are needed but absent.
    pub fn resolve(self, dev_keys: Option<&DevKeys>) -> Result<ResolvedAuth, AuthConfigError> {
        let missing = || err("--dev", "MC_DEV", "dev keys are needed but were not loaded");
        let jwks = match self.keys {
            TrustedKeys::Jwks(source) => source,
            TrustedKeys::DevKeys => JwksSource::File(dev_keys.ok_or_else(missing)?.jwks_path()),
        };
        let binding_secret = match self.binding_secret {
            SecretFrom::Configured(s) => s,
            SecretFrom::DevKeys => dev_keys.ok_or_else(missing)?.binding_secret().clone(),
        };
        Ok(ResolvedAuth {
            jwks,
            binding_secret,
            verifier: self.verifier,
            refresh: self.refresh,
        })
    }
}

impl ResolvedAuth {
    /// The reload decision for the configured JWKS source.
    pub fn refresher(&self) -> JwksRefresher {
        JwksRefresher::new(self.jwks.clone(), self.refresh)
    }

    /// A verifier over `keys` (e.g. `Arc::new(Jwks::empty())` before the first load).
    pub fn verifier(&self, keys: Arc<Jwks>) -> JwtVerifier {
        JwtVerifier::new(self.verifier.clone(), keys)
    }
}

fn read_secret_file(path: &PathBuf) -> Result<BindingSecret, AuthConfigError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| {
            err(
                SECRET_FLAG,
                SECRET_FILE_ENV,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    BindingSecret::from_base64(&text).map_err(|e| {
        err(
            SECRET_FLAG,
            SECRET_FILE_ENV,
            format!("{}: {e}", path.display()),
        )
    })
}

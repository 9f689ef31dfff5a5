//! Join-token verification: a compact JWS (RFC 7515 §7.1) signed with EdDSA over
//! Ed25519 (RFC 8037 §3.1), carrying the claims of docs/protocol.md "Join token (JWT)"
//! and Precise rule 13.
//!
//! Verified with `ed25519-dalek` directly, no JOSE library: the header's `alg` must be
//! exactly `"EdDSA"`, so `none`, `HS256` (even signed with the public key's bytes) and
//! every other algorithm are refused before any key is touched. Order of checks: size,
//! shape, header (alg, kid), key lookup, signature over the raw `header.payload` bytes,
//! and only then the payload is decoded and its claims checked.
//!
//! The client only ever sees [`CLIENT_ERROR_MESSAGE`] (UNAUTHORIZED, docs/protocol.md
//! Precise rule 4); [`JwtError::reason`] is the precise label for
//! `mc_jwt_validations_total{result,failure_reason}` and the logs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::jwks::Jwks;

/// What the client is told about any token problem (docs/protocol.md "Join token (JWT)").
pub const CLIENT_ERROR_MESSAGE: &str = "invalid or expired token";
/// docs/protocol.md ErrorCode UNAUTHORIZED: the wire code of every token problem.
pub const ERROR_CODE_UNAUTHORIZED: i32 = 2;
/// Default and ceiling of the token size limit.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock skew allowance.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// The only accepted `token_type`.
pub const TOKEN_TYPE_MEETING: &str = "meeting";

/// Longest accepted `sub`, `meeting_id`, `name`.
const MAX_ID_BYTES: usize = 256;
/// Longest accepted `participant_type`, `jti`, each capability.
const MAX_SHORT_BYTES: usize = 128;
/// Most accepted capabilities.
const MAX_CAPABILITIES: usize = 64;

/// Why a token was refused. Never shown to the client (see [`CLIENT_ERROR_MESSAGE`]).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JwtError {
    #[error("token larger than {0} bytes")]
    Oversize(usize),
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm is not EdDSA")]
    BadAlg,
    #[error("header has no kid")]
    MissingKid,
    /// The caller may refresh the JWKS and retry once.
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token issued in the future (iat beyond the clock skew)")]
    IatInFuture,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("meeting_id claim does not match the request")]
    WrongMeeting,
    #[error("token_type is not \"meeting\"")]
    WrongTokenType,
    #[error("audience does not match")]
    BadAudience,
    #[error("issuer does not match")]
    BadIssuer,
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
}

impl JwtError {
    /// The `failure_reason` label of `mc_jwt_validations_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Oversize(_) => "oversize",
            Self::Malformed(_) => "malformed",
            Self::BadAlg => "bad_alg",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid(_) => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::IatInFuture => "iat_in_future",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongMeeting => "wrong_meeting",
            Self::WrongTokenType => "wrong_token_type",
            Self::BadAudience => "bad_audience",
            Self::BadIssuer => "bad_issuer",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
        }
    }

    /// Wire code (docs/protocol.md ErrorCode): always UNAUTHORIZED (Precise rule 4).
    pub fn code(&self) -> i32 {
        ERROR_CODE_UNAUTHORIZED
    }

    /// True when a JWKS reload might make this token valid: its `kid` is unknown, or
    /// known with another key (an issuer that rotated its key under the same `kid`).
    pub fn may_pass_after_reload(&self) -> bool {
        matches!(self, Self::UnknownKid(_) | Self::BadSignature)
    }
}

/// `(result, failure_reason)` labels for `mc_jwt_validations_total`.
pub fn metric_labels<T>(result: &Result<T, JwtError>) -> (&'static str, &'static str) {
    match result {
        Ok(_) => ("success", "none"),
        Err(e) => ("failure", e.reason()),
    }
}

/// The participant's role (docs/protocol.md: `role` = "host" | "participant").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    #[default]
    Participant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Participant => "participant",
        }
    }
}

/// The claims of a verified join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// `sub`: the user id, opaque (Precise rule 9).
    pub sub: String,
    pub meeting_id: String,
    pub role: Role,
    pub participant_type: Option<String>,
    pub capabilities: Vec<String>,
    pub name: Option<String>,
    pub jti: Option<String>,
    /// Seconds since the Unix epoch.
    pub iat: i64,
    pub exp: i64,
    /// The key that signed it.
    pub kid: String,
}

/// Settings of a [`JwtVerifier`] (validated from `AuthConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifierConfig {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    #[serde(serialize_with = "secs")]
    pub clock_skew: Duration,
    pub max_token_bytes: usize,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            audience: None,
            issuer: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Checks join tokens against a snapshot of trusted keys. One per shard; cheap to
/// clone (the keys are shared, immutable); [`set_keys`](Self::set_keys) swaps in a
/// new snapshot when the JWKS changes.
#[derive(Clone, Debug)]
pub struct JwtVerifier {
    config: VerifierConfig,
    keys: Arc<Jwks>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

impl JwtVerifier {
    pub fn new(config: VerifierConfig, keys: Arc<Jwks>) -> Self {
        Self { config, keys }
    }

    pub fn set_keys(&mut self, keys: Arc<Jwks>) {
        self.keys = keys;
    }

    pub fn keys(&self) -> &Arc<Jwks> {
        &self.keys
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verify `token` for a join to `expected_meeting_id` at wall-clock time `now`.
    pub fn verify(
        &self,
        token: &str,
        expected_meeting_id: &str,
        now: SystemTime,
    ) -> Result<VerifiedClaims, JwtError> {
        // docs/protocol.md: tokens over 8 KiB (configurable) are refused before parsing.
        if token.len() > self.config.max_token_bytes {
            return Err(JwtError::Oversize(self.config.max_token_bytes));
        }
        // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(sig).
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let header_bytes = b64(h64, "header is not base64url")?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
        // RFC 8037 §3.1: "EdDSA"; anything else (none, HS256, RS256, ...) is refused.
        if header.alg.as_deref() != Some("EdDSA") {
            return Err(JwtError::BadAlg);
        }
        // RFC 7515 §4.1.11: we understand no extensions, so any `crit` is fatal.
        if header.crit.is_some() {
            return Err(JwtError::Malformed("crit header present"));
        }
        let kid = match header.kid {
            Some(k) if !k.is_empty() => k,
            _ => return Err(JwtError::MissingKid),
        };
        let Some(key) = self.keys.get(&kid) else {
            // Bounded: the kid is attacker-chosen and ends up in logs.
            return Err(JwtError::UnknownKid(kid.chars().take(64).collect()));
        };
        let sig_bytes = b64(s64, "signature is not base64url")?;
        let signature = Signature::from_slice(&sig_bytes).map_err(|_| JwtError::BadSignature)?;
        // RFC 7515 §5.2: the signing input is the ASCII of `header.payload`.
        let signing_input_len = h64.len() + 1 + p64.len();
        let signing_input = token
            .as_bytes()
            .get(..signing_input_len)
            .ok_or(JwtError::Malformed("truncated"))?;
        key.verify_strict(signing_input, &signature)
            .map_err(|_| JwtError::BadSignature)?;

        let payload = b64(p64, "payload is not base64url")?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
        self.check_claims(&claims, expected_meeting_id, now, kid)
    }

    fn check_claims(
        &self,
        c: &Map<String, Value>,
        expected_meeting_id: &str,
        now: SystemTime,
        kid: String,
    ) -> Result<VerifiedClaims, JwtError> {
        // Precise rule 13: required claims.
        let sub = req_str(c, "sub", MAX_ID_BYTES)?;
        let token_type = req_str(c, "token_type", MAX_SHORT_BYTES)?;
        let meeting_id = req_str(c, "meeting_id", MAX_ID_BYTES)?;
        let iat = req_time(c, "iat")?;
        let exp = req_time(c, "exp")?;
        if sub.is_empty() {
            return Err(JwtError::InvalidClaim("sub"));
        }
        if token_type != TOKEN_TYPE_MEETING {
            return Err(JwtError::WrongTokenType);
        }

        let now = unix_secs(now);
        let skew = i64::try_from(self.config.clock_skew.as_secs()).unwrap_or(i64::MAX);
        // RFC 7519 §4.1.4: refused on or after exp (plus the skew allowance).
        if now >= exp.saturating_add(skew) {
            return Err(JwtError::Expired);
        }
        // Precise rule 13: `iat` more than the skew in the future is refused.
        if iat > now.saturating_add(skew) {
            return Err(JwtError::IatInFuture);
        }
        if exp < iat {
            return Err(JwtError::InvalidClaim("exp"));
        }
        // RFC 7519 §4.1.5.
        if let Some(nbf) = opt_time(c, "nbf")? {
            if nbf > now.saturating_add(skew) {
                return Err(JwtError::NotYetValid);
            }
        }
        if meeting_id != expected_meeting_id {
            return Err(JwtError::WrongMeeting);
        }
        if let Some(want) = &self.config.audience {
            // RFC 7519 §4.1.3: a string or an array of strings.
            let ok = match c.get("aud") {
                Some(Value::String(a)) => a == want,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return Err(JwtError::BadAudience);
            }
        }
        if let Some(want) = &self.config.issuer {
            if c.get("iss").and_then(Value::as_str) != Some(want.as_str()) {
                return Err(JwtError::BadIssuer);
            }
        }
        let role = match opt_str(c, "role", MAX_SHORT_BYTES)? {
            None => Role::Participant,
            Some("host") => Role::Host,
            Some("participant") => Role::Participant,
            Some(_) => return Err(JwtError::InvalidClaim("role")),
        };
        let capabilities = match c.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if list.len() <= MAX_CAPABILITIES => list
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if s.len() <= MAX_SHORT_BYTES => Ok(s.to_string()),
                    _ => Err(JwtError::InvalidClaim("capabilities")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::InvalidClaim("capabilities")),
        };
        Ok(VerifiedClaims {
            sub: sub.to_string(),
            meeting_id: meeting_id.to_string(),
            role,
            participant_type: opt_str(c, "participant_type", MAX_SHORT_BYTES)?.map(str::to_string),
            capabilities,
            name: opt_str(c, "name", MAX_ID_BYTES)?.map(str::to_string),
            jti: opt_str(c, "jti", MAX_SHORT_BYTES)?.map(str::to_string),
            iat,
            exp,
            kid,
        })
    }
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn req_str<'a>(
    c: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<&'a str, JwtError> {
    opt_str(c, name, max)?.ok_or(JwtError::MissingClaim(name))
}

fn opt_str<'a>(
    c: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<Option<&'a str>, JwtError> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s)),
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

/// RFC 7519 §2 NumericDate: seconds since the epoch, possibly fractional.
fn opt_time(c: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => Err(JwtError::InvalidClaim(name)),
            }
        }
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

fn req_time(c: &Map<String, Value>, name: &'static str) -> Result<i64, JwtError> {
    opt_time(c, name)?.ok_or(JwtError::MissingClaim(name))
}

/// The claims a join token carries (for minting: dev tokens, tests, the load generator).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub sub: String,
    pub token_type: String,
    pub meeting_id: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl TokenClaims {
    /// A meeting token for `sub` in `meeting_id`, issued at `now`, valid for `ttl`,
    /// with a fresh UUIDv7 `jti`.
    pub fn meeting(
        sub: &str,
        meeting_id: &str,
        role: Role,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let iat = unix_secs(now);
        Self {
            sub: sub.to_string(),
            token_type: TOKEN_TYPE_MEETING.to_string(),
            meeting_id: meeting_id.to_string(),
            role,
            participant_type: Some("member".to_string()),
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            jti: Some(uuid::Uuid::now_v7().to_string()),
            ..Self::default()
        }
    }
}

/// Sign `claims` (any JSON object) as a compact EdDSA JWS with header `kid`.
pub fn sign_token<C: Serialize>(key: &SigningKey, kid: &str, claims: &C) -> String {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    token
}

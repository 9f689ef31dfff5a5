//! The keys join tokens are checked against: a JWKS (RFC 7517) of Ed25519 public keys
//! (RFC 8037 §2: `kty: "OKP"`, `crv: "Ed25519"`, `x` base64url), each named by `kid`.
//!
//! - [`Jwks::parse`] turns untrusted bytes into keys, with limits (≤ 1 MiB, ≤ 100 keys).
//! - [`JwksSource`] says where the keys come from: a file or an `http://` URL.
//! - [`JwksRefresher`] decides *when* to reload, without I/O and with time injected
//!   (`needs_refresh(now, asked)`); [`fetch`] does the blocking load and is meant
//!   to run on a thread off the hot path. New keys reach the shards as an `Arc<Jwks>`.
//!
//! docs/protocol.md "Join token (JWT)": keys from a JWKS (a file, or a URL re-fetched on
//! unknown `kid` and at most every few minutes).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use thiserror::Error;
use tracing::debug;

use crate::http1::{self, HttpError, HttpUrl, Limits, Request};

/// Largest JWKS document accepted, from a file or a URL.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most entries accepted in a JWKS `keys` array (usable or not).
pub const MAX_JWKS_KEYS: usize = 100;
/// Longest `kid` accepted.
pub const MAX_KID_BYTES: usize = 256;
/// How often a JWKS file is stat()ed for changes.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why a JWKS could not be loaded. The previous keys stay in use.
#[derive(Debug, Error)]
pub enum JwksError {
    #[error("JWKS is {0} bytes, more than the {MAX_JWKS_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("JWKS is not valid JSON of the form {{\"keys\": [...]}}: {0}")]
    Json(String),
    #[error("JWKS has {0} keys, more than the {MAX_JWKS_KEYS}-key limit")]
    TooManyKeys(usize),
    #[error("JWKS key #{index}: {reason}")]
    BadKey { index: usize, reason: &'static str },
    #[error("JWKS has two keys with kid {0:?}")]
    DuplicateKid(String),
    #[error("JWKS has no usable Ed25519 (kty OKP, crv Ed25519) signing key")]
    NoUsableKey,
    #[error("cannot read JWKS file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fetch JWKS: {0}")]
    Http(#[from] HttpError),
    #[error("cannot fetch JWKS: HTTP status {0} (expected 200)")]
    Status(u16),
}

/// A parsed key set: `kid` → Ed25519 public key. Immutable; replaced as a whole.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: HashMap<String, VerifyingKey>,
}

impl Jwks {
    /// No keys: every token is refused with `unknown_kid` until a JWKS is loaded.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parse a JWKS document (RFC 7517 §5). Keys that are not Ed25519 signing keys are
    /// skipped with a debug log; a malformed Ed25519 key, a missing or duplicate `kid`,
    /// private key material, or no usable key at all refuse the whole document.
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(bytes.len()));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Json(e.to_string()))?;
        let entries = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| JwksError::Json("no \"keys\" array".into()))?;
        if entries.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys(entries.len()));
        }
        let mut keys = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let bad = |reason| JwksError::BadKey { index, reason };
            let field = |name: &str| entry.get(name).and_then(|v| v.as_str());
            let kty = field("kty");
            let crv = field("crv");
            // RFC 8037 §2: Ed25519 keys are kty "OKP" with crv "Ed25519".
            if kty != Some("OKP") || crv != Some("Ed25519") {
                debug!(index, kty, crv, "JWKS: skipping a key that is not Ed25519");
                continue;
            }
            // RFC 7517 §4.2/§4.4: a key meant for something else is not ours to trust.
            if field("use").is_some_and(|u| u != "sig") {
                debug!(index, "JWKS: skipping an Ed25519 key whose use is not sig");
                continue;
            }
            if field("alg").is_some_and(|a| a != "EdDSA" && a != "Ed25519") {
                debug!(index, "JWKS: skipping an Ed25519 key with another alg");
                continue;
            }
            if entry.get("d").is_some() {
                return Err(bad("contains private key material (d); publish only x"));
            }
            let kid = match entry.get("kid") {
                Some(serde_json::Value::String(k)) if !k.is_empty() => k,
                _ => return Err(bad("kid is missing or not a non-empty string")),
            };
            if kid.len() > MAX_KID_BYTES {
                return Err(bad("kid is longer than 256 bytes"));
            }
            let x = field("x").ok_or_else(|| bad("x is missing or not a string"))?;
            let raw = URL_SAFE_NO_PAD
                .decode(x)
                .map_err(|_| bad("x is not unpadded base64url"))?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| bad("x is not 32 bytes (RFC 8037 §2)"))?;
            let key = VerifyingKey::from_bytes(&raw)
                .map_err(|_| bad("x is not a valid Ed25519 point"))?;
            if key.is_weak() {
                return Err(bad("x is a weak (small-order) Ed25519 key"));
            }
            if keys.insert(kid.clone(), key).is_some() {
                return Err(JwksError::DuplicateKid(kid.clone()));
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self { keys })
    }

    /// The key named `kid`, if this set has it.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True for [`Jwks::empty`].
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, sorted (for logs).
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

/// Render one Ed25519 public key as a JWKS document (RFC 8037 §2).
pub fn to_jwks_json(kid: &str, key: &VerifyingKey) -> String {
    serde_json::json!({
        "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
            "kid": kid,
            "use": "sig",
            "alg": "EdDSA",
        }]
    })
    .to_string()
}

/// Where the trusted keys come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JwksSource {
    /// A local file (a mounted ConfigMap/Secret), re-read when it changes.
    File(PathBuf),
    /// An `http://` URL, fetched periodically and when a join asks (an unknown `kid`, or
    /// a signature the known key does not verify).
    Url(HttpUrl),
}

/// When to reload. Defaults: a refetch a join asks for at most every 10 s, URL refetch every
/// 5 minutes, file stat every [`FILE_CHECK_INTERVAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RefreshPolicy {
    /// Least time between two loads a join asked for (an unknown `kid`, or a signature the
    /// known key does not verify), or after a failure.
    #[serde(serialize_with = "secs")]
    pub min_interval: Duration,
    /// Time between two periodic refetches of a URL.
    #[serde(serialize_with = "secs")]
    pub url_interval: Duration,
    /// Time between two stat() calls on a file.
    #[serde(serialize_with = "secs")]
    pub file_interval: Duration,
    /// Connect and read timeout of one URL fetch.
    #[serde(serialize_with = "secs")]
    pub fetch_timeout: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(10),
            url_interval: Duration::from_secs(300),
            file_interval: FILE_CHECK_INTERVAL,
            fetch_timeout: Duration::from_secs(3),
        }
    }
}

/// What identifies one version of a JWKS file: a change in any of these re-reads it
/// (a ConfigMap update swaps a symlink, changing the inode even when mtime/len match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub mtime: Option<SystemTime>,
    pub len: u64,
    pub dev: u64,
    pub ino: u64,
}

/// One load to perform, handed from [`JwksRefresher::begin`] to [`fetch`].
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub source: JwksSource,
    /// The file version already loaded: an unchanged file is not re-read.
    pub loaded: Option<FileStamp>,
    pub timeout: Duration,
}

/// What a load found.
#[derive(Debug)]
pub enum FetchOutcome {
    /// The file has not changed since the last load.
    Unchanged,
    /// New keys (for a file, with the version they were read from).
    Loaded {
        jwks: Jwks,
        stamp: Option<FileStamp>,
    },
}

/// Load the keys a [`FetchRequest`] names. Blocking (file I/O, DNS, TCP): run it on a
/// thread of its own, never on a shard.
pub fn fetch(req: &FetchRequest) -> Result<FetchOutcome, JwksError> {
    match &req.source {
        JwksSource::File(path) => fetch_file(path, req.loaded),
        JwksSource::Url(url) => {
            let request = Request::get(url.clone()).with_header("Accept", "application/json")?;
            let limits = Limits {
                max_body_bytes: MAX_JWKS_BYTES,
                ..Limits::default()
            };
            let resp = http1::exchange_blocking(&request, req.timeout, limits)?;
            if resp.status != 200 {
                return Err(JwksError::Status(resp.status));
            }
            Ok(FetchOutcome::Loaded {
                jwks: Jwks::parse(&resp.body)?,
                stamp: None,
            })
        }
    }
}

fn fetch_file(path: &PathBuf, loaded: Option<FileStamp>) -> Result<FetchOutcome, JwksError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| JwksError::File {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let stamp = FileStamp {
        mtime: meta.modified().ok(),
        len: meta.len(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if loaded == Some(stamp) {
        return Ok(FetchOutcome::Unchanged);
    }
    if meta.len() > MAX_JWKS_BYTES as u64 {
        return Err(JwksError::TooLarge(
            meta.len().try_into().unwrap_or(usize::MAX),
        ));
    }
    let mut body = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut body))
        .map_err(io)?;
    Ok(FetchOutcome::Loaded {
        jwks: Jwks::parse(&body)?,
        stamp: Some(stamp),
    })
}

/// The reload decision for one [`JwksSource`], sans-IO: the caller asks
/// [`needs_refresh`](Self::needs_refresh), runs [`fetch`] on the request from
/// [`begin`](Self::begin) somewhere it may block, and reports with
/// [`handle_fetched`](Self::handle_fetched), which yields the keys to publish.
#[derive(Debug)]
pub struct JwksRefresher {
    source: JwksSource,
    policy: RefreshPolicy,
    loaded: Option<FileStamp>,
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    last_failed: bool,
    in_flight: bool,
    has_keys: bool,
    /// Plain counters for the caller to publish.
    pub stats: RefreshStats,
}

/// Counters kept by [`JwksRefresher`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefreshStats {
    pub loads: u64,
    pub unchanged: u64,
    pub failures: u64,
}

impl JwksRefresher {
    pub fn new(source: JwksSource, policy: RefreshPolicy) -> Self {
        Self {
            source,
            policy,
            loaded: None,
            last_attempt: None,
            last_success: None,
            last_failed: false,
            in_flight: false,
            has_keys: false,
            stats: RefreshStats::default(),
        }
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// True once some keys have been loaded.
    pub fn has_keys(&self) -> bool {
        self.has_keys
    }

    /// Should a load start now? `asked`: a join asked for one (its token named a key we
    /// do not have, or one whose key does not verify it).
    ///
    /// Never while a load is in flight; always for the first load. A periodic check
    /// is due after `file_interval` (file) or `url_interval` (URL); a join's asking
    /// brings it forward to `min_interval`, which rate-limits the refetches a flood of
    /// tokens with invented kids could otherwise cause. After a failed load (or while
    /// no keys were ever loaded) the next try is due after `min_interval`.
    pub fn needs_refresh(&self, now: Instant, asked: bool) -> bool {
        if self.in_flight {
            return false;
        }
        let Some(last) = self.last_attempt else {
            return true;
        };
        let since = now.saturating_duration_since(last);
        let periodic = match self.source {
            JwksSource::File(_) => self.policy.file_interval,
            JwksSource::Url(_) => self.policy.url_interval,
        };
        if self.last_failed || !self.has_keys {
            // Retry soon, but not faster than min_interval: a broken file or a down
            // server is not hammered (nor logged about) every file_interval.
            return since >= self.policy.min_interval;
        }
        since >= periodic || (asked && since >= self.policy.min_interval)
    }

    /// Start a load: records the attempt and returns what [`fetch`] should do.
    pub fn begin(&mut self, now: Instant) -> FetchRequest {
        self.in_flight = true;
        self.last_attempt = Some(now);
        FetchRequest {
            source: self.source.clone(),
            loaded: self.loaded,
            timeout: self.policy.fetch_timeout,
        }
    }

    /// Report the load's result. `Ok(Some(keys))`: new keys to publish; `Ok(None)`:
    /// unchanged; `Err`: the load failed (returned for the caller to log) and the
    /// previous keys stay in use.
    pub fn handle_fetched(
        &mut self,
        now: Instant,
        result: Result<FetchOutcome, JwksError>,
    ) -> Result<Option<Arc<Jwks>>, JwksError> {
        self.in_flight = false;
        match result {
            Ok(FetchOutcome::Unchanged) => {
                self.last_failed = false;
                self.last_success = Some(now);
                self.stats.unchanged += 1;
                Ok(None)
            }
            Ok(FetchOutcome::Loaded { jwks, stamp }) => {
                self.last_failed = false;
                self.last_success = Some(now);
                self.loaded = stamp;
                self.has_keys = true;
                self.stats.loads += 1;
                Ok(Some(Arc::new(jwks)))
            }
            Err(e) => {
                self.last_failed = true;
                self.stats.failures += 1;
                Err(e)
            }
        }
    }

    /// When the last load succeeded (changed or not).
    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }

    /// Convenience for a dedicated blocking thread: if a refresh is due, load now.
    pub fn refresh_blocking(
        &mut self,
        now: Instant,
        asked: bool,
    ) -> Result<Option<Arc<Jwks>>, JwksError> {
        if !self.needs_refresh(now, asked) {
            return Ok(None);
        }
        let req = self.begin(now);
        let result = fetch(&req);
        self.handle_fetched(now, result)
    }
}

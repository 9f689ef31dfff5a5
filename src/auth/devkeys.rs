//! Development keys (`docs/protocol.md` rule 16): in `--dev-dir`, `signing-key.pem`
//! (Ed25519, PKCS#8 PEM, mode 0600), `jwks.json` (its public key, `kid` = "dev-" + the
//! RFC 7638 JWK thumbprint) and `binding-secret` (32 random bytes, base64, mode 0600).
//! Created when absent, reused afterwards, so tokens minted by `mc-service dev-token`
//! keep working across restarts. The TLS files in the same directory (`cert.pem`,
//! `key.pem`, `cert.sha256`) belong to `crate::tls`.
//!
//! `signing-key.pem` is written as PKCS#8 v1 (RFC 8410 §7: the private key only, no
//! embedded public key), the form OpenSSL 3.0 (`openssl pkey`) and Python's
//! `cryptography` load. Both v1 and v2 (RFC 5958 `OneAsymmetricKey` with the public
//! key) are read; a v2 file is rewritten as v1, same key, so existing dev dirs become
//! loadable by those tools too.
//!
//! Production never trusts these keys unless the operator names `jwks.json` with
//! `--jwks-path` explicitly (see `auth::config`).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use thiserror::Error;
use tracing::{info, warn};

use super::jwks::{to_jwks_json, Jwks, JwksError};
use super::jwt::{sign_token, Role, TokenClaims};
use super::secret::{BindingSecret, SecretError};

pub const SIGNING_KEY_FILE: &str = "signing-key.pem";
pub const JWKS_FILE: &str = "jwks.json";
pub const BINDING_SECRET_FILE: &str = "binding-secret";

/// Why the dev keys could not be loaded or created.
#[derive(Debug, Error)]
pub enum DevKeysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not an Ed25519 PKCS#8 PEM private key")]
    BadSigningKey(PathBuf),
    #[error("{path}: binding secret {source}")]
    BadSecret { path: PathBuf, source: SecretError },
    #[error("{path}: {source}")]
    BadJwks { path: PathBuf, source: JwksError },
}

/// The development signing key, its JWKS and the binding secret.
pub struct DevKeys {
    dir: PathBuf,
    signing: SigningKey,
    kid: String,
    binding_secret: BindingSecret,
}

impl DevKeys {
    /// Load the dev keys from `dir`, creating whatever is missing (the directory with
    /// mode 0700). Safe against a concurrent creator (the server and `dev-token`):
    /// files are written aside and linked into place without overwriting.
    pub fn load_or_create(dir: &Path) -> Result<Self, DevKeysError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DevKeysError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;

        let key_path = dir.join(SIGNING_KEY_FILE);
        let signing = match read_if_exists(&key_path)? {
            Some(pem) => {
                let (key, has_public_key) = parse_key(&key_path, &pem)?;
                if has_public_key {
                    upgrade_to_v1(&key_path, &key);
                }
                key
            }
            None => {
                let mut seed = [0u8; 32];
                rand::fill(&mut seed);
                let fresh = SigningKey::from_bytes(&seed);
                seed.fill(0);
                let pem = encode_key_v1(&fresh)
                    .ok_or_else(|| DevKeysError::BadSigningKey(key_path.clone()))?;
                if write_new(&key_path, pem.as_bytes())? {
                    info!(path = %key_path.display(), "Generated development token-signing key");
                    fresh
                } else {
                    // Someone else created it first: use theirs.
                    let pem = read_if_exists(&key_path)?.unwrap_or_default();
                    parse_key(&key_path, &pem)?.0
                }
            }
        };
        let kid = dev_kid(&signing.verifying_key());

        // jwks.json is derived from the key: rewrite it when absent or stale.
        let jwks_path = dir.join(JWKS_FILE);
        let jwks_text = to_jwks_json(&kid, &signing.verifying_key());
        let current = read_if_exists(&jwks_path)?;
        let fresh_enough = current
            .as_deref()
            .and_then(|t| Jwks::parse(t.as_bytes()).ok())
            .is_some_and(|j| j.len() == 1 && j.get(&kid) == Some(&signing.verifying_key()));
        if !fresh_enough {
            replace(&jwks_path, jwks_text.as_bytes(), 0o644)?;
        }

        let secret_path = dir.join(BINDING_SECRET_FILE);
        let binding_secret = match read_if_exists(&secret_path)? {
            Some(text) => parse_secret(&secret_path, &text)?,
            None => {
                let fresh = BindingSecret::generate();
                if write_new(&secret_path, fresh.to_base64().as_bytes())? {
                    info!(path = %secret_path.display(), "Generated development binding secret");
                    fresh
                } else {
                    let text = read_if_exists(&secret_path)?.unwrap_or_default();
                    parse_secret(&secret_path, &text)?
                }
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            signing,
            kid,
            binding_secret,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/jwks.json`: what dev mode trusts (as a file JWKS source).
    pub fn jwks_path(&self) -> PathBuf {
        self.dir.join(JWKS_FILE)
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as a [`Jwks`].
    pub fn jwks(&self) -> Jwks {
        Jwks::parse(to_jwks_json(&self.kid, &self.signing.verifying_key()).as_bytes())
            .unwrap_or_default()
    }

    pub fn binding_secret(&self) -> &BindingSecret {
        &self.binding_secret
    }

    /// Sign `claims` as a join token with the dev key.
    pub fn mint_token(&self, claims: &TokenClaims) -> String {
        sign_token(&self.signing, &self.kid, claims)
    }

    /// Shorthand: a meeting token for `user_id` valid for `ttl` from `now`.
    pub fn mint_meeting_token(
        &self,
        meeting_id: &str,
        user_id: &str,
        role: Role,
        now: SystemTime,
        ttl: Duration,
    ) -> String {
        self.mint_token(&TokenClaims::meeting(user_id, meeting_id, role, now, ttl))
    }
}

impl std::fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKeys")
            .field("dir", &self.dir)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// "dev-" + the RFC 7638 §3 thumbprint: SHA-256 over the required members in
/// lexicographic order, `{"crv":"Ed25519","kty":"OKP","x":"..."}` (RFC 8037 §2).
pub fn dev_kid(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    format!(
        "dev-{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// `key` as a PKCS#8 v1 PEM document (RFC 8410 §7): no public key inside.
fn encode_key_v1(key: &SigningKey) -> Option<String> {
    let bytes = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    bytes
        .to_pkcs8_pem(LineEnding::LF)
        .ok()
        .map(|pem| pem.as_str().to_owned())
}

/// The key in a PKCS#8 PEM document, v1 or v2, and whether it embeds its public key
/// (v2; the embedded key must match the private one).
fn parse_key(path: &Path, pem: &str) -> Result<(SigningKey, bool), DevKeysError> {
    let bad = || DevKeysError::BadSigningKey(path.to_path_buf());
    let pair = KeypairBytes::from_pkcs8_pem(pem).map_err(|_| bad())?;
    let has_public_key = pair.public_key.is_some();
    let key = SigningKey::try_from(&pair).map_err(|_| bad())?;
    Ok((key, has_public_key))
}

/// Rewrite a v2 key file as v1 (same key). Best effort: a read-only dev dir keeps the
/// v2 file, which this service still reads.
fn upgrade_to_v1(path: &Path, key: &SigningKey) {
    let result = encode_key_v1(key)
        .ok_or_else(|| DevKeysError::BadSigningKey(path.to_path_buf()))
        .and_then(|pem| replace(path, pem.as_bytes(), 0o600));
    match result {
        Ok(()) => {
            info!(path = %path.display(), "Rewrote the development signing key as PKCS#8 v1 (same key)")
        }
        Err(e) => warn!(error = %e, "Development signing key left in PKCS#8 v2 form"),
    }
}

fn parse_secret(path: &Path, text: &str) -> Result<BindingSecret, DevKeysError> {
    BindingSecret::from_base64(text).map_err(|source| DevKeysError::BadSecret {
        path: path.to_path_buf(),
        source,
    })
}

fn read_if_exists(path: &Path) -> Result<Option<String>, DevKeysError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DevKeysError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A temporary sibling of `path`, unique to this process and call.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    path.with_file_name(name)
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, DevKeysError> {
    let tmp = temp_path(path);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            // The mode given to open() is masked by the umask; make it exact.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(bytes)?;
            f.sync_all()
        });
    match result {
        Ok(()) => Ok(tmp),
        Err(source) => {
            let _ = fs::remove_file(&tmp);
            Err(DevKeysError::Io { path: tmp, source })
        }
    }
}

/// Create `path` (mode 0600) with `bytes` unless it exists. `Ok(false)`: it existed.
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, DevKeysError> {
    let tmp = write_temp(path, bytes, 0o600)?;
    // link() never replaces an existing file: the first creator wins.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: create in place, still never overwriting.
        Err(_) => {
            let created = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| {
                    f.set_permissions(fs::Permissions::from_mode(0o600))?;
                    f.write_all(bytes)?;
                    f.sync_all()
                });
            match created {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(source) => Err(DevKeysError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
    }
}

/// Atomically replace `path` with `bytes`.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevKeysError> {
    let tmp = write_temp(path, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        DevKeysError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
#[path = "devkeys_tests.rs"]
mod tests;

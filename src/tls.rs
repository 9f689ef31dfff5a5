//! TLS material: PEM files or environment, and the development certificate.
//!
//! - Production: `--tls-cert-path`/`TLS_CERT_PATH` and `--tls-key-path`/`TLS_KEY_PATH`
//!   name PEM files, or the PEM content itself sits in the `TLS_CERT`/`TLS_KEY`
//!   environment variables (how the Kubernetes Secret `mc-service-secrets` is consumed).
//!   Content is never a CLI value and never logged.
//! - Development: [`DevCert::load_or_create`] keeps an ECDSA P-256 self-signed
//!   certificate valid 13 days in `--dev-dir` (Chromium's `serverCertificateHashes`
//!   accepts only ECDSA certificates valid at most 14 days).
//! - [`server_config`] builds the one QUIC server crypto config every shard shares:
//!   TLS 1.3 only (RFC 9001 §4.2) with ALPN `h3` (RFC 9114 §3.1).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::quic::crypto::ServerCrypto;

/// How long a development certificate is valid (Chromium's limit is 14 days).
pub const DEV_CERT_VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);
/// A development certificate this close to expiry is regenerated.
const DEV_CERT_RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// TLS flags (flattened into the top-level `Config`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain for the WebTransport listener. Alternatively the PEM
    /// content in the TLS_CERT environment variable (never on the command line).
    #[arg(long, env = "TLS_CERT_PATH")]
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) matching the certificate.
    /// Alternatively the PEM content in the TLS_KEY environment variable.
    #[arg(long, env = "TLS_KEY_PATH")]
    pub tls_key_path: Option<PathBuf>,
}

/// Why TLS material could not be used. Each names the flag or variable to fix.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("no TLS certificate: set --tls-cert-path/TLS_CERT_PATH or TLS_CERT (or use --dev)")]
    MissingCert,
    #[error("no TLS private key: set --tls-key-path/TLS_KEY_PATH or TLS_KEY (or use --dev)")]
    MissingKey,
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} contains no PEM certificate")]
    NoCertificate { what: String },
    #[error("{what} contains no PEM private key")]
    NoKey { what: String },
    #[error("{what} is not valid PEM: {source}")]
    Pem {
        what: String,
        source: std::io::Error,
    },
    #[error("the TLS private key does not match the certificate ({0})")]
    Mismatch(String),
    #[error("invalid TLS configuration: {0}")]
    Config(String),
    #[error("cannot write the development certificate in {path}: {source}")]
    DevWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the development certificate: {0}")]
    DevGenerate(String),
}

/// A certificate chain and its private key, parsed and checked to belong together.
#[derive(Debug)]
pub struct TlsMaterial {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsMaterial {
    /// Production material from `args`, falling back to `TLS_CERT`/`TLS_KEY` content
    /// looked up through `env` (pass `|k| std::env::var(k).ok()`).
    pub fn load(args: &TlsArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, TlsError> {
        let (cert_pem, cert_what) = match &args.tls_cert_path {
            Some(path) => (
                read(path, "TLS certificate (--tls-cert-path)")?,
                path_what(path),
            ),
            None => match env("TLS_CERT") {
                Some(pem) if !pem.trim().is_empty() => (pem.into_bytes(), "TLS_CERT".to_string()),
                _ => return Err(TlsError::MissingCert),
            },
        };
        let (key_pem, key_what) = match &args.tls_key_path {
            Some(path) => (read(path, "TLS key (--tls-key-path)")?, path_what(path)),
            None => match env("TLS_KEY") {
                Some(pem) if !pem.trim().is_empty() => (pem.into_bytes(), "TLS_KEY".to_string()),
                _ => return Err(TlsError::MissingKey),
            },
        };
        Self::from_pem(&cert_pem, &cert_what, &key_pem, &key_what)
    }

    /// Parse PEM content; `*_what` names its source in errors.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_what: &str,
        key_pem: &[u8],
        key_what: &str,
    ) -> Result<Self, TlsError> {
        let certs = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: cert_what.to_string(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                what: cert_what.to_string(),
            });
        }
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|source| TlsError::Pem {
                what: key_what.to_string(),
                source,
            })?
            .ok_or_else(|| TlsError::NoKey {
                what: key_what.to_string(),
            })?;
        let material = Self { certs, key };
        material.check_pair()?;
        Ok(material)
    }

    /// The key must sign for the leaf certificate's public key.
    fn check_pair(&self) -> Result<(), TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| TlsError::Mismatch(format!("unusable key: {e}")))?;
        let certified = rustls::sign::CertifiedKey::new(self.certs.clone(), signing);
        match certified.keys_match() {
            Ok(()) => Ok(()),
            // Unknown means the key type cannot expose its SPKI: let the handshake decide.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(TlsError::Mismatch(e.to_string())),
        }
    }

    /// Hex SHA-256 of the leaf certificate's DER (for `serverCertificateHashes`).
    pub fn leaf_sha256_hex(&self) -> String {
        self.certs
            .first()
            .map(|c| hex::encode(Sha256::digest(c.as_ref())))
            .unwrap_or_default()
    }
}

/// The QUIC server crypto config shared by every shard: TLS 1.3, ALPN `h3`.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<ServerCrypto>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM/SHA-256 first, and our order over the client's: it is what browsers
    // prefer, and cheaper than AES-256-GCM/SHA-384 (whose SHA-384 transcript hash and
    // key schedule cost more per handshake). The other suites stay available.
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(material.certs.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // RFC 9114 §3.1: HTTP/3 is negotiated with the ALPN token "h3".
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // RFC 9001 §4.6.1: no 0-RTT for a signaling server (replay safety).
    tls.max_early_data_size = 0;
    tls.ignore_client_order = true;
    Ok(Arc::new(ServerCrypto::new(tls).map_err(TlsError::Config)?))
}

/// The development certificate kept in `--dev-dir`.
#[derive(Debug, Clone)]
pub struct DevCert {
    pub material: TlsMaterial,
    /// Hex SHA-256 of the certificate DER, as written to `cert.sha256`.
    pub sha256_hex: String,
    /// True when this call generated a new certificate.
    pub generated: bool,
}

impl DevCert {
    /// Reuse `dir/cert.pem` + `dir/key.pem` while valid for more than a day at `now`,
    /// else generate a new pair (valid 13 days for 127.0.0.1, ::1, localhost).
    pub fn load_or_create(dir: &Path, now: SystemTime) -> Result<Self, TlsError> {
        if let Some(existing) = Self::load_valid(dir, now) {
            return Ok(existing);
        }
        let (cert_pem, key_pem) = generate(now)?;
        let material = TlsMaterial::from_pem(
            cert_pem.as_bytes(),
            "generated certificate",
            key_pem.as_bytes(),
            "generated key",
        )?;
        let sha256_hex = material.leaf_sha256_hex();
        write_dev(dir, "cert.pem", cert_pem.as_bytes(), 0o644)?;
        write_dev(dir, "key.pem", key_pem.as_bytes(), 0o600)?;
        write_dev(
            dir,
            "cert.sha256",
            format!("{sha256_hex}\n").as_bytes(),
            0o644,
        )?;
        Ok(Self {
            material,
            sha256_hex,
            generated: true,
        })
    }

    fn load_valid(dir: &Path, now: SystemTime) -> Option<Self> {
        let cert_pem = std::fs::read(dir.join("cert.pem")).ok()?;
        let key_pem = std::fs::read(dir.join("key.pem")).ok()?;
        let material = TlsMaterial::from_pem(&cert_pem, "cert.pem", &key_pem, "key.pem").ok()?;
        let not_after = not_after(material.certs.first()?)?;
        if not_after < now + DEV_CERT_RENEW_BEFORE {
            return None;
        }
        let sha256_hex = material.leaf_sha256_hex();
        // Keep cert.sha256 in step with the certificate actually served.
        std::fs::write(dir.join("cert.sha256"), format!("{sha256_hex}\n")).ok()?;
        Some(Self {
            material,
            sha256_hex,
            generated: false,
        })
    }
}

/// A fresh self-signed development certificate in memory (tests, in-memory pairs).
pub fn generate_material(now: SystemTime) -> Result<TlsMaterial, TlsError> {
    let (cert, key) = generate(now)?;
    TlsMaterial::from_pem(
        cert.as_bytes(),
        "generated certificate",
        key.as_bytes(),
        "generated key",
    )
}

fn generate(now: SystemTime) -> Result<(String, String), TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::DevGenerate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let names = vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ];
    let mut params = rcgen::CertificateParams::new(names).map_err(gen_err)?;
    // Backdate a minute for clock skew; total validity stays under 14 days.
    let start = now - Duration::from_secs(60);
    params.not_before = start.into();
    params.not_after = (start + DEV_CERT_VALIDITY).into();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mc-service dev");
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// notAfter of a DER certificate, found by walking its TBSCertificate (RFC 5280 §4.1).
fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, cert_body) = der_tlv(cert.as_ref(), 0x30)?;
    let (_, tbs) = der_tlv(cert_body, 0x30)?;
    let mut rest = tbs;
    // Optional [0] version, then serial, signature algorithm, issuer, validity.
    if rest.first() == Some(&0xa0) {
        rest = der_skip(rest)?;
    }
    for _ in 0..3 {
        rest = der_skip(rest)?;
    }
    let (_, validity) = der_tlv(rest, 0x30)?;
    let after_start = der_skip(validity)?;
    let tag = *after_start.first()?;
    let (_, time) = der_tlv(after_start, tag)?;
    parse_der_time(tag, time)
}

fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = input.get(hdr..hdr.checked_add(len)?)?;
    let rest = input.get(hdr + len..)?;
    Some((rest, body))
}

fn der_skip(input: &[u8]) -> Option<&[u8]> {
    let tag = *input.first()?;
    der_tlv(input, tag).map(|(rest, _)| rest)
}

fn parse_der_time(tag: u8, s: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(s).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(0..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    let days = days_from_civil(year, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn path_what(path: &Path) -> String {
    path.display().to_string()
}

fn write_dev(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let err = |source| TlsError::DevWrite {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mc-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn dev_cert_is_p256_short_lived_and_hash_matches() {
        let dir = tmpdir("dev");
        let now = SystemTime::now();
        let dev = DevCert::load_or_create(&dir, now).unwrap();
        assert!(dev.generated);
        let der = dev.material.certs[0].as_ref().to_vec();
        assert_eq!(dev.sha256_hex, hex::encode(Sha256::digest(&der)));
        let on_disk = std::fs::read_to_string(dir.join("cert.sha256")).unwrap();
        assert_eq!(on_disk.trim(), dev.sha256_hex);
        // id-ecPublicKey + prime256v1 OIDs in the SPKI.
        let ec = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let p256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert!(der.windows(ec.len()).any(|w| w == ec));
        assert!(der.windows(p256.len()).any(|w| w == p256));
        let after = not_after(&dev.material.certs[0]).unwrap();
        let life = after.duration_since(now).unwrap();
        assert!(
            life <= Duration::from_secs(14 * 86_400) && life > Duration::from_secs(12 * 86_400)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Reused while valid, regenerated near expiry.
        let again = DevCert::load_or_create(&dir, now + Duration::from_secs(3600)).unwrap();
        assert!(!again.generated);
        assert_eq!(again.sha256_hex, dev.sha256_hex);
        let later = now + Duration::from_secs(12 * 86_400 + 3600);
        let renewed = DevCert::load_or_create(&dir, later).unwrap();
        assert!(renewed.generated);
        assert_ne!(renewed.sha256_hex, dev.sha256_hex);
        server_config(&renewed.material).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_material_names_the_flag() {
        let none = |_: &str| None;
        let err = TlsMaterial::load(&TlsArgs::default(), none).unwrap_err();
        assert!(
            err.to_string().contains("--tls-cert-path/TLS_CERT_PATH"),
            "{err}"
        );
        let args = TlsArgs {
            tls_cert_path: Some("/nonexistent/cert.pem".into()),
            tls_key_path: None,
        };
        let err = TlsMaterial::load(&args, none).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn mismatched_and_garbage_material_is_refused() {
        let (c1, _k1) = generate(SystemTime::now()).unwrap();
        let (_c2, k2) = generate(SystemTime::now()).unwrap();
        let env = |k: &str| match k {
            "TLS_CERT" => Some(c1.clone()),
            "TLS_KEY" => Some(k2.clone()),
            _ => None,
        };
        let err = TlsMaterial::load(&TlsArgs::default(), env).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch(_)), "{err}");
        let err = TlsMaterial::from_pem(b"nope", "TLS_CERT", k2.as_bytes(), "TLS_KEY").unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = TlsMaterial::from_pem(c1.as_bytes(), "TLS_CERT", b"", "TLS_KEY").unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}

//! `X-MC-Signature` on MC → MC import requests (docs/gc-api.md "Hand over a meeting").
//!
//! ```text
//! key    = HKDF-SHA256(ikm = MC_BINDING_TOKEN_SECRET, salt = none, info = "mc-migration-v1")
//! header = "t=<unix secs>,v1=<hex HMAC-SHA256(key, "<t>." ‖ body)>"
//! ```
//! The verifier refuses a wrong MAC and a `t` more than [`MAX_CLOCK_SKEW_SECS`] away
//! from its own clock (injected, so tests use a fake one). The comparison is
//! constant-time. Like the binding keys, the key is never printed.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::binding::BindingSecret;

type HmacSha256 = Hmac<Sha256>;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-MC-Signature";
/// HKDF `info` of the key (docs/gc-api.md).
pub const KEY_INFO: &[u8] = b"mc-migration-v1";
/// Largest accepted distance between `t` and the verifier's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 30;
/// Longest header value accepted (a few `v1=` entries at most).
pub const MAX_HEADER_BYTES: usize = 512;

/// Why a signature was refused (all answered 401; the variant goes to logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-MC-Signature header")]
    Missing,
    #[error("malformed X-MC-Signature header")]
    Malformed,
    #[error("signature time {t} is more than {MAX_CLOCK_SKEW_SECS} s from our clock ({now})")]
    Stale { t: u64, now: u64 },
    #[error("signature does not match")]
    Mismatch,
}

/// The HMAC key shared by the MCs of a cluster for import requests.
#[derive(Clone)]
pub struct MigrationKey([u8; 32]);

impl MigrationKey {
    /// HKDF-SHA256(ikm = secret, no salt, info = "mc-migration-v1").
    pub fn derive(secret: &BindingSecret) -> Self {
        let hk = Hkdf::<Sha256>::new(None, secret.expose());
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit: expand cannot fail.
        if hk.expand(KEY_INFO, &mut okm).is_err() {
            okm = [0u8; 32];
        }
        Self(okm)
    }

    fn mac(&self, t: u64, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.0) else {
            return [0u8; 32];
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The header value for `body` sent at `unix_secs`.
    pub fn sign(&self, unix_secs: u64, body: &[u8]) -> String {
        format!(
            "t={unix_secs},v1={}",
            hex::encode(self.mac(unix_secs, body))
        )
    }

    /// Checks `header` (the value of [`SIGNATURE_HEADER`], `None` when absent) over
    /// `body` at the verifier's time `now_unix_secs`. Several `v1=` entries are allowed;
    /// one must match.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now_unix_secs: u64,
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(SignatureError::Malformed);
        }
        let mut t = None;
        let mut macs = Vec::new();
        for part in header.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match k {
                "t" if t.is_none() => t = Some(parse_secs(v)?),
                "t" => return Err(SignatureError::Malformed),
                "v1" => {
                    let mut mac = [0u8; 32];
                    hex::decode_to_slice(v, &mut mac).map_err(|_| SignatureError::Malformed)?;
                    macs.push(mac);
                }
                // Other schemes are ignored, as a later version may add them.
                _ => {}
            }
        }
        let t = t.ok_or(SignatureError::Malformed)?;
        if macs.is_empty() {
            return Err(SignatureError::Malformed);
        }
        if t.abs_diff(now_unix_secs) > MAX_CLOCK_SKEW_SECS {
            return Err(SignatureError::Stale {
                t,
                now: now_unix_secs,
            });
        }
        let expected = self.mac(t, body);
        let matched = macs
            .iter()
            .fold(subtle::Choice::from(0), |acc, m| acc | expected.ct_eq(m));
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

impl std::fmt::Debug for MigrationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MigrationKey(<redacted>)")
    }
}

/// Decimal seconds, digits only (no sign, no spaces), at most 20 digits.
fn parse_secs(v: &str) -> Result<u64, SignatureError> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    v.parse().map_err(|_| SignatureError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn key(byte: u8) -> MigrationKey {
        MigrationKey::derive(&BindingSecret::from_bytes(vec![byte; 32]).unwrap())
    }

    #[test]
    fn matches_the_documented_construction() {
        let hk = Hkdf::<Sha256>::new(None, &[9u8; 32]);
        let mut okm = [0u8; 32];
        hk.expand(b"mc-migration-v1", &mut okm).unwrap();
        let mut mac = HmacSha256::new_from_slice(&okm).unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let want = format!(
            "t=1700000000,v1={}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(key(9).sign(NOW, br#"{"a":1}"#), want);
    }

    #[test]
    fn a_signed_body_verifies_within_the_skew() {
        let k = key(1);
        let body = br#"{"snapshot":{}}"#;
        let h = k.sign(NOW, body);
        assert_eq!(k.verify(Some(&h), body, NOW), Ok(()));
        assert_eq!(k.verify(Some(&h), body, NOW + 30), Ok(()));
        assert_eq!(k.verify(Some(&h), body, NOW - 30), Ok(()));
        assert_eq!(
            k.verify(Some(&h), body, NOW + 31),
            Err(SignatureError::Stale {
                t: NOW,
                now: NOW + 31
            })
        );
        assert!(matches!(
            k.verify(Some(&h), body, NOW - 31),
            Err(SignatureError::Stale { .. })
        ));
        // Uppercase hex and spaces after the comma are fine; another scheme is ignored.
        let upper = format!("t={NOW}, v1={}, v0=zz", &h[h.len() - 64..].to_uppercase());
        assert_eq!(k.verify(Some(&upper), body, NOW), Ok(()));
        // One of several v1 entries may match (key rotation).
        let two = format!(
            "t={NOW},v1={},{}",
            "00".repeat(32),
            &h[h.find("v1").unwrap()..]
        );
        assert_eq!(k.verify(Some(&two), body, NOW), Ok(()));
    }

    #[test]
    fn wrong_key_body_or_time_is_a_mismatch() {
        let body = b"body";
        let h = key(1).sign(NOW, body);
        assert_eq!(
            key(2).verify(Some(&h), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key(1).verify(Some(&h), b"bodY", NOW),
            Err(SignatureError::Mismatch)
        );
        // The time is signed: moving `t` breaks the MAC.
        let moved = h.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            key(1).verify(Some(&moved), body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let k = key(1);
        assert_eq!(k.verify(None, b"", NOW), Err(SignatureError::Missing));
        let mac = "ab".repeat(32);
        for bad in [
            String::new(),
            "t=1".into(),
            format!("v1={mac}"),
            format!("t=-1,v1={mac}"),
            format!("t= 1,v1={mac}"),
            format!("t=1,t=2,v1={mac}"),
            format!("t=1,v1={}", &mac[..62]),
            format!("t=1,v1={}zz", &mac[..62]),
            format!("t=99999999999999999999999,v1={mac}"),
            format!("t=1;v1={mac}"),
            format!("t=1,v1={mac},{}", "x".repeat(MAX_HEADER_BYTES)),
        ] {
            assert_eq!(
                k.verify(Some(&bad), b"", NOW),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_prints_the_key() {
        assert_eq!(format!("{:?}", key(7)), "MigrationKey(<redacted>)");
    }
}

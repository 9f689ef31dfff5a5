//! Session binding tokens (docs/protocol.md "Session recovery (binding tokens)").
//!
//! ```text
//! meeting_key   = HKDF-SHA256(ikm = MC binding secret, salt = meeting_id, info = "session-binding")
//! binding_token = hex(HMAC-SHA256(meeting_key, correlation_id ‖ participant_id ‖ nonce))
//! ```
//! Verification is constant-time. Neither the secret nor a derived key is ever printed:
//! their `Debug` impls are redacted and there is no `Display`.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// HKDF `info` of the meeting key (docs/protocol.md "Session recovery").
const KEY_INFO: &[u8] = b"session-binding";
/// Length of a binding token: hex of a SHA-256 MAC.
pub const TOKEN_HEX_LEN: usize = 64;

pub use super::secret::BindingSecret;

/// The per-meeting HMAC key derived from the secret and the meeting id.
#[derive(Clone)]
pub struct MeetingBindingKey([u8; 32]);

impl MeetingBindingKey {
    /// HKDF-SHA256(ikm = secret, salt = meeting_id, info = "session-binding").
    pub fn derive(secret: &BindingSecret, meeting_id: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(meeting_id.as_bytes()), secret.expose());
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 255 × 32 output limit: expand cannot fail.
        if hk.expand(KEY_INFO, &mut okm).is_err() {
            okm = [0u8; 32];
        }
        Self(okm)
    }

    fn mac(&self, correlation_id: &str, participant_id: &str, nonce: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        mac.update(correlation_id.as_bytes());
        mac.update(participant_id.as_bytes());
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    /// hex(HMAC-SHA256(key, correlation_id ‖ participant_id ‖ nonce)).
    pub fn issue(&self, correlation_id: &str, participant_id: &str, nonce: &[u8]) -> String {
        hex::encode(self.mac(correlation_id, participant_id, nonce))
    }

    /// Constant-time check of a client-presented token. Any malformed token (wrong
    /// length, not hex) is simply `false`.
    pub fn verify(
        &self,
        correlation_id: &str,
        participant_id: &str,
        nonce: &[u8],
        token: &str,
    ) -> bool {
        if token.len() != TOKEN_HEX_LEN {
            return false;
        }
        let mut presented = [0u8; 32];
        if hex::decode_to_slice(token, &mut presented).is_err() {
            return false;
        }
        let expected = self.mac(correlation_id, participant_id, nonce);
        expected.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for MeetingBindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeetingBindingKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> BindingSecret {
        BindingSecret::from_bytes(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn a_generated_secret_round_trips_through_base64() {
        use base64::Engine as _;
        let s = BindingSecret::generate();
        let text = base64::engine::general_purpose::STANDARD.encode(s.expose());
        let back = BindingSecret::from_base64(&text).unwrap();
        let k1 = MeetingBindingKey::derive(&s, "m");
        let k2 = MeetingBindingKey::derive(&back, "m");
        assert!(k2.verify("c", "p", b"n", &k1.issue("c", "p", b"n")));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let s = format!(
            "{:?} {:?}",
            secret(),
            MeetingBindingKey::derive(&secret(), "m")
        );
        assert!(!s.contains('7') && s.contains("redacted"), "{s}");
    }

    #[test]
    fn issue_matches_the_spec_construction() {
        let key = MeetingBindingKey::derive(&secret(), "meeting-1");
        // Recompute by hand: HKDF then HMAC over the concatenation.
        let hk = Hkdf::<Sha256>::new(Some(b"meeting-1"), &[7u8; 32]);
        let mut okm = [0u8; 32];
        hk.expand(b"session-binding", &mut okm).unwrap();
        let mut mac = HmacSha256::new_from_slice(&okm).unwrap();
        mac.update(b"corrpartnonce");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(key.issue("corr", "part", b"nonce"), want);
        assert_eq!(want.len(), TOKEN_HEX_LEN);
    }

    #[test]
    fn verify_accepts_only_the_exact_binding() {
        let key = MeetingBindingKey::derive(&secret(), "m1");
        let t = key.issue("c", "p", &[1, 2, 3]);
        assert!(key.verify("c", "p", &[1, 2, 3], &t));
        assert!(key.verify("c", "p", &[1, 2, 3], &t.to_uppercase()));
        assert!(!key.verify("c", "p", &[1, 2, 4], &t), "rotated nonce");
        assert!(!key.verify("c", "q", &[1, 2, 3], &t), "other participant");
        assert!(!key.verify("d", "p", &[1, 2, 3], &t), "other correlation");
        let other = MeetingBindingKey::derive(&secret(), "m2");
        assert!(!other.verify("c", "p", &[1, 2, 3], &t), "foreign meeting");
        let other_secret = BindingSecret::from_bytes(vec![8u8; 40]).unwrap();
        let k3 = MeetingBindingKey::derive(&other_secret, "m1");
        assert!(!k3.verify("c", "p", &[1, 2, 3], &t), "other secret");
        assert!(!key.verify("c", "p", &[1, 2, 3], ""));
        assert!(!key.verify("c", "p", &[1, 2, 3], &t[..63]));
        assert!(!key.verify("c", "p", &[1, 2, 3], &"zz".repeat(32)));
        assert!(!key.verify("c", "p", &[1, 2, 3], &"é".repeat(32)));
    }
}

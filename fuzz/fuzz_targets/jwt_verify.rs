//! Join-token verification (`JwtVerifier::verify`: RFC 7515 compact JWS, RFC 8037
//! EdDSA, docs/protocol.md Precise rule 13 claims) over a JWKS parsed by `Jwks::parse`.
//!
//! Byte 0 picks the mode:
//! - even: the rest is the token text as a client sends it;
//! - odd: the rest is `header JSON 0x00 payload JSON` (or payload JSON alone under a
//!   fixed good header), which the harness signs with the trusted key, so mutations
//!   reach the claim checks behind the signature.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use libfuzzer_sys::fuzz_target;
use mc_service::auth::jwks::to_jwks_json;
use mc_service::auth::{Jwks, JwtVerifier, VerifierConfig};

const KID: &str = "fuzz-key";
const MEETING: &str = "meeting-1";
/// The fixed "now" of the harness: 2023-11-14T22:13:20Z.
const NOW_SECS: u64 = 1_700_000_000;
const GOOD_HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT","kid":"fuzz-key"}"#;

struct Fixture {
    key: SigningKey,
    plain: JwtVerifier,
    strict: JwtVerifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // The trusted key (seed 1..=32) plus a second one the tokens never use.
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
        let key = SigningKey::from_bytes(&seed);
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let a = to_jwks_json(KID, &key.verifying_key());
        let b = to_jwks_json("other", &other.verifying_key());
        // Merge the two one-key documents into one key set.
        let doc = format!("{{\"keys\":[{},{}]}}", inner_key(&a), inner_key(&b));
        let jwks = Arc::new(Jwks::parse(doc.as_bytes()).expect("fixture JWKS parses"));
        let plain = JwtVerifier::new(VerifierConfig::default(), Arc::clone(&jwks));
        let strict = JwtVerifier::new(
            VerifierConfig {
                audience: Some("mc".into()),
                issuer: Some("ac".into()),
                ..VerifierConfig::default()
            },
            jwks,
        );
        Fixture { key, plain, strict }
    })
}

/// `{"keys":[K]}` → `K`.
fn inner_key(doc: &str) -> &str {
    let start = doc.find('[').map_or(0, |i| i + 1);
    let end = doc.rfind(']').unwrap_or(doc.len());
    &doc[start..end]
}

fn sign(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    token
}

fn check(f: &Fixture, token: &str) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    for v in [&f.plain, &f.strict] {
        if let Ok(claims) = v.verify(token, MEETING, now) {
            assert_eq!(
                claims.meeting_id, MEETING,
                "accepted another meeting's token"
            );
            assert_eq!(claims.kid, KID, "accepted a token from a key never used");
            assert!(!claims.sub.is_empty());
        }
        // Far clocks must not overflow anything.
        let _ = v.verify(token, MEETING, UNIX_EPOCH);
        let _ = v.verify(
            token,
            MEETING,
            SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 4),
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    if mode % 2 == 0 {
        check(f, &String::from_utf8_lossy(rest));
        return;
    }
    let token = match rest.iter().position(|b| *b == 0) {
        Some(i) => sign(&f.key, &rest[..i], &rest[i + 1..]),
        None => sign(&f.key, GOOD_HEADER.as_bytes(), rest),
    };
    check(f, &token);
    // The same token with its signature bit-flipped must never pass.
    let mut bad = token.into_bytes();
    if let Some(last) = bad.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    let bad = String::from_utf8_lossy(&bad);
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    // Flipping the last base64 char may only change padding bits; accept either way
    // but never a panic.
    let _ = f.plain.verify(&bad, MEETING, now);
});

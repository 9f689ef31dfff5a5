//! Token security tests: every refusal with its precise reason, with
//! a fake wall clock (a fixed base `SystemTime` plus offsets).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac as _};
use serde_json::{json, Value};
use sha2::Sha256;

use super::jwks::{to_jwks_json, Jwks};
use super::jwt::*;

const KID: &str = "k1";
const MEETING: &str = "meeting-42";
/// The fake clock's base: 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;

fn at(offset_secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0.saturating_add_signed(offset_secs))
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn verifier(config: VerifierConfig) -> JwtVerifier {
    let jwks = Jwks::parse(to_jwks_json(KID, &key(1).verifying_key()).as_bytes()).unwrap();
    JwtVerifier::new(config, Arc::new(jwks))
}

fn claims() -> Value {
    json!({
        "sub": "alice",
        "token_type": "meeting",
        "meeting_id": MEETING,
        "role": "host",
        "participant_type": "member",
        "capabilities": ["audio", "video"],
        "iat": T0,
        "exp": T0 + 3600,
        "jti": "j-1",
        "name": "Alice",
    })
}

fn token(c: &Value) -> String {
    sign_token(&key(1), KID, c)
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    token(&c)
}

fn check(t: &str) -> Result<VerifiedClaims, JwtError> {
    verifier(VerifierConfig::default()).verify(t, MEETING, at(10))
}

fn reason(t: &str) -> &'static str {
    match check(t) {
        Ok(_) => "accepted",
        Err(e) => e.reason(),
    }
}

/// A token with an arbitrary header and payload, signed by `sign` over the input.
fn raw_token(header: &Value, payload: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn valid_token_yields_claims() {
    let c = check(&token(&claims())).unwrap();
    assert_eq!(c.sub, "alice");
    assert_eq!(c.meeting_id, MEETING);
    assert_eq!(c.role, Role::Host);
    assert_eq!(c.participant_type.as_deref(), Some("member"));
    assert_eq!(c.capabilities, ["audio", "video"]);
    assert_eq!(c.jti.as_deref(), Some("j-1"));
    assert_eq!(c.name.as_deref(), Some("Alice"));
    assert_eq!((c.iat, c.exp), (T0 as i64, T0 as i64 + 3600));
    assert_eq!(c.kid, KID);
    assert_eq!(metric_labels(&Ok::<_, JwtError>(c)), ("success", "none"));
}

#[test]
fn role_defaults_to_participant_and_unknown_role_is_refused() {
    let t = with(|c| {
        c.remove("role");
        c.remove("capabilities");
    });
    let c = check(&t).unwrap();
    assert_eq!(c.role, Role::Participant);
    assert!(c.capabilities.is_empty());
    assert_eq!(
        reason(&with(|c| _ = c.insert("role".into(), json!("admin")))),
        "invalid_claim"
    );
}

#[test]
fn alg_none_is_refused() {
    let header = json!({"alg": "none", "typ": "JWT", "kid": KID});
    let t = raw_token(&header, &claims(), |_| Vec::new());
    assert_eq!(reason(&t), "bad_alg");
    // Even with the trailing dot and no signature part at all.
    let t = t.trim_end_matches('.').to_string() + ".";
    assert_eq!(reason(&t), "bad_alg");
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion attack: HMAC keyed with the public key's bytes, as
    // published in the JWKS (raw and as its base64url `x`).
    let public = key(1).verifying_key().to_bytes();
    let x = URL_SAFE_NO_PAD.encode(public);
    for secret in [public.to_vec(), x.into_bytes()] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": KID});
        let t = raw_token(&header, &claims(), |input| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        });
        assert_eq!(reason(&t), "bad_alg");
    }
}

#[test]
fn other_algorithms_are_refused() {
    for alg in ["RS256", "ES256", "PS256", "HS512", "eddsa", "Ed25519", ""] {
        let header = json!({"alg": alg, "kid": KID});
        let t = raw_token(&header, &claims(), |input| {
            use ed25519_dalek::Signer as _;
            key(1).sign(input).to_bytes().to_vec()
        });
        assert_eq!(reason(&t), "bad_alg", "{alg}");
    }
    let header = json!({"kid": KID});
    assert_eq!(
        reason(&raw_token(&header, &claims(), |_| vec![0; 64])),
        "bad_alg"
    );
}

#[test]
fn kid_must_be_present_and_known() {
    let sign = |input: &[u8]| {
        use ed25519_dalek::Signer as _;
        key(1).sign(input).to_bytes().to_vec()
    };
    let t = raw_token(&json!({"alg": "EdDSA"}), &claims(), sign);
    assert_eq!(reason(&t), "missing_kid");
    let t = raw_token(&json!({"alg": "EdDSA", "kid": ""}), &claims(), sign);
    assert_eq!(reason(&t), "missing_kid");
    let t = sign_token(&key(1), "k2", &claims());
    let e = check(&t).unwrap_err();
    assert_eq!(e, JwtError::UnknownKid("k2".into()));
    assert!(e.may_pass_after_reload());
    // After a JWKS refresh that brings k2, the same token verifies.
    let mut v = verifier(VerifierConfig::default());
    v.set_keys(Arc::new(
        Jwks::parse(to_jwks_json("k2", &key(1).verifying_key()).as_bytes()).unwrap(),
    ));
    assert!(v.verify(&t, MEETING, at(10)).is_ok());
    // An attacker-chosen kid is bounded before it reaches logs.
    let long = "x".repeat(1000);
    match check(&sign_token(&key(1), &long, &claims())) {
        Err(JwtError::UnknownKid(k)) => assert_eq!(k.len(), 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn crit_header_is_refused() {
    let header = json!({"alg": "EdDSA", "kid": KID, "crit": ["exp"]});
    let t = raw_token(&header, &claims(), |input| {
        use ed25519_dalek::Signer as _;
        key(1).sign(input).to_bytes().to_vec()
    });
    assert_eq!(reason(&t), "malformed");
}

#[test]
fn expiry_with_skew() {
    let v = verifier(VerifierConfig::default());
    let t = token(&claims());
    // exp = T0+3600; skew 5 s: accepted until exp+5, refused from then on.
    assert!(v.verify(&t, MEETING, at(3604)).is_ok());
    assert_eq!(v.verify(&t, MEETING, at(3605)), Err(JwtError::Expired));
    assert_eq!(v.verify(&t, MEETING, at(100_000)), Err(JwtError::Expired));
}

#[test]
fn iat_in_the_future() {
    let v = verifier(VerifierConfig::default());
    // iat 5 s ahead of the clock: within the skew, accepted.
    let t = with(|c| _ = c.insert("iat".into(), json!(T0 + 15)));
    assert!(v.verify(&t, MEETING, at(10)).is_ok());
    // 6 s ahead: refused.
    let t = with(|c| _ = c.insert("iat".into(), json!(T0 + 16)));
    assert_eq!(v.verify(&t, MEETING, at(10)), Err(JwtError::IatInFuture));
    // A larger configured skew admits it.
    let wide = verifier(VerifierConfig {
        clock_skew: Duration::from_secs(30),
        ..VerifierConfig::default()
    });
    assert!(wide.verify(&t, MEETING, at(10)).is_ok());
}

#[test]
fn nbf_in_the_future() {
    let t = with(|c| _ = c.insert("nbf".into(), json!(T0 + 60)));
    assert_eq!(reason(&t), "not_yet_valid");
    let t = with(|c| _ = c.insert("nbf".into(), json!(T0 + 12)));
    assert_eq!(reason(&t), "accepted");
}

#[test]
fn wrong_meeting_and_token_type() {
    let v = verifier(VerifierConfig::default());
    let t = token(&claims());
    assert_eq!(v.verify(&t, "other", at(10)), Err(JwtError::WrongMeeting));
    assert_eq!(v.verify(&t, "", at(10)), Err(JwtError::WrongMeeting));
    for tt in ["session", "Meeting", ""] {
        let t = with(|c| _ = c.insert("token_type".into(), json!(tt)));
        assert_eq!(reason(&t), "wrong_token_type", "{tt}");
    }
}

#[test]
fn required_claims() {
    for name in ["sub", "token_type", "meeting_id", "iat", "exp"] {
        let t = with(|c| _ = c.remove(name));
        assert_eq!(check(&t), Err(JwtError::MissingClaim(name)), "{name}");
    }
    assert_eq!(
        reason(&with(|c| _ = c.insert("sub".into(), json!("")))),
        "invalid_claim"
    );
    assert_eq!(
        reason(&with(|c| _ = c.insert("sub".into(), json!(7)))),
        "invalid_claim"
    );
    assert_eq!(
        reason(&with(|c| _ = c.insert("exp".into(), json!("soon")))),
        "invalid_claim"
    );
    assert_eq!(
        reason(&with(|c| _ = c.insert("sub".into(), json!("s".repeat(300))))),
        "invalid_claim"
    );
    assert_eq!(
        reason(&with(
            |c| _ = c.insert("capabilities".into(), json!("audio"))
        )),
        "invalid_claim"
    );
    assert_eq!(
        reason(&with(|c| _ = c.insert("capabilities".into(), json!([1])))),
        "invalid_claim"
    );
    // exp before iat is nonsense even when neither bound is crossed.
    let t = with(|c| {
        c.insert("iat".into(), json!(T0 + 3));
        c.insert("exp".into(), json!(T0 + 2));
    });
    let v = verifier(VerifierConfig::default());
    assert_eq!(
        v.verify(&t, MEETING, at(0)),
        Err(JwtError::InvalidClaim("exp"))
    );
    // Fractional NumericDates (RFC 7519 §2) are accepted.
    let t = with(|c| _ = c.insert("exp".into(), json!(T0 as f64 + 3600.5)));
    assert_eq!(reason(&t), "accepted");
}

#[test]
fn tampered_payload_and_signature() {
    let t = token(&claims());
    let parts: Vec<&str> = t.split('.').collect();
    // Payload swapped for one naming another meeting, signature kept.
    let mut evil = claims();
    evil["meeting_id"] = json!("other");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    let v = verifier(VerifierConfig::default());
    assert_eq!(
        v.verify(&forged, "other", at(10)),
        Err(JwtError::BadSignature)
    );
    // One signature byte flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(reason(&flipped), "bad_signature");
    // Truncated signature, and a signature by another key under our kid.
    let short = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&sig[..63])
    );
    assert_eq!(reason(&short), "bad_signature");
    assert_eq!(
        reason(&sign_token(&key(2), KID, &claims())),
        "bad_signature"
    );
    // Header altered (kid kept): the signature covers it.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": KID, "x": 1}).to_string());
    let rehead = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_eq!(reason(&rehead), "bad_signature");
}

#[test]
fn oversize_is_refused_before_parsing() {
    let t = with(|c| _ = c.insert("pad".into(), json!("p".repeat(9000))));
    assert!(t.len() > 8192);
    assert_eq!(check(&t), Err(JwtError::Oversize(8192)));
    // Garbage of that size never reaches the parser either.
    assert_eq!(reason(&"!".repeat(8193)), "oversize");
    let small = verifier(VerifierConfig {
        max_token_bytes: 512,
        ..VerifierConfig::default()
    });
    let t = with(|c| _ = c.insert("pad".into(), json!("p".repeat(600))));
    assert_eq!(
        small.verify(&t, MEETING, at(10)),
        Err(JwtError::Oversize(512))
    );
}

#[test]
fn malformed_tokens() {
    let good = token(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "abc".to_string(),
        "a.b".to_string(),
        format!("{good}.extra"),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("not json"),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("[1,2]"),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.%%%", parts[0], parts[1]),
    ];
    for t in &cases {
        assert_eq!(reason(t), "malformed", "{t}");
    }
    // A correctly signed payload that is not base64url JSON.
    for payload in ["not json".as_bytes(), b"[1]", b"\xff\xfe"] {
        let input = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload));
        let sig = {
            use ed25519_dalek::Signer as _;
            key(1).sign(input.as_bytes()).to_bytes()
        };
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(reason(&t), "malformed");
    }
    // Every error maps to UNAUTHORIZED on the wire.
    assert_eq!(check("abc").unwrap_err().code(), 2);
    assert_eq!(CLIENT_ERROR_MESSAGE, "invalid or expired token");
}

#[test]
fn audience_and_issuer_when_configured() {
    let v = verifier(VerifierConfig {
        audience: Some("mc".into()),
        issuer: Some("https://ac.example".into()),
        ..VerifierConfig::default()
    });
    let ok = |c: &mut serde_json::Map<String, Value>| {
        c.insert("aud".into(), json!("mc"));
        c.insert("iss".into(), json!("https://ac.example"));
    };
    assert!(v.verify(&with(ok), MEETING, at(10)).is_ok());
    let t = with(|c| {
        ok(c);
        c.insert("aud".into(), json!(["gc", "mc"]));
    });
    assert!(v.verify(&t, MEETING, at(10)).is_ok());
    for aud in [json!("gc"), json!(["gc"]), json!(null), json!(5)] {
        let t = with(|c| {
            ok(c);
            c.insert("aud".into(), aud.clone());
        });
        assert_eq!(
            v.verify(&t, MEETING, at(10)),
            Err(JwtError::BadAudience),
            "{aud}"
        );
    }
    let t = with(|c| {
        ok(c);
        c.insert("iss".into(), json!("https://evil.example"));
    });
    assert_eq!(v.verify(&t, MEETING, at(10)), Err(JwtError::BadIssuer));
    let t = with(|c| {
        ok(c);
        c.remove("iss");
    });
    assert_eq!(v.verify(&t, MEETING, at(10)), Err(JwtError::BadIssuer));
    // Unconfigured: aud/iss are not checked.
    let t = with(|c| _ = c.insert("aud".into(), json!("anything")));
    assert_eq!(reason(&t), "accepted");
}

#[test]
fn empty_key_set_refuses_everything_as_unknown_kid() {
    let v = JwtVerifier::new(VerifierConfig::default(), Arc::new(Jwks::empty()));
    let e = v.verify(&token(&claims()), MEETING, at(10)).unwrap_err();
    assert!(e.may_pass_after_reload());
    assert_eq!(metric_labels(&Err::<(), _>(e)), ("failure", "unknown_kid"));
}

#[test]
fn minted_claims_round_trip() {
    let c = TokenClaims::meeting(
        "bob",
        MEETING,
        Role::Participant,
        at(0),
        Duration::from_secs(60),
    );
    let v = verifier(VerifierConfig::default());
    let got = v
        .verify(&sign_token(&key(1), KID, &c), MEETING, at(30))
        .unwrap();
    assert_eq!(got.sub, "bob");
    assert_eq!(got.role, Role::Participant);
    assert_eq!(got.exp - got.iat, 60);
    assert!(got.jti.is_some());
}

#[test]
fn every_single_character_change_is_refused() {
    // Strict base64url (no padding, canonical trailing bits) means any one-character
    // change alters the signed bytes or fails to decode: nothing slips through.
    let t = token(&claims());
    let v = verifier(VerifierConfig::default());
    let bytes = t.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'_', b'.', b'='] {
            if bytes[i] == replacement {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = replacement;
            let m = String::from_utf8(m).unwrap();
            assert!(v.verify(&m, MEETING, at(10)).is_err(), "accepted {m}");
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let v = verifier(VerifierConfig::default());
    let good = token(&claims());
    for _ in 0..2000 {
        let len = rng.random_range(0..200);
        let s: String = (0..len)
            .map(|_| {
                let alphabet = b"AZaz09-_.=+/{}\"";
                char::from(alphabet[rng.random_range(0..alphabet.len())])
            })
            .collect();
        assert!(v.verify(&s, MEETING, at(10)).is_err());
        // Splices of a valid token.
        let cut = rng.random_range(0..good.len());
        let spliced = format!("{}{}", &good[..cut], s);
        let _ = v.verify(&spliced, MEETING, at(10));
    }
}

//! Fuzzing without the fuzzer: the committed seed corpus under
//! `fuzz/corpus/` still means what `fuzz/make_seeds.py` says it means, and every crash
//! input the fuzzers found is replayed through the same public API as its target.
//! Plain `cargo test --test fuzz_regressions`; see `fuzz/README.md` for the fuzzers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mc_service::admin::http::{parse_request, Method};
use mc_service::auth::{Jwks, JwksError, JwtError, JwtVerifier, VerifierConfig};
use mc_service::http1::ResponseParser;
use mc_service::signaling::session::{Session, SessionConfig, SessionEvent};

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "corpus", target, name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Feeds a `signaling_session` input (chunk byte, step byte, stream) to a session.
fn run_session(input: &[u8]) -> (Vec<SessionEvent>, Session) {
    let (chunk, step, stream) = match input {
        [a, b, rest @ ..] => (usize::from(*a % 64) + 1, u64::from(*b), rest),
        _ => panic!("input too short"),
    };
    let mut now = Instant::now();
    let mut s = Session::new(SessionConfig::default(), now);
    let mut events = Vec::new();
    for piece in stream.chunks(chunk) {
        s.handle_bytes(now, piece);
        now += Duration::from_millis(step);
        events.extend(std::iter::from_fn(|| s.poll_event()));
    }
    (events, s)
}

#[test]
fn signaling_seeds_decode_as_written() {
    let (events, s) = run_session(&seed("signaling_session", "join_then_every_message"));
    assert!(matches!(events.first(), Some(SessionEvent::Join { .. })));
    // Ten known cases after the join; the unknown oneof case is answered, not passed on.
    assert_eq!(events.len(), 11, "{events:?}");
    assert_eq!(s.stats().unknown_messages, 1);
    assert!(!s.is_closing());

    let (events, s) = run_session(&seed("signaling_session", "join_byte_by_byte"));
    assert_eq!(events.len(), 2);
    assert!(!s.is_closing());

    for bad in [
        "first_not_join",
        "zero_length",
        "oversize_header",
        "garbage_payload",
        "rate_burst",
    ] {
        let (_, s) = run_session(&seed("signaling_session", bad));
        assert!(s.is_closing(), "{bad} must close the session");
    }
}

#[test]
fn admin_http_seeds_parse_as_written() {
    for name in [
        "get_health",
        "get_ready_close",
        "get_metrics_query",
        "pipelined",
    ] {
        let (req, _) = parse_request(&seed("admin_http", name)).unwrap().unwrap();
        assert_eq!(req.method, Method::Get, "{name}");
    }
    let (req, _) = parse_request(&seed("admin_http", "get_metrics_query"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (req.path.as_str(), req.query.as_str()),
        ("/metrics", "name[]=mc_capacity")
    );
    let (req, _) = parse_request(&seed("admin_http", "head_http10_keepalive"))
        .unwrap()
        .unwrap();
    assert!(req.keep_alive && req.method == Method::Head);
    let (req, _) = parse_request(&seed("admin_http", "post_with_body"))
        .unwrap()
        .unwrap();
    assert_eq!(req.body_len, 5);
    assert!(parse_request(&seed("admin_http", "chunked_refused")).is_err());
}

/// Feeds a `gc_response` input (chunk byte, then bytes) and the EOF.
fn run_gc(input: &[u8]) -> Result<mc_service::http1::Response, String> {
    let (first, rest) = input.split_first().expect("non-empty");
    let mut p = ResponseParser::new();
    for piece in rest.chunks(usize::from(*first % 64) + 1) {
        if let Some(r) = p.handle_data(piece).map_err(|e| e.to_string())? {
            return Ok(r);
        }
    }
    p.handle_eof().map_err(|e| e.to_string())
}

#[test]
fn gc_response_seeds_parse_as_written() {
    for name in ["content_length", "chunked", "until_close"] {
        let r = run_gc(&seed("gc_response", name)).unwrap();
        assert_eq!(r.status, 200, "{name}");
        assert!(
            r.body.starts_with(b"{\"accepted\": true"),
            "{name}: {:?}",
            r.body
        );
    }
    assert_eq!(
        run_gc(&seed("gc_response", "continue_then_ok"))
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        run_gc(&seed("gc_response", "error_503")).unwrap().status,
        503
    );
    assert!(run_gc(&seed("gc_response", "truncated")).is_err());
}

#[test]
fn jwks_seeds_parse_as_written() {
    assert_eq!(
        Jwks::parse(&seed("jwks_parse", "one_key")).unwrap().len(),
        1
    );
    assert_eq!(
        Jwks::parse(&seed("jwks_parse", "mixed_keys"))
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        Jwks::parse(&seed("jwks_parse", "private_d")),
        Err(JwksError::BadKey { .. })
    ));
    assert!(matches!(
        Jwks::parse(&seed("jwks_parse", "duplicate_kid")),
        Err(JwksError::DuplicateKid(_))
    ));
    assert!(Jwks::parse(&seed("jwks_parse", "short_x")).is_err());
    assert!(matches!(
        Jwks::parse(&seed("jwks_parse", "empty")),
        Err(JwksError::NoUsableKey)
    ));
}

#[test]
fn jwt_seeds_verify_as_written() {
    let jwks = Arc::new(Jwks::parse(&seed("jwks_parse", "one_key")).unwrap());
    let v = JwtVerifier::new(VerifierConfig::default(), jwks);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let token = |name: &str| String::from_utf8(seed("jwt_verify", name)[1..].to_vec()).unwrap();
    let claims = v.verify(&token("raw_valid"), "meeting-1", now).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.kid.as_str()),
        ("user-1", "fuzz-key")
    );
    assert_eq!(
        v.verify(&token("raw_expired"), "meeting-1", now),
        Err(JwtError::Expired)
    );
    assert_eq!(
        v.verify(&token("raw_alg_none"), "meeting-1", now),
        Err(JwtError::BadAlg)
    );
    assert_eq!(
        v.verify(&token("raw_hs256"), "meeting-1", now),
        Err(JwtError::BadAlg)
    );
    assert!(matches!(
        v.verify(&token("raw_unknown_kid"), "meeting-1", now),
        Err(JwtError::UnknownKid(_))
    ));
    assert_eq!(
        v.verify(&token("raw_valid"), "meeting-2", now),
        Err(JwtError::WrongMeeting)
    );
}

// --- crash inputs found by the fuzzers --------------------------------------------

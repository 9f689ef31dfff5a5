//! JWKS parsing limits, file reload on change, and the sans-IO refresh schedule
//! (fake clock: a base `Instant` plus offsets).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::jwks::*;
use crate::http1::HttpUrl;

fn x_of(seed: u8) -> String {
    URL_SAFE_NO_PAD.encode(
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .as_bytes(),
    )
}

fn okp(kid: &str, seed: u8) -> serde_json::Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": x_of(seed), "kid": kid, "use": "sig", "alg": "EdDSA"})
}

fn parse(v: serde_json::Value) -> Result<Jwks, JwksError> {
    Jwks::parse(v.to_string().as_bytes())
}

/// A scratch directory unique to this test process and test name.
pub(super) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mc-auth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn parses_ed25519_keys_and_skips_others() {
    let doc = json!({"keys": [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"},
        {"kty": "OKP", "crv": "X25519", "x": x_of(9), "kid": "x25519"},
        {"kty": "OKP", "crv": "Ed25519", "x": x_of(8), "kid": "enc", "use": "enc"},
        okp("a", 1),
        {"kty": "OKP", "crv": "Ed25519", "x": x_of(2), "kid": "b"},
    ]});
    let jwks = parse(doc).unwrap();
    assert_eq!(jwks.kids(), ["a", "b"]);
    assert_eq!(
        jwks.get("a"),
        Some(&SigningKey::from_bytes(&[1; 32]).verifying_key())
    );
    assert!(jwks.get("rsa").is_none());
}

#[test]
fn refuses_bad_documents() {
    let bad_key = |patch: serde_json::Value| {
        let mut k = okp("a", 1);
        for (name, value) in patch.as_object().unwrap() {
            if value.is_null() {
                k.as_object_mut().unwrap().remove(name);
            } else {
                k[name] = value.clone();
            }
        }
        parse(json!({"keys": [k]}))
    };
    // Bad base64 (padding, wrong alphabet, garbage), wrong length, missing x.
    for x in [
        json!(format!("{}=", x_of(1))),
        json!(x_of(1).replace('-', "+").replace('_', "/") + "+/"),
        json!("%%%"),
        json!(URL_SAFE_NO_PAD.encode([7u8; 31])),
        json!(null),
        json!(5),
    ] {
        assert!(
            matches!(
                bad_key(json!({ "x": x.clone() })),
                Err(JwksError::BadKey { .. })
            ),
            "{x}"
        );
    }
    // Missing/empty kid, private key material, a small-order point.
    assert!(matches!(
        bad_key(json!({"kid": null})),
        Err(JwksError::BadKey { .. })
    ));
    assert!(matches!(
        bad_key(json!({"kid": ""})),
        Err(JwksError::BadKey { .. })
    ));
    assert!(matches!(
        bad_key(json!({"d": "AAAA"})),
        Err(JwksError::BadKey { .. })
    ));
    let identity = URL_SAFE_NO_PAD.encode({
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    });
    assert!(matches!(
        bad_key(json!({ "x": identity })),
        Err(JwksError::BadKey { .. })
    ));
    // Wrong curve only / no keys / no keys array / not JSON.
    let wrong_crv = json!({"keys": [{"kty": "OKP", "crv": "Ed448", "x": x_of(1), "kid": "a"}]});
    assert!(matches!(parse(wrong_crv), Err(JwksError::NoUsableKey)));
    assert!(matches!(
        parse(json!({"keys": []})),
        Err(JwksError::NoUsableKey)
    ));
    assert!(matches!(
        parse(json!({"kid": "a"})),
        Err(JwksError::Json(_))
    ));
    assert!(matches!(
        parse(json!([okp("a", 1)])),
        Err(JwksError::Json(_))
    ));
    assert!(matches!(
        Jwks::parse(b"{\"keys\": ["),
        Err(JwksError::Json(_))
    ));
    // Duplicate kid.
    let dup = json!({"keys": [okp("a", 1), okp("a", 2)]});
    assert!(matches!(parse(dup), Err(JwksError::DuplicateKid(_))));
}

#[test]
fn enforces_size_and_count_limits() {
    let mut big = json!({"keys": [okp("a", 1)], "pad": ""});
    big["pad"] = json!("p".repeat(MAX_JWKS_BYTES));
    assert!(matches!(parse(big), Err(JwksError::TooLarge(_))));
    let keys: Vec<_> = (0..=MAX_JWKS_KEYS)
        .map(|i| json!({"kty": "RSA", "kid": format!("r{i}")}))
        .collect();
    assert!(matches!(
        parse(json!({ "keys": keys })),
        Err(JwksError::TooManyKeys(101))
    ));
    let mut keys: Vec<_> = (0..MAX_JWKS_KEYS - 1)
        .map(|i| json!({"kty": "RSA", "kid": format!("r{i}")}))
        .collect();
    keys.push(okp("a", 1));
    assert_eq!(parse(json!({ "keys": keys })).unwrap().len(), 1);
}

#[test]
fn file_source_reloads_only_on_change() {
    let dir = scratch("jwks-reload");
    let path = dir.join("jwks.json");
    std::fs::write(&path, json!({"keys": [okp("a", 1)]}).to_string()).unwrap();
    let t0 = Instant::now();
    let mut r = JwksRefresher::new(JwksSource::File(path.clone()), RefreshPolicy::default());

    assert!(r.needs_refresh(t0, false), "first load is always due");
    let keys = r.refresh_blocking(t0, false).unwrap().unwrap();
    assert_eq!(keys.kids(), ["a"]);

    // Not due again before the file interval, then due but unchanged.
    assert!(!r.needs_refresh(t0 + Duration::from_secs(1), false));
    let t1 = t0 + FILE_CHECK_INTERVAL;
    assert!(r.needs_refresh(t1, false));
    assert!(r.refresh_blocking(t1, false).unwrap().is_none());
    assert_eq!(r.stats.unchanged, 1);

    // Rewritten (new inode via rename, as a ConfigMap update does): reloaded.
    let tmp = dir.join("jwks.json.new");
    std::fs::write(
        &tmp,
        json!({"keys": [okp("a", 1), okp("b", 2)]}).to_string(),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let t2 = t1 + FILE_CHECK_INTERVAL;
    let keys = r.refresh_blocking(t2, false).unwrap().unwrap();
    assert_eq!(keys.kids(), ["a", "b"]);

    // A broken rewrite is an error; the caller keeps the old keys.
    std::fs::write(&path, "{ not json").unwrap();
    let t3 = t2 + FILE_CHECK_INTERVAL;
    assert!(r.refresh_blocking(t3, false).is_err());
    assert_eq!(r.stats.failures, 1);
    assert!(r.has_keys());
    // A broken file is retried after min_interval, not every file_interval.
    assert!(!r.needs_refresh(t3 + FILE_CHECK_INTERVAL, false));
    let t4 = t3 + RefreshPolicy::default().min_interval;
    assert!(r.needs_refresh(t4, false));
    // A missing file is an error too.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        r.refresh_blocking(t4, false),
        Err(JwksError::File { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversize_file_is_refused() {
    let dir = scratch("jwks-oversize");
    let path = dir.join("jwks.json");
    std::fs::write(&path, vec![b' '; MAX_JWKS_BYTES + 1]).unwrap();
    let req = FetchRequest {
        source: JwksSource::File(path),
        loaded: None,
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(fetch(&req), Err(JwksError::TooLarge(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

fn url_refresher() -> JwksRefresher {
    let url = HttpUrl::parse("http://127.0.0.1:9/jwks.json").unwrap();
    JwksRefresher::new(
        JwksSource::Url(url),
        RefreshPolicy {
            min_interval: Duration::from_secs(10),
            url_interval: Duration::from_secs(300),
            ..RefreshPolicy::default()
        },
    )
}

fn loaded() -> Result<FetchOutcome, JwksError> {
    Ok(FetchOutcome::Loaded {
        jwks: parse(json!({"keys": [okp("a", 1)]})).unwrap(),
        stamp: None,
    })
}

#[test]
fn url_refresh_is_rate_limited() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut r = url_refresher();
    assert!(r.needs_refresh(t0, false));
    r.begin(t0);
    // In flight: never a second concurrent load, even for an unknown kid.
    assert!(!r.needs_refresh(t0 + s(60), true));
    assert!(r.handle_fetched(t0 + s(1), loaded()).unwrap().is_some());

    // Unknown kids: at most one load per min_interval, however many arrive.
    assert!(!r.needs_refresh(t0 + s(1), true));
    assert!(!r.needs_refresh(t0 + s(9), true));
    assert!(r.needs_refresh(t0 + s(10), true));
    r.begin(t0 + s(10));
    r.handle_fetched(t0 + s(10), loaded()).unwrap();
    let mut loads = 0;
    for i in 0..1000u64 {
        let now = t0 + s(10) + Duration::from_millis(i * 10); // 10 s of kid floods
        if r.needs_refresh(now, true) {
            r.begin(now);
            r.handle_fetched(now, loaded()).unwrap();
            loads += 1;
        }
    }
    assert_eq!(loads, 0, "a flood within min_interval triggers nothing");
    assert!(r.needs_refresh(t0 + s(20), true));

    // Without unknown kids: periodic, every url_interval.
    assert!(!r.needs_refresh(t0 + s(20), false));
    assert!(!r.needs_refresh(t0 + s(309), false));
    assert!(r.needs_refresh(t0 + s(310), false));
}

#[test]
fn failed_url_load_retries_after_min_interval() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut r = url_refresher();
    r.begin(t0);
    let err = JwksError::Status(503);
    assert!(r.handle_fetched(t0, Err(err)).is_err());
    assert!(!r.has_keys());
    assert!(!r.needs_refresh(t0 + s(9), false));
    assert!(
        r.needs_refresh(t0 + s(10), false),
        "no keys yet: retry soon"
    );
    r.begin(t0 + s(10));
    r.handle_fetched(t0 + s(10), loaded()).unwrap();
    assert!(
        !r.needs_refresh(t0 + s(20), false),
        "keys loaded: back to periodic"
    );
    assert_eq!(r.stats.failures, 1);
    assert_eq!(r.stats.loads, 1);
}

#[test]
fn url_fetch_over_loopback() {
    use std::io::{Read as _, Write as _};
    let body = json!({"keys": [okp("u", 3)]}).to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = [0u8; 2048];
        let _ = s.read(&mut req).unwrap();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
    });
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/jwks.json")).unwrap();
    let mut r = JwksRefresher::new(JwksSource::Url(url), RefreshPolicy::default());
    let keys = r.refresh_blocking(Instant::now(), false).unwrap().unwrap();
    assert_eq!(keys.kids(), ["u"]);
    server.join().unwrap();
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let good = json!({"keys": [okp("a", 1)]}).to_string();
    for _ in 0..2000 {
        let mut doc = good.clone().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..doc.len());
            doc[i] = rng.random();
        }
        let _ = Jwks::parse(&doc);
    }
}

/// A join that asked for a reload stops waiting once the refresher has dealt with the
/// request, new keys or not: here the reload is declined by the rate limit (the file
/// was loaded a moment ago), and the answer still comes at once, not at the join's
/// give-up time. The refresher's counters reach the reporter after each load.
#[test]
fn a_reload_the_rate_limit_declines_is_still_answered() {
    use crate::auth::keystore::KeyStore;
    let dir = scratch("jwks-answered");
    let path = dir.join("jwks.json");
    std::fs::write(&path, json!({"keys": [okp("a", 1)]}).to_string()).unwrap();
    let policy = RefreshPolicy {
        min_interval: Duration::from_secs(3600),
        ..RefreshPolicy::default()
    };
    let store = KeyStore::new(std::sync::Arc::new(Jwks::empty()));
    let (tx, rx) = std::sync::mpsc::channel();
    let loaded = store
        .spawn_refresher(
            JwksRefresher::new(JwksSource::File(path), policy),
            move |s| {
                let _ = tx.send(s);
            },
        )
        .unwrap();
    assert_eq!(loaded, Ok(1));
    assert_eq!(rx.recv().unwrap().loads, 1, "the first load is reported");
    let (generation, answered) = (store.generation(), store.answered());
    store.request_refresh();
    let deadline = Instant::now() + Duration::from_secs(3);
    while store.answered() == answered {
        assert!(Instant::now() < deadline, "the request was never answered");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.generation(), generation, "declined: no new keys");
}

//! Fake-clock tests for every rule of [`GcClient`] (docs/gc-api.md).

use super::*;
use crate::http1::{HttpError, Response};

const SEC: Duration = Duration::from_secs(1);

fn config() -> GcClientConfig {
    GcClientConfig {
        id: "mc-test".into(),
        region: "us-west-2".into(),
        capacity: 100,
        webtransport_endpoint: "https://10.0.3.7:4433".into(),
        http_endpoint: "http://10.0.3.7:8080".into(),
        shards: 4,
        version: "0.1.0".into(),
        urls: GcUrls::derive("http://gc:8080/api/v1/mc/register", None).unwrap(),
        heartbeat_interval: 10 * SEC,
        backoff_min: BACKOFF_MIN,
        backoff_max: BACKOFF_MAX,
    }
}

fn resp(status: u16, body: &str) -> Result<Response, GcError> {
    Ok(Response {
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    })
}

fn refused() -> Result<Response, GcError> {
    Err(GcError::Http(HttpError::Connect {
        addr: "10.0.0.1:8080".into(),
        reason: "connection refused".into(),
    }))
}

const ACCEPTED: &str = r#"{"accepted":true,"status":"active"}"#;

fn events(c: &mut GcClient) -> Vec<GcEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn body_json(a: &GcAction) -> serde_json::Value {
    serde_json::from_str(a.body()).unwrap()
}

/// A client registered at `t0` (interval 10 s).
fn registered(t0: Instant) -> GcClient {
    let mut c = GcClient::new(config(), t0, 7);
    let a = c.poll_action(t0).unwrap();
    c.handle_response(t0, a.kind(), resp(201, ACCEPTED));
    assert!(c.registered());
    events(&mut c);
    c
}

#[test]
fn registers_at_once_with_the_documented_body() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 1);
    assert_eq!(c.poll_timeout(), Some(t0));
    let a = c.poll_action(t0).unwrap();
    assert_eq!(a.kind(), ActionKind::Register);
    assert_eq!(a.url().as_str(), "http://gc:8080/api/v1/mc/register");
    assert_eq!(
        body_json(&a),
        serde_json::json!({"id": "mc-test", "region": "us-west-2", "capacity": 100,
            "webtransport_endpoint": "https://10.0.3.7:4433",
            "http_endpoint": "http://10.0.3.7:8080", "shards": 4, "version": "0.1.0"})
    );
    // One request at a time.
    assert_eq!(c.poll_action(t0), None);
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.registered());
    c.handle_response(t0, ActionKind::Register, resp(200, ACCEPTED));
    assert!(c.registered());
    assert_eq!(
        events(&mut c),
        vec![
            GcEvent::Registering { attempt: 0 },
            GcEvent::Registered {
                heartbeat_interval: 10 * SEC
            }
        ]
    );
    assert_eq!(c.poll_timeout(), Some(t0 + 10 * SEC));
}

#[test]
fn urls_are_derived_or_explicit() {
    let u = GcUrls::derive("http://gc/api/v1/mc/register", None).unwrap();
    assert_eq!(u.heartbeat.as_str(), "http://gc/api/v1/mc/heartbeat");
    assert_eq!(u.deregister.as_str(), "http://gc/api/v1/mc/deregister");
    let u = GcUrls::derive("http://gc/reg", Some("http://gc2/x/heartbeat")).unwrap();
    assert_eq!(u.heartbeat.as_str(), "http://gc2/x/heartbeat");
    assert_eq!(u.deregister.as_str(), "http://gc2/x/deregister");
    assert!(matches!(
        GcUrls::derive("http://gc/reg", None),
        Err(GcError::Config { .. })
    ));
    assert!(matches!(
        GcUrls::derive("https://gc/register", None),
        Err(GcError::Config { .. })
    ));
}

#[test]
fn backoff_grows_from_1s_to_30s_with_jitter_and_never_gives_up() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 42);
    let mut now = t0;
    let mut delays = vec![];
    for _ in 0..200 {
        let a = c.poll_action(now).unwrap();
        c.handle_response(now, a.kind(), refused());
        let next = c.poll_timeout().unwrap();
        let d = next - now;
        assert!((SEC..=30 * SEC).contains(&d), "{d:?}");
        // Not early: nothing to do before the deadline.
        assert_eq!(c.poll_action(next - Duration::from_millis(1)), None);
        delays.push(d);
        now = next;
    }
    // Growth: attempt n is within ±20 % of 2^n seconds until the cap.
    for (n, d) in delays.iter().take(5).enumerate() {
        let base = (1u64 << n) as f64;
        let s = d.as_secs_f64();
        assert!(
            s >= (base * 0.8).max(1.0) && s < base * 1.2,
            "attempt {n}: {s}"
        );
    }
    assert!(
        delays[10..].iter().all(|d| *d >= 24 * SEC),
        "capped near 30 s"
    );
    // Jitter: the capped delays are not all equal.
    assert!(delays[10..].iter().any(|d| *d != delays[10]));
    assert_eq!(c.stats().registrations_failed, 200);
    assert!(!c.registered());
    let evs = events(&mut c);
    assert!(evs
        .iter()
        .any(|e| matches!(e, GcEvent::RegistrationFailed { .. })));
    // Still trying after 200 failures; a success resets the backoff.
    let a = c.poll_action(now).unwrap();
    c.handle_response(now, a.kind(), resp(200, ACCEPTED));
    assert!(c.registered());
}

#[test]
fn jitter_depends_on_the_seed_and_is_deterministic() {
    let first_delay = |seed| {
        let t0 = Instant::now();
        let mut c = GcClient::new(config(), t0, seed);
        for _ in 0..5 {
            let a = c.poll_action(c.poll_timeout().unwrap()).unwrap();
            c.handle_response(t0, a.kind(), refused());
        }
        c.poll_timeout().unwrap() - t0
    };
    assert_eq!(first_delay(3), first_delay(3));
    assert!((1..50).any(|s| first_delay(s) != first_delay(3)));
}

#[test]
fn refusal_with_reason_is_reported_counted_and_retried() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 1);
    let a = c.poll_action(t0).unwrap();
    c.handle_response(
        t0,
        a.kind(),
        resp(400, r#"{"accepted":false,"reason":"bad region"}"#),
    );
    let evs = events(&mut c);
    let GcEvent::RegistrationRefused {
        status,
        reason,
        retry_in,
    } = &evs[1]
    else {
        panic!("{evs:?}")
    };
    assert_eq!((*status, reason.as_deref()), (400, Some("bad region")));
    assert_eq!(c.poll_timeout(), Some(t0 + *retry_in));
    // 2xx with accepted:false is a refusal too; 5xx retried the same way.
    let now = t0 + *retry_in;
    let a = c.poll_action(now).unwrap();
    c.handle_response(
        now,
        a.kind(),
        resp(200, r#"{"accepted":false,"reason":"full"}"#),
    );
    let a = c.poll_action(c.poll_timeout().unwrap()).unwrap();
    c.handle_response(now, a.kind(), resp(503, "busy"));
    assert_eq!(c.stats().registrations_refused, 3);
    assert!(!c.registered());
    assert!(c.poll_timeout().unwrap() - now >= 2 * SEC);
}

#[test]
fn adopts_the_gcs_heartbeat_interval() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 1);
    let a = c.poll_action(t0).unwrap();
    c.handle_response(
        t0,
        a.kind(),
        resp(201, r#"{"accepted":true,"heartbeat_interval_secs":3}"#),
    );
    assert_eq!(c.heartbeat_interval(), 3 * SEC);
    assert_eq!(c.poll_timeout(), Some(t0 + 3 * SEC));
    // A nonsense interval is ignored.
    let mut c = GcClient::new(config(), t0, 1);
    let a = c.poll_action(t0).unwrap();
    c.handle_response(
        t0,
        a.kind(),
        resp(201, r#"{"accepted":true,"heartbeat_interval_secs":0}"#),
    );
    assert_eq!(c.heartbeat_interval(), 10 * SEC);
}

#[test]
fn heartbeats_every_interval_with_load_and_own_status() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    assert_eq!(c.poll_action(t0 + 9 * SEC), None);
    c.set_load(Load {
        meetings: 12,
        sessions: 57,
        participants: 56,
    });
    let t1 = t0 + 10 * SEC;
    let a = c.poll_action(t1).unwrap();
    assert_eq!(a.url().as_str(), "http://gc:8080/api/v1/mc/heartbeat");
    assert_eq!(
        body_json(&a),
        serde_json::json!({"id": "mc-test", "status": "active", "capacity": 100,
            "current_meetings": 12, "current_sessions": 57, "current_participants": 56})
    );
    c.handle_response(
        t1,
        a.kind(),
        resp(200, r#"{"acknowledged":true,"status":"active"}"#),
    );
    assert_eq!(events(&mut c), vec![GcEvent::HeartbeatOk]);
    assert_eq!(c.poll_timeout(), Some(t1 + 10 * SEC));
    // Failures are counted, keep the registration, and retry next interval.
    let t2 = t1 + 10 * SEC;
    let a = c.poll_action(t2).unwrap();
    c.handle_response(
        t2,
        a.kind(),
        Err(GcError::Http(HttpError::Timeout(5 * SEC))),
    );
    let t3 = t2 + 10 * SEC;
    let a = c.poll_action(t3).unwrap();
    c.handle_response(t3, a.kind(), resp(500, ""));
    assert!(c.registered());
    assert_eq!(c.poll_timeout(), Some(t3 + 10 * SEC));
    let s = c.stats();
    assert_eq!((s.heartbeats_ok, s.heartbeats_failed), (1, 2));
}

#[test]
fn heartbeat_404_registers_again_at_once() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    let t1 = t0 + 10 * SEC;
    let a = c.poll_action(t1).unwrap();
    c.handle_response(t1, a.kind(), resp(404, r#"{"error":"unknown"}"#));
    assert!(!c.registered());
    assert!(events(&mut c).contains(&GcEvent::UnknownToGc));
    assert_eq!(c.poll_timeout(), Some(t1));
    let a = c.poll_action(t1).unwrap();
    assert_eq!(a.kind(), ActionKind::Register);
    assert_eq!(events(&mut c), vec![GcEvent::Registering { attempt: 0 }]);
    c.handle_response(t1, a.kind(), resp(201, ACCEPTED));
    assert!(c.registered());
    assert_eq!(c.stats().unknown_to_gc, 1);
}

/// A GC that accepts every registration and answers every heartbeat 404 (replicas that
/// share nothing): the first 404 registers again at once, the next ones after the
/// registration backoff, growing (1 s, 2 s, ... ±20 %). A draining MC heartbeats at once
/// after registering, and went round as fast as the GC answered.
#[test]
fn heartbeat_404_again_after_registering_backs_off() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    c.start_draining();
    let mut now = t0;
    let mut registers = Vec::new();
    for _ in 0..8 {
        let Some(t) = c.poll_timeout() else {
            panic!("nothing due")
        };
        now = now.max(t);
        let a = c.poll_action(now).expect("an action due");
        match a.kind() {
            ActionKind::Register => {
                registers.push(now - t0);
                c.handle_response(now, a.kind(), resp(201, ACCEPTED));
            }
            ActionKind::Heartbeat => c.handle_response(now, a.kind(), resp(404, "")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(registers.len(), 4, "{registers:?}");
    // The first at once, then the backoff: 1 s, 2 s, 4 s (± 20 %).
    for (n, doubling) in [(1, 1), (2, 2), (3, 4)] {
        assert!(
            registers[n] >= registers[n - 1] + (BACKOFF_MIN * doubling).mul_f64(0.8),
            "{registers:?}"
        );
    }
    // A heartbeat that succeeds forgets the 404s: the next one registers at once again.
    let t = c.poll_timeout().unwrap().max(now);
    let a = c.poll_action(t).unwrap();
    assert_eq!(a.kind(), ActionKind::Heartbeat);
    c.handle_response(t, a.kind(), resp(200, r#"{"status":"draining"}"#));
    let t = c.poll_timeout().unwrap();
    let a = c.poll_action(t).unwrap();
    c.handle_response(t, a.kind(), resp(404, ""));
    assert_eq!(c.poll_timeout(), Some(t));
}

#[test]
fn gc_draining_view_both_ways() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    assert!(!c.gc_says_draining());
    let mut now = t0;
    for (gc_status, expect, event) in [
        ("draining", true, Some(GcEvent::GcDraining(true))),
        ("draining", true, None),
        ("weird", true, None),
        ("active", false, Some(GcEvent::GcDraining(false))),
    ] {
        now += 10 * SEC;
        let a = c.poll_action(now).unwrap();
        // The MC's own status stays active: the GC's view is separate.
        assert_eq!(body_json(&a)["status"], "active");
        c.handle_response(
            now,
            a.kind(),
            resp(200, &format!(r#"{{"status":"{gc_status}"}}"#)),
        );
        assert_eq!(c.gc_says_draining(), expect, "{gc_status}");
        let evs = events(&mut c);
        assert_eq!(evs.get(1).cloned(), event, "{evs:?}");
    }
    // A registration reply can carry an operator's draining too.
    let mut c = GcClient::new(config(), t0, 1);
    let a = c.poll_action(t0).unwrap();
    c.handle_response(
        t0,
        a.kind(),
        resp(200, r#"{"accepted":true,"status":"draining"}"#),
    );
    assert!(c.gc_says_draining());
}

#[test]
fn start_draining_heartbeats_at_once_with_draining() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    let t1 = t0 + 3 * SEC;
    assert_eq!(c.poll_action(t1), None);
    c.start_draining();
    assert!(c.is_draining());
    assert_eq!(c.poll_timeout(), Some(t1));
    let a = c.poll_action(t1).unwrap();
    assert_eq!(body_json(&a)["status"], "draining");
}

#[test]
fn draining_during_an_in_flight_heartbeat_is_reported_right_after() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    let t1 = t0 + 10 * SEC;
    let a = c.poll_action(t1).unwrap();
    assert_eq!(body_json(&a)["status"], "active");
    c.start_draining();
    let t2 = t1 + SEC;
    c.handle_response(t2, a.kind(), resp(200, r#"{"status":"active"}"#));
    assert_eq!(c.poll_timeout(), Some(t2));
    let a = c.poll_action(t2).unwrap();
    assert_eq!(body_json(&a)["status"], "draining");
    c.handle_response(t2, a.kind(), resp(200, r#"{"status":"active"}"#));
    assert_eq!(c.poll_timeout(), Some(t2 + 10 * SEC));
}

#[test]
fn shutdown_sends_one_deregister_then_done() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    c.shutdown();
    let a = c.poll_action(t0).unwrap();
    assert_eq!(a.kind(), ActionKind::Deregister);
    assert_eq!(a.url().as_str(), "http://gc:8080/api/v1/mc/deregister");
    assert_eq!(body_json(&a), serde_json::json!({"id": "mc-test"}));
    assert_eq!(c.poll_action(t0), None);
    c.shutdown();
    c.handle_response(
        t0,
        a.kind(),
        Err(GcError::Http(HttpError::Timeout(2 * SEC))),
    );
    assert!(c.is_done());
    assert_eq!(events(&mut c), vec![GcEvent::Deregistered { ok: false }]);
    assert_eq!(c.poll_action(t0 + 100 * SEC), None);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn shutdown_while_a_request_is_in_flight_waits_for_it() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 1);
    let a = c.poll_action(t0).unwrap();
    c.shutdown();
    assert_eq!(c.poll_action(t0), None);
    c.handle_response(t0, a.kind(), Err(GcError::Cancelled));
    // A stale response for something not in flight is ignored.
    c.handle_response(t0, ActionKind::Heartbeat, resp(404, ""));
    let d = c.poll_action(t0).unwrap();
    assert_eq!(d.kind(), ActionKind::Deregister);
    c.handle_response(t0, d.kind(), resp(200, "{}"));
    assert!(c.is_done());
    assert!(events(&mut c).contains(&GcEvent::Deregistered { ok: true }));
}

#[test]
fn a_heartbeat_cancelled_by_shutdown_is_not_a_failure() {
    // The drain's heartbeat is in flight when the process starts to stop: the driver
    // abandons it before it has told the client to shut down.
    let t0 = Instant::now();
    let mut c = registered(t0);
    let a = c.poll_action(t0 + 10 * SEC).unwrap();
    assert_eq!(a.kind(), ActionKind::Heartbeat);
    c.handle_response(t0 + 10 * SEC, a.kind(), Err(GcError::Cancelled));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.stats().heartbeats_failed, 0);
    let d = c.poll_action(t0 + 10 * SEC).unwrap();
    assert_eq!(d.kind(), ActionKind::Deregister);
    c.handle_response(t0 + 10 * SEC, d.kind(), resp(200, "{}"));
    assert!(c.is_done());
}

#[test]
fn a_cancelled_deregistration_still_ends_the_client() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    c.shutdown();
    let d = c.poll_action(t0).unwrap();
    assert_eq!(d.kind(), ActionKind::Deregister);
    c.handle_response(t0, d.kind(), Err(GcError::Cancelled));
    assert_eq!(events(&mut c), vec![GcEvent::Deregistered { ok: false }]);
    assert!(c.is_done());
}

#[test]
fn hostile_replies_do_not_panic() {
    let t0 = Instant::now();
    let mut c = GcClient::new(config(), t0, 1);
    let long = "x".repeat(10_000);
    for body in ["", "null", "[]", "{", r#"{"accepted":"yes"}"#, &long] {
        let a = c.poll_action(c.poll_timeout().unwrap()).unwrap();
        c.handle_response(t0, a.kind(), resp(200, body));
    }
    let a = c.poll_action(c.poll_timeout().unwrap()).unwrap();
    let reason = format!(r#"{{"accepted":false,"reason":"{long}"}}"#);
    c.handle_response(t0, a.kind(), resp(403, &reason));
    let evs = events(&mut c);
    let Some(GcEvent::RegistrationRefused {
        reason: Some(r), ..
    }) = evs.last()
    else {
        panic!("{evs:?}")
    };
    assert!(r.chars().count() <= MAX_REASON_CHARS + 1);
    assert!(!c.registered());
    let a = c.poll_action(c.poll_timeout().unwrap()).unwrap();
    c.handle_response(t0, a.kind(), Err(GcError::Http(HttpError::Truncated)));
    assert_eq!(c.stats().registrations_failed, 1);
}

//! The handshake deadline, against an in-memory client (`crate::testing::Pair`) that
//! never hears the server, so never completes its handshake, and keeps sending to it.

use std::time::{Duration, Instant};

use crate::quic::QuicArgs;
use crate::testing::Pair;

/// `mc_refusals_total{reason="handshake_timeout"}`.
fn handshake_timeouts(p: &Pair) -> u64 {
    p.fixtures
        .registry
        .refusals_total
        .with_label_values(&["handshake_timeout"])
        .get()
}

/// Move the clock `d` on in 250 ms steps, the client sending a PING every two seconds.
fn ping_for(p: &mut Pair, d: Duration, last_ping: &mut Instant) {
    let until = p.now + d;
    while p.now < until {
        if p.now >= *last_ping + Duration::from_secs(2) {
            p.client.ping();
            *last_ping = p.now;
        }
        p.advance(Duration::from_millis(250).min(until - p.now));
    }
}

#[test]
fn a_handshake_kept_alive_by_pings_is_closed_at_its_deadline() {
    let mut p = Pair::new(QuicArgs {
        idle_timeout_secs: 3,
        ..QuicArgs::default()
    });
    // The client's Initial reaches the server; the server's answer never reaches the
    // client, which therefore never sends its Finished.
    p.drop_to_client = true;
    p.drive();
    let started = p
        .server
        .as_ref()
        .expect("the client's Initial arrived")
        .1
        .started;
    let deadline = started + Duration::from_millis(10_000);
    let mut last_ping = p.now;

    // Past the idle timeout (3 s), the client's packets (its PINGs, its Initial sent
    // again) keep the connection open, still handshaking.
    ping_for(&mut p, Duration::from_millis(9_750), &mut last_ping);
    let conn = &mut p.server.as_mut().unwrap().1;
    assert!(conn.handshaking, "the handshake cannot have completed");
    assert!(
        !conn.quic.is_closed(),
        "closed before the handshake deadline"
    );
    // The shard's timer wheel learns of the deadline through poll_timeout.
    assert!(
        conn.poll_timeout().is_some_and(|t| t <= deadline),
        "poll_timeout {:?} is later than the handshake deadline",
        conn.poll_timeout().map(|t| t - started)
    );
    assert_eq!(handshake_timeouts(&p), 0);

    // At the deadline the server closes it and counts the refusal once.
    ping_for(&mut p, Duration::from_millis(250), &mut last_ping);
    assert_eq!(p.now, deadline);
    let conn = &mut p.server.as_mut().unwrap().1;
    assert!(
        conn.quic.is_closed(),
        "still open at the handshake deadline"
    );
    assert!(conn.handshaking);
    assert!(
        conn.poll_timeout().is_none_or(|t| t > deadline),
        "a deadline that fired is not due again"
    );
    assert_eq!(handshake_timeouts(&p), 1);

    // It drains three probe timeouts later (about 3 s without an RTT sample); the shard
    // then forgets it, which gives its handshake slot and address count back.
    for _ in 0..20 {
        if p.server_drained {
            break;
        }
        p.advance(Duration::from_millis(250));
    }
    assert!(p.server_drained, "not drained 5 s after it was closed");
    assert_eq!(handshake_timeouts(&p), 1);
}

#[test]
fn a_completed_handshake_outlives_the_handshake_deadline() {
    let mut p = Pair::new(QuicArgs {
        handshake_timeout_ms: 1_000,
        connect_timeout_ms: 60_000,
        ..QuicArgs::default()
    });
    p.drive();
    assert!(!p.server.as_ref().unwrap().1.handshaking);
    for _ in 0..20 {
        p.advance(Duration::from_millis(250));
    }
    assert!(!p.server_closed());
    assert_eq!(handshake_timeouts(&p), 0);
}

/// A connection its client's limit refuses when the handshake completes (connections
/// from a proven address came in meanwhile) is closed at once with H3_EXCESSIVE_LOAD and
/// counted; nothing else it sent is handled, and no session starts.
#[test]
fn a_connection_refused_at_completion_is_closed_before_anything_else() {
    let mut p = Pair::new(QuicArgs::default());
    p.admit = false;
    p.drive();
    let (_, conn) = p.server.as_ref().expect("server connection");
    assert!(!conn.handshaking);
    assert!(matches!(conn.app, crate::conn::App::None));
    assert!(p.server_closed());
    let refused = p
        .fixtures
        .registry
        .refusals_total
        .with_label_values(&["max_sessions_per_ip"])
        .get();
    assert_eq!(refused, 1);
    let mut closed_with = None;
    while let Some(ev) = p.client.poll() {
        if let quinn_proto::Event::ConnectionLost {
            reason: quinn_proto::ConnectionError::ApplicationClosed(close),
        } = ev
        {
            closed_with = Some(close.error_code.into_inner());
        }
    }
    assert_eq!(closed_with, Some(crate::h3::code::H3_EXCESSIVE_LOAD));
}

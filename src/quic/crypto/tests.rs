//! The session's keys, key updates and refusals, on a client and server in memory.

use std::time::{Duration, SystemTime};

use quinn_proto::{ConnectionError, Event};

use super::*;
use crate::quic::QuicArgs;
use crate::testing::Pair;

fn connected(pair: &mut Pair) -> &crate::conn::Conn {
    pair.drive();
    let (_, conn) = pair.server.as_ref().expect("the server accepted");
    assert!(!conn.handshaking, "the handshake completed");
    conn
}

#[test]
fn a_connection_knows_where_its_one_rtt_keys_live() {
    let mut pair = Pair::new(QuicArgs::default());
    let conn = connected(&mut pair);
    let KeyLines { send, receive } = conn.keys;
    for spans in [send, receive] {
        // quinn-proto's boxes hold rustls's boxed keys (a pointer and a vtable)...
        assert_eq!(spans[0].len, 16);
        assert_eq!(spans[2].len, 16);
        // ...which hold the keys themselves: an AES key schedule at least.
        assert!(spans[1].len >= 176, "{spans:?}");
        assert!(spans[3].len >= 176, "{spans:?}");
        assert!(spans.iter().all(|s| s.addr != 0));
    }
    let mut addrs: Vec<usize> = send.iter().chain(&receive).map(|s| s.addr).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 8, "eight distinct objects");
}

#[test]
fn key_updates_move_the_packet_keys_and_the_copy_follows() {
    let mut pair = Pair::new(QuicArgs::default());
    let mut before = connected(&mut pair).keys;
    // The client's update, then the server's own.
    for by_client in [true, false] {
        if by_client {
            pair.client.force_key_update();
        } else if let Some((_, conn)) = pair.server.as_mut() {
            conn.quic.force_key_update();
            conn.quic.ping();
        }
        pair.client.ping();
        pair.drive();
        // The copy waits for the timer that drops the retired keys.
        pair.advance(Duration::from_secs(1));
        let (_, conn) = pair.server.as_ref().expect("server");
        assert!(!conn.quic.is_closed());
        let after = conn.keys;
        assert_eq!(after, conn.keys_at.as_ref().expect("noted").get());
        for (b, a) in [(before.send, after.send), (before.receive, after.receive)] {
            assert_eq!(a[..2], b[..2], "header keys stay");
            assert_ne!(a[2].addr, b[2].addr, "a new packet key box");
            assert_ne!(a[3].addr, b[3].addr, "a new packet key");
            assert_eq!((a[2].len, a[3].len), (b[2].len, b[3].len));
        }
        before = after;
    }
}

#[test]
fn the_session_reports_what_rustls_negotiated() {
    let mut pair = Pair::new(QuicArgs::default());
    let conn = connected(&mut pair);
    let data = conn
        .quic
        .crypto_session()
        .handshake_data()
        .expect("handshake data")
        .downcast::<HandshakeData>()
        .expect("quinn-proto's rustls handshake data");
    assert_eq!(data.protocol.as_deref(), Some(&b"h3"[..]));
    assert_eq!(data.server_name.as_deref(), Some("localhost"));
    assert!(
        conn.quic.crypto_session().peer_identity().is_none(),
        "no client certificates"
    );
    // Both sides export the same keying material (RFC 5705).
    let mut ours = [0u8; 32];
    let mut theirs = [0u8; 32];
    conn.quic
        .crypto_session()
        .export_keying_material(&mut ours, b"label", b"context")
        .expect("exported");
    pair.client
        .crypto_session()
        .export_keying_material(&mut theirs, b"label", b"context")
        .expect("exported");
    assert_eq!(ours, theirs);
    assert_ne!(ours, [0; 32]);
}

#[test]
fn a_client_without_h3_is_refused_with_the_tls_alert() {
    let mut pair = Pair::with_client(QuicArgs::default(), b"h2", 1);
    pair.drive();
    let mut lost = None;
    while let Some(ev) = pair.client.poll() {
        if let Event::ConnectionLost { reason } = ev {
            lost = Some(reason);
        }
    }
    // RFC 9001 §4.8: the no_application_protocol alert (120) as CRYPTO_ERROR.
    match lost {
        Some(ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(close.error_code, TransportErrorCode::crypto(120));
        }
        other => panic!("expected the server's CONNECTION_CLOSE, got {other:?}"),
    }
}

#[test]
fn a_draft_version_gets_quinn_protos_session() {
    let mut pair = Pair::with_client(QuicArgs::default(), b"h3", 0xff00_001d);
    let conn = connected(&mut pair);
    assert!(conn.keys_at.is_none());
    assert_eq!(
        conn.keys,
        KeyLines::default(),
        "nothing noted, nothing fetched"
    );
    assert!(pair.client.crypto_session().handshake_data().is_some());
}

#[test]
fn a_configuration_quic_cannot_use_is_refused_at_startup() {
    let material = crate::tls::generate_material(SystemTime::now()).expect("material");
    let build = || {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(material.certs.clone(), material.key.clone_key())
        .expect("certificate")
    };
    assert!(ServerCrypto::new(build()).is_ok());
    let mut early = build();
    early.max_early_data_size = 1024;
    let err = ServerCrypto::new(early).err().expect("refused");
    assert!(err.contains("early data"), "{err}");
}

//! Session machine tests with a fake clock (docs/protocol.md rules 4, 5, 12).
use std::time::Duration;

use super::*;
use crate::signaling::codec::encode_frame;
use prost::Message;

fn wire(msgs: &[ClientMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        encode_frame(m, &mut out, DEFAULT_MAX_FRAME).unwrap();
    }
    out
}

fn join() -> ClientMessage {
    ClientMessage::of(client_message::Message::JoinRequest(pb::JoinRequest {
        meeting_id: "m".into(),
        join_token: "t".into(),
        ..Default::default()
    }))
}

fn mute() -> ClientMessage {
    ClientMessage::of(client_message::Message::MuteRequest(pb::MuteRequest {
        audio_muted: true,
        video_muted: false,
    }))
}

/// Drains the outbound bytes and decodes the server messages in them.
fn drain(s: &mut Session) -> Vec<ServerMessage> {
    let mut bytes = Vec::new();
    while let Some(b) = s.poll_transmit() {
        let n = b.len().min(3); // write in awkward pieces
        bytes.extend_from_slice(&b[..n]);
        s.advance_transmit(n);
    }
    let mut d = FrameDecoder::default();
    d.push(&bytes);
    let mut v = Vec::new();
    while let Some(m) = d.next_message::<ServerMessage>().unwrap() {
        v.push(m);
    }
    v
}

fn error_code(m: &ServerMessage) -> Option<i32> {
    match &m.message {
        Some(pb::server_message::Message::Error(e)) => Some(e.code),
        _ => None,
    }
}

#[test]
fn close_codes_match_rule_5() {
    let codes: Vec<u32> = [
        CloseCode::Normal,
        CloseCode::ProtocolViolation,
        CloseCode::Unauthorized,
        CloseCode::Capacity,
        CloseCode::Draining,
        CloseCode::SlowConsumer,
        CloseCode::RateLimited,
        CloseCode::Replaced,
    ]
    .iter()
    .map(|c| c.code())
    .collect();
    assert_eq!(
        codes,
        vec![0, 0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106]
    );
}

#[test]
fn first_frame_join_then_messages() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    let mut w = wire(&[join()]);
    w.extend(wire(&[mute()]));
    s.handle_bytes(t0, &w[..5]);
    assert_eq!(s.poll_event(), None);
    s.handle_bytes(t0, &w[5..]);
    assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
    // Decoded when asked for, once the join has been taken.
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(mute())));
    assert_eq!(s.poll_close(), None);
}

/// Trace context within W3C's lengths goes on with the message; longer is dropped and
/// the message still goes on (rule 1).
#[test]
fn trace_context_beyond_w3c_lengths_is_dropped() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    let traced = |parent: usize, state: usize| ClientMessage {
        trace_parent: "p".repeat(parent),
        trace_state: "s".repeat(state),
        ..mute()
    };
    let mut w = wire(&[join()]);
    w.extend(wire(&[
        traced(MAX_TRACE_PARENT, MAX_TRACE_STATE),
        traced(MAX_TRACE_PARENT + 1, 30_000),
    ]));
    s.handle_bytes(t0, &w);
    assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::Message(traced(
            MAX_TRACE_PARENT,
            MAX_TRACE_STATE
        )))
    );
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(mute())));
    assert_eq!(s.poll_close(), None);
}

#[test]
fn non_join_first_message_is_invalid_request_then_close() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    s.handle_bytes(t0, &wire(&[mute(), join()]));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_close(), None, "error frame must be flushed first");
    let out = drain(&mut s);
    assert_eq!(error_code(&out[0]), Some(ErrorCode::InvalidRequest as i32));
    assert_eq!(out.len(), 1);
    assert_eq!(s.poll_close(), Some(CloseCode::ProtocolViolation));
}

#[test]
fn unknown_oneof_case_answers_and_stays_up() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    s.handle_bytes(t0, &wire(&[join()]));
    // Field 12 is not in v1's oneof: prost skips it, leaving `message` empty.
    let unknown = [0x62u8, 0x00];
    let mut w = (unknown.len() as u32).to_be_bytes().to_vec();
    w.extend_from_slice(&unknown);
    w.extend(wire(&[mute()]));
    s.handle_bytes(t0, &w);
    assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(mute())));
    let out = drain(&mut s);
    assert_eq!(error_code(&out[0]), Some(ErrorCode::InvalidRequest as i32));
    assert_eq!(s.poll_close(), None);
    assert_eq!(s.stats().unknown_messages, 1);
}

#[test]
fn framing_violations_close_with_0x100() {
    // A session closed for a framing violation: an ErrorMessage, then close 0x100.
    let closed_for = |s: &mut Session, bad: &[u8]| {
        assert!(s.is_closing());
        let _ = drain(s);
        assert_eq!(
            s.poll_close(),
            Some(CloseCode::ProtocolViolation),
            "{bad:?}"
        );
        assert_eq!(s.poll_close().map(CloseCode::code), Some(0x100));
    };
    for bad in [
        vec![0u8, 0, 0, 0],
        vec![0, 1, 0, 1],
        vec![0, 0, 0, 2, 0xFF, 0xFF],
    ] {
        let t0 = Instant::now();
        let mut s = Session::new(SessionConfig::default(), t0);
        s.handle_bytes(t0, &wire(&[join()]));
        assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
        s.handle_bytes(t0, &bad);
        closed_for(&mut s, &bad);

        // The same bytes behind the join in one read: decoding stops at the join, and
        // the violation shows once the join has been taken, as in a later read.
        let mut s = Session::new(SessionConfig::default(), t0);
        let mut both = wire(&[join()]);
        both.extend_from_slice(&bad);
        s.handle_bytes(t0, &both);
        assert!(!s.is_closing());
        assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
        assert_eq!(s.poll_event(), None);
        closed_for(&mut s, &bad);
    }
}

#[test]
fn full_outbound_queue_closes_as_slow_consumer() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        outbound_max_frames: 3,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, t0);
    let msg = ServerMessage::error(ErrorCode::Unknown, "x");
    for _ in 0..3 {
        s.send(&msg).unwrap();
    }
    assert_eq!(s.send(&msg), Err(SessionError::SlowConsumer));
    assert_eq!(s.queued_bytes(), 0, "queue dropped, not grown");
    assert_eq!(s.poll_close(), Some(CloseCode::SlowConsumer));
    assert_eq!(s.send(&msg), Err(SessionError::Closing));

    let frame = codec::encode_to_bytes(&msg, DEFAULT_MAX_FRAME).unwrap();
    let cfg = SessionConfig {
        outbound_max_bytes: DEFAULT_MAX_FRAME + 4,
        outbound_max_frames: usize::MAX,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, t0);
    let mut n = 0;
    while s.send_frame(frame.clone()).is_ok() {
        n += 1;
    }
    assert_eq!(n, (DEFAULT_MAX_FRAME + 4) / frame.len());
    assert_eq!(s.poll_close(), Some(CloseCode::SlowConsumer));
}

/// A transport that takes the head frame by value, all of it, part of it or none
/// (flow control), as quinn-proto's `write_chunks` does.
#[test]
fn transmit_head_hands_over_what_the_transport_takes() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    let a = codec::encode_to_bytes(&ServerMessage::error(ErrorCode::Unknown, "a"), 64).unwrap();
    let b = codec::encode_to_bytes(&ServerMessage::error(ErrorCode::Unknown, "bb"), 64).unwrap();
    s.send_frame(a.clone()).unwrap();
    s.send_frame(b.clone()).unwrap();
    let total = a.len() + b.len();

    // Blocked: nothing taken, nothing accounted.
    assert_eq!(s.transmit_head(|_| ()), Some(()));
    assert_eq!(s.queued_bytes(), total);

    // Three bytes of the first frame, then the rest of it by value: the very
    // allocation that was queued, no copy.
    let first = s.transmit_head(|h| h.split_to(3)).unwrap();
    assert_eq!(&first[..], &a[..3]);
    assert_eq!(s.poll_transmit(), Some(&a[3..]));
    let rest = s.transmit_head(std::mem::take).unwrap();
    assert_eq!(rest.as_ptr(), a[3..].as_ptr());
    assert_eq!(s.queued_bytes(), b.len());

    // The byte-wise path agrees on the second frame.
    s.advance_transmit(1);
    assert_eq!(s.poll_transmit(), Some(&b[1..]));
    s.advance_transmit(b.len() - 1);
    assert_eq!(s.transmit_head(std::mem::take), None);
    assert_eq!(s.queued_bytes(), 0);
    let stats = s.stats();
    assert_eq!((stats.frames_out, stats.bytes_out), (2, total as u64));
}

#[test]
fn never_sends_a_frame_above_the_limit() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        max_frame: 32,
        outbound_max_bytes: 1024,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, t0);
    let big = ServerMessage::error(ErrorCode::Unknown, "y".repeat(64));
    assert!(matches!(s.send(&big), Err(SessionError::Codec(_))));
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn rate_limit_errors_then_closes_with_0x105() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        rate_per_sec: 10,
        rate_burst: 3,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, t0);
    s.handle_bytes(t0, &wire(&[join(), mute(), mute()]));
    // What follows the join is decoded once the join has been taken.
    assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(mute())));
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(mute())));
    assert!(!s.is_closing());
    // 100 ms later one token has refilled.
    s.handle_bytes(t0 + Duration::from_millis(100), &wire(&[mute()]));
    assert!(!s.is_closing());
    s.handle_bytes(t0 + Duration::from_millis(100), &wire(&[mute()]));
    assert!(s.is_closing());
    let out = drain(&mut s);
    assert_eq!(
        error_code(out.last().unwrap()),
        Some(ErrorCode::InvalidRequest as i32)
    );
    assert_eq!(s.poll_close(), Some(CloseCode::RateLimited));
    assert_eq!(s.stats().rate_limited, 1);
}

#[test]
fn config_validation() {
    let args = SignalingArgs {
        max_frame_bytes: 65_536,
        session_outbound_max_bytes: 1000,
        session_outbound_max_frames: 10,
        session_message_rate: 1,
        session_message_burst: 1,
        shard_outbound_max_bytes: DEFAULT_SHARD_OUTBOUND_MAX,
    };
    assert!(args.session_config().is_err());
    let ok = SignalingArgs {
        session_outbound_max_bytes: 1 << 20,
        ..args
    };
    assert_eq!(ok.session_config().unwrap().max_frame, 65_536);
    let below_one_session = SignalingArgs {
        shard_outbound_max_bytes: (1 << 20) - 1,
        ..ok
    };
    assert!(below_one_session.session_config().is_err());
    // Encoded sanity: a join encodes to a non-empty payload.
    assert!(!join().encode_to_vec().is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

    /// Hostile bytes, after a valid join, never panic the session and never grow its
    /// outbound queue beyond the configured bounds.
    #[test]
    fn hostile_bytes_are_answered_not_unwrapped(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..10),
    ) {
        let t0 = Instant::now();
        let cfg = SessionConfig { outbound_max_frames: 4, ..SessionConfig::default() };
        let mut s = Session::new(cfg, t0);
        s.handle_bytes(t0, &wire(&[join()]));
        for ch in &chunks {
            s.handle_bytes(t0, ch);
            while s.poll_event().is_some() {}
            proptest::prop_assert!(s.queued_bytes() <= 1 << 20);
        }
        if let Some(code) = s.poll_close() {
            proptest::prop_assert!(code.code() >= 0x100);
        }
    }
}

/// A joined session, its join event taken.
fn joined(t0: Instant) -> Session {
    let mut s = Session::new(SessionConfig::default(), t0);
    s.handle_bytes(t0, &wire(&[join()]));
    assert!(matches!(s.poll_event(), Some(SessionEvent::Join { .. })));
    s
}

/// A MediaConnectionUpdate of as many empty statuses as fit in one maximal frame.
fn status_flood() -> ClientMessage {
    let n = (DEFAULT_MAX_FRAME - 16) / 2;
    ClientMessage::of(client_message::Message::MediaConnectionUpdate(
        pb::MediaConnectionUpdate {
            statuses: vec![pb::MhConnectionStatus::default(); n],
        },
    ))
}

/// A repeated entry is a byte or two on the wire and a whole struct once decoded: a
/// frame of empty statuses decodes to about fifty times its size. The session answers
/// a message of more than 256 entries with INVALID_REQUEST and queues nothing for the
/// meeting; the session stays up (rule 4).
#[test]
fn messages_with_oversized_lists_are_refused_before_the_meeting() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let flood = status_flood();
    let wire_len = flood.encoded_len();
    let held = match &flood.message {
        Some(client_message::Message::MediaConnectionUpdate(u)) => {
            u.statuses.len() * std::mem::size_of::<pb::MhConnectionStatus>()
        }
        _ => unreachable!(),
    };
    eprintln!(
        "a {wire_len}-byte MediaConnectionUpdate decodes to {held} bytes of statuses ({}x)",
        held / wire_len
    );
    assert!(held > 20 * wire_len);
    s.handle_bytes(t0, &wire(&[flood]));
    assert_eq!(s.poll_event(), None, "nothing for the meeting");
    assert_eq!(s.stats().oversized_lists, 1);
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(error_code(&out[0]), Some(ErrorCode::InvalidRequest as i32));
    assert!(!s.is_closing());

    // Every repeated field of a client message is bounded the same way; lists at the
    // bound still go to the meeting, which applies its own limits.
    let ids = |n: usize| (0..n as u64).collect::<Vec<_>>();
    let layout = |n: usize| pb::LayoutConfig {
        pinned_users: ids(n),
        ..Default::default()
    };
    let cases = |n: usize| {
        vec![
            client_message::Message::SubscribeToLayout(pb::SubscribeToLayout {
                layout_type: 0,
                config: Some(layout(n)),
                stream_ids: vec![],
            }),
            client_message::Message::SubscribeToLayout(pb::SubscribeToLayout {
                layout_type: 0,
                config: None,
                stream_ids: vec![7; n],
            }),
            client_message::Message::UpdateLayout(pb::UpdateLayout {
                new_config: Some(pb::LayoutConfig {
                    excluded_users: ids(n),
                    ..Default::default()
                }),
            }),
            client_message::Message::PublishStream(pb::PublishStream {
                stream_id: "cam".into(),
                stream_type: 1,
                metadata: Some(pb::StreamMetadata {
                    video: Some(pb::VideoMetadata {
                        simulcast_layers: vec![pb::SimulcastLayer::default(); n],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
        ]
    };
    let mut now = t0;
    for m in cases(MAX_LIST_ENTRIES + 1) {
        now += Duration::from_secs(1);
        s.handle_bytes(now, &wire(&[ClientMessage::of(m)]));
        assert_eq!(s.poll_event(), None);
    }
    assert_eq!(s.stats().oversized_lists, 5);
    for m in cases(MAX_LIST_ENTRIES) {
        now += Duration::from_secs(1);
        s.handle_bytes(now, &wire(&[ClientMessage::of(m.clone())]));
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::Message(ClientMessage::of(m)))
        );
    }
    assert!(!s.is_closing());
}

/// The join's capability lists, which the MC does not read, are cut to the bound
/// before the join waits for its keys or crosses to its meeting's shard.
#[test]
fn a_join_keeps_at_most_the_bound_of_capabilities() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0);
    let mut j = join();
    if let Some(client_message::Message::JoinRequest(r)) = j.message.as_mut() {
        r.capabilities = Some(pb::ParticipantCapabilities {
            video_codecs: vec![String::new(); 30_000],
            audio_codecs: vec!["opus".into(); 2],
            ..Default::default()
        });
    }
    s.handle_bytes(t0, &wire(&[j]));
    match s.poll_event() {
        Some(SessionEvent::Join { request, .. }) => {
            let caps = request.capabilities.expect("capabilities kept");
            assert_eq!(caps.video_codecs.len(), MAX_LIST_ENTRIES);
            assert!(caps.video_codecs.capacity() <= MAX_LIST_ENTRIES);
            assert_eq!(caps.audio_codecs, vec!["opus".to_string(); 2]);
        }
        other => panic!("a join, not {other:?}"),
    }
}

/// What a session holds for frames being assembled follows the frame: a maximal frame
/// arriving a packet at a time is assembled in no more room than it takes, and once
/// it is decoded the room is given back. Grown freely, the buffer held 76,800 bytes
/// for a 65,540-byte frame, for as long as the session lived.
#[test]
fn a_large_frame_leaves_no_room_behind() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let big = ClientMessage::of(client_message::Message::StreamQualityUpdate(
        pb::StreamQualityUpdate {
            stream_id: "x".repeat(DEFAULT_MAX_FRAME - 8),
            ..Default::default()
        },
    ));
    let w = wire(std::slice::from_ref(&big));
    assert!(w.len() > DEFAULT_MAX_FRAME - 8);
    let mut most = 0;
    for piece in w.chunks(1_200) {
        s.handle_bytes(t0, piece);
        most = most.max(s.receive_capacity());
    }
    assert_eq!(s.poll_event(), Some(SessionEvent::Message(big)));
    eprintln!(
        "a {}-byte frame in 1,200-byte pieces: at most {most} bytes held while assembling, {} after",
        w.len(),
        s.receive_capacity()
    );
    assert!(most <= w.len(), "{most} held for a {}-byte frame", w.len());
    assert!(s.receive_capacity() <= codec::KEEP_CAPACITY);

    // A declared length alone reserves nothing; a partial frame holds what arrived.
    s.handle_bytes(t0, &(DEFAULT_MAX_FRAME as u32).to_be_bytes());
    s.handle_bytes(t0, &[0x0a; 10]);
    assert!(s.receive_capacity() <= codec::KEEP_CAPACITY);
    // Small messages after it are assembled in the room kept.
    let mut s = joined(t0);
    s.handle_bytes(t0, &wire(&[mute()]));
    let kept = s.receive_capacity();
    for k in 1..50 {
        s.handle_bytes(t0 + Duration::from_secs(k), &wire(&[mute()]));
        assert_eq!(s.receive_capacity(), kept, "no allocation per message");
    }
}

/// A join on a session that has joined is answered by the session (INVALID_REQUEST,
/// "already joined"; the session stays): it does not cross to the meeting's shard with
/// whatever capability lists it carries.
#[test]
fn a_second_join_is_answered_by_the_session() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let mut again = join();
    if let Some(client_message::Message::JoinRequest(r)) = again.message.as_mut() {
        r.capabilities = Some(pb::ParticipantCapabilities {
            video_codecs: vec![String::new(); 30_000],
            ..Default::default()
        });
    }
    s.handle_bytes(t0, &wire(&[again]));
    assert_eq!(s.poll_event(), None, "nothing for the meeting");
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    match &out[0].message {
        Some(pb::server_message::Message::Error(e)) => {
            assert_eq!(e.code, ErrorCode::InvalidRequest as i32);
            assert_eq!(e.message, ALREADY_JOINED);
        }
        other => panic!("an error, not {other:?}"),
    }
    assert!(!s.is_closing());
}

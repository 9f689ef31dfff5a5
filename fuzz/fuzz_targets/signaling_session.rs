//! Signaling framing and the per-connection session machine (docs/protocol.md "Transport
//! and framing", rules 4, 5, 12) fed arbitrary client bytes.
//!
//! Input layout: byte 0 picks the chunking (bit 7: tight limits), byte 1 the clock step
//! (bit 0: the client never reads), the rest is the
//! client's byte stream. The same stream also goes through a bare `FrameDecoder` with a
//! small limit, and every decoded message is re-encoded and decoded again.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mc_service::signaling::codec::{encode_frame, FrameDecoder, HEADER_LEN};
use mc_service::signaling::proto::{ClientMessage, ErrorCode, ServerMessage};
use mc_service::signaling::session::{Session, SessionConfig, SessionEvent};
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let (chunk, step_ms, stream) = match data {
        [a, b, rest @ ..] => (usize::from(*a % 64) + 1, u64::from(*b), rest),
        _ => return,
    };

    // 1. The session machine, fed in chunks with the clock advancing between them.
    let t0 = Instant::now();
    let mut now = t0;
    // Byte 0 bit 7: tight limits (small frames, a two-frame outbound queue, one message
    // a second), so rate limiting and the slow-consumer close are reached too.
    let cfg = if data[0] & 0x80 != 0 {
        SessionConfig {
            max_frame: 256,
            outbound_max_bytes: 256 + HEADER_LEN,
            outbound_max_frames: 2,
            rate_per_sec: 1,
            rate_burst: 3,
        }
    } else {
        SessionConfig::default()
    };
    // Byte 1 bit 0: a client that never reads (nothing is drained).
    let reads = data[1] & 1 == 0;
    let mut session = Session::new(cfg, t0);
    for piece in stream.chunks(chunk) {
        session.handle_bytes(now, piece);
        now += Duration::from_millis(step_ms);
        while let Some(ev) = session.poll_event() {
            if let SessionEvent::Message(m) = ev {
                assert!(m.message.is_some(), "session passed on an empty oneof");
            }
        }
        // Drain what the session wants to write, a few bytes at a time.
        while let Some(bytes) = session.poll_transmit().filter(|_| reads) {
            let n = bytes.len().min(chunk * 7);
            assert!(n > 0, "poll_transmit returned an empty slice");
            session.advance_transmit(n);
        }
        if reads {
            assert_eq!(session.queued_bytes(), 0);
        }
        // The meeting answers every message; the outbound queue must stay bounded.
        let _ = session.send(&ServerMessage::error(ErrorCode::InvalidRequest, "x"));
        assert!(session.queued_bytes() <= 1 << 20);
        if session.poll_close().is_some() {
            break;
        }
    }
    let _ = session.stats();

    // 2. A bare decoder with a small limit: buffered bytes stay bounded once drained.
    let max = 1 + usize::from(data[0]) * 4;
    let mut dec = FrameDecoder::new(max);
    'outer: for piece in stream.chunks(chunk) {
        dec.push(piece);
        loop {
            match dec.next_message::<ClientMessage>() {
                Ok(Some(msg)) => {
                    let mut a = Vec::new();
                    if encode_frame(&msg, &mut a, usize::MAX >> 1).is_err() {
                        continue;
                    }
                    let back = ClientMessage::decode(&a[HEADER_LEN..])
                        .expect("a re-encoded message decodes");
                    let mut b = Vec::new();
                    encode_frame(&back, &mut b, usize::MAX >> 1).expect("encodes twice");
                    assert_eq!(a, b, "encode/decode is not stable");
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
        assert!(
            dec.buffered() <= max + HEADER_LEN,
            "decoder holds more than one frame"
        );
    }
});

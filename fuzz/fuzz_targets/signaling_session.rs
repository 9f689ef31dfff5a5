//! Signaling framing and the per-connection session machine (signaling.md "Transport
//! and framing", rules 4, 5, 12) fed arbitrary client bytes.
//!
//! Input layout: byte 0 picks the chunking, byte 1 the clock step, the rest is the
//! client's byte stream. The same stream also goes through a bare `FrameDecoder` with a
//! small limit, and every decoded message is re-encoded and decoded again.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mc_service::signaling::codec::{encode_frame, FrameDecoder, HEADER_LEN};
use mc_service::signaling::proto::ClientMessage;
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
    let mut session = Session::new(SessionConfig::default(), t0);
    for piece in stream.chunks(chunk) {
        session.handle_bytes(now, piece);
        now += Duration::from_millis(step_ms);
        while let Some(ev) = session.poll_event() {
            if let SessionEvent::Message(m) = ev {
                assert!(m.message.is_some(), "session passed on an empty oneof");
            }
        }
        // Drain what the session wants to write, a few bytes at a time.
        while let Some(bytes) = session.poll_transmit() {
            let n = bytes.len().min(chunk * 7);
            assert!(n > 0, "poll_transmit returned an empty slice");
            session.advance_transmit(n);
        }
        assert_eq!(session.queued_bytes(), 0);
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

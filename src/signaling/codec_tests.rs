//! Unit and property tests of the framing (docs/protocol.md rule 12).
use super::*;
use crate::signaling::proto::{client_message, pb, ClientMessage};
use proptest::prelude::*;

fn mute(a: bool) -> ClientMessage {
    ClientMessage::of(client_message::Message::MuteRequest(pb::MuteRequest {
        audio_muted: a,
        video_muted: !a,
    }))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn round_trip_one_message() {
    let mut out = Vec::new();
    encode_frame(&mute(true), &mut out, DEFAULT_MAX_FRAME).unwrap();
    let mut d = FrameDecoder::default();
    d.push(&out);
    assert_eq!(d.next_message::<ClientMessage>().unwrap(), Some(mute(true)));
    assert_eq!(d.next_message::<ClientMessage>().unwrap(), None);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn partial_header_and_payload_wait_for_more() {
    let mut out = Vec::new();
    encode_frame(&mute(false), &mut out, DEFAULT_MAX_FRAME).unwrap();
    let mut d = FrameDecoder::default();
    for (i, b) in out.iter().enumerate() {
        assert_eq!(d.next_message::<ClientMessage>().unwrap(), None, "byte {i}");
        d.push(&[*b]);
    }
    assert_eq!(
        d.next_message::<ClientMessage>().unwrap(),
        Some(mute(false))
    );
}

/// Whole frames left waiting in the buffer (behind a join waiting for its keys) while
/// more arrive: the buffer grows by doubling, as a Vec does, not by exactly what each
/// push adds, which would copy everything held once per push.
#[test]
fn frames_held_while_more_arrive_grow_the_buffer_by_doubling() {
    let mut out = Vec::new();
    for _ in 0..2_000 {
        encode_frame(&mute(true), &mut out, DEFAULT_MAX_FRAME).unwrap();
    }
    let mut d = FrameDecoder::default();
    let mut growths = 0;
    let mut capacity = d.capacity();
    for piece in out.chunks(37) {
        d.push(piece);
        if d.capacity() != capacity {
            growths += 1;
            capacity = d.capacity();
        }
    }
    assert!(
        growths <= 16,
        "{growths} reallocations for {} bytes",
        out.len()
    );
    let mut n = 0;
    while d.next_message::<ClientMessage>().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2_000);
}

#[test]
fn zero_length_is_a_protocol_violation() {
    let mut d = FrameDecoder::default();
    d.push(&[0, 0, 0, 0]);
    let e = d.next_frame().unwrap_err();
    assert_eq!(e, CodecError::ZeroLength);
    assert_eq!((e.code(), e.reason()), (0x100, "frame_zero_length"));
    // Sticky: later input does not resurrect the stream.
    d.push(&frame(&[8, 1]));
    assert_eq!(d.next_frame().unwrap_err(), CodecError::ZeroLength);
}

#[test]
fn limit_is_inclusive() {
    let max = 16;
    let mut d = FrameDecoder::new(max);
    // A length-delimited unknown field (tag 99) of 16 bytes total decodes as an
    // envelope with no message: the codec accepts it (the session answers it).
    let mut payload = vec![0x9A, 0x06, 13];
    payload.extend_from_slice(&[b'x'; 13]);
    assert_eq!(payload.len(), 16);
    d.push(&frame(&payload));
    assert!(d.next_message::<ClientMessage>().unwrap().is_some());
    let mut big = payload.clone();
    big.push(0);
    d.push(&frame(&big));
    let e = d.next_frame().unwrap_err();
    assert_eq!(e, CodecError::Oversize { len: 17, max: 16 });
    assert_eq!(e.reason(), "frame_oversize");
}

#[test]
fn oversize_is_detected_from_the_header_alone() {
    let mut d = FrameDecoder::default();
    d.push(&(65_537u32).to_be_bytes());
    assert!(matches!(
        d.next_frame(),
        Err(CodecError::Oversize { len: 65_537, .. })
    ));
    let mut d = FrameDecoder::default();
    d.push(&u32::MAX.to_be_bytes());
    assert!(d.next_frame().is_err());
}

#[test]
fn undecodable_payload_is_an_error() {
    let mut d = FrameDecoder::default();
    d.push(&frame(&[0xFF, 0xFF, 0xFF]));
    let e = d.next_message::<ClientMessage>().unwrap_err();
    assert!(matches!(e, CodecError::Undecodable(_)));
    assert_eq!((e.code(), e.reason()), (0x100, "frame_undecodable"));
}

#[test]
fn encoder_never_emits_above_the_limit() {
    let big = ClientMessage {
        message: None,
        trace_parent: "t".repeat(100),
        trace_state: String::new(),
    };
    let mut out = vec![1, 2, 3];
    let e = encode_frame(&big, &mut out, 64).unwrap_err();
    assert!(matches!(e, CodecError::EncodeOversize { max: 64, .. }));
    assert_eq!(out, vec![1, 2, 3], "buffer untouched on error");
    assert!(encode_frame(&ClientMessage::default(), &mut out, 64).is_err());
    // Appends into the reused buffer.
    encode_frame(&mute(true), &mut out, 64).unwrap();
    encode_frame(&mute(false), &mut out, 64).unwrap();
    let mut d = FrameDecoder::new(64);
    d.push(&out[3..]);
    assert_eq!(d.next_message::<ClientMessage>().unwrap(), Some(mute(true)));
    assert_eq!(
        d.next_message::<ClientMessage>().unwrap(),
        Some(mute(false))
    );
    let b = encode_to_bytes(&mute(true), 64).unwrap();
    assert_eq!(&b[..], &out[3..3 + b.len()]);
}

fn arb_msg() -> impl Strategy<Value = ClientMessage> {
    (any::<bool>(), "[a-z]{0,40}", 0u32..5000).prop_map(|(a, s, n)| {
        let mut m = mute(a);
        m.trace_parent = s;
        m.trace_state = "x".repeat(n as usize);
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any split of any concatenation of frames yields the same messages in order.
    #[test]
    fn split_and_merged_chunks_round_trip(
        msgs in proptest::collection::vec(arb_msg(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_frame(m, &mut wire, DEFAULT_MAX_FRAME).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut d = FrameDecoder::default();
        let mut got = Vec::new();
        for w in points.windows(2) {
            d.push(&wire[w[0]..w[1]]);
            while let Some(m) = d.next_message::<ClientMessage>().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(d.buffered(), 0);
    }

    /// Arbitrary bytes never panic the decoder and never yield a frame above the limit.
    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        max in 1usize..128,
    ) {
        let mut d = FrameDecoder::new(max);
        for c in &chunks {
            d.push(c);
            while let Ok(Some(f)) = d.next_frame() {
                prop_assert!(!f.is_empty() && f.len() <= max);
            }
        }
    }
}

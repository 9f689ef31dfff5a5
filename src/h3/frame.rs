//! HTTP/3 frames (RFC 9114 §7): type and length headers, and an incremental reader that
//! turns a stream's bytes into frame pieces without buffering payloads.
//!
//! The reader hands out each payload as it arrives ([`Piece::Payload`]); the caller keeps
//! the few payloads it must see whole (HEADERS, SETTINGS, GOAWAY), each under its own
//! limit, streams DATA into the capsule decoder, and drops everything else.

use super::varint::{self, VarintReader};

pub const DATA: u64 = 0x00;
pub const HEADERS: u64 = 0x01;
pub const CANCEL_PUSH: u64 = 0x03;
pub const SETTINGS: u64 = 0x04;
pub const PUSH_PROMISE: u64 = 0x05;
pub const GOAWAY: u64 = 0x07;
pub const MAX_PUSH_ID: u64 = 0x0d;
/// The signal value that opens a WebTransport bidirectional stream
/// (draft-ietf-webtrans-http3 §4.2): in the frame-type position, followed by the
/// session id instead of a length.
pub const WEBTRANSPORT_STREAM: u64 = 0x41;

/// Frame types of HTTP/2 that HTTP/3 reserves (RFC 9114 §7.2.8): receiving one is
/// H3_FRAME_UNEXPECTED.
pub const fn is_http2_reserved(ty: u64) -> bool {
    matches!(ty, 0x02 | 0x06 | 0x08 | 0x09)
}

/// Append a frame header.
pub fn put_header(out: &mut Vec<u8>, ty: u64, len: u64) {
    varint::put(out, ty);
    varint::put(out, len);
}

/// One step of a stream's frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A frame header: its type and declared payload length.
    Start { ty: u64, len: u64 },
    /// Some payload bytes of the current frame; `end` when they complete it.
    Payload { ty: u64, data: &'a [u8], end: bool },
}

#[derive(Debug, Clone)]
enum State {
    Type(VarintReader),
    Length { ty: u64, reader: VarintReader },
    Payload { ty: u64, left: u64 },
}

/// The frames of one stream, read incrementally. Holds at most two partial varints.
#[derive(Debug, Clone)]
pub struct FrameReader {
    state: State,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self {
            state: State::Type(VarintReader::default()),
        }
    }
}

impl FrameReader {
    /// A reader whose first frame's type is already known (read by the caller to tell a
    /// request stream from a WebTransport stream).
    pub fn with_type(ty: u64) -> Self {
        Self {
            state: State::Length {
                ty,
                reader: VarintReader::default(),
            },
        }
    }

    /// The next piece from the front of `data`, advancing it; `None` once `data` is used
    /// up (the reader keeps any partial header).
    pub fn next<'a>(&mut self, data: &mut &'a [u8]) -> Option<Piece<'a>> {
        loop {
            match &mut self.state {
                State::Type(r) => {
                    let ty = r.feed(data)?;
                    self.state = State::Length {
                        ty,
                        reader: VarintReader::default(),
                    };
                }
                State::Length { ty, reader } => {
                    let ty = *ty;
                    let len = reader.feed(data)?;
                    self.state = if len == 0 {
                        State::Type(VarintReader::default())
                    } else {
                        State::Payload { ty, left: len }
                    };
                    // An empty frame ends with its header: no payload piece follows.
                    return Some(Piece::Start { ty, len });
                }
                State::Payload { ty, left } => {
                    if data.is_empty() {
                        return None;
                    }
                    let ty = *ty;
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    *data = rest;
                    *left -= n as u64;
                    let end = *left == 0;
                    if end {
                        self.state = State::Type(VarintReader::default());
                    }
                    return Some(Piece::Payload {
                        ty,
                        data: chunk,
                        end,
                    });
                }
            }
        }
    }

    /// Between frames: nothing of a header or payload is pending. A stream that ends
    /// anywhere else ends inside a frame (H3_FRAME_ERROR, RFC 9114 §7.1).
    pub fn at_boundary(&self) -> bool {
        matches!(&self.state, State::Type(r) if !r.is_partial())
    }

    /// Inside the payload of a frame of type `ty`.
    pub fn in_payload_of(&self) -> Option<u64> {
        match self.state {
            State::Payload { ty, .. } => Some(ty),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(reader: &mut FrameReader, mut data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = reader.next(&mut data) {
            out.push(match p {
                Piece::Start { ty, len } => format!("start {ty:#x} {len}"),
                Piece::Payload { ty, data, end } => {
                    format!("payload {ty:#x} {:?} {end}", String::from_utf8_lossy(data))
                }
            });
        }
        out
    }

    #[test]
    fn frames_split_anywhere_give_the_same_pieces() {
        let mut wire = Vec::new();
        put_header(&mut wire, HEADERS, 3);
        wire.extend_from_slice(b"abc");
        put_header(&mut wire, 0x21, 0);
        put_header(&mut wire, DATA, 2);
        wire.extend_from_slice(b"xy");
        let whole = pieces(&mut FrameReader::default(), &wire);
        assert_eq!(
            whole,
            [
                "start 0x1 3",
                "payload 0x1 \"abc\" true",
                "start 0x21 0",
                "start 0x0 2",
                "payload 0x0 \"xy\" true"
            ]
        );
        for cut in 1..wire.len() {
            let mut r = FrameReader::default();
            let mut got = pieces(&mut r, &wire[..cut]);
            got.extend(pieces(&mut r, &wire[cut..]));
            // Payloads may come in two parts; join them for the comparison.
            let joined: Vec<_> = got
                .iter()
                .filter(|p| p.starts_with("start"))
                .cloned()
                .collect();
            assert_eq!(
                joined,
                whole
                    .iter()
                    .filter(|p| p.starts_with("start"))
                    .cloned()
                    .collect::<Vec<_>>()
            );
            assert!(r.at_boundary());
        }
    }

    #[test]
    fn a_huge_declared_length_is_streamed_not_buffered() {
        let mut wire = Vec::new();
        put_header(&mut wire, 0x21, varint::MAX);
        wire.extend_from_slice(&[7u8; 100]);
        let mut r = FrameReader::default();
        let mut data: &[u8] = &wire;
        assert_eq!(
            r.next(&mut data),
            Some(Piece::Start {
                ty: 0x21,
                len: varint::MAX
            })
        );
        match r.next(&mut data) {
            Some(Piece::Payload { data, end, .. }) => {
                assert_eq!(data.len(), 100);
                assert!(!end);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.in_payload_of(), Some(0x21));
        assert!(!r.at_boundary());
    }
}

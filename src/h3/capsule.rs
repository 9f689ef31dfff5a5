//! The capsule protocol (RFC 9297 §3) as WebTransport uses it on the CONNECT stream
//! (draft-ietf-webtrans-http3 §5–6): pure encoding and an incremental decoder.
//!
//! Capsules travel inside the payloads of HTTP/3 DATA frames; the caller feeds every
//! DATA payload byte, as it arrives, to one [`CapsuleDecoder`]. Capsule types this
//! layer does not use are skipped as they arrive, whatever length they declare; the two
//! it uses are strict about their lengths: CLOSE_WEBTRANSPORT_SESSION carries a 4-byte
//! code and at most 1024 bytes of reason, DRAIN_WEBTRANSPORT_SESSION carries nothing.

use super::frame;
use super::varint::{self, VarintReader};

/// CLOSE_WEBTRANSPORT_SESSION (draft-ietf-webtrans-http3 §5).
pub const CLOSE_WEBTRANSPORT_SESSION: u64 = 0x2843;
/// DRAIN_WEBTRANSPORT_SESSION (draft-ietf-webtrans-http3 §4.6).
pub const DRAIN_WEBTRANSPORT_SESSION: u64 = 0x78ae;
/// Longest close reason a peer may send (draft-ietf-webtrans-http3 §5).
pub const MAX_REASON: usize = 1024;

/// A capsule this layer acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capsule {
    /// The peer closes the session with an application code and a reason.
    Close { code: u32, reason: Vec<u8> },
    /// The peer asks for the session to be wound down.
    Drain,
}

/// A capsule whose declared length its type does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("capsule type {ty:#x} with an invalid length {len}")]
pub struct CapsuleError {
    pub ty: u64,
    pub len: u64,
}

/// Append a CLOSE_WEBTRANSPORT_SESSION capsule; the reason is cut to [`MAX_REASON`]
/// bytes.
pub fn put_close(out: &mut Vec<u8>, code: u32, reason: &[u8]) {
    let reason = &reason[..reason.len().min(MAX_REASON)];
    varint::put(out, CLOSE_WEBTRANSPORT_SESSION);
    varint::put(out, 4 + reason.len() as u64);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
}

/// A CLOSE_WEBTRANSPORT_SESSION capsule inside one HTTP/3 DATA frame, ready to write
/// on the CONNECT stream (RFC 9297 §3.2).
pub fn close_data_frame(code: u32, reason: &[u8]) -> Vec<u8> {
    let mut capsule = Vec::with_capacity(16 + reason.len().min(MAX_REASON));
    put_close(&mut capsule, code, reason);
    let mut out = Vec::with_capacity(capsule.len() + 8);
    frame::put_header(&mut out, frame::DATA, capsule.len() as u64);
    out.extend_from_slice(&capsule);
    out
}

#[derive(Debug, Clone)]
enum State {
    Type(VarintReader),
    Length {
        ty: u64,
        reader: VarintReader,
    },
    /// Collecting the value of a CLOSE capsule (at most 4 + 1024 bytes).
    Close {
        left: usize,
    },
    /// Skipping the value of a capsule this layer does not use.
    Skip {
        left: u64,
    },
}

/// Capsules of one CONNECT stream, decoded as DATA payload bytes arrive.
#[derive(Debug, Clone)]
pub struct CapsuleDecoder {
    state: State,
    value: Vec<u8>,
}

impl Default for CapsuleDecoder {
    fn default() -> Self {
        Self {
            state: State::Type(VarintReader::default()),
            value: Vec::new(),
        }
    }
}

impl CapsuleDecoder {
    /// Decode from the front of `data`, advancing it. Returns the next complete capsule
    /// this layer acts on, `Ok(None)` once `data` is used up, or the first malformed one.
    pub fn feed(&mut self, data: &mut &[u8]) -> Result<Option<Capsule>, CapsuleError> {
        loop {
            match &mut self.state {
                State::Type(r) => {
                    let Some(ty) = r.feed(data) else {
                        return Ok(None);
                    };
                    self.state = State::Length {
                        ty,
                        reader: VarintReader::default(),
                    };
                }
                State::Length { ty, reader } => {
                    let ty = *ty;
                    let Some(len) = reader.feed(data) else {
                        return Ok(None);
                    };
                    match ty {
                        CLOSE_WEBTRANSPORT_SESSION => {
                            if !(4..=(4 + MAX_REASON) as u64).contains(&len) {
                                return Err(CapsuleError { ty, len });
                            }
                            self.value.clear();
                            self.state = State::Close { left: len as usize };
                        }
                        DRAIN_WEBTRANSPORT_SESSION => {
                            if len != 0 {
                                return Err(CapsuleError { ty, len });
                            }
                            self.state = State::Type(VarintReader::default());
                            return Ok(Some(Capsule::Drain));
                        }
                        _ => self.state = State::Skip { left: len },
                    }
                }
                State::Close { left } => {
                    let n = (*left).min(data.len());
                    self.value.extend_from_slice(&data[..n]);
                    *data = &data[n..];
                    *left -= n;
                    if *left > 0 {
                        return Ok(None);
                    }
                    let code = u32::from_be_bytes([
                        self.value[0],
                        self.value[1],
                        self.value[2],
                        self.value[3],
                    ]);
                    let reason = self.value[4..].to_vec();
                    self.value = Vec::new();
                    self.state = State::Type(VarintReader::default());
                    return Ok(Some(Capsule::Close { code, reason }));
                }
                State::Skip { left } => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    *data = &data[n..];
                    *left -= n as u64;
                    if *left > 0 {
                        return Ok(None);
                    }
                    self.state = State::Type(VarintReader::default());
                }
            }
        }
    }

    /// Between capsules: a stream that ends anywhere else ends inside a capsule.
    pub fn at_boundary(&self) -> bool {
        matches!(&self.state, State::Type(r) if !r.is_partial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut CapsuleDecoder, mut data: &[u8]) -> Result<Vec<Capsule>, CapsuleError> {
        let mut out = Vec::new();
        while let Some(c) = d.feed(&mut data)? {
            out.push(c);
        }
        assert!(data.is_empty());
        Ok(out)
    }

    #[test]
    fn close_capsule_wire_layout() {
        let f = close_data_frame(7, b"bye");
        // DATA frame type 0, length 10, capsule type 0x2843 (2-byte varint 0x6843), len 7.
        assert_eq!(
            &f[..],
            &[0x00, 10, 0x68, 0x43, 7, 0, 0, 0, 7, b'b', b'y', b'e']
        );
    }

    #[test]
    fn unknown_capsules_are_skipped_and_the_close_after_them_is_found() {
        let mut wire = Vec::new();
        varint::put(&mut wire, 0x29);
        varint::put(&mut wire, 100);
        wire.extend_from_slice(&[0xee; 100]);
        put_close(&mut wire, 0x101, b"bad token");
        let want = vec![Capsule::Close {
            code: 0x101,
            reason: b"bad token".to_vec(),
        }];
        assert_eq!(
            decode_all(&mut CapsuleDecoder::default(), &wire),
            Ok(want.clone())
        );
        // Byte by byte gives the same.
        let mut d = CapsuleDecoder::default();
        let mut got = Vec::new();
        for b in &wire {
            got.extend(decode_all(&mut d, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, want);
        assert!(d.at_boundary());
    }

    #[test]
    fn a_huge_unknown_capsule_is_skipped_without_buffering() {
        let mut wire = Vec::new();
        varint::put(&mut wire, 0x1234);
        varint::put(&mut wire, varint::MAX);
        wire.extend_from_slice(&[1u8; 4096]);
        let mut d = CapsuleDecoder::default();
        assert_eq!(decode_all(&mut d, &wire), Ok(vec![]));
        assert!(!d.at_boundary());
        assert!(d.value.capacity() == 0);
    }

    #[test]
    fn lengths_are_strict_for_the_capsules_we_use() {
        for (ty, len) in [
            (CLOSE_WEBTRANSPORT_SESSION, 3),
            (CLOSE_WEBTRANSPORT_SESSION, 4 + MAX_REASON as u64 + 1),
            (DRAIN_WEBTRANSPORT_SESSION, 1),
        ] {
            let mut wire = Vec::new();
            varint::put(&mut wire, ty);
            varint::put(&mut wire, len);
            assert_eq!(
                decode_all(&mut CapsuleDecoder::default(), &wire),
                Err(CapsuleError { ty, len })
            );
        }
        let mut wire = Vec::new();
        varint::put(&mut wire, DRAIN_WEBTRANSPORT_SESSION);
        varint::put(&mut wire, 0);
        assert_eq!(
            decode_all(&mut CapsuleDecoder::default(), &wire),
            Ok(vec![Capsule::Drain])
        );
    }

    #[test]
    fn a_long_reason_is_cut_when_encoding() {
        let mut wire = Vec::new();
        put_close(&mut wire, 1, &[b'x'; 5000]);
        match decode_all(&mut CapsuleDecoder::default(), &wire)
            .unwrap()
            .as_slice()
        {
            [Capsule::Close { code: 1, reason }] => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
    }
}

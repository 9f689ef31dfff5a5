//! Sans-IO framing of signaling messages (docs/protocol.md "Transport and framing", rule 12).
//!
//! Each frame is a 4-byte big-endian payload length followed by that many bytes of
//! protobuf. Valid payload lengths are `1..=max` (inclusive, default 65,536). A zero or
//! oversize length, or bytes that do not decode, is a protocol violation: the session is
//! closed with 0x100 (rule 5).
//!
//! Usage: the driver [`FrameDecoder::push`]es each chunk read from the stream, then calls
//! [`FrameDecoder::next_message`] until it returns `Ok(None)`. The decoder then holds at
//! most one partial frame (≤ `max + 4` bytes).

use bytes::Bytes;
use prost::Message;

/// Default maximum payload length, inclusive (docs/protocol.md rule 12).
pub const DEFAULT_MAX_FRAME: usize = 65_536;
/// Length of the frame header.
pub const HEADER_LEN: usize = 4;
/// Room a decoder keeps once empty: typical signaling messages are well under it, so
/// they are assembled without an allocation each.
pub const KEEP_CAPACITY: usize = 4096;

/// Framing errors. Every one closes the session with [`CodecError::code`] = 0x100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("zero-length frame")]
    ZeroLength,
    #[error("frame payload of {len} bytes exceeds the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    #[error("undecodable protobuf payload: {0}")]
    Undecodable(#[from] prost::DecodeError),
    /// An outbound message too large to send: never put on the wire (rule 12).
    #[error("outbound message of {len} bytes exceeds the {max}-byte frame limit")]
    EncodeOversize { len: usize, max: usize },
}

impl CodecError {
    /// The WebTransport session close code (docs/protocol.md rule 5: protocol violation).
    pub fn code(&self) -> u32 {
        0x100
    }

    /// The metric label for `mc_sessions_closed_total{reason}` and friends.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ZeroLength => "frame_zero_length",
            Self::Oversize { .. } => "frame_oversize",
            Self::Undecodable(_) => "frame_undecodable",
            Self::EncodeOversize { .. } => "encode_oversize",
        }
    }
}

/// Reassembles frames from arbitrary chunks of a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    max: usize,
    /// Once a framing error happened the stream is unusable; the error sticks.
    failed: Option<CodecError>,
}

impl FrameDecoder {
    /// A decoder accepting payloads of `1..=max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max,
            failed: None,
        }
    }

    /// The configured inclusive payload limit.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes the decoder holds allocated, used or not.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends a chunk read from the stream. After an error the input is ignored.
    ///
    /// What is held follows what the frame being assembled needs: the buffer grows by
    /// doubling up to the frame's end, never past it (growing freely, it would hold up
    /// to twice the largest frame), and a buffer left empty gives back more than
    /// [`KEEP_CAPACITY`] ([`FrameDecoder::release`]).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 {
            // Compact: drop the consumed prefix before growing.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let need = self.buf.len() + chunk.len();
        if need > self.buf.capacity() {
            // The frame's end, once its header is in `buf` and `chunk` together.
            let mut header = [0u8; HEADER_LEN];
            let have = self.buf.len().min(HEADER_LEN);
            header[..have].copy_from_slice(&self.buf[..have]);
            let from_chunk = (HEADER_LEN - have).min(chunk.len());
            header[have..have + from_chunk].copy_from_slice(&chunk[..from_chunk]);
            // Doubling, as a Vec grows, but never past the end of the frame: the
            // declared length alone reserves nothing (a client could declare a maximal
            // frame and send none of it), and what is held follows what arrived.
            let doubled = (2 * self.buf.capacity()).max(need);
            let want = if have + from_chunk == HEADER_LEN {
                let end = HEADER_LEN + (u32::from_be_bytes(header) as usize).min(self.max);
                // Past the first frame's end (frames waiting behind a join), grow as a
                // Vec does, or every push would reallocate.
                if need > end {
                    doubled
                } else {
                    doubled.min(end).max(need)
                }
            } else {
                doubled
            };
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Gives back the buffer once everything in it has been taken, if it grew past
    /// [`KEEP_CAPACITY`]: a session that once sent a large frame does not hold room
    /// for another while it sends small ones or nothing.
    pub fn release(&mut self) {
        if self.pos == self.buf.len() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// The next complete payload, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let avail = self.buf.get(self.pos..).unwrap_or(&[]);
        let Some(header) = avail.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len == 0 {
            return Err(self.fail(CodecError::ZeroLength));
        }
        if len > self.max {
            return Err(self.fail(CodecError::Oversize { len, max: self.max }));
        }
        let start = self.pos + HEADER_LEN;
        let end = start + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        self.pos = end;
        Ok(self.buf.get(start..end))
    }

    /// The next complete frame decoded as `M`; `Ok(None)` when more bytes are needed.
    pub fn next_message<M: Message + Default>(&mut self) -> Result<Option<M>, CodecError> {
        let decoded = match self.next_frame()? {
            None => return Ok(None),
            Some(payload) => M::decode(payload),
        };
        match decoded {
            Ok(m) => Ok(Some(m)),
            Err(e) => Err(self.fail(CodecError::Undecodable(e))),
        }
    }

    fn fail(&mut self, e: CodecError) -> CodecError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.pos = 0;
        e
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Appends one frame holding `msg` to `out` (a buffer the caller reuses). Refuses, and
/// leaves `out` unchanged, when the payload would exceed `max` (rule 12) or be empty
/// (an all-default message encodes to zero bytes, which the peer must reject).
pub fn encode_frame<M: Message>(msg: &M, out: &mut Vec<u8>, max: usize) -> Result<(), CodecError> {
    let len = msg.encoded_len();
    if len > max || len > u32::MAX as usize {
        return Err(CodecError::EncodeOversize { len, max });
    }
    if len == 0 {
        return Err(CodecError::ZeroLength);
    }
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // `reserve` above guarantees capacity, so encoding into a Vec cannot fail.
    msg.encode(out)
        .map_err(|_| CodecError::EncodeOversize { len, max })
}

/// Encodes one frame into shared bytes: encode once, hand the same `Bytes` to every
/// recipient session ([`super::session::Session::send_frame`]).
pub fn encode_to_bytes<M: Message>(msg: &M, max: usize) -> Result<Bytes, CodecError> {
    let mut out = Vec::with_capacity(HEADER_LEN + msg.encoded_len());
    encode_frame(msg, &mut out, max)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

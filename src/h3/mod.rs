//! HTTP/3 (RFC 9114) and WebTransport over HTTP/3 (draft-ietf-webtrans-http3) as a
//! sans-IO layer over one `quinn_proto::Connection`.
//!
//! The shard's driver feeds every QUIC event of a connection to [`H3Conn::handle_event`];
//! the layer reads the streams it owns (control, QPACK, request and CONNECT streams, the
//! headers of WebTransport streams), answers requests the application refuses, and
//! surfaces what the application decides or consumes as [`H3Event`]s: a CONNECT to
//! accept or refuse, WebTransport streams opened, readable, writable, datagrams, and
//! the end of the session. Nothing here reads a clock or touches a socket.
//!
//! Every byte a peer can make this layer hold is bounded: frame headers and varints in
//! fixed arrays, a request's header section by [`H3Limits::max_field_section`], SETTINGS
//! and GOAWAY payloads by small constants, capsules by their own strict limits. Frames
//! of unknown type and capsules of unknown type are skipped as they arrive, never
//! buffered. So is the work a peer can make it do on requests:
//! - a header section is walked without allocating before it is decoded, and one of
//!   more than [`qpack::MAX_FIELD_LINES`] field lines is refused as malformed;
//! - a connection that has had more than [`conn::MAX_REFUSED_REQUESTS`] requests
//!   answered without opening a session is closed with H3_EXCESSIVE_LOAD.
//!
//! - [`varint`]: QUIC variable-length integers.
//! - [`frame`]: HTTP/3 frame headers and an incremental frame reader.
//! - [`capsule`]: the capsule protocol (RFC 9297 §3) on the CONNECT stream.
//! - [`settings`]: our SETTINGS frame and the peer's.
//! - [`qpack`]: request header decoding and response encoding (static table only).
//! - [`conn`]: the per-connection state machine; `streams` holds the part that reads
//!   the peer's streams.

pub mod capsule;
pub mod conn;
mod events;
pub mod frame;
mod inbound;
pub mod qpack;
pub mod settings;
mod streams;
pub mod varint;

pub use conn::{H3Conn, H3Event, H3Limits, H3Stats, ReadEnd, SessionEnd};
pub use qpack::RequestHead;

/// HTTP/3 error codes (RFC 9114 §8.1), RFC 9204 §6 and draft-ietf-webtrans-http3 §9.
pub mod code {
    pub const H3_NO_ERROR: u64 = 0x100;
    pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
    pub const H3_INTERNAL_ERROR: u64 = 0x102;
    pub const H3_STREAM_CREATION_ERROR: u64 = 0x103;
    pub const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
    pub const H3_FRAME_UNEXPECTED: u64 = 0x105;
    pub const H3_FRAME_ERROR: u64 = 0x106;
    pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
    pub const H3_ID_ERROR: u64 = 0x108;
    pub const H3_SETTINGS_ERROR: u64 = 0x109;
    pub const H3_MISSING_SETTINGS: u64 = 0x10a;
    pub const H3_REQUEST_REJECTED: u64 = 0x10b;
    pub const H3_REQUEST_CANCELLED: u64 = 0x10c;
    pub const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
    pub const H3_MESSAGE_ERROR: u64 = 0x10e;
    pub const H3_DATAGRAM_ERROR: u64 = 0x33;
    pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
    /// A WebTransport stream named a session this endpoint does not hold.
    pub const WEBTRANSPORT_BUFFERED_STREAM_REJECTED: u64 = 0x3994_bd84;
    /// The session a WebTransport stream belonged to has ended.
    pub const WEBTRANSPORT_SESSION_GONE: u64 = 0x170d_7b68;

    /// The HTTP/3 code carrying WebTransport application error `n` on a stream reset
    /// or STOP_SENDING (draft-ietf-webtrans-http3 §4.3): codes of the form 0x1f·N + 0x21
    /// are reserved and skipped.
    pub const fn webtransport(n: u32) -> u64 {
        let n = n as u64;
        0x52e4_a40f_a8db + n + n / 0x1e
    }
}

/// A connection-level HTTP/3 error: the QUIC connection is closed with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    pub code: u64,
    pub reason: &'static str,
}

impl ConnError {
    pub const fn new(code: u64, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP/3 error {:#x})", self.reason, self.code)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod code_tests {
    use super::code;

    #[test]
    fn webtransport_codes_skip_reserved_values() {
        assert_eq!(code::webtransport(0), 0x52e4_a40f_a8db);
        assert_eq!(code::webtransport(0x1d), 0x52e4_a40f_a8db + 0x1d);
        // 0x1e lands past the reserved 0x52e4a40fa8f9.
        assert_eq!(code::webtransport(0x1e), 0x52e4_a40f_a8db + 0x1f);
        assert_eq!(
            code::webtransport(u32::MAX),
            0x52e4_a40f_a8db + 0xffff_ffff + 0x0888_8888
        );
    }
}

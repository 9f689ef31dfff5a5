//! What the HTTP/3 layer knows about each peer stream while it reads it: one state per
//! stream, from its first bytes (stream type, or a bidi stream's first varint) to the
//! role it turned out to have. `conn` stores these; `streams` moves them along.

use bytes::Bytes;

use super::frame::FrameReader;
use super::varint::VarintReader;

#[derive(Debug)]
pub(super) enum Inbound {
    /// A peer uni stream whose type has not fully arrived.
    UniType(VarintReader),
    Control {
        reader: FrameReader,
        payload: Vec<u8>,
        settings_seen: bool,
    },
    /// The peer's QPACK encoder or decoder stream: read and dropped (no dynamic table).
    Qpack,
    /// The session id of a WebTransport uni stream.
    WtUniHeader(VarintReader),
    /// The first varint of a peer bidi stream: 0x41 or a request's first frame type.
    BiFirst(VarintReader),
    /// The session id of a WebTransport bidi stream.
    WtBiHeader(VarintReader),
    /// A request stream before its HEADERS frame is complete.
    Request {
        reader: FrameReader,
        headers: Vec<u8>,
    },
    /// A request that is not a WebTransport CONNECT, waiting for the application's
    /// answer; its body is dropped.
    Answering,
    /// The CONNECT stream of the session: its frames carry capsules.
    Connect,
    /// A WebTransport stream naming a session whose CONNECT is still undecided.
    Pending {
        session: u64,
        bidi: bool,
        rest: Bytes,
    },
    /// The application's stream; `rest` holds bytes that arrived with its header.
    App { rest: Bytes },
}

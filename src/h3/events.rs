//! What the HTTP/3 layer tells the application, and the limits it works under.

use std::time::Duration;

use bytes::Bytes;
use quinn_proto::{ConnectionError, StreamId};

use super::qpack::RequestHead;
use super::{code, settings};

/// Limits and timings of the HTTP/3 layer, shared by every connection of a shard.
#[derive(Debug, Clone)]
pub struct H3Limits {
    /// Largest request header section (HEADERS payload) accepted, in bytes; advertised
    /// as SETTINGS_MAX_FIELD_SECTION_SIZE.
    pub max_field_section: usize,
    /// Time after the handshake for the client's WebTransport CONNECT.
    pub connect_timeout: Duration,
    /// After this side closed the session (CLOSE_WEBTRANSPORT_SESSION and FIN), how long
    /// the peer has to close the QUIC connection itself — browsers do, and report the
    /// session's code only if they do — before this side closes it with H3_NO_ERROR.
    pub close_linger: Duration,
    /// Our SETTINGS frame, encoded once.
    pub settings_frame: Bytes,
}

impl H3Limits {
    pub fn new(max_field_section: usize, connect_timeout: Duration) -> Self {
        Self {
            max_field_section,
            connect_timeout,
            close_linger: Duration::from_secs(1),
            settings_frame: settings::frame(max_field_section as u64, rand::random()).into(),
        }
    }
}

/// How a WebTransport session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// This side closed it with this code.
    Local { code: u32 },
    /// The peer closed it: its CLOSE_WEBTRANSPORT_SESSION code (a FIN on the CONNECT
    /// stream is code 0), or the HTTP/3 code it closed the connection with. `clean` for
    /// 0 and H3_NO_ERROR.
    PeerClosed { code: u64, clean: bool },
    /// No packets from the peer for the idle timeout (RFC 9000 §10.1).
    IdleTimeout,
    /// The peer reset the connection (stateless reset, RFC 9000 §10.3).
    Reset,
    /// A transport or protocol error.
    Error(String),
}

impl SessionEnd {
    pub(super) fn from_connection(e: &ConnectionError) -> Self {
        match e {
            ConnectionError::ApplicationClosed(c) => {
                let code = c.error_code.into_inner();
                Self::PeerClosed {
                    code,
                    clean: code == code::H3_NO_ERROR || code == 0,
                }
            }
            ConnectionError::TimedOut => Self::IdleTimeout,
            ConnectionError::Reset => Self::Reset,
            ConnectionError::LocallyClosed => Self::Local { code: 0 },
            other => Self::Error(other.to_string()),
        }
    }

    /// A clean end by the peer (rule 6 of docs/protocol.md: a voluntary leave).
    pub fn is_clean_peer_close(&self) -> bool {
        matches!(self, Self::PeerClosed { clean: true, .. })
    }
}

/// What the application sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H3Event {
    /// A request: call [`H3Conn::accept_session`] (a WebTransport CONNECT only) or
    /// [`H3Conn::respond`] before the next event.
    Request {
        stream: StreamId,
        head: RequestHead,
    },
    /// The peer opened a WebTransport stream of the session; its data is read with
    /// [`H3Conn::read`].
    StreamOpened {
        stream: StreamId,
        bidi: bool,
    },
    StreamReadable {
        stream: StreamId,
    },
    StreamWritable {
        stream: StreamId,
    },
    /// The peer asked us to stop sending; our sending half has been reset.
    StreamStopped {
        stream: StreamId,
        code: u64,
    },
    /// Our finished sending half has been fully acknowledged by the peer.
    StreamFinished {
        stream: StreamId,
    },
    /// An HTTP datagram for the session (the quarter stream id removed).
    Datagram(Bytes),
    /// The session ended; nothing more will be read or sent on it.
    SessionEnded(SessionEnd),
}

/// Plain counters, published by the shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct H3Stats {
    /// Datagrams naming no session of this connection, dropped.
    pub datagrams_unknown_session: u64,
    /// WebTransport streams refused because they named no live session.
    pub streams_rejected: u64,
    /// Connections closed because no CONNECT arrived in time.
    pub connect_timeouts: u64,
    /// Connections this layer closed with an HTTP/3 error.
    pub protocol_errors: u64,
    /// Requests answered without opening a session (any status, or a stream error for
    /// a malformed or oversized header section).
    pub requests_refused: u64,
    /// Connections closed because they had more requests refused than
    /// `MAX_REFUSED_REQUESTS` (also counted in `protocol_errors`).
    pub too_many_requests: u64,
}

/// How a read of the application's stream stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// No more data for now; [`H3Event::StreamReadable`] follows when there is.
    Blocked,
    /// `max` bytes were read; more may be waiting.
    Limit,
    /// The peer finished the stream and everything was read.
    Finished,
    /// The peer reset the stream with this code.
    Reset(u64),
    /// Not (or no longer) a readable stream.
    Closed,
}

//! One connection's HTTP/3 and WebTransport state, driven by the shard's loop.
//!
//! Inputs: [`H3Conn::handle_event`] for every `quinn_proto::Event` of the connection,
//! [`H3Conn::handle_timeout`] at [`H3Conn::poll_timeout`]. Outputs: [`H3Event`]s from
//! [`H3Conn::poll_event`], and writes, resets and closes made directly on the
//! `quinn_proto::Connection` passed in (the driver transmits afterwards).
//!
//! Streams this layer reads itself:
//! - the peer's control stream (RFC 9114 §6.2.1): SETTINGS first, then GOAWAY,
//!   MAX_PUSH_ID, CANCEL_PUSH; unknown frames skipped; closing it is a connection error;
//! - the peer's QPACK streams (RFC 9204 §4.2): read and discarded (no dynamic table);
//! - request streams: one HEADERS frame (bounded), then either an answer and
//!   STOP_SENDING, or — for a WebTransport CONNECT the application accepts — the
//!   session's capsules (RFC 9297 §3) for as long as the session lives;
//! - the header of every WebTransport stream (draft-ietf-webtrans-http3 §4.2–4.3): the
//!   stream is then the application's, or refused when it names a session this
//!   connection does not hold.
//!
//! The session id is the CONNECT stream's id (draft-ietf-webtrans-http3 §2); datagrams
//! carry it divided by four (RFC 9297 §2.1). One session per connection: a further
//! CONNECT while one lives is answered 429.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn_proto::{
    Connection, ConnectionError, Dir, Event, ReadError, StreamEvent, StreamId, VarInt, WriteError,
};

use super::capsule::{self, CapsuleDecoder};
pub use super::events::{H3Event, H3Limits, H3Stats, ReadEnd, SessionEnd};
use super::frame::FrameReader;
use super::inbound::Inbound;
use super::qpack;
use super::settings::PeerSettings;
use super::varint::{self, VarintReader};
use super::{code, ConnError};

/// The type of our control stream (RFC 9114 §6.2.1).
const STREAM_CONTROL: u64 = 0x00;
/// After the peer closed the session, how long it has to close the QUIC connection
/// itself before this side does.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Requests a connection may have answered without opening a session (404, 405, 429,
/// 503, a malformed or oversized header section...) before it is closed with
/// H3_EXCESSIVE_LOAD. A browser sends one CONNECT per `new WebTransport()` on its own
/// connection, and may try again after a refusal: a handful of refusals is a page
/// retrying, sixteen is a client using the connection to make the server decode
/// request after request. Without the cap that would last until the CONNECT deadline,
/// or, once a session is open, for as long as the connection lives.
pub const MAX_REFUSED_REQUESTS: usize = 16;
/// After we closed the session and the peer answered (its FIN or capsule on the
/// CONNECT stream), how long it has to close the QUIC connection itself. A browser
/// hands the close to the page asynchronously: a CONNECTION_CLOSE that overtakes that
/// turns the page's clean close code into "connection lost".
const ANSWERED_LINGER: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionState {
    /// CONNECT received, the application has not decided yet.
    Requested,
    Open,
    /// We sent our close capsule and FIN; waiting for their acknowledgement.
    Closing,
    Ended,
}

#[derive(Debug)]
pub(super) struct Session {
    pub(super) id: StreamId,
    pub(super) state: SessionState,
    pub(super) reader: FrameReader,
    pub(super) capsules: CapsuleDecoder,
    /// The peer's close (capsule code, or 0 for a FIN) seen before the session was
    /// accepted: it ends as soon as it is.
    pub(super) peer_closed: Option<u32>,
}

/// Room for events [`H3Conn::trim_events`] lets the queue keep.
pub(super) const KEEP_EVENTS: usize = 16;

/// The HTTP/3 and WebTransport state of one connection. See the module docs.
#[derive(Debug)]
pub struct H3Conn {
    pub(super) control: Option<StreamId>,
    pub(super) peer_control: Option<StreamId>,
    pub(super) peer_encoder: Option<StreamId>,
    pub(super) peer_decoder: Option<StreamId>,
    pub(super) peer_settings: Option<PeerSettings>,
    /// Peer streams this layer is reading or has handed to the application.
    pub(super) streams: Vec<(StreamId, Inbound)>,
    pub(super) session: Option<Session>,
    pub(super) events: VecDeque<H3Event>,
    pub(super) connect_deadline: Option<Instant>,
    pub(super) close_deadline: Option<Instant>,
    /// The connection is closed (by us or the peer): nothing more is processed.
    pub(super) closed: bool,
    pub(super) stats: H3Stats,
}

impl Default for H3Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl H3Conn {
    pub fn new() -> Self {
        Self {
            control: None,
            peer_control: None,
            peer_encoder: None,
            peer_decoder: None,
            peer_settings: None,
            streams: Vec::new(),
            session: None,
            events: VecDeque::new(),
            connect_deadline: None,
            close_deadline: None,
            closed: false,
            stats: H3Stats::default(),
        }
    }

    pub fn stats(&self) -> H3Stats {
        self.stats
    }

    /// The session's id (its CONNECT stream), once one was requested.
    pub fn session_id(&self) -> Option<StreamId> {
        self.session.as_ref().map(|s| s.id)
    }

    /// The session is accepted and neither closing nor ended.
    pub fn session_open(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.state == SessionState::Open)
    }

    /// The peer said it accepts HTTP datagrams.
    pub fn peer_accepts_datagrams(&self) -> bool {
        self.peer_settings.is_some_and(|s| s.datagrams)
    }

    /// This layer closed the connection, or saw it lost.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn poll_event(&mut self) -> Option<H3Event> {
        self.events.pop_front()
    }

    /// Give back the room a burst of events took once they are all taken: a packet
    /// of empty datagrams is hundreds of events of about 150 bytes each, and the queue
    /// would otherwise keep that room for the connection's life.
    pub fn trim_events(&mut self) {
        if self.events.is_empty() && self.events.capacity() > KEEP_EVENTS {
            self.events = VecDeque::new();
        }
    }

    /// The next deadline of this layer: the CONNECT timeout, or the end of the wait
    /// for our close capsule's acknowledgement.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // `handle_timeout` does nothing once closed: a deadline left would stay due.
        if self.closed {
            return None;
        }
        match (self.connect_deadline, self.close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes this layer holds for the peer right now (header sections being assembled,
    /// control frame payloads, bytes that arrived with a stream header).
    pub fn buffered_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|(_, s)| match s {
                Inbound::Control { payload, .. } => payload.capacity(),
                Inbound::Request { headers, .. } => headers.capacity(),
                Inbound::Pending { rest, .. } | Inbound::App { rest, .. } => rest.len(),
                _ => 0,
            })
            .sum()
    }

    pub fn handle_timeout(&mut self, quic: &mut Connection, now: Instant) {
        if self.closed {
            return;
        }
        if self.connect_deadline.is_some_and(|t| t <= now) {
            self.connect_deadline = None;
            self.stats.connect_timeouts += 1;
            self.close_connection(
                quic,
                now,
                code::H3_NO_ERROR,
                "no WebTransport session requested in time",
            );
            return;
        }
        if self.close_deadline.is_some_and(|t| t <= now) {
            self.finish_close(quic, now);
        }
    }

    /// Feed one QUIC event of this connection.
    pub fn handle_event(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        limits: &H3Limits,
        event: Event,
    ) {
        match event {
            Event::Connected => self.on_connected(quic, now, limits),
            Event::ConnectionLost { reason } => self.on_lost(&reason),
            Event::Stream(ev) if !self.closed => self.on_stream_event(quic, now, limits, ev),
            Event::DatagramReceived if !self.closed => self.on_datagrams(quic),
            _ => {}
        }
    }

    // ---- the application's side -------------------------------------------------

    /// Accept the WebTransport CONNECT on `stream`: answer 200. Streams that named the
    /// session before this become the application's ([`H3Event::StreamOpened`]).
    pub fn accept_session(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        stream: StreamId,
    ) -> bool {
        let Some(s) = self
            .session
            .as_mut()
            .filter(|s| s.id == stream && s.state == SessionState::Requested)
        else {
            return false;
        };
        s.state = SessionState::Open;
        let peer_closed = s.peer_closed;
        self.connect_deadline = None;
        let _ = quic
            .send_stream(stream)
            .write(&qpack::response_frame(200, true));
        let session = u64::from(stream);
        for (id, st) in self.streams.iter_mut() {
            if let Inbound::Pending {
                session: s,
                bidi,
                rest,
            } = st
            {
                if *s == session {
                    let (bidi, rest) = (*bidi, std::mem::take(rest));
                    *st = Inbound::App { rest };
                    self.events
                        .push_back(H3Event::StreamOpened { stream: *id, bidi });
                }
            }
        }
        if let Some(code) = peer_closed {
            self.on_peer_close(quic, now, code);
        }
        true
    }

    /// Answer the request on `stream` with `status` and stop reading it. The streams
    /// that named it as their session while its HEADERS were arriving go with it: it
    /// is no session now, or a refused one. The answer counts toward
    /// [`MAX_REFUSED_REQUESTS`].
    pub fn respond(&mut self, quic: &mut Connection, now: Instant, stream: StreamId, status: u16) {
        let webtransport = self.session.as_ref().is_some_and(|s| s.id == stream);
        let mut send = quic.send_stream(stream);
        let _ = send.write(&qpack::response_frame(status, webtransport));
        let _ = send.finish();
        // RFC 9114 §4.1.1: a complete response lets the server stop reading the request.
        let _ = quic
            .recv_stream(stream)
            .stop(VarInt::from_u64(code::H3_NO_ERROR).unwrap_or(VarInt::MAX));
        self.remove(stream);
        if webtransport {
            self.session = None;
        }
        self.reject_pending(quic, u64::from(stream));
        self.request_refused(quic, now);
    }

    /// Read the application's stream: every chunk available now, up to `max` bytes,
    /// handed to `f` without copying.
    pub fn read(
        &mut self,
        quic: &mut Connection,
        stream: StreamId,
        max: usize,
        mut f: impl FnMut(Bytes),
    ) -> ReadEnd {
        let mut left = max;
        match self.find_mut(stream) {
            Some(Inbound::App { rest, .. }) => {
                if !rest.is_empty() {
                    let n = left.min(rest.len());
                    left -= n;
                    f(rest.split_to(n));
                    if left == 0 {
                        return ReadEnd::Limit;
                    }
                }
            }
            _ => return ReadEnd::Closed,
        }
        let mut recv = quic.recv_stream(stream);
        let Ok(mut chunks) = recv.read(true) else {
            return ReadEnd::Closed;
        };
        let end = loop {
            if left == 0 {
                break ReadEnd::Limit;
            }
            match chunks.next(left) {
                Ok(Some(c)) => {
                    left -= c.bytes.len();
                    f(c.bytes);
                }
                Ok(None) => break ReadEnd::Finished,
                Err(ReadError::Blocked) => break ReadEnd::Blocked,
                Err(ReadError::Reset(code)) => break ReadEnd::Reset(code.into_inner()),
            }
        };
        let _ = chunks.finalize();
        end
    }

    /// Write to the application's stream: how much was taken (0 when flow control is
    /// exhausted; [`H3Event::StreamWritable`] follows), or `None` when the stream is gone.
    pub fn write(&mut self, quic: &mut Connection, stream: StreamId, data: &[u8]) -> Option<usize> {
        match quic.send_stream(stream).write(data) {
            Ok(n) => Some(n),
            Err(WriteError::Blocked) => Some(0),
            Err(_) => None,
        }
    }

    /// Write shared chunks without copying them (a fan-out frame encoded once).
    /// Returns the number of whole chunks and bytes taken, or `None` when gone.
    pub fn write_chunks(
        &mut self,
        quic: &mut Connection,
        stream: StreamId,
        chunks: &mut [Bytes],
    ) -> Option<(usize, usize)> {
        match quic.send_stream(stream).write_chunks(chunks) {
            Ok(w) => Some((w.chunks, w.bytes)),
            Err(WriteError::Blocked) => Some((0, 0)),
            Err(e) => {
                tracing::debug!(stream = %stream, error = %e, "write to a closed stream");
                None
            }
        }
    }

    /// Finish our half of the application's stream (FIN).
    pub fn finish(&mut self, quic: &mut Connection, stream: StreamId) {
        let _ = quic.send_stream(stream).finish();
    }

    /// Abandon the application's stream in both directions with WebTransport
    /// application error `error` (RESET_STREAM and STOP_SENDING), and forget it.
    pub fn abort(&mut self, quic: &mut Connection, stream: StreamId, error: u32) {
        self.abort_stream(quic, stream, code::webtransport(error));
    }

    /// The application is done with `stream` (both halves ended): forget it.
    pub fn release(&mut self, stream: StreamId) {
        self.remove(stream);
    }

    /// Send an HTTP datagram on the session. False when there is no open session, the
    /// peer does not accept datagrams, or the datagram does not fit.
    pub fn send_datagram(&mut self, quic: &mut Connection, payload: &[u8]) -> bool {
        let Some(s) = self
            .session
            .as_ref()
            .filter(|s| s.state == SessionState::Open)
        else {
            return false;
        };
        if !self.peer_accepts_datagrams() {
            return false;
        }
        let mut d = Vec::with_capacity(payload.len() + 8);
        varint::put(&mut d, s.id.index());
        d.extend_from_slice(payload);
        quic.datagrams().send(d.into(), true).is_ok()
    }

    /// Close the session with application `code` and `reason`
    /// (draft-ietf-webtrans-http3 §5): CLOSE_WEBTRANSPORT_SESSION and FIN on the CONNECT
    /// stream; the QUIC connection closes with H3_NO_ERROR once the peer has
    /// acknowledged them, or after a short bound.
    pub fn close_session(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        limits: &H3Limits,
        code: u32,
        reason: &[u8],
    ) {
        if self.closed {
            return;
        }
        let Some(s) = self
            .session
            .as_mut()
            .filter(|s| s.state == SessionState::Open)
        else {
            // No open session: nothing to tell the peer at this level.
            return self.close_connection(quic, now, code::H3_NO_ERROR, "closing");
        };
        s.state = SessionState::Closing;
        let mut send = quic.send_stream(s.id);
        let _ = send.write(&capsule::close_data_frame(code, reason));
        let _ = send.finish();
        self.close_deadline = Some(now + limits.close_linger);
    }

    // ---- QUIC events -------------------------------------------------------------

    fn on_connected(&mut self, quic: &mut Connection, now: Instant, limits: &H3Limits) {
        // Our control stream and SETTINGS (RFC 9114 §6.2.1), sent first.
        let Some(id) = quic.streams().open(Dir::Uni) else {
            return self.fail(
                quic,
                now,
                ConnError::new(
                    code::H3_STREAM_CREATION_ERROR,
                    "no uni stream for our control stream",
                ),
            );
        };
        let mut bytes = Vec::with_capacity(1 + limits.settings_frame.len());
        varint::put(&mut bytes, STREAM_CONTROL);
        bytes.extend_from_slice(&limits.settings_frame);
        let _ = quic.send_stream(id).write(&bytes);
        self.control = Some(id);
        self.connect_deadline = Some(now + limits.connect_timeout);
    }

    fn on_lost(&mut self, reason: &ConnectionError) {
        let was_closed = self.closed;
        self.closed = true;
        self.connect_deadline = None;
        self.close_deadline = None;
        if let Some(s) = self.session.as_mut() {
            if matches!(s.state, SessionState::Open | SessionState::Requested) && !was_closed {
                let accepted = s.state == SessionState::Open;
                s.state = SessionState::Ended;
                if accepted {
                    self.events
                        .push_back(H3Event::SessionEnded(SessionEnd::from_connection(reason)));
                }
            }
        }
    }

    fn on_stream_event(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        limits: &H3Limits,
        ev: StreamEvent,
    ) {
        match ev {
            StreamEvent::Opened { dir } => {
                while let Some(id) = quic.streams().accept(dir) {
                    let state = match dir {
                        Dir::Uni => Inbound::UniType(VarintReader::default()),
                        Dir::Bi => Inbound::BiFirst(VarintReader::default()),
                    };
                    self.streams.push((id, state));
                    self.read_inbound(quic, now, limits, id);
                    if self.closed {
                        return;
                    }
                }
            }
            StreamEvent::Readable { id } => match self.find(id) {
                Some(Inbound::App { .. }) => self
                    .events
                    .push_back(H3Event::StreamReadable { stream: id }),
                Some(Inbound::Pending { .. }) | None => {}
                Some(_) => self.read_inbound(quic, now, limits, id),
            },
            StreamEvent::Writable { id } => {
                if matches!(self.find(id), Some(Inbound::App { .. })) {
                    self.events
                        .push_back(H3Event::StreamWritable { stream: id });
                }
            }
            StreamEvent::Finished { id } => {
                if matches!(self.find(id), Some(Inbound::App { .. })) {
                    self.events
                        .push_back(H3Event::StreamFinished { stream: id });
                }
            }
            StreamEvent::Stopped { id, error_code } => {
                // RFC 9000 §3.5: STOP_SENDING is answered with RESET_STREAM, so the
                // stream's sending half ends and its credit returns.
                let _ = quic.send_stream(id).reset(error_code);
                if matches!(self.find(id), Some(Inbound::App { .. })) {
                    self.events.push_back(H3Event::StreamStopped {
                        stream: id,
                        code: error_code.into_inner(),
                    });
                }
            }
            StreamEvent::Available { .. } => {}
        }
    }

    fn on_datagrams(&mut self, quic: &mut Connection) {
        let session = self
            .session
            .as_ref()
            .filter(|s| s.state == SessionState::Open)
            .map(|s| s.id.index());
        while let Some(mut d) = quic.datagrams().recv() {
            // RFC 9297 §2.1: the quarter stream id names the request stream.
            match varint::decode(&d) {
                Some((quarter, n)) if Some(quarter) == session => {
                    bytes::Buf::advance(&mut d, n);
                    self.events.push_back(H3Event::Datagram(d));
                }
                _ => self.stats.datagrams_unknown_session += 1,
            }
        }
    }

    // ---- streams this layer reads ------------------------------------------------

    pub(super) fn find(&self, id: StreamId) -> Option<&Inbound> {
        self.streams
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, st)| st)
    }

    pub(super) fn find_mut(&mut self, id: StreamId) -> Option<&mut Inbound> {
        self.streams
            .iter_mut()
            .find(|(s, _)| *s == id)
            .map(|(_, st)| st)
    }

    pub(super) fn remove(&mut self, id: StreamId) -> Option<Inbound> {
        let i = self.streams.iter().position(|(s, _)| *s == id)?;
        Some(self.streams.swap_remove(i).1)
    }

    pub(super) fn set(&mut self, id: StreamId, state: Inbound) {
        if let Some(st) = self.find_mut(id) {
            *st = state;
        }
    }

    /// The peer closed the session (capsule, or FIN as code 0).
    pub(super) fn on_peer_close(&mut self, quic: &mut Connection, now: Instant, code: u32) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.state {
            SessionState::Requested => s.peer_closed = Some(code),
            SessionState::Open => {
                // The peer's close is answered by finishing our side of the CONNECT
                // stream (draft-ietf-webtrans-http3 §5). With one session per
                // connection the peer then closes the connection; if it does not, we
                // do after a short bound.
                s.state = SessionState::Closing;
                let id = s.id;
                self.events
                    .push_back(H3Event::SessionEnded(SessionEnd::PeerClosed {
                        code: u64::from(code),
                        clean: code == 0,
                    }));
                let _ = quic.send_stream(id).finish();
                self.close_deadline = Some(now + CLOSE_LINGER);
            }
            // The peer answered our close (or both sides closed at once): the session
            // is over on both sides; the peer closes the connection, or we do shortly.
            SessionState::Closing => self.await_peer_close(now),
            SessionState::Ended => {}
        }
    }

    fn await_peer_close(&mut self, now: Instant) {
        let soon = now + ANSWERED_LINGER;
        self.close_deadline = Some(self.close_deadline.map_or(soon, |t| t.min(soon)));
    }

    pub(super) fn on_connect_reset(&mut self, quic: &mut Connection, now: Instant, code: u64) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.state {
            SessionState::Open => {
                s.state = SessionState::Ended;
                self.events
                    .push_back(H3Event::SessionEnded(SessionEnd::Error(format!(
                        "CONNECT stream reset with {code:#x}"
                    ))));
                self.close_connection(quic, now, code::H3_NO_ERROR, "");
            }
            SessionState::Requested => {
                // Cancelled before it was decided: forget it; the application's answer
                // then finds no session.
                let id = s.id;
                self.session = None;
                self.reject_pending(quic, u64::from(id));
            }
            SessionState::Closing => self.await_peer_close(now),
            SessionState::Ended => {}
        }
    }

    pub(super) fn reject_pending(&mut self, quic: &mut Connection, session: u64) {
        let pending: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, st)| matches!(st, Inbound::Pending { session: s, .. } if *s == session))
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            self.stats.streams_rejected += 1;
            self.abort_stream(quic, id, code::WEBTRANSPORT_BUFFERED_STREAM_REJECTED);
        }
    }

    /// Stop reading `id` and, when it is bidirectional, reset our half, with `code`.
    pub(super) fn abort_stream(&mut self, quic: &mut Connection, id: StreamId, code: u64) {
        let code = varint_code(code);
        let _ = quic.recv_stream(id).stop(code);
        if id.dir() == Dir::Bi {
            let _ = quic.send_stream(id).reset(code);
        }
        self.remove(id);
    }

    pub(super) fn finish_close(&mut self, quic: &mut Connection, now: Instant) {
        self.close_deadline = None;
        if let Some(s) = self.session.as_mut() {
            s.state = SessionState::Ended;
        }
        self.close_connection(quic, now, code::H3_NO_ERROR, "");
    }

    /// Close the connection because its client made the server hold more received
    /// data than the connection's budget (H3_EXCESSIVE_LOAD, RFC 9114 §8.1).
    pub fn excessive_load(&mut self, quic: &mut Connection, now: Instant) {
        self.overloaded(quic, now, "received data held past the connection's budget");
    }

    fn overloaded(&mut self, quic: &mut Connection, now: Instant, reason: &'static str) {
        self.fail(quic, now, ConnError::new(code::H3_EXCESSIVE_LOAD, reason));
    }

    /// A request was answered without opening a session (a status, or a stream error
    /// for its header section): past [`MAX_REFUSED_REQUESTS`] of them the connection
    /// is closed with H3_EXCESSIVE_LOAD, ending its session if it has one.
    pub(super) fn request_refused(&mut self, quic: &mut Connection, now: Instant) {
        if self.closed {
            return;
        }
        self.stats.requests_refused += 1;
        if self.stats.requests_refused > MAX_REFUSED_REQUESTS as u64 {
            self.stats.too_many_requests += 1;
            self.overloaded(quic, now, "too many requests without a session");
        }
    }

    pub(super) fn fail(&mut self, quic: &mut Connection, now: Instant, e: ConnError) {
        self.stats.protocol_errors += 1;
        tracing::debug!(error = %e, "HTTP/3 connection error");
        if let Some(s) = self.session.as_mut() {
            if s.state == SessionState::Open {
                s.state = SessionState::Ended;
                self.events
                    .push_back(H3Event::SessionEnded(SessionEnd::Error(
                        e.reason.to_string(),
                    )));
            }
        }
        self.close_connection(quic, now, e.code, e.reason);
    }

    /// Close the connection with HTTP/3 `code` and `reason` (once; later calls do
    /// nothing).
    pub fn close(&mut self, quic: &mut Connection, now: Instant, code: u64, reason: &'static str) {
        self.close_connection(quic, now, code, reason);
    }

    pub(super) fn close_connection(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        code: u64,
        reason: &'static str,
    ) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.connect_deadline = None;
        self.close_deadline = None;
        quic.close(
            now,
            varint_code(code),
            Bytes::from_static(reason.as_bytes()),
        );
    }
}

pub(super) fn varint_code(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

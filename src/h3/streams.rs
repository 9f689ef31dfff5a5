//! The peer streams the HTTP/3 layer reads itself, and the header of every
//! WebTransport stream before it becomes the application's: stream types, the control
//! stream's frames, request header sections, the CONNECT stream's capsules. Each piece
//! of input is parsed as it arrives, under the limits of `H3Limits`.

use std::time::Instant;

use bytes::Bytes;
use quinn_proto::{Connection, ReadError, StreamId, VarInt};

use super::capsule::{Capsule, CapsuleDecoder};
use super::conn::{varint_code, H3Conn, H3Event, H3Limits, Session, SessionState};
use super::frame::{self, FrameReader, Piece};
use super::inbound::Inbound;
use super::qpack::{self, HeadError};
use super::settings::{self, PeerSettings};
use super::varint::{self, VarintReader};
use super::{code, ConnError};

/// Uni stream types (RFC 9114 §6.2, RFC 9204 §4.2, draft-ietf-webtrans-http3 §4.2).
const STREAM_CONTROL: u64 = 0x00;
const STREAM_PUSH: u64 = 0x01;
const STREAM_QPACK_ENCODER: u64 = 0x02;
const STREAM_QPACK_DECODER: u64 = 0x03;
const STREAM_WEBTRANSPORT_UNI: u64 = 0x54;

/// GOAWAY, MAX_PUSH_ID and CANCEL_PUSH carry exactly one varint.
const MAX_ID_FRAME: usize = 8;

enum RequestStep {
    More,
    Headers,
}

enum StreamOrConn {
    Stream(u64),
    Conn(ConnError),
}

impl H3Conn {
    /// Read what this layer owns on `id`, one chunk at a time, so that each chunk's
    /// consequences (answers, hand-overs, errors) apply before the next is taken.
    pub(super) fn read_inbound(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        limits: &H3Limits,
        id: StreamId,
    ) {
        loop {
            if self.closed {
                return;
            }
            match self.find(id) {
                None | Some(Inbound::App { .. }) | Some(Inbound::Pending { .. }) => return,
                Some(_) => {}
            }
            let got = {
                let mut recv = quic.recv_stream(id);
                let Ok(mut chunks) = recv.read(true) else {
                    self.remove(id);
                    self.reject_pending(quic, u64::from(id));
                    return;
                };
                let got = chunks.next(usize::MAX);
                let _ = chunks.finalize();
                got
            };
            match got {
                Ok(Some(chunk)) => self.on_bytes(quic, now, limits, id, chunk.bytes),
                Ok(None) => return self.on_end(quic, now, id, None),
                Err(ReadError::Blocked) => return,
                Err(ReadError::Reset(code)) => {
                    return self.on_end(quic, now, id, Some(code.into_inner()))
                }
            }
        }
    }

    /// Bytes of a stream this layer reads.
    fn on_bytes(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        limits: &H3Limits,
        id: StreamId,
        chunk: Bytes,
    ) {
        let mut data: &[u8] = &chunk;
        // The stream is looked up once per state it passes through, not once per frame:
        // a client may pack hundreds of empty frames into one packet, and the look-up
        // walks all the connection's streams.
        while !data.is_empty() && !self.closed {
            let Some(at) = self.streams.iter().position(|(s, _)| *s == id) else {
                return;
            };
            // What other streams' header sections leave of the connection's budget for
            // this one's (only a request assembles one; the others do not change while
            // this chunk is read).
            let room = match self.streams[at].1 {
                Inbound::Request { .. } => limits
                    .max_field_section
                    .saturating_sub(self.sections_in_assembly(id)),
                _ => 0,
            };
            let state = &mut self.streams[at].1;
            match state {
                Inbound::UniType(r) => {
                    if let Some(ty) = r.feed(&mut data) {
                        if let Err(e) = self.on_uni_type(quic, id, ty) {
                            return self.fail(quic, now, e);
                        }
                    }
                }
                Inbound::Control {
                    reader,
                    payload,
                    settings_seen,
                } => {
                    while let Some(piece) = reader.next(&mut data) {
                        match control_piece(piece, payload, settings_seen) {
                            Ok(Some(s)) => self.peer_settings = Some(s),
                            Ok(None) => {}
                            Err(e) => return self.fail(quic, now, e),
                        }
                    }
                }
                Inbound::Qpack | Inbound::Answering => return,
                Inbound::WtUniHeader(r) => {
                    if let Some(session) = r.feed(&mut data) {
                        let rest = chunk.slice_ref(data);
                        return self.on_wt_header(quic, now, id, session, false, rest);
                    }
                }
                Inbound::BiFirst(r) => {
                    let Some(ty) = r.feed(&mut data) else {
                        continue;
                    };
                    if ty == frame::WEBTRANSPORT_STREAM {
                        *state = Inbound::WtBiHeader(VarintReader::default());
                        // Not a request after all: no session will have its id.
                        self.reject_pending(quic, u64::from(id));
                    } else if let Err(e) = check_request_frame(ty) {
                        return self.fail(quic, now, e);
                    } else {
                        *state = Inbound::Request {
                            reader: FrameReader::with_type(ty),
                            headers: Vec::new(),
                        };
                    }
                }
                Inbound::WtBiHeader(r) => {
                    if let Some(session) = r.feed(&mut data) {
                        let rest = chunk.slice_ref(data);
                        return self.on_wt_header(quic, now, id, session, true, rest);
                    }
                }
                Inbound::Request { reader, headers } => {
                    while let Some(piece) = reader.next(&mut data) {
                        match request_piece(piece, headers, limits.max_field_section, room) {
                            Ok(RequestStep::More) => {}
                            Ok(RequestStep::Headers) => {
                                let block = std::mem::take(headers);
                                // The request is answered or becomes a session: the
                                // stream's state is no longer this one.
                                self.on_request(quic, now, id, &block);
                                break;
                            }
                            Err(StreamOrConn::Conn(e)) => return self.fail(quic, now, e),
                            Err(StreamOrConn::Stream(code)) => {
                                self.abort_stream(quic, id, code);
                                self.reject_pending(quic, u64::from(id));
                                return self.request_refused(quic, now);
                            }
                        }
                    }
                }
                Inbound::Connect => {
                    if let Err(e) = self.on_connect_bytes(quic, now, &mut data) {
                        return self.fail(quic, now, e);
                    }
                }
                Inbound::Pending { .. } | Inbound::App { .. } => return,
            }
        }
    }

    /// A stream this layer reads ended: a FIN (`reset` = None) or a reset.
    fn on_end(&mut self, quic: &mut Connection, now: Instant, id: StreamId, reset: Option<u64>) {
        let Some(state) = self.remove(id) else {
            return;
        };
        match state {
            Inbound::Control { .. } | Inbound::Qpack => self.fail(
                quic,
                now,
                ConnError::new(
                    code::H3_CLOSED_CRITICAL_STREAM,
                    "a critical stream was closed",
                ),
            ),
            Inbound::Connect => {
                let clean_fin = reset.is_none()
                    && self
                        .session
                        .as_ref()
                        .is_some_and(|s| s.reader.at_boundary() && s.capsules.at_boundary());
                match reset {
                    // A FIN ends the session like a close with code 0 (§5).
                    None if clean_fin => self.on_peer_close(quic, now, 0),
                    None => self.fail(
                        quic,
                        now,
                        ConnError::new(
                            code::H3_MESSAGE_ERROR,
                            "CONNECT stream ended inside a frame",
                        ),
                    ),
                    Some(code) => self.on_connect_reset(quic, now, code),
                }
            }
            Inbound::Request { .. } | Inbound::BiFirst(_) | Inbound::WtBiHeader(_) => {
                // Ended before it said what it is: end our half too, so the stream
                // closes and its credit returns.
                let code = if reset.is_some() {
                    code::H3_REQUEST_CANCELLED
                } else {
                    code::H3_REQUEST_INCOMPLETE
                };
                let _ = quic
                    .send_stream(id)
                    .reset(VarInt::from_u64(code).unwrap_or(VarInt::MAX));
                // Streams waiting for a session of this id will never have one.
                self.reject_pending(quic, u64::from(id));
            }
            _ => {}
        }
    }

    /// Bytes of the header sections being assembled on request streams other than
    /// `except`: together with the one arriving they stay within one section's limit,
    /// the amount the connection's receive budget counts for them.
    fn sections_in_assembly(&self, except: StreamId) -> usize {
        self.streams
            .iter()
            .filter(|(s, _)| *s != except)
            .map(|(_, st)| match st {
                Inbound::Request { headers, .. } => headers.len(),
                _ => 0,
            })
            .sum()
    }

    fn on_uni_type(
        &mut self,
        quic: &mut Connection,
        id: StreamId,
        ty: u64,
    ) -> Result<(), ConnError> {
        let creation = |reason| ConnError::new(code::H3_STREAM_CREATION_ERROR, reason);
        let state = match ty {
            STREAM_CONTROL => {
                if self.peer_control.replace(id).is_some() {
                    return Err(creation("a second control stream"));
                }
                Inbound::Control {
                    reader: FrameReader::default(),
                    payload: Vec::new(),
                    settings_seen: false,
                }
            }
            STREAM_PUSH => return Err(creation("a client may not open a push stream")),
            STREAM_QPACK_ENCODER => {
                if self.peer_encoder.replace(id).is_some() {
                    return Err(creation("a second QPACK encoder stream"));
                }
                Inbound::Qpack
            }
            STREAM_QPACK_DECODER => {
                if self.peer_decoder.replace(id).is_some() {
                    return Err(creation("a second QPACK decoder stream"));
                }
                Inbound::Qpack
            }
            STREAM_WEBTRANSPORT_UNI => Inbound::WtUniHeader(VarintReader::default()),
            _ => {
                // RFC 9114 §6.2: an unknown stream type is not read.
                let _ = quic
                    .recv_stream(id)
                    .stop(varint_code(code::H3_STREAM_CREATION_ERROR));
                self.remove(id);
                return Ok(());
            }
        };
        self.set(id, state);
        Ok(())
    }

    fn on_wt_header(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        id: StreamId,
        session: u64,
        bidi: bool,
        rest: Bytes,
    ) {
        // draft-ietf-webtrans-http3 §4: a session id must name a client-initiated
        // bidirectional stream.
        if session % 4 != 0 {
            return self.fail(
                quic,
                now,
                ConnError::new(
                    code::H3_ID_ERROR,
                    "WebTransport session id is not a request stream",
                ),
            );
        }
        let ours = self.session.as_ref().filter(|s| u64::from(s.id) == session);
        let state = match ours.map(|s| s.state) {
            Some(SessionState::Open) => {
                self.events
                    .push_back(H3Event::StreamOpened { stream: id, bidi });
                Inbound::App { rest }
            }
            Some(SessionState::Requested) => Inbound::Pending {
                session,
                bidi,
                rest,
            },
            Some(SessionState::Closing | SessionState::Ended) => {
                self.stats.streams_rejected += 1;
                return self.abort_stream(quic, id, code::WEBTRANSPORT_SESSION_GONE);
            }
            None => {
                // A request whose HEADERS are still arriving may become this session.
                let undecided = self.streams.iter().any(|(s, st)| {
                    u64::from(*s) == session
                        && matches!(st, Inbound::Request { .. } | Inbound::BiFirst(_))
                });
                if !undecided {
                    self.stats.streams_rejected += 1;
                    return self.abort_stream(
                        quic,
                        id,
                        code::WEBTRANSPORT_BUFFERED_STREAM_REJECTED,
                    );
                }
                Inbound::Pending {
                    session,
                    bidi,
                    rest,
                }
            }
        };
        self.set(id, state);
    }

    fn on_request(&mut self, quic: &mut Connection, now: Instant, id: StreamId, block: &[u8]) {
        let head = match qpack::decode_request(block) {
            Ok(h) => h,
            Err(e @ HeadError::Decompression) => {
                return self.fail(
                    quic,
                    now,
                    ConnError::new(e.code(), "undecodable header section"),
                )
            }
            Err(e @ HeadError::Malformed(_)) => {
                self.abort_stream(quic, id, e.code());
                self.reject_pending(quic, u64::from(id));
                return self.request_refused(quic, now);
            }
        };
        if !head.is_webtransport() {
            self.set(id, Inbound::Answering);
            self.events.push_back(H3Event::Request { stream: id, head });
            return;
        }
        if self.session.is_some() {
            // One session per connection.
            self.set(id, Inbound::Answering);
            return self.respond(quic, now, id, 429);
        }
        self.session = Some(Session {
            id,
            state: SessionState::Requested,
            reader: FrameReader::default(),
            capsules: CapsuleDecoder::default(),
            peer_closed: None,
        });
        self.set(id, Inbound::Connect);
        self.events.push_back(H3Event::Request { stream: id, head });
    }

    /// Frames on the CONNECT stream after its HEADERS: DATA payloads carry capsules.
    fn on_connect_bytes(
        &mut self,
        quic: &mut Connection,
        now: Instant,
        data: &mut &[u8],
    ) -> Result<(), ConnError> {
        while !data.is_empty() && !self.closed {
            let Some(s) = self.session.as_mut() else {
                *data = &[];
                return Ok(());
            };
            let Some(piece) = s.reader.next(data) else {
                return Ok(());
            };
            match piece {
                Piece::Start { ty, .. } => {
                    if ty != frame::DATA && ty != frame::HEADERS {
                        check_request_frame(ty)?;
                    }
                }
                Piece::Payload {
                    ty: frame::DATA,
                    data: mut payload,
                    ..
                } => {
                    while let Some(s) = self.session.as_mut() {
                        match s.capsules.feed(&mut payload) {
                            Ok(Some(Capsule::Close { code, .. })) => {
                                self.on_peer_close(quic, now, code);
                                if self.closed {
                                    return Ok(());
                                }
                            }
                            // A request to wind down: this server ends sessions itself.
                            Ok(Some(Capsule::Drain)) => {}
                            Ok(None) => break,
                            Err(_) => {
                                return Err(ConnError::new(
                                    code::H3_MESSAGE_ERROR,
                                    "malformed capsule",
                                ))
                            }
                        }
                    }
                }
                // Trailers and unknown frames on the CONNECT stream are skipped.
                Piece::Payload { .. } => {}
            }
        }
        Ok(())
    }
}

/// Frame types that may open a request stream (RFC 9114 §4.1, §7.2).
fn check_request_frame(ty: u64) -> Result<(), ConnError> {
    match ty {
        frame::DATA => Err(ConnError::new(
            code::H3_FRAME_UNEXPECTED,
            "DATA before HEADERS",
        )),
        frame::SETTINGS
        | frame::GOAWAY
        | frame::MAX_PUSH_ID
        | frame::CANCEL_PUSH
        | frame::PUSH_PROMISE => Err(ConnError::new(
            code::H3_FRAME_UNEXPECTED,
            "control frame on a request stream",
        )),
        t if frame::is_http2_reserved(t) => Err(ConnError::new(
            code::H3_FRAME_UNEXPECTED,
            "HTTP/2 frame type",
        )),
        _ => Ok(()),
    }
}

/// One piece of a request stream before its HEADERS are complete. `max` is the limit
/// of one section; `room` what is left of it beside the sections being assembled on
/// the connection's other request streams.
fn request_piece(
    piece: Piece<'_>,
    headers: &mut Vec<u8>,
    max: usize,
    room: usize,
) -> Result<RequestStep, StreamOrConn> {
    match piece {
        Piece::Start {
            ty: frame::HEADERS,
            len,
        } => {
            if len == 0 {
                return Err(StreamOrConn::Stream(code::H3_MESSAGE_ERROR));
            }
            if len > max as u64 {
                return Err(StreamOrConn::Stream(code::H3_EXCESSIVE_LOAD));
            }
            // Nothing is reserved for the declared length: a client could declare a
            // full section on every request stream and send none of it. The section
            // grows with what arrives.
            Ok(RequestStep::More)
        }
        Piece::Start { ty, .. } => check_request_frame(ty)
            .map(|()| RequestStep::More)
            .map_err(StreamOrConn::Conn),
        Piece::Payload {
            ty: frame::HEADERS,
            data,
            end,
        } => {
            // Many request streams could each assemble a whole section; together they
            // may hold one.
            if headers.len() + data.len() > room {
                return Err(StreamOrConn::Stream(code::H3_EXCESSIVE_LOAD));
            }
            headers.extend_from_slice(data);
            Ok(if end {
                RequestStep::Headers
            } else {
                RequestStep::More
            })
        }
        // Unknown frames before HEADERS are skipped (RFC 9114 §9).
        Piece::Payload { .. } => Ok(RequestStep::More),
    }
}

/// One piece of the peer's control stream. Returns the peer's SETTINGS once complete.
fn control_piece(
    piece: Piece<'_>,
    payload: &mut Vec<u8>,
    settings_seen: &mut bool,
) -> Result<Option<PeerSettings>, ConnError> {
    let unexpected = |reason| ConnError::new(code::H3_FRAME_UNEXPECTED, reason);
    match piece {
        Piece::Start { ty, len } => {
            if !*settings_seen && ty != frame::SETTINGS {
                return Err(ConnError::new(
                    code::H3_MISSING_SETTINGS,
                    "the control stream must start with SETTINGS",
                ));
            }
            payload.clear();
            match ty {
                frame::SETTINGS => {
                    if *settings_seen {
                        return Err(unexpected("a second SETTINGS frame"));
                    }
                    *settings_seen = true;
                    if len > settings::MAX_PEER_SETTINGS_BYTES as u64 {
                        return Err(ConnError::new(
                            code::H3_EXCESSIVE_LOAD,
                            "SETTINGS too large",
                        ));
                    }
                    if len == 0 {
                        return Ok(Some(PeerSettings::default()));
                    }
                }
                frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH
                    if len == 0 || len > MAX_ID_FRAME as u64 =>
                {
                    return Err(ConnError::new(
                        code::H3_FRAME_ERROR,
                        "frame must carry one varint",
                    ));
                }
                frame::DATA | frame::HEADERS | frame::PUSH_PROMISE => {
                    return Err(unexpected("request frame on the control stream"))
                }
                t if frame::is_http2_reserved(t) => return Err(unexpected("HTTP/2 frame type")),
                _ => {}
            }
            Ok(None)
        }
        Piece::Payload { ty, data, end } => {
            if !matches!(
                ty,
                frame::SETTINGS | frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH
            ) {
                return Ok(None);
            }
            payload.extend_from_slice(data);
            if !end {
                return Ok(None);
            }
            let whole = std::mem::take(payload);
            if ty == frame::SETTINGS {
                return settings::parse(&whole).map(Some);
            }
            match varint::decode(&whole) {
                Some((_, n)) if n == whole.len() => Ok(None),
                _ => Err(ConnError::new(
                    code::H3_FRAME_ERROR,
                    "frame must carry one varint",
                )),
            }
        }
    }
}

//! The per-connection signaling session, sans-IO (docs/protocol.md "Transport and framing",
//! rules 4, 5, 12).
//!
//! Bytes from the client's bidirectional stream go in ([`Session::handle_bytes`]);
//! decoded client messages come out ([`Session::poll_event`]). Server messages go in
//! ([`Session::send`] / [`Session::send_frame`]) and leave as bytes for the stream
//! ([`Session::poll_transmit`] + [`Session::advance_transmit`], or by value with
//! [`Session::transmit_head`]). When the session must end, [`Session::poll_close`]
//! names the WebTransport close code once the queued bytes (typically a final
//! `ErrorMessage`) are flushed.
//!
//! Order of calls per driver pass: `handle_bytes` → `poll_event` until `None` → hand
//! events to the meeting → `send*` its output → `transmit_head` (or
//! `poll_transmit`/`advance_transmit`) → `poll_close`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes};

use super::codec::{self, CodecError, FrameDecoder, DEFAULT_MAX_FRAME};
use super::proto::{client_message, pb, repeated_fields, ClientMessage, ErrorCode, ServerMessage};

/// WebTransport session close codes (docs/protocol.md rule 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 0: normal.
    Normal,
    /// 0x100: protocol violation (framing, first message not a join).
    ProtocolViolation,
    /// 0x101: unauthorized (token or binding token).
    Unauthorized,
    /// 0x102: capacity.
    Capacity,
    /// 0x103: draining / meeting ended.
    Draining,
    /// 0x104: slow consumer, the outbound queue is full.
    SlowConsumer,
    /// 0x105: rate limited.
    RateLimited,
    /// 0x106: replaced by a recovered session.
    Replaced,
}

impl CloseCode {
    /// The application close code on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::ProtocolViolation => 0x100,
            Self::Unauthorized => 0x101,
            Self::Capacity => 0x102,
            Self::Draining => 0x103,
            Self::SlowConsumer => 0x104,
            Self::RateLimited => 0x105,
            Self::Replaced => 0x106,
        }
    }

    /// The `reason` label of `mc_sessions_closed_total`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::ProtocolViolation => "protocol_violation",
            Self::Unauthorized => "unauthorized",
            Self::Capacity => "capacity",
            Self::Draining => "draining",
            Self::SlowConsumer => "slow_consumer",
            Self::RateLimited => "rate_limited",
            Self::Replaced => "replaced",
        }
    }
}

/// Signaling session limits (flattened into the top-level `Config`).
#[derive(clap::Args, Debug, Clone)]
pub struct SignalingArgs {
    /// Largest signaling frame payload accepted from or sent to a client, in bytes
    /// (inclusive; docs/protocol.md rule 12).
    #[arg(long, env = "MC_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame_bytes: usize,
    /// Bytes a session may hold queued for a client before it is closed as a slow
    /// consumer (0x104).
    #[arg(long, env = "MC_SESSION_OUTBOUND_MAX_BYTES", default_value_t = 1 << 20)]
    pub session_outbound_max_bytes: usize,
    /// Frames a session may hold queued for a client before it is closed as a slow
    /// consumer (0x104).
    #[arg(long, env = "MC_SESSION_OUTBOUND_MAX_FRAMES", default_value_t = 1024)]
    pub session_outbound_max_frames: usize,
    /// Sustained client messages per second per session (token bucket refill rate);
    /// excess closes the session with 0x105.
    #[arg(long, env = "MC_SESSION_MESSAGE_RATE", default_value_t = 50)]
    pub session_message_rate: u32,
    /// Burst of client messages a session may send above the sustained rate.
    #[arg(long, env = "MC_SESSION_MESSAGE_BURST", default_value_t = 100)]
    pub session_message_burst: u32,
    /// Bytes all the sessions of one shard may hold queued for their clients together
    /// (at least `--session-outbound-max-bytes`).
    /// Past it, a session handed a frame while it holds more than an eighth of
    /// `--session-outbound-max-bytes` is closed as a slow consumer (0x104), counted in
    /// `mc_refusals_total{reason="outbound_budget"}`. The shard's connections' QUIC send
    /// windows share as much again: the window halves (down to 16 KiB) while the
    /// connections times their window would pass it, so they hold at most this or 16 KiB
    /// per connection, whichever is more.
    #[arg(long, env = "MC_SHARD_OUTBOUND_MAX_BYTES", default_value_t = DEFAULT_SHARD_OUTBOUND_MAX)]
    pub shard_outbound_max_bytes: usize,
}

/// Default of `--shard-outbound-max-bytes`: 128 MiB.
pub const DEFAULT_SHARD_OUTBOUND_MAX: usize = 128 << 20;

impl SignalingArgs {
    /// Validates the flags into a [`SessionConfig`].
    pub fn session_config(&self) -> Result<SessionConfig, SessionError> {
        let c = SessionConfig {
            max_frame: self.max_frame_bytes,
            outbound_max_bytes: self.session_outbound_max_bytes,
            outbound_max_frames: self.session_outbound_max_frames,
            rate_per_sec: self.session_message_rate,
            rate_burst: self.session_message_burst,
        };
        c.validate()?;
        // A shard budget below one session's own limit would close a session for a queue
        // that session is allowed to hold.
        if self.shard_outbound_max_bytes < self.session_outbound_max_bytes {
            return Err(SessionError::InvalidConfig(
                "shard outbound max bytes must be at least the session outbound max bytes",
            ));
        }
        Ok(c)
    }
}

/// Validated session limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub max_frame: usize,
    pub outbound_max_bytes: usize,
    pub outbound_max_frames: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
}

impl SessionConfig {
    fn validate(&self) -> Result<(), SessionError> {
        if self.max_frame == 0 || self.max_frame > u32::MAX as usize {
            return Err(SessionError::InvalidConfig(
                "max frame bytes must be 1..=u32::MAX",
            ));
        }
        if self.outbound_max_bytes < self.max_frame + codec::HEADER_LEN {
            return Err(SessionError::InvalidConfig(
                "session outbound max bytes must hold at least one maximal frame",
            ));
        }
        if self.outbound_max_frames == 0 || self.rate_per_sec == 0 || self.rate_burst == 0 {
            return Err(SessionError::InvalidConfig(
                "outbound max frames, message rate and burst must be non-zero",
            ));
        }
        Ok(())
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            outbound_max_bytes: 1 << 20,
            outbound_max_frames: 1024,
            rate_per_sec: 50,
            rate_burst: 100,
        }
    }
}

/// Errors of the session layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("outbound queue full: slow consumer")]
    SlowConsumer,
    #[error("session is closing")]
    Closing,
    #[error("invalid signaling config: {0}")]
    InvalidConfig(&'static str),
}

impl SessionError {
    /// The close code this error leads to, if it ends the session.
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Self::Codec(_) => Some(CloseCode::ProtocolViolation),
            Self::SlowConsumer => Some(CloseCode::SlowConsumer),
            Self::Closing | Self::InvalidConfig(_) => None,
        }
    }
}

/// Longest `trace_parent` kept (docs/protocol.md rule 1): W3C Trace Context's version
/// 00 `traceparent` is 55 bytes; the rest leaves room for later versions.
pub const MAX_TRACE_PARENT: usize = 256;
/// Longest `trace_state` kept: W3C Trace Context asks that at least 512 bytes of
/// `tracestate` be carried on.
pub const MAX_TRACE_STATE: usize = 512;

/// Clears trace context longer than W3C Trace Context allows, so that a message waiting
/// in a queue holds no more than its meeting can use. Tracing is optional: the message
/// itself is unaffected.
fn bound_trace_context(msg: &mut ClientMessage) {
    if msg.trace_parent.len() > MAX_TRACE_PARENT {
        msg.trace_parent = String::new();
    }
    if msg.trace_state.len() > MAX_TRACE_STATE {
        msg.trace_state = String::new();
    }
}

/// Most entries a client message may carry in any one repeated field; a message with
/// more is answered `ErrorMessage{INVALID_REQUEST}` here (rule 4), before it is queued
/// for its meeting. A repeated entry costs a byte or two on the wire and its whole
/// struct once decoded (an empty `MhConnectionStatus` is two bytes sent and about a
/// hundred held), so a 64 KiB frame of them decodes to megabytes. The queues between a
/// session and its meeting (the mesh, a hand-over's held inputs) weigh a message by
/// what it holds decoded (`ClientMessage::held_len`), and this bound keeps that to tens
/// of kilobytes. The meeting's own limits are lower (256 user ids or stream ids in a
/// layout, 32 statuses, 8 simulcast layers) and still apply.
pub const MAX_LIST_ENTRIES: usize = 256;

/// The longest repeated field of a client message, in entries. The join's capability
/// lists, which the MC does not use, are left out: [`bound_join`] cuts them.
fn longest_list(msg: &client_message::Message) -> usize {
    if let client_message::Message::JoinRequest(_) = msg {
        return 0;
    }
    let fields = repeated_fields(msg);
    fields.iter().map(|&(n, _)| n).max().unwrap_or(0)
}

/// Cuts the join's capability lists to [`MAX_LIST_ENTRIES`] (and gives back what they
/// held beyond): the join waits for its keys and crosses to its meeting's shard, and
/// the MC reads none of it.
fn bound_join(request: &mut pb::JoinRequest) {
    if let Some(caps) = request.capabilities.as_mut() {
        for list in [&mut caps.video_codecs, &mut caps.audio_codecs] {
            if list.len() > MAX_LIST_ENTRIES {
                list.truncate(MAX_LIST_ENTRIES);
                list.shrink_to_fit();
            }
        }
    }
}

/// What the client sent, for the meeting layer.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The first frame: a join request (trace context alongside).
    Join {
        request: pb::JoinRequest,
        trace_parent: String,
    },
    /// Any later message with a known oneof case.
    Message(ClientMessage),
}

/// Plain counters, published by the shard at scrape time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub unknown_messages: u64,
    pub rate_limited: u64,
    /// Messages answered INVALID_REQUEST for a repeated field over [`MAX_LIST_ENTRIES`].
    pub oversized_lists: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingJoin,
    Open,
}

/// Token bucket in micro-tokens (integer arithmetic, injected time). Also the meeting's
/// budgets: its requests that notify every participant, and each user's share of them
/// and fresh joins.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    micro: u64,
    cap: u64,
    rate: u64,
    last: Instant,
}

const MICRO: u64 = 1_000_000;

/// The `ErrorMessage` text of a session past its message rate (docs/protocol.md).
pub const REFUSED_SESSION_RATE: &str = "message rate limit exceeded";
/// The `ErrorMessage` text of a join on a session that has joined.
pub const ALREADY_JOINED: &str = "already joined";

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let cap = u64::from(burst.max(1)) * MICRO;
        Self {
            micro: cap,
            cap,
            rate: u64::from(rate),
            last: now,
        }
    }

    /// As [`TokenBucket::new`], holding `left` whole tokens at `now` (at most the burst):
    /// a budget carried over from another MC.
    pub(crate) fn with_left(rate: u32, burst: u32, left: u32, now: Instant) -> Self {
        let mut b = Self::new(rate, burst, now);
        b.micro = (u64::from(left) * MICRO).min(b.cap);
        b
    }

    /// Whole tokens there would be at `now`, without changing the bucket.
    pub(crate) fn left(&self, now: Instant) -> u32 {
        u32::try_from(self.refilled(now) / MICRO).unwrap_or(u32::MAX)
    }

    /// Micro-tokens at `now`: what there was, refilled for the time since the last call.
    fn refilled(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_micros() as u64).saturating_mul(self.rate);
        self.micro.saturating_add(refill).min(self.cap)
    }

    /// The most whole tokens the bucket holds.
    pub(crate) fn burst(&self) -> u32 {
        u32::try_from(self.cap / MICRO).unwrap_or(u32::MAX)
    }

    /// Takes one token if there is one, after refilling for the time since the last call.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.ready(now) {
            self.micro -= MICRO;
            true
        } else {
            false
        }
    }

    /// Refills for the time since the last call and tells whether a token is there,
    /// without taking it: for a request that must pass two buckets before spending
    /// either.
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.micro >= MICRO
    }

    /// Refills for the time since the last call.
    fn refill(&mut self, now: Instant) {
        self.micro = self.refilled(now);
        self.last = self.last.max(now);
    }

    /// Takes the token [`TokenBucket::ready`] found.
    pub(crate) fn spend(&mut self) {
        self.micro = self.micro.saturating_sub(MICRO);
    }

    /// Takes `n` tokens if there are as many, after refilling: a bucket refilled once
    /// a second whose requests cost `n` admits one every `n` seconds.
    pub(crate) fn take_n(&mut self, now: Instant, n: u32) -> bool {
        self.refill(now);
        let cost = u64::from(n) * MICRO;
        if self.micro >= cost {
            self.micro -= cost;
            true
        } else {
            false
        }
    }
}

/// One client's signaling session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    decoder: FrameDecoder,
    state: State,
    events: VecDeque<SessionEvent>,
    /// When bytes last arrived: the rate budget's clock for the frames decoded from
    /// what the decoder holds.
    received_at: Instant,
    /// Decoding stopped at a join with frames possibly behind it ([`Self::decode`]).
    behind_join: bool,
    /// Frames for the client; the head frame holds only its unwritten bytes.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    close: Option<CloseCode>,
    bucket: TokenBucket,
    stats: SessionStats,
}

impl Session {
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        Self {
            decoder: FrameDecoder::new(cfg.max_frame),
            bucket: TokenBucket::new(cfg.rate_per_sec, cfg.rate_burst, now),
            cfg,
            state: State::AwaitingJoin,
            events: VecDeque::new(),
            received_at: now,
            behind_join: false,
            out: VecDeque::new(),
            out_bytes: 0,
            close: None,
            stats: SessionStats::default(),
        }
    }

    /// Feeds bytes read from the client's stream. Decoded messages queue as events; a
    /// framing violation queues an `ErrorMessage` and decides close 0x100.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.close.is_some() {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        self.decoder.push(data);
        self.received_at = now;
        self.decode();
    }

    /// Decodes the frames buffered, as far as the join. What follows a join stays
    /// encoded until the join's event has been taken and the caller asks for the next
    /// ([`Self::poll_event`]): a join may wait for its signing keys, and what the
    /// client sent behind it would otherwise wait decoded, which can be fifty times its
    /// size on the wire (an empty list entry is two bytes there, a hundred decoded).
    /// So a framing error or a burst past the rate budget behind the join shows once
    /// the join has been taken, as it would had it come in a later read: the join goes
    /// to its meeting, and the session's close follows it.
    fn decode(&mut self) {
        let now = self.received_at;
        self.behind_join = false;
        while self.close.is_none() {
            if matches!(self.events.back(), Some(SessionEvent::Join { .. })) {
                self.behind_join = true;
                break;
            }
            match self.decoder.next_message::<ClientMessage>() {
                Ok(Some(msg)) => self.on_message(now, msg),
                Ok(None) => break,
                Err(e) => {
                    // Rule 4: ErrorMessage when possible, then close.
                    let reason = e.reason();
                    self.fail(
                        ErrorCode::InvalidRequest,
                        reason,
                        CloseCode::ProtocolViolation,
                    );
                }
            }
        }
        self.decoder.release();
    }

    /// Bytes the session holds allocated for frames being assembled.
    pub fn receive_capacity(&self) -> usize {
        self.decoder.capacity()
    }

    fn on_message(&mut self, now: Instant, mut msg: ClientMessage) {
        self.stats.frames_in += 1;
        bound_trace_context(&mut msg);
        if !self.bucket.take(now) {
            self.stats.rate_limited += 1;
            self.fail(
                ErrorCode::InvalidRequest,
                REFUSED_SESSION_RATE,
                CloseCode::RateLimited,
            );
            return;
        }
        match (self.state, msg.message) {
            (State::AwaitingJoin, Some(client_message::Message::JoinRequest(mut request))) => {
                self.state = State::Open;
                bound_join(&mut request);
                self.events.push_back(SessionEvent::Join {
                    request,
                    trace_parent: msg.trace_parent,
                });
            }
            // Rule 4: a non-join first message is INVALID_REQUEST, then close.
            (State::AwaitingJoin, _) => self.fail(
                ErrorCode::InvalidRequest,
                "first message must be a join_request",
                CloseCode::ProtocolViolation,
            ),
            // Rule 4: unknown oneof case → INVALID_REQUEST, the session stays up.
            (State::Open, None) => {
                self.stats.unknown_messages += 1;
                let _ = self.send(&ServerMessage::error(
                    ErrorCode::InvalidRequest,
                    "unknown message",
                ));
            }
            // Rule 4: a join on a session that has joined is a per-request problem. Its
            // meeting would answer it the same, but it need not cross to the meeting's
            // shard, capability lists and all, to be told.
            (State::Open, Some(client_message::Message::JoinRequest(_))) => {
                let _ = self.send(&ServerMessage::error(
                    ErrorCode::InvalidRequest,
                    ALREADY_JOINED,
                ));
            }
            // Rule 4: a per-request problem, the session stays up.
            (State::Open, Some(m)) if longest_list(&m) > MAX_LIST_ENTRIES => {
                self.stats.oversized_lists += 1;
                let _ = self.send(&ServerMessage::error(
                    ErrorCode::InvalidRequest,
                    "too many list entries",
                ));
            }
            (State::Open, Some(m)) => self.events.push_back(SessionEvent::Message(ClientMessage {
                message: Some(m),
                trace_parent: msg.trace_parent,
                trace_state: msg.trace_state,
            })),
        }
    }

    /// Queues `ErrorMessage{code, message}` (if it fits) and decides to close.
    pub fn fail(&mut self, code: ErrorCode, message: &str, close: CloseCode) {
        let _ = self.send(&ServerMessage::error(code, message));
        self.close(close);
    }

    /// The next client event, decoding what waited behind a join once the join has
    /// been taken. A caller that stops asking (a join waiting for its keys) leaves the
    /// rest encoded.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        if self.events.is_empty() && self.behind_join {
            self.decode();
        }
        self.events.pop_front()
    }

    /// Encodes and queues one server message.
    pub fn send(&mut self, msg: &ServerMessage) -> Result<(), SessionError> {
        if self.close.is_some_and(|c| c == CloseCode::SlowConsumer) {
            return Err(SessionError::Closing);
        }
        let frame = codec::encode_to_bytes(msg, self.cfg.max_frame)?;
        self.send_frame(frame)
    }

    /// Queues one already-encoded frame (encode once, fan out the same `Bytes`). A full
    /// queue closes the session with 0x104 instead of growing (rule 5).
    pub fn send_frame(&mut self, frame: Bytes) -> Result<(), SessionError> {
        if self.close == Some(CloseCode::SlowConsumer) {
            return Err(SessionError::Closing);
        }
        if self.out.len() + 1 > self.cfg.outbound_max_frames
            || self.out_bytes + frame.len() > self.cfg.outbound_max_bytes
        {
            self.out.clear();
            self.out_bytes = 0;
            self.close = Some(CloseCode::SlowConsumer);
            return Err(SessionError::SlowConsumer);
        }
        self.out_bytes += frame.len();
        self.out.push_back(frame);
        Ok(())
    }

    /// Decides to close the session with `code` (the first decision wins).
    pub fn close(&mut self, code: CloseCode) {
        self.close.get_or_insert(code);
        self.events.clear();
    }

    /// Unwritten bytes of the head frame, if any.
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        self.out.front().map(|f| &f[..])
    }

    /// Hands the unwritten part of the head frame to `write`, which takes off its
    /// front what it writes: `quinn_proto`'s `write_chunks` moves a whole chunk out
    /// and splits a partial one, so the transport keeps the shared frame until the
    /// client acknowledges it without a copy, and a whole frame leaves the queue
    /// without its reference count being touched (a fan-out writes one frame into
    /// a thousand streams). Returns `write`'s result, `None` with nothing queued.
    pub fn transmit_head<R>(&mut self, write: impl FnOnce(&mut Bytes) -> R) -> Option<R> {
        let head = self.out.front_mut()?;
        let before = head.len();
        let r = write(head);
        let n = before.saturating_sub(head.len());
        let whole = head.is_empty();
        self.account(n, whole);
        Some(r)
    }

    /// Drop everything queued (the client will never read it).
    pub fn discard_outbound(&mut self) {
        self.out.clear();
        self.out_bytes = 0;
    }

    /// Records that `n` bytes from [`Session::poll_transmit`] were written.
    pub fn advance_transmit(&mut self, mut n: usize) {
        while n > 0 {
            let Some(head) = self.out.front_mut() else {
                break;
            };
            let k = n.min(head.len());
            head.advance(k);
            n -= k;
            let whole = head.is_empty();
            self.account(k, whole);
        }
    }

    /// `n` bytes of the head frame were written; `whole`: it is all written.
    fn account(&mut self, n: usize, whole: bool) {
        self.out_bytes -= n;
        self.stats.bytes_out += n as u64;
        if whole {
            self.stats.frames_out += 1;
            self.out.pop_front();
        }
    }

    /// The close code once the session must end and its queue is flushed (at once for
    /// a slow consumer, whose queue is dropped).
    pub fn poll_close(&self) -> Option<CloseCode> {
        self.close.filter(|_| self.out.is_empty())
    }

    /// Whether a close has been decided (the driver stops reading).
    pub fn is_closing(&self) -> bool {
        self.close.is_some()
    }

    /// Bytes queued for the client.
    pub fn queued_bytes(&self) -> usize {
        self.out_bytes
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

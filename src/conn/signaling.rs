//! The signaling application of one WebTransport session on `/` (docs/protocol.md
//! "Transport and framing", rules 4–7): a sans-IO state machine driven by the
//! connection's HTTP/3 events and by the meeting's deliveries.
//!
//! Client bytes from the one signaling stream go into the [`Session`] (framing,
//! first-frame-is-join, rate limit); the join token is verified here, on the
//! connection's shard; the join and every later message leave as [`MeetingCmd`]s for
//! the meeting's shard. What the meeting sends back arrives through [`Signaling::deliver`]
//! as encoded frames shared by every recipient, is queued on the session (bounded: a
//! client that stops reading is closed as a slow consumer, 0x104) and written to the
//! stream without copying. When the session ends, the meeting is told whether it was a
//! clean leave (VOLUNTARY) or a drop (grace period, rule 6).

use std::time::{Duration, Instant, SystemTime};

use quinn_proto::{Connection, StreamId};

use super::ConnCtx;
use crate::actors::{ConnCmd, MeetingCmd};
use crate::auth::jwt::{self, Role as TokenRole, CLIENT_ERROR_MESSAGE};
use crate::h3::{H3Conn, H3Event, ReadEnd};
use crate::meeting::{CloseCode, ConnKey, JoinIdentity, Role};
use crate::signaling::proto::{pb, ErrorCode};
use crate::signaling::session::{Session, SessionEvent};

/// How long a stream may stay blocked by the client's flow control with frames queued
/// before the client is treated as a slow consumer.
const WRITE_STALL_LIMIT: Duration = Duration::from_secs(5);
/// After the server finishes the signaling stream, how long the client has to
/// acknowledge what was sent before the session is closed anyway.
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// Once the client has acknowledged our last bytes, how long its application gets to
/// read them before the session closes. A browser discards stream data the page has
/// not read yet when the session closes (draft-ietf-webtrans-http3 §6), so closing on
/// the acknowledgement alone can lose a final `RedirectToMc` or `ErrorMessage` in a
/// busy renderer. A client that answers (its FIN, a reset or its own close) ends the
/// wait at once.
const CLOSE_READ_GRACE: Duration = Duration::from_millis(500);
/// How long a join waits for a key reload it asked for (an unknown `kid`, or a
/// signature the known key does not verify), and how often it looks.
const KEY_RELOAD_WAIT: Duration = Duration::from_secs(2);
const KEY_RELOAD_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; waiting for the client's bidi stream and its join.
    Open,
    /// Our stream is finished; the session closes with `code` at `deadline`: the
    /// linger while our last bytes are unacknowledged, then the read grace. The
    /// client's answer on its stream closes it at once.
    Closing { code: CloseCode, deadline: Instant },
    /// The session has ended (either side).
    Ended,
}

/// A join waiting for the signing keys to be reloaded (its token names an unknown kid,
/// or a known one whose key does not verify it).
/// The stream is not read meanwhile, and what came with the join in the same read
/// (at most the stream's receive window) waits in the session's decoder, still
/// encoded; it follows the join once the join is verified.
#[derive(Debug)]
struct KeyWait {
    request: pb::JoinRequest,
    received_at: Instant,
    generation: u64,
    /// [`crate::auth::keystore::KeyStore::answered`] when the join asked: once it moves, the refresher has
    /// dealt with the request (or with one before it), new keys or not.
    answered: u64,
    give_up: Instant,
    next_look: Instant,
}

/// The signaling state of one session.
#[derive(Debug)]
pub struct Signaling {
    key: ConnKey,
    stream: Option<StreamId>,
    sig: Session,
    phase: Phase,
    meeting_id: Option<String>,
    accepted_at: Instant,
    /// The first frame must be complete by then (the join timeout).
    join_deadline: Option<Instant>,
    /// Since when the stream has been blocked by flow control with frames queued.
    stalled_since: Option<Instant>,
    key_wait: Option<KeyWait>,
    /// The client finished its stream or closed the session cleanly (rule 6).
    clean: bool,
    /// The client's side of the stream has ended (finished or reset): a close it asked
    /// for needs no read grace.
    client_done: bool,
    reason: &'static str,
    /// The meeting has been told this session is gone.
    reported: bool,
    /// What this session's queue adds to the shard's `ConnCtx::outbound_bytes`.
    counted: usize,
}

impl Signaling {
    pub fn new(key: ConnKey, ctx: &ConnCtx<'_>) -> Self {
        Self {
            key,
            stream: None,
            sig: Session::new(ctx.settings.session.clone(), ctx.now),
            phase: Phase::Open,
            meeting_id: None,
            accepted_at: ctx.now,
            join_deadline: Some(ctx.now + ctx.settings.join_timeout),
            stalled_since: None,
            key_wait: None,
            clean: false,
            client_done: false,
            reason: "error",
            reported: false,
            counted: 0,
        }
    }

    /// Brings the shard's count of queued bytes up to date with this session's queue.
    /// The connection calls it after each of its calls into the session.
    pub fn sync_outbound(&mut self, ctx: &mut ConnCtx<'_>) {
        let now = self.sig.queued_bytes();
        *ctx.outbound_bytes = (*ctx.outbound_bytes + now).saturating_sub(self.counted);
        self.counted = now;
    }

    /// Whether a frame for this session finds the shard over its outbound budget with
    /// this session among those holding it: a queue past an eighth of the session's own
    /// limit is a client that has fallen well behind (a client that keeps up holds next
    /// to nothing here, QUIC takes what it can send).
    fn over_shard_budget(&self, ctx: &ConnCtx<'_>) -> bool {
        *ctx.outbound_bytes > ctx.settings.shard_outbound_max_bytes
            && self.sig.queued_bytes() > ctx.settings.session.outbound_max_bytes / 8
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        // An ended session has nothing due ([`Self::end`] clears its deadlines).
        if self.phase == Phase::Ended {
            return None;
        }
        let mut next = self.join_deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.stalled_since.map(|t| t + WRITE_STALL_LIMIT));
        consider(self.key_wait.as_ref().map(|w| w.next_look));
        if let Phase::Closing { deadline, .. } = self.phase {
            consider(Some(deadline));
        }
        next
    }

    pub fn handle_timeout(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ctx: &mut ConnCtx<'_>,
    ) {
        let now = ctx.now;
        if self.phase == Phase::Ended {
            return;
        }
        if self.join_deadline.is_some_and(|t| t <= now) {
            self.join_deadline = None;
            ctx.metrics.refusal("join_timeout");
            self.reason = "join_timeout";
            self.sig.fail(
                ErrorCode::InvalidRequest,
                "no join request in time",
                CloseCode::ProtocolViolation,
            );
        }
        if self
            .stalled_since
            .is_some_and(|t| t + WRITE_STALL_LIMIT <= now)
        {
            self.stalled_since = None;
            self.reason = "slow_consumer";
            // The queued frames cannot be delivered: drop them and close.
            self.sig.close(CloseCode::SlowConsumer);
            self.sig.discard_outbound();
        }
        if self.key_wait.as_ref().is_some_and(|w| w.next_look <= now) {
            self.retry_key_wait(ctx);
            if self.key_wait.is_none() {
                // What the client sent after its join waited in the stream.
                self.read(quic, h3, ctx);
            }
        }
        if let Phase::Closing { code, deadline } = self.phase {
            if deadline <= now {
                self.close_session(quic, h3, ctx, code);
                return;
            }
        }
        self.flush(quic, h3, ctx);
    }

    /// An HTTP/3 event of this session.
    pub fn on_event(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ev: H3Event,
        ctx: &mut ConnCtx<'_>,
    ) {
        match ev {
            H3Event::StreamOpened { stream, bidi } => {
                // docs/protocol.md: the client opens ONE bidirectional stream.
                if !bidi || self.stream.is_some() || self.phase != Phase::Open {
                    h3.abort(quic, stream, 0);
                    return;
                }
                self.stream = Some(stream);
                self.read(quic, h3, ctx);
            }
            H3Event::StreamReadable { stream } if Some(stream) == self.stream => {
                if let Phase::Closing { code, .. } = self.phase {
                    if !self.client_done && client_answered(quic, h3, stream) {
                        self.client_done = true;
                        return self.close_session(quic, h3, ctx, code);
                    }
                    return;
                }
                self.read(quic, h3, ctx)
            }
            H3Event::StreamWritable { stream } if Some(stream) == self.stream => {}
            H3Event::StreamFinished { stream } if Some(stream) == self.stream => {
                // Everything we sent, the final message included, has arrived: the
                // client's application now gets its time to read it, unless the
                // client ended its side first.
                if let Phase::Closing { code, .. } = self.phase {
                    if self.client_done {
                        return self.close_session(quic, h3, ctx, code);
                    }
                    self.phase = Phase::Closing {
                        code,
                        deadline: ctx.now + CLOSE_READ_GRACE,
                    };
                }
            }
            H3Event::StreamStopped { stream, .. } if Some(stream) == self.stream => {
                // The client will not read what we send: the session cannot go on.
                self.reason = "client_stopped";
                self.sig.close(CloseCode::ProtocolViolation);
                self.sig.discard_outbound();
            }
            H3Event::SessionEnded(end) => {
                self.end();
                if !self.clean {
                    self.clean = end.is_clean_peer_close();
                    self.reason = if self.clean {
                        "client_closed"
                    } else if self.reason == "error" {
                        "client_lost"
                    } else {
                        self.reason
                    };
                }
                self.report_end(ctx);
                return;
            }
            // Datagrams and other streams carry nothing for signaling.
            _ => {}
        }
        self.flush(quic, h3, ctx);
    }

    /// A command from the meeting for this session.
    pub fn deliver(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        cmd: ConnCmd,
        ctx: &mut ConnCtx<'_>,
    ) {
        // Once our stream is finished nothing more can reach the client.
        if self.phase != Phase::Open {
            return;
        }
        match cmd {
            ConnCmd::Frame {
                frame,
                join_response,
                ..
            } => {
                if join_response {
                    ctx.metrics.join_duration.observe(
                        ctx.now
                            .saturating_duration_since(self.accepted_at)
                            .as_secs_f64(),
                    );
                }
                if self.over_shard_budget(ctx) {
                    // The shard holds more for its clients than it may: those that have
                    // fallen furthest behind go first, as slow consumers.
                    ctx.metrics.refusal("outbound_budget");
                    self.reason = "slow_consumer";
                    self.sig.close(CloseCode::SlowConsumer);
                    self.sig.discard_outbound();
                } else if self.sig.send_frame(frame).is_err() {
                    // A full queue makes poll_close report SlowConsumer at once.
                    self.reason = "slow_consumer";
                }
            }
            ConnCmd::Close(code) => self.sig.close(code),
        }
        self.flush(quic, h3, ctx);
    }

    /// The QUIC connection is gone: tell the meeting, if not done yet.
    pub fn on_drained(&mut self, ctx: &mut ConnCtx<'_>) {
        self.end();
        self.report_end(ctx);
        // The connection goes, and its queue with it.
        self.sig.discard_outbound();
        self.sync_outbound(ctx);
    }

    /// The shard is stopping: close with `code` now.
    pub fn shutdown(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ctx: &mut ConnCtx<'_>,
        code: CloseCode,
    ) {
        if self.phase != Phase::Ended {
            self.reason = code.label();
            self.close_session(quic, h3, ctx, code);
        }
    }

    fn read(&mut self, quic: &mut Connection, h3: &mut H3Conn, ctx: &mut ConnCtx<'_>) {
        let Some(stream) = self.stream else { return };
        // While the join waits for its keys the rest stays in the stream, under the
        // client's flow control.
        if self.phase != Phase::Open || self.sig.is_closing() || self.key_wait.is_some() {
            return;
        }
        let now = ctx.now;
        let sig = &mut self.sig;
        // Everything available: the stream's receive window bounds it.
        let end = h3.read(quic, stream, usize::MAX, |bytes| {
            sig.handle_bytes(now, &bytes)
        });
        // A join that waits for its keys stops the events: what came behind it stays
        // encoded in the session (at most the stream's window, read already), and the
        // rest of the stream unread, until the join has gone.
        while self.key_wait.is_none() {
            let Some(event) = self.sig.poll_event() else {
                break;
            };
            self.on_session_event(event, ctx);
        }
        match end {
            ReadEnd::Finished => {
                // The client finished its stream: a clean leave (rule 6).
                self.client_done = true;
                self.clean = true;
                self.reason = "client_finished";
                self.sig.close(CloseCode::Normal);
            }
            ReadEnd::Reset(_) | ReadEnd::Closed => {
                self.client_done = true;
                self.reason = "client_lost";
                self.sig.close(CloseCode::Normal);
            }
            ReadEnd::Blocked | ReadEnd::Limit => {}
        }
    }

    fn on_session_event(&mut self, event: SessionEvent, ctx: &mut ConnCtx<'_>) {
        match event {
            SessionEvent::Join { request, .. } => {
                ctx.metrics.client_message("join_request");
                self.join_deadline = None;
                self.verify_and_join(request, ctx.now, true, ctx);
            }
            SessionEvent::Message(msg) => {
                ctx.metrics.client_message(msg.kind());
                // A refused join leaves no participant to act for (and a join waiting
                // for its keys has none yet: nothing after it is decoded meanwhile).
                let Some(meeting_id) = self.meeting_id.clone() else {
                    return;
                };
                ctx.meeting_cmds.push(MeetingCmd::Message {
                    conn: self.key,
                    meeting_id,
                    msg,
                    received_at: ctx.now,
                });
            }
        }
    }

    /// Verify the join token and send the join to the meeting. With `may_wait`, an
    /// unknown `kid`, or a signature its known key does not verify, first asks for a
    /// key reload (rate-limited by the refresher) and parks the join (bounded).
    fn verify_and_join(
        &mut self,
        request: pb::JoinRequest,
        received_at: Instant,
        may_wait: bool,
        ctx: &mut ConnCtx<'_>,
    ) {
        let result =
            ctx.verifier
                .verify(&request.join_token, &request.meeting_id, SystemTime::now());
        if may_wait && result.as_ref().is_err_and(|e| e.may_pass_after_reload()) {
            let store = ctx.verifier.store();
            store.request_refresh();
            self.key_wait = Some(KeyWait {
                generation: store.generation(),
                answered: store.answered(),
                request,
                received_at,
                give_up: ctx.now + KEY_RELOAD_WAIT,
                next_look: ctx.now + KEY_RELOAD_POLL,
            });
            return;
        }
        let (res, reason) = jwt::metric_labels(&result);
        ctx.metrics.jwt(res, reason);
        let claims = match result {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(
                    conn = self.key.conn,
                    reason = e.reason(),
                    "join refused: token"
                );
                ctx.metrics.join("unauthorized");
                self.reason = "unauthorized";
                self.sig.fail(
                    ErrorCode::Unauthorized,
                    CLIENT_ERROR_MESSAGE,
                    CloseCode::Unauthorized,
                );
                return;
            }
        };
        let identity = JoinIdentity {
            sub: claims.sub,
            role: match claims.role {
                TokenRole::Host => Role::Host,
                TokenRole::Participant => Role::Participant,
            },
            name: claims.name.unwrap_or_default(),
        };
        self.meeting_id = Some(request.meeting_id.clone());
        ctx.meeting_cmds.push(MeetingCmd::Join {
            conn: self.key,
            identity,
            request: Box::new(request),
            received_at,
        });
    }

    /// A join parked for a key reload: verify again once the keys were reloaded or the
    /// wait is over (then the failure is final).
    fn retry_key_wait(&mut self, ctx: &mut ConnCtx<'_>) {
        let Some(w) = self.key_wait.as_mut() else {
            return;
        };
        let store = ctx.verifier.store();
        let reloaded = store.generation() != w.generation || store.answered() != w.answered;
        if !reloaded && ctx.now < w.give_up {
            w.next_look = ctx.now + KEY_RELOAD_POLL;
            return;
        }
        if let Some(w) = self.key_wait.take() {
            // Then the caller reads on: what came after the join follows it, in order.
            self.verify_and_join(w.request, w.received_at, false, ctx);
        }
    }

    /// The stream the session's frames are written to, once there is one.
    pub fn stream(&self) -> Option<StreamId> {
        self.stream
    }

    /// Write what the session has queued, without copying the shared frames; then, if
    /// the session decided to close, finish the stream and start closing.
    fn flush(&mut self, quic: &mut Connection, h3: &mut H3Conn, ctx: &mut ConnCtx<'_>) {
        // Once our stream is finished (closing) or the session ended, nothing is written.
        if self.phase != Phase::Open {
            return;
        }
        match self.stream {
            Some(stream) => self.write_queued(quic, h3, ctx, stream),
            // Without a stream nothing queued can reach the client.
            None if self.sig.is_closing() => self.sig.discard_outbound(),
            None => {}
        }
        self.start_close_if_decided(quic, h3, ctx);
    }

    /// Write what is queued, without copying the shared frames, as far as the client's
    /// flow control allows; track how long the stream stays blocked.
    fn write_queued(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ctx: &ConnCtx<'_>,
        stream: StreamId,
    ) {
        {
            let mut blocked = false;
            // The head frame goes to quinn-proto by value (no copy, no reference
            // count): whatever it takes leaves the queue.
            while let Some(written) = self.sig.transmit_head(|head| {
                let len = head.len();
                h3.write_chunks(quic, stream, std::slice::from_mut(head))
                    .map(|(_, n)| n == len)
            }) {
                match written {
                    Some(true) => {}
                    Some(false) => {
                        blocked = true;
                        break;
                    }
                    None => {
                        self.reason = "write_failed";
                        self.sig.close(CloseCode::ProtocolViolation);
                        self.sig.discard_outbound();
                        break;
                    }
                }
            }
            self.stalled_since = match (blocked, self.stalled_since) {
                (true, Some(t)) => Some(t),
                (true, None) => Some(ctx.now),
                (false, _) => None,
            };
        }
    }

    /// The session decided to close and its queue is flushed: finish the stream and
    /// close once the client has it (or at once without a stream).
    fn start_close_if_decided(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ctx: &mut ConnCtx<'_>,
    ) {
        if let Some(code) = self.sig.poll_close() {
            self.join_deadline = None;
            self.key_wait = None;
            if self.reason == "error" {
                self.reason = code.label();
            }
            match self.stream {
                Some(stream) if code != CloseCode::SlowConsumer => {
                    // Finish the stream so the client reads everything (an ErrorMessage,
                    // say) before the session goes.
                    h3.finish(quic, stream);
                    self.phase = Phase::Closing {
                        code,
                        deadline: ctx.now + CLOSE_LINGER,
                    };
                }
                _ => self.close_session(quic, h3, ctx, code),
            }
        }
    }

    fn close_session(
        &mut self,
        quic: &mut Connection,
        h3: &mut H3Conn,
        ctx: &mut ConnCtx<'_>,
        code: CloseCode,
    ) {
        if self.phase == Phase::Ended {
            return;
        }
        self.end();
        if self.reason == "error" {
            self.reason = code.label();
        }
        h3.close_session(
            quic,
            ctx.now,
            ctx.limits,
            code.code(),
            code.label().as_bytes(),
        );
        self.report_end(ctx);
    }

    /// The session is over: nothing it waited for is due any more. A deadline left set
    /// would stay in the past, as `handle_timeout` does nothing for an ended session,
    /// and the shard would fire the connection at every tick of its timer wheel until
    /// the connection drains, seconds after a close. A join waiting for its keys goes.
    fn end(&mut self) {
        self.phase = Phase::Ended;
        self.join_deadline = None;
        self.stalled_since = None;
        self.key_wait = None;
    }

    /// Tell the meeting (once) that this session is gone, and count how it ended.
    fn report_end(&mut self, ctx: &mut ConnCtx<'_>) {
        if self.reported {
            return;
        }
        self.reported = true;
        ctx.metrics.session_closed(self.reason);
        tracing::debug!(
            conn = self.key.conn,
            clean = self.clean,
            reason = self.reason,
            "signaling session ended"
        );
        if let Some(meeting_id) = self.meeting_id.take() {
            ctx.meeting_cmds.push(MeetingCmd::Disconnect {
                conn: self.key,
                meeting_id,
                clean: self.clean,
            });
        }
    }

    /// The frames the session still holds for the client.
    pub fn queued_bytes(&self) -> usize {
        self.sig.queued_bytes()
    }
}

/// While closing: drop whatever the client still sends on `stream` and report whether
/// it has finished or reset it (its answer to our close).
fn client_answered(quic: &mut Connection, h3: &mut H3Conn, stream: StreamId) -> bool {
    match h3.read(quic, stream, usize::MAX, drop) {
        ReadEnd::Finished | ReadEnd::Reset(_) | ReadEnd::Closed => true,
        ReadEnd::Blocked | ReadEnd::Limit => false,
    }
}

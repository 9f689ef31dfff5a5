//! Meetings: the sans-IO meeting state machine (docs/protocol.md "Semantics the MC owns",
//! "Session recovery", Precise rules 3–11, 14). One [`Meeting`] per meeting, living on
//! the shard that owns `hash(meeting_id) % N`.
//!
//! Inputs: [`Meeting::handle_join`], [`Meeting::handle_message`],
//! [`Meeting::handle_disconnect`], [`Meeting::handle_timeout`], [`Meeting::end`], and
//! for a move to another MC [`Meeting::begin_handover`] / [`Meeting::abort_handover`]
//! (source) and [`Meeting::import`] (target); each takes `now`. Outputs: [`Meeting::poll_outbound`] until `None` (one FIFO, so every
//! receiver sees a sender's updates in processing order — rule 14), then
//! [`Meeting::poll_timeout`] for the next grace deadline.
//!
//! Fan-out builds each `ServerMessage` once and shares it as an `Arc` with every
//! recipient: consecutive [`Outbound::Send`]s carrying the same `Arc` (`Arc::ptr_eq`) can
//! be encoded once by the driver (`codec::encode_to_bytes` + `Session::send_frame`).
//!
//! - `config`: [`MeetingConfig`], [`MeetingArgs`].
//! - `roster`: participants, join, recovery, leave, grace (rules 6–9).
//! - `mute`: self/host mute, unmute request/response (rules 2, 3).
//! - `streams`: PublishStream validation (rule 10).
//! - `layout`: grid layouts and their recomputation (rule 11).
//! - `snapshot`: [`MeetingSnapshot`], the state handed to another MC, and its checks.
//! - `handover`: export and freeze on the source, import on the target (rules 17–21).

mod config;
mod handover;
mod layout;
mod layout_sub;
mod mute;
mod roster;
mod snapshot;
mod streams;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use crate::signaling::session::CloseCode;
pub use config::{
    MeetingArgs, MeetingConfig, RECOVERY_BURST, RECOVERY_EVERY_SECS, REFUSED_JOIN_RATE,
    REFUSED_MEETING_RATE, REFUSED_RECOVERY_RATE, REFUSED_USER_SHARE,
};
pub use handover::{MAX_HELD_BYTES, MAX_HELD_INPUTS};
pub use snapshot::{
    ConnectionSnapshot, ImportError, LayerSnapshot, LayoutSnapshot, MeetingSettings,
    MeetingSnapshot, MuteSnapshot, ParticipantSnapshot, StreamKind, StreamMetadataSnapshot,
    StreamSnapshot, UserBudgetSnapshot, VideoSnapshot, MAX_ID_BYTES, MAX_SHORT_ID_BYTES,
    MAX_SNAPSHOT_USERS, NONCE_BYTES, SNAPSHOT_VERSION,
};

use crate::auth::binding::MeetingBindingKey;
use crate::signaling::proto::{
    client_message::Message as C, pb, truncate_str, ClientMessage, ErrorCode, ServerMessage,
    LOG_STRING_MAX,
};
use crate::signaling::session::{TokenBucket, ALREADY_JOINED};
use roster::Participant;

/// Names one client connection anywhere in the process: the shard that owns it and the
/// connection's id on that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub shard: u16,
    pub conn: u64,
}

/// The `role` claim of the (already verified) join token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Participant,
}

/// Who is joining, from the verified JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinIdentity {
    /// The `sub` claim, opaque (rule 9).
    pub sub: String,
    pub role: Role,
    /// Display name; when empty, `JoinRequest.participant_name` is used.
    pub name: String,
}

/// Work for the driver, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// Queue `msg` on connection `to`. The same `Arc` goes to every recipient of a fan-out.
    Send {
        to: ConnKey,
        msg: Arc<ServerMessage>,
    },
    /// Close `to`'s WebTransport session with `code` after what was queued before.
    Close {
        to: ConnKey,
        code: CloseCode,
        reason: &'static str,
    },
}

/// Why a meeting ends under the MC's control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Drain end: everyone gets `ParticipantLeft{MEETING_ENDED}` about themselves.
    Drained,
    /// Everyone gets `RedirectToMc{endpoint, reason: "draining"}` (a fixed redirect
    /// endpoint, no state handed over).
    Redirect { endpoint: String },
    /// The meeting was handed to the MC at `endpoint` (its WebTransport URL): every
    /// connected participant gets `RedirectToMc{endpoint, meeting_id, reason}`, then
    /// close 0x103 (rule 17). Ends a [`Meeting::begin_handover`] for good.
    Handover {
        endpoint: String,
        reason: RedirectReason,
    },
}

/// `RedirectToMc.reason` of a hand-over (docs/protocol.md rule 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectReason {
    /// SIGTERM or a GC-set `draining`.
    Draining,
    /// Asked to move a meeting while active.
    Rebalance,
}

impl RedirectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::Rebalance => "rebalance",
        }
    }
}

/// The result of a join, for `mc_session_joins_total{status}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    Recovered,
    /// An `ErrorMessage` and a `Close` with this code were queued.
    Refused(CloseCode),
}

impl JoinOutcome {
    /// The `status` label of `mc_session_joins_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Joined => "success",
            Self::Recovered => "recovered",
            Self::Refused(CloseCode::Unauthorized) => "unauthorized",
            Self::Refused(CloseCode::Capacity) => "capacity",
            Self::Refused(CloseCode::Draining) => "draining",
            Self::Refused(CloseCode::RateLimited) => "rate_limited",
            Self::Refused(_) => "error",
        }
    }
}

/// Caller bugs: the meeting refuses them without touching its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeetingError {
    #[error("join for meeting {got:?} delivered to meeting {expected:?}")]
    WrongMeeting { expected: String, got: String },
    #[error("connection {0:?} has already joined this meeting")]
    AlreadyJoined(ConnKey),
    #[error("connection {0:?} is not in this meeting")]
    UnknownConnection(ConnKey),
}

/// Plain counters, published by the shard at scrape time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MeetingStats {
    pub joins: u64,
    pub recoveries: u64,
    pub refused_joins: u64,
    pub leaves_voluntary: u64,
    pub leaves_timeout: u64,
    pub replaced_connections: u64,
    pub messages: u64,
    pub request_errors: u64,
    pub mute_updates: u64,
    pub unmute_requests_forwarded: u64,
    pub streams_published: u64,
    pub layout_sends: u64,
    /// Layout assignments computed (one per subscriber a change can affect).
    pub layout_computes: u64,
    pub quality_updates: u64,
    pub media_connection_updates: u64,
    /// Source side of a move: [`Meeting::begin_handover`] calls (once per freeze).
    pub handovers_started: u64,
    /// Frozen meetings ended by [`EndReason::Handover`].
    pub handovers_completed: u64,
    /// Frozen meetings resumed by [`Meeting::abort_handover`].
    pub handovers_aborted: u64,
    /// Client inputs held while frozen.
    pub handover_inputs_held: u64,
    /// Client messages dropped: beyond [`MAX_HELD_INPUTS`] or [`MAX_HELD_BYTES`], or
    /// inputs held when the meeting was handed over (rule 20).
    pub handover_inputs_dropped: u64,
    /// Target side: participants that arrived in an imported snapshot.
    pub imported_participants: u64,
    /// Requests that would have notified every participant, refused because the
    /// meeting's broadcast budget was spent (`mc_refusals_total{reason="meeting_rate"}`).
    pub broadcasts_refused: u64,
    /// Fresh joins refused because their user had spent its joins
    /// (`mc_refusals_total{reason="join_rate"}`).
    pub joins_rate_limited: u64,
    /// Recoveries refused because their participant had spent its recoveries
    /// (`mc_refusals_total{reason="recovery_rate"}`).
    pub recoveries_rate_limited: u64,
}

/// What one user (all seats of one `sub`) may still do in a meeting.
struct UserBudget {
    /// Its share of the meeting's broadcast budget
    /// ([`MeetingConfig::user_broadcast_share`]).
    broadcasts: TokenBucket,
    /// Fresh joins: as many as the meeting has seats, then [`config::USER_JOIN_RATE`] a
    /// second.
    joins: TokenBucket,
}

impl UserBudget {
    /// Full budgets, for a user's first join or request here.
    fn full(cfg: &MeetingConfig, now: Instant) -> Self {
        let (rate, burst) = cfg.user_broadcast_share();
        UserBudget {
            broadcasts: TokenBucket::new(rate, burst, now),
            joins: TokenBucket::new(config::USER_JOIN_RATE, cfg.join_burst(), now),
        }
    }

    /// What another MC handed over, clamped to this MC's bursts.
    fn carried(cfg: &MeetingConfig, b: &UserBudgetSnapshot, now: Instant) -> Self {
        let (rate, burst) = cfg.user_broadcast_share();
        UserBudget {
            broadcasts: TokenBucket::with_left(rate, burst, b.broadcasts_left, now),
            joins: TokenBucket::with_left(
                config::USER_JOIN_RATE,
                cfg.join_burst(),
                b.joins_left,
                now,
            ),
        }
    }
}

/// `user_id`'s budgets in `users`, full when the user has none yet (its first join, or
/// the first request of a participant imported from another MC). A free function, so
/// that the meeting's own budget can be borrowed beside it.
fn user_budget<'a>(
    users: &'a mut HashMap<u64, UserBudget>,
    cfg: &MeetingConfig,
    user_id: u64,
    now: Instant,
) -> &'a mut UserBudget {
    users
        .entry(user_id)
        .or_insert_with(|| UserBudget::full(cfg, now))
}

/// One meeting's state.
pub struct Meeting {
    id: String,
    cfg: MeetingConfig,
    key: MeetingBindingKey,
    /// `now` at creation and the matching wall-clock time, for `joined_at` and UUIDv7.
    epoch: Instant,
    epoch_unix_ms: u64,
    /// In join order (`seq` ascending).
    participants: Vec<Participant>,
    /// How many participants have a grace deadline: with none (the usual case) the
    /// per-message expiry check and the next deadline cost nothing.
    in_grace: usize,
    /// The earliest grace deadline, or an earlier instant: a recovery leaves it as it
    /// was, and the next expiry pass, at that instant, finds the true one. Until then a
    /// message's expiry check and the next deadline read this instead of the roster.
    next_grace: Option<Instant>,
    /// What every layout computation reads from the roster (`layout::Candidates`),
    /// kept between messages: built at the first computation after a join, a leave or
    /// a change of someone's best stream, so one subscriber's UpdateLayout costs its
    /// own lists and slots, not the roster.
    layout_index: Option<layout::Candidates>,
    /// Connected participants by connection, to their `seq`.
    by_conn: HashMap<ConnKey, u64>,
    /// Rule 9: one user_id per distinct `sub` while the meeting lives.
    user_ids: HashMap<String, u64>,
    next_user_id: u64,
    next_seq: u64,
    /// Bounded by construction: each input queues O(participants) items and the driver
    /// drains it after every input.
    out: VecDeque<Outbound>,
    ended: bool,
    /// `Some` while frozen for a hand-over to another MC.
    handover: Option<handover::Handover>,
    /// Digest of the snapshot this meeting was imported from, for idempotent imports.
    imported_digest: Option<[u8; 32]>,
    /// The budget of requests that notify every participant, whoever sends them: one
    /// `sub` may hold many seats, each at the session's message rate, and each such
    /// request costs a delivery per participant.
    broadcasts: TokenBucket,
    /// Each user's budgets, by user id, made at the user's first join or request. As
    /// many as `user_ids`, and kept as long: a user cannot refill them by leaving and
    /// joining again.
    users: HashMap<u64, UserBudget>,
    stats: MeetingStats,
}

impl Meeting {
    /// A meeting created at `now`; the wall clock is read once here for `joined_at`.
    pub fn new(
        meeting_id: impl Into<String>,
        cfg: MeetingConfig,
        key: MeetingBindingKey,
        now: Instant,
    ) -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::new_at(meeting_id, cfg, key, now, unix_ms)
    }

    /// As [`Meeting::new`], with the wall-clock time (unix ms) matching `now` injected.
    pub fn new_at(
        meeting_id: impl Into<String>,
        cfg: MeetingConfig,
        key: MeetingBindingKey,
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        let broadcasts = TokenBucket::new(cfg.broadcast_rate, cfg.broadcast_burst, now);
        Self {
            id: meeting_id.into(),
            cfg,
            key,
            epoch: now,
            epoch_unix_ms: unix_ms,
            participants: Vec::new(),
            in_grace: 0,
            next_grace: None,
            layout_index: None,
            by_conn: HashMap::new(),
            user_ids: HashMap::new(),
            next_user_id: 1,
            next_seq: 0,
            out: VecDeque::new(),
            ended: false,
            handover: None,
            imported_digest: None,
            broadcasts,
            users: HashMap::new(),
            stats: MeetingStats::default(),
        }
    }

    pub fn meeting_id(&self) -> &str {
        &self.id
    }

    /// A client message from a joined connection. Per-request problems are answered with
    /// `ErrorMessage` and the session stays up (rule 4). Held while the meeting is
    /// frozen for a hand-over.
    pub fn handle_message(
        &mut self,
        now: Instant,
        conn: ConnKey,
        msg: ClientMessage,
    ) -> Result<(), MeetingError> {
        if self.handover.is_some() {
            return self.hold(handover::Held::Message(now, conn, Box::new(msg)));
        }
        self.expire(now);
        let Some(idx) = self.idx_by_conn(conn) else {
            return Err(MeetingError::UnknownConnection(conn));
        };
        self.stats.messages += 1;
        match msg.message {
            None => self.reply_error(conn, ErrorCode::InvalidRequest, "unknown message"),
            Some(C::JoinRequest(_)) => {
                self.reply_error(conn, ErrorCode::InvalidRequest, ALREADY_JOINED)
            }
            Some(C::PublishStream(p)) => self.on_publish(now, idx, conn, p),
            Some(C::SubscribeToLayout(s)) => self.on_subscribe(idx, conn, s),
            Some(C::UpdateLayout(u)) => self.on_update_layout(idx, conn, u),
            Some(C::UnsubscribeLayout(_)) => {
                if let Some(p) = self.participants.get_mut(idx) {
                    p.layout = None;
                }
            }
            Some(C::StreamQualityUpdate(q)) => {
                self.stats.quality_updates += 1;
                tracing::trace!(
                    stream_id = truncate_str(&q.stream_id, LOG_STRING_MAX),
                    bitrate = q.available_bitrate,
                    rtt_ms = q.rtt_ms,
                    "stream quality update"
                );
            }
            Some(C::MuteRequest(m)) => self.on_mute(now, idx, conn, m),
            Some(C::HostMuteRequest(h)) => self.on_host_mute(now, idx, conn, h),
            Some(C::UnmuteRequest(u)) => self.on_unmute_request(now, idx, conn, u),
            Some(C::UnmuteResponse(r)) => self.on_unmute_response(now, idx, conn, r),
            Some(C::MediaConnectionUpdate(u)) => self.on_media_connection_update(conn, u),
        }
        Ok(())
    }

    fn on_media_connection_update(&mut self, conn: ConnKey, u: pb::MediaConnectionUpdate) {
        if u.statuses.len() > self.cfg.max_media_statuses {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "too many statuses");
        }
        self.stats.media_connection_updates += 1;
        for s in &u.statuses {
            tracing::trace!(
                mh_url = truncate_str(&s.mh_url, LOG_STRING_MAX),
                state = s.state,
                failure_reason = truncate_str(s.failure_reason(), LOG_STRING_MAX),
                "media connection status"
            );
        }
    }

    /// Expires participants whose grace period ended (→ `ParticipantLeft{TIMEOUT}`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When [`Meeting::handle_timeout`] may next have work: at or before the earliest
    /// grace deadline (after a recovery, perhaps an instant with nothing due, which then
    /// finds the next); none while frozen: grace stands still during a hand-over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.handover.is_some() || self.in_grace == 0 {
            return None;
        }
        self.next_grace
    }

    /// The next piece of work for the driver.
    pub fn poll_outbound(&mut self) -> Option<Outbound> {
        self.out.pop_front()
    }

    /// Ends the meeting: every connected participant gets `ParticipantLeft{MEETING_ENDED}`
    /// about itself (or `RedirectToMc`), then close 0x103. The meeting is then empty and
    /// refuses joins with close 0x103. A hand-over in progress ends with it (what was
    /// held is dropped).
    pub fn end(&mut self, _now: Instant, reason: EndReason) {
        self.commit_handover(&reason);
        let participants = std::mem::take(&mut self.participants);
        self.in_grace = 0;
        self.next_grace = None;
        self.layout_index = None;
        self.by_conn.clear();
        self.ended = true;
        // The same redirect for everyone: built once, shared.
        let redirect = |endpoint: &str, reason: RedirectReason| {
            Arc::new(ServerMessage::of(
                pb::server_message::Message::RedirectToMc(pb::RedirectToMc {
                    new_mc_endpoint: endpoint.to_owned(),
                    meeting_id: self.id.clone(),
                    reason: reason.as_str().into(),
                }),
            ))
        };
        let (shared, close_reason) = match &reason {
            EndReason::Drained => (None, "meeting_ended"),
            EndReason::Redirect { endpoint } => (
                Some(redirect(endpoint, RedirectReason::Draining)),
                "meeting_ended",
            ),
            EndReason::Handover { endpoint, reason } => {
                (Some(redirect(endpoint, *reason)), "meeting_moved")
            }
        };
        for p in &participants {
            let Some(conn) = p.conn else { continue };
            let msg = match &shared {
                Some(m) => Arc::clone(m),
                None => Arc::new(ServerMessage::of(
                    pb::server_message::Message::ParticipantLeft(pb::ParticipantLeft {
                        participant_id: p.participant_id.clone(),
                        reason: pb::LeaveReason::MeetingEnded as i32,
                    }),
                )),
            };
            self.send(conn, msg);
            self.out.push_back(Outbound::Close {
                to: conn,
                code: CloseCode::Draining,
                reason: close_reason,
            });
        }
    }

    /// No participant left, connected or within grace: the driver may drop the meeting.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Participants in the roster, disconnected-in-grace included.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Participants with a live connection.
    pub fn connected_count(&self) -> usize {
        self.by_conn.len()
    }

    pub fn stats(&self) -> MeetingStats {
        self.stats
    }

    // ---- helpers shared by the submodules ----

    fn idx_by_conn(&self, conn: ConnKey) -> Option<usize> {
        let seq = *self.by_conn.get(&conn)?;
        self.participants.binary_search_by_key(&seq, |p| p.seq).ok()
    }

    fn idx_by_pid(&self, participant_id: &str) -> Option<usize> {
        self.participants
            .iter()
            .position(|p| p.participant_id == participant_id)
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.epoch_unix_ms.saturating_add(since)
    }

    fn send(&mut self, to: ConnKey, msg: Arc<ServerMessage>) {
        self.out.push_back(Outbound::Send { to, msg });
    }

    /// Builds `msg` once and queues it for every connected participant except `except`.
    fn broadcast(&mut self, msg: pb::server_message::Message, except: Option<ConnKey>) {
        let msg = Arc::new(ServerMessage::of(msg));
        for p in &self.participants {
            if let Some(conn) = p.conn.filter(|c| Some(*c) != except) {
                self.out.push_back(Outbound::Send {
                    to: conn,
                    msg: Arc::clone(&msg),
                });
            }
        }
    }

    /// Spends the meeting's budget, and the sender's share of it, for one request about
    /// to notify every participant, once the request is known to be valid. Without
    /// budget the sender gets `ErrorMessage{INVALID_REQUEST}` and the caller must change
    /// nothing (rule 4). `idx` is the sender's place in the roster.
    ///
    /// A host's requests spend only the meeting's budget: a host muting everyone sends a
    /// host mute per participant at once, and the host role is the meeting owner's to
    /// give.
    fn take_broadcast(&mut self, now: Instant, idx: usize, conn: ConnKey) -> bool {
        self.broadcast_budget(now, idx, conn, true)
    }

    /// Whether the budget admits the request now, spending it when `spend`; with
    /// `spend` false, for a request whose other checks cost more than the budget's and
    /// that takes it later (asking again changes nothing in between). A refusal is
    /// counted and answered here.
    fn broadcast_budget(&mut self, now: Instant, idx: usize, conn: ConnKey, spend: bool) -> bool {
        let Some((user_id, role)) = self.participants.get(idx).map(|p| (p.user_id, p.role)) else {
            return false;
        };
        let mut share = match role {
            Role::Host => None,
            Role::Participant => {
                Some(&mut user_budget(&mut self.users, &self.cfg, user_id, now).broadcasts)
            }
        };
        let refusal = if share.as_mut().is_some_and(|s| !s.ready(now)) {
            config::REFUSED_USER_SHARE
        } else if !self.broadcasts.ready(now) {
            config::REFUSED_MEETING_RATE
        } else {
            if spend {
                if let Some(s) = share {
                    s.spend();
                }
                self.broadcasts.spend();
            }
            return true;
        };
        self.stats.broadcasts_refused += 1;
        tracing::debug!(meeting_id = %self.id, user_id, ?conn, refusal, "request refused");
        self.reply_error(conn, ErrorCode::InvalidRequest, refusal);
        false
    }

    fn reply_error(&mut self, to: ConnKey, code: ErrorCode, message: &'static str) {
        self.stats.request_errors += 1;
        self.send(to, Arc::new(ServerMessage::error(code, message)));
    }
}

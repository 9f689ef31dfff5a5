//! The roster: join, recovery, leave and grace (docs/protocol.md "Semantics the MC owns",
//! "Session recovery", rules 6–9).

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use rand::Rng;

use super::layout_sub::LayoutSub;
use super::mute::MuteState;
use super::{CloseCode, ConnKey, JoinIdentity, JoinOutcome, Meeting, MeetingError, Role};
use crate::signaling::proto::{
    pb, server_message::Message as S, truncate_str, ErrorCode, ServerMessage,
};
use crate::signaling::session::TokenBucket;

/// Bytes a `ServerMessage` envelope adds around its oneof payload (tag + length varint).
const ENVELOPE_OVERHEAD: usize = 8;

/// Length of the one-time binding nonce.
const NONCE_LEN: usize = 16;

/// One participant of the roster.
pub(super) struct Participant {
    /// Join order, unique within the meeting.
    pub(super) seq: u64,
    pub(super) participant_id: String,
    pub(super) user_id: u64,
    pub(super) sub: String,
    pub(super) name: String,
    pub(super) role: Role,
    /// `None` while disconnected within the grace period.
    pub(super) conn: Option<ConnKey>,
    pub(super) grace_deadline: Option<Instant>,
    pub(super) joined_at_ms: u64,
    pub(super) correlation_id: String,
    /// The nonce bound into the currently valid binding token; rotated on every use.
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) streams: Vec<pb::MediaStream>,
    pub(super) mute: MuteState,
    pub(super) layout: Option<LayoutSub>,
    /// Its recoveries ([`super::config::RECOVERY_BURST`]).
    pub(super) recoveries: TokenBucket,
}

impl Participant {
    pub(super) fn to_pb(&self) -> pb::Participant {
        pb::Participant {
            participant_id: self.participant_id.clone(),
            name: self.name.clone(),
            streams: self.streams.clone(),
            joined_at: self.joined_at_ms,
        }
    }
}

/// A UUIDv7 string from injected wall-clock time and fresh randomness.
fn uuid_v7(unix_ms: u64) -> String {
    let mut rnd = [0u8; 10];
    rand::rng().fill(&mut rnd);
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &rnd)
        .into_uuid()
        .to_string()
}

fn fresh_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rng().fill(&mut n);
    n
}

impl Meeting {
    /// A join whose JWT the caller already verified (its `meeting_id` claim included).
    /// Refusals are queued as `ErrorMessage` + `Close` and reported in the outcome.
    pub fn handle_join(
        &mut self,
        now: Instant,
        conn: ConnKey,
        identity: JoinIdentity,
        req: pb::JoinRequest,
    ) -> Result<JoinOutcome, MeetingError> {
        if req.meeting_id != self.id {
            return Err(MeetingError::WrongMeeting {
                expected: self.id.clone(),
                got: truncate_str(&req.meeting_id, self.cfg.max_string_len).to_owned(),
            });
        }
        if self.by_conn.contains_key(&conn) {
            return Err(MeetingError::AlreadyJoined(conn));
        }
        self.expire(now);
        if self.ended {
            return Ok(self.refuse(
                conn,
                ErrorCode::CapacityExceeded,
                "meeting has ended",
                CloseCode::Draining,
            ));
        }
        // Frozen for a hand-over: the state is on its way to another MC (rule 20).
        if self.handover.is_some() {
            return Ok(self.refuse(
                conn,
                ErrorCode::CapacityExceeded,
                "meeting is moving to another MC",
                CloseCode::Draining,
            ));
        }
        // Rule 7: a binding token means recovery, never a silent fresh join.
        if !req.correlation_id.is_empty() || !req.binding_token.is_empty() {
            return Ok(self.recover(now, conn, &identity, &req));
        }
        if self.participants.len() >= self.cfg.max_participants {
            return Ok(self.refuse(
                conn,
                ErrorCode::CapacityExceeded,
                "meeting is full",
                CloseCode::Capacity,
            ));
        }
        let user_id = match self.user_ids.get(&identity.sub) {
            Some(id) => *id,
            // Rule 9 keeps every user's id while the meeting lives; past what a snapshot
            // may carry the meeting could no longer move to another MC.
            None if self.user_ids.len() >= super::MAX_SNAPSHOT_USERS => {
                return Ok(self.refuse(
                    conn,
                    ErrorCode::CapacityExceeded,
                    "meeting has had too many users",
                    CloseCode::Capacity,
                ));
            }
            None => {
                // At most MAX_SNAPSHOT_USERS + 1: an import's counter is checked
                // against its users.
                let id = self.next_user_id;
                self.next_user_id += 1;
                self.user_ids.insert(identity.sub.clone(), id);
                id
            }
        };
        // Each join and each leave goes to every participant, and one token may join
        // again and again: a user's fresh joins are budgeted (recoveries are not).
        if !super::user_budget(&mut self.users, &self.cfg, user_id, now)
            .joins
            .take(now)
        {
            self.stats.joins_rate_limited += 1;
            tracing::debug!(meeting_id = %self.id, user_id, ?conn, "join refused: the user's joins are spent");
            return Ok(self.refuse(
                conn,
                ErrorCode::InvalidRequest,
                super::config::REFUSED_JOIN_RATE,
                CloseCode::RateLimited,
            ));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let unix_ms = self.unix_ms(now);
        let name = if identity.name.is_empty() {
            &req.participant_name
        } else {
            &identity.name
        };
        let p = Participant {
            seq,
            participant_id: uuid_v7(unix_ms),
            user_id,
            name: display_name(name, self.cfg.max_string_len),
            sub: identity.sub,
            role: identity.role,
            conn: Some(conn),
            grace_deadline: None,
            joined_at_ms: unix_ms,
            correlation_id: uuid_v7(unix_ms),
            nonce: fresh_nonce(),
            streams: Vec::new(),
            mute: MuteState::default(),
            layout: None,
            recoveries: super::config::recovery_budget(now),
        };
        let joined = S::ParticipantJoined(pb::ParticipantJoined {
            participant: Some(p.to_pb()),
        });
        self.participants.push(p);
        self.by_conn.insert(conn, seq);
        self.stats.joins += 1;
        let idx = self.participants.len() - 1;
        self.layout_index = None;
        self.send_join_response(idx, conn);
        self.broadcast(joined, Some(conn));
        // No layout changes: a layout shows participants by their streams, and the
        // newcomer, last in join order, has none yet.
        Ok(JoinOutcome::Joined)
    }

    /// Rule 7: restore the participant named by `correlation_id` if the binding token
    /// and `sub` match; the old connection (if any) is closed with 0x106.
    fn recover(
        &mut self,
        now: Instant,
        conn: ConnKey,
        identity: &JoinIdentity,
        req: &pb::JoinRequest,
    ) -> JoinOutcome {
        let found = self.participants.iter().position(|p| {
            p.correlation_id == req.correlation_id
                && p.sub == identity.sub
                && self.key.verify(
                    &p.correlation_id,
                    &p.participant_id,
                    &p.nonce,
                    &req.binding_token,
                )
        });
        let Some(idx) = found else {
            return self.refuse(
                conn,
                ErrorCode::Unauthorized,
                "invalid binding token",
                CloseCode::Unauthorized,
            );
        };
        let Some(p) = self.participants.get_mut(idx) else {
            return self.refuse(
                conn,
                ErrorCode::InternalError,
                "internal error",
                CloseCode::ProtocolViolation,
            );
        };
        // Refused past its budget before anything changes: the token stays good, and
        // the old connection, if any, stays.
        if !p.recoveries.take_n(now, super::config::RECOVERY_EVERY_SECS) {
            self.stats.recoveries_rate_limited += 1;
            tracing::debug!(meeting_id = %self.id, user_id = p.user_id, ?conn, "recovery refused: the participant's recoveries are spent");
            return self.refuse(
                conn,
                ErrorCode::InvalidRequest,
                super::config::REFUSED_RECOVERY_RATE,
                CloseCode::RateLimited,
            );
        }
        p.nonce = fresh_nonce(); // one-time: the presented token is now dead
        if p.grace_deadline.take().is_some() {
            self.in_grace -= 1;
        }
        let seq = p.seq;
        let old = p.conn.replace(conn);
        if let Some(old) = old {
            self.by_conn.remove(&old);
            self.stats.replaced_connections += 1;
            self.out.push_back(super::Outbound::Close {
                to: old,
                code: CloseCode::Replaced,
                reason: "replaced_by_recovery",
            });
        }
        self.by_conn.insert(conn, seq);
        self.stats.recoveries += 1;
        self.send_join_response(idx, conn);
        // The restored layout is re-sent at once on the new connection.
        self.send_layout_now(idx);
        JoinOutcome::Recovered
    }

    /// JoinResponse (everyone but the joiner, rule 8) plus the mute state of anyone
    /// muted, so a (re)joining client starts from the current state.
    fn send_join_response(&mut self, idx: usize, conn: ConnKey) {
        let Some(p) = self.participants.get(idx) else {
            return;
        };
        let token = self
            .key
            .issue(&p.correlation_id, &p.participant_id, &p.nonce);
        let mut resp = pb::JoinResponse {
            participant_id: p.participant_id.clone(),
            user_id: p.user_id,
            existing_participants: Vec::new(),
            media_servers: self
                .cfg
                .media_servers
                .iter()
                .map(|u| pb::MediaServerInfo {
                    media_handler_url: u.clone(),
                })
                .collect(),
            encryption_keys: None,
            correlation_id: p.correlation_id.clone(),
            binding_token: token,
        };
        let mutes: Vec<_> = self
            .participants
            .iter()
            .filter(|o| o.mute.any())
            .map(|o| {
                Arc::new(ServerMessage::of(S::ParticipantMuteUpdate(
                    o.mute.to_pb(&o.participant_id),
                )))
            })
            .collect();
        // Rule 12: the MC never sends a frame above the limit. Existing participants that
        // do not fit in the JoinResponse follow it as ParticipantJoined, in join order.
        let mut budget = self
            .cfg
            .max_frame
            .saturating_sub(ENVELOPE_OVERHEAD + resp.encoded_len());
        let mut overflow = Vec::new();
        for o in self.participants.iter().filter(|o| o.seq != p.seq) {
            let entry = o.to_pb();
            let len = entry.encoded_len();
            let cost = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
            if overflow.is_empty() && cost <= budget {
                budget -= cost;
                resp.existing_participants.push(entry);
            } else {
                overflow.push(entry);
            }
        }
        self.send(conn, Arc::new(ServerMessage::of(S::JoinResponse(resp))));
        for entry in overflow {
            let joined = S::ParticipantJoined(pb::ParticipantJoined {
                participant: Some(entry),
            });
            self.send(conn, Arc::new(ServerMessage::of(joined)));
        }
        for m in mutes {
            self.send(conn, m);
        }
    }

    fn refuse(
        &mut self,
        conn: ConnKey,
        code: ErrorCode,
        message: &'static str,
        close: CloseCode,
    ) -> JoinOutcome {
        self.stats.refused_joins += 1;
        self.send(conn, Arc::new(ServerMessage::error(code, message)));
        self.out.push_back(super::Outbound::Close {
            to: conn,
            code: close,
            reason: close.label(),
        });
        JoinOutcome::Refused(close)
    }

    /// The connection ended. `clean` (stream finished, session or QUIC closed with code
    /// 0) leaves VOLUNTARY at once; anything else starts the grace period with nothing
    /// sent to others (rule 6). Held while the meeting is frozen for a hand-over.
    pub fn handle_disconnect(
        &mut self,
        now: Instant,
        conn: ConnKey,
        clean: bool,
    ) -> Result<(), MeetingError> {
        if self.handover.is_some() {
            return self.hold_disconnect(now, conn, clean);
        }
        let Some(idx) = self.idx_by_conn(conn) else {
            return Err(MeetingError::UnknownConnection(conn));
        };
        self.by_conn.remove(&conn);
        if clean {
            self.stats.leaves_voluntary += 1;
            if self.remove(idx, pb::LeaveReason::Voluntary) {
                self.refresh_layouts();
            }
        } else if let Some(p) = self.participants.get_mut(idx) {
            p.conn = None;
            let deadline = now + self.cfg.grace;
            if p.grace_deadline.replace(deadline).is_none() {
                self.in_grace += 1;
            }
            self.next_grace = Some(self.next_grace.map_or(deadline, |t| t.min(deadline)));
        }
        self.expire(now);
        Ok(())
    }

    /// Removes participants whose grace deadline is at or before `now` (TIMEOUT); not
    /// while frozen for a hand-over (the snapshot carries the grace left).
    pub(super) fn expire(&mut self, now: Instant) {
        if self.handover.is_some() || self.in_grace == 0 || self.next_grace.is_some_and(|t| t > now)
        {
            return;
        }
        let mut layouts_changed = false;
        let mut idx = 0;
        while idx < self.participants.len() {
            if self.participants[idx]
                .grace_deadline
                .is_some_and(|d| d <= now)
            {
                self.stats.leaves_timeout += 1;
                layouts_changed |= self.remove(idx, pb::LeaveReason::Timeout);
            } else {
                idx += 1;
            }
        }
        self.next_grace = self
            .participants
            .iter()
            .filter_map(|p| p.grace_deadline)
            .min();
        if layouts_changed {
            self.refresh_layouts();
        }
    }

    /// Removes participant `idx` and tells everyone; returns whether it had a stream
    /// (only then can a layout change).
    fn remove(&mut self, idx: usize, reason: pb::LeaveReason) -> bool {
        if idx >= self.participants.len() {
            return false;
        }
        self.layout_index = None;
        let p = self.participants.remove(idx);
        // A layout shows a participant by its streams: one without any was in none.
        let shown = !p.streams.is_empty();
        if p.grace_deadline.is_some() {
            self.in_grace -= 1;
        }
        if let Some(c) = p.conn {
            self.by_conn.remove(&c);
        }
        let left = S::ParticipantLeft(pb::ParticipantLeft {
            participant_id: p.participant_id,
            reason: reason as i32,
        });
        self.broadcast(left, None);
        shown
    }
}

/// The name the meeting keeps and shows: at most `max` bytes, each control character a
/// space (a name is free text, so it is mended rather than refused; a snapshot then
/// holds no character JSON must escape as six bytes).
fn display_name(name: &str, max: usize) -> String {
    truncate_str(name, max)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

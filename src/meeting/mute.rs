//! Mute: self mute, host mute, unmute request and response (docs/protocol.md "Semantics the
//! MC owns" → Mute; Precise rules 2 and 3).

use std::sync::Arc;
use std::time::Instant;

use super::{ConnKey, Meeting, Role};
use crate::signaling::proto::{pb, server_message::Message as S, ErrorCode, ServerMessage};

/// A participant's mute flags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct MuteState {
    pub(super) audio_self: bool,
    pub(super) video_self: bool,
    pub(super) audio_host: bool,
    pub(super) video_host: bool,
    /// The host's participant_id; empty when no host mute is set (rule 3).
    pub(super) host_muted_by: String,
}

impl MuteState {
    pub(super) fn any(&self) -> bool {
        self.audio_self || self.video_self || self.audio_host || self.video_host
    }

    fn host_muted(&self) -> bool {
        self.audio_host || self.video_host
    }

    /// Whether lifting the host mutes named by `audio` and `video` would lift any: what
    /// an unmute request may ask for, and what an unmute response changes.
    fn would_lift(&self, audio: bool, video: bool) -> bool {
        (audio && self.audio_host) || (video && self.video_host)
    }

    pub(super) fn to_pb(&self, participant_id: &str) -> pb::ParticipantMuteUpdate {
        pb::ParticipantMuteUpdate {
            participant_id: participant_id.to_owned(),
            audio_self_muted: self.audio_self,
            video_self_muted: self.video_self,
            audio_host_muted: self.audio_host,
            video_host_muted: self.video_host,
            host_muted_by: self.host_muted_by.clone(),
        }
    }
}

impl Meeting {
    /// Rule 3: one ParticipantMuteUpdate with the full current flags, to everyone
    /// (subject and initiator included). Layouts do not depend on mute flags (rule 11):
    /// none is recomputed.
    fn broadcast_mute(&mut self, idx: usize) {
        let Some(p) = self.participants.get(idx) else {
            return;
        };
        let update = S::ParticipantMuteUpdate(p.mute.to_pb(&p.participant_id));
        self.stats.mute_updates += 1;
        self.broadcast(update, None);
    }

    /// `MuteRequest` changes only the sender's self flags; host flags are untouched,
    /// so a host-muted participant cannot unmute itself this way (rule 3).
    pub(super) fn on_mute(&mut self, now: Instant, idx: usize, conn: ConnKey, m: pb::MuteRequest) {
        if !self.take_broadcast(now, idx, conn) {
            return;
        }
        let Some(p) = self.participants.get_mut(idx) else {
            return;
        };
        p.mute.audio_self = m.audio_muted;
        p.mute.video_self = m.video_muted;
        self.broadcast_mute(idx);
    }

    /// `HostMuteRequest`: role=host only (FORBIDDEN), known target only (NOT_FOUND);
    /// `false` lifts that host mute directly (rule 3).
    pub(super) fn on_host_mute(
        &mut self,
        now: Instant,
        idx: usize,
        conn: ConnKey,
        h: pb::HostMuteRequest,
    ) {
        let Some(host) = self.participants.get(idx) else {
            return;
        };
        if host.role != Role::Host {
            return self.reply_error(conn, ErrorCode::Forbidden, "host role required");
        }
        let host_pid = host.participant_id.clone();
        let Some(target) = self.idx_by_pid(&h.participant_id) else {
            return self.reply_error(conn, ErrorCode::NotFound, "unknown participant");
        };
        if !self.take_broadcast(now, idx, conn) {
            return;
        }
        let Some(t) = self.participants.get_mut(target) else {
            return;
        };
        t.mute.audio_host = h.audio_muted;
        t.mute.video_host = h.video_muted;
        t.mute.host_muted_by = if t.mute.host_muted() {
            host_pid
        } else {
            String::new()
        };
        self.broadcast_mute(target);
    }

    /// A host-muted participant's `UnmuteRequest` is forwarded to every connected host
    /// with `participant_id` filled in (rules 2, 3), within the meeting's broadcast
    /// budget.
    pub(super) fn on_unmute_request(
        &mut self,
        now: Instant,
        idx: usize,
        conn: ConnKey,
        u: pb::UnmuteRequest,
    ) {
        let Some(p) = self.participants.get(idx) else {
            return;
        };
        if !p.mute.would_lift(u.request_audio, u.request_video) {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "not host-muted");
        }
        // Delivered to every host, and every seat may be a host's: it spends the budget
        // as a request delivered to everyone does. The budget is asked before the roster
        // is walked for hosts, so a refused request costs no walk of a large meeting; it
        // is spent only once a host is there to receive it.
        if !self.broadcast_budget(now, idx, conn, false) {
            return;
        }
        let host =
            |role: Role, to: Option<ConnKey>| to.filter(|c| role == Role::Host && *c != conn);
        if !self
            .participants
            .iter()
            .any(|h| host(h.role, h.conn).is_some())
        {
            return self.reply_error(conn, ErrorCode::NotFound, "no host connected");
        }
        if !self.broadcast_budget(now, idx, conn, true) {
            return;
        }
        self.stats.unmute_requests_forwarded += 1;
        let fwd = Arc::new(ServerMessage::of(S::UnmuteRequest(pb::UnmuteRequest {
            request_audio: u.request_audio,
            request_video: u.request_video,
            participant_id: self.participants[idx].participant_id.clone(),
        })));
        for i in 0..self.participants.len() {
            let h = &self.participants[i];
            if let Some(c) = host(h.role, h.conn) {
                self.send(c, Arc::clone(&fwd));
            }
        }
    }

    /// A host's `UnmuteResponse` lifts the approved host mutes (→ ParticipantMuteUpdate
    /// to all) and is forwarded to the participant (rule 3). One that lifts nothing
    /// notifies only the participant and is not counted against the broadcast budget;
    /// one refused by it lifts nothing and is not forwarded.
    pub(super) fn on_unmute_response(
        &mut self,
        now: Instant,
        idx: usize,
        conn: ConnKey,
        r: pb::UnmuteResponse,
    ) {
        let Some(host) = self.participants.get(idx) else {
            return;
        };
        if host.role != Role::Host {
            return self.reply_error(conn, ErrorCode::Forbidden, "host role required");
        }
        let Some(target) = self.idx_by_pid(&r.participant_id) else {
            return self.reply_error(conn, ErrorCode::NotFound, "unknown participant");
        };
        let Some(t) = self.participants.get(target) else {
            return;
        };
        let lifted = t.mute.would_lift(r.audio_approved, r.video_approved);
        if lifted && !self.take_broadcast(now, idx, conn) {
            return;
        }
        let Some(t) = self.participants.get_mut(target) else {
            return;
        };
        if r.audio_approved {
            t.mute.audio_host = false;
        }
        if r.video_approved {
            t.mute.video_host = false;
        }
        if !t.mute.host_muted() {
            t.mute.host_muted_by.clear();
        }
        let to = t.conn;
        if lifted {
            self.broadcast_mute(target);
        }
        if let Some(to) = to {
            self.send(to, Arc::new(ServerMessage::of(S::UnmuteResponse(r))));
        }
    }
}

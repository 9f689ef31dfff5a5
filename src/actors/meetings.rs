//! The meeting actors of one shard: every meeting whose id hashes to this shard.
//!
//! Commands arrive from connection actors (local calls or the mesh's meeting lane);
//! each is handed to the meeting's sans-IO state machine under `catch_unwind`, and the
//! machine's outbound work is delivered to the connections — encoded once per fan-out
//! (one `Arc<ServerMessage>` → one `Bytes` for every recipient).
//!
//! A panic while a meeting handles a message is caught and counted
//! (`mc_actor_panics_total{actor_type="meeting"}`); only that meeting ends, its
//! participants get an `ErrorMessage{INTERNAL_ERROR}` and are closed. The shard and its
//! other meetings continue.
//!
//! Live migration (docs/protocol.md rules 17–21) has its host side here too: list the
//! live meetings, freeze and export one, commit or abort its hand-over, and import a
//! meeting another MC hands over (which takes an admission slot like any new meeting).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{ConnCmd, MeetingCmd, MeetingEnv};
use crate::admission::Refusal;
use crate::auth::binding::MeetingBindingKey;
use crate::meeting::{
    CloseCode, ConnKey, EndReason, JoinOutcome, Meeting, MeetingSnapshot, Outbound, RedirectReason,
};
use crate::migration::{decide, Holding, ImportAnswer, ImportRequest, LiveMeeting, TargetState};
use crate::signaling::codec::encode_to_bytes;
use crate::signaling::proto::{server_message, ErrorCode, ServerMessage};

struct Entry {
    meeting: Meeting,
    /// Connections that sent a join to this meeting and have not gone: who to tell if
    /// the meeting panics (its own state may then be unusable).
    members: HashSet<ConnKey>,
    /// `MeetingStats::broadcasts_refused`, `joins_rate_limited` and
    /// `recoveries_rate_limited` already added to `mc_refusals_total`.
    refusals_reported: [u64; 3],
    /// The meeting's grace deadline as `MeetingHost::deadlines` holds it.
    deadline: Option<Instant>,
}

impl Entry {
    fn new(meeting: Meeting) -> Self {
        Entry {
            meeting,
            members: HashSet::new(),
            refusals_reported: [0; 3],
            deadline: None,
        }
    }
}

/// Meetings owned by one shard.
/// Sessions [`MeetingHost`] remembers closing for a message their meeting no longer
/// knows.
const ORPHANS_REMEMBERED: usize = 64;

#[derive(Default)]
pub struct MeetingHost {
    meetings: HashMap<String, Entry>,
    /// Every meeting with a grace deadline, earliest first. A meeting's deadline changes
    /// only while it handles something, and each of those ends in `flush`, which updates
    /// this index: the shard's timer reads the first entry instead of asking every
    /// meeting after every pass.
    deadlines: BTreeSet<(Instant, String)>,
    /// Sessions closed lately for a message their meeting no longer knows, the newest
    /// last ([`ORPHANS_REMEMBERED`]): a session's other messages in flight close it
    /// once, not once each.
    orphans_closed: VecDeque<ConnKey>,
    /// Test hook: panic while handling the next message of this meeting.
    #[cfg(test)]
    pub(crate) panic_in: Option<String>,
}

impl MeetingHost {
    pub fn len(&self) -> usize {
        self.meetings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meetings.is_empty()
    }

    /// Participants across this shard's meetings (disconnected-in-grace included).
    pub fn participants(&self) -> usize {
        self.meetings
            .values()
            .map(|e| e.meeting.participant_count())
            .sum()
    }

    /// When a meeting may next have a grace period end: at or before the earliest one
    /// ([`Meeting::poll_timeout`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The earliest grace deadline found by asking every meeting: what the index must
    /// agree with.
    #[cfg(test)]
    pub(crate) fn deadline_by_asking_each_meeting(&self) -> Option<Instant> {
        self.meetings
            .values()
            .filter_map(|e| e.meeting.poll_timeout())
            .min()
    }

    /// Handle one command; deliveries go through `env`.
    pub fn handle(&mut self, env: &mut dyn MeetingEnv, now: Instant, cmd: MeetingCmd) {
        match cmd {
            MeetingCmd::Join {
                conn,
                identity,
                request,
                received_at,
            } => {
                let meeting_id = request.meeting_id.clone();
                if !self.meetings.contains_key(&meeting_id) {
                    if let Err(refusal) = env.admission().try_reserve_meeting() {
                        let (code, close, label) = match refusal {
                            Refusal::Capacity => {
                                ("this MC is at capacity", CloseCode::Capacity, "capacity")
                            }
                            Refusal::Draining => {
                                ("this MC is draining", CloseCode::Draining, "draining")
                            }
                        };
                        env.join_outcome(label, None);
                        refuse(env, now, conn, ErrorCode::CapacityExceeded, code, close);
                        return;
                    }
                    let key = MeetingBindingKey::derive(env.binding_secret(), &meeting_id);
                    let meeting = Meeting::new(meeting_id.clone(), env.meeting_config(), key, now);
                    self.meetings
                        .insert(meeting_id.clone(), Entry::new(meeting));
                    env.meetings_changed(1);
                    tracing::info!(meeting_id = %meeting_id, "meeting created");
                }
                let result = self.with_meeting(env, now, &meeting_id, |e| {
                    e.members.insert(conn);
                    e.meeting.handle_join(now, conn, identity, *request)
                });
                match result {
                    Some(Ok(outcome)) => {
                        env.join_outcome(outcome.label(), Some(received_at));
                        if let JoinOutcome::Refused(_) = outcome {
                            self.forget_member(&meeting_id, conn);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "join refused by the meeting");
                        env.join_outcome("error", None);
                        refuse(
                            env,
                            now,
                            conn,
                            ErrorCode::InvalidRequest,
                            "join refused",
                            CloseCode::ProtocolViolation,
                        );
                    }
                    None => env.join_outcome("error", None),
                }
                self.flush(env, now, &meeting_id, Some(received_at));
            }
            MeetingCmd::Message {
                conn,
                meeting_id,
                msg,
                received_at,
            } => {
                #[cfg(test)]
                let poison = self.panic_in.as_deref() == Some(meeting_id.as_str());
                let result = self.with_meeting(env, now, &meeting_id, |e| {
                    #[cfg(test)]
                    if poison {
                        panic!("test: injected panic in meeting handler");
                    }
                    e.meeting.handle_message(now, conn, msg)
                });
                // A session whose meeting is gone, or which the meeting no longer
                // knows, was sent its close already, unless that close was lost to a
                // full mesh: closing it again (a second close changes nothing) keeps it
                // from living on with a roster that no longer changes. 0x103 sends it
                // back to the GC to join again, as after a meeting's end.
                let orphan = match result {
                    Some(Ok(())) => false,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "message for a connection not in the meeting");
                        true
                    }
                    None => !self.meetings.contains_key(&meeting_id),
                };
                if orphan && !self.orphans_closed.contains(&conn) {
                    if self.orphans_closed.len() >= ORPHANS_REMEMBERED {
                        self.orphans_closed.pop_front();
                    }
                    self.orphans_closed.push_back(conn);
                    env.deliver(conn, ConnCmd::Close(CloseCode::Draining));
                }
                self.flush(env, now, &meeting_id, Some(received_at));
            }
            MeetingCmd::Disconnect {
                conn,
                meeting_id,
                clean,
            } => {
                // After a recovery replaced this connection, the meeting no longer knows
                // it: UnknownConnection is expected then.
                let _ = self.with_meeting(env, now, &meeting_id, |e| {
                    e.members.remove(&conn);
                    e.meeting.handle_disconnect(now, conn, clean)
                });
                self.flush(env, now, &meeting_id, None);
            }
        }
    }

    /// Grace expiries due at `now`.
    pub fn handle_timeout(&mut self, env: &mut dyn MeetingEnv, now: Instant) {
        let due: Vec<String> = self
            .deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            let _ = self.with_meeting(env, now, &id, |e| {
                e.meeting.handle_timeout(now);
                Ok::<(), ()>(())
            });
            self.flush(env, now, &id, None);
        }
    }

    /// Drain end: end every meeting (`MEETING_ENDED`, or a redirect) and close sessions.
    pub fn end_all(&mut self, env: &mut dyn MeetingEnv, now: Instant, redirect: Option<&str>) {
        let ids: Vec<String> = self.meetings.keys().cloned().collect();
        for id in ids {
            let reason = match redirect {
                Some(endpoint) => EndReason::Redirect {
                    endpoint: endpoint.to_string(),
                },
                None => EndReason::Drained,
            };
            let _ = self.with_meeting(env, now, &id, |e| {
                e.meeting.end(now, reason);
                Ok::<(), ()>(())
            });
            self.flush(env, now, &id, None);
        }
    }

    /// Every meeting of this shard with its roster size (connected or within grace).
    pub fn live_meetings(&self) -> Vec<LiveMeeting> {
        self.meetings
            .iter()
            .map(|(id, e)| LiveMeeting {
                meeting_id: id.clone(),
                participants: u32::try_from(e.meeting.participant_count()).unwrap_or(u32::MAX),
            })
            .collect()
    }

    /// Freezes `meeting_id` for a hand-over and exports its state
    /// (`Meeting::begin_handover`). `None` when there is no such meeting, or nobody is
    /// left in it once the grace periods due by `now` expired (it is removed then).
    pub fn begin_handover(
        &mut self,
        env: &mut dyn MeetingEnv,
        now: Instant,
        meeting_id: &str,
    ) -> Option<MeetingSnapshot> {
        let snapshot = self.with_meeting(env, now, meeting_id, |e| {
            Ok::<_, ()>(e.meeting.begin_handover(now))
        });
        self.flush(env, now, meeting_id, None);
        let snapshot = snapshot?.ok()?;
        if !self.meetings.contains_key(meeting_id) || snapshot.participants.is_empty() {
            return None;
        }
        Some(snapshot)
    }

    /// The target holds the meeting: every connected participant gets `RedirectToMc`
    /// to `endpoint` and is closed with 0x103; the meeting is gone from this MC.
    pub fn commit_handover(
        &mut self,
        env: &mut dyn MeetingEnv,
        now: Instant,
        meeting_id: &str,
        endpoint: &str,
        reason: RedirectReason,
    ) {
        let reason = EndReason::Handover {
            endpoint: endpoint.to_string(),
            reason,
        };
        let ended = self.with_meeting(env, now, meeting_id, |e| {
            e.meeting.end(now, reason);
            Ok::<(), ()>(())
        });
        if ended.is_some() {
            tracing::info!(meeting_id, endpoint, "meeting handed over to another MC");
        }
        self.flush(env, now, meeting_id, None);
    }

    /// The hand-over failed: unfreeze the meeting and replay what it held, in order.
    pub fn abort_handover(&mut self, env: &mut dyn MeetingEnv, now: Instant, meeting_id: &str) {
        let _ = self.with_meeting(env, now, meeting_id, |e| {
            e.meeting.abort_handover(now);
            Ok::<(), ()>(())
        });
        self.flush(env, now, meeting_id, None);
    }

    /// What this shard holds under `meeting_id`, for [`decide`].
    pub fn holding(&self, meeting_id: &str) -> Holding {
        match self.meetings.get(meeting_id) {
            None => Holding::Nothing,
            Some(e) => match e.meeting.imported_digest() {
                Some(digest) => Holding::Imported { digest },
                None => Holding::Live {
                    participants: e.meeting.participant_count(),
                },
            },
        }
    }

    /// A meeting handed over by another MC (its request already authenticated and
    /// checked by the admin plane): decide, then build it with every participant in
    /// grace. It takes an admission slot like any new meeting.
    pub fn import(
        &mut self,
        env: &mut dyn MeetingEnv,
        now: Instant,
        req: ImportRequest,
    ) -> ImportAnswer {
        let meeting_id = req.snapshot.meeting_id.clone();
        let target = TargetState {
            draining: !env.admission().admitting(),
            at_capacity: false,
        };
        let answer = decide(&req, self.holding(&meeting_id), target);
        if answer != ImportAnswer::Accepted {
            return answer;
        }
        // An entry without participants (decide lets it be replaced) keeps its slot.
        let replacing = self.meetings.contains_key(&meeting_id);
        if !replacing {
            match env.admission().try_reserve_meeting() {
                Ok(()) => {}
                Err(Refusal::Capacity) => return ImportAnswer::AtCapacity,
                Err(Refusal::Draining) => return ImportAnswer::Draining,
            }
        }
        let meeting = match Meeting::import(
            req.snapshot,
            env.meeting_config(),
            env.binding_secret(),
            now,
        ) {
            Ok(m) => m,
            Err(e) => {
                if !replacing {
                    env.admission().release_meeting();
                }
                return ImportAnswer::BadRequest(format!("invalid snapshot: {e}"));
            }
        };
        let participants = meeting.participant_count();
        self.remove(&meeting_id);
        self.meetings
            .insert(meeting_id.clone(), Entry::new(meeting));
        if !replacing {
            env.meetings_changed(1);
        }
        tracing::info!(
            meeting_id = %meeting_id,
            participants,
            source = %req.source.id,
            "meeting imported from another MC"
        );
        self.flush(env, now, &meeting_id, None);
        ImportAnswer::Accepted
    }

    /// Undo an [`MeetingHost::import`] whose answer could not reach the admin plane:
    /// the source will not redirect anyone here, so the meeting must not stay.
    pub fn forget_imported(&mut self, env: &mut dyn MeetingEnv, meeting_id: &str) {
        let imported = self
            .meetings
            .get(meeting_id)
            .is_some_and(|e| e.meeting.imported_digest().is_some() && e.members.is_empty());
        if imported && self.remove(meeting_id).is_some() {
            env.admission().release_meeting();
            env.meetings_changed(-1);
            tracing::warn!(meeting_id, "imported meeting dropped: its answer was lost");
        }
    }

    /// Run `f` on a meeting, catching a panic. `None`: no such meeting, or it panicked
    /// (and has been ended).
    fn with_meeting<T, E>(
        &mut self,
        env: &mut dyn MeetingEnv,
        now: Instant,
        meeting_id: &str,
        f: impl FnOnce(&mut Entry) -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        let entry = self.meetings.get_mut(meeting_id)?;
        match catch_unwind(AssertUnwindSafe(|| f(entry))) {
            Ok(r) => Some(r),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(meeting_id, panic = %what, "Panic in actor: meeting ended, shard continues");
                env.meeting_panicked();
                if let Some(entry) = self.remove(meeting_id) {
                    for conn in entry.members {
                        refuse(
                            env,
                            now,
                            conn,
                            ErrorCode::InternalError,
                            "the meeting failed and was ended",
                            CloseCode::Draining,
                        );
                    }
                    env.admission().release_meeting();
                    env.meetings_changed(-1);
                }
                None
            }
        }
    }

    fn forget_member(&mut self, meeting_id: &str, conn: ConnKey) {
        if let Some(e) = self.meetings.get_mut(meeting_id) {
            e.members.remove(&conn);
        }
    }

    /// Deliver the meeting's outbound work; remove it when empty.
    fn flush(
        &mut self,
        env: &mut dyn MeetingEnv,
        now: Instant,
        meeting_id: &str,
        received_at: Option<Instant>,
    ) {
        let Some(entry) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        let stats = entry.meeting.stats();
        let refused = [
            stats.broadcasts_refused,
            stats.joins_rate_limited,
            stats.recoveries_rate_limited,
        ];
        for ((reason, now_refused), reported) in ["meeting_rate", "join_rate", "recovery_rate"]
            .into_iter()
            .zip(refused)
            .zip(&mut entry.refusals_reported)
        {
            if now_refused > *reported {
                env.refusals(reason, now_refused - *reported);
                *reported = now_refused;
            }
        }
        let max = env.max_frame();
        // A fan-out is a run of Sends sharing one Arc: encode it once and deliver it as
        // one command per destination shard. Runs are emitted in order, so every
        // recipient still sees messages in processing order (docs/protocol.md rule 14).
        let mut run: Option<FanOut> = None;
        while let Some(out) = entry.meeting.poll_outbound() {
            match out {
                Outbound::Send { to, msg } => {
                    if run.as_ref().is_some_and(|r| !Arc::ptr_eq(&r.msg, &msg)) {
                        if let Some(r) = run.take() {
                            r.emit(env);
                        }
                    }
                    if run.is_none() {
                        let join_response =
                            matches!(msg.message, Some(server_message::Message::JoinResponse(_)));
                        match encode_to_bytes(&*msg, max) {
                            Ok(frame) => {
                                run = Some(FanOut {
                                    msg: msg.clone(),
                                    frame,
                                    join_response,
                                    at: now,
                                    to: Vec::new(),
                                })
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "server message over the frame limit; not sent");
                                continue;
                            }
                        }
                    }
                    if let Some(r) = run.as_mut() {
                        r.add(to);
                    }
                }
                Outbound::Close { to, code, reason } => {
                    if let Some(r) = run.take() {
                        r.emit(env);
                    }
                    if code == CloseCode::Replaced {
                        entry.members.remove(&to);
                    }
                    tracing::debug!(conn = ?to, code = code.code(), reason, "closing session");
                    env.deliver(to, ConnCmd::Close(code));
                }
            }
        }
        if let Some(r) = run.take() {
            r.emit(env);
        }
        if let Some(t) = received_at {
            env.message_processed(t);
        }
        if entry.meeting.is_empty() {
            self.remove(meeting_id);
            env.admission().release_meeting();
            env.meetings_changed(-1);
            tracing::info!(meeting_id, "meeting ended (empty)");
            return;
        }
        let deadline = entry.meeting.poll_timeout();
        if deadline != entry.deadline {
            if let Some(was) = std::mem::replace(&mut entry.deadline, deadline) {
                self.deadlines.remove(&(was, meeting_id.to_string()));
            }
            if let Some(t) = deadline {
                self.deadlines.insert((t, meeting_id.to_string()));
            }
        }
    }

    /// Removes a meeting and its deadline.
    fn remove(&mut self, meeting_id: &str) -> Option<Entry> {
        let entry = self.meetings.remove(meeting_id)?;
        if let Some(was) = entry.deadline {
            self.deadlines.remove(&(was, meeting_id.to_string()));
        }
        Some(entry)
    }
}

/// One encoded message and its recipients, grouped by shard in first-seen order.
struct FanOut {
    msg: Arc<ServerMessage>,
    frame: Bytes,
    join_response: bool,
    at: Instant,
    to: Vec<(u16, Vec<u64>)>,
}

impl FanOut {
    fn add(&mut self, to: ConnKey) {
        match self.to.iter_mut().find(|(shard, _)| *shard == to.shard) {
            Some((_, conns)) => conns.push(to.conn),
            None => self.to.push((to.shard, vec![to.conn])),
        }
    }

    fn emit(self, env: &mut dyn MeetingEnv) {
        for (shard, conns) in self.to {
            env.deliver_many(
                shard,
                conns,
                ConnCmd::Frame {
                    frame: self.frame.clone(),
                    join_response: self.join_response,
                    at: self.at,
                },
            );
        }
    }
}

/// Answer `conn` with an error and close it with `close`.
fn refuse(
    env: &mut dyn MeetingEnv,
    now: Instant,
    conn: ConnKey,
    code: ErrorCode,
    text: &str,
    close: CloseCode,
) {
    match encode_to_bytes(&ServerMessage::error(code, text), env.max_frame()) {
        Ok(frame) => env.deliver(
            conn,
            ConnCmd::Frame {
                frame,
                join_response: false,
                at: now,
            },
        ),
        Err(e) => tracing::error!(error = %e, "cannot encode an error message"),
    }
    env.deliver(conn, ConnCmd::Close(close));
}

//! Moving a live meeting to another MC (docs/protocol.md rules 17–21).
//!
//! Source side, in this order:
//! 1. [`Meeting::begin_handover`] exports a [`MeetingSnapshot`] and freezes the meeting:
//!    from then on client messages and disconnects are held (not processed), joins are
//!    refused with close 0x103, and grace periods stand still — the snapshot is the
//!    whole state (rule 20).
//! 2. The driver hands the snapshot to the target.
//! 3. Accepted: [`Meeting::end`] with [`EndReason::Handover`] sends every connected
//!    participant `RedirectToMc` and closes it with 0x103; what was held is dropped
//!    (rule 20: the client resends on the target). Refused or unanswered:
//!    [`Meeting::abort_handover`] replays what was held, in order, and the meeting
//!    carries on as if nothing happened.
//!
//! Target side: [`Meeting::import`] builds the meeting with every participant present
//! but not connected, in grace (rule 19): the remaining grace for those already in
//! grace, the configured grace for those who were connected. Their recovery join
//! (rule 7) restores them; the others see no leave or join; one that does not arrive
//! leaves with `TIMEOUT` when its grace ends.
//!
//! The grace carried over restarts at import time, so it is extended by the hand-over's
//! own duration (bounded by the driver's timeouts): the MCs' clocks are never compared.
//! The budgets travel the same way: what was left of the meeting's broadcast budget and
//! of each user's budgets that were not full, in whole requests, refilling on the
//! target from import time. A drain refills nothing a user spent.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::layout_sub::LayoutSub;
use super::mute::MuteState;
use super::roster::Participant;
use super::snapshot::{
    ConnectionSnapshot, ImportError, LayoutSnapshot, MeetingSettings, MeetingSnapshot,
    MuteSnapshot, ParticipantSnapshot, StreamSnapshot, UserBudgetSnapshot, SNAPSHOT_VERSION,
};
use super::{ConnKey, EndReason, Meeting, MeetingConfig, MeetingError, UserBudget};
use crate::auth::binding::{BindingSecret, MeetingBindingKey};
use crate::signaling::proto::ClientMessage;
use crate::signaling::session::TokenBucket;

/// Inputs held while a meeting is frozen for a hand-over. Beyond this many, or beyond
/// [`MAX_HELD_BYTES`], further messages are dropped and counted
/// (`MeetingStats::handover_inputs_dropped`). Disconnects are always held: there is at
/// most one per participant, and nothing else would tell the meeting if the hand-over
/// fails.
pub const MAX_HELD_INPUTS: usize = 4096;
/// Bytes of held inputs, each counted as its slot plus its message's encoded size: a
/// client's message may be as large as a frame (64 KiB by default), so the count alone
/// would let a meeting hold 256 MiB.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// An input that arrived while the meeting was frozen, with its arrival time.
#[derive(Debug)]
pub(super) enum Held {
    Message(Instant, ConnKey, Box<ClientMessage>),
    Disconnect(Instant, ConnKey, bool),
}

impl Held {
    fn conn(&self) -> ConnKey {
        match self {
            Self::Message(_, conn, _) | Self::Disconnect(_, conn, _) => *conn,
        }
    }

    /// What holding it costs against [`MAX_HELD_BYTES`].
    fn bytes(&self) -> usize {
        let message = match self {
            Self::Message(_, _, msg) => msg.held_len(),
            Self::Disconnect(..) => 0,
        };
        std::mem::size_of::<Self>() + message
    }
}

/// A hand-over in progress on the source.
#[derive(Debug, Default)]
pub(super) struct Handover {
    pub(super) held: VecDeque<Held>,
    /// [`Held::bytes`] of `held`.
    held_bytes: usize,
}

impl Meeting {
    /// The meeting's state at `now`, without changing it.
    pub fn export(&self, now: Instant) -> MeetingSnapshot {
        MeetingSnapshot {
            version: SNAPSHOT_VERSION,
            meeting_id: self.id.clone(),
            settings: MeetingSettings {
                disconnect_grace_ms: millis(self.cfg.grace),
                max_participants: u32::try_from(self.cfg.max_participants).unwrap_or(u32::MAX),
                max_streams_per_participant: u32::try_from(self.cfg.max_streams_per_participant)
                    .unwrap_or(u32::MAX),
            },
            user_ids: self
                .user_ids
                .iter()
                .map(|(sub, id)| (sub.clone(), *id))
                .collect(),
            next_user_id: self.next_user_id,
            participants: self
                .participants
                .iter()
                .map(|p| export_participant(p, now))
                .collect(),
            broadcasts_left: Some(self.broadcasts.left(now)),
            user_budgets: self.export_user_budgets(now),
        }
    }

    /// The users whose budgets are not full at `now`, by user id.
    fn export_user_budgets(&self, now: Instant) -> Vec<UserBudgetSnapshot> {
        let mut out: Vec<UserBudgetSnapshot> = self
            .users
            .iter()
            .filter_map(|(id, b)| {
                let (broadcasts_left, joins_left) = (b.broadcasts.left(now), b.joins.left(now));
                let full = broadcasts_left >= b.broadcasts.burst() && joins_left >= b.joins.burst();
                (!full).then_some(UserBudgetSnapshot {
                    user_id: *id,
                    broadcasts_left,
                    joins_left,
                })
            })
            .collect();
        out.sort_unstable_by_key(|b| b.user_id);
        out
    }

    /// Expires what is due, exports the state and freezes the meeting until
    /// [`Meeting::end`] or [`Meeting::abort_handover`] (module docs). Calling it again
    /// while frozen exports the same state again, its budgets refilled to `now` (which
    /// [`MeetingSnapshot::digest`] leaves out).
    pub fn begin_handover(&mut self, now: Instant) -> MeetingSnapshot {
        if self.handover.is_none() {
            self.expire(now);
            self.handover = Some(Handover::default());
            self.stats.handovers_started += 1;
        }
        self.export(now)
    }

    /// The hand-over failed: unfreeze and replay the held inputs in order, each at its
    /// arrival time; grace deadlines that passed meanwhile expire at `now`, after them.
    pub fn abort_handover(&mut self, now: Instant) {
        let Some(handover) = self.handover.take() else {
            return;
        };
        self.stats.handovers_aborted += 1;
        for input in handover.held {
            // A connection may have gone since (its disconnect is replayed after its
            // messages), so UnknownConnection is expected and harmless here.
            let _ = match input {
                Held::Message(at, conn, msg) => self.handle_message(at, conn, *msg),
                Held::Disconnect(at, conn, clean) => self.handle_disconnect(at, conn, clean),
            };
        }
        self.expire(now);
    }

    /// Frozen by [`Meeting::begin_handover`].
    pub fn is_handing_over(&self) -> bool {
        self.handover.is_some()
    }

    /// [`MeetingSnapshot::digest`] of the snapshot this meeting was imported from
    /// (`None` for a meeting created here): a repeated import of the same content is
    /// answered 200 without importing again (`migration::Holding::Imported`).
    pub fn imported_digest(&self) -> Option<[u8; 32]> {
        self.imported_digest
    }

    /// Ends a frozen hand-over for good (the meeting was redirected): the held inputs
    /// are dropped, as rule 20 says.
    pub(super) fn commit_handover(&mut self, reason: &EndReason) {
        if let Some(h) = self.handover.take() {
            self.stats.handover_inputs_dropped += h.held.len() as u64;
        }
        if matches!(reason, EndReason::Handover { .. }) {
            self.stats.handovers_completed += 1;
        }
    }

    /// Builds a handed-over meeting on the target (module docs). `secret` is the
    /// cluster's binding secret, from which the meeting key is derived for the
    /// snapshot's meeting id; the wall clock is read once for later joiners' `joined_at`.
    pub fn import(
        snapshot: MeetingSnapshot,
        cfg: MeetingConfig,
        secret: &BindingSecret,
        now: Instant,
    ) -> Result<Self, ImportError> {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::import_at(snapshot, cfg, secret, now, unix_ms)
    }

    /// As [`Meeting::import`], with the wall-clock time (unix ms) matching `now` injected.
    pub fn import_at(
        snapshot: MeetingSnapshot,
        cfg: MeetingConfig,
        secret: &BindingSecret,
        now: Instant,
        unix_ms: u64,
    ) -> Result<Self, ImportError> {
        snapshot.validate(&cfg)?;
        let digest = snapshot.digest();
        let key = MeetingBindingKey::derive(secret, &snapshot.meeting_id);
        let grace = cfg.grace;
        let mut m = Self::new_at(snapshot.meeting_id, cfg, key, now, unix_ms);
        m.imported_digest = Some(digest);
        m.user_ids = snapshot.user_ids.into_iter().collect::<HashMap<_, _>>();
        m.next_user_id = snapshot.next_user_id;
        for (i, p) in snapshot.participants.into_iter().enumerate() {
            let left = match p.connection {
                ConnectionSnapshot::Connected => grace,
                ConnectionSnapshot::Grace { remaining_ms } => {
                    Duration::from_millis(remaining_ms).min(grace)
                }
            };
            let Some(nonce) = p.nonce() else {
                return Err(ImportError::Participant {
                    index: i,
                    problem: "binding_nonce must be 32 hex digits",
                });
            };
            m.in_grace += 1;
            m.participants.push(Participant {
                seq: i as u64,
                participant_id: p.participant_id,
                user_id: p.user_id,
                sub: p.sub,
                name: p.name,
                role: p.role,
                conn: None,
                grace_deadline: Some(now + left),
                joined_at_ms: p.joined_at,
                correlation_id: p.correlation_id,
                nonce,
                streams: p.streams.iter().map(StreamSnapshot::to_pb).collect(),
                mute: MuteState {
                    audio_self: p.mute.audio_self,
                    video_self: p.mute.video_self,
                    audio_host: p.mute.audio_host,
                    video_host: p.mute.video_host,
                    host_muted_by: p.mute.host_muted_by,
                },
                layout: p.layout.map(|l| LayoutSub::new(l.config(), l.stream_ids)),
                recoveries: super::config::recovery_budget(now),
            });
        }
        if let Some(left) = snapshot.broadcasts_left {
            let (rate, burst) = (m.cfg.broadcast_rate, m.cfg.broadcast_burst);
            m.broadcasts = TokenBucket::with_left(rate, burst, left, now);
        }
        for b in snapshot.user_budgets {
            m.users
                .insert(b.user_id, UserBudget::carried(&m.cfg, &b, now));
        }
        m.next_seq = m.participants.len() as u64;
        m.next_grace = m.participants.iter().filter_map(|p| p.grace_deadline).min();
        m.stats.imported_participants = m.participants.len() as u64;
        Ok(m)
    }

    /// A disconnect that arrived while the meeting is frozen for a hand-over: held in
    /// order with the messages (see `hold`).
    pub(super) fn hold_disconnect(
        &mut self,
        now: Instant,
        conn: ConnKey,
        clean: bool,
    ) -> Result<(), MeetingError> {
        self.hold(Held::Disconnect(now, conn, clean))
    }

    /// Holds `input` of a frozen meeting (check [`Meeting::is_handing_over`] first);
    /// `Err` for a stranger, as when not frozen.
    pub(super) fn hold(&mut self, input: Held) -> Result<(), MeetingError> {
        let conn = input.conn();
        if !self.by_conn.contains_key(&conn) {
            return Err(MeetingError::UnknownConnection(conn));
        }
        let Some(handover) = self.handover.as_mut() else {
            return Ok(());
        };
        let bytes = input.bytes();
        let full =
            handover.held.len() >= MAX_HELD_INPUTS || handover.held_bytes + bytes > MAX_HELD_BYTES;
        if full && matches!(input, Held::Message(..)) {
            self.stats.handover_inputs_dropped += 1;
        } else {
            handover.held_bytes += bytes;
            handover.held.push_back(input);
            self.stats.handover_inputs_held += 1;
        }
        Ok(())
    }
}

fn export_participant(p: &Participant, now: Instant) -> ParticipantSnapshot {
    let connection = match (p.conn, p.grace_deadline) {
        (Some(_), _) | (None, None) => ConnectionSnapshot::Connected,
        (None, Some(deadline)) => ConnectionSnapshot::Grace {
            remaining_ms: millis(deadline.saturating_duration_since(now)),
        },
    };
    ParticipantSnapshot {
        participant_id: p.participant_id.clone(),
        user_id: p.user_id,
        sub: p.sub.clone(),
        name: p.name.clone(),
        role: p.role,
        correlation_id: p.correlation_id.clone(),
        binding_nonce: hex::encode(p.nonce),
        joined_at: p.joined_at_ms,
        streams: p.streams.iter().map(StreamSnapshot::from_pb).collect(),
        mute: MuteSnapshot {
            audio_self: p.mute.audio_self,
            video_self: p.mute.video_self,
            audio_host: p.mute.audio_host,
            video_host: p.mute.video_host,
            host_muted_by: p.mute.host_muted_by.clone(),
        },
        layout: p
            .layout
            .as_ref()
            .map(|l| LayoutSnapshot::from_pb(l.config(), l.stream_ids())),
        connection,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! The [`Drain`] state machine: its state, its inputs and its outputs. The steps they
//! lead to are in `sequence.rs`; the whole sequence is described in the module docs of
//! [`crate::drain`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::{
    DrainAction, DrainConfig, DrainEvent, DrainPhase, DrainStats, LiveReport, RequestId, Trigger,
};
use crate::migration::{LiveMeeting, Target};

/// Events kept for the driver; it drains them after every call, so this is slack.
pub(super) const MAX_EVENTS: usize = 1024;

/// Where one hand-over stands.
#[derive(Debug)]
pub(super) enum Stage {
    /// `ExportMeeting` sent to the owner shard.
    Exporting { id: RequestId, deadline: Instant },
    /// `SendImport` attempt `attempt` in flight; `body` is kept for a retry.
    Sending {
        id: RequestId,
        attempt: u32,
        deadline: Instant,
        body: Bytes,
    },
    /// Between a failed attempt and the next.
    Pausing {
        next_attempt: u32,
        at: Instant,
        body: Bytes,
    },
}

impl Stage {
    pub(super) fn due(&self) -> Instant {
        match self {
            Self::Exporting { deadline, .. } | Self::Sending { deadline, .. } => *deadline,
            Self::Pausing { at, .. } => *at,
        }
    }
}

/// How a hand-over ended.
pub(super) enum Outcome {
    Moved,
    Refused(u16),
    Failed(String),
}

/// One meeting on its way to `target`, since `started` (the export request).
#[derive(Debug)]
pub(super) struct Handover {
    pub(super) target: Target,
    pub(super) started: Instant,
    pub(super) stage: Stage,
}

/// The drain state machine. See the module docs.
#[derive(Debug)]
pub struct Drain {
    pub(super) cfg: DrainConfig,
    pub(super) phase: DrainPhase,
    pub(super) signals: u32,
    pub(super) next_id: u64,
    /// The outstanding `ListMeetings` and its deadline.
    pub(super) listing: Option<(RequestId, Instant)>,
    pub(super) next_list: Option<Instant>,
    /// The first `ListMeetings` issued in the current phase: older reports do not count.
    pub(super) phase_first_list: u64,
    /// The next report starts a round of migration.
    pub(super) want_targets: bool,
    pub(super) asking: Option<(RequestId, Instant, Vec<LiveMeeting>)>,
    pub(super) queue: VecDeque<(String, Target)>,
    pub(super) handovers: BTreeMap<String, Handover>,
    pub(super) round_active: bool,
    pub(super) next_round: Option<Instant>,
    /// Rounds in which each meeting was offered to the GC.
    pub(super) offered: HashMap<String, u32>,
    pub(super) moved: HashSet<String>,
    /// Migration is over for this drain (timeout, or the GC set us back to active).
    pub(super) migration_stopped: bool,
    /// The SIGTERM drain timeout has passed.
    pub(super) timed_out: bool,
    /// Meetings in the last report, for logs.
    pub(super) last_meetings: usize,
    pub(super) actions: VecDeque<DrainAction>,
    pub(super) events: VecDeque<DrainEvent>,
    pub(super) stats: DrainStats,
}

impl Drain {
    pub fn new(cfg: DrainConfig) -> Self {
        Self {
            cfg,
            phase: DrainPhase::Active,
            signals: 0,
            next_id: 0,
            listing: None,
            next_list: None,
            phase_first_list: 0,
            want_targets: false,
            asking: None,
            queue: VecDeque::new(),
            handovers: BTreeMap::new(),
            round_active: false,
            next_round: None,
            offered: HashMap::new(),
            moved: HashSet::new(),
            migration_stopped: true,
            timed_out: false,
            last_meetings: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: DrainStats::default(),
        }
    }

    // ---- inputs ----

    /// SIGTERM or SIGINT. The first starts the drain; a second asks for `ExitNow`.
    pub fn handle_signal(&mut self, now: Instant) {
        self.signals += 1;
        if self.signals > 1 {
            self.actions.push_back(DrainAction::ExitNow);
            return;
        }
        if !matches!(
            self.phase,
            DrainPhase::Active | DrainPhase::GcDraining { .. }
        ) {
            return;
        }
        self.start_rounds(now);
        self.actions.push_back(DrainAction::StopAdmitting {
            trigger: Trigger::Signal,
        });
        self.push(DrainEvent::Started {
            trigger: Trigger::Signal,
        });
        self.set_phase(DrainPhase::ShuttingDown {
            deadline: now + self.cfg.drain_timeout,
        });
        self.next_list = Some(now);
        self.step(now);
    }

    /// The GC's view of this MC from a heartbeat reply: `draining` or back to `active`.
    pub fn handle_gc_status(&mut self, now: Instant, draining: bool) {
        match (self.phase, draining) {
            (DrainPhase::Active, true) => {
                self.start_rounds(now);
                self.actions.push_back(DrainAction::StopAdmitting {
                    trigger: Trigger::Gc,
                });
                self.push(DrainEvent::Started {
                    trigger: Trigger::Gc,
                });
                self.set_phase(DrainPhase::GcDraining { since: now });
            }
            (DrainPhase::GcDraining { .. }, false) => {
                self.stop_migration();
                self.listing = None;
                self.actions.push_back(DrainAction::ResumeAdmitting);
                self.push(DrainEvent::Resumed);
                self.set_phase(DrainPhase::Active);
            }
            // A SIGTERM drain is not undone by the GC; repeats change nothing.
            _ => {}
        }
        self.step(now);
    }

    /// The answer to `ListMeetings{id}`.
    pub fn handle_live_meetings(&mut self, now: Instant, id: RequestId, report: LiveReport) {
        if self.listing.map(|(l, _)| l) != Some(id) {
            return;
        }
        self.listing = None;
        self.last_meetings = report.meetings.len();
        if matches!(
            self.phase,
            DrainPhase::ShuttingDown { .. } | DrainPhase::Ending { .. }
        ) {
            self.next_list = Some(now + self.cfg.poll_interval);
        }
        if self.want_targets && !self.migration_stopped {
            self.want_targets = false;
            self.ask_targets(now, &report.meetings);
        }
        let nothing_left = report.meetings.is_empty() && report.sessions == 0;
        let current = id.0 >= self.phase_first_list;
        match self.phase {
            DrainPhase::ShuttingDown { .. } if nothing_left && current && self.migration_idle() => {
                self.push(DrainEvent::AllEnded);
                self.deregister(now);
            }
            DrainPhase::Ending { .. } if nothing_left && current => self.deregister(now),
            _ => {}
        }
        self.step(now);
    }

    /// The GC's answer to `RequestTargets{id}`: meeting_id → target, or why it failed
    /// (every meeting asked about then has no target this round).
    pub fn handle_targets(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<BTreeMap<String, Target>, String>,
    ) {
        if self.asking.as_ref().map(|a| a.0) != Some(id) {
            return;
        }
        let Some((_, _, asked)) = self.asking.take() else {
            return;
        };
        match result {
            Err(cause) => {
                self.stats.no_target += asked.len() as u64;
                self.push(DrainEvent::TargetsFailed { cause });
            }
            Ok(mut targets) => {
                for m in asked {
                    match targets.remove(&m.meeting_id) {
                        Some(t) => self.queue.push_back((m.meeting_id, t)),
                        None => {
                            self.stats.no_target += 1;
                            self.push(DrainEvent::NoTarget {
                                meeting_id: m.meeting_id,
                            });
                        }
                    }
                }
            }
        }
        self.step(now);
    }

    /// The owner shard's answer to `ExportMeeting{id}`: the import request body, or
    /// `None` when the meeting no longer exists.
    pub fn handle_exported(&mut self, now: Instant, id: RequestId, body: Option<Bytes>) {
        let exporting = |s: &Stage| matches!(s, Stage::Exporting { id: i, .. } if *i == id);
        let Some(meeting_id) = self.handover_where(exporting) else {
            return;
        };
        match body {
            None => {
                self.handovers.remove(&meeting_id);
                self.push(DrainEvent::MeetingGone { meeting_id });
            }
            // The target would answer 413: spare it the bytes.
            Some(body) if body.len() > self.cfg.max_handover_bytes => {
                self.finish(now, &meeting_id, Outcome::Refused(413));
            }
            Some(body) => self.send_attempt(now, &meeting_id, 1, body),
        }
        self.step(now);
    }

    /// The outcome of `SendImport{id}`: the HTTP status, or a transport error or timeout.
    pub fn handle_import_response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<u16, String>,
    ) {
        let sending = |s: &Stage| matches!(s, Stage::Sending { id: i, .. } if *i == id);
        let Some(meeting_id) = self.handover_where(sending) else {
            return;
        };
        self.import_answer(now, &meeting_id, result);
        self.step(now);
    }

    /// `Deregister{id}` finished, whatever the GC answered.
    pub fn handle_deregistered(&mut self, now: Instant, _id: RequestId) {
        if matches!(self.phase, DrainPhase::Deregistering { .. }) {
            self.exit();
        }
        self.step(now);
    }

    /// Deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.listing.is_some_and(|(_, deadline)| deadline <= now) {
            self.listing = None;
            self.push(DrainEvent::ListTimedOut);
            if matches!(
                self.phase,
                DrainPhase::ShuttingDown { .. } | DrainPhase::Ending { .. }
            ) {
                // Ask again at once; a pending round rides on that list.
                self.next_list = Some(now);
            } else if self.want_targets {
                // A round that could not see the meetings starts again later.
                self.want_targets = false;
                self.next_round = Some(now + self.cfg.round_interval);
            }
        }
        if let Some((id, deadline, _)) = &self.asking {
            if *deadline <= now {
                let id = *id;
                self.handle_targets(now, id, Err("timed out".into()));
            }
        }
        let due: Vec<String> = self
            .handovers
            .iter()
            .filter(|(_, h)| h.stage.due() <= now)
            .map(|(m, _)| m.clone())
            .collect();
        for meeting_id in due {
            let Some(h) = self.handovers.get(&meeting_id) else {
                continue;
            };
            match &h.stage {
                Stage::Exporting { .. } => {
                    self.finish(now, &meeting_id, Outcome::Failed("export timed out".into()))
                }
                Stage::Sending { .. } => {
                    self.import_answer(now, &meeting_id, Err("timed out".into()))
                }
                Stage::Pausing {
                    next_attempt, body, ..
                } => {
                    let (attempt, body) = (*next_attempt, body.clone());
                    self.send_attempt(now, &meeting_id, attempt, body);
                }
            }
        }
        match self.phase {
            DrainPhase::Ending { until } if until <= now => self.deregister(now),
            DrainPhase::Deregistering { until } if until <= now => self.exit(),
            _ => {}
        }
        self.step(now);
    }

    // ---- outputs ----

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<DrainAction> {
        self.actions.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<DrainEvent> {
        self.events.pop_front()
    }

    /// When [`Drain::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            DrainPhase::ShuttingDown { deadline } if !self.timed_out => Some(deadline),
            DrainPhase::Ending { until } | DrainPhase::Deregistering { until } => Some(until),
            _ => None,
        };
        let list = match self.listing {
            Some((_, deadline)) => Some(deadline),
            None => self.next_list,
        };
        let asking = self.asking.as_ref().map(|a| a.1);
        [phase, list, asking, self.next_round]
            .into_iter()
            .flatten()
            .chain(self.handovers.values().map(|h| h.stage.due()))
            .min()
    }

    pub fn phase(&self) -> DrainPhase {
        self.phase
    }

    /// Draining for any reason: readiness answers 503.
    pub fn is_draining(&self) -> bool {
        !matches!(self.phase, DrainPhase::Active)
    }

    pub fn stats(&self) -> DrainStats {
        self.stats
    }

    /// Meetings whose hand-over is in flight.
    pub fn handovers_in_flight(&self) -> usize {
        self.handovers.len()
    }
}

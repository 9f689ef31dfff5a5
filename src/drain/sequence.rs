//! The steps of the drain: rounds of migration, hand-overs, the end (the sequence is
//! described in the module docs of [`crate::drain`]).

use std::time::Instant;

use bytes::Bytes;

use super::machine::{Drain, Handover, Outcome, Stage, MAX_EVENTS};
use super::{DrainAction, DrainEvent, DrainPhase, ImportReply, RequestId};
use crate::meeting::RedirectReason;
use crate::migration::LiveMeeting;

impl Drain {
    /// Everything that follows from the current state at `now`.
    pub(super) fn step(&mut self, now: Instant) {
        if let DrainPhase::ShuttingDown { deadline } = self.phase {
            if now >= deadline {
                if !self.timed_out {
                    self.timed_out = true;
                    self.push(DrainEvent::DrainTimeout {
                        meetings_left: self.last_meetings,
                    });
                    self.stop_migration();
                }
                // Imports already sent finish first (bounded by their timeouts).
                if self.handovers.is_empty() {
                    self.actions.push_back(DrainAction::EndAllMeetings);
                    self.set_phase(DrainPhase::Ending {
                        until: now + self.cfg.flush_timeout,
                    });
                    self.next_list = Some(now);
                }
            }
        }
        if !self.migration_stopped {
            self.start_handovers(now);
            if self.round_active && self.migration_idle() {
                self.round_active = false;
                self.next_round = Some(now + self.cfg.round_interval);
            }
            if self.next_round.is_some_and(|t| t <= now) && !self.round_active {
                self.next_round = None;
                self.want_targets = true;
                self.list(now);
            }
        }
        let polling = matches!(
            self.phase,
            DrainPhase::ShuttingDown { .. } | DrainPhase::Ending { .. }
        );
        if polling && self.next_list.is_some_and(|t| t <= now) {
            self.list(now);
        }
    }

    /// A new drain (or SIGTERM during a GC drain): every meeting may be offered again.
    pub(super) fn start_rounds(&mut self, now: Instant) {
        if !(self.cfg.gc && self.cfg.migrate) {
            return;
        }
        self.migration_stopped = false;
        self.offered.clear();
        if !self.round_active {
            self.next_round = Some(now);
        }
    }

    /// No more rounds or exports; imports already sent run to their end.
    pub(super) fn stop_migration(&mut self) {
        self.migration_stopped = true;
        self.want_targets = false;
        self.next_round = None;
        self.round_active = false;
        self.asking = None;
        self.queue.clear();
        let unsent: Vec<String> = self
            .handovers
            .iter()
            .filter(|(_, h)| !matches!(h.stage, Stage::Sending { .. }))
            .map(|(m, _)| m.clone())
            .collect();
        for meeting_id in unsent {
            self.handovers.remove(&meeting_id);
            self.actions.push_back(DrainAction::AbortHandover {
                meeting_id: meeting_id.clone(),
            });
            self.push(DrainEvent::HandoverCancelled { meeting_id });
        }
    }

    pub(super) fn migration_idle(&self) -> bool {
        self.asking.is_none() && self.queue.is_empty() && self.handovers.is_empty()
    }

    pub(super) fn list(&mut self, now: Instant) {
        if self.listing.is_some() {
            return;
        }
        let id = self.request_id();
        self.listing = Some((id, now + self.cfg.list_timeout));
        self.next_list = None;
        self.actions.push_back(DrainAction::ListMeetings { id });
    }

    /// One round: the meetings still here that may be offered again.
    pub(super) fn ask_targets(&mut self, now: Instant, live: &[LiveMeeting]) {
        let rounds = self.cfg.rounds;
        let meetings: Vec<LiveMeeting> = live
            .iter()
            .filter(|m| {
                !self.moved.contains(&m.meeting_id)
                    && !self.handovers.contains_key(&m.meeting_id)
                    && !self.queue.iter().any(|(q, _)| *q == m.meeting_id)
                    && self.offered.get(&m.meeting_id).copied().unwrap_or(0) < rounds
            })
            .cloned()
            .collect();
        if meetings.is_empty() {
            return;
        }
        for m in &meetings {
            *self.offered.entry(m.meeting_id.clone()).or_default() += 1;
        }
        let id = self.request_id();
        self.stats.rounds += 1;
        self.round_active = true;
        self.push(DrainEvent::TargetsRequested {
            meetings: meetings.len(),
        });
        self.asking = Some((id, now + self.cfg.targets_timeout, meetings.clone()));
        self.actions
            .push_back(DrainAction::RequestTargets { id, meetings });
    }

    pub(super) fn start_handovers(&mut self, now: Instant) {
        while self.handovers.len() < self.cfg.max_concurrent_handovers.max(1) {
            let Some((meeting_id, target)) = self.queue.pop_front() else {
                return;
            };
            let id = self.request_id();
            self.push(DrainEvent::HandoverStarted {
                meeting_id: meeting_id.clone(),
                target_id: target.id.clone(),
            });
            self.handovers.insert(
                meeting_id.clone(),
                Handover {
                    target,
                    started: now,
                    stage: Stage::Exporting {
                        id,
                        deadline: now + self.cfg.export_timeout,
                    },
                },
            );
            self.actions
                .push_back(DrainAction::ExportMeeting { id, meeting_id });
        }
    }

    pub(super) fn send_attempt(
        &mut self,
        now: Instant,
        meeting_id: &str,
        attempt: u32,
        body: Bytes,
    ) {
        let id = self.request_id();
        let timeout = self.cfg.import_timeout;
        let Some(h) = self.handovers.get_mut(meeting_id) else {
            return;
        };
        h.stage = Stage::Sending {
            id,
            attempt,
            deadline: now + timeout,
            body: body.clone(),
        };
        let target = h.target.clone();
        self.stats.import_attempts += 1;
        self.actions.push_back(DrainAction::SendImport {
            id,
            meeting_id: meeting_id.to_owned(),
            target,
            body,
            attempt,
            timeout,
        });
    }

    /// The answer to the attempt in flight: commit, refuse, retry or give up.
    pub(super) fn import_answer(
        &mut self,
        now: Instant,
        meeting_id: &str,
        result: Result<u16, String>,
    ) {
        let Some(Stage::Sending { attempt, body, .. }) =
            self.handovers.get(meeting_id).map(|h| &h.stage)
        else {
            return;
        };
        let (attempt, body) = (*attempt, body.clone());
        let cause = match result {
            Ok(status) => match ImportReply::of_status(status) {
                ImportReply::Accepted => return self.finish(now, meeting_id, Outcome::Moved),
                ImportReply::Refused => {
                    return self.finish(now, meeting_id, Outcome::Refused(status))
                }
                ImportReply::Retry => format!("HTTP {status}"),
            },
            Err(cause) => cause,
        };
        if attempt >= self.cfg.import_attempts || self.migration_stopped {
            return self.finish(now, meeting_id, Outcome::Failed(cause));
        }
        self.push(DrainEvent::ImportAttemptFailed {
            meeting_id: meeting_id.to_owned(),
            attempt,
            cause,
        });
        if let Some(h) = self.handovers.get_mut(meeting_id) {
            h.stage = Stage::Pausing {
                next_attempt: attempt + 1,
                at: now + self.cfg.retry_delay,
                body,
            };
        }
    }

    /// The end of one hand-over: redirect on success, unfreeze otherwise.
    pub(super) fn finish(&mut self, now: Instant, meeting_id: &str, outcome: Outcome) {
        let Some(h) = self.handovers.remove(meeting_id) else {
            return;
        };
        let meeting_id = meeting_id.to_owned();
        let target_id = h.target.id;
        let event = match outcome {
            Outcome::Moved => {
                self.stats.migrated += 1;
                self.moved.insert(meeting_id.clone());
                self.actions.push_back(DrainAction::CommitHandover {
                    meeting_id: meeting_id.clone(),
                    endpoint: h.target.webtransport_endpoint,
                    reason: RedirectReason::Draining,
                });
                DrainEvent::HandedOver {
                    meeting_id,
                    target_id,
                    elapsed: now.saturating_duration_since(h.started),
                }
            }
            Outcome::Refused(status) => {
                self.stats.refused += 1;
                self.actions.push_back(DrainAction::AbortHandover {
                    meeting_id: meeting_id.clone(),
                });
                DrainEvent::HandoverRefused {
                    meeting_id,
                    target_id,
                    status,
                }
            }
            Outcome::Failed(cause) => {
                self.stats.failed += 1;
                self.actions.push_back(DrainAction::AbortHandover {
                    meeting_id: meeting_id.clone(),
                });
                DrainEvent::HandoverFailed {
                    meeting_id,
                    target_id,
                    cause,
                }
            }
        };
        self.push(event);
    }

    pub(super) fn deregister(&mut self, now: Instant) {
        if matches!(
            self.phase,
            DrainPhase::Deregistering { .. } | DrainPhase::Done
        ) {
            return;
        }
        if !self.cfg.gc {
            return self.exit();
        }
        let id = self.request_id();
        self.actions.push_back(DrainAction::Deregister { id });
        self.push(DrainEvent::Deregistering);
        self.set_phase(DrainPhase::Deregistering {
            until: now + self.cfg.deregister_timeout,
        });
    }

    pub(super) fn exit(&mut self) {
        self.actions.push_back(DrainAction::Exit);
        self.push(DrainEvent::Exiting);
        self.set_phase(DrainPhase::Done);
    }

    pub(super) fn set_phase(&mut self, phase: DrainPhase) {
        self.phase = phase;
        // Reports to lists issued from now on describe this phase.
        self.phase_first_list = self.next_id + 1;
        if matches!(phase, DrainPhase::Deregistering { .. } | DrainPhase::Done) {
            self.listing = None;
            self.next_list = None;
        }
    }

    pub(super) fn handover_where(&self, pred: impl Fn(&Stage) -> bool) -> Option<String> {
        self.handovers
            .iter()
            .find(|(_, h)| pred(&h.stage))
            .map(|(m, _)| m.clone())
    }

    pub(super) fn request_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    pub(super) fn push(&mut self, event: DrainEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

//! The I/O around [`Drain`]: its inputs come from the signal thread (through the
//! inbox), the GC client, the shards' answers and HTTP calls, all queued in
//! [`super::mesh::Inputs`]; its actions go to the shards (in order, per shard), to the
//! GC (`migrate`, deregister) and to target MCs (the signed import); its events become
//! the log lines `docs/runbook.md` names and its counters `mc_meetings_migrated_total`.
//!
//! One loop: feed every queued input, fire the machine's due deadline, carry out every
//! action, publish events and counters, flush what waits for a full shard lane, then
//! park until the next input or deadline. HTTP calls run as tasks of their own, each
//! bounded by its timeout, and report back as inputs.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use glommio::Task;
use prometheus::{Histogram, IntCounter};
use shards::ShardId;
use tracing::{debug, info, warn};

use super::{events, Control};
use crate::admission::Intake;
use crate::drain::{
    DrainAction, DrainConfig, DrainEvent, DrainPhase, DrainStats, LiveReport, MigrationResult,
    RequestId, Trigger,
};
use crate::gc::{GcControl, GcStats};
use crate::http1::{self, HttpUrl, Limits, Request};
use crate::meeting::MeetingSnapshot;
use crate::migration::targets::MAX_TARGETS_BODY_BYTES;
use crate::migration::{
    migrate_body, parse_targets, ImportRequest, LiveMeeting, SourceMc, Target, SIGNATURE_HEADER,
};
use crate::router::{meeting_shard, ShardMsg};

/// How often the drain logs its progress (`Draining`).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How soon the driver looks again while messages wait for a full shard lane.
const OUTBOX_RETRY: Duration = Duration::from_millis(5);
/// Beyond the GC client's own deregister timeout, how long to wait for it to end.
const DEREGISTER_SLACK: Duration = Duration::from_secs(2);

/// Something the drain learns.
#[derive(Debug)]
pub(super) enum Input {
    /// A termination signal (each one: the second means exit now).
    Signal,
    /// The GC's view from a heartbeat reply changed: `draining` or back to `active`.
    GcStatus(bool),
    /// One shard's answer to `ListMeetings`.
    Live {
        from: ShardId,
        id: u64,
        report: LiveReport,
    },
    /// The owner shard's answer to `ExportMeeting`.
    Exported {
        id: u64,
        snapshot: Option<Box<MeetingSnapshot>>,
    },
    Targets {
        id: RequestId,
        result: Result<BTreeMap<String, Target>, String>,
    },
    ImportResponse {
        id: RequestId,
        result: Result<u16, String>,
    },
    Deregistered {
        id: RequestId,
    },
}

/// The GC side of the drain.
pub(super) struct GcSide {
    pub(super) control: GcControl,
    pub(super) task: Option<Task<GcStats>>,
    /// `POST {GC base}/api/v1/mc/migrate`; `None`: it cannot be derived, no migration.
    pub(super) migrate_url: Option<HttpUrl>,
    pub(super) deregister_timeout: Duration,
}

/// A `ListMeetings` being answered by every shard.
struct Collect {
    id: u64,
    answered: Vec<bool>,
    report: LiveReport,
}

/// Label children of `mc_meetings_migrated_total{direction="out"}`, looked up once.
struct OutMetrics {
    results: Vec<(MigrationResult, IntCounter)>,
    duration: Histogram,
}

struct Driver {
    control: Rc<Control>,
    cfg: DrainConfig,
    gc: Option<GcSide>,
    source: SourceMc,
    listing: Option<Collect>,
    published: DrainStats,
    metrics: OutMetrics,
    next_progress: Instant,
    complete_logged: bool,
}

/// Drive the drain until it exits (or the mesh stops).
pub(super) async fn run(
    control: Rc<Control>,
    cfg: DrainConfig,
    gc: Option<GcSide>,
    source: SourceMc,
) {
    let m = &control.metrics;
    let metrics = OutMetrics {
        results: [
            MigrationResult::Ok,
            MigrationResult::Refused,
            MigrationResult::Failed,
            MigrationResult::NoTarget,
        ]
        .into_iter()
        .map(|r| {
            (
                r,
                m.meetings_migrated_total
                    .with_label_values(&["out", r.label()]),
            )
        })
        .collect(),
        duration: m.meeting_handover_duration_seconds.clone(),
    };
    let mut d = Driver {
        control,
        cfg,
        gc,
        source,
        listing: None,
        published: DrainStats::default(),
        metrics,
        next_progress: Instant::now(),
        complete_logged: false,
    };
    loop {
        let c = d.control.clone();
        if c.mesh.is_stopping() {
            return;
        }
        let now = Instant::now();
        while let Some(input) = c.inputs.pop() {
            d.feed(now, input);
        }
        {
            let mut drain = c.drain.borrow_mut();
            if drain.poll_timeout().is_some_and(|t| t <= now) {
                drain.handle_timeout(now);
            }
        }
        let mut exit = false;
        while let Some(action) = c.drain.borrow_mut().poll_action() {
            exit |= d.act(action);
        }
        d.publish();
        let overflowing = {
            let mut outbox = c.outbox.borrow_mut();
            outbox.flush_overflow();
            outbox.overflowing()
        };
        if exit {
            return;
        }
        let mut next = c.drain.borrow().poll_timeout();
        if overflowing {
            let soon = now + OUTBOX_RETRY;
            next = Some(next.map_or(soon, |t| t.min(soon)));
        }
        c.inputs.wait(next).await;
    }
}

impl Driver {
    fn feed(&mut self, now: Instant, input: Input) {
        let c = self.control.clone();
        let mut drain = c.drain.borrow_mut();
        match input {
            Input::Signal => drain.handle_signal(now),
            Input::GcStatus(draining) => drain.handle_gc_status(now, draining),
            Input::Live { from, id, report } => {
                let Some(l) = self.listing.as_mut().filter(|l| l.id == id) else {
                    return;
                };
                if let Some(seen) = l.answered.get_mut(from.index()) {
                    if !*seen {
                        *seen = true;
                        l.report.meetings.extend(report.meetings);
                        l.report.sessions += report.sessions;
                    }
                }
                if !l.answered.iter().all(|a| *a) {
                    return;
                }
                let Some(done) = self.listing.take() else {
                    return;
                };
                if matches!(drain.phase(), DrainPhase::ShuttingDown { .. })
                    && now >= self.next_progress
                {
                    self.next_progress = now + PROGRESS_EVERY;
                    info!(
                        meetings = done.report.meetings.len(),
                        sessions = done.report.sessions,
                        handovers = drain.handovers_in_flight(),
                        "Draining"
                    );
                }
                drain.handle_live_meetings(now, RequestId(id), done.report);
            }
            Input::Exported { id, snapshot } => {
                let body = snapshot.map(|snapshot| {
                    Bytes::from(
                        ImportRequest {
                            source: self.source.clone(),
                            snapshot: *snapshot,
                        }
                        .to_body(),
                    )
                });
                drain.handle_exported(now, RequestId(id), body);
            }
            Input::Targets { id, result } => drain.handle_targets(now, id, result),
            Input::ImportResponse { id, result } => drain.handle_import_response(now, id, result),
            Input::Deregistered { id } => drain.handle_deregistered(now, id),
        }
    }

    /// Carry out one action; true for `Exit`.
    fn act(&mut self, action: DrainAction) -> bool {
        let c = &self.control;
        match action {
            DrainAction::StopAdmitting { trigger } => {
                match trigger {
                    Trigger::Signal => {
                        c.admission.set(Intake::ShuttingDown);
                        if let Some(gc) = &self.gc {
                            gc.control.start_draining();
                        }
                    }
                    Trigger::Gc => c.admission.set(Intake::NoNewMeetings),
                }
                c.metrics.draining.set(1);
            }
            DrainAction::ResumeAdmitting => {
                c.admission.set(Intake::Open);
                c.metrics.draining.set(0);
            }
            DrainAction::ListMeetings { id } => {
                self.listing = Some(Collect {
                    id: id.0,
                    answered: vec![false; c.shards],
                    report: LiveReport::default(),
                });
                for s in 0..c.shards {
                    c.send_to_shard(ShardId(s as u16), ShardMsg::ListMeetings { id: id.0 });
                }
            }
            DrainAction::RequestTargets { id, meetings } => self.request_targets(id, meetings),
            DrainAction::ExportMeeting { id, meeting_id } => {
                let to = meeting_shard(&meeting_id, c.shards);
                c.send_to_shard(
                    to,
                    ShardMsg::ExportMeeting {
                        id: id.0,
                        meeting_id,
                    },
                );
            }
            DrainAction::SendImport {
                id,
                meeting_id,
                target,
                body,
                attempt,
                timeout,
            } => {
                debug!(meeting_id, target = %target.id, attempt, "Migration: sending the meeting");
                self.send_import(id, target, body, timeout);
            }
            DrainAction::CommitHandover {
                meeting_id,
                endpoint,
                reason,
            } => {
                let to = meeting_shard(&meeting_id, c.shards);
                let msg = ShardMsg::CommitHandover {
                    meeting_id,
                    endpoint,
                    reason,
                };
                c.send_to_shard(to, msg);
            }
            DrainAction::AbortHandover { meeting_id } => {
                let to = meeting_shard(&meeting_id, c.shards);
                c.send_to_shard(to, ShardMsg::AbortHandover { meeting_id });
            }
            DrainAction::EndAllMeetings => {
                for s in 0..c.shards {
                    c.send_to_shard(ShardId(s as u16), ShardMsg::EndMeetings);
                }
            }
            DrainAction::Deregister { id } => self.deregister(id),
            DrainAction::Exit => return true,
            DrainAction::ExitNow => {
                warn!("Second termination signal, exiting immediately");
                std::process::exit(128 + c.shutdown.last_signal());
            }
        }
        false
    }

    /// `POST /api/v1/mc/migrate`, answered as an input.
    fn request_targets(&self, id: RequestId, meetings: Vec<LiveMeeting>) {
        let control = self.control.clone();
        let url = self.gc.as_ref().and_then(|g| g.migrate_url.clone());
        let timeout = self.cfg.targets_timeout;
        let own_id = self.source.id.clone();
        glommio::spawn_local(async move {
            let result = match url {
                None => Err("no migrate URL".to_string()),
                Some(url) => {
                    let req = Request::post_json(url, migrate_body(&own_id, &meetings));
                    let limits = Limits {
                        max_body_bytes: MAX_TARGETS_BODY_BYTES,
                        ..Limits::default()
                    };
                    match http1::exchange(&req, timeout, limits).await {
                        Err(e) => Err(e.to_string()),
                        Ok(resp) => parse_targets(resp.status, &resp.body, &own_id, &meetings)
                            .map(|t| {
                                // One line per meeting asked about (bounded by the
                                // request); one line for all the others, however many.
                                for (meeting_id, why) in &t.skipped {
                                    warn!(meeting_id, reason = why, "Migration: GC target refused");
                                }
                                if t.unasked > 0 {
                                    warn!(
                                        count = t.unasked,
                                        examples = ?t.unasked_examples,
                                        "Migration: GC answered for meetings not asked about; ignored"
                                    );
                                }
                                t.targets
                            })
                            .map_err(|e| e.to_string()),
                    }
                }
            };
            control.inputs.push(Input::Targets { id, result });
        })
        .detach();
    }

    /// The signed import POST to the target, answered as an input.
    fn send_import(&self, id: RequestId, target: Target, body: Bytes, timeout: Duration) {
        let control = self.control.clone();
        glommio::spawn_local(async move {
            let result = import_once(&control, &target, &body, timeout).await;
            control.inputs.push(Input::ImportResponse { id, result });
        })
        .detach();
    }

    /// Deregister (the GC client's best effort), answered as an input when it ends.
    fn deregister(&mut self, id: RequestId) {
        let control = self.control.clone();
        let Some(gc) = self.gc.as_mut() else {
            control.inputs.push(Input::Deregistered { id });
            return;
        };
        gc.control.shutdown();
        let task = gc.task.take();
        let wait = gc.deregister_timeout + DEREGISTER_SLACK;
        glommio::spawn_local(async move {
            if let Some(task) = task {
                let _ = futures_lite::future::or(
                    async {
                        task.await;
                    },
                    glommio::timer::sleep(wait),
                )
                .await;
            }
            control.inputs.push(Input::Deregistered { id });
        })
        .detach();
    }

    /// Log every event and count what the machine counted since the last call.
    fn publish(&mut self) {
        let c = self.control.clone();
        loop {
            let event = c.drain.borrow_mut().poll_event();
            let Some(event) = event else { break };
            events::log(
                &event,
                self.control.shutdown.signal_name(),
                &self.cfg,
                &mut self.complete_logged,
            );
            if let DrainEvent::HandedOver { elapsed, .. } = event {
                self.metrics.duration.observe(elapsed.as_secs_f64());
            }
        }
        let stats = c.drain.borrow().stats();
        for (result, counter) in &self.metrics.results {
            let delta = stats
                .get(*result)
                .saturating_sub(self.published.get(*result));
            if delta > 0 {
                counter.inc_by(delta);
            }
        }
        self.published = stats;
    }
}

/// One signed POST of `body` to `target`'s import URL: its status, or why it failed.
async fn import_once(
    control: &Control,
    target: &Target,
    body: &Bytes,
    timeout: Duration,
) -> Result<u16, String> {
    let url = target.import_url().map_err(|e| e.to_string())?;
    let url = HttpUrl::parse(url.as_str()).map_err(|e| e.to_string())?;
    let now_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signature = control.key.sign(now_unix, body);
    let req = Request::post_json(url, body.to_vec())
        .with_header(SIGNATURE_HEADER, &signature)
        .map_err(|e| e.to_string())?;
    http1::exchange(&req, timeout, Limits::default())
        .await
        .map(|resp| resp.status)
        .map_err(|e| e.to_string())
}

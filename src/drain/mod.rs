//! [`Drain`]: taking this MC out of service as a sans-IO state machine. Live meetings
//! move to another MC where the GC finds a target (docs/protocol.md rules 17–21, docs/gc-api.md
//! "Migration"); the others run on until they end or the drain timeout ends them.
//!
//! ## Driving it
//! Feed inputs with `handle_*` (each takes `now`), then take [`Drain::poll_action`]
//! until `None` and carry each action out in order, [`Drain::poll_event`] until `None`
//! for logs and metrics, and call [`Drain::handle_timeout`] at [`Drain::poll_timeout`].
//! Actions that expect an answer carry a [`RequestId`]; the answer quotes it, and
//! answers the machine no longer waits for (timed out, cancelled) are ignored. In the
//! service, the control plane's driver (`src/control/driver.rs`) does all of this.
//!
//! | [`DrainAction`] | the driver | answers with |
//! |---|---|---|
//! | `StopAdmitting{trigger}` | readiness 503 `draining`, no new meetings; on `Signal` also a `draining` heartbeat and no new sessions | — |
//! | `ResumeAdmitting` | admit again (the GC set us back to `active`) | — |
//! | `ListMeetings{id}` | ask every shard for its live meetings and sessions | [`Drain::handle_live_meetings`] |
//! | `RequestTargets{id, meetings}` | `POST /api/v1/mc/migrate` ([`crate::migration::targets`]) | [`Drain::handle_targets`] |
//! | `ExportMeeting{id, meeting_id}` | owner shard: `Meeting::begin_handover`, wrap it in an `ImportRequest` | [`Drain::handle_exported`] |
//! | `SendImport{id, target, body, timeout, ..}` | sign (`X-MC-Signature`) and POST `body` to `target.import_url()` within `timeout` | [`Drain::handle_import_response`] |
//! | `CommitHandover{meeting_id, endpoint, reason}` | owner shard: `Meeting::end(EndReason::Handover{..})` | — |
//! | `AbortHandover{meeting_id}` | owner shard: `Meeting::abort_handover` (after its export: same lane, in order) | — |
//! | `EndAllMeetings` | every shard ends its meetings (`MEETING_ENDED`, close 0x103) | — |
//! | `Deregister` | `POST /api/v1/mc/deregister`, best effort | [`Drain::handle_deregistered`] |
//! | `Exit` / `ExitNow` | stop the shards and exit 0 / exit at once (second signal) | — |
//!
//! ## The sequence
//! - SIGTERM ([`Drain::handle_signal`]): stop admitting; migrate (below); exit as soon
//!   as the shards report no meeting and no session; at the drain timeout stop
//!   migrating, let the imports in flight finish, end the rest, wait up to the flush
//!   timeout for the sessions to close; deregister; exit. A second signal: `ExitNow`.
//! - GC-set `draining` ([`Drain::handle_gc_status`]): stop admitting new meetings and
//!   migrate; meetings without a target stay; the process stays up. Back to `active`:
//!   admit again, stop migrating (imports already sent finish; a meeting the target
//!   accepted stays moved). SIGTERM meanwhile turns it into the SIGTERM drain.
//! - Migration, in rounds: list the meetings, ask the GC for targets, then per meeting
//!   with a target (at most `max_concurrent_handovers` at once): export it from its
//!   shard, POST it to the target (`import_attempts` attempts of `import_timeout`,
//!   `retry_delay` apart; 2xx → commit, 4xx or 503 → refused, others → retried). A
//!   meeting that is refused, fails or has no target stays on this MC and runs as
//!   before. After `round_interval` another round offers the meetings still here, each
//!   at most `rounds` times. Nothing is half-moved: a meeting is redirected only after
//!   the target said 2xx, and every other end of a hand-over unfreezes it.
//!
//! Outcomes per meeting and round are counted in [`DrainStats`] (labels:
//! [`MigrationResult::label`]); [`DrainEvent::HandedOver`] carries the hand-over time.

mod machine;
mod sequence;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::meeting::RedirectReason;
use crate::migration::{LiveMeeting, Target};

pub use machine::Drain;

/// Timeouts and bounds of the drain.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// SIGTERM: how long meetings without a target may continue (`MC_DRAIN_TIMEOUT_SECS`).
    pub drain_timeout: Duration,
    /// A GC is configured: deregister at the end.
    pub gc: bool,
    /// Ask the GC for targets and move meetings (needs `gc`).
    pub migrate: bool,
    /// The GC's answer to a migrate request.
    pub targets_timeout: Duration,
    /// A shard's answer to `ExportMeeting`.
    pub export_timeout: Duration,
    /// POSTs of one import, and the time each may take.
    pub import_attempts: u32,
    pub import_timeout: Duration,
    /// Pause before the next attempt.
    pub retry_delay: Duration,
    /// Hand-overs in flight at once.
    pub max_concurrent_handovers: usize,
    /// Largest import body sent (`--max-handover-bytes`); a larger export is refused
    /// here, as the target would refuse it (413).
    pub max_handover_bytes: usize,
    /// Times a meeting is offered to the GC, and the pause between rounds.
    pub rounds: u32,
    pub round_interval: Duration,
    /// SIGTERM: how often the shards are asked for their live meetings.
    pub poll_interval: Duration,
    /// A shard's answer to `ListMeetings`.
    pub list_timeout: Duration,
    /// After `EndAllMeetings`: how long the sessions get to close.
    pub flush_timeout: Duration,
    /// The GC's answer to `Deregister`.
    pub deregister_timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(60),
            gc: true,
            migrate: true,
            targets_timeout: Duration::from_secs(3),
            export_timeout: Duration::from_secs(2),
            import_attempts: 2,
            import_timeout: Duration::from_secs(3),
            retry_delay: Duration::from_millis(250),
            max_concurrent_handovers: 8,
            max_handover_bytes: crate::migration::DEFAULT_MAX_HANDOVER_BYTES,
            rounds: 3,
            round_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            list_timeout: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(3),
            deregister_timeout: Duration::from_secs(2),
        }
    }
}

/// Names a request so that its answer can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What started the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGTERM or SIGINT: the process ends.
    Signal,
    /// The GC set this MC's row to `draining`: the process stays up.
    Gc,
}

/// The shards' answer to `ListMeetings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveReport {
    pub meetings: Vec<LiveMeeting>,
    /// Signaling sessions, in a meeting or not.
    pub sessions: u64,
}

/// Work for the driver (see the table in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainAction {
    StopAdmitting {
        trigger: Trigger,
    },
    ResumeAdmitting,
    ListMeetings {
        id: RequestId,
    },
    RequestTargets {
        id: RequestId,
        meetings: Vec<LiveMeeting>,
    },
    ExportMeeting {
        id: RequestId,
        meeting_id: String,
    },
    SendImport {
        id: RequestId,
        meeting_id: String,
        target: Target,
        body: Bytes,
        attempt: u32,
        timeout: Duration,
    },
    CommitHandover {
        meeting_id: String,
        endpoint: String,
        reason: RedirectReason,
    },
    AbortHandover {
        meeting_id: String,
    },
    EndAllMeetings,
    Deregister {
        id: RequestId,
    },
    Exit,
    ExitNow,
}

/// What happened, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    Started {
        trigger: Trigger,
    },
    /// The GC set us back to `active` before the end of a GC-set drain.
    Resumed,
    TargetsRequested {
        meetings: usize,
    },
    TargetsFailed {
        cause: String,
    },
    NoTarget {
        meeting_id: String,
    },
    HandoverStarted {
        meeting_id: String,
        target_id: String,
    },
    ImportAttemptFailed {
        meeting_id: String,
        attempt: u32,
        cause: String,
    },
    /// The target took the meeting; `elapsed` runs from the export request to now.
    HandedOver {
        meeting_id: String,
        target_id: String,
        elapsed: Duration,
    },
    HandoverRefused {
        meeting_id: String,
        target_id: String,
        status: u16,
    },
    HandoverFailed {
        meeting_id: String,
        target_id: String,
        cause: String,
    },
    /// Stopped before the import was sent (GC back to active, or the drain timeout).
    HandoverCancelled {
        meeting_id: String,
    },
    /// The meeting ended by itself before it could be exported.
    MeetingGone {
        meeting_id: String,
    },
    ListTimedOut,
    DrainTimeout {
        meetings_left: usize,
    },
    /// Every meeting has been handed over or has ended.
    AllEnded,
    Deregistering,
    Exiting,
}

/// The `result` label of `mc_meetings_migrated_total{direction="out"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationResult {
    Ok,
    Refused,
    Failed,
    NoTarget,
}

impl MigrationResult {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::NoTarget => "no_target",
        }
    }
}

/// Plain counters: outcomes per meeting and round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    pub migrated: u64,
    pub refused: u64,
    pub failed: u64,
    pub no_target: u64,
    pub import_attempts: u64,
    pub rounds: u64,
}

impl DrainStats {
    pub fn get(&self, result: MigrationResult) -> u64 {
        match result {
            MigrationResult::Ok => self.migrated,
            MigrationResult::Refused => self.refused,
            MigrationResult::Failed => self.failed,
            MigrationResult::NoTarget => self.no_target,
        }
    }
}

/// Where the drain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPhase {
    /// Not draining.
    Active,
    /// The GC set `draining`: migrating what can move; the process stays up.
    GcDraining {
        since: Instant,
    },
    /// SIGTERM: migrating, waiting for the rest until `deadline`.
    ShuttingDown {
        deadline: Instant,
    },
    /// The rest was ended; waiting for the sessions to close.
    Ending {
        until: Instant,
    },
    Deregistering {
        until: Instant,
    },
    Done,
}

/// What the reply to an import POST means to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportReply {
    /// 2xx: the target holds the meeting.
    Accepted,
    /// 4xx or 503: the target will not take it; no retry.
    Refused,
    /// Any other status: worth another attempt.
    Retry,
}

impl ImportReply {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Accepted,
            400..=499 | 503 => Self::Refused,
            _ => Self::Retry,
        }
    }
}

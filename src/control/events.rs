//! The drain's events as log lines. The ones `docs/runbook.md` names ("Drain started",
//! "Draining", "Drain: no live meetings left", "Drain timeout reached", "Drain
//! complete", "Shutdown: deregistering from the Global Controller") keep their words;
//! every step of a hand-over is logged with the meeting and the target.

use tracing::{debug, info, warn};

use crate::drain::{DrainConfig, DrainEvent, Trigger};

pub(super) fn log(event: &DrainEvent, signal: &str, cfg: &DrainConfig, complete: &mut bool) {
    match event {
        DrainEvent::Started {
            trigger: Trigger::Signal,
        } => info!(
            signal = signal,
            drain_timeout_secs = cfg.drain_timeout.as_secs(),
            migration = cfg.migrate,
            "Drain started: readiness reports draining, no new meetings are admitted"
        ),
        DrainEvent::Started {
            trigger: Trigger::Gc,
        } => info!(
            migration = cfg.migrate,
            "GC drain started: readiness reports draining, no new meetings are admitted"
        ),
        DrainEvent::Resumed => {
            info!("GC drain ended: admitting new meetings, no more hand-overs")
        }
        DrainEvent::TargetsRequested { meetings } => {
            info!(meetings, "Migration: asking the GC for target MCs")
        }
        DrainEvent::TargetsFailed { cause } => {
            warn!(
                cause,
                "Migration: no targets from the GC; meetings stay here"
            )
        }
        DrainEvent::NoTarget { meeting_id } => {
            info!(
                meeting_id,
                "Migration: no target for the meeting; it stays here"
            )
        }
        DrainEvent::HandoverStarted {
            meeting_id,
            target_id,
        } => info!(
            meeting_id,
            target = target_id,
            "Migration: handing the meeting over"
        ),
        DrainEvent::ImportAttemptFailed {
            meeting_id,
            attempt,
            cause,
        } => warn!(
            meeting_id,
            attempt, cause, "Migration: import attempt failed; retrying"
        ),
        DrainEvent::HandedOver {
            meeting_id,
            target_id,
            elapsed,
        } => info!(
            meeting_id,
            target = target_id,
            elapsed_ms = elapsed.as_millis() as u64,
            "Migration: meeting handed over; participants redirected"
        ),
        DrainEvent::HandoverRefused {
            meeting_id,
            target_id,
            status,
        } => warn!(
            meeting_id,
            target = target_id,
            status,
            "Migration: the target refused the meeting; it stays here"
        ),
        DrainEvent::HandoverFailed {
            meeting_id,
            target_id,
            cause,
        } => warn!(
            meeting_id,
            target = target_id,
            cause,
            "Migration: hand-over failed; the meeting stays here"
        ),
        DrainEvent::HandoverCancelled { meeting_id } => {
            info!(
                meeting_id,
                "Migration: hand-over cancelled; the meeting stays here"
            )
        }
        DrainEvent::MeetingGone { meeting_id } => {
            debug!(
                meeting_id,
                "Migration: the meeting ended before its hand-over"
            )
        }
        DrainEvent::ListTimedOut => warn!("Drain: a shard did not report its meetings in time"),
        DrainEvent::DrainTimeout { meetings_left } => info!(
            meetings = meetings_left,
            "Drain timeout reached: ending the remaining meetings"
        ),
        DrainEvent::AllEnded => info!("Drain: no live meetings left"),
        DrainEvent::Deregistering => {
            log_complete(complete);
            info!("Shutdown: deregistering from the Global Controller");
        }
        DrainEvent::Exiting => log_complete(complete),
    }
}

fn log_complete(complete: &mut bool) {
    if !std::mem::replace(complete, true) {
        info!("Drain complete");
    }
}

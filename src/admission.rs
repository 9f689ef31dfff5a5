//! Process-wide admission of new meetings: the `MC_CAPACITY` limit and whether this MC
//! admits at all.
//!
//! Whether the MC drains is decided in one place, the drain state machine
//! ([`crate::drain::Drain`]) on the control plane; its driver publishes the outcome
//! here with [`Admission::set`] and nothing else writes it. Every shard reads it, and
//! only when a meeting is created or removed or a session is accepted — never per
//! message — so it is a pair of atomics rather than a round trip to every shard.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// Why a new meeting is not admitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `MC_CAPACITY` meetings are already live.
    Capacity,
    /// This MC is draining (SIGTERM, or the GC says so).
    Draining,
}

/// What this MC takes in, as the drain decided.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Intake {
    /// New meetings and sessions are welcome.
    Open,
    /// The GC set this MC `draining`: no new meetings (nor imported ones); sessions for
    /// live meetings are still accepted.
    NoNewMeetings,
    /// SIGTERM: no new meetings and no new sessions (HTTP/3 503).
    ShuttingDown,
}

impl Intake {
    fn to_u8(self) -> u8 {
        match self {
            Self::Open => 0,
            Self::NoNewMeetings => 1,
            Self::ShuttingDown => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Open,
            1 => Self::NoNewMeetings,
            _ => Self::ShuttingDown,
        }
    }
}

#[derive(Debug)]
pub struct Admission {
    capacity: u32,
    meetings: AtomicU32,
    intake: AtomicU8,
}

impl Admission {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            meetings: AtomicU32::new(0),
            intake: AtomicU8::new(Intake::Open.to_u8()),
        }
    }

    /// Reserve a slot for a new meeting (created by a join or imported from another
    /// MC). Call [`Admission::release_meeting`] when the meeting ends.
    pub fn try_reserve_meeting(&self) -> Result<(), Refusal> {
        if !self.admitting() {
            return Err(Refusal::Draining);
        }
        self.meetings
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| Refusal::Capacity)
    }

    pub fn release_meeting(&self) {
        let _ = self
            .meetings
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn meetings(&self) -> u32 {
        self.meetings.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Publish the drain's decision. Called by the control plane's drain driver only.
    pub fn set(&self, intake: Intake) {
        self.intake.store(intake.to_u8(), Ordering::Release);
    }

    pub fn intake(&self) -> Intake {
        Intake::from_u8(self.intake.load(Ordering::Acquire))
    }

    /// New meetings are admitted.
    pub fn admitting(&self) -> bool {
        self.intake() == Intake::Open
    }

    /// The process is shutting down: no new sessions either.
    pub fn is_draining(&self) -> bool {
        self.intake() == Intake::ShuttingDown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_a_hard_limit_and_slots_come_back() {
        let a = Admission::new(2);
        assert_eq!(a.try_reserve_meeting(), Ok(()));
        assert_eq!(a.try_reserve_meeting(), Ok(()));
        assert_eq!(a.try_reserve_meeting(), Err(Refusal::Capacity));
        a.release_meeting();
        assert_eq!(a.try_reserve_meeting(), Ok(()));
        a.release_meeting();
        a.release_meeting();
        a.release_meeting(); // never below zero
        assert_eq!(a.meetings(), 0);
    }

    #[test]
    fn intake_follows_what_the_drain_published() {
        let a = Admission::new(10);
        a.set(Intake::NoNewMeetings);
        assert_eq!(a.try_reserve_meeting(), Err(Refusal::Draining));
        assert!(!a.is_draining(), "sessions are still accepted");
        a.set(Intake::Open);
        assert_eq!(a.try_reserve_meeting(), Ok(()));
        a.set(Intake::ShuttingDown);
        assert_eq!(a.try_reserve_meeting(), Err(Refusal::Draining));
        assert!(a.is_draining());
        assert_eq!(a.intake(), Intake::ShuttingDown);
    }
}

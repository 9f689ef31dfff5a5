//! Process-wide admission of new meetings: the `MC_CAPACITY` limit and the two reasons
//! to stop admitting (our own drain after SIGTERM, and the GC marking us `draining`).
//!
//! This is the one piece of state every shard consults, and only when a meeting is
//! created or removed — never per message — so it is a pair of atomics rather than a
//! round trip to every shard.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Why a new meeting is not admitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `MC_CAPACITY` meetings are already live.
    Capacity,
    /// This MC is draining (SIGTERM, or the GC says so).
    Draining,
}

#[derive(Debug)]
pub struct Admission {
    capacity: u32,
    meetings: AtomicU32,
    draining: AtomicBool,
    gc_draining: AtomicBool,
}

impl Admission {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            meetings: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            gc_draining: AtomicBool::new(false),
        }
    }

    /// Reserve a slot for a new meeting. Call [`Admission::release_meeting`] when the
    /// meeting ends.
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

    /// New meetings are admitted (neither we nor the GC are draining).
    pub fn admitting(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && !self.gc_draining.load(Ordering::Acquire)
    }

    /// Our own drain (SIGTERM). One way: a draining process never admits again.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The GC's view from the last heartbeat: `draining` or back to `active`.
    pub fn set_gc_draining(&self, draining: bool) {
        self.gc_draining.store(draining, Ordering::Release);
    }

    pub fn gc_draining(&self) -> bool {
        self.gc_draining.load(Ordering::Acquire)
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
    fn draining_refuses_and_the_gc_can_reopen_its_own_drain_only() {
        let a = Admission::new(10);
        a.set_gc_draining(true);
        assert_eq!(a.try_reserve_meeting(), Err(Refusal::Draining));
        a.set_gc_draining(false);
        assert_eq!(a.try_reserve_meeting(), Ok(()));
        a.start_draining();
        a.set_gc_draining(false);
        assert_eq!(a.try_reserve_meeting(), Err(Refusal::Draining));
    }
}

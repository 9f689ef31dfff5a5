//! The shard's deadlines: at most one entry per connection (and one for the meetings),
//! ordered by time. Re-arming replaces the entry, so the loop never wakes for a
//! deadline that has moved and the set stays as small as the number of connections.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// An armed deadline closer than this gets a new entry when the deadline moves later.
const REARM_NEAR: Duration = Duration::from_secs(1);
/// How much later a deadline must move before it gets a new entry (see `needs_entry`).
const REARM_SLACK: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub(super) struct Timers {
    set: BTreeSet<(Instant, usize)>,
}

impl Timers {
    /// Bring `key`'s entry (`armed`, kept by its owner) in line with its next deadline
    /// `next`, when that is worth it (see `needs_entry`).
    pub(super) fn update(
        &mut self,
        key: usize,
        armed: &mut Option<Instant>,
        next: Option<Instant>,
        now: Instant,
    ) {
        let Some(t) = next else { return };
        if needs_entry(*armed, t, now) {
            self.disarm(key, armed);
            self.set.insert((t, key));
            *armed = Some(t);
        }
    }

    /// Remove `key`'s entry, if it has one.
    pub(super) fn disarm(&mut self, key: usize, armed: &mut Option<Instant>) {
        if let Some(a) = armed.take() {
            self.set.remove(&(a, key));
        }
    }

    /// The earliest entry due at `now`, taken out (its owner's `armed` becomes `None`).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        if self.set.first()?.0 > now {
            return None;
        }
        self.set.pop_first()
    }

    /// When the next entry is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(t, _)| t)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

/// Whether a key whose entry is `armed` needs a new one for its next deadline `t`: when
/// it has none, when `t` is earlier, or when `t` is well later and the armed entry is
/// near (it would wake the loop for nothing: a loss-detection timer an ACK cleared). A
/// deadline that only creeps on (the loss-detection timer of a connection sending all
/// the time, the idle timer on every packet) keeps its entry, which fires early once
/// and re-arms: cheaper than a new entry per packet.
fn needs_entry(armed: Option<Instant>, t: Instant, now: Instant) -> bool {
    armed.is_none_or(|a| t < a || (t > a + REARM_SLACK && a < now + REARM_NEAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_gets_a_new_entry_when_earlier_or_moved_away_from_a_near_one() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        // Nothing armed, or an earlier deadline: a new entry.
        assert!(needs_entry(None, ms(30_000), now));
        assert!(needs_entry(Some(ms(30_000)), ms(40), now));
        // A cleared loss-detection timer: the near entry is replaced by the far one.
        assert!(needs_entry(Some(ms(40)), ms(30_000), now));
        // The idle timer moving on with every packet: the far entry stays.
        assert!(!needs_entry(Some(ms(30_000)), ms(30_005), now));
        // Unchanged, or a near deadline creeping on with every packet sent: the entry
        // stays and re-arms when it fires.
        assert!(!needs_entry(Some(ms(40)), ms(40), now));
        assert!(!needs_entry(Some(ms(40)), ms(42), now));
    }

    #[test]
    fn one_entry_per_key_fired_in_order() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        let mut timers = Timers::default();
        let (mut a, mut b) = (None, None);
        timers.update(1, &mut a, Some(ms(30_000)), now);
        timers.update(2, &mut b, Some(ms(20)), now);
        // Key 1 sends: its loss-detection deadline replaces the idle one...
        timers.update(1, &mut a, Some(ms(10)), now);
        assert_eq!((timers.len(), timers.next()), (2, Some(ms(10))));
        // ...and the ACK clears it again: back to one far entry, no early wake-up.
        timers.update(1, &mut a, Some(ms(30_000)), now);
        assert_eq!((timers.len(), timers.next()), (2, Some(ms(20))));
        assert_eq!(timers.pop_due(ms(19)), None);
        assert_eq!(timers.pop_due(ms(25)), Some((ms(20), 2)));
        b = None;
        timers.disarm(1, &mut a);
        timers.disarm(2, &mut b);
        assert_eq!((timers.len(), timers.next(), a), (0, None, None));
    }
}

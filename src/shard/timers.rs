//! The shard's deadlines. Every key (a connection handle, or the meetings' timer) has at
//! most one **near** entry, in a wheel of one-millisecond buckets about a second long,
//! and at most one **far** entry, in an ordered set. Re-arming moves the entry, so the
//! loop never wakes for a deadline that has moved and the wheel stays as small as the
//! number of keys.
//!
//! The split follows what QUIC connections do with their deadlines. A fan-out arms
//! each recipient's loss-detection timer (tens of milliseconds) on the send and clears
//! it on the acknowledgement: for a thousand recipients that is two thousand moves per
//! message, each constant time in the wheel, where an ordered set paid a search, a
//! rebalance and the cache misses of both. The idle timer, tens of seconds out and
//! moving on with every packet, keeps its far entry while a near one comes and goes.
//!
//! A near entry fires once its bucket's millisecond has passed: up to a millisecond
//! late, the resolution of tokio's timer. A far entry fires on time. An entry may also
//! fire early (its deadline crept later since it was armed); the owner then finds
//! nothing due and re-arms.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Buckets in the wheel, one millisecond each: the near horizon is about a second.
const BUCKETS: u64 = 1024;
const WORDS: usize = (BUCKETS / 64) as usize;
/// How much later a deadline must move before its entry moves (see [`Timers::update`]).
const REARM_SLACK: Duration = Duration::from_millis(5);
/// Entries an emptied bucket keeps room for. A fan-out puts its recipients' deadlines
/// into a few buckets; the wheel turns, so without a cap every bucket would keep room
/// for the largest fan-out it ever held.
const BUCKET_SPARE: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
struct Armed {
    /// The near entry: its deadline, bucket and index in the bucket.
    near: Option<(Instant, u32, u32)>,
    /// The far entry's deadline.
    far: Option<Instant>,
}

#[derive(Debug)]
pub(super) struct Timers {
    /// Millisecond ticks count from here.
    base: Instant,
    /// Every tick before this one has fired; near entries lie in
    /// `cursor..cursor + BUCKETS`, bucket `tick % BUCKETS`, as their keys.
    cursor: u64,
    buckets: Vec<Vec<usize>>,
    /// One bit per non-empty bucket.
    occupied: [u64; WORDS],
    far: BTreeSet<(Instant, usize)>,
    /// Per key, at `slot(key)`: where its entries are.
    keys: Vec<Armed>,
}

impl Default for Timers {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

/// Keys are connection handles (dense, from 0) and `usize::MAX` for the meetings'
/// timer, which takes slot 0.
fn slot(key: usize) -> usize {
    key.wrapping_add(1)
}

impl Timers {
    fn new(base: Instant) -> Self {
        Self {
            base,
            cursor: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            far: BTreeSet::new(),
            keys: Vec::new(),
        }
    }

    /// Arm `key` for its next deadline `next` (None leaves its entries as they are:
    /// they fire, and the owner finds nothing due). A near deadline gets a near entry
    /// unless the one it has is due no later and no more than `REARM_SLACK` earlier;
    /// a far deadline clears the near entry and gets a far one unless the one it has is
    /// due no later.
    pub(super) fn update(&mut self, key: usize, next: Option<Instant>) {
        let Some(t) = next else { return };
        let i = slot(key);
        if i >= self.keys.len() {
            self.keys.resize(i + 1, Armed::default());
        }
        let armed = self.keys[i];
        let tick = self.tick(t).max(self.cursor);
        if tick < self.cursor + BUCKETS {
            if let Some((a, _, _)) = armed.near {
                if a <= t && t <= a + REARM_SLACK {
                    return;
                }
                self.remove_near(i);
            }
            self.insert_near(i, key, t, tick);
        } else {
            if armed.near.is_some() {
                self.remove_near(i);
            }
            match armed.far {
                Some(a) if a <= t => {}
                Some(a) => {
                    self.far.remove(&(a, key));
                    self.far.insert((t, key));
                    self.keys[i].far = Some(t);
                }
                None => {
                    self.far.insert((t, key));
                    self.keys[i].far = Some(t);
                }
            }
        }
    }

    /// Remove `key`'s entries, if it has any.
    pub(super) fn disarm(&mut self, key: usize) {
        let i = slot(key);
        let Some(armed) = self.keys.get(i).copied() else {
            return;
        };
        if armed.near.is_some() {
            self.remove_near(i);
        }
        if let Some(a) = armed.far {
            self.far.remove(&(a, key));
            self.keys[i].far = None;
        }
    }

    /// A key with an entry due at `now`, that entry taken out. The owner looks at its
    /// deadlines and re-arms.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let now_tick = self.tick(now);
        while self.cursor < now_tick {
            let b = (self.cursor % BUCKETS) as usize;
            if let Some(key) = self.buckets[b].pop() {
                if self.buckets[b].is_empty() {
                    self.emptied(b);
                }
                self.keys[slot(key)].near = None;
                return Some(key);
            }
            self.cursor = self
                .first_occupied(self.cursor + 1, now_tick - self.cursor - 1)
                .unwrap_or(now_tick);
        }
        let &(t, key) = self.far.first()?;
        if t > now {
            return None;
        }
        self.far.pop_first();
        self.keys[slot(key)].far = None;
        Some(key)
    }

    /// When the next entry is due (a near entry: the end of its millisecond).
    pub(super) fn next(&self) -> Option<Instant> {
        let near = self
            .first_occupied(self.cursor, BUCKETS)
            .map(|tick| self.base + Duration::from_millis(tick + 1));
        let far = self.far.first().map(|&(t, _)| t);
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Milliseconds from `base` to `t` (0 for anything earlier).
    fn tick(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        d.as_secs() * 1000 + u64::from(d.subsec_millis())
    }

    /// The first tick in `from..from + count` (count ≤ BUCKETS) whose bucket holds
    /// entries.
    fn first_occupied(&self, from: u64, count: u64) -> Option<u64> {
        let end = from + count.min(BUCKETS);
        let mut tick = from;
        while tick < end {
            let b = tick % BUCKETS;
            let word = self.occupied[(b / 64) as usize] >> (b % 64);
            if word != 0 {
                let found = tick + u64::from(word.trailing_zeros());
                return (found < end).then_some(found);
            }
            tick += 64 - b % 64;
        }
        None
    }

    fn insert_near(&mut self, i: usize, key: usize, t: Instant, tick: u64) {
        let b = (tick % BUCKETS) as usize;
        let bucket = &mut self.buckets[b];
        self.keys[i].near = Some((t, b as u32, bucket.len() as u32));
        bucket.push(key);
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    fn remove_near(&mut self, i: usize) {
        let Some((_, b, at)) = self.keys[i].near.take() else {
            return;
        };
        let (b, at) = (b as usize, at as usize);
        let bucket = &mut self.buckets[b];
        bucket.swap_remove(at);
        if let Some(&moved) = bucket.get(at) {
            if let Some((_, _, idx)) = &mut self.keys[slot(moved)].near {
                *idx = at as u32;
            }
        }
        if bucket.is_empty() {
            self.emptied(b);
        }
    }

    fn emptied(&mut self, b: usize) {
        self.occupied[b / 64] &= !(1 << (b % 64));
        self.buckets[b].shrink_to(BUCKET_SPARE);
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buckets.iter().map(Vec::capacity).sum()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum::<usize>() + self.far.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn drain(timers: &mut Timers, now: Instant) -> Vec<usize> {
        std::iter::from_fn(|| timers.pop_due(now)).collect()
    }

    #[test]
    fn near_deadlines_move_in_the_wheel_and_far_ones_stay() {
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let mut timers = Timers::new(base);
        // Idle timers, far out.
        timers.update(1, Some(ms(30_000)));
        timers.update(2, Some(ms(30_000)));
        // Key 1 sends: a near loss-detection deadline beside its far entry...
        timers.update(1, Some(ms(40)));
        assert_eq!((timers.len(), timers.next()), (3, Some(ms(41))));
        // ...creeping on by a little keeps the entry (it fires early once)...
        timers.update(1, Some(ms(42)));
        assert_eq!(timers.len(), 3);
        // ...and the acknowledgement clears it: the far entry is all that is left, and
        // the idle timer moving on does not move it.
        timers.update(1, Some(ms(30_100)));
        assert_eq!((timers.len(), timers.next()), (2, Some(ms(30_000))));
        assert_eq!(drain(&mut timers, ms(29_999)), Vec::<usize>::new());
        let mut fired = drain(&mut timers, ms(30_000));
        fired.sort();
        assert_eq!(fired, vec![1, 2]);
        assert_eq!((timers.len(), timers.next()), (0, None));
    }

    #[test]
    fn a_near_entry_fires_once_its_millisecond_has_passed() {
        let base = Instant::now();
        let us = |n| base + Duration::from_micros(n);
        let mut timers = Timers::new(base);
        timers.update(7, Some(us(10_300)));
        assert_eq!(timers.next(), Some(us(11_000)));
        assert_eq!(drain(&mut timers, us(10_999)), Vec::<usize>::new());
        assert_eq!(drain(&mut timers, us(11_000)), vec![7]);
        // A deadline already past goes into the current millisecond.
        timers.update(usize::MAX, Some(us(5_000)));
        assert_eq!(timers.next(), Some(us(12_000)));
        assert_eq!(drain(&mut timers, us(12_000)), vec![usize::MAX]);
    }

    #[test]
    fn disarm_and_removal_keep_the_other_entries_of_a_bucket() {
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let mut timers = Timers::new(base);
        for key in 0..5 {
            timers.update(key, Some(ms(20)));
        }
        timers.disarm(0);
        timers.update(3, Some(ms(900)));
        timers.disarm(9);
        let mut fired = drain(&mut timers, ms(21));
        fired.sort();
        assert_eq!(fired, vec![1, 2, 4]);
        assert_eq!(drain(&mut timers, ms(901)), vec![3]);
        assert_eq!((timers.len(), timers.next()), (0, None));
    }

    #[test]
    fn a_bucket_lets_go_of_a_large_fan_out_once_it_has_fired() {
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let mut timers = Timers::new(base);
        for key in 0..10_000 {
            timers.update(key, Some(ms(30)));
        }
        assert!(timers.capacity() >= 10_000);
        assert_eq!(drain(&mut timers, ms(31)).len(), 10_000);
        assert!(timers.capacity() <= BUCKET_SPARE);
        // The same when the entries leave one by one (acknowledgements clearing them).
        for key in 0..10_000 {
            timers.update(key, Some(ms(60)));
        }
        for key in 0..10_000 {
            timers.update(key, Some(ms(40_000)));
        }
        // Two buckets have held entries: each keeps its spare room.
        assert!(timers.capacity() <= 2 * BUCKET_SPARE);
        assert_eq!(timers.len(), 10_000);
    }

    #[test]
    fn the_wheel_wraps_after_a_long_quiet_time() {
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let mut timers = Timers::new(base);
        assert_eq!(drain(&mut timers, ms(5_000)), Vec::<usize>::new());
        timers.update(1, Some(ms(5_500)));
        timers.update(2, Some(ms(5_010)));
        assert_eq!(timers.next(), Some(ms(5_011)));
        assert_eq!(drain(&mut timers, ms(5_011)), vec![2]);
        assert_eq!(drain(&mut timers, ms(5_501)), vec![1]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Arm a key for a deadline this many µs from now.
        Arm(usize, u64),
        Disarm(usize),
        /// Advance the clock by this many µs and fire what is due.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..8, 0u64..3_000_000).prop_map(|(k, d)| Op::Arm(k, d)),
            1 => (0usize..8).prop_map(Op::Disarm),
            3 => (0u64..80_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Against a model of what the owners want: a key is never fired more than a
        /// millisecond after its deadline, `next` never promises a later wake-up than
        /// that, and a fired key that re-arms keeps its deadline.
        #[test]
        fn no_deadline_is_missed(ops in proptest::collection::vec(op(), 1..200)) {
            let base = Instant::now();
            let mut now = base + Duration::from_millis(3);
            let mut timers = Timers::new(base);
            let mut want: HashMap<usize, Instant> = HashMap::new();
            let late = Duration::from_millis(1);
            for op in ops {
                match op {
                    Op::Arm(k, d) => {
                        let t = now + Duration::from_micros(d);
                        want.insert(k, t);
                        timers.update(k, Some(t));
                    }
                    Op::Disarm(k) => {
                        want.remove(&k);
                        timers.disarm(k);
                    }
                    Op::Advance(d) => {
                        let due = want.values().min().copied();
                        if let Some(due) = due {
                            prop_assert!(timers.next().is_some_and(|n| n <= due + late));
                        }
                        now += Duration::from_micros(d);
                        while let Some(k) = timers.pop_due(now) {
                            match want.get(&k).copied() {
                                Some(t) if t <= now => { want.remove(&k); }
                                t => timers.update(k, t),
                            }
                        }
                        for (&k, &t) in &want {
                            prop_assert!(t + late > now, "key {k} due {t:?} not fired by {now:?}");
                        }
                    }
                }
            }
        }
    }
}

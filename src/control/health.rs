//! [`ShardHealth`]: the last pong of every shard. Readiness is "every shard answered
//! lately" and the GC heartbeats carry the sum of their loads: a request to every
//! shard, not a shared counter.

use std::time::{Duration, Instant};

use shards::ShardId;

use crate::router::ShardLoad;

/// How often every shard is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A shard whose last pong is older than this is unhealthy.
pub const PONG_STALE_AFTER: Duration = Duration::from_secs(3);

/// The last answer from each shard.
#[derive(Debug)]
pub struct ShardHealth {
    last: Vec<Option<(Instant, ShardLoad)>>,
    seq: Vec<u64>,
}

impl ShardHealth {
    pub fn new(shards: usize) -> Self {
        Self {
            last: vec![None; shards],
            seq: vec![0; shards],
        }
    }

    pub fn record(&mut self, shard: ShardId, now: Instant, load: ShardLoad) {
        self.record_seq(shard, 0, now, load);
    }

    /// Record a pong answering ping `seq`.
    pub fn record_seq(&mut self, shard: ShardId, seq: u64, now: Instant, load: ShardLoad) {
        if let Some(slot) = self.last.get_mut(shard.index()) {
            *slot = Some((now, load));
        }
        if let Some(s) = self.seq.get_mut(shard.index()) {
            *s = (*s).max(seq);
        }
    }

    /// Every shard has answered ping `seq` or a later one: the load is at least that fresh.
    pub fn answered(&self, seq: u64) -> bool {
        self.seq.iter().all(|&s| s >= seq)
    }

    /// Every shard answered within [`PONG_STALE_AFTER`].
    pub fn all_healthy(&self, now: Instant) -> bool {
        self.last.iter().all(|s| {
            s.as_ref()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) < PONG_STALE_AFTER)
        })
    }

    /// Sum of the load last reported by every shard.
    pub fn total_load(&self) -> ShardLoad {
        self.last
            .iter()
            .flatten()
            .fold(ShardLoad::default(), |acc, (_, l)| ShardLoad {
                meetings: acc.meetings + l.meetings,
                connections: acc.connections + l.connections,
                participants: acc.participants + l.participants,
                parked: Vec::new(),
            })
    }

    /// Messages every shard holds parked for `to`'s `lane` (its overflow, and for the
    /// meetings' lane the disconnects waiting on it).
    pub fn parked_for(&self, to: ShardId, lane: shards::Lane) -> u64 {
        self.last
            .iter()
            .flatten()
            .filter_map(|(_, l)| l.parked.get(to.index()))
            .map(|p| u64::from(p.get(usize::from(lane.0)).copied().unwrap_or(0)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_every_shard_and_goes_stale() {
        let t0 = Instant::now();
        let mut h = ShardHealth::new(2);
        assert!(!h.all_healthy(t0));
        h.record(ShardId(0), t0, ShardLoad::default());
        assert!(!h.all_healthy(t0));
        h.record(
            ShardId(1),
            t0,
            ShardLoad {
                meetings: 2,
                connections: 5,
                participants: 5,
                ..Default::default()
            },
        );
        assert!(h.all_healthy(t0 + Duration::from_secs(1)));
        assert!(!h.all_healthy(t0 + PONG_STALE_AFTER));
        assert_eq!(h.total_load().connections, 5);
        h.record(ShardId(9), t0, ShardLoad::default()); // ignored, no panic
    }
}

//! What the admin plane reads from the control plane: readiness, metrics, the dev-mode
//! demo, and the import route's way to the meeting's owner shard.

use std::time::{Duration, Instant};

use shards::ShardId;

use super::Control;
use crate::admin::http::{Request, Response};
use crate::admin::import::{Forwarded, ImportHost};
use crate::admin::{demo, AdminState, Readiness};
use crate::meeting::MeetingConfig;
use crate::migration::{ImportRequest, MigrationKey};
use crate::router::{meeting_shard, ShardMsg, LANE_CONNECTION, LANE_MEETING};
use crate::signaling::session::TokenBucket;

/// Fresh `/metrics` bodies the control plane encodes per second, and in a burst. Each
/// walks every series of every shard, on the executor that also answers the probes and
/// drives the drain, and a client may ask as fast as its connection carries
/// (`bench/results/20261207T153000Z-metrics-loop`: with one shard, 63 µs of server CPU
/// per request encoded afresh, 16 µs per request given the last body). Past the budget a scrape gets the last body, at most a twentieth of a second
/// old while the budget refills. Prometheus, the probes and a person with curl stay far
/// below it; the shards publish their counters once a second anyway.
const FRESH_SCRAPES_PER_S: u32 = 20;
const FRESH_SCRAPES_BURST: u32 = 20;

/// The last `/metrics` body and the budget of fresh ones ([`FRESH_SCRAPES_PER_S`]).
pub(super) struct Scrapes {
    last: Vec<u8>,
    fresh: TokenBucket,
}

impl Scrapes {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            last: Vec::new(),
            fresh: TokenBucket::new(FRESH_SCRAPES_PER_S, FRESH_SCRAPES_BURST, now),
        }
    }

    /// The body for a scrape at `now`: a fresh one from `encode` while the budget
    /// lasts (and for the first scrape), else the last one.
    fn body(&mut self, now: Instant, encode: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
        if self.last.is_empty() || self.fresh.take(now) {
            self.last = encode();
        }
        self.last.clone()
    }
}

/// How long the owner shard has to take an import; later it refuses it. Well under the
/// source's import timeout, so the source always hears an answer.
const IMPORT_SHARD_DEADLINE: Duration = Duration::from_secs(1);
/// How long past that deadline the admin plane waits for the shard's answer.
const IMPORT_ANSWER_SLACK: Duration = Duration::from_millis(500);

impl AdminState for Control {
    fn refused(&self) {
        self.metrics
            .refusals_total
            .with_label_values(&["admin_connections"])
            .inc();
    }

    fn evicted(&self) {
        self.metrics
            .refusals_total
            .with_label_values(&["admin_evicted"])
            .inc();
    }

    fn extra(&self, req: &Request) -> Option<Response> {
        demo::respond(&self.settings, req)
    }

    fn importer(&self) -> Option<&dyn ImportHost> {
        Some(self)
    }

    fn readiness(&self) -> Readiness {
        let healthy = self.health.borrow().all_healthy(Instant::now());
        let gc_registered = self.gc_registered();
        let status = if self.drain.borrow().is_draining() {
            "draining"
        } else if healthy && (gc_registered || !self.gc_required()) {
            "ready"
        } else {
            "not_ready"
        };
        Readiness {
            status,
            gc_registered,
            actor_system: if healthy { "healthy" } else { "unhealthy" },
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.scrapes
            .borrow_mut()
            .body(Instant::now(), || self.encode_metrics())
    }
}

impl Control {
    fn encode_metrics(&self) -> Vec<u8> {
        // Queue depths are read at scrape time from the queues themselves.
        // A queue's depth counts what waits in it and what senders hold parked for it.
        let health = self.health.borrow();
        for (i, m) in self.shard_metrics.iter().enumerate() {
            let shard = ShardId(i as u16);
            let depth = |lane| {
                self.monitor.inbox_depth(shard, lane) as u64 + health.parked_for(shard, lane)
            };
            m.mailbox_depth_meeting.set(depth(LANE_MEETING) as i64);
            m.mailbox_depth_connection
                .set(depth(LANE_CONNECTION) as i64);
        }
        drop(health);
        self.metrics.encode()
    }
}

impl ImportHost for Control {
    fn key(&self) -> &MigrationKey {
        &self.key
    }

    fn meeting_config(&self) -> &MeetingConfig {
        &self.meeting
    }

    fn forward(&self, req: ImportRequest) -> Forwarded<'_> {
        Box::pin(async move {
            let id = self.replies.open();
            let deadline = Instant::now() + IMPORT_SHARD_DEADLINE;
            let to = meeting_shard(&req.snapshot.meeting_id, self.shards);
            let msg = ShardMsg::ImportMeeting {
                id,
                request: Box::new(req),
                deadline,
            };
            self.send_to_shard(to, msg);
            self.replies.wait(id, deadline + IMPORT_ANSWER_SLACK).await
        })
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .meetings_migrated_total
            .with_label_values(&["in", result])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Scrapes, FRESH_SCRAPES_BURST, FRESH_SCRAPES_PER_S};

    /// Scrapes within the budget are encoded afresh; past it they get the last body
    /// until the budget refills, one scrape per twentieth of a second.
    #[test]
    fn scrapes_past_the_budget_get_the_last_body() {
        let start = Instant::now();
        let mut scrapes = Scrapes::new(start);
        let mut encoded = 0u32;
        let mut scrape = |at: Instant| {
            scrapes.body(at, || {
                encoded += 1;
                encoded.to_string().into_bytes()
            })
        };
        // The first, then a burst's worth: all fresh.
        for n in 1..=FRESH_SCRAPES_BURST + 1 {
            assert_eq!(scrape(start), n.to_string().into_bytes());
        }
        // Past the budget: the last body, however often asked.
        let last = (FRESH_SCRAPES_BURST + 1).to_string().into_bytes();
        for _ in 0..1000 {
            assert_eq!(scrape(start), last);
        }
        let refill = Duration::from_secs(1) / FRESH_SCRAPES_PER_S;
        assert_eq!(scrape(start + refill / 2), last);
        // A refill later, one fresh body, and the last again.
        let fresh = (FRESH_SCRAPES_BURST + 2).to_string().into_bytes();
        assert_eq!(scrape(start + refill), fresh);
        assert_eq!(scrape(start + refill), fresh);
    }
}

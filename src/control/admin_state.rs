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

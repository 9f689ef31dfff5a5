//! The control-plane executor: one unpinned glommio executor beside the shards.
//!
//! It serves the admin plane, pings every shard once a second (readiness is "every
//! shard answered lately", a request to each shard rather than a shared counter),
//! publishes queue depths at scrape time, and runs the shutdown sequence when a
//! signal arrives.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{MeshMonitor, MeshSeed, ShardId};

use crate::admin::{self, AdminState, Readiness};
use crate::config::Settings;
use crate::metrics::{Metrics, ShardMetrics};
use crate::shard::{ShardLoad, ShardMsg, LANE_CONNECTION, LANE_CONTROL, LANE_MEETING};
use crate::shutdown::Shutdown;

/// How often every shard is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A shard whose last pong is older than this is unhealthy.
pub const PONG_STALE_AFTER: Duration = Duration::from_secs(3);

/// What the control executor is started with. `Send`: built on the main thread.
pub struct ControlSeed {
    pub mesh: MeshSeed<ShardMsg>,
    pub monitor: MeshMonitor<ShardMsg>,
    pub metrics: Metrics,
    pub settings: Settings,
    pub admin_listener: std::net::TcpListener,
    pub shutdown: Arc<Shutdown>,
    pub shards: usize,
}

/// The last answer from each shard.
#[derive(Debug)]
pub struct ShardHealth {
    last: Vec<Option<(Instant, ShardLoad)>>,
}

impl ShardHealth {
    pub fn new(shards: usize) -> Self {
        Self {
            last: vec![None; shards],
        }
    }

    pub fn record(&mut self, shard: ShardId, now: Instant, load: ShardLoad) {
        if let Some(slot) = self.last.get_mut(shard.index()) {
            *slot = Some((now, load));
        }
    }

    /// Every shard answered within [`PONG_STALE_AFTER`].
    pub fn all_healthy(&self, now: Instant) -> bool {
        self.last
            .iter()
            .all(|s| s.is_some_and(|(at, _)| now.saturating_duration_since(at) < PONG_STALE_AFTER))
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
            })
    }
}

/// Control-plane state read by the admin plane. `!Send`.
pub struct Control {
    pub settings: Settings,
    pub metrics: Metrics,
    pub monitor: MeshMonitor<ShardMsg>,
    pub health: RefCell<ShardHealth>,
    shard_metrics: Vec<ShardMetrics>,
    pub shutdown: Arc<Shutdown>,
}

impl Control {
    fn gc_registered(&self) -> bool {
        // The GC client lands with issue 5; until then there is no registration.
        false
    }

    fn gc_required(&self) -> bool {
        self.settings.gc_registration_url.is_some()
    }
}

impl AdminState for Control {
    fn readiness(&self) -> Readiness {
        let healthy = self.health.borrow().all_healthy(Instant::now());
        let gc_registered = self.gc_registered();
        let status = if self.shutdown.requested() {
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
        for (i, m) in self.shard_metrics.iter().enumerate() {
            let shard = ShardId(i as u16);
            m.mailbox_depth_meeting
                .set(self.monitor.inbox_depth(shard, LANE_MEETING) as i64);
            m.mailbox_depth_connection
                .set(self.monitor.inbox_depth(shard, LANE_CONNECTION) as i64);
        }
        self.metrics
            .draining
            .set(i64::from(self.shutdown.requested()));
        self.metrics.encode()
    }
}

/// Run the control plane until shutdown completes.
pub async fn run(seed: ControlSeed) {
    let mesh = Rc::new(seed.mesh.into_handle());
    let shard_metrics = (0..seed.shards)
        .map(|i| ShardMetrics::new(&seed.metrics, i as u16))
        .collect();
    let control = Rc::new(Control {
        health: RefCell::new(ShardHealth::new(seed.shards)),
        settings: seed.settings,
        metrics: seed.metrics,
        monitor: seed.monitor,
        shard_metrics,
        shutdown: seed.shutdown,
    });

    // Pinger: one ping per shard per interval, on the control lane.
    let pinger = {
        let mesh = mesh.clone();
        let shards = seed.shards;
        glommio::spawn_local(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                for s in 0..shards {
                    // A full control lane: that shard is not keeping up; its health
                    // goes stale and readiness reports it.
                    let _ = mesh.try_send(ShardId(s as u16), LANE_CONTROL, ShardMsg::Ping { seq });
                }
                glommio::timer::sleep(PING_INTERVAL).await;
            }
        })
    };

    let admin_task = glommio::spawn_local(admin::serve(
        seed.admin_listener,
        control.clone() as Rc<dyn AdminState>,
        control.settings.admin.clone(),
    ));
    tracing::info!(
        address = %control.settings.http_bind_address,
        "Prometheus metrics recorder initialized"
    );

    // Wait for the first pong from every shard before calling the service ready.
    let started = Instant::now();
    let mut announced = false;
    loop {
        while let Some((from, _lane, msg)) = mesh.try_recv() {
            match msg {
                ShardMsg::Pong { load, .. } => {
                    control
                        .health
                        .borrow_mut()
                        .record(from, Instant::now(), load)
                }
                ShardMsg::Ping { .. } => {}
            }
        }
        if !announced && control.health.borrow().all_healthy(Instant::now()) {
            announced = true;
            tracing::info!(
                shards = seed.shards,
                startup_ms = started.elapsed().as_millis() as u64,
                "Meeting Controller ready"
            );
        }
        if control.shutdown.requested() || mesh.is_stopping() {
            break;
        }
        mesh.wait().await;
    }

    // Shutdown. Readiness already reports "draining" (it reads the same flag).
    tracing::info!(
        signal = control.shutdown.signal_name(),
        "Shutdown: readiness now reports draining"
    );
    tracing::info!("Shutdown: stopping shards");
    control.monitor.stop();
    drop(pinger);
    drop(admin_task);
    tracing::info!("Shutdown complete");
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
            },
        );
        assert!(h.all_healthy(t0 + Duration::from_secs(1)));
        assert!(!h.all_healthy(t0 + PONG_STALE_AFTER));
        assert_eq!(h.total_load().connections, 5);
        h.record(ShardId(9), t0, ShardLoad::default()); // ignored, no panic
    }
}

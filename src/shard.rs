//! One shard: the body of each pinned executor.
//!
//! The shard drains its mesh inbox (control pings now; forwarded datagrams, meeting and
//! connection messages as those layers land), answers the control plane, and parks on
//! its doorbell when there is nothing to do. Work per pass is bounded, then it yields.

use std::rc::Rc;
use std::sync::mpsc::SyncSender;

use shards::{Lane, MeshHandle, MeshSeed, ShardId};

use crate::metrics::{Metrics, ShardMetrics};

/// Control traffic: pings, pongs, stats requests.
pub const LANE_CONTROL: Lane = Lane(0);
/// Messages for meeting actors on the destination shard.
pub const LANE_MEETING: Lane = Lane(1);
/// Messages for connection actors (and forwarded datagrams) on the destination shard.
pub const LANE_CONNECTION: Lane = Lane(2);
/// Number of lanes; the mesh is built with one capacity per lane.
pub const LANES: usize = 3;

/// Most messages handled in one pass before the shard yields to its other tasks.
const MAX_MESSAGES_PER_PASS: usize = 256;

/// Everything that crosses between executors.
#[derive(Debug)]
pub enum ShardMsg {
    /// Control → shard: are you alive? The shard answers [`ShardMsg::Pong`].
    Ping { seq: u64 },
    /// Shard → control: alive, with its current load.
    Pong { seq: u64, load: ShardLoad },
    /// Control → shard: draining; refuse new sessions.
    StopAdmitting,
    /// Control → shard: drain end; end every meeting and close its sessions.
    EndMeetings,
}

/// One shard's load, reported with every pong (GC heartbeats, readiness).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardLoad {
    pub meetings: u64,
    pub connections: u64,
    pub participants: u64,
}

/// What a shard executor is started with. `Send`: built on the main thread.
pub struct ShardSeed {
    pub mesh: MeshSeed<ShardMsg>,
    pub metrics: Metrics,
    /// The control-plane executor's id in the mesh.
    pub control: ShardId,
    /// Told once the shard is up (or why it could not start).
    pub started: SyncSender<Result<ShardId, String>>,
}

/// Shard-local state, shared by the shard's tasks. `!Send`.
pub struct Shard {
    pub id: ShardId,
    pub mesh: MeshHandle<ShardMsg>,
    pub metrics: ShardMetrics,
    control: ShardId,
}

impl Shard {
    fn load(&self) -> ShardLoad {
        ShardLoad {
            meetings: self.metrics.meetings_active.get().max(0) as u64,
            connections: self.metrics.connections_active.get().max(0) as u64,
            participants: 0,
        }
    }

    fn handle(&self, from: ShardId, msg: ShardMsg) {
        match msg {
            ShardMsg::Ping { seq } => {
                let pong = ShardMsg::Pong {
                    seq,
                    load: self.load(),
                };
                // A full control lane means the control plane is behind; it will ping
                // again, so dropping this pong loses nothing.
                let _ = self.mesh.try_send(self.control, LANE_CONTROL, pong);
            }
            ShardMsg::StopAdmitting | ShardMsg::EndMeetings => {
                tracing::debug!(shard = %self.id, ?msg, "drain step");
            }
            ShardMsg::Pong { .. } => {
                tracing::warn!(shard = %self.id, %from, "unexpected pong on a shard");
            }
        }
    }
}

/// Run a shard until the mesh is stopped.
pub async fn run(seed: ShardSeed) {
    let mesh = seed.mesh.into_handle();
    let id = mesh.id();
    let shard = Rc::new(Shard {
        id,
        metrics: ShardMetrics::new(&seed.metrics, id.0),
        mesh,
        control: seed.control,
    });
    // DATAPLANE HOOK: bind this shard's UDP socket and spawn its data-plane tasks here
    // (before reporting `started`, so a bind error stops startup), forwarding misrouted
    // datagrams over LANE_CONNECTION.
    tracing::debug!(shard = %id, "shard started");
    let _ = seed.started.send(Ok(id));

    loop {
        let mut handled = 0;
        while let Some((from, _lane, msg)) = shard.mesh.try_recv() {
            shard.handle(from, msg);
            handled += 1;
            if handled == MAX_MESSAGES_PER_PASS {
                glommio::yield_if_needed().await;
                handled = 0;
            }
        }
        if shard.mesh.is_stopping() {
            break;
        }
        shard.mesh.wait().await;
    }
    tracing::debug!(shard = %id, "shard stopped");
}

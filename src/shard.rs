//! One shard: the body of each pinned executor.
//!
//! The shard drains its mesh inbox (control pings now; forwarded datagrams, meeting and
//! connection messages as those layers land), answers the control plane, and parks on
//! its doorbell when there is nothing to do. Work per pass is bounded, then it yields.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{Lane, MeshHandle, MeshSeed, ShardId};

use crate::actors::connection::SignalingApp;
use crate::actors::{ActorSettings, Actors};
use crate::admission::Admission;
use crate::auth::jwt::VerifierConfig;
use crate::auth::keystore::{KeyStore, ShardVerifier};
use crate::meeting::CloseCode;
use crate::metrics::{Metrics, ShardMetrics};
use crate::quic::{Forwarded, QuicShared, ShardStats};
use crate::webtransport::DataPlane;

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
///
/// Messages move by value through bounded queues of fixed slots; boxing the large
/// variants would cost an allocation per signaling message to save slot space.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ShardMsg {
    /// Control → shard: are you alive? The shard answers [`ShardMsg::Pong`].
    Ping { seq: u64 },
    /// Shard → control: alive, with its current load.
    Pong { seq: u64, load: ShardLoad },
    /// Control → shard: draining; refuse new sessions.
    StopAdmitting,
    /// Control → shard: drain end; end every meeting and close its sessions.
    EndMeetings,
    /// Connection actor → the meeting's shard.
    ToMeeting(crate::actors::MeetingCmd),
    /// Meeting actor → connections on the receiving shard (one fan-out, one message).
    ToConnections {
        conns: Vec<u64>,
        cmd: crate::actors::ConnCmd,
    },
    /// A UDP datagram that landed on another shard's socket but belongs to a
    /// connection of the receiving shard (its connection ID says so).
    Forwarded(Forwarded),
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
    pub shards: usize,
    pub admission: Arc<Admission>,
    pub actors: ActorSettings,
    pub keys: Arc<KeyStore>,
    pub verifier: VerifierConfig,
    /// QUIC/TLS settings shared by every shard, and the address to bind.
    pub quic: QuicShared,
    pub bind: SocketAddr,
    /// Told once the shard is up with its bound address (or why it could not start).
    pub started: SyncSender<Result<SocketAddr, String>>,
}

/// Shard-local state, shared by the shard's tasks. `!Send`.
pub struct Shard {
    pub id: ShardId,
    pub mesh: Rc<MeshHandle<ShardMsg>>,
    pub actors: Rc<Actors>,
    pub plane: DataPlane,
    control: ShardId,
    /// The data plane's counters as last published, to publish only the change.
    published: std::cell::Cell<ShardStats>,
}

impl Shard {
    fn load(&self) -> ShardLoad {
        let meetings = self.actors.meetings.borrow();
        ShardLoad {
            meetings: meetings.len() as u64,
            connections: self.actors.connections() as u64,
            participants: meetings.participants() as u64,
        }
    }

    /// Stats in the core, metrics at the edge: copy the data plane's plain counters to
    /// Prometheus once per control ping rather than per datagram.
    fn publish_stats(&self) {
        let now = self.plane.quic.stats();
        let was = self.published.replace(now.clone());
        let m = self.actors.metrics();
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        m.datagrams_forward_dropped
            .inc_by(delta(now.forward_dropped, was.forward_dropped));
        m.udp_send_errors
            .inc_by(delta(now.send_errors, was.send_errors));
        m.refused_sessions
            .inc_by(delta(now.refused_sessions, was.refused_sessions));
        m.refused_handshakes
            .inc_by(delta(now.refused_handshakes, was.refused_handshakes));
    }

    fn handle(&self, from: ShardId, msg: ShardMsg) {
        match msg {
            ShardMsg::Forwarded(f) => self.plane.quic.handle_forwarded(f),
            ShardMsg::ToConnections { conns, cmd } => {
                for conn in conns {
                    self.actors.deliver_local(conn, cmd.clone());
                }
            }
            ShardMsg::ToMeeting(cmd) => {
                self.actors
                    .meetings
                    .borrow_mut()
                    .handle(&*self.actors, Instant::now(), cmd);
            }
            ShardMsg::Ping { seq } => {
                self.publish_stats();
                let pong = ShardMsg::Pong {
                    seq,
                    load: self.load(),
                };
                // A full control lane means the control plane is behind; it will ping
                // again, so dropping this pong loses nothing.
                let _ = self.mesh.try_send(self.control, LANE_CONTROL, pong);
            }
            ShardMsg::StopAdmitting => {
                tracing::debug!(shard = %self.id, "drain: refusing new sessions");
                self.actors.draining.set(true);
                self.plane.wt.set_draining(true);
            }
            ShardMsg::EndMeetings => {
                tracing::debug!(shard = %self.id, "drain end: ending meetings");
                self.actors.end_meetings();
            }
            ShardMsg::Pong { .. } => {
                tracing::warn!(shard = %self.id, %from, "unexpected pong on a shard");
            }
        }
    }
}

/// Run a shard until the mesh is stopped.
pub async fn run(seed: ShardSeed) {
    let mesh = Rc::new(seed.mesh.into_handle());
    let id = mesh.id();
    let actors = Actors::new(
        id,
        seed.shards,
        mesh.clone(),
        &seed.metrics,
        seed.admission,
        seed.actors,
        ShardVerifier::new(seed.keys, seed.verifier),
    );
    // The data plane: this shard's UDP socket (SO_REUSEPORT) and QUIC endpoint.
    // Misrouted datagrams go to their owner shard over the connection lane.
    let forward_mesh = mesh.clone();
    let forward = Box::new(move |to: ShardId, f: Forwarded| {
        forward_mesh
            .try_send(to, LANE_CONNECTION, ShardMsg::Forwarded(f))
            .map_err(|full| match full.msg {
                ShardMsg::Forwarded(f) => f,
                _ => unreachable!("we sent a Forwarded"),
            })
    });
    let app = Rc::new(SignalingApp {
        actors: actors.clone(),
    });
    let plane = match DataPlane::bind(
        id,
        seed.bind,
        seed.quic,
        ShardMetrics::new(&seed.metrics, id.0),
        app,
        forward,
    ) {
        Ok(p) => p,
        Err(e) => {
            let _ = seed.started.send(Err(e.to_string()));
            return;
        }
    };
    let driver = plane.spawn();
    let bound = plane.local_addr();
    let shard = Rc::new(Shard {
        id,
        mesh,
        actors: actors.clone(),
        plane,
        control: seed.control,
        published: std::cell::Cell::new(ShardStats::default()),
    });
    let timers = glommio::spawn_local(actors.clone().run_timers());
    tracing::debug!(shard = %id, %bound, "shard started");
    let _ = seed.started.send(Ok(bound));

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
        shard.actors.flush_overflow();
        if shard.mesh.is_stopping() {
            break;
        }
        if shard.actors.overflowing() {
            // Parked messages wait for a peer to drain its queue: look again soon.
            let _ = futures_lite::future::or(shard.mesh.wait(), async {
                glommio::timer::sleep(Duration::from_micros(200)).await;
            })
            .await;
        } else {
            shard.mesh.wait().await;
        }
    }
    drop(timers);
    // Close what is left (sessions not in a meeting, e.g. echo), let the close frames
    // go out, then stop the endpoint.
    shard
        .plane
        .wt
        .close_all(CloseCode::Draining.code(), b"server shutting down");
    glommio::timer::sleep(Duration::from_millis(200)).await;
    shard.plane.quic.stop();
    let _ = futures_lite::future::or(async { Some(driver.await) }, async {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        None
    })
    .await;
    tracing::debug!(shard = %id, "shard stopped");
}

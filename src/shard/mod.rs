//! One shard: the body of each pinned executor, one loop for everything it owns.
//!
//! Each pass reads the clock once, then:
//! 1. receives datagrams in batches and feeds them to QUIC (`quic::endpoint`), forwarding
//!    those whose connection lives on another shard;
//! 2. takes messages from the mesh (bounded): forwarded datagrams, commands for its
//!    meetings, frames for its connections, control;
//! 3. fires due timers (QUIC, HTTP/3 and session deadlines, meeting grace periods);
//! 4. drives every connection that changed: QUIC events → HTTP/3 → the application
//!    (`conn`), which queues commands for meetings;
//! 5. runs those commands: meetings on this shard are called directly and deliver their
//!    frames straight into the recipients' streams; others go over the mesh (`router`);
//! 6. transmits for every connection that has something to send, in `sendmmsg` batches.
//!
//! It parks only when a pass found nothing to do: on the socket, the mesh doorbell and
//! the next timer at once. While datagrams keep arriving, or a fan-out's
//! acknowledgements trickle back, it first pauses for a moment with the socket unread,
//! so the next pass takes them as one batch (`rx_batching`); while many clients keep
//! requests coming, it reads the socket once more instead of waiting on it (`reread`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{MeshSeed, ShardId};

use crate::actors::{ActorSettings, MeetingCmd, MeetingHost};
use crate::admission::Admission;
use crate::auth::jwt::VerifierConfig;
use crate::auth::keystore::{KeyStore, ShardVerifier};
use crate::h3::{H3Limits, H3Stats};
use crate::metrics::{Metrics, ShardMetrics};
use crate::quic::endpoint::{Conns, PerClient, QuicEndpoint};
use crate::quic::send_window::SendWindows;
use crate::quic::QuicShared;
use crate::router::{OverflowLimits, Router, ShardMsg, LANE_DATAGRAM};

/// Rounds of meeting commands per pass (a delivery can produce a follow-up command).
const MEETING_ROUNDS: usize = 4;
/// Distinct fan-out start times remembered per pass for `mc_fanout_duration_seconds`.
const FANOUTS_PER_PASS: usize = 1024;
/// Most time between two copies of the shard's counters to Prometheus.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping shard keeps running so that closes reach the clients.
const STOP_FLUSH: Duration = Duration::from_millis(300);

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
    pub limits: H3Limits,
    pub mesh_overflow: OverflowLimits,
    /// How long the loop may let acknowledgements accumulate before reading them.
    pub rx_coalesce: Duration,
    /// How long the loop may leave the socket unread while datagrams keep arriving.
    pub rx_batch: Duration,
    pub bind: SocketAddr,
    /// Told once the shard is up with its bound address (or why it could not start).
    pub started: SyncSender<Result<SocketAddr, String>>,
}

/// How a pass ended.
struct PassEnd {
    /// More work may be waiting right now (a bound of the pass was reached); otherwise
    /// the loop parks, and the park returns at once if something arrived meanwhile.
    more: bool,
    /// The pass received datagrams and its connections had something for the
    /// application (more than acknowledgements): see `reread`.
    requests: bool,
}

/// The timers key of the meetings' grace deadlines (other keys are connection
/// handles).
const MEETING_TIMER: usize = usize::MAX;

/// The meetings' view of the shard, built from the fields it needs so the meeting host
/// can be borrowed beside it.
macro_rules! delivery {
    ($s:ident, $now:expr) => {
        $crate::shard::delivery::Delivery {
            now: $now,
            conns: &mut $s.conns,
            dirty: &mut $s.dirty,
            router: &mut $s.router,
            env: &mut $s.env,
            cmds: &mut $s.spare_cmds,
            fanouts: &mut $s.fanouts,
        }
    };
}

/// Shard-local state. `!Send`.
struct Shard {
    quic: QuicEndpoint,
    conns: Conns,
    /// Connections to drive and transmit for in this pass.
    dirty: Vec<usize>,
    /// Connections that had more to send than one pass allows.
    carry: Vec<usize>,
    /// Whether the loop leaves the socket unread for a moment before the next pass
    /// (`--rx-coalesce-us`, `--rx-batch-us`; see `park`).
    batch: RxBatching,
    /// Whether the loop reads the socket again before parking.
    reread: Reread,
    router: Router,
    /// Participants' disconnects the mesh could not take yet.
    waiting: WaitingDisconnects,
    /// Where the loop parks: the socket and the mesh doorbell.
    parker: shards::Parker,
    meetings: MeetingHost,
    meeting_cmds: Vec<MeetingCmd>,
    spare_cmds: Vec<MeetingCmd>,
    env: Env,
    control: ShardId,
    /// Deadlines of the connections (by handle) and of [`MEETING_TIMER`]. An entry
    /// may be early (its deadline crept later); firing checks and re-arms.
    timers: Timers,
    /// Start times of the fan-outs whose frames this pass wrote.
    fanouts: Vec<Instant>,
    /// HTTP/3 counters of connections already gone.
    h3_gone: H3Stats,
    published: Published,
    next_publish: Instant,
}

mod conns;
mod delivery;
mod handover;
mod inbox;
mod meetings;
mod reread;
mod rx_batching;
mod stats;
mod timers;

use delivery::Env;
use meetings::WaitingDisconnects;
use reread::Reread;
use rx_batching::{Pass, RxBatching};
use stats::Published;
use timers::Timers;

impl Shard {
    /// One pass of the loop (module docs).
    fn pass(&mut self) -> PassEnd {
        let now = Instant::now();
        let mesh = self.router.mesh();
        let mut forward = |to: ShardId, f| {
            mesh.try_send(to, LANE_DATAGRAM, ShardMsg::Forwarded(f))
                .map_err(|full| match full.msg {
                    ShardMsg::Forwarded(f) => f,
                    _ => unreachable!("a Forwarded was sent"),
                })
        };
        let datagrams = self.quic.stats().datagrams_in;
        let sent = self.quic.stats().datagrams_out;
        let mut more = self
            .quic
            .receive(now, &mut self.conns, &mut self.dirty, &mut forward);
        let messages = self.router.mesh().pending() > 0;
        more |= self.take_messages(now);
        self.quic
            .receive_forwarded(now, &mut self.conns, &mut self.dirty);
        self.fire_timers(now);
        let events = self.drive(now);
        let received = self.quic.stats().datagrams_in > datagrams;
        self.batch.on_pass(Pass {
            now,
            received,
            quiet: !events && !messages && self.meeting_cmds.is_empty(),
        });
        self.batch
            .on_cost(now, self.quic.stats().datagrams_in, thread_cpu_time);
        for _ in 0..MEETING_ROUNDS {
            self.run_meetings(now);
            self.transmit(now);
            // A connection that went away leaves a disconnect for its meeting.
            if self.meeting_cmds.is_empty() {
                break;
            }
        }
        more |= !self.meeting_cmds.is_empty() || !self.dirty.is_empty();
        self.batch
            .on_sent(now, self.quic.stats().datagrams_out - sent);
        self.router.flush_overflow();
        self.send_waiting_disconnects();
        if now >= self.next_publish {
            self.publish_stats();
        }
        PassEnd {
            more,
            requests: received && events,
        }
    }

    /// Wait for a datagram, a mesh message or the next timer: one `ppoll` on the
    /// socket and the mesh doorbell, with the timer's timeout (`shards::parker`). The
    /// shard's executor runs nothing but this loop, so blocking its thread here costs
    /// nobody; it saves glommio the submissions (and cancellations) an awaited socket,
    /// doorbell and timer would cost on every park.
    fn park(&self) {
        // At least once per PUBLISH_EVERY, so counters from the last busy pass reach
        // /metrics while idle.
        let deadline = self
            .timers
            .next()
            .map_or(self.next_publish, |t| t.min(self.next_publish));
        let timeout = deadline.saturating_duration_since(Instant::now());
        // A fan-out's acknowledgements trickling back, or datagrams that keep arriving:
        // let those coming next accumulate for a moment and take them in one pass, one
        // wake-up and one `recvmmsg`, instead of one each (mesh messages and timers
        // still wake the loop at once).
        match self.batch.nap() {
            Some(nap) => self
                .router
                .mesh()
                .park_on(&self.parker, false, timeout.min(nap)),
            None => self.router.mesh().park_on(&self.parker, true, timeout),
        }
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): the shard's own
/// cost, whatever else shares its core.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Run a shard until the mesh is stopped.
pub async fn run(seed: ShardSeed) {
    let mesh = Rc::new(seed.mesh.into_handle());
    let id = mesh.id();
    let metrics = ShardMetrics::new(&seed.metrics, id.0);
    let enable_echo = seed.quic.args.enable_echo;
    let send_window = seed.quic.args.send_window_bytes;
    let quic = match QuicEndpoint::bind(
        id,
        seed.shards,
        seed.bind,
        seed.quic,
        PerClient {
            max: seed.actors.max_sessions_per_ip,
            ipv6_prefix: seed.actors.ipv6_client_prefix,
        },
        metrics.clone(),
    ) {
        Ok(q) => q,
        Err(e) => {
            let _ = seed.started.send(Err(e.to_string()));
            return;
        }
    };
    let bound = quic.local_addr();
    let parker = match mesh.parker(&[quic.raw_fd()]) {
        Ok(p) => p,
        Err(e) => {
            let _ = seed
                .started
                .send(Err(format!("parking for the shard loop: {e}")));
            return;
        }
    };
    let mut shard = Shard {
        quic,
        conns: Conns::new(SendWindows::new(
            u64::from(send_window),
            seed.actors.shard_outbound_max_bytes as u64,
        )),
        dirty: Vec::new(),
        carry: Vec::new(),
        batch: RxBatching::new(seed.rx_coalesce, seed.rx_batch),
        reread: Reread::default(),
        router: Router::new(mesh, seed.shards, seed.mesh_overflow),
        waiting: WaitingDisconnects::new(
            seed.shards,
            (seed.admission.capacity() as usize)
                .saturating_mul(seed.actors.meeting.max_participants),
        ),
        parker,
        meetings: MeetingHost::default(),
        meeting_cmds: Vec::new(),
        spare_cmds: Vec::new(),
        env: Env {
            id,
            settings: seed.actors,
            limits: seed.limits,
            enable_echo,
            admission: seed.admission,
            verifier: ShardVerifier::new(seed.keys, seed.verifier),
            metrics,
            outbound_bytes: 0,
        },
        control: seed.control,
        timers: Timers::default(),
        fanouts: Vec::new(),
        h3_gone: H3Stats::default(),
        published: Published::default(),
        next_publish: Instant::now() + PUBLISH_EVERY,
    };
    tracing::debug!(shard = %id, %bound, "shard started");
    let _ = seed.started.send(Ok(bound));

    let mut connections = 0i64;
    loop {
        let PassEnd { more, requests } = shard.pass();
        let live = shard.conns.len() as i64;
        shard.env.metrics.connections_active.add(live - connections);
        connections = live;
        if shard.router.mesh().is_stopping() {
            break;
        }
        let overflowing = !more && (shard.router.overflowing() || !shard.waiting.is_empty());
        // Whether to read the socket again at once instead of parking (`reread`): only
        // where the loop would park on it with no pause for receive batching.
        let read_again = shard.reread.after_pass(
            requests,
            !more && !overflowing && shard.batch.nap().is_none(),
        );
        if more || read_again {
            glommio::yield_if_needed().await;
        } else if overflowing {
            // Parked messages wait for a peer to drain its queue: look again soon.
            glommio::timer::sleep(Duration::from_micros(200)).await;
        } else {
            shard.park();
        }
    }
    shard.stop().await;
    shard.env.metrics.connections_active.sub(connections);
    tracing::debug!(shard = %id, "shard stopped");
}

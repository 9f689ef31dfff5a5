//! The control-plane executor: one unpinned glommio executor beside the shards.
//!
//! It runs the GC client (register, heartbeat, deregister), serves the admin plane,
//! pings every shard once a second (readiness is "every shard answered lately"; the
//! pongs carry each shard's load for the GC heartbeats), and drives the drain and live
//! migration (docs/runbook.md "Draining and Shutdown").
//!
//! - `health`: [`ShardHealth`], the last pong of every shard.
//! - `mesh`: the control plane's inbox (pongs, the shards' answers, new signals), the
//!   drain's input queue, the import route's waits.
//! - `driver`: the I/O around the sans-IO [`Drain`]: signals, the GC's status, timers
//!   and answers in; admission, requests to shards, the GC's `migrate`, signed imports
//!   and deregistration out.
//! - `admin_state`: readiness, metrics, the demo and the import route's host.
//!
//! Draining lives in one place, the [`Drain`] in [`Control`]: readiness and
//! `mc_draining` read it, and its driver publishes its decision to the shards in
//! [`Admission`]. Requests to shards go through one ordered outbox (a [`Router`]), so
//! an `AbortHandover` never overtakes the `ExportMeeting` it undoes.

mod admin_state;
mod driver;
mod events;
mod health;
mod mesh;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{MeshHandle, MeshMonitor, MeshSeed, ShardId};

use crate::admin::{self, AdminState};
use crate::admission::Admission;
use crate::auth::BindingSecret;
use crate::config::Settings;
use crate::drain::{Drain, DrainConfig};
use crate::gc::{self, GcClient, GcClientConfig, GcHooks, GcStatus, Load};
use crate::meeting::MeetingConfig;
use crate::metrics::{Metrics, ShardMetrics};
use crate::migration::{MigrationKey, SourceMc};
use crate::router::{OverflowLimits, Router, ShardMsg, LANE_CONTROL};
use crate::shutdown::Shutdown;
use driver::{GcSide, Input};
pub use health::{ShardHealth, PING_INTERVAL, PONG_STALE_AFTER};
use mesh::{Inputs, Replies};

/// How long startup waits for the first GC registration (runbook startup order).
const FIRST_REGISTRATION_WAIT: Duration = Duration::from_secs(3);
/// Messages the control plane may hold for one shard whose control lane is full. They
/// are the control plane's own (pings, drain and hand-over steps; imports come with
/// bodies the admin plane has bounded), so the count is their bound, not bytes.
const OUTBOX_MAX: OverflowLimits = OverflowLimits {
    messages: 4096,
    bytes: usize::MAX / 2,
};

/// What the control executor is started with. `Send`: built on the main thread.
pub struct ControlSeed {
    pub mesh: MeshSeed<ShardMsg>,
    pub monitor: MeshMonitor<ShardMsg>,
    pub metrics: Metrics,
    pub settings: Settings,
    pub admin_listener: std::net::TcpListener,
    pub shutdown: Arc<Shutdown>,
    pub admission: Arc<Admission>,
    pub shards: usize,
    /// The GC client's settings; `None` in dev mode without a GC.
    pub gc: Option<(GcClientConfig, Duration)>,
    /// The cluster's binding secret: the import signature's key derives from it.
    pub binding_secret: BindingSecret,
    /// The meeting limits an imported snapshot must fit.
    pub meeting: MeetingConfig,
    /// Set by main once every shard is up: the admin plane starts serving then.
    pub shards_up: Arc<AtomicBool>,
    /// Told once GC registration has succeeded or had its first try (startup order).
    pub gc_first_attempt: SyncSender<()>,
}

/// Control-plane state, shared by its tasks and read by the admin plane. `!Send`.
pub struct Control {
    settings: Settings,
    metrics: Metrics,
    monitor: MeshMonitor<ShardMsg>,
    mesh: Rc<MeshHandle<ShardMsg>>,
    /// Ordered requests to shards, parked while a control lane is full.
    outbox: RefCell<Router>,
    shards: usize,
    health: RefCell<ShardHealth>,
    shard_metrics: Vec<ShardMetrics>,
    shutdown: Arc<Shutdown>,
    admission: Arc<Admission>,
    /// The one draining state (module docs).
    drain: RefCell<Drain>,
    inputs: Inputs,
    replies: Replies,
    key: MigrationKey,
    meeting: MeetingConfig,
    /// The GC client's view, when a GC is configured.
    gc_status: Option<Rc<GcStatus>>,
    /// Sequence number of the last ping sent to the shards.
    ping_seq: Cell<u64>,
    /// The last `/metrics` body, and the budget of fresh ones.
    scrapes: RefCell<admin_state::Scrapes>,
}

impl Control {
    fn gc_registered(&self) -> bool {
        self.gc_status.as_ref().is_some_and(|s| s.registered())
    }

    fn gc_required(&self) -> bool {
        self.gc_status.is_some()
    }

    fn load(&self) -> Load {
        let l = self.health.borrow().total_load();
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Load {
            meetings: clamp(l.meetings),
            sessions: clamp(l.connections),
            participants: clamp(l.participants),
        }
    }

    /// A request for shard `to`, after everything sent to it before. A full lane parks
    /// it (the driver flushes); a full outbox drops it, and the drain's deadlines cover
    /// the missing answer.
    fn send_to_shard(&self, to: ShardId, msg: ShardMsg) {
        let mut outbox = self.outbox.borrow_mut();
        if outbox.send(to, LANE_CONTROL, msg).is_err() {
            tracing::error!(shard = %to, "control requests for this shard are piling up; one was dropped");
        }
        if outbox.overflowing() {
            self.inputs.wake();
        }
    }
}

/// The drain's settings from the service's: migration needs a GC and a migrate URL.
fn drain_config(
    settings: &Settings,
    meeting: &MeetingConfig,
    gc: bool,
    migrate: bool,
) -> DrainConfig {
    DrainConfig {
        drain_timeout: settings.drain_timeout,
        gc,
        migrate: gc && migrate && settings.live_migration,
        max_handover_bytes: meeting.max_handover_bytes,
        ..DrainConfig::default()
    }
}

/// Run the control plane until shutdown completes.
pub async fn run(seed: ControlSeed) {
    let mesh = Rc::new(seed.mesh.into_handle());
    let shard_metrics = (0..seed.shards)
        .map(|i| ShardMetrics::new(&seed.metrics, i as u16))
        .collect();
    // Who this MC is to a target (the GC client's advertised endpoints).
    let mut source = SourceMc {
        id: seed.settings.mc_id.clone(),
        webtransport_endpoint: String::new(),
        http_endpoint: String::new(),
    };
    let mut gc_side: Option<GcSide> = None;
    let mut cfg = DrainConfig::default();
    let control = Rc::new_cyclic(|weak: &std::rc::Weak<Control>| {
        let gc_status = seed.gc.map(|(cfg, request_timeout)| {
            let load = weak.clone();
            let mut hooks =
                GcHooks::new(move || load.upgrade().map(|c| c.load()).unwrap_or_default());
            hooks.metrics = Some(seed.metrics.clone());
            hooks.request_timeout = request_timeout;
            let status = weak.clone();
            hooks.on_gc_draining = Some(Box::new(move |draining| {
                if let Some(c) = status.upgrade() {
                    c.inputs.push(Input::GcStatus(draining));
                }
            }));
            source = SourceMc {
                id: cfg.id.clone(),
                webtransport_endpoint: cfg.webtransport_endpoint.clone(),
                http_endpoint: cfg.http_endpoint.clone(),
            };
            let urls = &cfg.urls;
            let migrate_url = urls
                .register
                .replace_last_segment("register", "migrate")
                .or_else(|| urls.heartbeat.replace_last_segment("heartbeat", "migrate"));
            let status = hooks.status.clone();
            let client = GcClient::new(cfg, Instant::now(), rand::random());
            gc_side = Some(GcSide {
                control: hooks.control.clone(),
                migrate_url,
                deregister_timeout: hooks.deregister_timeout,
                task: None,
            });
            if let Some(gc) = gc_side.as_mut() {
                gc.task = Some(glommio::spawn_local(gc::run(client, hooks)));
            }
            status
        });
        let migrate = gc_side.as_ref().is_some_and(|g| g.migrate_url.is_some());
        cfg = drain_config(&seed.settings, &seed.meeting, gc_status.is_some(), migrate);
        let drain = Drain::new(cfg.clone());
        Control {
            outbox: RefCell::new(Router::new(mesh.clone(), seed.shards, OUTBOX_MAX)),
            mesh,
            shards: seed.shards,
            health: RefCell::new(ShardHealth::new(seed.shards)),
            metrics: seed.metrics,
            monitor: seed.monitor,
            shard_metrics,
            shutdown: seed.shutdown,
            admission: seed.admission,
            drain: RefCell::new(drain),
            inputs: Inputs::default(),
            replies: Replies::default(),
            key: MigrationKey::derive(&seed.binding_secret),
            meeting: seed.meeting,
            gc_status,
            ping_seq: Cell::new(0),
            scrapes: RefCell::new(admin_state::Scrapes::new(Instant::now())),
            settings: seed.settings,
        }
    });
    if cfg.gc && control.settings.live_migration && !cfg.migrate {
        tracing::warn!("live migration is off: no migrate URL can be derived from the GC URLs");
    }

    // Startup order (runbook step 5): GC registration before the actor system. Tell
    // main when registration succeeded, or after a few seconds of trying.
    {
        let status = control.gc_status.clone();
        let tx = seed.gc_first_attempt;
        glommio::spawn_local(async move {
            let deadline = Instant::now() + FIRST_REGISTRATION_WAIT;
            while let Some(s) = &status {
                if s.registered() || Instant::now() >= deadline {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let _ = tx.send(());
        })
        .detach();
    }

    let inbox = glommio::spawn_local(mesh::inbox(control.clone()));
    let pinger = {
        let control = control.clone();
        glommio::spawn_local(async move {
            loop {
                mesh::ping_all(&control);
                glommio::timer::sleep(PING_INTERVAL).await;
            }
        })
    };
    let admin_task = glommio::spawn_local(serve_when_up(
        control.clone(),
        seed.admin_listener,
        seed.shards_up,
    ));

    driver::run(control.clone(), cfg, gc_side, source).await;

    tracing::info!("Shutdown: stopping shards");
    control.monitor.stop();
    drop((pinger, inbox, admin_task));
    tracing::info!("Shutdown complete");
}

/// Serve the admin plane once every shard is up; log `Meeting Controller ready` once
/// every shard has answered a ping. Runs until the executor ends.
async fn serve_when_up(
    control: Rc<Control>,
    listener: std::net::TcpListener,
    shards_up: Arc<AtomicBool>,
) {
    let started = Instant::now();
    while !shards_up.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let serving = glommio::spawn_local(admin::serve(
        listener,
        control.clone() as Rc<dyn AdminState>,
        control.settings.admin.clone(),
    ));
    tracing::info!(
        address = %control.settings.http_bind_address,
        "Prometheus metrics recorder initialized"
    );
    while !control.health.borrow().all_healthy(Instant::now()) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    tracing::info!(
        shards = control.shards,
        startup_ms = started.elapsed().as_millis() as u64,
        "Meeting Controller ready"
    );
    serving.await;
}

//! The control-plane executor: one unpinned glommio executor beside the shards.
//!
//! It runs the GC client (register, heartbeat, drain, deregister), serves the admin
//! plane, pings every shard once a second (readiness is "every shard answered lately",
//! a request to each shard rather than a shared counter; the pongs carry each shard's
//! load for the GC heartbeats), publishes queue depths at scrape time, and runs the
//! drain when SIGTERM arrives:
//!
//! 1. readiness → 503 `draining`, a `draining` heartbeat, no new meetings or sessions;
//! 2. live meetings continue until they end or `--drain-timeout-secs` passes;
//! 3. remaining meetings are ended (`MEETING_ENDED`, or `RedirectToMc` when a redirect
//!    endpoint is configured) and their sessions closed;
//! 4. deregister from the GC, stop the shards, exit 0.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{MeshHandle, MeshMonitor, MeshSeed, ShardId};

use crate::admin::{self, AdminState, Readiness};
use crate::admission::Admission;
use crate::config::Settings;
use crate::gc::{self, GcClient, GcClientConfig, GcControl, GcHooks, GcStatus, Load};
use crate::metrics::{Metrics, ShardMetrics};
use crate::router::{ShardLoad, ShardMsg, LANE_CONNECTION, LANE_CONTROL, LANE_MEETING};
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
    pub admission: Arc<Admission>,
    pub shards: usize,
    /// The GC client's settings; `None` in dev mode without a GC.
    pub gc: Option<(GcClientConfig, Duration)>,
    /// Set by main once every shard is up: the admin plane starts serving then.
    pub shards_up: Arc<AtomicBool>,
    /// Told once GC registration has succeeded or had its first try (startup order).
    pub gc_first_attempt: SyncSender<()>,
}

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

    /// Messages every shard holds parked for `to`'s `lane` (its overflow).
    pub fn parked_for(&self, to: ShardId, lane: shards::Lane) -> u64 {
        self.last
            .iter()
            .flatten()
            .filter_map(|(_, l)| l.parked.get(to.index()))
            .map(|p| u64::from(p.get(usize::from(lane.0)).copied().unwrap_or(0)))
            .sum()
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
    pub admission: Arc<Admission>,
    /// The GC client's view, when a GC is configured.
    gc_status: Option<Rc<GcStatus>>,
    /// Sequence number of the last ping sent to the shards.
    ping_seq: Cell<u64>,
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
}

impl Control {
    /// Dev mode only: `/demo` (the browser demo) and `/demo/token` (a dev join token,
    /// the WebTransport URL and the dev certificate hash for `serverCertificateHashes`).
    fn demo(&self, req: &admin::http::Request) -> Option<admin::http::Response> {
        use admin::http::Response;
        if !self.settings.dev {
            return None;
        }
        match req.path.as_str() {
            "/demo" | "/demo/" => Some(Response::new(
                200,
                "text/html; charset=utf-8",
                DEMO_HTML.as_bytes(),
            )),
            "/demo/token" => {
                let q: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(req.query.as_bytes())
                        .into_owned()
                        .collect();
                let meeting = q
                    .get("meeting_id")
                    .map(String::as_str)
                    .unwrap_or("demo-meeting");
                let user = q.get("user_id").map(String::as_str).unwrap_or("guest");
                let role = match q.get("role").map(String::as_str) {
                    Some("host") => crate::auth::jwt::Role::Host,
                    _ => crate::auth::jwt::Role::Participant,
                };
                if meeting.is_empty() || meeting.len() > 256 || user.is_empty() || user.len() > 256
                {
                    return Some(Response::text(
                        400,
                        "meeting_id and user_id: 1..=256 bytes\n",
                    ));
                }
                let keys = match crate::auth::DevKeys::load_or_create(&self.settings.dev_dir) {
                    Ok(k) => k,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo: no dev keys");
                        return Some(Response::text(500, "dev keys unavailable\n"));
                    }
                };
                let mut claims = crate::auth::jwt::TokenClaims::meeting(
                    user,
                    meeting,
                    role,
                    std::time::SystemTime::now(),
                    Duration::from_secs(3600),
                );
                claims.name = q.get("name").filter(|n| n.len() <= 256).cloned();
                let token = keys.mint_token(&claims);
                let hash = std::fs::read_to_string(self.settings.dev_dir.join("cert.sha256"))
                    .unwrap_or_default();
                let mut wt = self.settings.webtransport_bind_address;
                if wt.ip().is_unspecified() {
                    wt.set_ip([127, 0, 0, 1].into());
                }
                let body = serde_json::json!({
                    "token": token,
                    "webtransport_url": format!("https://{wt}/"),
                    "cert_sha256": hash.trim(),
                });
                Some(Response::new(
                    200,
                    "application/json",
                    body.to_string().into_bytes(),
                ))
            }
            _ => None,
        }
    }
}

/// The dev-mode browser demo (src/admin/demo.html).
const DEMO_HTML: &str = include_str!("admin/demo.html");

impl AdminState for Control {
    fn refused(&self) {
        self.metrics
            .refusals_total
            .with_label_values(&["admin_connections"])
            .inc();
    }

    fn extra(&self, req: &admin::http::Request) -> Option<admin::http::Response> {
        self.demo(req)
    }

    fn readiness(&self) -> Readiness {
        let healthy = self.health.borrow().all_healthy(Instant::now());
        let gc_registered = self.gc_registered();
        let status = if self.shutdown.requested() || self.admission.gc_draining() {
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
    let mut gc_task = None;
    let mut gc_control: Option<GcControl> = None;
    let control = Rc::new_cyclic(|weak: &std::rc::Weak<Control>| {
        let gc_status = seed.gc.map(|(cfg, request_timeout)| {
            let weak = weak.clone();
            let mut hooks =
                GcHooks::new(move || weak.upgrade().map(|c| c.load()).unwrap_or_default());
            hooks.metrics = Some(seed.metrics.clone());
            hooks.request_timeout = request_timeout;
            let admission = seed.admission.clone();
            hooks.on_gc_draining = Some(Box::new(move |draining| {
                admission.set_gc_draining(draining);
                tracing::info!(
                    draining,
                    "GC status is now {}",
                    if draining {
                        "draining: no new meetings"
                    } else {
                        "active: admitting meetings"
                    }
                );
            }));
            let status = hooks.status.clone();
            gc_control = Some(hooks.control.clone());
            let client = GcClient::new(cfg, Instant::now(), rand::random());
            gc_task = Some(glommio::spawn_local(gc::run(client, hooks)));
            status
        });
        Control {
            health: RefCell::new(ShardHealth::new(seed.shards)),
            settings: seed.settings,
            metrics: seed.metrics,
            monitor: seed.monitor,
            shard_metrics,
            shutdown: seed.shutdown,
            admission: seed.admission,
            gc_status,
            ping_seq: Cell::new(0),
        }
    });

    // Startup order (runbook step 5): GC registration before the actor system. Tell
    // main when registration succeeded, or after a few seconds of trying.
    {
        let status = control.gc_status.clone();
        let tx = seed.gc_first_attempt;
        glommio::spawn_local(async move {
            let deadline = Instant::now() + Duration::from_secs(3);
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

    // Pinger: one ping per shard per interval, on the control lane.
    let pinger = {
        let mesh = mesh.clone();
        let control = control.clone();
        glommio::spawn_local(async move {
            loop {
                ping_all(&mesh, &control);
                glommio::timer::sleep(PING_INTERVAL).await;
            }
        })
    };

    let started = Instant::now();
    let mut admin_task = None;
    let mut announced = false;
    loop {
        drain_inbox(&mesh, &control);
        if admin_task.is_none() && seed.shards_up.load(Ordering::SeqCst) {
            admin_task = Some(glommio::spawn_local(admin::serve(
                clone_listener(&seed.admin_listener),
                control.clone() as Rc<dyn AdminState>,
                control.settings.admin.clone(),
            )));
            tracing::info!(
                address = %control.settings.http_bind_address,
                "Prometheus metrics recorder initialized"
            );
        }
        if admin_task.is_some() && !announced && control.health.borrow().all_healthy(Instant::now())
        {
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
    drop(seed.admin_listener);

    drain(&mesh, &control, gc_control.as_ref()).await;

    if let (Some(gc), Some(task)) = (gc_control, gc_task) {
        tracing::info!("Shutdown: deregistering from the Global Controller");
        gc.shutdown();
        // The driver deregisters with a 2 s timeout; do not wait much longer.
        let _ = futures_lite::future::or(async { Some(task.await) }, async {
            glommio::timer::sleep(Duration::from_secs(4)).await;
            None
        })
        .await;
    }
    tracing::info!("Shutdown: stopping shards");
    control.monitor.stop();
    drop(pinger);
    drop(admin_task);
    tracing::info!("Shutdown complete");
}

/// The admin listener is owned by the seed until shutdown; serve a duplicate of it.
fn clone_listener(l: &std::net::TcpListener) -> std::net::TcpListener {
    l.try_clone().expect("dup of a live listening socket")
}

/// Ping every shard; returns the ping's sequence number.
fn ping_all(mesh: &MeshHandle<ShardMsg>, control: &Control) -> u64 {
    let seq = control.ping_seq.get() + 1;
    control.ping_seq.set(seq);
    for s in 0..control.shard_metrics.len() {
        // A full control lane: that shard is not keeping up; its health goes stale and
        // readiness reports it.
        let _ = mesh.try_send(ShardId(s as u16), LANE_CONTROL, ShardMsg::Ping { seq });
    }
    seq
}

fn drain_inbox(mesh: &MeshHandle<ShardMsg>, control: &Control) {
    while let Some((from, _lane, msg)) = mesh.try_recv() {
        if let ShardMsg::Pong { seq, load } = msg {
            control
                .health
                .borrow_mut()
                .record_seq(from, seq, Instant::now(), load);
        }
    }
}

/// The load of every shard, fresher than this call (a ping round trip, bounded).
async fn fresh_load(mesh: &MeshHandle<ShardMsg>, control: &Control) -> ShardLoad {
    let seq = ping_all(mesh, control);
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        drain_inbox(mesh, control);
        if control.health.borrow().answered(seq) || Instant::now() >= deadline {
            return control.health.borrow().total_load();
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

/// Steps 1–3 of the drain (module docs).
async fn drain(mesh: &Rc<MeshHandle<ShardMsg>>, control: &Rc<Control>, gc: Option<&GcControl>) {
    let timeout = control.settings.drain_timeout;
    tracing::info!(
        signal = control.shutdown.signal_name(),
        drain_timeout_secs = timeout.as_secs(),
        "Drain started: readiness reports draining, no new meetings are admitted"
    );
    control.admission.start_draining();
    if let Some(gc) = gc {
        gc.start_draining();
    }

    // Live meetings continue until they end or the drain timeout passes. The pinger
    // keeps the load fresh.
    let deadline = Instant::now() + timeout;
    let last_log = Cell::new(Instant::now());
    loop {
        let load = fresh_load(mesh, control).await;
        if load.meetings == 0 && load.connections == 0 {
            tracing::info!("Drain: no live meetings left");
            break;
        }
        if Instant::now() >= deadline {
            tracing::info!(
                meetings = load.meetings,
                sessions = load.connections,
                "Drain timeout reached: ending the remaining meetings"
            );
            break;
        }
        if last_log.get().elapsed() >= Duration::from_secs(10) {
            last_log.set(Instant::now());
            tracing::info!(
                meetings = load.meetings,
                sessions = load.connections,
                "Draining"
            );
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }

    // End what is left, then give the shards a moment to flush and close sessions.
    for s in 0..control.shard_metrics.len() {
        send_control(mesh, ShardId(s as u16), ShardMsg::EndMeetings).await;
    }
    let flush_deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < flush_deadline {
        if fresh_load(mesh, control).await.connections == 0 {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!("Drain complete");
}

/// Control messages must arrive: retry on a full lane (back-pressure on purpose).
async fn send_control(mesh: &MeshHandle<ShardMsg>, to: ShardId, mut msg: ShardMsg) {
    for _ in 0..1000 {
        match mesh.try_send(to, LANE_CONTROL, msg) {
            Ok(()) => return,
            Err(full) => msg = full.msg,
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    tracing::error!(shard = %to, "control lane stayed full; shard did not get a drain message");
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

//! The I/O around [`GcClient`] on a glommio executor (the control plane): ask the
//! client what to send, `POST` it with [`http1::exchange`], feed the answer back, sleep
//! until the next deadline. Reports through [`GcStatus`] (read by `/ready`), callbacks
//! and [`Metrics`]; takes draining and shutdown requests through [`GcControl`].
//!
//! Log lines are the ones `docs/runbook.md` lists (startup messages; "GC registration
//! failures"):
//! `Registering with Global Controller...`, `GC registration successful`,
//! `Failed to register with GC` (refusal, with the GC's reason), `GC unreachable`.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::or;
use glommio::timer::sleep;
use prometheus::{Histogram, IntCounter, IntGauge};
use tracing::{debug, info, warn};

use super::client::{ActionKind, GcClient, GcEvent, GcStats, Load};
use super::GcError;
use crate::http1::{self, HttpUrl, Limits, Request, Response};
use crate::metrics::Metrics;

/// Default time allowed for one register or heartbeat request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// docs/gc-api.md Deregister: best effort, 2 s.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// The GC client's state as the rest of the control plane sees it (`/ready`).
#[derive(Debug, Default)]
pub struct GcStatus {
    registered: Cell<bool>,
    gc_says_draining: Cell<bool>,
    last_heartbeat_ok: Cell<Option<Instant>>,
    stopped: Cell<bool>,
}

impl GcStatus {
    /// Registered with the GC (the last registration was accepted and no heartbeat has
    /// been answered 404 since).
    pub fn registered(&self) -> bool {
        self.registered.get()
    }

    /// The GC's view is `draining`: admit no new meetings.
    pub fn gc_says_draining(&self) -> bool {
        self.gc_says_draining.get()
    }

    pub fn last_heartbeat_ok(&self) -> Option<Instant> {
        self.last_heartbeat_ok.get()
    }

    /// The driver has finished (after deregistering).
    pub fn stopped(&self) -> bool {
        self.stopped.get()
    }
}

/// Requests to the driver from the same executor: cheap to clone, idempotent.
#[derive(Clone, Default)]
pub struct GcControl {
    inner: Rc<ControlInner>,
}

#[derive(Default)]
struct ControlInner {
    draining: Cell<bool>,
    shutdown: Cell<bool>,
    generation: Cell<u64>,
    waker: Cell<Option<Waker>>,
}

impl GcControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// The MC is draining: heartbeat `status: draining` now and from now on.
    pub fn start_draining(&self) {
        if !self.inner.draining.replace(true) {
            self.bump();
        }
    }

    /// Deregister (best effort, 2 s) and end [`run`]. An in-flight request is abandoned.
    pub fn shutdown(&self) {
        if !self.inner.shutdown.replace(true) {
            self.bump();
        }
    }

    fn bump(&self) {
        let g = &self.inner.generation;
        g.set(g.get().wrapping_add(1));
        if let Some(w) = self.inner.waker.take() {
            w.wake();
        }
    }

    /// Resolves once a request arrives after generation `seen`.
    async fn changed(&self, seen: u64) {
        poll_fn(|cx| {
            if self.inner.generation.get() != seen {
                return Poll::Ready(());
            }
            self.inner.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    async fn shutdown_requested(&self) {
        while !self.inner.shutdown.get() {
            self.changed(self.inner.generation.get()).await;
        }
    }
}

/// What the driver reports to and takes from the rest of the service.
pub struct GcHooks {
    /// The current load, summed over every shard by the caller.
    pub load: Box<dyn Fn() -> Load>,
    /// Shared view for `/ready` and admission.
    pub status: Rc<GcStatus>,
    pub control: GcControl,
    /// Called when the GC's view flips (`true` → stop admitting new meetings).
    pub on_gc_draining: Option<Box<dyn Fn(bool)>>,
    pub metrics: Option<Metrics>,
    pub request_timeout: Duration,
    pub deregister_timeout: Duration,
}

impl GcHooks {
    /// Hooks with a fresh status and control, no metrics, default timeouts.
    pub fn new(load: impl Fn() -> Load + 'static) -> Self {
        Self {
            load: Box::new(load),
            status: Rc::new(GcStatus::default()),
            control: GcControl::new(),
            on_gc_draining: None,
            metrics: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            deregister_timeout: DEREGISTER_TIMEOUT,
        }
    }
}

/// Label children looked up once.
struct GcMetrics {
    heartbeat_ok: IntCounter,
    heartbeat_err: IntCounter,
    register_ok: IntCounter,
    register_err: IntCounter,
    registered: IntGauge,
    heartbeat_duration: Histogram,
}

impl GcMetrics {
    fn new(m: &Metrics) -> Self {
        Self {
            heartbeat_ok: m.gc_heartbeat_total.with_label_values(&["success"]),
            heartbeat_err: m.gc_heartbeat_total.with_label_values(&["error"]),
            register_ok: m.gc_registrations_total.with_label_values(&["success"]),
            register_err: m.gc_registrations_total.with_label_values(&["error"]),
            registered: m.gc_registered.clone(),
            heartbeat_duration: m.gc_heartbeat_duration_seconds.clone(),
        }
    }
}

/// Drive `client` until it has deregistered (after [`GcControl::shutdown`]).
/// Must run on a glommio executor. Returns the client's final counters.
pub async fn run(mut client: GcClient, hooks: GcHooks) -> GcStats {
    let metrics = hooks.metrics.as_ref().map(GcMetrics::new);
    let control = hooks.control.clone();
    loop {
        let seen = control.inner.generation.get();
        if control.inner.draining.get() {
            client.start_draining();
        }
        if control.inner.shutdown.get() {
            client.shutdown();
        }
        publish(&mut client, &hooks, metrics.as_ref());
        if client.is_done() {
            break;
        }
        client.set_load((hooks.load)());
        let now = Instant::now();
        if let Some(action) = client.poll_action(now) {
            publish(&mut client, &hooks, metrics.as_ref());
            let kind = action.kind();
            let started = Instant::now();
            let result = if kind == ActionKind::Deregister {
                perform(action.url(), action.body(), hooks.deregister_timeout).await
            } else {
                let request = perform(action.url(), action.body(), hooks.request_timeout);
                let cancelled = async {
                    control.shutdown_requested().await;
                    Err(GcError::Cancelled)
                };
                or(request, cancelled).await
            };
            if let (ActionKind::Heartbeat, Ok(_), Some(m)) = (kind, &result, &metrics) {
                m.heartbeat_duration
                    .observe(started.elapsed().as_secs_f64());
            }
            client.handle_response(Instant::now(), kind, result);
            continue;
        }
        match client.poll_timeout() {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                or(sleep(wait), control.changed(seen)).await;
            }
            None => control.changed(seen).await,
        }
    }
    hooks.status.registered.set(false);
    hooks.status.stopped.set(true);
    if let Some(m) = &metrics {
        m.registered.set(0);
    }
    client.stats()
}

/// Log, count and publish every pending event.
fn publish(client: &mut GcClient, hooks: &GcHooks, metrics: Option<&GcMetrics>) {
    let url = client.config().urls.register.clone();
    while let Some(event) = client.poll_event() {
        match &event {
            GcEvent::Registering { attempt: 0 } => {
                info!(url = %url, "Registering with Global Controller...");
            }
            GcEvent::Registering { attempt } => {
                debug!(url = %url, attempt, "Retrying GC registration");
            }
            GcEvent::Registered { heartbeat_interval } => {
                info!(
                    heartbeat_interval_secs = heartbeat_interval.as_secs_f64(),
                    "GC registration successful"
                );
            }
            GcEvent::RegistrationRefused {
                status,
                reason,
                retry_in,
            } => {
                warn!(
                    status,
                    reason = reason.as_deref().unwrap_or("none given"),
                    retry_in_secs = retry_in.as_secs_f64(),
                    "Failed to register with GC"
                );
            }
            GcEvent::RegistrationFailed { cause, retry_in } if cause.is_unreachable() => {
                warn!(cause = %cause, url = %url, retry_in_secs = retry_in.as_secs_f64(), "GC unreachable");
            }
            GcEvent::RegistrationFailed { cause, retry_in } => {
                warn!(cause = %cause, retry_in_secs = retry_in.as_secs_f64(), "Failed to register with GC");
            }
            GcEvent::HeartbeatOk => {
                hooks.status.last_heartbeat_ok.set(Some(Instant::now()));
                debug!("GC heartbeat acknowledged");
            }
            GcEvent::HeartbeatFailed { cause } => warn!(cause = %cause, "GC heartbeat failed"),
            GcEvent::UnknownToGc => {
                warn!("GC does not know this MC (heartbeat answered 404): registering again");
            }
            GcEvent::GcDraining(true) => {
                info!("GC marked this MC draining: no new meetings will be admitted");
            }
            GcEvent::GcDraining(false) => info!("GC marked this MC active: admitting new meetings"),
            GcEvent::Deregistered { ok: true } => info!("Deregistered from GC"),
            GcEvent::Deregistered { ok: false } => {
                warn!("GC deregistration failed (best effort; the GC will time this MC out)");
            }
        }
        if let Some(m) = metrics {
            match &event {
                GcEvent::Registered { .. } => m.register_ok.inc(),
                GcEvent::RegistrationRefused { .. } | GcEvent::RegistrationFailed { .. } => {
                    m.register_err.inc()
                }
                GcEvent::HeartbeatOk => m.heartbeat_ok.inc(),
                GcEvent::HeartbeatFailed { .. } => m.heartbeat_err.inc(),
                _ => {}
            }
        }
        if let (GcEvent::GcDraining(d), Some(cb)) = (&event, &hooks.on_gc_draining) {
            cb(*d);
        }
    }
    hooks.status.registered.set(client.registered());
    hooks.status.gc_says_draining.set(client.gc_says_draining());
    if let Some(m) = metrics {
        m.registered.set(i64::from(client.registered()));
    }
}

/// One `POST` of a JSON `body` to `url`, everything (resolve, connect, write, read)
/// within `timeout`.
pub async fn perform(url: &HttpUrl, body: &str, timeout: Duration) -> Result<Response, GcError> {
    let req = Request::post_json(url.clone(), body.as_bytes());
    Ok(http1::exchange(&req, timeout, Limits::default()).await?)
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;

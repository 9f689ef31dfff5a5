//! [`GcClient`]: the MC's side of `docs/gc-api.md` as a sans-IO state machine.
//!
//! The driver asks [`GcClient::poll_action`] what to send, performs it, and feeds the
//! outcome to [`GcClient::handle_response`]; it sleeps until [`GcClient::poll_timeout`]
//! and drains [`GcClient::poll_event`] for logs and metrics. At most one request is in
//! flight. Time (`now`) and randomness (a seed) are injected so every rule is tested
//! with a fake clock.
//!
//! Rules (docs/gc-api.md):
//! - Register at start; 200/201 with `accepted: true` → registered, adopt
//!   `heartbeat_interval_secs` when given. 4xx (`accepted: false, reason`), 5xx, refused
//!   connection, timeout → retry after an exponential backoff, 1 s → 30 s with jitter.
//!   Never give up.
//! - Heartbeat every interval with the MC's own status; the reply's `status` is the GC's
//!   view (`draining` → stop admitting new meetings, `active` → admit again). 404 → the
//!   GC does not know us: register again at once (after the backoff when it was 404
//!   already before that registration). Other failures keep the registration
//!   (readiness reflects the last successful registration) and retry next interval.
//! - Shutdown: one best-effort deregister, then done.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use super::types::{ActionKind, GcAction, GcClientConfig, GcEvent, GcStats, GcUrls, Load};
use super::GcError;
use crate::http1::Response;

/// Backoff floor and ceiling for registration retries (docs/gc-api.md: "1 s to 30 s").
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Jitter: each delay is drawn from `[base·(1−J), base·(1+J))`, then clamped to the bounds.
const JITTER: f64 = 0.2;
/// Longest heartbeat interval adopted from the GC.
const MAX_GC_INTERVAL_SECS: u64 = 3600;
/// Events kept for the driver; it drains them after every call, so this is slack.
const MAX_EVENTS: usize = 64;
/// Longest GC-supplied reason kept for logs.
const MAX_REASON_CHARS: usize = 256;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Register { at: Instant },
    Heartbeat { at: Instant },
    Deregister { sent: bool },
    Done,
}

#[derive(Serialize)]
struct RegisterBody<'a> {
    id: &'a str,
    region: &'a str,
    capacity: u32,
    webtransport_endpoint: &'a str,
    http_endpoint: &'a str,
    shards: u32,
    version: &'a str,
}

#[derive(Serialize)]
struct HeartbeatBody<'a> {
    id: &'a str,
    status: &'a str,
    capacity: u32,
    current_meetings: u32,
    current_sessions: u32,
    current_participants: u32,
}

#[derive(Serialize)]
struct DeregisterBody<'a> {
    id: &'a str,
}

#[derive(Deserialize, Default)]
struct Reply {
    accepted: Option<bool>,
    status: Option<String>,
    heartbeat_interval_secs: Option<u64>,
    reason: Option<String>,
}

/// The GC client state machine. See the module docs for the rules.
pub struct GcClient {
    cfg: GcClientConfig,
    phase: Phase,
    in_flight: Option<ActionKind>,
    /// The heartbeat interval in force (ours, or the GC's once it gave one).
    interval: Duration,
    /// Consecutive failed registration attempts (drives the backoff).
    failures: u32,
    /// The GC answered a heartbeat 404 and no heartbeat has succeeded since.
    unknown: bool,
    registered: bool,
    gc_draining: bool,
    draining: bool,
    /// A heartbeat carrying `draining` has been sent.
    draining_sent: bool,
    load: Load,
    last_now: Instant,
    rng: StdRng,
    events: VecDeque<GcEvent>,
    stats: GcStats,
}

impl GcClient {
    /// A client that registers at once (`now`); `seed` drives the backoff jitter.
    pub fn new(cfg: GcClientConfig, now: Instant, seed: u64) -> Self {
        let interval = cfg.heartbeat_interval.max(Duration::from_millis(1));
        Self {
            cfg,
            phase: Phase::Register { at: now },
            in_flight: None,
            interval,
            failures: 0,
            unknown: false,
            registered: false,
            gc_draining: false,
            draining: false,
            draining_sent: false,
            load: Load::default(),
            last_now: now,
            rng: StdRng::seed_from_u64(seed),
            events: VecDeque::new(),
            stats: GcStats::default(),
        }
    }

    /// The request to send now, if any (none while one is in flight).
    pub fn poll_action(&mut self, now: Instant) -> Option<GcAction> {
        self.last_now = now;
        if self.in_flight.is_some() {
            return None;
        }
        let action = match self.phase {
            Phase::Register { at } if now >= at => {
                self.push(GcEvent::Registering {
                    attempt: self.failures,
                });
                GcAction::Register {
                    url: self.cfg.urls.register.clone(),
                    body: self.register_body(),
                }
            }
            Phase::Heartbeat { at } if now >= at => {
                self.draining_sent |= self.draining;
                GcAction::Heartbeat {
                    url: self.cfg.urls.heartbeat.clone(),
                    body: self.heartbeat_body(),
                }
            }
            Phase::Deregister { sent: false } => {
                self.phase = Phase::Deregister { sent: true };
                GcAction::Deregister {
                    url: self.cfg.urls.deregister.clone(),
                    body: json(&DeregisterBody { id: &self.cfg.id }),
                }
            }
            _ => return None,
        };
        self.in_flight = Some(action.kind());
        Some(action)
    }

    /// Feed the outcome of the request of kind `kind`. Outcomes of requests not in
    /// flight are ignored.
    pub fn handle_response(
        &mut self,
        now: Instant,
        kind: ActionKind,
        result: Result<Response, GcError>,
    ) {
        self.last_now = now;
        if self.in_flight != Some(kind) {
            return;
        }
        self.in_flight = None;
        if kind != ActionKind::Deregister && matches!(result, Err(GcError::Cancelled)) {
            // Abandoned because the process is stopping: the GC was not asked to its
            // end, so nothing failed and nothing was learned. Deregistration comes next
            // (and is itself never left unanswered: it ends the client either way).
            self.shutdown();
            return;
        }
        match kind {
            ActionKind::Register => self.on_register(now, result),
            ActionKind::Heartbeat => self.on_heartbeat(now, result),
            ActionKind::Deregister => {
                let ok = matches!(&result, Ok(r) if (200..300).contains(&r.status));
                self.push(GcEvent::Deregistered { ok });
                self.phase = Phase::Done;
            }
        }
    }

    /// When the driver should call [`poll_action`](Self::poll_action) next; `None` while a
    /// request is in flight or once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        match self.phase {
            Phase::Register { at } | Phase::Heartbeat { at } => Some(at),
            Phase::Deregister { sent: false } => Some(self.last_now),
            Phase::Deregister { sent: true } | Phase::Done => None,
        }
    }

    /// The next lifecycle event, if any.
    pub fn poll_event(&mut self) -> Option<GcEvent> {
        self.events.pop_front()
    }

    /// The load to report in the next heartbeat.
    pub fn set_load(&mut self, load: Load) {
        self.load = load;
    }

    /// The MC itself is draining (SIGTERM): report `draining` from now on, at once.
    pub fn start_draining(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        if let Phase::Heartbeat { at } = &mut self.phase {
            *at = (*at).min(self.last_now);
        }
    }

    /// Begin the end: one deregister (after any in-flight request), then done.
    pub fn shutdown(&mut self) {
        if !matches!(self.phase, Phase::Deregister { .. } | Phase::Done) {
            self.phase = Phase::Deregister { sent: false };
        }
    }

    /// Registered with the GC (readiness): since the last accepted registration, until a
    /// heartbeat is answered 404.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The GC's view is `draining`: admit no new meetings.
    pub fn gc_says_draining(&self) -> bool {
        self.gc_draining
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Deregistration finished; nothing more will be sent.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.interval
    }

    pub fn stats(&self) -> GcStats {
        self.stats
    }

    pub fn config(&self) -> &GcClientConfig {
        &self.cfg
    }

    fn on_register(&mut self, now: Instant, result: Result<Response, GcError>) {
        if matches!(self.phase, Phase::Deregister { .. } | Phase::Done) {
            return;
        }
        let resp = match result {
            Ok(resp) => resp,
            Err(cause) => {
                self.stats.registrations_failed += 1;
                let retry_in = self.schedule_retry(now);
                self.push(GcEvent::RegistrationFailed { cause, retry_in });
                return;
            }
        };
        let reply: Option<Reply> = serde_json::from_slice(&resp.body).ok();
        let accepted = matches!(resp.status, 200 | 201)
            && reply.as_ref().is_some_and(|r| r.accepted != Some(false));
        if !accepted {
            self.stats.registrations_refused += 1;
            let retry_in = self.schedule_retry(now);
            let reason = reply.and_then(|r| r.reason).map(truncate).or_else(|| {
                matches!(resp.status, 200 | 201).then(|| "unreadable reply body".to_string())
            });
            self.push(GcEvent::RegistrationRefused {
                status: resp.status,
                reason,
                retry_in,
            });
            return;
        }
        let reply = reply.unwrap_or_default();
        if let Some(secs) = reply.heartbeat_interval_secs {
            if (1..=MAX_GC_INTERVAL_SECS).contains(&secs) {
                self.interval = Duration::from_secs(secs);
            }
        }
        self.stats.registrations_ok += 1;
        // A GC that keeps forgetting us (`unknown`) keeps the backoff growing until a
        // heartbeat succeeds.
        if !self.unknown {
            self.failures = 0;
        }
        self.registered = true;
        // A draining MC heartbeats at once so the GC learns it without waiting.
        let first = if self.draining {
            now
        } else {
            now + self.interval
        };
        self.phase = Phase::Heartbeat { at: first };
        self.push(GcEvent::Registered {
            heartbeat_interval: self.interval,
        });
        self.apply_gc_status(reply.status.as_deref());
    }

    fn on_heartbeat(&mut self, now: Instant, result: Result<Response, GcError>) {
        if matches!(self.phase, Phase::Deregister { .. } | Phase::Done) {
            return;
        }
        // Draining began while an `active` heartbeat was in flight: tell the GC at once.
        let next = if self.draining && !self.draining_sent {
            now
        } else {
            now + self.interval
        };
        self.phase = Phase::Heartbeat { at: next };
        let resp = match result {
            Ok(resp) if resp.status == 200 => resp,
            Ok(resp) if resp.status == 404 => {
                self.stats.heartbeats_failed += 1;
                self.stats.unknown_to_gc += 1;
                self.registered = false;
                if self.unknown {
                    // Unknown again right after a registration it accepted: the GC
                    // forgets us as soon as it has us (replicas that share nothing, a
                    // broken GC). Wait as after a refused registration: a draining MC
                    // heartbeats at once after registering, and would otherwise go
                    // round as fast as the GC answers.
                    self.schedule_retry(now);
                } else {
                    // Registered with no 404 before: the backoff's count is at 0.
                    self.phase = Phase::Register { at: now };
                }
                self.unknown = true;
                self.push(GcEvent::HeartbeatFailed {
                    cause: "HTTP 404: the GC does not know this MC".into(),
                });
                self.push(GcEvent::UnknownToGc);
                return;
            }
            Ok(resp) => {
                self.stats.heartbeats_failed += 1;
                self.push(GcEvent::HeartbeatFailed {
                    cause: format!("HTTP {}", resp.status),
                });
                return;
            }
            Err(e) => {
                self.stats.heartbeats_failed += 1;
                self.push(GcEvent::HeartbeatFailed {
                    cause: e.to_string(),
                });
                return;
            }
        };
        self.stats.heartbeats_ok += 1;
        self.unknown = false;
        self.failures = 0;
        self.push(GcEvent::HeartbeatOk);
        let reply: Option<Reply> = serde_json::from_slice(&resp.body).ok();
        self.apply_gc_status(reply.and_then(|r| r.status).as_deref());
    }

    /// docs/gc-api.md Heartbeat: the reply's `status` is the GC's view of this MC. Unknown
    /// or missing values leave the view unchanged.
    fn apply_gc_status(&mut self, status: Option<&str>) {
        let draining = match status {
            Some("draining") => true,
            Some("active") => false,
            _ => return,
        };
        if draining != self.gc_draining {
            self.gc_draining = draining;
            self.push(GcEvent::GcDraining(draining));
        }
    }

    /// Schedule the next registration attempt after a failure; returns the delay.
    fn schedule_retry(&mut self, now: Instant) -> Duration {
        let delay = self.backoff_delay();
        self.failures = self.failures.saturating_add(1);
        self.phase = Phase::Register { at: now + delay };
        delay
    }

    /// `min·2^failures` capped at `max`, jittered by ±20 %, clamped to `[min, max]`.
    fn backoff_delay(&mut self) -> Duration {
        let (min, max) = (
            self.cfg.backoff_min,
            self.cfg.backoff_max.max(self.cfg.backoff_min),
        );
        let base = min
            .checked_mul(1u32 << self.failures.min(20))
            .unwrap_or(max)
            .min(max);
        let factor = self.rng.random_range((1.0 - JITTER)..(1.0 + JITTER));
        base.mul_f64(factor).clamp(min, max)
    }

    fn register_body(&self) -> String {
        let c = &self.cfg;
        json(&RegisterBody {
            id: &c.id,
            region: &c.region,
            capacity: c.capacity,
            webtransport_endpoint: &c.webtransport_endpoint,
            http_endpoint: &c.http_endpoint,
            shards: c.shards,
            version: &c.version,
        })
    }

    fn heartbeat_body(&self) -> String {
        json(&HeartbeatBody {
            id: &self.cfg.id,
            status: if self.draining { "draining" } else { "active" },
            capacity: self.cfg.capacity,
            current_meetings: self.load.meetings,
            current_sessions: self.load.sessions,
            current_participants: self.load.participants,
        })
    }

    fn push(&mut self, event: GcEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn truncate(reason: String) -> String {
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason;
    }
    let mut s: String = reason.chars().take(MAX_REASON_CHARS).collect();
    s.push('…');
    s
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

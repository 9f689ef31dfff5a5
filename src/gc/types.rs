//! The GC client's vocabulary: its endpoints and configuration, the actions it asks
//! the driver to perform, the events it reports, its counters (docs/gc-api.md).

use std::time::Duration;

use super::GcError;
use crate::http1::{HttpError, HttpUrl};

/// The three GC endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcUrls {
    pub register: HttpUrl,
    pub heartbeat: HttpUrl,
    pub deregister: HttpUrl,
}

impl GcUrls {
    /// docs/gc-api.md: heartbeat (and deregister) URLs are the registration URL with its last
    /// segment `register` replaced, unless `GC_HEARTBEAT_URL` is set.
    pub fn derive(registration_url: &str, heartbeat_url: Option<&str>) -> Result<Self, GcError> {
        let cfg = |flag, e: HttpError| GcError::Config {
            flag,
            reason: e.to_string(),
        };
        let register = HttpUrl::parse(registration_url)
            .map_err(|e| cfg("--gc-registration-url / GC_REGISTRATION_URL", e))?;
        let explicit = heartbeat_url
            .map(HttpUrl::parse)
            .transpose()
            .map_err(|e| cfg("--gc-heartbeat-url / GC_HEARTBEAT_URL", e))?;
        let no_register_segment = || GcError::Config {
            flag: "--gc-heartbeat-url / GC_HEARTBEAT_URL",
            reason: format!(
                "the registration URL {registration_url} does not end in /register, so the \
                 heartbeat and deregister URLs cannot be derived; set GC_HEARTBEAT_URL \
                 (ending in /heartbeat)"
            ),
        };
        let heartbeat = match explicit {
            Some(u) => u,
            None => register
                .replace_last_segment("register", "heartbeat")
                .ok_or_else(no_register_segment)?,
        };
        let deregister = register
            .replace_last_segment("register", "deregister")
            .or_else(|| heartbeat.replace_last_segment("heartbeat", "deregister"))
            .ok_or_else(no_register_segment)?;
        Ok(Self {
            register,
            heartbeat,
            deregister,
        })
    }
}

/// What the client needs to know; identity and endpoints come from the service config.
#[derive(Clone, Debug)]
pub struct GcClientConfig {
    pub id: String,
    pub region: String,
    pub capacity: u32,
    pub webtransport_endpoint: String,
    pub http_endpoint: String,
    pub shards: u32,
    pub version: String,
    pub urls: GcUrls,
    /// Our own heartbeat interval; the GC's `heartbeat_interval_secs` wins when given.
    pub heartbeat_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// The load reported in heartbeats.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub meetings: u32,
    pub sessions: u32,
    pub participants: u32,
}

/// Which request an action or a response belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Register,
    Heartbeat,
    Deregister,
}

/// One request for the driver to perform: `POST url` with the JSON `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcAction {
    Register { url: HttpUrl, body: String },
    Heartbeat { url: HttpUrl, body: String },
    Deregister { url: HttpUrl, body: String },
}

impl GcAction {
    pub fn kind(&self) -> ActionKind {
        match self {
            GcAction::Register { .. } => ActionKind::Register,
            GcAction::Heartbeat { .. } => ActionKind::Heartbeat,
            GcAction::Deregister { .. } => ActionKind::Deregister,
        }
    }

    pub fn url(&self) -> &HttpUrl {
        match self {
            GcAction::Register { url, .. }
            | GcAction::Heartbeat { url, .. }
            | GcAction::Deregister { url, .. } => url,
        }
    }

    pub fn body(&self) -> &str {
        match self {
            GcAction::Register { body, .. }
            | GcAction::Heartbeat { body, .. }
            | GcAction::Deregister { body, .. } => body,
        }
    }
}

/// Lifecycle events, for the driver to log, count and publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcEvent {
    /// A registration request is being sent; `attempt` counts failures since the last
    /// success (0 = the first attempt of a registration cycle).
    Registering {
        attempt: u32,
    },
    Registered {
        heartbeat_interval: Duration,
    },
    /// The GC answered but refused (4xx, or 2xx with `accepted: false`) or failed (5xx).
    RegistrationRefused {
        status: u16,
        reason: Option<String>,
        retry_in: Duration,
    },
    /// The GC could not be reached (or its answer was unreadable).
    RegistrationFailed {
        cause: GcError,
        retry_in: Duration,
    },
    HeartbeatOk,
    HeartbeatFailed {
        cause: String,
    },
    /// Heartbeat answered 404: the GC forgot us; registering again at once.
    UnknownToGc,
    /// The GC's view changed: `true` → stop admitting new meetings.
    GcDraining(bool),
    Deregistered {
        ok: bool,
    },
}

/// Plain counters kept by the state machine (published by the driver).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    pub registrations_ok: u64,
    pub registrations_refused: u64,
    pub registrations_failed: u64,
    pub heartbeats_ok: u64,
    pub heartbeats_failed: u64,
    pub unknown_to_gc: u64,
    pub events_dropped: u64,
}

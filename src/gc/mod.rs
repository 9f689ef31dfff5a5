//! The Global Controller client (`gc-api.md`).
//!
//! ```text
//!  control-plane executor
//!  ┌──────────────────────────────────────────────────────────────────────────┐
//!  │ driver::run ── poll_action(now) ──► GcAction{Register|Heartbeat|Deregister}│
//!  │   │  resolve (spawn_blocking) ─ connect_timeout ─ http::encode_post ─ read  │
//!  │   └─ handle_response(now, kind, Result<HttpResponse, GcError>) ◄──────────┘│
//!  │ poll_event() ─► log lines, Metrics, GcStatus (admin /ready), callbacks      │
//!  │ GcControl::start_draining() / shutdown() ◄── SIGTERM handling               │
//!  └──────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - [`http`]: sans-IO HTTP/1.1 codec (one `POST`, one response, with limits).
//! - [`client`]: [`GcClient`], the sans-IO state machine: registration with backoff,
//!   heartbeats, the GC's draining view, deregistration. Time and randomness injected.
//! - [`types`]: endpoints, config, actions, events and counters of the client.
//! - [`driver`]: the I/O around the client on a glommio executor.
//! - [`args`]: [`GcArgs`] (clap) and the advertised-endpoint derivation.

pub mod args;
pub mod client;
pub mod driver;
pub mod http;
pub mod types;

pub use args::{advertised_endpoints, GcArgs, GcIdentity};
pub use client::{ActionKind, GcAction, GcClient, GcClientConfig, GcEvent, GcStats, GcUrls, Load};
pub use driver::{run, GcControl, GcHooks, GcStatus};
pub use http::{HttpError, HttpResponse, HttpUrl};

use thiserror::Error;

/// Everything that can fail between the MC and the GC.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GcError {
    /// A configuration problem (bad URL, no advertised address); names the flag.
    #[error("{flag}: {reason}")]
    Config { flag: &'static str, reason: String },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("I/O error: {0}")]
    Io(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The request was abandoned because shutdown began.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl GcError {
    /// True when the GC could not be reached at all (as opposed to a refusal or an
    /// unreadable answer): the runbook's `GC unreachable`.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            GcError::Resolve { .. }
                | GcError::Connect { .. }
                | GcError::Timeout(_)
                | GcError::Io(_)
        )
    }
}

//! The Global Controller client: the MC's side of `docs/gc-api.md` (register,
//! heartbeat, follow the GC's draining view, deregister), run on the control-plane
//! executor.
//!
//! ```text
//!  control-plane executor
//!  ┌──────────────────────────────────────────────────────────────────────────────┐
//!  │ driver::run ── poll_action(now) ──► GcAction{Register|Heartbeat|Deregister}    │
//!  │   │  http1::exchange: resolve ─ connect ─ POST JSON ─ parse the response       │
//!  │   └─ handle_response(now, kind, Result<http1::Response, GcError>) ◄───────────┘│
//!  │ poll_event() ─► log lines, Metrics, GcStatus (admin /ready), callbacks          │
//!  │ GcControl::start_draining() / shutdown() ◄── SIGTERM handling                   │
//!  └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - [`client`]: [`GcClient`], the sans-IO state machine: registration with backoff,
//!   heartbeats, the GC's draining view, deregistration. Time and randomness injected.
//! - [`types`]: endpoints, config, actions, events and counters of the client.
//! - [`driver`]: the I/O around the client on a glommio executor; the HTTP itself is
//!   [`crate::http1`].
//! - [`args`]: [`GcArgs`] (clap) and the advertised-endpoint derivation.

pub mod args;
pub mod client;
pub mod driver;
pub mod types;

pub use args::{advertised_endpoints, GcArgs, GcIdentity};
pub use client::{ActionKind, GcAction, GcClient, GcClientConfig, GcEvent, GcStats, GcUrls, Load};
pub use driver::{run, GcControl, GcHooks, GcStatus};

use thiserror::Error;

use crate::http1::HttpError;

/// Everything that can fail between the MC and the GC.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GcError {
    /// A configuration problem (bad URL, no advertised address); names the flag.
    #[error("{flag}: {reason}")]
    Config { flag: &'static str, reason: String },
    /// The request failed: unreachable, timed out, or an unreadable answer.
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
        matches!(self, GcError::Http(e) if e.is_unreachable())
    }
}

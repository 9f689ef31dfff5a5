//! Meeting actors and the commands between them and connections.
//!
//! Every meeting lives on shard `hash(meeting_id) % N` in its shard's [`MeetingHost`];
//! connections live where they were accepted (`crate::conn`). A connection's session
//! sends [`MeetingCmd`]s to the meeting; the meeting answers with [`ConnCmd`]s — frames
//! encoded once per fan-out and shared by every recipient, or a close. Whether a command
//! is a direct call or a message over the mesh is decided by `crate::router`.
//!
//! ```text
//! connection ──MeetingCmd──► meeting host (this shard, or the mesh's meeting lane)
//!     ▲                              │ Outbound: encode once per fan-out
//!     └──────ConnCmd (Frame | Close)─┘ (direct call, or the connection lane)
//! ```
//!
//! - [`meetings`]: the meeting host of a shard (`catch_unwind` per message).

pub mod meetings;

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::admission::Admission;
use crate::auth::BindingSecret;
use crate::meeting::{CloseCode, ConnKey, JoinIdentity, MeetingConfig};
use crate::signaling::proto::{pb, ClientMessage};
use crate::signaling::session::SessionConfig;
pub use meetings::MeetingHost;

/// Work for a meeting actor.
#[derive(Debug)]
pub enum MeetingCmd {
    Join {
        conn: ConnKey,
        identity: JoinIdentity,
        request: Box<pb::JoinRequest>,
        received_at: Instant,
    },
    Message {
        conn: ConnKey,
        meeting_id: String,
        msg: ClientMessage,
        received_at: Instant,
    },
    Disconnect {
        conn: ConnKey,
        meeting_id: String,
        clean: bool,
    },
}

impl MeetingCmd {
    pub fn meeting_id(&self) -> &str {
        match self {
            MeetingCmd::Join { request, .. } => &request.meeting_id,
            MeetingCmd::Message { meeting_id, .. } | MeetingCmd::Disconnect { meeting_id, .. } => {
                meeting_id
            }
        }
    }
}

/// Work for a connection. Cheap to clone: a frame is a shared `Bytes`.
#[derive(Debug, Clone)]
pub enum ConnCmd {
    /// An encoded signaling frame to queue on the session. `at` is when the meeting
    /// handled the message (the start of `mc_fanout_duration_seconds`).
    Frame {
        frame: Bytes,
        join_response: bool,
        at: Instant,
    },
    /// Close the session with this code once what was queued before is sent.
    Close(CloseCode),
}

/// What a meeting host needs from its shard. A trait so the host is testable alone.
pub trait MeetingEnv {
    fn admission(&self) -> &Admission;
    fn binding_secret(&self) -> &BindingSecret;
    fn meeting_config(&self) -> MeetingConfig;
    fn max_frame(&self) -> usize;
    fn deliver(&mut self, to: ConnKey, cmd: ConnCmd);
    /// The same command for several connections of one shard (a fan-out): one mesh
    /// message per destination shard instead of one per recipient.
    fn deliver_many(&mut self, shard: u16, conns: Vec<u64>, cmd: ConnCmd);
    /// A join finished with `status` (the `mc_session_joins_total` label).
    fn join_outcome(&mut self, status: &'static str, received_at: Option<Instant>);
    fn meeting_panicked(&mut self);
    fn meetings_changed(&mut self, delta: i64);
    fn message_processed(&mut self, received_at: Instant);
    /// `n` requests refused by a meeting's limit (`mc_refusals_total{reason}`).
    fn refusals(&mut self, reason: &'static str, n: u64);
}

/// Settings every actor of every shard shares. `Send + Sync`, cloned into each shard.
#[derive(Clone)]
pub struct ActorSettings {
    pub meeting: MeetingConfig,
    pub session: SessionConfig,
    pub binding_secret: BindingSecret,
    pub redirect_endpoint: Option<String>,
    /// Capacity of each cross-shard queue (`ACTOR_MAILBOX_SIZE`).
    pub mailbox: usize,
    /// Time a client has, after its session is accepted, to open the signaling stream
    /// and complete its first frame (the join).
    pub join_timeout: Duration,
    /// Connections one client IP may hold on one shard.
    pub max_sessions_per_ip: u32,
    /// Leading bits of an IPv6 client address counted as one client.
    pub ipv6_client_prefix: u8,
    /// Bytes the sessions of one shard may hold queued for their clients together
    /// (`MC_SHARD_OUTBOUND_MAX_BYTES`).
    pub shard_outbound_max_bytes: usize,
}

#[cfg(test)]
mod tests;

//! Actors on a shard: connection actors (one task per WebTransport session, on the shard
//! that accepted it) and meeting actors (every meeting lives on shard
//! `hash(meeting_id) % N`). They talk through [`Actors::route_meeting`] and
//! [`MeetingEnv::deliver`]: a direct call when both are on this shard, the mesh's
//! meeting or connection lane when not.
//!
//! ```text
//! connection actor ──MeetingCmd──► meeting host (this shard, or LANE_MEETING)
//!        ▲                                  │ Outbound: encode once per fan-out
//!        └───────ConnCmd (Frame | Close)────┘ (local mailbox, or LANE_CONNECTION)
//! ```
//!
//! - [`meetings`]: the meeting host of a shard (catch_unwind per message).
//! - [`connection`]: the connection actor: frames in, JWT check, frames out.

pub mod connection;
pub mod meetings;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use prometheus::IntCounter;
use shards::{Lane, MeshHandle, ShardId};

use crate::admission::Admission;
use crate::auth::keystore::ShardVerifier;
use crate::auth::BindingSecret;
use crate::meeting::{CloseCode, ConnKey, JoinIdentity, MeetingConfig};
use crate::metrics::{Metrics, ShardMetrics};
use crate::shard::{ShardMsg, LANE_CONNECTION, LANE_MEETING};
use crate::signaling::proto::{pb, ClientMessage};
use crate::signaling::session::SessionConfig;
use meetings::MeetingHost;

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

/// Work for a connection actor. Cheap to clone: a frame is a shared `Bytes`.
#[derive(Debug, Clone)]
pub enum ConnCmd {
    /// An encoded signaling frame to queue on the session.
    Frame { frame: Bytes, join_response: bool },
    /// Close the session with this code once what was queued before is sent.
    Close(CloseCode),
}

/// Messages parked per destination shard while its mesh queue is full.
pub const OVERFLOW_MAX: usize = 65_536;

/// The shard of a meeting: FNV-1a (64-bit) of its id, modulo the shard count. Stable
/// across processes and releases, so a meeting id always lands on the same shard.
pub fn meeting_shard(meeting_id: &str, shards: usize) -> ShardId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meeting_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ShardId((h % shards.max(1) as u64) as u16)
}

/// What a meeting host needs from its shard. A trait so the host is testable alone.
pub trait MeetingEnv {
    fn admission(&self) -> &Admission;
    fn binding_secret(&self) -> &BindingSecret;
    fn meeting_config(&self) -> MeetingConfig;
    fn max_frame(&self) -> usize;
    fn deliver(&self, to: ConnKey, cmd: ConnCmd);
    /// The same command for several connections of one shard (a fan-out): one mesh
    /// message per destination shard instead of one per recipient.
    fn deliver_many(&self, shard: u16, conns: Vec<u64>, cmd: ConnCmd);
    /// A join finished with `status` (the `mc_session_joins_total` label).
    fn join_outcome(&self, status: &'static str, received_at: Option<Instant>);
    fn meeting_panicked(&self);
    fn meetings_changed(&self, delta: i64);
    fn message_processed(&self, received_at: Instant);
}

/// Settings every actor of every shard shares. `Send + Sync`, cloned into each shard.
#[derive(Clone)]
pub struct ActorSettings {
    pub meeting: MeetingConfig,
    pub session: SessionConfig,
    pub binding_secret: BindingSecret,
    pub redirect_endpoint: Option<String>,
    /// Capacity of each connection actor's mailbox (`ACTOR_MAILBOX_SIZE`).
    pub mailbox: usize,
    /// Time a client has, after its session is accepted, to open the signaling stream
    /// and send its join.
    pub join_timeout: Duration,
    /// Signaling sessions one client IP may hold on one shard.
    pub max_sessions_per_ip: u32,
}

/// Counters looked up once per shard.
struct ActorMetrics {
    shard: ShardMetrics,
    joins: HashMap<&'static str, IntCounter>,
    client_kinds: HashMap<&'static str, IntCounter>,
    closed: RefCell<HashMap<&'static str, IntCounter>>,
    shard_label: String,
    all: Metrics,
}

/// The actors of one shard. `!Send`.
pub struct Actors {
    pub shard: ShardId,
    pub shards: usize,
    mesh: Rc<MeshHandle<ShardMsg>>,
    metrics: ActorMetrics,
    pub admission: Arc<Admission>,
    pub settings: ActorSettings,
    pub meetings: RefCell<MeetingHost>,
    conns: RefCell<HashMap<u64, LocalSender<ConnCmd>>>,
    next_conn: Cell<u64>,
    /// Live signaling sessions per client IP on this shard.
    per_ip: RefCell<HashMap<std::net::IpAddr, u32>>,
    /// Messages for other shards that found their mesh queue full, per destination, in
    /// order: retried every pass, so a burst is delayed rather than lost. Bounded by
    /// [`OVERFLOW_MAX`] per destination; beyond that a message is a counted drop.
    overflow: RefCell<Vec<std::collections::VecDeque<(Lane, ShardMsg)>>>,
    pub verifier: RefCell<ShardVerifier>,
    /// Draining: new sessions are refused by the data plane; joins to new meetings are
    /// refused by admission.
    pub draining: Cell<bool>,
}

impl Actors {
    pub fn new(
        shard: ShardId,
        shards: usize,
        mesh: Rc<MeshHandle<ShardMsg>>,
        metrics: &Metrics,
        admission: Arc<Admission>,
        settings: ActorSettings,
        verifier: ShardVerifier,
    ) -> Rc<Self> {
        let s = shard.0.to_string();
        let joins = [
            "success",
            "recovered",
            "unauthorized",
            "capacity",
            "draining",
            "invalid",
            "error",
        ]
        .into_iter()
        .map(|st| (st, metrics.session_joins_total.with_label_values(&[st, &s])))
        .collect();
        let client_kinds = [
            "join_request",
            "publish_stream",
            "subscribe_to_layout",
            "update_layout",
            "unsubscribe_layout",
            "stream_quality_update",
            "mute_request",
            "host_mute_request",
            "unmute_request",
            "unmute_response",
            "media_connection_update",
            "unknown",
        ]
        .into_iter()
        .map(|k| (k, metrics.client_messages_total.with_label_values(&[k, &s])))
        .collect();
        Rc::new(Self {
            shard,
            shards,
            mesh,
            metrics: ActorMetrics {
                shard: ShardMetrics::new(metrics, shard.0),
                joins,
                client_kinds,
                closed: RefCell::new(HashMap::new()),
                shard_label: s,
                all: metrics.clone(),
            },
            admission,
            settings,
            meetings: RefCell::new(MeetingHost::default()),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(1),
            per_ip: RefCell::new(HashMap::new()),
            overflow: RefCell::new((0..shards).map(|_| Default::default()).collect()),
            verifier: RefCell::new(verifier),
            draining: Cell::new(false),
        })
    }

    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics.shard
    }

    /// Count a join token validation (`mc_jwt_validations_total`). Joins are not the
    /// per-message path, so the label lookup here is acceptable.
    pub fn count_jwt(&self, result: &str, reason: &str) {
        self.metrics
            .all
            .jwt_validations_total
            .with_label_values(&[result, reason])
            .inc();
    }

    /// `mc_session_joins_total{status}` for outcomes decided on the connection's shard.
    pub fn count_join(&self, status: &'static str) {
        if let Some(c) = self.metrics.joins.get(status) {
            c.inc();
        }
    }

    /// `mc_client_messages_total{kind}`: children looked up once, at shard start.
    pub fn count_client_message(&self, kind: &'static str) {
        if let Some(c) = self.metrics.client_kinds.get(kind) {
            c.inc();
        }
    }

    /// `mc_sessions_closed_total{reason}` (once per session end).
    pub fn count_session_closed(&self, reason: &'static str) {
        let mut closed = self.metrics.closed.borrow_mut();
        closed
            .entry(reason)
            .or_insert_with(|| {
                self.metrics
                    .all
                    .sessions_closed_total
                    .with_label_values(&[reason, &self.metrics.shard_label])
            })
            .inc();
    }

    /// Register a new connection actor; returns its key and mailbox.
    pub fn register_connection(&self) -> (ConnKey, LocalReceiver<ConnCmd>) {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(self.settings.mailbox);
        self.conns.borrow_mut().insert(id, tx);
        (
            ConnKey {
                shard: self.shard.0,
                conn: id,
            },
            rx,
        )
    }

    pub fn unregister_connection(&self, key: ConnKey) {
        self.conns.borrow_mut().remove(&key.conn);
    }

    /// Admit one more session from `ip`, or refuse (counted) at the per-IP limit.
    pub fn acquire_ip(&self, ip: std::net::IpAddr) -> bool {
        let mut per_ip = self.per_ip.borrow_mut();
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.settings.max_sessions_per_ip {
            self.count_refusal("max_sessions_per_ip");
            return false;
        }
        *n += 1;
        true
    }

    /// `mc_refusals_total{reason}` (refusals are rare; the label lookup is fine here).
    pub fn count_refusal(&self, reason: &str) {
        self.metrics
            .all
            .refusals_total
            .with_label_values(&[reason])
            .inc();
    }

    pub fn per_ip_count(&self, ip: std::net::IpAddr) -> u32 {
        self.per_ip.borrow().get(&ip).copied().unwrap_or(0)
    }

    pub fn release_ip(&self, ip: std::net::IpAddr) {
        let mut per_ip = self.per_ip.borrow_mut();
        if let Some(n) = per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Send a command to the meeting's actor: a direct call on this shard, else the
    /// mesh. A full meeting mailbox is a counted drop; the command is handed back.
    #[allow(clippy::result_large_err)] // handing the command back is the point
    pub fn route_meeting(&self, cmd: MeetingCmd) -> Result<(), MeetingCmd> {
        let target = meeting_shard(cmd.meeting_id(), self.shards);
        if target == self.shard {
            self.meetings.borrow_mut().handle(self, Instant::now(), cmd);
            return Ok(());
        }
        match self.send_remote(target, LANE_MEETING, ShardMsg::ToMeeting(cmd)) {
            Ok(()) => Ok(()),
            Err(ShardMsg::ToMeeting(cmd)) => {
                self.metrics.shard.dropped_meeting.inc();
                Err(cmd)
            }
            Err(_) => unreachable!("we sent a ToMeeting"),
        }
    }

    /// Send to another shard, in order with anything already waiting for it. A full
    /// queue parks the message in the overflow; only a full overflow hands it back.
    #[allow(clippy::result_large_err)]
    fn send_remote(&self, to: ShardId, lane: Lane, msg: ShardMsg) -> Result<(), ShardMsg> {
        let mut overflow = self.overflow.borrow_mut();
        let Some(queue) = overflow.get_mut(to.index()) else {
            return Err(msg);
        };
        if queue.is_empty() {
            match self.mesh.try_send(to, lane, msg) {
                Ok(()) => return Ok(()),
                Err(full) => {
                    queue.push_back((lane, full.msg));
                    return Ok(());
                }
            }
        }
        if queue.len() >= OVERFLOW_MAX {
            return Err(msg);
        }
        queue.push_back((lane, msg));
        Ok(())
    }

    /// Retry parked messages, in order, until a queue is full again.
    pub fn flush_overflow(&self) {
        let mut overflow = self.overflow.borrow_mut();
        for (to, queue) in overflow.iter_mut().enumerate() {
            while let Some((lane, msg)) = queue.pop_front() {
                if let Err(full) = self.mesh.try_send(ShardId(to as u16), lane, msg) {
                    queue.push_front((lane, full.msg));
                    break;
                }
            }
        }
    }

    /// Messages parked for full queues.
    pub fn overflowing(&self) -> bool {
        self.overflow.borrow().iter().any(|q| !q.is_empty())
    }

    /// A command for a connection actor on this shard (from the mesh or a local meeting).
    pub fn deliver_local(&self, conn: u64, cmd: ConnCmd) {
        let mut conns = self.conns.borrow_mut();
        let Some(tx) = conns.get(&conn) else {
            return; // already gone
        };
        if tx.try_send(cmd).is_err() {
            // The connection cannot keep up: drop its mailbox sender; the actor sees
            // its mailbox end and closes the session as a slow consumer (0x104).
            self.metrics.shard.dropped_connection.inc();
            conns.remove(&conn);
        }
    }

    /// Grace-period timers of this shard's meetings; runs until the mesh stops.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let now = Instant::now();
            let due = self
                .meetings
                .borrow()
                .poll_timeout()
                .is_some_and(|t| t <= now);
            if due {
                self.meetings.borrow_mut().handle_timeout(&*self, now);
            }
        }
    }

    /// Drain end on this shard.
    pub fn end_meetings(&self) {
        let redirect = self.settings.redirect_endpoint.clone();
        self.meetings
            .borrow_mut()
            .end_all(self, Instant::now(), redirect.as_deref());
    }
}

impl MeetingEnv for Actors {
    fn admission(&self) -> &Admission {
        &self.admission
    }

    fn binding_secret(&self) -> &BindingSecret {
        &self.settings.binding_secret
    }

    fn meeting_config(&self) -> MeetingConfig {
        self.settings.meeting.clone()
    }

    fn max_frame(&self) -> usize {
        self.settings.session.max_frame
    }

    fn deliver(&self, to: ConnKey, cmd: ConnCmd) {
        self.deliver_many(to.shard, vec![to.conn], cmd);
    }

    fn deliver_many(&self, shard: u16, conns: Vec<u64>, cmd: ConnCmd) {
        if shard == self.shard.0 {
            for conn in conns {
                self.deliver_local(conn, cmd.clone());
            }
            return;
        }
        let msg = ShardMsg::ToConnections { conns, cmd };
        if let Err(ShardMsg::ToConnections { conns, .. }) =
            self.send_remote(ShardId(shard), LANE_CONNECTION, msg)
        {
            self.metrics
                .shard
                .dropped_connection
                .inc_by(conns.len() as u64);
        }
    }

    fn join_outcome(&self, status: &'static str, _received_at: Option<Instant>) {
        self.count_join(status);
    }

    fn meeting_panicked(&self) {
        self.metrics.shard.panics_meeting.inc();
    }

    fn meetings_changed(&self, delta: i64) {
        self.metrics.shard.meetings_active.add(delta);
    }

    fn message_processed(&self, received_at: Instant) {
        self.metrics
            .shard
            .message_processing
            .observe(received_at.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests;

//! Every Prometheus metric the service exports, registered once in one registry.
//!
//! Names and help texts follow `docs/runbook.md`. Series produced on a shard
//! carry a `shard` label; a shard looks its children up once ([`ShardMetrics`]) and
//! never by label on the message path. Control-plane series (GC client) have no shard.

use crate::auth::jwks::RefreshStats;
use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for per-message processing: tens of microseconds up to the 500 ms SLO and
/// beyond, so both the normal case and an SLO breach are visible.
pub const PROCESSING_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets for a fan-out's time on the server: 50 µs to 1 s, finer between 10 and 50 ms
/// where a 1,000-participant meeting's fan-out lies and its 20 ms p99 objective is read
/// (a quantile is interpolated linearly inside its bucket, so a bucket from 20 to 50 ms
/// alone says little about where the slow fan-outs fell).
pub const FANOUT_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

/// Buckets for handshakes, joins and GC round trips: 100 µs to 10 s.
pub const NETWORK_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// `mc_meetings_migrated_total{direction="out"}` results (`drain::MigrationResult`).
pub const MIGRATED_OUT: &[&str] = &["ok", "refused", "failed", "no_target"];
/// `mc_meetings_migrated_total{direction="in"}` results (`migration::ImportAnswer::label`,
/// `timeout` when the meeting's shard did not answer the admin plane in time, `busy` when
/// the admin plane held as many request bodies as it may).
pub const MIGRATED_IN: &[&str] = &[
    "ok",
    "repeat",
    "conflict",
    "draining",
    "capacity",
    "too_large",
    "unauthorized",
    "bad_request",
    "timeout",
    "busy",
];

/// The registry and every metric family in it. Cheap to clone (all `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    // Runbook metrics.
    pub meetings_active: IntGaugeVec,
    pub connections_active: IntGaugeVec,
    pub actor_mailbox_depth: IntGaugeVec,
    pub messages_dropped_total: IntCounterVec,
    pub actor_panics_total: IntCounterVec,
    pub message_processing_duration_seconds: HistogramVec,
    pub gc_heartbeat_total: IntCounterVec,
    // GC client.
    pub gc_registered: IntGauge,
    pub gc_registrations_total: IntCounterVec,
    pub gc_heartbeat_duration_seconds: Histogram,
    // Live migration.
    pub meetings_migrated_total: IntCounterVec,
    pub meeting_handover_duration_seconds: Histogram,
    // Data plane.
    pub webtransport_connections_total: IntCounterVec,
    pub datagrams_forwarded_total: IntCounterVec,
    pub datagrams_forward_dropped_total: IntCounterVec,
    pub udp_send_errors_total: IntCounterVec,
    pub quic_retries_total: IntCounterVec,
    pub handshake_duration_seconds: HistogramVec,
    // Signaling and sessions.
    pub session_joins_total: IntCounterVec,
    pub session_join_duration_seconds: HistogramVec,
    pub jwt_validations_total: IntCounterVec,
    pub jwks_reloads_total: IntCounterVec,
    pub jwks_last_success_timestamp_seconds: IntGauge,
    pub client_messages_total: IntCounterVec,
    pub sessions_closed_total: IntCounterVec,
    // Limits and refusals.
    pub refusals_total: IntCounterVec,
    pub connection_receive_budget_bytes: IntGauge,
    pub connection_send_window_bytes: IntGaugeVec,
    // The shard's data path.
    pub fanout_duration_seconds: HistogramVec,
    pub udp_datagrams_total: IntCounterVec,
    pub udp_syscalls_total: IntCounterVec,
    pub udp_oversized_datagrams_total: IntCounterVec,
    pub rx_batch_epochs_total: IntCounterVec,
    pub shard_cpu_seconds_total: CounterVec,
    pub h3_datagrams_dropped_total: IntCounterVec,
    pub h3_streams_refused_total: IntCounterVec,
    pub h3_protocol_errors_total: IntCounterVec,
    // Process.
    pub shards: IntGauge,
    pub capacity: IntGauge,
    pub draining: IntGauge,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let m = Self {
            meetings_active: gauge_vec(r, "mc_meetings_active", "Number of active meetings", &["shard"]),
            connections_active: gauge_vec(
                r,
                "mc_connections_active",
                "Number of active WebTransport connections",
                &["shard"],
            ),
            actor_mailbox_depth: gauge_vec(
                r,
                "mc_actor_mailbox_depth",
                "Messages waiting in actor mailboxes (cross-shard queues into a shard's meeting and connection actors)",
                &["actor_type", "shard"],
            ),
            messages_dropped_total: counter_vec(
                r,
                "mc_messages_dropped_total",
                "Messages dropped because a bounded mailbox or outbound queue was full",
                &["actor_type", "shard"],
            ),
            actor_panics_total: counter_vec(
                r,
                "mc_actor_panics_total",
                "Panics caught while an actor handled a message (the actor is ended, the shard continues)",
                &["actor_type", "shard"],
            ),
            message_processing_duration_seconds: histogram_vec(
                r,
                "mc_message_processing_duration_seconds",
                "Time to process one signaling message, from receipt to its fan-out being queued",
                &["shard"],
                PROCESSING_BUCKETS,
            ),
            gc_heartbeat_total: counter_vec(
                r,
                "mc_gc_heartbeat_total",
                "Heartbeats sent to the Global Controller, by outcome",
                &["status"],
            ),
            gc_registered: gauge(
                r,
                "mc_gc_registered",
                "1 while this MC is registered with the Global Controller, else 0",
            ),
            gc_registrations_total: counter_vec(
                r,
                "mc_gc_registrations_total",
                "Registration attempts with the Global Controller, by outcome",
                &["status"],
            ),
            gc_heartbeat_duration_seconds: histogram(
                r,
                "mc_gc_heartbeat_duration_seconds",
                "Round-trip time of heartbeats to the Global Controller",
                NETWORK_BUCKETS,
            ),
            meetings_migrated_total: counter_vec(
                r,
                "mc_meetings_migrated_total",
                "Meetings handed over to another MC (direction=out) or taken over from one (direction=in), by result",
                &["direction", "result"],
            ),
            meeting_handover_duration_seconds: histogram(
                r,
                "mc_meeting_handover_duration_seconds",
                "Time from freezing a meeting for a hand-over to the target MC accepting it",
                NETWORK_BUCKETS,
            ),
            webtransport_connections_total: counter_vec(
                r,
                "mc_webtransport_connections_total",
                "WebTransport connections by outcome (accepted, rejected, error)",
                &["status", "shard"],
            ),
            datagrams_forwarded_total: counter_vec(
                r,
                "mc_datagrams_forwarded_total",
                "UDP datagrams received on one shard and forwarded to the shard owning their connection",
                &["shard"],
            ),
            datagrams_forward_dropped_total: counter_vec(
                r,
                "mc_datagrams_forward_dropped_total",
                "Misrouted UDP datagrams dropped: the owner shard's queue was full, or they were too short to be a packet of ours",
                &["shard"],
            ),
            udp_send_errors_total: counter_vec(
                r,
                "mc_udp_send_errors_total",
                "UDP sends that failed (e.g. socket buffer full); QUIC retransmits",
                &["shard"],
            ),
            quic_retries_total: counter_vec(
                r,
                "mc_quic_retries_total",
                "Stateless Retry packets sent for address validation",
                &["shard"],
            ),
            handshake_duration_seconds: histogram_vec(
                r,
                "mc_quic_handshake_duration_seconds",
                "Time from a connection's first packet to its completed QUIC handshake",
                &["shard"],
                NETWORK_BUCKETS,
            ),
            session_joins_total: counter_vec(
                r,
                "mc_session_joins_total",
                "Join attempts by outcome (success, recovered, unauthorized, capacity, draining, invalid, rate_limited, error)",
                &["status", "shard"],
            ),
            session_join_duration_seconds: histogram_vec(
                r,
                "mc_session_join_duration_seconds",
                "Time from a WebTransport CONNECT to its JoinResponse being queued",
                &["shard"],
                NETWORK_BUCKETS,
            ),
            jwt_validations_total: counter_vec(
                r,
                "mc_jwt_validations_total",
                "Join token validations by result and precise failure reason",
                &["result", "failure_reason"],
            ),
            jwks_reloads_total: counter_vec(
                r,
                "mc_jwks_reloads_total",
                "Loads of the join-token signing keys (JWKS) by result: loaded (new keys), unchanged, failed (the previous keys stay in use)",
                &["result"],
            ),
            jwks_last_success_timestamp_seconds: gauge(
                r,
                "mc_jwks_last_success_timestamp_seconds",
                "Unix time of the last successful load of the join-token signing keys (changed or not); 0 before the first",
            ),
            client_messages_total: counter_vec(
                r,
                "mc_client_messages_total",
                "Signaling messages received from clients, by kind",
                &["kind", "shard"],
            ),
            sessions_closed_total: counter_vec(
                r,
                "mc_sessions_closed_total",
                "Signaling sessions closed by the MC, by close reason",
                &["reason", "shard"],
            ),
            refusals_total: counter_vec(
                r,
                "mc_refusals_total",
                "Requests refused by a limit, by reason",
                &["reason"],
            ),
            connection_receive_budget_bytes: gauge(
                r,
                "mc_connection_receive_budget_bytes",
                "Most bytes of received data one client connection can make the server hold (stream and connection windows, datagram queue, header and capsule buffers, the signaling session's undecoded bytes)",
            ),
            connection_send_window_bytes: gauge_vec(
                r,
                "mc_connection_send_window_bytes",
                "Send window of each connection of the shard: stream data QUIC may hold for one client, unsent or unacknowledged (MC_SEND_WINDOW_BYTES, halved while the shard's connections together would pass MC_SHARD_OUTBOUND_MAX_BYTES)",
                &["shard"],
            ),
            fanout_duration_seconds: histogram_vec(
                r,
                "mc_fanout_duration_seconds",
                "Time from a meeting handling a message to the last of this shard's recipients' packets being handed to the kernel",
                &["shard"],
                FANOUT_BUCKETS,
            ),
            udp_datagrams_total: counter_vec(
                r,
                "mc_udp_datagrams_total",
                "UDP datagrams received and sent by the shard's socket",
                &["direction", "shard"],
            ),
            udp_syscalls_total: counter_vec(
                r,
                "mc_udp_syscalls_total",
                "Batched socket calls (recvmmsg, sendmmsg) made by the shard",
                &["op", "shard"],
            ),
            udp_oversized_datagrams_total: counter_vec(
                r,
                "mc_udp_oversized_datagrams_total",
                "UDP datagrams longer than the 1472 bytes the server accepts, dropped as they were read",
                &["shard"],
            ),
            rx_batch_epochs_total: counter_vec(
                r,
                "mc_rx_batch_epochs_total",
                "Epochs of the shard's receive-pause trial (MC_RX_BATCH_US), by the way they ran: pausing before reading the socket, or reading at once",
                &["way", "shard"],
            ),
            shard_cpu_seconds_total: float_counter_vec(
                r,
                "mc_shard_cpu_seconds_total",
                "CPU time of the shard's thread, in user space and in the kernel (published about once a second)",
                &["mode", "shard"],
            ),
            h3_datagrams_dropped_total: counter_vec(
                r,
                "mc_h3_datagrams_dropped_total",
                "HTTP datagrams dropped because they named no session of their connection",
                &["shard"],
            ),
            h3_streams_refused_total: counter_vec(
                r,
                "mc_h3_streams_refused_total",
                "WebTransport streams refused because they named no live session",
                &["shard"],
            ),
            h3_protocol_errors_total: counter_vec(
                r,
                "mc_h3_protocol_errors_total",
                "Connections closed because the client broke the HTTP/3 or WebTransport rules",
                &["shard"],
            ),
            shards: gauge(r, "mc_shards", "Number of shards (pinned executors) serving traffic"),
            capacity: gauge(r, "mc_capacity", "Configured maximum concurrent meetings (MC_CAPACITY)"),
            draining: gauge(r, "mc_draining", "1 while the MC is draining (no new meetings admitted)"),
            build_info: gauge_vec(r, "mc_build_info", "Build information; the value is always 1", &["version"]),
            registry,
        };
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, …:
        // the standard process metrics, read at each scrape.
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(process::ProcessMetrics::default()))
            .expect("process metrics registered once");
        // Make the outcome series visible from the first scrape.
        for status in ["success", "error"] {
            m.gc_heartbeat_total.with_label_values(&[status]);
            m.gc_registrations_total.with_label_values(&[status]);
        }
        m.jwt_validations_total
            .with_label_values(&["success", "none"]);
        for result in JWKS_RELOADS {
            m.jwks_reloads_total.with_label_values(&[result]);
        }
        for result in MIGRATED_OUT {
            m.meetings_migrated_total
                .with_label_values(&["out", result]);
        }
        for result in MIGRATED_IN {
            m.meetings_migrated_total.with_label_values(&["in", result]);
        }
        // The control plane's own reasons, then every shard's.
        for reason in ["admin_connections", "admin_evicted"]
            .iter()
            .chain(SHARD_REFUSALS)
        {
            m.refusals_total.with_label_values(&[reason]);
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail except on a malformed family, which would be a
        // bug in this file; an empty body is the safe answer then.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One shard's children, looked up once when the shard starts; the shard never looks
/// a label up on the message path.
#[derive(Clone)]
pub struct ShardMetrics {
    pub meetings_active: IntGauge,
    pub connections_active: IntGauge,
    pub send_window: IntGauge,
    pub mailbox_depth_meeting: IntGauge,
    pub mailbox_depth_connection: IntGauge,
    pub dropped_meeting: IntCounter,
    pub dropped_connection: IntCounter,
    pub panics_meeting: IntCounter,
    pub panics_connection: IntCounter,
    pub message_processing: Histogram,
    pub fanout_duration: Histogram,
    pub wt_accepted: IntCounter,
    pub wt_rejected: IntCounter,
    pub wt_error: IntCounter,
    pub datagrams_forwarded: IntCounter,
    pub datagrams_forward_dropped: IntCounter,
    pub udp_send_errors: IntCounter,
    pub udp_datagrams_in: IntCounter,
    pub udp_datagrams_out: IntCounter,
    pub udp_recv_calls: IntCounter,
    pub udp_send_calls: IntCounter,
    pub udp_oversized: IntCounter,
    pub rx_batch_epochs_at_once: IntCounter,
    pub rx_batch_epochs_pausing: IntCounter,
    pub cpu_user: Counter,
    pub cpu_system: Counter,
    pub h3_datagrams_dropped: IntCounter,
    pub h3_streams_refused: IntCounter,
    pub h3_protocol_errors: IntCounter,
    pub quic_retries: IntCounter,
    pub handshake_duration: Histogram,
    pub join_duration: Histogram,
    joins: Vec<(&'static str, IntCounter)>,
    client_kinds: Vec<(&'static str, IntCounter)>,
    closed: Vec<(&'static str, IntCounter)>,
    refusals: Vec<(&'static str, IntCounter)>,
    shard: String,
    all: Metrics,
}

/// `mc_session_joins_total` statuses.
const JOIN_STATUSES: &[&str] = &[
    "success",
    "recovered",
    "unauthorized",
    "capacity",
    "draining",
    "invalid",
    "rate_limited",
    "error",
];
/// `mc_client_messages_total` kinds.
const CLIENT_KINDS: &[&str] = &[
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
];
/// `mc_jwks_reloads_total` results.
pub const JWKS_RELOADS: [&str; 3] = ["loaded", "unchanged", "failed"];

/// `mc_refusals_total` reasons a shard counts.
const SHARD_REFUSALS: &[&str] = &[
    "max_sessions_per_ip",
    "max_sessions_per_shard",
    "max_handshakes_per_shard",
    "handshake_timeout",
    "connect_timeout",
    "join_timeout",
    "receive_budget",
    "too_many_requests",
    "outbound_budget",
    "meeting_rate",
    "join_rate",
    "recovery_rate",
];

impl Metrics {
    /// Publishes the join-token key refresher's counters (it hands over its running
    /// totals after each load): `mc_jwks_reloads_total{result}` and, after a success,
    /// `mc_jwks_last_success_timestamp_seconds`.
    pub fn jwks_reporter(&self) -> impl FnMut(RefreshStats) + Send + 'static {
        let reloads = self.jwks_reloads_total.clone();
        let last_success = self.jwks_last_success_timestamp_seconds.clone();
        let mut seen = RefreshStats::default();
        move |now: RefreshStats| {
            let deltas = [
                ("loaded", now.loads.saturating_sub(seen.loads)),
                ("unchanged", now.unchanged.saturating_sub(seen.unchanged)),
                ("failed", now.failures.saturating_sub(seen.failures)),
            ];
            for (result, n) in deltas {
                reloads.with_label_values(&[result]).inc_by(n);
            }
            if deltas[0].1 + deltas[1].1 > 0 {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                last_success.set(i64::try_from(unix).unwrap_or(i64::MAX));
            }
            seen = now;
        }
    }
}

impl ShardMetrics {
    pub fn new(m: &Metrics, shard: u16) -> Self {
        let s = shard.to_string();
        let s = s.as_str();
        let children = |family: &IntCounterVec, labels: &[&'static str]| {
            labels
                .iter()
                .map(|l| (*l, family.with_label_values(&[l, s])))
                .collect::<Vec<_>>()
        };
        Self {
            meetings_active: m.meetings_active.with_label_values(&[s]),
            connections_active: m.connections_active.with_label_values(&[s]),
            send_window: m.connection_send_window_bytes.with_label_values(&[s]),
            mailbox_depth_meeting: m.actor_mailbox_depth.with_label_values(&["meeting", s]),
            mailbox_depth_connection: m.actor_mailbox_depth.with_label_values(&["connection", s]),
            dropped_meeting: m.messages_dropped_total.with_label_values(&["meeting", s]),
            dropped_connection: m
                .messages_dropped_total
                .with_label_values(&["connection", s]),
            panics_meeting: m.actor_panics_total.with_label_values(&["meeting", s]),
            panics_connection: m.actor_panics_total.with_label_values(&["connection", s]),
            message_processing: m
                .message_processing_duration_seconds
                .with_label_values(&[s]),
            fanout_duration: m.fanout_duration_seconds.with_label_values(&[s]),
            wt_accepted: m
                .webtransport_connections_total
                .with_label_values(&["accepted", s]),
            wt_rejected: m
                .webtransport_connections_total
                .with_label_values(&["rejected", s]),
            wt_error: m
                .webtransport_connections_total
                .with_label_values(&["error", s]),
            datagrams_forwarded: m.datagrams_forwarded_total.with_label_values(&[s]),
            datagrams_forward_dropped: m.datagrams_forward_dropped_total.with_label_values(&[s]),
            udp_send_errors: m.udp_send_errors_total.with_label_values(&[s]),
            udp_datagrams_in: m.udp_datagrams_total.with_label_values(&["in", s]),
            udp_datagrams_out: m.udp_datagrams_total.with_label_values(&["out", s]),
            udp_recv_calls: m.udp_syscalls_total.with_label_values(&["recvmmsg", s]),
            udp_send_calls: m.udp_syscalls_total.with_label_values(&["sendmmsg", s]),
            udp_oversized: m.udp_oversized_datagrams_total.with_label_values(&[s]),
            rx_batch_epochs_at_once: m.rx_batch_epochs_total.with_label_values(&["at_once", s]),
            rx_batch_epochs_pausing: m.rx_batch_epochs_total.with_label_values(&["pausing", s]),
            cpu_user: m.shard_cpu_seconds_total.with_label_values(&["user", s]),
            cpu_system: m.shard_cpu_seconds_total.with_label_values(&["system", s]),
            h3_datagrams_dropped: m.h3_datagrams_dropped_total.with_label_values(&[s]),
            h3_streams_refused: m.h3_streams_refused_total.with_label_values(&[s]),
            h3_protocol_errors: m.h3_protocol_errors_total.with_label_values(&[s]),
            quic_retries: m.quic_retries_total.with_label_values(&[s]),
            handshake_duration: m.handshake_duration_seconds.with_label_values(&[s]),
            join_duration: m.session_join_duration_seconds.with_label_values(&[s]),
            joins: children(&m.session_joins_total, JOIN_STATUSES),
            client_kinds: children(&m.client_messages_total, CLIENT_KINDS),
            closed: children(&m.sessions_closed_total, &["normal"]),
            refusals: SHARD_REFUSALS
                .iter()
                .map(|r| (*r, m.refusals_total.with_label_values(&[r])))
                .collect(),
            shard: s.to_string(),
            all: m.clone(),
        }
    }

    /// `mc_session_joins_total{status}`.
    pub fn join(&self, status: &'static str) {
        if let Some((_, c)) = self.joins.iter().find(|(l, _)| *l == status) {
            c.inc();
        }
    }

    /// `mc_client_messages_total{kind}`.
    pub fn client_message(&self, kind: &'static str) {
        if let Some((_, c)) = self.client_kinds.iter().find(|(l, _)| *l == kind) {
            c.inc();
        }
    }

    /// `mc_refusals_total{reason}` for the limits a shard enforces.
    pub fn refusal(&self, reason: &'static str) {
        self.refusals_by(reason, 1);
    }

    /// `mc_refusals_total{reason}` raised by `n` (refusals counted in the data path and
    /// published with the shard's other counters).
    pub fn refusals_by(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        match self.refusals.iter().find(|(l, _)| *l == reason) {
            Some((_, c)) => c.inc_by(n),
            None => self
                .all
                .refusals_total
                .with_label_values(&[reason])
                .inc_by(n),
        }
    }

    /// `mc_sessions_closed_total{reason}` (once per session; new reasons are looked up
    /// the first time they occur).
    pub fn session_closed(&mut self, reason: &'static str) {
        if let Some((_, c)) = self.closed.iter().find(|(l, _)| *l == reason) {
            return c.inc();
        }
        let c = self
            .all
            .sessions_closed_total
            .with_label_values(&[reason, &self.shard]);
        c.inc();
        self.closed.push((reason, c));
    }

    /// `mc_jwt_validations_total{result, failure_reason}` (once per join).
    pub fn jwt(&self, result: &str, reason: &str) {
        self.all
            .jwt_validations_total
            .with_label_values(&[result, reason])
            .inc();
    }
}

/// CPU time of the process and of a thread, to the microsecond.
#[cfg(target_os = "linux")]
pub mod process {
    use prometheus::core::{Collector, Desc};
    use prometheus::process_collector::ProcessCollector;
    use prometheus::proto::{Counter, MetricFamily};

    const CPU_SECONDS: &str = "process_cpu_seconds_total";

    /// The standard `process_*` metrics of the prometheus crate's process collector,
    /// with `process_cpu_seconds_total` to the microsecond.
    ///
    /// The crate's collector reads the CPU time from `/proc/self/stat` and divides the
    /// clock ticks by the tick rate in integers, so its counter moves in whole seconds:
    /// over a ten-second window it is good only to a tenth of a core (a server at a
    /// twentieth can read as none), and a `rate()` over a minute to a sixtieth. The Prometheus
    /// convention (and its Go client) is seconds as a float; this collector keeps
    /// everything the crate exports and overwrites that one value with `getrusage`'s user +
    /// system time of the whole process, which is the same clock `/proc` reads, in
    /// microseconds.
    pub struct ProcessMetrics {
        inner: ProcessCollector,
    }

    impl Default for ProcessMetrics {
        fn default() -> Self {
            Self {
                inner: ProcessCollector::for_self(),
            }
        }
    }

    impl Collector for ProcessMetrics {
        fn desc(&self) -> Vec<&Desc> {
            self.inner.desc()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let mut families = self.inner.collect();
            let Some(seconds) = cpu_seconds() else {
                return families;
            };
            for family in families.iter_mut().filter(|f| f.name() == CPU_SECONDS) {
                for metric in family.mut_metric() {
                    let mut counter = Counter::default();
                    counter.set_value(seconds);
                    metric.set_counter(counter);
                }
            }
            families
        }
    }

    /// User + system CPU time of every thread of this process, live and exited.
    pub fn cpu_seconds() -> Option<f64> {
        let [user, system] = rusage(libc::RUSAGE_SELF)?;
        Some((user + system) as f64 / 1e6)
    }

    /// The calling thread's CPU time in microseconds: user space, kernel.
    pub fn thread_cpu_micros() -> Option<[u64; 2]> {
        rusage(libc::RUSAGE_THREAD)
    }

    fn rusage(who: libc::c_int) -> Option<[u64; 2]> {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage writes a complete rusage into the pointer it is given, which
        // points at space for one; it is read only when the call succeeded.
        let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: the call succeeded, so the rusage is initialised.
        let ru = unsafe { ru.assume_init() };
        // Whole microseconds, so that a value prints as it was measured.
        let micros = |t: libc::timeval| (t.tv_sec * 1_000_000 + t.tv_usec).max(0) as u64;
        Some([micros(ru.ru_utime), micros(ru.ru_stime)])
    }
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid gauge");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge vec");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter vec");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

fn float_counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(name, help), labels).expect("valid counter vec");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

/// Raise `counter` to `micros` microseconds, in seconds. Its value then prints as the
/// microseconds it was set from, with none of the float error a sum of increments
/// gathers (only this counter's one writer sets it, so it never runs ahead).
pub fn raise_to_micros(counter: &Counter, micros: u64) {
    let target = micros as f64 / 1e6;
    let now = counter.get();
    if target > now {
        counter.inc_by(target - now);
    }
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid histogram");
    r.register(Box::new(h.clone())).expect("unique metric name");
    h
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid histogram vec");
    r.register(Box::new(h.clone())).expect("unique metric name");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the unlabelled series `name` in an exposition.
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_counter_raised_to_microseconds_prints_them_and_never_falls() {
        let c = Counter::new("c", "c").unwrap();
        raise_to_micros(&c, 1_234_567);
        assert_eq!(c.get().to_string(), "1.234567");
        raise_to_micros(&c, 1_000_000);
        assert_eq!(c.get().to_string(), "1.234567");
        raise_to_micros(&c, 2_000_001);
        assert_eq!(c.get().to_string(), "2.000001");
        raise_to_micros(&c, 987_654_321_012);
        assert_eq!(c.get().to_string(), "987654.321012");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_cpu_is_its_own() {
        // 50 ms of CPU on a thread of its own: that thread's clock shows it, this
        // thread's does not.
        let here = process::thread_cpu_micros().unwrap();
        let busy = std::thread::spawn(|| {
            let start = process::thread_cpu_micros().unwrap();
            let total = |t: [u64; 2]| t[0] + t[1];
            while total(process::thread_cpu_micros().unwrap()) - total(start) < 50_000 {}
            total(process::thread_cpu_micros().unwrap())
        })
        .join()
        .unwrap();
        let after = process::thread_cpu_micros().unwrap();
        assert!(busy >= 50_000, "{busy}");
        assert!(
            after[0] + after[1] - here[0] - here[1] < 25_000,
            "this thread's CPU rose from {here:?} to {after:?} while another spun"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_cpu_seconds_count_fractions_of_a_second() {
        let m = Metrics::new();
        let scrape = || {
            sample(
                &String::from_utf8(m.encode()).unwrap(),
                "process_cpu_seconds_total",
            )
        };
        let before = scrape();
        // 50 ms of CPU: a counter in whole seconds would move by 0 or 1.
        let start = process::cpu_seconds().unwrap();
        while process::cpu_seconds().unwrap() - start < 0.05 {}
        let after = scrape();
        let moved = after - before;
        assert!(
            (0.05..0.9).contains(&moved),
            "process_cpu_seconds_total went from {before} to {after} over 50 ms of CPU"
        );
    }

    /// The refresher's running totals become counter increments; the last success's
    /// time is set only by a load that succeeded.
    #[test]
    fn jwks_loads_are_counted_by_result_and_a_success_is_timed() {
        let m = Metrics::new();
        let mut report = m.jwks_reporter();
        let count = |r: &str| m.jwks_reloads_total.with_label_values(&[r]).get();
        report(RefreshStats {
            loads: 1,
            unchanged: 0,
            failures: 0,
        });
        let first = m.jwks_last_success_timestamp_seconds.get();
        assert!(first > 1_700_000_000, "a unix time: {first}");
        m.jwks_last_success_timestamp_seconds.set(1);
        report(RefreshStats {
            loads: 1,
            unchanged: 0,
            failures: 2,
        });
        assert_eq!(
            m.jwks_last_success_timestamp_seconds.get(),
            1,
            "failures only"
        );
        report(RefreshStats {
            loads: 1,
            unchanged: 3,
            failures: 2,
        });
        assert_eq!(
            (count("loaded"), count("unchanged"), count("failed")),
            (1, 3, 2)
        );
        assert!(m.jwks_last_success_timestamp_seconds.get() > 1);
    }

    #[test]
    fn runbook_metrics_are_exported_with_shard_labels() {
        let m = Metrics::new();
        let _ = ShardMetrics::new(&m, 0);
        let text = String::from_utf8(m.encode()).unwrap();
        for name in [
            "# HELP mc_meetings_active Number of active meetings",
            "# TYPE mc_meetings_active gauge",
            "# HELP mc_connections_active Number of active WebTransport connections",
            "mc_meetings_active{shard=\"0\"} 0",
            "mc_actor_mailbox_depth{actor_type=\"meeting\",shard=\"0\"} 0",
            "mc_messages_dropped_total{actor_type=\"meeting\",shard=\"0\"} 0",
            "mc_actor_panics_total{actor_type=\"meeting\",shard=\"0\"} 0",
            "# TYPE mc_shard_cpu_seconds_total counter",
            "mc_shard_cpu_seconds_total{mode=\"system\",shard=\"0\"} 0",
            "mc_message_processing_duration_seconds_bucket",
            "mc_gc_heartbeat_total{status=\"success\"} 0",
            "mc_gc_heartbeat_total{status=\"error\"} 0",
            "# TYPE process_cpu_seconds_total counter",
            "process_resident_memory_bytes",
            "mc_meetings_migrated_total{direction=\"out\",result=\"failed\"} 0",
            "mc_meetings_migrated_total{direction=\"in\",result=\"unauthorized\"} 0",
            "# TYPE mc_meeting_handover_duration_seconds histogram",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }
}

//! Every Prometheus metric the service exports, registered once in one registry.
//!
//! Names and help texts follow `runbook/mc-deployment.md`. Series produced on a shard
//! carry a `shard` label; a shard looks its children up once ([`ShardMetrics`]) and
//! never by label on the message path. Control-plane series (GC client) have no shard.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for per-message processing: tens of microseconds up to the 500 ms SLO and
/// beyond, so both the normal case and an SLO breach are visible.
pub const PROCESSING_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets for handshakes, joins and GC round trips: 100 µs to 10 s.
pub const NETWORK_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
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
    pub client_messages_total: IntCounterVec,
    pub sessions_closed_total: IntCounterVec,
    // Limits and refusals.
    pub refusals_total: IntCounterVec,
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
                "Misrouted UDP datagrams dropped because the owner shard's queue was full",
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
                "Join attempts by outcome (success, recovered, unauthorized, capacity, draining, invalid, error)",
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
            shards: gauge(r, "mc_shards", "Number of shards (pinned executors) serving traffic"),
            capacity: gauge(r, "mc_capacity", "Configured maximum concurrent meetings (MC_CAPACITY)"),
            draining: gauge(r, "mc_draining", "1 while the MC is draining (no new meetings admitted)"),
            build_info: gauge_vec(r, "mc_build_info", "Build information; the value is always 1", &["version"]),
            registry,
        };
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, …:
        // the standard process metrics, read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics registered once");
        // Make the outcome series visible from the first scrape.
        for status in ["success", "error"] {
            m.gc_heartbeat_total.with_label_values(&[status]);
            m.gc_registrations_total.with_label_values(&[status]);
        }
        m.jwt_validations_total
            .with_label_values(&["success", "none"]);
        m.refusals_total.with_label_values(&["admin_connections"]);
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

/// One shard's children, looked up once when the shard starts.
#[derive(Clone)]
pub struct ShardMetrics {
    pub meetings_active: IntGauge,
    pub connections_active: IntGauge,
    pub mailbox_depth_meeting: IntGauge,
    pub mailbox_depth_connection: IntGauge,
    pub dropped_meeting: IntCounter,
    pub dropped_connection: IntCounter,
    pub panics_meeting: IntCounter,
    pub panics_connection: IntCounter,
    pub message_processing: Histogram,
    pub wt_accepted: IntCounter,
    pub wt_rejected: IntCounter,
    pub wt_error: IntCounter,
    pub datagrams_forwarded: IntCounter,
    pub datagrams_forward_dropped: IntCounter,
    pub udp_send_errors: IntCounter,
    pub refused_sessions: IntCounter,
    pub refused_handshakes: IntCounter,
    pub quic_retries: IntCounter,
    pub handshake_duration: Histogram,
    pub join_duration: Histogram,
}

impl ShardMetrics {
    pub fn new(m: &Metrics, shard: u16) -> Self {
        let s = shard.to_string();
        let s = s.as_str();
        Self {
            meetings_active: m.meetings_active.with_label_values(&[s]),
            connections_active: m.connections_active.with_label_values(&[s]),
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
            refused_sessions: m
                .refusals_total
                .with_label_values(&["max_sessions_per_shard"]),
            refused_handshakes: m
                .refusals_total
                .with_label_values(&["max_handshakes_per_shard"]),
            quic_retries: m.quic_retries_total.with_label_values(&[s]),
            handshake_duration: m.handshake_duration_seconds.with_label_values(&[s]),
            join_duration: {
                m.sessions_closed_total.with_label_values(&["normal", s]);
                m.session_join_duration_seconds.with_label_values(&[s])
            },
        }
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
            "mc_message_processing_duration_seconds_bucket",
            "mc_gc_heartbeat_total{status=\"success\"} 0",
            "mc_gc_heartbeat_total{status=\"error\"} 0",
            "# TYPE process_cpu_seconds_total counter",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }
}

//! A shard's counters: plain numbers in the data path, copied to Prometheus about once
//! a second and on every control ping (stats in the core, metrics at the edge).

use std::time::Instant;

use crate::h3::H3Stats;
use crate::quic::endpoint::ShardStats;
use crate::router::{ShardLoad, LANES, LANE_MEETING};

use super::{Shard, PUBLISH_EVERY};

/// Counters as last copied to Prometheus (stats in the core, metrics at the edge).
#[derive(Default)]
pub(super) struct Published {
    pub(super) quic: ShardStats,
    pub(super) h3: H3Stats,
    /// Epochs of the receive-pause trial: reading at once, pausing.
    pub(super) rx_epochs: [u64; 2],
}

pub(super) fn add_h3(total: &mut H3Stats, s: H3Stats) {
    total.datagrams_unknown_session += s.datagrams_unknown_session;
    total.streams_rejected += s.streams_rejected;
    total.connect_timeouts += s.connect_timeouts;
    total.protocol_errors += s.protocol_errors;
    total.requests_refused += s.requests_refused;
    total.too_many_requests += s.too_many_requests;
}

impl Shard {
    /// Copy the plain counters to Prometheus (once per control ping, not per datagram).
    pub(super) fn publish_stats(&mut self) {
        self.next_publish = Instant::now() + PUBLISH_EVERY;
        let m = &self.env.metrics;
        let now = self.quic.stats();
        let was = std::mem::replace(&mut self.published.quic, now);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        m.datagrams_forwarded
            .inc_by(d(now.forwarded_out, was.forwarded_out));
        m.datagrams_forward_dropped
            .inc_by(d(now.forward_dropped, was.forward_dropped));
        m.udp_oversized.inc_by(d(now.oversized, was.oversized));
        m.udp_send_errors
            .inc_by(d(now.send_errors, was.send_errors));
        m.udp_datagrams_in
            .inc_by(d(now.datagrams_in, was.datagrams_in));
        m.udp_datagrams_out
            .inc_by(d(now.datagrams_out, was.datagrams_out));
        m.udp_recv_calls.inc_by(d(now.recv_calls, was.recv_calls));
        m.udp_send_calls.inc_by(d(now.send_calls, was.send_calls));
        m.send_window
            .set(i64::try_from(self.conns.send_window()).unwrap_or(i64::MAX));
        let epochs = self.batch.epochs();
        let was = std::mem::replace(&mut self.published.rx_epochs, epochs);
        m.rx_batch_epochs_at_once.inc_by(d(epochs[0], was[0]));
        m.rx_batch_epochs_pausing.inc_by(d(epochs[1], was[1]));
        // Read on the shard's own thread: the CPU of this shard alone.
        if let Some([user, system]) = crate::metrics::process::thread_cpu_micros() {
            crate::metrics::raise_to_micros(&m.cpu_user, user);
            crate::metrics::raise_to_micros(&m.cpu_system, system);
        }
        let mut h3 = self.h3_gone;
        for handle in self.conns.handles().collect::<Vec<_>>() {
            if let Some(c) = self.conns.get_mut(handle) {
                add_h3(&mut h3, c.h3.stats());
            }
        }
        let was = std::mem::replace(&mut self.published.h3, h3);
        let m = &self.env.metrics;
        m.h3_datagrams_dropped.inc_by(d(
            h3.datagrams_unknown_session,
            was.datagrams_unknown_session,
        ));
        m.h3_streams_refused
            .inc_by(d(h3.streams_rejected, was.streams_rejected));
        m.h3_protocol_errors
            .inc_by(d(h3.protocol_errors, was.protocol_errors));
        m.refusals_by(
            "too_many_requests",
            d(h3.too_many_requests, was.too_many_requests),
        );
    }

    /// Messages parked per destination and lane: the router's, and disconnects waiting
    /// on this shard with the meetings' lane.
    fn parked(&self) -> Vec<[u32; LANES]> {
        let mut parked = self.router.parked();
        for (lanes, waiting) in parked.iter_mut().zip(self.waiting.per_shard()) {
            let lane = &mut lanes[usize::from(LANE_MEETING.0)];
            *lane = lane.saturating_add(u32::try_from(waiting).unwrap_or(u32::MAX));
        }
        parked
    }

    /// What the control plane's pings learn of this shard.
    pub(super) fn load(&self) -> ShardLoad {
        ShardLoad {
            meetings: self.meetings.len() as u64,
            connections: self.conns.len() as u64,
            participants: self.meetings.participants() as u64,
            parked: self.parked(),
        }
    }
}

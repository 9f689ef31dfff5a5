//! Measurement: counters, latency histograms and the live progress line.
//!
//! Session tasks record into a local [`Recorder`] (no sharing per sample) and merge it into
//! the shared [`Stats`] in batches (every [`FLUSH_EVERY`] or when they end), so the only
//! lock is taken a few times per second per task, never per message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How often a task merges its local recorder into the shared stats.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Highest latency tracked: 60 s, in microseconds.
const MAX_US: u64 = 60_000_000;

/// The latencies the scenarios measure (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lat {
    /// Echo round trip on a bidi stream.
    Rtt = 0,
    /// Echo round trip of a datagram.
    Datagram,
    /// QUIC handshake + WebTransport CONNECT.
    Connect,
    /// JoinRequest sent → JoinResponse received.
    Join,
    /// Sender's request → a receiver's notification (one sample per receiver).
    Fanout,
    /// UpdateLayout → StreamAssignments at the sender.
    Layout,
    /// A whole session setup: QUIC handshake + CONNECT + the first echo round trip
    /// (`connect --echo-bytes`).
    Setup,
}

/// Every latency, in report order.
pub const ALL_LAT: [Lat; 7] = [
    Lat::Rtt,
    Lat::Datagram,
    Lat::Connect,
    Lat::Join,
    Lat::Fanout,
    Lat::Layout,
    Lat::Setup,
];

impl Lat {
    /// Name used in the table, JSON keys and .hgrm file names.
    pub fn name(self) -> &'static str {
        match self {
            Lat::Rtt => "rtt",
            Lat::Datagram => "datagram_rtt",
            Lat::Connect => "connect",
            Lat::Join => "join",
            Lat::Fanout => "fanout",
            Lat::Layout => "layout",
            Lat::Setup => "setup",
        }
    }
}

/// Plain counters kept by every scenario (those that stay 0 are left out of reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages (or requests) sent.
    Sent = 0,
    /// Round trips / requests completed.
    Completed,
    /// Echo replies whose bytes differ from what was sent.
    Mismatch,
    DatagramsSent,
    DatagramsReceived,
    SessionsOk,
    SessionsFailed,
    JoinsOk,
    JoinsFailed,
    /// Notifications that should arrive (sender messages × receivers).
    Expected,
    /// Notifications that arrived in order.
    Delivered,
    /// Notifications that never arrived.
    Missing,
    /// Notifications that arrived out of order per sender (docs/protocol.md rule 14).
    OutOfOrder,
    /// Notifications that arrived twice or were never sent.
    Unexpected,
    /// Open-loop sends skipped because the in-flight bound was reached.
    Backlogged,
    /// Sessions closed by the server or the network mid-run.
    SessionsLost,
    /// Echo requests never answered before the drain timeout.
    Unanswered,
    /// Other participants a participant never learned of (JoinResponse
    /// existing_participants ∪ ParticipantJoined), checked at the end of the drain.
    RosterMissing,
}

/// Every counter, in report order.
pub const ALL_COUNTERS: [Counter; 18] = [
    Counter::Sent,
    Counter::Completed,
    Counter::Mismatch,
    Counter::DatagramsSent,
    Counter::DatagramsReceived,
    Counter::SessionsOk,
    Counter::SessionsFailed,
    Counter::JoinsOk,
    Counter::JoinsFailed,
    Counter::Expected,
    Counter::Delivered,
    Counter::Missing,
    Counter::OutOfOrder,
    Counter::Unexpected,
    Counter::Backlogged,
    Counter::SessionsLost,
    Counter::Unanswered,
    Counter::RosterMissing,
];

impl Counter {
    pub fn name(self) -> &'static str {
        match self {
            Counter::Sent => "sent",
            Counter::Completed => "completed",
            Counter::Mismatch => "echo_mismatch",
            Counter::DatagramsSent => "datagrams_sent",
            Counter::DatagramsReceived => "datagrams_received",
            Counter::SessionsOk => "sessions_ok",
            Counter::SessionsFailed => "sessions_failed",
            Counter::JoinsOk => "joins_ok",
            Counter::JoinsFailed => "joins_failed",
            Counter::Expected => "notifications_expected",
            Counter::Delivered => "notifications_delivered",
            Counter::Missing => "notifications_missing",
            Counter::OutOfOrder => "notifications_out_of_order",
            Counter::Unexpected => "notifications_unexpected",
            Counter::Backlogged => "open_loop_backlogged",
            Counter::SessionsLost => "sessions_lost",
            Counter::Unanswered => "echo_unanswered",
            Counter::RosterMissing => "roster_missing",
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // 3 significant figures over 1 µs..60 s: bounds are constants, creation cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Microseconds between two instants, clamped into the histogram's range.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// A task-local recorder.
pub struct Recorder {
    hists: Vec<Histogram<u64>>,
    counts: [u64; ALL_COUNTERS.len()],
    last_flush: Instant,
    dirty: bool,
}

impl Recorder {
    pub fn new(now: Instant) -> Self {
        Self {
            hists: ALL_LAT.iter().map(|_| new_hist()).collect(),
            counts: [0; ALL_COUNTERS.len()],
            last_flush: now,
            dirty: false,
        }
    }

    /// Records one latency sample.
    pub fn record(&mut self, lat: Lat, d: Duration) {
        if let Some(h) = self.hists.get_mut(lat as usize) {
            h.saturating_record(micros(d));
            self.dirty = true;
        }
    }

    /// Adds to a counter.
    pub fn add(&mut self, c: Counter, n: u64) {
        if let Some(v) = self.counts.get_mut(c as usize) {
            *v += n;
            self.dirty = true;
        }
    }

    /// Merges into `stats` when [`FLUSH_EVERY`] has passed since the last merge.
    pub fn maybe_flush(&mut self, stats: &Stats, now: Instant) {
        if now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY {
            self.flush(stats, now);
        }
    }

    /// Merges into `stats` and resets.
    pub fn flush(&mut self, stats: &Stats, now: Instant) {
        self.last_flush = now;
        if !self.dirty {
            return;
        }
        self.dirty = false;
        for (i, v) in self.counts.iter_mut().enumerate() {
            if *v > 0 {
                if let Some(a) = stats.counters.get(i) {
                    a.fetch_add(*v, Ordering::Relaxed);
                }
                *v = 0;
            }
        }
        if self.hists.iter().all(|h| h.is_empty()) {
            return;
        }
        if let Ok(mut g) = stats.hists.lock() {
            for (i, h) in self.hists.iter_mut().enumerate() {
                if h.is_empty() {
                    continue;
                }
                if let Some(t) = g.total.get_mut(i) {
                    let _ = t.add(&*h);
                }
                if let Some(t) = g.interval.get_mut(i) {
                    let _ = t.add(&*h);
                }
                h.reset();
            }
        }
    }
}

struct Hists {
    total: Vec<Histogram<u64>>,
    interval: Vec<Histogram<u64>>,
}

/// Shared, merged measurements of one run (or one ramp step).
pub struct Stats {
    counters: Vec<AtomicU64>,
    hists: Mutex<Hists>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Sessions currently established.
    pub live_sessions: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            counters: ALL_COUNTERS.iter().map(|_| AtomicU64::new(0)).collect(),
            hists: Mutex::new(Hists {
                total: ALL_LAT.iter().map(|_| new_hist()).collect(),
                interval: ALL_LAT.iter().map(|_| new_hist()).collect(),
            }),
            errors: Mutex::new(BTreeMap::new()),
            live_sessions: AtomicU64::new(0),
        }
    }

    /// Counts an error by a short code (e.g. `connect:timeout`, `server:UNAUTHORIZED`).
    /// Errors are rare, so a lock here is fine.
    pub fn error(&self, code: impl Into<String>) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code.into()).or_insert(0) += 1;
        }
    }

    pub fn add(&self, c: Counter, n: u64) {
        if let Some(a) = self.counters.get(c as usize) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counters
            .get(c as usize)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn error_total(&self) -> u64 {
        self.errors().values().sum()
    }

    /// A copy of the total histogram of `lat`.
    pub fn histogram(&self, lat: Lat) -> Histogram<u64> {
        self.hists
            .lock()
            .ok()
            .and_then(|g| g.total.get(lat as usize).cloned())
            .unwrap_or_else(new_hist)
    }

    /// Forgets the samples of `lat` so far (the end of a warm-up).
    pub fn reset_latency(&self, lat: Lat) {
        if let Ok(mut g) = self.hists.lock() {
            if let Some(h) = g.total.get_mut(lat as usize) {
                h.reset();
            }
        }
    }

    /// Takes and resets the interval histogram of `lat`.
    pub fn take_interval(&self, lat: Lat) -> Histogram<u64> {
        let mut out = new_hist();
        if let Ok(mut g) = self.hists.lock() {
            if let Some(h) = g.interval.get_mut(lat as usize) {
                let _ = out.add(&*h);
                h.reset();
            }
        }
        out
    }
}

/// State of the live progress line: prints rate and interval percentiles.
pub struct Progress {
    started: Instant,
    last: Instant,
    last_count: u64,
    primary: Lat,
    count: Counter,
}

impl Progress {
    /// `primary` is the latency shown, `count` the counter whose rate is shown.
    pub fn new(now: Instant, primary: Lat, count: Counter) -> Self {
        Self {
            started: now,
            last: now,
            last_count: 0,
            primary,
            count,
        }
    }

    /// One progress line for the interval ending at `now`.
    pub fn line(&mut self, stats: &Stats, now: Instant) -> String {
        let c = stats.get(self.count);
        let dt = now
            .saturating_duration_since(self.last)
            .as_secs_f64()
            .max(1e-6);
        let rate = (c.saturating_sub(self.last_count)) as f64 / dt;
        self.last = now;
        self.last_count = c;
        let h = stats.take_interval(self.primary);
        let (p50, p99) = if h.is_empty() {
            (0.0, 0.0)
        } else {
            (
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
            )
        };
        format!(
            "[{:>6.1}s] sessions {:>6}  {} {:>10.1}/s  {} p50 {:>8.2} ms p99 {:>8.2} ms  errors {}",
            now.saturating_duration_since(self.started).as_secs_f64(),
            stats.live_sessions.load(Ordering::Relaxed),
            self.count.name(),
            rate,
            self.primary.name(),
            p50,
            p99,
            stats.error_total()
                + stats.get(Counter::Mismatch)
                + stats.get(Counter::SessionsFailed)
                + stats.get(Counter::JoinsFailed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_batches_into_stats() {
        let base = Instant::now();
        let stats = Stats::new();
        let mut r = Recorder::new(base);
        for ms in 1..=100u64 {
            r.record(Lat::Rtt, Duration::from_millis(ms));
            r.add(Counter::Completed, 1);
        }
        r.maybe_flush(&stats, base + Duration::from_millis(10));
        assert_eq!(stats.get(Counter::Completed), 0, "not yet due");
        r.maybe_flush(&stats, base + FLUSH_EVERY);
        assert_eq!(stats.get(Counter::Completed), 100);
        let h = stats.histogram(Lat::Rtt);
        assert_eq!(h.len(), 100);
        let p50 = h.value_at_quantile(0.5);
        assert!((49_000..=51_000).contains(&p50), "{p50}");
        let mut p = Progress::new(base, Lat::Rtt, Counter::Completed);
        let line = p.line(&stats, base + Duration::from_secs(1));
        assert!(line.contains("completed      100.0/s"), "{line}");
        assert!(
            stats.take_interval(Lat::Rtt).is_empty(),
            "interval was reset"
        );
        assert_eq!(stats.histogram(Lat::Rtt).len(), 100, "total kept");
    }

    #[test]
    fn errors_count_by_code() {
        let s = Stats::new();
        s.error("server:UNAUTHORIZED");
        s.error("server:UNAUTHORIZED");
        s.error("connect:timeout");
        assert_eq!(s.errors().get("server:UNAUTHORIZED"), Some(&2));
        assert_eq!(s.error_total(), 3);
    }
}

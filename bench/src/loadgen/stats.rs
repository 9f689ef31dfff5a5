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
    /// A move: `RedirectToMc` received → the recovery JoinResponse from the new MC.
    Move,
}

/// Every latency, in report order.
pub const ALL_LAT: [Lat; 8] = [
    Lat::Rtt,
    Lat::Datagram,
    Lat::Connect,
    Lat::Join,
    Lat::Fanout,
    Lat::Layout,
    Lat::Setup,
    Lat::Move,
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
            Lat::Move => "move",
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
    /// `RedirectToMc` received (docs/protocol.md rule 17).
    Redirects,
    /// Redirects followed to the end: recovered on the new MC (rule 18).
    Moves,
    /// Redirects that could not be followed (refused target, connect or join failure).
    RedirectFailures,
    /// Messages the source dropped at a cut: sent, not echoed before the redirect (rule 20).
    CutDropped,
    /// Messages sent while some member of the meeting had not reached the new MC.
    CutExposed,
    /// Notifications those two kinds of messages owed: what a cut could lose.
    InFlightAtCut,
    /// Notifications a cut did lose (out of [`Counter::InFlightAtCut`]).
    LostAtCut,
    /// Resynchronisations after a move where the MC's state fitted more than one
    /// sequence number (the lowest was taken).
    ResyncAmbiguous,
    /// Resynchronisations after a move where the MC's state fitted none.
    ResyncInconsistent,
    /// ParticipantLeft received before the end of the run (nobody leaves mid-run).
    LeftMidRun,
}

/// Every counter, in report order.
pub const ALL_COUNTERS: [Counter; 28] = [
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
    Counter::Redirects,
    Counter::Moves,
    Counter::RedirectFailures,
    Counter::CutDropped,
    Counter::CutExposed,
    Counter::InFlightAtCut,
    Counter::LostAtCut,
    Counter::ResyncAmbiguous,
    Counter::ResyncInconsistent,
    Counter::LeftMidRun,
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
            Counter::Redirects => "redirects_received",
            Counter::Moves => "participants_moved",
            Counter::RedirectFailures => "redirect_failures",
            Counter::CutDropped => "cut_messages_dropped",
            Counter::CutExposed => "cut_messages_exposed",
            Counter::InFlightAtCut => "notifications_in_flight_at_cut",
            Counter::LostAtCut => "notifications_lost_at_cut",
            Counter::ResyncAmbiguous => "cut_resync_ambiguous",
            Counter::ResyncInconsistent => "cut_resync_inconsistent",
            Counter::LeftMidRun => "participants_left_mid_run",
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

/// Samples a recorder holds before it merges them, whatever the time since the last merge.
const SAMPLE_BATCH: usize = 512;

/// A task-local recorder: counters, and latency samples kept as they came (a few bytes
/// each) until they are merged. A histogram per task would cost every task eight
/// 140 KB count arrays, and merging one means walking its arrays: with a thousand
/// participants flushing ten times a second that walk was most of the generator's
/// measuring cost, for the one or two samples each held.
pub struct Recorder {
    samples: Vec<(Lat, u32)>,
    counts: [u64; ALL_COUNTERS.len()],
    last_flush: Instant,
    dirty: bool,
}

impl Recorder {
    pub fn new(now: Instant) -> Self {
        Self {
            samples: Vec::new(),
            counts: [0; ALL_COUNTERS.len()],
            last_flush: now,
            dirty: false,
        }
    }

    /// Records one latency sample.
    pub fn record(&mut self, lat: Lat, d: Duration) {
        // `micros` clamps to 60 s, well inside a u32.
        self.samples.push((lat, micros(d) as u32));
        self.dirty = true;
    }

    /// Adds to a counter.
    pub fn add(&mut self, c: Counter, n: u64) {
        if let Some(v) = self.counts.get_mut(c as usize) {
            *v += n;
            self.dirty = true;
        }
    }

    /// Merges into `stats` when [`FLUSH_EVERY`] has passed since the last merge, or when
    /// [`SAMPLE_BATCH`] samples are waiting.
    pub fn maybe_flush(&mut self, stats: &Stats, now: Instant) {
        if self.samples.len() >= SAMPLE_BATCH
            || now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY
        {
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
        if self.samples.is_empty() {
            return;
        }
        if let Ok(mut g) = stats.hists.lock() {
            let Hists { total, interval } = &mut *g;
            for &(lat, us) in &self.samples {
                if let Some(t) = total.get_mut(lat as usize) {
                    t.saturating_record(u64::from(us));
                }
                if let Some(t) = interval.get_mut(lat as usize) {
                    t.saturating_record(u64::from(us));
                }
            }
        }
        self.samples.clear();
        // A burst (a join storm, a fast echo) may have grown the buffer; do not keep that.
        if self.samples.capacity() > SAMPLE_BATCH {
            self.samples.shrink_to(SAMPLE_BATCH);
        }
    }
}

struct Hists {
    total: Vec<Histogram<u64>>,
    interval: Vec<Histogram<u64>>,
}

/// One cut of a rolling restart, as the participants saw it. A participant's n-th
/// redirect belongs to cut n (every member of a moved meeting is redirected once per cut).
#[derive(Debug, Clone)]
pub struct Cut {
    /// `RedirectToMc` received.
    pub redirected: u64,
    /// Recovered on the new MC.
    pub moved: u64,
    /// Could not follow.
    pub failed: u64,
    /// Messages dropped by the source (sent, not echoed before the redirect).
    pub dropped_messages: u64,
    /// Messages sent while a member of the meeting was still moving.
    pub exposed_messages: u64,
    /// Notifications those messages owed.
    pub in_flight: u64,
    /// Notifications lost (out of `in_flight`).
    pub lost: u64,
    /// Resynchronisations that were ambiguous or inconsistent.
    pub resync_ambiguous: u64,
    pub resync_inconsistent: u64,
    /// First redirect and last recovery, since the stats were created.
    pub first_redirect: Option<Duration>,
    pub last_move: Option<Duration>,
    /// Move times of this cut.
    pub moves: Histogram<u64>,
}

impl Default for Cut {
    fn default() -> Self {
        Self {
            redirected: 0,
            moved: 0,
            failed: 0,
            dropped_messages: 0,
            exposed_messages: 0,
            in_flight: 0,
            lost: 0,
            resync_ambiguous: 0,
            resync_inconsistent: 0,
            first_redirect: None,
            last_move: None,
            moves: new_hist(),
        }
    }
}

/// Shared, merged measurements of one run (or one ramp step).
pub struct Stats {
    counters: Vec<AtomicU64>,
    hists: Mutex<Hists>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Per cut (1-based): rare events (moves), so a lock per event is fine.
    cuts: Mutex<BTreeMap<u32, Cut>>,
    created: Instant,
    /// Sessions currently established.
    pub live_sessions: AtomicU64,
    /// The sessions' QUIC connections, for datagrams per operation.
    pub udp: super::udp::UdpLedger,
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
            cuts: Mutex::new(BTreeMap::new()),
            created: Instant::now(),
            live_sessions: AtomicU64::new(0),
            udp: super::udp::UdpLedger::default(),
        }
    }

    /// Updates cut `n` (1-based).
    pub fn cut(&self, n: u32, f: impl FnOnce(&mut Cut)) {
        if let Ok(mut m) = self.cuts.lock() {
            f(m.entry(n.max(1)).or_default());
        }
    }

    /// Time since these stats were created (the time base of [`Cut`]).
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.created)
    }

    /// Every cut so far, in order.
    pub fn cuts(&self) -> BTreeMap<u32, Cut> {
        self.cuts.lock().map(|m| m.clone()).unwrap_or_default()
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
        let moved = stats.get(Counter::Moves);
        let moved = if moved > 0 {
            format!("  moved {moved}")
        } else {
            String::new()
        };
        format!(
            "[{:>6.1}s] sessions {:>6}  {} {:>10.1}/s  {} p50 {:>8.2} ms p99 {:>8.2} ms  errors {}{moved}",
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
    fn a_full_batch_of_samples_is_merged_before_it_is_due() {
        let base = Instant::now();
        let stats = Stats::new();
        let mut r = Recorder::new(base);
        for _ in 0..SAMPLE_BATCH - 1 {
            r.record(Lat::Fanout, Duration::from_millis(3));
            r.maybe_flush(&stats, base);
        }
        assert!(
            stats.histogram(Lat::Fanout).is_empty(),
            "neither due nor full"
        );
        r.record(Lat::Fanout, Duration::from_secs(3_600));
        r.maybe_flush(&stats, base);
        let h = stats.histogram(Lat::Fanout);
        assert_eq!(h.len(), SAMPLE_BATCH as u64, "merged when the batch filled");
        assert_eq!(
            h.max(),
            h.highest_equivalent(MAX_US),
            "an hour is clamped to the histogram's 60 s"
        );
        assert_eq!(stats.take_interval(Lat::Fanout).len(), SAMPLE_BATCH as u64);
        assert!(r.samples.is_empty() && r.samples.capacity() <= SAMPLE_BATCH);
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

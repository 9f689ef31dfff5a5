//! Receive batching: when the loop leaves the socket unread for a moment after a pass,
//! so that the datagrams arriving meanwhile are taken in one pass.
//!
//! A shard woken by every datagram pays for each one a wake-up, a wait, a `recvmmsg` and
//! a `sendmmsg`, and sends each connection's reply in a packet of its own. Like a network
//! card's interrupt moderation, a short pause between reads turns those into one of each
//! per batch, and lets replies to the same client share a packet. Two cases pause:
//!
//! - acknowledgements of a fan-out (`--rx-coalesce-us`): a pass that received only
//!   datagrams with nothing for the application, soon after a pass that sent to many
//!   clients. Nothing waits on the next ones: the recipients' ACKs trickle back one each.
//! - dense traffic (`--rx-batch-us`): a pause caught datagrams, or this reception came
//!   within the window of the previous one. A datagram after a quiet moment is read at
//!   once, and a lone one costs no extra wake-up: the pause follows only a dense
//!   reception.
//!
//! Mesh messages and timers end a pause at once; only the socket waits.
//!
//! Whether the dense-traffic pause pays depends on who waits for whom. When the senders
//! have plenty in flight (many clients, or a few with deep windows), they keep sending
//! during the pause and each wake-up takes a large batch. When a few clients each wait
//! for their reply before they send again, a pause only holds them up: they stop
//! sending, go to sleep, and have to be woken again. Then the shard's CPU per datagram
//! may rise, or fall only because the clients, held up, send half as many datagrams and
//! each wake-up finds more of them: the shard saves CPU it did not need, and the clients
//! lose half their round trips.
//!
//! So the shard measures: in epochs of at least [`EPOCH`] and [`MIN_DATAGRAMS`] (up to
//! [`EPOCH_MAX`]) it reads its thread's CPU time and the datagrams received, and keeps
//! the way (pausing or reading at once) that costs less CPU per datagram, unless the
//! pause slows the clients' pace (datagrams received per second) by [`MAX_SLOWDOWN`] or
//! more, or by a larger fraction than it saves. The bound on the pace holds whatever the
//! pause saves, because where clients wait for their replies a pause cuts the CPU per
//! datagram about as much as it cuts their pace (the wake-ups it saves are the ones
//! their requests caused), so the two fractions lie within the epochs' noise of each
//! other and a comparison of them alone took the pause in some runs and not in others:
//! ten such clients over a veth pair measured paused epochs at 0.47–0.61 of the CPU per
//! datagram of reading at once and 0.43–0.46 of the pace, and ran paused in 4–52 % of
//! their epochs from run to run. Now and then ([`RECHECK_MIN`], [`RECHECK_MAX`]), and at
//! once when the current way has grown dearer than the other's last figure, it runs
//! [`RECHECK_EPOCHS`] epochs the other way. The pause has to pay for itself
//! ([`MARGIN`]): where both ways cost the same the shard reads at once, as a pause would
//! hold the clients up for nothing. Each way's figures are running means of its last few
//! epochs ([`MEAN_DEPTH`]), measured afresh when the way has not run for a while
//! ([`STALE_AFTER`]): traffic changes (a run starts with handshakes), and an old figure
//! must not outweigh a new one.

use std::time::{Duration, Instant};

/// Datagrams one pass must send to count as a fan-out whose acknowledgements are worth
/// coalescing.
const WIDE_SEND: u64 = 64;
/// How long after a fan-out its recipients' acknowledgements keep arriving: each
/// recipient acknowledges up to its max_ack_delay (25 ms by default) after the packet
/// reached it, and a client takes a while to get through a burst.
const ACK_WINDOW: Duration = Duration::from_millis(100);

/// How long one measurement of the shard's CPU per datagram lasts.
const EPOCH: Duration = Duration::from_millis(20);
/// After this many epochs the way that measured dearer runs once more, to re-measure it;
/// each re-check that confirms the choice doubles the interval, up to [`RECHECK_MAX`]
/// (1.28 s), and one that overturns it starts again from here.
const RECHECK_MIN: u32 = 8;
const RECHECK_MAX: u32 = 64;
/// Epochs one re-check runs: one epoch of dense traffic now and then costs much more
/// than usual (the clients' timing shifts), and a re-check judged by that one epoch
/// would keep the dearer way until the next.
const RECHECK_EPOCHS: u32 = 2;
/// A way's cost is a running mean over its last few epochs (their mean while it has
/// fewer), so that one dear epoch moves it by a quarter at most.
const MEAN_DEPTH: u32 = 4;
/// A way that has not run for more than this many epochs is measured afresh when it
/// next runs: its old cost was taken under other traffic (the handshakes at the start
/// of a run cost many times what the echoes after them do), and averaging a re-check
/// into it would keep the error for several re-checks.
const STALE_AFTER: u32 = 4;
/// How much cheaper than reading at once the pause must measure to be taken (half as
/// much to be kept): within this, the two ways cost the same as far as epochs of 20 ms
/// can tell, and the shard reads at once, because a pause holds up every client waiting
/// for a reply. The band between taking and keeping stops it switching back and forth.
const MARGIN: f64 = 0.1;
/// The most the pause may slow the clients' pace (datagrams received per second), as a
/// fraction, whatever it saves (module docs).
const MAX_SLOWDOWN: f64 = 0.1;
/// An epoch lasts until it has received this many datagrams, so that its CPU per
/// datagram is not mostly the loop's fixed costs (timers, counters).
const MIN_DATAGRAMS: u64 = 256;
/// The longest an epoch waits for [`MIN_DATAGRAMS`]: a pause that holds up a few clients
/// each waiting for its reply slows the traffic it is judged by (10 clients with one
/// message in flight send about 200 datagrams in 20 ms behind a 1 ms pause), so an epoch
/// short of datagrams runs on rather than measuring nothing and leaving the pause on for
/// good. Traffic sparser than this measures nothing and keeps the current way.
const EPOCH_MAX: Duration = Duration::from_millis(320);

/// Decides, after each pass, whether the loop pauses before it reads the socket again.
#[derive(Debug)]
pub(super) struct RxBatching {
    /// The pause after a pass of a fan-out's acknowledgements (zero: off).
    acks_pause: Duration,
    /// The pause while traffic is dense, and how close two receptions must be to count
    /// as dense (zero: off).
    window: Duration,
    /// When a pass last sent at least [`WIDE_SEND`] datagrams.
    wide_send: Option<Instant>,
    /// The last pass received only acknowledgements, soon after a fan-out.
    acks_only: bool,
    /// When a pass last received datagrams.
    last_rx: Option<Instant>,
    /// The last pass's reception was dense.
    dense: bool,
    /// Whether the pause for dense traffic is on: it stays on while it costs less CPU
    /// per datagram than reading at once, without slowing the clients by more.
    trial: Trial,
}

/// The running comparison of the shard's CPU per datagram received, and of the clients'
/// pace, with and without the dense-traffic pause. Arrays are indexed by way: 0 reading
/// at once, 1 pausing.
#[derive(Debug)]
struct Trial {
    /// When the current epoch began, the thread's CPU time and the datagrams received then.
    start: Option<(Instant, Duration, u64)>,
    /// How the current epoch runs: pausing for dense traffic, or reading at once.
    pausing: bool,
    /// Epochs of the current re-check still to run (0: not re-checking). A re-check runs
    /// the way not chosen, to re-measure it.
    recheck_left: u32,
    /// What each way measured (none until it has run).
    measured: [Option<Figure>; 2],
    /// Epochs in each way's running mean, up to [`MEAN_DEPTH`].
    depth: [u32; 2],
    /// Epochs measured since each way last ran.
    age: [u32; 2],
    /// Epochs measured since the last re-check, and how many to run before the next.
    since_recheck: u32,
    recheck_every: u32,
    /// Epochs measured each way, for `mc_rx_batch_epochs_total`.
    epochs: [u64; 2],
}

/// One way's measure: a running mean over its last epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Figure {
    /// The shard thread's CPU nanoseconds per datagram received.
    ns_per_datagram: f64,
    /// Datagrams received per second: the clients' pace.
    per_second: f64,
}

impl Trial {
    fn new() -> Self {
        Self {
            start: None,
            pausing: true,
            recheck_left: 0,
            measured: [None, None],
            depth: [0, 0],
            age: [0, 0],
            since_recheck: 0,
            recheck_every: RECHECK_MIN,
            epochs: [0, 0],
        }
    }

    fn on_pass(&mut self, now: Instant, datagrams: u64, cpu: impl FnOnce() -> Duration) {
        let Some((t0, cpu0, datagrams0)) = self.start else {
            self.start = Some((now, cpu(), datagrams));
            return;
        };
        let elapsed = now.saturating_duration_since(t0);
        if elapsed < EPOCH {
            return;
        }
        let received = datagrams.saturating_sub(datagrams0);
        if received < MIN_DATAGRAMS {
            if elapsed >= EPOCH_MAX {
                // Too sparse to judge: start a new epoch.
                self.start = Some((now, cpu(), datagrams));
            }
            return;
        }
        let cpu1 = cpu();
        self.start = Some((now, cpu1, datagrams));
        let epoch = Figure {
            ns_per_datagram: cpu1.saturating_sub(cpu0).as_nanos() as f64 / received as f64,
            per_second: received as f64 / elapsed.as_secs_f64(),
        };
        self.record(epoch);
        tracing::trace!(
            pausing = self.pausing,
            rechecking = self.recheck_left > 0,
            datagrams = received,
            ms = elapsed.as_millis() as u64,
            ns_per_datagram = epoch.ns_per_datagram as u64,
            per_second = epoch.per_second as u64,
            at_once = ?self.measured[0].map(|c| (c.ns_per_datagram as u64, c.per_second as u64)),
            paused = ?self.measured[1].map(|c| (c.ns_per_datagram as u64, c.per_second as u64)),
            "receive-pause epoch"
        );
        self.decide();
    }

    /// Adds one epoch's figures to the way it ran.
    fn record(&mut self, epoch: Figure) {
        let way = usize::from(self.pausing);
        self.epochs[way] += 1;
        if self.age[way] > STALE_AFTER {
            self.depth[way] = 0;
        }
        self.depth[way] = (self.depth[way] + 1).min(MEAN_DEPTH);
        let weight = 1.0 / f64::from(self.depth[way]);
        let mean = |m: f64, x: f64| m + (x - m) * weight;
        self.measured[way] = Some(match self.measured[way].filter(|_| self.depth[way] > 1) {
            None => epoch,
            Some(m) => Figure {
                ns_per_datagram: mean(m.ns_per_datagram, epoch.ns_per_datagram),
                per_second: mean(m.per_second, epoch.per_second),
            },
        });
        self.age[way] = 0;
        self.age[1 - way] = self.age[1 - way].saturating_add(1);
    }

    /// After an epoch: keep the way, start or finish a re-check.
    fn decide(&mut self) {
        let way = usize::from(self.pausing);
        if self.measured[way].is_none() {
            return;
        }
        if self.measured[1 - way].is_none() {
            // The first epoch: measure the other way.
            self.start_recheck();
            return;
        }
        if self.recheck_left > 0 {
            self.recheck_left -= 1;
            if self.recheck_left > 0 {
                return;
            }
            // The re-check is over (it ran the way not chosen): choose again.
            let chosen = !self.pausing;
            let pausing = self.pause_pays(chosen);
            let overturned = pausing != chosen;
            self.recheck_every = if overturned {
                RECHECK_MIN
            } else {
                (self.recheck_every * 2).min(RECHECK_MAX)
            };
            self.since_recheck = 0;
            self.pausing = pausing;
            return;
        }
        self.since_recheck += 1;
        // Against the other way's figure from its last run the current way no longer
        // holds (the traffic changed), or it is time to look again: re-measure the other.
        if self.pause_pays(self.pausing) != self.pausing || self.since_recheck >= self.recheck_every
        {
            self.start_recheck();
        }
    }

    /// Whether the pause pays, by both ways' current figures: it must cost [`MARGIN`]
    /// less per datagram than reading at once to be taken, and half that to be kept, and
    /// the datagrams per second must fall by less than [`MAX_SLOWDOWN`] and by a smaller
    /// fraction than that cost (or not fall): where clients wait for their replies, a
    /// pause that batches more by slowing them to half their pace has saved the shard
    /// nothing it needed and cost the clients half their round trips.
    fn pause_pays(&self, pausing_now: bool) -> bool {
        let [Some(at_once), Some(paused)] = self.measured else {
            return pausing_now;
        };
        let margin = if pausing_now { MARGIN / 2.0 } else { MARGIN };
        let cost = paused.ns_per_datagram / at_once.ns_per_datagram;
        let pace = paused.per_second / at_once.per_second;
        cost < 1.0 - margin && pace > cost && pace > 1.0 - MAX_SLOWDOWN
    }

    fn start_recheck(&mut self) {
        self.recheck_left = RECHECK_EPOCHS;
        self.pausing = !self.pausing;
    }
}

/// What one pass saw of the socket.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pass {
    pub now: Instant,
    /// It received datagrams.
    pub received: bool,
    /// Nothing came of them for the application: no connection events, no mesh messages,
    /// no meeting commands (acknowledgements, in practice).
    pub quiet: bool,
}

impl RxBatching {
    pub(super) fn new(acks_pause: Duration, window: Duration) -> Self {
        Self {
            acks_pause,
            window,
            wide_send: None,
            acks_only: false,
            last_rx: None,
            dense: false,
            trial: Trial::new(),
        }
    }

    /// Once per pass, with the datagrams received so far: at the end of each epoch,
    /// `cpu` (the shard thread's CPU time) is read and the pause kept or dropped.
    pub(super) fn on_cost(&mut self, now: Instant, datagrams: u64, cpu: impl FnOnce() -> Duration) {
        if !self.window.is_zero() {
            self.trial.on_pass(now, datagrams, cpu);
        }
    }

    /// Epochs of the pause trial measured so far: reading at once, and pausing.
    pub(super) fn epochs(&self) -> [u64; 2] {
        self.trial.epochs
    }

    /// Once per pass, after its receptions were driven and before it transmits.
    pub(super) fn on_pass(&mut self, pass: Pass) {
        let Pass {
            now,
            received,
            quiet,
        } = pass;
        let since = |t: Instant| now.saturating_duration_since(t);
        // After a narrow send (one echo, one reply) acknowledgements do not count: the
        // client's next message may be right behind its ACK.
        self.acks_only = received && quiet && self.wide_send.is_some_and(|t| since(t) < ACK_WINDOW);
        let paused = self.dense;
        self.dense = received && (paused || self.last_rx.is_some_and(|t| since(t) < self.window));
        if received {
            self.last_rx = Some(now);
        }
    }

    /// Once per pass, with the datagrams it sent.
    pub(super) fn on_sent(&mut self, now: Instant, datagrams: u64) {
        if datagrams >= WIDE_SEND {
            self.wide_send = Some(now);
        }
    }

    /// How long to leave the socket unread before the next pass, if at all.
    pub(super) fn nap(&self) -> Option<Duration> {
        if self.acks_only && !self.acks_pause.is_zero() {
            return Some(self.acks_pause);
        }
        (self.dense && self.trial.pausing && !self.window.is_zero()).then_some(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(100);
    const ACKS: Duration = Duration::from_micros(500);

    /// A pass whose receptions (if any) carried something for the application.
    fn rx(now: Instant, received: bool) -> Pass {
        Pass {
            now,
            received,
            quiet: false,
        }
    }

    /// A pass that received only acknowledgements.
    fn acks(now: Instant) -> Pass {
        Pass {
            now,
            received: true,
            quiet: true,
        }
    }

    #[test]
    fn a_datagram_after_a_quiet_moment_is_followed_by_no_pause() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, W);
        b.on_pass(rx(t0, true));
        assert_eq!(b.nap(), None);
        // Quiet, then another lone datagram long after: still no pause.
        b.on_pass(rx(t0 + Duration::from_micros(10), false));
        b.on_pass(rx(t0 + Duration::from_millis(5), true));
        assert_eq!(b.nap(), None);
    }

    #[test]
    fn lone_datagrams_that_each_wake_the_loop_never_make_it_pause() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, W);
        // Each one ends a long park and is the only thing its pass sees.
        for i in 0..4 {
            b.on_pass(rx(t0 + i * Duration::from_millis(3), true));
            assert_eq!(b.nap(), None, "lone datagram {i}");
        }
    }

    #[test]
    fn a_pause_that_caught_datagrams_is_followed_by_another() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, W);
        b.on_pass(rx(t0, true));
        b.on_pass(rx(t0 + Duration::from_micros(30), true));
        assert_eq!(b.nap(), Some(W));
        // The pause caught more (longer than a window after the last reception, since
        // the pause itself is one): keep pausing.
        b.on_pass(rx(t0 + Duration::from_micros(30) + W + W / 2, true));
        assert_eq!(b.nap(), Some(W));
        // The pause caught nothing: the next park watches the socket again.
        b.on_pass(rx(t0 + Duration::from_micros(30) + 3 * W, false));
        assert_eq!(b.nap(), None);
    }

    #[test]
    fn a_reception_within_the_window_of_the_last_one_is_dense() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, W);
        b.on_pass(rx(t0, true));
        // A pass for something else (a timer) in between.
        b.on_pass(rx(t0 + Duration::from_micros(20), false));
        b.on_pass(rx(t0 + Duration::from_micros(60), true));
        assert_eq!(b.nap(), Some(W));
        b.on_pass(rx(t0 + Duration::from_micros(70), false));
        b.on_pass(rx(t0 + Duration::from_micros(60) + W, true));
        assert_eq!(b.nap(), None, "exactly one window later is no longer dense");
    }

    #[test]
    fn a_zero_window_never_pauses() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, Duration::ZERO);
        for i in 0..4 {
            b.on_pass(rx(t0 + Duration::from_micros(i), true));
            assert_eq!(b.nap(), None);
        }
    }

    #[test]
    fn acknowledgements_soon_after_a_wide_send_pause_for_the_acks_window() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(ACKS, W);
        b.on_sent(t0, WIDE_SEND);
        b.on_pass(acks(t0 + Duration::from_millis(25)));
        assert_eq!(b.nap(), Some(ACKS));
        // Once the fan-out's acknowledgements are over, a quiet reception is read at once.
        b.on_pass(acks(t0 + ACK_WINDOW + Duration::from_millis(10)));
        assert_eq!(b.nap(), None);
    }

    #[test]
    fn acknowledgements_after_a_narrow_send_or_with_events_do_not_pause_for_acks() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(ACKS, W);
        // One reply sent: the client's next message may be right behind its ACK.
        b.on_sent(t0, WIDE_SEND - 1);
        b.on_pass(acks(t0 + Duration::from_millis(5)));
        assert_eq!(b.nap(), None);
        // After a fan-out, a reception that carried a message is no mere ACK.
        b.on_sent(t0 + Duration::from_millis(10), WIDE_SEND);
        b.on_pass(rx(t0 + Duration::from_millis(20), true));
        assert_eq!(b.nap(), None);
    }

    /// Datagrams per epoch where a test does not vary the clients' pace.
    const DG: u64 = 1_000;

    /// Runs `epochs` epochs of dense traffic, `DG` datagrams each, whose CPU per
    /// datagram is `ns(epoch, pausing)`; returns how each epoch ran (true: pausing).
    fn run_epochs_with(
        b: &mut RxBatching,
        t: &mut Instant,
        datagrams: &mut u64,
        cpu: &mut Duration,
        epochs: usize,
        mut ns: impl FnMut(usize, bool) -> u64,
    ) -> Vec<bool> {
        run_epochs_paced(b, t, datagrams, cpu, epochs, |i, pausing| {
            (ns(i, pausing), DG)
        })
    }

    /// [`run_epochs_with`], where `paced(epoch, pausing)` gives the CPU per datagram and
    /// the datagrams received in the epoch.
    fn run_epochs_paced(
        b: &mut RxBatching,
        t: &mut Instant,
        datagrams: &mut u64,
        cpu: &mut Duration,
        epochs: usize,
        mut paced: impl FnMut(usize, bool) -> (u64, u64),
    ) -> Vec<bool> {
        let mut ways = Vec::new();
        for i in 0..epochs {
            let pausing = b.trial.pausing;
            ways.push(pausing);
            // Dense traffic throughout: the pause, when on, is taken.
            b.on_pass(rx(*t, true));
            b.on_pass(rx(*t + Duration::from_micros(30), true));
            assert_eq!(b.nap().is_some(), pausing);
            let (ns, dg) = paced(i, pausing);
            *t += EPOCH;
            *datagrams += dg;
            *cpu += Duration::from_nanos(dg * ns);
            let now_cpu = *cpu;
            b.on_cost(*t, *datagrams, || now_cpu);
        }
        ways
    }

    /// Sixty epochs from a fresh trial, each way at a constant (CPU ns per datagram,
    /// datagrams per epoch); returns how each epoch ran (true: pausing).
    fn sixty_paced_epochs(pausing: (u64, u64), at_once: (u64, u64)) -> Vec<bool> {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        run_epochs_paced(&mut b, &mut t, &mut d, &mut cpu, 60, |_, p| {
            if p {
                pausing
            } else {
                at_once
            }
        })
    }

    /// [`run_epochs_with`] at a constant cost each way.
    fn run_epochs(
        b: &mut RxBatching,
        t: &mut Instant,
        datagrams: &mut u64,
        cpu: &mut Duration,
        epochs: usize,
        pausing_ns: u64,
        at_once_ns: u64,
    ) -> Vec<bool> {
        run_epochs_with(b, t, datagrams, cpu, epochs, |_, pausing| {
            if pausing {
                pausing_ns
            } else {
                at_once_ns
            }
        })
    }

    fn started(b: &mut RxBatching) -> (Instant, u64, Duration) {
        let t0 = Instant::now();
        b.on_cost(t0, 0, || Duration::ZERO);
        (t0, 0, Duration::ZERO)
    }

    /// The epochs (0-based) that ran the way `way` was not.
    fn other_way(ways: &[bool], way: bool) -> Vec<usize> {
        (0..ways.len()).filter(|&i| ways[i] != way).collect()
    }

    #[test]
    fn the_pause_stays_where_it_costs_less_cpu_per_datagram() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 60, 1_000, 1_500);
        // Pausing first, then two epochs reading at once (the first comparison, which
        // counts as a re-check), then pausing except for re-checks of two epochs each,
        // each further from the last: after 16 epochs, then 32.
        assert_eq!(&ways[..3], &[true, false, false]);
        assert_eq!(
            other_way(&ways, true),
            vec![1, 2, 19, 20, 53, 54],
            "{ways:?}"
        );
    }

    #[test]
    fn the_pause_is_dropped_where_reading_at_once_costs_less() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 60, 9_500, 8_000);
        // The first comparison overturns the first way: re-checks after 8, 16, 32.
        assert_eq!(other_way(&ways, false), vec![0, 11, 12, 29, 30], "{ways:?}");
    }

    #[test]
    fn where_both_ways_cost_the_same_the_shard_reads_at_once() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        // A pause that saves less than half the margin holds the clients up for nothing:
        // the first comparison leaves it, later re-checks of it do not take it back.
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 60, 9_700, 10_000);
        assert_eq!(other_way(&ways, false), vec![0, 11, 12, 29, 30], "{ways:?}");
    }

    #[test]
    fn a_pause_that_is_cheaper_per_datagram_but_slows_the_clients_is_not_taken() {
        // Ten clients each waiting for its reply: the pause batches more and costs 13 %
        // less per datagram, but the clients, held up, send half as many.
        let ways = sixty_paced_epochs((17_200, DG / 2), (19_700, DG));
        assert_eq!(other_way(&ways, false), vec![0, 11, 12, 29, 30], "{ways:?}");
    }

    #[test]
    fn a_pause_that_halves_the_clients_pace_is_not_taken_however_much_it_saves() {
        // Ten clients each waiting for its reply: paused epochs cost 60 % less CPU per
        // datagram at 45 % of the clients' pace. Saving more than the pace falls, it
        // would pass the comparison of the two alone.
        let ways = sixty_paced_epochs((6_600, DG * 45 / 100), (16_500, DG));
        assert_eq!(other_way(&ways, false), vec![0, 11, 12, 29, 30], "{ways:?}");
    }

    #[test]
    fn a_pause_that_slows_the_clients_by_a_tenth_or_more_is_not_taken() {
        // 30 % less CPU per datagram for 15 % of the clients' pace.
        let ways = sixty_paced_epochs((7_000, DG * 85 / 100), (10_000, DG));
        assert_eq!(other_way(&ways, false), vec![0, 11, 12, 29, 30], "{ways:?}");
    }

    #[test]
    fn a_pause_that_slows_the_clients_less_than_it_saves_is_taken() {
        // Many clients with deep windows: 30 % less CPU per datagram for 5 % of their pace.
        let ways = sixty_paced_epochs((7_000, DG * 95 / 100), (10_000, DG));
        assert_eq!(
            other_way(&ways, true),
            vec![1, 2, 19, 20, 53, 54],
            "{ways:?}"
        );
    }

    #[test]
    fn a_pause_that_speeds_a_saturated_shard_up_is_taken() {
        // A shard at full load: what the pause saves per datagram it spends on more.
        let ways = sixty_paced_epochs((8_000, DG * 5 / 4), (10_000, DG));
        assert_eq!(
            other_way(&ways, true),
            vec![1, 2, 19, 20, 53, 54],
            "{ways:?}"
        );
    }

    #[test]
    fn a_pause_taken_is_kept_while_it_saves_half_the_margin() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        // Clearly cheaper at first: taken.
        run_epochs(&mut b, &mut t, &mut d, &mut cpu, 20, 8_000, 10_000);
        assert!(b.trial.pausing || b.trial.recheck_left > 0);
        // Then only 7 % cheaper: too little to take it, enough to keep it.
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 60, 9_300, 10_000);
        let paused = ways.iter().filter(|&&p| p).count();
        assert!(paused >= 50, "{ways:?}");
        assert!(b.trial.pausing || b.trial.recheck_left > 0, "{ways:?}");
        // And 3 % cheaper: left at the next re-check.
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 80, 9_700, 10_000);
        assert!(ways[ways.len() - 10..].iter().all(|&p| !p), "{ways:?}");
    }

    #[test]
    fn a_change_of_traffic_turns_the_pause_back_on_at_the_next_recheck() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        run_epochs(&mut b, &mut t, &mut d, &mut cpu, 200, 9_500, 8_000);
        assert!(!b.trial.pausing);
        assert_eq!(b.trial.recheck_every, RECHECK_MAX);
        // Now the pause pays: the next re-check finds it cheaper and it stays on, until
        // the re-check of the other way 8 epochs after its own two.
        let ways = run_epochs(
            &mut b,
            &mut t,
            &mut d,
            &mut cpu,
            RECHECK_MAX as usize + 12,
            1_000,
            8_000,
        );
        let first = ways.iter().position(|&p| p).expect("a re-check ran");
        assert!(first <= RECHECK_MAX as usize, "{ways:?}");
        assert!(ways[first..first + 10].iter().all(|&p| p), "{ways:?}");
        assert_eq!(b.trial.recheck_every, RECHECK_MIN * 2);
    }

    #[test]
    fn a_way_that_grew_dearer_than_the_other_is_rechecked_early() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        run_epochs(&mut b, &mut t, &mut d, &mut cpu, 200, 9_500, 8_000);
        assert!(!b.trial.pausing);
        // Reading at once now costs twice the pause's last figure: the running mean
        // crosses it within a few epochs, long before the next scheduled re-check.
        let ways = run_epochs(&mut b, &mut t, &mut d, &mut cpu, 20, 9_500, 20_000);
        let first = ways.iter().position(|&p| p).expect("an early re-check ran");
        assert!(first <= 3, "{ways:?}");
        // Taken, until the re-check of reading at once 8 epochs after its own two.
        assert!(ways[first..first + 10].iter().all(|&p| p), "{ways:?}");
    }

    #[test]
    fn a_way_measured_under_other_traffic_is_measured_afresh() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        // The first epoch pauses during the clients' handshakes, at many times the cost
        // of the echoes that follow; reading at once is then measured on echoes only.
        let ways = run_epochs_with(&mut b, &mut t, &mut d, &mut cpu, 60, |i, pausing| {
            match (i, pausing) {
                (0, _) => 100_000,
                (_, true) => 7_000,
                (_, false) => 11_000,
            }
        });
        // The re-check after 8 epochs measures the pause afresh rather than averaging
        // it with the handshakes, and takes it.
        assert_eq!(
            &ways[..13],
            &[
                true, false, false, false, false, false, false, false, false, false, false, true,
                true
            ]
        );
        assert_eq!(
            other_way(&ways[11..], true),
            vec![10, 11, 28, 29],
            "{ways:?}"
        );
    }

    #[test]
    fn one_dear_epoch_does_not_change_the_way() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (mut t, mut d, mut cpu) = started(&mut b);
        // The pause usually costs 7 µs per datagram, every fifth epoch twice that;
        // reading at once 11 µs throughout: only the scheduled re-checks read at once.
        let ways = run_epochs_with(&mut b, &mut t, &mut d, &mut cpu, 60, |i, pausing| {
            match (pausing, i % 5 == 4) {
                (true, true) => 14_000,
                (true, false) => 7_000,
                (false, _) => 11_000,
            }
        });
        assert_eq!(
            other_way(&ways, true),
            vec![1, 2, 19, 20, 53, 54],
            "{ways:?}"
        );
    }

    #[test]
    fn sparse_epochs_measure_nothing() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (t0, _, _) = started(&mut b);
        // A handful of datagrams and a lot of CPU, up to the longest epoch: no cost is
        // recorded, and the first way (pausing) is not judged by them.
        b.on_cost(t0 + EPOCH, MIN_DATAGRAMS / 4, || Duration::from_millis(5));
        b.on_cost(t0 + EPOCH_MAX, MIN_DATAGRAMS - 1, || {
            Duration::from_millis(50)
        });
        assert_eq!(b.trial.measured, [None, None]);
        assert!(b.trial.pausing);
        // The next epoch starts there: its datagrams are counted from then.
        b.on_cost(t0 + EPOCH_MAX + EPOCH, 2 * MIN_DATAGRAMS - 2, || {
            Duration::from_millis(60)
        });
        assert_eq!(b.trial.measured, [None, None]);
    }

    #[test]
    fn an_epoch_short_of_datagrams_runs_on_until_it_has_enough() {
        let mut b = RxBatching::new(Duration::ZERO, W);
        let (t0, _, _) = started(&mut b);
        // A pause that slows its few clients: 200 datagrams in the first 20 ms.
        b.on_cost(t0 + EPOCH, 200, || panic!("nothing to measure yet"));
        assert_eq!(b.trial.measured, [None, None]);
        // 400 by 40 ms: the epoch is judged over all of it (8 ms of CPU ÷ 400).
        b.on_cost(t0 + 2 * EPOCH, 400, || Duration::from_millis(8));
        let figure = Figure {
            ns_per_datagram: 20_000.0,
            per_second: 10_000.0,
        };
        assert_eq!(b.trial.measured, [None, Some(figure)]);
        // Then it reads at once to measure that way.
        assert!(!b.trial.pausing);
    }

    #[test]
    fn a_zero_window_runs_no_trial() {
        let mut b = RxBatching::new(ACKS, Duration::ZERO);
        let t0 = Instant::now();
        b.on_cost(t0, 0, || panic!("no CPU reading without a pause to judge"));
        b.on_cost(t0 + EPOCH, 10_000, || {
            panic!("no CPU reading without a pause to judge")
        });
    }

    #[test]
    fn a_zero_acks_pause_leaves_only_the_dense_traffic_rule() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO, W);
        b.on_sent(t0, WIDE_SEND);
        b.on_pass(acks(t0 + Duration::from_millis(25)));
        assert_eq!(b.nap(), None);
        b.on_pass(acks(t0 + Duration::from_millis(25) + W / 2));
        assert_eq!(b.nap(), Some(W));
    }
}

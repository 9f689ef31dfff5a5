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

use std::time::{Duration, Instant};

/// Datagrams one pass must send to count as a fan-out whose acknowledgements are worth
/// coalescing.
const WIDE_SEND: u64 = 64;
/// How long after a fan-out its recipients' acknowledgements keep arriving: each
/// recipient acknowledges up to its max_ack_delay (25 ms by default) after the packet
/// reached it, and a client takes a while to get through a burst.
const ACK_WINDOW: Duration = Duration::from_millis(100);

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
        }
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
        (self.dense && !self.window.is_zero()).then_some(self.window)
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

//! Receive batching: while datagrams keep arriving, the loop lets the next ones
//! accumulate for a moment before it reads the socket again.
//!
//! A shard woken by every datagram pays for each one a wake-up, a wait, a `recvmmsg` and
//! a `sendmmsg`, and sends each connection's reply in a packet of its own. Like a network
//! card's interrupt moderation, a short pause between reads while traffic is dense
//! turns those into one of each per batch, and lets replies to the same client share a
//! packet. Traffic counts as dense when a pause caught datagrams, or when this
//! reception came within the window of the previous one. A datagram after a quiet
//! moment is read at once, and a lone one costs no extra wake-up: the pause follows
//! only a dense reception.

use std::time::{Duration, Instant};

/// Decides, after each pass, whether the loop pauses before it reads the socket again.
#[derive(Debug)]
pub(super) struct RxBatching {
    /// The pause, and how close two receptions must be to count as dense (zero: off).
    window: Duration,
    /// When a pass last received datagrams.
    last_rx: Option<Instant>,
    /// The last pass's reception was dense: the loop paused after it.
    dense: bool,
}

impl RxBatching {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            window,
            last_rx: None,
            dense: false,
        }
    }

    /// Once per pass, with whether it received datagrams.
    pub(super) fn on_pass(&mut self, now: Instant, received: bool) {
        let paused = self.dense;
        self.dense = received
            && (paused
                || self
                    .last_rx
                    .is_some_and(|t| now.saturating_duration_since(t) < self.window));
        if received {
            self.last_rx = Some(now);
        }
    }

    /// How long to leave the socket unread before the next pass, if at all.
    pub(super) fn nap(&self) -> Option<Duration> {
        (self.dense && !self.window.is_zero()).then_some(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(100);

    #[test]
    fn a_datagram_after_a_quiet_moment_is_followed_by_no_pause() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(W);
        b.on_pass(t0, true);
        assert_eq!(b.nap(), None);
        // Quiet, then another lone datagram long after: still no pause.
        b.on_pass(t0 + Duration::from_micros(10), false);
        b.on_pass(t0 + Duration::from_millis(5), true);
        assert_eq!(b.nap(), None);
    }

    #[test]
    fn lone_datagrams_that_each_wake_the_loop_never_make_it_pause() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(W);
        // Each one ends a long park and is the only thing its pass sees.
        for i in 0..4 {
            b.on_pass(t0 + i * Duration::from_millis(3), true);
            assert_eq!(b.nap(), None, "lone datagram {i}");
        }
    }

    #[test]
    fn a_pause_that_caught_datagrams_is_followed_by_another() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(W);
        b.on_pass(t0, true);
        b.on_pass(t0 + Duration::from_micros(30), true);
        assert_eq!(b.nap(), Some(W));
        // The pause caught more (longer than a window after the last reception, since
        // the pause itself is one): keep pausing.
        b.on_pass(t0 + Duration::from_micros(30) + W + W / 2, true);
        assert_eq!(b.nap(), Some(W));
        // The pause caught nothing: the next park watches the socket again.
        b.on_pass(t0 + Duration::from_micros(30) + 3 * W, false);
        assert_eq!(b.nap(), None);
    }

    #[test]
    fn a_reception_within_the_window_of_the_last_one_is_dense() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(W);
        b.on_pass(t0, true);
        // A pass for something else (a timer) in between.
        b.on_pass(t0 + Duration::from_micros(20), false);
        b.on_pass(t0 + Duration::from_micros(60), true);
        assert_eq!(b.nap(), Some(W));
        b.on_pass(t0 + Duration::from_micros(70), false);
        b.on_pass(t0 + Duration::from_micros(60) + W, true);
        assert_eq!(b.nap(), None, "exactly one window later is no longer dense");
    }

    #[test]
    fn a_zero_window_never_pauses() {
        let t0 = Instant::now();
        let mut b = RxBatching::new(Duration::ZERO);
        for i in 0..4 {
            b.on_pass(t0 + Duration::from_micros(i), true);
            assert_eq!(b.nap(), None);
        }
    }
}

//! Whether the loop reads the socket once more before it parks, after a pass that
//! received requests (datagrams with something for the application).
//!
//! Parking costs a wait (`shards::parker`) even when a datagram is already waiting, and
//! then a `recvmmsg` to read it. While many clients each keep a request in flight, the
//! next one is often there by the end of a pass: reading straight away saves the wait.
//! When one client waits for each reply before sending again, the read finds nothing
//! and only adds an empty pass before the park. So the loop keeps the outcome of its last
//! [`HISTORY`] reads-again and reads again only while at least [`HITS_WANTED`] of them
//! found requests. In paired runs on the benchmark host an empty pass cost one client
//! about 0.5 µs per round trip (+5.6 %) when the loop always read again, and a stricter
//! bar (6 of 8) kept ten clients with one request each mostly below it, which lost most
//! of their gain (−0.7 % instead of −3.4 % at 4 of 8). Otherwise one receiving pass in
//! [`PROBE_EVERY`] reads again, to notice when traffic becomes dense. Passes that
//! received only acknowledgements (a fan-out's, trickling back) do not read again:
//! `rx_batching` pauses for those instead.

/// Reads-again remembered.
const HISTORY: u32 = u8::BITS;
/// Of the last [`HISTORY`] reads-again, how many must have found requests.
const HITS_WANTED: u32 = 4;
/// While reads-again mostly find nothing, one in this many receiving passes still
/// tries one.
const PROBE_EVERY: u8 = 16;

/// The loop's record of its reads-again (module docs).
#[derive(Debug, Default)]
pub(super) struct Reread {
    /// One bit per read-again, the newest lowest: 1 when it found requests.
    outcomes: u8,
    /// Receiving passes since the last probe while reads-again are off.
    since_probe: u8,
    /// The pass that just ran was a read-again.
    pending: bool,
}

impl Reread {
    /// After each pass: whether it received requests, and whether the loop may skip the
    /// park (it would park on the socket, with no pause for receive batching).
    /// Returns whether to run the next pass at once instead of parking.
    pub(super) fn after_pass(&mut self, received: bool, may_skip_park: bool) -> bool {
        if std::mem::take(&mut self.pending) {
            self.outcomes = self.outcomes << 1 | u8::from(received);
        }
        if !received || !may_skip_park {
            return false;
        }
        let again = if self.outcomes.count_ones() >= HITS_WANTED {
            true
        } else {
            self.since_probe += 1;
            if self.since_probe >= PROBE_EVERY {
                self.since_probe = 0;
                true
            } else {
                false
            }
        };
        self.pending = again;
        again
    }
}

const _: () = assert!(HITS_WANTED <= HISTORY);

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes driven by a script of receptions; returns how many read again.
    fn run(reread: &mut Reread, passes: usize, mut received: impl FnMut(bool) -> bool) -> usize {
        let mut again = false;
        let mut reads_again = 0;
        for _ in 0..passes {
            let got = received(again);
            again = reread.after_pass(got, true);
            reads_again += usize::from(again);
        }
        reads_again
    }

    #[test]
    fn starts_off_and_probes_one_pass_in_sixteen() {
        let mut r = Reread::default();
        // One client: every pass after a park receives, every read-again finds nothing.
        let again = run(&mut r, 32 * 16, |again| !again);
        // 512 passes: those that read again received nothing, so the others (about
        // 512 × 16/17) received, and one in 16 of them probed.
        assert!((28..=32).contains(&again), "{again} reads-again");
    }

    #[test]
    fn turns_on_when_reads_again_keep_finding_requests() {
        let mut r = Reread::default();
        // Dense traffic: every pass receives.
        let again = run(&mut r, 1_000, |_| true);
        // HITS_WANTED probes (16 passes apart) fill the history; from then on every pass.
        let probing = HITS_WANTED as usize * usize::from(PROBE_EVERY);
        assert!(again > 1_000 - probing - 2, "{again} reads-again");
        assert!(r.after_pass(true, true));
    }

    #[test]
    fn turns_off_when_traffic_thins() {
        let mut r = Reread::default();
        run(&mut r, 200, |_| true);
        assert!(r.after_pass(true, true));
        // Now reads-again find nothing: off once fewer than HITS_WANTED of the last
        // HISTORY found requests.
        for _ in 0..=HISTORY - HITS_WANTED {
            assert!(
                !r.after_pass(false, true),
                "a pass that received nothing parks"
            );
            r.after_pass(true, true);
        }
        assert!(!r.after_pass(true, true), "history {:08b}", r.outcomes);
    }

    #[test]
    fn never_skips_a_park_that_was_not_offered_or_after_an_empty_pass() {
        let mut r = Reread::default();
        run(&mut r, 200, |_| true);
        assert!(!r.after_pass(true, false), "a pause for batching is wanted");
        assert!(!r.after_pass(false, true), "nothing received");
    }

    #[test]
    fn a_pass_that_is_not_a_read_again_leaves_the_history_alone() {
        let mut r = Reread::default();
        run(&mut r, 200, |_| true);
        let before = r.outcomes;
        // Offered no skip, so the next pass is not a read-again.
        r.after_pass(true, false);
        r.after_pass(false, true);
        assert_eq!(r.outcomes, before);
    }
}

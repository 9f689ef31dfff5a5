//! The send window of the shard's connections, sized to the shard.
//!
//! quinn-proto keeps up to a connection's send window of stream data that is not yet
//! sent or not yet acknowledged (`MC_SEND_WINDOW_BYTES`, 256 KiB). A client that stops
//! acknowledging, and keeps its connection alive, leaves that much with the server for
//! the idle timeout, and a shard admits 10,000 connections: 2.5 GiB at the defaults,
//! none of it counted by the sessions' own outbound budget. So the shard gives its
//! connections together at most the shard's outbound budget
//! (`MC_SHARD_OUTBOUND_MAX_BYTES`) of send window: while its connections times their
//! window would pass it, the window halves, down to [`FLOOR`]; it doubles back, up to
//! the configured window, once the connections fit in seven eighths of what the
//! larger window allows (so a count that hovers at one boundary does not flap).
//!
//! A smaller window only paces what quinn-proto takes from a session: the rest waits in
//! the session's queue, which has its own limits.

/// The smallest window the shard sets: the smallest `MC_SEND_WINDOW_BYTES` accepts, and
/// room for several signaling frames in flight.
pub const FLOOR: u64 = 16 * 1024;

/// The send window the shard's connections get, as their number changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindows {
    configured: u64,
    budget: u64,
    current: u64,
}

impl SendWindows {
    /// `configured`: `MC_SEND_WINDOW_BYTES`; `budget`: what the shard's connections may
    /// have together.
    pub fn new(configured: u64, budget: u64) -> Self {
        let configured = configured.max(FLOOR);
        Self {
            configured,
            budget,
            current: configured,
        }
    }

    /// The window the shard's connections have now.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The shard now has `live` connections: the new window when it changes.
    pub fn update(&mut self, live: usize) -> Option<u64> {
        let live = live as u64;
        let before = self.current;
        while self.current > FLOOR && live.saturating_mul(self.current) > self.budget {
            self.current = (self.current / 2).max(FLOOR);
        }
        while self.current < self.configured {
            let larger = self.current.saturating_mul(2).min(self.configured);
            if live.saturating_mul(larger) > self.budget / 8 * 7 {
                break;
            }
            self.current = larger;
        }
        (self.current != before).then_some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quinn_proto::Dir;

    use super::*;
    use crate::quic::QuicArgs;
    use crate::testing::{write_until_blocked, Pair};

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    /// Bytes the server's QUIC takes on a stream for a client that has gone silent (none
    /// of the server's packets reach it, so nothing is acknowledged), over 20 s of
    /// retransmissions, with the connection's window set to `window`.
    fn held_for_a_silent_client(window: Option<u64>) -> u64 {
        let mut p = Pair::new(QuicArgs::default());
        p.drive();
        p.drop_to_client = true;
        let mut held = 0u64;
        let mut stream = None;
        for _ in 0..20 {
            let Some((_, conn)) = p.server.as_mut() else {
                break;
            };
            if let Some(w) = window {
                conn.quic.set_send_window(w);
            }
            let id = *stream.get_or_insert_with(|| {
                conn.quic
                    .streams()
                    .open(Dir::Uni)
                    .expect("server uni stream")
            });
            held += write_until_blocked(conn, id);
            p.advance(Duration::from_secs(1));
        }
        held
    }

    /// The premise of the shard's sizing: what QUIC holds for a client that stops
    /// acknowledging is its window, and a window set on a live connection holds.
    #[test]
    fn a_silent_client_makes_the_server_hold_its_window_and_no_more() {
        let configured = u64::from(QuicArgs::default().send_window_bytes);
        assert_eq!(held_for_a_silent_client(None), configured);
        assert_eq!(held_for_a_silent_client(Some(FLOOR)), FLOOR);
    }

    #[test]
    fn the_window_halves_as_connections_grow_and_stops_at_the_floor() {
        let mut w = SendWindows::new(256 * KIB, 128 * MIB);
        assert_eq!(w.update(1), None);
        assert_eq!(w.update(512), None, "512 x 256 KiB is the budget");
        assert_eq!(w.update(513), Some(128 * KIB));
        assert_eq!(w.update(2_000), Some(64 * KIB));
        assert_eq!(w.update(10_000), Some(16 * KIB));
        assert_eq!(w.update(20_000), None, "never below the floor");
        // At the defaults the shard's connections hold at most the budget, or the floor
        // each: 10,000 x 16 KiB = 156 MiB, not 2.5 GiB.
        assert!(10_000 * w.current() <= 160 * MIB);
    }

    #[test]
    fn it_grows_back_below_seven_eighths_and_does_not_flap() {
        let mut w = SendWindows::new(256 * KIB, 128 * MIB);
        assert_eq!(w.update(600), Some(128 * KIB));
        // Around the boundary of 512 the window stays where it is.
        for live in [513, 511, 500, 460, 513, 450] {
            assert_eq!(w.update(live), None, "{live}");
            assert!(live as u64 * w.current() <= 128 * MIB || live > 512);
        }
        // 448 x 256 KiB is seven eighths of the budget.
        assert_eq!(w.update(448), Some(256 * KIB));
        assert_eq!(w.update(3_000), Some(32 * KIB));
        assert_eq!(w.update(0), Some(256 * KIB));
    }

    #[test]
    fn a_configured_window_below_the_floor_is_the_floor_and_a_small_budget_halves_at_once() {
        let mut w = SendWindows::new(KIB, 128 * MIB);
        assert_eq!(w.current(), FLOOR);
        assert_eq!(w.update(100_000), None);
        let mut w = SendWindows::new(256 * KIB, MIB);
        assert_eq!(w.update(8), Some(128 * KIB));
        assert_eq!(w.update(1), Some(256 * KIB));
    }
}

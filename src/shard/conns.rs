//! The shard's connections: firing their deadlines, driving the ones that changed
//! (QUIC events → HTTP/3 → the application), and transmitting for them in batches.
//! A connection is "dirty" (listed once in `Shard::dirty`) from the moment something
//! reaches it until its packets are handed to the kernel; `transmit` re-arms its timer.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use crate::meeting::CloseCode;
use crate::quic::endpoint::mark;

use super::stats::add_h3;
use super::{Shard, MEETING_TIMER, STOP_FLUSH};

/// A connection whose armed deadline is closer than this gets a new timer entry when its
/// deadline moves later (see `transmit`).
const REARM_NEAR: Duration = Duration::from_secs(1);
/// How much later a deadline must move before it gets a new entry (see `needs_entry`).
const REARM_SLACK: Duration = Duration::from_millis(5);

impl Shard {
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if key == MEETING_TIMER {
                if self.meetings_armed == Some(at) {
                    self.meetings_armed = None;
                }
                if self.meetings.poll_timeout().is_some_and(|t| t <= now) {
                    let mut d = delivery!(self, now);
                    self.meetings.handle_timeout(&mut d, now);
                }
                self.arm_meetings();
                continue;
            }
            // Entries are never removed from the heap: one that is not the connection's
            // armed time was superseded by an earlier one (or by a new connection in
            // the same slot) and was already handled.
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.armed == Some(at)) else {
                continue;
            };
            conn.armed = None;
            match conn.poll_timeout() {
                Some(t) if t <= now => {
                    let timeouts = conn.h3.stats().connect_timeouts;
                    let mut ctx = self.env.ctx(now, &mut self.meeting_cmds);
                    conn.handle_timeout(&mut ctx);
                    if conn.h3.stats().connect_timeouts > timeouts {
                        self.env.metrics.refusal("connect_timeout");
                    }
                    mark(conn, key, &mut self.dirty);
                }
                // The deadline moved later (a loss-detection timer cleared by an ACK,
                // say): nothing to do now, only re-arm.
                Some(t) => {
                    conn.armed = Some(t);
                    self.timers.push(Reverse((t, key)));
                }
                None => {}
            }
        }
    }

    /// Drop heap entries that no longer match their connection's armed deadline from
    /// the top, so the next deadline the loop sleeps until is a real one.
    pub(super) fn prune_timers(&mut self) {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            let live = if key == MEETING_TIMER {
                self.meetings_armed == Some(at)
            } else {
                self.conns.get_mut(key).is_some_and(|c| c.armed == Some(at))
            };
            if live {
                return;
            }
            self.timers.pop();
        }
    }

    /// Drive every connection that received something or has a timer due.
    /// Returns whether any connection had events beyond acknowledgements.
    pub(super) fn drive(&mut self, now: Instant) -> bool {
        let mut events = false;
        for i in 0..self.dirty.len() {
            let handle = self.dirty[i];
            let Some(conn) = self.conns.get_mut(handle) else {
                continue;
            };
            let mut ctx = self.env.ctx(now, &mut self.meeting_cmds);
            let driven = conn.drive(&mut ctx);
            events |= driven.events;
            if driven.connected {
                self.quic.handshake_done();
                self.env
                    .metrics
                    .handshake_duration
                    .observe(now.saturating_duration_since(conn.started).as_secs_f64());
            }
        }
        events
    }

    /// Transmit for every queued connection, then forget the drained ones and re-arm
    /// timers.
    pub(super) fn transmit(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.dirty.len() {
            let handle = self.dirty[i];
            i += 1;
            let Some(conn) = self.conns.get_mut(handle) else {
                continue;
            };
            conn.queued = false;
            let mut drained = self.quic.exchange_events(handle, conn);
            if !drained {
                if self.quic.transmit(now, conn) {
                    // More to send than one pass allows: again in the next pass.
                    self.carry.push(handle);
                }
                drained = self.quic.exchange_events(handle, conn);
            }
            if drained {
                self.drop_conn(now, handle);
                continue;
            }
            if let Some(t) = conn.poll_timeout() {
                // Earlier: arm it. Later, from a deadline that was near: re-arm, so
                // the old entry (a loss-detection timer an ACK just cleared, say) does
                // not wake the loop for nothing; `prune_timers` drops it unseen. A
                // far deadline that merely moved (the idle timer, on every packet)
                // keeps its entry and is re-armed when it fires.
                if needs_entry(conn.armed, t, now) {
                    conn.armed = Some(t);
                    self.timers.push(Reverse((t, handle)));
                }
            }
        }
        self.dirty.clear();
        for handle in self.carry.drain(..) {
            if let Some(conn) = self.conns.get_mut(handle) {
                mark(conn, handle, &mut self.dirty);
            }
        }
        self.quic.flush();
        if !self.fanouts.is_empty() {
            let done = Instant::now();
            for at in self.fanouts.drain(..) {
                self.env
                    .metrics
                    .fanout_duration
                    .observe(done.saturating_duration_since(at).as_secs_f64());
            }
        }
        self.quic.reclaim();
    }

    fn drop_conn(&mut self, now: Instant, handle: usize) {
        let Some(mut conn) = self.conns.remove(handle) else {
            return;
        };
        let mut ctx = self.env.ctx(now, &mut self.meeting_cmds);
        conn.on_drained(&mut ctx);
        self.quic.forget(&conn);
        add_h3(&mut self.h3_gone, conn.h3.stats());
        tracing::debug!(shard = %self.env.id, conn = handle, "connection drained");
    }

    /// The mesh is stopping: close every session, let the closes go out, then stop.
    pub(super) async fn stop(&mut self) {
        let now = Instant::now();
        let handles: Vec<usize> = self.conns.handles().collect();
        for handle in handles {
            if let Some(conn) = self.conns.get_mut(handle) {
                let mut ctx = self.env.ctx(now, &mut self.meeting_cmds);
                conn.shutdown(&mut ctx, CloseCode::Draining);
                mark(conn, handle, &mut self.dirty);
            }
        }
        let until = now + STOP_FLUSH;
        while Instant::now() < until && !self.conns.is_empty() {
            self.pass();
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Whether a connection whose timer entry is `armed` needs a new entry for its next
/// deadline `t`: when it has none, when `t` is earlier, or when `t` is well later and
/// the armed entry is near (it would wake the loop for nothing). A deadline that only
/// creeps on (the loss-detection timer of a connection sending all the time) keeps its
/// entry: one early wake-up per [`REARM_SLACK`] costs less than an entry per packet.
fn needs_entry(armed: Option<Instant>, t: Instant, now: Instant) -> bool {
    armed.is_none_or(|a| t < a || (t > a + REARM_SLACK && a < now + REARM_NEAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_gets_a_new_entry_when_earlier_or_moved_away_from_a_near_one() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        // Nothing armed, or an earlier deadline: a new entry.
        assert!(needs_entry(None, ms(30_000), now));
        assert!(needs_entry(Some(ms(30_000)), ms(40), now));
        // A cleared loss-detection timer: the near entry is replaced by the far one.
        assert!(needs_entry(Some(ms(40)), ms(30_000), now));
        // The idle timer moving on with every packet: the far entry stays.
        assert!(!needs_entry(Some(ms(30_000)), ms(30_005), now));
        // Unchanged, or a near deadline creeping on with every packet sent: the entry
        // stays and re-arms when it fires.
        assert!(!needs_entry(Some(ms(40)), ms(40), now));
        assert!(!needs_entry(Some(ms(40)), ms(42), now));
    }
}

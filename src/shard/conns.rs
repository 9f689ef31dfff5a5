//! The shard's connections: firing their deadlines, driving the ones that changed
//! (QUIC events → HTTP/3 → the application), and transmitting for them in batches.
//! A connection is "dirty" (listed once in `Shard::dirty`) from the moment something
//! reaches it until its packets are handed to the kernel; `transmit` re-arms its timer.

use std::time::{Duration, Instant};

use crate::meeting::CloseCode;
use crate::quic::endpoint::mark;

use super::stats::add_h3;
use super::{Shard, MEETING_TIMER, STOP_FLUSH};

impl Shard {
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_due(now) {
            if key == MEETING_TIMER {
                if self.meetings.poll_timeout().is_some_and(|t| t <= now) {
                    let mut d = delivery!(self, now);
                    self.meetings.handle_timeout(&mut d, now);
                }
                self.arm_meetings();
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
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
                // The deadline crept on since it was armed: nothing to do now, only
                // re-arm.
                next => self.timers.update(key, next),
            }
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
            let quic = &mut self.quic;
            let driven = conn.drive(&mut ctx, &mut |c| quic.handshake_done(c));
            events |= driven.events;
            if driven.connected {
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
            self.conns
                .read_streams_ahead(i, self.dirty[i..].iter().copied());
            let handle = self.dirty[i];
            i += 1;
            self.conns.prefetch_ahead(&self.dirty[i..]);
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
            let next = conn.poll_timeout();
            self.timers.update(handle, next);
        }
        self.quic.reclaim(&self.dirty);
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
        self.close_over_budget(now);
    }

    /// Close the connections whose clients made them hold more received data than
    /// their budget (`DatagramPool`); their closes go out in the next pass.
    fn close_over_budget(&mut self, now: Instant) {
        for handle in self.quic.take_over_budget() {
            let Some(conn) = self.conns.get_mut(handle) else {
                continue;
            };
            if conn.h3.is_closed() {
                continue;
            }
            conn.h3.excessive_load(&mut conn.quic, now);
            self.env.metrics.refusal("receive_budget");
            tracing::debug!(shard = %self.env.id, conn = handle, remote = %conn.remote, "connection closed: received data held past its budget");
            mark(conn, handle, &mut self.dirty);
        }
    }

    fn drop_conn(&mut self, now: Instant, handle: usize) {
        let Some(mut conn) = self.conns.remove(handle) else {
            return;
        };
        self.timers.disarm(handle);
        let mut ctx = self.env.ctx(now, &mut self.meeting_cmds);
        conn.on_drained(&mut ctx);
        self.quic.forget(handle, &conn);
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

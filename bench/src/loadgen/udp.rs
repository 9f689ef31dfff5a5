//! UDP datagrams the generator's QUIC connections sent and received, from quinn's own
//! per-connection counters. The server sends what the generator receives, so over a
//! measured window these are the datagrams per operation in each direction, for any
//! server (ours or another stack): how well both ends pack messages and
//! acknowledgements into packets. Every datagram costs each end its share of a system
//! call, a trip through the kernel's UDP stack and a packet protection.
//!
//! Sessions register their connection once established; a mark sums the counters of
//! every connection registered so far. Connections that have closed are folded into a
//! running total (their handles dropped), at most once per doubling of the live list,
//! so a run that opens and closes connections holds only the live ones.

use std::sync::Mutex;

/// Datagrams counted so far, both directions (the generator's view).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpTotals {
    /// Datagrams the generator sent: client → server.
    pub sent: u64,
    /// Datagrams the generator received: server → client.
    pub received: u64,
}

impl UdpTotals {
    fn add(&mut self, s: &quinn::ConnectionStats) {
        self.sent += s.udp_tx.datagrams;
        self.received += s.udp_rx.datagrams;
    }
}

/// The connections of one run. Locked only to register a connection and at marks.
#[derive(Default)]
pub struct UdpLedger {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: Vec<quinn::Connection>,
    closed: UdpTotals,
    /// Fold closed connections when `live` reaches this length.
    fold_at: usize,
}

impl Inner {
    fn fold_closed(&mut self) {
        let closed = &mut self.closed;
        self.live.retain(|c| {
            if c.close_reason().is_some() {
                closed.add(&c.stats());
                false
            } else {
                true
            }
        });
        self.fold_at = (2 * self.live.len()).max(64);
    }
}

impl UdpLedger {
    /// Count `conn`'s datagrams from now on (and what it exchanged so far).
    pub fn register(&self, conn: &quinn::Connection) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.live.len() >= inner.fold_at {
            inner.fold_closed();
        }
        inner.live.push(conn.clone());
    }

    /// Everything counted so far; None when no connection was ever registered.
    pub fn totals(&self) -> Option<UdpTotals> {
        let inner = self.inner.lock().ok()?;
        if inner.live.is_empty() && inner.closed == UdpTotals::default() {
            return None;
        }
        let mut t = inner.closed;
        for c in &inner.live {
            t.add(&c.stats());
        }
        Some(t)
    }
}

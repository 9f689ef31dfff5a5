//! Right-sized buffers for received datagrams, reused from pass to pass, and the
//! bounded queue of datagrams routed to their connections ahead of their hand-over.
//!
//! quinn-proto takes each datagram as an owned `BytesMut` and may keep slices of it
//! (stream data not read yet, out-of-order chunks, queued datagrams). If those slices
//! pointed into the 64 KiB receive slot, one unread byte would pin the whole slot. So
//! each datagram is copied into its own buffer of [`DATAGRAM_BUF`] bytes, and the buffer
//! returns to the pool once QUIC has let go of it. In the steady state nothing is
//! allocated per datagram. What a connection keeps past a pass counts against its
//! budget ([`DatagramPool`]).

use std::vec;

use bytes::BytesMut;

/// Capacity of one pooled buffer: the largest datagram a QUIC peer sends to us
/// (`MAX_UDP_PAYLOAD`, 1472) fits with room to spare.
pub const DATAGRAM_BUF: usize = 2048;
/// Buffers kept for reuse at most.
const POOL_MAX: usize = 4096;
/// The connection of a lent buffer whose datagram reached none (yet).
const NO_CONN: usize = usize::MAX;

/// A buffer lent to QUIC: the unused tail we keep (it becomes reusable once QUIC drops
/// the head), the connection its datagram went to, and what it counts against that
/// connection while held: the whole buffer, whatever the datagram's size.
struct Lent {
    tail: BytesMut,
    conn: usize,
    charge: u64,
}

impl Lent {
    /// Whether QUIC let go of the head: then the tail owns the whole buffer again.
    fn released(&mut self) -> bool {
        self.tail.try_reclaim(DATAGRAM_BUF)
    }
}

/// The buffers one connection's datagrams still hold after the pass they arrived in.
#[derive(Default)]
struct Holder {
    bufs: Vec<Lent>,
    bytes: u64,
}

/// A free list of datagram buffers, the ones lent to QUIC during the current pass, and
/// the ones each connection still holds after it.
///
/// quinn-proto keeps out-of-order and unread stream data as slices of the datagrams it
/// arrived in, and judges the memory that pins by the packets' payload sizes. A client
/// that sends its stream data a byte per packet, or leaves gaps, therefore makes it keep
/// a whole buffer per byte, far beyond its windows, before quinn-proto compacts (about
/// 2,000 pieces per stream). So the pool follows every buffer a connection keeps past a
/// pass, charged at its full size, and reports the connections that hold more than
/// their budget; the shard closes those.
pub struct DatagramPool {
    free: Vec<BytesMut>,
    /// Buffers lent during this pass; reclaimed, or moved to their connection's
    /// holder, at its end.
    lent: Vec<Lent>,
    /// By connection handle.
    held: Vec<Holder>,
    /// Most bytes of buffers one connection may hold.
    budget: u64,
    /// Connections found holding more than `budget`, for the shard to close.
    over: Vec<usize>,
    stats: PoolStats,
}

/// Plain counters of the pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated because none was free.
    pub allocated: u64,
    /// Buffers still held by QUIC at the end of the pass they were lent in.
    pub kept: u64,
    /// Buffers connections hold now.
    pub held: u64,
}

impl DatagramPool {
    /// A pool whose connections may each hold `budget` bytes of buffers.
    pub fn new(budget: u64) -> Self {
        Self {
            free: Vec::new(),
            lent: Vec::new(),
            held: Vec::new(),
            budget,
            over: Vec::new(),
            stats: PoolStats::default(),
        }
    }

    /// A buffer holding a copy of `datagram`, owned by the caller (QUIC).
    pub fn copy(&mut self, datagram: &[u8]) -> BytesMut {
        let pooled = if datagram.len() <= DATAGRAM_BUF {
            self.free.pop()
        } else {
            None
        };
        let mut buf = pooled.unwrap_or_else(|| {
            self.stats.allocated += 1;
            BytesMut::with_capacity(datagram.len().max(DATAGRAM_BUF))
        });
        let charge = buf.capacity() as u64;
        buf.extend_from_slice(datagram);
        let head = buf.split();
        self.lent.push(Lent {
            tail: buf,
            conn: NO_CONN,
            charge,
        });
        head
    }

    /// The datagram of the last [`Self::copy`] went to the connection `handle`.
    pub fn lent_to(&mut self, handle: usize) {
        if let Some(last) = self.lent.last_mut() {
            last.conn = handle;
        }
    }

    /// End of a pass. The buffers held by the connections in `touched` (those QUIC or
    /// their application worked on in this pass, the only ones that can have let go
    /// of any) and the buffers lent in this pass go back to the free list once QUIC has
    /// dropped them; the rest are charged to their connections.
    pub fn reclaim(&mut self, touched: &[usize]) {
        // Usually no connection holds any: then the touched ones are not even looked at.
        if self.stats.held > 0 {
            for &handle in touched {
                if let Some(holder) = self.held.get_mut(handle) {
                    if !holder.bufs.is_empty() {
                        release(holder, &mut self.free, &mut self.stats);
                    }
                }
            }
        }
        for mut lent in self.lent.drain(..) {
            if lent.released() {
                if self.free.len() < POOL_MAX && lent.charge == DATAGRAM_BUF as u64 {
                    self.free.push(lent.tail);
                }
                continue;
            }
            self.stats.kept += 1;
            if lent.conn == NO_CONN {
                // QUIC keeps it without a connection we know of: it is QUIC's to free.
                continue;
            }
            if self.held.len() <= lent.conn {
                self.held.resize_with(lent.conn + 1, Holder::default);
            }
            let holder = &mut self.held[lent.conn];
            let was = holder.bytes;
            holder.bytes += lent.charge;
            self.stats.held += 1;
            if was <= self.budget && holder.bytes > self.budget {
                self.over.push(lent.conn);
            }
            holder.bufs.push(lent);
        }
    }

    /// The connection `handle` is gone: nothing it held counts any more (its buffers are
    /// reusable once it has dropped them, and freed with it otherwise).
    pub fn forget(&mut self, handle: usize) {
        if let Some(holder) = self.held.get_mut(handle) {
            release(holder, &mut self.free, &mut self.stats);
            self.stats.held -= holder.bufs.len() as u64;
            *holder = Holder::default();
        }
    }

    /// Connections that came to hold more than their budget since the last call.
    pub fn take_over_budget(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.over)
    }

    /// Bytes of buffers the connection `handle` holds.
    #[cfg(test)]
    pub fn held_bytes(&self, handle: usize) -> u64 {
        self.held.get(handle).map_or(0, |h| h.bytes)
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }
}

/// Return the buffers of `holder` that QUIC has let go of to the free list.
fn release(holder: &mut Holder, free: &mut Vec<BytesMut>, stats: &mut PoolStats) {
    let mut i = 0;
    while i < holder.bufs.len() {
        if holder.bufs[i].released() {
            let lent = holder.bufs.swap_remove(i);
            holder.bytes -= lent.charge;
            stats.held -= 1;
            if free.len() < POOL_MAX && lent.charge == DATAGRAM_BUF as u64 {
                free.push(lent.tail);
            }
        } else {
            i += 1;
        }
    }
}

/// How many received datagrams may be routed before they are handed to their
/// connections (the prefetch needs one; more only hold memory).
pub const ROUTE_AHEAD: usize = 16;

/// Routed events taken out of a [`RouteAhead`], oldest first; `as_slice` shows the
/// ones still to come. Dropping it unfinished still empties the queue.
pub type Routed<'a, E> = vec::Drain<'a, (usize, E)>;

/// Datagrams routed to their connections (by handle) and not handed over yet, in the
/// order received: the hand-over fetches the next one's connection into the cache while
/// the current one handles its datagram. At most [`ROUTE_AHEAD`] are held, however many
/// a client packs into one receive (a full `recvmmsg`, a GRO batch of 64 segments): the
/// push that fills the queue hands its contents back, so it never grows past the
/// capacity it was made with.
pub struct RouteAhead<E> {
    queue: Vec<(usize, E)>,
}

impl<E> Default for RouteAhead<E> {
    fn default() -> Self {
        Self {
            queue: Vec::with_capacity(ROUTE_AHEAD),
        }
    }
}

impl<E> RouteAhead<E> {
    /// Queue `event` for the connection `handle`. Once that fills the queue, every
    /// queued event comes back to be handed over now (and the queue is empty after).
    #[must_use = "a full queue's events are dropped unless handed over"]
    pub fn push(&mut self, handle: usize, event: E) -> Option<Routed<'_, E>> {
        self.queue.push((handle, event));
        (self.queue.len() >= ROUTE_AHEAD).then(|| self.drain())
    }

    /// Take every queued event: the end of a receive batch.
    pub fn drain(&mut self) -> Routed<'_, E> {
        self.queue.drain(..)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receive of many datagrams, handed over whenever the queue hands them back (as
    /// `QuicEndpoint::on_datagram` does): the queue holds at most `ROUTE_AHEAD`, never
    /// reallocates, and every connection sees its datagrams in the order received.
    #[test]
    fn routing_ahead_is_bounded_and_keeps_the_order() {
        let mut routed = RouteAhead::default();
        let capacity = routed.queue.capacity();
        let mut handed = Vec::new();
        let mut prefetched = Vec::new();
        let mut most = 0;
        let mut hand_over = |mut events: Routed<'_, u32>| {
            while let Some((handle, seq)) = events.next() {
                prefetched.push(events.as_slice().first().map(|&(next, _)| next));
                handed.push((handle, seq));
            }
        };
        // 64 segments of one GRO batch and a burst from 7 connections.
        for seq in 0..1_000u32 {
            let handle = if seq < 64 { 3 } else { (seq % 7) as usize };
            if let Some(full) = routed.push(handle, seq) {
                hand_over(full);
            }
            most = most.max(routed.len());
        }
        hand_over(routed.drain());
        assert!(routed.is_empty());
        assert!(most < ROUTE_AHEAD, "handed over as soon as it was full");
        assert_eq!(routed.queue.capacity(), capacity, "never reallocated");
        let order: Vec<u32> = handed.iter().map(|&(_, seq)| seq).collect();
        assert_eq!(order, (0..1_000).collect::<Vec<_>>());
        assert!(handed
            .iter()
            .all(|&(h, seq)| h == if seq < 64 { 3 } else { (seq % 7) as usize }));
        // Each event but the last of a hand-over names the next one's connection.
        assert_eq!(
            prefetched.iter().filter(|p| p.is_none()).count(),
            1_000 / ROUTE_AHEAD + 1
        );
    }

    #[test]
    fn buffers_come_back_once_released() {
        let mut pool = DatagramPool::new(u64::MAX);
        let a = pool.copy(&[1; 1200]);
        let b = pool.copy(&[2; 50]);
        assert_eq!(&a[..3], &[1, 1, 1]);
        assert_eq!(b.len(), 50);
        drop(a);
        pool.reclaim(&[]);
        // `b` is still held: its buffer is not reusable; `a`'s is.
        assert_eq!(pool.free.len(), 1);
        assert_eq!(pool.stats().kept, 1);
        let c = pool.copy(&[3; 10]);
        assert_eq!(pool.stats().allocated, 2, "a's buffer was reused");
        assert_eq!(c.capacity(), 10);
        drop((b, c));
        pool.reclaim(&[]);
        assert_eq!(pool.free.len(), 1);
        assert_eq!(pool.free[0].capacity(), DATAGRAM_BUF);
    }

    #[test]
    fn oversized_datagrams_get_their_own_buffer() {
        let mut pool = DatagramPool::new(u64::MAX);
        let big = pool.copy(&[0; 3000]);
        assert_eq!(big.len(), 3000);
        pool.lent_to(1);
        pool.reclaim(&[]);
        assert_eq!(pool.held_bytes(1), 3000, "charged at its own size");
        drop(big);
        pool.reclaim(&[1]);
        assert_eq!(pool.held_bytes(1), 0);
        assert!(pool.free.is_empty(), "not kept for reuse");
    }

    /// One-byte datagrams QUIC keeps each hold a whole buffer: the connection is charged
    /// for the buffers, reported once it holds more than the budget, and credited only
    /// for what QUIC has let go of, when it was worked on.
    #[test]
    fn held_buffers_count_against_their_connection() {
        let budget = 3 * DATAGRAM_BUF as u64;
        let mut pool = DatagramPool::new(budget);
        let mut heads = Vec::new();
        for i in 0..4u8 {
            heads.push(pool.copy(&[i]));
            pool.lent_to(5);
        }
        // A datagram that reached no connection is not charged to any.
        let stray = pool.copy(&[9]);
        pool.reclaim(&[]);
        assert_eq!(pool.held_bytes(5), 4 * DATAGRAM_BUF as u64);
        assert_eq!(pool.stats().held, 4);
        assert_eq!(pool.stats().kept, 5);
        assert_eq!(pool.take_over_budget(), vec![5]);
        assert!(pool.take_over_budget().is_empty(), "reported once");
        // Released, but the connection was not worked on: still charged.
        heads.truncate(1);
        pool.reclaim(&[]);
        assert_eq!(pool.held_bytes(5), 4 * DATAGRAM_BUF as u64);
        pool.reclaim(&[5]);
        assert_eq!(pool.held_bytes(5), DATAGRAM_BUF as u64);
        assert_eq!(pool.stats().held, 1);
        assert_eq!(pool.free.len(), 3);
        // Over the budget again: reported again.
        for _ in 0..3 {
            heads.push(pool.copy(&[0; 100]));
            pool.lent_to(5);
        }
        pool.reclaim(&[5]);
        assert_eq!(pool.take_over_budget(), vec![5]);
        assert_eq!(pool.stats().allocated, 5, "the free buffers were reused");
        // The connection is gone: nothing counts any more.
        drop(heads);
        pool.forget(5);
        assert_eq!(pool.held_bytes(5), 0);
        assert_eq!(pool.stats().held, 0);
        drop(stray);
    }
}

//! Right-sized buffers for received datagrams, reused from pass to pass, and the
//! bounded queue of datagrams routed to their connections ahead of their hand-over.
//!
//! quinn-proto takes each datagram as an owned `BytesMut` and may keep slices of it
//! (stream data not read yet, out-of-order chunks, queued datagrams). If those slices
//! pointed into the 64 KiB receive slot, one unread byte would pin the whole slot. So
//! each datagram is copied into its own buffer of [`DATAGRAM_BUF`] bytes — about the
//! size of what it holds, which is also what quinn-proto's reassembly accounting
//! assumes — and the buffer returns to the pool once QUIC has let go of it. In the
//! steady state nothing is allocated per datagram.

use std::vec;

use bytes::BytesMut;

/// Capacity of one pooled buffer: the largest datagram a QUIC peer sends to us
/// (`max_udp_payload_size` is advertised at 1472) fits with room to spare.
pub const DATAGRAM_BUF: usize = 2048;
/// Buffers kept for reuse at most.
const POOL_MAX: usize = 4096;

/// A free list of datagram buffers and the ones lent to QUIC during the current pass.
#[derive(Default)]
pub struct DatagramPool {
    free: Vec<BytesMut>,
    /// The unused tails of buffers whose heads QUIC holds; reclaimed at the end of the
    /// pass when QUIC has dropped the heads.
    lent: Vec<BytesMut>,
    stats: PoolStats,
}

/// Plain counters of the pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated because none was free.
    pub allocated: u64,
    /// Buffers still held by QUIC at the end of a pass (not reusable yet).
    pub kept: u64,
}

impl DatagramPool {
    /// A buffer holding a copy of `datagram`, owned by the caller (QUIC).
    pub fn copy(&mut self, datagram: &[u8]) -> BytesMut {
        if datagram.len() > DATAGRAM_BUF {
            self.stats.allocated += 1;
            return BytesMut::from(datagram);
        }
        let mut buf = match self.free.pop() {
            Some(b) => b,
            None => {
                self.stats.allocated += 1;
                BytesMut::with_capacity(DATAGRAM_BUF)
            }
        };
        buf.extend_from_slice(datagram);
        let head = buf.split();
        self.lent.push(buf);
        head
    }

    /// End of a pass: buffers QUIC no longer holds go back to the free list.
    pub fn reclaim(&mut self) {
        let mut i = 0;
        while i < self.lent.len() {
            if self.lent[i].try_reclaim(DATAGRAM_BUF) {
                let buf = self.lent.swap_remove(i);
                if self.free.len() < POOL_MAX {
                    self.free.push(buf);
                }
            } else {
                i += 1;
            }
        }
        // What QUIC still holds is its to keep: stop tracking it so the list stays
        // bounded (the memory is freed when QUIC drops it).
        self.stats.kept += self.lent.len() as u64;
        self.lent.clear();
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
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
        let mut pool = DatagramPool::default();
        let a = pool.copy(&[1; 1200]);
        let b = pool.copy(&[2; 50]);
        assert_eq!(&a[..3], &[1, 1, 1]);
        assert_eq!(b.len(), 50);
        drop(a);
        pool.reclaim();
        // `b` is still held: its buffer is not reusable; `a`'s is.
        assert_eq!(pool.free.len(), 1);
        assert_eq!(pool.stats().kept, 1);
        let c = pool.copy(&[3; 10]);
        assert_eq!(pool.stats().allocated, 2, "a's buffer was reused");
        assert_eq!(c.capacity(), 10);
        drop((b, c));
        pool.reclaim();
        assert_eq!(pool.free.len(), 1);
        assert_eq!(pool.free[0].capacity(), DATAGRAM_BUF);
    }

    #[test]
    fn oversized_datagrams_get_their_own_buffer() {
        let mut pool = DatagramPool::default();
        let big = pool.copy(&[0; 3000]);
        assert_eq!(big.len(), 3000);
        pool.reclaim();
        assert!(pool.free.is_empty());
    }
}

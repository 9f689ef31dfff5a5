//! The shard's QUIC endpoint: one `quinn_proto::Endpoint`, the UDP socket, and the
//! table of the shard's connections.
//!
//! Receiving: one `recvmmsg` fills up to [`RX_SLOTS`] slots; every datagram is routed by
//! its connection ID before `Endpoint::handle` (a datagram for another shard's
//! connection is forwarded there), copied into a pooled right-sized buffer and handed to
//! quinn-proto; the connection it belongs to is marked for the loop to drive.
//! Accepting applies the shard's limits: connections, handshakes in progress, and
//! connections per client address (counted from the handshake), with a stateless Retry
//! under handshake load. Transmitting: every marked connection's packets go into one
//! [`TxBatch`], handed to the kernel with `sendmmsg` (GSO per connection).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::{ConnectionEvent, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig};
use shards::ShardId;

use super::cid::{owner_shard, ShardCidGenerator, CID_LEN};
use super::rx::{DatagramPool, PoolStats, RouteAhead, Routed};
use super::send_window::SendWindows;
use super::udp::{RxBatch, Sent, TxBatch, UdpIo, RX_SLOTS};
use super::{QuicError, QuicShared, RetryMode};
use crate::conn::{App, Conn};
use crate::meeting::ConnKey;
use crate::metrics::ShardMetrics;

/// Forwarded datagrams waiting for this shard's loop.
const FORWARD_QUEUE: usize = 4096;
/// The shortest datagram worth forwarding: a short header (1 byte, our connection ID)
/// and the 4 + 16 bytes from the packet number's start that header protection samples
/// (RFC 9001 §5.4.2). Anything shorter cannot be a packet of ours.
const MIN_FORWARD: usize = 1 + CID_LEN + 4 + 16;
/// Most `recvmmsg` calls per pass before the loop moves on (then it comes back).
const MAX_RECV_CALLS_PER_PASS: usize = 8;
/// Most transmits one connection makes per pass (fairness between connections).
const MAX_TRANSMITS_PER_CONN: usize = 16;
/// Most datagrams in one GSO transmit: enough for signaling bursts, small buffers.
const MAX_SEGMENTS: usize = 16;
/// Connections whose stream state the fan-out's write and the transmit loop read
/// together before working on each ([`Conns::read_streams_ahead`]).
const STREAM_READ_GROUP: usize = 8;

/// A datagram that reached the wrong shard, on its way to its owner. `Send`.
#[derive(Debug)]
pub struct Forwarded {
    pub from: SocketAddr,
    pub data: BytesMut,
}

/// Plain per-shard counters, published by the shard at scrape time.
#[derive(Default, Debug, Clone, Copy)]
pub struct ShardStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub recv_calls: u64,
    pub send_calls: u64,
    pub forwarded_out: u64,
    pub forwarded_in: u64,
    pub forward_dropped: u64,
    /// Datagrams longer than [`super::MAX_UDP_PAYLOAD`], dropped as they were read.
    pub oversized: u64,
    pub send_errors: u64,
}

/// The shard's connections, indexed by quinn-proto's connection handle.
pub struct Conns {
    slots: Vec<Option<Conn>>,
    live: usize,
    /// Their send window, sized to the shard's outbound budget as their number changes.
    windows: SendWindows,
}

impl Conns {
    pub fn new(windows: SendWindows) -> Self {
        Self {
            slots: Vec::new(),
            live: 0,
            windows,
        }
    }

    /// The send window each connection has now.
    pub fn send_window(&self) -> u64 {
        self.windows.current()
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn get_mut(&mut self, handle: usize) -> Option<&mut Conn> {
        self.slots.get_mut(handle).and_then(Option::as_mut)
    }

    /// The connection `key` names, if it is still the one that was given that key.
    pub fn by_key(&mut self, key: ConnKey) -> Option<(usize, &mut Conn)> {
        let handle = handle_of(key.conn);
        let conn = self.get_mut(handle)?;
        (conn.key == key).then_some((handle, conn))
    }

    pub fn handles(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|_| i))
    }

    /// Start fetching `handle`'s connection (its own state and quinn-proto's, about
    /// 6.5 KB held in the slot) into the CPU cache while the caller still works on
    /// another one: a fan-out walks 1,000 connections, each cold since the last mute.
    /// The parts quinn-proto keeps on the heap are not reached.
    pub fn prefetch(&self, handle: usize) {
        // The slot, not `Some(conn)`: looking whether it is occupied would wait for
        // the very memory this asks for.
        if let Some(slot) = self.slots.get(handle) {
            prefetch_bytes(slot);
        }
    }

    /// Start fetching the signaling session `handle`'s connection keeps on the heap.
    /// Finding it reads the connection, so this comes a step after [`Self::prefetch`]
    /// of the same handle, when that read no longer waits for memory.
    pub fn prefetch_app(&self, handle: usize) {
        if let Some(Some(conn)) = self.slots.get(handle) {
            if let App::Signaling(s) = &conn.app {
                prefetch_bytes(&**s);
            }
        }
    }

    /// Start fetching the keys that seal what `handle`'s connection sends (`send`) or
    /// open what it receives. Finding them reads the connection, so this too comes a
    /// step after [`Self::prefetch`] of the same handle.
    pub fn prefetch_keys(&self, handle: usize, send: bool) {
        if let Some(Some(conn)) = self.slots.get(handle) {
            let spans = if send {
                &conn.keys.send
            } else {
                &conn.keys.receive
            };
            for span in spans {
                prefetch_span(span.addr, span.len);
            }
        }
    }

    /// Called with the position `at` in a list of handles the caller works through and
    /// the handles from there on: at the start of each group of [`STREAM_READ_GROUP`],
    /// [`Conn::touch_stream`] every connection of the group before the caller works on
    /// any of them, so that their misses overlap.
    pub fn read_streams_ahead(&mut self, at: usize, ahead: impl Iterator<Item = usize>) {
        if at % STREAM_READ_GROUP == 0 {
            for handle in ahead.take(STREAM_READ_GROUP) {
                if let Some(conn) = self.get_mut(handle) {
                    conn.touch_stream();
                }
            }
        }
    }

    /// [`Self::prefetch`] the connection `ahead[1]` names and [`Self::prefetch_app`]
    /// the one `ahead[0]` names (prefetched a step before): called with the rest of a
    /// list of handles while working on the one before it.
    pub fn prefetch_ahead(&self, ahead: &[usize]) {
        if let Some(&next) = ahead.get(1) {
            self.prefetch(next);
        }
        if let Some(&next) = ahead.first() {
            self.prefetch_app(next);
            self.prefetch_keys(next, true);
        }
    }

    fn insert(&mut self, handle: usize, mut conn: Conn) {
        if self.slots.len() <= handle {
            self.slots.resize_with(handle + 1, || None);
        }
        conn.quic.set_send_window(self.windows.current());
        if self.slots[handle].replace(conn).is_none() {
            self.live += 1;
            self.resize_windows();
        }
    }

    pub fn remove(&mut self, handle: usize) -> Option<Conn> {
        let conn = self.slots.get_mut(handle)?.take()?;
        self.live -= 1;
        self.resize_windows();
        Some(conn)
    }

    /// Gives every connection the window their number allows, when it changed: at most
    /// a few times as the shard fills and empties ([`SendWindows::update`]).
    fn resize_windows(&mut self) {
        if let Some(window) = self.windows.update(self.live) {
            tracing::debug!(connections = self.live, window, "send window resized");
            for conn in self.slots.iter_mut().flatten() {
                conn.quic.set_send_window(window);
            }
        }
    }
}

/// The slot a connection key names: its low 32 bits (the high ones are a serial, so a
/// reused slot never takes an older connection's frames).
pub fn handle_of(conn: u64) -> usize {
    (conn & 0xffff_ffff) as usize
}

/// One shard's QUIC endpoint. `!Send`: it lives on its executor.
pub struct QuicEndpoint {
    id: ShardId,
    /// The data shards (ids `0..shards`); higher mesh ids are not connections' owners.
    shards: usize,
    shared: QuicShared,
    udp: UdpIo,
    endpoint: Endpoint,
    rx: RxBatch,
    tx: TxBatch,
    pool: DatagramPool,
    forwarded: VecDeque<Forwarded>,
    /// Datagrams routed to their connections but not handed over yet (see
    /// `hand_over`); empty between batches.
    routed: RouteAhead<ConnectionEvent>,
    handshaking: usize,
    /// Connections per client, keyed by [`PerClient::key`], whose address is known to be
    /// the client's: validated by a Retry, or by a completed handshake.
    per_ip: HashMap<IpAddr, u32>,
    /// Handshakes per client from addresses not validated yet, which anyone can forge:
    /// they become one of `per_ip`'s when the handshake completes ([`ClientCount`]).
    unvalidated: HashMap<IpAddr, u32>,
    /// Handshakes in progress per client, validated or not: who holds the most when the
    /// shard's handshakes are all taken ([`QuicEndpoint::find_room`]).
    handshakes_by_client: HashMap<IpAddr, u32>,
    /// Handshakes by client in the order they began, for finding a client's oldest
    /// without walking every connection. Entries of handshakes that ended stay until
    /// the queue reaches twice the shard's handshakes, when they are dropped.
    handshake_order: VecDeque<(IpAddr, ConnKey)>,
    per_client: PerClient,
    serial: u32,
    stats: ShardStats,
    /// Refusals and retries are rare: counted in Prometheus as they happen.
    metrics: ShardMetrics,
}

/// A handshake that gives way to a proven client's when the shard's are all taken: its
/// place in the queue of handshakes, its connection, and the client holding it.
#[derive(Clone, Copy, Debug)]
struct Room {
    at: usize,
    handle: usize,
    holder: IpAddr,
}

/// The per-client connection limit (`--max-sessions-per-ip`), and what one client is.
#[derive(Clone, Copy, Debug)]
pub struct PerClient {
    /// Connections one client may hold on this shard.
    pub max: u32,
    /// Leading bits of an IPv6 address that name one client (`--ipv6-client-prefix`):
    /// a single subscriber is usually given a whole /64, so counting exact addresses
    /// would let one client spread across 2^64 of them. 128 counts exact addresses.
    pub ipv6_prefix: u8,
}

impl PerClient {
    /// The address `ip` is counted under: an IPv4 address (or one mapped into IPv6 by a
    /// dual-stack socket) as it is, an IPv6 address cut to its first `ipv6_prefix` bits.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }
}

impl QuicEndpoint {
    /// Bind this shard's socket on `addr` (SO_REUSEPORT), one of `shards`.
    pub fn bind(
        id: ShardId,
        shards: usize,
        addr: SocketAddr,
        shared: QuicShared,
        per_client: PerClient,
        metrics: ShardMetrics,
    ) -> Result<Self, QuicError> {
        let shard_byte = u8::try_from(id.0).map_err(|_| QuicError::TooManyShards(id.0))?;
        let udp = UdpIo::bind(
            addr,
            Some(shared.args.udp_recv_buffer_bytes),
            Some(shared.args.udp_send_buffer_bytes),
        )
        .map_err(|source| QuicError::Bind { addr, source })?;
        udp.buffers().warn_if_capped();
        let mut config = EndpointConfig::new(shared.reset_key.clone());
        config.cid_generator(move || Box::new(ShardCidGenerator::from_byte(shard_byte)));
        // What we ask peers to send us at most (RFC 9000 §18.2 max_udp_payload_size).
        config
            .max_udp_payload_size(super::ADVERTISED_UDP_PAYLOAD)
            .map_err(|e| QuicError::Config(e.to_string()))?;
        let endpoint = Endpoint::new(Arc::new(config), Some(shared.server.clone()), true, None);
        let budget = shared.args.receive_budget_bytes();
        let (gso, gro) = udp.offloads();
        tracing::debug!(shard = %id, local = %udp.local_addr(), gso, gro, "QUIC endpoint bound");
        Ok(Self {
            id,
            shards,
            shared,
            udp,
            endpoint,
            rx: RxBatch::new(),
            tx: TxBatch::new(),
            // A client within its windows sending full-sized packets keeps at most about
            // 1.7 times its receive budget in buffers (2 KiB each for about 1,200 bytes of
            // payload); twice the budget leaves it room and bounds every other client.
            pool: DatagramPool::new(2 * budget),
            forwarded: VecDeque::new(),
            handshaking: 0,
            per_ip: HashMap::new(),
            unvalidated: HashMap::new(),
            handshakes_by_client: HashMap::new(),
            handshake_order: VecDeque::new(),
            per_client,
            serial: 0,
            routed: RouteAhead::default(),
            stats: ShardStats::default(),
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr()
    }

    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    pub fn handshaking(&self) -> usize {
        self.handshaking
    }

    /// The socket's descriptor: the loop parks on it.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.udp.raw_fd()
    }

    /// A datagram another shard received for one of ours; a full queue drops it.
    pub fn push_forwarded(&mut self, fwd: Forwarded) {
        if self.forwarded.len() >= FORWARD_QUEUE {
            self.stats.forward_dropped += 1;
            return;
        }
        self.forwarded.push_back(fwd);
    }

    /// Receive what the socket holds (bounded). Every connection that got something is
    /// pushed on `dirty` (once: see `Conn::queued`). Returns whether more may be
    /// waiting (the last receive filled every slot, or the pass's bound was reached);
    /// otherwise the socket was drained.
    /// `forward` takes datagrams for other shards and hands them back when their queue
    /// is full. Returns whether anything arrived.
    pub fn receive(
        &mut self,
        now: Instant,
        conns: &mut Conns,
        dirty: &mut Vec<usize>,
        forward: &mut dyn FnMut(ShardId, Forwarded) -> Result<(), Forwarded>,
    ) -> bool {
        for _ in 0..MAX_RECV_CALLS_PER_PASS {
            let n = match self.udp.recv_batch(&mut self.rx) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(shard = %self.id, error = %e, "UDP receive error");
                    0
                }
            };
            self.stats.recv_calls += 1;
            if n == 0 {
                return false;
            }
            // The slots are read while datagrams are handled, which needs the rest of
            // `self`: move the batch out for the duration (an empty placeholder holds
            // nothing and allocates nothing).
            let rx = std::mem::take(&mut self.rx);
            for (got, slot) in rx.received() {
                for datagram in slot.chunks(got.stride) {
                    self.on_datagram(now, got.from, datagram, true, conns, dirty, forward);
                }
            }
            self.rx = rx;
            hand_over(self.routed.drain(), conns, dirty);
            if n < RX_SLOTS {
                return false;
            }
        }
        true
    }

    /// Handle the datagrams other shards forwarded here. Returns whether there were any.
    pub fn receive_forwarded(
        &mut self,
        now: Instant,
        conns: &mut Conns,
        dirty: &mut Vec<usize>,
    ) -> bool {
        let any = !self.forwarded.is_empty();
        // Never called: a forwarded datagram is not forwarded again.
        let mut keep = |_: ShardId, f: Forwarded| Err(f);
        while let Some(fwd) = self.forwarded.pop_front() {
            self.stats.forwarded_in += 1;
            self.on_datagram(now, fwd.from, &fwd.data, false, conns, dirty, &mut keep);
        }
        hand_over(self.routed.drain(), conns, dirty);
        any
    }

    /// One datagram (received here, or forwarded when `!may_forward`).
    #[allow(clippy::too_many_arguments)]
    fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        may_forward: bool,
        conns: &mut Conns,
        dirty: &mut Vec<usize>,
        forward: &mut dyn FnMut(ShardId, Forwarded) -> Result<(), Forwarded>,
    ) {
        self.stats.datagrams_in += 1;
        // Larger than we accept (a client's Initials included): dropped before it is
        // copied, whichever shard it names. Anyone can send these, with no handshake and
        // up to 64 KiB each; copied, each took a buffer of its size for QUIC to drop.
        if data.len() > usize::from(super::MAX_UDP_PAYLOAD) {
            self.stats.oversized += 1;
            return;
        }
        // Source port 0 is reserved: no answer can be sent there (the kernel refuses
        // it), so nothing such a datagram starts could ever finish. Any host can put it
        // in a datagram's header; dropped before QUIC sees it.
        if from.port() == 0 {
            return;
        }
        if may_forward {
            if let Some(owner) = owner_shard(data, CID_LEN, self.shards) {
                if owner != self.id {
                    // Too short to be a packet of ours: dropped here rather than copied
                    // to another shard.
                    if data.len() < MIN_FORWARD {
                        self.stats.forward_dropped += 1;
                        return;
                    }
                    let fwd = Forwarded {
                        from,
                        data: BytesMut::from(data),
                    };
                    match forward(owner, fwd) {
                        Ok(()) => self.stats.forwarded_out += 1,
                        Err(_) => self.stats.forward_dropped += 1,
                    }
                    return;
                }
            }
        }
        let buf = self.pool.copy(data);
        let out = self.tx.next_buf();
        match self.endpoint.handle(now, from, None, None, buf, out) {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                self.pool.lent_to(handle.0);
                // Routed ahead only as far as the prefetch needs: however many
                // datagrams a client packs into one batch, a few are held at once.
                if let Some(full) = self.routed.push(handle.0, event) {
                    hand_over(full, conns, dirty);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.on_incoming(now, incoming, conns, dirty)
            }
            Some(DatagramEvent::Response(t)) => self.queue(t.destination, t.size, t.segment_size),
            None => {}
        }
    }

    fn on_incoming(
        &mut self,
        now: Instant,
        incoming: quinn_proto::Incoming,
        conns: &mut Conns,
        dirty: &mut Vec<usize>,
    ) {
        // Copies: `find_room` below needs the endpoint whole.
        let args = &self.shared.args;
        let (retry, retry_threshold) = (args.retry, args.retry_threshold);
        let (max_sessions, max_handshakes) =
            (args.max_sessions_per_shard, args.max_handshakes_per_shard);
        let handshake_timeout = args.handshake_timeout();
        let ip = self.per_client.key(incoming.remote_address().ip());
        let validated = incoming.remote_address_validated();
        // Connections count toward the per-client limit from the handshake, with or
        // without a session. Those from an address not validated yet count only beside
        // the client's others: anyone can write a client's address into an Initial, so
        // such an Initial over the limit gets a Retry (when one may be sent) rather
        // than a refusal, and forged Initials cannot use up a client's connections.
        let sessions = count(&self.per_ip, ip);
        let over_client = if validated {
            sessions >= self.per_client.max
        } else {
            sessions + count(&self.unvalidated, ip) >= self.per_client.max
        };
        let may_retry = retry != RetryMode::Never && !validated && incoming.may_retry();
        // With every handshake taken, an Initial from an address not yet validated gets
        // a Retry (the shard keeps nothing for it). One whose address is proven takes
        // the place of the oldest handshake of the client holding the most, when that
        // client holds more than this one would: clients with a few addresses cannot
        // hold every handshake of the shard and keep others out.
        // The handshake that gives way is closed only once this one is accepted: an
        // Initial quinn-proto then refuses (a ClientHello it cannot answer) closes
        // nobody's.
        let full = self.handshaking >= max_handshakes;
        let room = if full && !may_retry && validated {
            self.find_room(ip, conns)
        } else {
            None
        };
        let refusal = if conns.len() >= max_sessions {
            Some("max_sessions_per_shard")
        } else if over_client && !may_retry {
            Some("max_sessions_per_ip")
        } else if full && !may_retry && room.is_none() {
            Some("max_handshakes_per_shard")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.metrics.refusal(reason);
            let out = self.tx.next_buf();
            let t = self.endpoint.refuse(incoming, out);
            return self.queue(t.destination, t.size, t.segment_size);
        }
        let want_retry = over_client
            || full
            || match retry {
                RetryMode::Always => true,
                RetryMode::Auto => self.handshaking >= retry_threshold,
                RetryMode::Never => false,
            };
        if want_retry && may_retry {
            let out = self.tx.next_buf();
            match self.endpoint.retry(incoming, out) {
                Ok(t) => {
                    self.metrics.quic_retries.inc();
                    return self.queue(t.destination, t.size, t.segment_size);
                }
                Err(e) => {
                    self.endpoint.ignore(e.into_incoming());
                    return;
                }
            }
        }
        let out = self.tx.next_buf();
        let (accepted, keys_at) =
            super::crypto::accept_noting_keys(&mut self.endpoint, incoming, now, out);
        match accepted {
            Ok((handle, quic)) => {
                if let Some(room) = room {
                    self.make_room(now, room, conns, dirty);
                }
                self.serial = self.serial.wrapping_add(1);
                let key = ConnKey {
                    shard: self.id.0,
                    conn: (u64::from(self.serial) << 32) | handle.0 as u64,
                };
                self.pool.lent_to(handle.0);
                let mut conn = Conn::new(quic, key, now, handshake_timeout);
                conn.keys_at = keys_at;
                if validated {
                    *self.per_ip.entry(ip).or_insert(0) += 1;
                    conn.counted = ClientCount::Connection;
                } else {
                    *self.unvalidated.entry(ip).or_insert(0) += 1;
                    conn.counted = ClientCount::Unvalidated;
                }
                self.handshaking += 1;
                *self.handshakes_by_client.entry(ip).or_insert(0) += 1;
                tracing::debug!(shard = %self.id, conn = handle.0, remote = %conn.remote, "connection accepted");
                mark(&mut conn, handle.0, dirty);
                conns.insert(handle.0, conn);
                if self.handshake_order.len() >= 2 * max_handshakes.max(1) {
                    self.handshake_order
                        .retain(|(_, k)| conns.by_key(*k).is_some_and(|(_, c)| c.handshaking));
                }
                self.handshake_order.push_back((ip, key));
            }
            Err(e) => {
                tracing::debug!(shard = %self.id, error = %e.cause, "handshake refused");
                if let Some(t) = e.response {
                    self.queue(t.destination, t.size, t.segment_size);
                }
            }
        }
    }

    /// Every handshake of the shard is taken, and client `ip` (its address proven)
    /// starts one more: find the oldest handshake of the client holding the most, if
    /// that client holds more than `ip` will with this one. None when no client does:
    /// the new one is refused. Runs only while the handshakes are all taken, once per
    /// Initial whose address was proven; unless every client holds one handshake (then
    /// no client holds more, and it returns at once), it walks the clients holding
    /// handshakes and the queue of handshakes, looking up only the holder's.
    fn find_room(&mut self, ip: IpAddr, conns: &mut Conns) -> Option<Room> {
        if self.handshakes_by_client.len() >= self.handshaking {
            return None;
        }
        let theirs = count(&self.handshakes_by_client, ip) + 1;
        let (&holder, _) = self
            .handshakes_by_client
            .iter()
            .filter(|(_, n)| **n > theirs)
            .max_by_key(|(_, n)| **n)?;
        for (at, (who, key)) in self.handshake_order.iter().enumerate() {
            if *who != holder {
                continue;
            }
            if let Some((handle, c)) = conns.by_key(*key) {
                // Not one whose Finished has arrived, its Connected not yet driven.
                if c.handshaking && c.quic.is_handshaking() {
                    return Some(Room { at, handle, holder });
                }
            }
        }
        None
    }

    /// Close the handshake [`Self::find_room`] found, for the one just accepted (counted
    /// as a `max_handshakes_per_shard` refusal).
    fn make_room(&mut self, now: Instant, room: Room, conns: &mut Conns, dirty: &mut Vec<usize>) {
        let Room { at, handle, holder } = room;
        self.handshake_order.remove(at);
        let Some(conn) = conns.get_mut(handle) else {
            return;
        };
        conn.close_for_another_handshake(now);
        // Its slot is free now; what it counts against its client stays until it drains.
        conn.handshaking = false;
        self.handshaking = self.handshaking.saturating_sub(1);
        release(&mut self.handshakes_by_client, holder);
        self.metrics.refusal("max_handshakes_per_shard");
        mark(conn, handle, dirty);
    }

    /// The handshake of `conn` completed, which validates its address: it now counts
    /// among its client's connections. False when the client already holds as many as it
    /// may (connections from validated addresses came in during the handshake): the
    /// caller closes it, counted as a `max_sessions_per_ip` refusal.
    pub fn handshake_done(&mut self, conn: &mut Conn) -> bool {
        self.handshaking = self.handshaking.saturating_sub(1);
        let ip = self.per_client.key(conn.remote.ip());
        release(&mut self.handshakes_by_client, ip);
        if conn.counted != ClientCount::Unvalidated {
            return true;
        }
        release(&mut self.unvalidated, ip);
        let sessions = self.per_ip.entry(ip).or_insert(0);
        if *sessions >= self.per_client.max {
            conn.counted = ClientCount::None;
            return false;
        }
        *sessions += 1;
        conn.counted = ClientCount::Connection;
        true
    }

    /// Exchange `conn`'s endpoint events with the endpoint. True once it is drained
    /// (forgotten by quinn-proto): the caller then removes it with [`Self::forget`].
    pub fn exchange_events(&mut self, handle: usize, conn: &mut Conn) -> bool {
        let mut drained = false;
        while let Some(ev) = conn.quic.poll_endpoint_events() {
            drained |= ev.is_drained();
            if let Some(back) = self.endpoint.handle_event(ConnectionHandle(handle), ev) {
                conn.quic.handle_event(back);
            }
        }
        drained
    }

    /// A drained connection leaves the shard: release what it counted against.
    pub fn forget(&mut self, handle: usize, conn: &Conn) {
        self.pool.forget(handle);
        let ip = self.per_client.key(conn.remote.ip());
        if conn.handshaking {
            self.handshaking = self.handshaking.saturating_sub(1);
            release(&mut self.handshakes_by_client, ip);
        }
        match conn.counted {
            ClientCount::Connection => release(&mut self.per_ip, ip),
            ClientCount::Unvalidated => release(&mut self.unvalidated, ip),
            ClientCount::None => {}
        }
    }

    /// Collect `conn`'s packets into the transmit batch (bounded per pass). Returns true
    /// when the bound stopped it: the connection has more to send in the next pass.
    pub fn transmit(&mut self, now: Instant, conn: &mut Conn) -> bool {
        let segments = self.udp.max_segments().min(MAX_SEGMENTS);
        for _ in 0..MAX_TRANSMITS_PER_CONN {
            let out = self.tx.next_buf();
            let Some(t) = conn.quic.poll_transmit(now, segments, out) else {
                return false;
            };
            self.queue(t.destination, t.size, t.segment_size);
        }
        true
    }

    fn queue(&mut self, to: SocketAddr, size: usize, segment: Option<usize>) {
        self.tx.push(to, size, segment);
        if self.tx.is_full() {
            self.flush();
        }
    }

    /// Hand every collected transmit to the kernel.
    pub fn flush(&mut self) {
        if self.tx.is_empty() {
            return;
        }
        let Sent {
            datagrams,
            syscalls,
            dropped,
            ..
        } = self.udp.send_batch(&mut self.tx);
        self.stats.datagrams_out += datagrams as u64;
        self.stats.send_calls += syscalls as u64;
        self.stats.send_errors += dropped as u64;
    }

    /// End of a pass: receive buffers QUIC let go of return to the pool (those lent in
    /// this pass, and those held by the connections in `touched`, the ones worked on).
    pub fn reclaim(&mut self, touched: &[usize]) {
        self.pool.reclaim(touched);
    }

    /// Connections that came to hold more received data than their budget since the
    /// last call (see [`DatagramPool`]): the shard closes them.
    pub fn take_over_budget(&mut self) -> Vec<usize> {
        self.pool.take_over_budget()
    }
}

/// Hint the CPU to fetch every cache line of `value` (no-op off x86-64).
fn prefetch_bytes<T>(value: &T) {
    prefetch_span((value as *const T) as usize, std::mem::size_of::<T>());
}

/// Hint the CPU to fetch every cache line of the `len` bytes at `addr`, which need not
/// be memory the program may read (no-op off x86-64).
fn prefetch_span(addr: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = addr as *const i8;
        for off in line_offsets(addr, len) {
            // SAFETY: a prefetch is a hint to the cache: it reads nothing into the
            // program and never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_offset(off)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (addr, len);
}

/// Offsets from `addr`, one in each 64-byte cache line that `len` bytes from `addr`
/// touch: the first may be negative (the start of a line `addr` lies inside), so that a
/// value not aligned to a line still gets its last line.
fn line_offsets(addr: usize, len: usize) -> impl Iterator<Item = isize> {
    let into_line = (addr % 64) as isize;
    (0..len as isize + into_line)
        .step_by(64)
        .map(move |off| off - into_line)
}

/// Hand each routed datagram to its connection, in the order received. The connections
/// are cold after a fan-out's quiet time: while one handles its datagram, the state of
/// the connection two datagrams on is fetched, and the keys of the next one (which its
/// state, fetched a step before, says where to find). Datagrams are routed ahead of
/// their hand-over by at most `rx::ROUTE_AHEAD` (and never across a batch), which
/// changes nothing for QUIC: a connection still sees its datagrams in order, and
/// endpoint events are exchanged only after the receive.
fn hand_over(mut events: Routed<'_, ConnectionEvent>, conns: &mut Conns, dirty: &mut Vec<usize>) {
    let mut first = true;
    while let Some((handle, event)) = events.next() {
        let ahead = events.as_slice();
        if let Some(&(next, _)) = ahead.first() {
            if first {
                conns.prefetch(next);
            } else {
                conns.prefetch_keys(next, false);
            }
        }
        if let Some(&(after, _)) = ahead.get(1) {
            conns.prefetch(after);
        }
        first = false;
        if let Some(conn) = conns.get_mut(handle) {
            conn.quic.handle_event(event);
            // Each packet's events now: quinn-proto's queue never holds a pass's.
            conn.events.take_from(&mut conn.quic);
            mark(conn, handle, dirty);
        }
    }
}

/// Queue `conn` for this pass's drive and transmit, once.
pub fn mark(conn: &mut Conn, handle: usize, dirty: &mut Vec<usize>) {
    if !conn.queued {
        conn.queued = true;
        dirty.push(handle);
    }
}

/// What a connection counts against in its client's limit (`--max-sessions-per-ip`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCount {
    /// Nothing (not accepted yet, or closed at its handshake for being over the limit).
    #[default]
    None,
    /// A handshake from an address not validated yet.
    Unvalidated,
    /// One of its client's connections.
    Connection,
}

/// Connections counted for `ip` in `map`.
fn count(map: &HashMap<IpAddr, u32>, ip: IpAddr) -> u32 {
    map.get(&ip).copied().unwrap_or(0)
}

/// One fewer for `ip` in `map`; the entry goes at zero.
fn release(map: &mut HashMap<IpAddr, u32>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::{line_offsets, Conns, PerClient, SendWindows};

    /// What the server's QUIC takes on a new stream of `conn` before it blocks, nothing
    /// being acknowledged meanwhile.
    fn takes(conn: &mut crate::conn::Conn) -> u64 {
        let id = conn
            .quic
            .streams()
            .open(quinn_proto::Dir::Uni)
            .expect("server uni stream");
        crate::testing::write_until_blocked(conn, id)
    }

    #[test]
    fn the_shards_window_reaches_every_connection_and_each_new_one() {
        const KIB: u64 = 1024;
        let connection = || {
            let mut p = crate::testing::Pair::new(crate::quic::QuicArgs::default());
            p.drive();
            p.server.take().expect("server connection").1
        };
        let mut conns = Conns::new(SendWindows::new(256 * KIB, 512 * KIB));
        conns.insert(0, connection());
        conns.insert(1, connection());
        assert_eq!(conns.send_window(), 256 * KIB);
        // A third would pass 512 KiB: every connection's window halves.
        conns.insert(2, connection());
        assert_eq!(conns.send_window(), 128 * KIB);
        assert_eq!(takes(conns.get_mut(0).expect("conn 0")), 128 * KIB);
        // A connection that arrives now gets the halved window.
        conns.insert(3, connection());
        assert_eq!(takes(conns.get_mut(3).expect("conn 3")), 128 * KIB);
        // Back to one: the window doubles, and the first connection, holding 128 KiB
        // unacknowledged, takes 128 KiB more.
        for handle in [3, 2, 1] {
            conns.remove(handle);
        }
        assert_eq!(conns.send_window(), 256 * KIB);
        assert_eq!(takes(conns.get_mut(0).expect("conn 0")), 128 * KIB);
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix_and_ipv4_clients_by_address() {
        let key = |prefix: u8, ip: &str| {
            let per = PerClient {
                max: 1,
                ipv6_prefix: prefix,
            };
            per.key(ip.parse::<IpAddr>().unwrap()).to_string()
        };
        assert_eq!(key(64, "2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(
            key(64, "2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::"
        );
        assert_eq!(key(64, "2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(key(56, "2001:db8:1:2ff::1"), "2001:db8:1:200::");
        assert_eq!(key(128, "2001:db8::7"), "2001:db8::7");
        assert_eq!(key(1, "ffff::1"), "8000::");
        // IPv4, as such or mapped by a dual-stack socket, is never cut.
        assert_eq!(key(64, "192.0.2.7"), "192.0.2.7");
        assert_eq!(key(64, "::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key(64, "::1"), "::");
    }

    fn lines(addr: usize, len: usize) -> Vec<usize> {
        line_offsets(addr, len)
            .map(|off| (addr as isize + off) as usize / 64)
            .collect()
    }

    #[test]
    fn every_cache_line_a_value_touches_is_named_once() {
        // Aligned: 128 bytes are two lines.
        assert_eq!(lines(64 * 10, 128), vec![10, 11]);
        // 48 bytes into a line, 6,576 bytes (a connection's slot) reach into a 104th
        // line, which stepping 64 bytes from the value's own start missed.
        let got = lines(64 * 10 + 48, 6_576);
        assert_eq!(got, (10..114).collect::<Vec<_>>());
        // Inside one line: one.
        assert_eq!(lines(64 * 3 + 8, 40), vec![3]);
    }
}

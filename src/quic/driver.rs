//! The per-shard QUIC driver: one `quinn_proto::Endpoint`, its connections, the UDP
//! socket and the timers, in one loop (style.md: thin shard driver).
//!
//! Each pass: read the clock once; drain the socket (bounded), routing every datagram
//! by its CID before `Endpoint::handle` (misrouted ones go to their owner through the
//! `forward` callback); take forwarded datagrams; fire expired connection timers; then,
//! for every connection that changed, exchange endpoint events, wake its tasks and
//! transmit. Then park until the socket is readable, the next timer, or a task rings.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::{ConnectionHandle, DatagramEvent, EcnCodepoint, Endpoint, EndpointConfig, Event};
use shards::ShardId;

use super::cid::{owner_shard, ShardCidGenerator, CID_LEN};
use super::conn::{ConnRef, DriverSignal};
use super::udp::{UdpIo, RECV_BUF};
use super::{QuicError, QuicShared, RetryMode};
use crate::metrics::ShardMetrics;

/// Most receive syscalls per pass before transmitting and yielding.
const MAX_RECVS_PER_PASS: usize = 64;
/// Most transmits per connection per pass (fairness between connections).
const MAX_TRANSMITS_PER_CONN: usize = 32;
/// Forwarded datagrams waiting for the driver on this shard.
const FORWARD_QUEUE: usize = 4096;

/// A datagram that reached the wrong shard, on its way to its owner. `Send`.
#[derive(Debug)]
pub struct Forwarded {
    pub from: SocketAddr,
    pub local_ip: Option<IpAddr>,
    pub ecn: Option<u8>,
    pub data: BytesMut,
}

/// Plain per-shard counters (published by the metrics where a metric exists).
#[derive(Default, Debug, Clone)]
pub struct ShardStats {
    pub datagrams_in: u64,
    pub forwarded_out: u64,
    pub forwarded_in: u64,
    pub forward_dropped: u64,
    pub refused_sessions: u64,
    pub refused_handshakes: u64,
    pub retries: u64,
    pub send_errors: u64,
}

type ForwardFn = Box<dyn Fn(ShardId, Forwarded) -> Result<(), Forwarded>>;
type OnConnection = Box<dyn Fn(ConnRef)>;

/// One shard's QUIC endpoint. Lives in an `Rc` on its executor.
pub struct QuicShard {
    id: ShardId,
    shared: QuicShared,
    udp: UdpIo,
    endpoint: RefCell<Endpoint>,
    conns: RefCell<HashMap<ConnectionHandle, Conn>>,
    signal: Rc<DriverSignal>,
    forward: ForwardFn,
    on_connection: OnConnection,
    forwarded: RefCell<VecDeque<Forwarded>>,
    handshaking: Cell<usize>,
    /// Connection deadlines, earliest first; at most about one entry per connection
    /// (entries are pushed only when they move a connection's deadline earlier).
    timers: RefCell<BinaryHeap<Reverse<(Instant, ConnectionHandle)>>>,
    stopping: Cell<bool>,
    stats: RefCell<ShardStats>,
    metrics: ShardMetrics,
}

struct Conn {
    conn: ConnRef,
    started: Instant,
    handshaking: bool,
    timeout: Option<Instant>,
    /// The earliest entry this connection has in the timer heap.
    armed: Option<Instant>,
}

impl QuicShard {
    /// Bind this shard's socket on `addr` (SO_REUSEPORT). `forward` hands misrouted
    /// datagrams to their owner (and gives them back when its queue is full);
    /// `on_connection` is called for every accepted connection (spawn its task there).
    pub fn bind(
        id: ShardId,
        addr: SocketAddr,
        shared: QuicShared,
        metrics: ShardMetrics,
        forward: ForwardFn,
        on_connection: OnConnection,
    ) -> Result<Rc<Self>, QuicError> {
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
        let endpoint = Endpoint::new(Arc::new(config), Some(shared.server.clone()), true, None);
        let (gso, gro) = udp.offloads();
        tracing::debug!(shard = %id, local = %udp.local_addr(), gso, gro, "QUIC endpoint bound");
        Ok(Rc::new(Self {
            id,
            shared,
            udp,
            endpoint: RefCell::new(endpoint),
            conns: RefCell::new(HashMap::new()),
            signal: Rc::new(DriverSignal::default()),
            forward,
            on_connection,
            forwarded: RefCell::new(VecDeque::new()),
            handshaking: Cell::new(0),
            timers: RefCell::new(BinaryHeap::new()),
            stopping: Cell::new(false),
            stats: RefCell::new(ShardStats::default()),
            metrics,
        }))
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr()
    }

    pub fn stats(&self) -> ShardStats {
        self.stats.borrow().clone()
    }

    /// Connections this shard holds now.
    pub fn connections(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Every live connection (for draining: close them all).
    pub fn connection_refs(&self) -> Vec<ConnRef> {
        self.conns
            .borrow()
            .values()
            .map(|c| c.conn.clone())
            .collect()
    }

    /// A datagram another shard received for one of ours. A full queue drops it (counted).
    pub fn handle_forwarded(&self, fwd: Forwarded) {
        let mut q = self.forwarded.borrow_mut();
        if q.len() >= FORWARD_QUEUE {
            self.stats.borrow_mut().forward_dropped += 1;
            return;
        }
        q.push_back(fwd);
        drop(q);
        self.signal.notify();
    }

    /// Stop the driver loop after its current pass (connections are dropped).
    pub fn stop(&self) {
        self.stopping.set(true);
        self.signal.notify();
    }

    /// The driver loop. Returns after [`QuicShard::stop`].
    pub async fn run(self: Rc<Self>) {
        let mut rbuf = BytesMut::with_capacity(RECV_BUF);
        let mut tbuf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        let mut dirty: Vec<ConnectionHandle> = Vec::new();
        while !self.stopping.get() {
            let now = Instant::now();
            self.signal.set_now(now);
            let received = self.receive(now, &mut rbuf, &mut tbuf);
            self.drain_forwarded(now, &mut tbuf);
            self.fire_timers(now, &mut dirty);
            self.signal.take_dirty(&mut dirty);
            self.flush(now, &mut dirty, &mut tbuf);
            if received {
                // Let the tasks we just woke run before the next batch.
                futures_lite::future::yield_now().await;
                if self.signal.take_notified() {
                    continue;
                }
            }
            self.park(now).await;
        }
        tracing::debug!(shard = %self.id, "QUIC driver stopped");
    }

    async fn park(&self, now: Instant) {
        // May be stale (a deadline that moved later): waking early is harmless.
        let deadline = self.timers.borrow().peek().map(|Reverse((t, _))| *t);
        let readable = self.udp.readable();
        futures_lite::pin!(readable);
        let mut timer =
            deadline.map(|d| glommio::timer::Timer::new(d.saturating_duration_since(now)));
        futures_lite::future::poll_fn(|cx| {
            if self.signal.take_notified() {
                return Poll::Ready(());
            }
            self.signal.set_waker(cx);
            if readable.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(t) = timer.as_mut() {
                if std::pin::Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            if self.signal.take_notified() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }

    /// Drain the socket (bounded). True if anything arrived.
    fn receive(&self, now: Instant, rbuf: &mut BytesMut, tbuf: &mut Vec<u8>) -> bool {
        let mut any = false;
        for _ in 0..MAX_RECVS_PER_PASS {
            rbuf.clear();
            rbuf.reserve(RECV_BUF);
            // SAFETY-free: zero-fill once per allocation; resize is a no-op when full.
            rbuf.resize(RECV_BUF, 0);
            let got = match self.udp.recv(&mut rbuf[..]) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(shard = %self.id, error = %e, "UDP receive error");
                    break;
                }
            };
            any = true;
            let mut batch = rbuf.split_to(got.len);
            while !batch.is_empty() {
                let n = got.stride.min(batch.len()).max(1);
                let datagram = batch.split_to(n);
                let dg = Forwarded {
                    from: got.from,
                    local_ip: None,
                    ecn: None,
                    data: datagram,
                };
                self.on_datagram(now, dg, true, tbuf);
            }
        }
        any
    }

    fn drain_forwarded(&self, now: Instant, tbuf: &mut Vec<u8>) {
        loop {
            let Some(fwd) = self.forwarded.borrow_mut().pop_front() else {
                break;
            };
            self.stats.borrow_mut().forwarded_in += 1;
            self.on_datagram(now, fwd, false, tbuf);
        }
    }

    /// One datagram (received here, or forwarded when `!may_forward`): route it by
    /// its CID, else feed the endpoint.
    fn on_datagram(&self, now: Instant, dg: Forwarded, may_forward: bool, tbuf: &mut Vec<u8>) {
        let Forwarded {
            from,
            local_ip,
            ecn,
            data,
        } = dg;
        tracing::trace!(shard = %self.id, %from, len = data.len(), "datagram");
        self.stats.borrow_mut().datagrams_in += 1;
        if may_forward {
            if let Some(owner) = owner_shard(&data, CID_LEN) {
                if owner != self.id {
                    // Copy out: `data` is a view of the 64 KiB receive buffer, which must
                    // not be pinned by a datagram waiting in another shard's queue.
                    let fwd = Forwarded {
                        from,
                        local_ip,
                        ecn,
                        data: BytesMut::from(&data[..]),
                    };
                    match (self.forward)(owner, fwd) {
                        Ok(()) => {
                            self.stats.borrow_mut().forwarded_out += 1;
                            self.metrics.datagrams_forwarded.inc();
                        }
                        Err(_) => self.stats.borrow_mut().forward_dropped += 1,
                    }
                    return;
                }
            }
        }
        tbuf.clear();
        let event = self.endpoint.borrow_mut().handle(
            now,
            from,
            local_ip,
            ecn.and_then(EcnCodepoint::from_bits),
            data,
            tbuf,
        );
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, ev)) => {
                if let Some(c) = self.conns.borrow().get(&handle) {
                    c.conn.read(|st| st.conn.handle_event(ev));
                    self.signal.mark(handle);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => self.on_incoming(now, incoming, tbuf),
            Some(DatagramEvent::Response(t)) => self.send(&t, tbuf),
            None => {}
        }
    }

    fn on_incoming(&self, now: Instant, incoming: quinn_proto::Incoming, tbuf: &mut Vec<u8>) {
        let args = &self.shared.args;
        let mut ep = self.endpoint.borrow_mut();
        tbuf.clear();
        if self.conns.borrow().len() >= args.max_sessions_per_shard {
            self.stats.borrow_mut().refused_sessions += 1;
            let t = ep.refuse(incoming, tbuf);
            drop(ep);
            return self.send(&t, tbuf);
        }
        if self.handshaking.get() >= args.max_handshakes_per_shard {
            self.stats.borrow_mut().refused_handshakes += 1;
            let t = ep.refuse(incoming, tbuf);
            drop(ep);
            return self.send(&t, tbuf);
        }
        let want_retry = match args.retry {
            RetryMode::Always => true,
            RetryMode::Auto => self.handshaking.get() >= args.retry_threshold,
            RetryMode::Never => false,
        };
        if want_retry && !incoming.remote_address_validated() && incoming.may_retry() {
            match ep.retry(incoming, tbuf) {
                Ok(t) => {
                    self.stats.borrow_mut().retries += 1;
                    self.metrics.quic_retries.inc();
                    drop(ep);
                    return self.send(&t, tbuf);
                }
                Err(e) => {
                    let incoming = e.into_incoming();
                    ep.ignore(incoming);
                    return;
                }
            }
        }
        match ep.accept(incoming, now, tbuf, None) {
            Ok((handle, conn)) => {
                drop(ep);
                let conn = ConnRef::new(handle, conn, self.signal.clone());
                self.conns.borrow_mut().insert(
                    handle,
                    Conn {
                        conn: conn.clone(),
                        started: now,
                        handshaking: true,
                        timeout: None,
                        armed: None,
                    },
                );
                self.handshaking.set(self.handshaking.get() + 1);
                self.metrics.connections_active.inc();
                tracing::debug!(shard = %self.id, conn = handle.0, remote = %conn.remote(), "connection accepted");
                self.signal.mark(handle);
                (self.on_connection)(conn);
            }
            Err(e) => {
                drop(ep);
                tracing::debug!(shard = %self.id, error = %e.cause, "handshake refused");
                if let Some(t) = e.response {
                    self.send(&t, tbuf);
                }
            }
        }
    }

    fn fire_timers(&self, now: Instant, dirty: &mut Vec<ConnectionHandle>) {
        let mut timers = self.timers.borrow_mut();
        let mut conns = self.conns.borrow_mut();
        while let Some(&Reverse((at, handle))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            let Some(c) = conns.get_mut(&handle) else {
                continue;
            };
            if c.armed == Some(at) {
                c.armed = None;
            }
            match c.timeout {
                Some(t) if t <= now => {
                    c.timeout = None;
                    c.conn.read(|st| st.conn.handle_timeout(now));
                    dirty.push(handle);
                }
                // The deadline moved later: re-arm it.
                Some(t) if c.armed.is_none() => {
                    c.armed = Some(t);
                    timers.push(Reverse((t, handle)));
                }
                _ => {}
            }
        }
    }

    /// Exchange events and transmit for every connection in `dirty`.
    fn flush(&self, now: Instant, dirty: &mut Vec<ConnectionHandle>, tbuf: &mut Vec<u8>) {
        dirty.sort_unstable();
        dirty.dedup();
        let max_segments = self.udp.max_segments();
        for handle in dirty.drain(..) {
            let Some(conn) = self.conns.borrow().get(&handle).map(|c| c.conn.clone()) else {
                continue;
            };
            let mut connected = false;
            let mut drained = false;
            let timeout = conn.read(|st| {
                while let Some(ev) = st.conn.poll_endpoint_events() {
                    drained |= ev.is_drained();
                    if let Some(back) = self.endpoint.borrow_mut().handle_event(handle, ev) {
                        st.conn.handle_event(back);
                    }
                }
                let mut woke = false;
                while let Some(ev) = st.conn.poll() {
                    woke = true;
                    match ev {
                        Event::Connected => connected = true,
                        Event::ConnectionLost { reason } => {
                            tracing::debug!(shard = %self.id, conn = handle.0, %reason, "connection lost");
                            st.lost.get_or_insert(reason);
                        }
                        _ => {}
                    }
                }
                for _ in 0..MAX_TRANSMITS_PER_CONN {
                    tbuf.clear();
                    let Some(t) = st.conn.poll_transmit(now, max_segments, tbuf) else {
                        break;
                    };
                    self.send(&t, tbuf);
                }
                if drained {
                    st.drained = true;
                    st.lost
                        .get_or_insert(quinn_proto::ConnectionError::LocallyClosed);
                    woke = true;
                }
                if woke {
                    st.wake_all();
                }
                st.conn.poll_timeout()
            });
            let mut conns = self.conns.borrow_mut();
            if drained {
                if let Some(c) = conns.remove(&handle) {
                    if c.handshaking {
                        self.handshaking
                            .set(self.handshaking.get().saturating_sub(1));
                    }
                }
                self.metrics.connections_active.dec();
                tracing::debug!(shard = %self.id, conn = handle.0, "connection drained");
                continue;
            }
            if let Some(c) = conns.get_mut(&handle) {
                c.timeout = timeout;
                if let Some(t) = timeout {
                    if c.armed.is_none_or(|a| t < a) {
                        c.armed = Some(t);
                        self.timers.borrow_mut().push(Reverse((t, handle)));
                    }
                }
                if connected && c.handshaking {
                    c.handshaking = false;
                    self.handshaking
                        .set(self.handshaking.get().saturating_sub(1));
                    self.metrics
                        .handshake_duration
                        .observe(now.saturating_duration_since(c.started).as_secs_f64());
                }
            }
        }
    }

    fn send(&self, t: &quinn_proto::Transmit, buf: &[u8]) {
        let Some(data) = buf.get(..t.size) else {
            return;
        };
        tracing::trace!(shard = %self.id, to = %t.destination, len = t.size, seg = ?t.segment_size, "transmit");
        if let Err(e) = self.udp.send(t.destination, data, t.segment_size) {
            self.stats.borrow_mut().send_errors += 1;
            tracing::debug!(shard = %self.id, error = %e, "UDP send failed");
        }
    }
}

impl Drop for QuicShard {
    fn drop(&mut self) {
        let n = self.conns.get_mut().len() as i64;
        self.metrics.connections_active.sub(n);
    }
}

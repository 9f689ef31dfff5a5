//! The shard's UDP socket: SO_REUSEPORT, large buffers, GRO and GSO, and batched
//! system calls: one `recvmmsg` takes up to [`RX_SLOTS`] datagram batches, one
//! `sendmmsg` hands the kernel up to [`TX_MAX`] transmits of any connections.
//!
//! glommio's `UdpSocket` has no cmsg support, so it is used only to wait: `readable()`
//! awaits a `peek_from` (a 1-byte MSG_PEEK through io_uring), then the shard's loop
//! drains the socket non-blocking. With UDP_GRO one receive slot may hold several
//! datagrams of one sender (`stride` bytes each); with UDP_SEGMENT one transmit carries
//! several datagrams to one destination.
//!
//! Receive slots are allocated once and reused: the kernel writes into them, nothing
//! zero-fills them again. Datagrams are then copied into right-sized buffers
//! ([`super::rx::DatagramPool`]) before QUIC sees them, so no receive slot is ever pinned
//! by data a connection keeps.

use std::cell::Cell;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What the kernel granted for the socket buffers.
#[derive(Debug, Clone, Copy)]
pub struct BufferSizes {
    pub recv_requested: Option<usize>,
    pub recv: usize,
    pub send_requested: Option<usize>,
    pub send: usize,
}

impl BufferSizes {
    /// Warn, naming the sysctl, when the kernel capped a requested size.
    pub fn warn_if_capped(&self) {
        // Linux reports twice the usable size; a request is capped when the report is
        // below it.
        if let Some(req) = self.recv_requested {
            if self.recv < req {
                tracing::warn!(
                    requested = req,
                    granted = self.recv,
                    "UDP receive buffer capped by the kernel: raise net.core.rmem_max"
                );
            }
        }
        if let Some(req) = self.send_requested {
            if self.send < req {
                tracing::warn!(
                    requested = req,
                    granted = self.send,
                    "UDP send buffer capped by the kernel: raise net.core.wmem_max"
                );
            }
        }
    }
}

/// Bytes of one receive slot: the most one GRO receive can return (64 KiB).
pub const RX_SLOT: usize = 64 * 1024;
/// Receive slots filled by one `recvmmsg`.
pub const RX_SLOTS: usize = 16;
/// Transmits handed to the kernel by one `sendmmsg`.
pub const TX_MAX: usize = 64;
/// UDP_MAX_SEGMENTS in the kernel.
pub const GSO_MAX_SEGMENTS: usize = 64;

/// One received slot: `len` bytes from `from`, datagrams of `stride` bytes each (the
/// last may be shorter).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub from: SocketAddr,
    pub len: usize,
    pub stride: usize,
}

/// The receive side's reusable memory: slots, and the kernel's per-message headers.
pub struct RxBatch {
    slots: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; 8]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    got: Vec<Received>,
}

/// An empty batch with no slots (a placeholder; allocates nothing).
impl Default for RxBatch {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            names: Vec::new(),
            controls: Vec::new(),
            iovecs: Vec::new(),
            headers: Vec::new(),
            got: Vec::new(),
        }
    }
}

impl RxBatch {
    pub fn new() -> Self {
        // SAFETY: these are plain C structs for which all-zero is a valid value.
        let zero_name: libc::sockaddr_storage = unsafe { zeroed() };
        let zero_header: libc::mmsghdr = unsafe { zeroed() };
        Self {
            // Zeroed once here; the kernel overwrites what it fills and the pages are
            // only touched as traffic uses them.
            slots: vec![0u8; RX_SLOT * RX_SLOTS],
            names: vec![zero_name; RX_SLOTS],
            controls: vec![[0u64; 8]; RX_SLOTS],
            iovecs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                RX_SLOTS
            ],
            headers: vec![zero_header; RX_SLOTS],
            got: Vec::with_capacity(RX_SLOTS),
        }
    }

    /// What the last receive filled, in order.
    pub fn received(&self) -> impl Iterator<Item = (Received, &[u8])> {
        self.got
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, &self.slots[i * RX_SLOT..i * RX_SLOT + r.len]))
    }
}

/// One transmit waiting in a [`TxBatch`].
#[derive(Debug, Clone, Copy)]
struct TxItem {
    to: SocketAddr,
    len: usize,
    segment: Option<usize>,
}

/// Transmits of any connections, collected during a pass and sent with as few
/// `sendmmsg` calls as possible. Its buffers are reused from pass to pass.
pub struct TxBatch {
    bufs: Vec<Vec<u8>>,
    items: Vec<TxItem>,
    addrs: Vec<SockAddr>,
    controls: Vec<[u64; 4]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Default for TxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl TxBatch {
    pub fn new() -> Self {
        Self {
            bufs: Vec::new(),
            items: Vec::with_capacity(TX_MAX),
            addrs: Vec::with_capacity(TX_MAX),
            controls: vec![[0u64; 4]; TX_MAX],
            iovecs: Vec::with_capacity(TX_MAX),
            headers: Vec::with_capacity(TX_MAX),
        }
    }

    /// The buffer for the next transmit, empty. Call [`TxBatch::push`] if something was
    /// written into it.
    pub fn next_buf(&mut self) -> &mut Vec<u8> {
        let i = self.items.len();
        if self.bufs.len() <= i {
            self.bufs.push(Vec::new());
        }
        let buf = &mut self.bufs[i];
        buf.clear();
        buf
    }

    /// Keep what was written into [`TxBatch::next_buf`] as a transmit to `to`.
    pub fn push(&mut self, to: SocketAddr, len: usize, segment: Option<usize>) {
        self.items.push(TxItem { to, len, segment });
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= TX_MAX
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub transmits: usize,
    pub datagrams: usize,
    pub syscalls: usize,
    /// Transmits the kernel did not take (a full socket buffer); QUIC retransmits.
    pub dropped: usize,
}
/// The shard's socket. `!Send` (the glommio socket stays on its executor).
pub struct UdpIo {
    socket: glommio::net::UdpSocket,
    local: SocketAddr,
    gso: Cell<bool>,
    gro: bool,
    buffers: BufferSizes,
}

impl UdpIo {
    /// Bind `addr` with SO_REUSEPORT (every shard binds the same address).
    pub fn bind(
        addr: SocketAddr,
        recv_buffer: Option<usize>,
        send_buffer: Option<usize>,
    ) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n)?;
        }
        if let Some(n) = send_buffer {
            socket.set_send_buffer_size(n)?;
        }
        let buffers = BufferSizes {
            recv_requested: recv_buffer,
            recv: socket.recv_buffer_size()?,
            send_requested: send_buffer,
            send: socket.send_buffer_size()?,
        };
        socket.bind(&addr.into())?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        let fd = socket.as_raw_fd();
        if let Err(e) = never_fragment(fd, addr.is_ipv6()) {
            tracing::warn!(error = %e, "UDP socket: could not set Don't Fragment; QUIC datagrams may be fragmented");
        }
        let gro = setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        let gso = getsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
        // SAFETY: the fd comes from `into_raw_fd` and is owned by the glommio socket only.
        let socket = unsafe { glommio::net::UdpSocket::from_raw_fd(socket.into_raw_fd()) };
        Ok(Self {
            socket,
            local,
            gso: Cell::new(gso),
            gro,
            buffers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket's descriptor, watched by the loop's parker (`shards::parker`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    pub fn buffers(&self) -> BufferSizes {
        self.buffers
    }

    /// Whether the kernel took GSO / GRO.
    pub fn offloads(&self) -> (bool, bool) {
        (self.gso.get(), self.gro)
    }

    /// Most datagrams one transmit may carry.
    pub fn max_segments(&self) -> usize {
        if self.gso.get() {
            GSO_MAX_SEGMENTS
        } else {
            1
        }
    }

    /// Resolves once a datagram is waiting (never consumes it).
    pub async fn readable(&self) -> io::Result<()> {
        let mut one = [0u8; 1];
        self.socket
            .peek_from(&mut one)
            .await
            .map(|_| ())
            .map_err(io::Error::from)
    }

    /// One non-blocking `recvmmsg` into `rx`'s slots. Returns how many slots were filled
    /// (0 when nothing is waiting).
    pub fn recv_batch(&self, rx: &mut RxBatch) -> io::Result<usize> {
        rx.got.clear();
        let base = rx.slots.as_mut_ptr();
        for i in 0..RX_SLOTS {
            rx.iovecs[i] = libc::iovec {
                // SAFETY: `i * RX_SLOT` is within the slots allocation.
                iov_base: unsafe { base.add(i * RX_SLOT) }.cast(),
                iov_len: RX_SLOT,
            };
            let h = &mut rx.headers[i].msg_hdr;
            h.msg_name = (&mut rx.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut rx.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = rx.controls[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; 8]>();
            h.msg_flags = 0;
            rx.headers[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers owned by `rx`, sized as declared.
        let n = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                rx.headers.as_mut_ptr(),
                RX_SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        for i in 0..n as usize {
            let h = &rx.headers[i];
            let len = h.msg_len as usize;
            let mut stride = len;
            // SAFETY: the kernel filled the control buffer of this header.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                while !cmsg.is_null() {
                    let c = &*cmsg;
                    if c.cmsg_level == libc::SOL_UDP && c.cmsg_type == libc::UDP_GRO {
                        let seg =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                        if seg > 0 {
                            stride = seg as usize;
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&h.msg_hdr, cmsg);
                }
            }
            let from = sockaddr_to_std(&rx.names[i]);
            // A truncated slot (MSG_TRUNC) or an address family we do not speak: skip
            // it but keep the slot numbering.
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            match from {
                Some(from) if !truncated => rx.got.push(Received {
                    from,
                    len,
                    stride: stride.max(1),
                }),
                _ => rx.got.push(Received {
                    from: SocketAddr::from(([0, 0, 0, 0], 0)),
                    len: 0,
                    stride: 1,
                }),
            }
        }
        Ok(n as usize)
    }

    /// Hand every transmit of `tx` to the kernel with `sendmmsg` (GSO where a transmit
    /// holds several datagrams), and empty it. A full socket buffer drops the rest of
    /// the batch (counted; QUIC retransmits).
    pub fn send_batch(&self, tx: &mut TxBatch) -> Sent {
        let mut sent = Sent::default();
        let mut start = 0;
        while start < tx.items.len() {
            let n = self.sendmmsg(tx, start);
            sent.syscalls += 1;
            match n {
                Ok(k) => {
                    for item in &tx.items[start..start + k] {
                        sent.transmits += 1;
                        sent.datagrams += item.segment.map_or(1, |s| item.len.div_ceil(s.max(1)));
                    }
                    start += k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO/EINVAL on a GSO transmit: the device or path refuses GSO, or the
                // destination refuses any datagram (a port of 0, which anyone can put in
                // a datagram's source). Its first segment alone tells which: if that
                // goes, GSO is what is refused, so the rest go one by one and GSO is
                // not asked for again; if not, the transmit alone is lost and GSO stays.
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
                        && tx.items[start].segment.is_some() =>
                {
                    let item = tx.items[start];
                    let seg = item.segment.unwrap_or(item.len).max(1);
                    let mut chunks = tx.bufs[start][..item.len].chunks(seg);
                    sent.syscalls += 1;
                    match chunks.next().map(|first| self.send_one(item.to, first)) {
                        Some(Ok(_)) => {
                            tracing::warn!(error = %e, "UDP GSO refused; sending one datagram per message");
                            self.gso.set(false);
                            sent.datagrams += 1;
                            for chunk in chunks {
                                sent.syscalls += 1;
                                if self.send_one(item.to, chunk).is_ok() {
                                    sent.datagrams += 1;
                                }
                            }
                            sent.transmits += 1;
                        }
                        _ => {
                            tracing::debug!(error = %e, to = %item.to, "UDP send failed");
                            sent.dropped += 1;
                        }
                    }
                    start += 1;
                }
                // The socket's buffer or the device's queue is full: so it is for every
                // transmit behind this one too.
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    sent.dropped += tx.items.len() - start;
                    break;
                }
                // Anything else is this transmit's own: larger than the interface allows
                // (EMSGSIZE, a path MTU probe: see `never_fragment`), a destination the
                // host will not send to (EACCES, EPERM, EHOSTUNREACH, ...). It alone is
                // lost; the transmits of other connections behind it still go.
                Err(e) => {
                    tracing::debug!(error = %e, to = %tx.items[start].to, "UDP send failed");
                    sent.dropped += 1;
                    start += 1;
                }
            }
        }
        tx.items.clear();
        sent
    }

    fn sendmmsg(&self, tx: &mut TxBatch, start: usize) -> io::Result<usize> {
        let count = tx.items.len() - start;
        tx.addrs.clear();
        tx.iovecs.clear();
        tx.headers.clear();
        for item in &tx.items[start..] {
            tx.addrs.push(SockAddr::from(item.to));
        }
        for (i, item) in tx.items[start..].iter().enumerate() {
            tx.iovecs.push(libc::iovec {
                iov_base: tx.bufs[start + i].as_ptr() as *mut libc::c_void,
                iov_len: item.len,
            });
        }
        for (i, item) in tx.items[start..].iter().enumerate() {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = tx.addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = tx.addrs[i].len();
            h.msg_hdr.msg_iov = &mut tx.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            match item.segment {
                Some(seg) if seg < item.len && self.gso.get() => {
                    let control = &mut tx.controls[i];
                    h.msg_hdr.msg_control = control.as_mut_ptr().cast();
                    h.msg_hdr.msg_controllen =
                        // SAFETY: CMSG_SPACE is a pure size computation.
                        unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
                    // SAFETY: the control buffer is aligned (u64) and holds one u16 cmsg.
                    unsafe {
                        let cmsg = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                        (*cmsg).cmsg_level = libc::SOL_UDP;
                        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, seg as u16);
                    }
                }
                _ => {}
            }
            tx.headers.push(h);
        }
        // SAFETY: headers point at addresses, iovecs and buffers that live in `tx` and
        // are not moved until the call returns.
        let n = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                tx.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One datagram with plain `sendto` (the GSO fallback).
    fn send_one(&self, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        let addr = SockAddr::from(to);
        // SAFETY: `data` and `addr` are live for the call.
        let n = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT,
                addr.as_ptr().cast(),
                addr.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// QUIC datagrams must not be fragmented (RFC 9000 §14): every datagram leaves with
/// Don't Fragment set, whatever path MTU the kernel has cached for its destination, and
/// one larger than the interface allows fails with EMSGSIZE instead of being split here.
/// quinn-proto's path MTU discovery then learns a path's size from which of its probes
/// arrive, never from fragments. (With DF the kernel also skips hashing an IP
/// identification for each datagram.)
fn never_fragment(fd: i32, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )?;
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    } else {
        setsockopt_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    }
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: i32, level: i32, name: i32) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a c_int out-parameter of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;
    use crate::testing::run_local;

    fn push(tx: &mut TxBatch, to: SocketAddr, payload: &[u8]) {
        tx.next_buf().extend_from_slice(payload);
        tx.push(to, payload.len(), None);
    }

    fn receiver() -> (UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    #[test]
    fn datagrams_leave_with_dont_fragment_on_both_families() {
        run_local(async {
            let v4 = UdpIo::bind("127.0.0.1:0".parse().unwrap(), None, None).unwrap();
            assert_eq!(
                getsockopt_int(v4.raw_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER).unwrap(),
                libc::IP_PMTUDISC_PROBE
            );
            let v6 = UdpIo::bind("[::1]:0".parse().unwrap(), None, None).unwrap();
            assert_eq!(
                getsockopt_int(v6.raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER).unwrap(),
                libc::IPV6_PMTUDISC_PROBE
            );
            assert_eq!(
                getsockopt_int(v6.raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG).unwrap(),
                1
            );
        });
    }

    #[test]
    fn a_transmit_the_kernel_refuses_is_lost_alone() {
        run_local(async {
            let io = UdpIo::bind("127.0.0.1:0".parse().unwrap(), None, None).unwrap();
            let (a, a_addr) = receiver();
            let (b, b_addr) = receiver();
            let mut tx = TxBatch::new();
            // Refused first, between and last: a broadcast address without SO_BROADCAST,
            // and a datagram larger than UDP allows.
            let broadcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
            push(&mut tx, broadcast, b"refused");
            push(&mut tx, a_addr, b"first");
            push(&mut tx, a_addr, &vec![7u8; 70_000]);
            push(&mut tx, b_addr, b"second");
            push(&mut tx, broadcast, b"refused");
            let sent = io.send_batch(&mut tx);
            assert_eq!(sent.dropped, 3, "{sent:?}");
            assert_eq!(sent.datagrams, 2, "{sent:?}");
            assert!(tx.is_empty());
            let mut buf = [0u8; 64];
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"first");
            let n = b.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"second");
        });
    }

    /// A datagram may name port 0 as its source, and no datagram can be sent there: a
    /// GSO transmit to it is lost alone, and GSO stays on for everyone else.
    #[test]
    fn a_gso_transmit_to_port_0_leaves_gso_on() {
        run_local(async {
            let io = UdpIo::bind("127.0.0.1:0".parse().unwrap(), None, None).unwrap();
            if !io.offloads().0 {
                panic!("this kernel refuses UDP_SEGMENT: the test needs GSO");
            }
            let (a, a_addr) = receiver();
            let mut tx = TxBatch::new();
            let port_0: SocketAddr = "127.0.0.1:0".parse().unwrap();
            for to in [port_0, a_addr] {
                let buf = tx.next_buf();
                buf.extend_from_slice(&[1u8; 100]);
                buf.extend_from_slice(&[2u8; 100]);
                tx.push(to, 200, Some(100));
            }
            let sent = io.send_batch(&mut tx);
            assert_eq!(sent.dropped, 1, "{sent:?}");
            assert_eq!(sent.datagrams, 2, "{sent:?}");
            assert!(io.offloads().0, "GSO was turned off");
            let mut buf = [0u8; 256];
            for fill in [1u8, 2] {
                let n = a.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[fill; 100][..]);
            }
        });
    }
}

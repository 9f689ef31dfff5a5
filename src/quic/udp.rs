//! The shard's UDP socket: SO_REUSEPORT, large buffers, GSO/GRO, non-blocking
//! `recvmsg`/`sendmsg` on the raw fd with glommio for readiness.
//!
//! glommio's `UdpSocket` has no cmsg support, so it is used only to wait: `readable()`
//! awaits a `peek_from` (a 1-byte MSG_PEEK), then the driver drains with `recv` until
//! `WouldBlock`. Sends are `sendmsg` with a `UDP_SEGMENT` cmsg when the transmit holds
//! several segments (Linux GSO); without GSO each segment is its own syscall. Receives
//! enable `UDP_GRO`, so one `recvmsg` may return several datagrams of `stride` bytes.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Most bytes one GRO receive can return (the kernel caps coalescing at 64 KiB).
pub const RECV_BUF: usize = 64 * 1024;
/// UDP_MAX_SEGMENTS in the kernel.
const GSO_MAX_SEGMENTS: usize = 64;

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

/// One received batch: `len` bytes in the receive buffer from `from`, datagrams of
/// `stride` bytes each (the last may be shorter).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub from: SocketAddr,
    pub len: usize,
    pub stride: usize,
}

/// The shard's socket. `!Send` (the glommio socket stays on its executor).
pub struct UdpIo {
    socket: glommio::net::UdpSocket,
    local: SocketAddr,
    gso: std::cell::Cell<bool>,
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
        let gro = setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        let gso = getsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
        // SAFETY: the fd comes from `into_raw_fd` and is owned by the glommio socket only.
        let socket = unsafe { glommio::net::UdpSocket::from_raw_fd(socket.into_raw_fd()) };
        Ok(Self {
            socket,
            local,
            gso: std::cell::Cell::new(gso),
            gro,
            buffers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
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

    /// One non-blocking `recvmsg` into `buf` (at least [`RECV_BUF`] long).
    /// `Ok(None)` when nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: plain-data structs, zeroed; pointers reference live locals/`buf`.
        unsafe {
            let mut name: libc::sockaddr_storage = zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut control = [0u64; 8];
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 8]>();
            let n = libc::recvmsg(self.socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => Ok(None),
                    _ => Err(err),
                };
            }
            let len = n as usize;
            let mut stride = len;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_UDP && c.cmsg_type == libc::UDP_GRO {
                    let seg = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                    if seg > 0 {
                        stride = seg as usize;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            let Some(from) = sockaddr_to_std(&name) else {
                return Ok(None);
            };
            Ok(Some(Received { from, len, stride }))
        }
    }

    /// Send `data` to `to`: one datagram, or `segment` sized datagrams with GSO.
    /// A full socket buffer drops the datagram (QUIC retransmits); that is reported as
    /// `WouldBlock` for the caller to count.
    pub fn send(&self, to: SocketAddr, data: &[u8], segment: Option<usize>) -> io::Result<()> {
        match segment {
            Some(seg) if seg < data.len() => {
                if self.gso.get() {
                    match self.sendmsg(to, data, Some(seg)) {
                        Ok(()) => return Ok(()),
                        // EIO/EINVAL: the device or path refuses GSO; fall back for good.
                        Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {
                            tracing::warn!(error = %e, "UDP GSO refused; sending one datagram per syscall");
                            self.gso.set(false);
                        }
                        Err(e) => return Err(e),
                    }
                }
                for chunk in data.chunks(seg.max(1)) {
                    self.sendmsg(to, chunk, None)?;
                }
                Ok(())
            }
            _ => self.sendmsg(to, data, None),
        }
    }

    fn sendmsg(&self, to: SocketAddr, data: &[u8], segment: Option<usize>) -> io::Result<()> {
        let addr = SockAddr::from(to);
        // SAFETY: pointers reference live locals and `data`; the cmsg buffer is aligned
        // (u64) and large enough for one c_int.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            let mut control = [0u64; 4];
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = addr.as_ptr() as *mut libc::c_void;
            msg.msg_namelen = addr.len();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if let Some(seg) = segment {
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                if cmsg.is_null() {
                    return Err(io::Error::other("no room for the UDP_SEGMENT cmsg"));
                }
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, seg as u16);
            }
            loop {
                let n = libc::sendmsg(self.socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT);
                if n >= 0 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
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

//! Parking an executor's thread on its doorbell and a fixed set of descriptors, in one
//! system call.
//!
//! An executor whose one task is a loop owning everything it waits for (a shard: its
//! UDP socket, its mesh doorbell, its timers) parks its thread directly instead of
//! awaiting each source through glommio. It parks through an io_uring of its own: the
//! doorbell has a multishot poll armed once, and each watched descriptor a one-shot
//! poll armed with the wait that needs it, so a park is one `io_uring_enter` that
//! submits what it arms and waits, with a nanosecond timeout.
//!
//! Why one-shot for the sockets: a descriptor's wait queue is walked whenever its
//! state changes while anything waits on it, and a UDP socket's changes with every
//! datagram it sends (the kernel frees each sent datagram's buffer space and offers the
//! waiters the room). A registration that stays (epoll's) makes every datagram a busy
//! shard sends take the wait queue's lock and call the registration, although nobody
//! waits for room; a poll that fires once is gone from the queue as soon as the park
//! it was armed for ends by the socket. A park that ends otherwise (the doorbell, the
//! timeout) leaves it armed for the next.
//!
//! Where the ring cannot be had (io_uring refused, or a kernel without the wait's
//! timeout argument, Linux 5.11) the parker falls back to epoll: the doorbell and the
//! descriptors registered once, one `epoll_pwait2` per park. Two epoll instances share
//! the doorbell there: one also watches the descriptors, the other only the doorbell,
//! for a park that must not end when a watched socket turns readable (a loop letting
//! received datagrams accumulate for a moment).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};

/// How one executor parks. Built by [`crate::MeshHandle::parker`].
#[derive(Debug)]
pub struct Parker {
    how: How,
}

#[derive(Debug)]
enum How {
    /// Boxed: the ring's handle is a few hundred bytes, the epoll parker two descriptors.
    Ring(Box<RingParker>),
    Epoll(EpollParker),
}

impl Parker {
    pub(crate) fn new(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
        match RingParker::new(doorbell, fds) {
            Ok(ring) => Ok(Self {
                how: How::Ring(Box::new(ring)),
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no io_uring to park on; parking with epoll");
                Self::epoll(doorbell, fds)
            }
        }
    }

    /// The epoll parker, whatever the kernel offers.
    pub(crate) fn epoll(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
        Ok(Self {
            how: How::Epoll(EpollParker::new(doorbell, fds)?),
        })
    }

    /// Whether this parker waits through an io_uring (else epoll).
    #[cfg(test)]
    fn uses_io_uring(&self) -> bool {
        matches!(self.how, How::Ring(_))
    }

    /// Wait until the doorbell rings, a watched descriptor is readable (only when
    /// `watch`), or `timeout` passes. Returns whether the doorbell rang (its rings are
    /// then the caller's to drain). Interrupted waits return early, and a descriptor
    /// read since its poll fired may end a wait at once: callers loop.
    pub(crate) fn wait(&self, watch: bool, timeout: Duration) -> bool {
        match &self.how {
            How::Ring(r) => r.wait(watch, timeout),
            How::Epoll(e) => e.wait(watch, timeout),
        }
    }
}

/// User data of the doorbell's poll; a watched descriptor's is `RING_WATCHED + its
/// index`, a cancellation's `RING_CANCEL`.
const RING_BELL: u64 = 0;
const RING_WATCHED: u64 = 1;
const RING_CANCEL: u64 = u64::MAX;

/// An io_uring holding the doorbell's multishot poll and the descriptors' one-shot
/// polls. Used only by the thread that built it (the ring is single-issuer), so it is
/// not `Send`.
struct RingParker {
    ring: RefCell<IoUring>,
    _one_thread: std::marker::PhantomData<*const ()>,
    doorbell: RawFd,
    /// The doorbell's multishot poll is armed (it ends only on an error or overflow).
    bell_armed: Cell<bool>,
    fds: Vec<RawFd>,
    /// Which descriptors have a poll armed.
    armed: Vec<Cell<bool>>,
}

impl std::fmt::Debug for RingParker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingParker")
            .field("doorbell", &self.doorbell)
            .field("fds", &self.fds)
            .finish_non_exhaustive()
    }
}

impl RingParker {
    fn new(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
        // Room for every poll at once: the doorbell's and one per descriptor.
        let entries = (fds.len() as u32 + 1).next_power_of_two().max(4);
        // One thread submits and waits, and a poll's completion work runs when it waits
        // (single issuer, deferred task work: Linux 6.1); an older kernel runs it when
        // the thread next enters the kernel (cooperative task work: 5.19), or at once.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
            .or_else(|_| IoUring::builder().build(entries))?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without a timeout on its wait (Linux 5.11)",
            ));
        }
        Ok(Self {
            ring: RefCell::new(ring),
            _one_thread: std::marker::PhantomData,
            doorbell,
            bell_armed: Cell::new(false),
            fds: fds.to_vec(),
            armed: fds.iter().map(|_| Cell::new(false)).collect(),
        })
    }

    fn wait(&self, watch: bool, timeout: Duration) -> bool {
        let mut ring = self.ring.borrow_mut();
        if !self.bell_armed.get() {
            let sqe = opcode::PollAdd::new(types::Fd(self.doorbell), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(RING_BELL);
            // SAFETY: a poll entry refers to no memory of ours; the queue has room for
            // every poll (sized in `new`, each armed at most once at a time).
            if unsafe { ring.submission().push(&sqe) }.is_ok() {
                self.bell_armed.set(true);
            }
        }
        if watch {
            for (i, (&fd, armed)) in self.fds.iter().zip(&self.armed).enumerate() {
                if armed.get() {
                    continue;
                }
                let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                    .build()
                    .user_data(RING_WATCHED + i as u64);
                // SAFETY: as above.
                if unsafe { ring.submission().push(&sqe) }.is_ok() {
                    armed.set(true);
                }
            }
        }
        // A pause (no watching) that a descriptor's poll, armed by an earlier park,
        // ends early waits again for the rest of its time.
        let until = (!watch).then(|| Instant::now() + timeout);
        let mut left = timeout;
        loop {
            let ts = types::Timespec::from(left);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = ring.submitter().submit_with_args(1, &args) {
                match e.raw_os_error() {
                    // The timeout, or completions the kernel holds until the queue has
                    // room (taken below).
                    Some(libc::ETIME | libc::EBUSY) => {}
                    // Interrupted: the caller parks again.
                    _ => return false,
                }
            }
            let (mut rang, mut readable) = (false, false);
            for cqe in ring.completion() {
                match cqe.user_data() {
                    RING_BELL => {
                        rang = true;
                        if !cqueue::more(cqe.flags()) {
                            self.bell_armed.set(false);
                        }
                    }
                    // Readable, or an error the caller's next read will meet.
                    data => {
                        if let Some(armed) = self.armed.get((data - RING_WATCHED) as usize) {
                            armed.set(false);
                        }
                        readable = true;
                    }
                }
            }
            match until {
                Some(until) if readable && !rang => {
                    match until.checked_duration_since(Instant::now()) {
                        Some(rest) if !rest.is_zero() => left = rest,
                        _ => return false,
                    }
                }
                _ => return rang,
            }
        }
    }
}

/// An armed poll holds its descriptor open: a socket closed before the ring would stay
/// bound until the kernel tears the ring down, some time after. Cancel the polls and
/// wait for them (briefly), so the descriptors close with their owners.
impl Drop for RingParker {
    fn drop(&mut self) {
        let ring = self.ring.get_mut();
        let mut outstanding = 0;
        let armed = self.armed.iter().enumerate().filter(|(_, a)| a.get());
        let polls = armed.map(|(i, _)| RING_WATCHED + i as u64);
        for data in self
            .bell_armed
            .get()
            .then_some(RING_BELL)
            .into_iter()
            .chain(polls)
        {
            let sqe = opcode::AsyncCancel::new(data)
                .build()
                .user_data(RING_CANCEL);
            // SAFETY: a cancellation refers to no memory of ours.
            if unsafe { ring.submission().push(&sqe) }.is_ok() {
                outstanding += 2; // the cancellation's completion and the poll's
            }
        }
        let deadline = Instant::now() + Duration::from_millis(100);
        while outstanding > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let ts = types::Timespec::from(left);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = ring.submitter().submit_with_args(outstanding, &args) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            outstanding = outstanding.saturating_sub(ring.completion().count());
        }
    }
}

/// The event data of the doorbell and of the watched descriptors.
const BELL: u64 = 0;
const WATCHED: u64 = 1;
/// Events taken from one wait: the doorbell and a few sockets.
const EVENTS: usize = 8;

/// One executor's epoll instances.
#[derive(Debug)]
struct EpollParker {
    /// The doorbell and every watched descriptor.
    all: OwnedFd,
    /// The doorbell alone.
    bell: OwnedFd,
    /// `epoll_pwait2` (nanosecond timeouts, Linux 5.11) is available; otherwise waits
    /// round their timeout up to whole milliseconds.
    pwait2: Cell<bool>,
}

impl EpollParker {
    fn new(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
        let all = epoll()?;
        let bell = epoll()?;
        register(&all, doorbell, BELL)?;
        register(&bell, doorbell, BELL)?;
        for &fd in fds {
            register(&all, fd, WATCHED)?;
        }
        Ok(Self {
            all,
            bell,
            pwait2: Cell::new(true),
        })
    }

    fn wait(&self, watch: bool, timeout: Duration) -> bool {
        let epfd = if watch { &self.all } else { &self.bell }.as_raw_fd();
        // SAFETY: epoll_event is plain old data; zeroes are a valid value.
        let mut events: [libc::epoll_event; EVENTS] = unsafe { std::mem::zeroed() };
        let n = if self.pwait2.get() {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            };
            // SAFETY: `events` holds EVENTS entries; `ts` is a valid timespec; a null
            // sigmask leaves the signal mask alone.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    events.as_mut_ptr(),
                    EVENTS as libc::c_int,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.pwait2.set(false);
                return self.wait(watch, timeout);
            }
            n as libc::c_int
        } else {
            let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: as above.
            unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), EVENTS as libc::c_int, ms) }
        };
        events
            .iter()
            .take(n.max(0) as usize)
            .any(|ev| ev.u64 == BELL)
    }
}

fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watch `fd` for input, level-triggered: a descriptor left readable wakes every wait.
fn register(epoll: &OwnedFd, fd: RawFd, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: data,
    };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let rc = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::UdpSocket;
    use std::os::unix::net::UnixStream;

    /// A parker of each kind on a doorbell (a socket pair) and one UDP socket.
    struct Rig {
        bell_tx: UnixStream,
        bell_rx: UnixStream,
        socket: UdpSocket,
        client: UdpSocket,
    }

    impl Rig {
        fn new() -> Self {
            let (bell_tx, bell_rx) = UnixStream::pair().unwrap();
            bell_rx.set_nonblocking(true).unwrap();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            Self {
                bell_tx,
                bell_rx,
                socket,
                client,
            }
        }

        fn parkers(&self) -> Vec<Parker> {
            let (bell, fds) = (self.bell_rx.as_raw_fd(), [self.socket.as_raw_fd()]);
            let ring = Parker::new(bell, &fds).unwrap();
            assert!(ring.uses_io_uring(), "this kernel offers io_uring");
            vec![ring, Parker::epoll(bell, &fds).unwrap()]
        }

        fn send(&self) {
            self.client
                .send_to(b"x", self.socket.local_addr().unwrap())
                .unwrap();
        }

        fn read(&self) {
            let mut buf = [0u8; 16];
            self.socket.recv(&mut buf).unwrap();
        }
    }

    /// Parks that do not watch, for `span`: fewer than a few means each slept through.
    fn pauses(p: &Parker, span: Duration) -> u32 {
        let until = Instant::now() + span;
        let mut parks = 0;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            p.wait(false, left);
            parks += 1;
        }
        parks
    }

    #[test]
    fn a_watching_park_ends_when_the_socket_is_readable_and_stays_ended_until_it_is_read() {
        let rig = Rig::new();
        for p in rig.parkers() {
            let t = Instant::now();
            assert!(!p.wait(true, Duration::from_micros(300)));
            assert!(t.elapsed() < Duration::from_millis(200), "{p:?}");
            rig.send();
            for _ in 0..3 {
                let t = Instant::now();
                assert!(!p.wait(true, Duration::from_secs(5)));
                assert!(t.elapsed() < Duration::from_secs(1), "{p:?}");
            }
            // Not watching, it sleeps through the unread datagram.
            assert!(pauses(&p, Duration::from_millis(50)) < 10, "{p:?}");
            rig.read();
        }
    }

    #[test]
    fn a_pause_sleeps_through_a_datagram_whose_poll_an_earlier_park_left_armed() {
        let rig = Rig::new();
        for p in rig.parkers() {
            // Signals interrupt a wait now and then: of ten pauses, most must last.
            let mut lasted = 0;
            for _ in 0..10 {
                // A watching park that ends at its timeout leaves the socket's poll
                // armed...
                assert!(!p.wait(true, Duration::from_micros(100)));
                // ...and the datagram that fires it does not end the pause after it.
                rig.send();
                let t = Instant::now();
                p.wait(false, Duration::from_millis(5));
                if t.elapsed() >= Duration::from_micros(4500) {
                    lasted += 1;
                }
                // The next watching park sees it.
                let t = Instant::now();
                p.wait(true, Duration::from_secs(5));
                assert!(t.elapsed() < Duration::from_secs(1), "{p:?}");
                rig.read();
            }
            assert!(lasted >= 5, "{lasted} of 10 pauses lasted: {p:?}");
        }
    }

    #[test]
    fn the_doorbell_ends_every_park_and_says_so() {
        let mut rig = Rig::new();
        for p in rig.parkers() {
            for watch in [true, false, true] {
                rig.bell_tx.write_all(b"!").unwrap();
                let t = Instant::now();
                assert!(p.wait(watch, Duration::from_secs(5)), "{p:?}");
                assert!(t.elapsed() < Duration::from_secs(1), "{p:?}");
                // Drained, as the mesh does; then the next park waits again.
                let mut buf = [0u8; 8];
                while std::io::Read::read(&mut rig.bell_rx, &mut buf).is_ok() {}
                assert!(!p.wait(watch, Duration::from_millis(1)), "{p:?}");
            }
        }
    }

    #[test]
    fn a_socket_closed_before_its_parker_is_free_once_the_parker_is_dropped() {
        let (_bell_tx, bell_rx) = UnixStream::pair().unwrap();
        for _ in 0..20 {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let p = Parker::new(bell_rx.as_raw_fd(), &[socket.as_raw_fd()]).unwrap();
            // Ends at its timeout with the socket's poll (and the doorbell's) armed.
            p.wait(true, Duration::from_micros(100));
            // The shard's order: its socket goes first, then its parker.
            drop(socket);
            drop(p);
            UdpSocket::bind(addr).expect("the port is free again");
        }
    }
}

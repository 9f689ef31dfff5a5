//! Parking an executor's thread on its doorbell and a fixed set of descriptors, in one
//! system call.
//!
//! An executor whose one task is a loop owning everything it waits for (a shard: its
//! UDP socket, its mesh doorbell, its timers) parks its thread directly instead of
//! awaiting each source through glommio: one `ppoll` on the doorbell and, when the park
//! watches them, the descriptors, with a nanosecond timeout.
//!
//! Why `ppoll`, whose wait is registered on each descriptor only for the call: a
//! descriptor's wait queue is walked whenever its state changes while anything waits on
//! it, and a UDP socket's changes with every datagram it sends (the kernel frees each
//! sent datagram's buffer space and offers the waiters the room). A registration that
//! stays (epoll's) makes every datagram a busy shard sends take the wait queue's lock and
//! call the registration, although nobody waits for room; `ppoll`'s is gone when the park
//! ends. It holds nothing past the call either: a poll armed in an io_uring holds its
//! socket open until the kernel tears the ring down, some milliseconds after the process
//! is gone, so a server killed outright could not be restarted on its port at once.
//!
//! A park that must not end when a watched socket turns readable (a loop letting
//! received datagrams accumulate for a moment) polls the doorbell alone.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// How one executor parks. Built by [`crate::MeshHandle::parker`].
#[derive(Debug)]
pub struct Parker {
    /// The doorbell first, then the watched descriptors.
    fds: Vec<RawFd>,
}

impl Parker {
    pub(crate) fn new(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
        if fds.len() >= MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a parker watches at most {} descriptors", MAX_FDS - 1),
            ));
        }
        Ok(Self {
            fds: std::iter::once(doorbell)
                .chain(fds.iter().copied())
                .collect(),
        })
    }

    /// Wait until the doorbell rings, a watched descriptor is readable (only when
    /// `watch`), or `timeout` passes. Returns whether the doorbell rang (its rings are
    /// then the caller's to drain). Interrupted waits return early: callers loop.
    pub(crate) fn wait(&self, watch: bool, timeout: Duration) -> bool {
        // The doorbell and a socket or two: on the stack, built for each park (the
        // kernel writes each entry's `revents`).
        let mut polls = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; MAX_FDS];
        let n = if watch { self.fds.len() } else { 1 };
        for (poll, &fd) in polls.iter_mut().zip(&self.fds[..n]) {
            poll.fd = fd;
        }
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `polls` holds at least `n` initialised entries; `ts` is a valid
        // timespec; a null sigmask leaves the signal mask alone.
        let ready =
            unsafe { libc::ppoll(polls.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
        ready > 0 && polls[0].revents != 0
    }
}

/// The most descriptors one park watches, the doorbell included.
const MAX_FDS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    /// A parker on a doorbell (a socket pair) and one UDP socket.
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

        fn parker(&self) -> Parker {
            Parker::new(self.bell_rx.as_raw_fd(), &[self.socket.as_raw_fd()]).unwrap()
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
        let p = rig.parker();
        let t = Instant::now();
        assert!(!p.wait(true, Duration::from_micros(300)));
        assert!(t.elapsed() < Duration::from_millis(200));
        rig.send();
        for _ in 0..3 {
            let t = Instant::now();
            assert!(!p.wait(true, Duration::from_secs(5)));
            assert!(t.elapsed() < Duration::from_secs(1));
        }
        // Not watching, it sleeps through the unread datagram.
        assert!(pauses(&p, Duration::from_millis(50)) < 10);
        rig.read();
    }

    #[test]
    fn a_pause_sleeps_through_a_datagram_that_arrives_after_a_watching_park() {
        let rig = Rig::new();
        let p = rig.parker();
        // Signals interrupt a wait now and then: of ten pauses, most must last.
        let mut lasted = 0;
        for _ in 0..10 {
            // A watching park that ends at its timeout...
            assert!(!p.wait(true, Duration::from_micros(100)));
            // ...leaves nothing behind that a datagram arriving now could end the pause
            // after it with.
            rig.send();
            let t = Instant::now();
            p.wait(false, Duration::from_millis(5));
            if t.elapsed() >= Duration::from_micros(4500) {
                lasted += 1;
            }
            // The next watching park sees it.
            let t = Instant::now();
            p.wait(true, Duration::from_secs(5));
            assert!(t.elapsed() < Duration::from_secs(1));
            rig.read();
        }
        assert!(lasted >= 5, "{lasted} of 10 pauses lasted");
    }

    #[test]
    fn the_doorbell_ends_every_park_and_says_so() {
        let mut rig = Rig::new();
        let p = rig.parker();
        for watch in [true, false, true] {
            rig.bell_tx.write_all(b"!").unwrap();
            let t = Instant::now();
            assert!(p.wait(watch, Duration::from_secs(5)));
            assert!(t.elapsed() < Duration::from_secs(1));
            // Drained, as the mesh does; then the next park waits again.
            let mut buf = [0u8; 8];
            while std::io::Read::read(&mut rig.bell_rx, &mut buf).is_ok() {}
            assert!(!p.wait(watch, Duration::from_millis(1)));
        }
    }

    #[test]
    fn a_socket_closed_while_its_parker_lives_frees_its_port_at_once() {
        let (_bell_tx, bell_rx) = UnixStream::pair().unwrap();
        for _ in 0..20 {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let p = Parker::new(bell_rx.as_raw_fd(), &[socket.as_raw_fd()]).unwrap();
            p.wait(true, Duration::from_micros(100));
            drop(socket);
            UdpSocket::bind(addr).expect("the port is free again");
            drop(p);
        }
    }

    #[test]
    fn more_descriptors_than_a_park_polls_are_refused() {
        let (_bell_tx, bell_rx) = UnixStream::pair().unwrap();
        let fd = bell_rx.as_raw_fd();
        assert!(Parker::new(fd, &[fd; MAX_FDS - 1]).is_ok());
        let e = Parker::new(fd, &[fd; MAX_FDS]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

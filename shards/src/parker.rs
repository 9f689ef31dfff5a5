//! Parking an executor's thread in `epoll_pwait2(2)` on its doorbell and a fixed set of
//! descriptors.
//!
//! An executor whose one task is a loop owning everything it waits for (a shard: its
//! UDP socket, its mesh doorbell, its timers) parks its thread directly instead of
//! awaiting each source through io_uring. The registrations are made once: a park is a
//! single system call that adds nothing to and removes nothing from the sockets' wait
//! queues, unlike `poll(2)`, which does both for every descriptor on every call.
//!
//! Two epoll instances share the doorbell: one also watches the descriptors, the other
//! only the doorbell, for a park that must not end when a watched socket turns readable
//! (a loop letting received datagrams accumulate for a moment).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The event data of the doorbell and of the watched descriptors.
const BELL: u64 = 0;
const WATCHED: u64 = 1;
/// Events taken from one wait: the doorbell and a few sockets.
const EVENTS: usize = 8;

/// One executor's epoll instances. Built by [`crate::MeshHandle::parker`].
#[derive(Debug)]
pub struct Parker {
    /// The doorbell and every watched descriptor.
    all: OwnedFd,
    /// The doorbell alone.
    bell: OwnedFd,
    /// `epoll_pwait2` (nanosecond timeouts, Linux 5.11) is available; otherwise waits
    /// round their timeout up to whole milliseconds.
    pwait2: std::cell::Cell<bool>,
}

impl Parker {
    pub(crate) fn new(doorbell: RawFd, fds: &[RawFd]) -> io::Result<Self> {
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
            pwait2: std::cell::Cell::new(true),
        })
    }

    /// Wait until the doorbell rings, a watched descriptor is readable (only when
    /// `watch`), or `timeout` passes. Returns whether the doorbell rang (its rings are
    /// then the caller's to drain). Interrupted waits return early.
    pub(crate) fn wait(&self, watch: bool, timeout: Duration) -> bool {
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

//! Waking a parked executor from another thread.
//!
//! glommio parks in `io_uring_enter` and cannot see a crossbeam queue. Each executor
//! therefore owns a doorbell: a connected pair of Unix stream sockets. Peers write one
//! byte to ring it; the owner awaits a read through glommio (io_uring), so a parked
//! executor wakes exactly when a peer enqueues. A ring is sent only when the owner has
//! said it is about to park, so a busy executor costs its peers one atomic swap.
//!
//! Ordering: the owner stores `parked = true` and then re-checks its queues; a peer
//! pushes into the queue and then swaps `parked` to false. With both in SeqCst, either
//! the owner sees the message or the peer sees `parked` and writes the byte: no lost
//! wake-up.

use std::io;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The shared half of a doorbell: anyone may ring it.
#[derive(Debug)]
pub struct Doorbell {
    parked: AtomicBool,
    tx: UnixStream,
    rings: AtomicU64,
    /// The receiving end, taken once by the owner executor when it starts. The mutex is
    /// touched exactly once per executor lifetime, never on the message path.
    rx: Mutex<Option<UnixStream>>,
}

impl Doorbell {
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Self {
            parked: AtomicBool::new(false),
            tx,
            rings: AtomicU64::new(0),
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Wake the owner if it is parked (or about to park). Never blocks: if the socket
    /// buffer is full, the owner has wake-ups pending anyway.
    pub fn ring(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            self.rings.fetch_add(1, Ordering::Relaxed);
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// How many times a ring actually wrote to the socket (a parked owner was woken).
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }

    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::SeqCst);
    }

    /// Take the receiving end for the executor that owns this doorbell.
    pub(crate) fn take_receiver(&self) -> Option<DoorbellReceiver> {
        let rx = self.rx.lock().ok()?.take()?;
        let fd = rx.into_raw_fd();
        // SAFETY: the descriptor is owned by `rx`, released here and owned by the
        // glommio stream from now on.
        let socket = unsafe { glommio::net::UnixStream::from_raw_fd(fd) };
        Some(DoorbellReceiver {
            socket: std::cell::RefCell::new(socket),
            fd,
        })
    }
}

/// The owner's half: awaited by the executor that parks on it. `!Send`.
pub struct DoorbellReceiver {
    socket: std::cell::RefCell<glommio::net::UnixStream>,
    /// The socket's descriptor (owned by `socket`), for owners that park on it.
    fd: std::os::fd::RawFd,
}

impl DoorbellReceiver {
    /// The receiving socket's descriptor, for an owner that waits on it together with
    /// its other descriptors (`crate::parker`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd
    }

    /// Take every pending ring without waiting (the socket is non-blocking).
    pub fn drain(&self) {
        let fd = self.raw_fd();
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a local buffer of the given length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < buf.len() as isize {
                break;
            }
        }
    }

    /// Wait for at least one ring (a read of up to 64 pending rings at once).
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn wait(&self) {
        use futures_lite::AsyncReadExt;
        let mut buf = [0u8; 64];
        // Only the owning executor's mesh pump waits, so the borrow is never contended;
        // `try_borrow_mut` makes a second concurrent waiter return at once instead of
        // panicking, which is why holding the borrow across the await is sound here.
        let Ok(mut socket) = self.socket.try_borrow_mut() else {
            return;
        };
        let _ = socket.read(&mut buf).await;
    }
}

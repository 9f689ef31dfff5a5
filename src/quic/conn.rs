//! A shard-local QUIC connection shared between the driver and the tasks using it.
//!
//! The driver owns the I/O: it feeds datagrams and timeouts into the
//! `quinn_proto::Connection` and sends what it transmits. Tasks (HTTP/3, WebTransport,
//! the lead's session code) read and write streams through [`ConnRef`].
//!
//! Wake-ups are deliberately coarse so none is lost: every task that finds the
//! connection not ready parks its waker in one list, and the driver wakes the whole
//! list whenever the connection produced any event (new stream, readable, writable,
//! datagram, lost). A task that changed the connection (wrote, read, opened, closed)
//! marks it dirty and rings the driver, which then transmits for it.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Instant;

use quinn_proto::{Connection, ConnectionError, ConnectionHandle};

/// The driver's doorbell: which connections tasks touched, and the driver's waker.
#[derive(Default)]
pub struct DriverSignal {
    dirty: RefCell<Vec<ConnectionHandle>>,
    waker: RefCell<Option<Waker>>,
    notified: Cell<bool>,
    /// The clock as of the driver's current pass (read once per pass).
    now: Cell<Option<Instant>>,
}

impl DriverSignal {
    pub fn mark(&self, handle: ConnectionHandle) {
        self.dirty.borrow_mut().push(handle);
        self.notify();
    }

    pub fn notify(&self) {
        if !self.notified.replace(true) {
            if let Some(w) = self.waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    pub(crate) fn take_notified(&self) -> bool {
        self.notified.replace(false)
    }

    pub(crate) fn set_waker(&self, cx: &Context<'_>) {
        let mut slot = self.waker.borrow_mut();
        match slot.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    pub(crate) fn take_dirty(&self, into: &mut Vec<ConnectionHandle>) {
        into.append(&mut self.dirty.borrow_mut());
    }

    pub(crate) fn set_now(&self, now: Instant) {
        self.now.set(Some(now));
    }

    /// The driver's clock for this pass (tasks never read the clock themselves).
    pub fn now(&self) -> Instant {
        self.now.get().unwrap_or_else(Instant::now)
    }
}

/// The connection plus what the driver and its tasks track about it.
pub struct ConnState {
    pub conn: Connection,
    /// Why the connection ended, once it has.
    pub lost: Option<ConnectionError>,
    /// Drained: the driver has forgotten it.
    pub drained: bool,
    wakers: Vec<Waker>,
}

impl ConnState {
    /// Park `cx`'s waker until the connection's next event.
    pub fn park(&mut self, cx: &Context<'_>) {
        if !self.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.wakers.push(cx.waker().clone());
        }
    }

    pub(crate) fn wake_all(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }
}

struct Inner {
    handle: ConnectionHandle,
    remote: SocketAddr,
    state: RefCell<ConnState>,
    signal: Rc<DriverSignal>,
}

/// A handle on one connection, cheap to clone, `!Send` (it lives on its shard).
#[derive(Clone)]
pub struct ConnRef(Rc<Inner>);

impl ConnRef {
    pub(crate) fn new(
        handle: ConnectionHandle,
        conn: Connection,
        signal: Rc<DriverSignal>,
    ) -> Self {
        let remote = conn.remote_address();
        Self(Rc::new(Inner {
            handle,
            remote,
            state: RefCell::new(ConnState {
                conn,
                lost: None,
                drained: false,
                wakers: Vec::new(),
            }),
            signal,
        }))
    }

    pub fn handle(&self) -> ConnectionHandle {
        self.0.handle
    }

    /// The peer's address when the connection was accepted.
    pub fn remote(&self) -> SocketAddr {
        self.0.remote
    }

    /// Inspect the connection without telling the driver.
    pub fn read<T>(&self, f: impl FnOnce(&mut ConnState) -> T) -> T {
        f(&mut self.0.state.borrow_mut())
    }

    /// Change the connection and have the driver transmit for it.
    pub fn write<T>(&self, f: impl FnOnce(&mut ConnState) -> T) -> T {
        let out = f(&mut self.0.state.borrow_mut());
        self.0.signal.mark(self.0.handle);
        out
    }

    /// The driver's clock.
    pub fn now(&self) -> Instant {
        self.0.signal.now()
    }

    pub fn signal(&self) -> &Rc<DriverSignal> {
        &self.0.signal
    }
}

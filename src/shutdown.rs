//! Signals: SIGTERM/SIGINT start an orderly shutdown; a second one exits at once.
//!
//! The signals are blocked in every thread (the mask is set before any thread starts)
//! and taken synchronously by one dedicated thread with `sigwait`, so no code runs in
//! signal-handler context. The thread flips [`Shutdown`] and wakes the control plane.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Shared shutdown state: how many termination signals have arrived.
#[derive(Debug, Default)]
pub struct Shutdown {
    signals: AtomicU32,
    last: AtomicU32,
}

impl Shutdown {
    pub fn requested(&self) -> bool {
        self.signals.load(Ordering::SeqCst) > 0
    }

    /// Termination signals received so far (the control plane feeds each new one to
    /// the drain).
    pub fn signals(&self) -> u32 {
        self.signals.load(Ordering::SeqCst)
    }

    /// The number of the last signal (0 when shutdown was requested otherwise).
    pub fn last_signal(&self) -> i32 {
        self.last.load(Ordering::SeqCst) as i32
    }

    /// Request shutdown as if `signal` had arrived (tests, internal fatal errors).
    pub fn request(&self, signal: i32) -> u32 {
        self.last.store(signal as u32, Ordering::SeqCst);
        self.signals.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Name of the last signal received ("SIGTERM", "SIGINT").
    pub fn signal_name(&self) -> &'static str {
        match self.last.load(Ordering::SeqCst) as i32 {
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            _ => "shutdown request",
        }
    }
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Block SIGTERM and SIGINT in the calling thread and every thread it starts later.
/// Call first thing in `main`.
pub fn block_signals() {
    let set = termination_set();
    // SAFETY: valid sigset; the old mask is not needed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Start the signal thread. On the first signal it calls `on_first`; on the second it
/// exits the process at once with 128 + signal number.
pub fn spawn_signal_thread(shutdown: Arc<Shutdown>, on_first: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let set = termination_set();
            let mut sig: libc::c_int = 0;
            // SAFETY: valid sigset and out-pointer; the signals are blocked in all threads.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let count = shutdown.request(sig);
            if count == 1 {
                tracing::info!(
                    signal = shutdown.signal_name(),
                    "Received {}, starting graceful shutdown (send it again to exit at once)",
                    shutdown.signal_name()
                );
                on_first();
            } else {
                tracing::warn!(
                    signal = shutdown.signal_name(),
                    "Second termination signal, exiting immediately"
                );
                std::process::exit(128 + sig);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the signal thread; SIGTERM will kill the process");
    }
}

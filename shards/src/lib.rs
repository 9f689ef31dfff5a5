//! The thread-per-core runtime under mc-service. It knows nothing about meetings.
//!
//! ```text
//!            ┌──────────── Mesh<M>: one bounded queue per (from, to) pair ────────────┐
//!  shard 0 ──┤ try_send(to, msg) ─► crossbeam bounded queue ─► ring(to's Doorbell)     │
//!  shard 1 ──┤                                                  │                      │
//!  control ──┤ MeshHandle::wait() ◄── awaits its own Doorbell ◄─┘ (only when parked)   │
//!            └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - [`runtime`]: start glommio executors, one pinned per CPU, plus unpinned helpers;
//!   probe io_uring first so a refused `io_uring_setup` gets a clear cause.
//! - [`mesh`]: the bounded queues between executors. `try_send` hands the message back
//!   when a queue is full, so the caller decides between back-pressure and a counted
//!   drop. Nothing here blocks a thread.
//! - [`doorbell`]: how a parked executor is woken when a peer enqueues (glommio cannot
//!   await a crossbeam receiver).
//! - [`parker`]: parking a looping executor's thread in one system call on its
//!   doorbell and its sockets (one `ppoll`).
//!
//! Seeds (`MeshSeed`) are `Send` and cross into the executor thread; the handle an
//! executor builds from its seed (`MeshHandle`) is `!Send` and stays there.

pub mod doorbell;
pub mod mesh;
pub mod parker;
pub mod runtime;

pub use mesh::{Full, Lane, Mesh, MeshHandle, MeshMonitor, MeshSeed, QueueDepth};
pub use parker::Parker;
pub use runtime::{
    allowed_cpus, allowed_cpus_of, probe_io_uring, ExecutorSpec, IoUringError, RuntimeError,
};

use std::fmt;

/// Names one executor of the mesh: the shards are `0..N`, helper executors (the control
/// plane) come after them.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

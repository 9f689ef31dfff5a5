//! Starting executors: one glommio executor per shard, pinned to its own CPU, plus
//! unpinned helper executors (the control plane).
//!
//! Before any executor starts, [`probe_io_uring`] makes one `io_uring_setup` call so a
//! refused ring reports its real cause. (glommio itself panics with "kernel should be
//! at least 5.8" whatever the reason.)

use std::future::Future;
use std::io;

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use thiserror::Error;

/// Why io_uring cannot be used, in words an operator can act on.
#[derive(Debug, Error)]
pub enum IoUringError {
    #[error(
        "io_uring_setup refused with EPERM: a seccomp profile (Docker >= 25 and containerd 2.0 \
         default profiles block io_uring) or the sysctl kernel.io_uring_disabled forbids it; \
         see tuning.md, \"io_uring in containers\""
    )]
    Forbidden,
    #[error(
        "io_uring_setup failed with ENOMEM: RLIMIT_MEMLOCK is too low for the rings \
         (raise `ulimit -l` / the container's memlock limit; see tuning.md, \"memlock\")"
    )]
    MemLock,
    #[error("io_uring is not available in this kernel (ENOSYS): Linux 5.8 or newer is required")]
    NotSupported,
    #[error("io_uring_setup failed: {0}")]
    Other(io::Error),
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    IoUring(#[from] IoUringError),
    #[error("cannot read the CPUs this process may use: {0}")]
    Affinity(io::Error),
    #[error("{wanted} shards requested but this process may use only {available} CPUs")]
    TooManyShards { wanted: usize, available: usize },
    #[error("cannot start executor {name}: {source}")]
    Spawn {
        name: String,
        source: glommio::GlommioError<()>,
    },
    #[error("cannot create the mesh: {0}")]
    Mesh(io::Error),
}

/// Check that this process may create an io_uring, and why not if it may not.
pub fn probe_io_uring() -> Result<(), IoUringError> {
    // struct io_uring_params is 120 bytes; zeroed means "defaults".
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params*) with a zeroed, correctly sized params
    // block; the returned descriptor is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned to us and is closed once.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => IoUringError::Forbidden,
        Some(libc::ENOMEM) => IoUringError::MemLock,
        Some(libc::ENOSYS) => IoUringError::NotSupported,
        _ => IoUringError::Other(err),
    })
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    allowed_cpus_of(0)
}

/// The CPUs process `pid` may run on (0: this process), in ascending order.
pub fn allowed_cpus_of(pid: libc::pid_t) -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for `pid`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

/// How to start one executor.
#[derive(Clone, Debug)]
pub struct ExecutorSpec {
    /// Thread name prefix (glommio appends an id).
    pub name: String,
    /// Pin to this CPU, or float when `None`.
    pub cpu: Option<usize>,
    /// Memory glommio registers with each of its rings. A little is plenty for UDP.
    pub io_memory: usize,
    /// Threads of its blocking pool (`spawn_blocking`) when it floats; a pinned
    /// executor's pool is one thread on its CPU.
    pub blocking_threads: usize,
}

impl ExecutorSpec {
    /// The shard executors: `shards` of them, pinned to the first allowed CPUs.
    pub fn pinned_shards(shards: usize, io_memory: usize) -> Result<Vec<Self>, RuntimeError> {
        let cpus = allowed_cpus().map_err(RuntimeError::Affinity)?;
        if shards > cpus.len() {
            return Err(RuntimeError::TooManyShards {
                wanted: shards,
                available: cpus.len(),
            });
        }
        Ok(cpus
            .into_iter()
            .take(shards)
            .enumerate()
            .map(|(i, cpu)| Self {
                name: format!("shard-{i}"),
                cpu: Some(cpu),
                io_memory,
                blocking_threads: 1,
            })
            .collect())
    }

    /// Start the executor on its own thread and run `make()`'s future to completion.
    pub fn spawn<G, F, T>(&self, make: G) -> Result<glommio::ExecutorJoinHandle<T>, RuntimeError>
    where
        G: FnOnce() -> F + Send + 'static,
        F: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (placement, pool) = match self.cpu {
            Some(cpu) => (
                Placement::Fixed(cpu),
                PoolPlacement::from(Placement::Fixed(cpu)),
            ),
            None => (
                Placement::Unbound,
                PoolPlacement::Unbound(self.blocking_threads.max(1)),
            ),
        };
        LocalExecutorBuilder::new(placement)
            .blocking_thread_pool_placement(pool)
            .name(&self.name)
            .io_memory(self.io_memory)
            .spawn(make)
            .map_err(|source| RuntimeError::Spawn {
                name: self.name.clone(),
                source,
            })
    }
}

/// Default io_memory per ring: enough for signaling, small enough for a default
/// RLIMIT_MEMLOCK of 8 MiB with a few shards.
pub const DEFAULT_IO_MEMORY: usize = 512 * 1024;

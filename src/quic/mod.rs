//! QUIC on a shard: quinn-proto endpoint, connection IDs that name their shard, UDP I/O.
//!
//! - [`cid`]: CIDs carrying the owner shard, and `owner_shard` to route before decode.
//! - [`udp`]: the SO_REUSEPORT socket with GSO/GRO, driven non-blocking on glommio.
//! - [`conn`]: a connection shared by the driver and the tasks using it ([`ConnRef`]).
//! - [`driver`]: the per-shard loop: datagrams in, timers, transmits out, forwarding.

pub mod cid;
pub mod conn;
pub mod driver;
pub mod shared;
pub mod udp;

use std::time::Duration;

pub use cid::{owner_shard, ShardCidGenerator, CID_LEN};
pub use conn::{ConnRef, ConnState, DriverSignal};
pub use driver::{Forwarded, QuicShard, ShardStats};
pub use shared::QuicShared;

/// When to answer an Initial with a stateless Retry (RFC 9000 §8.1.2).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetryMode {
    /// Validate every client address with a Retry (one extra round trip).
    Always,
    /// Only while this shard has more pending handshakes than --retry-threshold.
    #[default]
    Auto,
    /// Never send Retry.
    Never,
}

/// QUIC flags (flattened into the top-level `Config`).
#[derive(clap::Args, Clone, Debug)]
pub struct QuicArgs {
    /// Close a connection after this many seconds without packets from the peer.
    #[arg(long, env = "MC_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// Send a keep-alive PING after this many idle seconds (0 disables).
    #[arg(long, env = "MC_KEEP_ALIVE_SECS", default_value_t = 10)]
    pub keep_alive_secs: u64,
    /// SO_RCVBUF for each shard's UDP socket (capped by net.core.rmem_max).
    #[arg(long, env = "MC_UDP_RECV_BUFFER_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub udp_recv_buffer_bytes: usize,
    /// SO_SNDBUF for each shard's UDP socket (capped by net.core.wmem_max).
    #[arg(long, env = "MC_UDP_SEND_BUFFER_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub udp_send_buffer_bytes: usize,
    /// Stateless Retry for address validation: always, auto (under handshake load), never.
    #[arg(long, env = "MC_RETRY", value_enum, default_value_t = RetryMode::Auto)]
    pub retry: RetryMode,
    /// With --retry auto: pending handshakes on a shard above which new clients get a Retry.
    #[arg(long, env = "MC_RETRY_THRESHOLD", default_value_t = 256)]
    pub retry_threshold: usize,
    /// Most QUIC connections one shard holds; further clients are refused (counted).
    #[arg(long, env = "MC_MAX_SESSIONS_PER_SHARD", default_value_t = 10_000)]
    pub max_sessions_per_shard: usize,
    /// Most handshakes in progress on one shard; further Initials are refused (counted).
    #[arg(long, env = "MC_MAX_HANDSHAKES_PER_SHARD", default_value_t = 1_024)]
    pub max_handshakes_per_shard: usize,
    /// Serve the /echo WebTransport endpoint (transport tests and benchmarks only).
    #[arg(long, env = "MC_ENABLE_ECHO", default_value_t = false)]
    pub enable_echo: bool,
}

impl Default for QuicArgs {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 30,
            keep_alive_secs: 10,
            udp_recv_buffer_bytes: 8 * 1024 * 1024,
            udp_send_buffer_bytes: 8 * 1024 * 1024,
            retry: RetryMode::Auto,
            retry_threshold: 256,
            max_sessions_per_shard: 10_000,
            max_handshakes_per_shard: 1_024,
            enable_echo: false,
        }
    }
}

impl QuicArgs {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn keep_alive(&self) -> Option<Duration> {
        (self.keep_alive_secs > 0).then(|| Duration::from_secs(self.keep_alive_secs))
    }
}

/// Why the data plane could not start on a shard.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("Failed to bind WebTransport listener on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("Failed to bind WebTransport listener: TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("invalid QUIC configuration: {0}")]
    Config(String),
    #[error("shard {0} cannot be named in a one-byte connection ID prefix (at most 256 shards)")]
    TooManyShards(u16),
}

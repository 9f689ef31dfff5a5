//! QUIC on a shard: quinn-proto endpoint, connection IDs that name their shard, UDP I/O.
//!
//! - [`cid`]: CIDs carrying the owner shard, and `owner_shard` to route before decode.
//! - [`crypto`]: each connection's TLS session, noting where its keys live.
//! - [`udp`]: the SO_REUSEPORT socket with GSO/GRO and batched `recvmmsg`/`sendmmsg`.
//! - [`rx`]: right-sized, reused buffers for received datagrams.
//! - [`endpoint`]: the endpoint, the connection table, accept limits, transmit batches.
//! - [`send_window`]: the connections' send window, sized to the shard's outbound budget.
//! - [`shared`]: the server and transport configuration every shard shares.
//!
//! The transport is sized for signaling rather than bulk transfer: the connection and
//! stream receive windows, the datagram receive queue and the concurrent stream limits
//! bound what one client can make the server hold (`--conn-receive-window-bytes` and
//! the flags beside it; `tuning.md`); the send window bounds what the server holds for
//! one, and all of a shard's connections together share its outbound budget.

pub mod cid;
pub mod crypto;
pub mod endpoint;
pub mod rx;
pub mod send_window;
pub mod shared;
pub mod udp;

use std::time::Duration;

pub use cid::{owner_shard, ShardCidGenerator, CID_LEN};
pub use endpoint::{ClientCount, Forwarded, QuicEndpoint, ShardStats};
pub use shared::QuicShared;

/// The largest UDP payload we accept: a 1500-byte Ethernet MTU minus IPv4 and UDP
/// headers. A client's Initial datagrams come before it knows what we ask for
/// ([`ADVERTISED_UDP_PAYLOAD`]), and may be this large. Every datagram then fits a pooled
/// receive buffer ([`rx::DATAGRAM_BUF`]).
pub const MAX_UDP_PAYLOAD: u16 = 1472;

/// What we ask clients to send us at most (RFC 9000 §18.2 `max_udp_payload_size`), the
/// least QUIC allows. With more, a client probes the path's MTU towards us after its
/// handshake (RFC 8899): packets of up to about 1,450 bytes of padding, which
/// quinn-proto reads one PADDING frame, one byte, at a time. A session's setup cost
/// about 30 % more server CPU with them (bench/README, "What clients send us"). What
/// a client sends a signaling server is small messages; a larger one takes a packet
/// more now and then.
pub const ADVERTISED_UDP_PAYLOAD: u16 = 1200;

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

/// Longest `--idle-timeout-secs` and `--keep-alive-secs`: a day.
pub const MAX_SECS: u64 = 86_400;
/// Longest handshake, connect and join timeout: an hour.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Longest pause of `--rx-coalesce-us` and `--rx-batch-us`: a second.
pub const MAX_PAUSE_US: u64 = 1_000_000;

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
    /// Most handshakes in progress on one shard. Beyond it an Initial from an address
    /// not yet validated gets a Retry (unless --retry never); one whose address is
    /// proven takes the place of the oldest handshake of the client holding the most,
    /// if that client holds more than it would, and is refused (counted) otherwise.
    #[arg(long, env = "MC_MAX_HANDSHAKES_PER_SHARD", default_value_t = 1_024)]
    pub max_handshakes_per_shard: usize,
    /// Serve the /echo WebTransport endpoint (transport tests and benchmarks only).
    #[arg(long, env = "MC_ENABLE_ECHO", default_value_t = false)]
    pub enable_echo: bool,
    /// Connection-level receive window: stream bytes one client may have in flight to
    /// the server across all its streams before it must wait (RFC 9000 §4.1).
    #[arg(long, env = "MC_CONN_RECEIVE_WINDOW_BYTES", default_value_t = 128 * 1024)]
    pub conn_receive_window_bytes: u32,
    /// Receive window of each stream.
    #[arg(long, env = "MC_STREAM_RECEIVE_WINDOW_BYTES", default_value_t = 64 * 1024)]
    pub stream_receive_window_bytes: u32,
    /// Bytes of received datagrams a connection may queue before older ones are dropped.
    #[arg(long, env = "MC_DATAGRAM_RECEIVE_BUFFER_BYTES", default_value_t = 16 * 1024)]
    pub datagram_receive_buffer_bytes: u32,
    /// Bytes one connection may have sent but not yet acknowledged, across its streams;
    /// halved, down to 16 KiB, while a shard's connections times their window would pass
    /// --shard-outbound-max-bytes (mc_connection_send_window_bytes).
    #[arg(long, env = "MC_SEND_WINDOW_BYTES", default_value_t = 256 * 1024)]
    pub send_window_bytes: u32,
    /// Bidirectional streams a client may have open at once (the CONNECT stream and the
    /// signaling stream are two).
    #[arg(long, env = "MC_MAX_BIDI_STREAMS", default_value_t = 16)]
    pub max_bidi_streams: u32,
    /// Unidirectional streams a client may have open at once (HTTP/3 control and QPACK
    /// streams are three).
    #[arg(long, env = "MC_MAX_UNI_STREAMS", default_value_t = 8)]
    pub max_uni_streams: u32,
    /// Largest HTTP/3 request header section accepted, in bytes (advertised as
    /// SETTINGS_MAX_FIELD_SECTION_SIZE; larger ones are refused with H3_EXCESSIVE_LOAD).
    #[arg(long, env = "MC_MAX_FIELD_SECTION_BYTES", default_value_t = 8 * 1024)]
    pub max_field_section_bytes: u32,
    /// After a pass that received only acknowledgements, how long the shard may leave
    /// the socket unread so that the next ones arrive as one batch, in microseconds
    /// (0: read at once). Client messages that arrive meanwhile wait at most this long.
    #[arg(long, env = "MC_RX_COALESCE_US", default_value_t = 500)]
    pub rx_coalesce_us: u64,
    /// While datagrams keep arriving (the last two receptions were closer than this, or
    /// the last pause caught some), how long the shard may leave the socket
    /// unread after a pass so that those arriving meanwhile are handled as one batch, in
    /// microseconds (0: read at once). A datagram after a quiet moment is read at once;
    /// one that arrives during a busy moment waits at most this long. The shard keeps the
    /// pause only while it measures less CPU per datagram with it than without (few
    /// clients that each wait for their reply are read at once).
    #[arg(long, env = "MC_RX_BATCH_US", default_value_t = 300)]
    pub rx_batch_us: u64,
    /// Time a client has from its first packet to complete the QUIC handshake; then the
    /// connection is closed (counted as `handshake_timeout`), in milliseconds.
    #[arg(long, env = "MC_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// Time a client has after its QUIC handshake to request a WebTransport session;
    /// then the connection is closed (counted as `connect_timeout`), in milliseconds.
    #[arg(long, env = "MC_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,
    /// Time a client has after its session is accepted to open the signaling stream and
    /// complete its first frame (the join); then the session is closed with 0x100
    /// (counted as `join_timeout`), in milliseconds.
    #[arg(long, env = "MC_JOIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub join_timeout_ms: u64,
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
            conn_receive_window_bytes: 128 * 1024,
            stream_receive_window_bytes: 64 * 1024,
            datagram_receive_buffer_bytes: 16 * 1024,
            send_window_bytes: 256 * 1024,
            max_bidi_streams: 16,
            max_uni_streams: 8,
            max_field_section_bytes: 8 * 1024,
            rx_coalesce_us: 500,
            rx_batch_us: 300,
            handshake_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            join_timeout_ms: 10_000,
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

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn rx_coalesce(&self) -> Duration {
        Duration::from_micros(self.rx_coalesce_us)
    }

    pub fn rx_batch(&self) -> Duration {
        Duration::from_micros(self.rx_batch_us)
    }

    pub fn join_timeout(&self) -> Duration {
        Duration::from_millis(self.join_timeout_ms)
    }

    /// The HTTP/3 layer's limits.
    pub fn h3_limits(&self) -> crate::h3::H3Limits {
        crate::h3::H3Limits::new(
            self.max_field_section_bytes as usize,
            self.connect_timeout(),
        )
    }

    /// Most bytes of received data one connection can make the server hold: unread
    /// stream data (the connection window), queued datagrams, the header sections being
    /// assembled (together at most one section's limit), and the few small buffers of
    /// the HTTP/3 layer (a control frame, a close capsule).
    pub fn receive_budget_bytes(&self) -> u64 {
        u64::from(self.conn_receive_window_bytes)
            + u64::from(self.datagram_receive_buffer_bytes)
            + u64::from(self.max_field_section_bytes)
            + crate::h3::settings::MAX_PEER_SETTINGS_BYTES as u64
            + (4 + crate::h3::capsule::MAX_REASON) as u64
    }

    /// Everything one connection can make the server hold of what it received
    /// (`mc_connection_receive_budget_bytes`): [`Self::receive_budget_bytes`] in QUIC
    /// and the HTTP/3 layer, and past them the signaling session's decoder: the frame it
    /// is assembling (at most `max_frame` and its header) and, while a join waits for
    /// its signing keys, what came behind the join in the same read (at most one stream
    /// window, already read and so no longer under the client's flow control).
    pub fn connection_memory_budget_bytes(&self, max_frame: usize) -> u64 {
        self.receive_budget_bytes()
            + u64::from(self.stream_receive_window_bytes)
            + (max_frame + crate::signaling::codec::HEADER_LEN) as u64
    }

    /// Check the flags that cannot be used as given.
    pub fn validate(&self) -> Result<(), String> {
        if self.stream_receive_window_bytes < 1024
            || self.conn_receive_window_bytes < self.stream_receive_window_bytes
        {
            return Err("--stream-receive-window-bytes (MC_STREAM_RECEIVE_WINDOW_BYTES) must be at least 1024 and at most --conn-receive-window-bytes (MC_CONN_RECEIVE_WINDOW_BYTES)".into());
        }
        if self.max_bidi_streams < 2 || self.max_uni_streams < 3 {
            return Err("--max-bidi-streams (MC_MAX_BIDI_STREAMS) must be at least 2 and --max-uni-streams (MC_MAX_UNI_STREAMS) at least 3: a WebTransport client needs them".into());
        }
        if self.max_field_section_bytes < 256 {
            return Err(
                "--max-field-section-bytes (MC_MAX_FIELD_SECTION_BYTES) must be at least 256"
                    .into(),
            );
        }
        if self.send_window_bytes < 16 * 1024 {
            return Err("--send-window-bytes (MC_SEND_WINDOW_BYTES) must be at least 16384".into());
        }
        if self.handshake_timeout_ms == 0
            || self.connect_timeout_ms == 0
            || self.join_timeout_ms == 0
        {
            return Err("--handshake-timeout-ms (MC_HANDSHAKE_TIMEOUT_MS), --connect-timeout-ms (MC_CONNECT_TIMEOUT_MS) and --join-timeout-ms (MC_JOIN_TIMEOUT_MS) must be positive".into());
        }
        // Each becomes a deadline (`Instant + Duration`) on a shard: a huge value would
        // overflow it there, so it is bounded here.
        let bounds = [
            (
                "--idle-timeout-secs (MC_IDLE_TIMEOUT_SECS)",
                self.idle_timeout_secs,
                MAX_SECS,
                "s",
            ),
            (
                "--keep-alive-secs (MC_KEEP_ALIVE_SECS)",
                self.keep_alive_secs,
                MAX_SECS,
                "s",
            ),
            (
                "--handshake-timeout-ms (MC_HANDSHAKE_TIMEOUT_MS)",
                self.handshake_timeout_ms,
                MAX_TIMEOUT_MS,
                "ms",
            ),
            (
                "--connect-timeout-ms (MC_CONNECT_TIMEOUT_MS)",
                self.connect_timeout_ms,
                MAX_TIMEOUT_MS,
                "ms",
            ),
            (
                "--join-timeout-ms (MC_JOIN_TIMEOUT_MS)",
                self.join_timeout_ms,
                MAX_TIMEOUT_MS,
                "ms",
            ),
            (
                "--rx-coalesce-us (MC_RX_COALESCE_US)",
                self.rx_coalesce_us,
                MAX_PAUSE_US,
                "µs",
            ),
            (
                "--rx-batch-us (MC_RX_BATCH_US)",
                self.rx_batch_us,
                MAX_PAUSE_US,
                "µs",
            ),
        ];
        for (flag, value, max, unit) in bounds {
            if value > max {
                return Err(format!(
                    "{flag} must be at most {max} ({unit}), not {value}"
                ));
            }
        }
        Ok(())
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

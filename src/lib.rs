//! mc-service: the Meeting Controller.
//!
//! Browsers reach it over WebTransport, join a meeting with a signed token and exchange
//! signaling with everyone else in that meeting. One glommio executor (io_uring) per
//! core, pinned; each shard owns its UDP socket, its QUIC connections and its meetings.
//!
//! ```text
//! UDP datagram ─► shard k socket (SO_REUSEPORT) ─► CID names owner shard? forward : handle
//!   ─► quic (quinn-proto Endpoint/Connection) ─► webtransport (h3 over our quic driver)
//!   ─► signaling (length-prefixed protobuf frames) ─► meeting actor on hash(meeting_id) % N
//!   ─► ServerMessages fanned out to each participant's connection (mesh queue if remote)
//!   ─► stream write ─► poll_transmit ─► sendmsg (GSO where available)
//! ```
//!
//! Module map:
//! - [`config`]: every flag and env var (clap), validated once into typed values.
//! - [`metrics`]: every Prometheus metric, named as the runbook names them.
//! - [`admin`]: the HTTP/1.1 admin plane — `/health`, `/ready`, `/metrics`.
//! - [`actors`]: connection and meeting actors on each shard, and the routing between them.
//! - [`admission`]: the `MC_CAPACITY` limit and draining, shared by all shards.
//! - [`control`]: the control-plane executor: admin plane, readiness, GC client, signals.
//! - [`quic`], [`tls`], [`webtransport`]: the data plane on each shard.
//! - [`signaling`]: the wire contract (`signaling.md`): protobuf messages and framing.
//! - [`meeting`]: the meeting state machine (sans-IO) and its actor plumbing.
//! - [`auth`]: join tokens (JWT/JWKS), session binding tokens, dev keys.
//! - [`gc`]: the Global Controller client (`gc-api.md`).
//! - [`http1`]: the HTTP/1.1 client (sans-IO codec, glommio and blocking transports)
//!   behind the GC client and `--jwks-url`.
//! - [`shard`]: the body of each pinned shard executor and the messages between them.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`logging`]: `tracing` setup (text or JSON).

pub mod actors;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod config;
pub mod control;
pub mod gc;
pub mod http1;
pub mod logging;
pub mod meeting;
pub mod metrics;
pub mod quic;
pub mod shard;
pub mod shutdown;
pub mod signaling;
pub mod tls;
pub mod webtransport;

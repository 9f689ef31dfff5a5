//! mc-service: the Meeting Controller.
//!
//! Browsers reach it over WebTransport, join a meeting with a signed token and exchange
//! signaling with everyone else in that meeting. One glommio executor (io_uring) per
//! core, pinned; each shard owns its UDP socket, its QUIC connections and its meetings,
//! and runs them all in one loop (`shard`). `docs/architecture.md` tells the whole story.
//!
//! ```text
//! UDP ─► recvmmsg on shard k (SO_REUSEPORT) ─► CID names another shard? forward over the mesh
//!   ─► quic: quinn-proto endpoint and connection ─► h3: HTTP/3 + WebTransport (sans-IO)
//!   ─► conn: the session's application ─► signaling frames ─► MeetingCmd
//!   ─► router: meeting on this shard? call it : mesh queue to its shard
//!   ─► actors: meeting state machine ─► frames encoded once ─► each recipient's stream
//!   ─► poll_transmit for every connection that has data ─► sendmmsg (GSO per connection)
//! ```
//!
//! Module map:
//! - [`config`]: every flag and env var (clap), validated once into typed values.
//! - [`metrics`]: every Prometheus metric, named as `docs/runbook.md` names them.
//! - [`admin`]: the HTTP/1.1 admin plane — `/health`, `/ready`, `/metrics`, and the
//!   import of a meeting another MC hands over.
//! - [`control`]: the control-plane executor: admin plane, readiness, GC client, and the
//!   driver of the drain (live migration included).
//! - [`drain`]: the drain and live migration as a sans-IO state machine.
//! - [`migration`]: signed hand-over of a meeting to another MC.
//! - [`admission`]: the `MC_CAPACITY` limit and draining, read by every shard.
//! - [`shard`]: the body of each pinned shard executor: one loop for everything it owns.
//! - [`router`]: the messages between executors and "call here or send to the owner".
//! - [`quic`], [`tls`]: UDP batches, the quinn-proto endpoint and its connections.
//! - [`h3`]: HTTP/3 and WebTransport over one QUIC connection (sans-IO).
//! - [`conn`]: one client connection: QUIC + HTTP/3 + its application (signaling, echo).
//! - [`signaling`]: the wire contract (`docs/protocol.md`): protobuf messages and framing.
//! - [`actors`]: the meetings of a shard and the commands between them and connections.
//! - [`meeting`]: the meeting state machine (sans-IO).
//! - [`auth`]: join tokens (JWT/JWKS), session binding tokens, dev keys.
//! - [`gc`]: the Global Controller client (`docs/gc-api.md`).
//! - [`http1`]: the HTTP/1.1 client (sans-IO codec, glommio and blocking transports)
//!   behind the GC client and `--jwks-url`.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`logging`]: `tracing` setup (text or JSON).

pub mod actors;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod config;
pub mod conn;
pub mod control;
pub mod drain;
pub mod gc;
pub mod h3;
pub mod http1;
pub mod logging;
pub mod meeting;
pub mod metrics;
pub mod migration;
pub mod quic;
pub mod router;
pub mod shard;
pub mod shutdown;
pub mod signaling;
#[cfg(any(test, feature = "fuzzing"))]
pub mod testing;
pub mod tls;

//! HTTP/3 and WebTransport sessions over our quinn-proto driver.
//!
//! - [`h3quic`]: h3's QUIC traits over a shard-local [`ConnRef`].
//! - [`server`]: per connection: HTTP/3 settings, routing, session hand-off.
//! - [`session`]: [`WtSession`] / [`WtStream`], what session code uses.
//! - [`echo`]: the `/echo` endpoint (`--enable-echo`).
//!
//! The lead wires one [`DataPlane`] per shard: `DataPlane::bind(..)` (an error here
//! is a startup failure to print), then `spawn()` the driver; forwarded datagrams
//! arriving over the mesh go to `plane.quic.handle_forwarded(..)`.

pub mod echo;
pub mod h3quic;
pub mod server;
pub mod session;

use std::net::SocketAddr;
use std::rc::Rc;

use http::StatusCode;
use shards::ShardId;

pub use server::WtServer;
pub use session::{SessionEnd, WtSession, WtStream};

use crate::metrics::ShardMetrics;
use crate::quic::{ConnRef, Forwarded, QuicError, QuicShard, QuicShared};

/// What the lead's code decides about sessions on `/`.
pub trait SessionApp {
    /// Inspect the CONNECT before it is accepted; a refusal is answered with its status.
    fn admit(&self, req: &ConnectInfo) -> Result<(), Refusal>;
    /// An accepted session; spawn its task on this shard (`glommio::spawn_local`).
    fn on_session(&self, session: WtSession);
}

/// The parts of a CONNECT request session code needs.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    pub path: String,
    pub query: Option<String>,
    pub authority: Option<String>,
    pub origin: Option<String>,
    pub peer: SocketAddr,
}

impl ConnectInfo {
    pub(crate) fn from_request(req: &http::Request<()>, peer: SocketAddr) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            authority: req.uri().authority().map(|a| a.to_string()),
            origin: header("origin"),
            peer,
        }
    }
}

/// A refused CONNECT: answered with this HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
}

impl Refusal {
    pub fn new(status: StatusCode) -> Self {
        Self { status }
    }

    /// 503: draining or over capacity.
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE)
    }
}

/// Errors of WebTransport sessions and streams.
#[derive(Debug, thiserror::Error)]
pub enum WtError {
    #[error("stream error: {0}")]
    Stream(String),
    #[error("datagram error: {0}")]
    Datagram(String),
    #[error("another task is already reading datagrams of this session")]
    Busy,
    #[error("HTTP error: {0}")]
    Http(String),
}

/// For data-plane tests without signaling: accept every session on `/` and hold its bidi
/// streams open (the service itself uses `actors::connection::SignalingApp`).
pub struct HoldApp;

impl SessionApp for HoldApp {
    fn admit(&self, _req: &ConnectInfo) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_session(&self, session: WtSession) {
        glommio::spawn_local(
            async move { while let Ok(Some(_stream)) = session.accept_bi().await {} },
        )
        .detach();
    }
}

/// One shard's data plane: the QUIC driver and the WebTransport server on top.
pub struct DataPlane {
    pub quic: Rc<QuicShard>,
    pub wt: Rc<WtServer>,
}

impl DataPlane {
    /// Bind shard `id` on `addr` (SO_REUSEPORT). `forward(owner, datagram)` sends a
    /// misrouted datagram to its owner shard (returning it when the queue is full).
    pub fn bind(
        id: ShardId,
        addr: SocketAddr,
        shared: QuicShared,
        metrics: ShardMetrics,
        app: Rc<dyn SessionApp>,
        forward: Box<dyn Fn(ShardId, Forwarded) -> Result<(), Forwarded>>,
    ) -> Result<Self, QuicError> {
        let wt = WtServer::new(app, shared.args.enable_echo, metrics.clone());
        let server = wt.clone();
        let on_connection = Box::new(move |conn: ConnRef| server.serve(conn));
        let quic = QuicShard::bind(id, addr, shared, metrics, forward, on_connection)?;
        Ok(Self { quic, wt })
    }

    /// Spawn the driver on the current executor.
    pub fn spawn(&self) -> glommio::task::JoinHandle<()> {
        glommio::spawn_local(self.quic.clone().run()).detach()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.quic.local_addr()
    }
}

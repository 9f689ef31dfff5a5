//! Per-connection HTTP/3 server: settings, request routing, session hand-off.
//!
//! Routing (issue 3): extended CONNECT with `:protocol webtransport` (RFC 9220 §3,
//! draft-ietf-webtrans-http3 §3.2) on `/` goes to the [`SessionApp`]; on `/echo` to the
//! echo handler when enabled; anything else gets an HTTP/3 status: 404 for unknown
//! paths, 405 for other methods on known ones, 503 while draining.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use h3::ext::Protocol;
use http::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use super::echo;
use super::h3quic::H3Conn;
use super::session::{SessionInner, WtSession};
use super::{ConnectInfo, Refusal, SessionApp};
use crate::metrics::ShardMetrics;
use crate::quic::ConnRef;

type H3Server = h3::server::Connection<H3Conn, Bytes>;
type H3Request = h3::server::RequestStream<super::h3quic::H3Bidi, Bytes>;

/// The WebTransport server of one shard. Lives in an `Rc` on its executor.
pub struct WtServer {
    app: Rc<dyn SessionApp>,
    enable_echo: bool,
    draining: Cell<bool>,
    sessions: RefCell<HashMap<u64, Weak<SessionInner>>>,
    next_session: Cell<u64>,
    metrics: ShardMetrics,
}

impl WtServer {
    pub fn new(app: Rc<dyn SessionApp>, enable_echo: bool, metrics: ShardMetrics) -> Rc<Self> {
        Rc::new(Self {
            app,
            enable_echo,
            draining: Cell::new(false),
            sessions: RefCell::new(HashMap::new()),
            next_session: Cell::new(0),
            metrics,
        })
    }

    /// Stop admitting sessions: new CONNECTs get 503.
    pub fn set_draining(&self, draining: bool) {
        self.draining.set(draining);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Sessions alive on this shard.
    pub fn sessions(&self) -> usize {
        self.sessions
            .borrow()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Close every session on this shard with `code`.
    pub fn close_all(&self, code: u32, reason: &[u8]) {
        let live: Vec<_> = self
            .sessions
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in live {
            WtSession(s).close(code, reason);
        }
    }

    /// Serve a new QUIC connection: spawn its task on this shard.
    pub fn serve(self: &Rc<Self>, conn: ConnRef) {
        let span = tracing::debug_span!("conn", id = conn.handle().0, peer = %conn.remote());
        let this = self.clone();
        glommio::spawn_local(async move { this.run(conn).await }.instrument(span)).detach();
    }

    async fn run(self: Rc<Self>, conn: ConnRef) {
        // Settings (draft-ietf-webtrans-http3 §3.1, RFC 9220 §3, RFC 9297 §2.1.1):
        // Chromium's draft-02 needs ENABLE_WEBTRANSPORT=1 and H3_DATAGRAM=1.
        let built = h3::server::builder()
            .enable_webtransport(true)
            .enable_extended_connect(true)
            .enable_datagram(true)
            .max_webtransport_sessions(1)
            .send_grease(true)
            .build(H3Conn::new(conn.clone()))
            .await;
        let mut h3: H3Server = match built {
            Ok(h3) => h3,
            Err(e) => {
                self.metrics.wt_error.inc();
                tracing::debug!(error = %e, "HTTP/3 setup failed");
                return;
            }
        };
        loop {
            let resolver = match h3.accept().await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    if conn.read(|st| st.lost.is_none()) {
                        self.metrics.wt_error.inc();
                    }
                    tracing::debug!(error = %e, "HTTP/3 connection ended");
                    return;
                }
            };
            let (req, mut stream) = match resolver.resolve_request().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "bad HTTP/3 request");
                    continue;
                }
            };
            let info = ConnectInfo::from_request(&req, conn.remote());
            match self.route(&req, &info) {
                Ok(Route::Echo) | Ok(Route::App) => {
                    let is_echo = info.path == "/echo";
                    match h3_webtransport::server::WebTransportSession::accept(req, stream, h3)
                        .await
                    {
                        Ok(wt) => {
                            self.metrics.wt_accepted.inc();
                            let session = WtSession::new(wt, conn.clone(), info);
                            self.register(&session);
                            tracing::debug!(path = %session.info().path, "WebTransport session accepted");
                            if is_echo {
                                echo::serve(session);
                            } else {
                                self.app.on_session(session);
                            }
                        }
                        Err(e) => {
                            self.metrics.wt_error.inc();
                            tracing::debug!(error = %e, "WebTransport accept failed");
                        }
                    }
                    // One session takes over its HTTP/3 connection.
                    return;
                }
                Err(refusal) => {
                    self.metrics.wt_rejected.inc();
                    tracing::debug!(path = %info.path, status = refusal.status.as_u16(), "request refused");
                    respond(&mut stream, refusal.status).await;
                }
            }
        }
    }

    fn route(&self, req: &Request<()>, info: &ConnectInfo) -> Result<Route, Refusal> {
        let known = match info.path.as_str() {
            "/" => Some(Route::App),
            "/echo" if self.enable_echo => Some(Route::Echo),
            _ => None,
        };
        let Some(route) = known else {
            return Err(Refusal::new(StatusCode::NOT_FOUND));
        };
        let is_wt = req.method() == Method::CONNECT
            && req.extensions().get::<Protocol>() == Some(&Protocol::WEB_TRANSPORT);
        if !is_wt {
            return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED));
        }
        if self.draining.get() {
            return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE));
        }
        if matches!(route, Route::App) {
            self.app.admit(info)?;
        }
        Ok(route)
    }

    fn register(&self, session: &WtSession) {
        let id = self.next_session.get();
        self.next_session.set(id + 1);
        let mut sessions = self.sessions.borrow_mut();
        if sessions.len() > 64 && sessions.len().is_power_of_two() {
            sessions.retain(|_, w| w.strong_count() > 0);
        }
        sessions.insert(id, Rc::downgrade(&session.0));
    }
}

enum Route {
    App,
    Echo,
}

async fn respond(stream: &mut H3Request, status: StatusCode) {
    let Ok(resp) = Response::builder().status(status).body(()) else {
        return;
    };
    if stream.send_response(resp).await.is_ok() {
        let _ = stream.finish().await;
    }
}

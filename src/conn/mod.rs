//! One client connection on its shard: QUIC (`quinn_proto::Connection`), HTTP/3 and
//! WebTransport ([`crate::h3`]), and the application its session serves — signaling on
//! `/` ([`signaling`]), the echo endpoint on `/echo` ([`echo`]).
//!
//! The shard's loop owns every [`Conn`] and calls, in this order per pass: the QUIC
//! inputs (datagrams, timeouts) on `conn.quic`, then [`Conn::drive`] — QUIC events go to
//! the HTTP/3 layer, whose events go to the application — then deliveries from meetings
//! ([`Conn::deliver`]), then `poll_transmit`. Nothing here touches a socket or reads the
//! clock: time comes in [`ConnCtx::now`].
//!
//! Routing a session request (RFC 9220 extended CONNECT): `/` → signaling, `/echo` →
//! echo when enabled; other paths 404, other methods 405, and 503 while the MC is not
//! admitting sessions (draining).

pub mod echo;
mod quic_events;
pub mod signaling;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_proto::{Connection, Event, StreamId};
use shards::ShardId;

use crate::actors::{ActorSettings, ConnCmd, MeetingCmd};
use crate::auth::keystore::ShardVerifier;
use crate::h3::{code, H3Conn, H3Event, H3Limits, RequestHead};
use crate::meeting::{CloseCode, ConnKey};
use crate::metrics::ShardMetrics;
use crate::quic::crypto::{KeyLines, KeysAt};

pub use echo::Echo;
pub use quic_events::QuicEvents;
pub use signaling::Signaling;

/// What one pass gives a connection to work with.
pub struct ConnCtx<'a> {
    /// The clock, read once per pass by the shard.
    pub now: Instant,
    pub shard: ShardId,
    pub limits: &'a H3Limits,
    pub settings: &'a ActorSettings,
    pub enable_echo: bool,
    /// False while draining: new sessions are answered 503.
    pub admitting: bool,
    pub verifier: &'a mut ShardVerifier,
    /// Commands for meetings, routed by the shard after the connection phase.
    pub meeting_cmds: &'a mut Vec<MeetingCmd>,
    pub metrics: &'a mut ShardMetrics,
    /// Bytes the shard's sessions hold queued for their clients, all together.
    pub outbound_bytes: &'a mut usize,
}

/// What one [`Conn::drive`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Driven {
    /// The handshake completed.
    pub connected: bool,
    /// QUIC had events for the layers above (a datagram that carried only
    /// acknowledgements has none).
    pub events: bool,
}

/// The application a connection's session serves.
#[derive(Debug)]
pub enum App {
    /// No session accepted (yet).
    None,
    Signaling(Box<Signaling>),
    Echo(Echo),
}

/// One client connection. See the module docs.
pub struct Conn {
    pub quic: Connection,
    /// QUIC events taken from `quic` as each datagram was handed to it, for
    /// [`Conn::drive`] ([`QuicEvents`]).
    pub events: QuicEvents,
    pub h3: H3Conn,
    pub app: App,
    /// Names this connection to meetings (shard, handle and a serial, so a reused
    /// handle never receives an older connection's frames).
    pub key: ConnKey,
    pub remote: SocketAddr,
    /// When the client's first packet arrived.
    pub started: Instant,
    /// The handshake has not completed yet.
    pub handshaking: bool,
    /// What it counts against in its client's limit; set by the endpoint.
    pub counted: crate::quic::ClientCount,
    /// When the connection is closed if its handshake has not completed by then
    /// (`started` plus `--handshake-timeout-ms`); none once it completed or the deadline
    /// fired.
    handshake_deadline: Option<Instant>,
    /// Queued in the shard's list of connections to drive and transmit this pass.
    pub queued: bool,
    /// Where the TLS session notes its 1-RTT keys (none for a draft QUIC version).
    pub keys_at: Option<Arc<KeysAt>>,
    /// A copy of that, for the shard's prefetches (zero: not known yet).
    pub keys: KeyLines,
}

impl Conn {
    /// Read quinn-proto's state for the signaling session's stream: its entry in the
    /// connection's stream map and the send state behind it, cold misses each waiting
    /// for the one before. The shard calls this for a few connections in a row before
    /// working on any of them (the fan-out's write, the transmit loop), so that their
    /// misses overlap instead of coming one connection after another (tuning.md,
    /// "cache").
    pub fn touch_stream(&mut self) {
        if let App::Signaling(s) = &self.app {
            if let Some(stream) = s.stream() {
                let _ = std::hint::black_box(self.quic.send_stream(stream).priority());
            }
        }
    }

    /// A connection whose first packet arrived at `now`, with `handshake_timeout` to
    /// complete its handshake.
    pub fn new(quic: Connection, key: ConnKey, now: Instant, handshake_timeout: Duration) -> Self {
        let remote = quic.remote_address();
        Self {
            quic,
            events: QuicEvents::default(),
            h3: H3Conn::new(),
            app: App::None,
            key,
            remote,
            started: now,
            handshaking: true,
            counted: crate::quic::ClientCount::None,
            handshake_deadline: Some(now + handshake_timeout),
            queued: false,
            keys_at: None,
            keys: KeyLines::default(),
        }
    }

    /// The next time something is due: the handshake deadline, QUIC's timers, the
    /// HTTP/3 deadlines or the application's.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let min = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let app = match &self.app {
            App::Signaling(s) => s.poll_timeout(),
            _ => None,
        };
        let quic = min(self.handshake_deadline, self.quic.poll_timeout());
        min(min(quic, self.h3.poll_timeout()), app)
    }

    /// Fire whatever is due at `ctx.now`.
    pub fn handle_timeout(&mut self, ctx: &mut ConnCtx<'_>) {
        let now = ctx.now;
        if self.handshake_deadline.is_some_and(|t| t <= now) {
            self.handshake_expired(ctx);
        }
        if self.quic.poll_timeout().is_some_and(|t| t <= now) {
            self.quic.handle_timeout(now);
            // A key update is followed by a timer (the retired keys are dropped three
            // probe timeouts later), which brings the copy up to date.
            self.copy_keys();
        }
        if self.h3.poll_timeout().is_some_and(|t| t <= now) {
            self.h3.handle_timeout(&mut self.quic, now);
        }
        if let App::Signaling(s) = &mut self.app {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(&mut self.quic, &mut self.h3, ctx);
            }
            s.sync_outbound(ctx);
        }
    }

    /// The handshake did not complete in time: close the connection. quinn-proto's idle
    /// timer would not, since any packet from the client restarts it, Initial and
    /// Handshake packets included; a client that never sends its Finished would hold
    /// one of the shard's handshakes and one of its address's connections for as long
    /// as it keeps sending. The slot and the count are given back when the connection
    /// drains ([`crate::quic::QuicEndpoint::forget`]).
    fn handshake_expired(&mut self, ctx: &mut ConnCtx<'_>) {
        self.handshake_deadline = None;
        // Its Finished may have arrived in this pass, its Connected not driven yet.
        if !self.handshaking || !self.quic.is_handshaking() || self.quic.is_closed() {
            return;
        }
        ctx.metrics.refusal("handshake_timeout");
        tracing::debug!(conn = self.key.conn, remote = %self.remote, "handshake timed out");
        // quinn-proto closes only with an application error code. In Initial and
        // Handshake packets it sends that as a transport CONNECTION_CLOSE (0x1c) with
        // APPLICATION_ERROR and no reason, as RFC 9000 §10.2.3 asks before the
        // handshake is confirmed; only a 1-RTT packet, which a client that has the
        // server's Finished can read, carries the HTTP/3 code and the reason. The
        // connection then drains like any other closed one.
        self.h3.close(
            &mut self.quic,
            ctx.now,
            code::H3_NO_ERROR,
            "handshake not completed in time",
        );
    }

    /// The handshake completed from an address whose client already holds as many
    /// connections as it may (`--max-sessions-per-ip`; it did not when the handshake
    /// began): close the connection, counted as that refusal, before anything it sent
    /// with its Finished is handled.
    fn refuse_over_client_limit(&mut self, ctx: &mut ConnCtx<'_>) {
        ctx.metrics.refusal("max_sessions_per_ip");
        tracing::debug!(conn = self.key.conn, remote = %self.remote, "too many connections from this client");
        self.events.clear();
        self.h3.close(
            &mut self.quic,
            ctx.now,
            code::H3_EXCESSIVE_LOAD,
            "too many connections from this client",
        );
    }

    /// The shard's handshakes are all taken and this one, of the client holding the
    /// most, makes room for another client's: close it.
    pub fn close_for_another_handshake(&mut self, now: Instant) {
        self.handshake_deadline = None;
        tracing::debug!(conn = self.key.conn, remote = %self.remote, "handshake closed to make room for another client's");
        self.h3.close(
            &mut self.quic,
            now,
            code::H3_EXCESSIVE_LOAD,
            "too many handshakes from this client",
        );
    }

    /// Copy where the 1-RTT keys live now: read from the TLS session's note, another
    /// heap object, so only when they may have moved.
    fn copy_keys(&mut self) {
        if let Some(at) = &self.keys_at {
            self.keys = at.get();
        }
    }

    /// Process every QUIC event: HTTP/3 first, then the application. When the handshake
    /// completes, `admit` says whether the connection may stay (its client's limit);
    /// one it refuses is closed before anything else it sent is handled.
    pub fn drive(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        admit: &mut dyn FnMut(&mut Conn) -> bool,
    ) -> Driven {
        let mut driven = Driven::default();
        while let Some(ev) = self.events.next(&mut self.quic) {
            driven.events = true;
            // A connection closed during its handshake (to make room) may still find
            // quinn-proto's Connected queued: it was counted out already.
            if matches!(ev, Event::Connected) && self.handshaking {
                driven.connected = true;
                self.handshaking = false;
                self.handshake_deadline = None;
                self.copy_keys();
                if !admit(self) {
                    self.refuse_over_client_limit(ctx);
                    return driven;
                }
            }
            if let Event::ConnectionLost { reason } = &ev {
                tracing::debug!(conn = self.key.conn, %reason, "connection lost");
            }
            self.h3
                .handle_event(&mut self.quic, ctx.now, ctx.limits, ev);
            self.dispatch(ctx);
        }
        self.dispatch(ctx);
        self.h3.trim_events();
        if let App::Signaling(s) = &mut self.app {
            s.sync_outbound(ctx);
        }
        driven
    }

    /// A command from a meeting for this connection's signaling session.
    pub fn deliver(&mut self, cmd: ConnCmd, ctx: &mut ConnCtx<'_>) {
        if let App::Signaling(s) = &mut self.app {
            s.deliver(&mut self.quic, &mut self.h3, cmd, ctx);
            s.sync_outbound(ctx);
        }
    }

    /// The QUIC connection is gone for good.
    pub fn on_drained(&mut self, ctx: &mut ConnCtx<'_>) {
        self.dispatch(ctx);
        if let App::Signaling(s) = &mut self.app {
            s.on_drained(ctx);
        }
    }

    /// Close the session (or the bare connection) with `code`: the shard is stopping.
    pub fn shutdown(&mut self, ctx: &mut ConnCtx<'_>, code: CloseCode) {
        match &mut self.app {
            App::Signaling(s) => {
                s.shutdown(&mut self.quic, &mut self.h3, ctx, code);
                s.sync_outbound(ctx);
            }
            _ => self.h3.close_session(
                &mut self.quic,
                ctx.now,
                ctx.limits,
                code.code(),
                code.label().as_bytes(),
            ),
        }
    }

    fn dispatch(&mut self, ctx: &mut ConnCtx<'_>) {
        while let Some(ev) = self.h3.poll_event() {
            match ev {
                H3Event::Request { stream, head } => self.on_request(stream, &head, ctx),
                ev => match &mut self.app {
                    App::Signaling(s) => s.on_event(&mut self.quic, &mut self.h3, ev, ctx),
                    App::Echo(e) => e.on_event(&mut self.quic, &mut self.h3, ev),
                    App::None => {
                        if let H3Event::StreamOpened { stream, .. } = ev {
                            self.h3.abort(&mut self.quic, stream, 0);
                        }
                    }
                },
            }
        }
    }

    fn on_request(&mut self, stream: StreamId, head: &RequestHead, ctx: &mut ConnCtx<'_>) {
        enum Route {
            Signaling,
            Echo,
        }
        let route = match head.path_only() {
            "/" => Some(Route::Signaling),
            "/echo" if ctx.enable_echo => Some(Route::Echo),
            _ => None,
        };
        let status = match route {
            None => Some(404),
            Some(_) if !head.is_webtransport() => Some(405),
            Some(_) if !ctx.admitting => Some(503),
            Some(_) => None,
        };
        if let Some(status) = status {
            ctx.metrics.wt_rejected.inc();
            tracing::debug!(path = %head.path_only(), status, "request refused");
            return self.h3.respond(&mut self.quic, ctx.now, stream, status);
        }
        if !self.h3.accept_session(&mut self.quic, ctx.now, stream) {
            return;
        }
        ctx.metrics.wt_accepted.inc();
        tracing::debug!(conn = self.key.conn, path = %head.path_only(), "WebTransport session accepted");
        self.app = match route {
            Some(Route::Echo) => App::Echo(Echo::default()),
            _ => App::Signaling(Box::new(Signaling::new(self.key, ctx))),
        };
        // Streams that named the session before it was accepted, or a close that came
        // with the CONNECT, are already queued as events.
        self.dispatch(ctx);
    }
}

#[cfg(test)]
mod tests;

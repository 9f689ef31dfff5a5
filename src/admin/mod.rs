//! The admin HTTP/1.1 plane on `HTTP_BIND_ADDRESS`: `/health`, `/ready`, `/metrics`
//! (runbook "Smoke Tests" 1–3), `POST /internal/v1/meetings/import` (a meeting another
//! MC hands over, docs/gc-api.md "Hand over a meeting") and, in dev mode, `/demo`.
//! Served by the control-plane executor so that a busy shard never delays a probe.
//!
//! - [`http`]: the sans-IO request parser and response encoder.
//! - [`import`]: the import route: size, signature, body, then the meeting's shard.
//! - [`demo`]: the dev-mode browser demo and its token endpoint.
//! - [`serve`]: the accept loop; one task per connection, keep-alive, bounded bodies.
//!   A new connection must send its first request head within the header timeout; the
//!   idle timeout only applies between requests. At the connection limit a new
//!   connection closes the one least far along (waiting longest for a head, else reading
//!   a body longest, else answered longest) instead of being refused, so idle, slow or
//!   non-reading clients cannot lock out the liveness probe; it is answered 503 only
//!   when every open connection is handing a signed import to a shard.

pub mod demo;
pub mod http;
pub mod import;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::config::AdminSettings;
use crate::migration::IMPORT_PATH;
use http::{parse_request, HttpError, Method, Request, Response};
use import::ImportHost;

// The request parser reads any hand-over `--max-handover-bytes` allows.
const _: () = assert!(crate::migration::MAX_HANDOVER_BYTES <= http::MAX_BODY_BYTES);

/// Room a request body starts with; it grows as the bytes arrive.
const BODY_START_BYTES: usize = 64 * 1024;

/// Largest body accepted by the routes that take none (probes, demo).
pub const MAX_PROBE_BODY_BYTES: usize = 8 * 1024;
/// Request bodies of the largest size all admin connections may hold at once: the
/// budget is this many imports at `--max-handover-bytes`, counted as bytes arrive; a
/// request whose body does not fit is answered 503 and its connection closed, so the
/// connection limit times the body limit never becomes the memory bound, and bodies
/// declared but sent slowly hold only what came. A body is read into a buffer of its
/// own, given up when its request is answered: a keep-alive connection keeps no more
/// than a request head between requests.
pub const BODIES_IN_FLIGHT: usize = 4;

/// What `/ready` reports. Field order is the runbook's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// "ready", "not_ready" or "draining".
    pub status: &'static str,
    pub gc_registered: bool,
    /// "healthy" when every shard answered its latest ping, else "unhealthy".
    pub actor_system: &'static str,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }

    pub fn to_json(&self) -> String {
        format!(
            "{{\"status\":\"{}\",\"gc_registered\":{},\"actor_system\":\"{}\"}}",
            self.status, self.gc_registered, self.actor_system
        )
    }
}

/// What the admin plane asks of the rest of the process.
pub trait AdminState {
    fn readiness(&self) -> Readiness;
    /// Prometheus text exposition of every metric.
    fn metrics(&self) -> Vec<u8>;
    /// A connection was refused by the admin connection limit.
    fn refused(&self) {}
    /// An open connection was closed to admit a new one at the admin connection limit.
    fn evicted(&self) {}
    /// Routes beyond the three probes (the dev-mode demo); `None` means 404.
    fn extra(&self, _req: &Request) -> Option<Response> {
        None
    }
    /// Who takes imported meetings; `None`: the import route answers 404.
    fn importer(&self) -> Option<&dyn ImportHost> {
        None
    }
}

/// The most body bytes `path` takes; a longer `Content-Length` is answered 413. The
/// import route takes a hand-over (`--max-handover-bytes`) where it is served.
pub fn body_limit(state: &dyn AdminState, path: &str) -> usize {
    match (path, state.importer()) {
        (IMPORT_PATH, Some(host)) => host.meeting_config().max_handover_bytes,
        _ => MAX_PROBE_BODY_BYTES,
    }
}

/// Route one request with its body: the import route waits for the meeting's shard
/// (bounded), calling `forwarding` when a signed import is handed to it; every other
/// route answers at once.
pub async fn route(
    state: &dyn AdminState,
    req: &Request,
    body: &[u8],
    forwarding: impl FnOnce(),
) -> Response {
    match (req.path.as_str(), state.importer()) {
        (IMPORT_PATH, Some(host)) => import::handle(host, req, body, forwarding).await,
        _ => respond(state, req),
    }
}

/// The answer to a request whose `Content-Length` is over [`body_limit`].
fn too_large(state: &dyn AdminState, req: &Request) -> Response {
    match (req.path.as_str(), state.importer()) {
        (IMPORT_PATH, Some(host)) => import::too_large(host),
        _ => Response::text(413, "request body too large\n"),
    }
}

/// The answer to a request whose body does not fit in the body budget now
/// ([`BODIES_IN_FLIGHT`]).
fn busy(state: &dyn AdminState, req: &Request) -> Response {
    match (req.path.as_str(), state.importer()) {
        (IMPORT_PATH, Some(host)) => import::busy(host),
        _ => Response::text(503, "busy\n"),
    }
}

/// Body bytes reserved by the connections of one admin listener, at most `max`.
struct BodyBudget {
    used: Cell<usize>,
    max: usize,
}

/// A reservation, returned when dropped.
struct Reserved<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl BodyBudget {
    fn new(max: usize) -> Self {
        Self {
            used: Cell::new(0),
            max,
        }
    }

    fn reserve(&self, bytes: usize) -> Option<Reserved<'_>> {
        let mut reserved = Reserved {
            budget: self,
            bytes: 0,
        };
        reserved.grow(bytes).then_some(reserved)
    }
}

impl Reserved<'_> {
    /// Hold `more` bytes as well; false (holding what it held) when they do not fit.
    fn grow(&mut self, more: usize) -> bool {
        let used = self.budget.used.get();
        if more > self.budget.max.saturating_sub(used) {
            return false;
        }
        self.budget.used.set(used + more);
        self.bytes += more;
        true
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let used = self.budget.used.get();
        self.budget.used.set(used.saturating_sub(self.bytes));
    }
}

/// Route one request.
pub fn respond(state: &dyn AdminState, req: &Request) -> Response {
    let known = matches!(req.path.as_str(), "/health" | "/ready" | "/metrics");
    if known && !matches!(req.method, Method::Get | Method::Head) {
        let mut r = Response::text(405, "method not allowed\n");
        r.allow = Some("GET, HEAD");
        return r;
    }
    match req.path.as_str() {
        // Runbook Test 1: 200, Content-Length: 2, body OK.
        "/health" => Response::text(200, "OK"),
        // Runbook Test 2.
        "/ready" => {
            let r = state.readiness();
            let status = if r.is_ready() { 200 } else { 503 };
            Response::new(status, "application/json", r.to_json().into_bytes())
        }
        // Runbook Test 3.
        "/metrics" => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics(),
        ),
        _ => state
            .extra(req)
            .unwrap_or_else(|| Response::text(404, "not found\n")),
    }
}

/// How long binding the admin port waits for a process that has just exited to let go
/// of it. The listener's accept is in flight in glommio's io_uring, which holds the
/// socket until the kernel tears the ring down, in a worker, some milliseconds after the
/// process is gone (up to 12 ms on an idle test host; more under load): an MC restarted at
/// once after being killed would otherwise fail on its own port.
const PREDECESSOR_GRACE: Duration = Duration::from_secs(1);

/// Bind the admin listener (without SO_REUSEPORT, so a second process on the same port
/// fails with "Address already in use" instead of silently sharing it, after
/// [`PREDECESSOR_GRACE`]).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let deadline = Instant::now() + PREDECESSOR_GRACE;
    let listener = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => break listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// How far an open admin connection is with its current request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head: nothing sent yet, idle between requests, or part of
    /// a head.
    Head,
    /// Reading a request body.
    Body,
    /// Routing a request or writing its response, when the client loses nothing by
    /// asking again: a probe, the demo, a refused import. (An error answered before the
    /// route, a 400, 408, 413 or 503, is written in the phase it ends: the connection is
    /// over.)
    Answering,
    /// Handing a signed import to the meeting's shard, or writing the shard's 200. The
    /// shard may have taken the meeting: closing the connection now would tell the
    /// sending MC that the hand-over failed.
    Importing,
}

/// Which open connection to close so that a new one can be admitted, given each one's
/// phase and since when it has been in it: the one waiting longest for a request head,
/// else the one reading a body longest, else the one answered longest (a client that
/// does not read its answers holds its connection in this phase until the write
/// timeout), never one importing. Equal waits go to the earlier in `open`. `None`:
/// every connection is importing.
fn to_evict(open: impl IntoIterator<Item = (Phase, Instant)>) -> Option<usize> {
    open.into_iter()
        .enumerate()
        .filter_map(|(i, (phase, since))| match phase {
            Phase::Head => Some((0, since, i)),
            Phase::Body => Some((1, since, i)),
            Phase::Answering => Some((2, since, i)),
            Phase::Importing => None,
        })
        .min_by_key(|&(rank, since, _)| (rank, since))
        .map(|(_, _, i)| i)
}

/// An open connection of one listener.
struct Open {
    id: u64,
    fd: RawFd,
    phase: Phase,
    since: Instant,
}

/// The open connections of one admin listener, at most `max_connections` (the control
/// executor is single-threaded, so plain cells do).
#[derive(Default)]
struct Registry {
    next_id: Cell<u64>,
    open: RefCell<Vec<Open>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// Register a new connection, waiting for its first request head.
    fn enter(self: &Rc<Self>, fd: RawFd) -> Slot {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.open.borrow_mut().push(Open {
            id,
            fd,
            phase: Phase::Head,
            since: Instant::now(),
        });
        Slot {
            registry: self.clone(),
            id,
        }
    }

    /// Close the connection [`to_evict`] picks and forget it; `false` when every open
    /// connection is importing. Its pending read returns 0 and its task ends.
    fn evict_one(&self) -> bool {
        let mut open = self.open.borrow_mut();
        let Some(i) = to_evict(open.iter().map(|c| (c.phase, c.since))) else {
            return false;
        };
        let victim = open.remove(i);
        tracing::debug!(
            phase = ?victim.phase,
            waited_ms = victim.since.elapsed().as_millis() as u64,
            "admin connection closed to admit a new one"
        );
        // SAFETY: shutdown(2) only reads the descriptor number. It is still the
        // connection's: an entry leaves the registry before its stream is dropped, and
        // the stream is what closes the descriptor.
        unsafe { libc::shutdown(victim.fd, libc::SHUT_RDWR) };
        true
    }
}

/// A connection's entry in its [`Registry`], removed when dropped. Drop it before the
/// stream, so that the registry never holds a descriptor that may have been reused.
struct Slot {
    registry: Rc<Registry>,
    id: u64,
}

impl Slot {
    fn set(&self, phase: Phase) {
        let mut open = self.registry.open.borrow_mut();
        if let Some(c) = open.iter_mut().find(|c| c.id == self.id) {
            c.phase = phase;
            c.since = Instant::now();
        }
    }

    /// Move to `to` if in `from`, keeping since when.
    fn set_from(&self, from: Phase, to: Phase) {
        let mut open = self.registry.open.borrow_mut();
        if let Some(c) = open.iter_mut().find(|c| c.id == self.id && c.phase == from) {
            c.phase = to;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.open.borrow_mut().retain(|c| c.id != self.id);
    }
}

/// Serve until the executor ends. Call on the control-plane executor.
pub async fn serve(
    listener: std::net::TcpListener,
    state: Rc<dyn AdminState>,
    limits: AdminSettings,
) {
    // SAFETY: the descriptor comes from a live std listener and is owned by glommio's
    // listener from here on.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let registry = Rc::new(Registry::default());
    let refusing = Rc::new(Cell::new(0usize));
    let largest = body_limit(&*state, IMPORT_PATH).max(MAX_PROBE_BODY_BYTES);
    let budget = Rc::new(BodyBudget::new(BODIES_IN_FLIGHT * largest));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // At the limit, close the connection least far along to make room; refuse
        // only when every open connection is importing.
        let full = registry.len() >= limits.max_connections;
        if full && registry.evict_one() {
            state.evicted();
        } else if full {
            state.refused();
            // The 503 is written by a task of its own, at most `max_connections` of
            // them at once; beyond that the connection is closed without one.
            if refusing.get() < limits.max_connections {
                refusing.set(refusing.get() + 1);
                let refusing = refusing.clone();
                glommio::spawn_local(async move {
                    refuse(stream).await;
                    refusing.set(refusing.get() - 1);
                })
                .detach();
            }
            continue;
        }
        let slot = registry.enter(stream.as_raw_fd());
        let state = state.clone();
        let limits = limits.clone();
        let budget = budget.clone();
        glommio::spawn_local(async move {
            let mut stream = stream;
            if let Err(e) = connection(&mut stream, &slot, &*state, &limits, &budget).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
            drop(slot);
            drop(stream);
        })
        .detach();
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut out = Vec::new();
    Response::text(503, "too many admin connections\n").encode(false, false, &mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

async fn connection(
    stream: &mut TcpStream,
    slot: &Slot,
    state: &dyn AdminState,
    limits: &AdminSettings,
    budget: &BodyBudget,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(limits.header_timeout))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    // The first request's head must arrive within the header timeout of the accept.
    let mut head_deadline = Some(Instant::now() + limits.header_timeout);
    loop {
        slot.set(Phase::Head);
        // After a request a connection may idle; once the next one starts, its head
        // must arrive within the header timeout.
        let idle_deadline = Instant::now() + limits.idle_timeout;
        let (req, head_len) = loop {
            match parse_request(&buf) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {}
                Err(e) => return answer_error(stream, &e, &mut out).await,
            }
            if !buf.is_empty() && head_deadline.is_none() {
                head_deadline = Some(Instant::now() + limits.header_timeout);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return timed_out(stream, !buf.is_empty(), &mut out).await;
            }
            stream.set_read_timeout(Some(left))?;
            let n = match stream.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return timed_out(stream, !buf.is_empty(), &mut out).await;
                }
                Err(e) => return Err(e),
            };
            buf.extend_from_slice(&chunk[..n]);
        };
        head_deadline = None;
        buf.drain(..head_len);
        if req.body_len > body_limit(state, &req.path) {
            return answer_and_close(stream, too_large(state, &req), &mut out).await;
        }
        // The body's bytes already read with the head; what is held counts against
        // the budget.
        let early = buf.len().min(req.body_len);
        let Some(mut reserved) = budget.reserve(early) else {
            return answer_and_close(stream, busy(state, &req), &mut out).await;
        };
        // Grown as bytes arrive: a body declared and not sent holds nothing.
        let mut body = Vec::with_capacity(req.body_len.min(BODY_START_BYTES));
        body.extend(buf.drain(..early));
        slot.set(Phase::Body);
        if req.expect_continue && req.body_len > body.len() {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        // The body, within its limit, must arrive within the header timeout too.
        let body_deadline = Instant::now() + limits.header_timeout;
        while body.len() < req.body_len {
            let left = body_deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return timed_out(stream, true, &mut out).await;
            }
            stream.set_read_timeout(Some(left))?;
            let want = (req.body_len - body.len()).min(chunk.len());
            let n = match stream.read(&mut chunk[..want]).await {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return timed_out(stream, true, &mut out).await;
                }
                Err(e) => return Err(e),
            };
            if !reserved.grow(n) {
                return answer_and_close(stream, busy(state, &req), &mut out).await;
            }
            // Doubled, but never past the declared length: what the buffer holds stays
            // within what the budget counts once the body is in.
            if body.capacity() - body.len() < n {
                let more = body.capacity().max(n).min(req.body_len - body.len());
                body.reserve_exact(more);
            }
            body.extend_from_slice(&chunk[..n]);
        }

        slot.set(Phase::Answering);
        let response = route(state, &req, &body, || slot.set(Phase::Importing)).await;
        if response.status != 200 {
            // A refused import lost nothing: the source keeps the meeting.
            slot.set_from(Phase::Importing, Phase::Answering);
        }
        out.clear();
        response.encode(req.method == Method::Head, req.keep_alive, &mut out);
        stream.write_all(&out).await?;
        stream.flush().await?;
        if !req.keep_alive {
            let _ = stream.close().await;
            return Ok(());
        }
    }
}

/// Answer a request whose body is not read (too large, or no room for it) and close
/// the connection.
async fn answer_and_close(
    stream: &mut TcpStream,
    response: Response,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    response.encode(false, false, out);
    stream.write_all(out).await?;
    let _ = stream.close().await;
    Ok(())
}

async fn answer_error(stream: &mut TcpStream, e: &HttpError, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    Response::new(
        e.status(),
        "text/plain; charset=utf-8",
        format!("{e}\n").into_bytes(),
    )
    .encode(false, false, out);
    stream.write_all(out).await?;
    let _ = stream.close().await;
    Ok(())
}

async fn timed_out(stream: &mut TcpStream, mid_request: bool, out: &mut Vec<u8>) -> io::Result<()> {
    if mid_request {
        out.clear();
        Response::text(408, "request timeout\n").encode(false, false, out);
        let _ = stream.write_all(out).await;
    }
    let _ = stream.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn bind_waits_for_a_port_let_go_of_within_the_grace_and_not_beyond() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let t = Instant::now();
        bind(addr).expect("bound once the holder let go");
        assert!(t.elapsed() >= Duration::from_millis(90));
        release.join().unwrap();

        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = Instant::now();
        let e = bind(held.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(t.elapsed() >= PREDECESSOR_GRACE);
        assert!(t.elapsed() < PREDECESSOR_GRACE + Duration::from_secs(1));
    }

    struct Fixed(Readiness);
    impl AdminState for Fixed {
        fn readiness(&self) -> Readiness {
            self.0.clone()
        }
        fn metrics(&self) -> Vec<u8> {
            b"mc_meetings_active{shard=\"0\"} 0\n".to_vec()
        }
    }

    fn get(path: &str, method: Method) -> Request {
        Request {
            method,
            path: path.into(),
            query: String::new(),
            keep_alive: true,
            body_len: 0,
            expect_continue: false,
            signature: None,
        }
    }

    #[test]
    fn ready_body_is_the_runbooks() {
        let ok = Fixed(Readiness {
            status: "ready",
            gc_registered: true,
            actor_system: "healthy",
        });
        let r = respond(&ok, &get("/ready", Method::Get));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(
            &*r.body,
            br#"{"status":"ready","gc_registered":true,"actor_system":"healthy"}"#
        );
        let not = Fixed(Readiness {
            status: "not_ready",
            gc_registered: false,
            actor_system: "unhealthy",
        });
        assert_eq!(respond(&not, &get("/ready", Method::Get)).status, 503);
    }

    #[test]
    fn bodies_share_one_budget_and_give_it_back() {
        const MAX: usize = 1 << 20;
        let budget = BodyBudget::new(MAX);
        let a = budget.reserve(MAX - 10).unwrap();
        assert!(budget.reserve(11).is_none());
        let mut b = budget.reserve(10).unwrap();
        assert!(budget.reserve(1).is_none());
        assert!(!b.grow(1), "the budget is spent");
        drop(a);
        assert!(b.grow(5));
        assert_eq!(budget.used.get(), 15);
        assert!(budget.reserve(MAX - 15).is_some());
        assert!(budget.reserve(MAX - 14).is_none());
        drop(b);
        assert_eq!(budget.used.get(), 0);
        // Where no import route is served, its path takes what a probe takes
        // (`tests/admin_plane.rs` checks `--max-handover-bytes` on the binary).
        let no_imports = Fixed(Readiness {
            status: "ready",
            gc_registered: true,
            actor_system: "healthy",
        });
        assert_eq!(body_limit(&no_imports, IMPORT_PATH), MAX_PROBE_BODY_BYTES);
        assert_eq!(body_limit(&no_imports, "/metrics"), MAX_PROBE_BODY_BYTES);
    }

    #[test]
    fn eviction_takes_the_longest_waiting_head_first() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let open = [
            (Phase::Body, ms(0)),
            (Phase::Head, ms(20)),
            (Phase::Answering, ms(1)),
            (Phase::Head, ms(10)),
            (Phase::Head, ms(30)),
        ];
        assert_eq!(to_evict(open), Some(3));
    }

    #[test]
    fn eviction_takes_body_readers_only_when_no_head_is_awaited() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let open = [
            (Phase::Answering, ms(0)),
            (Phase::Body, ms(20)),
            (Phase::Body, ms(5)),
        ];
        assert_eq!(to_evict(open), Some(2));
        // A head-waiter that has just arrived still goes before an old body reader.
        let open = [(Phase::Body, ms(0)), (Phase::Head, ms(100))];
        assert_eq!(to_evict(open), Some(1));
    }

    #[test]
    fn eviction_takes_the_longest_answered_only_when_no_head_or_body_is_awaited() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let open = [
            (Phase::Importing, ms(0)),
            (Phase::Answering, ms(20)),
            (Phase::Answering, ms(5)),
            (Phase::Body, ms(30)),
        ];
        assert_eq!(to_evict(open), Some(3));
        assert_eq!(to_evict(open.into_iter().take(3)), Some(2));
    }

    #[test]
    fn eviction_never_takes_a_connection_importing() {
        let t = Instant::now();
        assert_eq!(to_evict([(Phase::Importing, t); 3]), None);
        assert_eq!(to_evict([]), None);
    }

    #[test]
    fn eviction_ties_go_to_the_earlier_connection() {
        let t = Instant::now();
        assert_eq!(to_evict([(Phase::Head, t); 4]), Some(0));
        let open = [(Phase::Importing, t), (Phase::Body, t), (Phase::Body, t)];
        assert_eq!(to_evict(open), Some(1));
    }

    #[test]
    fn the_registry_shuts_the_chosen_socket_and_forgets_what_leaves() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pair = || {
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            (client, server)
        };
        let registry = Rc::new(Registry::default());
        let (mut busy_client, busy_server) = pair();
        let busy = registry.enter(busy_server.as_raw_fd());
        busy.set(Phase::Importing);
        let (mut waiting_client, waiting_server) = pair();
        let waiting = registry.enter(waiting_server.as_raw_fd());
        let (_gone_client, gone_server) = pair();
        let gone = registry.enter(gone_server.as_raw_fd());
        drop(gone);
        drop(gone_server);
        assert_eq!(registry.len(), 2);

        assert!(registry.evict_one());
        assert_eq!(registry.len(), 1);
        let mut byte = [0u8; 1];
        assert_eq!(waiting_client.read(&mut byte).unwrap(), 0, "EOF");
        drop(waiting);
        assert_eq!(registry.len(), 1);

        assert!(!registry.evict_one(), "the one left is importing");
        busy_client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(busy_client.read(&mut byte).is_err(), "still open");
        drop(busy);
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn unknown_paths_and_methods() {
        let s = Fixed(Readiness {
            status: "ready",
            gc_registered: false,
            actor_system: "healthy",
        });
        assert_eq!(respond(&s, &get("/nope", Method::Get)).status, 404);
        let r = respond(&s, &get("/metrics", Method::Other));
        assert_eq!((r.status, r.allow), (405, Some("GET, HEAD")));
        assert_eq!(
            respond(&s, &get("/metrics", Method::Get)).content_type,
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}

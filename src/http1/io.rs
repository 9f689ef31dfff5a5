//! The two transports of the HTTP/1.1 client. Both resolve the URL's host, connect,
//! write the encoded [`Request`], and feed what they read to a [`ResponseParser`] until
//! it returns a response or the peer closes — everything within one timeout.
//!
//! - [`exchange`]: on a glommio executor (the control plane: GC calls). Name
//!   resolution runs on glommio's blocking pool; literal addresses skip it.
//! - [`exchange_blocking`]: std sockets, for a thread of its own (JWKS fetches). Never
//!   call it on a shard or on the control-plane executor.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::future::or;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{HttpError, Limits, Request, Response, ResponseParser};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;

/// Send `req` and read its response on the current glommio executor; resolve,
/// connect, write and read all happen within `timeout`.
pub async fn exchange(
    req: &Request,
    timeout: Duration,
    limits: Limits,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let work = async {
        let url = req.url();
        let addrs = resolve_on_pool(url.host(), url.port()).await?;
        let mut last_err = None;
        let mut stream = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match glommio::net::TcpStream::connect_timeout(addr, left).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(connect_error(addr, &e)),
            }
        }
        let mut stream = stream.ok_or_else(|| last_err.unwrap_or(HttpError::Timeout(timeout)))?;
        stream.write_all(&req.encode()).await.map_err(io_error)?;
        let mut parser = ResponseParser::with_limits(limits);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = stream.read(&mut buf).await.map_err(io_error)?;
            if n == 0 {
                return parser.handle_eof();
            }
            if let Some(resp) = parser.handle_data(buf.get(..n).unwrap_or_default())? {
                return Ok(resp);
            }
        }
    };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(HttpError::Timeout(timeout))
    };
    or(work, expired).await
}

/// Send `req` and read its response with blocking std sockets; `timeout` bounds the
/// connect, each read and the whole exchange.
pub fn exchange_blocking(
    req: &Request,
    timeout: Duration,
    limits: Limits,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let url = req.url();
    let addrs: Vec<SocketAddr> = (url.host(), url.port())
        .to_socket_addrs()
        .map_err(|e| HttpError::Resolve {
            host: url.host().to_string(),
            reason: e.to_string(),
        })?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match std::net::TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(connect_error(addr, &e)),
        }
    }
    let mut stream = stream.ok_or_else(|| last_err.unwrap_or(HttpError::Timeout(timeout)))?;
    let left = |now: Instant| {
        let d = deadline.saturating_duration_since(now);
        // A zero timeout means "none" to std: never hand it one.
        (!d.is_zero())
            .then_some(d)
            .ok_or(HttpError::Timeout(timeout))
    };
    stream
        .set_write_timeout(Some(left(Instant::now())?))
        .map_err(io_error)?;
    stream
        .write_all(&req.encode())
        .map_err(|e| blocking_error(e, timeout))?;
    let mut parser = ResponseParser::with_limits(limits);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        stream
            .set_read_timeout(Some(left(Instant::now())?))
            .map_err(io_error)?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(blocking_error(e, timeout)),
        };
        if n == 0 {
            return parser.handle_eof();
        }
        if let Some(resp) = parser.handle_data(buf.get(..n).unwrap_or_default())? {
            return Ok(resp);
        }
    }
}

/// Name lookups on the blocking pool that have not returned, whether or not anyone
/// still waits for them.
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
/// Most of them at once (the control executor's blocking pool has as many threads). A
/// request that times out stops waiting for its lookup, but the lookup runs on; while
/// DNS hangs (up to tens of seconds a lookup), each heartbeat would queue one more on
/// the pool behind the others, for as long as the outage lasts. Beyond this a request
/// waits, within its own timeout, for one of them to return.
pub const MAX_LOOKUPS: usize = 4;
/// How often a request waiting for a lookup of its own looks again.
const LOOKUP_WAIT: Duration = Duration::from_millis(20);

/// One of `max` places counted in `count` ([`LOOKUPS`], [`MAX_LOOKUPS`]), held by a
/// lookup until it returns.
struct LookupSlot(&'static AtomicUsize);

impl LookupSlot {
    fn take(count: &'static AtomicUsize, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count))
    }
}

impl Drop for LookupSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Literal addresses directly; names through glommio's blocking pool (std's resolver),
/// at most [`MAX_LOOKUPS`] at once. The caller bounds the wait (its request's timeout).
async fn resolve_on_pool(host: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolve = |reason: String| HttpError::Resolve {
        host: host.to_string(),
        reason,
    };
    let slot = loop {
        match LookupSlot::take(&LOOKUPS, MAX_LOOKUPS) {
            Some(slot) => break slot,
            None => glommio::timer::sleep(LOOKUP_WAIT).await,
        }
    };
    let name = host.to_string();
    let result = glommio::executor()
        .spawn_blocking(move || {
            let _slot = slot;
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.collect::<Vec<_>>())
        })
        .await;
    match result {
        Ok(addrs) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(resolve("no addresses".into())),
        Err(e) => Err(resolve(e.to_string())),
    }
}

fn connect_error(addr: SocketAddr, e: &dyn std::fmt::Display) -> HttpError {
    HttpError::Connect {
        addr: addr.to_string(),
        reason: e.to_string(),
    }
}

fn io_error(e: impl std::fmt::Display) -> HttpError {
    HttpError::Io(e.to_string())
}

/// A blocking socket reports its timeout as `WouldBlock` or `TimedOut`.
fn blocking_error(e: std::io::Error, timeout: Duration) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            HttpError::Timeout(timeout)
        }
        _ => io_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::HttpUrl;
    use crate::testing::run_local;
    use std::net::TcpListener;

    /// A server on 127.0.0.1 that reads one request, answers `reply` (or holds the
    /// connection for `hold` without answering) and hands back the request it read.
    fn one_shot(reply: &'static [u8], hold: Duration) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            std::thread::sleep(hold);
            let _ = s.write_all(reply);
            String::from_utf8_lossy(&req).to_string()
        });
        (port, server)
    }

    #[test]
    fn lookups_in_flight_are_bounded_until_they_return() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let a = LookupSlot::take(&COUNT, 2).expect("first");
        let b = LookupSlot::take(&COUNT, 2).expect("second");
        assert!(LookupSlot::take(&COUNT, 2).is_none(), "a third is refused");
        // A lookup returns (on its pool thread) whether or not anyone still waits.
        std::thread::spawn(move || drop(a)).join().unwrap();
        let c = LookupSlot::take(&COUNT, 2).expect("room again");
        drop((b, c));
        assert_eq!(COUNT.load(Ordering::Acquire), 0);
    }

    fn closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn blocking_get_over_loopback() {
        let (port, server) = one_shot(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            Duration::ZERO,
        );
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap();
        let req = Request::get(url)
            .with_header("Accept", "application/json")
            .unwrap();
        let resp = exchange_blocking(&req, Duration::from_secs(5), Limits::default()).unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"{}"[..]));
        let seen = server.join().unwrap();
        assert!(seen.starts_with("GET /keys HTTP/1.1\r\n"), "{seen}");
        assert!(
            seen.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{seen}"
        );
    }

    #[test]
    fn blocking_timeout_and_refusal() {
        let (port, server) = one_shot(b"", Duration::from_millis(600));
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = exchange_blocking(
            &Request::get(url),
            Duration::from_millis(200),
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err, HttpError::Timeout(Duration::from_millis(200)));
        server.join().unwrap();

        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}/", closed_port())).unwrap();
        let err = exchange_blocking(
            &Request::get(url),
            Duration::from_secs(2),
            Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
        assert!(err.is_unreachable());
    }

    #[test]
    fn glommio_post_over_loopback() {
        let (port, server) = one_shot(
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
            Duration::ZERO,
        );
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/api/v1/mc/register")).unwrap();
        let req = Request::post_json(url, &b"{\"id\":\"x\"}"[..]);
        let resp =
            run_local(
                async move { exchange(&req, Duration::from_secs(5), Limits::default()).await },
            )
            .unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (201, &b"{}"[..]));
        let seen = server.join().unwrap();
        assert!(
            seen.starts_with("POST /api/v1/mc/register HTTP/1.1\r\n"),
            "{seen}"
        );
    }

    #[test]
    fn glommio_refusal_and_bad_names() {
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}/", closed_port())).unwrap();
        let err = run_local(async move {
            exchange(
                &Request::get(url),
                Duration::from_secs(2),
                Limits::default(),
            )
            .await
        })
        .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
        let url = HttpUrl::parse("http://name.invalid/").unwrap();
        let err = run_local(async move {
            exchange(
                &Request::get(url),
                Duration::from_secs(5),
                Limits::default(),
            )
            .await
        })
        .unwrap_err();
        assert!(
            matches!(err, HttpError::Resolve { .. } | HttpError::Timeout(_)),
            "{err:?}"
        );
        assert!(err.is_unreachable());
    }
}

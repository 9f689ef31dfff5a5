//! A small blocking HTTP/1.1 GET for fetching a JWKS: std `TcpStream` with connect and
//! read timeouts, `httparse` for the response head, a body limit, `Content-Length`,
//! chunked (RFC 9112 §7.1) or read-to-close bodies. `http://` only: in the cluster the
//! JWKS is served by the platform's own services; use a file for anything else.
//!
//! Blocking by design: run it on a thread of its own, never on a shard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most response headers parsed.
const MAX_HEADERS: usize = 64;

/// Why a fetch failed.
#[derive(Debug, Error)]
pub enum HttpError {
    #[error("invalid URL {0:?}: {1}")]
    BadUrl(String, &'static str),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("I/O error talking to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("HTTP status {0} (expected 200)")]
    Status(u16),
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
}

/// A validated `http://host[:port]/path[?query]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    url: url::Url,
    host: String,
    port: u16,
}

impl HttpUrl {
    /// Accept only `http://` URLs with a host and no credentials or fragment.
    pub fn parse(s: &str) -> Result<Self, HttpError> {
        let bad = |why| HttpError::BadUrl(s.to_string(), why);
        let url = url::Url::parse(s).map_err(|_| bad("not a URL"))?;
        if url.scheme() != "http" {
            return Err(bad(
                "only http:// is supported (use --jwks-path for a file)",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => format!("[{a}]"),
            None => return Err(bad("no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Self { url, host, port })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// `Host` header value (RFC 9112 §3.2).
    fn authority(&self) -> String {
        match self.url.port() {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    fn target(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.url.as_str())
    }
}

/// GET `url` and return the body of a 200 response, at most `limit` bytes. `timeout`
/// bounds the connect, each read, and the whole exchange.
pub fn get(url: &HttpUrl, timeout: Duration, limit: usize) -> Result<Vec<u8>, HttpError> {
    let deadline = Instant::now() + timeout;
    let authority = url.authority();
    let addrs: Vec<SocketAddr> = (url.host.trim_matches(['[', ']']), url.port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Resolve(authority.clone(), e))?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        let e = last_err.unwrap_or_else(|| std::io::Error::other("no address"));
        HttpError::Connect(authority.clone(), e)
    })?;
    let io = |e| HttpError::Io(authority.clone(), e);
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n\
         User-Agent: mc-service/{}\r\nConnection: close\r\n\r\n",
        url.target(),
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let raw =
        read_all(&mut stream, deadline, MAX_HEAD_BYTES + limit + 64 * 1024).map_err(
            |e| match e {
                ReadError::Io(e) => io(e),
                ReadError::Timeout => HttpError::Timeout(timeout),
                ReadError::TooLarge => HttpError::TooLarge(limit),
            },
        )?;
    parse_response(&raw, limit)
}

enum ReadError {
    Io(std::io::Error),
    Timeout,
    TooLarge,
}

/// Read until the peer closes (we sent `Connection: close`), within `deadline`.
fn read_all(stream: &mut TcpStream, deadline: Instant, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(ReadError::Timeout);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => {
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
                if raw.len() > cap {
                    return Err(ReadError::TooLarge);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::Timeout);
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Parse a complete HTTP/1.1 response (RFC 9112 §6): status 200 and a body framed by
/// chunked transfer coding, `Content-Length`, or the end of the connection.
pub(crate) fn parse_response(raw: &[u8], limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete head")),
        Err(_) => return Err(HttpError::Malformed("invalid head")),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HttpError::Malformed("head too large"));
    }
    let code = resp.code.unwrap_or(0);
    if code != 200 {
        return Err(HttpError::Status(code));
    }
    let mut chunked = false;
    let mut content_length: Option<usize> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).unwrap_or("");
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(HttpError::Malformed("unsupported transfer-encoding"));
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(HttpError::Malformed("invalid content-length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::Malformed("conflicting content-length"));
            }
            content_length = Some(n);
        }
    }
    let rest = raw.get(head_len..).unwrap_or_default();
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
    if chunked {
        return decode_chunked(rest, limit);
    }
    match content_length {
        Some(n) if n > limit => Err(HttpError::TooLarge(limit)),
        Some(n) => rest
            .get(..n)
            .map(<[u8]>::to_vec)
            .ok_or(HttpError::Malformed("body shorter than content-length")),
        None if rest.len() > limit => Err(HttpError::TooLarge(limit)),
        None => Ok(rest.to_vec()),
    }
}

/// RFC 9112 §7.1: `size[;ext] CRLF data CRLF` … `0 CRLF [trailers] CRLF`.
fn decode_chunked(mut rest: &[u8], limit: usize) -> Result<Vec<u8>, HttpError> {
    let malformed = HttpError::Malformed;
    let mut body = Vec::new();
    loop {
        let line_end = find_crlf(rest).ok_or(malformed("chunk size line"))?;
        let line = rest.get(..line_end).ok_or(malformed("chunk size line"))?;
        let size_hex = line.split(|b| *b == b';').next().unwrap_or_default();
        let size_str = std::str::from_utf8(size_hex).map_err(|_| malformed("chunk size"))?;
        let size =
            usize::from_str_radix(size_str.trim(), 16).map_err(|_| malformed("chunk size"))?;
        rest = rest.get(line_end + 2..).ok_or(malformed("chunk"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len().saturating_add(size) > limit {
            return Err(HttpError::TooLarge(limit));
        }
        let data = rest.get(..size).ok_or(malformed("truncated chunk"))?;
        body.extend_from_slice(data);
        if rest.get(size..size + 2) != Some(b"\r\n".as_slice()) {
            return Err(malformed("chunk not followed by CRLF"));
        }
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn url_validation() {
        assert!(HttpUrl::parse("https://x/jwks").is_err());
        assert!(HttpUrl::parse("http://u:p@x/jwks").is_err());
        assert!(HttpUrl::parse("not a url").is_err());
        let u = HttpUrl::parse("http://gc.internal:8080/.well-known/jwks.json?v=1").unwrap();
        assert_eq!(u.authority(), "gc.internal:8080");
        assert_eq!(u.target(), "/.well-known/jwks.json?v=1");
    }

    #[test]
    fn parses_content_length_and_chunked() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(r, 100).unwrap(), b"hello");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response(r, 100).unwrap(), b"hello");
        let r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
        assert_eq!(parse_response(r, 100).unwrap(), b"hello");
    }

    #[test]
    fn refuses_bad_responses() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"garbage",
        ];
        for c in cases {
            assert!(
                parse_response(c, 1000).is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn fetches_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            let req = String::from_utf8_lossy(&req[..n]).to_string();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            req
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap();
        let body = get(&url, Duration::from_secs(5), 1024).unwrap();
        assert_eq!(body, b"{}");
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /keys HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
    }

    #[test]
    fn read_timeout_is_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(s);
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = get(&url, Duration::from_millis(200), 1024).unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        server.join().unwrap();
    }
}

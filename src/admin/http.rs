//! HTTP/1.1 for the admin plane, sans-IO: parse a request head from bytes (httparse,
//! with limits), route it, and encode a response. RFC 9112 for the message syntax.
//!
//! Bodies are framed by `Content-Length` only (RFC 9112 §6.3; `Transfer-Encoding` is
//! refused with 501). The parser refuses a length above [`MAX_BODY_BYTES`] outright;
//! each route has its own, smaller limit (the caller checks [`Request::body_len`]).

use std::borrow::Cow;

use thiserror::Error;

/// Largest request head we accept (request line + headers).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Largest `Content-Length` the parser accepts at all; routes refuse less (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The signature header of the import route (docs/gc-api.md "Hand over a meeting").
const SIGNATURE_HEADER: &str = "x-mc-signature";
const MAX_HEADERS: usize = 32;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// The query string (after `?`), possibly empty.
    pub query: String,
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Bytes of body that follow the head (`Content-Length`).
    pub body_len: usize,
    /// The client sent `Expect: 100-continue` (RFC 9110 §10.1.1): it waits for an
    /// interim answer before sending the body.
    pub expect_continue: bool,
    /// The `X-MC-Signature` field, the import route's authentication.
    pub signature: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("transfer-encoding is not supported")]
    TransferEncoding,
}

impl HttpError {
    /// The status to answer with before closing.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Malformed(_) => 400,
            HttpError::TransferEncoding => 501,
        }
    }
}

/// Parse one request head from the start of `buf`. `Ok(None)`: need more bytes.
/// On success returns the request and the length of its head.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::Malformed("invalid request head")),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        Some(_) => Method::Other,
        None => return Err(HttpError::Malformed("no method")),
    };
    let target = req.path.ok_or(HttpError::Malformed("no path"))?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let version = req.version.ok_or(HttpError::Malformed("no version"))?;

    let mut keep_alive = version == 1;
    let mut body_len = 0usize;
    let mut expect_continue = false;
    let mut signature = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(HttpError::Malformed("bad content-length"))?;
            if n > MAX_BODY_BYTES {
                return Err(HttpError::BodyTooLarge);
            }
            body_len = n;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
            signature = std::str::from_utf8(h.value).ok().map(str::to_owned);
        }
    }
    Ok(Some((
        Request {
            method,
            path,
            query,
            keep_alive,
            body_len,
            expect_continue,
            signature,
        },
        head_len,
    )))
}

/// A response ready to encode.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Cow<'static, [u8]>,
    pub allow: Option<&'static str>,
}

impl Response {
    pub fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    pub fn text(status: u16, body: &'static str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.as_bytes())
    }

    /// Append the encoded response to `out`. For HEAD the body is left out but its
    /// length is announced (RFC 9110 §9.3.2).
    pub fn encode(&self, head_only: bool, keep_alive: bool, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            let _ = write!(out, "Allow: {allow}\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_get_with_query_and_keep_alive() {
        let (req, n) = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/metrics");
        assert_eq!(req.query, "x=1");
        assert!(req.keep_alive);
        assert_eq!(n, 38);
    }

    #[test]
    fn http10_closes_unless_asked_and_connection_close_is_honoured() {
        let (r, _) = parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
        let (r, _) = parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.keep_alive);
        let (r, _) = parse_request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn partial_heads_wait_and_oversize_heads_fail() {
        assert_eq!(parse_request(b"GET /health HTTP/1.1\r\nHo").unwrap(), None);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(parse_request(&big).unwrap_err(), HttpError::HeadTooLarge);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many).unwrap_err(), HttpError::HeadTooLarge);
    }

    #[test]
    fn garbage_and_bodies_are_refused_with_a_status() {
        assert_eq!(
            parse_request(b"\x00\x01 nonsense\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        let e = parse_request(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 413);
        let e =
            parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 501);
        let e = parse_request(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn posts_carry_their_length_signature_and_expectation() {
        let raw: &[u8] = b"POST /internal/v1/meetings/import HTTP/1.1\r\nContent-Length: 5\r\nX-MC-Signature: t=1,v1=ab\r\nExpect: 100-continue\r\n\r\nhello";
        let (r, n) = parse_request(raw).unwrap().unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.body_len, 5);
        assert!(r.expect_continue);
        assert_eq!(r.signature.as_deref(), Some("t=1,v1=ab"));
        assert_eq!(n, raw.len() - 5, "the head ends before the body");
        let (r, _) = parse_request(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.signature, r.expect_continue), (None, false));
    }

    #[test]
    fn encodes_health_exactly_and_head_without_body() {
        let mut out = Vec::new();
        Response::text(200, "OK").encode(false, true, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
        );
        out.clear();
        Response::text(200, "OK").encode(true, false, &mut out);
        assert!(out.ends_with(b"Content-Length: 2\r\nConnection: close\r\n\r\n"));
    }
}

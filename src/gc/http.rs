//! A minimal HTTP/1.1 client codec for the GC (sans-IO): encode one `POST` with a JSON
//! body, parse one response. The driver owns the socket; this file only sees bytes.
//!
//! - Requests (RFC 9112 §3): `POST <path> HTTP/1.1` with `Host`, `Content-Type:
//!   application/json`, `Content-Length` and `Connection: close` — one request per
//!   connection, so the response may also be delimited by the close.
//! - Responses (RFC 9112 §6.3): a `Transfer-Encoding: chunked` body, else a
//!   `Content-Length` body, else read-to-close. 1xx interim responses are skipped; 204
//!   and 304 have no body. Headers ≤ [`MAX_HEADER_BYTES`], body ≤ [`MAX_BODY_BYTES`].
//! - URLs: `http://` only (the GC is in-cluster); anything else is a config error.

use std::fmt;

use thiserror::Error;

/// Largest response head (status line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest (decoded) response body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Raw bytes buffered at most: a full head plus a body with generous chunk framing.
const MAX_RAW_BYTES: usize = MAX_HEADER_BYTES + 2 * MAX_BODY_BYTES;
/// Most response header lines accepted.
const MAX_HEADERS: usize = 64;

/// What can go wrong in this codec.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unsupported URL scheme {0}:// (only http:// is supported)")]
    UnsupportedScheme(String),
    #[error("response headers exceed {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    #[error("response body exceeds {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("connection closed before the response was complete")]
    Truncated,
}

/// A parsed `http://` URL: where to connect and what to put in the request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    raw: String,
    host: String,
    port: u16,
    /// Path and query, as sent in the request line (`/` at least).
    target: String,
    /// The `Host` header value (host, plus `:port` when not 80).
    authority: String,
}

impl HttpUrl {
    pub fn parse(raw: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: raw.to_string(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(HttpError::UnsupportedScheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            // Connect to the bare address; the Host header keeps the brackets.
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let host_for_header = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host_for_header}:{p}"),
            None => host_for_header.to_string(),
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        Ok(Self {
            raw: url.to_string(),
            host,
            port,
            target,
            authority,
        })
    }

    /// The host to resolve (a DNS name or a literal address, without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path and query for the request line.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// This URL with its last path segment `from` replaced by `to` (gc-api.md: the
    /// heartbeat URL is the registration URL with `register` → `heartbeat`), or `None`
    /// when the last segment is not `from`.
    pub fn replace_last_segment(&self, from: &str, to: &str) -> Option<Self> {
        let mut url = url::Url::parse(&self.raw).ok()?;
        let path = url.path().to_string();
        let trimmed = path.strip_suffix('/').unwrap_or(&path);
        let (parent, last) = trimmed.rsplit_once('/')?;
        if last != from {
            return None;
        }
        url.set_path(&format!("{parent}/{to}"));
        Self::parse(url.as_str()).ok()
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Encode `POST url` with a JSON body (RFC 9112 §3, §6.2).
pub fn encode_post(url: &HttpUrl, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: mc-service/{}\r\n\r\n",
        url.target,
        url.authority,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// One complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased; values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    len: usize,
}

/// Incremental response parser: feed bytes with [`handle_data`](Self::handle_data)
/// until it returns a response, or call [`handle_eof`](Self::handle_eof) at the close.
#[derive(Default)]
pub struct ResponseParser {
    buf: Vec<u8>,
}

impl ResponseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes; `Ok(Some(_))` once a whole response is in.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<Option<HttpResponse>, HttpError> {
        if self.buf.len() + data.len() > MAX_RAW_BYTES {
            return Err(match self.parse_head()? {
                None => HttpError::HeadersTooLarge,
                Some(_) => HttpError::BodyTooLarge,
            });
        }
        self.buf.extend_from_slice(data);
        let Some(head) = self.parse_head()? else {
            return Ok(None);
        };
        let rest = self.buf.get(head.len..).unwrap_or_default();
        let body = match head.framing {
            Framing::Empty => Some(Vec::new()),
            Framing::Length(n) => {
                (rest.len() >= n).then(|| rest.get(..n).unwrap_or_default().to_vec())
            }
            Framing::Chunked => decode_chunked(rest)?,
            Framing::UntilClose if rest.len() > MAX_BODY_BYTES => {
                return Err(HttpError::BodyTooLarge)
            }
            Framing::UntilClose => None,
        };
        Ok(body.map(|body| HttpResponse {
            status: head.status,
            headers: head.headers,
            body,
        }))
    }

    /// The peer closed the connection: the response if it is complete (or delimited by
    /// the close), else [`HttpError::Truncated`].
    pub fn handle_eof(&mut self) -> Result<HttpResponse, HttpError> {
        let head = self.parse_head()?.ok_or(HttpError::Truncated)?;
        let rest = self.buf.get(head.len..).unwrap_or_default();
        let body = match head.framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) if rest.len() >= n => rest.get(..n).unwrap_or_default().to_vec(),
            Framing::Length(_) => return Err(HttpError::Truncated),
            Framing::Chunked => decode_chunked(rest)?.ok_or(HttpError::Truncated)?,
            Framing::UntilClose if rest.len() > MAX_BODY_BYTES => {
                return Err(HttpError::BodyTooLarge)
            }
            Framing::UntilClose => rest.to_vec(),
        };
        Ok(HttpResponse {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// Parse the final (non-1xx) response head, skipping interim responses.
    fn parse_head(&self) -> Result<Option<Head>, HttpError> {
        let mut offset = 0;
        loop {
            let data = self.buf.get(offset..).unwrap_or_default();
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let len = match resp.parse(data) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if data.len() > MAX_HEADER_BYTES => {
                    return Err(HttpError::HeadersTooLarge)
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(HttpError::Malformed(format!(
                        "more than {MAX_HEADERS} headers"
                    )))
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            };
            if len > MAX_HEADER_BYTES {
                return Err(HttpError::HeadersTooLarge);
            }
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                offset += len;
                continue;
            }
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_string(),
                    )
                })
                .collect();
            let framing = framing(status, &headers)?;
            return Ok(Some(Head {
                status,
                headers,
                framing,
                len: offset + len,
            }));
        }
    }
}

fn framing(status: u16, headers: &[(String, String)]) -> Result<Framing, HttpError> {
    if status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    fn values<'a>(
        headers: &'a [(String, String)],
        name: &'a str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }
    if let Some(te) = values(headers, "transfer-encoding").last() {
        // Chunked must be the final coding (RFC 9112 §6.3 rule 4); anything else is
        // delimited by the close.
        let last = te.rsplit(',').next().unwrap_or_default().trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for v in values(headers, "content-length") {
        for part in v.split(',') {
            let n: usize = part
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed(format!("bad Content-Length {v:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) if n > MAX_BODY_BYTES => Err(HttpError::BodyTooLarge),
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::UntilClose),
    }
}

/// Decode a chunked body (RFC 9112 §7.1): `Ok(None)` while incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find_crlf(data) else {
            return if data.len() > 1024 {
                Err(HttpError::Malformed("chunk size line too long".into()))
            } else {
                Ok(None)
            };
        };
        let line = data.get(..line_end).unwrap_or_default();
        let size_str = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_str:?}")))?;
        data = data.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            loop {
                let Some(end) = find_crlf(data) else {
                    return Ok(None);
                };
                data = data.get(end + 2..).unwrap_or_default();
                if end == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(HttpError::BodyTooLarge);
        }
        let Some(chunk) = data.get(..size) else {
            return Ok(None);
        };
        match data.get(size..size + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(HttpError::Malformed("chunk not followed by CRLF".into())),
        }
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;

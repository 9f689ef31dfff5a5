//! [`ResponseParser`]: one HTTP/1.1 response, parsed incrementally from whatever bytes
//! arrive, with no I/O of its own.
//!
//! - The head is parsed by `httparse`; 1xx interim responses (except 101) are skipped
//!   (RFC 9110 §15.2).
//! - The body is delimited as RFC 9112 §6.3 says: none for 204 and 304; chunked when
//!   `chunked` is the final transfer coding (§7.1, decoded as it arrives, trailers
//!   skipped); else `Content-Length`; else the close. Any other transfer coding is
//!   refused: this client never offers one (no `TE` header).
//! - Every buffer is bounded by [`Limits`]: the head (and the trailer section) by
//!   `max_head_bytes`, the decoded body by `max_body_bytes`, a chunk-size line by
//!   [`MAX_CHUNK_LINE`]. Bad input is an [`HttpError`], never a panic.

use super::HttpError;

/// Most response header fields parsed.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (size, extensions, CRLF) accepted.
pub const MAX_CHUNK_LINE: usize = 1024;

/// Size limits of one response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (status line and fields, interim responses included), and largest
    /// trailer section.
    pub max_head_bytes: usize,
    /// Largest body, after chunked decoding.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    /// 16 KiB of head, 64 KiB of body: enough for every GC answer.
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// One complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Field names lower-cased; values as sent (lossy UTF-8, trimmed).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first field with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where the parser is.
#[derive(Debug)]
enum State {
    /// Waiting for the final (non-1xx) head; `skipped` interim bytes so far.
    Head { skipped: usize },
    Body {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        framing: Framing,
    },
    /// A response was returned, or an error: no more input is taken.
    Finished(Option<HttpError>),
}

/// How the rest of the body is delimited, and how far it has been read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes are still to come.
    Length(usize),
    Chunked(Chunk),
    UntilClose,
}

/// Position inside a chunked body (RFC 9112 §7.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting `size[;ext] CRLF`.
    Size,
    /// This many bytes of chunk data are still to come.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line; `seen` bytes so far.
    Trailer { seen: usize },
}

/// What one step of the parser found.
enum Step {
    /// More input is needed.
    Wait,
    /// Progress was made; step again.
    Again,
    /// The response is complete.
    Done,
}

/// Incremental response parser: feed bytes with [`handle_data`](Self::handle_data)
/// until it returns a response, or call [`handle_eof`](Self::handle_eof) when the peer
/// closes. After a response or an error the parser is finished.
#[derive(Debug)]
pub struct ResponseParser {
    limits: Limits,
    /// Received bytes; those before `pos` are consumed. Steps move `pos`, and the
    /// consumed bytes are dropped once per [`Self::handle_data`]: a body of small chunks
    /// would otherwise move the rest of the buffer once per chunk.
    buf: Vec<u8>,
    pos: usize,
    state: State,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Head { skipped: 0 },
        }
    }

    /// Append received bytes; `Ok(Some(_))` once the whole response is in.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<Option<Response>, HttpError> {
        if let State::Finished(e) = &self.state {
            return Err(e.clone().unwrap_or_else(finished));
        }
        self.buf.extend_from_slice(data);
        loop {
            match self.step() {
                Ok(Step::Again) => {}
                Ok(Step::Wait) => {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    return Ok(None);
                }
                Ok(Step::Done) => return Ok(Some(self.finish())),
                Err(e) => {
                    self.state = State::Finished(Some(e.clone()));
                    self.buf = Vec::new();
                    self.pos = 0;
                    return Err(e);
                }
            }
        }
    }

    /// The peer closed the connection: the response if the close completes it (a
    /// read-to-close body), else [`HttpError::Truncated`].
    pub fn handle_eof(&mut self) -> Result<Response, HttpError> {
        match &self.state {
            State::Body {
                framing: Framing::UntilClose,
                ..
            } => Ok(self.finish()),
            State::Finished(e) => Err(e.clone().unwrap_or_else(finished)),
            State::Head { .. } | State::Body { .. } => {
                self.state = State::Finished(Some(HttpError::Truncated));
                Err(HttpError::Truncated)
            }
        }
    }

    /// Take the response out of a `Body` state.
    fn finish(&mut self) -> Response {
        let state = std::mem::replace(&mut self.state, State::Finished(None));
        self.buf = Vec::new();
        self.pos = 0;
        match state {
            State::Body {
                status,
                headers,
                body,
                ..
            } => Response {
                status,
                headers,
                body,
            },
            // Only called from a Body state.
            _ => Response {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    fn step(&mut self) -> Result<Step, HttpError> {
        let max_body = self.limits.max_body_bytes;
        match &mut self.state {
            State::Head { skipped } => {
                let skipped = *skipped;
                self.step_head(skipped)
            }
            State::Body {
                body,
                framing: Framing::Length(left),
                ..
            } => {
                let unread = self.buf.get(self.pos..).unwrap_or_default();
                let n = (*left).min(unread.len());
                body.extend_from_slice(&unread[..n]);
                self.pos += n;
                *left -= n;
                Ok(if *left == 0 { Step::Done } else { Step::Wait })
            }
            State::Body {
                body,
                framing: Framing::UntilClose,
                ..
            } => {
                let unread = self.buf.get(self.pos..).unwrap_or_default();
                if body.len() + unread.len() > max_body {
                    return Err(HttpError::BodyTooLarge(max_body));
                }
                body.extend_from_slice(unread);
                self.pos = self.buf.len();
                Ok(Step::Wait)
            }
            State::Body {
                body,
                framing: Framing::Chunked(chunk),
                ..
            } => {
                let unread = self.buf.get(self.pos..).unwrap_or_default();
                let (step, used) = step_chunked(chunk, body, unread, self.limits)?;
                self.pos += used;
                Ok(step)
            }
            State::Finished(_) => Ok(Step::Wait),
        }
    }

    /// Parse a head at the start of the buffer: skip it if interim, else enter `Body`.
    fn step_head(&mut self, skipped: usize) -> Result<Step, HttpError> {
        let max_head = self.limits.max_head_bytes;
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut fields);
        let unread = self.buf.get(self.pos..).unwrap_or_default();
        let len = match resp.parse(unread) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if skipped + unread.len() > max_head => {
                return Err(HttpError::HeadTooLarge(max_head))
            }
            Ok(httparse::Status::Partial) => return Ok(Step::Wait),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::Malformed(format!(
                    "more than {MAX_HEADERS} header fields"
                )))
            }
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        };
        if skipped + len > max_head {
            return Err(HttpError::HeadTooLarge(max_head));
        }
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            self.pos += len;
            self.state = State::Head {
                skipped: skipped + len,
            };
            return Ok(Step::Again);
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
        let framing = framing(status, &headers, self.limits.max_body_bytes)?;
        self.pos += len;
        self.state = State::Body {
            status,
            headers,
            body: Vec::new(),
            framing,
        };
        Ok(if framing == Framing::Length(0) {
            Step::Done
        } else {
            Step::Again
        })
    }
}

fn finished() -> HttpError {
    HttpError::Malformed("the response was already complete".into())
}

/// The body's framing from the status and the fields (RFC 9112 §6.3).
fn framing(
    status: u16,
    headers: &[(String, String)],
    max_body: usize,
) -> Result<Framing, HttpError> {
    if status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let codings: Vec<&str> = values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    match codings.as_slice() {
        [] => {}
        [only] if only.eq_ignore_ascii_case("chunked") => {
            return Ok(Framing::Chunked(Chunk::Size));
        }
        _ => {
            return Err(HttpError::Malformed(format!(
                "unsupported transfer coding {:?}",
                codings.join(", ")
            )))
        }
    }
    let mut length = None;
    for v in values("content-length") {
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
        Some(n) if n > max_body => Err(HttpError::BodyTooLarge(max_body)),
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::UntilClose),
    }
}

/// One step of chunked decoding over the unconsumed bytes `buf`; returns the step and
/// the bytes it consumed.
fn step_chunked(
    chunk: &mut Chunk,
    body: &mut Vec<u8>,
    buf: &[u8],
    limits: Limits,
) -> Result<(Step, usize), HttpError> {
    match *chunk {
        Chunk::Size => {
            let Some(end) = find_crlf(buf) else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err(HttpError::Malformed("chunk size line too long".into()))
                } else {
                    Ok((Step::Wait, 0))
                };
            };
            if end > MAX_CHUNK_LINE {
                return Err(HttpError::Malformed("chunk size line too long".into()));
            }
            let line = buf.get(..end).unwrap_or_default();
            let size_str = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split(';').next())
                .map(str::trim)
                .unwrap_or_default();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_str:?}")))?;
            *chunk = if size == 0 {
                Chunk::Trailer { seen: 0 }
            } else if body.len().saturating_add(size) > limits.max_body_bytes {
                return Err(HttpError::BodyTooLarge(limits.max_body_bytes));
            } else {
                Chunk::Data(size)
            };
            Ok((Step::Again, end + 2))
        }
        Chunk::Data(left) => {
            let n = left.min(buf.len());
            if n == 0 {
                return Ok((Step::Wait, 0));
            }
            body.extend_from_slice(&buf[..n]);
            *chunk = if left == n {
                Chunk::DataEnd
            } else {
                Chunk::Data(left - n)
            };
            Ok((Step::Again, n))
        }
        Chunk::DataEnd => match buf.get(..2) {
            None if buf.first().is_some_and(|b| *b != b'\r') => {
                Err(HttpError::Malformed("chunk not followed by CRLF".into()))
            }
            None => Ok((Step::Wait, 0)),
            Some(b"\r\n") => {
                *chunk = Chunk::Size;
                Ok((Step::Again, 2))
            }
            Some(_) => Err(HttpError::Malformed("chunk not followed by CRLF".into())),
        },
        Chunk::Trailer { seen } => {
            let Some(end) = find_crlf(buf) else {
                return if seen + buf.len() > limits.max_head_bytes {
                    Err(HttpError::HeadTooLarge(limits.max_head_bytes))
                } else {
                    Ok((Step::Wait, 0))
                };
            };
            if end == 0 {
                return Ok((Step::Done, 2));
            }
            let seen = seen + end + 2;
            if seen > limits.max_head_bytes {
                return Err(HttpError::HeadTooLarge(limits.max_head_bytes));
            }
            *chunk = Chunk::Trailer { seen };
            Ok((Step::Again, end + 2))
        }
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;

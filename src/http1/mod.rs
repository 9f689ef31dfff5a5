//! The HTTP/1.1 client the MC uses to call other services over plain `http://`: the
//! Global Controller (register, heartbeat, deregister; `docs/gc-api.md`) and a JWKS URL
//! (`--jwks-url`). One request per connection (`Connection: close`).
//!
//! ```text
//!  Request::post_json(url, body) / Request::get(url)
//!     │ encode()                                   (request.rs, RFC 9112 §3, §6.2)
//!     ▼
//!  bytes ──► socket ──► bytes ──► ResponseParser::handle_data / handle_eof
//!            (io.rs: glommio or std)               (response.rs, RFC 9112 §6.3, §7.1)
//!                                                     ▼
//!                                                  Response { status, headers, body }
//! ```
//!
//! - [`url`]: [`HttpUrl`], a validated `http://host[:port]/path[?query]`.
//! - [`request`]: [`Request`], encoded to bytes.
//! - [`response`]: [`ResponseParser`], sans-IO and incremental: 1xx skipped,
//!   `Content-Length`, chunked or read-to-close bodies, within [`Limits`].
//! - [`io`]: the two transports that move those bytes: [`exchange`] on a glommio
//!   executor (the control plane) and [`exchange_blocking`] on a thread of its own.
//!
//! Everything that can fail, from a bad URL to a refused connection to a malformed
//! answer, is one [`HttpError`]. What a status code means is the caller's business.

pub mod io;
pub mod request;
pub mod response;
pub mod url;

use std::time::Duration;

use thiserror::Error;

pub use io::{exchange, exchange_blocking};
pub use request::{Method, Request};
pub use response::{Limits, Response, ResponseParser};
pub use url::HttpUrl;

/// Why an HTTP exchange failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unsupported URL scheme {0}:// (only http:// is supported)")]
    UnsupportedScheme(String),
    #[error("invalid request header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("response head exceeds {0} bytes")]
    HeadTooLarge(usize),
    #[error("response body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("connection closed before the response was complete")]
    Truncated,
}

impl HttpError {
    /// The server could not be reached at all (as opposed to a refusal or an unreadable
    /// answer).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            HttpError::Resolve { .. }
                | HttpError::Connect { .. }
                | HttpError::Timeout(_)
                | HttpError::Io(_)
        )
    }
}

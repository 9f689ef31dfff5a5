//! [`Request`]: one HTTP/1.1 request, encoded to bytes (RFC 9112 §3 request line,
//! §5 fields, §6.2 `Content-Length`). Every request carries `Host`, `User-Agent` and
//! `Connection: close`: one request per connection, so the response may also be
//! delimited by the close.

use super::{HttpError, HttpUrl};

/// The methods this client sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One request: method, URL, extra header fields and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: HttpUrl,
    /// Fields beyond `Host`, `User-Agent`, `Connection` and `Content-Length`.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// `GET url`, no body.
    pub fn get(url: HttpUrl) -> Self {
        Self {
            method: Method::Get,
            url,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `POST url` with a JSON body (`Content-Type: application/json`).
    pub fn post_json(url: HttpUrl, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: Method::Post,
            url,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// Add a header field. The name must be a token (RFC 9110 §5.1) and not one this
    /// client writes itself; the value must not contain CR, LF or NUL (§5.5), so no
    /// value can smuggle a second header or request.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, HttpError> {
        let bad = |reason| HttpError::InvalidHeader {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(bad("not a token"));
        }
        const OWN: [&str; 4] = ["host", "user-agent", "connection", "content-length"];
        if OWN.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            return Err(bad("set by the client itself"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(bad("value contains CR, LF or NUL"));
        }
        self.headers
            .push((name.to_string(), value.trim().to_string()));
        Ok(self)
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn url(&self) -> &HttpUrl {
        &self.url
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The bytes to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mc-service/{}\r\nConnection: close\r\n",
            self.method.as_str(),
            self.url.target(),
            self.url.authority(),
            env!("CARGO_PKG_VERSION"),
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        if self.method == Method::Post || !self.body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Request) -> String {
        String::from_utf8(r.encode()).unwrap()
    }

    #[test]
    fn post_json_is_framed_by_content_length() {
        let url = HttpUrl::parse("http://[::1]/r?a=1").unwrap();
        let req = text(&Request::post_json(url, &b"{}"[..]));
        assert!(
            req.starts_with("POST /r?a=1 HTTP/1.1\r\nHost: [::1]\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        assert!(
            req.contains("\r\nContent-Type: application/json\r\n"),
            "{req}"
        );
        assert!(req.contains("Content-Length: 2\r\n") && req.ends_with("\r\n\r\n{}"));
    }

    #[test]
    fn get_has_no_body_and_extra_headers_in_order() {
        let url = HttpUrl::parse("http://gc.internal:8080/.well-known/jwks.json?v=1").unwrap();
        let req = Request::get(url)
            .with_header("Accept", "application/json")
            .unwrap()
            .with_header("X-MC-Signature", " t=1,v1=ab ")
            .unwrap();
        let t = text(&req);
        assert!(
            t.starts_with("GET /.well-known/jwks.json?v=1 HTTP/1.1\r\nHost: gc.internal:8080\r\n"),
            "{t}"
        );
        assert!(
            t.ends_with("Accept: application/json\r\nX-MC-Signature: t=1,v1=ab\r\n\r\n"),
            "{t}"
        );
        assert!(!t.contains("Content-Length"), "{t}");
    }

    #[test]
    fn header_injection_is_refused() {
        let url = HttpUrl::parse("http://gc/x").unwrap();
        for (name, value) in [
            ("X-A", "v\r\nEvil: 1"),
            ("X-A", "v\n"),
            ("X-A", "v\0"),
            ("Bad Name", "v"),
            ("", "v"),
            ("X:A", "v"),
            ("content-length", "5"),
            ("Host", "other"),
        ] {
            assert!(
                matches!(
                    Request::get(url.clone()).with_header(name, value),
                    Err(HttpError::InvalidHeader { .. })
                ),
                "{name:?}: {value:?}"
            );
        }
    }
}

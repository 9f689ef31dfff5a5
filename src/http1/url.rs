//! [`HttpUrl`]: an `http://` URL parsed once into what a request needs — where to
//! connect, the request target and the `Host` header. `https://` is refused: the
//! services this client calls are in-cluster (`docs/gc-api.md`); a JWKS elsewhere is
//! mounted as a file instead.

use std::fmt;

use serde::Serialize;

use super::HttpError;

/// A validated `http://host[:port]/path[?query]` URL (no credentials; a fragment is
/// never sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    raw: String,
    /// The host to resolve: a DNS name or a literal address without brackets.
    host: String,
    port: u16,
    /// Path and query, as sent in the request line (`/` at least).
    target: String,
    /// The `Host` header value (RFC 9112 §3.2): host, plus `:port` when not 80.
    authority: String,
}

impl HttpUrl {
    pub fn parse(raw: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: raw.to_string(),
            reason: reason.to_string(),
        };
        let url = ::url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(HttpError::UnsupportedScheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = match url.host() {
            Some(::url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(::url::Host::Ipv4(ip)) => ip.to_string(),
            // Connect to the bare address; the Host header keeps the brackets.
            Some(::url::Host::Ipv6(ip)) => ip.to_string(),
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

    /// The `Host` header value.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// This URL with its last path segment `from` replaced by `to`, or `None` when the
    /// last segment is not `from` (the GC's heartbeat URL is its registration URL with
    /// `register` → `heartbeat`, `docs/gc-api.md`).
    pub fn replace_last_segment(&self, from: &str, to: &str) -> Option<Self> {
        let mut url = ::url::Url::parse(&self.raw).ok()?;
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

impl Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_names_and_addresses() {
        let u = HttpUrl::parse("http://gc.svc:8080/api/v1/mc/register").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.target(), u.authority()),
            ("gc.svc", 8080, "/api/v1/mc/register", "gc.svc:8080")
        );
        let v6 = HttpUrl::parse("http://[::1]/r?a=1#frag").unwrap();
        assert_eq!(
            (v6.host(), v6.port(), v6.target(), v6.authority()),
            ("::1", 80, "/r?a=1", "[::1]")
        );
        let bare = HttpUrl::parse("http://10.0.0.1").unwrap();
        assert_eq!((bare.target(), bare.authority()), ("/", "10.0.0.1"));
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            "\"http://10.0.0.1/\""
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            HttpUrl::parse("https://gc/register").unwrap_err(),
            HttpError::UnsupportedScheme("https".into())
        );
        assert!(matches!(
            HttpUrl::parse("gc:8080/x"),
            Err(HttpError::UnsupportedScheme(_))
        ));
        for bad in ["not a url", "http://u:p@x/jwks", ""] {
            assert!(
                matches!(HttpUrl::parse(bad), Err(HttpError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn last_segment_replacement() {
        let u = HttpUrl::parse("http://gc.svc:8080/api/v1/mc/register").unwrap();
        let hb = u.replace_last_segment("register", "heartbeat").unwrap();
        assert_eq!(hb.as_str(), "http://gc.svc:8080/api/v1/mc/heartbeat");
        assert!(hb.replace_last_segment("register", "x").is_none());
        let slash = HttpUrl::parse("http://gc/register/").unwrap();
        assert_eq!(
            slash
                .replace_last_segment("register", "deregister")
                .unwrap()
                .target(),
            "/deregister"
        );
    }
}

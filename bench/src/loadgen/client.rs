//! The client engine: a multi-threaded tokio runtime driving `wtransport` (WebTransport
//! over quinn) endpoints. Many sessions share one endpoint (one UDP socket); sessions are
//! spread over several endpoints so that the server's SO_REUSEPORT hash sees many
//! 4-tuples (docs/architecture.md "Data flow").
//!
//! Safety rails (bench/README.md "Safety"): the target defaults to loopback and any
//! other address must be typed by the operator with `--target`; the server certificate is
//! trusted by its SHA-256 hash (WebTransport `serverCertificateHashes`) unless the operator
//! says `--insecure`. A `RedirectToMc` ([`Target::redirect`]) is followed with the same
//! trust, to a loopback address always, and to any other address only when the typed
//! target itself was not loopback (the operator pointed the load at a cluster, whose MCs
//! redirect to each other).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint};

/// A client-side wtransport endpoint.
pub type ClientEndpoint = Endpoint<wtransport::endpoint::endpoint_side::Client>;

/// Default target: the server's loopback WebTransport address (docs/protocol.md "Transport").
pub const DEFAULT_TARGET: &str = "https://127.0.0.1:4433/";

/// Errors of the client engine.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("target URL {0:?} is not a valid https URL: {1}")]
    BadUrl(String, String),
    #[error("target {0} does not resolve to an address")]
    Unresolved(String),
    #[error("cannot read certificate hash from {0}: {1}")]
    CertHashFile(PathBuf, std::io::Error),
    #[error("certificate hash {0:?} is not 64 hex digits")]
    BadCertHash(String),
    #[error("no way to trust the server: give --cert-hash HEX, --dev-dir DIR (cert.sha256) or --insecure")]
    NoTrust,
    #[error("cannot create a client endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error(
        "{sockets} client sockets need {need} open files, above this process's limit of \
         {limit}: raise it (ulimit -n) or put more sessions on each socket \
         (--sessions-per-endpoint)"
    )]
    OpenFiles {
        sockets: usize,
        need: u64,
        limit: u64,
    },
}

impl ClientError {
    /// Process exit code for configuration errors.
    pub fn code(&self) -> u8 {
        2
    }
}

/// Flags shared by every scenario that reaches a server.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server URL (https://host:port/path). Defaults to loopback; a non-loopback address
    /// is only ever used when typed here explicitly.
    #[arg(long, env = "LOADGEN_TARGET", default_value = DEFAULT_TARGET)]
    pub target: String,
    /// SHA-256 of the server's certificate (hex, colons allowed) to trust it like a
    /// browser's serverCertificateHashes.
    #[arg(long, env = "LOADGEN_CERT_HASH")]
    pub cert_hash: Option<String>,
    /// mc-service dev directory: cert.sha256 is trusted, signing-key.pem/jwks.json mint
    /// join tokens.
    #[arg(long, env = "LOADGEN_DEV_DIR")]
    pub dev_dir: Option<PathBuf>,
    /// Skip server certificate verification entirely (explicit opt-in only).
    #[arg(long, env = "LOADGEN_INSECURE")]
    pub insecure: bool,
    /// Sessions per client endpoint (UDP socket); more endpoints spread load over the
    /// server's SO_REUSEPORT sockets.
    #[arg(long, env = "LOADGEN_SESSIONS_PER_ENDPOINT", default_value_t = 8)]
    pub sessions_per_endpoint: usize,
    /// QUIC idle timeout of client connections, in seconds.
    #[arg(long, env = "LOADGEN_IDLE_TIMEOUT", default_value_t = 30)]
    pub idle_timeout_secs: u64,
}

/// A validated target plus the trust decision.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub trust: Trust,
}

/// How the server certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    Hash([u8; 32]),
    Insecure,
}

/// Why a `RedirectToMc` endpoint is not followed (the code is the error label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    #[error("not an https URL")]
    BadUrl,
    #[error("does not resolve")]
    Unresolved,
    #[error("no address of the target's family (IPv4/IPv6)")]
    AddressFamily,
    #[error("not loopback, and the typed target was")]
    NotLoopback,
}

impl RedirectRefused {
    /// Short label for error counts (`redirect:<label>`).
    pub fn label(self) -> &'static str {
        match self {
            Self::BadUrl => "bad_url",
            Self::Unresolved => "unresolved",
            Self::AddressFamily => "address_family",
            Self::NotLoopback => "not_loopback",
        }
    }
}

impl Target {
    /// The URL to follow a `RedirectToMc` to (docs/protocol.md rule 18): `endpoint`
    /// (`https://host:port`, its path when it has one, else this target's path and query),
    /// with the host replaced by the address it resolves to, so that the address checked
    /// here is the one connected to. Refused unless that address has this target's family
    /// (the client endpoints are bound for it) and is loopback or this target was not.
    pub async fn redirect(&self, endpoint: &str) -> Result<String, RedirectRefused> {
        let mut url = url::Url::parse(endpoint).map_err(|_| RedirectRefused::BadUrl)?;
        if url.scheme() != "https" {
            return Err(RedirectRefused::BadUrl);
        }
        let host = url
            .host_str()
            .ok_or(RedirectRefused::BadUrl)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(443);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| RedirectRefused::Unresolved)?
            .find(|a| a.is_ipv4() == self.addr.is_ipv4())
            .ok_or(RedirectRefused::AddressFamily)?;
        if !is_loopback(addr.ip()) && is_loopback(self.addr.ip()) {
            return Err(RedirectRefused::NotLoopback);
        }
        url.set_ip_host(addr.ip())
            .map_err(|()| RedirectRefused::BadUrl)?;
        if matches!(url.path(), "" | "/") {
            if let Ok(original) = url::Url::parse(&self.url) {
                url.set_path(original.path());
                url.set_query(original.query());
            }
        }
        Ok(url.to_string())
    }
}

/// Parses a hex SHA-256 (colons and whitespace ignored).
pub fn parse_cert_hash(s: &str) -> Result<[u8; 32], ClientError> {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let bytes = hex::decode(&clean).map_err(|_| ClientError::BadCertHash(s.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| ClientError::BadCertHash(s.to_string()))
}

/// Whether an address is loopback (the only kind used without the operator typing it).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

impl ClientArgs {
    /// Validates the URL and decides how to trust the server.
    pub fn resolve(&self) -> Result<Target, ClientError> {
        let url = url::Url::parse(&self.target)
            .map_err(|e| ClientError::BadUrl(self.target.clone(), e.to_string()))?;
        if url.scheme() != "https" {
            return Err(ClientError::BadUrl(
                self.target.clone(),
                "scheme must be https".into(),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| ClientError::BadUrl(self.target.clone(), "no host".into()))?;
        let port = url.port().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|_| ClientError::Unresolved(self.target.clone()))?
            .next()
            .ok_or_else(|| ClientError::Unresolved(self.target.clone()))?;
        let trust = if let Some(h) = &self.cert_hash {
            Trust::Hash(parse_cert_hash(h)?)
        } else if let Some(dir) = &self.dev_dir {
            let p = dir.join("cert.sha256");
            let s = std::fs::read_to_string(&p).map_err(|e| ClientError::CertHashFile(p, e))?;
            Trust::Hash(parse_cert_hash(s.trim())?)
        } else if self.insecure {
            Trust::Insecure
        } else {
            return Err(ClientError::NoTrust);
        };
        Ok(Target {
            url: self.target.clone(),
            addr,
            trust,
        })
    }

    /// Builds one client endpoint (one UDP socket). Must run inside the tokio runtime.
    pub fn endpoint(&self, target: &Target) -> Result<ClientEndpoint, ClientError> {
        let b = ClientConfig::builder();
        let b = if target.addr.is_ipv6() {
            b.with_bind_address("[::]:0".parse().map_err(|_| ClientError::NoTrust)?)
        } else {
            b.with_bind_default()
        };
        let b = match target.trust {
            Trust::Hash(h) => b.with_server_certificate_hashes([Sha256Digest::new(h)]),
            Trust::Insecure => b.with_no_cert_validation(),
        };
        let cfg = b
            .max_idle_timeout(Some(Duration::from_secs(self.idle_timeout_secs.max(1))))
            .map_err(|_| ClientError::NoTrust)?
            .keep_alive_interval(Some(Duration::from_secs(
                (self.idle_timeout_secs / 3).max(1),
            )))
            .build();
        Endpoint::client(cfg).map_err(ClientError::Endpoint)
    }
}

/// Hands out endpoints so that at most `per_endpoint` sessions share a socket.
pub struct EndpointPool {
    endpoints: Vec<Arc<ClientEndpoint>>,
    next: AtomicUsize,
}

impl EndpointPool {
    /// Creates enough endpoints for `sessions` sessions.
    pub fn new(args: &ClientArgs, target: &Target, sessions: usize) -> Result<Self, ClientError> {
        let per = args.sessions_per_endpoint.max(1);
        let n = sessions.div_ceil(per).clamp(1, 4096);
        make_room_for(n)?;
        let endpoints = (0..n)
            .map(|_| args.endpoint(target).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        eprintln!("{}", sockets_line(n, per));
        Ok(Self {
            endpoints,
            next: AtomicUsize::new(0),
        })
    }

    /// The next endpoint, round robin.
    pub fn get(&self) -> Arc<ClientEndpoint> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len().max(1);
        self.endpoints[i].clone()
    }
}

/// Open files the runtime, the reports and the server's scrapes may hold beside the
/// endpoints' sockets.
const FD_HEADROOM: u64 = 256;

/// Each endpoint holds a UDP socket of its own: raise the soft RLIMIT_NOFILE (1,024 on
/// many systems) as far as `sockets` of them need, within the hard limit, or say which
/// limit stands in the way before any endpoint is made.
fn make_room_for(sockets: usize) -> Result<(), ClientError> {
    let need = (sockets as u64).saturating_add(FD_HEADROOM);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit; the call only writes to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        // Unknown: the sockets themselves will say if there are too many.
        return Ok(());
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    let refused = |limit| ClientError::OpenFiles {
        sockets,
        need,
        limit,
    };
    if lim.rlim_max < need {
        return Err(refused(lim.rlim_max));
    }
    let raised = libc::rlimit {
        rlim_cur: need,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit, read only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(refused(lim.rlim_cur));
    }
    Ok(())
}

/// How the sessions share the client's sockets, for the run's header. A server's cost
/// per datagram depends on it (bench/README.md, "One client socket per session"), and a
/// browser gives each session a socket of its own.
fn sockets_line(sockets: usize, per: usize) -> String {
    if per == 1 {
        format!("client sockets: {sockets}, one per session, as browsers connect")
    } else {
        format!(
            "client sockets: {sockets}, up to {per} sessions on each (a browser's sessions \
             have one each: --sessions-per-endpoint 1)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_sockets_than_the_hard_limit_allows_are_refused_with_the_way_out() {
        // Within the limit (the test process has far more than 300 files to spare).
        make_room_for(44).unwrap();
        // Beyond any hard limit the kernel allows (nr_open is at most 2^30).
        let err = make_room_for(1 << 31).unwrap_err().to_string();
        assert!(
            err.starts_with("2147483648 client sockets need 2147483904 open files"),
            "{err}"
        );
        assert!(err.contains("ulimit -n"), "{err}");
        assert!(err.contains("--sessions-per-endpoint"), "{err}");
    }

    #[test]
    fn the_header_says_how_sessions_share_sockets() {
        assert_eq!(
            sockets_line(13, 8),
            "client sockets: 13, up to 8 sessions on each (a browser's sessions have one \
             each: --sessions-per-endpoint 1)"
        );
        assert_eq!(
            sockets_line(100, 1),
            "client sockets: 100, one per session, as browsers connect"
        );
    }

    fn args(target: &str) -> ClientArgs {
        ClientArgs {
            target: target.into(),
            cert_hash: None,
            dev_dir: None,
            insecure: false,
            sessions_per_endpoint: 8,
            idle_timeout_secs: 30,
        }
    }

    #[test]
    fn cert_hash_parses_hex_with_colons() {
        let h = "AB:".repeat(31) + "AB";
        assert_eq!(parse_cert_hash(&h).unwrap(), [0xab; 32]);
        assert!(parse_cert_hash("abcd").is_err());
        assert!(parse_cert_hash(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn no_trust_is_refused_and_insecure_is_explicit() {
        assert!(matches!(
            args(DEFAULT_TARGET).resolve(),
            Err(ClientError::NoTrust)
        ));
        let mut a = args(DEFAULT_TARGET);
        a.insecure = true;
        let t = a.resolve().unwrap();
        assert!(matches!(t.trust, Trust::Insecure));
        assert!(is_loopback(t.addr.ip()));
    }

    fn target(url: &str) -> Target {
        let mut a = args(url);
        a.insecure = true;
        a.resolve().unwrap()
    }

    #[tokio::test]
    async fn redirects_keep_the_path_and_stay_on_loopback() {
        let t = target("https://127.0.0.1:4433/meet?x=1");
        assert_eq!(
            t.redirect("https://127.0.0.1:4434").await.unwrap(),
            "https://127.0.0.1:4434/meet?x=1"
        );
        assert_eq!(
            t.redirect("https://localhost:4434/").await.unwrap(),
            "https://127.0.0.1:4434/meet?x=1",
            "resolved, in the target's family"
        );
        assert_eq!(
            t.redirect("https://127.0.0.1:4434/other").await.unwrap(),
            "https://127.0.0.1:4434/other",
            "an endpoint's own path wins"
        );
        assert_eq!(
            t.redirect("https://192.0.2.7:4433").await,
            Err(RedirectRefused::NotLoopback)
        );
        assert_eq!(
            t.redirect("http://127.0.0.1:4434").await,
            Err(RedirectRefused::BadUrl)
        );
        assert_eq!(
            t.redirect("https://[::1]:4434").await,
            Err(RedirectRefused::AddressFamily)
        );
        assert_eq!(t.redirect("nonsense").await, Err(RedirectRefused::BadUrl));
        // A typed non-loopback target (a cluster): its MCs may redirect anywhere.
        let mut a = args("https://192.0.2.1:4433/");
        a.insecure = true;
        let cluster = a.resolve().unwrap();
        assert_eq!(
            cluster.redirect("https://192.0.2.7:4433").await.unwrap(),
            "https://192.0.2.7:4433/"
        );
    }

    #[test]
    fn default_target_is_loopback_and_scheme_checked() {
        let mut a = args("http://127.0.0.1:4433/");
        a.insecure = true;
        assert!(matches!(a.resolve(), Err(ClientError::BadUrl(..))));
        let mut a = args("https://[::1]:4433/echo");
        a.cert_hash = Some("00".repeat(32));
        let t = a.resolve().unwrap();
        assert!(is_loopback(t.addr.ip()) && t.addr.port() == 4433);
    }
}

//! The GC client's flags and the advertised endpoints (docs/gc-api.md Register body).
//!
//! `--gc-registration-url` / `GC_REGISTRATION_URL` and `--gc-heartbeat-interval-secs` /
//! `GC_HEARTBEAT_INTERVAL_SECS` already live in the service's `ServiceArgs` (the
//! runbook's variables); repeating them here would be a duplicate clap id.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;
use std::time::Duration;

use clap::Args;

use super::client::{GcClientConfig, GcUrls, BACKOFF_MAX, BACKOFF_MIN};
use super::GcError;
use crate::config::gc_request_timeout_secs;

/// Who this MC is, from the service config (docs/gc-api.md Register body).
#[derive(Clone, Debug)]
pub struct GcIdentity {
    /// `MC_ID`.
    pub id: String,
    /// `MC_REGION`.
    pub region: String,
    /// `MC_CAPACITY`.
    pub capacity: u32,
    pub shards: u32,
}

/// Global Controller client settings beyond the runbook's two variables.
#[derive(Clone, Debug, Args)]
pub struct GcArgs {
    /// GC heartbeat endpoint. Default: the registration URL with its last path segment
    /// `register` replaced by `heartbeat`.
    #[arg(long, env = "GC_HEARTBEAT_URL", value_name = "URL")]
    pub gc_heartbeat_url: Option<String>,

    /// Time allowed for one GC request (resolve, connect, send, answer), in seconds, 1
    /// to 3600.
    #[arg(long, env = "GC_REQUEST_TIMEOUT_SECS", default_value = "5", value_parser = gc_request_timeout_secs)]
    pub gc_request_timeout_secs: NonZeroU64,

    /// WebTransport URL advertised to the GC (e.g. https://10.0.3.7:4433). Default: the
    /// WebTransport bind address, with POD_IP when bound to 0.0.0.0 or ::.
    #[arg(long, env = "MC_ADVERTISE_WEBTRANSPORT", value_name = "URL")]
    pub advertise_webtransport: Option<String>,

    /// Admin HTTP URL advertised to the GC (e.g. http://10.0.3.7:8080). Default: the
    /// HTTP bind address, with POD_IP when bound to 0.0.0.0 or ::.
    #[arg(long, env = "MC_ADVERTISE_HTTP", value_name = "URL")]
    pub advertise_http: Option<String>,

    /// This pod's IP (Kubernetes downward API `status.podIP`), substituted for an
    /// unspecified bind address in the advertised endpoints.
    #[arg(long, env = "POD_IP", value_name = "IP")]
    pub pod_ip: Option<IpAddr>,
}

impl GcArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.gc_request_timeout_secs.get())
    }

    /// Everything [`GcClient::new`](super::GcClient::new) needs: URLs derived per
    /// docs/gc-api.md, advertised endpoints per [`advertised_endpoints`], version from the
    /// crate, backoff 1 s → 30 s.
    pub fn client_config(
        &self,
        registration_url: &str,
        heartbeat_interval: Duration,
        identity: GcIdentity,
        webtransport_bind: SocketAddr,
        http_bind: SocketAddr,
    ) -> Result<GcClientConfig, GcError> {
        let urls = GcUrls::derive(registration_url, self.gc_heartbeat_url.as_deref())?;
        let (webtransport_endpoint, http_endpoint) =
            advertised_endpoints(self, webtransport_bind, http_bind)?;
        Ok(GcClientConfig {
            id: identity.id,
            region: identity.region,
            capacity: identity.capacity,
            webtransport_endpoint,
            http_endpoint,
            shards: identity.shards,
            version: env!("CARGO_PKG_VERSION").to_string(),
            urls,
            heartbeat_interval,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        })
    }
}

/// The `(webtransport_endpoint, http_endpoint)` to register: each explicit flag as
/// given (validated as a URL), else `https://ip:port` / `http://ip:port` from the bind
/// address, with `pod_ip` replacing 0.0.0.0 / `::`.
pub fn advertised_endpoints(
    args: &GcArgs,
    webtransport_bind: SocketAddr,
    http_bind: SocketAddr,
) -> Result<(String, String), GcError> {
    let wt = endpoint(
        args.advertise_webtransport.as_deref(),
        "https",
        webtransport_bind,
        args.pod_ip,
        "--advertise-webtransport / MC_ADVERTISE_WEBTRANSPORT",
    )?;
    let http = endpoint(
        args.advertise_http.as_deref(),
        "http",
        http_bind,
        args.pod_ip,
        "--advertise-http / MC_ADVERTISE_HTTP",
    )?;
    Ok((wt, http))
}

fn endpoint(
    explicit: Option<&str>,
    scheme: &str,
    bind: SocketAddr,
    pod_ip: Option<IpAddr>,
    flag: &'static str,
) -> Result<String, GcError> {
    if let Some(raw) = explicit {
        let url = url::Url::parse(raw).map_err(|e| GcError::Config {
            flag,
            reason: format!("not a URL ({e}): {raw:?}"),
        })?;
        if url.scheme() != scheme || url.host_str().is_none_or(str::is_empty) {
            return Err(GcError::Config {
                flag,
                reason: format!("expected {scheme}://host:port, got {raw:?}"),
            });
        }
        return Ok(raw.trim_end_matches('/').to_string());
    }
    let ip = match (bind.ip().is_unspecified(), pod_ip) {
        (false, _) => bind.ip(),
        (true, Some(ip)) => ip,
        (true, None) => {
            return Err(GcError::Config {
                flag,
                reason: format!(
                    "bound to {bind}, which is not reachable by others: set POD_IP \
                     (downward API status.podIP) or this flag"
                ),
            })
        }
    };
    Ok(format!("{scheme}://{}", SocketAddr::new(ip, bind.port())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gc: GcArgs,
    }

    fn args(argv: &[&str]) -> GcArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(argv);
        Cli::try_parse_from(v).unwrap().gc
    }

    #[test]
    fn derives_from_bind_addresses_and_pod_ip() {
        let wt: SocketAddr = "0.0.0.0:4433".parse().unwrap();
        let http: SocketAddr = "[::]:8080".parse().unwrap();
        let a = args(&["--pod-ip", "10.0.3.7"]);
        assert_eq!(
            advertised_endpoints(&a, wt, http).unwrap(),
            (
                "https://10.0.3.7:4433".into(),
                "http://10.0.3.7:8080".into()
            )
        );
        let a = args(&["--pod-ip", "fd00::7"]);
        assert_eq!(
            advertised_endpoints(&a, wt, http).unwrap().0,
            "https://[fd00::7]:4433"
        );
        let a = args(&[]);
        let lo: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        assert_eq!(
            advertised_endpoints(&a, lo, lo).unwrap().1,
            "http://127.0.0.1:4433"
        );
        assert!(matches!(
            advertised_endpoints(&a, wt, lo),
            Err(GcError::Config { .. })
        ));
    }

    #[test]
    fn explicit_flags_win_and_are_checked() {
        let wt: SocketAddr = "0.0.0.0:4433".parse().unwrap();
        let a = args(&[
            "--advertise-webtransport",
            "https://mc-1.example.com:443/",
            "--advertise-http",
            "http://10.1.1.1:9000",
        ]);
        assert_eq!(
            advertised_endpoints(&a, wt, wt).unwrap(),
            (
                "https://mc-1.example.com:443".into(),
                "http://10.1.1.1:9000".into()
            )
        );
        let a = args(&["--advertise-http", "https://x:1"]);
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(advertised_endpoints(&a, lo, lo).is_err());
        assert_eq!(args(&[]).request_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn request_timeout_is_bounded() {
        assert_eq!(
            args(&["--gc-request-timeout-secs", "3600"]).request_timeout(),
            Duration::from_secs(3600)
        );
        for bad in ["0", "3601", "18446744073709551615"] {
            let e = Cli::try_parse_from(["t", "--gc-request-timeout-secs", bad])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"))
                .to_string();
            assert!(
                e.contains("--gc-request-timeout-secs") && e.contains("must be 1 to 3600"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn client_config_from_args() {
        let a = args(&["--pod-ip", "10.0.3.7"]);
        let id = GcIdentity {
            id: "mc-1".into(),
            region: "us-west-2".into(),
            capacity: 100,
            shards: 4,
        };
        let any: SocketAddr = "0.0.0.0:4433".parse().unwrap();
        let c = a
            .client_config(
                "http://gc:8080/api/v1/mc/register",
                Duration::from_secs(10),
                id,
                any,
                any,
            )
            .unwrap();
        assert_eq!(
            c.urls.deregister.as_str(),
            "http://gc:8080/api/v1/mc/deregister"
        );
        assert_eq!(c.webtransport_endpoint, "https://10.0.3.7:4433");
        assert_eq!((c.capacity, c.shards, c.backoff_min), (100, 4, BACKOFF_MIN));
    }
}

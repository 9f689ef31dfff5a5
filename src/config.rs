//! Configuration: every flag is also read from the environment variable the runbook
//! names, parsed once by clap and validated into typed values before anything starts.
//!
//! A bad value ends the process with one line naming the flag and its variable, and
//! exit code 2 ([`ConfigError`], [`exit_on_clap_error`]).

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use thiserror::Error;

/// Exit code for configuration errors (the same code clap uses for usage errors).
pub const EXIT_CONFIG: i32 = 2;

/// `mc-service`: the Meeting Controller.
#[derive(Debug, Parser)]
#[command(
    name = "mc-service",
    version,
    about = "Meeting Controller: WebTransport signaling server (thread-per-core, io_uring)",
    after_help = "Every flag can also be set through the environment variable shown beside it. \
                  Secrets (TLS key, binding secret) are read only from files or the environment. \
                  See README.md, tuning.md and the operator runbook."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration as JSON and exit (secrets are never printed).
    PrintConfig,
    /// Print a join token signed with the development key in --dev-dir.
    DevToken(crate::auth::devtoken::DevTokenArgs),
}

/// The whole service configuration: one flattened struct per component.
#[derive(Debug, Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub auth: crate::auth::AuthConfig,
    #[command(flatten)]
    pub gc: crate::gc::GcArgs,
    #[command(flatten)]
    pub signaling: crate::signaling::session::SignalingArgs,
    #[command(flatten)]
    pub meeting: crate::meeting::MeetingArgs,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub quic: crate::quic::QuicArgs,
}

/// Log output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines in production.
    Json,
}

/// A feature that is either on or off (`on`/`off` on the command line).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// The runbook's variables and the service-wide settings.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Global Controller registration endpoint (required unless --dev).
    #[arg(long, env = "GC_REGISTRATION_URL", value_name = "URL")]
    pub gc_registration_url: Option<String>,

    /// Geographic region of this MC (required unless --dev).
    #[arg(long, env = "MC_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Maximum concurrent meetings.
    #[arg(long, env = "MC_CAPACITY", default_value = "100", value_parser = nonzero_u32)]
    pub capacity: NonZeroU32,

    /// WebTransport (UDP) bind address. With --dev and no explicit value: 127.0.0.1:4433.
    #[arg(long, env = "WEBTRANSPORT_BIND_ADDRESS", default_value = "0.0.0.0:4433", value_parser = socket_addr)]
    pub webtransport_bind_address: SocketAddr,

    /// HTTP admin bind address (/health, /ready, /metrics). With --dev and no explicit
    /// value: 127.0.0.1:8080.
    #[arg(long, env = "HTTP_BIND_ADDRESS", default_value = "0.0.0.0:8080", value_parser = socket_addr)]
    pub http_bind_address: SocketAddr,

    /// Capacity of each actor mailbox (each cross-shard queue of commands; forwarded
    /// datagrams have a queue of 256 of their own).
    #[arg(long, env = "ACTOR_MAILBOX_SIZE", default_value = "1000", value_parser = nonzero_usize)]
    pub actor_mailbox_size: NonZeroUsize,

    /// Messages a shard may hold, per destination shard, when that shard's queue is
    /// full (delayed in order rather than dropped; beyond this they are dropped and
    /// counted in mc_messages_dropped_total).
    #[arg(long, env = "MC_MESH_OVERFLOW_MAX", default_value = "65536", value_parser = nonzero_usize)]
    pub mesh_overflow_max: NonZeroUsize,

    /// Bytes a shard may hold in that overflow, all destinations together (a message
    /// counts with what it points to: a client's message at its encoded size). Beyond
    /// this, messages are dropped and counted as for the message limit.
    #[arg(long, env = "MC_MESH_OVERFLOW_MAX_BYTES", default_value = "67108864", value_parser = nonzero_usize)]
    pub mesh_overflow_max_bytes: NonZeroUsize,

    /// Heartbeat interval to the GC, in seconds, 1 to 3600 (the GC's own interval wins
    /// when given).
    #[arg(long, env = "GC_HEARTBEAT_INTERVAL_SECS", default_value = "10", value_parser = heartbeat_interval_secs)]
    pub gc_heartbeat_interval_secs: NonZeroU64,

    /// Log filter (tracing EnvFilter syntax, e.g. `info,mc_service=debug`).
    #[arg(long = "log-filter", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Log format: text for people, json for production pipelines.
    #[arg(long, env = "MC_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// This MC's id at the GC: [A-Za-z0-9_-]{1,255}. Default: "mc-" + $HOSTNAME.
    #[arg(long, env = "MC_ID", value_name = "ID")]
    pub mc_id: Option<String>,

    /// Number of shards (pinned executors). Default: the CPUs this process may use.
    #[arg(long, env = "MC_SHARDS", value_parser = nonzero_usize)]
    pub shards: Option<NonZeroUsize>,

    /// On SIGTERM, how long live meetings may continue before they are ended, in
    /// seconds, 0 to 86400.
    #[arg(long, env = "MC_DRAIN_TIMEOUT_SECS", default_value = "60", value_parser = drain_timeout_secs)]
    pub drain_timeout_secs: u64,

    /// Development mode: binds 127.0.0.1 by default, generates a self-signed certificate,
    /// token-signing key and binding secret into --dev-dir, needs no GC.
    #[arg(long, env = "MC_DEV")]
    pub dev: bool,

    /// Where development mode keeps its generated material.
    #[arg(long, env = "MC_DEV_DIR", default_value = "./.mc-dev")]
    pub dev_dir: PathBuf,

    /// QUIC connections one client IP address may hold on one shard, counted from the
    /// handshake whether or not a session follows; further handshakes are refused. The
    /// kernel spreads a client's connections over shards, so the process-wide limit is
    /// this × shards.
    #[arg(long, env = "MC_MAX_SESSIONS_PER_IP", default_value = "100", value_parser = nonzero_u32)]
    pub max_sessions_per_ip: NonZeroU32,

    /// Leading bits of an IPv6 client address that name one client for
    /// MC_MAX_SESSIONS_PER_IP (1..=128; 128 counts each address on its own). IPv4
    /// addresses are counted whole.
    #[arg(long, env = "MC_IPV6_CLIENT_PREFIX", default_value = "64", value_parser = ipv6_prefix)]
    pub ipv6_client_prefix: u8,

    /// WebTransport URL of another MC to send participants to when this one drains
    /// (RedirectToMc); without it, drained meetings end with MEETING_ENDED.
    #[arg(long, env = "MC_REDIRECT_ENDPOINT", value_name = "URL")]
    pub redirect_endpoint: Option<String>,

    /// On a drain (SIGTERM, or the GC setting this MC `draining`), hand live meetings
    /// over to other MCs the GC picks, their participants following (needs a GC). `off`:
    /// live meetings run on until they end or the drain timeout ends them.
    #[arg(long, env = "MC_LIVE_MIGRATION", value_enum, default_value = "on")]
    pub live_migration: Switch,

    /// Memory glommio registers with each io_uring ring, in bytes (3 rings per shard;
    /// counts against RLIMIT_MEMLOCK, see tuning.md).
    #[arg(long, env = "MC_IO_MEMORY_BYTES", default_value = "524288", value_parser = nonzero_usize)]
    pub io_memory_bytes: NonZeroUsize,
}

/// The admin HTTP plane's limits.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Concurrent admin HTTP connections; a new one closes the open one least far along
    /// (waiting longest for a request head, else reading a body longest, else answered
    /// longest), counted in mc_refusals_total{reason="admin_evicted"}; 503 only when all
    /// are handing an import to a shard, counted in reason="admin_connections".
    #[arg(long, env = "MC_ADMIN_MAX_CONNECTIONS", default_value = "64", value_parser = nonzero_usize)]
    pub admin_max_connections: NonZeroUsize,

    /// Time a client has to send a request's headers (on a new connection, from
    /// connect), and then the same again for its body, in milliseconds, 1 to 3600000;
    /// also the time one answer may take to be written.
    #[arg(long, env = "MC_ADMIN_HEADER_TIMEOUT_MS", default_value = "5000", value_parser = admin_header_timeout_ms)]
    pub admin_header_timeout_ms: NonZeroU64,

    /// Time a keep-alive admin connection may idle between requests, in seconds, 1 to
    /// 86400.
    #[arg(long, env = "MC_ADMIN_IDLE_TIMEOUT_SECS", default_value = "30", value_parser = admin_idle_timeout_secs)]
    pub admin_idle_timeout_secs: NonZeroU64,
}

/// Validated, typed settings: what the rest of the service reads.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settings {
    pub mc_id: String,
    pub region: String,
    pub gc_registration_url: Option<String>,
    pub capacity: u32,
    pub webtransport_bind_address: SocketAddr,
    pub http_bind_address: SocketAddr,
    pub actor_mailbox_size: usize,
    pub mesh_overflow_max: usize,
    pub mesh_overflow_max_bytes: usize,
    #[serde(serialize_with = "secs")]
    pub gc_heartbeat_interval: Duration,
    pub shards: usize,
    #[serde(serialize_with = "secs")]
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub dev: bool,
    pub dev_dir: PathBuf,
    pub io_memory_bytes: usize,
    pub redirect_endpoint: Option<String>,
    /// Move live meetings to other MCs when draining (`--live-migration`).
    pub live_migration: bool,
    pub max_sessions_per_ip: u32,
    pub ipv6_client_prefix: u8,
    pub admin: AdminSettings,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AdminSettings {
    pub max_connections: usize,
    #[serde(serialize_with = "secs")]
    pub header_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub idle_timeout: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A configuration problem, phrased for the operator: names the flag and its variable.
#[derive(Debug, Error)]
#[error("{flag} / {env}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, env: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            env,
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Validate into [`Settings`]. `matches` tells which values were defaults, so that
    /// --dev can move default binds to loopback; `available_cpus` bounds --shards.
    pub fn validate(
        &self,
        matches: &ArgMatches,
        available_cpus: usize,
    ) -> Result<Settings, ConfigError> {
        let s = &self.service;
        let dev = s.dev;
        let defaulted = |id: &str| matches.value_source(id) == Some(ValueSource::DefaultValue);

        let region = match (&s.region, dev) {
            (Some(r), _) if !r.trim().is_empty() => r.trim().to_string(),
            (Some(_), _) => {
                return Err(ConfigError::new(
                    "--region",
                    "MC_REGION",
                    "must not be empty",
                ))
            }
            (None, true) => "dev".to_string(),
            (None, false) => {
                return Err(ConfigError::new(
                    "--region",
                    "MC_REGION",
                    "is required (unless --dev)",
                ))
            }
        };

        let gc_registration_url = match (&s.gc_registration_url, dev) {
            (Some(u), _) => Some(validate_gc_url(u)?),
            (None, true) => None,
            (None, false) => {
                return Err(ConfigError::new(
                    "--gc-registration-url",
                    "GC_REGISTRATION_URL",
                    "is required (unless --dev)",
                ))
            }
        };

        let loopback = |addr: SocketAddr| SocketAddr::new([127, 0, 0, 1].into(), addr.port());
        let mut webtransport_bind_address = s.webtransport_bind_address;
        let mut http_bind_address = s.http_bind_address;
        if dev && defaulted("webtransport_bind_address") {
            webtransport_bind_address = loopback(webtransport_bind_address);
        }
        if dev && defaulted("http_bind_address") {
            http_bind_address = loopback(http_bind_address);
        }

        let shards = match s.shards {
            Some(n) if n.get() > available_cpus => {
                return Err(ConfigError::new(
                    "--shards",
                    "MC_SHARDS",
                    format!(
                        "{n} shards requested but this process may use only {available_cpus} CPUs"
                    ),
                ))
            }
            Some(n) => n.get(),
            None => available_cpus.max(1),
        };

        let mc_id = match &s.mc_id {
            Some(id) => validate_mc_id(id)?,
            None => default_mc_id(std::env::var("HOSTNAME").ok().as_deref()),
        };

        let io_memory_bytes = s.io_memory_bytes.get();
        if io_memory_bytes < 64 * 1024 {
            return Err(ConfigError::new(
                "--io-memory-bytes",
                "MC_IO_MEMORY_BYTES",
                "must be at least 65536",
            ));
        }

        let a = &self.admin;
        Ok(Settings {
            mc_id,
            region,
            gc_registration_url,
            capacity: s.capacity.get(),
            webtransport_bind_address,
            http_bind_address,
            actor_mailbox_size: s.actor_mailbox_size.get(),
            mesh_overflow_max: s.mesh_overflow_max.get(),
            mesh_overflow_max_bytes: s.mesh_overflow_max_bytes.get(),
            gc_heartbeat_interval: Duration::from_secs(s.gc_heartbeat_interval_secs.get()),
            shards,
            drain_timeout: Duration::from_secs(s.drain_timeout_secs),
            log_format: s.log_format,
            log_filter: s.log_filter.clone(),
            dev,
            dev_dir: s.dev_dir.clone(),
            io_memory_bytes,
            redirect_endpoint: s.redirect_endpoint.clone(),
            live_migration: s.live_migration == Switch::On,
            max_sessions_per_ip: s.max_sessions_per_ip.get(),
            ipv6_client_prefix: s.ipv6_client_prefix,
            admin: AdminSettings {
                max_connections: a.admin_max_connections.get(),
                header_timeout: Duration::from_millis(a.admin_header_timeout_ms.get()),
                idle_timeout: Duration::from_secs(a.admin_idle_timeout_secs.get()),
            },
        })
    }
}

fn validate_gc_url(raw: &str) -> Result<String, ConfigError> {
    let err =
        |reason: String| ConfigError::new("--gc-registration-url", "GC_REGISTRATION_URL", reason);
    let url = url::Url::parse(raw).map_err(|e| err(format!("not a URL ({e}): {raw:?}")))?;
    if url.scheme() != "http" {
        return Err(err(format!(
            "only http:// is supported (in-cluster GC), got {}://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err(format!("has no host: {raw:?}")));
    }
    Ok(raw.to_string())
}

fn validate_mc_id(id: &str) -> Result<String, ConfigError> {
    let ok = (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ConfigError::new(
            "--mc-id",
            "MC_ID",
            format!("must match [A-Za-z0-9_-]{{1,255}}, got {id:?}"),
        ))
    }
}

/// "mc-" + the hostname with anything outside [A-Za-z0-9_-] replaced by '-'.
fn default_mc_id(hostname: Option<&str>) -> String {
    let host = hostname
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(read_hostname)
        .unwrap_or_else(|| "local".to_string());
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(250)
        .collect();
    format!("mc-{clean}")
}

fn read_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Parse the command line and environment. On a usage error, print one line naming the
/// flag and its environment variable and exit with code 2; `--help`/`--version` print
/// and exit 0 as usual.
pub fn parse() -> (Cli, ArgMatches) {
    let mut cmd = Cli::command();
    let matches = match cmd.try_get_matches_from_mut(std::env::args_os()) {
        Ok(m) => m,
        Err(e) => exit_on_clap_error(&cmd, e),
    };
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => (cli, matches),
        Err(e) => exit_on_clap_error(&cmd, e),
    }
}

/// Print a clap error as one line with the env var of the offending flag, then exit.
pub fn exit_on_clap_error(cmd: &clap::Command, e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    eprintln!("{}", clap_error_line(cmd, &e));
    std::process::exit(EXIT_CONFIG);
}

/// The one line [`exit_on_clap_error`] prints: clap's message and, when it names a
/// flag, that flag's environment variable.
fn clap_error_line(cmd: &clap::Command, e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let env = arg.as_deref().and_then(|a| env_of(cmd, a));
    let detail = e
        .render()
        .to_string()
        .lines()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| e.kind().to_string());
    match env {
        Some(env) => format!("error: {detail} (environment variable {env})"),
        None => format!("error: {detail}"),
    }
}

/// The env var of the argument clap names as e.g. `--capacity <CAPACITY>`.
fn env_of(cmd: &clap::Command, arg: &str) -> Option<String> {
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
}

pub(crate) fn nonzero_u32(s: &str) -> Result<NonZeroU32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|e| format!("not a whole number ({e})"))?;
    NonZeroU32::new(n).ok_or_else(|| "must be at least 1".to_string())
}

fn ipv6_prefix(s: &str) -> Result<u8, String> {
    let n: u8 = s
        .trim()
        .parse()
        .map_err(|e| format!("not a whole number ({e})"))?;
    if (1..=128).contains(&n) {
        Ok(n)
    } else {
        Err("must be 1 to 128".to_string())
    }
}

/// Longest `--gc-heartbeat-interval-secs`: an hour, the longest interval the MC takes
/// from the GC's own answer (`heartbeat_interval_secs`, src/gc/client.rs).
pub const MAX_HEARTBEAT_INTERVAL_SECS: u64 = 3600;
/// Longest `--gc-request-timeout-secs`: an hour, no longer than the longest heartbeat
/// interval (one request should end well before the next heartbeat is due).
pub const MAX_GC_REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Longest drain timeout, admin idle timeout and disconnect grace: a day.
pub const MAX_DAY_SECS: u64 = 86_400;
/// Longest `--admin-header-timeout-ms`: an hour to send one request's headers.
pub const MAX_ADMIN_HEADER_TIMEOUT_MS: u64 = 3_600_000;
/// Most `--max-participants-per-meeting`: the most users a meeting's hand-over snapshot
/// may name ([`MAX_SNAPSHOT_USERS`](crate::meeting::MAX_SNAPSHOT_USERS)), so that a full
/// meeting can still be handed over.
pub const MAX_PARTICIPANTS_PER_MEETING: usize = crate::meeting::MAX_SNAPSHOT_USERS;

/// A whole number in `min..=max`. Durations are bounded when parsed, so that a huge
/// value stops the process at once instead of overflowing a deadline
/// (`Instant + Duration`) later.
fn u64_in(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|e| format!("not a whole number ({e})"))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be {min} to {max}"))
    }
}

fn nonzero_u64_at_most(s: &str, max: u64) -> Result<NonZeroU64, String> {
    let n = u64_in(s, 1, max)?;
    NonZeroU64::new(n).ok_or_else(|| "must be at least 1".to_string())
}

fn heartbeat_interval_secs(s: &str) -> Result<NonZeroU64, String> {
    nonzero_u64_at_most(s, MAX_HEARTBEAT_INTERVAL_SECS)
}

fn drain_timeout_secs(s: &str) -> Result<u64, String> {
    u64_in(s, 0, MAX_DAY_SECS)
}

fn admin_header_timeout_ms(s: &str) -> Result<NonZeroU64, String> {
    nonzero_u64_at_most(s, MAX_ADMIN_HEADER_TIMEOUT_MS)
}

fn admin_idle_timeout_secs(s: &str) -> Result<NonZeroU64, String> {
    nonzero_u64_at_most(s, MAX_DAY_SECS)
}

/// `--gc-request-timeout-secs`: 1 to [`MAX_GC_REQUEST_TIMEOUT_SECS`].
pub(crate) fn gc_request_timeout_secs(s: &str) -> Result<NonZeroU64, String> {
    nonzero_u64_at_most(s, MAX_GC_REQUEST_TIMEOUT_SECS)
}

/// `--disconnect-grace-secs`: 0 (a dropped participant leaves at once) to a day.
pub(crate) fn disconnect_grace_secs(s: &str) -> Result<u64, String> {
    u64_in(s, 0, MAX_DAY_SECS)
}

/// `--max-handover-bytes`: [`crate::migration::MIN_HANDOVER_BYTES`] to
/// [`crate::migration::MAX_HANDOVER_BYTES`].
pub(crate) fn handover_bytes(s: &str) -> Result<usize, String> {
    let (least, most) = (
        crate::migration::MIN_HANDOVER_BYTES as u64,
        crate::migration::MAX_HANDOVER_BYTES as u64,
    );
    let n = u64_in(s, least, most)?;
    usize::try_from(n).map_err(|_| format!("must be {least} to {most}"))
}

/// `--max-participants-per-meeting`: 1 to [`MAX_PARTICIPANTS_PER_MEETING`].
pub(crate) fn participants_per_meeting(s: &str) -> Result<usize, String> {
    let most = MAX_PARTICIPANTS_PER_MEETING as u64;
    let n = u64_in(s, 1, most)?;
    usize::try_from(n).map_err(|_| format!("must be 1 to {most}"))
}

fn nonzero_usize(s: &str) -> Result<NonZeroUsize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|e| format!("not a whole number ({e})"))?;
    NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".to_string())
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "not an IP:port socket address (e.g. 0.0.0.0:4433 or [::]:4433)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut cmd = Cli::command();
        let m = cmd
            .try_get_matches_from_mut(std::iter::once("mc-service").chain(args.iter().copied()))
            .expect("parses");
        Cli::from_arg_matches(&m).unwrap().config.validate(&m, 2)
    }

    #[test]
    fn dev_defaults_bind_loopback_and_need_no_gc() {
        let s = settings(&["--dev"]).unwrap();
        assert_eq!(
            s.webtransport_bind_address,
            "127.0.0.1:4433".parse().unwrap()
        );
        assert_eq!(s.http_bind_address, "127.0.0.1:8080".parse().unwrap());
        assert!(s.gc_registration_url.is_none());
        assert_eq!(s.capacity, 100);
        assert_eq!(s.actor_mailbox_size, 1000);
        assert_eq!(s.shards, 2);
    }

    #[test]
    fn dev_keeps_an_explicit_bind_address() {
        let s = settings(&["--dev", "--http-bind-address", "0.0.0.0:9000"]).unwrap();
        assert_eq!(s.http_bind_address, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn production_requires_region_and_gc_url() {
        let e =
            settings(&["--gc-registration-url", "http://gc:8080/api/v1/mc/register"]).unwrap_err();
        assert_eq!((e.flag, e.env), ("--region", "MC_REGION"));
        let e = settings(&["--region", "us-west-2"]).unwrap_err();
        assert_eq!(e.env, "GC_REGISTRATION_URL");
        let s = settings(&[
            "--region",
            "us-west-2",
            "--gc-registration-url",
            "http://gc:8080/api/v1/mc/register",
        ])
        .unwrap();
        assert_eq!(s.webtransport_bind_address, "0.0.0.0:4433".parse().unwrap());
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["not a url", "https://gc/register", "ftp://x/y"] {
            let e = settings(&["--dev", "--gc-registration-url", url]).unwrap_err();
            assert_eq!(e.env, "GC_REGISTRATION_URL", "{url}");
        }
    }

    #[test]
    fn too_many_shards_are_refused() {
        let e = settings(&["--dev", "--shards", "3"]).unwrap_err();
        assert_eq!(e.env, "MC_SHARDS");
        assert!(e.to_string().contains("only 2 CPUs"), "{e}");
    }

    #[test]
    fn mc_id_is_checked_and_derived() {
        assert!(settings(&["--dev", "--mc-id", "bad id!"]).is_err());
        assert_eq!(
            default_mc_id(Some("meeting-controller-7d9f-abc12")),
            "mc-meeting-controller-7d9f-abc12"
        );
        assert_eq!(default_mc_id(Some("a.b")), "mc-a-b");
    }

    #[test]
    fn zero_deadlines_are_refused_naming_the_env_var() {
        let q = quic(&["--dev"]);
        assert_eq!(q.handshake_timeout_ms, 10_000);
        assert_eq!(q.validate(), Ok(()));
        for (flag, env) in [
            ("--handshake-timeout-ms", "MC_HANDSHAKE_TIMEOUT_MS"),
            ("--connect-timeout-ms", "MC_CONNECT_TIMEOUT_MS"),
            ("--join-timeout-ms", "MC_JOIN_TIMEOUT_MS"),
        ] {
            let e = quic(&["--dev", flag, "0"]).validate().unwrap_err();
            assert!(
                e.contains(env) && e.contains("must be positive"),
                "{flag}: {e}"
            );
        }
    }

    /// The QUIC layer's durations become deadlines on the shards: each is bounded, so a
    /// huge value stops the process instead of overflowing one there.
    #[test]
    fn huge_quic_durations_are_refused_naming_the_env_var() {
        for (flag, env, max) in [
            (
                "--idle-timeout-secs",
                "MC_IDLE_TIMEOUT_SECS",
                crate::quic::MAX_SECS,
            ),
            (
                "--keep-alive-secs",
                "MC_KEEP_ALIVE_SECS",
                crate::quic::MAX_SECS,
            ),
            (
                "--handshake-timeout-ms",
                "MC_HANDSHAKE_TIMEOUT_MS",
                crate::quic::MAX_TIMEOUT_MS,
            ),
            (
                "--connect-timeout-ms",
                "MC_CONNECT_TIMEOUT_MS",
                crate::quic::MAX_TIMEOUT_MS,
            ),
            (
                "--join-timeout-ms",
                "MC_JOIN_TIMEOUT_MS",
                crate::quic::MAX_TIMEOUT_MS,
            ),
            (
                "--rx-coalesce-us",
                "MC_RX_COALESCE_US",
                crate::quic::MAX_PAUSE_US,
            ),
            ("--rx-batch-us", "MC_RX_BATCH_US", crate::quic::MAX_PAUSE_US),
        ] {
            let largest = max.to_string();
            assert_eq!(
                quic(&["--dev", flag, &largest]).validate(),
                Ok(()),
                "{flag}"
            );
            for huge in [(max + 1).to_string(), u64::MAX.to_string()] {
                let e = quic(&["--dev", flag, &huge]).validate().unwrap_err();
                assert!(e.contains(flag) && e.contains(env), "{flag}: {e}");
            }
        }
    }

    /// The QUIC flags parsed from `args`, which must parse.
    fn quic(args: &[&str]) -> crate::quic::QuicArgs {
        let m = Cli::command()
            .try_get_matches_from(std::iter::once("mc-service").chain(args.iter().copied()))
            .expect("parses");
        Cli::from_arg_matches(&m).unwrap().config.quic
    }

    /// The one line [`exit_on_clap_error`] prints for `args`, which must be refused.
    fn usage_error(args: &[&str]) -> String {
        let mut cmd = Cli::command();
        let e = cmd
            .try_get_matches_from_mut(std::iter::once("mc-service").chain(args.iter().copied()))
            .unwrap_err();
        clap_error_line(&cmd, &e)
    }

    #[test]
    fn durations_and_limits_out_of_range_are_refused_naming_flag_and_env() {
        const U64_MAX: &str = "18446744073709551615";
        // (flag, variable, largest value allowed, values refused)
        let cases: [(&str, &str, &str, &[&str]); 8] = [
            (
                "--gc-heartbeat-interval-secs",
                "GC_HEARTBEAT_INTERVAL_SECS",
                "3600",
                &["0", "3601", U64_MAX],
            ),
            (
                "--drain-timeout-secs",
                "MC_DRAIN_TIMEOUT_SECS",
                "86400",
                &["86401", U64_MAX],
            ),
            (
                "--admin-header-timeout-ms",
                "MC_ADMIN_HEADER_TIMEOUT_MS",
                "3600000",
                &["0", "3600001", U64_MAX],
            ),
            (
                "--admin-idle-timeout-secs",
                "MC_ADMIN_IDLE_TIMEOUT_SECS",
                "86400",
                &["0", "86401", U64_MAX],
            ),
            (
                "--gc-request-timeout-secs",
                "GC_REQUEST_TIMEOUT_SECS",
                "3600",
                &["0", "3601", U64_MAX],
            ),
            (
                "--disconnect-grace-secs",
                "MC_DISCONNECT_GRACE_SECS",
                "86400",
                &["86401", U64_MAX],
            ),
            (
                "--max-participants-per-meeting",
                "MC_MAX_PARTICIPANTS_PER_MEETING",
                "10000",
                &["0", "10001", U64_MAX],
            ),
            (
                "--max-handover-bytes",
                "MC_MAX_HANDOVER_BYTES",
                "67108864",
                &["0", "65535", "67108865", U64_MAX],
            ),
        ];
        for (flag, env, max, refused) in cases {
            for bad in refused {
                let line = usage_error(&["--dev", flag, bad]);
                assert!(
                    line.starts_with("error: ")
                        && line.contains(flag)
                        && line.contains(&format!("(environment variable {env})"))
                        && line.contains(&format!("to {max}"))
                        && !line.contains('\n'),
                    "{flag} {bad}: {line}"
                );
            }
            let m = Cli::command()
                .try_get_matches_from(["mc-service", "--dev", flag, max])
                .unwrap_or_else(|e| panic!("{flag} {max}: {e}"));
            let config = Cli::from_arg_matches(&m).unwrap().config;
            let settings = config.validate(&m, 2).unwrap();
            let meeting = config
                .meeting
                .meeting_config(&crate::signaling::session::SessionConfig::default())
                .unwrap();
            let (duration, want) = match flag {
                "--gc-heartbeat-interval-secs" => (settings.gc_heartbeat_interval, 3600),
                "--drain-timeout-secs" => (settings.drain_timeout, 86_400),
                "--admin-header-timeout-ms" => (settings.admin.header_timeout, 3600),
                "--admin-idle-timeout-secs" => (settings.admin.idle_timeout, 86_400),
                "--gc-request-timeout-secs" => (config.gc.request_timeout(), 3600),
                "--disconnect-grace-secs" => (meeting.grace, 86_400),
                "--max-handover-bytes" => {
                    assert_eq!(meeting.max_handover_bytes, 64 << 20);
                    continue;
                }
                _ => {
                    assert_eq!(meeting.max_participants, 10_000);
                    continue;
                }
            };
            assert_eq!(duration, Duration::from_secs(want), "{flag}");
            // A deadline that far ahead is an ordinary instant.
            assert!(std::time::Instant::now().checked_add(duration).is_some());
        }
        // The exact line, as the operator sees it.
        assert_eq!(
            usage_error(&["--dev", "--drain-timeout-secs", U64_MAX]),
            format!(
                "error: invalid value '{U64_MAX}' for '--drain-timeout-secs \
                 <DRAIN_TIMEOUT_SECS>': must be 0 to 86400 (environment variable \
                 MC_DRAIN_TIMEOUT_SECS)"
            )
        );
        // The smallest values still allowed.
        let s = settings(&["--dev", "--drain-timeout-secs", "0"]).unwrap();
        assert_eq!(s.drain_timeout, Duration::ZERO);
    }

    #[test]
    fn zero_values_are_usage_errors_naming_the_env_var() {
        let mut cmd = Cli::command();
        for (flag, env) in [
            ("--capacity", "MC_CAPACITY"),
            ("--actor-mailbox-size", "ACTOR_MAILBOX_SIZE"),
            ("--shards", "MC_SHARDS"),
            ("--meeting-broadcast-rate", "MC_MEETING_BROADCAST_RATE"),
            ("--meeting-broadcast-burst", "MC_MEETING_BROADCAST_BURST"),
        ] {
            let e = cmd
                .try_get_matches_from_mut(["mc-service", "--dev", flag, "0"])
                .unwrap_err();
            let arg = match e.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(s)) => s.clone(),
                other => panic!("no arg context: {other:?}"),
            };
            assert_eq!(env_of(&cmd, &arg).as_deref(), Some(env));
        }
    }
}

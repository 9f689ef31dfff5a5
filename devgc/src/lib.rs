//! `mc-devgc`: a development Global Controller implementing docs/gc-api.md, for local runs
//! and the integration tests. In memory by default; PostgreSQL when `--database-url` /
//! `DATABASE_URL` is given (the runbook's SQL then works verbatim). A crate of its own so
//! it builds with only what it needs: std threads, httparse, serde and postgres.
//!
//! - [`api`]: the routes (docs/gc-api.md, operator status, fault injection).
//! - [`migrate`]: choosing a target MC per meeting for a draining MC.
//! - [`server`]: HTTP/1.1 over std threads (a dev tool, not the service).
//! - [`store`]: the rows, in memory; [`pg`]: the rows in PostgreSQL.
//!
//! On start it prints `mc-devgc listening on <addr>` to stdout (tests read the port).
//! `devgc/scripts/pg-start.sh` starts a throwaway PostgreSQL for it and its tests.

pub mod api;
pub mod migrate;
pub mod pg;
pub mod server;
pub mod store;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use store::{MemoryStore, Store};

/// Development Global Controller for mc-service (docs/gc-api.md).
#[derive(Debug, Parser)]
#[command(name = "mc-devgc", version)]
pub struct DevGcArgs {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, env = "MC_DEVGC_BIND", default_value = "127.0.0.1:8090")]
    pub bind: SocketAddr,

    /// PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:54329/mc); in memory if unset.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// `heartbeat_interval_secs` returned on registration (0: omit it, the MC's own wins).
    #[arg(long, env = "MC_DEVGC_HEARTBEAT_INTERVAL_SECS", default_value = "10")]
    pub heartbeat_interval_secs: u64,

    /// Rows with status `active` and no heartbeat for this long become `unhealthy`; only
    /// MCs heard from within this bound are migration targets.
    #[arg(long, env = "MC_DEVGC_UNHEALTHY_AFTER_SECS", default_value = "30")]
    pub unhealthy_after_secs: u64,

    /// Fault: answer the first N MC requests (register/heartbeat/deregister) with 500.
    #[arg(long, env = "MC_DEVGC_FAIL_FIRST", default_value = "0")]
    pub fail_first: u64,

    /// Fault: delay every MC request by this many milliseconds.
    #[arg(long, env = "MC_DEVGC_DELAY_MS", default_value = "0")]
    pub delay_ms: u64,

    /// Fault: answer every MC request with this status (e.g. 500 or 404).
    #[arg(long, env = "MC_DEVGC_STATUS_OVERRIDE", value_parser = clap::value_parser!(u16).range(100..600))]
    pub status_override: Option<u16>,

    /// Concurrent connections served; more are answered 503.
    #[arg(long, env = "MC_DEVGC_MAX_CONNECTIONS", default_value = "64")]
    pub max_connections: usize,
}

/// Faults to inject, changeable at runtime through `POST /admin/faults`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub fail_first: u64,
    pub delay_ms: u64,
    pub status_override: Option<u16>,
}

impl Faults {
    pub fn to_json(&self) -> serde_json::Value {
        json!({"fail_first": self.fail_first, "delay_ms": self.delay_ms,
               "status_override": self.status_override})
    }
}

/// Everything the request threads share.
pub struct State {
    store: Mutex<Box<dyn Store>>,
    faults: Mutex<Faults>,
    pub heartbeat_interval_secs: Option<u64>,
    /// A migration target must have sent a heartbeat within this bound.
    pub target_fresh_for: Duration,
}

impl State {
    pub fn new(
        store: Box<dyn Store>,
        faults: Faults,
        heartbeat_interval_secs: Option<u64>,
        target_fresh_for: Duration,
    ) -> Self {
        Self {
            store: Mutex::new(store),
            faults: Mutex::new(faults),
            heartbeat_interval_secs,
            target_fresh_for,
        }
    }

    /// The store; a panic in another request thread does not poison the dev GC.
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One log line on stderr, timestamped.
pub fn log(line: &str) {
    eprintln!("{} mc-devgc {line}", store::rfc3339(SystemTime::now()));
}

/// Parse the command line and serve forever.
pub fn main() -> anyhow::Result<()> {
    run(DevGcArgs::parse())
}

pub fn run(args: DevGcArgs) -> anyhow::Result<()> {
    let (store, kind): (Box<dyn Store>, &str) = match &args.database_url {
        Some(url) => (
            Box::new(pg::PgStore::connect(url).map_err(|e| anyhow::anyhow!("{e}"))?),
            "postgres",
        ),
        None => (Box::new(MemoryStore::default()), "memory"),
    };
    let faults = Faults {
        fail_first: args.fail_first,
        delay_ms: args.delay_ms,
        status_override: args.status_override,
    };
    let interval = (args.heartbeat_interval_secs > 0).then_some(args.heartbeat_interval_secs);
    let after = Duration::from_secs(args.unhealthy_after_secs);
    let state = Arc::new(State::new(store, faults, interval, after));
    let listener = TcpListener::bind(args.bind).with_context(|| format!("bind {}", args.bind))?;
    let addr = listener.local_addr()?;
    println!("mc-devgc listening on {addr} (store: {kind})");
    std::io::stdout().flush()?;
    log(&format!(
        "listening on {addr}, store {kind}, faults {}",
        state.faults().to_json()
    ));

    let sweeper = state.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1).min(after.max(Duration::from_millis(100))));
        let result = sweeper.store().mark_unhealthy(after);
        match result {
            Ok(ids) if !ids.is_empty() => log(&format!(
                "marked unhealthy (no heartbeat for {}s): {}",
                after.as_secs(),
                ids.join(", ")
            )),
            Ok(_) => {}
            Err(e) => log(&format!("unhealthy sweep failed: {e}")),
        }
    });
    server::serve(listener, state, args.max_connections.max(1));
    Ok(())
}

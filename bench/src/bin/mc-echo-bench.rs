//! mc-echo-bench: WebTransport echo round trips per second and session establishments
//! per second against any `/echo` endpoint (mc-service `--enable-echo`).
//!
//! ```text
//! mc-echo-bench --url https://127.0.0.1:4433/echo --cert-hash $(cat .mc-dev/cert.sha256)
//! ```
//!
//! Each run measures (1) round trips: `--connections` sessions each keep one bidi
//! stream and echo `--payload` bytes back and forth for `--duration-secs`; and (2)
//! establishments: `--sessions` sessions connected (then closed) with `--concurrency`
//! in flight. The summary reports the median of `--runs` runs with min and max, plus
//! round-trip latency percentiles; `--json` prints one JSON object instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint, VarInt};

#[derive(Parser, Debug, Clone)]
#[command(about = "WebTransport echo benchmark: round trips/s and sessions/s (median of runs)")]
struct Args {
    /// The echo endpoint, e.g. https://127.0.0.1:4433/echo
    #[arg(long, env = "MC_BENCH_URL")]
    url: String,
    /// Hex SHA-256 of the server certificate (the dev cert's cert.sha256).
    #[arg(long, env = "MC_CERT_SHA256")]
    cert_hash: Option<String>,
    /// Skip certificate validation instead (benchmarks on loopback only).
    #[arg(long, env = "MC_BENCH_INSECURE", default_value_t = false)]
    insecure: bool,
    /// Concurrent echo sessions in the round-trip phase.
    #[arg(long, env = "MC_BENCH_CONNECTIONS", default_value_t = 16)]
    connections: usize,
    /// Bytes per echo round trip.
    #[arg(long, env = "MC_BENCH_PAYLOAD", default_value_t = 64)]
    payload: usize,
    /// Length of each round-trip phase.
    #[arg(long, env = "MC_BENCH_DURATION_SECS", default_value_t = 5)]
    duration_secs: u64,
    /// Sessions established per establishment phase.
    #[arg(long, env = "MC_BENCH_SESSIONS", default_value_t = 500)]
    sessions: usize,
    /// Establishments in flight at once.
    #[arg(long, env = "MC_BENCH_CONCURRENCY", default_value_t = 32)]
    concurrency: usize,
    /// Runs; the summary is their median.
    #[arg(long, env = "MC_BENCH_RUNS", default_value_t = 5)]
    runs: usize,
    /// Client UDP sockets (distinct 4-tuples spread load over the server's shards).
    #[arg(long, env = "MC_BENCH_SOCKETS", default_value_t = 8)]
    sockets: usize,
    /// Print one JSON object instead of the human summary.
    #[arg(long, default_value_t = false)]
    json: bool,
}

fn client(args: &Args) -> Result<Endpoint<Client>> {
    let builder = ClientConfig::builder().with_bind_default();
    let config = match (&args.cert_hash, args.insecure) {
        (Some(hex), _) => {
            let bytes = decode_hex(hex.trim()).context("--cert-hash is not 64 hex digits")?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("--cert-hash must be 32 bytes"))?;
            builder
                .with_server_certificate_hashes([Sha256Digest::new(digest)])
                .build()
        }
        (None, true) => builder.with_no_cert_validation().build(),
        (None, false) => bail!("give --cert-hash (or --insecure on loopback)"),
    };
    Ok(Endpoint::client(config)?)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

struct RoundTrips {
    per_sec: f64,
    latency: Histogram<u64>,
}

async fn round_trips(args: &Args, clients: &[Arc<Endpoint<Client>>]) -> Result<RoundTrips> {
    let mut conns = Vec::new();
    for i in 0..args.connections {
        let c = clients[i % clients.len()].connect(&args.url).await?;
        conns.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in conns {
        let payload = vec![0x5au8; args.payload];
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let (mut send, mut recv) = conn.open_bi().await?.await?;
            let mut buf = vec![0u8; payload.len()];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                send.write_all(&payload).await?;
                let mut got = 0;
                while got < buf.len() {
                    match recv.read(&mut buf[got..]).await? {
                        Some(k) => got += k,
                        None => bail!("echo stream ended early"),
                    }
                }
                hist.record(t.elapsed().as_micros() as u64)?;
                n += 1;
            }
            conn.close(VarInt::from_u32(0), b"");
            Ok::<_, anyhow::Error>((n, hist))
        }));
    }
    let mut total = 0;
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        latency.add(&h)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(RoundTrips {
        per_sec: total as f64 / secs,
        latency,
    })
}

async fn establishments(args: &Args, clients: &[Arc<Endpoint<Client>>]) -> Result<f64> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let client = clients[w % clients.len()].clone();
        let url = args.url.clone();
        let next = next.clone();
        let total = args.sessions;
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let conn = client.connect(&url).await?;
                conn.close(VarInt::from_u32(0), b"");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(args.sessions as f64 / started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (
        mid,
        v.first().copied().unwrap_or(0.0),
        v.last().copied().unwrap_or(0.0),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients: Vec<_> = (0..args.sockets.max(1))
        .map(|_| client(&args).map(Arc::new))
        .collect::<Result<_>>()?;
    let mut rtt_runs = Vec::new();
    let mut est_runs = Vec::new();
    let mut latency = Histogram::<u64>::new(3)?;
    for run in 0..args.runs.max(1) {
        let rt = round_trips(&args, &clients).await?;
        let est = establishments(&args, &clients).await?;
        if !args.json {
            eprintln!(
                "run {}: {:.0} round trips/s, {:.0} sessions/s",
                run + 1,
                rt.per_sec,
                est
            );
        }
        latency.add(&rt.latency)?;
        rtt_runs.push(rt.per_sec);
        est_runs.push(est);
    }
    let (rt_med, rt_min, rt_max) = median(rtt_runs);
    let (es_med, es_min, es_max) = median(est_runs);
    let p = |q: f64| latency.value_at_quantile(q);
    if args.json {
        let out = serde_json::json!({
            "url": args.url,
            "runs": args.runs,
            "connections": args.connections,
            "payload_bytes": args.payload,
            "round_trips_per_sec": {"median": rt_med, "min": rt_min, "max": rt_max},
            "sessions_per_sec": {"median": es_med, "min": es_min, "max": es_max},
            "round_trip_us": {"p50": p(0.5), "p99": p(0.99), "max": latency.max()},
        });
        println!("{out}");
    } else {
        println!(
            "echo round trips/s: median {rt_med:.0} (min {rt_min:.0}, max {rt_max:.0}) over {} runs, {} sessions, {} B",
            args.runs, args.connections, args.payload
        );
        println!(
            "round trip latency: p50 {} us, p99 {} us, max {} us",
            p(0.5),
            p(0.99),
            latency.max()
        );
        println!(
            "session establishments/s: median {es_med:.0} (min {es_min:.0}, max {es_max:.0}), {} sessions at concurrency {}",
            args.sessions, args.concurrency
        );
    }
    for c in &clients {
        c.wait_idle().await;
    }
    Ok(())
}

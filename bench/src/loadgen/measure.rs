//! The measured window of a run and what was spent in it.
//!
//! A scenario takes a [`Mark`] when its measured phase starts (after `--warmup`) and one
//! when it ends; [`Window::between`] turns the two into: operations done (the scenario's
//! main counter: round trips, session setups, delivered notifications), this process's
//! CPU (getrusage, every thread), and the server's CPU — from `/proc/<pid>/stat` with
//! `--server-pid` (same host), and from `process_cpu_seconds_total` scraped from
//! `--server-metrics URL` — divided per operation. Server histograms named by
//! `--server-histogram` (default `mc_fanout_duration_seconds`) are read from the same
//! scrapes, and their quantiles computed over the window (bucket differences).
//!
//! The generator's own CPU tells whether the generator, rather than the server, limited
//! the run: close to all of its threads busy means it may have been the bottleneck. The
//! time the generator's (and the server's) threads waited in the run queue
//! (`/proc/<pid>/task/*/schedstat`) tells whether other processes took their CPU.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stats::{Counter, Stats, ALL_COUNTERS};
use super::udp::UdpTotals;

/// Share of the generator's usable threads above which it may be the bottleneck.
pub const SATURATION: f64 = 0.9;
/// Share of the window the generator may wait for a CPU before the run counts as
/// contended (other processes on its CPU).
pub const CONTENDED: f64 = 0.1;
/// Steal time of the server's CPUs, percent of the window, from which the table warns.
pub const STOLEN_PCT: f64 = 5.0;
/// Shards are unevenly loaded when the idlest used less than this share of the busiest's
/// CPU, the busiest at least `UNEVEN_BUSIEST_CORES`.
pub const UNEVEN_SHARE: f64 = 0.25;
pub const UNEVEN_BUSIEST_CORES: f64 = 0.05;

/// mc-service's per-shard CPU counter (`mode` user / system, `shard`).
const SHARD_CPU: &str = "mc_shard_cpu_seconds_total";

/// Flags of the measured window (global, every scenario).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MeasureArgs {
    /// Seconds of load before the measured phase starts (latencies, rates and CPU
    /// figures leave them out; correctness checks and error counts do not).
    #[arg(long, global = true, env = "LOADGEN_WARMUP", default_value_t = 0.0)]
    pub warmup: f64,
    /// Scrape this Prometheus endpoint (http://host:port/metrics) at the start and end of
    /// the measured phase: server CPU from process_cpu_seconds_total, and the
    /// --server-histogram quantiles. Default: none.
    #[arg(long, global = true, env = "LOADGEN_SERVER_METRICS")]
    pub server_metrics: Option<String>,
    /// Read the server's CPU (utime + stime) from /proc/<PID>/stat at the start and end of
    /// the measured phase (the server must run on this host). Default: none.
    #[arg(long, global = true, env = "LOADGEN_SERVER_PID")]
    pub server_pid: Option<u32>,
    /// Server histogram(s) whose quantiles over the measured phase are reported (needs
    /// --server-metrics; absent histograms are reported as n/a).
    #[arg(
        long,
        global = true,
        env = "LOADGEN_SERVER_HISTOGRAM",
        value_delimiter = ',',
        default_value = "mc_fanout_duration_seconds"
    )]
    pub server_histogram: Vec<String>,
    /// Server counters whose increase over the measured phase is reported, one figure
    /// per series (needs --server-metrics; absent ones are left out). The default is the
    /// shard's receive path: datagrams and socket calls each way, and the epochs its
    /// receive-pause trial ran pausing or reading at once; and each shard's CPU, user and
    /// system.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_SERVER_COUNTER",
        value_delimiter = ',',
        default_value = "mc_udp_datagrams_total,mc_udp_syscalls_total,mc_rx_batch_epochs_total,mc_shard_cpu_seconds_total"
    )]
    pub server_counter: Vec<String>,
}

impl MeasureArgs {
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.clamp(0.0, 3600.0))
    }
}

/// One scrape of a Prometheus text exposition, reduced to what the window needs.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Sum of every `process_cpu_seconds_total` sample (None when absent).
    pub cpu_s: Option<f64>,
    /// Per histogram name: cumulative bucket counts by upper bound (summed over labels),
    /// count and sum.
    pub histograms: BTreeMap<String, HistogramScrape>,
    /// The named counters' series (`name{labels}` as exposed) and their values.
    pub counters: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramScrape {
    /// (upper bound, cumulative count), sorted by bound; the last is +Inf.
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

/// The state of the world at one instant of the run.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Instant,
    pub counters: Vec<u64>,
    /// This process's CPU seconds (user + system, every thread).
    pub self_cpu_s: Option<f64>,
    /// The server process's CPU seconds from /proc/<pid>/stat.
    pub pid_cpu_s: Option<f64>,
    /// The part of `pid_cpu_s` spent in user space (utime).
    pub pid_user_s: Option<f64>,
    /// Run-queue wait of this process's threads, seconds.
    pub self_wait_s: Option<f64>,
    /// Run-queue wait of the server's threads, seconds.
    pub pid_wait_s: Option<f64>,
    /// Steal time of the CPUs this process may run on.
    pub self_steal: Option<Steal>,
    /// Steal time of the CPUs the server may run on.
    pub pid_steal: Option<Steal>,
    /// The server's /metrics, or why it could not be read.
    pub scrape: Option<Result<Scrape, String>>,
    /// UDP datagrams of the generator's QUIC connections so far (scenarios that
    /// register their connections: echo, meeting).
    pub udp: Option<UdpTotals>,
}

impl Mark {
    /// Takes a mark now: counters, own CPU, and the server's CPU as configured.
    pub async fn take(stats: &Stats, args: &MeasureArgs) -> Mark {
        // The scrape goes first: it is the slowest (a loopback HTTP round trip), and the
        // instant and the counters should be as close as possible to the CPU readings.
        let scrape = match &args.server_metrics {
            Some(url) => Some(
                scrape(url, &args.server_histogram, &args.server_counter)
                    .await
                    .map_err(|e| format!("{e:#}")),
            ),
            None => None,
        };
        // One read of /proc/<pid>/stat gives both, so the user-space part and the
        // whole are of the same instant.
        let pid_cpu = args.server_pid.and_then(pid_cpu_split_s);
        Mark {
            at: Instant::now(),
            counters: ALL_COUNTERS.iter().map(|c| stats.get(*c)).collect(),
            self_cpu_s: self_cpu_s(),
            pid_cpu_s: pid_cpu.map(|(user, system)| user + system),
            pid_user_s: pid_cpu.map(|(user, _)| user),
            self_wait_s: runq_wait_s("self"),
            pid_wait_s: args.server_pid.and_then(|p| runq_wait_s(&p.to_string())),
            self_steal: steal(0),
            pid_steal: args.server_pid.and_then(|p| steal(p as libc::pid_t)),
            scrape,
            udp: stats.udp.totals(),
        }
    }

    /// The mark that opens the measured window, announced on stderr ("measured window
    /// opens: …") so that a tool watching the run (a profiler started by
    /// `bench/compare.sh --perf`) can cover the window and nothing before it.
    pub async fn open(stats: &Stats, args: &MeasureArgs, duration: Duration) -> Mark {
        let mark = Self::take(stats, args).await;
        eprintln!(
            "measured window opens: {:.1} s from now",
            duration.as_secs_f64()
        );
        mark
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c as usize).copied().unwrap_or(0)
    }
}

/// A counter's increase as the report prints it: a count as a whole number, seconds
/// (a float counter) to the microsecond, without the float error of the subtraction.
fn increase(d: f64) -> String {
    if d.fract() == 0.0 {
        format!("{d}")
    } else {
        let s = format!("{d:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// CPU of one of the server's shards over the window, user and system together, from
/// the increase of its `mc_shard_cpu_seconds_total` series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShardCpu {
    pub shard: String,
    pub cpu_s: f64,
    pub cores: f64,
}

/// Each shard's CPU from the counter increases, in shard order (numeric where the
/// labels are numbers).
fn shard_cpu(counters: &BTreeMap<String, f64>, secs: f64) -> Vec<ShardCpu> {
    let mut by_shard: BTreeMap<(u64, String), f64> = BTreeMap::new();
    for (series, d) in counters {
        let Some(shard) = series
            .strip_prefix(SHARD_CPU)
            .and_then(|l| l.strip_prefix('{'))
            .and_then(|l| label(l, "shard"))
            .map(str::to_string)
        else {
            continue;
        };
        let order = shard.parse().unwrap_or(u64::MAX);
        *by_shard.entry((order, shard)).or_default() += d;
    }
    by_shard
        .into_iter()
        .map(|((_, shard), cpu_s)| ShardCpu {
            shard,
            cpu_s,
            cores: cpu_s / secs,
        })
        .collect()
}

/// Whether the load missed some shards: two or more, the busiest doing real work and
/// the idlest less than `UNEVEN_SHARE` of it.
fn uneven(shards: &[ShardCpu]) -> bool {
    let busiest = shards.iter().map(|s| s.cores).fold(0.0, f64::max);
    let idlest = shards.iter().map(|s| s.cores).fold(f64::INFINITY, f64::min);
    shards.len() >= 2 && busiest >= UNEVEN_BUSIEST_CORES && idlest < UNEVEN_SHARE * busiest
}

/// CPU of one server over the window, from one source.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerCpu {
    /// `pid 1234` or the metrics URL.
    pub source: String,
    pub cpu_s: f64,
    /// CPU seconds per wall second.
    pub cores: f64,
    /// Server CPU microseconds per operation.
    pub us_per_op: f64,
    /// The part of `us_per_op` spent in user space (utime; `pid` source only): the
    /// server's own code, apart from the kernel's network path, which moves with the
    /// host more than the server does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_us_per_op: Option<f64>,
    /// Seconds its threads waited for a CPU (run queue; `pid` source only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runq_wait_s: Option<f64>,
    /// Seconds the host (a hypervisor) kept the CPUs the server may run on from running
    /// at all: their steal time (`pid` source only). A server stopped that way is slower
    /// than the machine it runs on, and its latencies include the stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal_s: Option<f64>,
    /// `steal_s` as a share of those CPUs' time over the window, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal_pct: Option<f64>,
}

/// Quantiles of a server histogram over the window (seconds).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerQuantiles {
    pub count: f64,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p99_s: f64,
}

/// The generator's own CPU over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GeneratorCpu {
    pub cpu_s: f64,
    pub cores: f64,
    /// Tokio worker threads.
    pub threads: usize,
    /// CPUs this process may run on (affinity, cgroup quota).
    pub cpus_allowed: usize,
    /// cores ≥ 90 % of min(threads, cpus_allowed): the generator may be the bottleneck.
    pub saturated: bool,
    /// Seconds its threads waited for a CPU (run queue).
    pub runq_wait_s: Option<f64>,
    /// Waited ≥ 10 % of the window: other processes shared the generator's CPU.
    pub contended: bool,
    /// Steal time of the CPUs the generator may run on, seconds (see [`ServerCpu`]).
    pub steal_s: Option<f64>,
    /// `steal_s` as a share of those CPUs' time over the window, percent.
    pub steal_pct: Option<f64>,
}

/// UDP datagrams per operation over the window, counted by the generator's QUIC stack:
/// what the server received (`to_server`) and sent (`from_server`), whatever it is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UdpPerOp {
    pub to_server: u64,
    pub from_server: u64,
    pub to_server_per_op: f64,
    pub from_server_per_op: f64,
}

impl UdpPerOp {
    fn between(a: Option<UdpTotals>, b: Option<UdpTotals>, ops: u64) -> Option<UdpPerOp> {
        let (a, b) = (a.unwrap_or_default(), b?);
        if ops == 0 {
            return None;
        }
        let to_server = b.sent.saturating_sub(a.sent);
        let from_server = b.received.saturating_sub(a.received);
        Some(UdpPerOp {
            to_server,
            from_server,
            to_server_per_op: to_server as f64 / ops as f64,
            from_server_per_op: from_server as f64 / ops as f64,
        })
    }
}

/// What the measured window contains.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    pub duration_s: f64,
    /// What one operation is: "round trip", "session setup", "delivered notification".
    pub operation: String,
    pub ops: u64,
    pub ops_per_s: f64,
    pub generator: Option<GeneratorCpu>,
    pub server: Vec<ServerCpu>,
    /// Server histograms by name; None when the server does not export it.
    pub server_histograms: BTreeMap<String, Option<ServerQuantiles>>,
    /// Increase of each server counter series named by --server-counter (`name{labels}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_counters: BTreeMap<String, f64>,
    /// Each shard's CPU (from `mc_shard_cpu_seconds_total` among the counters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_shards: Vec<ShardCpu>,
    /// The shards were unevenly loaded (`UNEVEN_SHARE`): the load reached only part of
    /// the server.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uneven_shards: bool,
    /// UDP datagrams per operation, each way (None when the scenario does not count
    /// them, or no operation completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpPerOp>,
    /// Why a configured server figure is missing (scrape failed, no such process, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Window {
    /// The window between two marks; `op` counts operations named `operation`.
    pub fn between(
        start: &Mark,
        end: &Mark,
        op: Counter,
        operation: &str,
        threads: usize,
        args: &MeasureArgs,
    ) -> Window {
        let secs = end
            .at
            .saturating_duration_since(start.at)
            .as_secs_f64()
            .max(1e-6);
        let ops = end.counter(op).saturating_sub(start.counter(op));
        let per_op = |cpu_s: f64| {
            if ops > 0 {
                cpu_s * 1e6 / ops as f64
            } else {
                0.0
            }
        };
        let cpus_allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
        let generator = match (start.self_cpu_s, end.self_cpu_s) {
            (Some(a), Some(b)) => {
                let cores = (b - a).max(0.0) / secs;
                let usable = threads.min(cpus_allowed).max(1) as f64;
                let wait = delta(start.self_wait_s, end.self_wait_s);
                let (steal_s, steal_pct) = Steal::between(start.self_steal, end.self_steal, secs);
                Some(GeneratorCpu {
                    cpu_s: (b - a).max(0.0),
                    cores,
                    threads,
                    cpus_allowed,
                    saturated: cores >= SATURATION * usable,
                    runq_wait_s: wait,
                    contended: wait.is_some_and(|w| w >= CONTENDED * secs),
                    steal_s,
                    steal_pct,
                })
            }
            _ => None,
        };
        let mut notes = Vec::new();
        let mut server = Vec::new();
        if let Some(pid) = args.server_pid {
            match (start.pid_cpu_s, end.pid_cpu_s) {
                (Some(a), Some(b)) => {
                    let (steal_s, steal_pct) = Steal::between(start.pid_steal, end.pid_steal, secs);
                    server.push(ServerCpu {
                        source: format!("pid {pid}"),
                        cpu_s: (b - a).max(0.0),
                        cores: (b - a).max(0.0) / secs,
                        us_per_op: per_op((b - a).max(0.0)),
                        user_us_per_op: delta(start.pid_user_s, end.pid_user_s).map(per_op),
                        runq_wait_s: delta(start.pid_wait_s, end.pid_wait_s),
                        steal_s,
                        steal_pct,
                    })
                }
                _ => notes.push(format!("cannot read /proc/{pid}/stat")),
            }
        }
        let mut server_histograms = BTreeMap::new();
        let mut server_counters = BTreeMap::new();
        if let Some(url) = &args.server_metrics {
            match (&start.scrape, &end.scrape) {
                (Some(Ok(a)), Some(Ok(b))) => {
                    match (a.cpu_s, b.cpu_s) {
                        (Some(x), Some(y)) => {
                            server.push(ServerCpu {
                                source: url.clone(),
                                cpu_s: (y - x).max(0.0),
                                cores: (y - x).max(0.0) / secs,
                                us_per_op: per_op((y - x).max(0.0)),
                                user_us_per_op: None,
                                runq_wait_s: None,
                                steal_s: None,
                                steal_pct: None,
                            });
                            // A counter in whole seconds (the prometheus crate's own
                            // process collector; mc-service exports microseconds) is a
                            // coarse figure over a short window.
                            if x.fract() == 0.0 && y.fract() == 0.0 {
                                notes.push(format!(
                                    "process_cpu_seconds_total at {url} counts whole seconds \
                                     (±1 s over {secs:.1} s); --server-pid reads /proc in clock ticks"
                                ));
                            }
                        }
                        _ => notes.push(format!("{url} has no process_cpu_seconds_total")),
                    }
                    for name in &args.server_histogram {
                        let q = match (a.histograms.get(name), b.histograms.get(name)) {
                            (Some(x), Some(y)) => quantiles_between(x, y),
                            _ => None,
                        };
                        server_histograms.insert(name.clone(), q);
                    }
                    for (series, y) in &b.counters {
                        let x = a.counters.get(series).copied().unwrap_or(0.0);
                        server_counters.insert(series.clone(), (y - x).max(0.0));
                    }
                }
                (Some(Err(e)), _) | (_, Some(Err(e))) => notes.push(format!("scraping {url}: {e}")),
                _ => {}
            }
        }
        let server_shards = shard_cpu(&server_counters, secs);
        Window {
            duration_s: secs,
            operation: operation.into(),
            ops,
            ops_per_s: ops as f64 / secs,
            generator,
            server,
            server_histograms,
            uneven_shards: uneven(&server_shards),
            server_shards,
            server_counters,
            udp: UdpPerOp::between(start.udp, end.udp, ops),
            notes,
        }
    }

    /// The table lines of the window.
    pub fn table(&self) -> String {
        let mut s = format!(
            "\nmeasured window: {:.1} s, {} {}s ({:.1}/s)\n",
            self.duration_s, self.ops, self.operation, self.ops_per_s
        );
        if let Some(g) = &self.generator {
            s += &format!(
                "generator CPU: {:.2} cores of {} threads ({} CPUs allowed), {:.1} µs per {}{}{}\n",
                g.cores,
                g.threads,
                g.cpus_allowed,
                if self.ops > 0 {
                    g.cpu_s * 1e6 / self.ops as f64
                } else {
                    0.0
                },
                self.operation,
                waited(g.runq_wait_s, self.duration_s),
                stolen(g.steal_s, g.steal_pct),
            );
            if g.saturated {
                s += &format!(
                    "warning: the generator kept {:.0} % of its usable threads busy: it, not the server, may be the bottleneck\n",
                    100.0 * g.cores / g.threads.min(g.cpus_allowed).max(1) as f64
                );
            }
            if g.contended {
                s += "warning: the generator waited for a CPU for a tenth of the window or more: \
                      other processes share its CPU, so rates and latencies describe a contended machine\n";
            }
        }
        for c in &self.server {
            s += &format!(
                "server CPU ({}): {:.2} cores, {:.2} µs per {}{}{}{}\n",
                c.source,
                c.cores,
                c.us_per_op,
                self.operation,
                c.user_us_per_op.map_or(String::new(), |u| format!(
                    " ({u:.2} in user space, {:.2} in the kernel)",
                    (c.us_per_op - u).max(0.0)
                )),
                waited(c.runq_wait_s, self.duration_s),
                stolen(c.steal_s, c.steal_pct),
            );
            if c.steal_pct.is_some_and(|p| p >= STOLEN_PCT) {
                s += &format!(
                    "warning: the host (hypervisor) stopped the server's CPU for {STOLEN_PCT} % of \
                     the window or more (steal time): its CPU figures and latencies describe a \
                     machine slower than this one\n"
                );
            }
        }
        if !self.server_shards.is_empty() {
            let each: Vec<String> = self
                .server_shards
                .iter()
                .map(|c| format!("{} {:.2}", c.shard, c.cores))
                .collect();
            s += &format!("server CPU by shard (cores): {}\n", each.join(", "));
        }
        if self.uneven_shards {
            s += &format!(
                "warning: the load reached the server's shards unevenly (the idlest used less \
                 than {:.0} % of the busiest's CPU): the kernel sends each client socket to one \
                 shard by its address and port, and a few sockets can leave shards idle; a lower \
                 --sessions-per-endpoint spreads the sessions over more sockets\n",
                100.0 * UNEVEN_SHARE
            );
        }
        for (name, q) in &self.server_histograms {
            match q {
                Some(q) => {
                    s += &format!(
                        "server {name}: p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms ({} samples)\n",
                        q.p50_s * 1e3,
                        q.p99_s * 1e3,
                        q.mean_s * 1e3,
                        q.count
                    )
                }
                None => s += &format!("server {name}: n/a\n"),
            }
        }
        for (series, d) in &self.server_counters {
            s += &format!("server {series}: +{} over the window\n", increase(*d));
        }
        if let Some(w) = &self.udp {
            s += &format!(
                "UDP datagrams per {} (the generator's QUIC counters): {:.3} to the server, {:.3} from it\n",
                self.operation, w.to_server_per_op, w.from_server_per_op
            );
        }
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        s
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some((b? - a?).max(0.0))
}

/// "; waited 1.2 s (12 %) for a CPU" when the run-queue wait is known.
fn waited(wait: Option<f64>, secs: f64) -> String {
    match wait {
        Some(w) => format!(
            "; waited {w:.2} s ({:.0} %) for a CPU",
            100.0 * w / secs.max(1e-6)
        ),
        None => String::new(),
    }
}

/// "; the host took 0.10 s (1.0 %) of its CPUs (steal)" when steal time is known and
/// some was taken; nothing otherwise.
fn stolen(steal_s: Option<f64>, pct: Option<f64>) -> String {
    match (steal_s, pct) {
        (Some(s), Some(p)) if s > 0.0 => {
            format!("; the host took {s:.2} s ({p:.1} %) of its CPUs (steal)")
        }
        _ => String::new(),
    }
}

/// Steal time of a set of CPUs at one instant: time the host (a hypervisor) gave those
/// virtual CPUs to something else while they had work (proc(5), /proc/stat, 8th value
/// of each `cpuN` line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steal {
    pub seconds: f64,
    /// How many CPUs the figure sums.
    pub cpus: usize,
}

impl Steal {
    /// Seconds stolen between two readings, and their share of the CPUs' time over
    /// `secs`, percent.
    fn between(a: Option<Steal>, b: Option<Steal>, secs: f64) -> (Option<f64>, Option<f64>) {
        match (a, b) {
            (Some(a), Some(b)) if a.cpus == b.cpus && a.cpus > 0 => {
                let s = (b.seconds - a.seconds).max(0.0);
                (Some(s), Some(100.0 * s / (secs * a.cpus as f64)))
            }
            _ => (None, None),
        }
    }
}

/// Steal time of the CPUs process `pid` (0: this process) may run on.
pub fn steal(pid: libc::pid_t) -> Option<Steal> {
    let cpus = shards::allowed_cpus_of(pid)
        .ok()
        .filter(|c| !c.is_empty())?;
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = stat_steal_ticks(&text, &cpus)?;
    Some(Steal {
        seconds: ticks as f64 / clock_ticks(),
        cpus: cpus.len(),
    })
}

/// The summed steal ticks of `cpus` from the text of /proc/stat; None when a CPU's
/// line is missing or has no steal field (kernels before 2.6.11).
pub fn stat_steal_ticks(stat: &str, cpus: &[usize]) -> Option<u64> {
    let mut total = 0;
    for &cpu in cpus {
        let name = format!("cpu{cpu}");
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        total += line.split_whitespace().nth(8)?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Quantiles of the samples added between two scrapes of one histogram.
pub fn quantiles_between(a: &HistogramScrape, b: &HistogramScrape) -> Option<ServerQuantiles> {
    let count = b.count - a.count;
    if count <= 0.0 || a.buckets.len() != b.buckets.len() {
        return None;
    }
    let delta: Vec<(f64, f64)> = b
        .buckets
        .iter()
        .zip(&a.buckets)
        .map(|((le, y), (_, x))| (*le, (y - x).max(0.0)))
        .collect();
    Some(ServerQuantiles {
        count,
        mean_s: (b.sum - a.sum) / count,
        p50_s: bucket_quantile(&delta, 0.5)?,
        p99_s: bucket_quantile(&delta, 0.99)?,
    })
}

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding the
/// rank; a rank in the +Inf bucket answers the highest finite bound.
pub fn bucket_quantile(cumulative: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in cumulative {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = c - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    Some(prev.0)
}

/// This process's CPU seconds (user + system over every thread).
pub fn self_cpu_s() -> Option<f64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it is given, which
    // points to a properly sized and aligned rusage owned by this frame.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it initialised the struct.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// User-space and system CPU seconds (utime, stime) of process `pid` from
/// /proc/<pid>/stat.
pub fn pid_cpu_split_s(pid: u32) -> Option<(f64, f64)> {
    stat_file_split_s(&format!("/proc/{pid}/stat"))
}

/// CPU seconds (utime + stime) of the calling thread from /proc/thread-self/stat.
pub fn thread_cpu_s() -> Option<f64> {
    stat_file_split_s("/proc/thread-self/stat").map(|(user, system)| user + system)
}

fn stat_file_split_s(path: &str) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (user, system) = stat_cpu_split(&text)?;
    Some((user as f64 / clock_ticks(), system as f64 / clock_ticks()))
}

/// utime and stime in clock ticks from the text of /proc/<pid>/stat (proc(5): fields 14
/// and 15; the command name, field 2, is in parentheses and may contain spaces).
pub fn stat_cpu_split(stat: &str) -> Option<(u64, u64)> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut f = after.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Seconds the live threads of process `pid` (a number, or `self`) have spent waiting
/// in a run queue: the sum of field 2 (nanoseconds) of /proc/<pid>/task/*/schedstat.
pub fn runq_wait_s(pid: &str) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        ns += text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// Clock ticks per second, the unit of /proc's CPU times (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// GET an http:// metrics URL (bounded to 5 s) and parse it.
pub async fn scrape(
    url: &str,
    histograms: &[String],
    counters: &[String],
) -> anyhow::Result<Scrape> {
    let body = tokio::time::timeout(Duration::from_secs(5), http_get(url))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    Ok(parse_exposition(&body, histograms, counters))
}

async fn http_get(url: &str) -> anyhow::Result<String> {
    let u = url::Url::parse(url)?;
    if u.scheme() != "http" {
        anyhow::bail!("--server-metrics must be an http:// URL");
    }
    let host = u
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let mut conn = tokio::net::TcpStream::connect((host, port)).await?;
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    conn.take(64 << 20).read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        anyhow::bail!("HTTP status {status}");
    }
    let body = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body).ok_or_else(|| anyhow::anyhow!("malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = b.get(eol + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Parses the text exposition format: the process CPU counter, the named histograms and
/// the named counters.
pub fn parse_exposition(text: &str, histograms: &[String], counters: &[String]) -> Scrape {
    let mut s = Scrape::default();
    let mut buckets: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(i) => {
                let Some(j) = line.rfind('}') else { continue };
                (&line[..i], &line[i + 1..j], &line[j + 1..])
            }
            None => match line.split_once(' ') {
                Some((n, r)) => (n, "", r),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(parse_float) else {
            continue;
        };
        if name == "process_cpu_seconds_total" {
            *s.cpu_s.get_or_insert(0.0) += value;
            continue;
        }
        if counters.iter().any(|c| c == name) {
            let series = if labels.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{labels}}}")
            };
            s.counters.insert(series, value);
            continue;
        }
        for h in histograms {
            let Some(suffix) = name.strip_prefix(h.as_str()) else {
                continue;
            };
            let entry = s.histograms.entry(h.clone()).or_default();
            match suffix {
                "_count" => entry.count += value,
                "_sum" => entry.sum += value,
                "_bucket" => {
                    if let Some(le) = label(labels, "le").and_then(parse_float) {
                        let b = buckets.entry(h.clone()).or_default();
                        // Keyed by the bound's bits: sums the same bound over other labels.
                        let e = b.entry(le.to_bits()).or_insert((le, 0.0));
                        e.1 += value;
                    }
                }
                _ => {}
            }
        }
    }
    for (name, b) in buckets {
        let mut v: Vec<(f64, f64)> = b.into_values().collect();
        v.sort_by(|x, y| x.0.total_cmp(&y.0));
        if let Some(h) = s.histograms.get_mut(&name) {
            h.buckets = v;
        }
    }
    s
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// The value of label `key` in `a="x",le="0.5"` (values without escaped quotes).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        let k = rest[..eq].trim().trim_start_matches(',').trim();
        let v_start = eq + 2;
        let v_len = rest[v_start..].find('"')?;
        let v = &rest[v_start..v_start + v_len];
        if k == key {
            return Some(v);
        }
        rest = &rest[v_start + v_len + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPO: &str = "\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE mc_fanout_duration_seconds histogram
mc_fanout_duration_seconds_bucket{shard=\"0\",le=\"0.001\"} 10
mc_fanout_duration_seconds_bucket{shard=\"0\",le=\"0.01\"} 90
mc_fanout_duration_seconds_bucket{shard=\"0\",le=\"+Inf\"} 100
mc_fanout_duration_seconds_sum{shard=\"0\"} 0.5
mc_fanout_duration_seconds_count{shard=\"0\"} 100
mc_fanout_duration_seconds_bucket{shard=\"1\",le=\"0.001\"} 0
mc_fanout_duration_seconds_bucket{shard=\"1\",le=\"0.01\"} 0
mc_fanout_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"} 0
mc_fanout_duration_seconds_count{shard=\"1\"} 0
# TYPE mc_udp_syscalls_total counter
mc_udp_syscalls_total{op=\"recvmmsg\",shard=\"0\"} 40
mc_udp_syscalls_total{op=\"sendmmsg\",shard=\"0\"} 20
mc_udp_datagrams_total_other 7
";

    #[test]
    fn exposition_gives_cpu_and_histograms_summed_over_labels() {
        let names = vec!["mc_fanout_duration_seconds".to_string()];
        let s = parse_exposition(EXPO, &names, &["mc_udp_syscalls_total".into()]);
        assert_eq!(s.cpu_s, Some(12.5));
        assert_eq!(
            s.counters.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "mc_udp_syscalls_total{op=\"recvmmsg\",shard=\"0\"}".to_string(),
                    40.0
                ),
                (
                    "mc_udp_syscalls_total{op=\"sendmmsg\",shard=\"0\"}".to_string(),
                    20.0
                ),
            ],
            "each series of a named counter, and only those"
        );
        let h = &s.histograms["mc_fanout_duration_seconds"];
        assert_eq!(h.count, 100.0);
        assert_eq!(
            h.buckets,
            vec![(0.001, 10.0), (0.01, 90.0), (f64::INFINITY, 100.0)]
        );
        let none = parse_exposition("mc_other 1\n", &names, &["mc_x".into()]);
        assert!(none.cpu_s.is_none() && none.histograms.is_empty() && none.counters.is_empty());
    }

    #[test]
    fn quantiles_over_a_window_use_bucket_differences() {
        let a = HistogramScrape {
            buckets: vec![(0.001, 10.0), (0.01, 10.0), (f64::INFINITY, 10.0)],
            count: 10.0,
            sum: 0.001,
        };
        let b = HistogramScrape {
            buckets: vec![(0.001, 10.0), (0.01, 110.0), (f64::INFINITY, 110.0)],
            count: 110.0,
            sum: 0.501,
        };
        let q = quantiles_between(&a, &b).unwrap();
        assert_eq!(q.count, 100.0);
        assert!((q.mean_s - 0.005).abs() < 1e-12);
        // All 100 new samples are in (1 ms, 10 ms]: p50 interpolates to the middle.
        assert!((q.p50_s - 0.0055).abs() < 1e-9, "{q:?}");
        assert!((q.p99_s - 0.00991).abs() < 1e-9, "{q:?}");
        assert!(
            quantiles_between(&a, &a).is_none(),
            "no samples, no quantiles"
        );
        assert_eq!(
            bucket_quantile(&[(0.1, 0.0), (f64::INFINITY, 5.0)], 0.99),
            Some(0.1),
            "ranks in +Inf answer the highest finite bound"
        );
    }

    #[test]
    fn proc_stat_fields_survive_spaces_in_the_name() {
        let stat = "4242 (mc service) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(stat_cpu_split(stat).map(|(u, s)| u + s), Some(300));
        assert_eq!(stat_cpu_split(stat), Some((250, 50)));
        let (user, system) = pid_cpu_split_s(std::process::id()).unwrap();
        assert!(user >= 0.0 && system >= 0.0);
        assert_eq!(stat_cpu_split("garbage"), None);
        assert!(user + system >= 0.0);
        assert!(thread_cpu_s().unwrap() >= 0.0);
        assert!(self_cpu_s().unwrap() >= 0.0);
        assert!(runq_wait_s("self").unwrap() >= 0.0);
        assert!(runq_wait_s("0").is_none(), "no such process");
    }

    #[test]
    fn steal_time_is_summed_over_the_cpus_asked_for() {
        let stat = "cpu  10 0 5 100 0 0 0 9 0 0\n\
                    cpu0 5 0 2 50 0 0 0 4 0 0\n\
                    cpu1 5 0 3 50 0 0 0 5 0 0\n\
                    intr 12345\n";
        assert_eq!(stat_steal_ticks(stat, &[0]), Some(4));
        assert_eq!(stat_steal_ticks(stat, &[0, 1]), Some(9));
        assert_eq!(stat_steal_ticks(stat, &[2]), None, "no such CPU");
        assert_eq!(
            stat_steal_ticks("cpu0 5 0 2 50\n", &[0]),
            None,
            "no steal field"
        );
        let now = steal(0).expect("this process's CPUs");
        assert!(now.cpus >= 1 && now.seconds >= 0.0);
        let a = Some(Steal {
            seconds: 1.0,
            cpus: 2,
        });
        let b = Some(Steal {
            seconds: 1.5,
            cpus: 2,
        });
        assert_eq!(Steal::between(a, b, 5.0), (Some(0.5), Some(5.0)));
        let other = Some(Steal {
            seconds: 1.5,
            cpus: 1,
        });
        assert_eq!(
            Steal::between(a, other, 5.0),
            (None, None),
            "affinity changed"
        );
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert!(dechunk(b"zz\r\n").is_none());
    }

    #[test]
    fn datagrams_per_operation_need_a_count_and_an_operation() {
        let t = |sent, received| Some(UdpTotals { sent, received });
        assert_eq!(UdpPerOp::between(None, None, 10), None);
        assert_eq!(UdpPerOp::between(t(1, 1), t(5, 9), 0), None);
        // The first connection registered after the window began: counted from zero.
        let w = UdpPerOp::between(None, t(5, 9), 10).unwrap();
        assert_eq!((w.to_server, w.from_server), (5, 9));
        assert_eq!(crate::loadgen::udp::UdpLedger::default().totals(), None);
    }

    #[test]
    fn window_divides_server_cpu_by_operations() {
        let args = MeasureArgs {
            server_pid: Some(7),
            server_metrics: Some("http://127.0.0.1:1/metrics".into()),
            server_histogram: vec!["mc_fanout_duration_seconds".into(), "mc_x".into()],
            server_counter: vec!["mc_udp_syscalls_total".into()],
            ..Default::default()
        };
        let names = args.server_histogram.clone();
        let counter_names = args.server_counter.clone();
        let t0 = Instant::now();
        let mut counters = vec![0; ALL_COUNTERS.len()];
        let start = Mark {
            at: t0,
            counters: counters.clone(),
            self_cpu_s: Some(1.0),
            pid_cpu_s: Some(10.0),
            pid_user_s: Some(6.0),
            self_wait_s: Some(0.0),
            pid_wait_s: Some(0.1),
            self_steal: None,
            pid_steal: Some(Steal {
                seconds: 3.0,
                cpus: 1,
            }),
            scrape: Some(Ok(parse_exposition(
                &EXPO
                    .replace("12.5", "3")
                    .replace("} 10\n", "} 0\n")
                    .replace("} 90\n", "} 0\n")
                    .replace("} 100\n", "} 0\n")
                    .replace("} 40\n", "} 15\n"),
                &names,
                &counter_names,
            ))),
            udp: Some(UdpTotals {
                sent: 40,
                received: 60,
            }),
        };
        counters[Counter::Completed as usize] = 1000;
        let end = Mark {
            at: t0 + Duration::from_secs(2),
            counters,
            self_cpu_s: Some(2.9),
            pid_cpu_s: Some(11.0),
            pid_user_s: Some(6.6),
            self_wait_s: Some(0.5),
            pid_wait_s: Some(0.1),
            self_steal: None,
            pid_steal: Some(Steal {
                seconds: 3.2,
                cpus: 1,
            }),
            scrape: Some(Ok(parse_exposition(
                EXPO.replace("12.5", "4.5").as_str(),
                &names,
                &counter_names,
            ))),
            udp: Some(UdpTotals {
                sent: 165,
                received: 310,
            }),
        };
        let w = Window::between(&start, &end, Counter::Completed, "round trip", 1, &args);
        assert_eq!(w.ops, 1000);
        assert!((w.ops_per_s - 500.0).abs() < 1e-9);
        assert_eq!(w.server.len(), 2);
        assert!((w.server[0].us_per_op - 1000.0).abs() < 1e-6, "{w:?}");
        assert!(w.server[0]
            .user_us_per_op
            .is_some_and(|u| (u - 600.0).abs() < 1e-6));
        assert_eq!(w.server[1].user_us_per_op, None, "metrics give no split");
        assert!((w.server[1].us_per_op - 1500.0).abs() < 1e-6, "{w:?}");
        let g = w.generator.as_ref().unwrap();
        assert!((g.cores - 0.95).abs() < 1e-9 && g.saturated);
        assert_eq!(g.runq_wait_s, Some(0.5));
        assert!(g.contended, "0.5 s of 2 s waiting for a CPU");
        assert_eq!(w.server[0].runq_wait_s, Some(0.0));
        assert!(
            (w.server[0].steal_pct.unwrap() - 10.0).abs() < 1e-6,
            "{w:?}"
        );
        assert_eq!(g.steal_s, None);
        assert!(w.server_histograms["mc_fanout_duration_seconds"].is_some());
        assert_eq!(w.server_histograms["mc_x"], None);
        assert_eq!(
            w.server_counters
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            vec![
                ("mc_udp_syscalls_total{op=\"recvmmsg\",shard=\"0\"}", 25.0),
                ("mc_udp_syscalls_total{op=\"sendmmsg\",shard=\"0\"}", 0.0),
            ]
        );
        let udp = w.udp.as_ref().unwrap();
        assert_eq!((udp.to_server, udp.from_server), (125, 250));
        assert!((udp.to_server_per_op - 0.125).abs() < 1e-9, "{udp:?}");
        assert!((udp.from_server_per_op - 0.25).abs() < 1e-9, "{udp:?}");
        let t = w.table();
        assert!(
            t.contains("UDP datagrams per round trip (the generator's QUIC counters): 0.125 to the server, 0.250 from it\n"),
            "{t}"
        );
        assert!(t.contains("generator CPU: 0.95 cores of 1 threads"), "{t}");
        assert!(
            t.contains(
                "server mc_udp_syscalls_total{op=\"recvmmsg\",shard=\"0\"}: +25 over the window\n"
            ),
            "{t}"
        );
        assert!(t.contains("warning: the generator"), "{t}");
        assert_eq!(increase(25.0), "25");
        assert_eq!(increase(0.546_781_000_000_000_1), "0.546781");
        assert_eq!(increase(1.5), "1.5");
        assert_eq!(increase(1e-9), "0");
        assert!(
            t.contains(
                "server CPU (pid 7): 0.50 cores, 1000.00 µs per round trip (600.00 in user space, \
             400.00 in the kernel); waited 0.00 s (0 %) for a CPU; \
             the host took 0.20 s (10.0 %) of its CPUs (steal)\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("warning: the host (hypervisor) stopped the server's CPU"),
            "{t}"
        );
        assert!(t.contains("waited 0.50 s (25 %) for a CPU"), "{t}");
        assert!(t.contains("warning: the generator waited"), "{t}");
        assert!(t.contains("server mc_x: n/a"), "{t}");
    }

    #[test]
    fn shard_cpu_sums_modes_and_warns_when_the_load_missed_a_shard() {
        let counters: BTreeMap<String, f64> = [
            (
                "mc_shard_cpu_seconds_total{mode=\"user\",shard=\"10\"}",
                0.0,
            ),
            (
                "mc_shard_cpu_seconds_total{mode=\"system\",shard=\"10\"}",
                0.01,
            ),
            ("mc_shard_cpu_seconds_total{mode=\"user\",shard=\"2\"}", 1.5),
            (
                "mc_shard_cpu_seconds_total{mode=\"system\",shard=\"2\"}",
                2.5,
            ),
            (
                "mc_udp_datagrams_total{direction=\"in\",shard=\"2\"}",
                100.0,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let shards = shard_cpu(&counters, 10.0);
        let got: Vec<_> = shards.iter().map(|c| (c.shard.as_str(), c.cpu_s)).collect();
        assert_eq!(got, vec![("2", 4.0), ("10", 0.01)], "numeric shard order");
        assert!((shards[0].cores - 0.4).abs() < 1e-9);
        assert!(uneven(&shards));
        // Even enough, one shard only, or too little load to judge: no warning.
        let even = [("0", 0.40), ("1", 0.15)].map(|(s, c)| ShardCpu {
            shard: s.into(),
            cpu_s: c * 10.0,
            cores: c,
        });
        assert!(!uneven(&even));
        assert!(!uneven(&even[..1]));
        let idle = [("0", 0.04), ("1", 0.0)].map(|(s, c)| ShardCpu {
            shard: s.into(),
            cpu_s: c * 10.0,
            cores: c,
        });
        assert!(!uneven(&idle));
        // The shard label by its whole name, not a label that ends in "shard".
        let other: BTreeMap<String, f64> = [(
            "mc_shard_cpu_seconds_total{subshard=\"9\",shard=\"3\"}".to_string(),
            1.0,
        )]
        .into();
        assert_eq!(shard_cpu(&other, 1.0)[0].shard, "3");
    }
}

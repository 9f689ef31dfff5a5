//! `mc-loadgen`: the bundled load generator (bench/README.md).
//!
//! ```text
//! Cli ─► runtime (tokio, --threads workers) ─► scenario (echo | connect | meeting | ramp)
//!          │                                     │ session tasks record into a local
//!          │ progress ticker (stderr)            │ Recorder, merged into Stats in batches
//!          │ Ctrl-C / --duration ─► Stop          ▼
//!          └────────────────────────────► Report ─► table (stdout), --json, .hgrm, --plot
//! ```
//!
//! Modules: [`client`] (endpoints, trust, loopback rule), [`stats`] (counters,
//! histograms, progress line), [`measure`] (the measured window: operations, generator
//! and server CPU), [`report`] and [`plot`] (outputs), [`echo`], [`connect`],
//! [`meeting`] (+ [`proto`], [`token`], [`fanout`]) and [`ramp`] (scenarios); [`udp`]
//! (UDP datagrams per operation, from quinn's counters).

pub mod client;
pub mod connect;
pub mod echo;
pub mod explain;
pub mod fanout;
pub mod measure;
pub mod meeting;
pub mod participant;
pub mod plot;
pub mod proto;
pub mod ramp;
pub mod report;
pub mod stats;
pub mod token;
pub mod udp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use report::{Report, RunFigures};
use stats::{Counter, Lat, Progress, Stats};

/// Process exit codes.
pub const EXIT_OK: u8 = 0;
/// Correctness checks failed (missing/out-of-order notifications, echo mismatches, errors).
pub const EXIT_FAILED: u8 = 1;
/// Bad flags or configuration.
pub const EXIT_USAGE: u8 = 2;

/// Top-level command line of `mc-loadgen`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "mc-loadgen",
    version,
    about = "Load generator for mc-service (WebTransport + signaling)"
)]
pub struct Cli {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Scenario {
    /// Transport only: N sessions echoing fixed-size messages on a bidi stream (and
    /// optionally datagrams) against any WebTransport echo endpoint.
    Echo(echo::EchoArgs),
    /// Session establishment rate: QUIC handshake + CONNECT (+ Join with --join).
    Connect(connect::ConnectArgs),
    /// M meetings × P participants joining and exchanging signaling.
    Meeting(meeting::MeetingArgs),
    /// Capacity search: meeting load increased step by step until an SLO breaks.
    Ramp(ramp::RampArgs),
}

/// Bounds and outputs common to every scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Tokio worker threads driving the client sessions (0 = number of CPUs).
    #[arg(long, global = true, env = "LOADGEN_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Length of the measured phase, seconds (every run is bounded).
    #[arg(long, global = true, env = "LOADGEN_DURATION", default_value_t = 10.0)]
    pub duration: f64,
    /// Hard cap on sessions opened by this run; larger requests are refused.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_MAX_SESSIONS",
        default_value_t = 20_000
    )]
    pub max_sessions: usize,
    /// Interval of the live progress line on stderr, seconds (0 = off).
    #[arg(long, global = true, env = "LOADGEN_PROGRESS", default_value_t = 1.0)]
    pub progress: f64,
    /// Write every figure as JSON to this file.
    #[arg(long, global = true, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,
    /// Prefix of the .hgrm percentile files (`<prefix>.<latency>.hgrm`); defaults to the
    /// --json path without its extension.
    #[arg(long, global = true, env = "LOADGEN_HGRM")]
    pub hgrm: Option<PathBuf>,
    /// Draw latency percentiles (and ramp steps) into this SVG file.
    #[arg(long, global = true, env = "LOADGEN_PLOT")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub measure: measure::MeasureArgs,
}

impl RunArgs {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.clamp(0.1, 86_400.0))
    }

    pub fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// Cooperative stop signal (Ctrl-C, deadline, or a ramp step ending).
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Stop::trigger`] has been called.
    pub async fn wait(&self) {
        loop {
            // A Notified future receives notify_waiters from the moment it exists.
            let n = self.notify.notified();
            if self.is_set() {
                return;
            }
            n.await;
        }
    }
}

/// What a scenario hands back to the runner.
pub struct Outcome {
    pub figures: RunFigures,
    pub failures: Vec<String>,
    pub steps: Vec<report::StepReport>,
    pub capacity: Option<std::collections::BTreeMap<String, f64>>,
    /// The measured window (echo, connect, meeting).
    pub window: Option<measure::Window>,
}

/// Shared context of one run.
#[derive(Clone)]
pub struct Ctx {
    pub stats: Arc<Stats>,
    /// Stops the whole run (Ctrl-C).
    pub interrupt: Arc<Stop>,
    pub run: RunArgs,
}

/// Runs the progress ticker until `stop`.
pub async fn progress_ticker(stats: Arc<Stats>, every: f64, lat: Lat, c: Counter, stop: Arc<Stop>) {
    if every <= 0.0 {
        return;
    }
    let period = Duration::from_secs_f64(every.max(0.05));
    let mut p = Progress::new(Instant::now(), lat, c);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => eprintln!("{}", p.line(&stats, Instant::now())),
            _ = stop.wait() => return,
        }
    }
}

/// Sleeps until `deadline` or until `stop`; returns true when stopped early.
pub async fn sleep_or_stop(deadline: Instant, stop: &Stop) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(deadline.into()) => stop.is_set(),
        _ = stop.wait() => true,
    }
}

async fn dispatch(cli: Cli, ctx: Ctx) -> anyhow::Result<Outcome> {
    match cli.scenario {
        Scenario::Echo(a) => echo::run(a, ctx).await,
        Scenario::Connect(a) => connect::run(a, ctx).await,
        Scenario::Meeting(a) => meeting::run(a, ctx).await,
        Scenario::Ramp(a) => ramp::run(a, ctx).await,
    }
}

fn target_of(s: &Scenario) -> String {
    match s {
        Scenario::Echo(a) => a.client.target.clone(),
        Scenario::Connect(a) => a.client.target.clone(),
        Scenario::Meeting(a) => a.client.target.clone(),
        Scenario::Ramp(a) => a.meeting.client.target.clone(),
    }
}

fn scenario_name(s: &Scenario) -> &'static str {
    match s {
        Scenario::Echo(_) => "echo",
        Scenario::Connect(_) => "connect",
        Scenario::Meeting(_) => "meeting",
        Scenario::Ramp(_) => "ramp",
    }
}

/// Runs the command line; returns the process exit code.
pub fn main_with(cli: Cli) -> u8 {
    let threads = cli.run.threads();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mc-loadgen: cannot start the runtime: {e}");
            return EXIT_USAGE;
        }
    };
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let interrupt = Arc::new(Stop::default());
    let ctx = Ctx {
        stats: Arc::new(Stats::new()),
        interrupt: interrupt.clone(),
        run: cli.run.clone(),
    };
    let name = scenario_name(&cli.scenario);
    let target = target_of(&cli.scenario);
    let run = cli.run.clone();
    let result = rt.block_on(async {
        let irq = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("mc-loadgen: interrupted, stopping and reporting what was measured");
                irq.trigger();
            }
        });
        dispatch(cli, ctx).await
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mc-loadgen: {e:#}");
            return EXIT_USAGE;
        }
    };
    let report = Report {
        scenario: name.into(),
        command: std::env::args().collect(),
        target,
        started_unix_ms,
        threads,
        passed: out.failures.is_empty(),
        failures: out.failures,
        interrupted: interrupt.is_set(),
        figures: out.figures,
        steps: out.steps,
        capacity: out.capacity,
        window: out.window,
    };
    print!("{}", report::table(&report));
    if let Err(e) = write_outputs(&report, &run) {
        eprintln!("mc-loadgen: writing outputs: {e}");
        return EXIT_USAGE;
    }
    if report.passed {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn write_outputs(r: &Report, run: &RunArgs) -> anyhow::Result<()> {
    if let Some(p) = &run.json {
        report::write_json(r, p)?;
        eprintln!("wrote {}", p.display());
    }
    let prefix = run
        .hgrm
        .clone()
        .or_else(|| run.json.as_ref().map(|p| p.with_extension("")));
    if let Some(prefix) = prefix {
        for p in report::write_hgrm(&r.figures, &prefix)? {
            eprintln!("wrote {}", p.display());
        }
    }
    if let Some(p) = &run.plot {
        plot::plot(r, p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn cli_parses_every_scenario() {
        for args in [
            &[
                "mc-loadgen",
                "echo",
                "--insecure",
                "--sessions",
                "4",
                "--window",
                "8",
            ][..],
            &[
                "mc-loadgen",
                "--duration",
                "2",
                "connect",
                "--insecure",
                "--join",
            ][..],
            &[
                "mc-loadgen",
                "meeting",
                "--insecure",
                "--sizes",
                "50x4,2x50",
                "--mix",
                "mute=1",
            ][..],
            &["mc-loadgen", "ramp", "--insecure", "--json", "r.json"][..],
        ] {
            Cli::try_parse_from(args).unwrap();
        }
    }

    #[tokio::test]
    async fn stop_wakes_waiters() {
        let s = Arc::new(Stop::default());
        let s2 = s.clone();
        let h = tokio::spawn(async move { s2.wait().await });
        tokio::task::yield_now().await;
        s.trigger();
        tokio::time::timeout(Duration::from_secs(2), h)
            .await
            .unwrap()
            .unwrap();
        assert!(sleep_or_stop(Instant::now() + Duration::from_secs(60), &s).await);
    }
}

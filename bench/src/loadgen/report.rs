//! Output: the final human-readable table, `--json`, `.hgrm` percentile distributions and
//! the `--plot` SVG (see [`super::plot`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::stats::{Counter, Cut, Lat, Stats, ALL_COUNTERS, ALL_LAT};

/// Percentile summary of one latency, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatSummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatSummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One cut of a rolling restart (docs/protocol.md rules 17–20): the participants'
/// n-th redirects. Times in seconds since the run started, latencies in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CutFigures {
    pub cut: u32,
    pub redirected: u64,
    pub moved: u64,
    pub failed: u64,
    /// First redirect received → last recovery JoinResponse.
    pub first_redirect_s: f64,
    pub last_move_s: f64,
    /// Move time (redirect → recovery JoinResponse) percentiles.
    pub move_p50_ms: f64,
    pub move_p99_ms: f64,
    pub move_max_ms: f64,
    /// Messages the source dropped (not processed before it redirected their sender).
    pub messages_dropped: u64,
    /// Messages sent while some member of their meeting was still moving.
    pub messages_exposed: u64,
    /// Notifications those messages owed: the most this cut could lose.
    pub notifications_in_flight: u64,
    /// Notifications it lost.
    pub notifications_lost: u64,
    pub resync_ambiguous: u64,
    pub resync_inconsistent: u64,
}

impl CutFigures {
    fn of(n: u32, c: &Cut) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        let h = &c.moves;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        Self {
            cut: n,
            redirected: c.redirected,
            moved: c.moved,
            failed: c.failed,
            first_redirect_s: secs(c.first_redirect),
            last_move_s: secs(c.last_move),
            move_p50_ms: q(0.5),
            move_p99_ms: q(0.99),
            move_max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            messages_dropped: c.dropped_messages,
            messages_exposed: c.exposed_messages,
            notifications_in_flight: c.in_flight,
            notifications_lost: c.lost,
            resync_ambiguous: c.resync_ambiguous,
            resync_inconsistent: c.resync_inconsistent,
        }
    }
}

/// Everything one run (or one ramp step) measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunFigures {
    /// Wall time of the measured phase, seconds.
    pub duration_s: f64,
    /// Rates per second (e.g. `round_trips_per_s`, `deliveries_per_s`).
    pub throughput: BTreeMap<String, f64>,
    /// Non-zero counters by name.
    pub counters: BTreeMap<String, u64>,
    /// Errors by code (`server:UNAUTHORIZED`, `connect:…`, `close:0x104`, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency summaries by name.
    pub latencies: BTreeMap<String, LatSummary>,
    /// Cuts of a rolling restart, when the MC redirected participants.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cuts: Vec<CutFigures>,
    #[serde(skip)]
    pub histograms: BTreeMap<String, Histogram<u64>>,
}

impl RunFigures {
    /// Collects the figures of `stats` over `duration_s` seconds.
    pub fn collect(stats: &Stats, duration_s: f64) -> Self {
        let mut f = RunFigures {
            duration_s,
            errors: stats.errors(),
            ..Default::default()
        };
        for c in ALL_COUNTERS {
            let v = stats.get(c);
            if v > 0 {
                f.counters.insert(c.name().into(), v);
            }
        }
        for l in ALL_LAT {
            let h = stats.histogram(l);
            if !h.is_empty() {
                f.latencies.insert(l.name().into(), LatSummary::of(&h));
                f.histograms.insert(l.name().into(), h);
            }
        }
        f.cuts = stats
            .cuts()
            .iter()
            .map(|(n, c)| CutFigures::of(*n, c))
            .collect();
        f
    }

    /// Adds `name` = counter / duration.
    pub fn rate(&mut self, name: &str, c: Counter, stats: &Stats) {
        let d = self.duration_s.max(1e-6);
        self.throughput.insert(name.into(), stats.get(c) as f64 / d);
    }

    /// Adds `name` = the counter's increase between two marks / the time between them.
    pub fn rate_between(
        &mut self,
        name: &str,
        c: Counter,
        start: &super::measure::Mark,
        end: &super::measure::Mark,
    ) {
        let d = end
            .at
            .saturating_duration_since(start.at)
            .as_secs_f64()
            .max(1e-6);
        let n = end.counter(c).saturating_sub(start.counter(c));
        self.throughput.insert(name.into(), n as f64 / d);
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c.name()).copied().unwrap_or(0)
    }

    /// A failure for each counter of `checks` that is not zero: "<count> <what>".
    pub fn nonzero(&self, checks: &[(Counter, &str)]) -> Vec<String> {
        checks
            .iter()
            .filter_map(|&(c, what)| {
                let n = self.counter(c);
                (n > 0).then(|| format!("{n} {what}"))
            })
            .collect()
    }

    pub fn latency(&self, l: Lat) -> Option<&LatSummary> {
        self.latencies.get(l.name())
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One ramp step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: usize,
    /// The load of this step (what was ramped), e.g. `{"rate": 200}`.
    pub load: BTreeMap<String, f64>,
    pub passed: bool,
    /// Why the step failed its SLO (empty when it passed).
    pub violations: Vec<String>,
    pub figures: RunFigures,
}

/// The whole report written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub command: Vec<String>,
    pub target: String,
    pub started_unix_ms: u128,
    pub threads: usize,
    pub passed: bool,
    /// Correctness failures (missing notifications, echo mismatches, …).
    pub failures: Vec<String>,
    pub interrupted: bool,
    pub figures: RunFigures,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
    /// Ramp: the load of the last passing step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<BTreeMap<String, f64>>,
    /// The measured window: operations, generator CPU, server CPU per operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<super::measure::Window>,
}

/// Renders the human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let f = &r.figures;
    s += &format!(
        "\n== mc-loadgen {} → {}  ({:.1} s, {} threads){}\n",
        r.scenario,
        r.target,
        f.duration_s,
        r.threads,
        if r.interrupted { "  [interrupted]" } else { "" }
    );
    if !f.throughput.is_empty() {
        s += "\nthroughput\n";
        for (k, v) in &f.throughput {
            s += &format!("  {k:<28} {v:>14.1}\n");
        }
    }
    if !f.latencies.is_empty() {
        s += &format!(
            "\n{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "latency (ms)", "count", "p50", "p90", "p95", "p99", "p99.9", "max"
        );
        for (k, l) in &f.latencies {
            s += &format!(
                "{:<14} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
                k, l.count, l.p50_ms, l.p90_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
    }
    if !f.counters.is_empty() {
        s += "\ncounters\n";
        for (k, v) in &f.counters {
            s += &format!("  {k:<28} {v:>14}\n");
        }
    }
    if !f.cuts.is_empty() {
        s += &format!(
            "\n{:<4} {:>10} {:>7} {:>6} {:>15} {:>9} {:>9} {:>9} {:>17} {:>12} {:>6}\n",
            "cut",
            "redirected",
            "moved",
            "failed",
            "from-to (s)",
            "move p50",
            "p99 ms",
            "max ms",
            "msgs drop/exposed",
            "in flight",
            "lost"
        );
        for c in &f.cuts {
            s += &format!(
                "{:<4} {:>10} {:>7} {:>6} {:>15} {:>9.1} {:>9.1} {:>9.1} {:>17} {:>12} {:>6}\n",
                c.cut,
                c.redirected,
                c.moved,
                c.failed,
                format!("{:.2}-{:.2}", c.first_redirect_s, c.last_move_s),
                c.move_p50_ms,
                c.move_p99_ms,
                c.move_max_ms,
                format!("{}/{}", c.messages_dropped, c.messages_exposed),
                c.notifications_in_flight,
                c.notifications_lost
            );
        }
    }
    s += "\nerrors\n";
    if f.errors.is_empty() {
        s += "  none\n";
    }
    for (k, v) in &f.errors {
        s += &format!("  {k:<28} {v:>14}\n");
    }
    if !r.steps.is_empty() {
        s += &format!(
            "\n{:<5} {:<44} {:>12} {:>10} {:>10} {:>8}  result\n",
            "step", "load", "deliv/s", "p95 ms", "p99 ms", "errors"
        );
        for st in &r.steps {
            let load: Vec<String> = st.load.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let lat = st
                .figures
                .latency(Lat::Fanout)
                .or(st.figures.latency(Lat::Rtt));
            s += &format!(
                "{:<5} {:<44} {:>12.1} {:>10.2} {:>10.2} {:>8}  {}\n",
                st.step,
                load.join(","),
                st.figures
                    .throughput
                    .get("deliveries_per_s")
                    .copied()
                    .unwrap_or(0.0),
                lat.map_or(0.0, |l| l.p95_ms),
                lat.map_or(0.0, |l| l.p99_ms),
                st.figures.error_total(),
                if st.passed {
                    "pass".to_string()
                } else {
                    format!("FAIL: {}", st.violations.join("; "))
                }
            );
        }
        match &r.capacity {
            Some(c) => {
                let load: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s += &format!("\ncapacity (last passing step): {}\n", load.join(","));
            }
            None => s += "\ncapacity: no step passed\n",
        }
    }
    if let Some(w) = &r.window {
        s += &w.table();
    }
    s += &format!(
        "\nresult: {}\n",
        if r.passed {
            "PASS".to_string()
        } else {
            format!("FAIL ({})", r.failures.join("; "))
        }
    );
    s
}

/// Writes the JSON report.
pub fn write_json(r: &Report, path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    serde_json::to_writer_pretty(&mut f, r).map_err(std::io::Error::other)?;
    f.write_all(b"\n")
}

/// Renders a percentile distribution in the HdrHistogram `.hgrm` text layout
/// (value in milliseconds, percentile, total count, 1/(1-percentile)).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            String::new()
        };
        s += &format!(
            "{:>12.3} {:>14.12} {:>10} {}\n",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            total,
            inv
        );
    }
    s += &format!(
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]\n#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.mean() / 1000.0,
        h.stdev() / 1000.0,
        h.max() as f64 / 1000.0,
        h.len(),
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// Writes `<prefix>.<latency>.hgrm` for every latency measured; returns the paths.
pub fn write_hgrm(f: &RunFigures, prefix: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, h) in &f.histograms {
        let mut p = prefix.as_os_str().to_owned();
        p.push(format!(".{name}.hgrm"));
        let p = PathBuf::from(p);
        std::fs::write(&p, hgrm(h))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::stats::Recorder;
    use std::time::{Duration, Instant};

    fn figures() -> RunFigures {
        let base = Instant::now();
        let stats = Stats::new();
        let mut r = Recorder::new(base);
        for us in 1..=1000u64 {
            r.record(Lat::Fanout, Duration::from_micros(us * 100));
        }
        r.add(Counter::Delivered, 1000);
        r.flush(&stats, base);
        stats.error("server:FORBIDDEN");
        let mut f = RunFigures::collect(&stats, 2.0);
        f.rate("deliveries_per_s", Counter::Delivered, &stats);
        f
    }

    #[test]
    fn figures_and_json_carry_percentiles_and_errors() {
        let f = figures();
        assert_eq!(f.throughput["deliveries_per_s"], 500.0);
        let l = f.latency(Lat::Fanout).unwrap();
        assert_eq!(l.count, 1000);
        assert!((l.p99_ms - 99.0).abs() < 0.5, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.2);
        let r = Report {
            scenario: "meeting".into(),
            command: vec![],
            target: "t".into(),
            started_unix_ms: 0,
            threads: 1,
            passed: true,
            failures: vec![],
            interrupted: false,
            figures: f,
            steps: vec![],
            capacity: None,
            window: None,
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert!(v["figures"]["latencies"]["fanout"]["p95_ms"]
            .as_f64()
            .is_some());
        assert_eq!(v["figures"]["errors"]["server:FORBIDDEN"], 1);
        assert!(table(&r).contains("fanout"));
    }

    #[test]
    fn counters_that_are_not_zero_become_failures() {
        let f = figures();
        assert_eq!(
            f.nonzero(&[
                (Counter::Delivered, "notifications delivered"),
                (Counter::Missing, "notifications missing"),
            ]),
            vec!["1000 notifications delivered".to_string()]
        );
        assert!(f.nonzero(&[(Counter::Missing, "missing")]).is_empty());
    }

    #[test]
    fn hgrm_has_header_and_footer() {
        let f = figures();
        let s = hgrm(&f.histograms["fanout"]);
        assert!(s.starts_with("       Value"));
        assert!(s.contains("#[Max     ="));
        assert!(s.lines().count() > 20);
    }
}

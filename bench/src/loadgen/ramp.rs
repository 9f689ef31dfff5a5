//! `ramp`: capacity search. Runs the `meeting` scenario step by step with growing load
//! (message rate, or number of meetings) until a step breaks the SLO: p95 fan-out latency
//! above `--slo-p95-ms` (500 ms), drop rate above `--slo-drop` (1 %), any error, or any
//! failed join. The last passing step is reported as the capacity, with every step's
//! figures. Participants follow redirects as in `meeting`, so a ramp survives a rolling
//! restart; a step fails when a move fails or a meeting ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;

use super::meeting::{cut_failures, parse_sizes, run_once, MeetingArgs};
use super::report::{RunFigures, StepReport};
use super::stats::{Counter, Lat, Stats};
use super::{Ctx, Outcome};

/// What grows from step to step.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The total signaling rate (msg/s); meetings stay as --sizes. Past the MC's
    /// per-session rate limit (MC_SESSION_MESSAGE_RATE), or a meeting's budget of mutes
    /// and publications (MC_MEETING_BROADCAST_RATE), this finds the limit, not capacity.
    Rate,
    /// The number of meetings of every size, the rate growing with it (constant per
    /// participant): capacity in meetings and participants per pod.
    Meetings,
}

/// Flags of the `ramp` scenario (each step runs for --duration).
#[derive(clap::Args, Debug, Clone)]
pub struct RampArgs {
    #[command(flatten)]
    pub meeting: MeetingArgs,
    /// What to increase per step.
    #[arg(long, env = "LOADGEN_RAMP_DIMENSION", value_enum, default_value_t = Dimension::Meetings)]
    pub dimension: Dimension,
    /// Load multiplier from one step to the next.
    #[arg(long, env = "LOADGEN_RAMP_FACTOR", default_value_t = 2.0)]
    pub factor: f64,
    /// Maximum number of steps.
    #[arg(long, env = "LOADGEN_RAMP_STEPS", default_value_t = 8)]
    pub steps: usize,
    /// SLO: p95 fan-out latency in milliseconds.
    #[arg(long, env = "LOADGEN_SLO_P95_MS", default_value_t = 500.0)]
    pub slo_p95_ms: f64,
    /// SLO: highest fraction of notifications missing.
    #[arg(long, env = "LOADGEN_SLO_DROP", default_value_t = 0.01)]
    pub slo_drop: f64,
}

/// SLO violations of one step's figures.
pub fn violations(f: &RunFigures, slo_p95_ms: f64, slo_drop: f64) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(l) = f.latency(Lat::Fanout) {
        if l.p95_ms > slo_p95_ms {
            v.push(format!("p95 fan-out {:.1} ms > {slo_p95_ms} ms", l.p95_ms));
        }
    }
    let drop = f.throughput.get("drop_rate").copied().unwrap_or(0.0);
    if drop > slo_drop {
        v.push(format!(
            "drop rate {:.2}% > {:.2}%",
            drop * 100.0,
            slo_drop * 100.0
        ));
    }
    if f.error_total() > 0 {
        v.push(format!("{} errors", f.error_total()));
    }
    v.extend(f.nonzero(&[
        (Counter::JoinsFailed, "joins failed"),
        (Counter::RosterMissing, "roster entries missing"),
        (Counter::OutOfOrder, "out of order"),
    ]));
    // A rolling restart during a step: moves are fine, what they must not do is not.
    v.extend(cut_failures(f));
    v
}

pub async fn run(args: RampArgs, ctx: Ctx) -> anyhow::Result<Outcome> {
    if args.factor <= 1.0 || args.steps == 0 {
        bail!("--factor must be > 1 and --steps positive");
    }
    let sizes = parse_sizes(&args.meeting.sizes)?;
    let mut steps = Vec::new();
    let mut capacity = None;
    let mut last_pass: Option<RunFigures> = None;
    let mut scale = 1.0_f64;
    for step in 1..=args.steps {
        if ctx.interrupt.is_set() {
            break;
        }
        let (sz, rate) = match args.dimension {
            Dimension::Rate => (sizes.clone(), args.meeting.rate * scale),
            Dimension::Meetings => (
                sizes
                    .iter()
                    .map(|(c, p)| (((*c as f64) * scale).round().max(1.0) as usize, *p))
                    .collect::<Vec<_>>(),
                args.meeting.rate * scale,
            ),
        };
        let participants: usize = sz.iter().map(|(c, p)| c * p).sum();
        if participants > ctx.run.max_sessions {
            eprintln!("ramp: step {step} needs {participants} sessions > --max-sessions; stopping");
            break;
        }
        let mut load = BTreeMap::new();
        load.insert("rate".to_string(), rate.round());
        load.insert(
            "meetings".to_string(),
            sz.iter().map(|s| s.0).sum::<usize>() as f64,
        );
        load.insert("participants".to_string(), participants as f64);
        eprintln!("ramp: step {step}: {load:?}");
        let stats = Arc::new(Stats::new());
        let (figures, _, _) =
            run_once(&args.meeting, &ctx, stats, &sz, rate, ctx.run.duration()).await?;
        let v = violations(&figures, args.slo_p95_ms, args.slo_drop);
        let passed = v.is_empty() && !ctx.interrupt.is_set();
        eprintln!(
            "ramp: step {step} {}",
            if passed {
                "passed".to_string()
            } else {
                format!("failed: {}", v.join("; "))
            }
        );
        if passed {
            capacity = Some(load.clone());
            last_pass = Some(figures.clone());
        }
        steps.push(StepReport {
            step,
            load,
            passed,
            violations: v,
            figures,
        });
        if !passed {
            break;
        }
        scale *= args.factor;
    }
    let figures = last_pass
        .or_else(|| steps.last().map(|s| s.figures.clone()))
        .unwrap_or_default();
    let failures = if capacity.is_none() {
        vec!["no ramp step met the SLO".to_string()]
    } else {
        vec![]
    };
    Ok(Outcome {
        figures,
        failures,
        steps,
        capacity,
        window: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::stats::Recorder;
    use std::time::{Duration, Instant};

    #[test]
    fn slo_checks() {
        let base = Instant::now();
        let stats = Stats::new();
        let mut r = Recorder::new(base);
        for _ in 0..100 {
            r.record(Lat::Fanout, Duration::from_millis(600));
        }
        r.flush(&stats, base);
        let mut f = RunFigures::collect(&stats, 1.0);
        f.throughput.insert("drop_rate".into(), 0.02);
        let v = violations(&f, 500.0, 0.01);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(violations(&f, 1000.0, 0.05).is_empty());
    }
}

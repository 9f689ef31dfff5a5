//! `meeting`: M meetings × P participants join with minted tokens, then send signaling at
//! `--rate` msg/s with a `--mix` of mute toggles, quality updates, layout updates and
//! publishes; join latency, fan-out latency (sender → every receiver) and per-sender order
//! are measured ([`super::fanout`]); errors are counted by code (docs/protocol.md "Enums").
//!
//! Phases: join (bounded by `--join-timeout`, `--join-concurrency` at once) → traffic
//! (`--duration`) → drain (until every expected notification arrived or `--drain`) →
//! leave (session close code 0 = VOLUNTARY, docs/protocol.md rules 5–6).
//!
//! Meetings survive a rolling restart: participants follow `RedirectToMc` to the MC that
//! took their meeting over ([`super::participant`]); every cut is reported (moves, move
//! time, notifications in flight and lost, [`super::fanout`]).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::Semaphore;

use super::client::{ClientArgs, EndpointPool};
use super::fanout::Board;
use super::measure::{Mark, Window};
use super::participant::{join, participant, Redirects, Roster, Shared};
use super::report::RunFigures;
use super::stats::{Counter, Lat, Stats};
use super::token::{Minter, TokenArgs};
use super::{progress_ticker, sleep_or_stop, Ctx, Outcome, Stop};

/// Flags of the `meeting` scenario (also used by `ramp`).
#[derive(clap::Args, Debug, Clone)]
pub struct MeetingArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Meeting sizes as COUNTxPARTICIPANTS, comma separated (e.g. 50x4,2x50).
    #[arg(long, env = "LOADGEN_SIZES", default_value = "10x5")]
    pub sizes: String,
    /// Total signaling messages per second over all participants.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 100.0)]
    pub rate: f64,
    /// Message mix as kind=weight (kinds: mute, quality, layout, publish).
    #[arg(
        long,
        env = "LOADGEN_MIX",
        default_value = "mute=40,quality=30,layout=20,publish=10"
    )]
    pub mix: String,
    /// Joins in progress at once.
    #[arg(long, env = "LOADGEN_JOIN_CONCURRENCY", default_value_t = 64)]
    pub join_concurrency: usize,
    /// Bound of the join phase, seconds.
    #[arg(long, env = "LOADGEN_JOIN_TIMEOUT", default_value_t = 30.0)]
    pub join_timeout: f64,
    /// Bound of the drain phase (waiting for outstanding notifications), seconds.
    #[arg(long, env = "LOADGEN_DRAIN", default_value_t = 5.0)]
    pub drain: f64,
    /// Prefix of meeting ids (default: lg-<random>, fresh meetings per run).
    #[arg(long, env = "LOADGEN_MEETING_PREFIX")]
    pub meeting_prefix: Option<String>,
    /// Count a `RedirectToMc` as an error instead of following it to the MC that took
    /// the meeting over (docs/protocol.md rule 18).
    #[arg(long, env = "LOADGEN_NO_FOLLOW_REDIRECTS")]
    pub no_follow_redirects: bool,
    /// Attempts at reaching the new MC per redirect (1..=10; connect failures and
    /// timeouts are retried after 100, 200, 400 ms…).
    #[arg(long, env = "LOADGEN_REDIRECT_ATTEMPTS", default_value_t = 3)]
    pub redirect_attempts: u32,
    /// Anomaly reports printed on stderr at most (0: none): for a notification out of
    /// order, a doubtful resynchronisation after a move, or messages that never arrived,
    /// what the receiver saw next to what the sender sent.
    #[arg(long, env = "LOADGEN_EXPLAIN", default_value_t = 3)]
    pub explain: u32,
}

/// Parses `COUNTxSIZE,...` into (count, participants) pairs.
pub fn parse_sizes(s: &str) -> anyhow::Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|part| {
            let (c, p) = part
                .trim()
                .split_once(['x', 'X'])
                .context("size must be COUNTxPARTICIPANTS")?;
            let (c, p): (usize, usize) = (c.trim().parse()?, p.trim().parse()?);
            if c == 0 || p == 0 {
                bail!("meeting count and size must be positive in {part:?}");
            }
            Ok((c, p))
        })
        .collect()
}

/// Message kinds the writer chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Mute,
    Quality,
    Layout,
    Publish,
}

/// Parses `kind=weight,...` into cumulative weights.
pub fn parse_mix(s: &str) -> anyhow::Result<Vec<(Op, u32)>> {
    let mut out = Vec::new();
    let mut total = 0u32;
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, w) = part
            .trim()
            .split_once('=')
            .context("mix entry must be kind=weight")?;
        let op = match k.trim() {
            "mute" => Op::Mute,
            "quality" => Op::Quality,
            "layout" => Op::Layout,
            "publish" => Op::Publish,
            other => bail!("unknown mix kind {other:?} (mute, quality, layout, publish)"),
        };
        let w: u32 = w.trim().parse()?;
        if w > 0 {
            total = total.saturating_add(w);
            out.push((op, total));
        }
    }
    if out.is_empty() {
        bail!("--mix needs at least one positive weight");
    }
    Ok(out)
}

/// The fraction of the mix that is mutes and publications: what mc-service's broadcast
/// budget (MC_MEETING_BROADCAST_RATE, and one user's quarter of it) counts.
fn broadcast_fraction(mix: &[(Op, u32)]) -> f64 {
    let total = mix.last().map_or(1, |m| m.1).max(1);
    let mut prev = 0;
    let mut share = 0;
    for &(op, c) in mix {
        if matches!(op, Op::Mute | Op::Publish) {
            share += c - prev;
        }
        prev = c;
    }
    f64::from(share) / f64::from(total)
}

/// Mutes and publications per second sent into the largest meeting.
fn broadcast_rate(mix: &[(Op, u32)], sizes: &[(usize, usize)], per_participant: f64) -> f64 {
    let largest = sizes.iter().map(|&(_, p)| p).max().unwrap_or(0);
    per_participant * largest as f64 * broadcast_fraction(mix)
}

pub(crate) fn pick(mix: &[(Op, u32)], r: u32) -> Op {
    let total = mix.last().map_or(1, |m| m.1).max(1);
    let x = r % total;
    mix.iter().find(|(_, c)| x < *c).map_or(Op::Mute, |m| m.0)
}

/// The roster of one meeting once every join finished: participant_id → index.
pub async fn run(args: MeetingArgs, ctx: Ctx) -> anyhow::Result<Outcome> {
    let sizes = parse_sizes(&args.sizes)?;
    let (figures, failures, window) = run_once(
        &args,
        &ctx,
        ctx.stats.clone(),
        &sizes,
        args.rate,
        ctx.run.duration(),
    )
    .await?;
    Ok(Outcome {
        figures,
        failures,
        steps: vec![],
        capacity: None,
        window: Some(window),
    })
}

/// One complete meeting run (also one ramp step). Returns figures, correctness failures
/// and the measured window (the traffic phase after --warmup; one operation is one
/// delivered notification).
pub async fn run_once(
    args: &MeetingArgs,
    ctx: &Ctx,
    stats: Arc<Stats>,
    sizes: &[(usize, usize)],
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(RunFigures, Vec<String>, Window)> {
    let total: usize = sizes.iter().map(|(c, p)| c * p).sum();
    if total == 0 || total > ctx.run.max_sessions {
        bail!(
            "{total} participants exceed --max-sessions {}",
            ctx.run.max_sessions
        );
    }
    if rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let mix = parse_mix(&args.mix)?;
    let per_participant = rate / total as f64;
    if per_participant > 50.0 {
        eprintln!(
            "meeting: warning: {per_participant:.0} msg/s per participant is above mc-service's default \
             MC_SESSION_MESSAGE_RATE (50); sessions will be closed with 0x105"
        );
    }
    let broadcast = broadcast_rate(&mix, sizes, per_participant);
    if broadcast > 100.0 {
        eprintln!(
            "meeting: warning: {broadcast:.0} mutes and publications/s into the largest meeting \
             is above mc-service's default MC_MEETING_BROADCAST_RATE (100); the excess is \
             refused with ErrorMessage"
        );
    }
    let own = per_participant * broadcast_fraction(&mix);
    if own > 25.0 {
        eprintln!(
            "meeting: warning: {own:.0} mutes and publications/s per participant is above one \
             user's share of mc-service's default MC_MEETING_BROADCAST_RATE (a quarter: 25); \
             the excess is refused with ErrorMessage"
        );
    }
    let target = args.client.resolve()?;
    let minter = Arc::new(Minter::load(&args.token, args.client.dev_dir.as_deref())?);
    let pool = Arc::new(EndpointPool::new(&args.client, &target, total)?);
    let prefix = args
        .meeting_prefix
        .clone()
        .unwrap_or_else(|| format!("lg-{:08x}", rand::random::<u32>()));
    let stop = Arc::new(Stop::default());
    let base = Instant::now();
    let shared = Arc::new(Shared {
        stats: stats.clone(),
        stop: stop.clone(),
        end: Arc::new(Stop::default()),
        base,
        mix,
        period: Duration::from_secs_f64(total as f64 / rate),
        pool: pool.clone(),
        minter: minter.clone(),
        target: target.clone(),
        redirects: Redirects {
            follow: !args.no_follow_redirects,
            attempts: args.redirect_attempts.clamp(1, 10),
        },
        explain: args.explain,
        explained: AtomicU32::new(0),
        drain_over: AtomicBool::new(false),
    });
    eprintln!(
        "meeting: {total} participants in {} meetings → {} at {rate} msg/s",
        sizes.iter().map(|s| s.0).sum::<usize>(),
        target.url
    );
    let ticker_stop = Arc::new(Stop::default());
    let ticker = tokio::spawn(progress_ticker(
        stats.clone(),
        ctx.run.progress,
        Lat::Fanout,
        Counter::Delivered,
        ticker_stop.clone(),
    ));

    // Join phase.
    let sem = Arc::new(Semaphore::new(args.join_concurrency.max(1)));
    let mut meetings = Vec::new();
    for (mi, p) in sizes
        .iter()
        .flat_map(|(c, p)| std::iter::repeat_n(*p, *c))
        .enumerate()
    {
        let mid = format!("{prefix}-{mi}");
        let mut joins = Vec::with_capacity(p);
        for j in 0..p {
            let (sem, pool, minter, stats, url, mid) = (
                sem.clone(),
                pool.clone(),
                minter.clone(),
                stats.clone(),
                target.url.clone(),
                mid.clone(),
            );
            joins.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.ok()?;
                join(&pool, &url, &minter, &mid, j, &stats).await
            }));
        }
        meetings.push((p, joins));
    }
    let join_deadline = base + Duration::from_secs_f64(args.join_timeout.clamp(1.0, 600.0));
    let mut rosters = Vec::new();
    for (p, joins) in meetings {
        let mut members = Vec::new();
        for h in joins {
            let left = join_deadline.saturating_duration_since(Instant::now());
            let r = tokio::select! {
                r = tokio::time::timeout(left, h) => r,
                _ = ctx.interrupt.wait() => Ok(Ok(None)),
            };
            match r {
                Ok(Ok(Some(j))) => members.push(j),
                Ok(_) => {}
                Err(_) => {
                    stats.add(Counter::JoinsFailed, 1);
                    stats.error("join:timeout");
                }
            }
        }
        rosters.push((p, members));
    }

    // Traffic phase: every participant reads from the start; writers start together.
    let t_start = Instant::now();
    let join_phase = t_start
        .saturating_duration_since(base)
        .as_secs_f64()
        .max(1e-3);
    let mut tasks = Vec::new();
    let mut boards = Vec::new();
    for (p, members) in rosters {
        let mut joined = vec![false; p];
        for m in &members {
            if let Some(j) = joined.get_mut(m.idx) {
                *j = true;
            }
        }
        let board = Arc::new(Board::with_members(joined));
        let roster: Arc<Roster> =
            Arc::new(members.iter().map(|m| (m.pid.clone(), m.idx)).collect());
        for m in members {
            tasks.push(tokio::spawn(participant(
                m,
                p,
                board.clone(),
                roster.clone(),
                shared.clone(),
            )));
        }
        boards.push(board);
    }
    // Measured phase: after --warmup, for `duration`; latencies restart with it.
    let measure = &ctx.run.measure;
    let start_at = t_start + measure.warmup();
    if !measure.warmup().is_zero() && !sleep_or_stop(start_at, &ctx.interrupt).await {
        stats.reset_latency(Lat::Fanout);
        stats.reset_latency(Lat::Layout);
    }
    let start = Mark::open(&stats, measure, duration).await;
    sleep_or_stop(start_at + duration, &ctx.interrupt).await;
    let end = Mark::take(&stats, measure).await;
    stop.trigger(); // writers stop; readers keep reading during the drain.
    let expected: u64 = boards.iter().map(|b| b.expected()).sum();
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain.clamp(0.0, 120.0));
    while Instant::now() < drain_until && !ctx.interrupt.is_set() {
        let got: u64 = boards
            .iter()
            .map(|b| b.delivered.load(Ordering::Relaxed) + b.lost.load(Ordering::Relaxed))
            .sum();
        if got >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !ctx.interrupt.is_set() {
        shared.drain_over.store(true, Ordering::Relaxed);
    }
    // Leave: readers stop and every session closes with code 0 (VOLUNTARY).
    shared.end.trigger();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    ticker_stop.trigger();
    let _ = ticker.await;

    stats.add(Counter::Expected, expected);
    // Notifications a cut lost (docs/protocol.md rule 20) are reported, not missing.
    let accounted = stats.get(Counter::Delivered)
        + stats.get(Counter::OutOfOrder)
        + stats.get(Counter::LostAtCut);
    stats.add(Counter::Missing, expected.saturating_sub(accounted));
    let window = Window::between(
        &start,
        &end,
        Counter::Delivered,
        "delivered notification",
        ctx.run.threads(),
        measure,
    );
    let mut f = RunFigures::collect(&stats, window.duration_s);
    f.rate_between("deliveries_per_s", Counter::Delivered, &start, &end);
    f.rate_between("messages_sent_per_s", Counter::Sent, &start, &end);
    // Joins happen before the traffic phase: their rate is over the join phase.
    f.throughput.insert(
        "joins_per_s".into(),
        stats.get(Counter::JoinsOk) as f64 / join_phase,
    );
    let drop_rate = if expected > 0 {
        f.counter(Counter::Missing) as f64 / expected as f64
    } else {
        0.0
    };
    f.throughput.insert("drop_rate".into(), drop_rate);
    let mut failures = Vec::new();
    if f.counter(Counter::Missing) > 0 {
        failures.push(format!(
            "{} of {expected} notifications missing",
            f.counter(Counter::Missing)
        ));
    }
    failures.extend(f.nonzero(&[
        (Counter::OutOfOrder, "notifications out of order"),
        (Counter::JoinsFailed, "joins failed"),
        (
            Counter::RosterMissing,
            "roster entries missing (ParticipantJoined never arrived)",
        ),
    ]));
    if f.error_total() > 0 {
        failures.push(format!("{} errors", f.error_total()));
    }
    if f.counter(Counter::JoinsOk) == 0 {
        failures.push("no participant joined".into());
    }
    failures.extend(cut_failures(&f));
    Ok((f, failures, window))
}

/// What a rolling restart must not do: participants left mid-run (a meeting ended),
/// redirects not followed, a cut that lost more than it had in flight, or an MC state that
/// contradicts what was sent.
pub fn cut_failures(f: &RunFigures) -> Vec<String> {
    let mut v = f.nonzero(&[
        (Counter::LeftMidRun, "participants left mid-run"),
        (Counter::RedirectFailures, "redirects not followed"),
    ]);
    for c in &f.cuts {
        if c.notifications_lost > c.notifications_in_flight {
            v.push(format!(
                "cut {}: {} notifications lost > {} in flight",
                c.cut, c.notifications_lost, c.notifications_in_flight
            ));
        }
    }
    v.extend(f.nonzero(&[(
        Counter::ResyncInconsistent,
        "resynchronisations after a move contradicted what was sent",
    )]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_mix_parse() {
        assert_eq!(parse_sizes("50x4, 2X50").unwrap(), vec![(50, 4), (2, 50)]);
        assert!(parse_sizes("0x4").is_err());
        assert!(parse_sizes("4").is_err());
        let m = parse_mix("mute=1,quality=0,publish=3").unwrap();
        assert_eq!(m, vec![(Op::Mute, 1), (Op::Publish, 4)]);
        assert_eq!(pick(&m, 0), Op::Mute);
        assert_eq!(pick(&m, 1), Op::Publish);
        assert_eq!(pick(&m, 7), Op::Publish);
        assert!(parse_mix("dance=1").is_err());
        assert!(parse_mix("mute=0").is_err());
    }

    /// The scenarios the repository runs stay under mc-service's default per-meeting
    /// budget of 100 mutes and publications per second, and each participant under one
    /// user's quarter of it.
    #[test]
    fn the_repositorys_scenarios_stay_under_the_meeting_broadcast_budget() {
        let default_mix = "mute=40,quality=30,layout=20,publish=10";
        for (sizes, rate, mix, expect) in [
            ("1x100", 50.0, "mute=1", 50.0),
            ("1x1000", 40.0, "mute=100", 40.0),
            ("50x4,2x50", 500.0, default_mix, 41.7),
            ("200x5,10x50", 2000.0, default_mix, 33.3),
            ("4x5", 100.0, default_mix, 12.5),
            ("50x5", 250.0, default_mix, 2.5),
        ] {
            let sizes = parse_sizes(sizes).unwrap();
            let total: usize = sizes.iter().map(|(c, p)| c * p).sum();
            let mix = parse_mix(mix).unwrap();
            let b = broadcast_rate(&mix, &sizes, rate / total as f64);
            assert!((b - expect).abs() < 0.1, "{sizes:?} {rate}: {b}");
            assert!(b < 100.0);
            // Every participant is its own user, within a quarter of the budget.
            let own = rate / total as f64 * broadcast_fraction(&mix);
            assert!(own < 25.0, "{sizes:?} {rate}: {own}");
        }
    }
}

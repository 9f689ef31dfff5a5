//! `meeting`: M meetings × P participants join with minted tokens, then send signaling at
//! `--rate` msg/s with a `--mix` of mute toggles, quality updates, layout updates and
//! publishes; join latency, fan-out latency (sender → every receiver) and per-sender order
//! are measured ([`super::fanout`]); errors are counted by code (signaling.md "Enums").
//!
//! Phases: join (bounded by `--join-timeout`, `--join-concurrency` at once) → traffic
//! (`--duration`) → drain (until every expected notification arrived or `--drain`) →
//! leave (session close code 0 = VOLUNTARY, signaling.md rules 5–6).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::{mpsc, Semaphore};
use wtransport::{RecvStream, SendStream};

use super::client::{ClientArgs, EndpointPool};
use super::echo::short;
use super::fanout::{Board, Delivery, Kind, Receiver};
use super::proto::{
    self, client_message::Message as C, server_message::Message as S, ClientMessage, FrameReader,
};
use super::report::RunFigures;
use super::stats::{Counter, Lat, Recorder, Stats};
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

fn pick(mix: &[(Op, u32)], r: u32) -> Op {
    let total = mix.last().map_or(1, |m| m.1).max(1);
    let x = r % total;
    mix.iter().find(|(_, c)| x < *c).map_or(Op::Mute, |m| m.0)
}

/// The roster of one meeting once every join finished: participant_id → index.
type Roster = HashMap<String, usize>;

struct Shared {
    stats: Arc<Stats>,
    /// End of the traffic phase: writers stop.
    stop: Arc<Stop>,
    /// End of the drain phase: readers stop and sessions close.
    end: Arc<Stop>,
    base: Instant,
    mix: Vec<(Op, u32)>,
    period: Duration,
}

struct Joined {
    idx: usize,
    pid: String,
    conn: wtransport::Connection,
    send: SendStream,
    recv: RecvStream,
    frames: FrameReader,
    /// Participants this one knows of: JoinResponse.existing_participants, then
    /// ParticipantJoined (signaling.md "Semantics the MC owns": Roster).
    known: HashSet<String>,
}

pub async fn run(args: MeetingArgs, ctx: Ctx) -> anyhow::Result<Outcome> {
    let sizes = parse_sizes(&args.sizes)?;
    let (figures, failures) = run_once(
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
    })
}

/// One complete meeting run (also one ramp step). Returns figures and correctness failures.
pub async fn run_once(
    args: &MeetingArgs,
    ctx: &Ctx,
    stats: Arc<Stats>,
    sizes: &[(usize, usize)],
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(RunFigures, Vec<String>)> {
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
        let board = Arc::new(Board::new(p));
        let mut joined = vec![false; p];
        let roster: Arc<Roster> =
            Arc::new(members.iter().map(|m| (m.pid.clone(), m.idx)).collect());
        for m in members {
            if let Some(j) = joined.get_mut(m.idx) {
                *j = true;
            }
            tasks.push(tokio::spawn(participant(
                m,
                p,
                board.clone(),
                roster.clone(),
                shared.clone(),
            )));
        }
        boards.push((board, joined));
    }
    if !ctx.interrupt.is_set() {
        sleep_or_stop(t_start + duration, &ctx.interrupt).await;
    }
    let measured = t_start.elapsed().as_secs_f64();
    stop.trigger(); // writers stop; readers keep reading during the drain.
    let expected: u64 = boards.iter().map(|(b, j)| b.expected(j)).sum();
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain.clamp(0.0, 120.0));
    while Instant::now() < drain_until && !ctx.interrupt.is_set() {
        let got: u64 = boards
            .iter()
            .map(|(b, _)| b.delivered.load(Ordering::Relaxed))
            .sum();
        if got >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Leave: readers stop and every session closes with code 0 (VOLUNTARY).
    shared.end.trigger();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    ticker_stop.trigger();
    let _ = ticker.await;

    stats.add(Counter::Expected, expected);
    let delivered = stats.get(Counter::Delivered) + stats.get(Counter::OutOfOrder);
    stats.add(Counter::Missing, expected.saturating_sub(delivered));
    let mut f = RunFigures::collect(&stats, measured);
    f.rate("deliveries_per_s", Counter::Delivered, &stats);
    f.rate("messages_sent_per_s", Counter::Sent, &stats);
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
    if f.counter(Counter::OutOfOrder) > 0 {
        failures.push(format!(
            "{} notifications out of order",
            f.counter(Counter::OutOfOrder)
        ));
    }
    if f.counter(Counter::JoinsFailed) > 0 {
        failures.push(format!("{} joins failed", f.counter(Counter::JoinsFailed)));
    }
    if f.counter(Counter::RosterMissing) > 0 {
        failures.push(format!(
            "{} roster entries missing (ParticipantJoined never arrived)",
            f.counter(Counter::RosterMissing)
        ));
    }
    if f.error_total() > 0 {
        failures.push(format!("{} errors", f.error_total()));
    }
    if f.counter(Counter::JoinsOk) == 0 {
        failures.push("no participant joined".into());
    }
    Ok((f, failures))
}

/// Connects, opens the signaling stream and joins (signaling.md "Transport and framing":
/// the client's first frame is a JoinRequest, answered by JoinResponse or ErrorMessage).
async fn join(
    pool: &EndpointPool,
    url: &str,
    minter: &Minter,
    mid: &str,
    idx: usize,
    stats: &Stats,
) -> Option<Joined> {
    let fail = |code: String| {
        stats.add(Counter::JoinsFailed, 1);
        stats.error(code);
        None
    };
    let t0 = Instant::now();
    let conn = match tokio::time::timeout(Duration::from_secs(10), pool.get().connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(format!("connect:{}", short(&e.to_string()))),
        Err(_) => return fail("connect:timeout".into()),
    };
    let t1 = Instant::now();
    stats.live_sessions.fetch_add(1, Ordering::Relaxed);
    let role = if idx == 0 { "host" } else { "participant" };
    let token = match minter.mint(&format!("{mid}-u{idx}"), mid, role) {
        Ok(t) => t,
        Err(e) => return fail(format!("token:{e}")),
    };
    let r = async {
        let (mut send, mut recv) = conn.open_bi().await?.await?;
        let req = ClientMessage {
            message: Some(C::JoinRequest(proto::JoinRequest {
                meeting_id: mid.to_string(),
                join_token: token,
                participant_name: format!("loadgen {idx}"),
                capabilities: Some(proto::ParticipantCapabilities {
                    video_codecs: vec!["VP8".into()],
                    audio_codecs: vec!["opus".into()],
                    supports_simulcast: false,
                    max_video_streams: 9,
                }),
                ..Default::default()
            })),
            trace_parent: String::new(),
        };
        let t_join = Instant::now();
        send.write_all(&proto::encode(&req)).await?;
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(m) = frames.poll_frame()? {
                match m.message {
                    Some(S::JoinResponse(r)) => {
                        let known = r
                            .existing_participants
                            .into_iter()
                            .map(|p| p.participant_id)
                            .collect();
                        return Ok((send, recv, frames, r.participant_id, t_join, known));
                    }
                    Some(S::Error(e)) => bail!("server:{}", proto::error_code_name(e.code)),
                    _ => {}
                }
            }
            let n = recv
                .read(&mut buf)
                .await?
                .context("stream finished before JoinResponse")?;
            frames.handle_bytes(buf.get(..n).unwrap_or_default());
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), r).await {
        Ok(Ok((send, recv, frames, pid, t_join, known))) => {
            let mut rec = Recorder::new(t0);
            rec.record(Lat::Connect, t1 - t0);
            rec.record(Lat::Join, t_join.elapsed());
            rec.add(Counter::JoinsOk, 1);
            rec.add(Counter::SessionsOk, 1);
            rec.flush(stats, Instant::now());
            Some(Joined {
                idx,
                pid,
                conn,
                send,
                recv,
                frames,
                known,
            })
        }
        Ok(Err(e)) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            let msg = e.to_string();
            fail(if msg.starts_with("server:") {
                msg
            } else {
                format!("join:{}", short(&msg))
            })
        }
        Err(_) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            fail("join:timeout".into())
        }
    }
}

/// One participant after its join: a reader (notifications, errors, layout replies) and a
/// writer (the message mix at the per-participant rate).
async fn participant(j: Joined, p: usize, board: Arc<Board>, roster: Arc<Roster>, sh: Arc<Shared>) {
    let Joined {
        idx,
        pid,
        conn,
        send,
        recv,
        frames,
        known,
    } = j;
    let (layout_tx, layout_rx) = mpsc::channel::<Instant>(64);
    let reader = tokio::spawn(read_loop(
        idx,
        p,
        recv,
        frames,
        board.clone(),
        roster,
        sh.clone(),
        layout_rx,
        (pid, known),
    ));
    write_loop(idx, send, &board, &sh, layout_tx).await;
    let _ = reader.await;
    conn.close(0u32.into(), b"");
    sh.stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
}

async fn write_loop(
    idx: usize,
    mut send: SendStream,
    board: &Board,
    sh: &Shared,
    layout_tx: mpsc::Sender<Instant>,
) {
    let mut rec = Recorder::new(Instant::now());
    let (mut mute_seq, mut pub_seq) = (0u64, 0u64);
    let mut subscribed = false;
    let offset = sh.period.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, sh.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = sh.stop.wait() => break,
        }
        if sh.stop.is_set() {
            break;
        }
        let now = Instant::now();
        let t_us = now.saturating_duration_since(sh.base).as_micros() as u64;
        let op = pick(&sh.mix, rand::random::<u32>());
        let msg = match op {
            Op::Mute => {
                mute_seq += 1;
                board.handle_sent(idx, Kind::Mute, mute_seq, t_us);
                C::MuteRequest(proto::MuteRequest {
                    audio_muted: mute_seq % 2 == 1,
                    video_muted: false,
                })
            }
            Op::Publish => {
                pub_seq += 1;
                board.handle_sent(idx, Kind::Publish, pub_seq, t_us);
                C::PublishStream(proto::MediaStream {
                    stream_id: format!("cam{}", pub_seq % 4),
                    stream_type: 1,
                    metadata: Some(proto::StreamMetadata {
                        codec: "VP8".into(),
                        max_bitrate: pub_seq as u32,
                    }),
                })
            }
            Op::Quality => C::StreamQualityUpdate(proto::StreamQualityUpdate {
                stream_id: "cam0".into(),
                available_bitrate: 500_000 + (t_us % 1000) as u32,
                packet_loss: 0.01,
                rtt_ms: 20,
            }),
            Op::Layout => {
                let cfg = Some(proto::LayoutConfig {
                    rows: 2,
                    columns: 2 + (t_us % 2) as u32,
                    max_streams: 0,
                });
                if layout_tx.try_send(now).is_err() {
                    rec.add(Counter::Backlogged, 1);
                }
                if subscribed {
                    C::UpdateLayout(proto::UpdateLayout { new_config: cfg })
                } else {
                    subscribed = true;
                    C::SubscribeToLayout(proto::SubscribeToLayout {
                        layout_type: 0,
                        config: cfg,
                    })
                }
            }
        };
        let frame = proto::encode(&ClientMessage {
            message: Some(msg),
            trace_parent: String::new(),
        });
        if let Err(e) = send.write_all(&frame).await {
            sh.stats.error(format!("write:{}", short(&e.to_string())));
            break;
        }
        rec.add(Counter::Sent, 1);
        rec.maybe_flush(&sh.stats, now);
    }
    rec.flush(&sh.stats, Instant::now());
    // Keep `send` open through the drain: finishing it would leave the meeting.
    sh.end.wait().await;
    drop(send);
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    me: usize,
    p: usize,
    mut recv: RecvStream,
    mut frames: FrameReader,
    board: Arc<Board>,
    roster: Arc<Roster>,
    sh: Arc<Shared>,
    mut layout_rx: mpsc::Receiver<Instant>,
    (pid, mut known): (String, HashSet<String>),
) {
    let mut rx = Receiver::new(me, p);
    let mut rec = Recorder::new(Instant::now());
    let mut buf = vec![0u8; 32 * 1024];
    'outer: loop {
        loop {
            let m = match frames.poll_frame() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    sh.stats.error(format!("frame:{e}"));
                    break 'outer;
                }
            };
            let now = Instant::now();
            let now_us = now.saturating_duration_since(sh.base).as_micros() as u64;
            let d = match m.message {
                Some(S::ParticipantMuteUpdate(u)) => roster
                    .get(&u.participant_id)
                    .map(|s| rx.handle_mute(&board, *s, u.audio_self_muted, now_us)),
                Some(S::StreamPublished(u)) => {
                    let seq = u
                        .stream
                        .and_then(|s| s.metadata)
                        .map_or(0, |m| u64::from(m.max_bitrate));
                    roster
                        .get(&u.participant_id)
                        .map(|s| rx.handle_publish(&board, *s, seq, now_us))
                }
                Some(S::ParticipantJoined(j)) => {
                    if let Some(p) = j.participant {
                        known.insert(p.participant_id);
                    }
                    None
                }
                Some(S::StreamAssignments(_)) => {
                    if let Ok(t) = layout_rx.try_recv() {
                        rec.record(Lat::Layout, now.saturating_duration_since(t));
                    }
                    None
                }
                Some(S::Error(e)) => {
                    sh.stats
                        .error(format!("server:{}", proto::error_code_name(e.code)));
                    None
                }
                Some(S::RedirectToMc(_)) => {
                    sh.stats.error("server:redirect");
                    None
                }
                _ => None,
            };
            match d {
                Some(Delivery::InOrder(lat)) => {
                    board.delivered.fetch_add(1, Ordering::Relaxed);
                    rec.add(Counter::Delivered, 1);
                    if let Some(l) = lat {
                        rec.record(Lat::Fanout, Duration::from_micros(l));
                    }
                }
                Some(Delivery::OutOfOrder(lat)) => {
                    board.delivered.fetch_add(1, Ordering::Relaxed);
                    rec.add(Counter::OutOfOrder, 1);
                    if let Some(l) = lat {
                        rec.record(Lat::Fanout, Duration::from_micros(l));
                    }
                }
                Some(Delivery::Unexpected) => rec.add(Counter::Unexpected, 1),
                Some(Delivery::Own) | None => {}
            }
            rec.maybe_flush(&sh.stats, now);
        }
        let r = tokio::select! {
            r = recv.read(&mut buf) => r,
            _ = sh.end.wait() => break,
        };
        match r {
            Ok(Some(n)) => frames.handle_bytes(buf.get(..n).unwrap_or_default()),
            Ok(None) => {
                rec.add(Counter::SessionsLost, 1);
                sh.stats.error("session:finished_by_server");
                break;
            }
            Err(_) if sh.end.is_set() => break, // teardown race, not a loss
            Err(e) => {
                rec.add(Counter::SessionsLost, 1);
                sh.stats.error(format!("session:{}", short(&e.to_string())));
                break;
            }
        }
    }
    let missing = roster
        .keys()
        .filter(|p| **p != pid && !known.contains(*p))
        .count();
    rec.add(Counter::RosterMissing, missing as u64);
    rec.flush(&sh.stats, Instant::now());
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
}

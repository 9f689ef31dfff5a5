//! `connect`: session establishment rate. Each attempt is a QUIC handshake plus the
//! WebTransport extended CONNECT (RFC 9220 §3) and, with `--join`, a JoinRequest answered
//! by JoinResponse (docs/protocol.md "Transport and framing"), or with `--echo-bytes N` one
//! N-byte echo round trip on a new bidi stream (a whole session setup against an echo
//! endpoint). `--concurrency` caps attempts in flight; `--hold` keeps established
//! sessions (and their echo stream, left open) until the end, for memory per session;
//! otherwise each session closes with code 0 at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::client::{ClientArgs, EndpointPool};
use super::echo::{label, message};
use super::measure::{Mark, Window};
use super::proto::{
    self, client_message::Message as C, server_message::Message as S, ClientMessage, FrameReader,
};
use super::report::RunFigures;
use super::stats::{Counter, Lat, Recorder};
use super::token::{Minter, TokenArgs};
use super::{progress_ticker, Ctx, Outcome, Stop};

/// Flags of the `connect` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Sessions to establish in total (bounded by --max-sessions and --duration).
    #[arg(long, env = "LOADGEN_SESSIONS", default_value_t = 1000)]
    pub sessions: usize,
    /// Establishments in flight at once.
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Also join a meeting on each session (needs a signing key: --dev-dir or --signing-key).
    #[arg(long, env = "LOADGEN_JOIN")]
    pub join: bool,
    /// Participants per meeting when joining.
    #[arg(long, env = "LOADGEN_PER_MEETING", default_value_t = 10)]
    pub per_meeting: usize,
    /// Keep sessions open and idle until --duration ends.
    #[arg(long, env = "LOADGEN_HOLD")]
    pub hold: bool,
    /// After CONNECT, echo one message of this many bytes (16..=65536) on a new bidi
    /// stream and check the reply (0 = no echo). Needs an echo endpoint (`/echo`).
    #[arg(long, env = "LOADGEN_ECHO_BYTES", default_value_t = 0)]
    pub echo_bytes: usize,
}

/// An established session and its echo stream (kept open while held).
struct Established {
    conn: wtransport::Connection,
    _stream: Option<(wtransport::SendStream, wtransport::RecvStream)>,
}

pub async fn run(args: ConnectArgs, ctx: Ctx) -> anyhow::Result<Outcome> {
    if args.sessions == 0 || args.sessions > ctx.run.max_sessions {
        bail!(
            "--sessions {} must be 1..=--max-sessions {}",
            args.sessions,
            ctx.run.max_sessions
        );
    }
    if args.echo_bytes != 0 && !(16..=65_536).contains(&args.echo_bytes) {
        bail!("--echo-bytes must be 16..=65536 (or 0 for none)");
    }
    if args.echo_bytes != 0 && args.join {
        bail!("--echo-bytes needs an echo endpoint and --join a signaling one: use one of them");
    }
    let target = args.client.resolve()?;
    let minter = if args.join {
        Some(Arc::new(Minter::load(
            &args.token,
            args.client.dev_dir.as_deref(),
        )?))
    } else {
        None
    };
    // Held sessions stay on their endpoint; otherwise only those in flight share them.
    let endpoints_for = if args.hold {
        args.sessions
    } else {
        args.sessions.min(args.concurrency.max(1))
    };
    let pool = Arc::new(EndpointPool::new(&args.client, &target, endpoints_for)?);
    let stats = ctx.stats.clone();
    let stop = Arc::new(Stop::default());
    let prefix = format!("lg-{:08x}", rand::random::<u32>());
    eprintln!(
        "connect: {} sessions, {} at once → {}{}",
        args.sessions,
        args.concurrency,
        target.url,
        if args.join {
            " (+join)".to_string()
        } else if args.echo_bytes > 0 {
            format!(" (+{} B echo)", args.echo_bytes)
        } else {
            String::new()
        }
    );
    let ticker = tokio::spawn(progress_ticker(
        stats.clone(),
        ctx.run.progress,
        Lat::Connect,
        Counter::SessionsOk,
        stop.clone(),
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let base = Instant::now();
    let measure = ctx.run.measure.clone();
    let start_at = base + measure.warmup();
    let deadline = start_at + ctx.run.duration();
    let args = Arc::new(args);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.clamp(1, 10_000) {
        let (pool, next, stats, args, url, minter, prefix, irq) = (
            pool.clone(),
            next.clone(),
            stats.clone(),
            args.clone(),
            target.url.clone(),
            minter.clone(),
            prefix.clone(),
            ctx.interrupt.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            let mut rec = Recorder::new(Instant::now());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.sessions || Instant::now() >= deadline || irq.is_set() {
                    break;
                }
                let mut step = Step::Connect;
                let attempt = async {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        one(
                            &pool,
                            &url,
                            minter.as_deref(),
                            &prefix,
                            i,
                            &args,
                            &mut rec,
                            &mut step,
                        ),
                    )
                    .await
                };
                let r = tokio::select! { r = attempt => r, _ = irq.wait() => break };
                match r {
                    Ok(Ok(conn)) => {
                        rec.add(Counter::SessionsOk, 1);
                        if args.hold {
                            stats.live_sessions.fetch_add(1, Ordering::Relaxed);
                            held.push(conn);
                        } else {
                            conn.conn.close(0u32.into(), b"");
                        }
                    }
                    Ok(Err(e)) => {
                        rec.add(Counter::SessionsFailed, 1);
                        stats.error(e);
                    }
                    Err(_) => {
                        rec.add(Counter::SessionsFailed, 1);
                        stats.error(format!("{}:timeout", step.name()));
                    }
                }
                rec.maybe_flush(&stats, Instant::now());
            }
            rec.flush(&stats, Instant::now());
            held
        }));
    }
    let mut collector = tokio::spawn(async move {
        let mut held = Vec::new();
        for w in workers {
            if let Ok(h) = w.await {
                held.extend(h);
            }
        }
        held
    });
    // Measured phase: from the end of --warmup until every attempt is done or --duration
    // has passed; latencies restart with it.
    let mut done = None;
    if !measure.warmup().is_zero() {
        tokio::select! {
            r = &mut collector => done = Some(r),
            stopped = super::sleep_or_stop(start_at, &ctx.interrupt) => if !stopped {
                for l in [Lat::Connect, Lat::Join, Lat::Setup] {
                    stats.reset_latency(l);
                }
            },
        }
    }
    let start = Mark::open(&stats, &measure, ctx.run.duration()).await;
    if done.is_none() {
        tokio::select! {
            r = &mut collector => done = Some(r),
            _ = super::sleep_or_stop(deadline, &ctx.interrupt) => {}
        }
    }
    let end = Mark::take(&stats, &measure).await;
    let held = match done {
        Some(r) => r,
        None => collector.await,
    }
    .unwrap_or_default();
    if args.hold && !held.is_empty() {
        eprintln!(
            "connect: holding {} idle sessions until the end of --duration",
            held.len()
        );
        super::sleep_or_stop(deadline, &ctx.interrupt).await;
        for e in &held {
            e.conn.close(0u32.into(), b"");
        }
        stats
            .live_sessions
            .fetch_sub(held.len() as u64, Ordering::Relaxed);
    }
    stop.trigger();
    let _ = ticker.await;
    let window = Window::between(
        &start,
        &end,
        Counter::SessionsOk,
        "session setup",
        ctx.run.threads(),
        &measure,
    );
    let mut f = RunFigures::collect(&stats, window.duration_s);
    f.rate_between("sessions_per_s", Counter::SessionsOk, &start, &end);
    if args.join {
        f.rate_between("joins_per_s", Counter::JoinsOk, &start, &end);
    }
    let mut failures = f.nonzero(&[(Counter::SessionsFailed, "sessions failed")]);
    if f.counter(Counter::SessionsOk) == 0 {
        failures.push("no session established".into());
    }
    Ok(Outcome {
        figures: f,
        failures,
        steps: vec![],
        capacity: None,
        window: Some(window),
    })
}

/// The step a session setup is in, so that a timeout names where it stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// QUIC handshake and the WebTransport CONNECT.
    Connect,
    /// Opening the bidi stream (waits for stream credit).
    Open,
    /// Writing the echo message or the JoinRequest.
    Write,
    /// Waiting for the echo or the JoinResponse.
    Read,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Open => "open",
            Step::Write => "write",
            Step::Read => "read",
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn one(
    pool: &EndpointPool,
    url: &str,
    minter: Option<&Minter>,
    prefix: &str,
    i: usize,
    args: &ConnectArgs,
    rec: &mut Recorder,
    step: &mut Step,
) -> Result<Established, String> {
    *step = Step::Connect;
    let t0 = Instant::now();
    let conn = pool
        .get()
        .connect(url)
        .await
        .map_err(|e| label("connect", &e))?;
    rec.record(Lat::Connect, t0.elapsed());
    if args.echo_bytes > 0 {
        let stream = echo_once(&conn, i as u64, args.echo_bytes, step).await?;
        rec.record(Lat::Setup, t0.elapsed());
        return Ok(Established {
            conn,
            _stream: Some(stream),
        });
    }
    let Some(minter) = minter else {
        return Ok(Established {
            conn,
            _stream: None,
        });
    };
    let mid = format!("{prefix}-{}", i / args.per_meeting.max(1));
    let token = minter
        .mint(&format!("{mid}-u{i}"), &mid, "participant")
        .map_err(|e| format!("token:{e}"))?;
    let t1 = Instant::now();
    *step = Step::Open;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| label("open", &e))?
        .await
        .map_err(|e| label("open", &e))?;
    let req = ClientMessage {
        message: Some(C::JoinRequest(proto::JoinRequest {
            meeting_id: mid.clone(),
            join_token: token,
            participant_name: format!("loadgen {i}"),
            ..Default::default()
        })),
        trace_parent: String::new(),
    };
    *step = Step::Write;
    send.write_all(&proto::encode(&req))
        .await
        .map_err(|e| label("write", &e))?;
    *step = Step::Read;
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(m) = frames.poll_frame().map_err(|e| format!("frame:{e}"))? {
            match m.message {
                Some(S::JoinResponse(_)) => {
                    rec.record(Lat::Join, t1.elapsed());
                    rec.add(Counter::JoinsOk, 1);
                    return Ok(Established {
                        conn,
                        _stream: None,
                    });
                }
                Some(S::Error(e)) => {
                    rec.add(Counter::JoinsFailed, 1);
                    return Err(proto::error_key(&e));
                }
                _ => {}
            }
        }
        let n = recv
            .read(&mut buf)
            .await
            .map_err(|e| label("read", &e))?
            .ok_or_else(|| "join:stream finished".to_string())?;
        frames.handle_bytes(buf.get(..n).unwrap_or_default());
    }
}

/// One echo round trip of `bytes` bytes on a new bidi stream; returns the stream, open.
async fn echo_once(
    conn: &wtransport::Connection,
    seq: u64,
    bytes: usize,
    step: &mut Step,
) -> Result<(wtransport::SendStream, wtransport::RecvStream), String> {
    *step = Step::Open;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| label("open", &e))?
        .await
        .map_err(|e| label("open", &e))?;
    let msg = message(seq, bytes);
    *step = Step::Write;
    send.write_all(&msg).await.map_err(|e| label("write", &e))?;
    *step = Step::Read;
    let mut reply = vec![0u8; msg.len()];
    recv.read_exact(&mut reply)
        .await
        .map_err(|e| label("read", &e))?;
    if reply != msg {
        return Err("echo:mismatch".into());
    }
    Ok((send, recv))
}

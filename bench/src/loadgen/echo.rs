//! `echo`: transport-only load against any WebTransport echo endpoint.
//!
//! Each session opens one bidi stream (WebTransport over HTTP/3, RFC 9220 extended
//! CONNECT) and writes fixed-size ASCII messages `[seq: 16 hex digits][letters]` (text,
//! so that servers which read payloads as UTF-8 accept them); the echo must return
//! the same bytes in order (QUIC streams are ordered, RFC 9000 §2.2), so the reader pairs
//! replies with send times FIFO. Closed-loop keeps `--window` messages in flight; open-loop
//! sends at `--rate` total msg/s and measures from the scheduled send time (no coordinated
//! omission). `--stream-per-message` opens a new stream per request instead, which also
//! fits servers that answer each stream once (e.g. wtransport's example server, with
//! `--expect any`). Datagrams (`--datagrams`) carry `[seq][send µs]` in hex and are unreliable:
//! their loss is reported, not failed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::{mpsc, Semaphore};
use wtransport::Connection;

use super::client::{ClientArgs, EndpointPool};
use super::measure::{Mark, Window};
use super::report::RunFigures;
use super::stats::{Counter, Lat, Recorder, Stats};
use super::{progress_ticker, sleep_or_stop, Ctx, Outcome, Stop};

/// What counts as a correct reply.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The reply must equal the request byte for byte.
    Echo,
    /// Any non-empty reply counts (for servers that acknowledge instead of echoing).
    Any,
}

/// Flags of the `echo` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Concurrent sessions.
    #[arg(long, env = "LOADGEN_SESSIONS", default_value_t = 10)]
    pub sessions: usize,
    /// Message size in bytes (at least 16).
    #[arg(long, env = "LOADGEN_SIZE", default_value_t = 64)]
    pub size: usize,
    /// Closed loop: messages in flight per session.
    #[arg(long, env = "LOADGEN_WINDOW", default_value_t = 1)]
    pub window: usize,
    /// Open loop: total messages per second over all sessions (0 = closed loop).
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Also send datagrams, this many per second per session (0 = none).
    #[arg(long, env = "LOADGEN_DATAGRAMS", default_value_t = 0.0)]
    pub datagrams: f64,
    /// Open a new bidi stream per message (request, finish, read to end).
    #[arg(long, env = "LOADGEN_STREAM_PER_MESSAGE")]
    pub stream_per_message: bool,
    /// What counts as a correct reply.
    #[arg(long, env = "LOADGEN_EXPECT", value_enum, default_value_t = Expect::Echo)]
    pub expect: Expect,
    /// After the measured phase, wait this long for outstanding replies (seconds).
    #[arg(long, env = "LOADGEN_DRAIN", default_value_t = 2.0)]
    pub drain: f64,
}

/// Builds message `seq` of `size` bytes: 16 hex digits of `seq`, then one letter.
pub fn message(seq: u64, size: usize) -> Vec<u8> {
    let mut m = vec![b'a' + (seq % 26) as u8; size.max(16)];
    m[..16].copy_from_slice(format!("{seq:016x}").as_bytes());
    m
}

/// Reads the 16 hex digits at `at` of a message or datagram.
pub fn hex_at(m: &[u8], at: usize) -> Option<u64> {
    let s = std::str::from_utf8(m.get(at..at + 16)?).ok()?;
    u64::from_str_radix(s, 16).ok()
}

struct Session {
    stats: Arc<Stats>,
    args: Arc<EchoArgs>,
    stop: Arc<Stop>,
    base: Instant,
    /// Interval between sends of this session in open loop.
    period: Option<Duration>,
}

pub async fn run(args: EchoArgs, ctx: Ctx) -> anyhow::Result<Outcome> {
    if args.sessions == 0 || args.sessions > ctx.run.max_sessions {
        bail!(
            "--sessions {} must be 1..=--max-sessions {}",
            args.sessions,
            ctx.run.max_sessions
        );
    }
    if args.size < 16 || args.size > 1 << 20 {
        bail!("--size must be 16..=1048576 bytes");
    }
    if args.expect == Expect::Any && !args.stream_per_message {
        bail!("--expect any needs --stream-per-message (a persistent stream cannot be framed)");
    }
    let target = args.client.resolve()?;
    let pool = Arc::new(EndpointPool::new(&args.client, &target, args.sessions)?);
    let stats = ctx.stats.clone();
    let stop = Arc::new(Stop::default());
    let window = args.window.clamp(1, 4096);
    let period =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.sessions as f64 / args.rate));
    let args = Arc::new(EchoArgs { window, ..args });
    eprintln!(
        "echo: {} sessions → {} ({} B, {})",
        args.sessions,
        target.url,
        args.size,
        match period {
            Some(_) => format!("open loop {} msg/s", args.rate),
            None => format!("closed loop, window {window}"),
        }
    );
    let ticker = tokio::spawn(progress_ticker(
        stats.clone(),
        ctx.run.progress,
        Lat::Rtt,
        Counter::Completed,
        stop.clone(),
    ));
    let base = Instant::now();
    let mut tasks = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        let s = Session {
            stats: stats.clone(),
            args: args.clone(),
            stop: stop.clone(),
            base,
            period,
        };
        let ep = pool.get();
        let url = target.url.clone();
        tasks.push(tokio::spawn(async move { s.run(ep, url).await }));
    }
    // Measured phase: after --warmup, for --duration; latencies restart with it.
    let measure = &ctx.run.measure;
    let start_at = base + measure.warmup();
    if !measure.warmup().is_zero() && !sleep_or_stop(start_at, &ctx.interrupt).await {
        stats.reset_latency(Lat::Rtt);
        stats.reset_latency(Lat::Datagram);
    }
    let start = Mark::open(&stats, measure, ctx.run.duration()).await;
    sleep_or_stop(start_at + ctx.run.duration(), &ctx.interrupt).await;
    let end = Mark::take(&stats, measure).await;
    stop.trigger();
    for t in tasks {
        let _ = t.await;
    }
    let _ = ticker.await;
    let window = Window::between(
        &start,
        &end,
        Counter::Completed,
        "round trip",
        ctx.run.threads(),
        measure,
    );
    let mut figures = RunFigures::collect(&stats, window.duration_s);
    figures.rate_between("round_trips_per_s", Counter::Completed, &start, &end);
    figures.rate_between("datagrams_per_s", Counter::DatagramsReceived, &start, &end);
    figures.throughput.insert(
        "bytes_per_s".into(),
        window.ops_per_s * args.size as f64 * 2.0,
    );
    let mut failures = figures.nonzero(&[
        (Counter::Mismatch, "echo replies differ from the request"),
        (Counter::Unanswered, "requests never answered"),
        (Counter::SessionsFailed, "sessions failed to connect"),
    ]);
    if figures.counter(Counter::Completed) == 0 {
        failures.push("no round trip completed".into());
    }
    if figures.error_total() > 0 {
        failures.push(format!("{} errors", figures.error_total()));
    }
    Ok(Outcome {
        figures,
        failures,
        steps: vec![],
        capacity: None,
        window: Some(window),
    })
}

impl Session {
    async fn run(self, ep: Arc<super::client::ClientEndpoint>, url: String) {
        let t0 = Instant::now();
        let conn = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(10), ep.connect(url)) => c,
            _ = self.stop.wait() => return,
        };
        let conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.stats.add(Counter::SessionsFailed, 1);
                self.stats.error(label("connect", &e));
                return;
            }
            Err(_) => {
                self.stats.add(Counter::SessionsFailed, 1);
                self.stats.error("connect:timeout");
                return;
            }
        };
        let mut rec = Recorder::new(t0);
        rec.record(Lat::Connect, t0.elapsed());
        rec.add(Counter::SessionsOk, 1);
        self.stats.udp.register(conn.quic_connection());
        self.stats
            .live_sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = Arc::new(conn);
        let dgram = (self.args.datagrams > 0.0).then(|| {
            let d = Datagrams {
                conn: conn.clone(),
                stats: self.stats.clone(),
                stop: self.stop.clone(),
                base: self.base,
                rate: self.args.datagrams,
                size: self.args.size,
                expect: self.args.expect,
            };
            tokio::spawn(d.run())
        });
        let r = if self.args.stream_per_message {
            self.per_message(&conn, &mut rec).await
        } else {
            self.persistent(&conn, &mut rec).await
        };
        if let Err(e) = r {
            rec.add(Counter::SessionsLost, 1);
            self.stats.error(label("stream", &e));
        }
        if let Some(d) = dgram {
            let _ = d.await;
        }
        rec.flush(&self.stats, Instant::now());
        self.stats
            .live_sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        conn.close(0u32.into(), b"done");
    }

    /// One long-lived bidi stream; writer and reader run concurrently, paired FIFO.
    async fn persistent(&self, conn: &Connection, rec: &mut Recorder) -> anyhow::Result<()> {
        let (mut send, mut recv) = conn.open_bi().await?.await?;
        let size = self.args.size;
        // Closed loop: a message takes a permit before it is written and its reply gives
        // it back once read, so exactly `--window` are in flight. (The channel alone would
        // allow one more: the reader takes a message's entry off it before the reply comes.)
        // Open loop: the channel caps the backlog.
        let cap = if self.period.is_some() {
            self.args.window.max(1024)
        } else {
            self.args.window
        };
        let in_flight = Semaphore::new(self.args.window);
        let in_flight = &in_flight;
        let closed_loop = self.period.is_none();
        let (tx, mut rx) = mpsc::channel::<(u64, Instant)>(cap);
        let stop = self.stop.clone();
        let stats = self.stats.clone();
        let period = self.period;
        let writer = async move {
            let mut seq = 0u64;
            let mut backlog = 0u64;
            let mut tick = period.map(|p| {
                tokio::time::interval_at(
                    tokio::time::Instant::now() + p.mul_f64(rand::random::<f64>()),
                    p,
                )
            });
            loop {
                if let Some(t) = tick.as_mut() {
                    // Open loop: the round trip counts from the scheduled send time.
                    let sched =
                        tokio::select! { i = t.tick() => i.into_std(), _ = stop.wait() => break };
                    if stop.is_set() {
                        break;
                    }
                    if tx.try_send((seq, sched)).is_err() {
                        backlog += 1;
                        continue;
                    }
                } else {
                    // Closed loop: from the moment the window lets this message go.
                    tokio::select! {
                        p = in_flight.acquire() => match p {
                            Ok(p) => p.forget(),
                            Err(_) => break,
                        },
                        _ = stop.wait() => break,
                    }
                    if stop.is_set() || tx.send((seq, Instant::now())).await.is_err() {
                        break;
                    }
                }
                if let Err(e) = send.write_all(&message(seq, size)).await {
                    stats.error(label("write", &e));
                    break;
                }
                seq += 1;
            }
            stats.add(Counter::Sent, seq);
            stats.add(Counter::Backlogged, backlog);
            let _ = send.finish().await;
        };
        let drain = Duration::from_secs_f64(self.args.drain.clamp(0.0, 60.0));
        let reader = async {
            let mut buf = vec![0u8; size];
            loop {
                let Some((seq, sent)) = rx.recv().await else {
                    break;
                };
                let read = if self.stop.is_set() {
                    tokio::time::timeout(drain, recv.read_exact(&mut buf)).await
                } else {
                    tokio::select! {
                        r = recv.read_exact(&mut buf) => Ok(r),
                        _ = async { self.stop.wait().await; tokio::time::sleep(drain).await } => break_read(),
                    }
                };
                match read {
                    Ok(Ok(())) => {
                        let now = Instant::now();
                        if closed_loop {
                            in_flight.add_permits(1);
                        }
                        rec.record(Lat::Rtt, now.saturating_duration_since(sent));
                        rec.add(Counter::Completed, 1);
                        if buf != message(seq, size) {
                            rec.add(Counter::Mismatch, 1);
                        }
                        rec.maybe_flush(&self.stats, now);
                    }
                    _ => {
                        rec.add(Counter::Unanswered, 1 + rx.len() as u64);
                        break;
                    }
                }
            }
        };
        tokio::join!(writer, reader);
        Ok(())
    }

    /// A new bidi stream per message, `--window` of them concurrently.
    async fn per_message(&self, conn: &Connection, rec: &mut Recorder) -> anyhow::Result<()> {
        let workers = if self.period.is_some() {
            1
        } else {
            self.args.window
        };
        let mut set = tokio::task::JoinSet::new();
        for w in 0..workers {
            let conn = conn.clone();
            let stats = self.stats.clone();
            let stop = self.stop.clone();
            let args = self.args.clone();
            let period = self.period;
            set.spawn(async move {
                let mut rec = Recorder::new(Instant::now());
                let mut seq = (w as u64) << 40;
                let mut tick = period.map(|p| tokio::time::interval(p));
                while !stop.is_set() {
                    let sched = match tick.as_mut() {
                        Some(t) => tokio::select! { i = t.tick() => i.into_std(), _ = stop.wait() => break },
                        None => Instant::now(),
                    };
                    let msg = message(seq, args.size);
                    seq += 1;
                    rec.add(Counter::Sent, 1);
                    match one_request(&conn, &msg).await {
                        Ok(reply) => {
                            let now = Instant::now();
                            rec.record(Lat::Rtt, now.saturating_duration_since(sched));
                            rec.add(Counter::Completed, 1);
                            let ok = match args.expect {
                                Expect::Echo => reply == msg,
                                Expect::Any => !reply.is_empty(),
                            };
                            if !ok {
                                rec.add(Counter::Mismatch, 1);
                            }
                            rec.maybe_flush(&stats, now);
                        }
                        Err(e) => {
                            stats.error(label("stream", &e));
                            break;
                        }
                    }
                }
                rec.flush(&stats, Instant::now());
            });
        }
        while set.join_next().await.is_some() {}
        rec.flush(&self.stats, Instant::now());
        Ok(())
    }
}

fn break_read(
) -> Result<Result<(), wtransport::error::StreamReadExactError>, tokio::time::error::Elapsed> {
    Ok(Err(wtransport::error::StreamReadExactError::FinishedEarly(
        0,
    )))
}

/// Open a stream, send `msg`, finish, read the reply to its end (at most 1 MiB).
async fn one_request(conn: &Connection, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    // A server that answers after its first read may stop our side early (STOP_SENDING,
    // RFC 9000 §3.5); its reply still counts, so write errors only matter without one.
    let written = send.write_all(msg).await;
    let _ = send.finish().await;
    let mut out = Vec::with_capacity(msg.len());
    let mut buf = vec![0u8; 16 * 1024];
    while let Some(n) = tokio::time::timeout(Duration::from_secs(10), recv.read(&mut buf)).await?? {
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
        if out.len() > 1 << 20 {
            bail!("reply larger than 1 MiB");
        }
    }
    if out.is_empty() {
        written?;
    }
    Ok(out)
}

struct Datagrams {
    conn: Arc<Connection>,
    stats: Arc<Stats>,
    stop: Arc<Stop>,
    base: Instant,
    rate: f64,
    size: usize,
    expect: Expect,
}

impl Datagrams {
    async fn run(self) {
        let size = self
            .size
            .min(self.conn.max_datagram_size().unwrap_or(1200))
            .max(32);
        let period = Duration::from_secs_f64(1.0 / self.rate.max(0.001));
        let mut tick = tokio::time::interval(period);
        let mut rec = Recorder::new(Instant::now());
        let mut seq = 0u64;
        let mut pending: VecDeque<u64> = VecDeque::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.stop.is_set() { break }
                    let mut m = message(seq, size);
                    let us = self.base.elapsed().as_micros() as u64;
                    m[16..32].copy_from_slice(format!("{us:016x}").as_bytes());
                    if self.conn.send_datagram(m).is_ok() {
                        rec.add(Counter::DatagramsSent, 1);
                        if pending.len() < 4096 { pending.push_back(us); }
                    }
                    seq += 1;
                }
                d = self.conn.receive_datagram() => {
                    let Ok(d) = d else { break };
                    let now = Instant::now();
                    rec.add(Counter::DatagramsReceived, 1);
                    if self.expect == Expect::Echo {
                        if let Some(us) = hex_at(&d.payload(), 16) {
                            let sent = self.base + Duration::from_micros(us);
                            rec.record(Lat::Datagram, now.saturating_duration_since(sent));
                        }
                    } else if let Some(us) = pending.pop_front() {
                        rec.record(Lat::Datagram, now.saturating_duration_since(self.base + Duration::from_micros(us)));
                    }
                    rec.maybe_flush(&self.stats, now);
                }
                _ = self.stop.wait() => break,
            }
        }
        rec.flush(&self.stats, Instant::now());
    }
}

/// How many errors a run prints in full on stderr (see [`label`]).
const ERRORS_IN_FULL: u32 = 5;

/// The counted label of an error at `step` (`connect:connection closed by peer`). The
/// label drops what varies (codes, reasons) so that errors add up by kind; the first
/// [`ERRORS_IN_FULL`] errors of the process are also printed whole on stderr, so that a
/// rare failure still shows which close code or reason the peer gave.
pub fn label(step: &str, e: &impl std::fmt::Display) -> String {
    static PRINTED: AtomicU32 = AtomicU32::new(0);
    let full = e.to_string();
    if PRINTED.fetch_add(1, Ordering::Relaxed) < ERRORS_IN_FULL {
        eprintln!("error at {step}: {full}");
    }
    code(step, &full)
}

/// The counted label of a failure at `step` that is not printed (an attempt that will be
/// retried is not an error yet).
pub fn code(step: &str, e: &impl std::fmt::Display) -> String {
    format!("{step}:{}", short(&e.to_string()))
}

/// Shortens an error text into a stable code-like label.
pub fn short(s: &str) -> String {
    s.split([':', '('])
        .next()
        .unwrap_or(s)
        .trim()
        .chars()
        .take(48)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let m = message(27, 20);
        assert_eq!(&m[..16], b"000000000000001b");
        assert_eq!(&m[16..], b"bbbb");
        assert_eq!(hex_at(&m, 0), Some(27));
        assert!(
            std::str::from_utf8(&message(u64::MAX, 64)).is_ok(),
            "text payload"
        );
        assert_eq!(
            message(1, 2).len(),
            16,
            "never shorter than the sequence number"
        );
        assert_eq!(hex_at(b"zz", 0), None);
    }

    #[test]
    fn short_error_labels() {
        assert_eq!(short("connection lost: timed out"), "connection lost");
        assert_eq!(short("x".repeat(100).as_str()).len(), 48);
        assert_eq!(
            label("connect", &"connection closed by peer: 0x100 (H3_NO_ERROR)"),
            "connect:connection closed by peer"
        );
        assert_eq!(code("join", &"timed out: after 5 s"), "join:timed out");
    }
}

//! Hostile clients against the real `mc-service` binary on loopback, below the signaling:
//! memory held for unread data, stream credit after resets, session ids, session close
//! codes on the wire, streams and datagrams of other sessions, broken stream headers,
//! the CONNECT-stream capsule parser, deadlines before a session exists, the CPU cost
//! of requests that open no session, and RFC 9114 MUSTs. The client is
//! tests/support/h3raw.rs (quinn, every byte chosen by the test), and for packets no
//! QUIC stack would send, `quic-empty-frames` (bench/, it seals its own packets).
//!
//! The servers run as `mc-service --dev --shards 2 --enable-echo` (plus the flags a test
//! names) with a fresh dev dir and free loopback ports. Every wait is bounded, and each
//! failure says what the server did instead.

#[path = "support/h3raw.rs"]
mod h3raw;
mod harness;

use std::time::{Duration, Instant, SystemTime};

use h3raw::{app_code, describe, dev_cert_hash, stuff, wire, Client, End, Options, Session};
use harness::client::runtime;
use harness::Server;
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{client_message as C, pb, server_message as S};
use mc_service::signaling::proto::{ClientMessage, ServerMessage};
use prost::Message as _;
use quinn::VarInt;

// ---------------------------------------------------------------------------------------
// Servers, clients, measurements
// ---------------------------------------------------------------------------------------

/// `mc-service --dev --shards <shards> --enable-echo <extra>` with `env`.
fn start_with(shards: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut args = vec!["--shards", shards, "--enable-echo"];
    args.extend_from_slice(extra);
    Server::start_dev_env(&args, env)
}

fn start(extra: &[&str]) -> Server {
    start_with("2", extra, &[])
}

async fn connect_with(server: &Server, opts: Options) -> Client {
    Client::connect(server.webtransport, dev_cert_hash(&server.dev_dir), opts)
        .await
        .unwrap_or_else(|e| panic!("connecting to the server: {e}"))
}

async fn connect(server: &Server) -> Client {
    connect_with(server, Options::default()).await
}

/// The server's resident set (VmRSS), KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("server /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// RSS after a short settle.
async fn settled_rss(server: &Server) -> u64 {
    tokio::time::sleep(Duration::from_millis(800)).await;
    rss_kib(server)
}

/// Most RSS growth one attacked connection may cost.
const MAX_GROWTH_PER_CONN_KIB: u64 = 512;

/// `before`: RSS with no attack connection; `opened`: with the connections open, before
/// the attack; `after`: after the attack. The limit covers the connections themselves.
fn check_growth(
    what: &str,
    before: u64,
    opened: u64,
    after: u64,
    conns: u64,
) -> Result<(), String> {
    let growth = after.saturating_sub(before);
    let idle = opened.saturating_sub(before);
    eprintln!(
        "{what}: RSS {before} KiB, {opened} KiB with the connections open, {after} KiB after \
         the attack: +{growth} KiB for {conns} connections ({} KiB each, of which {} KiB \
         before any attack byte)",
        growth / conns,
        idle / conns
    );
    if growth > MAX_GROWTH_PER_CONN_KIB * conns {
        return Err(format!(
            "{what}: server RSS grew by {growth} KiB for {conns} attacked connections ({} KiB \
             each, limit {MAX_GROWTH_PER_CONN_KIB} KiB; {} KiB each before the attack): \
             unread data is pinning memory",
            growth / conns,
            idle / conns
        ));
    }
    Ok(())
}

/// The server's RSS after an attack, checked with [`check_growth`]: the first check of
/// the attack's failures.
async fn rss_after_attack(
    server: &Server,
    what: &str,
    before: u64,
    opened: u64,
    conns: usize,
) -> Failures {
    let after = settled_rss(server).await;
    let mut failures = Failures::default();
    failures.check(
        "RSS growth",
        check_growth(what, before, opened, after, conns as u64),
    );
    failures
}

/// Wait (up to 3 s: shards copy their counters to /metrics about once a second) for
/// the series of `name` with `labels` to rise above `before`; returns the last value.
fn metric_rises(server: &Server, name: &str, labels: &[&str], before: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = metric(server, name, labels);
        if now > before || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of every series of `name` whose line contains all of `labels`.
fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Open and use a few ordinary sessions so first-use allocations are not counted as
/// growth later.
async fn warm_up(server: &Server, conns: usize) {
    let mut clients = Vec::new();
    for _ in 0..conns {
        let c = connect(server).await;
        let s = c.session("/echo").await;
        c.echo_stream(s.id, b"warm-up")
            .await
            .unwrap_or_else(|e| panic!("warm-up echo: {e}"));
        clients.push(c);
        let c = connect(server).await;
        c.session("/").await;
        clients.push(c);
    }
    for c in clients {
        c.close().await;
    }
}

/// A normal `/echo` session on a fresh connection: stream and datagram echo.
async fn normal_echo(server: &Server) -> Result<(), String> {
    let c = connect(server).await;
    let s = c
        .webtransport("/echo", &[])
        .await
        .map_err(|e| format!("a normal session after the attack: {e}"))?;
    if s.status != 200 {
        return Err(format!(
            "a normal /echo CONNECT after the attack got {}",
            s.status
        ));
    }
    let got = c
        .echo_stream(s.id, b"still serving")
        .await
        .map_err(|e| format!("a normal echo stream after the attack: {e}"))?;
    if got != b"still serving" {
        return Err(format!("echo after the attack returned {got:?}"));
    }
    c.echo_datagram(s.id, b"still serving", Duration::from_secs(3))
        .await
        .map_err(|e| format!("after the attack: {e}"))?;
    c.close().await;
    Ok(())
}

/// Collect failures of independent checks and report them all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, what: &str, r: Result<(), String>) {
        match r {
            Ok(()) => eprintln!("ok: {what}"),
            Err(e) => {
                eprintln!("FAILED: {what}: {e}");
                self.0.push(format!("{what}: {e}"));
            }
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} check(s) failed:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// A client's stream pair.
type Streams = (quinn::SendStream, quinn::RecvStream);

/// Run `write` on every stream's sending half at once (each returns what it got
/// through, and the half); the sum of those, and the streams back to keep them open.
async fn write_on_all<F, Fut>(
    streams: Vec<Streams>,
    within: Duration,
    write: F,
) -> (usize, Vec<Streams>)
where
    F: Fn(quinn::SendStream) -> Fut,
    Fut: std::future::Future<Output = (usize, quinn::SendStream)> + Send + 'static,
{
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(send, recv)| {
            let writing = tokio::spawn(write(send));
            (writing, recv)
        })
        .collect();
    let mut total = 0;
    let mut back = Vec::new();
    for (writing, recv) in tasks {
        let (n, send) = tokio::time::timeout(within, writing)
            .await
            .expect("writing timed out")
            .expect("writing task");
        total += n;
        back.push((send, recv));
    }
    (total, back)
}

// ---------------------------------------------------------------------------------------
// Signaling over the raw client
// ---------------------------------------------------------------------------------------

fn token(keys: &DevKeys, meeting: &str, user: &str) -> String {
    keys.mint_meeting_token(
        meeting,
        user,
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

fn client_frame(msg: C::Message) -> Vec<u8> {
    wire::signaling_frame(&ClientMessage::of(msg))
}

fn join_frame(meeting: &str, join_token: &str, name: &str) -> Vec<u8> {
    client_frame(C::Message::JoinRequest(pb::JoinRequest {
        meeting_id: meeting.into(),
        join_token: join_token.into(),
        participant_name: name.into(),
        ..Default::default()
    }))
}

/// A `/` session with its signaling stream opened by `first` (a frame, or part of one).
struct Signaling {
    client: Client,
    session: Session,
    send: quinn::SendStream,
    reader: h3raw::StreamReader,
}

impl Signaling {
    async fn open(server: &Server, first: &[u8]) -> Signaling {
        let client = connect(server).await;
        let session = client.session("/").await;
        let (send, recv) = client
            .wt_bidi(session.id, first)
            .await
            .unwrap_or_else(|e| panic!("signaling stream: {e}"));
        Signaling {
            client,
            session,
            send,
            reader: h3raw::StreamReader::new(recv),
        }
    }

    /// The next server message within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<ServerMessage, End> {
        let head = self.reader.read_raw(4, wait).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let body = self.reader.read_raw(len, wait).await?;
        ServerMessage::decode(&body[..])
            .map_err(|e| End::Lost(format!("undecodable ServerMessage: {e}"), None))
    }

    /// Join (valid token) and expect a JoinResponse.
    async fn joined(server: &Server, keys: &DevKeys, meeting: &str, user: &str) -> Signaling {
        let frame = join_frame(meeting, &token(keys, meeting, user), user);
        let mut s = Signaling::open(server, &frame).await;
        match s.next(Duration::from_secs(10)).await {
            Ok(ServerMessage {
                message: Some(S::Message::JoinResponse(_)),
                ..
            }) => s,
            other => panic!("{user} did not join {meeting}: {other:?}"),
        }
    }
}

/// The server-initiated session close the client must see (signaling rule 5,
/// draft-ietf-webtrans-http3 §5): CLOSE_WEBTRANSPORT_SESSION with `code` on the CONNECT
/// stream, FIN on it, then the QUIC close with H3_NO_ERROR.
async fn expect_session_close(
    client: &Client,
    session: &mut Session,
    code: u32,
    wait: Duration,
) -> Result<(), String> {
    match session.reader.close_capsule(wait).await {
        Ok((got, reason)) if got == code => {
            eprintln!(
                "capsule 0x{got:x} {:?}",
                String::from_utf8_lossy(&reason).to_string()
            );
        }
        Ok((got, reason)) => {
            return Err(format!(
                "CLOSE_WEBTRANSPORT_SESSION carried 0x{got:x} ({:?}), expected 0x{code:x}",
                String::from_utf8_lossy(&reason)
            ))
        }
        Err(End::Lost(how, _)) => {
            return Err(format!(
                "no CLOSE_WEBTRANSPORT_SESSION capsule (expected 0x{code:x}): the connection \
                 ended first ({how})"
            ))
        }
        Err(End::Fin) => {
            return Err(format!(
                "the CONNECT stream was finished without a CLOSE_WEBTRANSPORT_SESSION capsule \
                 (expected 0x{code:x})"
            ))
        }
        Err(End::Reset(c)) => {
            return Err(format!(
                "the CONNECT stream was reset (0x{c:x}) instead of carrying a \
                 CLOSE_WEBTRANSPORT_SESSION capsule (expected 0x{code:x})"
            ))
        }
        Err(End::Timeout) => {
            return Err(format!(
                "no CLOSE_WEBTRANSPORT_SESSION capsule within {wait:?} (expected 0x{code:x})"
            ))
        }
    }
    match session.reader.end(Duration::from_secs(3)).await {
        End::Fin => {}
        other => {
            return Err(format!(
                "after the capsule the CONNECT stream was not finished: {other:?}"
            ))
        }
    }
    match client.closed_within(Duration::from_secs(5)).await {
        Some(e) if app_code(&e) == Some(wire::H3_NO_ERROR) => Ok(()),
        Some(e) => Err(format!(
            "after the capsule the connection closed with {}, expected H3_NO_ERROR",
            describe(&e)
        )),
        None => Err("the server did not close the connection within 5 s of the capsule".into()),
    }
}

/// The session must end within `wait`: the connection closed with H3_NO_ERROR (one
/// session per connection) or the CONNECT stream finished.
async fn expect_session_ended(
    client: &Client,
    session: &mut Session,
    wait: Duration,
) -> Result<(), String> {
    let end = tokio::select! {
        e = session.reader.end(wait) => e,
        c = client.conn.closed() => End::Lost(describe(&c), app_code(&c)),
    };
    match end {
        End::Fin => Ok(()),
        End::Lost(_, Some(wire::H3_NO_ERROR)) => Ok(()),
        End::Lost(how, _) => Err(format!(
            "the connection closed with {how}, expected H3_NO_ERROR"
        )),
        End::Reset(code) => Err(format!("the CONNECT stream was reset with 0x{code:x}")),
        End::Timeout => Err(format!(
            "the session was still open {wait:?} later (no FIN on the CONNECT stream, \
             connection open)"
        )),
    }
}

/// The connection must be closed with one of `codes` within `wait`.
async fn expect_conn_error(client: &Client, codes: &[u64], wait: Duration) -> Result<(), String> {
    let names: Vec<String> = codes.iter().map(|c| format!("0x{c:x}")).collect();
    match client.closed_within(wait).await {
        Some(e) if app_code(&e).is_some_and(|c| codes.contains(&c)) => Ok(()),
        Some(e) => Err(format!(
            "the connection closed with {}, expected {}",
            describe(&e),
            names.join(" or ")
        )),
        None => Err(format!(
            "the connection was still open {wait:?} later, expected a close with {}",
            names.join(" or ")
        )),
    }
}

fn still_open(client: &Client) -> Result<(), String> {
    match client.conn.close_reason() {
        None => Ok(()),
        Some(e) => Err(format!("the connection was closed: {}", describe(&e))),
    }
}

// ---------------------------------------------------------------------------------------
// Unread data does not pin memory
// ---------------------------------------------------------------------------------------

#[test]
fn unread_datagrams_do_not_pin_receive_buffers() {
    const CONNS: usize = 8;
    const DATAGRAMS: usize = 200;
    let server = start(&[]);
    runtime().block_on(async {
        warm_up(&server, CONNS).await;
        let before = settled_rss(&server).await;
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            let c = connect(&server).await;
            let s = c.session("/").await;
            clients.push((c, s));
        }
        let opened = settled_rss(&server).await;
        // One datagram per packet (spaced), on every connection at once: each may land
        // in its own receive buffer.
        let mut sends = Vec::new();
        for (c, s) in &clients {
            let conn = c.conn.clone();
            let quarter = s.id / 4;
            sends.push(tokio::spawn(async move {
                for i in 0..DATAGRAMS {
                    let mut d = wire::varint(quarter);
                    d.push(i as u8);
                    let _ = conn.send_datagram(d.into());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        for t in sends {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("datagram sends timed out")
                .expect("datagram task");
        }
        let mut failures = rss_after_attack(
            &server,
            &format!("{DATAGRAMS} unread one-byte datagrams on each of {CONNS} `/` sessions"),
            before,
            opened,
            CONNS,
        )
        .await;
        failures.check("normal echo afterwards", normal_echo(&server).await);
        for (c, _) in clients {
            c.close().await;
        }
        failures.assert_none();
    });
}

#[test]
fn unread_stream_data_is_bounded() {
    const CONNS: usize = 4;
    const EXTRA_STREAMS: usize = 3;
    let server = start(&[]);
    runtime().block_on(async {
        warm_up(&server, CONNS).await;
        let before = settled_rss(&server).await;
        let mut held = Vec::new();
        let mut extra = Vec::new();
        for _ in 0..CONNS {
            // An incomplete first signaling frame: 64 KiB declared, one byte short.
            let mut first = 65_536u32.to_be_bytes().to_vec();
            first.extend(vec![0x0a; 65_535]);
            let sig = Signaling::open(&server, &first).await;
            // Streams of the session the signaling never reads.
            for _ in 0..EXTRA_STREAMS {
                let (send, recv) = sig
                    .client
                    .wt_bidi(sig.session.id, b"unread")
                    .await
                    .unwrap_or_else(|e| panic!("extra stream: {e}"));
                extra.push((send, recv));
            }
            held.push(sig);
        }
        let opened = settled_rss(&server).await;
        let (total_written, streams) =
            write_on_all(extra, Duration::from_secs(10), |mut send| async move {
                let n = stuff(&mut send, 8 << 20, Duration::from_secs(3)).await;
                (n, send)
            })
            .await;
        eprintln!(
            "the server's flow control took {} KiB on {} unread streams",
            total_written / 1024,
            CONNS * EXTRA_STREAMS
        );
        let mut failures = rss_after_attack(
            &server,
            &format!(
                "a partial 64 KiB signaling frame and {EXTRA_STREAMS} unread streams \
                     ({} KiB accepted in all) on each of {CONNS} `/` sessions",
                total_written / 1024
            ),
            before,
            opened,
            CONNS,
        )
        .await;
        failures.check("normal echo afterwards", normal_echo(&server).await);
        drop(streams);
        for s in held {
            s.client.close().await;
        }
        failures.assert_none();
    });
}

/// Stream data a byte per packet on streams the server does not read yet: QUIC keeps
/// each byte as a slice of the datagram it came in, so every packet would hold a whole
/// receive buffer. The streams name as their session a request whose HEADERS are still
/// arriving, so the server keeps them unread until it knows whether that request opens
/// a session. The server charges a connection for the buffers it holds and closes it
/// with H3_EXCESSIVE_LOAD past its budget, counted as
/// `mc_refusals_total{reason="receive_budget"}`.
#[test]
fn stream_data_a_byte_per_packet_is_bounded() {
    const CONNS: usize = 4;
    const STREAMS: usize = 4;
    const WRITES: usize = 1_000;
    let server = start(&[]);
    runtime().block_on(async {
        warm_up(&server, CONNS).await;
        let before = settled_rss(&server).await;
        let refused = metric(&server, "mc_refusals_total", &["reason=\"receive_budget\""]);
        let mut held = Vec::new();
        let mut streams = Vec::new();
        for _ in 0..CONNS {
            let client = connect(&server).await;
            // Stream 0: a HEADERS frame that never completes.
            let request = client
                .open_bi_with(&wire::frame_header(0x01, 4_096))
                .await
                .unwrap_or_else(|e| panic!("request stream: {e}"));
            for _ in 0..STREAMS {
                let (send, recv) = client
                    .wt_bidi(0, b"u")
                    .await
                    .unwrap_or_else(|e| panic!("stream naming session 0: {e}"));
                streams.push((send, recv));
            }
            held.push((client, request));
        }
        let opened = settled_rss(&server).await;
        // One byte per write, a millisecond apart: a packet (or one per stream) each.
        let (written, streams) =
            write_on_all(streams, Duration::from_secs(20), |mut send| async move {
                let mut written = 0;
                for i in 0..WRITES {
                    if send.write_all(&[i as u8]).await.is_err() {
                        break;
                    }
                    written += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (written, send)
            })
            .await;
        eprintln!(
            "{written} one-byte writes accepted on {} streams",
            CONNS * STREAMS
        );
        let mut failures = rss_after_attack(
            &server,
            &format!(
                "{WRITES} one-byte writes a millisecond apart on each of {STREAMS} \
                     streams waiting for their session, on {CONNS} connections"
            ),
            before,
            opened,
            CONNS,
        )
        .await;
        for (i, (client, _)) in held.iter().enumerate() {
            failures.check(
                &format!("connection {i} closed with H3_EXCESSIVE_LOAD"),
                expect_conn_error(client, &[0x107], Duration::from_secs(2)).await,
            );
        }
        let now = metric_rises(
            &server,
            "mc_refusals_total",
            &["reason=\"receive_budget\""],
            refused,
        );
        failures.check(
            "mc_refusals_total{reason=\"receive_budget\"}",
            if now >= refused + CONNS as f64 {
                Ok(())
            } else {
                Err(format!("rose from {refused} to {now}, expected +{CONNS}"))
            },
        );
        failures.check("normal echo afterwards", normal_echo(&server).await);
        drop(streams);
        for (client, request) in held {
            drop(request);
            client.close().await;
        }
        failures.assert_none();
    });
}

/// `quic-empty-frames` from `target/<profile>/`, built with the workspace.
fn empty_frames_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>")
        .join("quic-empty-frames");
    assert!(
        bin.exists(),
        "{} missing: build the workspace (`cargo build --workspace --bins`)",
        bin.display()
    );
    bin
}

/// `conns` connections one after another, each sending packets of empty STREAM frames
/// for `secs` as fast as the socket takes them; each stays open afterwards.
fn send_empty_frames(server: &Server, conns: usize, secs: f64) {
    let out = std::process::Command::new(empty_frames_bin())
        .arg("--target")
        .arg(server.webtransport.to_string())
        .arg("--dev-dir")
        .arg(&server.dev_dir)
        .args(["--conns", &conns.to_string(), "--secs", &secs.to_string()])
        .output()
        .expect("run quic-empty-frames");
    assert!(
        out.status.success(),
        "quic-empty-frames failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "quic-empty-frames: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// Packets full of STREAM frames that bring no byte (390 frames `0a 00 00` on an open
/// stream in each 1,200-byte packet, sealed by the client itself) make quinn-proto queue
/// a readable event per frame, and its queue keeps the room it grows to. The server
/// takes them after each datagram and lets a repeated event wait once: it keeps no
/// memory per frame and goes on serving.
#[test]
fn packets_of_empty_stream_frames_hold_no_memory_per_frame() {
    const CONNS: usize = 4;
    let server = start_with("1", &["--connect-timeout-ms", "60000"], &[]);
    runtime().block_on(async {
        warm_up(&server, 2).await;
        // A first attack grows what the shard's receive path keeps whoever sends (its
        // pool of datagram buffers at a full pass): not the connections' growth.
        send_empty_frames(&server, 1, 1.0);
        let before = settled_rss(&server).await;
        send_empty_frames(&server, CONNS, 1.0);
        let mut failures = rss_after_attack(
            &server,
            &format!("packets of empty STREAM frames on {CONNS} connections"),
            before,
            before,
            CONNS,
        )
        .await;
        failures.check("normal echo afterwards", normal_echo(&server).await);
        failures.assert_none();
    });
}

/// A short header's first DCID byte names the shard that owns the connection, and a
/// shard forwards a datagram whose byte names another one. Anyone can send such a
/// datagram, with any byte: only the data shards are forwarded to. The mesh id just
/// above them is the control plane's, which takes no datagrams, and the rest name
/// nobody; those datagrams are handled where they land (no connection has their DCID,
/// so QUIC drops them).
#[test]
fn short_headers_naming_no_data_shard_are_not_forwarded() {
    let server = start(&[]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let forwarded = |server: &Server| {
        metric(server, "mc_datagrams_forwarded_total", &[])
            + metric(server, "mc_datagrams_forward_dropped_total", &[])
    };
    let before = forwarded(&server);
    let mut datagram = vec![0x40u8; 64];
    for byte in 2..=255u8 {
        datagram[1] = byte;
        for _ in 0..4 {
            socket
                .send_to(&datagram, server.webtransport)
                .expect("send a datagram");
        }
    }
    // Counters reach /metrics about once a second.
    std::thread::sleep(Duration::from_millis(1_500));
    let mut failures = Failures::default();
    let after = forwarded(&server);
    failures.check(
        "no datagram forwarded or dropped as forwarded",
        if after == before {
            Ok(())
        } else {
            Err(format!(
                "mc_datagrams_forwarded_total + mc_datagrams_forward_dropped_total went \
                 from {before} to {after}"
            ))
        },
    );
    let log = server.log();
    failures.check(
        "nothing reached the control plane",
        if log.contains("unexpected message on the control plane") {
            Err("the control plane logged a datagram it was sent".into())
        } else {
            Ok(())
        },
    );
    failures.check(
        "/health",
        match server.get("/health") {
            (200, _, _) => Ok(()),
            (status, _, body) => Err(format!("{status} {body}")),
        },
    );
    runtime().block_on(async {
        failures.check("normal echo afterwards", normal_echo(&server).await);
    });
    failures.assert_none();
}

/// Datagrams no client of ours could send are dropped where they land and counted, not
/// copied. Anyone can send them, without a handshake:
/// - longer than the 1472 bytes the server accepts (it asks clients for 1200 as
///   `max_udp_payload_size`), whichever shard they name: a forged flood of them would
///   otherwise take a buffer of up to 64 KiB for each;
/// - shorter than a protected packet and naming another shard: one would otherwise be
///   copied into that shard's queue.
#[test]
fn datagrams_no_client_could_send_are_dropped_not_forwarded() {
    const EACH: usize = 8;
    let server = start(&[]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let forwarded = || metric(&server, "mc_datagrams_forwarded_total", &[]);
    let dropped = || metric(&server, "mc_datagrams_forward_dropped_total", &[]);
    let oversized = metric(&server, "mc_udp_oversized_datagrams_total", &[]);
    let (forwarded_before, dropped_before) = (forwarded(), dropped());
    // The socket's datagrams all land on one of the two shards; each size is sent naming
    // both, so one of the two names the other shard. Paced, so that a shard not scheduled
    // for a moment does not find its socket's buffer full.
    let send = |len: usize| {
        let mut datagram = vec![0x40u8; len];
        for shard in 0..2u8 {
            datagram[1] = shard;
            for _ in 0..EACH {
                socket
                    .send_to(&datagram, server.webtransport)
                    .expect("send a datagram");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    send(28);
    send(1473);
    send(20_000);
    // Waits for `name` to reach `before + n`, and checks that it went no further.
    let rises_by = |name: &str, before: f64, n: usize| {
        let want = before + n as f64;
        let now = metric_rises(&server, name, &[], want - 1.0);
        if now == want {
            Ok(())
        } else {
            Err(format!("{name} went from {before} to {now}, expected +{n}"))
        }
    };
    let mut failures = Failures::default();
    failures.check(
        "every datagram longer than 1472 bytes dropped as oversized, whichever shard it names",
        rises_by("mc_udp_oversized_datagrams_total", oversized, 4 * EACH),
    );
    failures.check(
        "every foreign datagram too short to be a packet dropped",
        rises_by("mc_datagrams_forward_dropped_total", dropped_before, EACH),
    );
    failures.check(
        "none of them forwarded",
        if forwarded() == forwarded_before {
            Ok(())
        } else {
            Err(format!(
                "forwarded went from {forwarded_before} to {}",
                forwarded()
            ))
        },
    );
    // The sizes a client does send are forwarded, the shortest and the longest.
    send(29);
    send(1472);
    failures.check(
        "datagrams of 29 and 1472 bytes forwarded",
        rises_by("mc_datagrams_forwarded_total", forwarded_before, 2 * EACH),
    );
    runtime().block_on(async {
        failures.check("normal echo afterwards", normal_echo(&server).await);
    });
    failures.assert_none();
}

#[test]
fn unknown_frame_of_huge_length_on_the_control_stream_is_skipped_not_buffered() {
    const CONNS: usize = 4;
    let server = start(&[]);
    runtime().block_on(async {
        warm_up(&server, CONNS).await;
        let before = settled_rss(&server).await;
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            clients.push(connect(&server).await);
        }
        let opened = settled_rss(&server).await;
        let mut total = 0;
        for c in &mut clients {
            let mut control = c.control.take().expect("control stream");
            // A reserved frame type (RFC 9114 §7.2.8: 0x1f * N + 0x21) declaring 2^62-1
            // bytes, then about 1 MiB of its body.
            control
                .write_all(&wire::frame_header(0x21, wire::VARINT_MAX))
                .await
                .expect("frame header");
            total += stuff(&mut control, 1 << 20, Duration::from_secs(3)).await;
            c.control = Some(control);
        }
        eprintln!("the server took {} KiB of frame body", total / 1024);
        let mut failures = rss_after_attack(
            &server,
            &format!(
                "1 MiB of a 2^62-1-byte unknown frame on the control stream of {CONNS} \
                     connections"
            ),
            before,
            opened,
            CONNS,
        )
        .await;
        for (i, c) in clients.iter().enumerate() {
            failures.check(
                &format!("connection {i} stays up (unknown frames are skipped)"),
                still_open(c),
            );
        }
        // The connection still serves a session after the skipped frame.
        let first = &clients[0];
        let r = async {
            still_open(first)?;
            let s = first.webtransport("/echo", &[]).await?;
            if s.status != 200 {
                return Err(format!("CONNECT /echo got {}", s.status));
            }
            let got = first.echo_stream(s.id, b"after junk").await?;
            if got != b"after junk" {
                return Err(format!("echo returned {got:?}"));
            }
            Ok(())
        }
        .await;
        failures.check("a session on an attacked connection", r);
        failures.check("normal echo afterwards", normal_echo(&server).await);
        for c in clients {
            c.close().await;
        }
        failures.assert_none();
    });
}

#[test]
fn headers_frame_of_huge_length_is_refused_not_buffered() {
    const CONNS: usize = 4;
    let server = start(&[]);
    runtime().block_on(async {
        warm_up(&server, CONNS).await;
        let before = settled_rss(&server).await;
        let mut conns = Vec::new();
        for _ in 0..CONNS {
            conns.push(connect(&server).await);
        }
        let opened = settled_rss(&server).await;
        let mut clients = Vec::new();
        let mut total = 0;
        for c in conns {
            let (mut send, recv) = c
                .open_bi_with(&wire::frame_header(wire::HEADERS, wire::VARINT_MAX))
                .await
                .expect("request stream");
            total += stuff(&mut send, 1 << 20, Duration::from_secs(3)).await;
            clients.push((c, send, h3raw::StreamReader::new(recv)));
        }
        eprintln!("the server took {} KiB of HEADERS body", total / 1024);
        let mut failures = rss_after_attack(
            &server,
            &format!("1 MiB of a 2^62-1-byte HEADERS frame on {CONNS} connections"),
            before,
            opened,
            CONNS,
        )
        .await;
        for (i, (c, send, reader)) in clients.iter_mut().enumerate() {
            // Connection closed with H3_EXCESSIVE_LOAD / H3_FRAME_ERROR, or the request
            // stream reset/stopped: anything but buffering on.
            let r = async {
                if let Some(e) = c.conn.close_reason() {
                    return match app_code(&e) {
                        Some(wire::H3_EXCESSIVE_LOAD) | Some(wire::H3_FRAME_ERROR) => Ok(()),
                        _ => Err(format!("the connection closed with {}", describe(&e))),
                    };
                }
                let stopped = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
                if let Ok(Ok(Some(code))) = stopped {
                    eprintln!("request stream {i} stopped with 0x{:x}", code.into_inner());
                    return Ok(());
                }
                match reader.end(Duration::from_millis(500)).await {
                    End::Reset(code) => {
                        eprintln!("request stream {i} reset with 0x{code:x}");
                        Ok(())
                    }
                    End::Lost(_, Some(wire::H3_EXCESSIVE_LOAD | wire::H3_FRAME_ERROR)) => Ok(()),
                    other => Err(format!(
                        "neither the connection closed (H3_EXCESSIVE_LOAD/H3_FRAME_ERROR) nor \
                         the request stream was reset or stopped: {other:?}"
                    )),
                }
            }
            .await;
            failures.check(&format!("connection {i}: the huge HEADERS is refused"), r);
        }
        failures.check("normal echo afterwards", normal_echo(&server).await);
        for (c, _, _) in clients {
            c.close().await;
        }
        failures.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Reset streams give back stream credit
// ---------------------------------------------------------------------------------------

#[test]
fn streams_reset_one_after_another_give_back_credit() {
    const STREAMS: usize = 600;
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        for i in 0..STREAMS {
            let (mut send, recv) = c.wt_bidi(s.id, &[i as u8]).await.unwrap_or_else(|e| {
                panic!("stream {i} of {STREAMS} could not be opened: {e} (credit stopped after {i} streams)")
            });
            let mut reader = h3raw::StreamReader::new(recv);
            match reader.read_raw(1, Duration::from_secs(3)).await {
                Ok(b) if b == [i as u8] => {}
                other => panic!("stream {i}: echo of one byte: {other:?}"),
            }
            let _ = send.reset(VarInt::from_u32(0x10c));
            let _ = reader.recv.stop(VarInt::from_u32(0x10c));
        }
        let got = c
            .echo_stream(s.id, b"after 600 resets")
            .await
            .unwrap_or_else(|e| panic!("normal echo after {STREAMS} reset streams: {e}"));
        assert_eq!(got, b"after 600 resets");
        c.close().await;
    });
}

#[test]
fn streams_reset_all_at_once_give_back_credit() {
    const STREAMS: usize = 1000;
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        for i in 0..STREAMS {
            let (mut send, mut recv) = c.wt_bidi(s.id, &[i as u8]).await.unwrap_or_else(|e| {
                panic!("stream {i} of {STREAMS} could not be opened: {e} (credit stopped after {i} streams)")
            });
            let _ = send.reset(VarInt::from_u32(0x10c));
            let _ = recv.stop(VarInt::from_u32(0x10c));
        }
        let got = c
            .echo_stream(s.id, b"after 1000 resets")
            .await
            .unwrap_or_else(|e| panic!("normal echo after {STREAMS} reset streams: {e}"));
        assert_eq!(got, b"after 1000 resets");
        c.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// The session id is the CONNECT stream's id
// ---------------------------------------------------------------------------------------

#[test]
fn session_on_stream_four_after_a_refused_request() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut refused = c.webtransport("/nope", &[]).await.expect("CONNECT /nope");
        assert_eq!(refused.id, 0, "the first request is on stream 0");
        assert_eq!(refused.status, 404, "CONNECT /nope");
        let end = refused.reader.end(Duration::from_secs(3)).await;
        assert_eq!(end, End::Fin, "the refused request stream was not finished");

        let mut s = c.session("/echo").await;
        assert_eq!(s.id, 4, "the second request is on stream 4");
        let mut failures = Failures::default();
        let echo = c.echo_stream(4, b"session four").await.and_then(|got| {
            (got == b"session four")
                .then_some(())
                .ok_or(format!("echoed {got:?}"))
        });
        failures.check("a bidi stream naming session 4 is echoed", echo);
        failures.check(
            "a datagram of session 4 is echoed on session 4",
            c.echo_datagram(4, b"datagram four", Duration::from_secs(3))
                .await,
        );
        s.send
            .write_all(&wire::close_session(0, b"bye"))
            .await
            .expect("close capsule");
        failures.check(
            "CLOSE_WEBTRANSPORT_SESSION on stream 4 ends the session",
            expect_session_ended(&c, &mut s, Duration::from_secs(2)).await,
        );
        failures.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Session close codes reach the client (Chromium's view: hostile_browser.rs)
// ---------------------------------------------------------------------------------------

#[test]
fn failed_joins_close_the_session_with_their_code() {
    let server = start(&["--max-participants-per-meeting", "1"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).expect("dev keys");
    runtime().block_on(async {
        let mut failures = Failures::default();

        let mut bad = Signaling::open(&server, &join_frame("m-bad", "garbage.token.x", "x")).await;
        failures.check(
            "join with a garbage token -> 0x101",
            expect_session_close(&bad.client, &mut bad.session, 0x101, Duration::from_secs(5))
                .await,
        );

        let first = Signaling::joined(&server, &keys, "m-cap", "alice").await;
        let frame = join_frame("m-cap", &token(&keys, "m-cap", "bob"), "bob");
        let mut over = Signaling::open(&server, &frame).await;
        failures.check(
            "second join over --max-participants-per-meeting 1 -> 0x102",
            expect_session_close(
                &over.client,
                &mut over.session,
                0x102,
                Duration::from_secs(5),
            )
            .await,
        );

        let mute = client_frame(C::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        }));
        let mut nojoin = Signaling::open(&server, &mute).await;
        failures.check(
            "a first frame that is not a join -> 0x100",
            expect_session_close(
                &nojoin.client,
                &mut nojoin.session,
                0x100,
                Duration::from_secs(5),
            )
            .await,
        );
        first.client.close().await;
        failures.assert_none();
    });
}

#[test]
fn drain_closes_sessions_with_0x103() {
    let server = start(&["--drain-timeout-secs", "1"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).expect("dev keys");
    runtime().block_on(async {
        let mut p = Signaling::joined(&server, &keys, "m-drain", "dana").await;
        server.signal(libc::SIGTERM);
        expect_session_close(&p.client, &mut p.session, 0x103, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("drain (SIGTERM, --drain-timeout-secs 1): {e}"));
        let _ = p.send.finish();
    });
}

// ---------------------------------------------------------------------------------------
// Streams and datagrams of other sessions are refused
// ---------------------------------------------------------------------------------------

#[test]
fn stream_naming_an_unknown_session_is_rejected_and_the_connection_stays() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        // Not finished: a STOP_SENDING is then the only way `stopped` resolves.
        let (send, recv) = c.wt_bidi(4000, b"foreign").await.expect("open");
        let mut reader = h3raw::StreamReader::new(recv);
        let end = tokio::select! {
            e = reader.end(Duration::from_secs(3)) => e,
            st = send.stopped() => match st {
                Ok(Some(code)) => End::Reset(code.into_inner()),
                Ok(None) => End::Fin,
                Err(e) => End::Lost(e.to_string(), None),
            },
        };
        let echoed = reader.discarded + reader.buffered().len();
        assert!(
            echoed == 0,
            "a stream naming session 4000 (no such session) was echoed ({echoed} bytes back, \
             then {end:?})"
        );
        match end {
            End::Reset(code)
                if code == wire::WEBTRANSPORT_BUFFERED_STREAM_REJECTED
                    || code == wire::H3_ID_ERROR => {}
            other => panic!(
                "a stream naming session 4000 (no such session) was not rejected with \
                 WEBTRANSPORT_BUFFERED_STREAM_REJECTED or H3_ID_ERROR: {other:?}"
            ),
        }
        still_open(&c).unwrap_or_else(|e| panic!("after the foreign stream: {e}"));
        let got = c
            .echo_stream(s.id, b"own session")
            .await
            .unwrap_or_else(|e| panic!("a normal stream after the foreign one: {e}"));
        assert_eq!(got, b"own session");
        c.close().await;
    });
}

#[test]
fn stream_naming_a_non_request_stream_as_session_is_an_id_error() {
    let server = start(&[]);
    runtime().block_on(async {
        let mut failures = Failures::default();
        for session in [3, wire::VARINT_MAX] {
            let c = connect(&server).await;
            let _s = c.session("/echo").await;
            let r = async {
                let (_send, _recv) = c.wt_bidi(session, b"x").await?;
                expect_conn_error(&c, &[wire::H3_ID_ERROR], Duration::from_secs(3)).await
            }
            .await;
            failures.check(&format!("a bidi stream naming session {session}"), r);
            c.close().await;
        }
        failures.assert_none();
    });
}

#[test]
fn datagram_of_an_unknown_session_is_not_echoed() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        for _ in 0..5 {
            c.datagram(4000, b"foreign datagram").expect("datagram");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut echoed = false;
        while Instant::now() < deadline && !echoed {
            c.datagram(s.id, b"own datagram").expect("datagram");
            let until = Instant::now() + Duration::from_millis(200);
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match c.recv_datagram(left).await {
                    Some((sid, p)) => {
                        echoed |= sid == s.id && p == b"own datagram";
                        got.push((sid, String::from_utf8_lossy(&p).to_string()));
                    }
                    None => break,
                }
            }
        }
        // Late echoes of the foreign datagrams.
        while let Some((sid, p)) = c.recv_datagram(Duration::from_millis(300)).await {
            got.push((sid, String::from_utf8_lossy(&p).to_string()));
        }
        let foreign: Vec<_> = got
            .iter()
            .filter(|(_, p)| p == "foreign datagram")
            .collect();
        assert!(
            foreign.is_empty(),
            "datagrams of session 4000 were echoed: {foreign:?}"
        );
        assert!(
            echoed,
            "no echo of a datagram of the session itself; got {got:?}"
        );
        c.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// A bad stream never freezes a session
// ---------------------------------------------------------------------------------------

#[test]
fn broken_stream_headers_do_not_stop_the_session_accepting() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        // Reset before the 0x41 signal is complete (first byte of its 2-byte varint).
        let (mut a, _ra) = c.open_bi_with(&[0x40]).await.expect("open");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = a.reset(VarInt::from_u32(0x10c));
        // Finished after a truncated session id (first byte of a 4-byte varint).
        let mut head = wire::varint(wire::WT_BIDI_SIGNAL);
        head.push(0x80);
        let (mut b, _rb) = c.open_bi_with(&head).await.expect("open");
        let _ = b.finish();
        tokio::time::sleep(Duration::from_millis(100)).await;
        still_open(&c).unwrap_or_else(|e| panic!("after two broken stream headers: {e}"));
        let got = c
            .echo_stream(s.id, b"after broken headers")
            .await
            .unwrap_or_else(|e| {
                panic!("the session stopped accepting after two broken stream headers: {e}")
            });
        assert_eq!(got, b"after broken headers");
        c.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// The CONNECT-stream capsule parser
// ---------------------------------------------------------------------------------------

#[test]
fn close_capsule_in_the_first_flight_ends_the_session() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut s = c
            .webtransport("/echo", &wire::close_session(0, b"at once"))
            .await
            .unwrap_or_else(|e| panic!("CONNECT + CLOSE in one write: {e}"));
        assert_eq!(s.status, 200, "CONNECT /echo");
        expect_session_ended(&c, &mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("CLOSE capsule sent with the CONNECT HEADERS: {e}"));
    });
}

#[test]
fn close_after_an_unknown_capsule_is_honoured() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut s = c.session("/echo").await;
        let unknown = wire::frame(wire::DATA, &wire::capsule(0x29, &[0xab; 100]));
        s.send.write_all(&unknown).await.expect("unknown capsule");
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.send
            .write_all(&wire::close_session(0, b""))
            .await
            .expect("close capsule");
        expect_session_ended(&c, &mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("CLOSE after an unknown capsule (type 0x29): {e}"));
    });
}

#[test]
fn capsules_spanning_data_frames_are_reassembled() {
    // RFC 9297 §3.1: the capsules are the concatenated DATA payloads; frame boundaries
    // need not match capsule boundaries.
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut s = c.session("/echo").await;
        let mut stream = wire::capsule(0x29, &[0xcd; 100]);
        stream.extend(wire::capsule(
            wire::CLOSE_WEBTRANSPORT_SESSION,
            &wire::close_value(0, b"split"),
        ));
        // Split inside the unknown capsule and inside the CLOSE capsule.
        let cuts = [0, 50, 104, stream.len()];
        for w in cuts.windows(2) {
            let frame = wire::frame(wire::DATA, &stream[w[0]..w[1]]);
            s.send.write_all(&frame).await.expect("DATA frame");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        expect_session_ended(&c, &mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("CLOSE capsule split over DATA frames: {e}"));
    });
}

#[test]
fn close_capsule_at_the_start_of_a_partial_data_frame_is_acted_on() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut s = c.session("/echo").await;
        let capsule = wire::capsule(
            wire::CLOSE_WEBTRANSPORT_SESSION,
            &wire::close_value(0, b"partial frame"),
        );
        let mut bytes = wire::frame_header(wire::DATA, 10 * 1024);
        bytes.extend(capsule);
        s.send.write_all(&bytes).await.expect("partial DATA frame");
        expect_session_ended(&c, &mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| {
                panic!("CLOSE capsule at the start of a 10 KiB DATA frame never completed: {e}")
            });
    });
}

#[test]
fn malformed_close_capsule_ends_the_session() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut s = c.session("/echo").await;
        let bytes = wire::frame(
            wire::DATA,
            &wire::capsule(wire::CLOSE_WEBTRANSPORT_SESSION, &[0, 0]),
        );
        s.send.write_all(&bytes).await.expect("short CLOSE capsule");
        // Malformed (RFC 9297 §3.3): the connection closed with any HTTP/3 error, or the
        // CONNECT stream reset or finished.
        let end = tokio::select! {
            e = s.reader.end(Duration::from_secs(2)) => e,
            e = c.conn.closed() => End::Lost(describe(&e), app_code(&e)),
        };
        match end {
            End::Lost(_, Some(_)) | End::Reset(_) | End::Fin => {}
            other => panic!(
                "a CLOSE_WEBTRANSPORT_SESSION capsule with a 2-byte value was ignored: {other:?}"
            ),
        }
    });
}

// ---------------------------------------------------------------------------------------
// Deadlines before a session exists
// ---------------------------------------------------------------------------------------

#[test]
fn deadline_flags_are_documented() {
    let out = std::process::Command::new(harness::binary())
        .arg("--help")
        .output()
        .expect("mc-service --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--handshake-timeout-ms",
        "MC_HANDSHAKE_TIMEOUT_MS",
        "--connect-timeout-ms",
        "MC_CONNECT_TIMEOUT_MS",
        "--join-timeout-ms",
        "MC_JOIN_TIMEOUT_MS",
    ] {
        assert!(help.contains(needle), "`mc-service --help` lacks {needle}");
    }
}

#[test]
fn connection_without_connect_is_closed_at_the_connect_deadline() {
    let server = start_with(
        "2",
        &[],
        &[
            ("MC_CONNECT_TIMEOUT_MS", "1000"),
            ("MC_JOIN_TIMEOUT_MS", "1000"),
        ],
    );
    let before = metric(
        &server,
        "mc_refusals_total",
        &["reason=\"connect_timeout\""],
    );
    runtime().block_on(async {
        let c = connect_with(
            &server,
            Options {
                keep_alive: Some(Duration::from_millis(200)),
                ..Options::default()
            },
        )
        .await;
        let t0 = Instant::now();
        match c.closed_within(Duration::from_secs(3)).await {
            Some(e) => eprintln!("closed after {:?}: {}", t0.elapsed(), describe(&e)),
            None => panic!(
                "a connection that never sent a CONNECT (keep-alive PINGs only) was still \
                 open 3 s after the handshake (MC_CONNECT_TIMEOUT_MS=1000)"
            ),
        }
    });
    let after = metric_rises(
        &server,
        "mc_refusals_total",
        &["reason=\"connect_timeout\""],
        before,
    );
    assert!(
        after > before,
        "mc_refusals_total{{reason=\"connect_timeout\"}} did not rise ({before} -> {after})"
    );
}

#[test]
fn partial_first_signaling_frame_is_closed_at_the_join_deadline() {
    let server = start_with(
        "2",
        &[],
        &[
            ("MC_CONNECT_TIMEOUT_MS", "1000"),
            ("MC_JOIN_TIMEOUT_MS", "1000"),
        ],
    );
    let before = metric(&server, "mc_refusals_total", &["reason=\"join_timeout\""]);
    runtime().block_on(async {
        let mut partial = 100u32.to_be_bytes().to_vec();
        partial.extend([0x0a; 10]);
        let mut p = Signaling::open(&server, &partial).await;
        expect_session_close(&p.client, &mut p.session, 0x100, Duration::from_secs(3))
            .await
            .unwrap_or_else(|e| {
                panic!("a partial first signaling frame with MC_JOIN_TIMEOUT_MS=1000: {e}")
            });
    });
    let after = metric_rises(
        &server,
        "mc_refusals_total",
        &["reason=\"join_timeout\""],
        before,
    );
    assert!(
        after > before,
        "mc_refusals_total{{reason=\"join_timeout\"}} did not rise ({before} -> {after})"
    );
}

/// A join whose token names a key the server does not know waits for the keys, up to two
/// seconds. What the client sent behind it in the same read waits with it, still
/// encoded: decoded, a MediaConnectionUpdate of 256 empty statuses (515 bytes on the
/// wire) holds 26 KB, and the 99 a session's burst allows behind its join would hold
/// 2.5 MiB per connection, with no token the server knows.
#[test]
fn messages_behind_a_join_waiting_for_keys_wait_encoded() {
    const CONNS: u64 = 16;
    let server = start_with("1", &[], &[]);
    let foreign_dir =
        std::env::temp_dir().join(format!("mc-hostile-held-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&foreign_dir);
    let foreign = DevKeys::load_or_create(&foreign_dir).expect("foreign dev keys");
    let update = client_frame(C::Message::MediaConnectionUpdate(
        pb::MediaConnectionUpdate {
            statuses: vec![pb::MhConnectionStatus::default(); 256],
        },
    ));
    let mut burst = join_frame("m1", &token(&foreign, "m1", "u1"), "u1");
    for _ in 0..99 {
        burst.extend_from_slice(&update);
    }
    runtime().block_on(async {
        warm_up(&server, 4).await;
        let before = settled_rss(&server).await;
        let mut held = Vec::new();
        for _ in 0..CONNS {
            held.push(Signaling::open(&server, &burst).await);
        }
        // Well within the two seconds the joins wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = rss_kib(&server);
        eprintln!(
            "{CONNS} joins waiting for keys with 99 updates behind each ({} bytes sent \
             each): RSS {before} -> {during} KiB",
            burst.len()
        );
        // The connections themselves and the bytes they sent, encoded, with room; not
        // the 2.5 MiB each the decoded updates would take.
        assert!(
            during.saturating_sub(before) < CONNS * MAX_GROWTH_PER_CONN_KIB,
            "RSS grew by {} KiB for {CONNS} connections",
            during.saturating_sub(before)
        );
        for p in held {
            p.client.close().await;
        }
    });
    let _ = std::fs::remove_dir_all(&foreign_dir);
}

/// A client that joins with a token whose key the server does not know (the join waits
/// for the keys, looking again every 20 ms) and at once closes its session, then leaves
/// its connection open. The server lingers a second before closing the connection; in
/// that time nothing of the ended session is due, and the shard parks until something
/// else is. A deadline left in the past had the shard fire the connection at every
/// tick of its timer wheel: about a thousand passes, each with a `recvmmsg`, for that
/// second (longer still for a client with a long ACK delay, whose close takes three of
/// its probe timeouts).
#[test]
fn a_closed_session_with_a_join_waiting_for_keys_lets_its_shard_park() {
    let server = start_with("1", &[], &[]);
    let foreign_dir =
        std::env::temp_dir().join(format!("mc-hostile-foreign-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&foreign_dir);
    let foreign = DevKeys::load_or_create(&foreign_dir).expect("foreign dev keys");
    let recvs = || metric(&server, "mc_udp_syscalls_total", &["op=\"recvmmsg\""]);
    // Counters reach /metrics about once a second: settle, then read.
    std::thread::sleep(Duration::from_millis(1_500));
    let before = recvs();
    runtime().block_on(async {
        let mut p = Signaling::open(
            &server,
            &join_frame("m1", &token(&foreign, "m1", "u1"), "u1"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.session.send.finish().expect("FIN on the CONNECT stream");
        // The server closes the connection a second later; the client stays.
        let closed = p.client.closed_within(Duration::from_secs(3)).await;
        eprintln!("connection: {:?}", closed.as_ref().map(describe));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    });
    let _ = std::fs::remove_dir_all(&foreign_dir);
    let after = recvs();
    eprintln!("recvmmsg calls: {}", after - before);
    // One connection's handshake, CONNECT, join and close take a few dozen receives;
    // the idle shard's own wake-ups a few a second.
    assert!(
        after - before < 200.0,
        "the shard made {} recvmmsg calls in the 4.5 s of one session closed with its join \
         waiting for keys",
        after - before
    );
}

#[test]
fn connections_without_connect_count_toward_the_per_ip_limit() {
    let server = start_with("1", &["--max-sessions-per-ip", "2"], &[]);
    runtime().block_on(async {
        let a = connect(&server).await;
        let b = connect(&server).await;
        let cert = dev_cert_hash(&server.dev_dir);
        match Client::connect(server.webtransport, cert, Options::default()).await {
            Err(e) => eprintln!("third handshake refused: {e}"),
            Ok(third) => match third.webtransport("/", &[]).await {
                Ok(s) if s.status == 429 => {}
                Ok(s) => panic!(
                    "with two CONNECT-less connections open from 127.0.0.1 and \
                     --max-sessions-per-ip 2, a third connection's CONNECT got {}",
                    s.status
                ),
                Err(e) => eprintln!("third connection refused: {e}"),
            },
        }
        a.close().await;
        b.close().await;
    });
}

/// A QUIC client that sends its Initial and then a PING every 250 ms for `stall`, never
/// reading the server's answer: its handshake cannot complete (it never sends its
/// Finished), yet the server keeps hearing from it.
fn stall_handshake(server: &Server, stall: Duration) {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // No certificate is ever read, so none needs to be trusted.
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    let config = quinn::ClientConfig::new(std::sync::Arc::new(crypto));
    let mut endpoint = quinn_proto::Endpoint::new(
        std::sync::Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        true,
        None,
    );
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("client socket");
    let start = Instant::now();
    let (_, mut conn) = endpoint
        .connect(start, config, server.webtransport, "localhost")
        .expect("client connection");
    let mut next_ping = start;
    let mut buf = Vec::new();
    while start.elapsed() < stall {
        let now = Instant::now();
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
        if now >= next_ping {
            conn.ping();
            next_ping = now + Duration::from_millis(250);
        }
        while let Some(t) = conn.poll_transmit(now, 1, &mut buf) {
            socket
                .send_to(&buf[..t.size], t.destination)
                .expect("send to the server");
            buf.clear();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_handshake_that_never_completes_is_closed_at_the_handshake_deadline() {
    // One shard that holds one handshake at a time.
    let server = start_with(
        "1",
        &["--max-handshakes-per-shard", "1"],
        &[("MC_HANDSHAKE_TIMEOUT_MS", "1000")],
    );
    let reason = ["reason=\"handshake_timeout\""];
    let before = metric(&server, "mc_refusals_total", &reason);
    stall_handshake(&server, Duration::from_millis(1500));
    let after = metric_rises(&server, "mc_refusals_total", &reason, before);
    assert!(
        after > before,
        "a handshake kept alive by PINGs for 1.5 s was not closed \
         (MC_HANDSHAKE_TIMEOUT_MS=1000; mc_refusals_total{{reason=\"handshake_timeout\"}} \
         {before} -> {after})"
    );
    // Once the closed connection drains, its handshake slot is free again.
    let cert = dev_cert_hash(&server.dev_dir);
    let deadline = Instant::now() + Duration::from_secs(8);
    runtime().block_on(async {
        let mut refused = 0;
        loop {
            match Client::connect(server.webtransport, cert, Options::default()).await {
                Ok(c) => {
                    eprintln!("a new client got the slot after {refused} refused handshakes");
                    return c.close().await;
                }
                Err(_) if Instant::now() < deadline => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!(
                    "8 s after a handshake was closed at its deadline, a new client still \
                     cannot get the shard's only handshake slot: {e}"
                ),
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// RFC 9114 MUSTs
// ---------------------------------------------------------------------------------------

#[test]
fn empty_goaway_is_a_frame_error() {
    let server = start(&[]);
    runtime().block_on(async {
        let mut c = connect(&server).await;
        let control = c.control.as_mut().expect("control stream");
        control
            .write_all(&wire::frame(wire::GOAWAY, &[]))
            .await
            .expect("GOAWAY");
        expect_conn_error(&c, &[wire::H3_FRAME_ERROR], Duration::from_secs(3))
            .await
            .unwrap_or_else(|e| panic!("an empty GOAWAY (RFC 9114 §7.2.6, §7.1): {e}"));
    });
}

#[test]
fn client_push_stream_is_a_stream_creation_error() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let mut push = c.open_uni(wire::PUSH_STREAM).await.expect("push stream");
        let _ = push.write_all(&wire::varint(0)).await;
        expect_conn_error(
            &c,
            &[wire::H3_STREAM_CREATION_ERROR],
            Duration::from_secs(3),
        )
        .await
        .unwrap_or_else(|e| panic!("a client-initiated push stream (RFC 9114 §6.2.2): {e}"));
    });
}

#[test]
fn uni_stream_with_truncated_session_id_is_dropped_alone() {
    let server = start(&[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let s = c.session("/echo").await;
        let mut uni = c.open_uni(wire::WT_UNI_STREAM).await.expect("uni stream");
        uni.write_all(&[0x80]).await.expect("truncated session id");
        let _ = uni.finish();
        tokio::time::sleep(Duration::from_millis(300)).await;
        still_open(&c).unwrap_or_else(|e| panic!("after a truncated uni stream header: {e}"));
        let got = c
            .echo_stream(s.id, b"after truncated uni")
            .await
            .unwrap_or_else(|e| panic!("the session after a truncated uni stream header: {e}"));
        assert_eq!(got, b"after truncated uni");
        c.echo_datagram(s.id, b"dg", Duration::from_secs(3))
            .await
            .unwrap_or_else(|e| panic!("after a truncated uni stream header: {e}"));
        c.close().await;
    });
}

#[test]
fn second_connect_on_a_signaling_connection_gets_429() {
    let server = start(&[]);
    let keys = DevKeys::load_or_create(&server.dev_dir).expect("dev keys");
    runtime().block_on(async {
        let mut p = Signaling::joined(&server, &keys, "m-twice", "tess").await;
        match p.client.webtransport("/", &[]).await {
            Ok(s) if s.status == 429 => {}
            Ok(s) => panic!("a second CONNECT on the connection got {}", s.status),
            Err(e) => panic!("a second CONNECT on a connection with a session: {e}"),
        }
        let mute = client_frame(C::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        }));
        p.send.write_all(&mute).await.expect("mute");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.next(left).await {
                Ok(ServerMessage {
                    message: Some(S::Message::ParticipantMuteUpdate(u)),
                    ..
                }) if u.audio_self_muted => break,
                Ok(_) => continue,
                Err(e) => panic!("the first session stopped working after a second CONNECT: {e:?}"),
            }
        }
        p.client.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// Requests that cost the server work
// ---------------------------------------------------------------------------------------

/// The server's CPU time so far (utime + stime of `/proc/<pid>/stat`), seconds.
fn cpu_seconds(server: &Server) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id()))
        .expect("server /proc stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime
    // and stime fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat's command")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

/// The time the server's threads have spent on a CPU (`/proc/<pid>/task/*/schedstat`,
/// nanoseconds), seconds: the same as [`cpu_seconds`] without its clock-tick grain.
fn run_seconds(server: &Server) -> f64 {
    let tasks =
        std::fs::read_dir(format!("/proc/{}/task", server.child.id())).expect("server /proc tasks");
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// One request on `conn`: `first` written on a new bidi stream, then FIN, then wait for
/// the server's side to end (a response and FIN, a reset, or the connection gone).
async fn one_request(conn: quinn::Connection, first: std::sync::Arc<Vec<u8>>) -> End {
    let Ok(Ok((mut send, recv))) =
        tokio::time::timeout(Duration::from_secs(3), conn.open_bi()).await
    else {
        return End::Lost(
            "no stream".into(),
            conn.close_reason().and_then(|e| app_code(&e)),
        );
    };
    if send.write_all(&first).await.is_err() {
        return End::Lost(
            "write".into(),
            conn.close_reason().and_then(|e| app_code(&e)),
        );
    }
    let _ = send.finish();
    h3raw::StreamReader::new(recv)
        .end(Duration::from_secs(3))
        .await
}

/// One connection sends request after request, each a header section of the largest
/// size allowed made of one-byte static references (thousands of field lines), as
/// one alone and then as fast as it can for up to 3 s, 16 at once. The walk refuses a
/// whole section as malformed before the decoder builds a string pair per line; a
/// section that arrives while another is still arriving is refused with
/// H3_EXCESSIVE_LOAD before it is assembled (together they may hold one section). The connection is closed with
/// H3_EXCESSIVE_LOAD once it has had `MAX_REFUSED_REQUESTS` (16) refused. Reports the
/// server's CPU time per request.
#[test]
fn requests_of_thousands_of_field_lines_are_refused_and_capped() {
    const IN_FLIGHT: usize = 16;
    const SECTION: usize = 8 * 1024;
    let server = start(&[]);
    let before = metric(
        &server,
        "mc_refusals_total",
        &["reason=\"too_many_requests\""],
    );
    // 0x00 0x00: Required Insert Count and Base; then 0xC0 | 31, an indexed field line
    // naming static entry 31 (accept-encoding: gzip, deflate, br).
    let mut section = vec![0x00, 0x00];
    section.resize(SECTION, 0xC0 | 31);
    let first = std::sync::Arc::new(wire::frame(wire::HEADERS, &section));
    let mut failures = Failures::default();
    runtime().block_on(async {
        let c = connect(&server).await;
        let (cpu0, run0) = (cpu_seconds(&server), run_seconds(&server));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let (mut sent, mut answered, mut malformed, mut other) = (0, 0usize, 0, Vec::new());
        // One section alone is walked whole and refused as malformed; the 16 at once
        // that follow arrive side by side (quinn sends streams in turn), and all but the
        // first to complete are refused for the sections' shared limit.
        sent += 1;
        match one_request(c.conn.clone(), first.clone()).await {
            End::Reset(code) if code == wire::H3_MESSAGE_ERROR => {
                answered += 1;
                malformed += 1;
            }
            end => other.push(end),
        }
        while t0.elapsed() < Duration::from_secs(3) {
            while tasks.len() < IN_FLIGHT && c.conn.close_reason().is_none() {
                tasks.spawn(one_request(c.conn.clone(), first.clone()));
                sent += 1;
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            match done.expect("request task") {
                End::Reset(code) if code == wire::H3_MESSAGE_ERROR => {
                    answered += 1;
                    malformed += 1;
                }
                End::Reset(code) if code == wire::H3_EXCESSIVE_LOAD => answered += 1,
                End::Lost(..) => {}
                end => other.push(end),
            }
        }
        tasks.abort_all();
        let elapsed = t0.elapsed();
        let cpu = cpu_seconds(&server) - cpu0;
        let run = run_seconds(&server) - run0;
        let closed = c.conn.close_reason();
        let per = |secs: f64| secs * 1e3 / answered.max(1) as f64;
        eprintln!(
            "{sent} requests of {} one-byte field lines sent in {elapsed:?}; {answered} \
             refused ({malformed} with H3_MESSAGE_ERROR, the rest with H3_EXCESSIVE_LOAD), \
             then the connection closed ({}); server CPU \
             {cpu:.3} s by /proc stat ticks ({:.3} ms per request answered), {run:.4} s \
             by schedstat ({:.3} ms per request answered)",
            SECTION - 2,
            closed.as_ref().map_or("still open".into(), describe),
            per(cpu),
            per(run),
        );
        failures.check(
            "every answered request was refused, as malformed or for the sections' limit",
            if other.is_empty() {
                Ok(())
            } else {
                Err(format!("other answers: {other:?}"))
            },
        );
        failures.check(
            "the section sent alone was walked and refused as malformed",
            if malformed > 0 {
                Ok(())
            } else {
                Err("none refused with H3_MESSAGE_ERROR".into())
            },
        );
        failures.check(
            "the connection is closed with H3_EXCESSIVE_LOAD",
            expect_conn_error(&c, &[wire::H3_EXCESSIVE_LOAD], Duration::from_secs(1)).await,
        );
        failures.check(
            "at most 17 requests answered on the connection",
            if answered <= 17 {
                Ok(())
            } else {
                Err(format!("{answered} answered"))
            },
        );
        failures.check(
            "/health",
            match server.get("/health") {
                (200, _, _) => Ok(()),
                (status, _, body) => Err(format!("{status} {body}")),
            },
        );
        failures.check("normal echo afterwards", normal_echo(&server).await);
    });
    let after = metric_rises(
        &server,
        "mc_refusals_total",
        &["reason=\"too_many_requests\""],
        before,
    );
    failures.check(
        "mc_refusals_total{reason=\"too_many_requests\"} rises",
        if after > before {
            Ok(())
        } else {
            Err(format!("{before} -> {after}"))
        },
    );
    failures.assert_none();
}

// ---------------------------------------------------------------------------------------
// The raw client itself
// ---------------------------------------------------------------------------------------

/// The client's capsule reader against a scripted quinn server: a 200 response, then
/// capsules split across DATA frames with an unknown frame between them, then FIN. The
/// close-code tests above rely on this reader.
#[test]
fn raw_client_reads_capsules_split_over_frames() {
    let dir = std::env::temp_dir().join(format!("mc-h3raw-selftest-{}", std::process::id()));
    let dev = mc_service::tls::DevCert::load_or_create(&dir, SystemTime::now()).expect("cert");
    let crypto = mc_service::tls::server_config(&dev.material).expect("server config");
    let hash: [u8; 32] = hex::decode(&dev.sha256_hex)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    runtime().block_on(async {
        let server_config = quinn::ServerConfig::with_crypto(crypto);
        let endpoint = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap())
            .expect("server endpoint");
        let addr = endpoint.local_addr().expect("addr");
        let script = tokio::spawn(async move {
            let conn = endpoint
                .accept()
                .await
                .expect("incoming")
                .await
                .expect("conn");
            let (mut send, mut recv) = conn.accept_bi().await.expect("request stream");
            let mut buf = [0u8; 1024];
            let _ = recv.read(&mut buf).await;
            let mut capsules = wire::capsule(0x29, &[7; 40]);
            capsules.extend(wire::capsule(
                wire::CLOSE_WEBTRANSPORT_SESSION,
                &wire::close_value(0x101, b"bye"),
            ));
            let mut out = wire::headers(&[(":status", "200")]);
            out.extend(wire::frame(wire::DATA, &capsules[..20]));
            out.extend(wire::frame(0x21, b"reserved"));
            out.extend(wire::frame(wire::DATA, &capsules[20..45]));
            send.write_all(&out).await.expect("write");
            tokio::time::sleep(Duration::from_millis(50)).await;
            send.write_all(&wire::frame(wire::DATA, &capsules[45..]))
                .await
                .expect("write");
            send.finish().expect("finish");
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        });
        let c = Client::connect(addr, hash, Options::default())
            .await
            .expect("connect");
        let mut s = c.session("/x").await;
        let (code, reason) = s
            .reader
            .close_capsule(Duration::from_secs(2))
            .await
            .expect("close capsule");
        assert_eq!((code, &reason[..]), (0x101, &b"bye"[..]));
        assert_eq!(s.reader.end(Duration::from_secs(2)).await, End::Fin);
        c.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), script).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

//! mc-loadgen against real WebTransport servers on loopback.
//!
//! Fixtures (test-only, not products): a tokio `wtransport` echo server (bidi streams and
//! datagrams echoed) and a tiny signaling fan-out server that follows docs/protocol.md's join
//! and mute/publish rules closely enough to exercise the `meeting` checks. When
//! `target/{debug,release}/mc-service` exists, the same scenarios also run against
//! `mc-service --dev --enable-echo`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mc_bench::loadgen::proto::{self, client_message::Message as C, server_message::Message as S};
use prost::Message;
use tokio::sync::mpsc;
use wtransport::{Endpoint, Identity, ServerConfig};

mod support;

use support::{run_loadgen, Scratch, LOADGEN};
// Throwaway Ed25519 key for minting test tokens.
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIANrNLZIId4mddBy8Vm5ZhqMm+pX6VMwB2ngeA0duiK9\n-----END PRIVATE KEY-----\n";

struct Fixture {
    port: u16,
    hash: String,
    _rt: tokio::runtime::Runtime,
}

fn identity() -> (Identity, String) {
    let id = Identity::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let hash = hex::encode(id.certificate_chain().as_slice()[0].hash().as_ref());
    (id, hash)
}

fn start(kind: &'static str) -> Fixture {
    let meetings: Meetings = Arc::default();
    start_with(move |conn| {
        let meetings = meetings.clone();
        async move {
            if kind == "echo" {
                echo_session(conn).await
            } else {
                signaling_session(conn, meetings).await
            }
        }
    })
}

/// A server on an ephemeral loopback port whose every accepted session runs `session`.
fn start_with<F, Fut>(session: F) -> Fixture
where
    F: Fn(wtransport::Connection) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (id, hash) = identity();
    let server = rt.block_on(async {
        let cfg = ServerConfig::builder()
            .with_bind_address("127.0.0.1:0".parse().unwrap())
            .with_identity(id)
            .keep_alive_interval(Some(Duration::from_secs(3)))
            .build();
        Endpoint::server(cfg).unwrap()
    });
    let port = server.local_addr().unwrap().port();
    let session = Arc::new(session);
    rt.spawn(async move {
        loop {
            let inc = server.accept().await;
            let session = session.clone();
            tokio::spawn(async move {
                let Ok(req) = inc.await else { return };
                let Ok(conn) = req.accept().await else { return };
                session(conn).await
            });
        }
    });
    Fixture {
        port,
        hash,
        _rt: rt,
    }
}

async fn echo_session(conn: wtransport::Connection) {
    let conn = Arc::new(conn);
    let c2 = conn.clone();
    tokio::spawn(async move {
        while let Ok(d) = c2.receive_datagram().await {
            let _ = c2.send_datagram(d.payload());
        }
    });
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                if send.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            let _ = send.finish().await;
        });
    }
}

/// An echo that holds each reply back for a moment and counts the messages that arrive
/// meanwhile: the most it ever held unanswered on one stream goes to `most`.
async fn counting_echo_session(conn: wtransport::Connection, size: usize, most: Arc<AtomicUsize>) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let most = most.clone();
        tokio::spawn(async move {
            let mut held = vec![0u8; size];
            let mut more = vec![0u8; 65536];
            loop {
                if recv.read_exact(&mut held).await.is_err() {
                    break;
                }
                // A client that keeps its window waits for this reply before it sends
                // again; anything arriving within the pause was already in flight.
                while let Ok(Ok(Some(n))) =
                    tokio::time::timeout(Duration::from_millis(30), recv.read(&mut more)).await
                {
                    held.extend_from_slice(&more[..n]);
                }
                most.fetch_max(held.len().div_ceil(size), Ordering::Relaxed);
                if send.write_all(&held).await.is_err() {
                    return;
                }
                held.truncate(size);
            }
            let _ = send.finish().await;
        });
    }
}

fn frame(m: &proto::ServerMessage) -> Vec<u8> {
    let body = m.encode_to_vec();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

type Meetings = Arc<Mutex<HashMap<String, Vec<(String, mpsc::UnboundedSender<Vec<u8>>)>>>>;

/// Join → JoinResponse; MuteRequest → ParticipantMuteUpdate to all (rule 3); PublishStream
/// → StreamPublished to the others; layouts → StreamAssignments to the sender.
async fn signaling_session(conn: wtransport::Connection, meetings: Meetings) {
    let Ok((mut send, mut recv)) = conn.accept_bi().await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if send.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut me: Option<(String, String)> = None;
    while let Ok(Some(n)) = recv.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let m = proto::ClientMessage::decode(&buf[4..4 + len]).unwrap();
            buf.drain(..4 + len);
            let out = |to_all: bool, include_me: bool, msg: S| {
                let (mid, pid) = me.clone().unwrap();
                let f = frame(&proto::ServerMessage {
                    message: Some(msg),
                    trace_parent: String::new(),
                });
                for (p, t) in meetings.lock().unwrap().get(&mid).into_iter().flatten() {
                    if (to_all && (include_me || *p != pid)) || (!to_all && *p == pid) {
                        let _ = t.send(f.clone());
                    }
                }
            };
            match m.message {
                Some(C::JoinRequest(j)) => {
                    // Roster (docs/protocol.md rule 8): existing participants to the joiner,
                    // ParticipantJoined to the others; JoinResponse first.
                    let pid = format!("p-{}", rand::random::<u32>());
                    let mut all = meetings.lock().unwrap();
                    let members = all.entry(j.meeting_id.clone()).or_default();
                    let existing = members
                        .iter()
                        .map(|(p, _)| proto::Participant {
                            participant_id: p.clone(),
                            ..Default::default()
                        })
                        .collect();
                    let r = proto::JoinResponse {
                        participant_id: pid.clone(),
                        user_id: 1,
                        existing_participants: existing,
                        ..Default::default()
                    };
                    let _ = tx.send(frame(&proto::ServerMessage {
                        message: Some(S::JoinResponse(r)),
                        trace_parent: String::new(),
                    }));
                    let joined = frame(&proto::ServerMessage {
                        message: Some(S::ParticipantJoined(proto::ParticipantJoined {
                            participant: Some(proto::Participant {
                                participant_id: pid.clone(),
                                ..Default::default()
                            }),
                        })),
                        trace_parent: String::new(),
                    });
                    for (_, t) in members.iter() {
                        let _ = t.send(joined.clone());
                    }
                    members.push((pid.clone(), tx.clone()));
                    drop(all);
                    me = Some((j.meeting_id, pid));
                }
                Some(C::MuteRequest(r)) => {
                    let pid = me.clone().unwrap().1;
                    out(
                        true,
                        true,
                        S::ParticipantMuteUpdate(proto::ParticipantMuteUpdate {
                            participant_id: pid,
                            audio_self_muted: r.audio_muted,
                            video_self_muted: r.video_muted,
                        }),
                    );
                }
                Some(C::PublishStream(s)) => {
                    let pid = me.clone().unwrap().1;
                    out(
                        true,
                        false,
                        S::StreamPublished(proto::StreamPublished {
                            participant_id: pid,
                            stream: Some(s),
                        }),
                    );
                }
                Some(C::SubscribeToLayout(_)) | Some(C::UpdateLayout(_)) => {
                    out(false, false, S::StreamAssignments(proto::Opaque {}))
                }
                _ => {}
            }
        }
    }
}

/// Writes the development material the load generator mints tokens with into `dir`.
fn write_dev_material(dir: &Path, hash: &str) {
    std::fs::write(dir.join("signing-key.pem"), PEM).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"test-1","x":"AA"}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("cert.sha256"), format!("{hash}\n")).unwrap();
}

fn loadgen(args: &[&str], json: &Path, bound: Duration) -> (i32, serde_json::Value, String) {
    run_loadgen("0.5", args, json, bound)
}

#[test]
fn echo_closed_loop_with_datagrams_against_wtransport_echo() {
    let fx = start("echo");
    let url = format!("https://127.0.0.1:{}/echo", fx.port);
    let scratch = Scratch::new("lg-test");
    let json = scratch.path("echo.json");
    let plot = scratch.path("echo.svg");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "2",
            "--plot",
            plot.to_str().unwrap(),
            "echo",
            "--target",
            &url,
            "--cert-hash",
            &fx.hash,
            "--sessions",
            "4",
            "--window",
            "4",
            "--size",
            "256",
            "--datagrams",
            "50",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    let f = &v["figures"];
    assert!(f["throughput"]["round_trips_per_s"].as_f64().unwrap() > 10.0);
    for k in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
        assert!(f["latencies"]["rtt"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(f["counters"]["datagrams_received"].as_u64().unwrap() > 0);
    assert!(f["counters"].get("echo_mismatch").is_none());
    assert!(f["errors"].as_object().unwrap().is_empty(), "{f}");
    assert!(
        std::fs::read_to_string(json.with_extension("").with_extension("rtt.hgrm"))
            .unwrap()
            .contains("#[Max")
    );
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}

/// `--window W` keeps exactly W messages in flight per session, never more: a server
/// that delays its replies sees at most W unanswered messages on a stream.
#[test]
fn echo_window_bounds_the_messages_in_flight() {
    for window in [1usize, 3] {
        let most = Arc::new(AtomicUsize::new(0));
        let seen = most.clone();
        let fx = start_with(move |conn| counting_echo_session(conn, 64, seen.clone()));
        let url = format!("https://127.0.0.1:{}/echo", fx.port);
        let scratch = Scratch::new("lg-test");
        let json = scratch.path("echo-window.json");
        let w = window.to_string();
        let (code, v, out) = loadgen(
            &[
                "--duration",
                "1",
                "echo",
                "--target",
                &url,
                "--cert-hash",
                &fx.hash,
                "--sessions",
                "2",
                "--window",
                &w,
                "--size",
                "64",
            ],
            &json,
            Duration::from_secs(30),
        );
        assert_eq!(code, 0, "{out}");
        assert!(v["figures"]["counters"]["completed"].as_u64().unwrap() > 0);
        assert_eq!(
            most.load(Ordering::Relaxed),
            window,
            "--window {window}: most messages the server saw unanswered on one stream"
        );
        // Each reply is held 30 ms; a round trip counts from when the window let its
        // message go, not from when the writer began waiting for room (one more round trip).
        let p50 = v["figures"]["latencies"]["rtt"]["p50_ms"].as_f64().unwrap();
        assert!(
            (25.0..50.0).contains(&p50),
            "--window {window}: rtt p50 {p50} ms"
        );
        // quinn's counters of the generator's connections: with one message in flight,
        // every request and every reply travels in a datagram of its own (at least).
        let udp = &v["window"]["udp"];
        let (to, from) = (
            udp["to_server_per_op"].as_f64().unwrap(),
            udp["from_server_per_op"].as_f64().unwrap(),
        );
        if window == 1 {
            assert!((1.0..4.0).contains(&to), "{udp}");
            assert!((1.0..4.0).contains(&from), "{udp}");
        } else {
            assert!(to > 0.0 && from > 0.0, "{udp}");
        }
        assert!(out.contains("UDP datagrams per round trip"), "{out}");
    }
}

#[test]
fn echo_open_loop_and_stream_per_message() {
    let fx = start("echo");
    let url = format!("https://127.0.0.1:{}/", fx.port);
    let scratch = Scratch::new("lg-test");
    let json = scratch.path("echo-open.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "2",
            "echo",
            "--target",
            &url,
            "--cert-hash",
            &fx.hash,
            "--sessions",
            "2",
            "--rate",
            "200",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    let n = v["figures"]["counters"]["completed"].as_u64().unwrap();
    assert!(
        (250..=450).contains(&n),
        "open loop at 200/s for 2 s completed {n}"
    );
    let json = scratch.path("echo-spm.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "1",
            "echo",
            "--target",
            &url,
            "--cert-hash",
            &fx.hash,
            "--sessions",
            "2",
            "--stream-per-message",
            "--window",
            "2",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    assert!(v["figures"]["counters"]["completed"].as_u64().unwrap() > 0);
}

#[test]
fn untrusted_or_unreachable_targets_fail_cleanly() {
    let scratch = Scratch::new("lg-test");
    let json = scratch.path("none.json");
    let st = Command::new(LOADGEN)
        .args(["--json", json.to_str().unwrap(), "echo"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2), "no trust anchor → usage error");
    let fx = start("echo");
    let url = format!("https://127.0.0.1:{}/", fx.port);
    let wrong = "00".repeat(32);
    let (code, v, _) = loadgen(
        &[
            "--duration",
            "1",
            "echo",
            "--target",
            &url,
            "--cert-hash",
            &wrong,
            "--sessions",
            "1",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(code, 1, "a wrong certificate hash must fail the run");
    assert_eq!(v["figures"]["counters"]["sessions_failed"], 1);
}

#[test]
fn meeting_and_connect_against_fanout_fixture() {
    let fx = start("signaling");
    let scratch = Scratch::new("lg-test");
    write_dev_material(scratch.dir(), &fx.hash);
    let dir = scratch.dir();
    let url = format!("https://127.0.0.1:{}/", fx.port);
    let json = scratch.path("meeting.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "2",
            "meeting",
            "--target",
            &url,
            "--dev-dir",
            dir.to_str().unwrap(),
            "--sizes",
            "3x4,1x10",
            "--rate",
            "200",
        ],
        &json,
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}");
    let c = &v["figures"]["counters"];
    assert_eq!(c["joins_ok"], 22);
    assert!(c["notifications_expected"].as_u64().unwrap() > 100);
    assert_eq!(c["notifications_expected"], c["notifications_delivered"]);
    assert!(c.get("notifications_missing").is_none());
    assert!(
        v["figures"]["latencies"]["fanout"]["p99_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(v["figures"]["latencies"]["join"]["count"].as_u64().unwrap() == 22);
    assert!(
        v["window"]["udp"]["from_server_per_op"].as_f64().unwrap() > 0.0,
        "{}",
        v["window"]
    );

    let json = scratch.path("connect.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "5",
            "connect",
            "--target",
            &url,
            "--dev-dir",
            dir.to_str().unwrap(),
            "--sessions",
            "40",
            "--concurrency",
            "8",
            "--join",
        ],
        &json,
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(v["figures"]["counters"]["joins_ok"], 40);
    assert!(
        v["figures"]["throughput"]["sessions_per_s"]
            .as_f64()
            .unwrap()
            > 1.0
    );

    let json = scratch.path("ramp.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "1",
            "ramp",
            "--target",
            &url,
            "--dev-dir",
            dir.to_str().unwrap(),
            "--sizes",
            "2x3",
            "--rate",
            "20",
            "--steps",
            "2",
            "--drain",
            "1",
        ],
        &json,
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    assert_eq!(v["capacity"]["rate"], 40.0);
}

#[test]
fn ctrl_c_stops_cleanly_and_reports_and_hold_keeps_idle_sessions() {
    let fx = start("echo");
    let url = format!("https://127.0.0.1:{}/", fx.port);
    let scratch = Scratch::new("lg-test");
    let json = scratch.path("sigint.json");
    let mut child = Command::new(LOADGEN)
        .args([
            "--progress",
            "0",
            "--duration",
            "60",
            "--json",
            json.to_str().unwrap(),
        ])
        .args([
            "echo",
            "--target",
            &url,
            "--cert-hash",
            &fx.hash,
            "--sessions",
            "2",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "mc-loadgen did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert!(v["figures"]["counters"]["completed"].as_u64().unwrap() > 0);
    assert!(v["figures"]["duration_s"].as_f64().unwrap() < 10.0);

    let json = scratch.path("hold.json");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "2",
            "connect",
            "--target",
            &url,
            "--cert-hash",
            &fx.hash,
            "--sessions",
            "60",
            "--concurrency",
            "16",
            "--hold",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(v["figures"]["counters"]["sessions_ok"], 60);
    let over = Command::new(LOADGEN)
        .args([
            "--max-sessions",
            "10",
            "connect",
            "--insecure",
            "--sessions",
            "11",
        ])
        .output()
        .unwrap();
    assert_eq!(over.status.code(), Some(2), "--max-sessions is a hard cap");
}

//! The runbook's smoke tests 1–3 against the real binary, byte for byte, plus the
//! admin plane's limits, startup log order, configuration errors and SIGTERM.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{binary, split_response, Server};

#[test]
fn runbook_smoke_tests_1_to_3() {
    let server = Server::start_dev(&["--shards", "2"]);

    // Test 1: health.
    let t = Instant::now();
    let raw = harness::http_keep_alive(
        server.http,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
    );
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "health took {:?}",
        t.elapsed()
    );
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
    );

    // Test 2: readiness (dev mode without a GC: ready, and honest about the GC).
    let t = Instant::now();
    let (status, head, body) = server.get("/ready");
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert_eq!(
        body,
        r#"{"status":"ready","gc_registered":false,"actor_system":"healthy"}"#
    );

    // Test 3: metrics.
    let t = Instant::now();
    let (status, head, body) = server.get("/metrics");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    for line in [
        "# HELP mc_meetings_active Number of active meetings",
        "# TYPE mc_meetings_active gauge",
        "mc_meetings_active{shard=\"0\"} 0",
        "mc_meetings_active{shard=\"1\"} 0",
        "# HELP mc_connections_active Number of active WebTransport connections",
        "# TYPE mc_connections_active gauge",
        "mc_connections_active{shard=\"1\"} 0",
        "mc_actor_mailbox_depth{actor_type=\"meeting\",shard=\"1\"} 0",
        "mc_actor_mailbox_depth{actor_type=\"connection\",shard=\"0\"} 0",
        "mc_messages_dropped_total{actor_type=\"meeting\",shard=\"0\"} 0",
        "mc_actor_panics_total{actor_type=\"meeting\",shard=\"0\"} 0",
        "# TYPE mc_message_processing_duration_seconds histogram",
        "mc_gc_heartbeat_total{status=\"success\"} 0",
        "mc_gc_heartbeat_total{status=\"error\"} 0",
        "mc_shards 2",
    ] {
        assert!(body.contains(line), "missing {line:?}");
    }
}

#[test]
fn head_keep_alive_404_405_and_bad_requests() {
    let server = Server::start_dev(&["--shards", "1"]);
    let raw = server.http_raw("HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(server.get("/nope").0, 404);
    let (status, head, _) =
        split_response(&server.http_raw("POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"));
    assert_eq!(split_response(&server.http_raw("BLAH\r\n\r\n")).0, 400);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(split_response(&server.http_raw(&huge)).0, 431);

    // Three requests on one keep-alive connection, pipelined.
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
}

#[test]
fn a_slow_client_is_timed_out_and_many_scrapers_are_served() {
    let server = Server::start_dev(&["--shards", "1", "--admin-header-timeout-ms", "300"]);
    // Slowloris: half a request head, then nothing. The server answers 408 and closes.
    let mut slow = TcpStream::connect(server.http).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = Instant::now();
    let mut resp = String::new();
    let _ = slow.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(3));

    // 32 concurrent scrapers.
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let addr = server.http;
            std::thread::spawn(move || {
                let raw =
                    harness::http_raw(addr, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
                split_response(&raw).0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
}

/// The exact keep-alive answer to `GET /health`.
const HEALTH_OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK";

/// `n` connections to the admin port that each send `first` (possibly nothing), given
/// time to be accepted and read.
fn hold(server: &Server, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let held: Vec<_> = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(server.http).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(first).unwrap();
            // Distinct arrival times, so that which one waited longest is clear.
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    held
}

/// The server closed `s` without answering.
fn closed_unanswered(s: &mut TcpStream) -> bool {
    matches!(s.read_to_end(&mut Vec::new()), Ok(0))
}

/// Nothing arrives on `s` for a while, and it is not closed.
fn still_open(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn at_the_connection_limit_the_least_advanced_connection_makes_room() {
    let server = Server::start_dev(&["--shards", "1", "--admin-max-connections", "2"]);
    let cases: [(&str, &[u8]); 3] = [
        ("idle", b""),
        ("partial head", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
        (
            "head without its body",
            b"POST /health HTTP/1.1\r\nContent-Length: 100\r\n\r\n",
        ),
    ];
    for (case, first) in cases {
        let mut held = hold(&server, 2, first);
        let t = Instant::now();
        let (status, _, body) = server.get("/health");
        assert_eq!((status, body.as_str()), (200, "OK"), "{case}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{case}: {:?}",
            t.elapsed()
        );
        assert!(
            closed_unanswered(&mut held[0]),
            "{case}: the oldest is closed"
        );
        assert!(still_open(&mut held[1]), "{case}: the newer one is kept");
        drop(held);
        // Let the server see the rest go before the next case.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A connection that asks for `/metrics` hundreds of times in one write and reads
/// nothing: with a receive buffer of a few KiB, the server's answers soon fill both
/// sides' buffers and its write waits, the connection held "being answered".
fn unread_scrapes(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.http.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.write_all(&b"GET /metrics HTTP/1.1\r\n\r\n".repeat(256))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s
}

#[test]
fn at_the_connection_limit_a_probe_closes_a_scrape_its_client_does_not_read() {
    let server = Server::start_dev(&["--shards", "1", "--admin-max-connections", "2"]);
    let mut held: Vec<_> = (0..2).map(|_| unread_scrapes(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (status, _, body) = server.get("/health");
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The one answered longest was closed: what was written before ends in EOF. The
    // other is still answered, and then kept open for its next request.
    let drained = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answers = Vec::new();
        let end = s.read_to_end(&mut answers);
        assert!(answers.starts_with(b"HTTP/1.1 200 OK"));
        end
    };
    let closed = drained(&mut held[0]);
    assert!(
        closed.is_ok()
            || matches!(&closed, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{closed:?}"
    );
    let kept = drained(&mut held[1]);
    assert!(
        matches!(&kept, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "{kept:?}"
    );
    let (_, _, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("mc_refusals_total{reason=\"admin_evicted\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("mc_refusals_total{reason=\"admin_connections\"} 0\n"));
}

#[test]
fn a_new_connection_has_the_header_timeout_to_start_and_keep_alive_the_idle_timeout() {
    let server = Server::start_dev(&["--shards", "1", "--admin-header-timeout-ms", "300"]);
    let mut silent = TcpStream::connect(server.http).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut kept = TcpStream::connect(server.http).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    kept.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    let mut first = vec![0u8; HEALTH_OK.len()];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(first, HEALTH_OK);

    // Nothing sent: closed without an answer at the header timeout, not the idle one.
    assert!(closed_unanswered(&mut silent));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(1),
        "{waited:?}"
    );

    // A connection that has finished a request may idle past the header timeout.
    std::thread::sleep(Duration::from_millis(600).saturating_sub(t.elapsed()));
    kept.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut second = String::new();
    kept.read_to_string(&mut second).unwrap();
    assert!(second.starts_with("HTTP/1.1 200 OK"), "{second}");
}

#[test]
fn startup_lines_come_in_runbook_order() {
    let server = Server::start_dev(&["--shards", "1"]);
    let log = server.log();
    let order = [
        "Starting Meeting Controller",
        "Configuration loaded successfully",
        "Actor system initialized",
        "Prometheus metrics recorder initialized",
        "Meeting Controller ready",
    ];
    let positions: Vec<_> = order
        .iter()
        .map(|l| {
            log.find(l)
                .unwrap_or_else(|| panic!("{l:?} missing:\n{log}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = Server::start_dev(&["--shards", "1", "--log-format", "json"]);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("Meeting Controller ready"))
        .expect("ready line");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(v["message"], "Meeting Controller ready");
    assert_eq!(v["level"], "INFO");
}

#[test]
fn sigterm_turns_ready_off_and_exits_zero() {
    let mut server = Server::start_dev(&["--shards", "2"]);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("Received SIGTERM"), "{log}");
}

#[test]
fn bad_configuration_fails_fast_with_exit_2_naming_flag_and_env() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--dev", "--capacity", "0"], &[], "MC_CAPACITY"),
        (&["--dev"], &[("MC_CAPACITY", "lots")], "MC_CAPACITY"),
        (
            &["--dev", "--actor-mailbox-size", "0"],
            &[],
            "ACTOR_MAILBOX_SIZE",
        ),
        (&["--dev", "--shards", "0"], &[], "MC_SHARDS"),
        (&["--dev", "--shards", "4096"], &[], "MC_SHARDS"),
        (
            &["--dev", "--http-bind-address", "nowhere"],
            &[],
            "HTTP_BIND_ADDRESS",
        ),
        (
            &["--dev"],
            &[("WEBTRANSPORT_BIND_ADDRESS", "1.2.3.4")],
            "WEBTRANSPORT_BIND_ADDRESS",
        ),
        (
            &["--dev", "--gc-registration-url", "::bad"],
            &[],
            "GC_REGISTRATION_URL",
        ),
        (
            &["--dev", "--gc-heartbeat-interval-secs", "0"],
            &[],
            "GC_HEARTBEAT_INTERVAL_SECS",
        ),
        (&["--dev", "--log-format", "xml"], &[], "MC_LOG_FORMAT"),
        (
            &["--dev", "--ipv6-client-prefix", "0"],
            &[],
            "MC_IPV6_CLIENT_PREFIX",
        ),
        (
            &["--dev"],
            &[("MC_IPV6_CLIENT_PREFIX", "129")],
            "MC_IPV6_CLIENT_PREFIX",
        ),
        (
            &["--dev"],
            &[("MC_MESH_OVERFLOW_MAX_BYTES", "0")],
            "MC_MESH_OVERFLOW_MAX_BYTES",
        ),
        (
            &["--dev", "--session-outbound-max-bytes", "2097152"],
            &[("MC_SHARD_OUTBOUND_MAX_BYTES", "1048576")],
            "MC_SHARD_OUTBOUND_MAX_BYTES",
        ),
        (&["--dev", "--mc-id", "has space"], &[], "MC_ID"),
        (
            &["--dev", "--meeting-broadcast-rate", "0"],
            &[],
            "MC_MEETING_BROADCAST_RATE",
        ),
        (
            &["--dev"],
            &[("MC_MEETING_BROADCAST_BURST", "300")],
            "MC_MEETING_BROADCAST_BURST",
        ),
        (
            &[],
            &[("GC_REGISTRATION_URL", "http://gc:8080/api/v1/mc/register")],
            "MC_REGION",
        ),
        (&["--region", "eu"], &[], "GC_REGISTRATION_URL"),
        (
            &[
                "--region",
                "eu",
                "--gc-registration-url",
                "http://gc:8080/api/v1/mc/register",
            ],
            &[],
            "MC_JWKS_PATH",
        ),
        (
            &["--dev"],
            &[("MC_BINDING_TOKEN_SECRET", "c2hvcnQ=")],
            "MC_BINDING_TOKEN_SECRET",
        ),
        // Durations that would overflow a deadline later, and an empty meeting.
        (
            &["--dev", "--drain-timeout-secs", "18446744073709551615"],
            &[],
            "MC_DRAIN_TIMEOUT_SECS",
        ),
        (
            &["--dev"],
            &[("GC_HEARTBEAT_INTERVAL_SECS", "18446744073709551615")],
            "GC_HEARTBEAT_INTERVAL_SECS",
        ),
        (
            &["--dev"],
            &[("GC_REQUEST_TIMEOUT_SECS", "3601")],
            "GC_REQUEST_TIMEOUT_SECS",
        ),
        (
            &["--dev", "--admin-idle-timeout-secs", "86401"],
            &[],
            "MC_ADMIN_IDLE_TIMEOUT_SECS",
        ),
        (
            &["--dev"],
            &[("MC_ADMIN_HEADER_TIMEOUT_MS", "18446744073709551615")],
            "MC_ADMIN_HEADER_TIMEOUT_MS",
        ),
        (
            &["--dev"],
            &[("MC_DISCONNECT_GRACE_SECS", "18446744073709551615")],
            "MC_DISCONNECT_GRACE_SECS",
        ),
        (
            &["--dev", "--max-participants-per-meeting", "0"],
            &[],
            "MC_MAX_PARTICIPANTS_PER_MEETING",
        ),
    ];
    for (args, env, expect) in cases {
        let mut cmd = Command::new(binary());
        cmd.args(*args)
            .env_remove("MC_SHARDS")
            .env_remove("GC_REGISTRATION_URL");
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let t = Instant::now();
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn help_lists_every_runbook_variable_with_defaults() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (env, default) in [
        ("GC_REGISTRATION_URL", None),
        ("MC_REGION", None),
        ("MC_CAPACITY", Some("100")),
        ("WEBTRANSPORT_BIND_ADDRESS", Some("0.0.0.0:4433")),
        ("HTTP_BIND_ADDRESS", Some("0.0.0.0:8080")),
        ("ACTOR_MAILBOX_SIZE", Some("1000")),
        ("GC_HEARTBEAT_INTERVAL_SECS", Some("10")),
        ("RUST_LOG", Some("info")),
        ("MC_ID", None),
        ("MC_SHARDS", None),
        ("MC_DRAIN_TIMEOUT_SECS", Some("60")),
        ("MC_LOG_FORMAT", Some("text")),
        ("MC_DEV_DIR", Some("./.mc-dev")),
    ] {
        assert!(
            help.contains(&format!("[env: {env}=")),
            "{env} missing:\n{help}"
        );
        if let Some(d) = default {
            assert!(
                help.contains(&format!("[default: {d}]")),
                "{env} default {d}"
            );
        }
    }
}

#[test]
fn an_admin_port_in_use_is_reported_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("mc-port-{port}"));
    let out = Command::new(binary())
        .args(["--dev", "--shards", "1", "--http-bind-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--webtransport-bind-address")
        .arg(format!("127.0.0.1:{}", harness::free_udp_port()))
        .arg("--dev-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Failed to bind HTTP listener"), "{log}");
    assert!(
        log.contains("Address already in use") || log.contains("in use"),
        "{log}"
    );
}

#[test]
fn dev_token_prints_a_token_the_dev_server_trusts() {
    let dir = std::env::temp_dir().join(format!("mc-devtoken-{}", std::process::id()));
    let out = Command::new(binary())
        .args([
            "dev-token",
            "--meeting-id",
            "m1",
            "--user-id",
            "alice",
            "--role",
            "host",
        ])
        .arg("--dev-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    for f in ["signing-key.pem", "jwks.json", "binding-secret"] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_webtransport_port_in_use_is_reported_and_exits_non_zero() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("mc-udp-{port}"));
    let out = Command::new(binary())
        .args(["--dev", "--shards", "1", "--webtransport-bind-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--http-bind-address")
        .arg(format!("127.0.0.1:{}", harness::free_tcp_port()))
        .arg("--dev-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("Failed to bind WebTransport listener"),
        "{log}"
    );
    assert!(log.contains("in use"), "{log}");
}

/// An import request of `len` junk bytes (no signature) on `s`; returns the status line.
fn junk_import(s: &mut TcpStream, len: usize) -> String {
    let head = format!(
        "POST /internal/v1/meetings/import HTTP/1.1\r\nHost: mc\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![b' '; len]).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // The head and the JSON body of the answer, up to the end of its first line is enough.
    while !got.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    // Drain the rest of the answer (a short JSON body), keeping the connection open.
    std::thread::sleep(Duration::from_millis(20));
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut rest = [0u8; 4096];
    let _ = s.read(&mut rest);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    String::from_utf8_lossy(&got).trim_end().to_string()
}

fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A keep-alive admin connection keeps no import body after its answer: 32 connections
/// that each sent a 4 MiB import (refused, 401) and stay open hold little, where each
/// once kept a read buffer of 4 to 8 MiB for as long as it was kept alive.
#[test]
fn keep_alive_connections_give_back_an_import_body_after_the_answer() {
    const CONNS: usize = 32;
    const BODY: usize = 4 * 1024 * 1024;
    let server = Server::start_dev(&["--shards", "1"]);
    let before = rss_kib(&server);
    let mut kept = Vec::new();
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let status = junk_import(&mut s, BODY);
        assert!(status.contains(" 401 "), "{status}");
        kept.push(s);
    }
    let grown = rss_kib(&server).saturating_sub(before);
    eprintln!("RSS grew by {grown} KiB");
    // 32 bodies of 4 MiB went through; holding them would be 128 MiB or more.
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB with {CONNS} kept-alive connections after their imports"
    );
    for s in &mut kept {
        assert!(still_open(s), "the connection was kept alive");
    }
}

/// The admin plane's budget for request bodies counts what arrived, not what was
/// declared: four connections that declare a 4 MiB import body and send none of it
/// leave room for another import, which is read and answered (401 here, for want of a
/// signature) instead of 503.
#[test]
fn import_bodies_declared_and_not_sent_hold_no_budget() {
    let server = Server::start_dev(&["--shards", "1"]);
    let declared = b"POST /internal/v1/meetings/import HTTP/1.1\r\nHost: mc\r\nContent-Length: 4194304\r\n\r\n";
    let mut idle = hold(&server, 4, declared);
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let status = junk_import(&mut s, 4 * 1024 * 1024);
    assert!(status.contains(" 401 "), "{status}");
    for s in &mut idle {
        assert!(still_open(s), "a body still within its time");
    }
}

/// `--max-handover-bytes` is the import route's body limit: a body over it is answered
/// 413 unread, one at it is read (and refused 401 here, for want of a signature); raised
/// to 8 MiB, a 5 MiB body is read too (the default would answer it 413).
#[test]
fn the_import_body_limit_follows_max_handover_bytes() {
    let raised = Server::start_dev(&["--shards", "1", "--max-handover-bytes", "8388608"]);
    let mut s = TcpStream::connect(raised.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let status = junk_import(&mut s, 5 * 1024 * 1024);
    assert!(status.contains(" 401 "), "{status}");
    drop(raised);

    let server = Server::start_dev(&["--shards", "1", "--max-handover-bytes", "65536"]);
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(junk_import(&mut s, 65_536).contains(" 401 "));
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head =
        "POST /internal/v1/meetings/import HTTP/1.1\r\nHost: mc\r\nContent-Length: 65537\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
}

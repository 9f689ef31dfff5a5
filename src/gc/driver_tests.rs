//! Driver tests on a real glommio executor against a scripted GC on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;

use super::*;
use crate::gc::client::{GcClientConfig, GcUrls, BACKOFF_MAX};
use crate::http1::HttpError;
use crate::testing::run_local;

/// A GC that answers each accepted connection with the next canned response and
/// reports each request's head line and body.
fn scripted_gc(replies: Vec<&'static str>) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for reply in replies {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            let (head_end, len) = loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (req.len(), 0);
                }
                req.extend_from_slice(&buf[..n]);
                if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..p]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    break (p + 4, len);
                }
            };
            while req.len() < head_end + len {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&req).to_string();
            let line = text.lines().next().unwrap_or_default().to_string();
            let body = text.get(head_end..).unwrap_or_default().to_string();
            let _ = tx.send(format!("{line} {body}"));
            if reply == "hang" {
                thread::sleep(Duration::from_secs(3));
                continue;
            }
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (addr, rx)
}

fn config(addr: SocketAddr) -> GcClientConfig {
    GcClientConfig {
        id: "mc-d".into(),
        region: "r".into(),
        capacity: 5,
        webtransport_endpoint: "https://127.0.0.1:4433".into(),
        http_endpoint: "http://127.0.0.1:8080".into(),
        shards: 1,
        version: "0.1.0".into(),
        urls: GcUrls::derive(&format!("http://{addr}/api/v1/mc/register"), None).unwrap(),
        heartbeat_interval: Duration::from_millis(50),
        backoff_min: Duration::from_millis(20),
        backoff_max: BACKOFF_MAX,
    }
}

const OK201: &str =
    "HTTP/1.1 201 Created\r\nContent-Length: 35\r\n\r\n{\"accepted\":true,\"status\":\"active\"}";
const OK201_SLOW: &str = "HTTP/1.1 201 Created\r\nContent-Length: 64\r\n\r\n{\"accepted\":true,\"status\":\"active\",\"heartbeat_interval_secs\":60}";
const HB_DRAINING: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n13\r\n{\"status\":\"draining\r\n2\r\n\"}\r\n0\r\n\r\n";
const HB_404: &str = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
const DEREG: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}";

#[test]
fn perform_reads_answers_and_reports_refusal_and_timeout() {
    let (addr, rx) = scripted_gc(vec![OK201, "hang"]);
    let url = HttpUrl::parse(&format!("http://{addr}/api/v1/mc/register")).unwrap();
    let (ok, hung) = run_local(async move {
        let ok = perform(&url, "{\"id\":\"x\"}", Duration::from_secs(2)).await;
        let hung = perform(&url, "{}", Duration::from_millis(200)).await;
        (ok, hung)
    });
    assert_eq!(ok.unwrap().status, 201);
    assert_eq!(
        rx.recv().unwrap(),
        "POST /api/v1/mc/register HTTP/1.1 {\"id\":\"x\"}"
    );
    assert_eq!(
        hung.unwrap_err(),
        GcError::Http(HttpError::Timeout(Duration::from_millis(200)))
    );

    // Nothing listens on a freshly closed port: refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/register")).unwrap();
    let err =
        run_local(async move { perform(&url, "{}", Duration::from_secs(2)).await }).unwrap_err();
    assert!(
        matches!(err, GcError::Http(HttpError::Connect { .. })),
        "{err:?}"
    );
    assert!(err.is_unreachable());
    let url = HttpUrl::parse("http://name.invalid/register").unwrap();
    let err =
        run_local(async move { perform(&url, "{}", Duration::from_secs(5)).await }).unwrap_err();
    assert!(
        matches!(
            err,
            GcError::Http(HttpError::Resolve { .. } | HttpError::Timeout(_))
        ),
        "{err:?}"
    );
}

#[test]
fn run_registers_heartbeats_follows_gc_and_deregisters() {
    let (addr, rx) = scripted_gc(vec![OK201, HB_DRAINING, HB_404, OK201_SLOW, DEREG]);
    let metrics = Metrics::new();
    let (stats, status, flips, m) = run_local({
        let metrics = metrics.clone();
        async move {
            let mut hooks = GcHooks::new(|| Load {
                meetings: 2,
                sessions: 3,
                participants: 3,
            });
            let flips = Rc::new(Cell::new(0u32));
            let f = flips.clone();
            hooks.on_gc_draining = Some(Box::new(move |_| f.set(f.get() + 1)));
            hooks.metrics = Some(metrics.clone());
            let status = hooks.status.clone();
            let control = hooks.control.clone();
            let client = GcClient::new(config(addr), Instant::now(), 1);
            let task = glommio::spawn_local(run(client, hooks));
            // Wait for register, draining heartbeat, 404, re-register.
            let t0 = Instant::now();
            while !status.registered() || !status.gc_says_draining() {
                sleep(Duration::from_millis(5)).await;
                assert!(t0.elapsed() < Duration::from_secs(5));
            }
            while metrics
                .gc_registrations_total
                .with_label_values(&["success"])
                .get()
                < 2
            {
                sleep(Duration::from_millis(5)).await;
                assert!(t0.elapsed() < Duration::from_secs(5));
            }
            control.start_draining();
            control.shutdown();
            let stats = task.await;
            (stats, status, flips.get(), metrics)
        }
    });
    let reqs: Vec<String> = rx.try_iter().collect();
    assert!(reqs[0].starts_with("POST /api/v1/mc/register "), "{reqs:?}");
    assert!(reqs[1].contains("/heartbeat") && reqs[1].contains("\"current_sessions\":3"));
    assert!(reqs[3].starts_with("POST /api/v1/mc/register "));
    assert_eq!(
        reqs.last().unwrap(),
        "POST /api/v1/mc/deregister HTTP/1.1 {\"id\":\"mc-d\"}"
    );
    assert_eq!(
        (
            stats.registrations_ok,
            stats.heartbeats_ok,
            stats.unknown_to_gc
        ),
        (2, 1, 1)
    );
    assert!(status.stopped() && !status.registered());
    // draining from the heartbeat, active again from the re-registration.
    assert_eq!(flips, 2);
    let text = String::from_utf8(m.encode()).unwrap();
    assert!(
        text.contains("mc_gc_heartbeat_total{status=\"success\"} 1"),
        "{text}"
    );
    assert!(text.contains("mc_gc_heartbeat_total{status=\"error\"} 1"));
    assert!(text.contains("mc_gc_registered 0"));
    assert!(text.contains("mc_gc_heartbeat_duration_seconds_count 2"));
}

/// Captures formatted log output of the current thread.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn runbook_log_lines_in_order() {
    const REFUSED: &str = "HTTP/1.1 400 Bad Request\r\nContent-Length: 42\r\n\r\n{\"accepted\":false,\"reason\":\"bad region x\"}";
    let (addr, _rx) = scripted_gc(vec![REFUSED, OK201_SLOW, DEREG]);
    // A port nobody listens on, for `GC unreachable`.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        run_local(async move {
            for target in [addr, SocketAddr::from(([127, 0, 0, 1], port))] {
                let hooks = GcHooks::new(Load::default);
                let (status, control) = (hooks.status.clone(), hooks.control.clone());
                let task = glommio::spawn_local(run(
                    GcClient::new(config(target), Instant::now(), 1),
                    hooks,
                ));
                let t0 = Instant::now();
                while !status.registered() && t0.elapsed() < Duration::from_millis(300) {
                    sleep(Duration::from_millis(5)).await;
                }
                control.shutdown();
                task.await;
            }
        })
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let at = |needle: &str| {
        logs.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing in\n{logs}"))
    };
    assert!(at("Registering with Global Controller...") < at("Failed to register with GC"));
    assert!(at("Failed to register with GC") < at("GC registration successful"));
    assert!(
        logs.contains("reason=\"bad region x\"") || logs.contains("reason=bad region x"),
        "{logs}"
    );
    assert!(at("GC registration successful") < at("GC unreachable"));
    assert!(
        logs[at("GC unreachable")..]
            .lines()
            .next()
            .unwrap()
            .contains("cannot connect"),
        "{logs}"
    );
}

//! mc-loadgen against the real `mc-service --dev --enable-echo` on loopback: `echo` on
//! `/echo` and a short `meeting` that fails if any notification is missing. The server binary is `$MC_SERVICE_BIN` (set by scripts/test) or
//! `target/{release,debug}/mc-service`; a binary without `--enable-echo` (the data plane
//! not merged yet) skips the test unless `MC_LOADGEN_REQUIRE_SERVER=1` or `CI=true`.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{run_loadgen, Scratch};

fn server_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MC_SERVICE_BIN") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("mc-service"))
        .find(|p| p.exists())
}

struct Server {
    child: Child,
    /// Its admin port (`/metrics`).
    http: u16,
    /// Its dev dir (certificate, signing key); the test's reports go here too.
    dir: Scratch,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server; None (skip) when it has no --enable-echo.
fn start() -> Option<(Server, u16)> {
    // In CI (CI=true, set by the CI runner) a missing server is a failure, not a skip.
    let required = std::env::var("MC_LOADGEN_REQUIRE_SERVER").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(bin) = server_bin() else {
        assert!(!required, "no mc-service binary");
        eprintln!("SKIPPED: no mc-service binary built");
        return None;
    };
    let help = Command::new(&bin).arg("--help").output().unwrap();
    if !String::from_utf8_lossy(&help.stdout).contains("--enable-echo") {
        assert!(!required, "{} has no --enable-echo", bin.display());
        eprintln!("SKIPPED: {} has no --enable-echo yet", bin.display());
        return None;
    }
    let scratch = Scratch::new("lg-mc");
    let dir = scratch.dir().to_path_buf();
    let (wt, http) = (free_port(), free_port());
    let child = Command::new(&bin)
        .args([
            "--dev",
            "--enable-echo",
            "--shards",
            "2",
            "--dev-dir",
            dir.to_str().unwrap(),
        ])
        .args(["--webtransport-bind-address", &format!("127.0.0.1:{wt}")])
        .args(["--http-bind-address", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        http,
        dir: scratch,
    };
    let t0 = Instant::now();
    while !(dir.join("cert.sha256").exists() && dir.join("jwks.json").exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "mc-service did not write its dev dir"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ready once /ready answers (the admin plane starts after the shards).
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "mc-service admin port never opened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Some((server, wt))
}

fn loadgen(args: &[&str], json: &Path) -> (i32, serde_json::Value, String) {
    run_loadgen("1", args, json, Duration::from_secs(90))
}

#[test]
fn echo_and_meeting_against_mc_service() {
    let Some((server, port)) = start() else {
        return;
    };
    let d = server.dir.dir().to_str().unwrap();
    let json = server.dir.path("echo.json");
    let url = format!("https://127.0.0.1:{port}/echo");
    let pid = server.child.id().to_string();
    let metrics = format!("http://127.0.0.1:{}/metrics", server.http);
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "2",
            "--server-pid",
            &pid,
            "--server-metrics",
            &metrics,
            "echo",
            "--target",
            &url,
            "--dev-dir",
            d,
            "--sessions",
            "4",
            "--window",
            "4",
        ],
        &json,
    );
    assert_eq!(code, 0, "echo against mc-service failed:\n{out}");
    assert!(
        v["figures"]["throughput"]["round_trips_per_s"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    // The server's CPU over the window, read from /proc and from its own
    // process_cpu_seconds_total, agree to within the ticks /proc counts in and the
    // moments between the reads; the exported counter is not in whole seconds.
    let cpu = |source: &str| {
        v["window"]["server"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["source"] == source))
            .and_then(|s| s["cpu_s"].as_f64())
            .unwrap_or_else(|| panic!("no server CPU from {source} in {}", v["window"]))
    };
    let (proc_cpu, metrics_cpu) = (cpu(&format!("pid {pid}")), cpu(&metrics));
    assert!(
        proc_cpu > 0.0 && (metrics_cpu - proc_cpu).abs() <= 0.03 + 0.1 * proc_cpu,
        "server CPU over the window: {proc_cpu} s from /proc, {metrics_cpu} s from /metrics\n{out}"
    );
    assert!(!out.contains("counts whole seconds"), "{out}");
    // Four sessions share one client socket (eight per socket by default), which the
    // kernel sends to one of the two shards: the report shows both shards' CPU and warns.
    let shards = v["window"]["server_shards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(shards.len(), 2, "{}", v["window"]);
    assert_eq!(v["window"]["uneven_shards"], true, "{}", v["window"]);
    assert!(out.contains("server CPU by shard (cores): 0 "), "{out}");
    assert!(
        out.contains("warning: the load reached the server's shards unevenly"),
        "{out}"
    );

    let json = server.dir.path("meeting.json");
    let url = format!("https://127.0.0.1:{port}/");
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "3",
            "meeting",
            "--target",
            &url,
            "--dev-dir",
            d,
            "--sizes",
            "3x4,1x12",
            "--rate",
            "100",
        ],
        &json,
    );
    assert_eq!(code, 0, "meeting against mc-service failed:\n{out}");
    // `bench/compare.sh --perf` starts the fan-out's profile on this stderr line.
    let err = std::fs::read_to_string(json.with_extension("err")).unwrap();
    assert!(
        err.lines()
            .any(|l| l == "measured window opens: 3.0 s from now"),
        "no window line on stderr:\n{err}"
    );
    let c = &v["figures"]["counters"];
    assert_eq!(c["joins_ok"], 24);
    assert!(c["notifications_expected"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        c["notifications_expected"], c["notifications_delivered"],
        "every notification, in order"
    );
}

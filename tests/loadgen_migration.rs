//! A rolling restart under load (docs/protocol.md rules 17–21, bench/README.md "Rolling
//! restarts"): `mc-devgc`, MC-A and MC-B on loopback sharing one dev dir (one signing
//! key, certificate and binding secret, as the MCs of a cluster share them), and
//! `mc-loadgen meeting --sizes 50x5` against MC-A. MC-A is SIGTERMed (its meetings move
//! to MC-B) and started again on the same ports; then MC-B is SIGTERMed (the meetings move
//! back to the new MC-A): two cuts. From the load generator's JSON: no meeting ended,
//! every participant moved at each cut, every notification arrived except those lost at
//! a cut, which are at most what was in flight there, and nothing else went wrong.
//!
//! Needs `mc-loadgen` and `mc-devgc` built beside the test (`cargo build --workspace
//! --bins`; a workspace test run builds them).

mod harness;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::devgc::DevGc;
use harness::{free_tcp_port, Server};

const MEETINGS: u64 = 50;
const SIZE: u64 = 5;
const PARTICIPANTS: u64 = MEETINGS * SIZE;
/// Traffic phase of the load generator: long enough for both cuts.
const TRAFFIC_SECS: u64 = 45;

/// `target/<profile>/mc-loadgen`, built with the workspace.
fn loadgen_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("mc-loadgen");
    assert!(
        bin.exists(),
        "{} missing: build the workspace (`cargo build --workspace --bins`)",
        bin.display()
    );
    bin
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sessions the server holds (every shard).
fn connections(server: &Server) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with("mc_connections_active"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn mc_args(id: &str, gc: &DevGc) -> Vec<String> {
    [
        "--shards",
        "2",
        "--mc-id",
        id,
        "--gc-registration-url",
        &gc.url(),
        "--gc-heartbeat-interval-secs",
        "1",
        // All load comes from 127.0.0.1.
        "--max-sessions-per-ip",
        "10000",
        "--drain-timeout-secs",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// SIGTERMs `from` and waits until it exited 0 and `to` holds every session.
fn cut(from: &mut Server, to: &Server, name: &str) {
    from.signal(libc::SIGTERM);
    let status = from
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name}: the drained MC did not exit\n{}", from.log()));
    assert!(status.success(), "{name}: {status:?}\n{}", from.log());
    let log = from.log();
    assert!(
        log.contains("Migration: meeting handed over; participants redirected"),
        "{name}: nothing handed over\n{log}"
    );
    assert!(!log.contains("Drain timeout reached"), "{name}\n{log}");
    wait_until(
        &format!("{name}: every participant on the new MC"),
        Duration::from_secs(30),
        || connections(to) >= PARTICIPANTS as f64,
    );
}

#[test]
fn meetings_survive_a_rolling_restart_under_load() {
    let gc = DevGc::start(free_tcp_port(), None);
    let a_args = mc_args("mc-a", &gc);
    let b_args = mc_args("mc-b", &gc);
    let mut a = Server::start_dev(&strs(&a_args));
    let dir = a.dev_dir.clone();
    let mut b = Server::start_dev_in(&strs(&b_args), &dir);
    wait_until("both MCs active at the GC", Duration::from_secs(15), || {
        gc.row_status("mc-a").as_deref() == Some("active")
            && gc.row_status("mc-b").as_deref() == Some("active")
    });

    let json = std::env::temp_dir().join(format!("lg-rolling-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let mut loadgen = Command::new(loadgen_bin())
        .args(["--progress", "5", "--json"])
        .arg(&json)
        .args([
            "--duration",
            &TRAFFIC_SECS.to_string(),
            "meeting",
            "--target",
        ])
        .arg(format!("https://{}/", a.webtransport))
        .arg("--dev-dir")
        .arg(&dir)
        .args(["--sizes", &format!("{MEETINGS}x{SIZE}")])
        .args(["--rate", "250", "--join-concurrency", "32", "--drain", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mc-loadgen");
    let mut stdout = loadgen.stdout.take().expect("piped");
    let table = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let started = Instant::now();

    wait_until(
        "every participant joined on MC-A",
        Duration::from_secs(60),
        || connections(&a) >= PARTICIPANTS as f64,
    );
    std::thread::sleep(Duration::from_secs(3));
    // Cut 1: MC-A goes; its meetings move to MC-B. MC-A comes back on the same ports.
    cut(&mut a, &b, "cut 1 (MC-A)");
    let t_free = Instant::now();
    while std::net::TcpListener::bind(a.http).is_err() {
        let ss = Command::new("ss")
            .args(["-tanpo", "state", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let port = format!(":{}", a.http.port());
        let lines: Vec<&str> = ss.lines().filter(|l| l.contains(&port)).collect();
        eprintln!("admin port busy after {:?}: {lines:#?}", t_free.elapsed());
        assert!(
            t_free.elapsed() < Duration::from_secs(70),
            "port never freed"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let a2 = Server::start_dev_at(
        &strs(&a_args),
        &a.http.to_string(),
        &a.webtransport.to_string(),
        &dir,
    );
    wait_until(
        "the new MC-A active at the GC",
        Duration::from_secs(15),
        || gc.row_status("mc-a").as_deref() == Some("active"),
    );
    std::thread::sleep(Duration::from_secs(3));
    // Cut 2: MC-B goes; the meetings move back to the new MC-A.
    cut(&mut b, &a2, "cut 2 (MC-B)");
    let cuts_done = started.elapsed();
    assert!(
        cuts_done < Duration::from_secs(TRAFFIC_SECS),
        "both cuts took {cuts_done:?}, longer than the traffic phase"
    );

    let deadline = Instant::now() + Duration::from_secs(TRAFFIC_SECS + 90);
    let status = loop {
        if let Some(s) = loadgen.try_wait().expect("wait mc-loadgen") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = loadgen.kill();
            panic!("mc-loadgen ran too long");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let table = table.join().unwrap_or_default();
    println!("{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("mc-loadgen wrote its JSON"))
            .expect("JSON");
    let _ = std::fs::remove_file(&json);
    for ext in ["connect", "join", "fanout", "layout", "move"] {
        let _ = std::fs::remove_file(json.with_extension(format!("{ext}.hgrm")));
    }
    let counters = &v["figures"]["counters"];
    let count = |name: &str| counters[name].as_u64().unwrap_or(0);
    assert!(
        status.success() && v["passed"] == true,
        "mc-loadgen failed: {:?}\n{table}",
        v["failures"]
    );
    assert_eq!(count("joins_ok"), PARTICIPANTS, "{table}");
    assert_eq!(v["figures"]["errors"], serde_json::json!({}), "{table}");
    for zero in [
        "participants_left_mid_run",
        "sessions_lost",
        "redirect_failures",
        "notifications_missing",
        "notifications_out_of_order",
        "roster_missing",
        "cut_resync_inconsistent",
    ] {
        assert_eq!(count(zero), 0, "{zero}\n{table}");
    }
    assert_eq!(count("redirects_received"), 2 * PARTICIPANTS, "{table}");
    assert_eq!(count("participants_moved"), 2 * PARTICIPANTS, "{table}");
    let cuts = v["figures"]["cuts"].as_array().expect("cuts reported");
    assert_eq!(cuts.len(), 2, "{table}");
    for c in cuts {
        assert_eq!(c["moved"].as_u64(), Some(PARTICIPANTS), "{c}");
        let (lost, in_flight) = (
            c["notifications_lost"].as_u64().unwrap_or(u64::MAX),
            c["notifications_in_flight"].as_u64().unwrap_or(0),
        );
        assert!(lost <= in_flight, "{c}");
        println!(
            "cut {}: {} moved, move p50 {} ms p99 {} ms max {} ms, messages dropped {} exposed {}, \
             notifications in flight {in_flight} lost {lost}",
            c["cut"],
            c["moved"],
            c["move_p50_ms"],
            c["move_p99_ms"],
            c["move_max_ms"],
            c["messages_dropped"],
            c["messages_exposed"],
        );
    }
    let lost = count("notifications_lost_at_cut");
    assert!(lost <= count("notifications_in_flight_at_cut"), "{table}");
    assert!(
        count("notifications_delivered") + lost >= count("notifications_expected"),
        "{table}"
    );
    drop(a2);
}

//! udp-floor, the fan-out's datagrams in plain UDP on loopback: a short run counts every
//! fan-out, delivery and answer of its window, and bad flags are refused with a reason.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const FLOOR: &str = env!("CARGO_BIN_EXE_udp-floor");

/// A CPU this test may run on (the suite may be confined to some).
fn a_cpu() -> String {
    shards::allowed_cpus()
        .ok()
        .and_then(|c| c.first().copied())
        .unwrap_or(0)
        .to_string()
}

/// One second of 20 clients at 50 fan-outs a second, 5 ms ACK delay; its JSON report.
fn run(extra: &[&str]) -> serde_json::Value {
    // A directory of its own for each run, whether the tests share a process or not.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "udp-floor-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("floor.json");
    let cpu = a_cpu();
    let out = Command::new(FLOOR)
        .args(["--clients", "20", "--rate", "50", "--ack-delay-ms", "5"])
        .args(["--warmup", "0", "--duration", "1"])
        .args(["--server-cpu", &cpu, "--client-cpu", &cpu])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("udp-floor runs");
    assert!(out.status.success(), "udp-floor failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("µs of server CPU per"), "{stdout}");
    let r = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    r
}

fn n(r: &serde_json::Value, k: &str) -> u64 {
    r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"))
}

#[test]
fn a_short_run_counts_every_delivery_and_answer() {
    let r = run(&["--regular"]);
    // One datagram to each client per fan-out, all of them counted.
    assert_eq!(n(&r, "deliveries"), 20 * n(&r, "fanouts"), "{r}");
    assert!(
        (40..=51).contains(&(n(&r, "fanouts") + n(&r, "late_fanouts"))),
        "50 fan-outs a second, one second: {r}"
    );
    // Fan-outs 20 ms apart, answers after 5 ms: every client answers each fan-out once;
    // the last one's answers may fall after the window.
    assert!(n(&r, "answers") <= n(&r, "deliveries"), "{r}");
    assert!(n(&r, "answers") + 20 >= n(&r, "deliveries"), "{r}");
    assert!(r["us_per_delivery"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!(r["clients"], 20);
}

#[test]
fn fan_outs_at_random_moments_keep_the_rate_and_share_answers() {
    let r = run(&[]);
    assert_eq!(r["regular"], false);
    assert_eq!(n(&r, "deliveries"), 20 * n(&r, "fanouts"), "{r}");
    // 50 a second on average (a Poisson count: 50 ± 7 for one second).
    assert!(
        (20..=90).contains(&(n(&r, "fanouts") + n(&r, "late_fanouts"))),
        "{r}"
    );
    // A client answers at most once per fan-out, fewer times when two fall within one
    // ACK delay.
    assert!(n(&r, "answers") <= n(&r, "deliveries"), "{r}");
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    for args in [
        &["--clients", "0"][..],
        &["--rate", "0"],
        &["--payload-bytes", "5000"],
        &["--server-cpu", "100000"],
        &["--requests-per-s", "1000"],
        &["--io-uring"],
        &["--server-work-ns", "1000"],
        &["--echo", "--io-uring", "--server-work-ns", "1000"],
        &["--echo", "--server-work-ns", "10000001"],
    ] {
        let out = Command::new(FLOOR)
            .args(args)
            .args(["--warmup", "0", "--duration", "1"])
            .output()
            .expect("udp-floor runs");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("must be") || err.contains("out of range") || err.contains("only with"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn echo_answers_every_datagram_with_one_in_flight_per_client() {
    let r = run(&["--echo", "--client-work-us", "2"]);
    assert_eq!(r["mode"], "echo");
    // Every request in the window is answered in it, but for the ones in flight at
    // either end (one per client).
    let (asked, answered) = (n(&r, "answers"), n(&r, "deliveries"));
    assert!(asked.abs_diff(answered) <= 20, "{r}");
    // One second of 20 clients on loopback: many round trips, never more than 20
    // datagrams per receive.
    assert!(answered > 1_000, "{r}");
    assert!(r["datagrams_per_recvmmsg"].as_f64().unwrap() <= 20.0, "{r}");
}

#[test]
fn paced_echo_keeps_to_the_pace() {
    let r = run(&["--echo", "--requests-per-s", "2000"]);
    assert_eq!(r["requests_per_s"], 2000);
    // One second at 2,000 requests a second: the pace is a ceiling, and loopback
    // answers far faster than a request every 500 µs, so the clients reach it. The
    // clients' first 20 requests go out together, before the pace (no warm-up here).
    let answered = n(&r, "deliveries");
    assert!((1_600..=2_000 + 20 + 5).contains(&answered), "{r}");
    // Requests come one at a time, 500 µs apart: each receive finds one.
    assert!(r["datagrams_per_recvmmsg"].as_f64().unwrap() < 1.5, "{r}");
}

#[test]
fn the_servers_work_per_datagram_is_spent_and_reported() {
    // 200 µs of busy work per request, 2,000 requests a second: 0.4 of a core.
    let r = run(&[
        "--echo",
        "--requests-per-s",
        "2000",
        "--server-work-ns",
        "200000",
    ]);
    assert_eq!(n(&r, "server_work_ns"), 200_000);
    let (asked, answered) = (n(&r, "answers"), n(&r, "deliveries"));
    assert!(asked.abs_diff(answered) <= 20, "{r}");
    // About 2,000 on an idle host; a loaded one (the suite's other tests) slows the
    // clients, but every request still takes its work.
    assert!(answered >= 300, "{r}");
    // The work is the server thread's CPU time: most of 200 µs per round trip (the
    // clock-tick accounting is coarse, and a server preempted mid-wait is billed less
    // than the wall time it waited), and not many times more.
    let us = r["us_per_delivery"].as_f64().unwrap();
    assert!((120.0..600.0).contains(&us), "{r}");
}

#[test]
fn echo_through_io_uring_answers_every_datagram() {
    let r = run(&["--echo", "--io-uring", "--requests-per-s", "2000"]);
    assert_eq!(r["io_uring"], true);
    // As the paced echo above, every request answered, through the ring: no recvmmsg
    // or sendmmsg, one io_uring_enter per wake-up.
    let (asked, answered) = (n(&r, "answers"), n(&r, "deliveries"));
    assert_eq!(asked, answered, "{r}");
    assert!((1_600..=2_000 + 20 + 5).contains(&answered), "{r}");
    assert_eq!(n(&r, "recvmmsg_calls"), 0, "{r}");
    let per_enter = r["datagrams_per_ring_enter"].as_f64().unwrap();
    assert!(per_enter > 0.5 && per_enter < 1.5, "{r}");
}

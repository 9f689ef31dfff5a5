//! Headless Chromium on the dev-mode `/demo` page follows a live migration
//! (docs/protocol.md rules 17–19): `mc-devgc`, MC-A and MC-B sharing one dev dir (one
//! certificate, signing key and binding secret), two pages join a meeting on MC-A, MC-A
//! is SIGTERMed, and both pages end up joined on MC-B with the same participant ids and
//! roster, the "moved to" line shown and mute updates flowing through MC-B
//! (`tests/browser/demo_redirect.mjs`). Runs with `MC_BROWSER_TEST=1` (scripts/test sets
//! it); under that variable a missing browser or npm package FAILS the test.

mod harness;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::devgc::DevGc;
use harness::{free_tcp_port, Server};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_demo_page_follows_a_redirect_to_another_mc() {
    if std::env::var("MC_BROWSER_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set MC_BROWSER_TEST=1 to run the headless Chromium test");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser (scripts/test does)"
    );
    let gc = DevGc::start(free_tcp_port(), None);
    let url = gc.url();
    let args = |id: &'static str| -> Vec<String> {
        [
            "--shards",
            "2",
            "--mc-id",
            id,
            "--gc-registration-url",
            &url,
            "--gc-heartbeat-interval-secs",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut a = Server::start_dev(&strs(&args("mc-a")));
    let b = Server::start_dev_in(&strs(&args("mc-b")), &a.dev_dir);
    wait_until("both MCs active at the GC", Duration::from_secs(15), || {
        gc.row_status("mc-a").as_deref() == Some("active")
            && gc.row_status("mc-b").as_deref() == Some("active")
    });

    let mut node = Command::new("node")
        .arg(dir.join("demo_redirect.mjs"))
        .arg("--admin")
        .arg(format!("http://{}", a.http))
        .arg("--expect")
        .arg(format!("https://{}", b.webtransport))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = node.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = node.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let ready = line == "ready";
                out.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = node.kill();
                panic!(
                    "the pages never joined on MC-A:\n{}\n{}\nMC-A:\n{}",
                    out.join("\n"),
                    errors.join().unwrap_or_default(),
                    a.log()
                );
            }
        }
    }
    a.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = node.try_wait().expect("wait node") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            break node.wait().expect("killed node");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    out.extend(lines.try_iter());
    let stdout = out.join("\n");
    let stderr = errors.join().unwrap_or_default();
    assert!(
        status.success(),
        "demo_redirect.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nMC-A:\n{}\nMC-B:\n{}",
        a.log(),
        b.log()
    );
    println!("{stdout}");
    for name in ["alice", "bob"] {
        assert!(
            stdout.contains(&format!("{name} moved to https://{}/", b.webtransport)),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("alice saw bob unmute through the new MC"),
        "{stdout}"
    );
    let exit = a
        .wait_exit(Duration::from_secs(15))
        .expect("MC-A exits once its meeting moved");
    assert!(exit.success(), "{exit:?}\n{}", a.log());
    assert!(
        a.log()
            .contains("Migration: meeting handed over; participants redirected"),
        "{}",
        a.log()
    );
}

//! Headless Chromium reads the signaling close codes (signaling protocol rule 5) from the
//! real binary: a bad token ends the session with 0x101, a join over the participant
//! limit with 0x102, a drain with 0x103 — `await transport.closed` resolves with that
//! `closeCode` instead of rejecting. The raw-client side of the same rule is in
//! hostile_h3.rs.
//!
//! Runs with `MC_BROWSER_TEST=1` (scripts/test sets it; it needs Debian's
//! /usr/bin/chromium and `npm ci` in tests/browser); under that variable a missing
//! browser or npm package FAILS the test.

mod harness;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use harness::Server;
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{client_message as C, pb, ClientMessage};
use prost::Message as _;

fn join_frame(meeting: &str, token: &str, name: &str) -> String {
    let msg = ClientMessage::of(C::Message::JoinRequest(pb::JoinRequest {
        meeting_id: meeting.into(),
        join_token: token.into(),
        participant_name: name.into(),
        ..Default::default()
    }));
    let body = msg.encode_to_vec();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    hex::encode(frame)
}

fn token(keys: &DevKeys, meeting: &str, user: &str) -> String {
    keys.mint_meeting_token(
        meeting,
        user,
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

fn cert_hash(server: &Server) -> String {
    std::fs::read_to_string(server.dev_dir.join("cert.sha256"))
        .expect("cert.sha256")
        .trim()
        .to_string()
}

#[test]
fn chromium_sees_the_signaling_close_codes() {
    if std::env::var("MC_BROWSER_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set MC_BROWSER_TEST=1 to run the headless Chromium test");
        return;
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install -y chromium"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser (scripts/test does)"
    );

    let capacity = Server::start_dev(&["--shards", "2", "--max-participants-per-meeting", "1"]);
    let drained = Server::start_dev(&["--shards", "2", "--drain-timeout-secs", "1"]);
    let keys = DevKeys::load_or_create(&capacity.dev_dir).expect("dev keys");
    let drain_keys = DevKeys::load_or_create(&drained.dev_dir).expect("dev keys");

    let mut child = Command::new("node")
        .arg(dir.join("close_codes.mjs"))
        .args(["--url", &format!("https://{}/", capacity.webtransport)])
        .args(["--cert-hash", &cert_hash(&capacity)])
        .args(["--drain-url", &format!("https://{}/", drained.webtransport)])
        .args(["--drain-cert-hash", &cert_hash(&drained)])
        .args(["--bad", &join_frame("c-bad", "not.a.token", "mallory")])
        .args([
            "--cap-a",
            &join_frame("c-cap", &token(&keys, "c-cap", "alice"), "alice"),
        ])
        .args([
            "--cap-b",
            &join_frame("c-cap", &token(&keys, "c-cap", "bob"), "bob"),
        ])
        .args([
            "--drain",
            &join_frame("c-drain", &token(&drain_keys, "c-drain", "dana"), "dana"),
        ])
        .args(["--chromium", &chromium])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(format!("[stderr] {line}"));
        }
    });

    // The script tells us when the drained participant has joined: then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            if line == "DRAIN-READY" {
                drained.signal(libc::SIGTERM);
            }
            lines.push(line);
        }
        if let Some(status) = child.try_wait().expect("node status") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    lines.extend(rx.try_iter());
    let output = lines.join("\n");
    match status {
        Some(s) if s.success() => eprintln!("{output}"),
        Some(s) => panic!(
            "close_codes.mjs failed ({s}): Chromium did not see the close codes\n{output}\n\
             ---- capacity server log ----\n{}",
            capacity.log()
        ),
        None => panic!("close_codes.mjs ran over 120 s\n{output}"),
    }
}

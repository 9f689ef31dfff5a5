//! Headless Chromium joins a meeting through the dev-mode `/demo` page and receives the
//! roster. Runs with `MC_BROWSER_TEST=1` (scripts/test sets it);
//! under that variable a missing browser or npm package FAILS the test.

mod harness;

use std::path::Path;
use std::process::Command;

use harness::Server;

#[test]
fn chromium_joins_through_the_demo_page() {
    if std::env::var("MC_BROWSER_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set MC_BROWSER_TEST=1 to run the headless Chromium test");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser (scripts/test does)"
    );
    let server = Server::start_dev(&["--shards", "2"]);
    let (status, _, body) = server.get("/demo");
    assert_eq!(status, 200);
    assert!(body.contains("WebTransport"));
    let out = Command::new("node")
        .arg(dir.join("demo.mjs"))
        .arg("--admin")
        .arg(format!("http://{}", server.http))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
    assert!(stdout.contains("alice saw bob mute"), "{stdout}");
}

#[test]
fn demo_is_dev_only_and_tokens_are_json() {
    let server = Server::start_dev(&["--shards", "1"]);
    let (status, head, body) = server.get("/demo/token?meeting_id=m1&user_id=alice&role=host");
    assert_eq!(status, 200, "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(v["cert_sha256"].as_str().unwrap().len(), 64);
    assert!(v["webtransport_url"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    let (status, _, _) = server.get("/demo/token?meeting_id=&user_id=x");
    assert_eq!(status, 400);
}

#[test]
fn chromium_echoes_against_the_real_binary() {
    if std::env::var("MC_BROWSER_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set MC_BROWSER_TEST=1 to run the headless Chromium test");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let server = Server::start_dev(&["--shards", "2", "--enable-echo"]);
    let out = Command::new("node")
        .arg(dir.join("echo.mjs"))
        .arg("--url")
        .arg(format!("https://{}/echo", server.webtransport))
        .arg("--cert-hash-file")
        .arg(server.dev_dir.join("cert.sha256"))
        .args(["--sessions", "16"])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "echo.mjs failed\nstdout:\n{}\nstderr:\n{}\nserver:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

//! Headless Chromium against the in-process data plane (2 shards, /echo).
//!
//! Runs only with `MC_BROWSER_TEST=1` (it needs Debian's /usr/bin/chromium and
//! `npm install` in tests/browser); under that variable a missing browser FAILS.
//! `MC_BROWSER_SESSIONS` sets the concurrent sessions (default 16).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{echo_args, TestServer};

#[test]
fn chromium_echoes_over_webtransport() {
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
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm");
        assert!(status.success(), "npm install failed in tests/browser");
    }
    let server = TestServer::start(2, echo_args());
    let url = format!("https://127.0.0.1:{}/echo", server.addr.port());
    let status = Command::new("node")
        .arg("echo.mjs")
        .args([
            "--url",
            &url,
            "--cert-hash",
            &server.cert_sha256,
            "--chromium",
            &chromium,
        ])
        .current_dir(&dir)
        .status()
        .expect("node");
    let accepted = server.wt_counter("accepted");
    // Chromium ends sessions with a CLOSE_WEBTRANSPORT_SESSION capsule; the server must
    // close those connections itself, well before the 30 s idle timeout.
    let idle = server.wait_idle(Duration::from_secs(10));
    let left = server.connections_active();
    server.stop();
    assert!(
        idle || !status.success(),
        "{left} connections still open after the browser closed its sessions"
    );
    assert!(
        status.success(),
        "browser echo failed ({accepted} sessions accepted)"
    );
}

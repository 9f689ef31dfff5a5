//! A harness, not a check: serve the in-process data plane (2 shards, /echo) for
//! `MC_SERVE_SECS` seconds (default 60) and print its URL and certificate hash, to run
//! the browser script or mc-echo-bench against it before the binary is wired:
//!
//! ```text
//! cargo test -p mc-service --test dataplane_serve -- --ignored --nocapture
//! ```

mod support;

use std::time::Duration;

use support::{echo_args, TestServer};

#[test]
#[ignore = "serves until MC_SERVE_SECS elapse; run explicitly"]
fn serve_echo() {
    let secs = std::env::var("MC_SERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = TestServer::start(2, echo_args());
    println!("url=https://127.0.0.1:{}/echo", server.addr.port());
    println!("cert_sha256={}", server.cert_sha256);
    std::thread::sleep(Duration::from_secs(secs));
    println!("connections_active={}", server.connections_active());
    server.stop();
}

//! The data plane against the real binary: `mc-service --dev --enable-echo --shards 2`
//! serves 1,000 concurrent WebTransport sessions that all echo, and
//! `mc_connections_active` returns to 0 after they close; each shard's CPU shows in
//! `mc_shard_cpu_seconds_total`.

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::client::{endpoint, runtime};
use harness::Server;
use wtransport::VarInt;

fn connections_active(server: &Server) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with("mc_connections_active{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_thousand_sessions_echo_on_two_shards_and_connections_return_to_zero() {
    const SESSIONS: usize = 1000;
    const CLIENT_SOCKETS: usize = 16;
    // One client address opens every connection: lift the per-address limit.
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--enable-echo",
        "--max-sessions-per-ip",
        "100000",
    ]);
    let url = format!("https://{}/echo", server.webtransport);
    runtime().block_on(async {
        let clients: Vec<_> = (0..CLIENT_SOCKETS).map(|_| Arc::new(endpoint())).collect();
        let mut tasks = Vec::new();
        for i in 0..SESSIONS {
            let client = clients[i % CLIENT_SOCKETS].clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let conn = client.connect(&url).await.expect("connect");
                let payload = format!("session {i} says hello").into_bytes();
                let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
                send.write_all(&payload).await.unwrap();
                send.finish().await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while let Some(n) = recv.read(&mut buf).await.unwrap() {
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, payload);
                conn
            }));
        }
        let mut conns = Vec::new();
        for t in tasks {
            conns.push(
                tokio::time::timeout(Duration::from_secs(120), t)
                    .await
                    .expect("session timed out")
                    .expect("session failed"),
            );
        }
        assert_eq!(conns.len(), SESSIONS);
        assert!(connections_active(&server) >= SESSIONS as f64 * 0.9);
        for c in &conns {
            c.close(VarInt::from_u32(0), b"");
        }
        drop(conns);
        for c in &clients {
            c.wait_idle().await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while connections_active(&server) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "connections left: {}",
            connections_active(&server)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each shard's thread did its share of the handshakes and echoes, and says so in
    // mc_shard_cpu_seconds_total (published about once a second): every shard has both
    // modes, and together they are at least a quarter of the process's CPU (nearly all
    // of it in practice) and never more.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, _, body) = server.get("/metrics");
    let value = |line: &str| line.rsplit(' ').next()?.parse::<f64>().ok();
    let process = body
        .lines()
        .find_map(|l| value(l.strip_prefix("process_cpu_seconds_total ")?))
        .expect("process_cpu_seconds_total");
    let mut shards = 0.0;
    for shard in ["0", "1"] {
        let mut per_shard = 0.0;
        for mode in ["user", "system"] {
            let series =
                format!("mc_shard_cpu_seconds_total{{mode=\"{mode}\",shard=\"{shard}\"}} ");
            let v = body
                .lines()
                .find_map(|l| value(l.strip_prefix(&series)?))
                .unwrap_or_else(|| panic!("no {series} in\n{body}"));
            per_shard += v;
        }
        assert!(per_shard > 0.0, "shard {shard} shows no CPU:\n{body}");
        shards += per_shard;
    }
    assert!(
        shards <= process && shards >= 0.25 * process,
        "shards' CPU {shards} s against the process's {process} s"
    );
}

//! The real `wt-echo-server` binary (the tokio/quinn peer of bench/compare.sh) on
//! loopback: bidi, uni and datagram echo from a plain wtransport client, then the
//! `mc-loadgen` operations compare.sh runs against it — echo with a warm-up and the
//! server's CPU read from /proc and from a `/metrics` endpoint, session setup
//! (`connect --echo-bytes`), and held sessions (`connect --hold --echo-bytes`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint, Identity};

const SERVER: &str = env!("CARGO_BIN_EXE_wt-echo-server");
mod support;

use support::{run_loadgen, Scratch, LOADGEN};

/// The peer server, killed on drop.
struct Peer {
    child: Child,
    port: u16,
    hash: String,
    /// Its certificate and key; the tests' files go here too.
    dir: Scratch,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a self-signed certificate like mc-service's dev dir (cert.pem, key.pem,
/// cert.sha256) and starts the server on a free loopback port.
fn start_peer() -> Peer {
    let dir = Scratch::new("wt-echo");
    let id = Identity::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let hash = hex::encode(id.certificate_chain().as_slice()[0].hash().as_ref());
    std::fs::write(
        dir.path("cert.pem"),
        id.certificate_chain().as_slice()[0].to_pem(),
    )
    .unwrap();
    std::fs::write(dir.path("key.pem"), id.private_key().to_secret_pem()).unwrap();
    std::fs::write(dir.path("cert.sha256"), format!("{hash}\n")).unwrap();
    let mut child = Command::new(SERVER)
        .args(["--bind", "127.0.0.1:0", "--cert"])
        .arg(dir.path("cert.pem"))
        .arg("--key")
        .arg(dir.path("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Peer {
        child,
        port,
        hash,
        dir,
    }
}

#[test]
fn echoes_bidi_uni_and_datagrams_on_any_path() {
    let peer = start_peer();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let digest: [u8; 32] = hex::decode(&peer.hash).unwrap().try_into().unwrap();
        let cfg = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([Sha256Digest::new(digest)])
            .build();
        let client = Endpoint::client(cfg).unwrap();
        let url = format!("https://127.0.0.1:{}/any/path", peer.port);
        let conn = tokio::time::timeout(Duration::from_secs(10), client.connect(url))
            .await
            .unwrap()
            .unwrap();
        let t = Duration::from_secs(10);

        // Bidi: two writes, finish; the reply is both, then the end of the stream.
        let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
        send.write_all(b"hello ").await.unwrap();
        send.write_all(b"world").await.unwrap();
        send.finish().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Some(n) = tokio::time::timeout(t, recv.read(&mut buf))
            .await
            .unwrap()
            .unwrap()
        {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello world");

        // Uni: echoed on a stream the server opens.
        let mut up = conn.open_uni().await.unwrap().await.unwrap();
        up.write_all(b"one way").await.unwrap();
        up.finish().await.unwrap();
        let mut down = tokio::time::timeout(t, conn.accept_uni())
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        while let Some(n) = tokio::time::timeout(t, down.read(&mut buf))
            .await
            .unwrap()
            .unwrap()
        {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"one way");

        // Datagrams are unreliable even on loopback: resend until one comes back.
        let deadline = Instant::now() + t;
        loop {
            conn.send_datagram(b"ping").unwrap();
            match tokio::time::timeout(Duration::from_millis(200), conn.receive_datagram()).await {
                Ok(d) => {
                    assert_eq!(&d.unwrap().payload()[..], b"ping");
                    break;
                }
                Err(_) => assert!(Instant::now() < deadline, "no datagram echoed"),
            }
        }
        conn.close(0u32.into(), b"");
    });
}

/// A `/metrics` endpoint whose process CPU counter grows by 0.5 s per scrape.
fn fake_metrics() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = 0;
        while i < 2 && Instant::now() < deadline {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let body = format!(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n",
                1.0 + 0.5 * i as f64
            );
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            i += 1;
        }
    });
    (port, h)
}

fn loadgen(args: &[&str], json: &Path) -> (i32, serde_json::Value, String) {
    run_loadgen("0", args, json, Duration::from_secs(60))
}

#[test]
fn loadgen_measures_echo_setup_and_held_sessions_against_the_peer() {
    let peer = start_peer();
    let pid = peer.child.id().to_string();
    let url = format!("https://127.0.0.1:{}/echo", peer.port);
    let dev = peer.dir.dir().to_str().unwrap();
    let json = peer.dir.path("run.json");

    // Echo with warm-up: server CPU from /proc and from the fake /metrics.
    let (mport, metrics) = fake_metrics();
    let murl = format!("http://127.0.0.1:{mport}/metrics");
    let (code, v, out) = loadgen(
        &[
            "--warmup",
            "0.5",
            "--duration",
            "1",
            "--server-pid",
            &pid,
            "--server-metrics",
            &murl,
            "echo",
            "--target",
            &url,
            "--dev-dir",
            dev,
            "--sessions",
            "4",
            "--window",
            "4",
        ],
        &json,
    );
    metrics.join().unwrap();
    assert_eq!(code, 0, "{out}");
    let w = &v["window"];
    assert_eq!(w["operation"], "round trip");
    assert!(w["ops"].as_u64().unwrap() > 0, "{w}");
    let d = w["duration_s"].as_f64().unwrap();
    assert!((0.9..1.5).contains(&d), "measured phase is --duration: {d}");
    assert!(w["generator"]["cpu_s"].as_f64().unwrap() > 0.0);
    let server = w["server"].as_array().unwrap();
    assert_eq!(server[0]["source"], format!("pid {pid}"));
    assert!(server[0]["us_per_op"].as_f64().unwrap() > 0.0, "{w}");
    assert_eq!(server[1]["source"], murl.as_str());
    assert!((server[1]["cpu_s"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!(w["server_histograms"]["mc_fanout_duration_seconds"].is_null());
    assert!(out.contains("generator CPU: "), "{out}");
    assert!(out.contains(&format!("server CPU (pid {pid}): ")), "{out}");
    assert!(
        out.contains("server mc_fanout_duration_seconds: n/a"),
        "{out}"
    );

    // Session setup: connect + CONNECT + 32-byte echo + close, until --sessions.
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "20",
            "--server-pid",
            &pid,
            "connect",
            "--target",
            &url,
            "--dev-dir",
            dev,
            "--sessions",
            "40",
            "--concurrency",
            "8",
            "--echo-bytes",
            "32",
        ],
        &json,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(v["figures"]["counters"]["sessions_ok"], 40);
    assert_eq!(v["window"]["ops"], 40);
    assert_eq!(v["window"]["operation"], "session setup");
    assert_eq!(v["figures"]["latencies"]["setup"]["count"], 40);
    assert!(v["figures"]["errors"].as_object().unwrap().is_empty());

    // Held sessions with their echoed stream open, until --duration.
    let t0 = Instant::now();
    let (code, v, out) = loadgen(
        &[
            "--duration",
            "1.5",
            "connect",
            "--target",
            &url,
            "--dev-dir",
            dev,
            "--sessions",
            "30",
            "--concurrency",
            "8",
            "--echo-bytes",
            "32",
            "--hold",
        ],
        &json,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "held to the end"
    );
    assert_eq!(v["figures"]["counters"]["sessions_ok"], 30);

    // Bad values are refused before any traffic.
    let (code, _, _) = {
        let s = Command::new(LOADGEN)
            .args(["connect", "--insecure", "--echo-bytes", "8"])
            .output()
            .unwrap();
        (s.status.code().unwrap_or(-1), (), ())
    };
    assert_eq!(code, 2, "--echo-bytes below 16 is a usage error");
}

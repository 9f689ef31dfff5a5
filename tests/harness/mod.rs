//! Running the real `mc-service` binary on loopback for integration tests.
#![allow(dead_code)]

pub mod client;
pub mod devgc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free loopback TCP port (bound and released; good enough on a test machine).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free loopback UDP port.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mc-service"))
}

/// A running `mc-service`, killed when dropped. Its stdout/stderr are captured.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub webtransport: SocketAddr,
    pub dev_dir: PathBuf,
    pub output: Arc<Mutex<String>>,
    /// How many of stdout and stderr have ended (both: the process has exited, and all
    /// it wrote is in `output`).
    pipes_ended: Arc<AtomicUsize>,
}

impl Server {
    /// Start `mc-service --dev` on free loopback ports with extra args; waits for
    /// "Meeting Controller ready" (up to 30 s).
    pub fn start_dev(extra: &[&str]) -> Server {
        Self::start_dev_env(extra, &[])
    }

    pub fn start_dev_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let webtransport: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let dev_dir =
            std::env::temp_dir().join(format!("mc-test-{}-{}", std::process::id(), http.port()));
        Self::spawn(extra, env, http, webtransport, dev_dir)
    }

    /// Start on free loopback ports with the material of `dev_dir` (shared with another
    /// server: the same signing key, certificate and binding secret, as the MCs of one
    /// cluster share them).
    pub fn start_dev_in(extra: &[&str], dev_dir: &std::path::Path) -> Server {
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let webtransport: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        Self::spawn(extra, &[], http, webtransport, dev_dir.to_path_buf())
    }

    /// Start on given addresses and dev dir (a restart of an earlier server).
    pub fn start_dev_at(
        extra: &[&str],
        http: &str,
        webtransport: &str,
        dev_dir: &std::path::Path,
    ) -> Server {
        Self::spawn(
            extra,
            &[],
            http.parse().unwrap(),
            webtransport.parse().unwrap(),
            dev_dir.to_path_buf(),
        )
    }

    fn spawn(
        extra: &[&str],
        env: &[(&str, &str)],
        http: SocketAddr,
        webtransport: SocketAddr,
        dev_dir: PathBuf,
    ) -> Server {
        let mut cmd = Command::new(binary());
        cmd.arg("--dev")
            .arg("--http-bind-address")
            .arg(http.to_string())
            .arg("--webtransport-bind-address")
            .arg(webtransport.to_string())
            .arg("--dev-dir")
            .arg(&dev_dir)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("MC_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("MC_SHARDS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mc-service");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes_ended = Arc::new(AtomicUsize::new(0));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let ended = pipes_ended.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                ended.fetch_add(1, Ordering::Release);
            });
        }
        let server = Server {
            child,
            http,
            webtransport,
            dev_dir,
            output,
            pipes_ended,
        };
        server.wait_for_log("Meeting Controller ready", Duration::from_secs(30));
        server
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Wait until the output contains `needle`; panics with the log on timeout, or at
    /// once if the process has exited without logging it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // Read before the log: once both pipes have ended, the log is complete.
            let exited = self.pipes_ended.load(Ordering::Acquire) == 2;
            if self.log().contains(needle) {
                return;
            }
            if exited {
                panic!(
                    "{needle:?} not logged: the process exited; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{needle:?} not logged within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for exit up to `timeout`; None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// One HTTP/1.1 request with `Connection: close`; returns the raw response bytes.
    pub fn http_raw(&self, request: &str) -> Vec<u8> {
        http_raw(self.http, request)
    }

    pub fn get(&self, path: &str) -> (u16, String, String) {
        let raw = self.http_raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ));
        split_response(&raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- mc-service log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dev_dir);
    }
}

pub fn http_raw(addr: SocketAddr, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// (status, head, body)
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Send one request on a keep-alive connection (as curl does) and read exactly one
/// response, framed by its Content-Length.
pub fn http_keep_alive(addr: SocketAddr, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed before a full response");
        out.extend_from_slice(&buf[..n]);
        let Some(head_end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&out[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if out.len() >= head_end + 4 + len {
            return out;
        }
    }
}

//! Shared by the devgc integration tests: run the real `mc-devgc` on loopback and talk
//! to it with plain HTTP/1.1 (parsed by mc-service's own GC codec).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mc_service::http1::ResponseParser;

/// A running `mc-devgc`, killed when dropped.
pub struct DevGc {
    child: Child,
    pub addr: SocketAddr,
}

impl DevGc {
    /// Start `mc-devgc --bind <bind> <args>` and wait for its "listening on" line.
    pub fn start(bind: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mc-devgc"))
            .arg("--bind")
            .arg(bind)
            .args(args)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            // Its request log is noise in test output; MC_TEST_VERBOSE=1 shows it.
            .stderr(if std::env::var_os("MC_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn mc-devgc");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("mc-devgc did not start: {line:?}"));
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `method path` with a JSON body; (status, JSON body or Null).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        call(self.addr, method, path, body)
    }

    /// The row with this id from `GET /api/v1/mc`.
    pub fn row(&self, id: &str) -> Option<serde_json::Value> {
        let (status, list) = self.call("GET", "/api/v1/mc", "");
        assert_eq!(status, 200);
        list.as_array()?.iter().find(|r| r["id"] == id).cloned()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevGc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let mut p = ResponseParser::new();
    let resp = match p.handle_data(&raw).unwrap() {
        Some(r) => r,
        None => p.handle_eof().unwrap(),
    };
    let json = serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
    (resp.status, json)
}

/// An id no other test run uses (the PostgreSQL table outlives a test).
pub fn unique_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn register_body(id: &str) -> String {
    serde_json::json!({"id": id, "region": "us-west-2", "capacity": 100,
        "webtransport_endpoint": "https://10.0.3.7:4433", "http_endpoint": "http://10.0.3.7:8080",
        "shards": 4, "version": "0.1.0"})
    .to_string()
}

pub fn heartbeat_body(id: &str, sessions: u32) -> String {
    serde_json::json!({"id": id, "status": "active", "capacity": 100, "current_meetings": 12,
        "current_sessions": sessions, "current_participants": sessions})
    .to_string()
}

//! Running the development GC (`mc-devgc`, in memory or on PostgreSQL) on loopback.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{http_raw, split_response};

/// `target/<profile>/mc-devgc`, built with the workspace.
pub fn devgc_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("mc-devgc");
    assert!(
        bin.exists(),
        "{} missing: build the workspace (`cargo build --workspace --bins`)",
        bin.display()
    );
    bin
}

/// A running `mc-devgc` with 1 s heartbeats, killed when dropped.
pub struct DevGc {
    child: Child,
    pub port: u16,
}

impl DevGc {
    pub fn start(port: u16, database_url: Option<&str>) -> DevGc {
        let mut cmd = Command::new(devgc_bin());
        cmd.arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--heartbeat-interval-secs", "1"])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        let child = cmd.spawn().expect("spawn mc-devgc");
        let gc = DevGc { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mc-devgc did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        gc
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/mc/register", self.port)
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        let raw = http_raw(
            format!("127.0.0.1:{}", self.port).parse().unwrap(),
            &format!("GET {path} HTTP/1.1\r\nHost: gc\r\nConnection: close\r\n\r\n"),
        );
        let (_, _, body) = split_response(&raw);
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    pub fn rows(&self) -> serde_json::Value {
        self.get_json("/api/v1/mc")
    }

    pub fn row_status(&self, id: &str) -> Option<String> {
        let rows = self.rows();
        let list = rows
            .as_array()
            .cloned()
            .or_else(|| rows["controllers"].as_array().cloned())?;
        list.iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_str().map(str::to_string))
    }

    /// The recorded owner of every moved meeting: meeting_id → MC id.
    pub fn owners(&self) -> serde_json::Value {
        self.get_json("/api/v1/meetings/owners")
    }

    pub fn set_status(&self, id: &str, status: &str) {
        let body = format!("{{\"status\":\"{status}\"}}");
        let raw = http_raw(
            format!("127.0.0.1:{}", self.port).parse().unwrap(),
            &format!(
                "PUT /admin/mc/{id}/status HTTP/1.1\r\nHost: gc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(
            split_response(&raw).0,
            200,
            "{}",
            String::from_utf8_lossy(&raw)
        );
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

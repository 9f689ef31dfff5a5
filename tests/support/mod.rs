//! Shared helpers for data-plane tests: an in-process server of N shard executors
//! (shards crate: ExecutorSpec + Mesh) running the data plane on one SO_REUSEPORT
//! port of 127.0.0.1, with misrouted datagrams forwarded over the mesh.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use mc_service::metrics::{Metrics, ShardMetrics};
use mc_service::quic::{Forwarded, QuicArgs, QuicShared};
use mc_service::tls::{server_config, DevCert};
use mc_service::webtransport::{DataPlane, HoldApp, SessionApp};
use shards::{ExecutorSpec, Lane, Mesh, MeshMonitor};

/// Builds the `/` application on each shard (it is `!Send`, so built where it runs).
pub type AppFactory = Arc<dyn Fn() -> Rc<dyn SessionApp> + Send + Sync>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    pub cert_sha256: String,
    pub cert_der: Vec<u8>,
    pub shards: usize,
    monitor: MeshMonitor<Forwarded>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
    dir: PathBuf,
}

impl TestServer {
    pub fn start(shards: usize, args: QuicArgs) -> Self {
        Self::start_with(
            shards,
            args,
            Arc::new(|| Rc::new(HoldApp) as Rc<dyn SessionApp>),
        )
    }

    /// Like `start`, with the `/` application built on each shard by `app`.
    pub fn start_with(shards: usize, args: QuicArgs, app: AppFactory) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), shards, args, app)
    }

    /// Bind `bind` (port 0: the first shard picks, the others join it).
    pub fn start_at(bind: SocketAddr, shards: usize, args: QuicArgs, app: AppFactory) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mc-dp-test-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let dev = DevCert::load_or_create(&dir, SystemTime::now()).expect("dev cert");
        let crypto = server_config(&dev.material).expect("server config");
        let shared = QuicShared::new(crypto, args).expect("quic shared");
        let metrics = Metrics::new();
        let (seeds, monitor) = Mesh::build::<Forwarded>(shards, &[4096]).expect("mesh");
        let mut joins = Vec::new();
        let mut addr = bind;
        for seed in seeds {
            let (tx, rx) = mpsc::sync_channel::<Result<SocketAddr, String>>(1);
            let shared = shared.clone();
            let metrics = metrics.clone();
            let bind = addr;
            let app = app.clone();
            let spec = ExecutorSpec {
                name: format!("test-shard-{}", seed.id()),
                cpu: None,
                io_memory: 256 * 1024,
            };
            let join = spec
                .spawn(move || async move {
                    let mesh = Rc::new(seed.into_handle());
                    let id = mesh.id();
                    let sm = ShardMetrics::new(&metrics, id.0);
                    let fwd_mesh = mesh.clone();
                    let forward = Box::new(move |to, f: Forwarded| {
                        fwd_mesh.try_send(to, Lane(0), f).map_err(|full| full.msg)
                    });
                    let plane = match DataPlane::bind(id, bind, shared, sm, app(), forward) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let driver = plane.spawn();
                    let _ = tx.send(Ok(plane.local_addr()));
                    loop {
                        while let Some((_, _, f)) = mesh.try_recv() {
                            plane.quic.handle_forwarded(f);
                        }
                        if mesh.is_stopping() {
                            break;
                        }
                        mesh.wait().await;
                    }
                    plane.quic.stop();
                    driver.await;
                })
                .expect("spawn shard");
            joins.push(join);
            let bound = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("shard start")
                .expect("bind");
            addr = bound;
        }
        Self {
            addr,
            metrics,
            cert_sha256: dev.sha256_hex,
            cert_der: dev.material.certs[0].as_ref().to_vec(),
            shards,
            monitor,
            joins,
            dir,
        }
    }

    pub fn connections_active(&self) -> i64 {
        (0..self.shards)
            .map(|s| {
                self.metrics
                    .connections_active
                    .with_label_values(&[&s.to_string()])
                    .get()
            })
            .sum()
    }

    pub fn retries(&self) -> u64 {
        (0..self.shards)
            .map(|s| {
                self.metrics
                    .quic_retries_total
                    .with_label_values(&[&s.to_string()])
                    .get()
            })
            .sum()
    }

    pub fn forwarded(&self) -> u64 {
        (0..self.shards)
            .map(|s| {
                self.metrics
                    .datagrams_forwarded_total
                    .with_label_values(&[&s.to_string()])
                    .get()
            })
            .sum()
    }

    pub fn wt_counter(&self, status: &str) -> u64 {
        (0..self.shards)
            .map(|s| {
                self.metrics
                    .webtransport_connections_total
                    .with_label_values(&[status, &s.to_string()])
                    .get()
            })
            .sum()
    }

    /// Wait (bounded) until no connection is left on any shard.
    pub fn wait_idle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.connections_active() == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn stop(mut self) {
        self.monitor.stop();
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn echo_args() -> QuicArgs {
    QuicArgs {
        enable_echo: true,
        ..QuicArgs::default()
    }
}

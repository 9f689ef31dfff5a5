//! Shared helpers for data-plane tests: the real shards (`mc_service::shard::run`)
//! started in-process on one SO_REUSEPORT port of 127.0.0.1 (or ::1), with misrouted
//! datagrams forwarded over the mesh, and no control plane: metrics are read directly.
//! `/` is the signaling endpoint (joins fail without keys, which these tests do not
//! need); `/echo` is served when the QUIC args enable it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use mc_service::actors::ActorSettings;
use mc_service::admission::Admission;
use mc_service::auth::jwks::Jwks;
use mc_service::auth::jwt::VerifierConfig;
use mc_service::auth::keystore::KeyStore;
use mc_service::auth::BindingSecret;
use mc_service::meeting::MeetingConfig;
use mc_service::metrics::Metrics;
use mc_service::quic::{QuicArgs, QuicShared};
use mc_service::router::{lane_capacities, OverflowLimits, ShardMsg};
use mc_service::shard::{self, ShardSeed};
use mc_service::signaling::session::SessionConfig;
use mc_service::tls::{server_config, DevCert};
use shards::{ExecutorSpec, Mesh, MeshMonitor, ShardId};

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    pub cert_sha256: String,
    pub cert_der: Vec<u8>,
    pub shards: usize,
    monitor: MeshMonitor<ShardMsg>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
    dir: PathBuf,
}

impl TestServer {
    pub fn start(shards: usize, args: QuicArgs) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), shards, args)
    }

    /// Bind `bind` (port 0: the first shard picks, the others join it).
    pub fn start_at(bind: SocketAddr, shards: usize, args: QuicArgs) -> Self {
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
        let limits = args.h3_limits();
        let actors = ActorSettings {
            meeting: MeetingConfig::default(),
            session: SessionConfig::default(),
            binding_secret: BindingSecret::from_bytes(vec![7u8; 32]).unwrap(),
            redirect_endpoint: None,
            mailbox: 1024,
            join_timeout: args.join_timeout(),
            max_sessions_per_ip: 100_000,
            ipv6_client_prefix: 64,
            shard_outbound_max_bytes: mc_service::signaling::session::DEFAULT_SHARD_OUTBOUND_MAX,
        };
        let shared = QuicShared::new(crypto, args).expect("quic shared");
        let metrics = Metrics::new();
        let keys = KeyStore::new(Arc::new(Jwks::empty()));
        let admission = Arc::new(Admission::new(1000));
        // One more mesh member stands for the control plane (it never answers).
        let (mut seeds, monitor) =
            Mesh::build::<ShardMsg>(shards + 1, &lane_capacities(4096)).expect("mesh");
        seeds.pop();
        let mut joins = Vec::new();
        let mut addr = bind;
        for seed in seeds {
            let (tx, rx) = mpsc::sync_channel::<Result<SocketAddr, String>>(1);
            let spec = ExecutorSpec {
                name: format!("test-shard-{}", seed.id()),
                cpu: None,
                io_memory: 256 * 1024,
                blocking_threads: 1,
            };
            let seed = ShardSeed {
                mesh: seed,
                metrics: metrics.clone(),
                control: ShardId(shards as u16),
                shards,
                admission: admission.clone(),
                actors: actors.clone(),
                keys: keys.clone(),
                verifier: VerifierConfig::default(),
                quic: shared.clone(),
                limits: limits.clone(),
                mesh_overflow: OverflowLimits {
                    messages: 65_536,
                    bytes: 64 << 20,
                },
                rx_coalesce: Duration::ZERO,
                rx_batch: Duration::ZERO,
                bind: addr,
                started: tx,
            };
            let join = spec.spawn(move || shard::run(seed)).expect("spawn shard");
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

    /// Wait (bounded) until `cond` holds: shards copy their counters to the metrics
    /// about once a second.
    pub fn eventually(&self, within: Duration, cond: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cond(self)
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

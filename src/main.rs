//! `mc-service`: parse and validate the configuration, start the shards and the
//! control plane, and wait for them. Startup logs follow the runbook's order.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use mc_service::actors::ActorSettings;
use mc_service::admission::Admission;
use mc_service::auth::keystore::KeyStore;
use mc_service::auth::Jwks;
use mc_service::auth::{DevKeys, ResolvedAuth, ValidatedAuth};
use mc_service::config::{self, Command, Settings, EXIT_CONFIG};
use mc_service::control::{self, ControlSeed};
use mc_service::gc::{GcArgs, GcClientConfig, GcIdentity};
use mc_service::meeting::MeetingConfig;
use mc_service::metrics::Metrics;
use mc_service::quic::{QuicArgs, QuicShared};
use mc_service::router::{lane_capacities, OverflowLimits, ShardMsg};
use mc_service::shard::{self, ShardSeed};
use mc_service::shutdown::{self, Shutdown};
use mc_service::signaling::session::SessionConfig;
use mc_service::tls::{self, DevCert, TlsArgs, TlsMaterial};
use mc_service::{admin, logging};
use shards::{ExecutorSpec, Mesh, ShardId};
use tracing::{error, info};

/// mimalloc rather than glibc's malloc: quinn-proto allocates and frees a few small
/// blocks per packet (a stream's segment queue, the sent-packet map's node, the ranges
/// an acknowledgement covers), and a fan-out does so for each of 1,000 connections in
/// turn. mimalloc serves them from per-thread pages of one size with no coalescing; in
/// the fan-out benchmark that is several per cent less CPU per delivery (tuning.md,
/// "allocator" row).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread exists, so every thread inherits the mask.
    shutdown::block_signals();

    let (cli, matches) = config::parse();
    if let Some(Command::DevToken(args)) = cli.command {
        return match mc_service::auth::devtoken::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let cpus = match shards::allowed_cpus() {
        Ok(c) => c.len(),
        Err(e) => {
            eprintln!("error: cannot read the CPUs this process may use: {e}");
            return ExitCode::from(1);
        }
    };
    let settings = match cli.config.validate(&matches, cpus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let auth = match cli.config.auth.validate(settings.dev) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let session = match cli.config.signaling.session_config() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: --max-frame-bytes / --session-* / --shard-outbound-max-bytes (MC_MAX_FRAME_BYTES, MC_SESSION_*, MC_SHARD_OUTBOUND_MAX_BYTES): {e}"
            );
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let meeting = match cli.config.meeting.meeting_config(&session) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if let Some(Command::PrintConfig) = cli.command {
        println!(
            "{}",
            serde_json::to_string_pretty(&settings).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }

    logging::init(&settings.log_filter, settings.log_format);
    info!(
        version = env!("CARGO_PKG_VERSION"),
        "Starting Meeting Controller"
    );
    info!(
        config = %serde_json::to_string(&settings).unwrap_or_default(),
        "Configuration loaded successfully"
    );
    let gc = match gc_settings(&settings, &cli.config.gc) {
        Ok(gc) => gc,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if let Err(e) = cli.config.quic.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    let transport = (cli.config.tls, cli.config.quic);
    let shard_outbound = cli.config.signaling.shard_outbound_max_bytes;
    match run(
        settings,
        auth,
        gc,
        (session, meeting, shard_outbound),
        transport,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => ExitCode::from(code),
    }
}

/// The GC client's settings when a GC is configured (dev mode may run without one).
fn gc_settings(
    settings: &Settings,
    args: &GcArgs,
) -> Result<Option<(GcClientConfig, Duration)>, String> {
    let Some(url) = &settings.gc_registration_url else {
        return Ok(None);
    };
    let identity = GcIdentity {
        id: settings.mc_id.clone(),
        region: settings.region.clone(),
        capacity: settings.capacity,
        shards: settings.shards as u32,
    };
    args.client_config(
        url,
        settings.gc_heartbeat_interval,
        identity,
        settings.webtransport_bind_address,
        settings.http_bind_address,
    )
    .map(|cfg| Some((cfg, args.request_timeout())))
    .map_err(|e| {
        format!(
            "{e} (see --gc-registration-url / GC_REGISTRATION_URL, --advertise-webtransport / \
             MC_ADVERTISE_WEBTRANSPORT, --advertise-http / MC_ADVERTISE_HTTP, --pod-ip / POD_IP)"
        )
    })
}

fn run(
    settings: Settings,
    auth: ValidatedAuth,
    gc: Option<(GcClientConfig, Duration)>,
    (session, meeting, shard_outbound_max_bytes): (SessionConfig, MeetingConfig, usize),
    (tls_args, quic_args): (TlsArgs, QuicArgs),
) -> Result<(), u8> {
    if let Err(e) = shards::probe_io_uring() {
        error!(error = %e, "Actor system failed to initialize");
        return Err(1);
    }
    let auth = resolve_auth(&settings, auth)?;
    let metrics = Metrics::new();
    let keys = KeyStore::new(Arc::new(Jwks::empty()));
    match keys.spawn_refresher(auth.refresher(), metrics.jwks_reporter()) {
        Ok(Ok(n)) => info!(keys = n, "Join-token signing keys loaded"),
        Ok(Err(e)) => {
            error!(error = %e, "cannot load join-token signing keys yet; joins fail until they load")
        }
        Err(e) => {
            error!(error = %e, "cannot start the key refresher");
            return Err(1);
        }
    }
    let actor_settings = ActorSettings {
        meeting,
        session,
        binding_secret: auth.binding_secret.clone(),
        redirect_endpoint: settings.redirect_endpoint.clone(),
        mailbox: settings.actor_mailbox_size,
        join_timeout: quic_args.join_timeout(),
        max_sessions_per_ip: settings.max_sessions_per_ip,
        ipv6_client_prefix: settings.ipv6_client_prefix,
        shard_outbound_max_bytes,
    };
    let limits = quic_args.h3_limits();
    let rx_coalesce = quic_args.rx_coalesce();
    let rx_batch = quic_args.rx_batch();
    let budget = quic_args.connection_memory_budget_bytes(actor_settings.session.max_frame);
    let quic = quic_shared(&settings, tls_args, quic_args)?;
    let n = settings.shards;
    metrics.shards.set(n as i64);
    metrics.capacity.set(i64::from(settings.capacity));
    metrics
        .connection_receive_budget_bytes
        .set(i64::try_from(budget).unwrap_or(i64::MAX));
    let shutdown = Arc::new(Shutdown::default());

    // The mesh: shards 0..n, then the control plane as peer n.
    let control_id = ShardId(n as u16);
    let lanes = lane_capacities(settings.actor_mailbox_size);
    let (mut seeds, monitor) = Mesh::build::<ShardMsg>(n + 1, &lanes).map_err(|e| {
        error!(error = %e, "Actor system failed to initialize: cannot create the mesh");
        1u8
    })?;
    let control_seed = seeds.pop().expect("n + 1 seeds");

    // The admin plane binds first so a port conflict is reported before anything runs.
    let admin_listener = admin::bind(settings.http_bind_address).map_err(|e| {
        error!(address = %settings.http_bind_address, error = %e, "Failed to bind HTTP listener");
        1u8
    })?;
    let admission = Arc::new(Admission::new(settings.capacity));
    let shards_up = Arc::new(AtomicBool::new(false));

    // The control plane starts first: GC registration comes before the actor system in
    // the runbook's startup order (its GC client logs `Registering with Global
    // Controller...` before the first request, whose outcome is awaited below). It
    // serves the admin plane once the shards are up.
    let (gc_first_tx, gc_first_rx) = mpsc::sync_channel(1);
    let control_spec = ExecutorSpec {
        name: "control".into(),
        cpu: None,
        io_memory: settings.io_memory_bytes,
        // The GC client's name lookups run there, as many at once as it allows.
        blocking_threads: mc_service::http1::io::MAX_LOOKUPS,
    };
    let control_seed = ControlSeed {
        mesh: control_seed,
        monitor: monitor.clone(),
        metrics: metrics.clone(),
        settings: settings.clone(),
        admin_listener,
        shutdown: shutdown.clone(),
        admission: admission.clone(),
        shards: n,
        gc,
        binding_secret: auth.binding_secret.clone(),
        meeting: actor_settings.meeting.clone(),
        shards_up: shards_up.clone(),
        gc_first_attempt: gc_first_tx,
    };
    let control = control_spec
        .spawn(move || control::run(control_seed))
        .map_err(|e| {
            error!(error = %e, "cannot start the control plane");
            1u8
        })?;
    {
        let monitor = monitor.clone();
        shutdown::spawn_signal_thread(shutdown.clone(), move || monitor.wake(control_id));
    }
    let _ = gc_first_rx.recv_timeout(Duration::from_secs(5));

    // Shards, one pinned executor each.
    let specs = ExecutorSpec::pinned_shards(n, settings.io_memory_bytes).map_err(|e| {
        error!(error = %e, "Actor system failed to initialize");
        monitor.stop();
        1u8
    })?;
    // Shards start one after another so that a port of 0 (tests) resolves on the first
    // and the others join it with SO_REUSEPORT.
    let mut bind = settings.webtransport_bind_address;
    let mut shard_handles = Vec::with_capacity(n);
    for (spec, seed) in specs.iter().zip(seeds) {
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let seed = ShardSeed {
            mesh: seed,
            metrics: metrics.clone(),
            control: control_id,
            shards: n,
            admission: admission.clone(),
            actors: actor_settings.clone(),
            keys: keys.clone(),
            verifier: auth.verifier.clone(),
            quic: quic.clone(),
            limits: limits.clone(),
            mesh_overflow: OverflowLimits {
                messages: settings.mesh_overflow_max,
                bytes: settings.mesh_overflow_max_bytes,
            },
            rx_coalesce,
            rx_batch,
            bind,
            started: started_tx,
        };
        match spec.spawn(move || shard::run(seed)) {
            Ok(h) => shard_handles.push(h),
            Err(e) => {
                error!(error = %e, "Actor system failed to initialize");
                monitor.stop();
                return Err(1);
            }
        }
        match started_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => bind = addr,
            Ok(Err(why)) => {
                error!(address = %bind, error = %why, "Failed to bind WebTransport listener");
                monitor.stop();
                return Err(1);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The shard's thread ended before starting: glommio could not build its
                // executor, and says why through the join handle.
                let why = match shard_handles.pop().map(|h| h.join()) {
                    Some(Err(e)) => executor_error(&e),
                    _ => "it stopped while starting".into(),
                };
                error!(shard = %spec.name, error = %why, "Actor system failed to initialize: a shard could not start");
                monitor.stop();
                return Err(1);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                error!("Actor system failed to initialize: a shard did not start within 30 s");
                monitor.stop();
                return Err(1);
            }
        }
    }
    info!(
        shards = n,
        mailbox = settings.actor_mailbox_size,
        "Actor system initialized"
    );
    info!(address = %bind, shards = n, "WebTransport listener started on {bind}");
    shards_up.store(true, Ordering::SeqCst);
    monitor.wake(control_id);

    let mut failed = false;
    if let Err(e) = control.join() {
        error!(error = %executor_error(&e), "the control plane stopped unexpectedly; stopping shards");
        monitor.stop();
        failed = true;
    }
    for (i, h) in shard_handles.into_iter().enumerate() {
        if h.join().is_err() {
            error!(shard = i, "shard stopped with a panic");
            failed = true;
        }
    }
    if failed {
        Err(1)
    } else {
        info!("Meeting Controller stopped");
        Ok(())
    }
}

/// Why an executor stopped or could not be built, naming RLIMIT_MEMLOCK when it is the
/// cause: glommio refuses a limit under 512 KiB, and the executor's io_uring rings count
/// against it (ENOMEM), which the startup probe's single small ring does not exhaust.
fn executor_error(e: &glommio::GlommioError<()>) -> String {
    use glommio::{GlommioError, ReactorErrorKind};
    let memlock = match e {
        GlommioError::ReactorError(ReactorErrorKind::MemLockLimit(..)) => true,
        // glommio 0.9 hands its reactor's MemLockLimit on as an io::Error of that text.
        GlommioError::IoError(io) | GlommioError::EnhancedIoError { source: io, .. } => {
            io.raw_os_error() == Some(libc::ENOMEM) || io.to_string().starts_with("MemLockLimit(")
        }
        _ => false,
    };
    if memlock {
        format!(
            "{e}: RLIMIT_MEMLOCK is too low for the io_uring rings (raise the container's \
             memlock limit; see tuning.md, \"memlock\")"
        )
    } else {
        e.to_string()
    }
}

/// Load the dev keys when dev mode needs them, and resolve the join-token settings.
fn resolve_auth(settings: &Settings, auth: ValidatedAuth) -> Result<ResolvedAuth, u8> {
    let dev_keys = if auth.needs_dev_keys() {
        match DevKeys::load_or_create(&settings.dev_dir) {
            Ok(k) => {
                info!(
                    dev_dir = %settings.dev_dir.display(),
                    kid = k.kid(),
                    "Development signing key ready (mint tokens with `mc-service dev-token --dev-dir {}`)",
                    settings.dev_dir.display()
                );
                Some(k)
            }
            Err(e) => {
                error!(dev_dir = %settings.dev_dir.display(), error = %e, "cannot prepare development keys");
                return Err(1);
            }
        }
    } else {
        None
    };
    auth.resolve(dev_keys.as_ref()).map_err(|e| {
        error!(error = %e, "invalid join-token configuration");
        EXIT_CONFIG as u8
    })
}

/// TLS material (production files/env, or the dev certificate) and the QUIC settings
/// every shard shares. Also checks that no other process holds the UDP port.
fn quic_shared(settings: &Settings, tls: TlsArgs, quic: QuicArgs) -> Result<QuicShared, u8> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        error!(address = %settings.webtransport_bind_address, error = %e, "Failed to bind WebTransport listener: {what}");
        1u8
    };
    let use_dev_cert =
        settings.dev && tls.tls_cert_path.is_none() && std::env::var_os("TLS_CERT").is_none();
    let material = if use_dev_cert {
        let dev = DevCert::load_or_create(&settings.dev_dir, SystemTime::now())
            .map_err(|e| fail("cannot prepare the development certificate", &e))?;
        info!(
            cert_sha256 = %dev.sha256_hex,
            path = %settings.dev_dir.join("cert.pem").display(),
            "Development certificate (ECDSA P-256, 13 days) SHA-256 for serverCertificateHashes: {}",
            dev.sha256_hex
        );
        dev.material
    } else {
        TlsMaterial::load(&tls, |k| std::env::var(k).ok())
            .map_err(|e| fail("invalid TLS configuration", &e))?
    };
    let crypto =
        tls::server_config(&material).map_err(|e| fail("invalid TLS configuration", &e))?;
    // SO_REUSEPORT would let a second server silently share the port: probe without it.
    if settings.webtransport_bind_address.port() != 0 {
        std::net::UdpSocket::bind(settings.webtransport_bind_address)
            .map_err(|e| fail("the UDP port is taken", &e))?;
    }
    QuicShared::new(crypto, quic).map_err(|e| fail("invalid QUIC configuration", &e))
}

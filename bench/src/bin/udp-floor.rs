//! udp-floor: what the fan-out's packets cost the kernel alone, on this host, now.
//!
//! `bench/compare.sh`'s fan-out (`mc-loadgen meeting --sizes 1x1000 --mix mute=100
//! --rate R` against one shard) sends one datagram to each of 1,000 clients per mute, and
//! each client acknowledges it with one short datagram after its ACK delay. This tool
//! sends the same datagrams in plain UDP on loopback, with no QUIC, no crypto and no
//! meeting: `--rate` times a second (at random moments, as the meeting's mutes come) a
//! server thread sends one `--payload-bytes` datagram to each of `--clients` client
//! sockets (`sendmmsg`, up to 64 per call); each client socket answers `--ack-delay-ms`
//! later with one `--ack-bytes` datagram (one answer covers every datagram that reached
//! it meanwhile, as one ACK frame does); the server reads the answers with `recvmmsg`,
//! leaving the socket unread for `--coalesce-us` after each read that found some, as
//! mc-service does after a pass of acknowledgements (`MC_RX_COALESCE_US`).
//!
//! It reports the server thread's CPU per delivered datagram over the measured window
//! (utime + stime from `/proc/thread-self/stat`, the accounting `mc-loadgen` reads for
//! the server process). Run right after a fan-out run with the same pinning, it tells
//! how much of that run's cost per delivery the kernel's UDP path alone takes on the
//! host as it is in that sitting.
//!
//! With `--echo` it does the same for echo 10 × 1's traffic: each client keeps one
//! datagram in flight, the server answers each as it arrives, and `--client-work-us`
//! slows the clients to the pace of a QUIC client, so the server sleeps and wakes
//! between datagrams as it does under `mc-loadgen echo --sessions 10 --window 1`;
//! `--requests-per-s` paces them to a given rate instead (`compare.sh` gives it the
//! tokio/quinn server's round trips per second of the run before).
//! `--server-work-ns` has the echo server spend that much busy work on each datagram
//! before it answers: the curve of CPU per round trip against it shows what a server's
//! work above the kernel costs at a given pace, wake-ups included (bench/README.md,
//! "What echo 10 × 1 leaves for the work above the kernel").
//!
//! ```text
//! udp-floor --clients 1000 --rate 10 --server-cpu 0 --client-cpu 1 --json floor.json
//! udp-floor --echo --clients 10 --client-work-us 4
//! udp-floor --echo --clients 10 --requests-per-s 98000
//! udp-floor --echo --clients 10 --requests-per-s 98000 --server-work-ns 1500
//! udp-floor --echo --clients 10 --requests-per-s 98000 --server-netns mcbench-veth \
//!     --server-ip 198.18.0.1 --client-ip 198.18.0.2
//! ```
//!
//! `--server-netns` creates the server's socket in another network namespace, so that
//! with a veth pair between the two each side's CPU pays for its own receive path, as
//! on a network, instead of the sender paying for the receiver's as on loopback
//! (`bench/results/20261206T094604Z-veth-rps/run.sh` sets the pair up).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use mc_bench::loadgen::measure::{clock_ticks, stat_steal_ticks, thread_cpu_s};
use serde::Serialize;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "The fan-out's (or echo 10 × 1's) datagrams in plain UDP: server CPU per delivery"
)]
struct Args {
    /// Client sockets (the meeting's participants).
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Fan-outs per second (mutes per second), on average.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Fan-outs at fixed intervals. By default they come at random moments (exponential
    /// gaps), as mc-loadgen's participants, each on its own period from a random
    /// offset, make them: two mutes then often fall within one ACK delay, and one
    /// answer covers both.
    #[arg(long)]
    regular: bool,
    /// Bytes of each datagram to a client (a notification's QUIC packet is about 100).
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Bytes of each client's answer (an ACK-only QUIC packet is about 40).
    #[arg(long, default_value_t = 40)]
    ack_bytes: usize,
    /// How long a client waits before answering (QUIC's default max_ack_delay is 25 ms).
    #[arg(long, default_value_t = 25)]
    ack_delay_ms: u64,
    /// After a read that found answers, how long the server leaves its socket unread
    /// (mc-service's MC_RX_COALESCE_US default; 0 reads again at once).
    #[arg(long, default_value_t = 500)]
    coalesce_us: u64,
    /// Seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// CPU the server thread runs on.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU the client thread runs on.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Echo 10 × 1's traffic instead of the fan-out's: each client keeps one
    /// `--payload-bytes` datagram in flight and the server answers each one as it
    /// arrives, with as many bytes (use `--clients 10`; `--rate`, the ACK delay and the
    /// pause do not apply). The report counts round trips as deliveries.
    #[arg(long)]
    echo: bool,
    /// CPU time the client thread spends before each answer, in microseconds (a busy
    /// wait). With `--echo`, about 10 brings the clients to the pace of mc-loadgen's
    /// QUIC clients, which take about that per round trip at one core: the server then
    /// waits for them, sleeping and waking as it does in `compare.sh`'s echo 10 × 1.
    #[arg(long, default_value_t = 0)]
    client_work_us: u64,
    /// With `--echo`: the clients together send at most this many requests a second,
    /// evenly spaced (a busy wait before each send; 0: as fast as the replies and
    /// `--client-work-us` allow). `compare.sh` sets it to the round trips per second the
    /// tokio/quinn server reached under the QUIC clients in the run before, so that the
    /// plain server sleeps and wakes as often as that server did.
    #[arg(long, default_value_t = 0)]
    requests_per_s: u64,
    /// With `--echo`: CPU time the server spends on each datagram it receives before it
    /// answers, in nanoseconds (a busy wait; not with `--io-uring`). It stands for the
    /// work a real server does per packet above the kernel (QUIC, crypto, HTTP/3, the
    /// application): a sweep of it at the peer's pace shows what that work costs in
    /// CPU per round trip, wake-ups included, and how much of it the target leaves.
    #[arg(long, default_value_t = 0)]
    server_work_ns: u64,
    /// With `--echo`: the server waits, receives and sends through one io_uring
    /// (multishot `recvmsg`, `sendmsg` entries submitted with the next wait) instead of
    /// `poll`, `recvmmsg` and `sendmmsg`.
    #[arg(long)]
    io_uring: bool,
    /// Create the server's socket in this network namespace (a name under /run/netns,
    /// as `ip netns add` makes it); the clients stay in this process's namespace. The
    /// two then reach each other only through a link between the namespaces (a veth
    /// pair), whose addresses `--server-ip` and `--client-ip` give.
    #[arg(long)]
    server_netns: Option<String>,
    /// Address the server's socket binds to.
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    server_ip: Ipv4Addr,
    /// Address the client sockets bind to.
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    client_ip: Ipv4Addr,
    /// Write the report as JSON here as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What the server saw over the measured window.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// "fanout", or "echo" (one datagram in flight per client, answered at once).
    mode: &'static str,
    client_work_us: u64,
    /// The clients' pace with `--echo` (0: unpaced).
    requests_per_s: u64,
    /// The server's busy wait per datagram received, with `--echo`.
    server_work_ns: u64,
    clients: usize,
    rate: u32,
    payload_bytes: usize,
    ack_bytes: usize,
    ack_delay_ms: u64,
    coalesce_us: u64,
    regular: bool,
    window_s: f64,
    fanouts: u64,
    /// Fan-outs that started a whole period late: the server could not keep up.
    late_fanouts: u64,
    deliveries: u64,
    answers: u64,
    sendmmsg_calls: u64,
    recvmmsg_calls: u64,
    /// With `--io-uring`: the server waited, received and sent through one io_uring, and
    /// entered it this many times (no `recvmmsg` or `sendmmsg`).
    io_uring: bool,
    ring_enters: u64,
    server_cpu_s: f64,
    us_per_delivery: f64,
    datagrams_in_per_delivery: f64,
    datagrams_per_recvmmsg: f64,
    datagrams_per_sendmmsg: f64,
    datagrams_per_ring_enter: f64,
    /// % of the server CPU's time the hypervisor ran something else (steal).
    server_steal_pct: Option<f64>,
}

impl Report {
    /// An empty report of the run `args` describe; in echo mode the fan-out's settings
    /// (rate, ACK delay, pause) do not apply and stay 0, and answers are requests.
    fn new(args: &Args) -> Self {
        let common = Self {
            client_work_us: args.client_work_us,
            requests_per_s: args.requests_per_s,
            server_work_ns: args.server_work_ns,
            clients: args.clients,
            payload_bytes: args.payload_bytes,
            ..Self::default()
        };
        if args.echo {
            return Self {
                mode: "echo",
                ack_bytes: args.payload_bytes,
                ..common
            };
        }
        Self {
            mode: "fanout",
            rate: args.rate,
            ack_bytes: args.ack_bytes,
            ack_delay_ms: args.ack_delay_ms,
            coalesce_us: args.coalesce_us,
            regular: args.regular,
            ..common
        }
    }
}

/// Datagrams per `sendmmsg` / `recvmmsg` call.
const BATCH: usize = 64;

/// The most busy work `--server-work-ns` may ask for per datagram: far above any
/// server's per-packet cost, and short enough that a run still ends on time.
const MAX_SERVER_WORK_NS: u64 = 10_000_000;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.rate == 0 || args.duration == 0 {
        bail!("--clients, --rate and --duration must be above 0");
    }
    if args.payload_bytes == 0 || args.payload_bytes > 1_200 || args.ack_bytes == 0 {
        bail!("--payload-bytes must be 1..=1200 and --ack-bytes above 0");
    }
    if args.io_uring && !args.echo {
        bail!("--io-uring applies only with --echo");
    }
    if args.requests_per_s > 0 && !args.echo {
        bail!("--requests-per-s paces echo clients: it applies only with --echo");
    }
    if args.server_work_ns > 0 && (!args.echo || args.io_uring) {
        bail!("--server-work-ns applies only with --echo, without --io-uring");
    }
    if args.server_work_ns > MAX_SERVER_WORK_NS {
        bail!("--server-work-ns must be at most {MAX_SERVER_WORK_NS} (10 ms per datagram)");
    }
    let cpus = shards::allowed_cpus().context("reading this process's CPUs")?;
    for cpu in [args.server_cpu, args.client_cpu] {
        if !cpus.contains(&cpu) {
            bail!("CPU {cpu} is out of range: this process may run on {cpus:?}");
        }
    }
    let bind = || {
        UdpSocket::bind(SocketAddr::from((args.server_ip, 0)))
            .with_context(|| format!("binding the server's socket to {}", args.server_ip))
    };
    let server = match &args.server_netns {
        Some(ns) => in_netns(ns, bind)?,
        None => bind()?,
    };
    server.set_nonblocking(true)?;
    let server_addr = server.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));

    let (addrs_tx, addrs_rx) = mpsc::sync_channel(1);
    let client = {
        let mut args = args.clone();
        if args.echo {
            // Each answer is the client's next request, sent as soon as the reply is in.
            args.ack_delay_ms = 0;
            args.ack_bytes = args.payload_bytes;
        }
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("udp-floor-client".into())
            .spawn(move || clients(&args, server_addr, addrs_tx, &stop))?
    };
    let addrs: Vec<SocketAddrV4> = match addrs_rx.recv() {
        Ok(addrs) => addrs,
        // The client thread gave up before binding its sockets: its reason.
        Err(_) => {
            return match client.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(anyhow::anyhow!(
                    "the client thread ended before binding its sockets"
                )),
            }
        }
    };
    let report = if args.echo && args.io_uring {
        uring::serve_echo(&args, &server)
    } else if args.echo {
        serve_echo(&args, &server)
    } else {
        serve(&args, &server, &addrs)
    };
    stop.store(true, Ordering::Relaxed);
    client
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    let report = report?;

    if report.io_uring {
        println!(
            "udp-floor --echo --io-uring: {} clients, one datagram in flight each: {:.2} µs \
             of server CPU per round trip ({} round trips, {:.2} per io_uring_enter)",
            report.clients,
            report.us_per_delivery,
            report.deliveries,
            report.datagrams_per_ring_enter
        );
    } else if args.echo {
        println!(
            "udp-floor --echo: {} clients, one datagram in flight each, {} ns of server work \
             per datagram: {:.2} µs of server CPU per round trip ({} round trips, {:.0}/s, \
             {:.1} per recvmmsg, {:.1} per sendmmsg)",
            report.clients,
            report.server_work_ns,
            report.us_per_delivery,
            report.deliveries,
            report.deliveries as f64 / report.window_s.max(1e-9),
            report.datagrams_per_recvmmsg,
            report.datagrams_per_sendmmsg
        );
    } else {
        println!(
            "udp-floor: {} clients at {}/s: {:.2} µs of server CPU per delivery \
         ({} deliveries, {:.2} answers each, {:.1} per recvmmsg, {:.1} per sendmmsg, \
         {} late fan-outs)",
            report.clients,
            report.rate,
            report.us_per_delivery,
            report.deliveries,
            report.datagrams_in_per_delivery,
            report.datagrams_per_recvmmsg,
            report.datagrams_per_sendmmsg,
            report.late_fanouts
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs `f` with the calling thread in the network namespace `name` (under
/// /run/netns), then moves the thread back to the namespace it was in. A socket stays in
/// the namespace it was created in.
fn in_netns<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let own = std::fs::File::open("/proc/thread-self/ns/net")
        .context("opening this thread's network namespace")?;
    let path = std::path::Path::new("/run/netns").join(name);
    let target = std::fs::File::open(&path)
        .with_context(|| format!("opening network namespace {}", path.display()))?;
    setns_net(&target).with_context(|| format!("entering network namespace {name}"))?;
    let out = f();
    setns_net(&own).context("returning to this process's network namespace")?;
    out
}

fn setns_net(ns: &std::fs::File) -> Result<()> {
    // SAFETY: `ns` is an open namespace file; setns changes only the calling thread's
    // network namespace and touches no memory of ours.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Pin the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<()> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        bail!("CPU {cpu} is out of range");
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of the set it is given, in range (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set is initialised and sized as passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr(addr: &SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Ask for `bytes` of socket buffer each way, as mc-service does for its UDP socket.
fn set_buffers(sock: &UdpSocket, bytes: libc::c_int) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: the option value is a c_int that outlives the call, its size passed.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The measured window: the server thread's CPU and its CPU's steal when it opened.
struct Meter {
    cpu: usize,
    start: Instant,
    end: Instant,
    opened: Option<(f64, Option<u64>)>,
}

impl Meter {
    fn new(args: &Args) -> Self {
        let start = Instant::now() + Duration::from_secs(args.warmup);
        Self {
            cpu: args.server_cpu,
            start,
            end: start + Duration::from_secs(args.duration),
            opened: None,
        }
    }

    /// Whether `now` is inside the window, opening it when reached.
    fn inside(&mut self, now: Instant) -> Result<bool> {
        if self.opened.is_none() && now >= self.start {
            let cpu = thread_cpu_s().context("reading /proc/thread-self/stat")?;
            self.opened = Some((cpu, server_steal_ticks(self.cpu)));
        }
        Ok(self.opened.is_some())
    }

    /// At the window's end: the report's CPU, steal and ratios filled in.
    fn close(&self, now: Instant, mut r: Report) -> Result<Report> {
        let (cpu0, steal0) = self.opened.unwrap_or((0.0, None));
        let cpu1 = thread_cpu_s().context("reading /proc/thread-self/stat")?;
        let window = now.duration_since(self.start).as_secs_f64();
        r.window_s = window;
        r.server_cpu_s = cpu1 - cpu0;
        let per = |n: f64, d: u64| if d == 0 { 0.0 } else { n / d as f64 };
        r.us_per_delivery = per(r.server_cpu_s * 1e6, r.deliveries);
        r.datagrams_in_per_delivery = per(r.answers as f64, r.deliveries);
        r.datagrams_per_recvmmsg = per(r.answers as f64, r.recvmmsg_calls);
        r.datagrams_per_sendmmsg = per(r.deliveries as f64, r.sendmmsg_calls);
        r.datagrams_per_ring_enter = per(r.answers as f64, r.ring_enters);
        r.server_steal_pct = match (steal0, server_steal_ticks(self.cpu)) {
            (Some(a), Some(b)) => Some(100.0 * (b - a) as f64 / clock_ticks() / window),
            _ => None,
        };
        Ok(r)
    }
}

/// Echo: answer every datagram as it arrives, to its sender, with `--payload-bytes`.
fn serve_echo(args: &Args, sock: &UdpSocket) -> Result<Report> {
    pin(args.server_cpu)?;
    set_buffers(sock, 8 << 20);
    let fd = sock.as_raw_fd();
    let mut rx = Receiver::new();
    let mut tx = Sender::new(vec![0x5au8; args.payload_bytes]);
    let mut meter = Meter::new(args);
    let mut r = Report::new(args);
    let work = Duration::from_nanos(args.server_work_ns);
    loop {
        let now = Instant::now();
        let inside = meter.inside(now)?;
        if now >= meter.end {
            return meter.close(now, r);
        }
        let n = rx.recv(fd)?;
        if n == 0 {
            wait_readable(fd, meter.end.saturating_duration_since(now));
            continue;
        }
        if work > Duration::ZERO {
            spin_for(work * n as u32);
        }
        let (sent, calls) = tx.send_all(fd, &rx.from[..n])?;
        if inside {
            r.answers += n as u64;
            r.recvmmsg_calls += 1;
            r.deliveries += sent;
            r.sendmmsg_calls += calls;
        }
    }
}

/// Keep this thread busy for `d` (reading the clock, as the clients' busy wait does).
fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// The server's receive batch: `BATCH` buffers, their senders' addresses and the
/// `recvmmsg` headers pointing at them, all built once. Each piece lives in its own
/// heap allocation, so the pointers stay valid wherever the `Receiver` moves; a call
/// then costs the kernel's work and nothing of ours but resetting the address lengths
/// the last call used (a server that only moves datagrams, not one that rebuilds 64
/// headers per read).
struct Receiver {
    /// The datagrams' buffers and the iovecs pointing at them: only the headers use
    /// them, through their pointers.
    _bufs: Vec<[u8; 1_500]>,
    _iovs: Vec<libc::iovec>,
    from: Vec<libc::sockaddr_in>,
    msgs: Vec<libc::mmsghdr>,
    /// Headers the last call filled, whose address lengths the kernel rewrote.
    last: usize,
}

impl Receiver {
    fn new() -> Self {
        let mut bufs = vec![[0u8; 1_500]; BATCH];
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain data, all-zero valid; the
        // headers are pointed at the buffers and addresses below.
        let mut from: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        for (((iov, m), buf), name) in iovs
            .iter_mut()
            .zip(msgs.iter_mut())
            .zip(bufs.iter_mut())
            .zip(from.iter_mut())
        {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = SOCKADDR_IN_LEN;
        }
        Self {
            _bufs: bufs,
            _iovs: iovs,
            from,
            msgs,
            last: 0,
        }
    }

    /// One `recvmmsg` of up to `BATCH` datagrams, their senders into `from`. Returns
    /// how many (0 when none was waiting).
    fn recv(&mut self, fd: libc::c_int) -> Result<usize> {
        for m in &mut self.msgs[..self.last] {
            m.msg_hdr.msg_namelen = SOCKADDR_IN_LEN;
        }
        // SAFETY: BATCH headers, each with one iovec into a live buffer of `bufs` and a
        // name in `from` of the size given; all four vectors live as long as `self`.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.last = 0;
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(0);
            }
            return Err(e).context("recvmmsg");
        }
        self.last = n as usize;
        Ok(n as usize)
    }

    /// Read every datagram waiting. Returns (datagrams, `recvmmsg` calls).
    fn drain(&mut self, fd: libc::c_int) -> Result<(u64, u64)> {
        let (mut got, mut calls) = (0u64, 0u64);
        loop {
            let n = self.recv(fd)?;
            calls += 1;
            got += n as u64;
            if n < BATCH {
                return Ok((got, calls));
            }
        }
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as _;

/// The server's send batch: the payload every datagram carries, `BATCH` `sendmmsg`
/// headers and the one iovec they share, built once (each in its own heap allocation,
/// so the pointers survive moves); a call sets only the addresses it sends to.
struct Sender {
    _payload: Vec<u8>,
    _iov: Box<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Sender {
    fn new(payload: Vec<u8>) -> Self {
        let mut iov = Box::new(libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        });
        // SAFETY: mmsghdr is plain data, all-zero valid; each is pointed at the iovec
        // here and at an address per call.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        for m in &mut msgs {
            m.msg_hdr.msg_iov = &mut *iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_namelen = SOCKADDR_IN_LEN;
        }
        Self {
            _payload: payload,
            _iov: iov,
            msgs,
        }
    }

    /// One datagram of the payload to each of `names`, `BATCH` per `sendmmsg`.
    /// Returns (datagrams, calls).
    fn send_all(&mut self, fd: libc::c_int, names: &[libc::sockaddr_in]) -> Result<(u64, u64)> {
        let (mut sent, mut calls) = (0u64, 0u64);
        for chunk in names.chunks(BATCH) {
            for (m, name) in self.msgs.iter_mut().zip(chunk) {
                m.msg_hdr.msg_name = (name as *const libc::sockaddr_in).cast_mut().cast();
            }
            let mut off = 0;
            while off < chunk.len() {
                // SAFETY: msgs[off..chunk.len()] point at addresses of `names` (alive
                // for this call) and at the iovec of the payload `self` owns.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.msgs[off..].as_mut_ptr(),
                        (chunk.len() - off) as u32,
                        0,
                    )
                };
                calls += 1;
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        wait_writable(fd);
                        continue;
                    }
                    return Err(e).context("sendmmsg");
                }
                off += n as usize;
                sent += n as u64;
            }
        }
        Ok((sent, calls))
    }
}

fn serve(args: &Args, sock: &UdpSocket, addrs: &[SocketAddrV4]) -> Result<Report> {
    pin(args.server_cpu)?;
    set_buffers(sock, 8 << 20);
    let fd = sock.as_raw_fd();
    let names: Vec<libc::sockaddr_in> = addrs.iter().map(sockaddr).collect();
    let mut rx = Receiver::new();
    let mut tx = Sender::new(vec![0x5au8; args.payload_bytes]);
    let period = Duration::from_secs(1) / args.rate;
    let coalesce = Duration::from_micros(args.coalesce_us);

    let mut meter = Meter::new(args);
    let window_end = meter.end;
    let mut next_fanout = Instant::now();
    let mut r = Report::new(args);
    loop {
        let now = Instant::now();
        let in_window = meter.inside(now)?;
        if now >= window_end {
            return meter.close(now, r);
        }
        if now >= next_fanout {
            let (sent, calls) = tx.send_all(fd, &names)?;
            if in_window {
                r.fanouts += 1;
                r.deliveries += sent;
                r.sendmmsg_calls += calls;
            }
            next_fanout += if args.regular {
                period
            } else {
                // Exponential with mean `period`: 1 - u is in (0, 1], its log finite.
                period.mul_f64(-(1.0 - rand::random::<f64>()).ln())
            };
            if next_fanout + period <= Instant::now() {
                // More than a period behind: skip, and count it, rather than burst.
                if in_window {
                    r.late_fanouts += 1;
                }
                next_fanout = Instant::now() + period;
            }
        }
        let (got, calls) = rx.drain(fd)?;
        if in_window {
            r.answers += got;
            r.recvmmsg_calls += calls;
        }
        let until = next_fanout.min(window_end);
        if got > 0 && !coalesce.is_zero() {
            std::thread::sleep(coalesce.min(until.saturating_duration_since(Instant::now())));
            continue;
        }
        wait_readable(fd, until.saturating_duration_since(Instant::now()));
    }
}

fn server_steal_ticks(cpu: usize) -> Option<u64> {
    stat_steal_ticks(&std::fs::read_to_string("/proc/stat").ok()?, &[cpu])
}

fn poll_one(fd: libc::c_int, events: libc::c_short, timeout: Duration) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1_000).min(1_000) as libc::c_int;
    // SAFETY: one pollfd, owned by this frame.
    unsafe { libc::poll(&mut p, 1, ms) };
}

fn wait_readable(fd: libc::c_int, timeout: Duration) {
    poll_one(fd, libc::POLLIN, timeout)
}

fn wait_writable(fd: libc::c_int) {
    poll_one(fd, libc::POLLOUT, Duration::from_millis(10))
}

/// The clients: one connected socket each, all on one thread (as `mc-loadgen --threads
/// 1` runs the meeting's participants); each answers `ack_delay` after the first
/// datagram that reached it since its last answer.
fn clients(
    args: &Args,
    server: SocketAddr,
    addrs_tx: mpsc::SyncSender<Vec<SocketAddrV4>>,
    stop: &AtomicBool,
) -> Result<()> {
    pin(args.client_cpu)?;
    let mut socks = Vec::with_capacity(args.clients);
    let mut addrs = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let s = UdpSocket::bind(SocketAddr::from((args.client_ip, 0)))
            .with_context(|| format!("binding a client socket to {}", args.client_ip))?;
        s.connect(server)
            .with_context(|| format!("connecting a client socket to {server}"))?;
        s.set_nonblocking(true)?;
        match s.local_addr()? {
            SocketAddr::V4(a) => addrs.push(a),
            SocketAddr::V6(_) => bail!("bound to IPv6 on {}", args.client_ip),
        }
        socks.push(s);
    }
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error()).context("epoll_create1");
    }
    for (i, s) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: ep and the socket are open descriptors; ev outlives the call.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } != 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_ctl");
        }
    }
    addrs_tx
        .send(addrs)
        .map_err(|_| anyhow::anyhow!("the server thread is gone"))?;

    let delay = Duration::from_millis(args.ack_delay_ms);
    let work = Duration::from_micros(args.client_work_us);
    // The pace: each send waits for its slot, `gap` after the last one's. A late send
    // moves the slots on rather than sending a burst to catch up, so the rate never
    // exceeds the pace.
    let gap = (args.requests_per_s > 0)
        .then(|| Duration::from_nanos(1_000_000_000 / args.requests_per_s));
    let mut next_slot = Instant::now();
    let answer = vec![0xa5u8; args.ack_bytes];
    if args.echo {
        // Echo: every client puts its first datagram in flight (`answer` is a request
        // of `--payload-bytes` there).
        for s in &socks {
            let _ = s.send(&answer);
        }
    }
    let mut buf = [0u8; 1_500];
    let mut pending = vec![false; args.clients];
    // Answers due, oldest first: every entry waits the same delay, so the queue is in
    // time order. At most one entry per client.
    let mut due: VecDeque<(Instant, usize)> = VecDeque::with_capacity(args.clients);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(&(at, i)) = due.front() {
            if at > now {
                break;
            }
            due.pop_front();
            pending[i] = false;
            let mut spin_until = Instant::now() + work;
            if gap.is_some() {
                spin_until = spin_until.max(next_slot);
            }
            let mut t = Instant::now();
            while t < spin_until {
                std::hint::spin_loop();
                t = Instant::now();
            }
            if let Some(gap) = gap {
                next_slot = (next_slot + gap).max(t);
            }
            // A full socket buffer loses the answer, as a lost ACK would be.
            let _ = socks[i].send(&answer);
        }
        let timeout = due.front().map_or(Duration::from_millis(100), |&(at, _)| {
            at.saturating_duration_since(now)
        });
        let ms = timeout.as_micros().div_ceil(1_000).min(100) as libc::c_int;
        // SAFETY: `events` is a live buffer of the length passed.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("epoll_wait");
        }
        let now = Instant::now();
        for ev in &events[..n as usize] {
            let i = ev.u64 as usize;
            while socks[i].recv(&mut buf).is_ok() {}
            if !pending[i] {
                pending[i] = true;
                due.push_back((now + delay, i));
            }
        }
    }
    // SAFETY: ep is an open descriptor owned here.
    unsafe { libc::close(ep) };
    Ok(())
}

/// `--echo --io-uring`: the echo server waiting, receiving and sending through one
/// io_uring instead of `poll`, `recvmmsg` and `sendmmsg`.
///
/// A multishot `recvmsg` stays armed on the socket and fills buffers the kernel takes
/// from a registered ring; each reply is a `sendmsg` entry submitted with the next wait,
/// so a round trip costs one `io_uring_enter`. The ring is single-issuer with deferred
/// task work: a datagram's receive runs in this thread when it next enters the ring
/// (billed to the server, as `recvmmsg` is), not in the sender's softirq.
mod uring {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, bail, Context, Result};
    use io_uring::{cqueue, opcode, squeue, types, IoUring};

    use super::{pin, set_buffers, Args, Meter, Report, SOCKADDR_IN_LEN};

    /// The receive's user data; a send's is its slot.
    const RECV: u64 = u64::MAX;
    /// The provided buffers' group.
    const GROUP: u16 = 1;
    /// Provided receive buffers (a power of two) and the bytes of each: a datagram of at
    /// most 1,200 bytes plus the header and sender address multishot `recvmsg` puts
    /// before it.
    const BUFS: u16 = 64;
    const BUF_BYTES: usize = 2_048;
    /// Fewest send slots (see `Replies`).
    const MIN_SLOTS: usize = 64;

    /// The provided-buffer ring: BUFS entries in page-aligned memory the kernel reads,
    /// each pointing into `slab`, which the kernel writes. Both are reached only through
    /// raw pointers once registered.
    struct BufRing {
        entries: *mut types::BufRingEntry,
        layout: std::alloc::Layout,
        slab: *mut u8,
        slab_len: usize,
        tail: u16,
    }

    impl BufRing {
        fn new() -> Result<Self> {
            let bytes = usize::from(BUFS) * std::mem::size_of::<types::BufRingEntry>();
            let layout = std::alloc::Layout::from_size_align(bytes, 4_096)?;
            // SAFETY: the layout's size is not zero; freed in Drop with the same layout.
            let entries: *mut types::BufRingEntry =
                unsafe { std::alloc::alloc_zeroed(layout) }.cast();
            if entries.is_null() {
                bail!("allocating the buffer ring");
            }
            let slab_len = usize::from(BUFS) * BUF_BYTES;
            let slab = Box::into_raw(vec![0u8; slab_len].into_boxed_slice()).cast::<u8>();
            let mut ring = Self {
                entries,
                layout,
                slab,
                slab_len,
                tail: 0,
            };
            for bid in 0..BUFS {
                ring.give(bid);
            }
            ring.publish();
            Ok(ring)
        }

        /// Hand buffer `bid` (back) to the kernel; seen once published.
        fn give(&mut self, bid: u16) {
            // SAFETY: the index is masked into the BUFS entries; `bid` < BUFS, so the
            // address is inside the slab.
            unsafe {
                let e = &mut *self.entries.add(usize::from(self.tail & (BUFS - 1)));
                e.set_addr(self.slab.add(usize::from(bid) * BUF_BYTES) as u64);
                e.set_len(BUF_BYTES as u32);
                e.set_bid(bid);
            }
            self.tail = self.tail.wrapping_add(1);
        }

        fn publish(&self) {
            // SAFETY: the tail lives in the ring's first entry, which the kernel reads:
            // written with release ordering after the entries.
            unsafe {
                let tail = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
                (*tail).store(self.tail, Ordering::Release);
            }
        }

        /// The first `len` bytes the kernel wrote into buffer `bid`.
        ///
        /// # Safety
        /// The buffer is the caller's (its completion was taken, it was not given back).
        unsafe fn filled(&self, bid: u16, len: usize) -> &[u8] {
            let len = len.min(BUF_BYTES);
            // SAFETY: inside the slab (bid < BUFS, len ≤ BUF_BYTES); the kernel does not
            // write a buffer it does not hold.
            unsafe { std::slice::from_raw_parts(self.slab.add(usize::from(bid) * BUF_BYTES), len) }
        }
    }

    impl Drop for BufRing {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with these sizes; the io_uring that used them
            // is dropped before (see `serve_echo`).
            unsafe {
                std::alloc::dealloc(self.entries.cast(), self.layout);
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.slab,
                    self.slab_len,
                )));
            }
        }
    }

    /// The replies' `sendmsg` headers, each with its destination, sharing one iovec of
    /// the payload, built once; the kernel reads them through raw pointers. Slots are
    /// taken in turn. A send is submitted with the next wait and, sent `MSG_DONTWAIT`,
    /// finishes or fails within that submission, so its slot is free once the wait
    /// returns: with one request in flight per client, at most `clients` replies are
    /// pending at a time, and there are twice as many slots.
    struct Replies {
        _payload: Vec<u8>,
        _iov: Box<libc::iovec>,
        to: *mut libc::sockaddr_in,
        headers: *mut libc::msghdr,
        slots: usize,
        next: usize,
    }

    impl Replies {
        fn new(payload: Vec<u8>, clients: usize) -> Self {
            let slots = (2 * clients).max(MIN_SLOTS);
            let mut iov = Box::new(libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            });
            // SAFETY: sockaddr_in and msghdr are plain data, all-zero valid.
            let to: Box<[libc::sockaddr_in]> = vec![unsafe { std::mem::zeroed() }; slots].into();
            let to = Box::into_raw(to).cast::<libc::sockaddr_in>();
            let mut headers: Box<[libc::msghdr]> =
                vec![unsafe { std::mem::zeroed() }; slots].into();
            for (i, h) in headers.iter_mut().enumerate() {
                h.msg_iov = &mut *iov;
                h.msg_iovlen = 1;
                // SAFETY: i < slots, inside `to`.
                h.msg_name = unsafe { to.add(i) }.cast();
                h.msg_namelen = SOCKADDR_IN_LEN;
            }
            Self {
                _payload: payload,
                _iov: iov,
                to,
                headers: Box::into_raw(headers).cast(),
                slots,
                next: 0,
            }
        }

        /// The next slot, addressed to `to`.
        fn to(&mut self, to: libc::sockaddr_in) -> usize {
            let slot = self.next;
            self.next = (slot + 1) % self.slots;
            // SAFETY: slot < slots; a slot is rewritten only after its send finished
            // (see the struct).
            unsafe { self.to.add(slot).write(to) };
            slot
        }

        /// The `sendmsg` entry of `slot` (`MSG_DONTWAIT`; no completion on success).
        fn entry(&self, fd: types::Fd, slot: usize) -> squeue::Entry {
            // SAFETY: slot < slots, inside `headers`.
            let header = unsafe { self.headers.add(slot % self.slots) };
            opcode::SendMsg::new(fd, header)
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(slot as u64)
        }
    }

    impl Drop for Replies {
        fn drop(&mut self) {
            // SAFETY: both came from boxed slices of `slots` in `new`; the ring that read
            // them is gone.
            unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.to, self.slots,
                )));
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.headers,
                    self.slots,
                )));
            }
        }
    }

    /// Echo as `super::serve_echo` does, through the ring.
    pub(super) fn serve_echo(args: &Args, sock: &UdpSocket) -> Result<Report> {
        pin(args.server_cpu)?;
        set_buffers(sock, 8 << 20);
        let fd = types::Fd(sock.as_raw_fd());
        let mut bufs = BufRing::new()?;
        let mut replies = Replies::new(vec![0x5au8; args.payload_bytes], args.clients);
        // What the multishot receive is told: room for an IPv4 sender, no control data.
        // SAFETY: msghdr is plain data, all-zero valid.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = SOCKADDR_IN_LEN;

        let mut ring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            // Room for a reply to every client and the receive.
            .build((replies.slots as u32 + 1).next_power_of_two())
            .context("io_uring_setup (single issuer, deferred task work: Linux 6.1)")?;
        // SAFETY: the entries are page-aligned, BUFS long, and outlive the ring (dropped
        // first below).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.entries as u64, BUFS, GROUP, 0)
                .context("registering the buffer ring (Linux 5.19)")?;
        }
        let arm = |ring: &mut IoUring, hdr: &libc::msghdr| -> Result<()> {
            let sqe = opcode::RecvMsgMulti::new(fd, hdr, GROUP)
                .build()
                .user_data(RECV);
            // SAFETY: the header is boxed and outlives the ring.
            unsafe { ring.submission().push(&sqe) }.map_err(|_| anyhow!("submission queue full"))
        };
        arm(&mut ring, &recv_hdr)?;

        let mut meter = Meter::new(args);
        let mut r = Report::new(args);
        r.io_uring = true;
        let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(256);
        // Replies to submit with the next wait: new ones, and those the full socket
        // buffer refused.
        let mut pending: Vec<usize> = Vec::with_capacity(replies.slots);
        loop {
            let now = Instant::now();
            let inside = meter.inside(now)?;
            if now >= meter.end {
                break;
            }
            let wait = meter
                .end
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            let ts = types::Timespec::from(wait);
            match ring
                .submitter()
                .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
            {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(e) => return Err(e).context("io_uring_enter"),
            }
            done.clear();
            done.extend(
                ring.completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let mut answered = 0u64;
            let mut rearm = false;
            for &(data, res, flags) in &done {
                if data != RECV {
                    // Only a failed send posts a completion. The socket buffer full: the
                    // reply goes again with the next wait (its slot is untouched until
                    // `slots` replies later); anything else ends the run.
                    if res != -libc::EAGAIN {
                        bail!("sendmsg: {}", std::io::Error::from_raw_os_error(-res));
                    }
                    pending.push(data as usize);
                    continue;
                }
                // A multishot receive that ends (out of buffers, or an error) is armed
                // again.
                rearm |= !cqueue::more(flags);
                if res == -libc::ENOBUFS {
                    continue;
                }
                if res < 0 {
                    bail!(
                        "multishot recvmsg: {}",
                        std::io::Error::from_raw_os_error(-res)
                    );
                }
                let bid = cqueue::buffer_select(flags)
                    .ok_or_else(|| anyhow!("a receive completion without a buffer"))?;
                // SAFETY: the completion gave this buffer to us; it goes back below.
                let msg =
                    types::RecvMsgOut::parse(unsafe { bufs.filled(bid, res as usize) }, &recv_hdr)
                        .map_err(|_| anyhow!("a receive too short for its header"))?;
                if msg.name_data().len() < std::mem::size_of::<libc::sockaddr_in>() {
                    bail!("a sender address that is not IPv4");
                }
                // SAFETY: at least a sockaddr_in's bytes, as the kernel wrote them.
                let from = unsafe {
                    std::ptr::read_unaligned(msg.name_data().as_ptr().cast::<libc::sockaddr_in>())
                };
                bufs.give(bid);
                let slot = replies.to(from);
                pending.push(slot);
                answered += 1;
            }
            for slot in pending.drain(..) {
                // SAFETY: the header and what it points at live in `replies`, which
                // outlives the ring.
                unsafe { ring.submission().push(&replies.entry(fd, slot)) }
                    .map_err(|_| anyhow!("submission queue full"))?;
            }
            bufs.publish();
            if rearm {
                arm(&mut ring, &recv_hdr)?;
            }
            if inside {
                r.ring_enters += 1;
                r.answers += answered;
                r.deliveries += answered;
            }
        }
        let report = meter.close(Instant::now(), r);
        // The kernel lets go of the buffers and headers with the ring.
        drop(ring);
        drop(bufs);
        drop(replies);
        report
    }
}

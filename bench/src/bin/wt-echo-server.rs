//! `wt-echo-server`: the tokio + quinn peer that mc-service is compared with
//! (`bench/compare.sh`). A WebTransport echo server built on the `wtransport` crate, on
//! tokio's default multi-thread runtime:
//!
//! - accepts every session on any path (`/echo` included);
//! - echoes every client-opened bidi stream chunk by chunk (quinn's `read_chunk` →
//!   `write_chunk`, no copy) and finishes its side when the client finishes;
//! - echoes every client-opened uni stream on a new server-opened uni stream;
//! - echoes every datagram.
//!
//! It loads the certificate mc-service's dev mode writes (`.mc-dev/cert.pem`,
//! `key.pem`), so one client trusts both servers by `cert.sha256`. It logs nothing per
//! message. The QUIC idle timeout and keep-alive match mc-service's defaults (30 s, 10 s).
//!
//! ```text
//! wt-echo-server --bind 127.0.0.1:4433 --cert .mc-dev/cert.pem --key .mc-dev/key.pem
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, Endpoint, Identity, RecvStream, SendStream, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "wt-echo-server",
    about = "WebTransport echo server on tokio + quinn (wtransport), the peer of bench/compare.sh"
)]
struct Args {
    /// UDP address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "WT_ECHO_BIND", default_value = "127.0.0.1:4433")]
    bind: SocketAddr,
    /// PEM certificate chain (mc-service --dev writes .mc-dev/cert.pem).
    #[arg(long, env = "WT_ECHO_CERT", default_value = ".mc-dev/cert.pem")]
    cert: PathBuf,
    /// PEM private key (mc-service --dev writes .mc-dev/key.pem).
    #[arg(long, env = "WT_ECHO_KEY", default_value = ".mc-dev/key.pem")]
    key: PathBuf,
    /// Close a connection after this many seconds without packets from the peer.
    #[arg(long, env = "WT_ECHO_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    idle_timeout_secs: u64,
    /// Send a keep-alive PING after this many idle seconds (0 disables).
    #[arg(long, env = "WT_ECHO_KEEP_ALIVE_SECS", default_value_t = 10)]
    keep_alive_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wt-echo-server: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let identity = Identity::load_pemfiles(&args.cert, &args.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load {} / {}: {e}",
                args.cert.display(),
                args.key.display()
            )
        })?;
    let idle = Duration::from_secs(args.idle_timeout_secs.max(1));
    let config = ServerConfig::builder()
        .with_bind_address(args.bind)
        .with_identity(identity)
        .max_idle_timeout(Some(idle))
        .map_err(|e| anyhow::anyhow!("idle timeout {idle:?}: {e}"))?
        .keep_alive_interval(
            (args.keep_alive_secs > 0).then(|| Duration::from_secs(args.keep_alive_secs)),
        )
        .build();
    let server = Endpoint::server(config)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    println!("wt-echo-server listening on {}", server.local_addr()?);
    loop {
        tokio::select! {
            incoming = server.accept() => { tokio::spawn(session(incoming)); }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    server.close(0u32.into(), b"shutdown");
    Ok(())
}

/// One session: accept it on any path, then echo until the connection ends.
async fn session(incoming: IncomingSession) {
    let Ok(request) = incoming.await else { return };
    let Ok(conn) = request.accept().await else {
        return;
    };
    let conn = Arc::new(conn);
    tokio::spawn(datagrams(conn.clone()));
    tokio::spawn(uni_streams(conn.clone()));
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(echo_stream(send, recv));
    }
}

async fn echo_stream(mut send: SendStream, mut recv: RecvStream) {
    pump(send.quic_stream_mut(), recv.quic_stream_mut()).await;
}

/// Read chunk → write chunk until the client finishes (then finish) or an error.
async fn pump(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream) {
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => {
                if send.write_chunk(chunk.bytes).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = send.finish();
                return;
            }
            Err(_) => return,
        }
    }
}

/// Every client uni stream is echoed on a new server uni stream.
async fn uni_streams(conn: Arc<Connection>) {
    while let Ok(mut recv) = conn.accept_uni().await {
        let conn = conn.clone();
        tokio::spawn(async move {
            let Ok(opening) = conn.open_uni().await else {
                return;
            };
            let Ok(mut send) = opening.await else { return };
            pump(send.quic_stream_mut(), recv.quic_stream_mut()).await;
        });
    }
}

async fn datagrams(conn: Arc<Connection>) {
    while let Ok(d) = conn.receive_datagram().await {
        // A datagram too large for the path, or a full send buffer, is dropped like any
        // unreliable datagram; only the connection ending stops the loop.
        let _ = conn.send_datagram(d.payload());
    }
}

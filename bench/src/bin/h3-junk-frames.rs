//! `h3-junk-frames`: the cheapest HTTP/3 input a client can make a server parse, sent for
//! a while, to compare what parsing it costs the server from build to build.
//!
//! Each connection opens a WebTransport session (on `/echo` by default, which has no join
//! deadline), holds `--held` request streams half-started (one byte of a first frame's
//! type, so that the server keeps a state for each), and on one more request stream
//! sends, before any HEADERS, nothing but empty frames of a reserved type (0x21, RFC 9114
//! §7.2.8: the receiver ignores them), two bytes each. QUIC's flow control gives the
//! credit back as the server reads, so only the link and the server's parsing limit the
//! rate. Prints the bytes sent; `bench/results/*-junk-frames/run.sh` reads the server's
//! CPU time around the run.
//!
//!   h3-junk-frames --target https://127.0.0.1:4433/echo --dev-dir DIR --secs 10

use std::time::{Duration, Instant};

use clap::Parser;
use mc_bench::loadgen::client::ClientArgs;

/// A reserved frame type (0x1f * N + 0x21 with N = 0) with a length of zero.
const JUNK_FRAME: [u8; 2] = [0x21, 0x00];

#[derive(Parser, Debug)]
#[command(about = "Send empty HTTP/3 frames of a reserved type on request streams")]
struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Connections, each with its own junk stream.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Request streams each connection holds half-started beside its junk stream (the
    /// server allows 16 bidirectional streams, the session's CONNECT being one).
    #[arg(long, default_value_t = 14)]
    held: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = args.client.resolve()?;
    let until = Instant::now() + Duration::from_secs_f64(args.secs);
    let mut tasks = Vec::new();
    for _ in 0..args.conns {
        let endpoint = args.client.endpoint(&target)?;
        let url = target.url.clone();
        let held = args.held;
        tasks.push(tokio::spawn(async move {
            let conn = endpoint.connect(url.as_str()).await?;
            let quic = conn.quic_connection().clone();
            let mut keep = Vec::new();
            for _ in 0..held {
                let (mut send, recv) = quic.open_bi().await?;
                // The first byte of a two-byte varint: the stream's first frame type,
                // unfinished.
                send.write_all(&[0x40]).await?;
                keep.push((send, recv));
            }
            let (mut send, _recv) = quic.open_bi().await?;
            let block: Vec<u8> = JUNK_FRAME.repeat(32 * 1024);
            let mut sent = 0u64;
            while Instant::now() < until {
                send.write_all(&block).await?;
                sent += block.len() as u64;
            }
            drop(keep);
            conn.close(0u32.into(), b"done");
            endpoint.wait_idle().await;
            anyhow::Ok(sent)
        }));
    }
    let mut total = 0u64;
    for t in tasks {
        total += t.await??;
    }
    println!(
        "sent {total} bytes of empty reserved frames ({} frames) in {:.1} s on {} connections",
        total / JUNK_FRAME.len() as u64,
        args.secs,
        args.conns
    );
    Ok(())
}

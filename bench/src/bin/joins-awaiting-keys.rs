//! `joins-awaiting-keys`: sessions that join with a token naming a signing key the server
//! does not know, which makes the join wait for the keys (up to two seconds), and that
//! send behind the join, in the same write, `--behind` MediaConnectionUpdate messages of
//! 256 empty statuses each (515 bytes on the wire, about 26 KB decoded). No valid token is
//! needed. The sessions are held for `--hold-ms`, then closed;
//! `bench/results/*-joins-awaiting-keys/run.sh` samples the server's RSS meanwhile.
//!
//!   joins-awaiting-keys --target https://127.0.0.1:4433/ --dev-dir DIR --sessions 16

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Parser;
use mc_bench::loadgen::client::ClientArgs;
use mc_bench::loadgen::proto::{client_message, encode, ClientMessage, JoinRequest};
use prost::Message as _;

/// `MhConnectionStatus` with every field at its default: nothing on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct EmptyStatus {}

/// `ClientMessage { media_connection_update = 11 { repeated statuses = 1 } }`.
#[derive(Clone, PartialEq, prost::Message)]
struct MediaConnectionUpdate {
    #[prost(message, repeated, tag = "1")]
    statuses: Vec<EmptyStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct UpdateEnvelope {
    #[prost(message, optional, tag = "11")]
    update: Option<MediaConnectionUpdate>,
}

#[derive(Parser, Debug)]
#[command(about = "Joins that wait for unknown signing keys, with messages behind them")]
struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// Sessions, each on its own client socket.
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// Messages behind each join.
    #[arg(long, default_value_t = 99)]
    behind: usize,
    /// How long the sessions are held once all are open, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
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
    // A token whose header names a key no server has; the signature is never looked at.
    let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let token = format!(
        "{}.{}.{}",
        part(r#"{"alg":"EdDSA","typ":"JWT","kid":"no-such-key"}"#),
        part(r#"{"sub":"u","meeting_id":"m1","exp":4102444800}"#),
        part("signature")
    );
    let mut burst = encode(&ClientMessage {
        message: Some(client_message::Message::JoinRequest(JoinRequest {
            meeting_id: "m1".into(),
            join_token: token,
            participant_name: "waiting".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let update = UpdateEnvelope {
        update: Some(MediaConnectionUpdate {
            statuses: vec![EmptyStatus {}; 256],
        }),
    }
    .encode_to_vec();
    for _ in 0..args.behind {
        burst.extend_from_slice(&(update.len() as u32).to_be_bytes());
        burst.extend_from_slice(&update);
    }
    let mut held = Vec::new();
    for _ in 0..args.sessions {
        let endpoint = args.client.endpoint(&target)?;
        let conn = endpoint.connect(target.url.as_str()).await?;
        let (mut send, recv) = conn.open_bi().await?.await?;
        send.write_all(&burst).await?;
        held.push((endpoint, conn, send, recv));
    }
    println!(
        "{} sessions, each a join awaiting keys and {} messages behind it ({} bytes)",
        held.len(),
        args.behind,
        burst.len()
    );
    tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
    for (endpoint, conn, _, _) in held {
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
    }
    Ok(())
}

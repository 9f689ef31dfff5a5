//! In-process data-plane tests: 2 shard executors on one SO_REUSEPORT port of
//! 127.0.0.1, real clients (wtransport for WebTransport, quinn + h3 for the rebinding
//! client).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{echo_args, TestServer};
use wtransport::{ClientConfig, Endpoint, VarInt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn wt_client() -> Endpoint<wtransport::endpoint::endpoint_side::Client> {
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_no_cert_validation()
        .build();
    Endpoint::client(config).unwrap()
}

async fn echo_once(
    client: &Endpoint<wtransport::endpoint::endpoint_side::Client>,
    url: &str,
    payload: &[u8],
) {
    let conn = client.connect(url).await.expect("connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("open").await.expect("opened");
    send.write_all(payload).await.unwrap();
    send.finish().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(n) = recv.read(&mut buf).await.expect("read") {
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, payload);
    // Datagrams are lossy: resend until one echo comes back.
    let mut echoed = false;
    for _ in 0..20 {
        conn.send_datagram(b"ping-datagram").unwrap();
        if let Ok(Ok(d)) =
            tokio::time::timeout(Duration::from_millis(250), conn.receive_datagram()).await
        {
            assert_eq!(&d.payload()[..], b"ping-datagram");
            echoed = true;
            break;
        }
    }
    assert!(echoed, "no datagram echo");
    conn.close(VarInt::from_u32(0), b"done");
}

#[test]
fn echo_stream_and_datagram_on_two_shards() {
    let server = TestServer::start(2, echo_args());
    let url = format!("https://127.0.0.1:{}/echo", server.addr.port());
    runtime().block_on(async {
        let client = wt_client();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        echo_once(&client, &url, b"hello over webtransport").await;
        echo_once(&client, &url, &big).await;
        client.wait_idle().await;
    });
    assert!(server.wt_counter("accepted") >= 2);
    assert!(
        server.wait_idle(Duration::from_secs(10)),
        "connections left: {}",
        server.connections_active()
    );
    server.stop();
}

#[test]
fn unknown_path_and_echo_without_flag_are_refused() {
    let server = TestServer::start(2, Default::default());
    runtime().block_on(async {
        let client = wt_client();
        for path in ["/nope", "/echo"] {
            let url = format!("https://127.0.0.1:{}{}", server.addr.port(), path);
            match tokio::time::timeout(Duration::from_secs(10), client.connect(url)).await {
                Ok(Err(wtransport::error::ConnectingError::SessionRejected)) => {}
                other => panic!(
                    "{path}: expected a rejected session, got {:?}",
                    other.map(|r| r.map(|_| ()))
                ),
            }
        }
    });
    assert!(server.wt_counter("rejected") >= 2);
    server.stop();
}

/// quinn + h3 client that trusts the dev certificate.
fn quinn_client(server: &TestServer) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            server.cert_der.clone(),
        ))
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

async fn get_status(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    port: u16,
) -> u16 {
    let req = http::Request::get(format!("https://localhost:{port}/nope"))
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.expect("send request");
    stream.finish().await.unwrap();
    stream
        .recv_response()
        .await
        .expect("response")
        .status()
        .as_u16()
}

#[test]
fn rebinding_client_keeps_its_connection_through_forwarding() {
    let server = TestServer::start(2, echo_args());
    let port = server.addr.port();
    let before = server.forwarded();
    runtime().block_on(async {
        let endpoint = quinn_client(&server);
        let conn = endpoint
            .connect(SocketAddr::from(([127, 0, 0, 1], port)), "localhost")
            .unwrap()
            .await
            .expect("handshake");
        let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .expect("h3 client");
        let drive =
            tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        assert_eq!(get_status(&mut send, port).await, 404);
        // Each rebind picks a new source port: the kernel's SO_REUSEPORT hash sends about
        // half of them to the other shard, which must forward to the owner.
        for _ in 0..12 {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            endpoint.rebind(socket).unwrap();
            let status = tokio::time::timeout(Duration::from_secs(10), get_status(&mut send, port))
                .await
                .expect("request after rebind timed out");
            assert_eq!(status, 404);
        }
        conn.close(quinn::VarInt::from_u32(0x100), b"");
        drive.abort();
        endpoint.wait_idle().await;
    });
    assert!(
        server.eventually(Duration::from_secs(3), |s| s.forwarded() > before),
        "no datagram was forwarded"
    );
    server.stop();
}

// 1,000 concurrent sessions are tested against the real binary: tests/binary_echo.rs.

#[test]
fn forced_retry_still_echoes_and_is_counted() {
    let args = mc_service::quic::QuicArgs {
        retry: mc_service::quic::RetryMode::Always,
        ..echo_args()
    };
    let server = TestServer::start(2, args);
    let url = format!("https://127.0.0.1:{}/echo", server.addr.port());
    runtime().block_on(async {
        let client = wt_client();
        echo_once(&client, &url, b"after a retry").await;
        client.wait_idle().await;
    });
    assert!(
        server.eventually(Duration::from_secs(3), |s| s.retries() >= 1),
        "no Retry was sent"
    );
    server.stop();
}

#[test]
fn ipv6_loopback_echoes() {
    let server = TestServer::start_at("[::1]:0".parse().unwrap(), 2, echo_args());
    let url = format!("https://[::1]:{}/echo", server.addr.port());
    runtime().block_on(async {
        let config = ClientConfig::builder()
            .with_bind_address("[::]:0".parse().unwrap())
            .with_no_cert_validation()
            .build();
        let client = Endpoint::client(config).unwrap();
        echo_once(&client, &url, b"over ipv6").await;
        client.wait_idle().await;
    });
    server.stop();
}

#[test]
fn sessions_over_the_shard_limit_are_refused() {
    let args = mc_service::quic::QuicArgs {
        max_sessions_per_shard: 1,
        ..echo_args()
    };
    let server = TestServer::start(1, args);
    let url = format!("https://127.0.0.1:{}/echo", server.addr.port());
    runtime().block_on(async {
        let client = wt_client();
        let first = client.connect(&url).await.expect("first session");
        let second = tokio::time::timeout(Duration::from_secs(10), client.connect(&url))
            .await
            .expect("refusal timed out");
        assert!(second.is_err(), "second session admitted over the limit");
        first.close(VarInt::from_u32(0), b"");
        client.wait_idle().await;
    });
    server.stop();
}

#[test]
fn silent_client_is_dropped_by_the_idle_timer() {
    let args = mc_service::quic::QuicArgs {
        idle_timeout_secs: 1,
        keep_alive_secs: 0,
        ..echo_args()
    };
    let server = TestServer::start(2, args);
    let port = server.addr.port();
    runtime().block_on(async {
        let endpoint = quinn_client(&server);
        let conn = endpoint
            .connect(SocketAddr::from(([127, 0, 0, 1], port)), "localhost")
            .unwrap()
            .await
            .expect("handshake");
        // The client can finish its handshake before the shard's pass that counts it.
        let counted = Instant::now() + Duration::from_secs(2);
        while server.connections_active() != 1 && Instant::now() < counted {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.connections_active(), 1);
        // Idle timeouts close silently (RFC 9000 §10.1): only the server's own timer
        // can notice.
        let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("client never timed out");
        assert!(
            matches!(reason, quinn::ConnectionError::TimedOut),
            "{reason:?}"
        );
    });
    assert!(
        server.wait_idle(Duration::from_secs(5)),
        "server kept {} connections",
        server.connections_active()
    );
    server.stop();
}

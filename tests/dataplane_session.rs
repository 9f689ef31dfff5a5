//! The session API the signaling layer uses, through `/` with a test application:
//! admission refusals, server-side close with an application code, how sessions end.

mod support;

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mc_service::webtransport::{ConnectInfo, Refusal, SessionApp, SessionEnd, WtSession};
use support::TestServer;
use wtransport::{ClientConfig, Endpoint, VarInt};

/// Refuses `?full`, otherwise reads one message from the client's first bidi stream,
/// answers it, then closes the session with code 42 and records how it ended.
struct CloseApp {
    ends: Arc<AtomicU32>,
}

impl SessionApp for CloseApp {
    fn admit(&self, req: &ConnectInfo) -> Result<(), Refusal> {
        match req.query.as_deref() {
            Some("full") => Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE)),
            _ => Ok(()),
        }
    }

    fn on_session(&self, session: WtSession) {
        let ends = self.ends.clone();
        glommio::spawn_local(async move {
            if let Ok(Some(mut stream)) = session.accept_bi().await {
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let _ = stream.write_all(&buf[..n]).await;
                let _ = stream.finish().await;
                if &buf[..n] == b"close me" {
                    session.close(42, b"bye");
                }
            }
            let end = session.closed().await;
            let code = match end {
                SessionEnd::Local { code } => 1000 + code,
                SessionEnd::PeerClosed { clean: true, .. } => 2000,
                _ => 3000,
            };
            ends.store(code, Ordering::SeqCst);
        })
        .detach();
    }
}

fn client() -> Endpoint<wtransport::endpoint::endpoint_side::Client> {
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_no_cert_validation()
        .build();
    Endpoint::client(config).unwrap()
}

fn server(ends: Arc<AtomicU32>) -> TestServer {
    TestServer::start_with(
        2,
        Default::default(),
        Arc::new(move || Rc::new(CloseApp { ends: ends.clone() }) as Rc<dyn SessionApp>),
    )
}

async fn round_trip(conn: &wtransport::Connection, msg: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
    send.write_all(msg).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn wait_for(ends: &AtomicU32) -> u32 {
    for _ in 0..500 {
        let v = ends.load(Ordering::SeqCst);
        if v != 0 {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    0
}

#[test]
fn server_close_reaches_the_client_with_its_code() {
    let ends = Arc::new(AtomicU32::new(0));
    let server = server(ends.clone());
    let port = server.addr.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let closed = rt.block_on(async {
        let c = client();
        let conn = c
            .connect(format!("https://127.0.0.1:{port}/"))
            .await
            .unwrap();
        assert_eq!(round_trip(&conn, b"close me").await, b"close me");
        tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("not closed");
        // wtransport closes QUIC itself on the capsule; the session's code is what its
        // driver recorded, seen by any later operation.
        match conn.accept_bi().await {
            Err(e) => e,
            Ok(_) => panic!("stream accepted on a closed session"),
        }
    });
    let text = format!("{closed:?}");
    assert!(text.contains("42"), "client saw {text}");
    assert_eq!(wait_for(&ends), 1042);
    assert!(server.wait_idle(Duration::from_secs(10)));
    server.stop();
}

#[test]
fn client_close_is_seen_as_a_clean_peer_close() {
    let ends = Arc::new(AtomicU32::new(0));
    let server = server(ends.clone());
    let port = server.addr.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        let conn = c
            .connect(format!("https://127.0.0.1:{port}/"))
            .await
            .unwrap();
        assert_eq!(round_trip(&conn, b"hi").await, b"hi");
        conn.close(VarInt::from_u32(0), b"");
        c.wait_idle().await;
    });
    assert_eq!(wait_for(&ends), 2000);
    server.stop();
}

#[test]
fn admission_refusal_rejects_the_session() {
    let ends = Arc::new(AtomicU32::new(0));
    let server = server(ends);
    let port = server.addr.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        let res = c.connect(format!("https://127.0.0.1:{port}/?full")).await;
        assert!(matches!(
            res,
            Err(wtransport::error::ConnectingError::SessionRejected)
        ));
    });
    assert!(server.wt_counter("rejected") >= 1);
    server.stop();
}

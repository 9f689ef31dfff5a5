//! A real WebTransport signaling client (wtransport over quinn, tokio) for tests:
//! length-prefixed protobuf frames on one bidi stream, as docs/protocol.md describes.
//!
//! With [`SigClient::follow_redirects`] it follows `RedirectToMc` as docs/protocol.md
//! rule 18 says: it connects to `new_mc_endpoint` on the same path and sends the
//! recovery join (the latest `correlation_id` and `binding_token`, and a fresh JWT for
//! the same `sub`). Without it a redirect is just another message.
#![allow(dead_code)]

use std::time::Duration;

use mc_service::signaling::codec::{encode_frame, FrameDecoder};
use mc_service::signaling::proto::{
    client_message, pb, server_message, ClientMessage, ServerMessage,
};
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

pub type M = server_message::Message;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn endpoint() -> Endpoint<wtransport::endpoint::endpoint_side::Client> {
    endpoint_with(ClientConfig::builder().with_bind_default())
}

/// A client endpoint whose UDP socket is bound to `address` (port 0: any).
pub fn endpoint_at(
    address: std::net::SocketAddr,
) -> Endpoint<wtransport::endpoint::endpoint_side::Client> {
    endpoint_with(ClientConfig::builder().with_bind_address(address))
}

fn endpoint_with(
    bound: wtransport::config::ClientConfigBuilder<wtransport::config::states::WantsRootStore>,
) -> Endpoint<wtransport::endpoint::endpoint_side::Client> {
    let config = bound
        .with_no_cert_validation()
        .max_idle_timeout(Some(Duration::from_secs(30)))
        .unwrap()
        .build();
    Endpoint::client(config).unwrap()
}

/// The first datagram of a WebTransport client: a QUIC Initial carrying its
/// ClientHello, caught on a UDP socket of the test's that never answers. Sent to a
/// server from anywhere, it starts a handshake there.
pub fn client_initial() -> Vec<u8> {
    let catcher = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    catcher
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let url = format!("https://{}/", catcher.local_addr().unwrap());
    let rt = runtime();
    let connecting = rt.spawn(async move {
        let ep = endpoint();
        let _ = tokio::time::timeout(Duration::from_secs(5), ep.connect(&url)).await;
    });
    let mut buf = [0u8; 2048];
    let n = catcher.recv(&mut buf).expect("the client's first datagram");
    connecting.abort();
    assert!(n >= 1200, "a client's Initial is padded to 1200 bytes: {n}");
    buf[..n].to_vec()
}

/// Mints a fresh join token for the same `sub` (for a recovery join elsewhere).
pub type Mint = Box<dyn Fn() -> String + Send + Sync>;

pub struct SigClient {
    pub conn: Connection,
    send: SendStream,
    recv: RecvStream,
    decoder: FrameDecoder,
    /// Everything received so far, in order (across redirects).
    pub received: Vec<ServerMessage>,
    pub closed: bool,
    /// The session URL's path, reused when following a redirect.
    path: String,
    /// The last join sent, the base of a recovery join.
    last_join: Option<pb::JoinRequest>,
    /// `correlation_id` and `binding_token` of the latest JoinResponse.
    binding: Option<(String, String)>,
    /// Set by [`SigClient::follow_redirects`].
    mint: Option<Mint>,
    /// The redirects followed, in order.
    pub redirects: Vec<pb::RedirectToMc>,
}

/// The path of `url` (`https://host:port/path` → `/path`; `/` when there is none).
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

/// Connect to `url` and open the signaling stream.
async fn open(url: &str) -> (Connection, SendStream, RecvStream) {
    open_on(&endpoint(), url).await
}

/// [`open`] through `ep`: connections of one endpoint share its UDP socket.
async fn open_on(
    ep: &Endpoint<wtransport::endpoint::endpoint_side::Client>,
    url: &str,
) -> (Connection, SendStream, RecvStream) {
    let conn = tokio::time::timeout(Duration::from_secs(10), ep.connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let (send, recv) = conn.open_bi().await.expect("open").await.expect("opened");
    (conn, send, recv)
}

impl SigClient {
    pub async fn connect(url: &str) -> SigClient {
        Self::from_parts(open(url).await, url)
    }

    /// A client on `ep`'s UDP socket: every client of one endpoint comes from the same
    /// address and port, so the server's kernel hands them all to the same shard.
    pub async fn connect_on(
        ep: &Endpoint<wtransport::endpoint::endpoint_side::Client>,
        url: &str,
    ) -> SigClient {
        Self::from_parts(open_on(ep, url).await, url)
    }

    fn from_parts(
        (conn, send, recv): (Connection, SendStream, RecvStream),
        url: &str,
    ) -> SigClient {
        SigClient {
            conn,
            send,
            recv,
            decoder: FrameDecoder::new(1 << 16),
            received: Vec::new(),
            closed: false,
            path: url_path(url),
            last_join: None,
            binding: None,
            mint: None,
            redirects: Vec::new(),
        }
    }

    /// Follow `RedirectToMc` from now on; `mint` gives a fresh JWT for the same `sub`.
    pub fn follow_redirects(&mut self, mint: impl Fn() -> String + Send + Sync + 'static) {
        self.mint = Some(Box::new(mint));
    }

    /// The latest JoinResponse's `correlation_id` and `binding_token`.
    pub fn binding(&self) -> Option<&(String, String)> {
        self.binding.as_ref()
    }

    /// Rule 18: connect to the new MC on the same path and send the recovery join. Its
    /// answer is read by the next [`SigClient::next`].
    async fn follow(&mut self, redirect: &pb::RedirectToMc) {
        let Some(mint) = &self.mint else { return };
        let (correlation_id, binding_token) = self
            .binding
            .clone()
            .expect("a redirect after a JoinResponse");
        let mut join = self.last_join.clone().expect("a redirect after a join");
        join.join_token = mint();
        join.correlation_id = correlation_id;
        join.binding_token = binding_token;
        let url = format!(
            "{}{}",
            redirect.new_mc_endpoint.trim_end_matches('/'),
            self.path
        );
        let (conn, send, recv) = open(&url).await;
        // The old session is closed by the old MC (0x103); dropping it is fine.
        self.conn = conn;
        self.send = send;
        self.recv = recv;
        self.decoder = FrameDecoder::new(1 << 16);
        self.closed = false;
        self.redirects.push(redirect.clone());
        self.send(client_message::Message::JoinRequest(join)).await;
    }

    pub async fn send(&mut self, msg: client_message::Message) {
        self.send_envelope(ClientMessage::of(msg)).await;
    }

    pub async fn send_envelope(&mut self, msg: ClientMessage) {
        let mut buf = Vec::new();
        encode_frame(&msg, &mut buf, 1 << 16).unwrap();
        self.send.write_all(&buf).await.expect("write");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("write");
    }

    pub async fn join(&mut self, meeting: &str, token: &str, name: &str) -> ServerMessage {
        self.join_with(pb::JoinRequest {
            meeting_id: meeting.into(),
            join_token: token.into(),
            participant_name: name.into(),
            ..Default::default()
        })
        .await
    }

    pub async fn join_with(&mut self, req: pb::JoinRequest) -> ServerMessage {
        self.last_join = Some(req.clone());
        self.send(client_message::Message::JoinRequest(req)).await;
        self.next(Duration::from_secs(10))
            .await
            .expect("join answer")
    }

    /// The next message, or None on timeout or stream end.
    pub async fn next(&mut self, timeout: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(m)) = self.decoder.next_message::<ServerMessage>() {
                self.received.push(m.clone());
                match &m.message {
                    Some(M::JoinResponse(r)) => {
                        self.binding = Some((r.correlation_id.clone(), r.binding_token.clone()));
                    }
                    Some(M::RedirectToMc(r)) if self.mint.is_some() => {
                        let r = r.clone();
                        self.follow(&r).await;
                    }
                    _ => {}
                }
                return Some(m);
            }
            let mut buf = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.recv.read(&mut buf)).await {
                Ok(Ok(Some(n))) => self.decoder.push(&buf[..n]),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Read until a message matches `pred` (others are kept in `received`).
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&M) -> bool) -> M {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(ServerMessage {
                    message: Some(m), ..
                }) if pred(&m) => return m,
                Some(_) => continue,
                None => panic!("expected {what}; got {:#?}", self.received),
            }
        }
    }

    /// Nothing matching `pred` arrives within `window`.
    pub async fn expect_none(&mut self, window: Duration, what: &str, pred: impl Fn(&M) -> bool) {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(ServerMessage {
                message: Some(m), ..
            }) = self.next(left).await
            {
                assert!(!pred(&m), "unexpected {what}: {m:#?}");
            } else {
                return;
            }
        }
    }

    /// Wait until the server ends the stream/session.
    pub async fn expect_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "session not closed; got {:#?}",
                self.received
            );
            self.next(left).await;
        }
    }

    /// A clean leave: finish the signaling stream (docs/protocol.md rule 6).
    pub async fn leave(mut self) {
        let _ = self.send.finish().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.closed()).await;
    }

    /// A crash: close the connection with an error code (not a clean leave).
    pub fn crash(self) {
        self.conn.close(VarInt::from_u32(0x99), b"crash");
    }
}

pub fn error_code(m: &M) -> Option<i32> {
    match m {
        M::Error(e) => Some(e.code),
        _ => None,
    }
}

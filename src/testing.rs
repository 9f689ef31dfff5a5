//! An in-memory client and server for tests and fuzzing: two quinn-proto endpoints
//! wired together without sockets, with a clock the test moves. The server side is the
//! real [`Conn`] — QUIC, the HTTP/3 layer and the application (signaling on `/`, echo
//! on `/echo`) — so what a test or a fuzzer sends on the client's streams and datagrams
//! reaches exactly the code a network client reaches.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig,
    ServerConfig, TransportConfig, VarInt,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::actors::{ActorSettings, MeetingCmd};
use crate::auth::jwks::Jwks;
use crate::auth::jwt::VerifierConfig;
use crate::auth::keystore::{KeyStore, ShardVerifier};
use crate::auth::BindingSecret;
use crate::conn::{Conn, ConnCtx};
use crate::h3::H3Limits;
use crate::meeting::{ConnKey, MeetingConfig};
use crate::metrics::{Metrics, ShardMetrics};
use crate::quic::QuicArgs;
use crate::signaling::session::SessionConfig;

const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4433);
const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50000);

/// What the server side needs besides its connection.
pub struct Fixtures {
    pub limits: H3Limits,
    pub settings: ActorSettings,
    pub verifier: ShardVerifier,
    pub metrics: ShardMetrics,
    /// The families behind `metrics`, for tests that read a count.
    pub registry: Metrics,
    /// Commands the server's sessions sent to meetings (not routed anywhere).
    pub meeting_cmds: Vec<MeetingCmd>,
    pub enable_echo: bool,
    /// The shard's sessions' queued bytes (`ConnCtx::outbound_bytes`).
    pub outbound_bytes: usize,
}

/// One client connection to one server connection, in memory.
pub struct Pair {
    pub now: Instant,
    server_ep: Endpoint,
    client_ep: Endpoint,
    /// The server's connection, once the client's first packet arrived.
    pub server: Option<(ConnectionHandle, Conn)>,
    pub client: Connection,
    client_handle: ConnectionHandle,
    pub fixtures: Fixtures,
    /// While set, the server's datagrams are lost on their way to the client.
    pub drop_to_client: bool,
    /// What the server's endpoint answers when the handshake completes (the client's
    /// limit, `QuicEndpoint::handshake_done`): true admits the connection.
    pub admit: bool,
    /// quinn-proto has forgotten the server's connection (it drained).
    pub server_drained: bool,
    handshake_timeout: Duration,
    to_server: VecDeque<BytesMut>,
    to_client: VecDeque<BytesMut>,
    buf: Vec<u8>,
}

impl Pair {
    /// A pair whose server uses `args` (windows, stream limits, timeouts, echo).
    pub fn new(args: QuicArgs) -> Self {
        Self::with_client(args, b"h3", 1)
    }

    /// A pair whose client offers the one ALPN protocol `alpn` and QUIC `version`.
    pub fn with_client(args: QuicArgs, alpn: &[u8], version: u32) -> Self {
        let now = Instant::now();
        let material = crate::tls::generate_material(SystemTime::now()).expect("dev certificate");
        let crypto = crate::tls::server_config(&material).expect("server crypto");
        let shared = crate::quic::QuicShared::new(crypto, args.clone()).expect("quic config");
        let server_config: ServerConfig = (*shared.server).clone();
        let server_ep = Endpoint::new(
            Arc::new(EndpointConfig::default()),
            Some(Arc::new(server_config)),
            true,
            None,
        );
        let mut client_ep = Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None);
        let (client_handle, client) = client_ep
            .connect(now, client_config(alpn, version), SERVER, "localhost")
            .expect("client connect");
        let settings = ActorSettings {
            meeting: MeetingConfig::default(),
            session: SessionConfig::default(),
            binding_secret: BindingSecret::from_bytes(vec![7u8; 32]).expect("secret"),
            redirect_endpoint: None,
            mailbox: 64,
            join_timeout: args.join_timeout(),
            max_sessions_per_ip: 100,
            ipv6_client_prefix: 64,
            shard_outbound_max_bytes: crate::signaling::session::DEFAULT_SHARD_OUTBOUND_MAX,
        };
        let registry = Metrics::new();
        let fixtures = Fixtures {
            limits: args.h3_limits(),
            settings,
            verifier: ShardVerifier::new(
                KeyStore::new(Arc::new(Jwks::empty())),
                VerifierConfig::default(),
            ),
            metrics: ShardMetrics::new(&registry, 0),
            registry,
            meeting_cmds: Vec::new(),
            enable_echo: args.enable_echo,
            outbound_bytes: 0,
        };
        Self {
            now,
            server_ep,
            client_ep,
            server: None,
            client,
            client_handle,
            fixtures,
            drop_to_client: false,
            admit: true,
            server_drained: false,
            handshake_timeout: args.handshake_timeout(),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// Exchange packets until neither side has anything more to send (bounded).
    /// Time does not move.
    pub fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit(self.now, 1, &mut self.buf) {
                self.to_server
                    .push_back(BytesMut::from(&self.buf[..t.size]));
                self.buf.clear();
                moved = true;
            }
            self.client_endpoint_events();
            while let Some(d) = self.to_server.pop_front() {
                moved = true;
                self.server_datagram(d);
            }
            self.server_step();
            while let Some(d) = self.to_client.pop_front() {
                if self.drop_to_client {
                    continue;
                }
                moved = true;
                if let Some(DatagramEvent::ConnectionEvent(_, ev)) =
                    self.client_ep
                        .handle(self.now, SERVER, None, None, d, &mut self.buf)
                {
                    self.client.handle_event(ev);
                }
                self.buf.clear();
            }
            self.client_endpoint_events();
            if !moved {
                return;
            }
        }
    }

    /// Move the clock forward by `d`, firing what is due on both sides, then drive.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        if let Some((_, conn)) = self.server.as_mut() {
            let mut ctx = ctx(&mut self.fixtures, self.now);
            conn.handle_timeout(&mut ctx);
        }
        self.drive();
    }

    /// Hand the server's connection a command from its meeting (a frame, a close), as
    /// the shard does; nothing is sent until the next drive.
    pub fn deliver(&mut self, cmd: crate::actors::ConnCmd) {
        if let Some((_, conn)) = self.server.as_mut() {
            let mut ctx = ctx(&mut self.fixtures, self.now);
            conn.deliver(cmd, &mut ctx);
        }
    }

    /// The server's connection has been drained or was never created.
    pub fn server_closed(&self) -> bool {
        self.server
            .as_ref()
            .is_none_or(|(_, c)| c.quic.is_closed() || c.h3.is_closed())
    }

    fn client_endpoint_events(&mut self) {
        while let Some(ev) = self.client.poll_endpoint_events() {
            if let Some(back) = self.client_ep.handle_event(self.client_handle, ev) {
                self.client.handle_event(back);
            }
        }
    }

    fn server_datagram(&mut self, d: BytesMut) {
        self.buf.clear();
        match self
            .server_ep
            .handle(self.now, CLIENT, None, None, d, &mut self.buf)
        {
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.buf.clear();
                let (accepted, keys_at) = crate::quic::crypto::accept_noting_keys(
                    &mut self.server_ep,
                    incoming,
                    self.now,
                    &mut self.buf,
                );
                match accepted {
                    Ok((h, quic)) => {
                        let key = ConnKey {
                            shard: 0,
                            conn: h.0 as u64,
                        };
                        let mut conn = Conn::new(quic, key, self.now, self.handshake_timeout);
                        conn.keys_at = keys_at;
                        self.server = Some((h, conn));
                    }
                    Err(e) => {
                        if let Some(t) = e.response {
                            self.to_client
                                .push_back(BytesMut::from(&self.buf[..t.size]));
                        }
                    }
                }
            }
            Some(DatagramEvent::ConnectionEvent(h, ev)) => {
                if let Some((sh, conn)) = self.server.as_mut() {
                    if *sh == h {
                        conn.quic.handle_event(ev);
                        conn.events.take_from(&mut conn.quic);
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.to_client
                    .push_back(BytesMut::from(&self.buf[..t.size]));
            }
            None => {}
        }
        self.buf.clear();
    }

    fn server_step(&mut self) {
        let Some((handle, conn)) = self.server.as_mut() else {
            return;
        };
        let mut ctx = ctx(&mut self.fixtures, self.now);
        let admit = self.admit;
        conn.drive(&mut ctx, &mut |_| admit);
        while let Some(ev) = conn.quic.poll_endpoint_events() {
            self.server_drained |= ev.is_drained();
            if let Some(back) = self.server_ep.handle_event(*handle, ev) {
                conn.quic.handle_event(back);
            }
        }
        self.buf.clear();
        while let Some(t) = conn.quic.poll_transmit(self.now, 1, &mut self.buf) {
            self.to_client
                .push_back(BytesMut::from(&self.buf[..t.size]));
            self.buf.clear();
        }
    }
}

fn ctx(f: &mut Fixtures, now: Instant) -> ConnCtx<'_> {
    ConnCtx {
        now,
        shard: shards::ShardId(0),
        limits: &f.limits,
        settings: &f.settings,
        enable_echo: f.enable_echo,
        admitting: true,
        verifier: &mut f.verifier,
        meeting_cmds: &mut f.meeting_cmds,
        metrics: &mut f.metrics,
        outbound_bytes: &mut f.outbound_bytes,
    }
}

fn client_config(alpn: &[u8], version: u32) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).expect("quic client crypto");
    let mut config = ClientConfig::new(Arc::new(crypto));
    config.version(version);
    let mut transport = TransportConfig::default();
    transport.max_concurrent_uni_streams(VarInt::from_u32(16));
    transport.datagram_receive_buffer_size(Some(64 * 1024));
    config.transport_config(Arc::new(transport));
    config
}

/// The in-memory client trusts whatever certificate the in-memory server shows.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs `f` to completion on a small glommio executor on the calling thread: for unit
/// tests of code that needs glommio's reactor (its sockets and timers).
#[cfg(test)]
pub(crate) fn run_local<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    glommio::LocalExecutorBuilder::default()
        .io_memory(256 * 1024)
        .make()
        .unwrap()
        .run(f)
}

/// Bytes the server's QUIC takes on `conn`'s stream `id`, 1 KiB at a time, until it
/// blocks: what its send window (less what it already holds) and the client's credit
/// allow, nothing being acknowledged meanwhile.
pub fn write_until_blocked(conn: &mut Conn, id: quinn_proto::StreamId) -> u64 {
    let chunk = [0u8; 1024];
    let mut taken = 0;
    while let Ok(n) = conn.quic.send_stream(id).write(&chunk) {
        if n == 0 {
            break;
        }
        taken += n as u64;
    }
    taken
}

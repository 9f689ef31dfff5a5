//! A raw HTTP/3 and WebTransport client over quinn for tests that attack the server below
//! the signaling: every byte the client sends is the test's choice.
//!
//! - [`wire`]: varints (RFC 9000 §16), HTTP/3 frames (RFC 9114 §7), QPACK field sections
//!   (RFC 9204, static table and literals only), capsules (RFC 9297 §3) and the
//!   WebTransport stream headers (draft-ietf-webtrans-http3: bidi signal 0x41, uni stream
//!   type 0x54, both followed by the session id).
//! - [`Client`]: one QUIC connection with the client control stream (SETTINGS as Chromium
//!   sends them, or none), requests, WebTransport streams and HTTP datagrams; the
//!   server's uni streams are read in the background (its SETTINGS and GOAWAY kept).
//! - [`StreamReader`]: reads what the server sends on a request stream — HEADERS, DATA
//!   frames and the capsules inside them — with deadlines, telling FIN, reset and a lost
//!   connection apart.
//!
//! The server's certificate is trusted by its SHA-256 (the `cert.sha256` a `--dev`
//! server writes), the way Chromium's `serverCertificateHashes` trusts it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, VarInt};
use tokio::time::{timeout_at, Instant};

/// Wire encodings, byte for byte.
pub mod wire {
    /// HTTP/3 frame types (RFC 9114 §7.2).
    pub const DATA: u64 = 0x00;
    pub const HEADERS: u64 = 0x01;
    pub const SETTINGS: u64 = 0x04;
    pub const GOAWAY: u64 = 0x07;
    /// Uni stream types (RFC 9114 §6.2, draft-ietf-webtrans-http3 §4.1).
    pub const CONTROL_STREAM: u64 = 0x00;
    pub const PUSH_STREAM: u64 = 0x01;
    pub const WT_UNI_STREAM: u64 = 0x54;
    /// The signal value opening a WebTransport bidi stream.
    pub const WT_BIDI_SIGNAL: u64 = 0x41;
    /// Settings (RFC 9220 §3, RFC 9297 §2.1.1, draft-ietf-webtrans-http3-02 §3.1).
    pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    pub const SETTINGS_H3_DATAGRAM: u64 = 0x33;
    pub const SETTINGS_H3_DATAGRAM_DRAFT04: u64 = 0xffd277;
    pub const SETTINGS_ENABLE_WEBTRANSPORT: u64 = 0x2b60_3742;
    /// CLOSE_WEBTRANSPORT_SESSION capsule (draft-ietf-webtrans-http3 §5).
    pub const CLOSE_WEBTRANSPORT_SESSION: u64 = 0x2843;
    /// HTTP/3 error codes (RFC 9114 §8.1) and WebTransport's.
    pub const H3_NO_ERROR: u64 = 0x100;
    pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
    pub const H3_STREAM_CREATION_ERROR: u64 = 0x103;
    pub const H3_FRAME_ERROR: u64 = 0x106;
    pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
    pub const H3_ID_ERROR: u64 = 0x108;
    pub const H3_MESSAGE_ERROR: u64 = 0x10e;
    pub const WEBTRANSPORT_BUFFERED_STREAM_REJECTED: u64 = 0x3994_bd84;
    /// The largest varint (2^62 - 1).
    pub const VARINT_MAX: u64 = (1 << 62) - 1;

    /// RFC 9000 §16 variable-length integer, shortest form.
    pub fn varint(v: u64) -> Vec<u8> {
        assert!(v <= VARINT_MAX, "{v} is not a varint");
        if v < 1 << 6 {
            vec![v as u8]
        } else if v < 1 << 14 {
            (0x4000 | v as u16).to_be_bytes().to_vec()
        } else if v < 1 << 30 {
            (0x8000_0000 | v as u32).to_be_bytes().to_vec()
        } else {
            (0xc000_0000_0000_0000 | v).to_be_bytes().to_vec()
        }
    }

    /// Decode a varint from the front of `data`: (value, bytes used), or None if short.
    pub fn get_varint(data: &[u8]) -> Option<(u64, usize)> {
        let first = *data.first()?;
        let len = 1usize << (first >> 6);
        let bytes = data.get(..len)?;
        let v = bytes[1..]
            .iter()
            .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
        Some((v, len))
    }

    /// Frame header only: type and declared length (the payload follows separately).
    pub fn frame_header(frame_type: u64, len: u64) -> Vec<u8> {
        let mut out = varint(frame_type);
        out.extend(varint(len));
        out
    }

    /// A whole HTTP/3 frame.
    pub fn frame(frame_type: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = frame_header(frame_type, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    /// A SETTINGS frame.
    pub fn settings(pairs: &[(u64, u64)]) -> Vec<u8> {
        let payload: Vec<u8> = pairs
            .iter()
            .flat_map(|&(k, v)| {
                let mut kv = varint(k);
                kv.extend(varint(v));
                kv
            })
            .collect();
        frame(SETTINGS, &payload)
    }

    /// What Chromium's draft-02 client announces (chromium-webtransport notes).
    pub fn chromium_settings() -> Vec<u8> {
        settings(&[
            (SETTINGS_ENABLE_CONNECT_PROTOCOL, 1),
            (SETTINGS_H3_DATAGRAM, 1),
            (SETTINGS_H3_DATAGRAM_DRAFT04, 1),
            (SETTINGS_ENABLE_WEBTRANSPORT, 1),
        ])
    }

    /// A QPACK field section (RFC 9204 §4.5): static-table references and literals, no
    /// Huffman, no dynamic table.
    pub fn field_section(headers: &[(&str, &str)]) -> Vec<u8> {
        wtransport_proto::qpack::Encoder::encode(headers.iter().copied()).to_vec()
    }

    /// A HEADERS frame.
    pub fn headers(headers: &[(&str, &str)]) -> Vec<u8> {
        frame(HEADERS, &field_section(headers))
    }

    /// The extended CONNECT of a WebTransport session (RFC 9220 §3, draft-02 §3.2), as
    /// Chromium sends it.
    pub fn webtransport_connect(authority: &str, path: &str) -> Vec<u8> {
        headers(&[
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", path),
            ("origin", "http://127.0.0.1"),
            ("sec-webtransport-http3-draft02", "1"),
        ])
    }

    /// A capsule (RFC 9297 §3.2): type, length, value.
    pub fn capsule(capsule_type: u64, value: &[u8]) -> Vec<u8> {
        let mut out = varint(capsule_type);
        out.extend(varint(value.len() as u64));
        out.extend_from_slice(value);
        out
    }

    /// CLOSE_WEBTRANSPORT_SESSION's value: 32-bit code and reason.
    pub fn close_value(code: u32, reason: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(reason);
        v
    }

    /// A CLOSE_WEBTRANSPORT_SESSION capsule in one DATA frame.
    pub fn close_session(code: u32, reason: &[u8]) -> Vec<u8> {
        frame(
            DATA,
            &capsule(CLOSE_WEBTRANSPORT_SESSION, &close_value(code, reason)),
        )
    }

    /// The header of a WebTransport bidi stream.
    pub fn wt_bidi_header(session: u64) -> Vec<u8> {
        let mut out = varint(WT_BIDI_SIGNAL);
        out.extend(varint(session));
        out
    }

    /// The header of a WebTransport uni stream.
    pub fn wt_uni_header(session: u64) -> Vec<u8> {
        let mut out = varint(WT_UNI_STREAM);
        out.extend(varint(session));
        out
    }

    /// An HTTP datagram (RFC 9297 §2.1): quarter stream id, then the payload.
    pub fn datagram(session: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint(session / 4);
        out.extend_from_slice(payload);
        out
    }

    /// A signaling frame (signaling protocol: 4-byte big-endian length, then protobuf).
    pub fn signaling_frame(msg: &impl prost::Message) -> Vec<u8> {
        let body = msg.encode_to_vec();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }
}

/// How the client connects.
#[derive(Clone, Debug)]
pub struct Options {
    /// Open the control stream and send Chromium's SETTINGS right after the handshake.
    pub send_settings: bool,
    /// quinn keep-alive PINGs (keeps a connection that sends nothing else alive).
    pub keep_alive: Option<Duration>,
    pub idle_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            send_settings: true,
            keep_alive: None,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What the server sent on its uni streams.
#[derive(Debug, Default)]
pub struct PeerInfo {
    pub settings: Option<Vec<(u64, u64)>>,
    pub goaway: Option<u64>,
    pub uni_stream_types: Vec<u64>,
}

/// One raw HTTP/3 connection.
pub struct Client {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    /// The client control stream (type 0x00 and SETTINGS already written), if opened.
    pub control: Option<SendStream>,
    pub peer: Arc<Mutex<PeerInfo>>,
    pub addr: SocketAddr,
}

/// How a stream read ended without the wanted data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The server finished the stream (FIN).
    Fin,
    /// The server reset the stream with this code.
    Reset(u64),
    /// The connection is gone (application code if it was an application close).
    Lost(String, Option<u64>),
    /// Nothing came before the deadline.
    Timeout,
}

/// The application error code of a connection close, if it was one.
pub fn app_code(e: &ConnectionError) -> Option<u64> {
    match e {
        ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// A readable description of how a connection ended.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => format!(
            "application close 0x{:x} {:?}",
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason)
        ),
        other => other.to_string(),
    }
}

/// The certificate hash a `--dev` server wrote into its dev dir.
pub fn dev_cert_hash(dev_dir: &Path) -> [u8; 32] {
    let hex_text = std::fs::read_to_string(dev_dir.join("cert.sha256")).expect("cert.sha256");
    let bytes = hex::decode(hex_text.trim()).expect("cert.sha256 is hex");
    bytes.try_into().expect("cert.sha256 is 32 bytes")
}

/// Trusts exactly one certificate, by its SHA-256 (loopback tests only).
#[derive(Debug)]
struct HashVerifier {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for HashVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest as _;
        let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if got == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate hash does not match".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A quinn client endpoint on 127.0.0.1 trusting the certificate with hash `cert`.
pub fn endpoint(cert: [u8; 32], opts: &Options) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HashVerifier {
            sha256: cert,
            provider,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(opts.keep_alive)
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(opts.idle_timeout).expect("idle timeout"),
        ))
        .datagram_receive_buffer_size(Some(1 << 20));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(config);
    endpoint
}

impl Client {
    /// Handshake with `addr` (within 10 s) and, with `opts.send_settings`, open the
    /// control stream with Chromium's SETTINGS.
    pub async fn connect(
        addr: SocketAddr,
        cert: [u8; 32],
        opts: Options,
    ) -> Result<Client, String> {
        let endpoint = endpoint(cert, &opts);
        let connecting = endpoint
            .connect(addr, "localhost")
            .map_err(|e| format!("connect: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| format!("handshake: {e}"))?;
        let peer = Arc::new(Mutex::new(PeerInfo::default()));
        tokio::spawn(read_server_uni_streams(conn.clone(), peer.clone()));
        let mut client = Client {
            endpoint,
            conn,
            control: None,
            peer,
            addr,
        };
        if opts.send_settings {
            let mut control = client.open_uni(wire::CONTROL_STREAM).await?;
            control
                .write_all(&wire::chromium_settings())
                .await
                .map_err(|e| format!("SETTINGS: {e}"))?;
            client.control = Some(control);
        }
        Ok(client)
    }

    /// `:authority` for requests to this server.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Open a uni stream and write its type.
    pub async fn open_uni(&self, stream_type: u64) -> Result<SendStream, String> {
        let mut s = tokio::time::timeout(Duration::from_secs(5), self.conn.open_uni())
            .await
            .map_err(|_| "no uni stream credit within 5 s".to_string())?
            .map_err(|e| format!("open uni: {e}"))?;
        s.write_all(&wire::varint(stream_type))
            .await
            .map_err(|e| format!("write uni stream type: {e}"))?;
        Ok(s)
    }

    /// Open a bidi stream and write `first` on it (quinn tells the server about a stream
    /// only once something is written).
    pub async fn open_bi_with(&self, first: &[u8]) -> Result<(SendStream, RecvStream), String> {
        let (mut send, recv) = tokio::time::timeout(Duration::from_secs(5), self.conn.open_bi())
            .await
            .map_err(|_| "no bidi stream credit within 5 s (MAX_STREAMS not raised)".to_string())?
            .map_err(|e| format!("open bidi: {e}"))?;
        send.write_all(first)
            .await
            .map_err(|e| format!("write on a new bidi stream: {e}"))?;
        Ok((send, recv))
    }

    /// Send a WebTransport CONNECT to `path` (plus `extra` bytes in the same write) and
    /// read the response HEADERS.
    pub async fn webtransport(&self, path: &str, extra: &[u8]) -> Result<Session, String> {
        let mut first = wire::webtransport_connect(&self.authority(), path);
        first.extend_from_slice(extra);
        let (send, recv) = self.open_bi_with(&first).await?;
        let id = send.id().index() * 4;
        let mut reader = StreamReader::new(recv);
        let headers = reader
            .headers(Duration::from_secs(5))
            .await
            .map_err(|e| format!("CONNECT {path}: no response HEADERS: {e:?}"))?;
        let status = headers
            .get(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Session {
            id,
            status,
            send,
            reader,
        })
    }

    /// A WebTransport CONNECT that must be answered 200.
    pub async fn session(&self, path: &str) -> Session {
        let s = self
            .webtransport(path, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.status, 200, "CONNECT {path} answered {}", s.status);
        s
    }

    /// Open a WebTransport bidi stream of `session` and write `data` after its header.
    pub async fn wt_bidi(
        &self,
        session: u64,
        data: &[u8],
    ) -> Result<(SendStream, RecvStream), String> {
        let mut first = wire::wt_bidi_header(session);
        first.extend_from_slice(data);
        self.open_bi_with(&first).await
    }

    /// Open a WebTransport uni stream of `session`.
    pub async fn wt_uni(&self, session: u64) -> Result<SendStream, String> {
        let mut s = self.open_uni(wire::WT_UNI_STREAM).await?;
        s.write_all(&wire::varint(session))
            .await
            .map_err(|e| format!("write session id: {e}"))?;
        Ok(s)
    }

    /// Send an HTTP datagram of `session`.
    pub fn datagram(&self, session: u64, payload: &[u8]) -> Result<(), String> {
        self.conn
            .send_datagram(Bytes::from(wire::datagram(session, payload)))
            .map_err(|e| format!("send datagram: {e}"))
    }

    /// The next HTTP datagram within `wait`: (session id, payload).
    pub async fn recv_datagram(&self, wait: Duration) -> Option<(u64, Vec<u8>)> {
        let d = tokio::time::timeout(wait, self.conn.read_datagram())
            .await
            .ok()?
            .ok()?;
        let (quarter, used) = wire::get_varint(&d)?;
        Some((quarter * 4, d[used..].to_vec()))
    }

    /// Echo one WebTransport bidi stream of `session` (write, FIN, read to FIN) within
    /// 5 s; the bytes read back.
    pub async fn echo_stream(&self, session: u64, payload: &[u8]) -> Result<Vec<u8>, String> {
        let (mut send, recv) = self.wt_bidi(session, payload).await?;
        send.finish().map_err(|e| format!("finish: {e}"))?;
        let mut reader = StreamReader::new(recv);
        reader
            .read_to_end(Duration::from_secs(5))
            .await
            .map_err(|e| format!("echo stream read: {e:?}"))
    }

    /// Datagram echo of `session`: resend (datagrams are lossy) until the echo arrives,
    /// within `wait`. On failure, says what came back instead.
    pub async fn echo_datagram(
        &self,
        session: u64,
        payload: &[u8],
        wait: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        let mut other = Vec::new();
        while Instant::now() < deadline {
            self.datagram(session, payload)?;
            let poll_until = Instant::now() + Duration::from_millis(200);
            while let Some(left) = poll_until.checked_duration_since(Instant::now()) {
                match self.recv_datagram(left).await {
                    Some((s, p)) if s == session && p == payload => return Ok(()),
                    Some((s, p)) => {
                        other.push(format!("session {s}: {:?}", String::from_utf8_lossy(&p)))
                    }
                    None => break,
                }
            }
        }
        other.truncate(5);
        Err(format!(
            "no echo of a datagram of session {session} within {wait:?}; received instead: \
             {other:?}"
        ))
    }

    /// How the connection ended, if it does within `wait`.
    pub async fn closed_within(&self, wait: Duration) -> Option<ConnectionError> {
        tokio::time::timeout(wait, self.conn.closed()).await.ok()
    }

    /// Close from this side and let the endpoint send the close.
    pub async fn close(self) {
        self.conn.close(VarInt::from_u32(0x100), b"");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// An accepted (or refused) WebTransport CONNECT.
pub struct Session {
    /// The CONNECT stream id: the session id.
    pub id: u64,
    pub status: u16,
    pub send: SendStream,
    pub reader: StreamReader,
}

/// Reads the server's side of a request stream: frames, capsules, FIN, reset.
pub struct StreamReader {
    pub recv: RecvStream,
    buf: Vec<u8>,
    /// Bytes of the DATA frame in progress not yet moved into `capsules`.
    data_left: u64,
    /// The capsule data stream: DATA payloads, concatenated (RFC 9297 §3.1).
    capsules: Vec<u8>,
    ended: Option<End>,
    /// Bytes [`StreamReader::end`] read and dropped.
    pub discarded: usize,
}

impl StreamReader {
    pub fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            buf: Vec::new(),
            data_left: 0,
            capsules: Vec::new(),
            ended: None,
            discarded: 0,
        }
    }

    /// Read more into `buf` until `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        if let Some(end) = &self.ended {
            return Err(end.clone());
        }
        let mut chunk = [0u8; 16 * 1024];
        match timeout_at(deadline, self.recv.read(&mut chunk)).await {
            Err(_) => Err(End::Timeout),
            Ok(Ok(Some(n))) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Ok(None)) => {
                self.ended = Some(End::Fin);
                Err(End::Fin)
            }
            Ok(Err(e)) => {
                let end = match e {
                    ReadError::Reset(code) => End::Reset(code.into_inner()),
                    ReadError::ConnectionLost(c) => End::Lost(describe(&c), app_code(&c)),
                    other => End::Lost(other.to_string(), None),
                };
                self.ended = Some(end.clone());
                Err(end)
            }
        }
    }

    /// Everything up to FIN (raw bytes, no framing), within `wait`.
    pub async fn read_to_end(&mut self, wait: Duration) -> Result<Vec<u8>, End> {
        let deadline = Instant::now() + wait;
        loop {
            match self.fill(deadline).await {
                Ok(()) => {}
                Err(End::Fin) => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Raw bytes read so far and not consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Read at least `n` raw bytes within `wait`.
    pub async fn read_raw(&mut self, n: usize, wait: Duration) -> Result<Vec<u8>, End> {
        let deadline = Instant::now() + wait;
        while self.buf.len() < n {
            self.fill(deadline).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// The next complete frame (type, payload), within `wait`.
    pub async fn frame(&mut self, wait: Duration) -> Result<(u64, Vec<u8>), End> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((t, tl)) = wire::get_varint(&self.buf) {
                if let Some((len, ll)) = wire::get_varint(&self.buf[tl..]) {
                    let start = tl + ll;
                    if len <= 1 << 20 && self.buf.len() >= start + len as usize {
                        let payload = self.buf[start..start + len as usize].to_vec();
                        self.buf.drain(..start + len as usize);
                        return Ok((t, payload));
                    }
                }
            }
            self.fill(deadline).await?;
        }
    }

    /// The response HEADERS (decoded), within `wait`.
    pub async fn headers(&mut self, wait: Duration) -> Result<HashMap<String, String>, End> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (t, payload) = self.frame(left).await?;
            if t == wire::HEADERS {
                return wtransport_proto::qpack::Decoder::decode(&payload)
                    .map_err(|e| End::Lost(format!("undecodable HEADERS: {e}"), None));
            }
        }
    }

    /// The next capsule (type, value) on the capsule data stream, within `wait`. DATA
    /// frames are followed as they arrive (a capsule may span frames, a frame may be
    /// partial); other frames are skipped.
    pub async fn capsule(&mut self, wait: Duration) -> Result<(u64, Vec<u8>), End> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((t, tl)) = wire::get_varint(&self.capsules) {
                if let Some((len, ll)) = wire::get_varint(&self.capsules[tl..]) {
                    let start = tl + ll;
                    if self.capsules.len() as u64 >= start as u64 + len {
                        let value = self.capsules[start..start + len as usize].to_vec();
                        self.capsules.drain(..start + len as usize);
                        return Ok((t, value));
                    }
                }
            }
            if self.data_left > 0 && !self.buf.is_empty() {
                let n = (self.data_left as usize).min(self.buf.len());
                self.capsules.extend(self.buf.drain(..n));
                self.data_left -= n as u64;
                continue;
            }
            if self.data_left == 0 {
                if let Some((t, tl)) = wire::get_varint(&self.buf) {
                    if let Some((len, ll)) = wire::get_varint(&self.buf[tl..]) {
                        if t == wire::DATA {
                            self.buf.drain(..tl + ll);
                            self.data_left = len;
                            continue;
                        }
                        let whole = tl + ll + len as usize;
                        if self.buf.len() >= whole {
                            self.buf.drain(..whole);
                            continue;
                        }
                    }
                }
            }
            self.fill(deadline).await?;
        }
    }

    /// The code of the CLOSE_WEBTRANSPORT_SESSION capsule, skipping other capsules.
    pub async fn close_capsule(&mut self, wait: Duration) -> Result<(u32, Vec<u8>), End> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (t, value) = self.capsule(left).await?;
            if t == wire::CLOSE_WEBTRANSPORT_SESSION && value.len() >= 4 {
                let code = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                return Ok((code, value[4..].to_vec()));
            }
        }
    }

    /// Wait for the stream to end (FIN, reset or connection loss) within `wait`,
    /// discarding data.
    pub async fn end(&mut self, wait: Duration) -> End {
        let deadline = Instant::now() + wait;
        loop {
            match self.fill(deadline).await {
                Ok(()) => {
                    self.discarded += self.buf.len();
                    self.buf.clear();
                }
                Err(e) => return e,
            }
        }
    }
}

/// Read every server uni stream: the control stream's SETTINGS and GOAWAY are kept, the
/// rest (QPACK streams, grease) is drained.
async fn read_server_uni_streams(conn: quinn::Connection, peer: Arc<Mutex<PeerInfo>>) {
    while let Ok(recv) = conn.accept_uni().await {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut reader = StreamReader::new(recv);
            let far = Duration::from_secs(3600);
            let Ok(first) = reader.read_raw(1, far).await else {
                return;
            };
            let mut head = first;
            let len = 1usize << (head[0] >> 6);
            if len > 1 {
                match reader.read_raw(len - 1, far).await {
                    Ok(rest) => head.extend(rest),
                    Err(_) => return,
                }
            }
            let Some((stream_type, _)) = wire::get_varint(&head) else {
                return;
            };
            if let Ok(mut p) = peer.lock() {
                p.uni_stream_types.push(stream_type);
            }
            if stream_type != wire::CONTROL_STREAM {
                let _ = reader.end(far).await;
                return;
            }
            while let Ok((t, payload)) = reader.frame(far).await {
                let Ok(mut p) = peer.lock() else { return };
                match t {
                    wire::SETTINGS => {
                        let mut pairs = Vec::new();
                        let mut rest = &payload[..];
                        while let Some((k, kl)) = wire::get_varint(rest) {
                            let Some((v, vl)) = wire::get_varint(&rest[kl..]) else {
                                break;
                            };
                            pairs.push((k, v));
                            rest = &rest[kl + vl..];
                        }
                        p.settings = Some(pairs);
                    }
                    wire::GOAWAY => p.goaway = wire::get_varint(&payload).map(|(v, _)| v),
                    _ => {}
                }
            }
        });
    }
}

/// Write `data` on `send` repeatedly until `budget` bytes are written or `within`
/// passes (blocked writes are expected: the server's flow control decides). Returns the
/// bytes the server's flow control accepted.
pub async fn stuff(send: &mut SendStream, budget: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut written = 0;
    while written < budget {
        let n = chunk.len().min(budget - written);
        match timeout_at(deadline, send.write(&chunk[..n])).await {
            Ok(Ok(w)) => written += w,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    written
}

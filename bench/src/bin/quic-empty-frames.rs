//! `quic-empty-frames`: QUIC packets full of STREAM frames that carry no byte, sent on a
//! connection the client opened properly, to compare from build to build what such
//! packets cost the server (its CPU per packet, and the memory it keeps).
//!
//! Each connection completes its handshake with quinn-proto (ALPN `h3`, the server's
//! certificate trusted by its SHA-256 in the dev directory), opens bidirectional stream 0
//! and writes one byte on it (the first byte of a two-byte frame type, so that the
//! server keeps waiting for the second). From then on the client seals its own 1-RTT
//! packets with the keys of its TLS session (learnt through rustls's key log): each is
//! `--frames` STREAM frames `0a 00 00` (stream 0, no offset, length 0), 3 bytes each,
//! under packet numbers far above the handshake's. The server reads every packet: the
//! frames are valid and bring nothing new. Prints the packets and frames sent;
//! `bench/results/*-empty-stream-frames/run.sh` reads the server's CPU time and RSS
//! around the run.
//!
//! With `--mode bytes` each frame brings one new byte instead, on the client's HTTP/3
//! control stream (stream 2): it opens with SETTINGS and then a frame of a reserved type
//! whose length (2^30 - 1) covers everything sent after it, so the server reads every
//! byte and skips it, one chunk per frame: `0e 02 <4-byte offset> 01 00`, 8 bytes each.
//! The stream's flow control moves with the server's reads: the rate must leave the
//! server time to read (`--rate`), or it closes the connection.
//!
//!   quic-empty-frames --target 127.0.0.1:4433 --dev-dir DIR --secs 3

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{ClientConfig, DatagramEvent, Dir, Endpoint, EndpointConfig, Event};
use ring::aead::{self, quic as hp, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// mc-service's connection IDs are 8 bytes (`src/quic/cid.rs`).
const SERVER_CID_LEN: usize = 8;
/// A STREAM frame with a length field (type 0x0a): stream 0, length 0.
const EMPTY_FRAME: [u8; 3] = [0x0a, 0x00, 0x00];
/// What the client's datagrams stay within.
const DATAGRAM: usize = 1200;
/// AES-GCM's tag.
const TAG: usize = 16;

#[derive(Parser, Debug)]
#[command(about = "Send QUIC packets full of empty STREAM frames on an open stream")]
struct Args {
    /// The server's WebTransport UDP address (loopback only).
    #[arg(long, default_value = "127.0.0.1:4433")]
    target: SocketAddr,
    /// mc-service dev directory: its cert.sha256 is trusted.
    #[arg(long)]
    dev_dir: PathBuf,
    /// Seconds of sending on each connection.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Connections, one after another.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Empty frames per packet (0: as many as fit in a 1,200-byte datagram).
    #[arg(long, default_value_t = 0)]
    frames: usize,
    /// Packets per second on each connection (0: as fast as the socket takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// `empty`: empty frames on stream 0; `bytes`: one new byte per frame on the
    /// control stream.
    #[arg(long, default_value = "empty")]
    mode: Mode,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Empty,
    Bytes,
}

/// The control stream's first bytes: its type (0x00), an empty SETTINGS frame, then
/// the header of a reserved frame (type 0x21) of length 2^30 - 1.
const CONTROL_PREAMBLE: [u8; 8] = [0x00, 0x04, 0x00, 0x21, 0xbf, 0xff, 0xff, 0xff];
/// A STREAM frame with offset and length (type 0x0e) on stream 2, before its 4-byte
/// offset.
const BYTE_FRAME_HEAD: [u8; 2] = [0x0e, 0x02];
/// Its length (1) and its byte.
const BYTE_FRAME_TAIL: [u8; 2] = [0x01, 0x00];
const BYTE_FRAME: usize = BYTE_FRAME_HEAD.len() + 4 + BYTE_FRAME_TAIL.len();

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.target.ip().is_loopback() {
        bail!("--target must be a loopback address");
    }
    let hash = std::fs::read_to_string(args.dev_dir.join("cert.sha256"))
        .context("reading cert.sha256 in --dev-dir")?;
    let hash = hex::decode(hash.trim().replace(':', "")).context("cert.sha256 is not hex")?;
    let (mut packets, mut frames) = (0u64, 0u64);
    for _ in 0..args.conns {
        let (p, f) = attack(&args, &hash)?;
        packets += p;
        frames += f;
    }
    println!("packets {packets} frames {frames}");
    Ok(())
}

/// One connection: handshake, stream 0 opened, then sealed packets of empty frames.
fn attack(args: &Args, cert_hash: &[u8]) -> Result<(u64, u64)> {
    let secrets = Arc::new(KeyLog::default());
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(args.target)?;
    let mut client = Client::connect(&socket, args.target, cert_hash, secrets.clone())?;
    if args.mode == Mode::Empty {
        let stream = client
            .conn
            .streams()
            .open(Dir::Bi)
            .ok_or(anyhow!("no stream credit"))?;
        // The first byte of a two-byte varint: the server waits for the frame type's rest.
        client.conn.send_stream(stream).write(&[0x40])?;
    } else {
        let stream = client
            .conn
            .streams()
            .open(Dir::Uni)
            .ok_or(anyhow!("no uni stream credit"))?;
        if u64::from(stream) != 2 {
            bail!("the control stream is {stream}, not 2");
        }
        client.conn.send_stream(stream).write(&CONTROL_PREAMBLE)?;
    }
    client.run(&socket, Duration::from_millis(200), |_| false)?;
    let dcid = client
        .server_cid
        .ok_or(anyhow!("no short-header packet seen"))?;
    let secret = secrets
        .client_traffic()
        .ok_or(anyhow!("no CLIENT_TRAFFIC_SECRET_0 in the key log"))?;
    let keys = PacketKeys::new(&secret)?;
    let frame_len = match args.mode {
        Mode::Empty => EMPTY_FRAME.len(),
        Mode::Bytes => BYTE_FRAME,
    };
    let per_packet = if args.frames > 0 {
        args.frames
    } else {
        (DATAGRAM - 1 - SERVER_CID_LEN - 4 - TAG) / frame_len
    };
    let mut payload: Vec<u8> = match args.mode {
        Mode::Empty => EMPTY_FRAME.repeat(per_packet),
        Mode::Bytes => Vec::with_capacity(per_packet * BYTE_FRAME),
    };
    // The next offset on the control stream: its preamble went first.
    let mut offset = CONTROL_PREAMBLE.len() as u32;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.secs);
    let gap = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut pn: u32 = 1 << 20;
    let mut sent = 0u64;
    let mut packet = Vec::with_capacity(DATAGRAM);
    while Instant::now() < until {
        if args.mode == Mode::Bytes {
            payload.clear();
            for _ in 0..per_packet {
                payload.extend_from_slice(&BYTE_FRAME_HEAD);
                payload.extend_from_slice(&(0x8000_0000 | offset).to_be_bytes());
                payload.extend_from_slice(&BYTE_FRAME_TAIL);
                offset += 1;
            }
        }
        keys.seal(&mut packet, &dcid, pn, &payload)?;
        // A full socket buffer drops the datagram, as the network would.
        let _ = socket.send(&packet);
        pn += 1;
        sent += 1;
        if let Some(gap) = gap {
            let next = started + gap * (sent as u32);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok((sent, sent * per_packet as u64))
}

/// The 1-RTT keys of the client's direction (RFC 9001 §5.1), for AES-128-GCM.
struct PacketKeys {
    key: LessSafeKey,
    iv: [u8; 12],
    hp: hp::HeaderProtectionKey,
}

impl PacketKeys {
    fn new(secret: &[u8]) -> Result<Self> {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
        let key = expand_label(&prk, b"quic key", 16)?;
        let iv = expand_label(&prk, b"quic iv", 12)?;
        let hp_key = expand_label(&prk, b"quic hp", 16)?;
        let key = UnboundKey::new(&aead::AES_128_GCM, &key).map_err(|_| anyhow!("packet key"))?;
        let hp = hp::HeaderProtectionKey::new(&hp::AES_128, &hp_key)
            .map_err(|_| anyhow!("header protection key"))?;
        let mut iv12 = [0u8; 12];
        iv12.copy_from_slice(&iv);
        Ok(Self {
            key: LessSafeKey::new(key),
            iv: iv12,
            hp,
        })
    }

    /// A short-header packet to `dcid` with packet number `pn` (4 bytes, key phase 0)
    /// carrying `payload`, sealed and header-protected (RFC 9001 §5.3, §5.4).
    fn seal(&self, out: &mut Vec<u8>, dcid: &[u8], pn: u32, payload: &[u8]) -> Result<()> {
        out.clear();
        out.push(0x40 | 0x03);
        out.extend_from_slice(dcid);
        let pn_at = out.len();
        out.extend_from_slice(&pn.to_be_bytes());
        let header_len = out.len();
        out.extend_from_slice(payload);
        let mut nonce = self.iv;
        for (n, p) in nonce[4..].iter_mut().zip(u64::from(pn).to_be_bytes()) {
            *n ^= p;
        }
        let (header, body) = out.split_at_mut(header_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*header),
                body,
            )
            .map_err(|_| anyhow!("seal"))?;
        out.extend_from_slice(tag.as_ref());
        let sample = &out[pn_at + 4..pn_at + 4 + 16];
        let mask = self.hp.new_mask(sample).map_err(|_| anyhow!("mask"))?;
        out[0] ^= mask[0] & 0x1f;
        for (b, m) in out[pn_at..pn_at + 4].iter_mut().zip(&mask[1..]) {
            *b ^= m;
        }
        Ok(())
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1).
fn expand_label(prk: &hkdf::Prk, label: &[u8], len: usize) -> Result<Vec<u8>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let full = [b"tls13 ".as_slice(), label].concat();
    let info = [
        &(len as u16).to_be_bytes()[..],
        &[full.len() as u8][..],
        &full[..],
        &[0u8][..],
    ];
    let okm = prk.expand(&info, Len(len)).map_err(|_| anyhow!("hkdf"))?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).map_err(|_| anyhow!("hkdf fill"))?;
    Ok(out)
}

/// rustls's key log: the client's 1-RTT traffic secret.
#[derive(Default, Debug)]
struct KeyLog(Mutex<Option<Vec<u8>>>);

impl KeyLog {
    fn client_traffic(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.clone()
    }
}

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "CLIENT_TRAFFIC_SECRET_0" {
            if let Ok(mut s) = self.0.lock() {
                *s = Some(secret.to_vec());
            }
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == "CLIENT_TRAFFIC_SECRET_0"
    }
}

/// Trusts the one certificate whose SHA-256 it holds, as a browser's
/// serverCertificateHashes does.
#[derive(Debug)]
struct ByHash {
    hash: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for ByHash {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if digest.as_ref() == self.hash.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate hash differs".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not QUIC".into()))
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A quinn-proto client connection driven over a blocking socket.
struct Client {
    endpoint: Endpoint,
    conn: quinn_proto::Connection,
    handle: quinn_proto::ConnectionHandle,
    /// The destination CID of the client's last short-header packet.
    server_cid: Option<Vec<u8>>,
}

impl Client {
    fn connect(
        socket: &UdpSocket,
        server: SocketAddr,
        cert_hash: &[u8],
        keylog: Arc<KeyLog>,
    ) -> Result<Self> {
        let mut provider = rustls::crypto::ring::default_provider();
        // AES-128-GCM only: the keys above are for it.
        provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
        let provider = Arc::new(provider);
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ByHash {
                hash: cert_hash.to_vec(),
                provider,
            }))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.key_log = keylog;
        let config = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
        let mut endpoint = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
        let (handle, conn) = endpoint.connect(Instant::now(), config, server, "localhost")?;
        let mut client = Self {
            endpoint,
            conn,
            handle,
            server_cid: None,
        };
        let mut connected = false;
        client.run(socket, Duration::from_secs(5), |e| {
            connected |= matches!(e, Event::Connected);
            connected
        })?;
        if !connected {
            bail!("no handshake within 5 s");
        }
        Ok(client)
    }

    /// Send, receive and time out for `max`, or until `done` says so of an event.
    fn run(
        &mut self,
        socket: &UdpSocket,
        max: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Result<()> {
        let until = Instant::now() + max;
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(DATAGRAM);
        while Instant::now() < until {
            let now = Instant::now();
            while let Some(t) = self.conn.poll_transmit(now, 1, &mut out) {
                let datagram = &out[..t.size];
                if datagram[0] & 0x80 == 0 && datagram.len() > SERVER_CID_LEN {
                    self.server_cid = Some(datagram[1..1 + SERVER_CID_LEN].to_vec());
                }
                socket.send(datagram)?;
                out.clear();
            }
            while let Some(e) = self.conn.poll() {
                if let Event::ConnectionLost { reason } = &e {
                    bail!("connection lost: {reason}");
                }
                if done(&e) {
                    return Ok(());
                }
            }
            let wait = self
                .conn
                .poll_timeout()
                .map_or(Duration::from_millis(5), |t| {
                    t.saturating_duration_since(now)
                })
                .clamp(Duration::from_micros(100), Duration::from_millis(5));
            socket.set_read_timeout(Some(wait))?;
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let now = Instant::now();
                    let data = bytes::BytesMut::from(&buf[..n]);
                    let mut response = Vec::new();
                    let from = socket.peer_addr()?;
                    if let Some(DatagramEvent::ConnectionEvent(_, ev)) =
                        self.endpoint
                            .handle(now, from, None, None, data, &mut response)
                    {
                        self.conn.handle_event(ev);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
            if self
                .conn
                .poll_timeout()
                .is_some_and(|t| t <= Instant::now())
            {
                self.conn.handle_timeout(Instant::now());
            }
            while let Some(ev) = self.conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(self.handle, ev) {
                    self.conn.handle_event(back);
                }
            }
        }
        Ok(())
    }
}

//! The TLS side of each connection: rustls's QUIC server session behind quinn-proto's
//! `crypto::Session`.
//!
//! quinn-proto ships the same glue; this one exists for one more thing it does: it
//! notes where a connection's 1-RTT keys live on the heap ([`KeyLines`]), so that the
//! loops walking many connections can start fetching them with the connection's own
//! state. Each key sits two heap objects away from the connection (quinn-proto's box,
//! then rustls's key inside it), cold again by the time a fan-out comes back to that
//! connection: the functions that first load them held 7.5 % of a fan-out's profile
//! before these prefetches and 1.0 % after (`tuning.md`, the cache row). Everything else is rustls's and quinn-proto's: the
//! handshake and key schedule are rustls's, the keys' packet code is quinn-proto's
//! (its `PacketKey` and `HeaderKey` for rustls's boxed keys), and so are the Initial
//! keys, Retry tags and the sessions of the draft versions quinn-proto still accepts
//! (only QUIC version 1 runs here).

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use quinn_proto::crypto::rustls::{HandshakeData, QuicServerConfig};
use quinn_proto::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{
    AcceptError, Connection as QuicConnection, ConnectionHandle, ConnectionId, Endpoint, Incoming,
    Side, TransportError, TransportErrorCode,
};
use rustls::pki_types::CertificateDer;
use rustls::quic::{
    Connection, DirectionalKeys, KeyChange, Secrets, ServerConnection, Suite, Version,
};

/// The one QUIC version whose sessions run here (RFC 9000).
const QUIC_V1: u32 = 1;

/// The server side's TLS configuration for quinn-proto, shared by every shard.
pub struct ServerCrypto {
    tls: Arc<rustls::ServerConfig>,
    /// quinn-proto's configuration over the same rustls one: Initial keys, Retry
    /// integrity tags, and the sessions of versions other than 1.
    quinn: Arc<QuicServerConfig>,
    /// The suite Initial packets are protected with (RFC 9001 §5.2: AES-128-GCM).
    initial: Suite,
}

impl ServerCrypto {
    /// Fails on a configuration QUIC cannot use (no TLS 1.3, no AES-128-GCM suite, an
    /// early data size other than 0 or 2³² − 1): here, once, rather than at the first
    /// client.
    pub fn new(tls: rustls::ServerConfig) -> Result<Self, String> {
        let tls = Arc::new(tls);
        let quinn = QuicServerConfig::try_from(tls.clone()).map_err(|e| e.to_string())?;
        let initial = tls
            .crypto_provider()
            .cipher_suites
            .iter()
            .filter(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
            .find_map(|s| s.tls13()?.quic_suite())
            .ok_or("no AES-128-GCM-SHA256 suite for QUIC's Initial packets")?;
        ServerConnection::new(tls.clone(), Version::V1, Vec::new()).map_err(|e| e.to_string())?;
        Ok(Self {
            tls,
            quinn: Arc::new(quinn),
            initial,
        })
    }
}

impl crypto::ServerConfig for ServerCrypto {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.quinn.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.quinn.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        if version != QUIC_V1 {
            return self.quinn.clone().start_session(version, params);
        }
        let mut encoded = Vec::new();
        params.write(&mut encoded);
        // What could refuse a session is the configuration, which `new` checked.
        let tls = ServerConnection::new(self.tls.clone(), Version::V1, encoded)
            .expect("ServerCrypto::new made a session with this configuration");
        let keys = Arc::new(KeysAt::default());
        STARTED.set(Some(keys.clone()));
        Box::new(Session {
            tls: Connection::Server(tls),
            initial: self.initial,
            next: None,
            upcoming: None,
            told_handshake_data: false,
            keys,
        })
    }
}

thread_local! {
    /// Where the session started last on this thread will note its keys: quinn-proto
    /// starts it inside `Endpoint::accept`, which [`accept_noting_keys`] wraps.
    static STARTED: Cell<Option<Arc<KeysAt>>> = const { Cell::new(None) };
}

/// What quinn-proto's `Endpoint::accept` returns: the new connection, or why not.
pub type Accepted = Result<(ConnectionHandle, QuicConnection), AcceptError>;

/// quinn-proto's `Endpoint::accept`, returning with its result where the session it
/// started will note its 1-RTT keys: `None` for a session of another QUIC version, or
/// when none started.
pub fn accept_noting_keys(
    endpoint: &mut Endpoint,
    incoming: Incoming,
    now: Instant,
    buf: &mut Vec<u8>,
) -> (Accepted, Option<Arc<KeysAt>>) {
    STARTED.take();
    let accepted = endpoint.accept(incoming, now, buf, None);
    (accepted, STARTED.take())
}

/// Where a session's 1-RTT keys live now, written by the session (as the handshake makes
/// them and as key updates replace the packet keys) and copied by its connection
/// ([`KeysAt::get`]). All zero until the handshake makes them.
#[derive(Default, Debug)]
pub struct KeysAt([AtomicUsize; 16]);

impl KeysAt {
    pub fn get(&self) -> KeyLines {
        let span = |i: usize| Span {
            addr: self.0[2 * i].load(Ordering::Relaxed),
            len: self.0[2 * i + 1].load(Ordering::Relaxed),
        };
        KeyLines {
            send: [span(0), span(1), span(2), span(3)],
            receive: [span(4), span(5), span(6), span(7)],
        }
    }

    fn set(&self, i: usize, span: Span) {
        self.0[2 * i].store(span.addr, Ordering::Relaxed);
        self.0[2 * i + 1].store(span.len, Ordering::Relaxed);
    }

    fn set_all(&self, lines: &KeyLines) {
        for (i, span) in lines.send.iter().chain(&lines.receive).enumerate() {
            self.set(i, *span);
        }
    }

    /// New packet keys in use (a key update): the header keys stay.
    fn set_packet_keys(&self, send: [Span; 2], receive: [Span; 2]) {
        for (i, span) in [(2, send[0]), (3, send[1]), (6, receive[0]), (7, receive[1])] {
            self.set(i, span);
        }
    }
}

/// Where one connection's 1-RTT keys live: for each direction the header protection key
/// and the packet key, each as quinn-proto's box and the rustls key inside it. Between a
/// key update and the connection's next copy ([`KeysAt::get`]) the packet keys named
/// here are the ones just retired: fetching them is wasted, not wrong (a prefetch
/// reads nothing).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct KeyLines {
    /// The keys that seal what the connection sends.
    pub send: [Span; 4],
    /// The keys that open what it receives.
    pub receive: [Span; 4],
}

/// `len` bytes at address `addr`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Span {
    pub addr: usize,
    pub len: usize,
}

impl Span {
    fn of<T: ?Sized>(value: &T) -> Self {
        Self {
            addr: (value as *const T).cast::<u8>() as usize,
            len: std::mem::size_of_val(value),
        }
    }
}

/// rustls's keys in quinn-proto's boxes, with where each lives.
fn boxed(keys: rustls::quic::Keys) -> (Keys, KeyLines) {
    let (send, local_header, local_packet) = boxed_direction(keys.local);
    let (receive, remote_header, remote_packet) = boxed_direction(keys.remote);
    let keys = Keys {
        header: KeyPair {
            local: local_header,
            remote: remote_header,
        },
        packet: KeyPair {
            local: local_packet,
            remote: remote_packet,
        },
    };
    (keys, KeyLines { send, receive })
}

fn boxed_direction(keys: DirectionalKeys) -> ([Span; 4], Box<dyn HeaderKey>, Box<dyn PacketKey>) {
    // The rustls keys' heap objects do not move when their boxes move into quinn-proto's.
    let header_key = Span::of(&*keys.header);
    let header: Box<dyn HeaderKey> = Box::new(keys.header);
    let (packet, packet_spans) = boxed_packet_key(keys.packet);
    let spans = [
        Span::of(&*header),
        header_key,
        packet_spans[0],
        packet_spans[1],
    ];
    (spans, header, packet)
}

fn boxed_packet_key(key: Box<dyn rustls::quic::PacketKey>) -> (Box<dyn PacketKey>, [Span; 2]) {
    let inner = Span::of(&*key);
    let boxed: Box<dyn PacketKey> = Box::new(key);
    let spans = [Span::of(&*boxed), inner];
    (boxed, spans)
}

struct Session {
    /// Always the server side (rustls's enum is what exports keying material).
    tls: Connection,
    initial: Suite,
    /// The secrets of the next 1-RTT key phase, from the handshake's last keys on.
    next: Option<Secrets>,
    /// Where the packet keys of the next key phase live (send, receive), made ahead of
    /// their use: quinn-proto asks for the phase after next as it moves to the next.
    upcoming: Option<([Span; 2], [Span; 2])>,
    /// `read_handshake` has reported the client's hello as read.
    told_handshake_data: bool,
    keys: Arc<KeysAt>,
}

impl Session {
    fn server_name(&self) -> Option<&str> {
        match &self.tls {
            Connection::Server(tls) => tls.server_name(),
            Connection::Client(_) => None,
        }
    }
}

impl crypto::Session for Session {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        boxed(self.initial.keys(dst_cid, side.into(), Version::V1)).0
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.told_handshake_data.then(|| -> Box<dyn Any> {
            Box::new(HandshakeData {
                protocol: self.tls.alpn_protocol().map(<[u8]>::to_vec),
                server_name: self.server_name().map(str::to_owned),
            })
        })
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.tls.peer_certificates().map(|certs| -> Box<dyn Any> {
            Box::new(
                certs
                    .iter()
                    .map(|c| c.clone().into_owned())
                    .collect::<Vec<CertificateDer<'static>>>(),
            )
        })
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        let keys = self.tls.zero_rtt_keys()?;
        Some((Box::new(keys.header), Box::new(keys.packet)))
    }

    fn early_data_accepted(&self) -> Option<bool> {
        // A client's question (did the server take its 0-RTT data?).
        None
    }

    fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        if let Err(e) = self.tls.read_hs(buf) {
            // RFC 9001 §4.8: a TLS alert closes the connection with 0x100 + its code.
            return Err(match self.tls.alert() {
                Some(alert) => TransportError {
                    code: TransportErrorCode::crypto(alert.into()),
                    frame: None,
                    reason: e.to_string(),
                },
                None => TransportError {
                    code: TransportErrorCode::PROTOCOL_VIOLATION,
                    frame: None,
                    reason: format!("TLS error: {e}"),
                },
            });
        }
        // rustls says nothing when the client's hello has been read; the server name,
        // the negotiated ALPN or the end of the handshake show it.
        if !self.told_handshake_data
            && (self.server_name().is_some()
                || self.tls.alpn_protocol().is_some()
                || !self.tls.is_handshaking())
        {
            self.told_handshake_data = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        let Some(mut encoded) = self.tls.quic_transport_parameters() else {
            return Ok(None);
        };
        Ok(Some(TransportParameters::read(Side::Server, &mut encoded)?))
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        match self.tls.write_hs(buf)? {
            KeyChange::Handshake { keys } => Some(boxed(keys).0),
            KeyChange::OneRtt { keys, next } => {
                self.next = Some(next);
                let (keys, lines) = boxed(keys);
                self.keys.set_all(&lines);
                Some(keys)
            }
        }
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        let keys = self.next.as_mut()?.next_packet_keys();
        let (local, send) = boxed_packet_key(keys.local);
        let (remote, receive) = boxed_packet_key(keys.remote);
        // The first call comes with the handshake's keys; each later one with a key
        // update, which puts the keys made by the call before in use.
        if let Some((send, receive)) = self.upcoming.replace((send, receive)) {
            self.keys.set_packet_keys(send, receive);
        }
        Some(KeyPair { local, remote })
    }

    fn is_valid_retry(&self, _: &ConnectionId, _: &[u8], _: &[u8]) -> bool {
        // Only a client receives Retry packets (RFC 9000 §17.2.5); a server has none to
        // accept.
        false
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.tls
            .export_keying_material(output, label, Some(context))
            .map(|_| ())
            .map_err(|_| ExportKeyingMaterialError)
    }
}

#[cfg(test)]
mod tests;

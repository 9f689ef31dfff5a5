//! [`WtSession`]: one accepted WebTransport session, as the lead's code (and the echo
//! handler) uses it — accept bidi streams, read/write/finish them, datagrams, close
//! with an application code, and learn how the session ended.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h3::quic::{RecvStream as _, SendStream as _, SendStreamUnframed as _};
use h3_datagram::datagram_handler::{DatagramReader, DatagramSender};
use h3_webtransport::server::{AcceptedBi, WebTransportSession};
use quinn_proto::{ConnectionError, VarInt};

use super::h3quic::{H3Conn, H3Datagrams, H3Recv, H3Send};
use super::{ConnectInfo, WtError};
use crate::quic::ConnRef;

/// HTTP/3 H3_NO_ERROR (RFC 9114 §8.1): the QUIC close after a session close.
pub const H3_NO_ERROR: u64 = 0x100;
/// CLOSE_WEBTRANSPORT_SESSION capsule type (draft-ietf-webtrans-http3 §5).
const CLOSE_WEBTRANSPORT_SESSION: u64 = 0x2843;

/// How a session ended. The meeting logic treats these differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// This side closed it with [`WtSession::close`] and this code.
    Local { code: u32 },
    /// The peer ended the session: its CLOSE_WEBTRANSPORT_SESSION code (a FIN on the
    /// CONNECT stream counts as code 0), or else the HTTP/3 application code it closed
    /// the connection with. `clean` for 0 and H3_NO_ERROR (0x100).
    PeerClosed { code: u64, clean: bool },
    /// No packets from the peer for the idle timeout (RFC 9000 §10.1).
    IdleTimeout,
    /// The peer reset the connection (stateless reset, RFC 9000 §10.3).
    Reset,
    /// A transport or protocol error.
    Error(String),
}

impl SessionEnd {
    fn from_conn(e: &ConnectionError, local: Option<u32>, peer: Option<u32>) -> Self {
        if let Some(code) = local {
            return Self::Local { code };
        }
        if let Some(code) = peer {
            return Self::PeerClosed {
                code: code.into(),
                clean: code == 0,
            };
        }
        match e {
            ConnectionError::ApplicationClosed(c) => {
                let code = c.error_code.into_inner();
                Self::PeerClosed {
                    code,
                    clean: code == H3_NO_ERROR || code == 0,
                }
            }
            ConnectionError::TimedOut => Self::IdleTimeout,
            ConnectionError::Reset => Self::Reset,
            ConnectionError::LocallyClosed => Self::Local { code: 0 },
            other => Self::Error(other.to_string()),
        }
    }
}

pub(crate) struct SessionInner {
    wt: WebTransportSession<H3Conn, Bytes>,
    conn: ConnRef,
    /// The CONNECT stream: the session id (draft-ietf-webtrans-http3 §2).
    connect_stream: u64,
    info: ConnectInfo,
    datagrams_out: RefCell<DatagramSender<H3Datagrams, Bytes>>,
    datagrams_in: RefCell<Option<DatagramReader<H3Datagrams>>>,
    closed_with: RefCell<Option<u32>>,
    /// The peer's CLOSE_WEBTRANSPORT_SESSION code (0 for a bare FIN).
    peer_closed: Rc<Cell<Option<u32>>>,
}

/// One WebTransport session. Clone it to use it from several tasks of the shard.
#[derive(Clone)]
pub struct WtSession(pub(crate) Rc<SessionInner>);

impl WtSession {
    pub(crate) fn new(
        wt: WebTransportSession<H3Conn, Bytes>,
        conn: ConnRef,
        info: ConnectInfo,
    ) -> Self {
        let connect_stream = h3::quic::StreamId::from(wt.session_id()).into_inner();
        let datagrams_out = RefCell::new(wt.datagram_sender());
        let datagrams_in = RefCell::new(Some(wt.datagram_reader()));
        let peer_closed = Rc::new(Cell::new(None));
        glommio::spawn_local(watch_connect_stream(
            conn.clone(),
            connect_stream,
            peer_closed.clone(),
        ))
        .detach();
        Self(Rc::new(SessionInner {
            wt,
            conn,
            connect_stream,
            info,
            datagrams_out,
            datagrams_in,
            closed_with: RefCell::new(None),
            peer_closed,
        }))
    }

    /// The CONNECT request that opened the session.
    pub fn info(&self) -> &ConnectInfo {
        &self.0.info
    }

    pub fn peer(&self) -> SocketAddr {
        self.0.info.peer
    }

    /// The next bidi stream the client opens; `Ok(None)` once the session has ended
    /// (see [`WtSession::ended`] for how).
    pub async fn accept_bi(&self) -> Result<Option<WtStream>, WtError> {
        loop {
            if self.ended().is_some() {
                return Ok(None);
            }
            match self.0.wt.accept_bi().await {
                Ok(Some(AcceptedBi::BidiStream(_, stream))) => {
                    let (send, recv) = h3::quic::BidiStream::split(stream);
                    return Ok(Some(WtStream {
                        send,
                        recv,
                        pending: Bytes::new(),
                    }));
                }
                Ok(Some(AcceptedBi::Request(_, mut other))) => {
                    // One session per connection: further requests are refused.
                    let resp = http::Response::builder()
                        .status(http::StatusCode::TOO_MANY_REQUESTS)
                        .body(())
                        .map_err(|e| WtError::Http(e.to_string()))?;
                    let _ = other.send_response(resp).await;
                    let _ = other.finish().await;
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    if self.ended().is_some() {
                        return Ok(None);
                    }
                    return Err(WtError::Stream(e.to_string()));
                }
            }
        }
    }

    /// The next datagram from the client. One reader at a time.
    pub async fn recv_datagram(&self) -> Result<Bytes, WtError> {
        let mut reader = self
            .0
            .datagrams_in
            .borrow_mut()
            .take()
            .ok_or(WtError::Busy)?;
        let got = reader.read_datagram().await;
        *self.0.datagrams_in.borrow_mut() = Some(reader);
        match got {
            Ok(d) => Ok(d.into_payload()),
            Err(e) => Err(WtError::Stream(e.to_string())),
        }
    }

    /// Send a datagram (RFC 9297); dropped by the network or the queue like any datagram.
    pub fn send_datagram(&self, data: Bytes) -> Result<(), WtError> {
        self.0
            .datagrams_out
            .borrow_mut()
            .send_datagram(data)
            .map_err(|e| WtError::Datagram(e.to_string()))
    }

    /// Close the session with an application `code` and `reason`: a
    /// CLOSE_WEBTRANSPORT_SESSION capsule on the CONNECT stream (draft-ietf-webtrans-http3
    /// §5), then, once it had time to arrive, a QUIC close with H3_NO_ERROR.
    pub fn close(&self, code: u32, reason: &[u8]) {
        if self.0.closed_with.borrow().is_some() || self.ended().is_some() {
            return;
        }
        *self.0.closed_with.borrow_mut() = Some(code);
        let reason = &reason[..reason.len().min(1024)];
        let capsule = close_capsule(code, reason);
        // The CONNECT stream is client-initiated bidi (RFC 9000 §2.1: index = id >> 2).
        let id = quinn_proto::StreamId::new(
            quinn_proto::Side::Client,
            quinn_proto::Dir::Bi,
            self.0.connect_stream >> 2,
        );
        let rtt = self.0.conn.write(|st| {
            let mut send = st.conn.send_stream(id);
            let _ = send.write(&capsule);
            let _ = send.finish();
            st.conn.rtt()
        });
        let conn = self.0.conn.clone();
        let wait = (rtt * 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        glommio::spawn_local(async move {
            glommio::timer::sleep(wait).await;
            let now = conn.now();
            conn.write(|st| {
                st.conn.close(
                    now,
                    VarInt::from_u64(H3_NO_ERROR).unwrap_or(VarInt::MAX),
                    Bytes::new(),
                )
            });
        })
        .detach();
    }

    /// How the session ended, once it has.
    pub fn ended(&self) -> Option<SessionEnd> {
        let local = *self.0.closed_with.borrow();
        let peer = self.0.peer_closed.get();
        self.0.conn.read(|st| {
            st.lost
                .as_ref()
                .map(|e| SessionEnd::from_conn(e, local, peer))
        })
    }

    /// Wait until the session has ended.
    pub async fn closed(&self) -> SessionEnd {
        poll_fn(|cx| {
            let local = *self.0.closed_with.borrow();
            let peer = self.0.peer_closed.get();
            self.0.conn.read(|st| match &st.lost {
                Some(e) => std::task::Poll::Ready(SessionEnd::from_conn(e, local, peer)),
                None => {
                    st.park(cx);
                    std::task::Poll::Pending
                }
            })
        })
        .await
    }
}

/// Read the CONNECT stream (nothing else does once the session is accepted) for the
/// peer's CLOSE_WEBTRANSPORT_SESSION capsule or FIN (draft-ietf-webtrans-http3 §5).
/// Either ends the session; with one session per connection, the connection is then
/// closed with H3_NO_ERROR.
async fn watch_connect_stream(conn: ConnRef, stream: u64, peer_closed: Rc<Cell<Option<u32>>>) {
    let id =
        quinn_proto::StreamId::new(quinn_proto::Side::Client, quinn_proto::Dir::Bi, stream >> 2);
    let mut buf = BytesMut::new();
    let code = poll_fn(|cx| {
        let (fin, transmit) = conn.read(|st| {
            if st.lost.is_some() {
                return (None, false);
            }
            let mut recv = st.conn.recv_stream(id);
            let mut chunks = match recv.read(true) {
                Ok(c) => c,
                Err(_) => return (Some(true), false),
            };
            let mut fin = false;
            loop {
                match chunks.next(usize::MAX) {
                    Ok(Some(c)) => {
                        // A capsule is small; a peer streaming junk here is cut off.
                        if buf.len() + c.bytes.len() > MAX_CONNECT_STREAM_BYTES {
                            fin = true;
                            break;
                        }
                        buf.extend_from_slice(&c.bytes);
                    }
                    Ok(None) | Err(quinn_proto::ReadError::Reset(_)) => {
                        fin = true;
                        break;
                    }
                    Err(quinn_proto::ReadError::Blocked) => break,
                }
            }
            let transmit = chunks.finalize().should_transmit();
            if !fin {
                st.park(cx);
            }
            (Some(fin), transmit)
        });
        if transmit {
            conn.write(|_| ());
        }
        match fin {
            None => std::task::Poll::Ready(None),
            Some(fin) => match parse_close(&buf) {
                Some(code) => std::task::Poll::Ready(Some(code)),
                None if fin => std::task::Poll::Ready(Some(0)),
                None => std::task::Poll::Pending,
            },
        }
    })
    .await;
    let Some(code) = code else {
        return;
    };
    peer_closed.set(Some(code));
    let now = conn.now();
    conn.write(|st| {
        st.conn.close(
            now,
            VarInt::from_u64(H3_NO_ERROR).unwrap_or(VarInt::MAX),
            Bytes::new(),
        )
    });
}

/// Most bytes kept from the CONNECT stream while looking for the close capsule.
const MAX_CONNECT_STREAM_BYTES: usize = 4096;

/// The code of a CLOSE_WEBTRANSPORT_SESSION capsule in `data` (HTTP/3 frames whose
/// DATA payloads carry capsules, RFC 9297 §3.2), once complete.
fn parse_close(mut data: &[u8]) -> Option<u32> {
    while !data.is_empty() {
        let frame_type = get_varint(&mut data)?;
        let len = usize::try_from(get_varint(&mut data)?).ok()?;
        let mut payload = data.get(..len)?;
        data = data.get(len..)?;
        if frame_type != 0x00 {
            continue;
        }
        while !payload.is_empty() {
            let capsule_type = get_varint(&mut payload)?;
            let clen = usize::try_from(get_varint(&mut payload)?).ok()?;
            let value = payload.get(..clen)?;
            payload = payload.get(clen..)?;
            if capsule_type == CLOSE_WEBTRANSPORT_SESSION {
                let code = value.get(..4)?;
                return Some(u32::from_be_bytes(code.try_into().ok()?));
            }
        }
    }
    None
}

/// RFC 9000 §16 variable-length integer from the front of `data`.
fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let first = *data.first()?;
    let len = 1usize << (first >> 6);
    let bytes = data.get(..len)?;
    let v = bytes
        .iter()
        .skip(1)
        .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
    *data = data.get(len..)?;
    Some(v)
}

/// The capsule in an HTTP/3 DATA frame (RFC 9297 §3.2, RFC 9114 §7.2.1).
fn close_capsule(code: u32, reason: &[u8]) -> BytesMut {
    let mut capsule = BytesMut::new();
    put_varint(&mut capsule, CLOSE_WEBTRANSPORT_SESSION);
    put_varint(&mut capsule, 4 + reason.len() as u64);
    capsule.put_u32(code);
    capsule.put_slice(reason);
    let mut frame = BytesMut::new();
    put_varint(&mut frame, 0x00); // DATA
    put_varint(&mut frame, capsule.len() as u64);
    frame.put_slice(&capsule);
    frame
}

/// RFC 9000 §16 variable-length integer.
fn put_varint(out: &mut BytesMut, v: u64) {
    if v < 1 << 6 {
        out.put_u8(v as u8);
    } else if v < 1 << 14 {
        out.put_u16(0x4000 | v as u16);
    } else if v < 1 << 30 {
        out.put_u32(0x8000_0000 | v as u32);
    } else {
        out.put_u64(0xc000_0000_0000_0000 | v);
    }
}

/// A client-opened bidirectional stream of a session.
pub struct WtStream {
    send: h3_webtransport::stream::SendStream<H3Send, Bytes>,
    recv: h3_webtransport::stream::RecvStream<H3Recv, Bytes>,
    pending: Bytes,
}

impl WtStream {
    /// Read into `buf`; 0 means the peer finished the stream (FIN).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, WtError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.read_chunk().await? {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        self.pending.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }

    /// The next chunk as received (no copy); `None` at FIN.
    pub async fn read_chunk(&mut self) -> Result<Option<Bytes>, WtError> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        poll_fn(|cx| self.recv.poll_data(cx))
            .await
            .map(|b| b.map(|mut b| b.copy_to_bytes(b.remaining())))
            .map_err(|e| WtError::Stream(e.to_string()))
    }

    /// Write all of `data`, waiting for flow control.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), WtError> {
        while !data.is_empty() {
            poll_fn(|cx| self.send.poll_send(cx, &mut data))
                .await
                .map_err(|e| WtError::Stream(e.to_string()))?;
        }
        Ok(())
    }

    /// Write a chunk (no copy when it fits the window at once).
    pub async fn write_chunk(&mut self, mut data: Bytes) -> Result<(), WtError> {
        while data.has_remaining() {
            poll_fn(|cx| self.send.poll_send(cx, &mut data))
                .await
                .map_err(|e| WtError::Stream(e.to_string()))?;
        }
        Ok(())
    }

    /// Finish the sending side (FIN).
    pub async fn finish(&mut self) -> Result<(), WtError> {
        poll_fn(|cx| self.send.poll_finish(cx))
            .await
            .map_err(|e| WtError::Stream(e.to_string()))
    }

    /// Abandon the sending side with an application code (RESET_STREAM).
    pub fn reset(&mut self, code: u64) {
        self.send.reset(code);
    }

    /// Ask the peer to stop sending (STOP_SENDING).
    pub fn stop(&mut self, code: u64) {
        self.recv.stop_sending(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_capsule_layout() {
        let f = close_capsule(7, b"bye");
        // DATA frame type 0, length 10, capsule type 0x2843 (2-byte varint 0x6843), len 7.
        assert_eq!(
            &f[..],
            &[0x00, 10, 0x68, 0x43, 7, 0, 0, 0, 7, b'b', b'y', b'e']
        );
        assert_eq!(parse_close(&f), Some(7));
        // Incomplete, other frames before it, garbage.
        assert_eq!(parse_close(&f[..6]), None);
        let mut two = vec![0x21, 2, 0xaa, 0xbb];
        two.extend_from_slice(&f);
        assert_eq!(parse_close(&two), Some(7));
        assert_eq!(parse_close(&[0xff]), None);
        let mut big = BytesMut::new();
        put_varint(&mut big, 1 << 40);
        let mut s = &big[..];
        assert_eq!(get_varint(&mut s), Some(1 << 40));
    }
}

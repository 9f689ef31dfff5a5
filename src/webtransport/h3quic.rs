//! h3's QUIC traits (`h3::quic`, `h3_datagram::quic_traits`) over our shard-local
//! quinn-proto connection ([`ConnRef`]). Poll-based, no runtime: a poller that finds
//! nothing ready parks its waker on the connection (see `quic::conn` for why every
//! event wakes every parked poller, so no wake-up is lost).

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use h3_datagram::datagram::EncodedDatagram;
use h3_datagram::quic_traits::{
    DatagramConnectionExt, RecvDatagram, SendDatagram, SendDatagramErrorIncoming,
};
use quinn_proto::{ConnectionError, Dir, ReadError, SendDatagramError, VarInt, WriteError};

use crate::quic::{ConnRef, ConnState};

/// The connection as h3 sees it.
pub struct H3Conn {
    conn: ConnRef,
}

impl H3Conn {
    pub fn new(conn: ConnRef) -> Self {
        Self { conn }
    }
}

/// h3's view of how a connection ended (RFC 9000 §10, §20).
pub(crate) fn conn_error(e: &ConnectionError) -> ConnectionErrorIncoming {
    match e {
        ConnectionError::ApplicationClosed(c) => ConnectionErrorIncoming::ApplicationClose {
            error_code: c.error_code.into_inner(),
        },
        ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(std::sync::Arc::new(other.clone())),
    }
}

fn stream_conn_error(e: &ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: conn_error(e),
    }
}

fn h3_id(id: quinn_proto::StreamId) -> StreamId {
    // quinn-proto stream ids are varints, so always valid h3 ids.
    StreamId::try_from(u64::from(id))
        .unwrap_or_else(|_| StreamId::from(h3::proto::varint::VarInt::from_u32(0)))
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

fn accept(
    conn: &ConnRef,
    dir: Dir,
    cx: &Context<'_>,
) -> Poll<Result<quinn_proto::StreamId, ConnectionErrorIncoming>> {
    let got = conn.read(|st: &mut ConnState| {
        if let Some(e) = &st.lost {
            return Some(Err(conn_error(e)));
        }
        match st.conn.streams().accept(dir) {
            Some(id) => Some(Ok(id)),
            None => {
                st.park(cx);
                None
            }
        }
    });
    match got {
        Some(Ok(id)) => {
            // Accepting may raise MAX_STREAMS: let the driver transmit.
            conn.write(|_| ());
            Poll::Ready(Ok(id))
        }
        Some(Err(e)) => Poll::Ready(Err(e)),
        None => Poll::Pending,
    }
}

fn open(
    conn: &ConnRef,
    dir: Dir,
    cx: &Context<'_>,
) -> Poll<Result<quinn_proto::StreamId, StreamErrorIncoming>> {
    conn.write(|st| {
        if let Some(e) = &st.lost {
            return Poll::Ready(Err(stream_conn_error(e)));
        }
        match st.conn.streams().open(dir) {
            Some(id) => Poll::Ready(Ok(id)),
            None => {
                st.park(cx);
                Poll::Pending
            }
        }
    })
}

fn close(conn: &ConnRef, code: h3::error::Code, reason: &[u8]) {
    let now = conn.now();
    conn.write(|st| {
        st.conn
            .close(now, varint(code.value()), Bytes::copy_from_slice(reason))
    });
}

impl quic::Connection<Bytes> for H3Conn {
    type RecvStream = H3Recv;
    type OpenStreams = H3Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        accept(&self.conn, Dir::Uni, cx).map_ok(|id| H3Recv::new(self.conn.clone(), id))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        accept(&self.conn, Dir::Bi, cx).map_ok(|id| H3Bidi::new(self.conn.clone(), id))
    }

    fn opener(&self) -> Self::OpenStreams {
        H3Opener {
            conn: self.conn.clone(),
        }
    }
}

impl quic::OpenStreams<Bytes> for H3Conn {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open(&self.conn, Dir::Bi, cx).map_ok(|id| H3Bidi::new(self.conn.clone(), id))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open(&self.conn, Dir::Uni, cx).map_ok(|id| H3Send::new(self.conn.clone(), id))
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

impl DatagramConnectionExt<Bytes> for H3Conn {
    type SendDatagramHandler = H3Datagrams;
    type RecvDatagramHandler = H3Datagrams;

    fn send_datagram_handler(&self) -> H3Datagrams {
        H3Datagrams {
            conn: self.conn.clone(),
        }
    }

    fn recv_datagram_handler(&self) -> H3Datagrams {
        H3Datagrams {
            conn: self.conn.clone(),
        }
    }
}

/// Opens streams for h3 (a clone of the connection).
pub struct H3Opener {
    conn: ConnRef,
}

impl quic::OpenStreams<Bytes> for H3Opener {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open(&self.conn, Dir::Bi, cx).map_ok(|id| H3Bidi::new(self.conn.clone(), id))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open(&self.conn, Dir::Uni, cx).map_ok(|id| H3Send::new(self.conn.clone(), id))
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

/// RFC 9221 datagrams, both directions.
pub struct H3Datagrams {
    conn: ConnRef,
}

impl SendDatagram<Bytes> for H3Datagrams {
    fn send_datagram<T: Into<EncodedDatagram<Bytes>>>(
        &mut self,
        data: T,
    ) -> Result<(), SendDatagramErrorIncoming> {
        let mut data: EncodedDatagram<Bytes> = data.into();
        let bytes = data.copy_to_bytes(data.remaining());
        self.conn.write(|st| {
            if let Some(e) = &st.lost {
                return Err(SendDatagramErrorIncoming::ConnectionError(conn_error(e)));
            }
            // Drop the oldest queued datagram rather than block (datagrams are lossy).
            st.conn.datagrams().send(bytes, true).map_err(|e| match e {
                SendDatagramError::TooLarge => SendDatagramErrorIncoming::TooLarge,
                _ => SendDatagramErrorIncoming::NotAvailable,
            })
        })
    }
}

impl RecvDatagram for H3Datagrams {
    type Buffer = Bytes;

    fn poll_incoming_datagram(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, ConnectionErrorIncoming>> {
        self.conn.read(|st| {
            if let Some(d) = st.conn.datagrams().recv() {
                return Poll::Ready(Ok(d));
            }
            if let Some(e) = &st.lost {
                return Poll::Ready(Err(conn_error(e)));
            }
            st.park(cx);
            Poll::Pending
        })
    }
}

/// The receiving half of a stream.
pub struct H3Recv {
    conn: ConnRef,
    id: quinn_proto::StreamId,
}

impl H3Recv {
    fn new(conn: ConnRef, id: quinn_proto::StreamId) -> Self {
        Self { conn, id }
    }
}

impl quic::RecvStream for H3Recv {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        let id = self.id;
        let (out, transmit) = self.conn.read(|st| {
            let mut stream = st.conn.recv_stream(id);
            let mut chunks = match stream.read(true) {
                Ok(c) => c,
                // Closed: already finished and read (or reset and reported).
                Err(_) => return (Poll::Ready(Ok(None)), false),
            };
            let res = chunks.next(usize::MAX);
            let transmit = chunks.finalize().should_transmit();
            let out = match res {
                Ok(Some(chunk)) => Poll::Ready(Ok(Some(chunk.bytes))),
                Ok(None) => Poll::Ready(Ok(None)),
                Err(ReadError::Blocked) => match &st.lost {
                    Some(e) => Poll::Ready(Err(stream_conn_error(e))),
                    None => {
                        st.park(cx);
                        Poll::Pending
                    }
                },
                Err(ReadError::Reset(code)) => {
                    Poll::Ready(Err(StreamErrorIncoming::StreamTerminated {
                        error_code: code.into_inner(),
                    }))
                }
            };
            (out, transmit)
        });
        if transmit {
            self.conn.write(|_| ());
        }
        out
    }

    fn stop_sending(&mut self, error_code: u64) {
        let id = self.id;
        self.conn.write(|st| {
            let _ = st.conn.recv_stream(id).stop(varint(error_code));
        });
    }

    fn recv_id(&self) -> StreamId {
        h3_id(self.id)
    }
}

/// The sending half of a stream.
pub struct H3Send {
    conn: ConnRef,
    id: quinn_proto::StreamId,
    pending: Option<WriteBuf<Bytes>>,
}

impl H3Send {
    fn new(conn: ConnRef, id: quinn_proto::StreamId) -> Self {
        Self {
            conn,
            id,
            pending: None,
        }
    }

    /// Write as much of `buf` as flow control allows; Pending if none fits.
    fn poll_write<D: Buf>(
        &self,
        cx: &Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        let id = self.id;
        self.conn.write(|st| {
            if let Some(e) = &st.lost {
                return Poll::Ready(Err(stream_conn_error(e)));
            }
            let mut total = 0;
            while buf.has_remaining() {
                match st.conn.send_stream(id).write(buf.chunk()) {
                    Ok(n) => {
                        buf.advance(n);
                        total += n;
                    }
                    Err(WriteError::Blocked) => break,
                    Err(WriteError::Stopped(code)) => {
                        return Poll::Ready(Err(StreamErrorIncoming::StreamTerminated {
                            error_code: code.into_inner(),
                        }))
                    }
                    Err(e) => return Poll::Ready(Err(StreamErrorIncoming::Unknown(Box::new(e)))),
                }
            }
            if total == 0 && buf.has_remaining() {
                st.park(cx);
                return Poll::Pending;
            }
            Poll::Ready(Ok(total))
        })
    }
}

impl quic::SendStream<Bytes> for H3Send {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        while let Some(mut data) = self.pending.take() {
            if !data.has_remaining() {
                break;
            }
            match self.poll_write(cx, &mut data) {
                Poll::Ready(Ok(_)) => {
                    if data.has_remaining() {
                        self.pending = Some(data);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.pending = Some(data);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.pending.is_some() {
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data while the previous write is pending".into(),
                ),
            });
        }
        self.pending = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if self.poll_ready(cx)?.is_pending() {
            return Poll::Pending;
        }
        let id = self.id;
        self.conn.write(|st| {
            // Finishing twice or after a reset is not an error worth surfacing.
            let _ = st.conn.send_stream(id).finish();
        });
        Poll::Ready(Ok(()))
    }

    fn reset(&mut self, reset_code: u64) {
        let id = self.id;
        self.conn.write(|st| {
            let _ = st.conn.send_stream(id).reset(varint(reset_code));
        });
    }

    fn send_id(&self) -> StreamId {
        h3_id(self.id)
    }
}

impl quic::SendStreamUnframed<Bytes> for H3Send {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        if quic::SendStream::poll_ready(self, cx)?.is_pending() {
            return Poll::Pending;
        }
        self.poll_write(cx, buf)
    }
}

/// A bidirectional stream.
pub struct H3Bidi {
    send: H3Send,
    recv: H3Recv,
}

impl H3Bidi {
    fn new(conn: ConnRef, id: quinn_proto::StreamId) -> Self {
        Self {
            send: H3Send::new(conn.clone(), id),
            recv: H3Recv::new(conn, id),
        }
    }
}

impl quic::BidiStream<Bytes> for H3Bidi {
    type SendStream = H3Send;
    type RecvStream = H3Recv;

    fn split(self) -> (H3Send, H3Recv) {
        (self.send, self.recv)
    }
}

impl quic::RecvStream for H3Bidi {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl quic::SendStream<Bytes> for H3Bidi {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

impl quic::SendStreamUnframed<Bytes> for H3Bidi {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        self.send.poll_send(cx, buf)
    }
}

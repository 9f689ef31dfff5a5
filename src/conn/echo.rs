//! `/echo` (only with `--enable-echo`): every client-opened bidi stream is written back
//! as it arrives and finished when the client finishes; every datagram is sent back.
//! Uni streams are read and dropped. It runs on the same connection machinery as
//! signaling, so it measures the real transport.
//!
//! Echoing waits for the client's flow control: bytes that could not be written yet are
//! held (one read's worth per stream) and the stream is not read again until they are.

use std::collections::VecDeque;

use bytes::Bytes;
use quinn_proto::{Connection, StreamId};

use crate::h3::{H3Conn, H3Event, ReadEnd};

#[derive(Debug)]
struct Pending {
    stream: StreamId,
    /// Read but not yet written back.
    data: VecDeque<Bytes>,
    /// The client finished: finish ours once `data` is written.
    fin: bool,
}

/// Chunks a stream's list keeps room for between reads.
const KEEP_CHUNKS: usize = 16;

/// The echo state of one session.
#[derive(Debug, Default)]
pub struct Echo {
    pending: Vec<Pending>,
}

impl Echo {
    pub fn on_event(&mut self, quic: &mut Connection, h3: &mut H3Conn, ev: H3Event) {
        match ev {
            H3Event::StreamOpened {
                stream,
                bidi: false,
            }
            | H3Event::StreamReadable { stream }
                if stream.dir() == quinn_proto::Dir::Uni =>
            {
                drain_uni(quic, h3, stream)
            }
            H3Event::StreamOpened { stream, .. }
            | H3Event::StreamReadable { stream }
            | H3Event::StreamWritable { stream } => self.pump(quic, h3, stream),
            H3Event::StreamStopped { stream, .. } => {
                // Our half was reset by the HTTP/3 layer; stop reading theirs too.
                self.pending.retain(|p| p.stream != stream);
                h3.abort(quic, stream, 0);
            }
            H3Event::Datagram(d) => {
                h3.send_datagram(quic, &d);
            }
            _ => {}
        }
    }

    fn pump(&mut self, quic: &mut Connection, h3: &mut H3Conn, stream: StreamId) {
        let i = match self.pending.iter().position(|p| p.stream == stream) {
            Some(i) => i,
            None => {
                self.pending.push(Pending {
                    stream,
                    data: VecDeque::new(),
                    fin: false,
                });
                self.pending.len() - 1
            }
        };
        loop {
            // Write back what is held first.
            let p = &mut self.pending[i];
            while let Some(chunk) = p.data.front_mut() {
                match h3.write(quic, stream, chunk) {
                    Some(n) if n == chunk.len() => {
                        p.data.pop_front();
                    }
                    Some(n) => {
                        bytes::Buf::advance(chunk, n);
                        return;
                    }
                    None => {
                        self.pending.swap_remove(i);
                        h3.abort(quic, stream, 0);
                        return;
                    }
                }
            }
            if p.fin {
                h3.finish(quic, stream);
                h3.release(stream);
                self.pending.swap_remove(i);
                return;
            }
            // Everything available: the stream's receive window bounds it. `data` is
            // empty here and keeps its capacity, so a stream's echoes allocate no list;
            // a read of many small chunks does not keep its large list.
            if p.data.capacity() > KEEP_CHUNKS {
                p.data = VecDeque::new();
            }
            let end = h3.read(quic, stream, usize::MAX, |b| p.data.push_back(b));
            match end {
                ReadEnd::Blocked | ReadEnd::Limit => {
                    if p.data.is_empty() {
                        return;
                    }
                }
                ReadEnd::Finished => p.fin = true,
                ReadEnd::Reset(code) => {
                    // The client abandoned its half: abandon ours with the same code.
                    let _ = quic.send_stream(stream).reset(
                        quinn_proto::VarInt::from_u64(code).unwrap_or(quinn_proto::VarInt::MAX),
                    );
                    h3.release(stream);
                    self.pending.swap_remove(i);
                    return;
                }
                ReadEnd::Closed => {
                    self.pending.swap_remove(i);
                    return;
                }
            }
        }
    }
}

/// Uni streams of an echo session are read and dropped.
fn drain_uni(quic: &mut Connection, h3: &mut H3Conn, stream: StreamId) {
    match h3.read(quic, stream, usize::MAX, drop) {
        ReadEnd::Finished | ReadEnd::Reset(_) | ReadEnd::Closed => h3.release(stream),
        ReadEnd::Blocked | ReadEnd::Limit => {}
    }
}

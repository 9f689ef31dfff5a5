//! quinn-proto's events of one connection, taken as each datagram is handed to it.
//!
//! quinn-proto queues a `Readable` event for every STREAM frame on an open stream,
//! also one that brings no new byte (empty, or data already received), and its queue
//! keeps the room it once grew to. A client packing hundreds of 3-byte STREAM frames
//! into every packet would make it hold an event per frame for all the packets of a
//! pass (up to thousands of datagrams), and the connection run one read per event.
//! Taken after each datagram, quinn-proto's queue holds at most one packet's events;
//! here, an event equal to one still waiting is not queued again: the read or write
//! it asks for is still to come, and every reader here reads all that is available
//! (every writer writes until blocked).

use std::collections::VecDeque;

use quinn_proto::{Connection, Event};

/// The connection's QUIC events not yet driven, each kind of event for each stream at
/// most once: so at most a few per stream the connection may have open.
#[derive(Default)]
pub struct QuicEvents {
    queue: VecDeque<Event>,
}

impl QuicEvents {
    /// Move every event quinn-proto has queued for `quic` here.
    pub fn take_from(&mut self, quic: &mut Connection) {
        while let Some(event) = quic.poll() {
            self.push(event);
        }
    }

    /// The next event: those taken earlier first, then quinn-proto's own.
    pub fn next(&mut self, quic: &mut Connection) -> Option<Event> {
        self.queue.pop_front().or_else(|| quic.poll())
    }

    /// Forget every event taken (the connection is being closed).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    fn push(&mut self, event: Event) {
        if !self.queue.iter().any(|e| same(e, &event)) {
            self.queue.push_back(event);
        }
    }
}

/// Whether `a` says no more than `b`. Stream and datagram events only say "there is
/// something to do" (or, for a stream's end, happen once), so an equal one waiting is
/// as good as many; the connection's own events are never merged.
fn same(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (Event::Stream(a), Event::Stream(b)) => a == b,
        (Event::DatagramReceived, Event::DatagramReceived)
        | (Event::DatagramsUnblocked, Event::DatagramsUnblocked) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use quinn_proto::{Dir, StreamEvent, StreamId};

    use super::*;

    fn readable(n: u64) -> Event {
        Event::Stream(StreamEvent::Readable {
            id: StreamId::from(quinn_proto::VarInt::from_u64(n).unwrap()),
        })
    }

    /// A flood of repeated events (a packet of empty STREAM frames on two streams, in
    /// turn) leaves one of each waiting, in the order first seen; events that happen
    /// once are all kept.
    #[test]
    fn repeated_events_wait_once_each() {
        let mut q = QuicEvents::default();
        for i in 0..10_000u64 {
            q.push(readable(4 * (i % 2)));
            q.push(Event::DatagramReceived);
        }
        q.push(Event::Stream(StreamEvent::Finished {
            id: StreamId::from(quinn_proto::VarInt::from_u64(4).unwrap()),
        }));
        q.push(Event::Stream(StreamEvent::Opened { dir: Dir::Bi }));
        q.push(Event::Stream(StreamEvent::Opened { dir: Dir::Bi }));
        q.push(Event::Connected);
        q.push(readable(8));
        assert_eq!(q.queue.len(), 7, "{:?}", q.queue);
        assert!(
            matches!(q.queue[0], Event::Stream(StreamEvent::Readable { id }) if id == StreamId::from(quinn_proto::VarInt::from_u64(0).unwrap()))
        );
        assert!(matches!(q.queue[1], Event::DatagramReceived));
        assert!(matches!(
            q.queue[4],
            Event::Stream(StreamEvent::Opened { .. })
        ));
        assert!(matches!(q.queue[5], Event::Connected));
    }
}

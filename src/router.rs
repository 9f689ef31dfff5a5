//! What crosses between executors, and the one place that decides "call locally or
//! send to the owner shard" (Seastar's `sharded<T>` is the model).
//!
//! Every meeting lives on `hash(meeting_id) % N` ([`meeting_shard`]); every connection
//! on the shard that accepted it. A command for a meeting or a connection on this shard
//! is handled by a direct call; for another shard it goes over that shard's bounded mesh
//! queue ([`Router::send`]). When a queue is full the message waits, in order, in a
//! bounded overflow kept per destination (`--mesh-overflow-max` messages each, and
//! `--mesh-overflow-max-bytes` for all destinations together, counted by
//! [`parked_bytes`]); only a full overflow drops (counted in
//! `mc_messages_dropped_total`). A participant's disconnect is not dropped there: it may
//! wait in a reserve as large again ([`Router::send`]), and past that on its shard
//! (`shard::meetings`). A close for sessions may wait in the same reserve, and past it
//! is dropped like the rest. Parked messages count in
//! `mc_actor_mailbox_depth` with the queue they wait for.
//!
//! A queue holds `ACTOR_MAILBOX_SIZE` messages whatever their size, and a client's
//! message may be as large as a frame. So a client message of more than
//! [`LARGE_MESSAGE`] bytes also counts against [`MAX_IN_FLIGHT_BYTES`] from this shard
//! to its destination until the destination takes it; past that it parks like a
//! message for a full queue.

use std::collections::VecDeque;
use std::mem::size_of;
use std::rc::Rc;
use std::time::Instant;

use shards::{Lane, MeshHandle, ShardId};

use crate::actors::{ConnCmd, MeetingCmd};
use crate::drain::LiveReport;
use crate::meeting::{MeetingSnapshot, RedirectReason};
use crate::migration::{ImportAnswer, ImportRequest};
use crate::quic::Forwarded;

/// Control traffic: pings, pongs, drain and hand-over steps.
pub const LANE_CONTROL: Lane = Lane(0);
/// Commands for meetings on the destination shard.
pub const LANE_MEETING: Lane = Lane(1);
/// Commands for connections on the destination shard.
pub const LANE_CONNECTION: Lane = Lane(2);
/// UDP datagrams for connections of the destination shard (`quic::Forwarded`). Anyone
/// can write a connection ID's shard byte, and a forged packet needs no handshake, so
/// these have their own lane: a flood of them fills only this lane, and the receiver
/// takes each sender's other lanes first.
pub const LANE_DATAGRAM: Lane = Lane(3);
/// Number of lanes; the mesh is built with one capacity per lane.
pub const LANES: usize = 4;
/// Slots of [`LANE_DATAGRAM`] from one executor to another. Datagrams reach the wrong
/// shard only after a client's address changes, and a full lane drops them (QUIC
/// retransmits), so a few hundred are plenty; with each at most
/// `quic::MAX_UDP_PAYLOAD` bytes they hold under 400 KiB per pair of shards.
pub const DATAGRAM_LANE_SLOTS: usize = 256;

/// The mesh's capacity per lane: `mailbox` messages on the lanes of commands
/// (`MC_ACTOR_MAILBOX_SIZE`), [`DATAGRAM_LANE_SLOTS`] on the datagrams'.
pub fn lane_capacities(mailbox: usize) -> [usize; LANES] {
    let mut lanes = [mailbox; LANES];
    lanes[LANE_DATAGRAM.0 as usize] = DATAGRAM_LANE_SLOTS;
    lanes
}

/// Everything that crosses between executors.
///
/// Messages move by value through bounded queues of fixed slots; boxing the large
/// variants would cost an allocation per signaling message to save slot space.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ShardMsg {
    /// Control → shard: are you alive? The shard answers [`ShardMsg::Pong`].
    Ping { seq: u64 },
    /// Shard → control: alive, with its current load.
    Pong { seq: u64, load: ShardLoad },
    /// Control → shard: the drain ended; end every meeting and close its sessions.
    EndMeetings,
    /// Control → shard: report your live meetings and sessions
    /// ([`ShardMsg::LiveMeetings`]). The drain's answers quote `id`.
    ListMeetings { id: u64 },
    /// Shard → control: the meetings this shard owns (at most `MC_CAPACITY`) and its
    /// signaling sessions.
    LiveMeetings { id: u64, report: LiveReport },
    /// Control → owner shard: freeze the meeting for a hand-over and export its state
    /// (`Meeting::begin_handover`); answered by [`ShardMsg::Exported`].
    ExportMeeting { id: u64, meeting_id: String },
    /// Owner shard → control: the frozen meeting's state; `None` when the meeting no
    /// longer exists (or has nobody left).
    Exported {
        id: u64,
        snapshot: Option<Box<MeetingSnapshot>>,
    },
    /// Control → owner shard: the target holds the meeting; redirect every connected
    /// participant to `endpoint` and end it here (`EndReason::Handover`).
    CommitHandover {
        meeting_id: String,
        endpoint: String,
        reason: RedirectReason,
    },
    /// Control → owner shard: the hand-over failed; unfreeze the meeting and replay
    /// what it held. Sent after the `ExportMeeting` on the same lane, so it arrives after it.
    AbortHandover { meeting_id: String },
    /// Control → owner shard: import a meeting another MC hands over, unless the shard
    /// gets to it after `deadline` (the admin plane has answered 503 by then and the
    /// meeting must not appear behind its back). Answered by [`ShardMsg::Imported`].
    ImportMeeting {
        id: u64,
        request: Box<ImportRequest>,
        deadline: Instant,
    },
    /// Owner shard → control: the answer to `ImportMeeting`.
    Imported { id: u64, answer: ImportAnswer },
    /// A connection → the meeting's shard.
    ToMeeting(MeetingCmd),
    /// A meeting → connections on the receiving shard (one fan-out, one message).
    ToConnections { conns: Vec<u64>, cmd: ConnCmd },
    /// A UDP datagram that landed on another shard's socket but belongs to a connection
    /// of the receiving shard (its connection ID says so).
    Forwarded(Forwarded),
}

/// One shard's load, reported with every pong (GC heartbeats, readiness, metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardLoad {
    pub meetings: u64,
    pub connections: u64,
    pub participants: u64,
    /// Messages this shard holds in its overflow, per destination shard and lane, and
    /// the participants' disconnects waiting on it with the meetings' lane.
    pub parked: Vec<[u32; LANES]>,
}

/// The shard of a meeting: FNV-1a (64-bit) of its id, modulo the shard count. Stable
/// across processes and releases, so a meeting id always lands on the same shard.
pub fn meeting_shard(meeting_id: &str, shards: usize) -> ShardId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meeting_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ShardId((h % shards.max(1) as u64) as u16)
}

/// Where a command goes.
pub enum Dest {
    /// Handle it here.
    Local,
    /// Send it to this shard.
    Remote(ShardId),
}

/// A shard's end of the mesh, with the per-destination overflow.
pub struct Router {
    mesh: Rc<MeshHandle<ShardMsg>>,
    id: ShardId,
    shards: usize,
    /// Parked messages per destination, each with its [`parked_bytes`].
    overflow: Vec<VecDeque<(Lane, usize, ShardMsg)>>,
    overflow_max: usize,
    /// [`parked_bytes`] of everything in `overflow`, all destinations together.
    overflow_bytes: usize,
    overflow_max_bytes: usize,
}

/// A client's message (a join or a signaling message) larger than this, encoded,
/// counts against [`MAX_IN_FLIGHT_BYTES`] on its way to another shard.
pub const LARGE_MESSAGE: usize = 1024;
/// [`parked_bytes`] of large client messages one shard may have in its queues to
/// another at once: frame-sized messages would make a queue of 1,000 hold 64 MiB; with
/// this it holds at most 8 MiB of them besides its small messages.
pub const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;

/// How many messages and bytes a shard may park ([`Router::send`]).
#[derive(Clone, Copy, Debug)]
pub struct OverflowLimits {
    /// Messages per destination.
    pub messages: usize,
    /// [`parked_bytes`] for all destinations together.
    pub bytes: usize,
}

impl Router {
    /// `shards` meeting shards (the control executor is one more mesh member).
    pub fn new(mesh: Rc<MeshHandle<ShardMsg>>, shards: usize, limits: OverflowLimits) -> Self {
        let id = mesh.id();
        let members = mesh.peers();
        Self {
            mesh,
            id,
            shards,
            overflow: (0..members).map(|_| VecDeque::new()).collect(),
            overflow_max: limits.messages,
            overflow_bytes: 0,
            overflow_max_bytes: limits.bytes,
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    pub fn mesh(&self) -> &MeshHandle<ShardMsg> {
        &self.mesh
    }

    /// Where the meeting `meeting_id` lives, seen from this shard.
    pub fn meeting(&self, meeting_id: &str) -> Dest {
        self.dest(meeting_shard(meeting_id, self.shards))
    }

    /// Where the connections of `shard` live, seen from this shard.
    pub fn dest(&self, shard: ShardId) -> Dest {
        if shard == self.id {
            Dest::Local
        } else {
            Dest::Remote(shard)
        }
    }

    /// Send to another executor, in order with anything already parked for it. A full
    /// queue parks the message; only a full overflow hands it back (the caller counts
    /// the drop). The overflow is full at `messages` for the destination or `bytes` for
    /// all of them: a client's signaling message may be as large as a frame (64 KiB by
    /// default), so a count alone would not bound the memory. A participant's
    /// disconnect may park beyond a full overflow, up to twice both limits: a join or a
    /// message the meeting's shard cannot take is answered to its client, who may try
    /// again, but nothing else tells the meeting that a participant has gone. One handed
    /// back even then waits on the sending shard for room (`shard::meetings`). A close
    /// for sessions parks there too: a session whose close is lost lives on, answered by
    /// nobody, until its next message reaches the meeting (`actors::meetings`).
    #[allow(clippy::result_large_err)] // handing the message back is the point
    pub fn send(&mut self, to: ShardId, lane: Lane, msg: ShardMsg) -> Result<(), ShardMsg> {
        let Some(queue) = self.overflow.get_mut(to.index()) else {
            return Err(msg);
        };
        let bytes = parked_bytes(&msg);
        let msg = if queue.is_empty() {
            let weight = in_flight_weight(&msg, bytes);
            match self
                .mesh
                .try_send_weighted(to, lane, msg, weight, MAX_IN_FLIGHT_BYTES)
            {
                Ok(()) => return Ok(()),
                Err(full) => full.msg,
            }
        } else {
            msg
        };
        let scale = if must_arrive(&msg) { 2 } else { 1 };
        if queue.len() >= scale * self.overflow_max
            || self.overflow_bytes + bytes > scale * self.overflow_max_bytes
        {
            return Err(msg);
        }
        self.overflow_bytes += bytes;
        queue.push_back((lane, bytes, msg));
        Ok(())
    }

    /// Retry parked messages, in order, until a queue is full again.
    pub fn flush_overflow(&mut self) {
        for (to, queue) in self.overflow.iter_mut().enumerate() {
            while let Some((lane, bytes, msg)) = queue.pop_front() {
                let weight = in_flight_weight(&msg, bytes);
                let to = ShardId(to as u16);
                if let Err(full) =
                    self.mesh
                        .try_send_weighted(to, lane, msg, weight, MAX_IN_FLIGHT_BYTES)
                {
                    queue.push_front((lane, bytes, full.msg));
                    break;
                }
                self.overflow_bytes -= bytes;
            }
        }
    }

    /// Messages are parked for full queues.
    pub fn overflowing(&self) -> bool {
        self.overflow.iter().any(|q| !q.is_empty())
    }

    /// Parked messages per destination and lane.
    pub fn parked(&self) -> Vec<[u32; LANES]> {
        self.overflow
            .iter()
            .map(|q| {
                let mut per_lane = [0u32; LANES];
                for (lane, _, _) in q {
                    if let Some(n) = per_lane.get_mut(usize::from(lane.0)) {
                        *n += 1;
                    }
                }
                per_lane
            })
            .collect()
    }

    /// The next message from another executor; a large client message gives its bytes
    /// back to its sender's [`MAX_IN_FLIGHT_BYTES`].
    pub fn try_recv(&self) -> Option<(ShardId, Lane, ShardMsg)> {
        let (from, lane, msg) = self.mesh.try_recv()?;
        if matches!(msg, ShardMsg::ToMeeting(_)) {
            self.mesh
                .release(from, in_flight_weight(&msg, parked_bytes(&msg)));
        }
        Some((from, lane, msg))
    }
}

/// What a parked message holds: its slot, and the heap it points to. A client's message
/// counts at what it holds decoded (`held_len`: its encoded size, plus each list entry's
/// in-memory size, which can be fifty times the entry's size on the wire), a fan-out
/// frame at its length, once per destination that parks it.
pub fn parked_bytes(msg: &ShardMsg) -> usize {
    let heap = match msg {
        ShardMsg::ToMeeting(MeetingCmd::Join {
            identity, request, ..
        }) => identity.sub.len() + identity.name.len() + request.held_len(),
        ShardMsg::ToMeeting(MeetingCmd::Message {
            meeting_id, msg, ..
        }) => meeting_id.len() + msg.held_len(),
        ShardMsg::ToMeeting(MeetingCmd::Disconnect { meeting_id, .. }) => meeting_id.len(),
        ShardMsg::ToConnections { conns, cmd } => {
            let frame = match cmd {
                ConnCmd::Frame { frame, .. } => frame.len(),
                ConnCmd::Close(_) => 0,
            };
            conns.len() * size_of::<u64>() + frame
        }
        ShardMsg::Forwarded(f) => f.data.len(),
        _ => 0,
    };
    size_of::<ShardMsg>() + heap
}

/// What `msg`, of [`parked_bytes`] `bytes`, counts against [`MAX_IN_FLIGHT_BYTES`]: all
/// of them when it is a client's message larger than [`LARGE_MESSAGE`], else nothing.
/// The sender and the receiver compute it from the same message, so they agree.
fn in_flight_weight(msg: &ShardMsg, bytes: usize) -> usize {
    let client = matches!(
        msg,
        ShardMsg::ToMeeting(MeetingCmd::Join { .. } | MeetingCmd::Message { .. })
    );
    if client && bytes - size_of::<ShardMsg>() > LARGE_MESSAGE {
        bytes
    } else {
        0
    }
}

/// Messages that park beyond a full overflow ([`Router::send`]).
fn must_arrive(msg: &ShardMsg) -> bool {
    matches!(
        msg,
        ShardMsg::ToMeeting(MeetingCmd::Disconnect { .. })
            | ShardMsg::ToConnections {
                cmd: ConnCmd::Close(_),
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meeting::ConnKey;

    fn disconnect(conn: u64) -> ShardMsg {
        ShardMsg::ToMeeting(MeetingCmd::Disconnect {
            conn: ConnKey { shard: 0, conn },
            meeting_id: "m".into(),
            clean: false,
        })
    }

    /// Forwarded datagrams have a lane of their own: with it full, commands still go
    /// straight into their queues (nothing parks), and the receiver takes them first.
    #[test]
    fn a_full_datagram_lane_holds_back_no_command() {
        crate::testing::run_local(a_full_datagram_lane_holds_back_no_command_on_an_executor());
    }

    async fn a_full_datagram_lane_holds_back_no_command_on_an_executor() {
        let (mut seeds, _monitor) =
            shards::Mesh::build::<ShardMsg>(2, &lane_capacities(4)).expect("mesh");
        let peer = seeds.pop().expect("peer seed").into_handle();
        let me = Rc::new(seeds.pop().expect("own seed").into_handle());
        let limits = OverflowLimits {
            messages: 2,
            bytes: usize::MAX / 2,
        };
        let mut router = Router::new(me.clone(), 2, limits);
        let to = ShardId(1);
        let datagram = || {
            ShardMsg::Forwarded(Forwarded {
                from: ([127, 0, 0, 1], 9).into(),
                data: bytes::BytesMut::from(&[0x40u8, 1][..]),
            })
        };
        let mut sent = 0;
        while me.try_send(to, LANE_DATAGRAM, datagram()).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, DATAGRAM_LANE_SLOTS);
        assert!(router.send(to, LANE_MEETING, disconnect(1)).is_ok());
        assert!(router
            .send(to, LANE_CONNECTION, ShardMsg::Ping { seq: 1 })
            .is_ok());
        assert!(router.parked().iter().flatten().all(|n| *n == 0));
        let lanes: Vec<Lane> = std::iter::from_fn(|| peer.try_recv())
            .map(|(_, lane, _)| lane)
            .take(3)
            .collect();
        assert_eq!(lanes, [LANE_MEETING, LANE_CONNECTION, LANE_DATAGRAM]);
    }

    /// The peer never reads: its queue takes one message, the overflow two more of
    /// any kind, and a reserve as large again only disconnects and closes, in order
    /// with the rest.
    #[test]
    fn disconnects_park_beyond_a_full_overflow() {
        crate::testing::run_local(disconnects_park_beyond_a_full_overflow_on_an_executor());
    }

    async fn disconnects_park_beyond_a_full_overflow_on_an_executor() {
        let (mut seeds, _monitor) = shards::Mesh::build::<ShardMsg>(2, &[1; LANES]).expect("mesh");
        let _peer = seeds.pop().expect("peer seed");
        let me = Rc::new(seeds.pop().expect("own seed").into_handle());
        let limits = OverflowLimits {
            messages: 2,
            bytes: usize::MAX / 2,
        };
        let mut router = Router::new(me, 2, limits);
        let to = ShardId(1);
        for seq in 0..3 {
            let ping = ShardMsg::Ping { seq };
            assert!(router.send(to, LANE_MEETING, ping).is_ok(), "ping {seq}");
        }
        assert!(matches!(
            router.send(to, LANE_MEETING, ShardMsg::Ping { seq: 3 }),
            Err(ShardMsg::Ping { seq: 3 })
        ));
        assert!(router.send(to, LANE_MEETING, disconnect(1)).is_ok());
        let close = ShardMsg::ToConnections {
            conns: vec![7],
            cmd: ConnCmd::Close(crate::meeting::CloseCode::Draining),
        };
        assert!(router.send(to, LANE_CONNECTION, close).is_ok());
        assert!(matches!(
            router.send(to, LANE_MEETING, disconnect(3)),
            Err(ShardMsg::ToMeeting(MeetingCmd::Disconnect { .. }))
        ));
        assert!(router
            .send(to, LANE_MEETING, ShardMsg::Ping { seq: 4 })
            .is_err());
        assert_eq!(router.parked()[to.index()][LANE_MEETING.0 as usize], 3);
        assert_eq!(router.parked()[to.index()][LANE_CONNECTION.0 as usize], 1);
    }

    fn message(conn: u64, text_bytes: usize) -> ShardMsg {
        use crate::signaling::proto::pb::HostMuteRequest;
        use crate::signaling::proto::{client_message, ClientMessage};
        ShardMsg::ToMeeting(MeetingCmd::Message {
            conn: ConnKey { shard: 0, conn },
            meeting_id: "m".into(),
            msg: ClientMessage {
                message: Some(client_message::Message::HostMuteRequest(HostMuteRequest {
                    reason: "r".repeat(text_bytes),
                    ..Default::default()
                })),
                ..Default::default()
            },
            received_at: Instant::now(),
        })
    }

    /// A client's message is weighed by what it holds decoded: 256 empty statuses are
    /// 515 bytes on the wire and about 26 KB in memory, so the message parks at that
    /// weight and counts as a large one against the bytes in flight.
    #[test]
    fn client_messages_weigh_what_they_hold_decoded() {
        use crate::signaling::proto::{client_message, pb, ClientMessage};
        let msg = ClientMessage::of(client_message::Message::MediaConnectionUpdate(
            pb::MediaConnectionUpdate {
                statuses: vec![pb::MhConnectionStatus::default(); 256],
            },
        ));
        assert!(prost::Message::encoded_len(&msg) < 600);
        let msg = ShardMsg::ToMeeting(MeetingCmd::Message {
            conn: ConnKey { shard: 0, conn: 1 },
            meeting_id: "m".into(),
            msg,
            received_at: Instant::now(),
        });
        let bytes = parked_bytes(&msg);
        assert!(bytes > 256 * size_of::<pb::MhConnectionStatus>(), "{bytes}");
        assert_eq!(in_flight_weight(&msg, bytes), bytes);
    }

    /// Messages as large as a frame fill the byte limit long before the message limit;
    /// small ones still park up to the message limit; what is sent on gives its bytes
    /// back; disconnects have their reserve in bytes too.
    #[test]
    fn the_overflow_is_bounded_in_bytes() {
        crate::testing::run_local(the_overflow_is_bounded_in_bytes_on_an_executor());
    }

    async fn the_overflow_is_bounded_in_bytes_on_an_executor() {
        let (mut seeds, _monitor) = shards::Mesh::build::<ShardMsg>(2, &[1; LANES]).expect("mesh");
        let peer = seeds.pop().expect("peer seed").into_handle();
        let me = Rc::new(seeds.pop().expect("own seed").into_handle());
        let big = parked_bytes(&message(0, 64 * 1024));
        assert!(big > 64 * 1024, "{big}");
        let limits = OverflowLimits {
            messages: 1000,
            bytes: 4 * big,
        };
        let mut router = Router::new(me, 2, limits);
        let to = ShardId(1);
        // The queue takes one; four park; the fifth does not fit in bytes.
        for conn in 0..5 {
            assert!(router
                .send(to, LANE_MEETING, message(conn, 64 * 1024))
                .is_ok());
        }
        assert!(router
            .send(to, LANE_MEETING, message(5, 64 * 1024))
            .is_err());
        assert_eq!(router.overflow_bytes, 4 * big);
        // A disconnect still parks, in the reserve.
        assert!(router.send(to, LANE_MEETING, disconnect(9)).is_ok());
        // The peer takes one: one parked message moves to the queue and gives back its
        // bytes.
        assert!(peer.try_recv().is_some());
        router.flush_overflow();
        assert_eq!(
            router.overflow_bytes,
            3 * big + parked_bytes(&disconnect(9))
        );
        assert!(router
            .send(to, LANE_MEETING, message(6, 64 * 1024))
            .is_err());
        assert!(router.send(to, LANE_MEETING, message(7, 10)).is_ok());
        let parked: u32 = router.parked()[to.index()].iter().sum();
        assert_eq!(parked, 5);
    }

    /// Frame-sized client messages fill a queue only up to MAX_IN_FLIGHT_BYTES, then
    /// park; the receiver taking one lets one more through. Small ones are not weighed.
    #[test]
    fn large_client_messages_in_a_queue_are_bounded_in_bytes() {
        crate::testing::run_local(large_client_messages_on_an_executor());
    }

    async fn large_client_messages_on_an_executor() {
        let (mut seeds, _monitor) =
            shards::Mesh::build::<ShardMsg>(2, &[1000; LANES]).expect("mesh");
        let peer = Router::new(
            Rc::new(seeds.pop().expect("peer seed").into_handle()),
            2,
            OverflowLimits {
                messages: 1000,
                bytes: 64 << 20,
            },
        );
        let me = Rc::new(seeds.pop().expect("own seed").into_handle());
        let mut router = Router::new(
            me.clone(),
            2,
            OverflowLimits {
                messages: 1000,
                bytes: 64 << 20,
            },
        );
        let to = ShardId(1);
        let big = parked_bytes(&message(0, 64 * 1024));
        let fit = MAX_IN_FLIGHT_BYTES / big;
        for conn in 0..fit as u64 + 10 {
            assert!(router
                .send(to, LANE_MEETING, message(conn, 64 * 1024))
                .is_ok());
        }
        let parked = |r: &Router| -> u32 { r.parked()[to.index()].iter().sum() };
        assert_eq!(me.in_flight(to), fit * big);
        assert_eq!(parked(&router), 10);
        let small = message(0, LARGE_MESSAGE / 2);
        assert_eq!(in_flight_weight(&small, parked_bytes(&small)), 0);

        assert!(peer.try_recv().is_some());
        assert_eq!(me.in_flight(to), (fit - 1) * big);
        router.flush_overflow();
        assert_eq!(parked(&router), 9);
        assert_eq!(me.in_flight(to), fit * big);
    }

    #[test]
    fn meeting_shard_is_stable_and_in_range() {
        for n in 1..8 {
            for id in ["a", "meeting-1", "", "ü"] {
                let s = meeting_shard(id, n);
                assert!(s.index() < n);
                assert_eq!(s, meeting_shard(id, n));
            }
        }
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(
            meeting_shard("a", 1 << 15),
            ShardId((0xaf63_dc4c_8601_ec8c_u64 % (1 << 15)) as u16)
        );
    }
}

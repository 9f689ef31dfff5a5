//! The shard's meetings: commands from this shard's connections (and from the mesh)
//! run here when the meeting lives here, or go to the owner shard over the mesh;
//! grace deadlines arm the shard's timers.
//!
//! A participant's disconnect that the mesh cannot take even in its reserve
//! ([`crate::router::Router::send`]) is not dropped: nothing else would tell the
//! meeting, and the participant would stay in it for good. It waits here
//! ([`WaitingDisconnects`]) and is sent, in order, as soon as its destination has room.
//! A close for sessions handed back even from the reserve is dropped (counted): its
//! session is closed at its next message instead (`actors::meetings`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shards::ShardId;

use crate::actors::{ConnCmd, MeetingCmd, MeetingEnv};
use crate::meeting::CloseCode;
use crate::router::{Dest, Router, ShardMsg, LANE_MEETING};
use crate::signaling::codec::encode_to_bytes;
use crate::signaling::proto::{ErrorCode, ServerMessage};

use super::{Shard, MEETING_ROUNDS, MEETING_TIMER};

impl Shard {
    /// Meeting commands: local ones run here, the rest go to their meeting's shard.
    pub(super) fn run_meetings(&mut self, now: Instant) {
        self.meeting_cmds.append(&mut self.spare_cmds);
        if self.meeting_cmds.is_empty() {
            return;
        }
        for _ in 0..MEETING_ROUNDS {
            if self.meeting_cmds.is_empty() {
                break;
            }
            let mut cmds = std::mem::take(&mut self.meeting_cmds);
            for cmd in cmds.drain(..) {
                match self.router.meeting(cmd.meeting_id()) {
                    Dest::Local => {
                        let mut d = delivery!(self, now);
                        self.meetings.handle(&mut d, now, cmd);
                    }
                    Dest::Remote(to) => {
                        // A disconnect goes behind those already waiting for `to`.
                        let behind = matches!(cmd, MeetingCmd::Disconnect { .. })
                            && self.waiting.holds_for(to);
                        let refused = if behind {
                            Err(cmd)
                        } else {
                            send_to_meeting(&mut self.router, to, cmd)
                        };
                        let Err(cmd) = refused else { continue };
                        let Err(cmd) = self.waiting.push(now, to, cmd) else {
                            continue;
                        };
                        self.env.metrics.dropped_meeting.inc();
                        self.refuse_dropped(now, cmd);
                    }
                }
            }
            // Keep the allocation; follow-ups from deliveries run in the next round.
            self.meeting_cmds = cmds;
            self.meeting_cmds.append(&mut self.spare_cmds);
        }
        self.arm_meetings();
    }

    /// A command the meeting's full queue could not take: the client is told.
    fn refuse_dropped(&mut self, now: Instant, cmd: MeetingCmd) {
        let (conn, error, close) = match cmd {
            MeetingCmd::Join { conn, .. } => (
                conn,
                ServerMessage::error(
                    ErrorCode::CapacityExceeded,
                    "the meeting's shard is overloaded; retry",
                ),
                Some(CloseCode::Capacity),
            ),
            MeetingCmd::Message { conn, .. } => (
                conn,
                ServerMessage::error(
                    ErrorCode::InternalError,
                    "server busy: message dropped, please retry",
                ),
                None,
            ),
            MeetingCmd::Disconnect { .. } => return,
        };
        let mut d = delivery!(self, now);
        if let Ok(frame) = encode_to_bytes(&error, d.env.settings.session.max_frame) {
            d.deliver(
                conn,
                ConnCmd::Frame {
                    frame,
                    join_response: false,
                    at: now,
                },
            );
        }
        if let Some(code) = close {
            d.deliver(conn, ConnCmd::Close(code));
        }
    }

    /// Disconnects that waited for room go to the mesh, in order, until a destination's
    /// queue and overflow are full again.
    pub(super) fn send_waiting_disconnects(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let router = &mut self.router;
        self.waiting
            .send(|to, cmd| send_to_meeting(router, to, cmd).err());
    }

    pub(super) fn arm_meetings(&mut self) {
        let next = self.meetings.poll_timeout();
        self.timers.update(MEETING_TIMER, next);
    }
}

/// `cmd` to the meeting's shard `to` over the mesh; handed back when it cannot take it.
#[allow(clippy::result_large_err)] // handing the command back is the point
fn send_to_meeting(router: &mut Router, to: ShardId, cmd: MeetingCmd) -> Result<(), MeetingCmd> {
    match router.send(to, LANE_MEETING, ShardMsg::ToMeeting(cmd)) {
        Ok(()) => Ok(()),
        Err(ShardMsg::ToMeeting(cmd)) => Err(cmd),
        Err(_) => unreachable!("a ToMeeting was sent"),
    }
}

/// Participants' disconnects the mesh could not take, per destination shard, in order.
///
/// At most `limit` on this shard: as many as the seats of all meetings together
/// (`MC_CAPACITY` × `MC_MAX_PARTICIPANTS_PER_MEETING`), since each is a participant's
/// seat that would otherwise never be given back. Past it a disconnect is dropped and
/// counted in `mc_messages_dropped_total`, as any other message. Either is logged as a
/// warning, at most once every [`WARN_EVERY`].
pub(super) struct WaitingDisconnects {
    per_shard: Vec<VecDeque<MeetingCmd>>,
    len: usize,
    limit: usize,
    warned: Option<Instant>,
}

/// Least time between two warnings of [`WaitingDisconnects`].
const WARN_EVERY: Duration = Duration::from_secs(10);

impl WaitingDisconnects {
    pub(super) fn new(shards: usize, limit: usize) -> Self {
        Self {
            per_shard: (0..shards).map(|_| VecDeque::new()).collect(),
            len: 0,
            limit,
            warned: None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// How many wait for each destination shard.
    pub(super) fn per_shard(&self) -> impl Iterator<Item = usize> + '_ {
        self.per_shard.iter().map(VecDeque::len)
    }

    /// Disconnects wait for `to`: a new one goes behind them.
    fn holds_for(&self, to: ShardId) -> bool {
        self.per_shard
            .get(to.index())
            .is_some_and(|q| !q.is_empty())
    }

    /// Keeps the disconnect `cmd` for `to`; hands back anything else, and a disconnect
    /// past the limit.
    #[allow(clippy::result_large_err)] // handing the command back is the point
    fn push(&mut self, now: Instant, to: ShardId, cmd: MeetingCmd) -> Result<(), MeetingCmd> {
        let (MeetingCmd::Disconnect { .. }, Some(queue)) =
            (&cmd, self.per_shard.get_mut(to.index()))
        else {
            return Err(cmd);
        };
        let full = self.len >= self.limit;
        if self
            .warned
            .is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY)
        {
            self.warned = Some(now);
            if full {
                tracing::warn!(
                    to = %to,
                    waiting = self.len,
                    "participants' disconnects waiting on this shard reached their limit: one was dropped, and its participant stays in its meeting until the meeting ends"
                );
            } else {
                tracing::warn!(
                    to = %to,
                    waiting = self.len + 1,
                    "the meeting shard's queue, overflow and reserve are full: participants' disconnects wait on this shard"
                );
            }
        }
        if full {
            return Err(cmd);
        }
        queue.push_back(cmd);
        self.len += 1;
        Ok(())
    }

    /// Offers each destination's disconnects to `send` in order; one handed back stays
    /// first and that destination waits for the next pass.
    fn send(&mut self, mut send: impl FnMut(ShardId, MeetingCmd) -> Option<MeetingCmd>) {
        for (to, queue) in self.per_shard.iter_mut().enumerate() {
            while let Some(cmd) = queue.pop_front() {
                if let Some(cmd) = send(ShardId(to as u16), cmd) {
                    queue.push_front(cmd);
                    break;
                }
                self.len -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meeting::ConnKey;

    fn disconnect(conn: u64) -> MeetingCmd {
        MeetingCmd::Disconnect {
            conn: ConnKey { shard: 0, conn },
            meeting_id: "m".into(),
            clean: conn % 2 == 0,
        }
    }

    fn conn_of(cmd: &MeetingCmd) -> u64 {
        match cmd {
            MeetingCmd::Disconnect { conn, .. } => conn.conn,
            _ => unreachable!(),
        }
    }

    /// Disconnects wait up to the limit and leave in order, per destination, as far as
    /// each destination takes them; what a destination refuses waits first.
    #[test]
    fn waiting_disconnects_leave_in_order_as_room_comes() {
        let now = Instant::now();
        let mut waiting = WaitingDisconnects::new(3, 5);
        assert!(!waiting.holds_for(ShardId(1)));
        let message = MeetingCmd::Message {
            conn: ConnKey { shard: 0, conn: 13 },
            meeting_id: "m".into(),
            msg: Default::default(),
            received_at: now,
        };
        assert!(
            waiting.push(now, ShardId(1), message).is_err(),
            "not a disconnect"
        );
        assert!(!waiting.holds_for(ShardId(1)));
        for conn in 0..4 {
            assert!(waiting.push(now, ShardId(1), disconnect(conn)).is_ok());
        }
        assert!(waiting.push(now, ShardId(2), disconnect(10)).is_ok());
        let back = waiting.push(now, ShardId(2), disconnect(11));
        assert_eq!(back.as_ref().map_err(conn_of), Err(11), "past the limit");
        assert!(
            waiting.push(now, ShardId(7), disconnect(12)).is_err(),
            "no such shard"
        );

        assert!(waiting.holds_for(ShardId(1)) && waiting.holds_for(ShardId(2)));
        assert_eq!(waiting.len(), 5);
        // Shard 1 takes two, then is full; shard 2 takes its one.
        let mut sent = Vec::new();
        let mut room = 2;
        waiting.send(|to, cmd| {
            if to == ShardId(1) {
                if room == 0 {
                    return Some(cmd);
                }
                room -= 1;
            }
            sent.push((to.0, conn_of(&cmd)));
            None
        });
        assert_eq!(sent, [(1, 0), (1, 1), (2, 10)]);
        assert_eq!(waiting.len(), 2);
        assert!(!waiting.holds_for(ShardId(2)));
        let mut rest = Vec::new();
        waiting.send(|to, cmd| {
            rest.push((to.0, conn_of(&cmd)));
            None
        });
        assert_eq!(rest, [(1, 2), (1, 3)]);
        assert!(waiting.is_empty());
    }
}

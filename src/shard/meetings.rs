//! The shard's meetings: commands from this shard's connections (and from the mesh)
//! run here when the meeting lives here, or go to the owner shard over the mesh;
//! grace deadlines arm the shard's timers.

use std::time::Instant;

use crate::actors::{ConnCmd, MeetingCmd, MeetingEnv};
use crate::meeting::CloseCode;
use crate::router::{Dest, ShardMsg, LANE_MEETING};
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
                        if let Err(msg) =
                            self.router.send(to, LANE_MEETING, ShardMsg::ToMeeting(cmd))
                        {
                            self.env.metrics.dropped_meeting.inc();
                            if let ShardMsg::ToMeeting(cmd) = msg {
                                self.refuse_dropped(now, cmd);
                            }
                        }
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

    pub(super) fn arm_meetings(&mut self) {
        let next = self.meetings.poll_timeout();
        self.timers.update(MEETING_TIMER, next);
    }
}

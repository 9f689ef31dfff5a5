//! The shard's mesh inbox: what other executors sent it, taken at most
//! [`MAX_MESSAGES_PER_PASS`] per pass so a flood on the mesh cannot starve the socket.
//!
//! | message | where it goes |
//! |---|---|
//! | `Forwarded` (a datagram another shard received for our connection) | `quic::endpoint` |
//! | `ToMeeting` (a command for a meeting we own) | this pass's meeting commands |
//! | `ToConnections` (a frame or close for our connections) | their streams (`delivery`) |
//! | `Ping` | answered with `Pong` and this shard's load |
//! | `EndMeetings` (drain timeout) | every meeting ends |
//! | drain and migration requests | `handover` |

use std::time::Instant;

use crate::meeting::ConnKey;
use crate::router::{ShardMsg, LANE_CONTROL};

use super::delivery::deliver_local;
use super::Shard;

/// Most mesh messages handled in one pass.
const MAX_MESSAGES_PER_PASS: usize = 256;

impl Shard {
    /// Mesh messages, at most [`MAX_MESSAGES_PER_PASS`]; true when that bound was hit.
    pub(super) fn take_messages(&mut self, now: Instant) -> bool {
        for _ in 0..MAX_MESSAGES_PER_PASS {
            let Some((from, _lane, msg)) = self.router.try_recv() else {
                self.meeting_cmds.append(&mut self.spare_cmds);
                return false;
            };
            match msg {
                ShardMsg::Forwarded(f) => self.quic.push_forwarded(f),
                ShardMsg::ToMeeting(cmd) => self.meeting_cmds.push(cmd),
                ShardMsg::ToConnections { conns, cmd } => {
                    for conn in conns {
                        let key = ConnKey {
                            shard: self.env.id.0,
                            conn,
                        };
                        deliver_local(
                            now,
                            &mut self.conns,
                            &mut self.dirty,
                            &mut self.env,
                            &mut self.spare_cmds,
                            &mut self.fanouts,
                            key,
                            cmd.clone(),
                        );
                    }
                }
                ShardMsg::Ping { seq } => {
                    self.publish_stats();
                    let pong = ShardMsg::Pong {
                        seq,
                        load: self.load(),
                    };
                    // A full control lane means the control plane is behind; it pings
                    // again, so dropping this pong loses nothing.
                    let _ = self
                        .router
                        .mesh()
                        .try_send(self.control, LANE_CONTROL, pong);
                }
                ShardMsg::EndMeetings => {
                    tracing::debug!(shard = %self.env.id, "drain end: ending meetings");
                    let redirect = self.env.settings.redirect_endpoint.clone();
                    let mut d = delivery!(self, now);
                    self.meetings.end_all(&mut d, now, redirect.as_deref());
                }
                ShardMsg::Pong { .. } => {
                    tracing::warn!(shard = %self.env.id, %from, "unexpected pong on a shard");
                }
                msg => self.handle_handover(now, msg),
            }
        }
        self.meeting_cmds.append(&mut self.spare_cmds);
        true
    }
}

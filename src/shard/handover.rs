//! The shard's side of a drain and of live migration (docs/protocol.md rules 17–21): the
//! control plane's requests on the control lane, carried out on this shard's meetings,
//! and the answers sent back on the same lane.
//!
//! | request | what the shard does | answer |
//! |---|---|---|
//! | `ListMeetings` | lists its meetings and counts its sessions | `LiveMeetings` |
//! | `ExportMeeting` | freezes the meeting and exports its state | `Exported` |
//! | `CommitHandover` | redirects the meeting's participants and ends it | — |
//! | `AbortHandover` | unfreezes the meeting | — |
//! | `ImportMeeting` | decides, then builds the meeting with everyone in grace | `Imported` |
//!
//! Every answer is one `try_send`: nothing here waits. When an answer does not fit in
//! the control lane, the request is undone where it can be (an export is aborted, an
//! import forgotten), and the control plane's own deadline covers the rest, so a meeting
//! is never left frozen or imported behind the control plane's back.

use std::time::Instant;

use crate::drain::LiveReport;
use crate::migration::ImportAnswer;
use crate::router::{ShardMsg, LANE_CONTROL};

use super::Shard;

impl Shard {
    /// One request of the table above; anything else is not for a shard.
    pub(super) fn handle_handover(&mut self, now: Instant, msg: ShardMsg) {
        match msg {
            ShardMsg::ListMeetings { id } => {
                let report = LiveReport {
                    meetings: self.meetings.live_meetings(),
                    sessions: self.conns.len() as u64,
                };
                // A lost answer: the drain's list times out and asks again.
                let _ = self.reply(ShardMsg::LiveMeetings { id, report });
            }
            ShardMsg::ExportMeeting { id, meeting_id } => {
                let snapshot = {
                    let mut d = delivery!(self, now);
                    self.meetings.begin_handover(&mut d, now, &meeting_id)
                };
                let frozen = snapshot.is_some();
                let answer = ShardMsg::Exported {
                    id,
                    snapshot: snapshot.map(Box::new),
                };
                if self.reply(answer).is_err() && frozen {
                    tracing::warn!(
                        meeting_id,
                        "hand-over export not delivered; meeting unfrozen"
                    );
                    let mut d = delivery!(self, now);
                    self.meetings.abort_handover(&mut d, now, &meeting_id);
                }
                self.arm_meetings();
            }
            ShardMsg::CommitHandover {
                meeting_id,
                endpoint,
                reason,
            } => {
                let mut d = delivery!(self, now);
                self.meetings
                    .commit_handover(&mut d, now, &meeting_id, &endpoint, reason);
            }
            ShardMsg::AbortHandover { meeting_id } => {
                {
                    let mut d = delivery!(self, now);
                    self.meetings.abort_handover(&mut d, now, &meeting_id);
                }
                self.arm_meetings();
            }
            ShardMsg::ImportMeeting {
                id,
                request,
                deadline,
            } => {
                // The clock is read here, not taken from the pass: a pass that carried
                // other imports (each decoded and hashed) may have begun long before.
                if Instant::now() > deadline {
                    // The admin plane has answered 503 already: importing now would
                    // leave the meeting here while the source keeps it.
                    tracing::warn!(
                        meeting_id = %request.snapshot.meeting_id,
                        "import reached the shard after its deadline; not imported"
                    );
                    return;
                }
                let meeting_id = request.snapshot.meeting_id.clone();
                let answer = {
                    let mut d = delivery!(self, now);
                    self.meetings.import(&mut d, now, *request)
                };
                let accepted = answer == ImportAnswer::Accepted;
                if self.reply(ShardMsg::Imported { id, answer }).is_err() && accepted {
                    let mut d = delivery!(self, now);
                    self.meetings.forget_imported(&mut d, &meeting_id);
                }
                self.arm_meetings();
            }
            other => {
                tracing::warn!(shard = %self.env.id, msg = ?other, "unexpected control message on a shard");
            }
        }
    }

    /// An answer to the control plane; `Err` when its lane is full.
    fn reply(&self, msg: ShardMsg) -> Result<(), ()> {
        self.router
            .mesh()
            .try_send(self.control, LANE_CONTROL, msg)
            .map_err(|_| ())
    }
}

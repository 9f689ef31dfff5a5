//! Grid layouts (docs/protocol.md "Semantics the MC owns" → Layouts; Precise rule 11).
//!
//! slots = `max_streams`, or `rows × columns` when 0 (capped by config). Candidates are
//! the other participants (self only with `include_self`), never `excluded_users`,
//! `pinned_users` first in their given order, then by join time — participants with
//! video before audio-only ones when `prefer_video_over_audio`. A slot carries the
//! participant's best stream: screen, then camera, then audio. The result depends only on
//! the roster's order and each participant's best stream, so layouts are recomputed when
//! one of those changes (a join, a leave, a publication that changes a best stream) and
//! never on mute changes: every subscriber's computation walks the roster and its own
//! lists, and a participant may send a mute change 50 times a second.

use std::sync::Arc;

use super::layout_sub::LayoutSub;
use super::roster::Participant;
use super::{ConnKey, Meeting, MeetingConfig};
use crate::signaling::proto::{pb, server_message::Message as S, ErrorCode, ServerMessage};

/// The stream a slot shows for `p` (rule 11), if `p` publishes any.
pub(super) fn best_stream(p: &Participant) -> Option<pb::MediaType> {
    let has = |t: pb::StreamType| p.streams.iter().any(|s| s.stream_type == t as i32);
    if has(pb::StreamType::VideoScreen) {
        Some(pb::MediaType::MediaVideoScreen)
    } else if has(pb::StreamType::VideoCamera) {
        Some(pb::MediaType::MediaVideoCamera)
    } else if has(pb::StreamType::Audio) {
        Some(pb::MediaType::MediaAudio)
    } else {
        None
    }
}

/// Rule 11 for the subscriber `me` (by join `seq`).
///
/// A computation costs about the roster plus the subscriber's lists, not their
/// product: `excluded_users` is looked up in a sorted copy, `pinned_users` in the
/// roster sorted by user id, and who is taken in a flag per participant. Every roster
/// change recomputes every subscriber's layout, and each list may hold
/// `max_layout_list` (256) entries.
pub(super) fn compute(
    me: u64,
    sub: &LayoutSub,
    roster: &[Participant],
    cfg: &MeetingConfig,
) -> Vec<pb::StreamAssignment> {
    let c = &sub.config;
    let slots = if c.max_streams > 0 {
        u64::from(c.max_streams)
    } else {
        u64::from(c.rows) * u64::from(c.columns)
    };
    let slots = slots.min(cfg.max_layout_slots as u64) as usize;
    let mut excluded = c.excluded_users.clone();
    excluded.sort_unstable();
    let eligible = |p: &Participant| {
        (p.seq != me || c.include_self) && excluded.binary_search(&p.user_id).is_err()
    };
    // By user id, then roster (join) order.
    let mut by_user: Vec<(u64, usize)> = roster
        .iter()
        .enumerate()
        .map(|(i, p)| (p.user_id, i))
        .collect();
    by_user.sort_unstable();
    let mut taken = vec![false; roster.len()];
    let mut chosen: Vec<(&Participant, pb::MediaType)> = Vec::with_capacity(slots);
    for uid in &c.pinned_users {
        if chosen.len() >= slots {
            break;
        }
        let from = by_user.partition_point(|&(u, _)| u < *uid);
        for &(_, i) in by_user[from..].iter().take_while(|&&(u, _)| u == *uid) {
            let Some(p) = roster.get(i) else { continue };
            if chosen.len() < slots && !taken[i] && eligible(p) {
                if let Some(t) = best_stream(p) {
                    chosen.push((p, t));
                    taken[i] = true;
                }
            }
        }
    }
    let pinned = chosen.len();
    for (i, p) in roster.iter().enumerate() {
        if !taken[i] && eligible(p) {
            if let Some(t) = best_stream(p) {
                chosen.push((p, t));
            }
        }
    }
    if c.prefer_video_over_audio {
        // Stable: join order is kept within each group; pinned stay first.
        if let Some(rest) = chosen.get_mut(pinned..) {
            rest.sort_by_key(|(_, t)| *t == pb::MediaType::MediaAudio);
        }
    }
    chosen.truncate(slots);
    let url = cfg.media_servers.first().cloned().unwrap_or_default();
    chosen
        .iter()
        .enumerate()
        .map(|(i, (p, t))| pb::StreamAssignment {
            stream_id: sub.stream_ids.get(i).copied().unwrap_or(i as u32),
            user_id: p.user_id,
            media_type: *t as i32,
            slot_index: i as u32,
            media_handler_url: url.clone(),
        })
        .collect()
}

fn check_config(cfg: &MeetingConfig, c: &pb::LayoutConfig) -> Result<(), &'static str> {
    if c.pinned_users.len() > cfg.max_layout_list || c.excluded_users.len() > cfg.max_layout_list {
        return Err("layout user list too long");
    }
    Ok(())
}

impl Meeting {
    pub(super) fn on_subscribe(&mut self, idx: usize, conn: ConnKey, s: pb::SubscribeToLayout) {
        if pb::LayoutType::try_from(s.layout_type) != Ok(pb::LayoutType::Grid) {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "unknown layout_type");
        }
        let config = s.config.unwrap_or_default();
        if let Err(why) = check_config(&self.cfg, &config) {
            return self.reply_error(conn, ErrorCode::InvalidRequest, why);
        }
        if s.stream_ids.len() > self.cfg.max_layout_list {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "too many stream_ids");
        }
        let Some(p) = self.participants.get_mut(idx) else {
            return;
        };
        p.layout = Some(LayoutSub {
            config,
            stream_ids: s.stream_ids,
            last: None,
        });
        self.send_layout_now(idx);
    }

    pub(super) fn on_update_layout(&mut self, idx: usize, conn: ConnKey, u: pb::UpdateLayout) {
        let Some(config) = u.new_config else {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "new_config missing");
        };
        if let Err(why) = check_config(&self.cfg, &config) {
            return self.reply_error(conn, ErrorCode::InvalidRequest, why);
        }
        let Some(sub) = self
            .participants
            .get_mut(idx)
            .and_then(|p| p.layout.as_mut())
        else {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "no layout subscription");
        };
        sub.config = config;
        self.send_layout_now(idx);
    }

    /// Computes and sends `idx`'s assignments unconditionally (subscribe, update,
    /// recovery).
    pub(super) fn send_layout_now(&mut self, idx: usize) {
        let Some(p) = self.participants.get(idx) else {
            return;
        };
        let (Some(sub), Some(conn)) = (&p.layout, p.conn) else {
            return;
        };
        let a = compute(p.seq, sub, &self.participants, &self.cfg);
        self.stats.layout_computes += 1;
        self.send_assignments(idx, conn, a);
    }

    /// Recomputes every subscription and re-sends only those whose result changed.
    pub(super) fn refresh_layouts(&mut self) {
        for idx in 0..self.participants.len() {
            let Some(p) = self.participants.get(idx) else {
                continue;
            };
            let (Some(sub), Some(conn)) = (&p.layout, p.conn) else {
                continue;
            };
            let a = compute(p.seq, sub, &self.participants, &self.cfg);
            self.stats.layout_computes += 1;
            if sub.last.as_ref() != Some(&a) {
                self.send_assignments(idx, conn, a);
            }
        }
    }

    fn send_assignments(&mut self, idx: usize, conn: ConnKey, a: Vec<pb::StreamAssignment>) {
        let msg = ServerMessage::of(S::StreamAssignments(pb::StreamAssignments {
            assignments: a.clone(),
        }));
        if let Some(sub) = self
            .participants
            .get_mut(idx)
            .and_then(|p| p.layout.as_mut())
        {
            sub.last = Some(a);
        }
        self.stats.layout_sends += 1;
        self.send(conn, Arc::new(msg));
    }
}

//! Grid layouts (docs/protocol.md "Semantics the MC owns" → Layouts; Precise rule 11).
//!
//! slots = `max_streams`, or `rows × columns` when 0 (capped by config). Candidates are
//! the other participants (self only with `include_self`), never `excluded_users`,
//! `pinned_users` first in their given order, then by join time — participants with
//! video before audio-only ones when `prefer_video_over_audio`. A slot carries the
//! participant's best stream: screen, then camera, then audio. The result depends only on
//! the roster's order and each participant's best stream, so layouts are recomputed when
//! one of those changes for a participant a layout can show (the leave of one with
//! streams, a publication that changes a best stream; a newcomer has none) and never on
//! mute changes: a participant may send a mute change 50 times a second.

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

/// What every subscriber's computation reads from the roster, taken once per roster
/// change rather than once per subscriber: each participant's best stream, the roster
/// by user id, and the candidates in join order (all of them, and those with video
/// apart from the audio-only ones).
pub(super) struct Candidates {
    best: Vec<Option<pb::MediaType>>,
    by_user: Vec<(u64, usize)>,
    any: Vec<usize>,
    video: Vec<usize>,
    audio: Vec<usize>,
    /// Who a computation has taken, by roster index; cleared after each.
    taken: Vec<bool>,
    /// What the last computation chose, in slot order: roster index and media type.
    chosen: Vec<(usize, pb::MediaType)>,
}

impl Candidates {
    pub(super) fn new(roster: &[Participant]) -> Self {
        let best: Vec<_> = roster.iter().map(best_stream).collect();
        // By user id, then roster (join) order.
        let mut by_user: Vec<(u64, usize)> = roster
            .iter()
            .enumerate()
            .map(|(i, p)| (p.user_id, i))
            .collect();
        by_user.sort_unstable();
        let mut c = Self {
            by_user,
            any: Vec::new(),
            video: Vec::new(),
            audio: Vec::new(),
            taken: vec![false; roster.len()],
            chosen: Vec::new(),
            best,
        };
        for (i, b) in c.best.iter().enumerate() {
            match b {
                None => continue,
                Some(pb::MediaType::MediaAudio) => c.audio.push(i),
                Some(_) => c.video.push(i),
            }
            c.any.push(i);
        }
        c
    }
}

/// The meeting's kept layout index, taken out of `kept`, or built now if a roster change
/// dropped it (or, defensively, if it does not describe a roster of this length).
fn kept_index(kept: &mut Option<Candidates>, roster: &[Participant]) -> Candidates {
    match kept.take() {
        Some(c) if c.best.len() == roster.len() => c,
        _ => Candidates::new(roster),
    }
}

impl Participant {
    /// The subscription to compute and the connection to send it to, if it has both.
    fn layout_target(&self) -> Option<(&LayoutSub, ConnKey)> {
        Some((self.layout.as_ref()?, self.conn?))
    }
}

/// Rule 11 for the subscriber `me` (by join `seq`), with a fresh index: what the
/// meeting's kept index must agree with.
#[cfg(test)]
pub(super) fn compute(
    me: u64,
    sub: &LayoutSub,
    roster: &[Participant],
    cfg: &MeetingConfig,
) -> Vec<pb::StreamAssignment> {
    compute_with(me, sub, roster, &mut Candidates::new(roster), cfg)
}

/// Rule 11 for the subscriber `me` (by join `seq`), with the roster's [`Candidates`]
/// (kept by the meeting between roster changes).
pub(super) fn compute_with(
    me: u64,
    sub: &LayoutSub,
    roster: &[Participant],
    cands: &mut Candidates,
    cfg: &MeetingConfig,
) -> Vec<pb::StreamAssignment> {
    choose(me, sub, roster, cands, cfg);
    assignments(sub, roster, &cands.chosen, cfg)
}

/// Rule 11 for the subscriber `me`, with the roster's [`Candidates`]: fills
/// `cands.chosen`.
///
/// A computation costs the subscriber's lists and its slots, not the roster: the
/// pinned users (each once: [`LayoutSub::set_config`]) are looked up in the roster by
/// user id, each walking only that user's seats, and the others are taken in
/// join order until the slots are full, each excluded one skipped by a look-up in the
/// sorted list. A change that can move anyone in a layout recomputes every subscriber's
/// layout, and each list may hold `max_layout_list` (256) entries.
fn choose(
    me: u64,
    sub: &LayoutSub,
    roster: &[Participant],
    cands: &mut Candidates,
    cfg: &MeetingConfig,
) {
    let c = sub.config();
    let slots = if c.max_streams > 0 {
        u64::from(c.max_streams)
    } else {
        u64::from(c.rows) * u64::from(c.columns)
    };
    let slots = slots.min(cfg.max_layout_slots as u64) as usize;
    let eligible = |p: &Participant| {
        (p.seq != me || c.include_self) && sub.excluded().binary_search(&p.user_id).is_err()
    };
    let mut chosen = std::mem::take(&mut cands.chosen);
    chosen.clear();
    for uid in &c.pinned_users {
        if chosen.len() >= slots {
            break;
        }
        let from = cands.by_user.partition_point(|&(u, _)| u < *uid);
        for &(_, i) in cands.by_user[from..]
            .iter()
            .take_while(|&&(u, _)| u == *uid)
        {
            let (Some(p), Some(Some(t))) = (roster.get(i), cands.best.get(i)) else {
                continue;
            };
            if chosen.len() < slots && !cands.taken[i] && eligible(p) {
                chosen.push((i, *t));
                cands.taken[i] = true;
            }
        }
    }
    // Then in join order; with `prefer_video_over_audio`, those with video first.
    let (first, then): (&[usize], &[usize]) = if c.prefer_video_over_audio {
        (&cands.video, &cands.audio)
    } else {
        (&cands.any, &[])
    };
    for &i in first.iter().chain(then) {
        if chosen.len() >= slots {
            break;
        }
        let (Some(p), Some(Some(t))) = (roster.get(i), cands.best.get(i)) else {
            continue;
        };
        if !cands.taken[i] && eligible(p) {
            chosen.push((i, *t));
        }
    }
    for &(i, _) in &chosen {
        cands.taken[i] = false;
    }
    cands.chosen = chosen;
}

/// The assignments of `chosen` (roster index and media type, in slot order).
fn assignments(
    sub: &LayoutSub,
    roster: &[Participant],
    chosen: &[(usize, pb::MediaType)],
    cfg: &MeetingConfig,
) -> Vec<pb::StreamAssignment> {
    let url = cfg.media_servers.first().map_or("", String::as_str);
    chosen
        .iter()
        .enumerate()
        .map(|(slot, &(i, t))| pb::StreamAssignment {
            // The subscriber's stream id for the slot, else the slot's index.
            stream_id: sub.stream_ids.get(slot).copied().unwrap_or(slot as u32),
            user_id: roster[i].user_id,
            media_type: t as i32,
            slot_index: slot as u32,
            media_handler_url: url.to_owned(),
        })
        .collect()
}

/// Whether `chosen` puts the same participants with the same media types in the same
/// slots as the assignments last sent: then nothing is built or sent.
fn unchanged(sub: &LayoutSub, roster: &[Participant], chosen: &[(usize, pb::MediaType)]) -> bool {
    let Some(last) = &sub.last else {
        return false;
    };
    last.len() == chosen.len()
        && last
            .iter()
            .zip(chosen)
            .all(|(&(user, media), &(i, t))| user == roster[i].user_id && media == t as i32)
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
        p.layout = Some(LayoutSub::new(config, s.stream_ids));
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
        sub.set_config(config);
        self.send_layout_now(idx);
    }

    /// Computes and sends `idx`'s assignments unconditionally (subscribe, update,
    /// recovery).
    pub(super) fn send_layout_now(&mut self, idx: usize) {
        let Some(p) = self.participants.get(idx) else {
            return;
        };
        let Some((sub, conn)) = p.layout_target() else {
            return;
        };
        let mut cands = kept_index(&mut self.layout_index, &self.participants);
        let a = compute_with(p.seq, sub, &self.participants, &mut cands, &self.cfg);
        self.layout_index = Some(cands);
        self.stats.layout_computes += 1;
        self.send_assignments(idx, conn, a);
    }

    /// Recomputes every subscription and re-sends only those whose result changed.
    pub(super) fn refresh_layouts(&mut self) {
        // Taken at the first subscriber: a meeting nobody subscribes in pays nothing.
        let mut cands: Option<Candidates> = None;
        for idx in 0..self.participants.len() {
            let Some(p) = self.participants.get(idx) else {
                continue;
            };
            let Some((sub, conn)) = p.layout_target() else {
                continue;
            };
            let cands =
                cands.get_or_insert_with(|| kept_index(&mut self.layout_index, &self.participants));
            choose(p.seq, sub, &self.participants, cands, &self.cfg);
            self.stats.layout_computes += 1;
            if !unchanged(sub, &self.participants, &cands.chosen) {
                let a = assignments(sub, &self.participants, &cands.chosen, &self.cfg);
                self.send_assignments(idx, conn, a);
            }
        }
        if cands.is_some() {
            self.layout_index = cands;
        }
    }

    fn send_assignments(&mut self, idx: usize, conn: ConnKey, a: Vec<pb::StreamAssignment>) {
        if let Some(sub) = self
            .participants
            .get_mut(idx)
            .and_then(|p| p.layout.as_mut())
        {
            sub.last = Some(a.iter().map(|x| (x.user_id, x.media_type)).collect());
        }
        let msg = ServerMessage::of(S::StreamAssignments(pb::StreamAssignments {
            assignments: a,
        }));
        self.stats.layout_sends += 1;
        self.send(conn, Arc::new(msg));
    }
}

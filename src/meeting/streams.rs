//! Stream publication (docs/protocol.md "Semantics the MC owns" → Streams; rule 10).

use std::time::Instant;

use super::layout::best_stream;
use super::{ConnKey, Meeting, MeetingConfig};
use crate::signaling::proto::{pb, server_message::Message as S, ErrorCode};

/// Rule 10 checks; the error text goes back in `ErrorMessage{INVALID_REQUEST}`.
pub(super) fn validate(cfg: &MeetingConfig, p: &pb::PublishStream) -> Result<(), &'static str> {
    if p.stream_id.is_empty() {
        return Err("stream_id is empty");
    }
    if p.stream_id.len() > cfg.max_stream_id_len {
        return Err("stream_id too long");
    }
    if pb::StreamType::try_from(p.stream_type).is_err() {
        return Err("unknown stream_type");
    }
    let Some(meta) = &p.metadata else {
        return Ok(());
    };
    if meta.codec.len() > cfg.max_codec_len {
        return Err("codec too long");
    }
    if let Some(video) = &meta.video {
        if video.simulcast_layers.len() > cfg.max_simulcast_layers {
            return Err("too many simulcast layers");
        }
        if video
            .simulcast_layers
            .iter()
            .any(|l| l.layer_id.len() > cfg.max_stream_id_len)
        {
            return Err("layer_id too long");
        }
    }
    Ok(())
}

/// What a publication must meet beyond [`validate`]: no control character (Unicode Cc)
/// in its stream id, codec or layer ids. No client needs one, and each of U+0000–U+001F
/// takes six bytes in a hand-over's JSON: a meeting's participants could otherwise make
/// its snapshot too large to move (docs/gc-api.md, "Hand over a meeting"). A snapshot
/// is not held to it, so meetings of an MC without this check still move.
fn validate_from_client(cfg: &MeetingConfig, p: &pb::PublishStream) -> Result<(), &'static str> {
    validate(cfg, p)?;
    let has_control = |s: &str| s.chars().any(char::is_control);
    if has_control(&p.stream_id) {
        return Err("stream_id has a control character");
    }
    let Some(meta) = &p.metadata else {
        return Ok(());
    };
    if has_control(&meta.codec) {
        return Err("codec has a control character");
    }
    let mut layers = meta.video.iter().flat_map(|v| &v.simulcast_layers);
    if layers.any(|l| has_control(&l.layer_id)) {
        return Err("layer_id has a control character");
    }
    Ok(())
}

impl Meeting {
    /// Validates, stores (re-publishing an id replaces it) and broadcasts
    /// `StreamPublished` to every participant, the publisher included; then layouts, if
    /// the publisher's best stream changed.
    /// A valid publication refused by the meeting's broadcast budget stores nothing.
    pub(super) fn on_publish(
        &mut self,
        now: Instant,
        idx: usize,
        conn: ConnKey,
        p: pb::PublishStream,
    ) {
        if let Err(why) = validate_from_client(&self.cfg, &p) {
            return self.reply_error(conn, ErrorCode::InvalidRequest, why);
        }
        let max = self.cfg.max_streams_per_participant;
        let Some(me) = self.participants.get_mut(idx) else {
            return;
        };
        let stream = pb::MediaStream {
            stream_id: p.stream_id,
            stream_type: p.stream_type,
            metadata: p.metadata,
        };
        let existing = me
            .streams
            .iter()
            .position(|s| s.stream_id == stream.stream_id);
        if existing.is_none() && me.streams.len() >= max {
            return self.reply_error(conn, ErrorCode::InvalidRequest, "too many streams");
        }
        if !self.take_broadcast(now, idx, conn) {
            return;
        }
        let Some(me) = self.participants.get_mut(idx) else {
            return;
        };
        let best_before = best_stream(me);
        match existing.and_then(|i| me.streams.get_mut(i)) {
            Some(slot) => *slot = stream.clone(),
            None => me.streams.push(stream.clone()),
        }
        // Layouts show each participant's best stream only (rule 11): a publication
        // that leaves it as it was (a re-publication, a second stream of a kind) changes
        // no subscriber's assignments and recomputes none.
        let best_changed = best_stream(me) != best_before;
        let published = S::StreamPublished(pb::StreamPublished {
            participant_id: me.participant_id.clone(),
            stream: Some(stream),
        });
        self.stats.streams_published += 1;
        self.broadcast(published, None);
        if best_changed {
            self.layout_index = None;
            self.refresh_layouts();
        }
    }
}

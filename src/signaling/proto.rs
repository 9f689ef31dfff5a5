//! The generated `dark_tower.signaling.v1` messages (proto/signaling.proto, written from
//! docs/protocol.md "Messages" and "Enums"), plus small constructors the MC uses often.

/// prost-generated types for package `dark_tower.signaling.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/dark_tower.signaling.v1.rs"));
}

pub use pb::{client_message, server_message, ClientMessage, ErrorCode, ServerMessage};

impl ServerMessage {
    /// A server envelope around one message, with no trace context.
    pub fn of(message: server_message::Message) -> Self {
        Self {
            message: Some(message),
            trace_parent: String::new(),
            trace_state: String::new(),
        }
    }

    /// `ErrorMessage{code, message}` with no details (docs/protocol.md rule 4).
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::of(server_message::Message::Error(pb::ErrorMessage {
            code: code as i32,
            message: message.into(),
            details: Default::default(),
        }))
    }
}

/// The repeated fields of a client message: for each, its entries and the in-memory
/// size of one entry (unused slots are `(0, 0)`). A list entry can be two bytes on the
/// wire (an empty status) and a hundred decoded: the session bounds the entries
/// (`MAX_LIST_ENTRIES`), and queues of client messages weigh them by their decoded size
/// ([`ClientMessage::held_len`]).
pub fn repeated_fields(msg: &client_message::Message) -> [(usize, usize); 3] {
    use client_message::Message as M;
    use std::mem::size_of;
    let users = |c: &Option<pb::LayoutConfig>| {
        c.as_ref().map_or([(0, 0); 2], |c| {
            [
                (c.pinned_users.len(), size_of::<u64>()),
                (c.excluded_users.len(), size_of::<u64>()),
            ]
        })
    };
    match msg {
        M::JoinRequest(j) => join_fields(j),
        M::PublishStream(p) => {
            let layers = p
                .metadata
                .as_ref()
                .and_then(|m| m.video.as_ref())
                .map_or(0, |v| v.simulcast_layers.len());
            [(layers, size_of::<pb::SimulcastLayer>()), (0, 0), (0, 0)]
        }
        M::SubscribeToLayout(s) => {
            let [pinned, excluded] = users(&s.config);
            [pinned, excluded, (s.stream_ids.len(), size_of::<u32>())]
        }
        M::UpdateLayout(u) => {
            let [pinned, excluded] = users(&u.new_config);
            [pinned, excluded, (0, 0)]
        }
        M::MediaConnectionUpdate(u) => [
            (u.statuses.len(), size_of::<pb::MhConnectionStatus>()),
            (0, 0),
            (0, 0),
        ],
        _ => [(0, 0); 3],
    }
}

/// The join's repeated fields: its capability lists.
fn join_fields(j: &pb::JoinRequest) -> [(usize, usize); 3] {
    j.capabilities.as_ref().map_or([(0, 0); 3], |c| {
        let string = std::mem::size_of::<String>();
        [
            (c.video_codecs.len(), string),
            (c.audio_codecs.len(), string),
            (0, 0),
        ]
    })
}

/// What the list entries of `fields` hold in memory besides their encoded bytes.
fn entries_len(fields: [(usize, usize); 3]) -> usize {
    fields.iter().map(|(n, size)| n * size).sum()
}

impl pb::JoinRequest {
    /// What the decoded join holds in memory, about ([`ClientMessage::held_len`]).
    pub fn held_len(&self) -> usize {
        prost::Message::encoded_len(self) + entries_len(join_fields(self))
    }
}

impl ClientMessage {
    /// What the decoded message holds in memory, about: its encoded size plus each list
    /// entry's in-memory size. Queues of client messages weigh them by this.
    pub fn held_len(&self) -> usize {
        prost::Message::encoded_len(self)
            + self
                .message
                .as_ref()
                .map_or(0, |m| entries_len(repeated_fields(m)))
    }

    /// A client envelope around one message, with no trace context (tests, bench).
    pub fn of(message: client_message::Message) -> Self {
        Self {
            message: Some(message),
            trace_parent: String::new(),
            trace_state: String::new(),
        }
    }

    /// The metric/log label of the message kind; `"unknown"` for an absent/unknown case.
    pub fn kind(&self) -> &'static str {
        use client_message::Message as M;
        match &self.message {
            Some(M::JoinRequest(_)) => "join_request",
            Some(M::PublishStream(_)) => "publish_stream",
            Some(M::SubscribeToLayout(_)) => "subscribe_to_layout",
            Some(M::UpdateLayout(_)) => "update_layout",
            Some(M::UnsubscribeLayout(_)) => "unsubscribe_layout",
            Some(M::StreamQualityUpdate(_)) => "stream_quality_update",
            Some(M::MuteRequest(_)) => "mute_request",
            Some(M::HostMuteRequest(_)) => "host_mute_request",
            Some(M::UnmuteRequest(_)) => "unmute_request",
            Some(M::UnmuteResponse(_)) => "unmute_response",
            Some(M::MediaConnectionUpdate(_)) => "media_connection_update",
            None => "unknown",
        }
    }
}

/// Truncates a client-supplied string to at most `max` bytes on a char boundary, for logs
/// and counters (docs/protocol.md "Semantics": strings truncated to 256 bytes before logging).
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The log truncation limit of docs/protocol.md "Semantics the MC owns".
pub const LOG_STRING_MAX: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_signaling_md() {
        // trace_parent (20) outside the oneof: tag 20 wire type 2 = 0xA2 0x01.
        let m = ClientMessage {
            message: None,
            trace_parent: "x".into(),
            trace_state: String::new(),
        };
        assert_eq!(m.encode_to_vec(), vec![0xA2, 0x01, 1, b'x']);
        // UnmuteRequest.participant_id is field 3 (rule 2).
        let u = pb::UnmuteRequest {
            request_audio: false,
            request_video: false,
            participant_id: "p".into(),
        };
        assert_eq!(u.encode_to_vec(), vec![0x1A, 1, b'p']);
        assert_eq!(pb::ConnectionState::Failed as i32, 2);
        assert_eq!(ErrorCode::StreamError as i32, 8);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("abc", 256), "abc");
        assert_eq!(truncate_str("aé", 2), "a");
        assert_eq!(truncate_str(&"x".repeat(300), 256).len(), 256);
    }
}

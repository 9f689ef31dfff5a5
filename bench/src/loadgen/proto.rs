//! The subset of `dark_tower.signaling.v1` the load generator speaks, written from the
//! tables of docs/protocol.md ("Envelopes", "Messages", "Enums") with prost derives. It is an
//! independent client-side rendering of the wire contract: field numbers and types match
//! the spec, messages the generator never inspects are decoded as [`Opaque`] (prost skips
//! their fields). Framing (docs/protocol.md "Transport and framing", rule 12): 4-byte
//! big-endian length, then 1..=65,536 bytes of protobuf.

use prost::Message;

/// Largest frame payload (docs/protocol.md rule 12).
pub const MAX_FRAME: usize = 65_536;

/// A message whose content the generator does not need.
#[derive(Clone, PartialEq, Message)]
pub struct Opaque {}

#[derive(Clone, PartialEq, Message)]
pub struct ClientMessage {
    #[prost(oneof = "client_message::Message", tags = "1, 2, 3, 4, 6, 7")]
    pub message: Option<client_message::Message>,
    /// docs/protocol.md rule 1: plain envelope field.
    #[prost(string, tag = "20")]
    pub trace_parent: String,
}

pub mod client_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Message {
        #[prost(message, tag = "1")]
        JoinRequest(super::JoinRequest),
        #[prost(message, tag = "2")]
        PublishStream(super::MediaStream),
        #[prost(message, tag = "3")]
        SubscribeToLayout(super::SubscribeToLayout),
        #[prost(message, tag = "4")]
        UpdateLayout(super::UpdateLayout),
        #[prost(message, tag = "6")]
        StreamQualityUpdate(super::StreamQualityUpdate),
        #[prost(message, tag = "7")]
        MuteRequest(super::MuteRequest),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct ServerMessage {
    #[prost(
        oneof = "server_message::Message",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
    )]
    pub message: Option<server_message::Message>,
    #[prost(string, tag = "20")]
    pub trace_parent: String,
}

pub mod server_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Message {
        #[prost(message, tag = "1")]
        JoinResponse(super::JoinResponse),
        #[prost(message, tag = "2")]
        ParticipantJoined(super::ParticipantJoined),
        #[prost(message, tag = "3")]
        ParticipantLeft(super::ParticipantLeft),
        #[prost(message, tag = "4")]
        StreamPublished(super::StreamPublished),
        #[prost(message, tag = "5")]
        StreamAssignments(super::Opaque),
        #[prost(message, tag = "6")]
        StreamQualityUpdate(super::Opaque),
        #[prost(message, tag = "7")]
        Error(super::ErrorMessage),
        #[prost(message, tag = "8")]
        ParticipantMuteUpdate(super::ParticipantMuteUpdate),
        #[prost(message, tag = "9")]
        UnmuteRequest(super::Opaque),
        #[prost(message, tag = "10")]
        UnmuteResponse(super::Opaque),
        #[prost(message, tag = "11")]
        RedirectToMc(super::RedirectToMc),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct JoinRequest {
    #[prost(string, tag = "1")]
    pub meeting_id: String,
    #[prost(string, tag = "2")]
    pub join_token: String,
    #[prost(string, tag = "3")]
    pub participant_name: String,
    #[prost(message, optional, tag = "4")]
    pub capabilities: Option<ParticipantCapabilities>,
    #[prost(string, tag = "5")]
    pub correlation_id: String,
    #[prost(string, tag = "6")]
    pub binding_token: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParticipantCapabilities {
    #[prost(string, repeated, tag = "1")]
    pub video_codecs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub audio_codecs: Vec<String>,
    #[prost(bool, tag = "3")]
    pub supports_simulcast: bool,
    #[prost(uint32, tag = "4")]
    pub max_video_streams: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct JoinResponse {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(uint64, tag = "2")]
    pub user_id: u64,
    #[prost(message, repeated, tag = "3")]
    pub existing_participants: Vec<Participant>,
    /// Session recovery (docs/protocol.md "Session recovery"): presented again, with a
    /// fresh token, to recover this participant (rule 7) or to follow a redirect (rule 18).
    #[prost(string, tag = "6")]
    pub correlation_id: String,
    #[prost(string, tag = "7")]
    pub binding_token: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Participant {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// Its published streams (a recovery JoinResponse carries what was published while
    /// the joiner was away).
    #[prost(message, repeated, tag = "3")]
    pub streams: Vec<MediaStream>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParticipantJoined {
    #[prost(message, optional, tag = "1")]
    pub participant: Option<Participant>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParticipantLeft {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(int32, tag = "2")]
    pub reason: i32,
}

/// MediaStream and PublishStream share their fields (docs/protocol.md "Messages").
#[derive(Clone, PartialEq, Message)]
pub struct MediaStream {
    #[prost(string, tag = "1")]
    pub stream_id: String,
    /// StreamType: AUDIO=0, VIDEO_CAMERA=1, VIDEO_SCREEN=2.
    #[prost(int32, tag = "2")]
    pub stream_type: i32,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<StreamMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamMetadata {
    #[prost(string, tag = "1")]
    pub codec: String,
    #[prost(uint32, tag = "2")]
    pub max_bitrate: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamPublished {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(message, optional, tag = "2")]
    pub stream: Option<MediaStream>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MuteRequest {
    #[prost(bool, tag = "1")]
    pub audio_muted: bool,
    #[prost(bool, tag = "2")]
    pub video_muted: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParticipantMuteUpdate {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(bool, tag = "2")]
    pub audio_self_muted: bool,
    #[prost(bool, tag = "3")]
    pub video_self_muted: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct LayoutConfig {
    #[prost(uint32, tag = "1")]
    pub rows: u32,
    #[prost(uint32, tag = "2")]
    pub columns: u32,
    #[prost(uint32, tag = "3")]
    pub max_streams: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribeToLayout {
    #[prost(int32, tag = "1")]
    pub layout_type: i32,
    #[prost(message, optional, tag = "2")]
    pub config: Option<LayoutConfig>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UpdateLayout {
    #[prost(message, optional, tag = "1")]
    pub new_config: Option<LayoutConfig>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamQualityUpdate {
    #[prost(string, tag = "1")]
    pub stream_id: String,
    #[prost(uint32, tag = "2")]
    pub available_bitrate: u32,
    #[prost(float, tag = "3")]
    pub packet_loss: f32,
    #[prost(uint32, tag = "4")]
    pub rtt_ms: u32,
}

/// Live migration (docs/protocol.md rules 17–18): reconnect to `new_mc_endpoint` on the
/// same path and recover there.
#[derive(Clone, PartialEq, Message)]
pub struct RedirectToMc {
    #[prost(string, tag = "1")]
    pub new_mc_endpoint: String,
    #[prost(string, tag = "2")]
    pub meeting_id: String,
    #[prost(string, tag = "3")]
    pub reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ErrorMessage {
    /// ErrorCode (docs/protocol.md "Enums").
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The key an ErrorMessage is counted under: `server:` and its code's name, plus the
/// budget that refused it when mc-service names one (its messages, docs/protocol.md),
/// so a run that reaches a server's limits says which.
pub fn error_key(e: &ErrorMessage) -> String {
    let budget = match e.message.as_str() {
        "message rate limit exceeded" => Some("session_rate"),
        "meeting message rate limit exceeded" => Some("meeting_rate"),
        "user's share of the meeting message rate exceeded" => Some("user_share"),
        "join rate limit exceeded" => Some("join_rate"),
        "recovery rate limit exceeded" => Some("recovery_rate"),
        _ => None,
    };
    match budget {
        Some(b) => format!("server:{}:{b}", error_code_name(e.code)),
        None => format!("server:{}", error_code_name(e.code)),
    }
}

/// Name of a signaling ErrorCode, for counting errors by code.
pub fn error_code_name(code: i32) -> &'static str {
    match code {
        0 => "UNKNOWN",
        1 => "INVALID_REQUEST",
        2 => "UNAUTHORIZED",
        3 => "FORBIDDEN",
        4 => "NOT_FOUND",
        5 => "CONFLICT",
        6 => "INTERNAL_ERROR",
        7 => "CAPACITY_EXCEEDED",
        8 => "STREAM_ERROR",
        _ => "OTHER",
    }
}

/// Errors of the framing layer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame length {0} outside 1..=65536")]
    BadLength(usize),
    #[error("undecodable protobuf")]
    Decode,
}

/// Encodes one `ClientMessage` frame (length prefix + protobuf).
pub fn encode(m: &ClientMessage) -> Vec<u8> {
    let len = m.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec cannot run out of capacity.
    let _ = m.encode(&mut out);
    out
}

/// Incremental decoder of `ServerMessage` frames from a byte stream.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Feeds bytes read from the stream.
    pub fn handle_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// The next complete frame, if any.
    pub fn poll_frame(&mut self) -> Result<Option<ServerMessage>, FrameError> {
        let Some(hdr) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        if len == 0 || len > MAX_FRAME {
            return Err(FrameError::BadLength(len));
        }
        let Some(body) = self.buf.get(4..4 + len) else {
            return Ok(None);
        };
        let m = ServerMessage::decode(body).map_err(|_| FrameError::Decode)?;
        self.buf.drain(..4 + len);
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_counted_by_code_and_by_the_budget_that_refused_them() {
        let e = |code, message: &str| ErrorMessage {
            code,
            message: message.into(),
        };
        assert_eq!(
            error_key(&e(7, "meeting is full")),
            "server:CAPACITY_EXCEEDED"
        );
        assert_eq!(
            error_key(&e(1, "user's share of the meeting message rate exceeded")),
            "server:INVALID_REQUEST:user_share"
        );
        assert_eq!(
            error_key(&e(1, "join rate limit exceeded")),
            "server:INVALID_REQUEST:join_rate"
        );
        assert_eq!(error_key(&e(1, "anything else")), "server:INVALID_REQUEST");
        // The texts above are the server's own: a server that rewords one is caught here.
        use mc_service::meeting::{
            REFUSED_JOIN_RATE, REFUSED_MEETING_RATE, REFUSED_RECOVERY_RATE, REFUSED_USER_SHARE,
        };
        use mc_service::signaling::session::REFUSED_SESSION_RATE;
        for (text, budget) in [
            (REFUSED_SESSION_RATE, "session_rate"),
            (REFUSED_MEETING_RATE, "meeting_rate"),
            (REFUSED_USER_SHARE, "user_share"),
            (REFUSED_JOIN_RATE, "join_rate"),
            (REFUSED_RECOVERY_RATE, "recovery_rate"),
        ] {
            assert_eq!(
                error_key(&e(1, text)),
                format!("server:INVALID_REQUEST:{budget}")
            );
        }
    }

    use super::*;

    #[test]
    fn frames_split_anywhere_decode() {
        let m = ServerMessage {
            message: Some(server_message::Message::ParticipantMuteUpdate(
                ParticipantMuteUpdate {
                    participant_id: "p1".into(),
                    audio_self_muted: true,
                    video_self_muted: false,
                },
            )),
            trace_parent: String::new(),
        };
        let body = m.encode_to_vec();
        let mut wire = (body.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        wire.extend_from_slice(&wire.clone());
        let mut r = FrameReader::default();
        let mut got = vec![];
        for b in wire.chunks(3) {
            r.handle_bytes(b);
            while let Some(f) = r.poll_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![m.clone(), m]);
    }

    #[test]
    fn bad_lengths_and_bytes_are_errors() {
        let mut r = FrameReader::default();
        r.handle_bytes(&[0, 0, 0, 0]);
        assert_eq!(r.poll_frame(), Err(FrameError::BadLength(0)));
        let mut r = FrameReader::default();
        r.handle_bytes(&[0, 1, 0, 1]);
        assert_eq!(r.poll_frame(), Err(FrameError::BadLength(65_537)));
        let mut r = FrameReader::default();
        r.handle_bytes(&[0, 0, 0, 2, 0xff, 0xff]);
        assert_eq!(r.poll_frame(), Err(FrameError::Decode));
    }

    #[test]
    fn client_envelope_field_numbers() {
        let m = ClientMessage {
            message: Some(client_message::Message::MuteRequest(MuteRequest {
                audio_muted: true,
                video_muted: false,
            })),
            trace_parent: String::new(),
        };
        let f = encode(&m);
        // field 7, wire type 2 → tag byte 0x3a; inner: field 1 varint 1.
        assert_eq!(&f[4..], &[0x3a, 0x02, 0x08, 0x01]);
        assert_eq!(&f[..4], &4u32.to_be_bytes());
    }
}

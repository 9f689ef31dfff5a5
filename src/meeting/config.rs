//! Meeting limits and their flags (`docs/protocol.md` rules 6, 10).

use std::time::Duration;

/// Per-meeting flags, flattened into the top-level `Config`.
#[derive(clap::Args, Debug, Clone)]
pub struct MeetingArgs {
    /// Seconds a participant whose connection dropped stays in the roster and may
    /// recover with its binding token (docs/protocol.md rule 6).
    #[arg(long, env = "MC_DISCONNECT_GRACE_SECS", default_value_t = 30)]
    pub disconnect_grace_secs: u64,
    /// Participants per meeting (connected or within grace); beyond it joins get
    /// CAPACITY_EXCEEDED and close 0x102.
    #[arg(long, env = "MC_MAX_PARTICIPANTS_PER_MEETING", default_value_t = 100)]
    pub max_participants_per_meeting: usize,
    /// Streams one participant may publish (docs/protocol.md rule 10).
    #[arg(long, env = "MC_MAX_STREAMS_PER_PARTICIPANT", default_value_t = 8)]
    pub max_streams_per_participant: usize,
    /// Media handler URL offered to clients in JoinResponse.media_servers and stream
    /// assignments; repeatable or comma-separated; may be empty.
    #[arg(
        long = "media-handler-url",
        env = "MC_MEDIA_HANDLER_URLS",
        value_delimiter = ','
    )]
    pub media_handler_urls: Vec<String>,
}

impl MeetingArgs {
    /// The typed configuration; `max_frame` is the signaling frame limit
    /// (`SignalingArgs::max_frame_bytes`).
    pub fn meeting_config(&self, max_frame: usize) -> MeetingConfig {
        MeetingConfig {
            max_frame,
            grace: Duration::from_secs(self.disconnect_grace_secs),
            max_participants: self.max_participants_per_meeting.max(1),
            max_streams_per_participant: self.max_streams_per_participant,
            media_servers: self.media_handler_urls.clone(),
            ..MeetingConfig::default()
        }
    }
}

/// Limits of one meeting.
#[derive(Debug, Clone)]
pub struct MeetingConfig {
    /// Grace period of a dropped connection (rule 6).
    pub grace: Duration,
    /// Roster size limit, disconnected-in-grace participants included.
    pub max_participants: usize,
    /// Streams per participant (rule 10).
    pub max_streams_per_participant: usize,
    /// Media handler URLs for JoinResponse and StreamAssignment.
    pub media_servers: Vec<String>,
    /// Largest frame payload the sessions send (docs/protocol.md rule 12); JoinResponse is
    /// kept under it.
    pub max_frame: usize,
    /// Longest free-text string kept from a client (names, reasons), in bytes.
    pub max_string_len: usize,
    /// `MediaStream.stream_id` limit (rule 10).
    pub max_stream_id_len: usize,
    /// `StreamMetadata.codec` limit (rule 10).
    pub max_codec_len: usize,
    /// Simulcast layers per published stream.
    pub max_simulcast_layers: usize,
    /// Layout slots per subscriber (caps `max_streams` / `rows × columns`).
    pub max_layout_slots: usize,
    /// Entries in `pinned_users`, `excluded_users` and `stream_ids`.
    pub max_layout_list: usize,
    /// Statuses in one MediaConnectionUpdate.
    pub max_media_statuses: usize,
}

impl Default for MeetingConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            max_participants: 100,
            max_streams_per_participant: 8,
            media_servers: Vec::new(),
            max_frame: crate::signaling::codec::DEFAULT_MAX_FRAME,
            max_string_len: 256,
            max_stream_id_len: 64,
            max_codec_len: 32,
            max_simulcast_layers: 8,
            max_layout_slots: 64,
            max_layout_list: 256,
            max_media_statuses: 32,
        }
    }
}

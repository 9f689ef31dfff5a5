//! The state of one meeting as it travels from a draining MC to its target
//! (docs/protocol.md rules 17–21, docs/gc-api.md "Migration"): plain serde types, JSON on the
//! wire, and the checks the target runs before it builds a meeting from them.
//!
//! A snapshot carries everything rule 19 restores (participant_id, user_id, sub, name,
//! role, correlation_id, joined_at, streams, mute flags with `host_muted_by`, layout
//! subscription), the `sub` → user_id map of rule 9 (departed users included, so a
//! returning user keeps its id), and per participant the nonce bound into its current
//! binding token: every MC of a cluster shares the binding secret, so the token the
//! source issued last verifies on the target — once, as the nonce rotates on use.
//!
//! Everything here comes from another process over the network: [`MeetingSnapshot::
//! validate`] checks counts, sizes and consistency and answers an [`ImportError`],
//! never a panic.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{MeetingConfig, Role};
use crate::signaling::proto::pb;

/// The snapshot format this code writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Longest meeting id or `sub`, in bytes (as join tokens allow).
pub const MAX_ID_BYTES: usize = 256;
/// Longest participant_id, correlation_id or host_muted_by (UUIDs are 36), in bytes.
pub const MAX_SHORT_ID_BYTES: usize = 64;
/// Most entries in the `sub` → user_id map (users who ever joined the meeting).
pub const MAX_SNAPSHOT_USERS: usize = 10_000;
/// Length of a binding nonce, in bytes (hex in the snapshot).
pub const NONCE_BYTES: usize = 16;

/// One meeting's state, in join order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSnapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    pub meeting_id: String,
    /// The source's limits, for logs and to refuse a meeting the target could not hold.
    pub settings: MeetingSettings,
    /// Rule 9: every `sub` seen in this meeting and its user_id.
    pub user_ids: BTreeMap<String, u64>,
    /// The user_id the next new `sub` gets.
    pub next_user_id: u64,
    /// In join order (layouts rank by it, rule 11).
    pub participants: Vec<ParticipantSnapshot>,
    /// Requests left in the meeting's broadcast budget at export. Absent from an MC that
    /// does not carry budgets: the target then starts the budget full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcasts_left: Option<u32>,
    /// The users whose budgets were not full at export, by user_id ascending, so that a
    /// user cannot refill them by waiting for a drain. A user left out starts full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_budgets: Vec<UserBudgetSnapshot>,
}

/// What one user had left of its budgets at export (the target clamps each to its own
/// burst).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBudgetSnapshot {
    pub user_id: u64,
    /// Requests left in its share of the broadcast budget.
    pub broadcasts_left: u32,
    /// Fresh joins left.
    pub joins_left: u32,
}

/// The limits the meeting ran under on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSettings {
    pub disconnect_grace_ms: u64,
    pub max_participants: u32,
    pub max_streams_per_participant: u32,
}

/// One participant, connected or within grace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantSnapshot {
    pub participant_id: String,
    pub user_id: u64,
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub correlation_id: String,
    /// Hex of the nonce bound into the participant's current binding token.
    pub binding_nonce: String,
    /// Unix milliseconds.
    pub joined_at: u64,
    pub streams: Vec<StreamSnapshot>,
    pub mute: MuteSnapshot,
    pub layout: Option<LayoutSnapshot>,
    pub connection: ConnectionSnapshot,
}

/// Whether the participant was connected on the source at export time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionSnapshot {
    /// Connected: it gets `RedirectToMc` and the target's full grace to arrive.
    Connected,
    /// Disconnected within grace (rule 6), with this much grace left.
    Grace { remaining_ms: u64 },
}

/// `MediaStream` (docs/protocol.md Messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSnapshot {
    pub stream_id: String,
    pub stream_type: StreamKind,
    pub metadata: Option<StreamMetadataSnapshot>,
}

/// `StreamType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Audio,
    VideoCamera,
    VideoScreen,
}

/// `StreamMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMetadataSnapshot {
    pub codec: String,
    pub max_bitrate: u32,
    pub video: Option<VideoSnapshot>,
}

/// `VideoMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSnapshot {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub simulcast_layers: Vec<LayerSnapshot>,
}

/// `SimulcastLayer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSnapshot {
    pub layer_id: String,
    pub width: u32,
    pub height: u32,
    pub max_bitrate: u32,
}

/// Self and host mute flags (rule 3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteSnapshot {
    pub audio_self: bool,
    pub video_self: bool,
    pub audio_host: bool,
    pub video_host: bool,
    /// The host's participant_id; empty when no host mute is set.
    pub host_muted_by: String,
}

/// A grid layout subscription (`LayoutConfig` plus the subscriber's `stream_ids`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutSnapshot {
    pub rows: u32,
    pub columns: u32,
    pub max_streams: u32,
    pub pinned_users: Vec<u64>,
    pub excluded_users: Vec<u64>,
    pub prefer_video_over_audio: bool,
    pub include_self: bool,
    pub stream_ids: Vec<u32>,
}

/// Why a snapshot was refused. The text names the field, never echoes its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("snapshot version {0} is not supported (expected {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("meeting_id must be 1 to {MAX_ID_BYTES} bytes")]
    MeetingId,
    #[error("no participants: nothing to hand over")]
    Empty,
    #[error("{got} participants; this MC holds at most {max} per meeting")]
    TooManyParticipants { got: usize, max: usize },
    #[error("{0} users in user_ids; at most {MAX_SNAPSHOT_USERS}")]
    TooManyUsers(usize),
    #[error("user_ids: {0}")]
    UserIds(&'static str),
    #[error("user_budgets: {0}")]
    UserBudgets(&'static str),
    #[error("participant {index}: {problem}")]
    Participant { index: usize, problem: &'static str },
}

impl ImportError {
    fn at(index: usize, problem: &'static str) -> Self {
        Self::Participant { index, problem }
    }
}

impl MeetingSnapshot {
    /// Checks the snapshot against this MC's limits and its own consistency.
    pub fn validate(&self, cfg: &MeetingConfig) -> Result<(), ImportError> {
        if self.version != SNAPSHOT_VERSION {
            return Err(ImportError::UnsupportedVersion(self.version));
        }
        if self.meeting_id.is_empty() || self.meeting_id.len() > MAX_ID_BYTES {
            return Err(ImportError::MeetingId);
        }
        if self.participants.is_empty() {
            return Err(ImportError::Empty);
        }
        if self.participants.len() > cfg.max_participants {
            return Err(ImportError::TooManyParticipants {
                got: self.participants.len(),
                max: cfg.max_participants,
            });
        }
        self.validate_user_ids()?;
        self.validate_user_budgets()?;
        let mut pids = HashSet::with_capacity(self.participants.len());
        let mut cids = HashSet::with_capacity(self.participants.len());
        for (i, p) in self.participants.iter().enumerate() {
            p.validate(i, cfg)?;
            if self.user_ids.get(&p.sub) != Some(&p.user_id) {
                return Err(ImportError::at(i, "user_id does not match user_ids[sub]"));
            }
            if !pids.insert(p.participant_id.as_str()) {
                return Err(ImportError::at(i, "duplicate participant_id"));
            }
            if !cids.insert(p.correlation_id.as_str()) {
                return Err(ImportError::at(i, "duplicate correlation_id"));
            }
        }
        Ok(())
    }

    fn validate_user_ids(&self) -> Result<(), ImportError> {
        if self.user_ids.len() > MAX_SNAPSHOT_USERS {
            return Err(ImportError::TooManyUsers(self.user_ids.len()));
        }
        // Ids are given out one after another from 1 and never taken back: a meeting
        // that had n users gives the next one n + 1. Beyond that the counter could be
        // brought to wrap, and two users to share an id.
        if self.next_user_id > self.user_ids.len() as u64 + 1 {
            return Err(ImportError::UserIds(
                "next_user_id beyond the users given ids",
            ));
        }
        let mut seen = HashSet::with_capacity(self.user_ids.len());
        for (sub, id) in &self.user_ids {
            if sub.is_empty() || sub.len() > MAX_ID_BYTES {
                return Err(ImportError::UserIds("sub must be 1 to 256 bytes"));
            }
            if *id == 0 || *id >= self.next_user_id {
                return Err(ImportError::UserIds("user_id outside 1..next_user_id"));
            }
            if !seen.insert(*id) {
                return Err(ImportError::UserIds("two subs share a user_id"));
            }
        }
        Ok(())
    }

    /// Ascending by user id, each naming a user of `user_ids` (so at most one entry per
    /// user, and no more entries than users).
    fn validate_user_budgets(&self) -> Result<(), ImportError> {
        if self
            .user_budgets
            .windows(2)
            .any(|w| w[0].user_id >= w[1].user_id)
        {
            return Err(ImportError::UserBudgets(
                "user_id not ascending or repeated",
            ));
        }
        if self.user_budgets.is_empty() {
            return Ok(());
        }
        let known: HashSet<u64> = self.user_ids.values().copied().collect();
        if self
            .user_budgets
            .iter()
            .any(|b| !known.contains(&b.user_id))
        {
            return Err(ImportError::UserBudgets("user_id not in user_ids"));
        }
        Ok(())
    }

    /// SHA-256 of the snapshot's JSON without its budgets: two imports of the same
    /// content have the same digest (docs/gc-api.md: importing the same meeting twice is
    /// idempotent). The budgets refill with time, so a meeting exported again after an
    /// aborted hand-over differs in them alone; it is still the same meeting. Without
    /// budgets the JSON is the snapshot's own, as an MC that does not carry them writes it.
    pub fn digest(&self) -> [u8; 32] {
        let content = MeetingSnapshot {
            broadcasts_left: None,
            user_budgets: Vec::new(),
            ..self.clone()
        };
        // Serializing plain structs (string keys) cannot fail.
        let json = serde_json::to_vec(&content).unwrap_or_default();
        Sha256::digest(&json).into()
    }

    /// Participants with a live connection at export time.
    pub fn connected_count(&self) -> usize {
        self.participants
            .iter()
            .filter(|p| p.connection == ConnectionSnapshot::Connected)
            .count()
    }
}

impl ParticipantSnapshot {
    fn validate(&self, i: usize, cfg: &MeetingConfig) -> Result<(), ImportError> {
        let short = |s: &str| !s.is_empty() && s.len() <= MAX_SHORT_ID_BYTES;
        if !short(&self.participant_id) {
            return Err(ImportError::at(i, "participant_id must be 1 to 64 bytes"));
        }
        if !short(&self.correlation_id) {
            return Err(ImportError::at(i, "correlation_id must be 1 to 64 bytes"));
        }
        if self.sub.is_empty() || self.sub.len() > MAX_ID_BYTES {
            return Err(ImportError::at(i, "sub must be 1 to 256 bytes"));
        }
        if self.name.len() > cfg.max_string_len {
            return Err(ImportError::at(i, "name too long"));
        }
        if self.nonce().is_none() {
            return Err(ImportError::at(i, "binding_nonce must be 32 hex digits"));
        }
        let host_muted = self.mute.audio_host || self.mute.video_host;
        if host_muted == self.mute.host_muted_by.is_empty()
            || self.mute.host_muted_by.len() > MAX_SHORT_ID_BYTES
        {
            return Err(ImportError::at(
                i,
                "host_muted_by must name the host exactly when a host mute is set",
            ));
        }
        if self.streams.len() > cfg.max_streams_per_participant {
            return Err(ImportError::at(i, "too many streams"));
        }
        let mut ids = HashSet::with_capacity(self.streams.len());
        for s in &self.streams {
            if let Err(why) = super::streams::validate(cfg, &s.to_publish()) {
                return Err(ImportError::at(i, why));
            }
            if !ids.insert(s.stream_id.as_str()) {
                return Err(ImportError::at(i, "duplicate stream_id"));
            }
        }
        if let Some(l) = &self.layout {
            let lists = [
                l.pinned_users.len(),
                l.excluded_users.len(),
                l.stream_ids.len(),
            ];
            if lists.iter().any(|n| *n > cfg.max_layout_list) {
                return Err(ImportError::at(i, "layout list too long"));
            }
        }
        Ok(())
    }

    /// The binding nonce, decoded; `None` when it is not [`NONCE_BYTES`] of hex.
    pub fn nonce(&self) -> Option<[u8; NONCE_BYTES]> {
        let mut n = [0u8; NONCE_BYTES];
        hex::decode_to_slice(&self.binding_nonce, &mut n).ok()?;
        Some(n)
    }
}

impl StreamSnapshot {
    pub fn from_pb(s: &pb::MediaStream) -> Self {
        let stream_type = match pb::StreamType::try_from(s.stream_type) {
            Ok(pb::StreamType::VideoCamera) => StreamKind::VideoCamera,
            Ok(pb::StreamType::VideoScreen) => StreamKind::VideoScreen,
            // Stored streams were validated on publish (rule 10): audio is the only other.
            _ => StreamKind::Audio,
        };
        Self {
            stream_id: s.stream_id.clone(),
            stream_type,
            metadata: s.metadata.as_ref().map(|m| StreamMetadataSnapshot {
                codec: m.codec.clone(),
                max_bitrate: m.max_bitrate,
                video: m.video.as_ref().map(|v| VideoSnapshot {
                    width: v.width,
                    height: v.height,
                    framerate: v.framerate,
                    simulcast_layers: v
                        .simulcast_layers
                        .iter()
                        .map(|l| LayerSnapshot {
                            layer_id: l.layer_id.clone(),
                            width: l.width,
                            height: l.height,
                            max_bitrate: l.max_bitrate,
                        })
                        .collect(),
                }),
            }),
        }
    }

    pub fn to_pb(&self) -> pb::MediaStream {
        let stream_type = match self.stream_type {
            StreamKind::Audio => pb::StreamType::Audio,
            StreamKind::VideoCamera => pb::StreamType::VideoCamera,
            StreamKind::VideoScreen => pb::StreamType::VideoScreen,
        };
        pb::MediaStream {
            stream_id: self.stream_id.clone(),
            stream_type: stream_type as i32,
            metadata: self.metadata.as_ref().map(|m| pb::StreamMetadata {
                codec: m.codec.clone(),
                max_bitrate: m.max_bitrate,
                video: m.video.as_ref().map(|v| pb::VideoMetadata {
                    width: v.width,
                    height: v.height,
                    framerate: v.framerate,
                    simulcast_layers: v
                        .simulcast_layers
                        .iter()
                        .map(|l| pb::SimulcastLayer {
                            layer_id: l.layer_id.clone(),
                            width: l.width,
                            height: l.height,
                            max_bitrate: l.max_bitrate,
                        })
                        .collect(),
                }),
            }),
        }
    }

    fn to_publish(&self) -> pb::PublishStream {
        let s = self.to_pb();
        pb::PublishStream {
            stream_id: s.stream_id,
            stream_type: s.stream_type,
            metadata: s.metadata,
        }
    }
}

impl LayoutSnapshot {
    pub fn config(&self) -> pb::LayoutConfig {
        pb::LayoutConfig {
            rows: self.rows,
            columns: self.columns,
            max_streams: self.max_streams,
            pinned_users: self.pinned_users.clone(),
            excluded_users: self.excluded_users.clone(),
            prefer_video_over_audio: self.prefer_video_over_audio,
            include_self: self.include_self,
        }
    }

    pub fn from_pb(c: &pb::LayoutConfig, stream_ids: &[u32]) -> Self {
        Self {
            rows: c.rows,
            columns: c.columns,
            max_streams: c.max_streams,
            pinned_users: c.pinned_users.clone(),
            excluded_users: c.excluded_users.clone(),
            prefer_video_over_audio: c.prefer_video_over_audio,
            include_self: c.include_self,
            stream_ids: stream_ids.to_vec(),
        }
    }
}

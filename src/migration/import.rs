//! `POST /internal/v1/meetings/import` (docs/gc-api.md "Hand over a meeting"): the request
//! body, and what the target answers, as pure functions the admin plane and the owner
//! shard call.
//!
//! The checks run in two steps, because the second needs the owner shard's view:
//! 1. [`check_request`] (admin plane, before routing): 413 over the meeting config's
//!    `max_handover_bytes` (`--max-handover-bytes`), 401 for a missing, wrong or stale
//!    signature, 400 for a body that is not an [`ImportRequest`] or whose snapshot
//!    fails [`MeetingSnapshot::validate`].
//! 2. [`decide`] (owner shard): 200 repeat when the same snapshot was already imported,
//!    409 when the shard holds that meeting otherwise (with participants), 503 when the
//!    MC is draining or at capacity, else 200 accepted — the shard then builds the
//!    meeting with [`crate::meeting::Meeting::import`].
//!
//! A repeat is answered 200 even while draining: the target does hold the meeting, and
//! the source's retry after a lost answer must not leave it on both MCs.

use serde::{Deserialize, Serialize};

use super::signature::{MigrationKey, SignatureError};
use crate::meeting::{MeetingConfig, MeetingSnapshot};

/// The import route on the target's admin port.
pub const IMPORT_PATH: &str = "/internal/v1/meetings/import";
/// Largest import body this MC sends or accepts unless `--max-handover-bytes` says
/// otherwise: a meeting of 100 participants at every limit its clients control (8
/// streams of 8 layers each, full layout lists, every string at its longest) exports
/// about 3.1 MB.
pub const DEFAULT_MAX_HANDOVER_BYTES: usize = 4 * 1024 * 1024;
/// The most `--max-handover-bytes` may be: what the admin plane's request parser reads
/// at most (64 MiB, `admin::http::MAX_BODY_BYTES`, which the admin plane asserts). Four
/// of them may be held at once.
pub const MAX_HANDOVER_BYTES: usize = 64 * 1024 * 1024;
/// The least: one participant's snapshot at every limit is about 31 KB.
pub const MIN_HANDOVER_BYTES: usize = 64 * 1024;

/// The MC handing the meeting over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMc {
    pub id: String,
    pub webtransport_endpoint: String,
    pub http_endpoint: String,
}

/// The body of an import request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub source: SourceMc,
    pub snapshot: MeetingSnapshot,
}

impl ImportRequest {
    /// The JSON body to sign and send.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing plain structs (string keys) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What the target holds under the request's meeting id (the owner shard knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    Nothing,
    /// A meeting built from an import whose snapshot had this digest
    /// ([`MeetingSnapshot::digest`]).
    Imported {
        digest: [u8; 32],
    },
    /// A meeting created here by joins (or imported from other content).
    Live {
        participants: usize,
    },
}

/// The target's own state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetState {
    pub draining: bool,
    pub at_capacity: bool,
}

/// The answer to an import request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportAnswer {
    /// 200: import it now.
    Accepted,
    /// 200: already imported, same content; nothing to do.
    Repeat,
    /// 409: this MC holds that meeting with other participants.
    Conflict,
    /// 503: this MC is draining.
    Draining,
    /// 503: this MC is at `MC_CAPACITY` meetings.
    AtCapacity,
    /// 413: over the hand-over limit (`--max-handover-bytes`).
    TooLarge,
    /// 401: see the error (logged, not sent).
    Unauthorized(SignatureError),
    /// 400: the body or the snapshot is invalid (the reason is sent).
    BadRequest(String),
}

impl ImportAnswer {
    pub fn status(&self) -> u16 {
        match self {
            Self::Accepted | Self::Repeat => 200,
            Self::Conflict => 409,
            Self::Draining | Self::AtCapacity => 503,
            Self::TooLarge => 413,
            Self::Unauthorized(_) => 401,
            Self::BadRequest(_) => 400,
        }
    }

    /// The `result` label of `mc_meetings_migrated_total{direction="in"}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Accepted => "ok",
            Self::Repeat => "repeat",
            Self::Conflict => "conflict",
            Self::Draining => "draining",
            Self::AtCapacity => "capacity",
            Self::TooLarge => "too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad_request",
        }
    }

    /// The JSON body: `{"accepted": true}`, or `{"accepted": false, "reason": "…"}`.
    pub fn body(&self) -> String {
        let reason = match self {
            Self::Accepted | Self::Repeat => return r#"{"accepted":true}"#.to_string(),
            Self::Conflict => "this MC already holds that meeting",
            Self::Draining => "this MC is draining",
            Self::AtCapacity => "this MC is at capacity",
            Self::TooLarge => "import body too large",
            // The precise reason goes to logs only.
            Self::Unauthorized(_) => "invalid signature",
            Self::BadRequest(why) => why,
        };
        serde_json::json!({"accepted": false, "reason": reason}).to_string()
    }
}

/// Step 1 (module docs): size, signature, then the body and snapshot against `cfg`.
pub fn check_request(
    key: &MigrationKey,
    signature: Option<&str>,
    body: &[u8],
    now_unix_secs: u64,
    cfg: &MeetingConfig,
) -> Result<ImportRequest, ImportAnswer> {
    if body.len() > cfg.max_handover_bytes {
        return Err(ImportAnswer::TooLarge);
    }
    key.verify(signature, body, now_unix_secs)
        .map_err(ImportAnswer::Unauthorized)?;
    let req: ImportRequest = serde_json::from_slice(body)
        .map_err(|e| ImportAnswer::BadRequest(format!("invalid import body: {e}")))?;
    req.snapshot
        .validate(cfg)
        .map_err(|e| ImportAnswer::BadRequest(format!("invalid snapshot: {e}")))?;
    Ok(req)
}

/// Step 2 (module docs).
pub fn decide(req: &ImportRequest, holding: Holding, target: TargetState) -> ImportAnswer {
    match holding {
        Holding::Imported { digest } if digest == req.snapshot.digest() => {
            return ImportAnswer::Repeat
        }
        Holding::Imported { .. } => return ImportAnswer::Conflict,
        Holding::Live { participants } if participants > 0 => return ImportAnswer::Conflict,
        Holding::Live { .. } | Holding::Nothing => {}
    }
    if target.draining {
        ImportAnswer::Draining
    } else if target.at_capacity {
        ImportAnswer::AtCapacity
    } else {
        ImportAnswer::Accepted
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;

//! Moving live meetings between MCs, the MC ↔ MC and MC → GC side (docs/gc-api.md
//! "Migration", docs/protocol.md rules 17–21). Sans-IO: request bodies, answers and
//! signatures as pure functions; the admin plane and the GC client carry the bytes.
//!
//! - [`signature`]: `X-MC-Signature` (HMAC-SHA256 with a key derived from the binding
//!   secret), signing and verification with an injected clock.
//! - [`import`]: the import request body and the target's answer (200/409/503/413/401/400).
//! - [`targets`]: `POST /api/v1/mc/migrate` to the GC: body and checked answer.
//!
//! The meeting state itself is [`crate::meeting::MeetingSnapshot`]; the drain that
//! drives a migration is [`crate::drain`].

pub mod import;
pub mod signature;
pub mod targets;

pub use import::{
    check_request, decide, Holding, ImportAnswer, ImportRequest, SourceMc, TargetState,
    DEFAULT_MAX_HANDOVER_BYTES, IMPORT_PATH, MAX_HANDOVER_BYTES, MIN_HANDOVER_BYTES,
};
pub use signature::{MigrationKey, SignatureError, MAX_CLOCK_SKEW_SECS, SIGNATURE_HEADER};
pub use targets::{migrate_body, migrate_url, parse_targets, LiveMeeting, Target, Targets};

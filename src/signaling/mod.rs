//! The signaling wire contract (signaling.md): protobuf messages and framing.
//!
//! - [`proto`]: the generated `dark_tower.signaling.v1` types.
//! - [`codec`]: sans-IO length-prefixed framing (signaling.md "Transport and framing").
//! - [`session`]: the per-connection session machine (first-frame join, limits, close codes).
pub mod codec;
pub mod proto;
pub mod session;

//! The signaling wire contract of `docs/protocol.md`: the protobuf messages, their
//! framing, and the per-session rules, all sans-IO.
//!
//! ```text
//! client bytes ─► codec::FrameDecoder ─► ClientMessage ─► session::Session
//!     (join first, rate limit) ─► SessionEvent ─► the meeting
//! the meeting's ServerMessage ─► Session::send ─► bounded outbound queue
//!     ─► poll_transmit ─► client stream; then poll_close: a close code of rule 5
//! ```
//!
//! - [`proto`]: the generated `dark_tower.signaling.v1` types.
//! - [`codec`]: length-prefixed framing (`docs/protocol.md` "Transport and framing").
//! - [`session`]: the per-connection session machine (first-frame join, limits, close
//!   codes).
pub mod codec;
pub mod proto;
pub mod session;

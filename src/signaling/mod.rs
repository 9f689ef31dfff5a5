//! The signaling wire contract (signaling.md): protobuf messages and framing.

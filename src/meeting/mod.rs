//! Meetings: the sans-IO meeting state machine and its actor plumbing.

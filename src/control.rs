//! The control-plane executor.

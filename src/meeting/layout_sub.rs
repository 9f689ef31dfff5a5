//! A participant's layout subscription: the data the roster keeps per participant and
//! a hand-over carries; `layout` computes and sends its assignments.

use crate::signaling::proto::pb;

/// A participant's layout subscription.
#[derive(Debug, Clone)]
pub(super) struct LayoutSub {
    pub(super) config: pb::LayoutConfig,
    pub(super) stream_ids: Vec<u32>,
    /// What was last sent, to re-send only on change.
    pub(super) last: Option<Vec<pb::StreamAssignment>>,
}

impl LayoutSub {
    /// A subscription restored from a snapshot; its assignments are sent on recovery.
    pub(super) fn new(config: pb::LayoutConfig, stream_ids: Vec<u32>) -> Self {
        Self {
            config,
            stream_ids,
            last: None,
        }
    }

    pub(super) fn config(&self) -> &pb::LayoutConfig {
        &self.config
    }

    pub(super) fn stream_ids(&self) -> &[u32] {
        &self.stream_ids
    }
}

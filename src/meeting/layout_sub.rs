//! A participant's layout subscription: the data the roster keeps per participant and
//! a hand-over carries; `layout` computes and sends its assignments.

use crate::signaling::proto::pb;

/// A participant's layout subscription.
#[derive(Debug, Clone)]
pub(super) struct LayoutSub {
    /// Changed only through [`Self::set_config`], which keeps `excluded` with it.
    config: pb::LayoutConfig,
    /// `config.excluded_users`, sorted once here rather than at every computation.
    excluded: Vec<u64>,
    pub(super) stream_ids: Vec<u32>,
    /// Who was last sent in each slot, and with which media type (`pb::MediaType`), to
    /// re-send only on change. The slots' stream ids and media handler follow the
    /// subscription and the meeting's configuration, which a change of the former
    /// re-sends anyway.
    pub(super) last: Option<Vec<(u64, i32)>>,
}

impl LayoutSub {
    /// A new subscription, or one restored from a snapshot (its assignments are sent
    /// on recovery).
    pub(super) fn new(config: pb::LayoutConfig, stream_ids: Vec<u32>) -> Self {
        let mut sub = Self {
            config: pb::LayoutConfig::default(),
            excluded: Vec::new(),
            stream_ids,
            last: None,
        };
        sub.set_config(config);
        sub
    }

    pub(super) fn set_config(&mut self, config: pb::LayoutConfig) {
        self.excluded = config.excluded_users.clone();
        self.excluded.sort_unstable();
        self.config = config;
    }

    pub(super) fn config(&self) -> &pb::LayoutConfig {
        &self.config
    }

    /// The excluded users, sorted.
    pub(super) fn excluded(&self) -> &[u64] {
        &self.excluded
    }

    pub(super) fn stream_ids(&self) -> &[u32] {
        &self.stream_ids
    }
}

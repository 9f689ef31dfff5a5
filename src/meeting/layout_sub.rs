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

    /// Keeps the first of a user pinned more than once: a later one could choose
    /// nobody (the first took that user's seats or found them ineligible), yet each
    /// would walk all of that user's seats at every computation.
    pub(super) fn set_config(&mut self, mut config: pb::LayoutConfig) {
        let mut seen = std::mem::take(&mut self.excluded);
        seen.clear();
        config
            .pinned_users
            .retain(|&uid| match seen.binary_search(&uid) {
                Ok(_) => false,
                Err(at) => {
                    seen.insert(at, uid);
                    true
                }
            });
        self.excluded = seen;
        self.excluded.clear();
        self.excluded.extend_from_slice(&config.excluded_users);
        self.excluded.sort_unstable();
        self.excluded.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_pinned_again_is_kept_once_in_its_first_place() {
        let config = pb::LayoutConfig {
            pinned_users: vec![7, 3, 7, 7, 9, 3],
            excluded_users: vec![4, 2, 4],
            ..Default::default()
        };
        let sub = LayoutSub::new(config, Vec::new());
        assert_eq!(sub.config().pinned_users, [7, 3, 9]);
        assert_eq!(sub.excluded(), [2, 4]);
    }
}

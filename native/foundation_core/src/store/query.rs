//! Query description and the merge of per-shard answers.

use super::shard::Hit;
use super::Bytes;

/// Result order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Ascending event id (also the order when the caller gives none).
    #[default]
    Id,
    /// Ascending timestamp, ties by ascending id.
    Timestamp,
    /// Descending timestamp, ties by descending id (newest first).
    TimestampDesc,
}

/// A query over the store (API.md section 16 `query/1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only events of this type (atom name), when set.
    pub event_type: Option<Bytes>,
    /// Inclusive `(start, stop)` timestamp range, when set.
    pub time_range: Option<(i64, i64)>,
    /// Result order.
    pub order: Order,
    /// Results to skip after ordering.
    pub offset: usize,
    /// Maximum results after the offset (`None`: no limit).
    pub limit: Option<usize>,
}

impl Query {
    /// How many hits each shard must return so the merge can honour
    /// offset + limit (`None`: all).
    pub(crate) fn per_shard_want(&self) -> Option<usize> {
        self.limit.map(|l| l.saturating_add(self.offset))
    }

    /// Merges per-shard answers (each already ordered) and applies
    /// offset and limit.
    pub(crate) fn merge(&self, parts: Vec<Vec<Hit>>) -> Vec<Bytes> {
        let mut all: Vec<Hit> = parts.into_iter().flatten().collect();
        match self.order {
            Order::Id => all.sort_unstable_by_key(|((_, id), _)| *id),
            Order::Timestamp => all.sort_unstable_by_key(|(key, _)| *key),
            Order::TimestampDesc => all.sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key)),
        }
        let limit = self.limit.unwrap_or(usize::MAX);
        all.into_iter()
            .skip(self.offset)
            .take(limit)
            .map(|(_, payload)| payload)
            .collect()
    }
}

/// Merges correlation-group answers into (timestamp, id) order.
pub(crate) fn merge_by_time(parts: Vec<Vec<Hit>>) -> Vec<Bytes> {
    let mut all: Vec<Hit> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(key, _)| *key);
    all.into_iter().map(|(_, payload)| payload).collect()
}

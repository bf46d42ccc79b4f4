//! Query description and the merge of per-shard answers.

use super::shard::{Hit, Key};
use super::Bytes;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Result order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// No order asked for: ascending id while the store holds at most
    /// `SMALL_STORE` events (what a small map iterates in), else ascending
    /// (timestamp, id), so a limit is served from the time index in
    /// O(log n + limit).
    #[default]
    Unordered,
    /// Ascending event id.
    Id,
    /// Ascending timestamp, ties by ascending id.
    Timestamp,
    /// Descending timestamp, ties by descending id (newest first).
    TimestampDesc,
}

/// Stores of at most this many events answer unordered queries by id.
pub const SMALL_STORE: usize = 32;

/// A query over the store: filters, order, offset and limit.
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

/// Sort rank of an event under `order`: ascending rank is result order.
/// Timestamp ranks put the (offset) timestamp in the high 64 bits and the id
/// in the low ones; descending order is the bitwise complement.
pub(crate) fn rank(order: Order, ts: i64, id: u64) -> u128 {
    let by_time = (u128::from(ts.wrapping_sub(i64::MIN) as u64) << 64) | u128::from(id);
    match order {
        Order::Id | Order::Unordered => u128::from(id),
        Order::Timestamp => by_time,
        Order::TimestampDesc => !by_time,
    }
}

/// Merges the ranked per-shard streams (k-way, lazily), skipping `offset`
/// and stopping at `limit`; `fetch(shard, id)` gives a payload the stream
/// did not carry.
pub(crate) fn merge<'a>(
    q: &Query,
    mut streams: Vec<Box<dyn Iterator<Item = Key<'a>> + 'a>>,
    fetch: impl Fn(usize, u64) -> Option<Bytes>,
) -> Vec<Bytes> {
    let mut heap = BinaryHeap::new();
    for (shard, stream) in streams.iter_mut().enumerate() {
        if let Some((r, id, payload)) = stream.next() {
            heap.push(Reverse((r, id, shard, payload)));
        }
    }
    let limit = q.limit.unwrap_or(usize::MAX);
    let (mut out, mut skipped) = (Vec::new(), 0);
    while out.len() < limit {
        let Some(Reverse((_, id, shard, payload))) = heap.pop() else {
            break;
        };
        if skipped < q.offset {
            skipped += 1;
        } else if let Some(payload) = payload.cloned().or_else(|| fetch(shard, id)) {
            out.push(payload);
        }
        if let Some((r, id, payload)) = streams.get_mut(shard).and_then(|s| s.next()) {
            heap.push(Reverse((r, id, shard, payload)));
        }
    }
    out
}

/// Merges correlation-group answers into (timestamp, id) order.
pub(crate) fn merge_by_time(parts: Vec<Vec<Hit>>) -> Vec<Bytes> {
    let mut all: Vec<Hit> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(key, _)| *key);
    all.into_iter().map(|(_, payload)| payload).collect()
}

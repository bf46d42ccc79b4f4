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

/// Where a slice of a query's results starts and how much it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Rank of the last match a previous slice visited (`None`: the start).
    pub after: Option<u128>,
    /// Matches still to skip for the query's offset.
    pub skip: usize,
    /// Results still wanted (`None`: no limit).
    pub take: Option<usize>,
    /// Results this slice may return.
    pub max_items: usize,
    /// Matches this slice may skip.
    pub max_skip: usize,
    /// Payload bytes this slice may return (it returns at least one event).
    pub max_bytes: usize,
}

impl Slice {
    /// The whole answer in one slice.
    pub fn all(offset: usize, limit: Option<usize>) -> Slice {
        Slice {
            after: None,
            skip: offset,
            take: limit,
            max_items: usize::MAX,
            max_skip: usize::MAX,
            max_bytes: usize::MAX,
        }
    }
}

/// One slice of a query's results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The results, in order.
    pub items: Vec<Bytes>,
    /// Matches skipped (for the offset) by this slice.
    pub skipped: usize,
    /// Rank of the last match visited: where the next slice starts.
    pub cursor: Option<u128>,
    /// No match is left, or the limit is reached.
    pub done: bool,
}

/// Merges the ranked per-shard streams (k-way, lazily) within the bounds of
/// `slice`; `fetch(shard, id)` gives a payload the stream did not carry.
pub(crate) fn merge<'a>(
    slice: &Slice,
    mut streams: Vec<Box<dyn Iterator<Item = Key<'a>> + 'a>>,
    fetch: impl Fn(usize, u64) -> Option<Bytes>,
) -> Page {
    let mut heap = BinaryHeap::new();
    for (shard, stream) in streams.iter_mut().enumerate() {
        if let Some((r, id, payload)) = stream.next() {
            heap.push(Reverse((r, id, shard, payload)));
        }
    }
    let take = slice.take.unwrap_or(usize::MAX);
    let mut page = Page {
        cursor: slice.after,
        ..Page::default()
    };
    let mut bytes = 0usize;
    loop {
        if page.items.len() >= take {
            page.done = true;
            break;
        }
        let full = page.items.len() >= slice.max_items || bytes >= slice.max_bytes;
        if full || page.skipped >= slice.max_skip {
            break;
        }
        let Some(Reverse((r, id, shard, payload))) = heap.pop() else {
            page.done = true;
            break;
        };
        page.cursor = Some(r);
        if page.skipped < slice.skip {
            page.skipped += 1;
        } else if let Some(payload) = payload.cloned().or_else(|| fetch(shard, id)) {
            bytes = bytes.saturating_add(payload.len());
            page.items.push(payload);
        }
        if let Some((r, id, payload)) = streams.get_mut(shard).and_then(|s| s.next()) {
            heap.push(Reverse((r, id, shard, payload)));
        }
    }
    page
}

/// Merges correlation-group answers into (timestamp, id) order.
pub(crate) fn merge_by_time(parts: Vec<Vec<Hit>>) -> Vec<Bytes> {
    let mut all: Vec<Hit> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(key, _)| *key);
    all.into_iter().map(|(_, payload)| payload).collect()
}

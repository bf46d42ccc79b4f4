//! Query description and the merge of per-shard answers.

use super::shard::{Hit, Key};
use super::Bytes;
use crate::error::CoreResult;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

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

impl super::Store {
    /// How many events `q`'s type filter matches (all events without one;
    /// its order, offset and limit aside), and whether that is exactly what
    /// `q` matches (true unless it has a time range, which is not counted,
    /// or a prune's type cut is still to be swept: the figure is then an
    /// upper bound). O(shards): callers use it to size the memory a long
    /// answer will take.
    pub fn match_count(&self, q: &Query) -> CoreResult<(usize, bool)> {
        let exact = q.time_range.is_none();
        Ok(match &q.event_type {
            Some(t) => self
                .inner
                .each_shard(|s| s.type_len(t))?
                .iter()
                .fold((0, exact), |(n, exact), &(len, counted)| {
                    (n + len, exact && counted)
                }),
            None => (self.inner.hot.count.load(Relaxed), exact),
        })
    }

    /// Number of events in correlation group `cid`. O(shards).
    pub fn correlation_len(&self, cid: &[u8]) -> CoreResult<usize> {
        Ok(self
            .inner
            .each_shard(|s| s.correlation_len(cid))?
            .iter()
            .sum())
    }
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
    let mut picked = Vec::new();
    loop {
        if picked.len() >= take {
            page.done = true;
            break;
        }
        let full = picked.len() >= slice.max_items || bytes >= slice.max_bytes;
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
        } else if let Some(payload) = payload {
            prefetch(payload);
            bytes = bytes.saturating_add(payload.len());
            picked.push(Picked::Held(payload));
        } else if let Some(payload) = fetch(shard, id) {
            bytes = bytes.saturating_add(payload.len());
            picked.push(Picked::Fetched(payload));
        }
        if let Some((r, id, payload)) = streams.get_mut(shard).and_then(|s| s.next()) {
            heap.push(Reverse((r, id, shard, payload)));
        }
    }
    page.items = picked
        .into_iter()
        .map(|p| match p {
            Picked::Held(payload) => Arc::clone(payload),
            Picked::Fetched(payload) => payload,
        })
        .collect();
    page
}

/// A payload the merge picked: still in its index (copied out once the
/// page is complete) or already fetched.
enum Picked<'a> {
    Held(&'a Bytes),
    Fetched(Bytes),
}

/// Asks the CPU to start loading a payload's first bytes (the `Arc`'s
/// counts and the event's head). Payloads sit wherever they were allocated,
/// usually in lines no cache holds; a page copies out up to a hundred of
/// them, and loading them one by one as each `Arc` is cloned waited for
/// each miss in turn. Prefetched as the merge picks them, the misses
/// overlap, and the copies at the end find the lines loaded.
#[inline]
fn prefetch(payload: &Bytes) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let data = Arc::as_ptr(payload).cast::<i8>();
        // The counts sit just before the data, at most a line earlier.
        for line in [data.wrapping_sub(16), data] {
            // SAFETY: a prefetch is only a hint; it never faults, whatever
            // the address, and reads nothing the program sees.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = payload;
}

/// Merges correlation-group answers into (timestamp, id) order.
pub(crate) fn merge_by_time(parts: Vec<Vec<Hit>>) -> Vec<Bytes> {
    let mut all: Vec<Hit> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(key, _)| *key);
    all.into_iter().map(|(_, payload)| payload).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewEvent, Store, StoreConfig};
    use std::sync::Arc;

    fn store_with(events: &[(u64, &str, i64, &str)]) -> Store {
        let s = Store::new(StoreConfig::default()).unwrap();
        for &(id, ty, ts, cid) in events {
            s.put(NewEvent {
                id,
                event_type: Arc::from(ty.as_bytes()),
                timestamp: ts,
                correlation_id: Some(Arc::from(cid.as_bytes())),
                payload: Arc::from(id.to_be_bytes().as_slice()),
            })
            .unwrap();
        }
        s
    }

    fn typed(ty: Option<&str>, range: Option<(i64, i64)>) -> Query {
        Query {
            event_type: ty.map(|t| Arc::from(t.as_bytes())),
            time_range: range,
            ..Query::default()
        }
    }

    #[test]
    fn match_count_counts_types_and_bounds_time_ranges() {
        let s = store_with(&[(1, "a", 1, "x"), (2, "b", 2, "x"), (3, "a", 3, "y")]);
        assert_eq!(s.match_count(&typed(Some("a"), None)).unwrap(), (2, true));
        assert_eq!(s.match_count(&typed(Some("c"), None)).unwrap(), (0, true));
        assert_eq!(s.match_count(&typed(None, None)).unwrap(), (3, true));
        // A time range is not counted: the type's count bounds it.
        assert_eq!(
            s.match_count(&typed(Some("a"), Some((3, 3)))).unwrap(),
            (2, false)
        );
        // An overwrite that changes the type moves the count.
        s.put(NewEvent {
            id: 1,
            event_type: Arc::from(b"b".as_slice()),
            timestamp: 1,
            correlation_id: None,
            payload: Arc::from(1u64.to_be_bytes().as_slice()),
        })
        .unwrap();
        assert_eq!(s.match_count(&typed(Some("a"), None)).unwrap(), (1, true));
        assert_eq!(s.match_count(&typed(Some("b"), None)).unwrap(), (2, true));
    }

    #[test]
    fn correlation_len_sums_the_group_over_shards() {
        let events: Vec<(u64, &str, i64, &str)> = (1..=100)
            .map(|i| (i, "t", i as i64, if i % 4 == 0 { "z" } else { "w" }))
            .collect();
        let s = store_with(&events);
        assert_eq!(s.correlation_len(b"z").unwrap(), 25);
        assert_eq!(s.correlation_len(b"w").unwrap(), 75);
        assert_eq!(s.correlation_len(b"none").unwrap(), 0);
    }
}

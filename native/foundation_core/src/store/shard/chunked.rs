//! The ordered maps of a shard's indexes: sorted entries kept in short
//! chunks (about 4 KiB each), with each chunk's least key in one array
//! beside them.
//!
//! Why not `BTreeMap`: a prune cuts the oldest part off every index, and
//! `BTreeMap::split_off` counts the entries of one side by visiting each of
//! its nodes. Memory a program has not touched for a while is slow to come
//! back on the virtual machines we measure on (reading one byte from each
//! of 20 000 random pages took 0.5-2 µs a page, 20-30 ns the second time),
//! and a prune of a quarter of a 21 000-event shard spent 7-20 ms in that
//! count. Here a cut moves whole chunks from one list to another and splits
//! one chunk: it reads the chunk list, one chunk, and nothing else.
//!
//! New keys are usually the greatest yet (ids and timestamps grow with
//! time): they are pushed onto the last chunk. A key just after the last
//! one put (the next of an ascending run that is not the map's last) goes
//! next to it without a search. Any other key finds its chunk by a binary
//! search over the least keys, then moves at most a chunk's worth of
//! entries; a key after every key of a full chunk starts the next one. A
//! write leaves the least keys alone unless its key goes first in its
//! chunk, so writers on different cores mostly share them read-only. Scans
//! read the entries in order from contiguous memory.

use std::collections::{vec_deque, VecDeque};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// Bytes of entries a chunk is filled to by appends; a chunk that reaches
/// twice as many entries by inserts elsewhere splits in two.
const CHUNK_BYTES: usize = 4096;

/// What a map keeps of each chunk's values beside the chunk (`()`: nothing),
/// so a question about many entries (such as "is every one older than
/// this?") reads one summary per chunk instead of every entry.
pub(crate) trait Summary<V>: Copy + Debug + Default {
    fn of(value: &V) -> Self;
    fn merge(self, other: Self) -> Self;
    /// Whether `value` leaving a chunk summed as `self` leaves the summary
    /// as it is (else the chunk is summed again).
    fn outlives(self, value: &V) -> bool;
}

impl<V> Summary<V> for () {
    fn of(_: &V) {}
    fn merge(self, _: ()) {}
    fn outlives(self, _: &V) -> bool {
        true
    }
}

/// An ordered map of `K` to `V`, with a summary `S` of each chunk.
#[derive(Debug)]
pub(crate) struct Chunked<K, V, S = ()> {
    /// Each chunk's least key: what a search reads, and what a write
    /// leaves alone unless its key goes first in a chunk.
    firsts: VecDeque<K>,
    /// Non-empty sorted chunks; every key of a chunk is below every key of
    /// the next one.
    chunks: VecDeque<Chunk<K, V, S>>,
    len: usize,
    /// Where the last `put` left its key: (chunk, index, key). The next
    /// key of the same ascending run goes just after it, found without a
    /// search once the hint is checked against the map as it is now (see
    /// `after_hint`), so runs that interleave in one map (several writers'
    /// ids) each cost a search only when another run wrote in between.
    hint: Option<(usize, usize, K)>,
}

/// A chunk's entries and their summary: a write that adds an entry
/// changes the two in one place.
#[derive(Debug)]
struct Chunk<K, V, S> {
    /// A deque: eviction takes the oldest entry off the front of the
    /// first chunk without moving the rest.
    entries: VecDeque<(K, V)>,
    sum: S,
}

impl<K, V, S: Summary<V>> Chunk<K, V, S> {
    fn new(entries: VecDeque<(K, V)>) -> Self {
        let sum = sum_of(&entries);
        Chunk { entries, sum }
    }

    /// Sums the entries again (after a change the summary cannot follow).
    fn resum(&mut self) {
        self.sum = sum_of(&self.entries);
    }
}

impl<K, V, S> Default for Chunked<K, V, S> {
    fn default() -> Self {
        Chunked {
            firsts: VecDeque::new(),
            chunks: VecDeque::new(),
            len: 0,
            hint: None,
        }
    }
}

/// The summary of a chunk's entries.
fn sum_of<K, V, S: Summary<V>>(entries: &VecDeque<(K, V)>) -> S {
    entries
        .iter()
        .fold(S::default(), |sum, (_, v)| sum.merge(S::of(v)))
}

/// Where a key is or would go: its chunk and its index there (`Err`:
/// where it would go).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    chunk: usize,
    at: Result<usize, usize>,
}

/// Entries in key order, from either end.
pub(crate) struct Range<'a, K, V, S = ()> {
    front: vec_deque::Iter<'a, (K, V)>,
    middle: vec_deque::Iter<'a, Chunk<K, V, S>>,
    back: vec_deque::Iter<'a, (K, V)>,
}

impl<'a, K, V, S> Iterator for Range<'a, K, V, S> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.front.next() {
                return Some((k, v));
            }
            match self.middle.next() {
                Some(chunk) => self.front = chunk.entries.iter(),
                None => return self.back.next().map(|(k, v)| (k, v)),
            }
        }
    }
}

impl<K, V, S> DoubleEndedIterator for Range<'_, K, V, S> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.back.next_back() {
                return Some((k, v));
            }
            match self.middle.next_back() {
                Some(chunk) => self.back = chunk.entries.iter(),
                None => return self.front.next_back().map(|(k, v)| (k, v)),
            }
        }
    }
}

impl<K: Ord + Copy, V, S: Summary<V>> Chunked<K, V, S> {
    /// Entries a chunk is filled to by appends (small in unit tests, so
    /// they split and cut chunks with few entries).
    const FILL: usize = if cfg!(test) {
        4
    } else {
        match CHUNK_BYTES.checked_div(std::mem::size_of::<(K, V)>()) {
            Some(n) if n >= 16 => n,
            _ => 16,
        }
    };

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds `k` if any does: the last whose least key is
    /// at most `k` (the first chunk for a key below every key).
    fn chunk_of(&self, k: &K) -> usize {
        self.firsts
            .partition_point(|first| first <= k)
            .saturating_sub(1)
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        let entries = &self.chunks.get(self.chunk_of(k))?.entries;
        let i = entries.binary_search_by(|(key, _)| key.cmp(k)).ok()?;
        Some(&entries[i].1)
    }

    /// Adds `k`, or replaces its value (returning the old one).
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let slot = self.slot(&k);
        self.put(slot, k, v)
    }

    /// Where `k` is or would go, with its value if it is there: `put` then
    /// adds it without searching again, if nothing changed in between.
    pub(crate) fn find(&self, k: &K) -> (Option<&V>, Slot) {
        let slot = self.slot(k);
        let value = match slot.at {
            Ok(i) => Some(&self.chunks[slot.chunk].entries[i].1),
            Err(_) => None,
        };
        (value, slot)
    }

    fn slot(&self, k: &K) -> Slot {
        // The usual case first: a key after every key, found without a
        // search.
        if let Some(last) = self.chunks.back() {
            if last.entries.back().is_some_and(|(key, _)| key < k) {
                let at = Err(last.entries.len());
                let chunk = self.chunks.len() - 1;
                return Slot { chunk, at };
            }
        }
        if let Some(slot) = self.after_hint(k) {
            return slot;
        }
        let chunk = self.chunk_of(k);
        let at = match self.chunks.get(chunk) {
            Some(c) => c.entries.binary_search_by(|(key, _)| key.cmp(k)),
            None => Err(0),
        };
        Slot { chunk, at }
    }

    /// `k`'s slot when it goes just after the hint's key (the same slot a
    /// search finds), else `None`. A stale hint is harmless: keys are
    /// unique, so if the hinted place holds the hinted key, that is where
    /// the key is now.
    fn after_hint(&self, k: &K) -> Option<Slot> {
        let (chunk, at, key) = self.hint?;
        let entries = &self.chunks.get(chunk)?.entries;
        if entries.get(at)?.0 != key || key >= *k {
            return None;
        }
        let next = at + 1;
        let at = match entries.get(next) {
            Some((after, _)) if after == k => Ok(next),
            Some((after, _)) if after > k => Err(next),
            Some(_) => return None,
            // The chunk's last key: `k` goes here unless the next chunk
            // starts at or before it.
            None if self.firsts.get(chunk + 1).is_none_or(|first| first > k) => Err(next),
            None => return None,
        };
        Some(Slot { chunk, at })
    }

    /// Adds `k` at `slot` (from `find` or `slot` of the same `k`, with no
    /// change to the map since), or replaces its value.
    pub(crate) fn put(&mut self, slot: Slot, k: K, v: V) -> Option<V> {
        let fill = Self::FILL;
        let c = slot.chunk;
        let Some(chunk) = self.chunks.get_mut(c) else {
            // The first entry.
            self.start_chunk(c, k, v);
            return None;
        };
        let i = match slot.at {
            Ok(i) => {
                let old = std::mem::replace(&mut chunk.entries[i].1, v);
                chunk.resum();
                self.hint = Some((c, i, k));
                return Some(old);
            }
            Err(i) => i,
        };
        let n = chunk.entries.len();
        if i == n && n >= fill {
            // After every key of a full chunk (and before the next chunk):
            // a new chunk, as appends to the map make. Runs of ascending
            // keys that interleave (several writers' ids) each fill their
            // own chunks this way, with a push a key.
            self.start_chunk(c + 1, k, v);
            return None;
        }
        self.len += 1;
        chunk.sum = chunk.sum.merge(S::of(&v));
        chunk.entries.insert(i, (k, v));
        if i == 0 {
            self.firsts[c] = k;
        }
        self.hint = Some((c, i, k));
        let n = chunk.entries.len();
        if n >= 2 * fill {
            // Split just after the new key when it falls in the second
            // half: a run of ascending keys that lands before another
            // run's first keys leaves those in a chunk of their own, and
            // its next keys start a new chunk instead of moving them again.
            let at = if i + 1 >= fill && i + 1 < n {
                i + 1
            } else {
                fill
            };
            let mut tail = VecDeque::with_capacity(fill.max(n - at));
            tail.extend(chunk.entries.drain(at..));
            chunk.resum();
            self.firsts.insert(c + 1, tail[0].0);
            self.chunks.insert(c + 1, Chunk::new(tail));
            if i >= at {
                self.hint = Some((c + 1, i - at, k));
            }
        }
        None
    }

    /// A new chunk at `at` holding `k` alone, with room for `FILL`.
    fn start_chunk(&mut self, at: usize, k: K, v: V) {
        let mut entries = VecDeque::with_capacity(Self::FILL);
        entries.push_back((k, v));
        self.chunks.insert(at, Chunk::new(entries));
        self.firsts.insert(at, k);
        self.len += 1;
        self.hint = Some((at, 0, k));
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let c = self.chunk_of(k);
        let chunk = self.chunks.get_mut(c)?;
        let i = chunk.entries.binary_search_by(|(key, _)| key.cmp(k)).ok()?;
        let (_, v) = chunk.entries.remove(i)?;
        self.len -= 1;
        match chunk.entries.front() {
            None => {
                self.chunks.remove(c);
                self.firsts.remove(c);
            }
            Some(&(first, _)) => {
                self.firsts[c] = first;
                if !chunk.sum.outlives(&v) {
                    chunk.resum();
                }
            }
        }
        Some(v)
    }

    /// Cuts off and returns the entries with keys below `k`: whole chunks
    /// move, and at most one is split.
    pub(crate) fn split_before(&mut self, k: &K) -> Chunked<K, V, S> {
        // Chunks before `c` start below `k`; all but the last of them end
        // below it too.
        let c = self.firsts.partition_point(|first| first < k);
        let whole = match c.checked_sub(1).map(|last| &self.chunks[last].entries) {
            Some(entries) if entries.back().is_some_and(|(key, _)| key >= k) => c - 1,
            _ => c,
        };
        let mut chunks: VecDeque<Chunk<K, V, S>> = self.chunks.drain(..whole).collect();
        let mut firsts: VecDeque<K> = self.firsts.drain(..whole).collect();
        if whole < c {
            // It starts below `k` and ends at or above it.
            let chunk = &mut self.chunks[0];
            let p = chunk.entries.partition_point(|(key, _)| key < k);
            let rest = chunk.entries.split_off(p);
            let head = std::mem::replace(&mut chunk.entries, rest);
            chunk.resum();
            self.firsts[0] = chunk.entries[0].0;
            firsts.push_back(head[0].0);
            chunks.push_back(Chunk::new(head));
        }
        let len = chunks.iter().map(|c| c.entries.len()).sum();
        self.len -= len;
        Chunked {
            firsts,
            chunks,
            len,
            hint: None,
        }
    }

    /// The summary of every entry (`S::default()` when empty).
    pub(crate) fn summary(&self) -> S {
        self.chunks
            .iter()
            .fold(S::default(), |sum, chunk| sum.merge(chunk.sum))
    }

    /// Puts back entries whose keys are all below every key held (what
    /// `split_before` cut off).
    pub(crate) fn prepend(&mut self, front: Chunked<K, V, S>) {
        debug_assert!(match (front.last_key_value(), self.firsts.front()) {
            (Some((last, _)), Some(first)) => last < first,
            _ => true,
        });
        self.len += front.len;
        for (chunk, first) in front.chunks.into_iter().zip(front.firsts).rev() {
            self.chunks.push_front(chunk);
            self.firsts.push_front(first);
        }
    }

    /// The entry with the greatest key.
    pub(crate) fn last_key_value(&self) -> Option<(&K, &V)> {
        self.chunks.back()?.entries.back().map(|(k, v)| (k, v))
    }

    /// Where the entries at or after `bound` start: (chunk, index in it).
    fn start_of(&self, bound: Bound<&K>) -> (usize, usize) {
        let (k, excluded) = match bound {
            Bound::Unbounded => return (0, 0),
            Bound::Included(k) => (k, false),
            Bound::Excluded(k) => (k, true),
        };
        let c = self.chunk_of(k);
        let p = self.chunks.get(c).map_or(0, |chunk| {
            chunk
                .entries
                .partition_point(|(key, _)| key < k || (excluded && key == k))
        });
        match self.chunks.get(c) {
            Some(chunk) if p == chunk.entries.len() => (c + 1, 0),
            _ => (c, p),
        }
    }

    /// The entries with keys in `range`, in order.
    pub(crate) fn range<R: RangeBounds<K>>(&self, range: R) -> Range<'_, K, V, S> {
        let (c0, p0) = self.start_of(range.start_bound());
        let (c1, p1) = match range.end_bound() {
            Bound::Unbounded => (self.chunks.len(), 0),
            Bound::Included(k) => self.start_of(Bound::Excluded(k)),
            Bound::Excluded(k) => self.start_of(Bound::Included(k)),
        };
        let empty = Range {
            front: Default::default(),
            middle: Default::default(),
            back: Default::default(),
        };
        if (c0, p0) >= (c1, p1) || c0 >= self.chunks.len() {
            return empty;
        }
        if c0 == c1 {
            return Range {
                front: self.chunks[c0].entries.range(p0..p1),
                ..empty
            };
        }
        let back = match self.chunks.get(c1) {
            Some(chunk) => chunk.entries.range(..p1),
            None => Default::default(),
        };
        Range {
            front: self.chunks[c0].entries.range(p0..),
            middle: self.chunks.range(c0 + 1..c1),
            back,
        }
    }

    pub(crate) fn iter(&self) -> Range<'_, K, V, S> {
        self.range(..)
    }

    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

impl<'a, K: Ord + Copy, V, S: Summary<V>> IntoIterator for &'a Chunked<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = Range<'a, K, V, S>;

    fn into_iter(self) -> Range<'a, K, V, S> {
        self.iter()
    }
}

impl<K: Ord + Copy, V, S: Summary<V>> FromIterator<(K, V)> for Chunked<K, V, S> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Chunked::default();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The greatest value, as the summary the tests keep.
    #[derive(Debug, Clone, Copy, Default, PartialEq)]
    struct Max(Option<u32>);

    impl Summary<u32> for Max {
        fn of(v: &u32) -> Max {
            Max(Some(*v))
        }
        fn merge(self, other: Max) -> Max {
            Max(self.0.max(other.0))
        }
        fn outlives(self, v: &u32) -> bool {
            self.0 > Some(*v)
        }
    }

    type Map = Chunked<u16, u32, Max>;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        /// A key 1 to 3 above the last one inserted (the next key of a run).
        Next(u16, u32),
        Remove(u16),
        Cut(u16),
        CutAndPutBack(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k % 512, v)),
            // Runs of ascending keys, as the store mostly sees.
            3 => (0u16..64, any::<u32>()).prop_map(|(k, v)| Op::Insert(512 + k * 8, v)),
            4 => (1u16..4, any::<u32>()).prop_map(|(d, v)| Op::Next(d, v)),
            3 => any::<u16>().prop_map(|k| Op::Remove(k % 1024)),
            1 => any::<u16>().prop_map(|k| Op::Cut(k % 1024)),
            1 => any::<u16>().prop_map(|k| Op::CutAndPutBack(k % 1024)),
        ]
    }

    fn bound(kind: u8, k: u16) -> Bound<u16> {
        match kind % 3 {
            0 => Bound::Included(k),
            1 => Bound::Excluded(k),
            _ => Bound::Unbounded,
        }
    }

    fn check_shape(map: &Map) {
        assert_eq!(map.chunks.len(), map.firsts.len());
        let lens = map.chunks.iter().map(|c| c.entries.len());
        assert_eq!(map.len, lens.sum::<usize>());
        let mut prev: Option<u16> = None;
        for (chunk, first) in map.chunks.iter().zip(&map.firsts) {
            assert!(!chunk.entries.is_empty());
            assert!(chunk.entries.len() < 2 * Map::FILL);
            assert_eq!(chunk.entries[0].0, *first);
            assert_eq!(chunk.sum, sum_of(&chunk.entries));
            for &(k, _) in &chunk.entries {
                assert!(prev.is_none_or(|p| p < k));
                prev = Some(k);
            }
        }
    }

    proptest! {
        #[test]
        fn behaves_as_a_btree_map(
            ops in proptest::collection::vec(op(), 0..400),
            ranges in proptest::collection::vec((any::<u8>(), 0u16..1100, any::<u8>(), 0u16..1100), 1..8),
        ) {
            let mut map = Map::default();
            let mut model: BTreeMap<u16, u32> = BTreeMap::new();
            let mut last = 0;
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        last = k;
                        prop_assert_eq!(map.insert(k, v), model.insert(k, v));
                    }
                    Op::Next(d, v) => {
                        last = (last + d) % 1024;
                        prop_assert_eq!(map.insert(last, v), model.insert(last, v));
                    }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::Cut(k) => {
                        let kept = model.split_off(&k);
                        let gone = std::mem::replace(&mut model, kept);
                        let cut = map.split_before(&k);
                        check_shape(&cut);
                        prop_assert_eq!(cut.len(), gone.len());
                        prop_assert_eq!(cut.summary(), Max(gone.values().max().copied()));
                        prop_assert!(cut.iter().map(|(k, v)| (*k, *v)).eq(gone));
                    }
                    Op::CutAndPutBack(k) => {
                        let cut = map.split_before(&k);
                        map.prepend(cut);
                    }
                }
                check_shape(&map);
                prop_assert_eq!(map.len(), model.len());
            }
            prop_assert!(map.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            prop_assert_eq!(map.last_key_value(), model.last_key_value());
            prop_assert_eq!(map.summary(), Max(model.values().max().copied()));
            for k in 0..1100 {
                prop_assert_eq!(map.get(&k), model.get(&k));
            }
            for (a, lo, b, hi) in ranges {
                let r = (bound(a, lo), bound(b, hi));
                let valid = match r {
                    (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
                        l < h || (l == h && matches!(r, (Bound::Included(_), Bound::Included(_))))
                    }
                    _ => true,
                };
                if !valid {
                    prop_assert_eq!(map.range(r).count(), 0);
                    continue;
                }
                let want: Vec<_> = model.range(r).map(|(k, v)| (*k, *v)).collect();
                let got: Vec<_> = map.range(r).map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(&got, &want);
                let back: Vec<_> = map.range(r).rev().map(|(k, v)| (*k, *v)).collect();
                prop_assert!(back.into_iter().eq(want.iter().rev().copied()));
                // Both ends at once meet in the middle.
                let mut it = map.range(r);
                let mut seen = Vec::new();
                let mut front = true;
                while let Some(e) = if front { it.next() } else { it.next_back() } {
                    seen.push(*e.0);
                    front = !front;
                }
                seen.sort_unstable();
                prop_assert!(seen.into_iter().eq(want.iter().map(|e| e.0)));
            }
        }
    }

    #[test]
    fn appends_fill_chunks_and_a_cut_moves_whole_ones() {
        let mut map: Map = (0..10).map(|k| (k, 0)).collect();
        assert_eq!(map.chunks.len(), 3);
        let cut = map.split_before(&8);
        assert_eq!((cut.chunks.len(), cut.len()), (2, 8));
        assert_eq!((map.chunks.len(), map.len()), (1, 2));
        let cut = map.split_before(&9);
        assert_eq!((cut.len(), map.len()), (1, 1));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [9]);
    }
}

//! The sorted key sets of the warm tier's in-memory indexes: (system time,
//! id) pairs, kept as a list of short sorted blocks.
//!
//! The indexes take a key per event written and give one back per event
//! evicted, and both ends are where the work is: new events carry the
//! newest times, eviction takes the oldest. A `BTreeSet` pays a descent
//! through its nodes (a cache miss a level) for each; here a key newer
//! than every other is pushed onto the last block, the oldest is popped
//! from the first block (blocks are `VecDeque`s), and anything else finds
//! its block by a binary search over an array of the blocks' greatest
//! keys, then moves at most a block's worth of keys.

use std::collections::VecDeque;
use std::ops::Bound;

/// (system timestamp, id).
pub type Key = (i64, u64);

/// Keys a block is filled to by appends; a block splits in two when it
/// reaches twice that.
const BLOCK: usize = 128;

/// Keys of one `insert_sorted` call going into one block from which they
/// are merged with it rather than inserted one at a time.
const MERGE_RUN: usize = 16;

/// A set of keys in ascending order.
#[derive(Default, Debug)]
pub struct Ordered {
    /// Non-empty sorted blocks; every key of a block is below every key
    /// of the next. A deque too, so the first block goes in O(1).
    blocks: VecDeque<VecDeque<Key>>,
    /// Each block's greatest key.
    greatest: VecDeque<Key>,
    len: usize,
}

impl Ordered {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The greatest key.
    pub fn last(&self) -> Option<&Key> {
        self.greatest.back()
    }

    /// The block that holds `k` if any does, and where it would go
    /// otherwise: the first whose greatest key is at least `k`, or the
    /// last block.
    fn block_of(&self, k: &Key) -> usize {
        self.greatest
            .partition_point(|g| g < k)
            .min(self.blocks.len().saturating_sub(1))
    }

    /// The block from `from` on that holds `k` if any does, and where it
    /// would go otherwise (see `block_of`): a search forward from `from`,
    /// by steps that double, so keys taken in ascending order cost the
    /// distance between them, not the set's size. A `from` past `k`'s
    /// place (or out of range) falls back to `block_of`.
    fn block_from(&self, from: usize, k: &Key) -> usize {
        let n = self.greatest.len();
        if from >= n || (from > 0 && self.greatest[from - 1] >= *k) {
            return self.block_of(k);
        }
        if self.greatest[from] >= *k {
            return from;
        }
        // greatest[lo] < k; the answer is in (lo, hi], or the last block.
        let (mut lo, mut step) = (from, 1);
        let mut hi = loop {
            let probe = lo + step;
            if probe >= n {
                break n;
            }
            if self.greatest[probe] >= *k {
                break probe;
            }
            lo = probe;
            step *= 2;
        };
        lo += 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.greatest[mid] < *k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.min(n - 1)
    }

    /// Adds `k`; `false` if it was there.
    pub fn insert(&mut self, k: Key) -> bool {
        let mut hint = usize::MAX;
        self.insert_near(k, &mut hint)
    }

    /// [`Ordered::insert`] for keys taken in ascending order: `hint` (any
    /// value at first) keeps the block the last key went to, where the
    /// search for the next one starts.
    pub fn insert_near(&mut self, k: Key, hint: &mut usize) -> bool {
        let Some(&top) = self.greatest.back() else {
            self.push_block(k);
            *hint = 0;
            return true;
        };
        let last = self.blocks.len() - 1;
        if k > top {
            if self.blocks[last].len() >= BLOCK {
                self.push_block(k);
            } else {
                self.blocks[last].push_back(k);
                self.greatest[last] = k;
                self.len += 1;
            }
            *hint = self.blocks.len() - 1;
            return true;
        }
        let b = self.block_from(*hint, &k);
        *hint = b;
        let block = &mut self.blocks[b];
        let Err(at) = block.binary_search(&k) else {
            return false;
        };
        block.insert(at, k);
        self.len += 1;
        // Split before the block would grow its buffer past 2 * BLOCK.
        if block.len() >= 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            // Both halves hold BLOCK keys or more.
            if let (Some(&head_max), Some(&tail_max)) = (block.back(), tail.back()) {
                self.greatest[b] = head_max;
                self.greatest.insert(b + 1, tail_max);
                self.blocks.insert(b + 1, tail);
            }
        }
        true
    }

    /// Adds `keys` (ascending, duplicates allowed), calling `added` with
    /// each key that was not there. The keys that fall in one block are
    /// merged with it in one pass, and the blocks that come out of it go in
    /// together: one insert at a time, a run of a thousand keys into one
    /// place searched, shifted and split that block (and shifted the list
    /// of blocks) over and over.
    pub fn insert_sorted(&mut self, keys: &[Key], mut added: impl FnMut(Key)) {
        let mut hint = 0;
        let mut i = 0;
        while i < keys.len() {
            let k = keys[i];
            let b = match self.greatest.back() {
                Some(&top) if k <= top => self.block_from(hint, &k),
                // Past every key (or none yet): appended one by one.
                _ => {
                    if self.insert_near(k, &mut hint) {
                        added(k);
                    }
                    i += 1;
                    continue;
                }
            };
            let g = self.greatest[b];
            let end = i + keys[i..].partition_point(|x| *x <= g);
            hint = b;
            if end - i < MERGE_RUN {
                for &k in &keys[i..end] {
                    if self.insert_near(k, &mut hint) {
                        added(k);
                    }
                }
                i = end;
                continue;
            }
            let old = std::mem::take(&mut self.blocks[b]);
            let old_len = old.len();
            let mut merged = Vec::with_capacity(old_len + end - i);
            let mut run = keys[i..end].iter().copied().peekable();
            for k in old {
                while let Some(&r) = run.peek() {
                    if r >= k {
                        break;
                    }
                    run.next();
                    if merged.last() != Some(&r) {
                        merged.push(r);
                        added(r);
                    }
                }
                // A run key equal to a stored one is not added.
                if run.peek() == Some(&k) {
                    run.next();
                }
                merged.push(k);
            }
            for r in run {
                if merged.last() != Some(&r) {
                    merged.push(r);
                    added(r);
                }
            }
            self.len += merged.len() - old_len;
            let parts: Vec<VecDeque<Key>> = merged
                .chunks(BLOCK)
                .map(|c| c.iter().copied().collect())
                .collect();
            self.replace_block(b, parts);
            i = end;
        }
    }

    /// Puts `parts` (non-empty, ascending, below the next block) in the
    /// place of block `b`, moving the blocks after it once.
    fn replace_block(&mut self, b: usize, parts: Vec<VecDeque<Key>>) {
        let mut blocks = self.blocks.split_off(b + 1);
        let mut greatest = self.greatest.split_off(b + 1);
        self.blocks.pop_back();
        self.greatest.pop_back();
        for part in parts {
            if let Some(&g) = part.back() {
                self.greatest.push_back(g);
                self.blocks.push_back(part);
            }
        }
        self.blocks.append(&mut blocks);
        self.greatest.append(&mut greatest);
    }

    /// The least key at or above `k`, if any; `hint` as for
    /// [`Ordered::insert_near`].
    pub fn ceiling_near(&self, k: &Key, hint: &mut usize) -> Option<Key> {
        if self.blocks.is_empty() {
            return None;
        }
        let b = self.block_from(*hint, k);
        *hint = b;
        let block = &self.blocks[b];
        block.get(block.partition_point(|x| x < k)).copied()
    }

    fn push_block(&mut self, k: Key) {
        let mut block = VecDeque::with_capacity(BLOCK);
        block.push_back(k);
        self.blocks.push_back(block);
        self.greatest.push_back(k);
        self.len += 1;
    }

    /// Removes `k`; `false` if it was not there.
    pub fn remove(&mut self, k: &Key) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        // The oldest key (eviction) needs no search.
        let (b, at) = if self.blocks[0].front() == Some(k) {
            (0, 0)
        } else {
            let b = self.block_of(k);
            match self.blocks[b].binary_search(k) {
                Ok(at) => (b, at),
                Err(_) => return false,
            }
        };
        let block = &mut self.blocks[b];
        block.remove(at);
        self.len -= 1;
        match block.back() {
            None => {
                self.blocks.remove(b);
                self.greatest.remove(b);
            }
            Some(&g) => {
                self.greatest[b] = g;
                let small = block.len();
                // Removals from the middle (a prune by type, overwrites)
                // can leave many small blocks: one that is down to a
                // quarter joins its successor when they fit in one.
                if small <= BLOCK / 4
                    && b + 1 < self.blocks.len()
                    && small + self.blocks[b + 1].len() <= BLOCK
                {
                    if let Some(mut next) = self.blocks.remove(b + 1) {
                        self.greatest.remove(b);
                        self.blocks[b].append(&mut next);
                    }
                }
            }
        }
        true
    }

    /// Up to `max` keys within `(lower, upper)`, ascending, or descending
    /// from the upper end with `desc`.
    pub fn range(
        &self,
        lower: Bound<&Key>,
        upper: Bound<&Key>,
        desc: bool,
        max: usize,
    ) -> Vec<Key> {
        let above = |k: &Key| match lower {
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
            Bound::Unbounded => true,
        };
        let below = |k: &Key| match upper {
            Bound::Included(u) => k <= u,
            Bound::Excluded(u) => k < u,
            Bound::Unbounded => true,
        };
        let mut out = Vec::new();
        if self.blocks.is_empty() || max == 0 {
            return out;
        }
        if desc {
            // The first position past the upper bound, then backwards.
            let b = self.greatest.partition_point(|g| below(g));
            let (mut b, mut at) = match self.blocks.get(b) {
                Some(block) => (b, block.partition_point(|k| below(k))),
                None => (b - 1, self.blocks[b - 1].len()),
            };
            loop {
                let block = &self.blocks[b];
                while at > 0 {
                    at -= 1;
                    let k = block[at];
                    if !above(&k) {
                        return out;
                    }
                    out.push(k);
                    if out.len() == max {
                        return out;
                    }
                }
                if b == 0 {
                    return out;
                }
                b -= 1;
                at = self.blocks[b].len();
            }
        }
        let first = self.greatest.partition_point(|g| !above(g));
        let mut at = match self.blocks.get(first) {
            Some(block) => block.partition_point(|k| !above(k)),
            None => return out,
        };
        for block in self.blocks.range(first..) {
            for &k in block.range(at..) {
                if !below(&k) {
                    return out;
                }
                out.push(k);
                if out.len() == max {
                    return out;
                }
            }
            at = 0;
        }
        out
    }

    /// Every key, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.blocks.iter().flatten()
    }
}

impl FromIterator<Key> for Ordered {
    /// The set of `keys` (in any order, duplicates allowed), in full
    /// blocks.
    fn from_iter<I: IntoIterator<Item = Key>>(keys: I) -> Ordered {
        let mut keys: Vec<Key> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let len = keys.len();
        let blocks: VecDeque<VecDeque<Key>> = keys
            .chunks(BLOCK)
            .map(|c| c.iter().copied().collect())
            .collect();
        let greatest = blocks.iter().filter_map(|b| b.back().copied()).collect();
        Ordered {
            blocks,
            greatest,
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Key),
        Remove(Key),
        /// Removes up to this many keys from this one on (a prune).
        RemoveRun(Key, usize),
    }

    fn key() -> impl Strategy<Value = Key> {
        // Few distinct times, so keys collide and ranges are dense.
        (0i64..40, 0u64..40)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => key().prop_map(Op::Insert),
            // Appends past every key, the common case.
            2 => (40i64..10_000, 0u64..4).prop_map(Op::Insert),
            2 => key().prop_map(Op::Remove),
            1 => (key(), 1usize..200).prop_map(|(k, n)| Op::RemoveRun(k, n)),
        ]
    }

    fn bound(kind: u8, k: Key) -> Bound<Key> {
        match kind % 3 {
            0 => Bound::Included(k),
            1 => Bound::Excluded(k),
            _ => Bound::Unbounded,
        }
    }

    fn check_shape(set: &Ordered) {
        assert_eq!(set.blocks.len(), set.greatest.len());
        assert_eq!(set.len, set.blocks.iter().map(VecDeque::len).sum::<usize>());
        for (block, g) in set.blocks.iter().zip(&set.greatest) {
            assert!(!block.is_empty() && block.len() < 2 * BLOCK);
            assert_eq!(block.back(), Some(g));
        }
        let keys: Vec<&Key> = set.iter().collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "not strictly ascending"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn behaves_as_a_btree_set(
            seed in prop::collection::vec(key(), 0..600),
            ops in prop::collection::vec(op(), 0..1500),
            ranges in prop::collection::vec((0u8..3, key(), 0u8..3, key(), any::<bool>(), 1usize..300), 1..20),
        ) {
            let mut set: Ordered = seed.iter().copied().collect();
            let mut model: BTreeSet<Key> = seed.iter().copied().collect();
            check_shape(&set);
            for op in ops {
                match op {
                    Op::Insert(k) => prop_assert_eq!(set.insert(k), model.insert(k)),
                    Op::Remove(k) => prop_assert_eq!(set.remove(&k), model.remove(&k)),
                    Op::RemoveRun(k, n) => {
                        let run: Vec<Key> = model.range(k..).take(n).copied().collect();
                        for k in run {
                            prop_assert!(set.remove(&k));
                            model.remove(&k);
                        }
                    }
                }
            }
            check_shape(&set);
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.last(), model.last());
            prop_assert!(set.iter().eq(model.iter()));
            for (lk, l, uk, u, desc, max) in ranges {
                let (lo, hi) = (bound(lk, l), bound(uk, u));
                let lo_ref = lo.as_ref();
                let hi_ref = hi.as_ref();
                let valid = match (lo_ref, hi_ref) {
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                        a < b || (a == b && matches!((lo_ref, hi_ref), (Bound::Included(_), Bound::Included(_))))
                    }
                    _ => true,
                };
                if !valid {
                    // An empty or inverted range (the model panics on those).
                    prop_assert!(set.range(lo_ref, hi_ref, desc, max).is_empty());
                    continue;
                }
                let expect: Vec<Key> = if desc {
                    model.range((lo_ref, hi_ref)).rev().take(max).copied().collect()
                } else {
                    model.range((lo_ref, hi_ref)).take(max).copied().collect()
                };
                prop_assert_eq!(set.range(lo_ref, hi_ref, desc, max), expect);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Runs of ascending keys through one hint, and lookups of the
        /// least key at or above another, as a `BTreeSet` gives them.
        #[test]
        fn hinted_inserts_and_ceilings_match_a_btree_set(
            seed in prop::collection::vec(key(), 0..600),
            runs in prop::collection::vec(prop::collection::vec(key(), 0..300), 1..8),
            probes in prop::collection::vec(key(), 0..200),
        ) {
            let mut set: Ordered = seed.iter().copied().collect();
            let mut model: BTreeSet<Key> = seed.iter().copied().collect();
            for (n, mut run) in runs.into_iter().enumerate() {
                run.sort_unstable();
                if n % 2 == 0 {
                    let mut hint = 0;
                    for k in run {
                        prop_assert_eq!(set.insert_near(k, &mut hint), model.insert(k));
                    }
                } else {
                    let mut added = Vec::new();
                    set.insert_sorted(&run, |k| added.push(k));
                    let mut expect: Vec<Key> = run.into_iter().filter(|&k| model.insert(k)).collect();
                    expect.dedup();
                    prop_assert_eq!(added, expect);
                }
            }
            check_shape(&set);
            prop_assert!(set.iter().eq(model.iter()));
            let mut probes = probes;
            probes.sort_unstable();
            let mut hint = usize::MAX;
            for k in probes {
                prop_assert_eq!(set.ceiling_near(&k, &mut hint), model.range(k..).next().copied());
            }
        }
    }

    #[test]
    fn appends_fill_blocks_and_pops_from_the_front_empty_them() {
        let mut set = Ordered::default();
        for i in 0..10 * BLOCK as u64 {
            assert!(set.insert((1, i)));
        }
        assert_eq!(set.blocks.len(), 10);
        assert!(set.blocks.iter().all(|b| b.len() == BLOCK));
        for i in 0..5 * BLOCK as u64 {
            assert!(set.remove(&(1, i)));
        }
        assert_eq!(set.blocks.len(), 5);
        check_shape(&set);
    }

    #[test]
    fn inserts_into_one_place_split_blocks() {
        let n = BLOCK as u64;
        let mut set: Ordered = (0..n).map(|i| (0, 4 * i)).collect();
        assert_eq!(set.blocks.len(), 1);
        for i in 0..n - 1 {
            for j in 1..4 {
                assert!(set.insert((0, 4 * i + j)));
            }
        }
        check_shape(&set);
        assert!(set.blocks.len() >= 2, "{} blocks", set.blocks.len());
        assert!(set.iter().copied().eq((0..4 * (n - 1) + 1).map(|i| (0, i))));
    }
}

//! A shard's arrival log: its live records by arrival number, with the
//! time each was stored (FIFO eviction, age expiry, catch-up reads in
//! arrival order).
//!
//! Arrival numbers are taken under the shard lock, so a shard's writes
//! nearly always come in increasing order (only a batch, numbered before it
//! locks its shards, can land behind a newer single write). The log is
//! therefore a deque of small sorted blocks: a write appends at the back,
//! eviction and expiry pop at the front, and an out-of-order write moves
//! entries of one block only. An entry removed elsewhere (an overwrite, a
//! prune, a removal) is found by binary search and marked dead; readers
//! skip dead entries, the front drops them as it reaches them, and once
//! they are a large share of the log each write sweeps one block, so the
//! log stays proportional to the live records and no write pays for more
//! than one block.

use std::collections::VecDeque;

/// Entries per block at most.
const BLOCK: usize = 256;

/// `at` of a dead entry (a stored-at time never reaches it).
const DEAD: u64 = u64::MAX;

/// One arrival: its number, when it was stored (milliseconds of the
/// store's clock) and the id stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) at: u64,
    pub(crate) id: u64,
}

impl Entry {
    fn live(&self) -> bool {
        self.at != DEAD
    }
}

/// A sorted run of entries and how many of them are live (never 0: a
/// block whose last live entry goes is dropped).
#[derive(Debug)]
struct Block {
    entries: VecDeque<Entry>,
    live: usize,
}

impl Block {
    fn one(entry: Entry) -> Block {
        let mut entries = VecDeque::with_capacity(BLOCK);
        entries.push_back(entry);
        Block { entries, live: 1 }
    }

    fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }
}

/// The arrival log (see the module doc). The first entry, when there is
/// one, is live; every block holds a live entry, so dropping the dead
/// entries before the first live one touches one block at most.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    blocks: VecDeque<Block>,
    /// A copy of the first entry: every write checks the oldest arrival
    /// (retention), and the copy is at hand with the shard, where the first
    /// block usually is not.
    front: Option<Entry>,
    live: usize,
    dead: usize,
    /// The block the next sweep step looks at.
    sweep: usize,
}

impl Arrivals {
    /// Live entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The oldest live entry.
    pub(crate) fn first(&self) -> Option<Entry> {
        self.front
    }

    /// Adds arrival `seq` (not in the log) of `id`, stored at `at`.
    pub(crate) fn push(&mut self, seq: u64, at: u64, id: u64) {
        let entry = Entry { seq, at, id };
        match self.blocks.back_mut() {
            Some(block) if block.last_seq().is_some_and(|last| last < seq) => {
                if block.entries.len() < BLOCK {
                    block.entries.push_back(entry);
                    block.live += 1;
                } else {
                    self.blocks.push_back(Block::one(entry));
                }
            }
            Some(_) => self.insert_sorted(entry),
            None => self.blocks.push_back(Block::one(entry)),
        }
        if self.front.is_none_or(|front| seq < front.seq) {
            self.front = Some(entry);
        }
        self.live += 1;
        self.sweep_step();
    }

    /// An entry older than the newest: into its block, split when full.
    fn insert_sorted(&mut self, entry: Entry) {
        let at = self.block_of(entry.seq).min(self.blocks.len() - 1);
        let Some(block) = self.blocks.get_mut(at) else {
            return;
        };
        let pos = block.entries.partition_point(|e| e.seq < entry.seq);
        block.entries.insert(pos, entry);
        block.live += 1;
        if block.entries.len() > BLOCK {
            let entries = block.entries.split_off(BLOCK / 2);
            let live = entries.iter().filter(|e| e.live()).count();
            block.live -= live;
            let tail = Block { entries, live };
            // Both halves keep a live entry, or the empty one goes.
            match (block.live, tail.live) {
                (0, _) => {
                    self.dead -= block.entries.len();
                    self.blocks[at] = tail;
                }
                (_, 0) => self.dead -= tail.entries.len(),
                _ => self.blocks.insert(at + 1, tail),
            }
        }
    }

    /// Index of the first block whose last entry is at least `seq`
    /// (`blocks.len()` when none is).
    fn block_of(&self, seq: u64) -> usize {
        self.blocks
            .partition_point(|b| b.last_seq().is_some_and(|last| last < seq))
    }

    /// Removes the oldest entry; returns it.
    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        let block = self.blocks.front_mut()?;
        let first = block.entries.pop_front();
        if first.is_some() {
            block.live -= 1;
            self.live -= 1;
        }
        self.trim_front();
        first
    }

    /// Removes arrival `seq`; false when it is not in the log.
    pub(crate) fn remove(&mut self, seq: u64) -> bool {
        if self.first().is_some_and(|e| e.seq == seq) {
            return self.pop_front().is_some();
        }
        let at = self.block_of(seq);
        let Some(block) = self.blocks.get_mut(at) else {
            return false;
        };
        let pos = block.entries.partition_point(|e| e.seq < seq);
        match block.entries.get_mut(pos) {
            Some(e) if e.seq == seq && e.live() => {
                e.at = DEAD;
                block.live -= 1;
                self.live -= 1;
                self.dead += 1;
            }
            _ => return false,
        }
        if block.live == 0 {
            self.drop_block(at);
            if at == 0 {
                self.trim_front();
            }
        }
        true
    }

    /// Drops block `at` (no live entry left in it).
    fn drop_block(&mut self, at: usize) {
        if let Some(block) = self.blocks.remove(at) {
            self.dead -= block.entries.len();
            if self.sweep > at {
                self.sweep -= 1;
            }
        }
    }

    /// Drops dead entries and empty blocks at the front (the first block
    /// holds a live entry, so this stays within it unless it empties).
    fn trim_front(&mut self) {
        while let Some(block) = self.blocks.front_mut() {
            if block.live == 0 {
                self.drop_block(0);
                continue;
            }
            while block.entries.front().is_some_and(|e| !e.live()) {
                block.entries.pop_front();
                self.dead -= 1;
            }
            break;
        }
        self.front = self.blocks.front().and_then(|b| b.entries.front()).copied();
    }

    /// Once dead entries outnumber the live ones (past a block's worth),
    /// drops those of one block, merging it into the next when both fit
    /// in one.
    fn sweep_step(&mut self) {
        if self.dead <= self.live.max(BLOCK) {
            return;
        }
        if self.sweep >= self.blocks.len() {
            self.sweep = 0;
        }
        let at = self.sweep;
        let Some(block) = self.blocks.get_mut(at) else {
            return;
        };
        let before = block.entries.len();
        block.entries.retain(|e| e.live());
        self.dead -= before - block.entries.len();
        let len = block.entries.len();
        let fits = self
            .blocks
            .get(at + 1)
            .is_some_and(|next| next.entries.len() + len <= BLOCK);
        if fits {
            if let Some(mut block) = self.blocks.remove(at) {
                if let Some(next) = self.blocks.get_mut(at) {
                    while let Some(e) = block.entries.pop_back() {
                        next.entries.push_front(e);
                    }
                    next.live += block.live;
                }
            }
        } else {
            self.sweep = at + 1;
        }
        self.trim_front();
    }

    /// Live entries with `start <= seq < end`, in order.
    pub(crate) fn between(&self, start: u64, end: u64) -> impl Iterator<Item = Entry> + '_ {
        let from = self.block_of(start);
        self.blocks
            .range(from..)
            .flat_map(|b| b.entries.iter().copied())
            .skip_while(move |e| e.seq < start)
            .take_while(move |e| e.seq < end)
            .filter(Entry::live)
    }

    /// Removes every entry numbered at most `last` when exactly `count` of
    /// them are live; else changes nothing and returns false. The caller
    /// knows `count` live entries are numbered at most `last`, so an equal
    /// count means the cut-off part is exactly those.
    pub(crate) fn cut_prefix(&mut self, last: u64, count: usize) -> bool {
        let full = self.block_of(last.saturating_add(1));
        let whole = self.blocks.range(..full);
        let (whole_len, whole_live) =
            whole.fold((0, 0), |(n, live), b| (n + b.entries.len(), live + b.live));
        let partial = self
            .blocks
            .get(full)
            .map_or(0, |b| b.entries.partition_point(|e| e.seq <= last));
        let partial_live = self.blocks.get(full).map_or(0, |b| {
            b.entries.range(..partial).filter(|e| e.live()).count()
        });
        if whole_live + partial_live != count {
            return false;
        }
        self.blocks.drain(..full);
        if let Some(block) = self.blocks.front_mut() {
            block.entries.drain(..partial);
            block.live -= partial_live;
        }
        self.live -= count;
        self.dead -= whole_len + partial - count;
        self.sweep = 0;
        self.trim_front();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The log against a map of the live entries, under a random mix of
    /// in-order and out-of-order pushes, removals, pops and prefix cuts.
    #[test]
    fn matches_a_map_of_live_entries() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..20 {
            let mut log = Arrivals::default();
            let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            let mut used = std::collections::HashSet::new();
            let mut next = 10_000u64;
            for step in 0..5_000u64 {
                // Some rounds remove more than they add (sweeps run).
                let op = match (round % 4, rand(2)) {
                    (3, 0) => 5,
                    _ => rand(10),
                };
                let before = (log.len(), model.len());
                match op {
                    0..=4 => {
                        // Mostly in order; now and then an older, unused number.
                        let seq = match rand(8) {
                            0 => next - 1 - rand(900),
                            _ => {
                                next += 1;
                                next
                            }
                        };
                        // Numbers are never reused.
                        if used.insert(seq) {
                            model.insert(seq, (step, seq * 3));
                            log.push(seq, step, seq * 3);
                        }
                    }
                    5..=6 => {
                        let seq = next - rand(2000);
                        assert_eq!(log.remove(seq), model.remove(&seq).is_some());
                    }
                    7 => {
                        let want = model
                            .pop_first()
                            .map(|(seq, (at, id))| Entry { seq, at, id });
                        assert_eq!(log.pop_front(), want);
                    }
                    8 if round % 2 == 0 => {
                        let last = next - rand(3000);
                        let count = model.range(..=last).count();
                        let claimed = count + usize::from(rand(4) == 0);
                        let cut = log.cut_prefix(last, claimed);
                        assert_eq!(cut, claimed == count);
                        if cut {
                            model = model.split_off(&(last + 1));
                        }
                    }
                    _ => {
                        let start = next - rand(3000);
                        let end = start + rand(1500);
                        let got: Vec<Entry> = log.between(start, end).collect();
                        let want: Vec<Entry> = model
                            .range(start..end.max(start))
                            .map(|(&seq, &(at, id))| Entry { seq, at, id })
                            .collect();
                        assert_eq!(got, want);
                    }
                }
                assert_eq!(
                    log.len(),
                    model.len(),
                    "round {round} step {step} op {op} before {before:?} dead {}",
                    log.dead
                );
                let first = model
                    .first_key_value()
                    .map(|(&seq, &(at, id))| Entry { seq, at, id });
                assert_eq!(log.first(), first);
                assert_eq!(
                    log.blocks.front().and_then(|b| b.entries.front()).copied(),
                    first
                );
                for b in &log.blocks {
                    assert_eq!(b.live, b.entries.iter().filter(|e| e.live()).count());
                    assert!(b.live > 0);
                }
                let dead: usize = log.blocks.iter().map(|b| b.entries.len() - b.live).sum();
                assert_eq!(dead, log.dead);
            }
        }
    }

    /// Overwriting the same few records forever, behind one record that
    /// stays, keeps the log small.
    #[test]
    fn dead_entries_do_not_accumulate() {
        let mut log = Arrivals::default();
        let mut live = [1u64, 2, 3];
        for seq in 0..=3 {
            log.push(seq, seq, seq);
        }
        for seq in 4..200_000u64 {
            let slot = (seq % 3) as usize;
            assert!(log.remove(live[slot]));
            live[slot] = seq;
            log.push(seq, seq, slot as u64);
        }
        assert_eq!(log.len(), 4);
        assert_eq!(log.first().map(|e| e.seq), Some(0));
        let held: usize = log.blocks.iter().map(|b| b.entries.len()).sum();
        assert!(
            held <= 4 * BLOCK,
            "{held} entries held for {} live",
            log.len()
        );
    }
}

//! Per-thread index of the hot counter path: maps a name's segment ids (opaque
//! integers the caller guarantees are unique and stable per segment, e.g. the
//! atoms' term words) to its shared entry, so a repeated counter increment
//! neither hashes strings nor touches a DashMap shard lock.
//!
//! Each thread uses its own slot (a mutex nobody else normally takes), so the
//! only shared cache lines on a hit are the entry's own. A slot is valid for
//! one `generation`: every change that can make a cached entry or handler
//! flag wrong (entry removed, handler attached or detached) bumps it *after*
//! the change and then empties the slots, and every fill re-checks it under
//! the slot lock, so a slot never serves an entry that left the store.
//!
//! Lock order: slot, then the entry's body lock. A slot is never held while
//! the store's DashMaps are locked, nor across a caller's closure.

use super::entry::Entry;
use crate::{CoreError, CoreResult};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Names with more segments than this are never cached (the NIF's stack key).
pub const MAX_CACHED_SEGMENTS: usize = 16;

/// Slots per store: more than the VM's scheduler threads that emit.
const SLOTS: usize = 16;

/// The first names a slot caches (per generation) are also kept inline,
/// looked up by comparing words before any hashing.
const RECENT: usize = 4;

/// Next slot handed to a thread that never used one.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

/// A cached entry and whether a handler is attached to its name.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) entry: Arc<Entry>,
    pub(crate) handler: bool,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    /// Copies of the first `RECENT` fills of `map`.
    recent: Vec<Recent>,
    map: HashMap<Box<[u64]>, Cached, BuildHasherDefault<IdHasher>>,
}

impl Slot {
    fn clear(&mut self, generation: u64) {
        self.recent.clear();
        self.map.clear();
        self.generation = generation;
    }

    fn get(&self, ids: &[u64]) -> Option<&Cached> {
        match self.recent.iter().find(|r| r.is(ids)) {
            Some(recent) => Some(&recent.cached),
            None => self.map.get(ids),
        }
    }
}

/// A cached name's ids inline, and its entry.
#[derive(Debug)]
struct Recent {
    len: usize,
    ids: [u64; MAX_CACHED_SEGMENTS],
    cached: Cached,
}

impl Recent {
    fn new(ids: &[u64], cached: Cached) -> Option<Self> {
        let mut inline = [0; MAX_CACHED_SEGMENTS];
        inline.get_mut(..ids.len())?.copy_from_slice(ids);
        Some(Recent {
            len: ids.len(),
            ids: inline,
            cached,
        })
    }

    fn is(&self, ids: &[u64]) -> bool {
        self.len == ids.len() && self.ids.iter().zip(ids).all(|(a, b)| a == b)
    }
}

/// One slot per cache line pair, so two threads never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Slot>);

/// The per-thread slots of one store.
#[derive(Debug)]
pub(crate) struct IdCache {
    slots: Box<[Padded]>,
    generation: AtomicU64,
}

impl IdCache {
    pub(crate) fn new() -> Self {
        IdCache {
            slots: (0..SLOTS).map(|_| Padded::default()).collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation to pass to `fill` (read before looking the entry up).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Runs `hit` on the cached entry of `ids` under this thread's slot lock;
    /// `None` when it is not cached.
    pub(crate) fn with_hit<R>(
        &self,
        ids: &[u64],
        hit: impl FnOnce(&Cached) -> CoreResult<R>,
    ) -> CoreResult<Option<R>> {
        let mut slot = self.slot()?.lock().map_err(CoreError::poisoned)?;
        let current = self.generation();
        if slot.generation != current {
            slot.clear(current);
        }
        slot.get(ids).map(hit).transpose()
    }

    /// Caches `cached` for `ids` unless the generation moved past `seen`
    /// (read before the entry was looked up in the store).
    pub(crate) fn fill(&self, ids: &[u64], seen: u64, cached: Cached) -> CoreResult<()> {
        if ids.len() > MAX_CACHED_SEGMENTS {
            return Ok(());
        }
        let mut slot = self.slot()?.lock().map_err(CoreError::poisoned)?;
        if self.generation() != seen {
            return Ok(());
        }
        if slot.generation != seen {
            slot.clear(seen);
        }
        // A name filled again (its entry was replaced) drops its old copy.
        slot.recent.retain(|r| !r.is(ids));
        if slot.recent.len() < RECENT {
            let copy = Cached {
                entry: Arc::clone(&cached.entry),
                handler: cached.handler,
            };
            slot.recent.extend(Recent::new(ids, copy));
        }
        slot.map.insert(ids.into(), cached);
        Ok(())
    }

    /// Call after a change to entries or handlers: stale slots are emptied
    /// (a poisoned slot is skipped; the generation check still protects it).
    pub(crate) fn invalidate(&self) {
        let next = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        for padded in self.slots.iter() {
            if let Ok(mut slot) = padded.0.lock() {
                slot.clear(next);
            }
        }
    }

    fn slot(&self) -> CoreResult<&Mutex<Slot>> {
        let index = THREAD_SLOT.try_with(|i| *i).unwrap_or(0);
        self.slots
            .get(index)
            .map(|p| &p.0)
            .ok_or_else(|| CoreError::Internal("cache slot".to_string()))
    }
}

/// FxHash-style word hasher (as in rustc-hash 2): segment ids are already
/// unique integers, so a multiply per word is enough. The final rotation
/// moves well-mixed high bits down, since hashbrown picks buckets with the
/// low bits and atom words all share their low tag bits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Key, Measure};
    use std::hash::BuildHasher;

    fn cached() -> Cached {
        let entry = Entry::new(vec![(Key::Counter, Measure::Int(1))], vec![], 0);
        Cached {
            entry: Arc::new(entry),
            handler: false,
        }
    }

    #[test]
    fn fill_then_hit_until_invalidated() {
        let c = IdCache::new();
        let seen = c.generation();
        assert_eq!(c.with_hit(&[1, 2], |_| Ok(())).unwrap(), None);
        c.fill(&[1, 2], seen, cached()).unwrap();
        assert_eq!(c.with_hit(&[1, 2], |h| Ok(h.handler)).unwrap(), Some(false));
        assert_eq!(c.with_hit(&[1], |_| Ok(())).unwrap(), None);
        c.invalidate();
        assert_eq!(c.with_hit(&[1, 2], |_| Ok(())).unwrap(), None);
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_discarded() {
        let c = IdCache::new();
        let seen = c.generation();
        c.invalidate();
        c.fill(&[7], seen, cached()).unwrap();
        assert_eq!(c.with_hit(&[7], |_| Ok(())).unwrap(), None);
    }

    #[test]
    fn names_past_the_inline_ones_hit_too_and_a_refill_replaces() {
        let c = IdCache::new();
        let seen = c.generation();
        for i in 0..(RECENT as u64 + 3) {
            c.fill(&[i, 9], seen, cached()).unwrap();
        }
        for i in 0..(RECENT as u64 + 3) {
            assert_eq!(c.with_hit(&[i, 9], |h| Ok(h.handler)).unwrap(), Some(false));
        }
        assert_eq!(c.with_hit(&[0], |_| Ok(())).unwrap(), None);
        let with_handler = Cached {
            handler: true,
            ..cached()
        };
        c.fill(&[0, 9], seen, with_handler).unwrap();
        assert_eq!(c.with_hit(&[0, 9], |h| Ok(h.handler)).unwrap(), Some(true));
    }

    #[test]
    fn long_names_are_not_cached() {
        let c = IdCache::new();
        let ids: Vec<u64> = (0..=MAX_CACHED_SEGMENTS as u64).collect();
        c.fill(&ids, c.generation(), cached()).unwrap();
        assert_eq!(c.with_hit(&ids, |_| Ok(())).unwrap(), None);
    }

    #[test]
    fn hasher_spreads_ids_sharing_their_low_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let buckets: std::collections::HashSet<u64> = (0..64u64)
            .map(|i| build.hash_one([(i << 6) | 0xb].as_slice()) & 63)
            .collect();
        assert!(buckets.len() > 32, "{} buckets", buckets.len());
    }
}

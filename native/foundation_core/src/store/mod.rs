//! The in-memory event store.
//!
//! Events are spread over `2^k` shards by a hash of their id; each shard is a
//! `RwLock<Shard>` holding the records and ordered indexes (by id, by
//! (timestamp, id), by type, by correlation id, by arrival). Point operations
//! lock one shard; queries read-lock each shard in turn and merge. So writers
//! to different shards never wait for each other and there is no global lock.
//!
//! Lock order: writers hold at most one shard lock at a time; `query`
//! read-locks every shard in index order (a lazy merge). A writer never waits
//! for a second lock while holding one, so no cycle can form. No lock is
//! held while the caller encodes results (payloads are `Arc`s copied out).
//!
//! Retention: `max_events` evicts the oldest *stored* events (global arrival
//! order; with several writers at once, up to the few arrivals whose shard
//! another writer holds at that moment) once the count exceeds it;
//! `max_age_ms` expires events stored more
//! than that long ago (checked on every put for the touched shard, and for
//! all shards by `expire`). Ages use the store's own clock because event
//! timestamps come in mixed units (milliseconds for events built by
//! `Events.new_event/2`, native units for `Types.Event.new/1`).
//!
//! Lifecycle: `close` stops the async worker (it drains the queue, then is
//! joined) and drops every event, without waiting for the store itself to
//! be freed; writes after it fail with `CoreError::Closed`, reads see an
//! empty store. The `queue` lock is never held together with a shard lock.

mod async_queue;
pub mod background;
mod clock;
pub mod query;
mod shard;
pub mod subs;
pub mod warm;

use crate::error::{CoreError, CoreResult};
use crossbeam_channel::Sender;
pub use query::{Order, Page, Query, Slice};
use shard::Shard;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard, TryLockError};
use std::thread::JoinHandle;
pub use subs::{ColdPage, ColdSource, Delivery, Filter, Sink, SubOptions, Target};

/// A shard's prune removing at least this many events frees them on the
/// freeing thread.
const FREE_IN_BACKGROUND: usize = 1_000;

/// Ids in one aligned block of this many go to the same shard (see
/// `Inner::shard_index`).
const SHARD_BLOCK: u64 = 64;

/// Shared immutable bytes (event payloads, type names, correlation ids).
pub type Bytes = Arc<[u8]>;

/// An event ready to store: its queryable fields and its encoded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Event id (positive).
    pub id: u64,
    /// Event type name.
    pub event_type: Bytes,
    /// Event timestamp (any unit; only compared).
    pub timestamp: i64,
    /// Correlation id bytes, if any.
    pub correlation_id: Option<Bytes>,
    /// The encoded event, returned as is by reads.
    pub payload: Bytes,
}

/// Construction parameters of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Number of shards (clamped to 1..=1024, rounded up to a power of two).
    pub shards: usize,
    /// Maximum number of events kept (0: unlimited).
    pub max_events: usize,
    /// Maximum age in milliseconds since storing (0: unlimited).
    pub max_age_ms: u64,
    /// Capacity of the asynchronous put queue (clamped to 1..=1 000 000).
    pub async_capacity: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            shards: 16,
            max_events: 0,
            max_age_ms: 0,
            async_capacity: 10_000,
        }
    }
}

/// Counters and sizes reported by `Store::stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Events currently held.
    pub current_event_count: u64,
    /// Events stored since creation or the last clear (overwrites included).
    pub events_stored: u64,
    /// Events removed by `prune_before`.
    pub events_pruned: u64,
    /// Events evicted because `max_events` was exceeded.
    pub evicted_max_events: u64,
    /// Events evicted because they were older than `max_age_ms`.
    pub evicted_max_age: u64,
    /// Asynchronous puts refused because the queue was full.
    pub async_dropped: u64,
    /// Asynchronous puts that failed in the worker.
    pub async_failed: u64,
    /// Events waiting in the asynchronous queue.
    pub async_queue_len: u64,
    /// Largest id ever stored (0 when none).
    pub max_id: u64,
}

#[derive(Debug, Default)]
struct Counters {
    pruned: AtomicU64,
    evicted_count: AtomicU64,
    evicted_age: AtomicU64,
    async_dropped: AtomicU64,
    async_failed: AtomicU64,
}

/// The counters every write updates, one set per shard, each on its own
/// cache lines and written under its shard's lock: writers of different
/// shards never write the same line (`stats` sums them).
#[derive(Debug)]
#[repr(align(128))]
struct Tally {
    /// Events stored into the shard (overwrites included).
    stored: AtomicU64,
    /// Largest id stored into the shard.
    max_id: AtomicU64,
    /// The shard's oldest arrival (`NO_ARRIVAL` when empty), kept in step
    /// under its lock, so retention finds the globally oldest event
    /// without locking every shard.
    oldest: AtomicU64,
    /// Set while a writer (a put, a batch or an eviction) holds the
    /// shard's lock (see `Writing` and `enforce_max_events`).
    writing: AtomicBool,
}

/// A shard write-locked by a writer. Its fields drop in order: the tally's
/// `writing` flag is cleared before the lock is released.
struct Writing<'a> {
    _mark: Marked<'a>,
    shard: RwLockWriteGuard<'a, Shard>,
}

struct Marked<'a>(&'a AtomicBool);

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

impl std::ops::Deref for Writing<'_> {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        &self.shard
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.shard
    }
}

/// A shard's index and its oldest arrival.
type Oldest = (usize, u64);

/// `Tally::oldest` of an empty shard.
const NO_ARRIVAL: u64 = u64::MAX;

impl Default for Tally {
    fn default() -> Self {
        Tally {
            stored: AtomicU64::new(0),
            max_id: AtomicU64::new(0),
            oldest: AtomicU64::new(NO_ARRIVAL),
            writing: AtomicBool::new(false),
        }
    }
}

impl Tally {
    /// Counts `stored` writes, the largest of ids `max_id` (called under
    /// the shard lock, so plain loads and stores keep both exact; `clear`
    /// resets them under it too).
    fn add(&self, stored: u64, max_id: u64) {
        let count = self.stored.load(Relaxed);
        self.stored.store(count.wrapping_add(stored), Relaxed);
        if self.max_id.load(Relaxed) < max_id {
            self.max_id.store(max_id, Relaxed);
        }
    }

    /// Records the oldest arrival of `shard` (called under its lock).
    fn note_oldest(&self, shard: &Shard) {
        let oldest = shard.oldest_seq().unwrap_or(NO_ARRIVAL);
        if self.oldest.load(Relaxed) != oldest {
            self.oldest.store(oldest, Relaxed);
        }
    }

    /// Records a new arrival `seq` (called under the shard lock, after
    /// inserting a new id: the oldest arrival can then only get older).
    fn note_arrival(&self, seq: u64) {
        if seq < self.oldest.load(Relaxed) {
            self.oldest.store(seq, Relaxed);
        }
    }
}

/// The store-wide counters every write updates, on cache lines of their
/// own: the fields every write only reads (shard table, limits, flags) then
/// stay shared between cores instead of moving with each write.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Hot {
    /// Events held.
    count: AtomicUsize,
    /// Next arrival number.
    seq: AtomicU64,
}

/// Shared state behind a `Store` (the async worker holds a weak reference).
#[derive(Debug)]
struct Inner {
    shards: Box<[RwLock<Shard>]>,
    /// Per-shard write counters (same index as `shards`).
    tallies: Box<[Tally]>,
    shard_bits: u32,
    /// The event count and arrival numbers, written by every write.
    hot: Hot,
    /// `clock::coarse_ms` when the store was made.
    origin: u64,
    max_events: AtomicUsize,
    max_age_ms: AtomicU64,
    counters: Counters,
    /// Set by `Store::close`; read by `put` under the shard lock.
    closed: AtomicBool,
    /// Whether a group sweep is queued on the helper thread.
    sweep_queued: AtomicBool,
    /// Live subscriptions (see `subs`).
    subs: subs::Subscriptions,
}

/// The event store. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Store {
    inner: Arc<Inner>,
    /// The async queue's sender; `None` once closed (the worker then stops).
    queue: RwLock<Option<Sender<NewEvent>>>,
    /// The async worker, until `close` joins it.
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Creates an empty store and starts its asynchronous-put worker thread.
    pub fn new(config: StoreConfig) -> CoreResult<Store> {
        let shard_count = config.shards.clamp(1, 1024).next_power_of_two();
        let inner = Arc::new(Inner {
            shards: (0..shard_count).map(|_| RwLock::default()).collect(),
            tallies: (0..shard_count).map(|_| Tally::default()).collect(),
            shard_bits: shard_count.trailing_zeros(),
            hot: Hot::default(),
            origin: clock::coarse_ms(),
            max_events: AtomicUsize::new(config.max_events),
            max_age_ms: AtomicU64::new(config.max_age_ms),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            sweep_queued: AtomicBool::new(false),
            subs: subs::Subscriptions::default(),
        });
        let (queue, worker) =
            async_queue::start(&inner, config.async_capacity.clamp(1, 1_000_000))?;
        Ok(Store {
            inner,
            queue: RwLock::new(Some(queue)),
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Changes the retention limits (0: unlimited); applied from the next put
    /// or `expire`.
    pub fn set_limits(&self, max_events: usize, max_age_ms: u64) {
        self.inner.max_events.store(max_events, Relaxed);
        self.inner.max_age_ms.store(max_age_ms, Relaxed);
    }

    /// Stores an event (an existing id is overwritten, its old index entries
    /// removed); returns its id.
    pub fn put(&self, event: NewEvent) -> CoreResult<u64> {
        self.inner.put(event)
    }

    /// Stores events in order; returns their ids in input order. Each shard
    /// is locked once for all the batch's events it holds (an id always
    /// maps to one shard, so a repeated id still ends with its last version).
    pub fn put_batch(&self, events: Vec<NewEvent>) -> CoreResult<Vec<u64>> {
        self.inner.put_batch(events)
    }

    /// The payload of event `id`.
    pub fn get(&self, id: u64) -> CoreResult<Option<Bytes>> {
        Ok(self
            .inner
            .shard(id)
            .read()
            .map_err(CoreError::poisoned)?
            .get(id))
    }

    /// The events of a correlation group by ascending (timestamp, id).
    pub fn get_by_correlation(&self, cid: &[u8]) -> CoreResult<Vec<Bytes>> {
        let parts = self.inner.each_shard(|s| s.correlation(cid))?;
        Ok(query::merge_by_time(parts))
    }

    /// Like `get_by_correlation`, but `None` when the group holds more than
    /// `max` events (so callers can pick a dirty scheduler for big groups).
    pub fn get_by_correlation_bounded(
        &self,
        cid: &[u8],
        max: usize,
    ) -> CoreResult<Option<Vec<Bytes>>> {
        let sizes = self.inner.each_shard(|s| s.correlation_len(cid))?;
        if sizes.iter().sum::<usize>() > max {
            return Ok(None);
        }
        self.get_by_correlation(cid).map(Some)
    }

    /// Runs a query (filters, order, offset, limit).
    pub fn query(&self, q: &Query) -> CoreResult<Vec<Bytes>> {
        let q = self.resolved(q);
        Ok(self.query_page(&q, &Slice::all(q.offset, q.limit))?.items)
    }

    /// `q` with `Order::Unordered` resolved: ascending id while the store
    /// holds at most `SMALL_STORE` events, else time order. A caller
    /// reading a query in slices resolves it once, so every slice of one
    /// answer uses the same order.
    pub fn resolved(&self, q: &Query) -> Query {
        let order = match q.order {
            Order::Unordered if self.inner.hot.count.load(Relaxed) <= query::SMALL_STORE => {
                Order::Id
            }
            Order::Unordered => Order::Timestamp,
            order => order,
        };
        Query { order, ..q.clone() }
    }

    /// One slice of the answer to `q` (its `offset` and `limit` are
    /// ignored: `slice` carries what is left of them). Each slice holds the
    /// shard read locks only while it runs, so a long answer read slice by
    /// slice never blocks writers for long; events stored or removed
    /// between slices may or may not appear after the cursor.
    pub fn query_page(&self, q: &Query, slice: &Slice) -> CoreResult<Page> {
        if q.order == Order::Unordered {
            return self.query_page(&self.resolved(q), slice);
        }
        // All shards are read-locked (in index order) for a lazy k-way merge,
        // so only the slice's matches are visited.
        let guards = self.inner.read_all()?;
        let streams = guards
            .iter()
            .map(|g| g.query_keys(q, slice.after))
            .collect();
        let fetch = |shard: usize, id| guards.get(shard).and_then(|g| g.get(id));
        Ok(query::merge(slice, streams, fetch))
    }

    /// One slice of a correlation group, by ascending (timestamp, id); the
    /// cursor is a time-order rank (`Slice::skip` and `take` are ignored).
    pub fn correlation_page(&self, cid: &[u8], slice: &Slice) -> CoreResult<Page> {
        let guards = self.inner.read_all()?;
        let streams = guards
            .iter()
            .map(|g| g.correlation_keys_after(cid, slice.after))
            .collect();
        let slice = Slice {
            skip: 0,
            take: None,
            ..*slice
        };
        Ok(query::merge(&slice, streams, |_, _| None))
    }

    /// Removes events with `timestamp < ts`; returns how many. One shard
    /// at a time (see `prune_shard`).
    pub fn prune_before(&self, ts: i64) -> CoreResult<usize> {
        (0..self.inner.shards.len()).try_fold(0, |n, i| Ok(n + self.prune_shard(ts, i)?))
    }

    /// Number of shards (`prune_shard` takes an index below it).
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Events held by shard `index` (0 for an index out of range), and
    /// whether a deferred group or type cut is pending in it (its next
    /// prune then applies that cut first).
    pub fn shard_state(&self, index: usize) -> CoreResult<(usize, bool)> {
        match self.inner.shards.get(index) {
            Some(shard) => {
                let shard = shard.read().map_err(CoreError::poisoned)?;
                Ok((shard.len(), shard.unswept()))
            }
            None => Ok((0, false)),
        }
    }

    /// `prune_before` of shard `index` alone (nothing for an index out of
    /// range); returns how many events it removed. The call returns once
    /// the indexes by id, time and type are cut: when many events are
    /// removed the freeing thread frees them, and the helper thread takes
    /// them out of their correlation groups (reads skip them until then).
    pub fn prune_shard(&self, ts: i64, index: usize) -> CoreResult<usize> {
        let mut garbage = shard::Garbage::default();
        let pruned = self.inner.remove_in(index, |shard| {
            (shard.prune_before(ts, &mut garbage), shard.unswept())
        })?;
        let Some((n, unswept)) = pruned else {
            return Ok(0);
        };
        self.inner.counters.pruned.fetch_add(n as u64, Relaxed);
        if n >= FREE_IN_BACKGROUND {
            background::free_later(garbage);
        }
        if unswept {
            self.sweep_later()?;
        }
        Ok(n)
    }

    /// Has the helper thread apply the shards' deferred group and type cuts
    /// (one job queued at a time: it sweeps every shard); without a helper
    /// thread, sweeps here.
    fn sweep_later(&self) -> CoreResult<()> {
        if self.inner.sweep_queued.swap(true, AcqRel) {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let queued = background::offer(move || {
            // Cleared first: a shard pruned after the sweep has passed it
            // queues the next sweep.
            inner.sweep_queued.store(false, Release);
            drop(inner.sweep_cuts());
        });
        if queued {
            return Ok(());
        }
        self.inner.sweep_queued.store(false, Release);
        self.inner.sweep_cuts()
    }

    /// Expires every event older than `max_age_ms`; returns how many.
    pub fn expire(&self) -> CoreResult<usize> {
        let max_age = self.inner.max_age_ms.load(Relaxed);
        if max_age == 0 {
            return Ok(0);
        }
        let cutoff = self.inner.now_ms().saturating_sub(max_age);
        let n = self.inner.each_shard_mut(|s| s.expire(cutoff))?;
        self.inner.counters.evicted_age.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    /// Removes every event and resets the counters.
    pub fn clear(&self) -> CoreResult<()> {
        self.inner.drop_events()?;
        let c = &self.inner.counters;
        for counter in [&c.pruned, &c.evicted_count, &c.evicted_age] {
            counter.store(0, Relaxed);
        }
        for counter in [&c.async_dropped, &c.async_failed] {
            counter.store(0, Relaxed);
        }
        // Under each shard's lock, as writers update their shard's tally.
        for (shard, tally) in self.inner.shards.iter().zip(self.inner.tallies.iter()) {
            let _shard = shard.write().map_err(CoreError::poisoned)?;
            tally.stored.store(0, Relaxed);
            tally.max_id.store(0, Relaxed);
        }
        Ok(())
    }

    /// The newest timestamp of the events retention (`max_events`,
    /// `max_age_ms`) removed since the store was made or cleared; `None`
    /// when it removed none. Every event retention removed is at most
    /// this new, so a tier holding more events than this store (a disk
    /// tier) holds none newer that this store lacks.
    pub fn retired_newest(&self) -> CoreResult<Option<i64>> {
        self.inner.shards.iter().try_fold(None, |newest, shard| {
            Ok(newest.max(shard.read().map_err(CoreError::poisoned)?.retired()))
        })
    }

    /// Current counters.
    pub fn stats(&self) -> CoreResult<StoreStats> {
        // The running count, not a sum over the shards: no shard lock taken.
        let c = &self.inner.counters;
        let tallies = self.inner.tallies.iter();
        let stored = tallies.clone().map(|t| t.stored.load(Relaxed)).sum();
        let max_id = tallies.map(|t| t.max_id.load(Relaxed)).max();
        Ok(StoreStats {
            current_event_count: self.inner.hot.count.load(Relaxed) as u64,
            events_stored: stored,
            events_pruned: c.pruned.load(Relaxed),
            evicted_max_events: c.evicted_count.load(Relaxed),
            evicted_max_age: c.evicted_age.load(Relaxed),
            async_dropped: c.async_dropped.load(Relaxed),
            async_failed: c.async_failed.load(Relaxed),
            async_queue_len: self.queue_len()?,
            max_id: max_id.unwrap_or(0),
        })
    }
}

impl Inner {
    /// Milliseconds since the store was made, for retention by age: the
    /// coarse clock, a few milliseconds coarse (see `clock::coarse_ms`).
    fn now_ms(&self) -> u64 {
        clock::coarse_ms().saturating_sub(self.origin)
    }

    fn shard(&self, id: u64) -> &RwLock<Shard> {
        &self.shards[self.shard_index(id)]
    }

    fn shard_index(&self, id: u64) -> usize {
        // Ids go to shards by blocks of `SHARD_BLOCK`: a writer storing
        // nearby ids (a range of its own, or ascending ids) keeps writing
        // one shard, whose index ends stay in its core's cache, instead of
        // moving every shard's between the cores.
        let h = mix(id / SHARD_BLOCK);
        let index = h.checked_shr(64 - self.shard_bits).unwrap_or(0) as usize;
        index % self.shards.len()
    }

    /// Every shard read-locked, in index order (the lock order of reads
    /// that merge across shards).
    fn read_all(&self) -> CoreResult<Vec<std::sync::RwLockReadGuard<'_, Shard>>> {
        self.shards
            .iter()
            .map(|s| s.read().map_err(CoreError::poisoned))
            .collect()
    }

    /// Every shard write-locked, in index order (`subscribe` registers
    /// under them).
    fn write_all(&self) -> CoreResult<Vec<std::sync::RwLockWriteGuard<'_, Shard>>> {
        self.shards
            .iter()
            .map(|s| s.write().map_err(CoreError::poisoned))
            .collect()
    }

    fn each_shard<T>(&self, f: impl Fn(&Shard) -> T) -> CoreResult<Vec<T>> {
        self.shards
            .iter()
            .map(|s| s.read().map(|g| f(&g)).map_err(CoreError::poisoned))
            .collect()
    }

    /// Runs `f` on each shard under its write lock (see `remove_in`); sums
    /// the removed counts it returns.
    fn each_shard_mut(&self, mut f: impl FnMut(&mut Shard) -> usize) -> CoreResult<usize> {
        (0..self.shards.len()).try_fold(0, |total, i| {
            let removed = self.remove_in(i, |s| (f(s), ()))?;
            Ok(total + removed.map_or(0, |(n, ())| n))
        })
    }

    /// Runs `f` on shard `index` under its write lock (`None` for an index
    /// out of range). `f` returns how many events it removed, and `count`
    /// and the shard's oldest arrival are kept in step.
    fn remove_in<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut Shard) -> (usize, R),
    ) -> CoreResult<Option<(usize, R)>> {
        let (Some(shard), Some(tally)) = (self.shards.get(index), self.tallies.get(index)) else {
            return Ok(None);
        };
        let mut shard = shard.write().map_err(CoreError::poisoned)?;
        let (n, out) = f(&mut shard);
        tally.note_oldest(&shard);
        self.hot.count.fetch_sub(n, Relaxed);
        Ok(Some((n, out)))
    }

    /// Applies every shard's deferred group and type cuts
    /// (`Shard::sweep_groups`, `Shard::sweep_types`), one shard lock at a
    /// time; what they remove is freed after.
    fn sweep_cuts(&self) -> CoreResult<()> {
        for shard in self.shards.iter() {
            let mut gone = shard::Garbage::default();
            {
                let mut shard = shard.write().map_err(CoreError::poisoned)?;
                if !shard.unswept() {
                    continue;
                }
                shard.sweep_groups(&mut gone.members);
                shard.sweep_types(&mut gone);
            }
            drop(gone);
        }
        Ok(())
    }

    /// Empties every shard (the events' memory is freed now).
    fn drop_events(&self) -> CoreResult<usize> {
        self.each_shard_mut(|s| {
            let n = s.len();
            *s = Shard::default();
            n
        })
    }

    fn put(&self, event: NewEvent) -> CoreResult<u64> {
        let id = event.id;
        let now = self.now_ms();
        let max_age = self.max_age_ms.load(Relaxed);
        let index = self.shard_index(id);
        let (new, expired, wake) = {
            let mut shard = self.writing(index, write_spinning(&self.shards[index])?);
            if self.closed.load(Acquire) {
                return Err(CoreError::Closed);
            }
            // Numbered under the shard lock: `subscribe` (which holds every
            // shard lock) splits the arrivals into stored and live by it.
            let seq = self.hot.seq.fetch_add(1, Relaxed);
            let wake = self.subs.publisher().publish(
                &event.event_type,
                event.correlation_id.as_ref(),
                &event.payload,
            );
            let new = shard.insert(event, seq, now);
            let expired = match max_age {
                0 => 0,
                age => shard.expire(now.saturating_sub(age)),
            };
            if let Some(tally) = self.tallies.get(index) {
                tally.add(1, id);
                match (new, expired) {
                    (true, 0) => tally.note_arrival(seq),
                    _ => tally.note_oldest(&shard),
                }
            }
            (new, expired, wake)
        };
        if wake {
            self.subs.notify();
        }
        // Shared counters are only written when they change: with many
        // writers, each write moves their cache line between cores.
        match (new, expired) {
            (false, 0) => {}
            (true, 0) => {
                self.hot.count.fetch_add(1, Relaxed);
            }
            (new, n) => {
                self.hot.count.fetch_sub(n - usize::from(new), Relaxed);
            }
        }
        if expired > 0 {
            self.counters.evicted_age.fetch_add(expired as u64, Relaxed);
        }
        self.enforce_max_events()?;
        Ok(id)
    }

    fn put_batch(&self, events: Vec<NewEvent>) -> CoreResult<Vec<u64>> {
        let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
        // Held for the whole batch: its numbers are reserved up front.
        let _gate = self.subs.gate.read().map_err(CoreError::poisoned)?;
        let now = self.now_ms();
        let max_age = self.max_age_ms.load(Relaxed);
        let first_seq = self.hot.seq.fetch_add(events.len() as u64, Relaxed);
        let mut by_shard: Vec<Vec<(u64, NewEvent)>> = Vec::new();
        by_shard.resize_with(self.shards.len(), Vec::new);
        for (seq, event) in (first_seq..).zip(events) {
            by_shard[self.shard_index(event.id)].push((seq, event));
        }
        let (mut added, mut expired, mut wake) = (0, 0, false);
        for (index, batch) in by_shard.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let shard = self.shards[index].write().map_err(CoreError::poisoned)?;
            let mut shard = self.writing(index, shard);
            if self.closed.load(Acquire) {
                return Err(CoreError::Closed);
            }
            let publisher = self.subs.publisher();
            let stored = batch.len() as u64;
            let max_id = batch.iter().map(|(_, e)| e.id).max().unwrap_or(0);
            for (seq, event) in batch {
                let (t, c, p) = (
                    &event.event_type,
                    event.correlation_id.as_ref(),
                    &event.payload,
                );
                wake |= publisher.publish(t, c, p);
                added += usize::from(shard.insert(event, seq, now));
            }
            if max_age > 0 {
                expired += shard.expire(now.saturating_sub(max_age));
            }
            if let Some(tally) = self.tallies.get(index) {
                tally.add(stored, max_id);
                tally.note_oldest(&shard);
            }
        }
        if wake {
            self.subs.notify();
        }
        self.hot.count.fetch_add(added, Relaxed);
        self.hot.count.fetch_sub(expired, Relaxed);
        let c = &self.counters;
        c.evicted_age.fetch_add(expired as u64, Relaxed);
        self.enforce_max_events()?;
        Ok(ids)
    }

    /// Evicts the oldest arrivals while the count exceeds the limit. Each
    /// shard's oldest arrival is read from its tally (no shard lock). When
    /// another writer holds the lock of the shard holding the oldest, as
    /// happens when many writers fill a full store, the shard holding the
    /// next oldest is tried instead, so those writers do not queue on one
    /// lock: eviction stays oldest first up to the arrivals other writers
    /// hold at that moment (each goes in a later round). Any other holder
    /// (a read, a prune, the helper thread) is waited for, spinning first.
    /// The chosen shard checks the arrival under its lock and, if another
    /// writer got there first, corrects its tally for the next round.
    fn enforce_max_events(&self) -> CoreResult<()> {
        let max = self.max_events.load(Relaxed);
        while max > 0 && self.hot.count.load(Relaxed) > max {
            let Some((oldest, next)) = self.two_oldest() else {
                break;
            };
            let free = |(index, seq): Oldest| match self.shards[index].try_write() {
                Ok(shard) => Ok(Some((index, seq, shard))),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Poisoned(e)) => Err(CoreError::poisoned(e)),
            };
            let taken = match free(oldest)? {
                Some(taken) => taken,
                None => {
                    let by_writer = self.tallies[oldest.0].writing.load(Relaxed);
                    let next = next.filter(|_| by_writer).map(free).transpose()?;
                    match next.flatten() {
                        Some(taken) => taken,
                        None => (oldest.0, oldest.1, write_spinning(&self.shards[oldest.0])?),
                    }
                }
            };
            let (index, seq, shard) = taken;
            let mut shard = self.writing(index, shard);
            let evicted = shard.evict_oldest(seq);
            self.tallies[index].note_oldest(&shard);
            drop(shard);
            if evicted {
                self.hot.count.fetch_sub(1, Relaxed);
                self.counters.evicted_count.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    /// `shard` (the write guard of shard `index`), marked as held by a
    /// writer in its tally until the returned guard is dropped.
    fn writing<'a>(&'a self, index: usize, shard: RwLockWriteGuard<'a, Shard>) -> Writing<'a> {
        let flag = &self.tallies[index].writing;
        flag.store(true, Relaxed);
        Writing {
            _mark: Marked(flag),
            shard,
        }
    }

    /// The shard holding the oldest arrival and the one holding the next
    /// oldest, from the tallies; `None` when every shard is empty.
    fn two_oldest(&self) -> Option<(Oldest, Option<Oldest>)> {
        let mut best: Option<Oldest> = None;
        let mut next: Option<Oldest> = None;
        for (index, tally) in self.tallies.iter().enumerate() {
            let seq = tally.oldest.load(Relaxed);
            if seq == NO_ARRIVAL {
                continue;
            }
            match best {
                Some((_, b)) if b <= seq => {
                    if next.is_none_or(|(_, n)| seq < n) {
                        next = Some((index, seq));
                    }
                }
                _ => {
                    next = best;
                    best = Some((index, seq));
                }
            }
        }
        best.map(|b| (b, next))
    }
}

/// A 64-bit mix (the SplitMix64 finalizer): every bit of the result
/// depends on every bit of `z`, so the shards of consecutive blocks are as
/// good as independent. With Fibonacci hashing (one multiplication) the
/// shards of consecutive blocks follow a near-periodic sequence, and two
/// writers walking their own id ranges at the same pace met in one shard
/// about a quarter more often than chance (16% of the time with 8 shards,
/// against 12.5%), for the whole of some ranges.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Write-locks a shard for a single write. A write holds its shard for
/// about a microsecond, so a writer that finds the lock taken retries for
/// a few microseconds (`SPIN_TRIES`) before it sleeps in the lock: sleeping
/// costs it a futex wait and a wake-up, and costs the holder a futex wake
/// when it unlocks, several times the wait itself. Two writers per core
/// thus keep their cores busy instead of idle.
fn write_spinning<T>(lock: &RwLock<T>) -> CoreResult<RwLockWriteGuard<'_, T>> {
    for _ in 0..SPIN_TRIES {
        match lock.try_write() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::WouldBlock) => (0..SPIN_PAUSES).for_each(|_| std::hint::spin_loop()),
            Err(TryLockError::Poisoned(e)) => return Err(CoreError::poisoned(e)),
        }
    }
    lock.write().map_err(CoreError::poisoned)
}

/// Attempts of `write_spinning` before it sleeps, and CPU pauses between
/// two (a pause takes 10 to 50 ns depending on the CPU: a few to about 25
/// microseconds in all).
const SPIN_TRIES: usize = 64;
const SPIN_PAUSES: usize = 8;

#[cfg(test)]
mod tests;

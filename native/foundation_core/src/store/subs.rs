//! Live subscriptions: every stored event that matches a subscription's
//! filter is queued for it by the writer, and one delivery thread per store
//! hands the queues to a sink (the NIF crate sends them to processes).
//!
//! Writers never wait on subscribers: a store call matches the event
//! against an index of the filters (by event type, by correlation id, or
//! match-all) and pushes the payload (a shared `Arc`) into each matching
//! subscription's bounded buffer, dropping the oldest when it is full. The
//! delivery thread takes at most `max_in_flight - unacknowledged` events per
//! subscription and round; `ack` frees slots.
//!
//! Catch-up (`from_start`): `subscribe` registers the subscription while it
//! holds every shard's write lock (and the batch gate, see below), and
//! records the store's arrival sequence at that instant as the boundary.
//! Every event stored before that instant has a smaller sequence number and
//! is read from the store page by page by the delivery thread; every event
//! stored after it sees the subscription and is queued live. So the two
//! phases meet with no gap and no duplicate. Single puts take their sequence
//! number under their shard lock; `put_batch` reserves its numbers up front,
//! so it holds the gate shared for its whole duration and `subscribe`, which
//! takes the gate exclusively, never sees half a batch.
//!
//! Lock order: gate, then shards (index order), then the filter index, then
//! a subscription's state. The delivery thread reads catch-up pages with no
//! subscription lock held, and never holds two subscription locks.

use super::{Bytes, Inner, Store};
use crate::error::{CoreError, CoreResult};
use rustc_hash::FxHashMap as HashMap;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;

/// Most events handed to the sink in one delivery.
pub const DELIVERY_BATCH: usize = 256;

/// A round that sent fewer events than this waits `COALESCE` before the
/// next one.
const COALESCE_BELOW: usize = 64;
const COALESCE: std::time::Duration = std::time::Duration::from_micros(200);

/// Delivery rounds run after the store is closed, at most.
const FINAL_ROUNDS: usize = 16;

/// Arrival entries a catch-up page visits at most (the shard read locks are
/// held while it runs, so writers wait at most that long).
const CATCH_UP_SCAN: usize = 4096;

/// Whatever the sink needs to reach a subscriber (a pid and a reference in
/// the NIF crate); the core never looks inside.
pub type Target = Box<dyn Any + Send + Sync>;

/// Receives deliveries on the store's delivery thread.
pub type Sink = Box<dyn FnMut(Delivery<'_>) + Send>;

/// What the delivery thread hands to the sink.
pub enum Delivery<'a> {
    /// Events for a subscriber, in arrival order. When `dropped` is
    /// positive, that many events were dropped (buffer overflow) since the
    /// previous delivery and the subscriber is told so first; `owner` is the
    /// store's owner (`Store::set_subscription_owner`), told too.
    Events {
        target: &'a Target,
        owner: Option<&'a Target>,
        dropped: u64,
        events: Vec<Bytes>,
    },
    /// The store was closed: the subscription has ended.
    Ended { target: &'a Target },
}

/// Which events a subscription receives: every given field must be equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Event type name.
    pub event_type: Option<Bytes>,
    /// Correlation id bytes.
    pub correlation_id: Option<Bytes>,
}

impl Filter {
    fn matches(&self, event_type: &[u8], cid: Option<&Bytes>) -> bool {
        self.event_type.as_deref().is_none_or(|t| t == event_type)
            && self
                .correlation_id
                .as_deref()
                .is_none_or(|c| cid.is_some_and(|e| **e == *c))
    }
}

/// Flow-control settings of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    /// Delivered events not yet acknowledged, at most (at least 1).
    pub max_in_flight: usize,
    /// Events waiting beyond that, at most; older ones are dropped first.
    pub buffer: usize,
    /// Deliver the matching events already stored first.
    pub from_start: bool,
}

struct Sub {
    id: u64,
    filter: Filter,
    target: Target,
    max_in_flight: usize,
    capacity: usize,
    state: Mutex<SubState>,
}

#[derive(Default)]
struct SubState {
    buffer: VecDeque<Bytes>,
    in_flight: usize,
    /// Dropped since the last delivery.
    dropped: u64,
    /// Dropped in total.
    dropped_total: u64,
    catch_up: Option<CatchUp>,
    ended: bool,
}

/// What a `from_start` subscription still has to read before its live
/// events.
#[derive(Debug, Clone)]
enum CatchUp {
    /// The memory tier: arrival sequence numbers in `(after, boundary)`.
    Hot { after: Option<u64>, boundary: u64 },
    /// A cold source: its sequence numbers below `boundary`, resuming after
    /// `cursor` (the source's own position).
    Cold {
        cursor: Option<Vec<u8>>,
        boundary: u64,
    },
}

/// The events that are no longer only in memory: a disk tier that every
/// stored event passes through before it reaches the memory tier. With one
/// set, a `from_start` catch-up reads it instead of the memory tier.
pub trait ColdSource: Send + Sync {
    /// Runs `register` while no event is between the source and the memory
    /// tier, with the source's next sequence number: every event below it
    /// is already in the memory tier, every later one reaches it after
    /// `register` returns.
    fn quiesced(&self, register: &mut dyn FnMut(u64)) -> CoreResult<()>;

    /// Up to `max` events matching `filter` with sequence numbers below
    /// `boundary`, after `cursor` (`None`: from the start), in the source's
    /// order, as payloads the memory tier's reader understands.
    fn page(
        &self,
        filter: &Filter,
        cursor: Option<&[u8]>,
        boundary: u64,
        max: usize,
    ) -> CoreResult<ColdPage>;
}

/// A page of a cold source.
#[derive(Debug, Default)]
pub struct ColdPage {
    /// The events, in the source's order.
    pub events: Vec<Bytes>,
    /// Where the next page starts.
    pub cursor: Option<Vec<u8>>,
    /// Nothing is left below the boundary.
    pub done: bool,
}

/// Subscriptions by filter, rebuilt (copy on write) on every change so
/// writers read it with one `Arc` clone.
#[derive(Default)]
struct Index {
    by_id: HashMap<u64, Arc<Sub>>,
    any: Vec<Arc<Sub>>,
    by_type: HashMap<Bytes, Vec<Arc<Sub>>>,
    /// Subscriptions filtering on a correlation id but not on a type.
    by_cid: HashMap<Bytes, Vec<Arc<Sub>>>,
}

impl Index {
    fn build(subs: impl Iterator<Item = Arc<Sub>>) -> Index {
        let mut index = Index::default();
        for sub in subs {
            match (&sub.filter.event_type, &sub.filter.correlation_id) {
                (Some(t), _) => index
                    .by_type
                    .entry(t.clone())
                    .or_default()
                    .push(sub.clone()),
                (None, Some(c)) => index.by_cid.entry(c.clone()).or_default().push(sub.clone()),
                (None, None) => index.any.push(sub.clone()),
            }
            index.by_id.insert(sub.id, sub);
        }
        index
    }

    /// Queues an event for every matching subscription; true when one of
    /// them can take it now (the delivery thread should run).
    fn publish(&self, event_type: &Bytes, cid: Option<&Bytes>, payload: &Bytes) -> bool {
        let typed = self.by_type.get(event_type).into_iter().flatten();
        let grouped = cid.and_then(|c| self.by_cid.get(c)).into_iter().flatten();
        let mut wake = false;
        for sub in self.any.iter().chain(typed).chain(grouped) {
            if sub.filter.matches(event_type, cid) {
                wake |= sub.push(payload);
            }
        }
        wake
    }
}

impl Sub {
    fn push(&self, payload: &Bytes) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        if st.ended {
            return false;
        }
        st.buffer.push_back(payload.clone());
        if st.buffer.len() > self.capacity {
            st.buffer.pop_front();
            st.dropped += 1;
            st.dropped_total += 1;
        }
        st.in_flight < self.max_in_flight
    }
}

/// Wakes the delivery thread. Shared by the thread and the store, so the
/// thread can wait without keeping the store alive.
#[derive(Default)]
struct Wake {
    pending: AtomicBool,
    /// Set to stop the thread (after a last round and the `Ended` notices).
    stop: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    /// Cheap when the thread already has work pending: no lock, no syscall.
    fn notify(&self) {
        if !self.pending.swap(true, AcqRel) {
            if let Ok(_guard) = self.stop.lock() {
                self.cond.notify_one();
            }
        }
    }

    fn shut_down(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            *stop = true;
            self.cond.notify_one();
        }
    }

    /// Waits for work; false once stopped.
    fn wait(&self) -> bool {
        let Ok(mut stop) = self.stop.lock() else {
            return false;
        };
        loop {
            if *stop {
                return false;
            }
            if self.pending.swap(false, AcqRel) {
                return true;
            }
            stop = match self.cond.wait(stop) {
                Ok(guard) => guard,
                Err(_) => return false,
            };
        }
    }
}

/// The subscription table of a store.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// Any subscription registered. Written under every shard lock, read by
    /// writers under theirs, so a writer that locks a shard after
    /// `subscribe` registered sees it.
    active: AtomicBool,
    index: RwLock<Arc<Index>>,
    /// Shared by `put_batch` for its whole duration, exclusive in
    /// `subscribe` (see the module doc).
    pub(crate) gate: RwLock<()>,
    wake: Arc<Wake>,
    thread: Mutex<Option<JoinHandle<()>>>,
    owner: Mutex<Option<Target>>,
    cold: RwLock<Option<Arc<dyn ColdSource>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("active", &self.active.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// The matching subscriptions of a writer's events, read once per call.
pub(crate) struct Publisher(Option<Arc<Index>>);

impl Publisher {
    /// Queues one event; true when the delivery thread should run.
    pub(crate) fn publish(&self, event_type: &Bytes, cid: Option<&Bytes>, payload: &Bytes) -> bool {
        self.0
            .as_ref()
            .is_some_and(|index| index.publish(event_type, cid, payload))
    }
}

impl Subscriptions {
    /// Must be called under a shard lock (see `active`).
    pub(crate) fn publisher(&self) -> Publisher {
        if !self.active.load(Relaxed) {
            return Publisher(None);
        }
        Publisher(self.index.read().ok().map(|index| index.clone()))
    }

    pub(crate) fn notify(&self) {
        self.wake.notify();
    }

    fn snapshot(&self) -> CoreResult<Arc<Index>> {
        Ok(self.index.read().map_err(CoreError::poisoned)?.clone())
    }

    fn find(&self, id: u64) -> CoreResult<Option<Arc<Sub>>> {
        Ok(self.snapshot()?.by_id.get(&id).cloned())
    }

    /// Replaces the index with one built from `f(current subscriptions)`.
    fn rebuild(&self, f: impl FnOnce(&Index) -> Vec<Arc<Sub>>) -> CoreResult<()> {
        let mut index = self.index.write().map_err(CoreError::poisoned)?;
        let next = Index::build(f(&index).into_iter());
        self.active.store(!next.by_id.is_empty(), Relaxed);
        *index = Arc::new(next);
        Ok(())
    }
}

impl Store {
    /// Registers a subscription and returns its id. `target` is what the
    /// sink needs to reach the subscriber; `sink` starts the store's
    /// delivery thread if it is not running yet (it is called once).
    pub fn subscribe(
        &self,
        filter: Filter,
        options: SubOptions,
        target: Target,
        sink: impl FnOnce() -> Sink,
    ) -> CoreResult<u64> {
        let subs = &self.inner.subs;
        self.start_delivery(sink)?;
        let id = subs.next_id.fetch_add(1, Relaxed) + 1;
        let sub = Sub {
            id,
            filter,
            target,
            max_in_flight: options.max_in_flight.max(1),
            capacity: options.buffer.max(1),
            state: Mutex::new(SubState::default()),
        };
        let cold = subs.cold.read().map_err(CoreError::poisoned)?.clone();
        match cold {
            Some(cold) if options.from_start => {
                let mut sub = Some(sub);
                let mut result = Err(CoreError::Internal("cold source skipped".into()));
                cold.quiesced(&mut |boundary| {
                    let catch_up = CatchUp::Cold {
                        cursor: None,
                        boundary,
                    };
                    if let Some(sub) = sub.take() {
                        result = self.register(sub, Some(catch_up));
                    }
                })?;
                result?;
            }
            _ => {
                // The hot boundary is read under the locks `register` holds.
                let hot = options.from_start.then_some(CatchUp::Hot {
                    after: None,
                    boundary: 0,
                });
                self.register(sub, hot)?;
            }
        }
        if options.from_start {
            subs.notify();
        }
        Ok(id)
    }

    /// Adds `sub` to the index under the gate and every shard lock, so each
    /// arrival is either before it (read by the catch-up) or after it
    /// (queued live).
    fn register(&self, sub: Sub, catch_up: Option<CatchUp>) -> CoreResult<()> {
        let subs = &self.inner.subs;
        let _gate = subs.gate.write().map_err(CoreError::poisoned)?;
        let _shards = self.inner.write_all()?;
        if subs.closed.load(Relaxed) {
            return Err(CoreError::Closed);
        }
        let catch_up = match catch_up {
            Some(CatchUp::Hot { .. }) => {
                let boundary = self.inner.hot.seq.load(Relaxed);
                (boundary > 0).then_some(CatchUp::Hot {
                    after: None,
                    boundary,
                })
            }
            other => other,
        };
        sub.state.lock().map_err(CoreError::poisoned)?.catch_up = catch_up;
        let sub = Arc::new(sub);
        subs.rebuild(|index| {
            let mut all: Vec<_> = index.by_id.values().cloned().collect();
            all.push(sub);
            all
        })
    }

    /// Sets (or removes) the cold source a `from_start` catch-up reads.
    pub fn set_cold_source(&self, cold: Option<Arc<dyn ColdSource>>) -> CoreResult<()> {
        *self.inner.subs.cold.write().map_err(CoreError::poisoned)? = cold;
        Ok(())
    }

    /// Ends a subscription; false when there was none with this id.
    pub fn unsubscribe(&self, id: u64) -> CoreResult<bool> {
        let subs = &self.inner.subs;
        let Some(sub) = subs.find(id)? else {
            return Ok(false);
        };
        subs.rebuild(|index| {
            index
                .by_id
                .values()
                .filter(|s| s.id != id)
                .cloned()
                .collect()
        })?;
        let mut st = sub.state.lock().map_err(CoreError::poisoned)?;
        st.ended = true;
        st.buffer.clear();
        Ok(true)
    }

    /// Frees `count` delivery slots of a subscription (never below zero);
    /// false when there is no such subscription.
    pub fn ack(&self, id: u64, count: usize) -> CoreResult<bool> {
        let subs = &self.inner.subs;
        let Some(sub) = subs.find(id)? else {
            return Ok(false);
        };
        let waiting = {
            let mut st = sub.state.lock().map_err(CoreError::poisoned)?;
            st.in_flight = st.in_flight.saturating_sub(count);
            !st.buffer.is_empty() || st.catch_up.is_some() || st.dropped > 0
        };
        if waiting {
            subs.notify();
        }
        Ok(true)
    }

    /// Calls `f` with the id, target, unacknowledged count and dropped total
    /// of every subscription.
    pub fn subscriptions<T>(
        &self,
        mut f: impl FnMut(u64, &Target, usize, u64) -> T,
    ) -> CoreResult<Vec<T>> {
        let index = self.inner.subs.snapshot()?;
        let mut ids: Vec<_> = index.by_id.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for sub in ids.iter().filter_map(|id| index.by_id.get(id)) {
            let st = sub.state.lock().map_err(CoreError::poisoned)?;
            out.push(f(sub.id, &sub.target, st.in_flight, st.dropped_total));
        }
        Ok(out)
    }

    /// Sets who is told about dropped events (the store's owning process).
    pub fn set_subscription_owner(&self, owner: Target) -> CoreResult<()> {
        *self.inner.subs.owner.lock().map_err(CoreError::poisoned)? = Some(owner);
        Ok(())
    }

    fn start_delivery(&self, sink: impl FnOnce() -> Sink) -> CoreResult<()> {
        let subs = &self.inner.subs;
        let mut thread = subs.thread.lock().map_err(CoreError::poisoned)?;
        if thread.is_none() && !subs.closed.load(Relaxed) {
            let (wake, inner, sink) = (subs.wake.clone(), Arc::downgrade(&self.inner), sink());
            let handle = std::thread::Builder::new()
                .name("event_store_delivery".into())
                .spawn(move || deliver_loop(&wake, &inner, sink))
                .map_err(|e| CoreError::Internal(format!("cannot start delivery: {e}")))?;
            *thread = Some(handle);
        }
        Ok(())
    }

    /// Ends every subscription: what can be delivered is, then each
    /// subscriber gets `Delivery::Ended`, and the delivery thread is
    /// joined. Later subscribes fail with `Closed`.
    pub(super) fn close_subscriptions(&self) -> CoreResult<()> {
        let subs = &self.inner.subs;
        {
            let _gate = subs.gate.write().map_err(CoreError::poisoned)?;
            subs.closed.store(true, Relaxed);
        }
        subs.wake.shut_down();
        let thread = subs.thread.lock().map_err(CoreError::poisoned)?.take();
        if let Some(thread) = thread {
            thread
                .join()
                .map_err(|_| CoreError::Internal("event store delivery thread panicked".into()))?;
        }
        subs.rebuild(|_| Vec::new())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Never joins here (this may run on a scheduler thread): the thread
        // sees the store gone and exits.
        self.inner.subs.wake.shut_down();
    }
}

fn deliver_loop(wake: &Wake, inner: &Weak<Inner>, mut sink: Sink) {
    while wake.wait() {
        let Some(store) = inner.upgrade() else {
            return;
        };
        let (more, sent) = round(&store, &mut sink);
        drop(store);
        if more {
            wake.pending.store(true, Relaxed);
        }
        // Small deliveries: let the next ones gather for a moment, so a
        // steady stream of stores makes fewer, larger messages (writers do
        // not wake the thread meanwhile: the pending flag stays set).
        if sent > 0 && sent < COALESCE_BELOW {
            std::thread::sleep(COALESCE);
        }
    }
    // Stopped: what can be delivered is (a few rounds at most: writers
    // may still be storing), then every subscriber is told.
    let Some(inner) = inner.upgrade() else {
        return;
    };
    for _ in 0..FINAL_ROUNDS {
        if !round(&inner, &mut sink).0 {
            break;
        }
    }
    if let Ok(index) = inner.subs.snapshot() {
        for sub in index.by_id.values() {
            sink(Delivery::Ended {
                target: &sub.target,
            });
        }
    }
}

/// One delivery per subscription that has room and events: whether some
/// subscription has more to deliver right away, and how many events were
/// sent.
fn round(inner: &Inner, sink: &mut Sink) -> (bool, usize) {
    let Ok(index) = inner.subs.snapshot() else {
        return (false, 0);
    };
    let owner = inner.subs.owner.lock().ok();
    let owner = owner.as_ref().and_then(|o| o.as_ref());
    let (mut more, mut sent) = (false, 0);
    for sub in index.by_id.values() {
        let (m, n) = deliver(inner, sub, owner, sink).unwrap_or((false, 0));
        more |= m;
        sent += n;
    }
    (more, sent)
}

fn deliver(
    inner: &Inner,
    sub: &Sub,
    owner: Option<&Target>,
    sink: &mut Sink,
) -> CoreResult<(bool, usize)> {
    let (room, catch_up) = {
        let st = sub.state.lock().map_err(CoreError::poisoned)?;
        if st.ended {
            return Ok((false, 0));
        }
        let room = sub.max_in_flight.saturating_sub(st.in_flight);
        (room.min(DELIVERY_BATCH), st.catch_up.clone())
    };
    if room == 0 {
        return Ok((false, 0));
    }
    let (events, dropped, more) = match catch_up {
        Some(catch_up) => {
            let (events, next) = read_catch_up(inner, &sub.filter, catch_up, room)?;
            let mut st = sub.state.lock().map_err(CoreError::poisoned)?;
            st.in_flight += events.len();
            st.catch_up = next;
            (events, std::mem::take(&mut st.dropped), true)
        }
        None => {
            let mut st = sub.state.lock().map_err(CoreError::poisoned)?;
            let n = room.min(st.buffer.len());
            let events: Vec<Bytes> = st.buffer.drain(..n).collect();
            st.in_flight += n;
            let more = !st.buffer.is_empty() && st.in_flight < sub.max_in_flight;
            (events, std::mem::take(&mut st.dropped), more)
        }
    };
    let sent = events.len();
    if sent > 0 || dropped > 0 {
        sink(Delivery::Events {
            target: &sub.target,
            owner,
            dropped,
            events,
        });
    }
    Ok((more, sent))
}

/// One page of a catch-up and what is left after it (`None`: done).
fn read_catch_up(
    inner: &Inner,
    filter: &Filter,
    catch_up: CatchUp,
    max: usize,
) -> CoreResult<(Vec<Bytes>, Option<CatchUp>)> {
    match catch_up {
        CatchUp::Hot { after, boundary } => {
            let page = inner.catch_up_page(filter, after, boundary, max)?;
            let next = (!page.done).then_some(CatchUp::Hot {
                after: page.after,
                boundary,
            });
            Ok((page.events, next))
        }
        CatchUp::Cold { cursor, boundary } => {
            let cold = inner.subs.cold.read().map_err(CoreError::poisoned)?.clone();
            let Some(cold) = cold else {
                return Ok((Vec::new(), None));
            };
            let page = cold.page(filter, cursor.as_deref(), boundary, max)?;
            let next = (!page.done).then_some(CatchUp::Cold {
                cursor: page.cursor,
                boundary,
            });
            Ok((page.events, next))
        }
    }
}

/// A page of catch-up events.
pub(crate) struct CatchUpPage {
    pub(crate) events: Vec<Bytes>,
    /// The last arrival visited (the next page starts after it).
    pub(crate) after: Option<u64>,
    /// Nothing left before the boundary.
    pub(crate) done: bool,
}

impl Inner {
    /// Matching events with arrival numbers in `(after, boundary)`, in
    /// arrival order: at most `max` events, visiting at most
    /// `CATCH_UP_SCAN` arrivals.
    fn catch_up_page(
        &self,
        filter: &Filter,
        after: Option<u64>,
        boundary: u64,
        max: usize,
    ) -> CoreResult<CatchUpPage> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let guards = self.read_all()?;
        let mut streams: Vec<_> = guards
            .iter()
            .map(|g| g.arrivals_between(start, boundary).peekable())
            .collect();
        let mut page = CatchUpPage {
            events: Vec::new(),
            after,
            done: false,
        };
        for _ in 0..CATCH_UP_SCAN {
            // The smallest next arrival over the shards (few shards: a scan
            // is cheaper than a heap).
            let next = streams
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.peek().map(|&(seq, _)| (seq, i)))
                .min();
            let Some((seq, i)) = next else {
                page.done = true;
                return Ok(page);
            };
            if let Some((_, record)) = streams.get_mut(i).and_then(|s| s.next()) {
                if filter.matches(&record.event_type, record.correlation_id.as_ref()) {
                    page.events.push(record.payload.clone());
                }
            }
            page.after = Some(seq);
            if page.events.len() >= max {
                break;
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
#[path = "subs_tests.rs"]
mod tests;

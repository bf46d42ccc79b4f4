//! In-memory metric store of the TelemetryService: one entry per event name,
//! merged with the TelemetryService recording rules (see `merge`), bounded in the
//! number of distinct names, with retention cleanup by timestamp.
//!
//! Lock order: a DashMap shard lock, then the entry's body lock; or a
//! per-thread cache slot (see `cache`), then the entry's body lock. All are
//! held for memory operations only; callers encode terms (metadata) before
//! calling in and after `snapshot` returns owned copies.

mod cache;
pub mod clock;
mod entry;
pub mod merge;

pub use cache::MAX_CACHED_SEGMENTS;
pub use entry::EntrySnapshot;
pub use merge::{merge_value, Key, Measure};

use crate::CoreResult;
use cache::{Cached, IdCache};
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::{DashMap, DashSet};
use entry::Entry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// An event name: the names of its atoms, in order.
pub type Name = Vec<String>;

/// What happened to one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// False when the name was new and the store was full (counted as dropped).
    pub stored: bool,
    /// True when a handler is attached to this exact name.
    pub handler: bool,
}

/// Counters reported by `Metrics::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsStatus {
    /// Distinct names currently stored.
    pub metrics: usize,
    /// Recordings of new names refused because the store was full.
    pub dropped: u64,
    /// Names with an attached handler.
    pub handlers: usize,
    /// Maximum number of distinct names.
    pub max_metrics: usize,
}

/// The metric store of one TelemetryService namespace.
#[derive(Debug)]
pub struct Metrics {
    entries: DashMap<Name, Arc<Entry>>,
    handlers: DashSet<Name>,
    /// Hot-path index by segment ids (`add_counter_by_ids`).
    cache: IdCache,
    /// Number of entries (kept exact so the cap holds under concurrency).
    size: AtomicUsize,
    dropped: AtomicU64,
    max_metrics: usize,
}

impl Metrics {
    /// An empty store holding at most `max_metrics` distinct names.
    pub fn new(max_metrics: usize) -> Self {
        Metrics {
            entries: DashMap::new(),
            handlers: DashSet::new(),
            cache: IdCache::new(),
            size: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            max_metrics,
        }
    }

    /// Records one event: merges `incoming` into the entry of `name`, or
    /// creates it with the metadata produced by `metadata` (called only for a
    /// new name, outside every lock; if it fails, nothing is recorded and its
    /// error is returned, e.g. `OverBudget` from a normal-scheduler NIF).
    pub fn record<F>(
        &self,
        name: Name,
        incoming: Vec<(Key, Measure)>,
        metadata: F,
        now: i64,
    ) -> CoreResult<Recorded>
    where
        F: FnOnce() -> CoreResult<Vec<u8>>,
    {
        if let Some(existing) = self.entries.get(name.as_slice()) {
            existing.merge(incoming, now)?;
            drop(existing);
            return Ok(self.recorded(&name, true));
        }
        let metadata = metadata()?;
        let stored = match self.entries.entry(name.clone()) {
            MapEntry::Occupied(occupied) => {
                occupied.get().merge(incoming, now)?;
                true
            }
            MapEntry::Vacant(vacant) => {
                let reserved = self.reserve_slot();
                if reserved {
                    vacant.insert(Arc::new(Entry::new(incoming, metadata, now)));
                }
                reserved
            }
        };
        Ok(self.recorded(&name, stored))
    }

    /// Adds `delta` to the `:counter` measurement of `name`: the hot path
    /// (shared locks and atomics) when the counter is already an integer,
    /// `record` otherwise.
    pub fn add_counter<F>(
        &self,
        name: Name,
        delta: Measure,
        metadata: F,
        now: i64,
    ) -> CoreResult<Recorded>
    where
        F: FnOnce() -> CoreResult<Vec<u8>>,
    {
        if let Measure::Int(d) = delta {
            if let Some(existing) = self.entries.get(name.as_slice()) {
                if existing.try_add_counter(d, now)? {
                    drop(existing);
                    return Ok(self.recorded(&name, true));
                }
            }
        }
        self.record(name, vec![(Key::Counter, delta)], metadata, now)
    }

    /// The hot path of `add_counter` for a name identified by `ids`: opaque
    /// segment ids, unique per segment and stable for the store's life (the
    /// NIF passes the atoms' term words). Adds an integer `delta` to the
    /// entry cached in the calling thread's slot; `None` (nothing done) when
    /// `delta` is not an integer, the entry is not cached or its counter is
    /// not an atomic integer: then call `add_counter_caching`.
    pub fn try_add_cached(
        &self,
        ids: &[u64],
        delta: &Measure,
        now: i64,
    ) -> CoreResult<Option<Recorded>> {
        let Measure::Int(d) = *delta else {
            return Ok(None);
        };
        let handler = self.cache.with_hit(ids, |c| {
            Ok(c.entry.try_add_counter(d, now)?.then_some(c.handler))
        })?;
        Ok(handler.flatten().map(|handler| Recorded {
            stored: true,
            handler,
        }))
    }

    /// `add_counter`, then caches the entry of `name` under `ids` (see
    /// `try_add_cached`) for this thread's next increments.
    pub fn add_counter_caching<F>(
        &self,
        ids: &[u64],
        name: Name,
        delta: Measure,
        metadata: F,
        now: i64,
    ) -> CoreResult<Recorded>
    where
        F: FnOnce() -> CoreResult<Vec<u8>>,
    {
        // Read before the lookup: a removal after this point discards the fill.
        let seen = self.cache.generation();
        let recorded = self.add_counter(name.clone(), delta, metadata, now)?;
        if !recorded.stored || ids.len() > MAX_CACHED_SEGMENTS {
            return Ok(recorded);
        }
        let entry = self.entries.get(name.as_slice()).map(|e| Arc::clone(&e));
        if let Some(entry) = entry {
            let handler = recorded.handler;
            self.cache.fill(ids, seen, Cached { entry, handler })?;
        }
        Ok(recorded)
    }

    /// Owned copies of every entry, in no particular order.
    pub fn snapshot(&self) -> CoreResult<Vec<(Name, EntrySnapshot)>> {
        self.entries
            .iter()
            .map(|item| Ok((item.key().clone(), item.value().snapshot()?)))
            .collect()
    }

    /// Removes entries whose last timestamp is `<= cutoff`; returns how many.
    pub fn cleanup(&self, cutoff: i64) -> usize {
        self.remove_where(|e| e.timestamp() <= cutoff)
    }

    /// Removes every entry (handlers stay); returns how many.
    pub fn clear(&self) -> usize {
        self.remove_where(|_| true)
    }

    /// Attaches a handler to each name (idempotent).
    pub fn attach(&self, names: Vec<Name>) {
        for name in names {
            self.handlers.insert(name);
        }
        self.cache.invalidate();
    }

    /// Detaches the handlers of these names (absent names are ignored).
    pub fn detach(&self, names: &[Name]) {
        for name in names {
            self.handlers.remove(name);
        }
        self.cache.invalidate();
    }

    /// Detaches every handler.
    pub fn clear_handlers(&self) {
        self.handlers.clear();
        self.cache.invalidate();
    }

    /// Sizes and counters.
    pub fn status(&self) -> MetricsStatus {
        MetricsStatus {
            metrics: self.size.load(Ordering::Acquire),
            dropped: self.dropped.load(Ordering::Acquire),
            handlers: self.handlers.len(),
            max_metrics: self.max_metrics,
        }
    }

    fn recorded(&self, name: &[String], stored: bool) -> Recorded {
        if !stored {
            self.dropped.fetch_add(1, Ordering::AcqRel);
        }
        let handler = !self.handlers.is_empty() && self.handlers.contains(name);
        Recorded { stored, handler }
    }

    fn reserve_slot(&self) -> bool {
        self.size
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_metrics).then_some(n + 1)
            })
            .is_ok()
    }

    fn remove_where(&self, doomed: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = 0;
        self.entries.retain(|_, entry| {
            let remove = doomed(entry);
            if remove {
                removed += 1;
                self.size.fetch_sub(1, Ordering::AcqRel);
            }
            !remove
        });
        if removed > 0 {
            self.cache.invalidate();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn name(parts: &[&str]) -> Name {
        parts.iter().map(|p| p.to_string()).collect()
    }

    fn meta() -> CoreResult<Vec<u8>> {
        Ok(b"first".to_vec())
    }

    #[test]
    fn record_then_merge_keeps_first_metadata() {
        let m = Metrics::new(10);
        let g = |v| vec![(Key::Gauge, Measure::Int(v))];
        m.record(name(&["a", "b"]), g(1), meta, 1).unwrap();
        m.record(name(&["a", "b"]), g(2), || Ok(b"second".to_vec()), 2)
            .unwrap();
        let snap = m.snapshot().unwrap();
        assert_eq!(snap.len(), 1);
        let (n, e) = &snap[0];
        assert_eq!(n, &name(&["a", "b"]));
        assert_eq!((e.count, e.timestamp), (2, 2));
        assert_eq!(Ok(e.metadata.clone()), meta());
        assert_eq!(e.measurements, g(2));
    }

    #[test]
    fn cap_drops_new_names_and_counts_them() {
        let m = Metrics::new(2);
        for i in 0..5 {
            let r = m
                .add_counter(name(&[&i.to_string()]), Measure::Int(1), meta, 0)
                .unwrap();
            assert_eq!(r.stored, i < 2);
        }
        m.add_counter(name(&["0"]), Measure::Int(1), meta, 0)
            .unwrap();
        let s = m.status();
        assert_eq!((s.metrics, s.dropped, s.max_metrics), (2, 3, 2));
    }

    #[test]
    fn cleanup_removes_only_old_entries() {
        let m = Metrics::new(10);
        m.add_counter(name(&["old"]), Measure::Int(1), meta, 100)
            .unwrap();
        m.add_counter(name(&["new"]), Measure::Int(1), meta, 200)
            .unwrap();
        assert_eq!(m.cleanup(100), 1);
        let snap = m.snapshot().unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].0, name(&["new"]));
        assert_eq!(m.status().metrics, 1);
        assert_eq!(m.clear(), 1);
        assert_eq!(m.status().metrics, 0);
    }

    #[test]
    fn handlers_are_reported_per_exact_name() {
        let m = Metrics::new(10);
        m.attach(vec![name(&["a"])]);
        assert!(
            m.add_counter(name(&["a"]), Measure::Int(1), meta, 0)
                .unwrap()
                .handler
        );
        assert!(
            !m.add_counter(name(&["a", "b"]), Measure::Int(1), meta, 0)
                .unwrap()
                .handler
        );
        m.detach(&[name(&["a"])]);
        assert!(
            !m.add_counter(name(&["a"]), Measure::Int(1), meta, 0)
                .unwrap()
                .handler
        );
        m.attach(vec![name(&["x"]), name(&["y"])]);
        assert_eq!(m.status().handlers, 2);
        m.clear_handlers();
        assert_eq!(m.status().handlers, 0);
    }

    /// Runs `work(&m, t)` for t in 0..8, each on its own thread, and waits.
    fn on_8_threads(m: &Arc<Metrics>, work: fn(&Metrics, usize)) {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = Arc::clone(m);
                std::thread::spawn(move || work(&m, t))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn concurrent_counters_are_exact() {
        let m = Arc::new(Metrics::new(10));
        on_8_threads(&m, |m, _| {
            for i in 0..10_000 {
                m.add_counter(name(&["c"]), Measure::Int(1), meta, i)
                    .unwrap();
            }
        });
        let snap = m.snapshot().unwrap();
        assert_eq!(snap[0].1.count, 80_000);
        assert_eq!(
            snap[0].1.measurements,
            vec![(Key::Counter, Measure::Int(80_000))]
        );
    }

    #[test]
    fn concurrent_new_names_respect_the_cap() {
        let m = Arc::new(Metrics::new(50));
        on_8_threads(&m, |m, t| {
            for i in 0..100 {
                let n = name(&[&format!("{t}-{i}")]);
                m.add_counter(n, Measure::Int(1), meta, 0).unwrap();
            }
        });
        let s = m.status();
        assert_eq!((s.metrics, s.dropped), (50, 750));
        assert_eq!(m.snapshot().unwrap().len(), 50);
    }
}

//! One metric: its call count, last timestamp, merged measurements and first
//! metadata. Counter increments take no lock: three atomic operations, all
//! on the calling thread's own cache line.

use super::merge::{merge_all, merge_value, Key, Measure};
use crate::{CoreError, CoreResult};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

/// Where the `:counter` measurement lives.
#[derive(Debug, Clone, PartialEq)]
enum CounterSlot {
    /// No `:counter` measurement recorded yet.
    Absent,
    /// An integer: this base plus the stripes' partial sums (the lock-free
    /// hot path). The base is within `FAST_RANGE`.
    Atomic(i64),
    /// Any other value (float, opaque term), held here.
    Value(Measure),
}

/// Measurements other than the counter, plus where the counter is.
#[derive(Debug)]
struct Body {
    counter: CounterSlot,
    others: Vec<(Key, Measure)>,
}

/// A copy of one metric taken by `Metrics::snapshot`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntrySnapshot {
    /// Number of times the metric was recorded.
    pub count: u64,
    /// Timestamp given with the last recording (native monotonic units).
    pub timestamp: i64,
    /// Merged measurements.
    pub measurements: Vec<(Key, Measure)>,
    /// Metadata of the first recording, as opaque encoded bytes.
    pub metadata: Vec<u8>,
}

/// Stripes of an entry's count and timestamp.
const STRIPES: usize = 8;

/// One thread slot's share of an entry's count, counter and latest
/// timestamp.
#[derive(Debug)]
#[repr(align(64))]
struct Stripe {
    count: AtomicU64,
    timestamp: AtomicI64,
    /// This slot's part of an `Atomic` counter (within `STRIPE_RANGE`), or
    /// `FROZEN` while the counter is not `Atomic`.
    counter: AtomicI64,
}

impl Default for Stripe {
    fn default() -> Self {
        Stripe {
            count: AtomicU64::new(0),
            timestamp: AtomicI64::new(i64::MIN),
            counter: AtomicI64::new(FROZEN),
        }
    }
}

/// Counts one recording at `now` in `stripe`.
fn touch_stripe(stripe: &Stripe, now: i64) {
    stripe.count.fetch_add(1, Ordering::AcqRel);
    if stripe.timestamp.load(Ordering::Relaxed) < now {
        stripe.timestamp.fetch_max(now, Ordering::AcqRel);
    }
}

/// The calling thread's stripe, assigned round-robin at its first use.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    SLOT.with(|slot| *slot)
}

/// A stripe's `counter` while the slot is not `Atomic`: increments then fail.
const FROZEN: i64 = i64::MIN;

/// An integer counter goes (back) to the atomic path when a merge leaves it
/// strictly inside `±FAST_RANGE`; larger ones are merged under the lock,
/// with the same overflow rules.
const FAST_RANGE: i64 = 1 << 62;

/// Each stripe's part stays strictly inside `±STRIPE_RANGE` (an increment
/// that would leave it merges instead), so the base and the parts never sum
/// past 64 bits: the atomic path adds exactly as `merge_value` would.
const STRIPE_RANGE: i64 = FAST_RANGE / STRIPES as i64;

fn fast(i: i64) -> bool {
    -FAST_RANGE < i && i < FAST_RANGE
}

/// One metric. `body` is the only lock, taken by general merges (write) and
/// snapshots (read). Increments take no lock: they add to their stripe's
/// part of the counter with a compare-and-swap that fails on `FROZEN`, and
/// a general merge that touches the counter first swaps `FROZEN` into every
/// stripe (under the write guard), so it owns the parts it read and no
/// increment is lost.
///
/// The call count, the counter and the last timestamp are striped: each
/// thread adds to the stripe of its slot (its own cache line), and readers
/// sum the counts and the counter's parts and take the largest timestamp,
/// so concurrent recorders of one metric do not fight over one cache line.
#[derive(Debug)]
pub(crate) struct Entry {
    stripes: [Stripe; STRIPES],
    /// Metadata of the first recording; never updated.
    metadata: Vec<u8>,
    body: RwLock<Body>,
}

impl Entry {
    /// A new entry holding its first recording.
    pub(crate) fn new(incoming: Vec<(Key, Measure)>, metadata: Vec<u8>, now: i64) -> Self {
        let entry = Entry {
            stripes: Default::default(),
            metadata,
            body: RwLock::new(Body {
                counter: CounterSlot::Absent,
                others: Vec::new(),
            }),
        };
        if let Ok(mut body) = entry.body.write() {
            entry.merge_locked(&mut body, incoming);
        }
        if let Some(first) = entry.stripes.first() {
            first.count.store(1, Ordering::Relaxed);
            first.timestamp.store(now, Ordering::Relaxed);
        }
        entry
    }

    /// Last timestamp recorded.
    pub(crate) fn timestamp(&self) -> i64 {
        self.stripes
            .iter()
            .map(|s| s.timestamp.load(Ordering::Acquire))
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Number of recordings.
    fn count(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.count.load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }

    /// Adds `delta` to an integer counter without any lock. Returns `false`
    /// (nothing done) when the counter is not an atomic integer or this
    /// thread's part would leave `STRIPE_RANGE`: the caller then merges.
    pub(crate) fn try_add_counter(&self, delta: i64, now: i64) -> CoreResult<bool> {
        let stripe = &self.stripes[stripe_index()];
        let added = stripe
            .counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                if c == FROZEN {
                    return None;
                }
                c.checked_add(delta)
                    .filter(|sum| -STRIPE_RANGE < *sum && *sum < STRIPE_RANGE)
            });
        if added.is_err() {
            return Ok(false);
        }
        touch_stripe(stripe, now);
        Ok(true)
    }

    /// Merges a measurement map with the recording rules.
    pub(crate) fn merge(&self, incoming: Vec<(Key, Measure)>, now: i64) -> CoreResult<()> {
        let mut body = self.body.write().map_err(CoreError::poisoned)?;
        self.merge_locked(&mut body, incoming);
        self.touch(now);
        Ok(())
    }

    /// Copies the entry out (memory only, under the read guard).
    pub(crate) fn snapshot(&self) -> CoreResult<EntrySnapshot> {
        let body = self.body.read().map_err(CoreError::poisoned)?;
        let mut measurements = body.others.clone();
        if let Some(counter) = self.counter_value(&body.counter) {
            measurements.push((Key::Counter, counter));
        }
        Ok(EntrySnapshot {
            count: self.count(),
            timestamp: self.timestamp(),
            measurements,
            metadata: self.metadata.clone(),
        })
    }

    fn touch(&self, now: i64) {
        touch_stripe(&self.stripes[stripe_index()], now);
    }

    /// Caller holds a guard, so an `Atomic` slot's parts are not `FROZEN`;
    /// the base and the parts sum within 64 bits (see `STRIPE_RANGE`).
    fn counter_value(&self, slot: &CounterSlot) -> Option<Measure> {
        match slot {
            CounterSlot::Absent => None,
            CounterSlot::Atomic(base) => Some(Measure::Int(
                self.stripes
                    .iter()
                    .map(|s| s.counter.load(Ordering::Acquire))
                    .fold(*base, i64::wrapping_add),
            )),
            CounterSlot::Value(m) => Some(m.clone()),
        }
    }

    /// Swaps `FROZEN` into every stripe's part and returns their sum (0
    /// when the counter was not `Atomic`: its parts were all `FROZEN`).
    /// Caller holds the write guard.
    fn freeze(&self) -> i64 {
        self.stripes
            .iter()
            .map(|s| s.counter.swap(FROZEN, Ordering::AcqRel))
            .filter(|part| *part != FROZEN)
            .fold(0, i64::wrapping_add)
    }

    /// Caller holds the write guard: no fast-path increment runs meanwhile.
    fn merge_locked(&self, body: &mut Body, incoming: Vec<(Key, Measure)>) {
        let mut rest = Vec::with_capacity(incoming.len());
        for (key, value) in incoming {
            if key != Key::Counter {
                rest.push((key, value));
                continue;
            }
            // Freeze first: increments racing this merge fail over to the
            // lock (which we hold) instead of adding to a value we replace.
            let parts = self.freeze();
            let old = match &body.counter {
                CounterSlot::Absent => None,
                CounterSlot::Atomic(base) => Some(Measure::Int(base.wrapping_add(parts))),
                CounterSlot::Value(m) => Some(m.clone()),
            };
            let merged = match old {
                Some(old) => merge_value(&Key::Counter, &old, value),
                None => value,
            };
            body.counter = match merged {
                Measure::Int(i) if fast(i) => {
                    for stripe in &self.stripes {
                        stripe.counter.store(0, Ordering::Release);
                    }
                    CounterSlot::Atomic(i)
                }
                other => CounterSlot::Value(other),
            };
        }
        merge_all(&mut body.others, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(v: i64) -> Vec<(Key, Measure)> {
        vec![(Key::Counter, Measure::Int(v))]
    }

    #[test]
    fn new_entry_has_count_one_and_its_metadata() {
        let e = Entry::new(counter(3), b"meta".to_vec(), 10);
        let s = e.snapshot().unwrap();
        assert_eq!(s.count, 1);
        assert_eq!(s.timestamp, 10);
        assert_eq!(s.metadata, b"meta".to_vec());
        assert_eq!(s.measurements, counter(3));
    }

    #[test]
    fn fast_path_adds_and_counts() {
        let e = Entry::new(counter(1), vec![], 1);
        assert!(e.try_add_counter(4, 5).unwrap());
        let s = e.snapshot().unwrap();
        assert_eq!((s.count, s.timestamp), (2, 5));
        assert_eq!(s.measurements, counter(5));
    }

    #[test]
    fn fast_path_declines_overflow_and_non_integer_counters() {
        let e = Entry::new(counter(i64::MAX), vec![], 1);
        assert!(!e.try_add_counter(1, 2).unwrap());
        e.merge(counter(1), 2).unwrap();
        assert!(!e.try_add_counter(1, 3).unwrap());
        let s = e.snapshot().unwrap();
        assert_eq!(
            s.measurements,
            vec![(Key::Counter, Measure::Float(i64::MAX as f64 + 1.0))]
        );
        assert_eq!(s.count, 2);
    }

    #[test]
    fn counters_past_the_fast_range_stay_exact_integers() {
        let e = Entry::new(counter(FAST_RANGE - 1), vec![], 1);
        // The parts carry the counter past the fast range, exactly.
        assert!(e.try_add_counter(1, 2).unwrap());
        e.merge(counter(1), 2).unwrap();
        // Now held as a value: merged under the lock.
        assert!(!e.try_add_counter(1, 3).unwrap());
        e.merge(counter(1), 3).unwrap();
        e.merge(counter(-10), 4).unwrap();
        assert!(e.try_add_counter(1, 5).unwrap());
        let s = e.snapshot().unwrap();
        assert_eq!(s.measurements, counter(FAST_RANGE - 7));
        assert_eq!(s.count, 6);
    }

    #[test]
    fn a_part_leaving_the_stripe_range_merges_exactly() {
        let e = Entry::new(counter(0), vec![], 1);
        assert!(e.try_add_counter(STRIPE_RANGE - 1, 2).unwrap());
        assert!(!e.try_add_counter(1, 3).unwrap());
        e.merge(counter(1), 3).unwrap();
        // The merge folded the parts into the base: the part has room again.
        assert!(e.try_add_counter(STRIPE_RANGE - 1, 4).unwrap());
        let s = e.snapshot().unwrap();
        assert_eq!(s.measurements, counter(2 * (STRIPE_RANGE - 1) + 1));
        assert_eq!(s.count, 4);
    }

    #[test]
    fn increments_racing_general_merges_lose_nothing() {
        let e = std::sync::Arc::new(Entry::new(counter(0), vec![], 0));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let e = std::sync::Arc::clone(&e);
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        if t % 3 == 0 {
                            let other = (Key::Gauge, Measure::Int(i));
                            e.merge(vec![other, (Key::Counter, Measure::Int(1))], i)
                                .unwrap();
                        } else if !e.try_add_counter(1, i).unwrap() {
                            e.merge(counter(1), i).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = e.snapshot().unwrap();
        assert_eq!(s.count, 30_001);
        assert!(s
            .measurements
            .contains(&(Key::Counter, Measure::Int(30_000))));
    }

    #[test]
    fn timestamp_never_goes_back() {
        let e = Entry::new(counter(1), vec![], 100);
        e.merge(counter(1), 50).unwrap();
        assert_eq!(e.timestamp(), 100);
    }

    #[test]
    fn merge_switches_counter_back_to_atomic_when_integer_again() {
        let e = Entry::new(
            vec![(Key::Counter, Measure::Term(b"x".to_vec()))],
            vec![],
            1,
        );
        assert!(!e.try_add_counter(1, 1).unwrap());
        e.merge(counter(2), 1).unwrap();
        assert!(e.try_add_counter(1, 1).unwrap());
        assert_eq!(e.snapshot().unwrap().measurements, counter(3));
    }
}

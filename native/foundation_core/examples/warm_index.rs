//! The warm tier's in-memory index sets (`store::warm::ordered::Ordered`)
//! against the `BTreeSet` they replaced: heap bytes per key and time per
//! insert and per removal of the oldest key, for 1M (system time, id)
//! keys. `cargo run --release -p foundation_core --example warm_index`.
//!
//! Patterns: "appends" (every key newer than the others, as events made
//! from the clock arrive) and "4 writers" (four interleaved ranges of
//! times, as the warm storage bench's events carry); removals take the
//! oldest key, as eviction and `prune_before` do.
use foundation_core::store::warm::ordered::{Key, Ordered};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

trait Set: Default {
    fn add(&mut self, k: Key);
    fn take(&mut self, k: &Key);
}

impl Set for BTreeSet<Key> {
    fn add(&mut self, k: Key) {
        self.insert(k);
    }
    fn take(&mut self, k: &Key) {
        self.remove(k);
    }
}

impl Set for Ordered {
    fn add(&mut self, k: Key) {
        self.insert(k);
    }
    fn take(&mut self, k: &Key) {
        self.remove(k);
    }
}

/// (bytes per key, ns per insert, ns per removal of the oldest).
fn measure<S: Set>(keys: &[Key], oldest_first: &[Key]) -> (f64, f64, f64) {
    let n = keys.len() as f64;
    let before = LIVE.load(Relaxed);
    let t = Instant::now();
    let mut set = S::default();
    for &k in keys {
        set.add(k);
    }
    let insert = t.elapsed().as_nanos() as f64 / n;
    let bytes = LIVE.load(Relaxed).saturating_sub(before) as f64 / n;
    let half = &oldest_first[..oldest_first.len() / 2];
    let t = Instant::now();
    for k in half {
        set.take(k);
    }
    let remove = t.elapsed().as_nanos() as f64 / half.len() as f64;
    (bytes, insert, remove)
}

/// Key `i` of a pattern.
type KeyOf = fn(u64) -> Key;

fn append(i: u64) -> Key {
    // 50 events per millisecond, ids increasing.
    ((i / 50) as i64, i)
}

fn four_writers(i: u64) -> Key {
    let (w, j) = (i % 4, i / 4);
    ((w * 10_000_000 + j) as i64, w * 10_000_000 + j)
}

fn main() {
    let n: u64 = 1_000_000;
    let patterns: [(&str, KeyOf); 2] = [("appends", append), ("4 writers", four_writers)];
    println!("| pattern | set | bytes/key | insert ns | remove oldest ns |");
    println!("|---|---|---|---|---|");
    for (name, key) in &patterns {
        let keys: Vec<Key> = (0..n).map(*key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        // Best of three rounds of each (the machine may be busy).
        let best = |f: &dyn Fn() -> (f64, f64, f64)| {
            (0..3)
                .map(|_| f())
                .fold((f64::MAX, f64::MAX, f64::MAX), |a, b| {
                    (a.0.min(b.0), a.1.min(b.1), a.2.min(b.2))
                })
        };
        let rows = [
            (
                "BTreeSet",
                best(&|| measure::<BTreeSet<Key>>(&keys, &sorted)),
            ),
            ("Ordered", best(&|| measure::<Ordered>(&keys, &sorted))),
        ];
        for (set, (bytes, insert, remove)) in rows {
            println!("| {name} | {set} | {bytes:.1} | {insert:.0} | {remove:.0} |");
        }
    }
}

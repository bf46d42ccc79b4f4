//! Per-put cost of the core store under the drop-in bench's workload
//! (4 shards, 10 types, 1 000 correlation ids, ~160-byte payloads): a
//! store prefilled with 50 000 events takes 40 000 more, one put each; a
//! full store (`max_events` 100 000) evicts one event per put; and a store
//! of 60 000 events is pruned of its older half.
//! `cargo run --release -p foundation_core --example put_mix`.
//! Each figure is the median of several rounds (the machine may be busy).
use foundation_core::store::{NewEvent, Store, StoreConfig};
use std::time::Instant;

#[path = "support/hot.rs"]
mod hot;

fn events(from: u64, n: u64) -> Vec<NewEvent> {
    hot::events(from, n, 160)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds = 7;
    let config = StoreConfig {
        shards: 4,
        ..Default::default()
    };
    let grow = median(
        (0..rounds)
            .map(|_| {
                let store = Store::new(config).unwrap();
                store.put_batch(events(1, 50_000)).unwrap();
                let evs = events(50_001, 40_000);
                let t = Instant::now();
                for e in evs {
                    store.put(e).unwrap();
                }
                t.elapsed().as_nanos() as f64 / 40_000.0
            })
            .collect(),
    );
    let evict = median(
        (0..rounds)
            .map(|_| {
                let store = Store::new(StoreConfig {
                    max_events: 100_000,
                    ..config
                })
                .unwrap();
                store.put_batch(events(1, 100_000)).unwrap();
                let evs = events(100_001, 40_000);
                let t = Instant::now();
                for e in evs {
                    store.put(e).unwrap();
                }
                t.elapsed().as_nanos() as f64 / 40_000.0
            })
            .collect(),
    );
    let prune = median(
        (0..rounds)
            .map(|_| {
                let store = Store::new(config).unwrap();
                store.put_batch(events(1, 50_000)).unwrap();
                let evs = events(50_001, 10_000);
                for e in evs {
                    store.put(e).unwrap();
                }
                let t = Instant::now();
                store.prune_before(25_000).unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    );
    println!("put into 50k: {grow:.0} ns, put evicting at 100k: {evict:.0} ns, prune half of 60k: {prune:.0} us");
}

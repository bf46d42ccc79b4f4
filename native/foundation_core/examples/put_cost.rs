//! Rough per-operation cost of the core store, without the BEAM:
//! `cargo run --release -p foundation_core --example put_cost`.
//! Each figure is the best of several rounds (the machine may be busy).
use foundation_core::store::{NewEvent, Query, Store, StoreConfig};
use std::sync::Arc;
use std::time::Instant;

#[path = "support/hot.rs"]
mod hot;

fn events(n: u64) -> Vec<NewEvent> {
    hot::events(1, n, 200)
}

fn best(rounds: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..rounds).map(|_| f()).fold(f64::MAX, f64::min)
}

fn main() {
    let n = 100_000u64;
    let config = StoreConfig {
        shards: 4,
        ..Default::default()
    };
    let put = best(5, || {
        let store = Store::new(config).unwrap();
        let evs = events(n);
        let t = Instant::now();
        for e in evs {
            store.put(e).unwrap();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    let batch = best(5, || {
        let store = Store::new(config).unwrap();
        let mut evs = events(n).into_iter();
        let t = Instant::now();
        loop {
            let chunk: Vec<NewEvent> = evs.by_ref().take(100).collect();
            if chunk.is_empty() {
                break;
            }
            store.put_batch(chunk).unwrap();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    let store = Store::new(config).unwrap();
    store.put_batch(events(n)).unwrap();
    let get = best(5, || {
        let t = Instant::now();
        for i in 0..100_000u64 {
            store.get(1 + (i * 7919) % n).unwrap();
        }
        t.elapsed().as_nanos() as f64 / 100_000.0
    });
    let q = Query {
        event_type: Some(Arc::from(&b"type_3"[..])),
        time_range: Some((1000, 11_000)),
        limit: Some(100),
        ..Default::default()
    };
    let query = best(5, || {
        let t = Instant::now();
        for _ in 0..1000 {
            store.query(&q).unwrap();
        }
        t.elapsed().as_nanos() as f64 / 1000.0
    });
    let prune = best(5, || {
        let store = Store::new(config).unwrap();
        store.put_batch(events(n)).unwrap();
        let t = Instant::now();
        store.prune_before(n as i64 / 2).unwrap();
        t.elapsed().as_secs_f64() * 1000.0
    });
    println!("put {put:.0} ns, put_batch(100) {batch:.0} ns/event, get {get:.0} ns, query {query:.0} ns, prune half of {n}: {prune:.2} ms");
}

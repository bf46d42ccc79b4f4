//! Rough timing of the core store alone, without the BEAM: 100 000 puts and
//! gets of 300-byte events and 1 000 type + time-range queries, one round each.
//! `cargo run --release -p foundation_core --example store_speed`.

use foundation_core::store::{NewEvent, Query, Store, StoreConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let store = Store::new(StoreConfig::default()).unwrap();
    let payload: Arc<[u8]> = Arc::from(vec![0u8; 300]);
    let types: Vec<Arc<[u8]>> = (0..10)
        .map(|i| Arc::from(format!("type_{i}").as_bytes()))
        .collect();
    let n = 100_000u64;
    let t = Instant::now();
    for i in 1..=n {
        store
            .put(NewEvent {
                id: i,
                event_type: types[(i % 10) as usize].clone(),
                timestamp: i as i64,
                correlation_id: Some(Arc::from(format!("corr-{}", i % 1000).as_bytes())),
                payload: payload.clone(),
            })
            .unwrap();
    }
    println!(
        "put: {:.3} us/op",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for i in 1..=n {
        store.get(i).unwrap();
    }
    println!(
        "get: {:.3} us/op",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let q = Query {
        event_type: Some(types[3].clone()),
        time_range: Some((5000, 15000)),
        limit: Some(100),
        ..Query::default()
    };
    let t = Instant::now();
    for _ in 0..1000 {
        store.query(&q).unwrap();
    }
    println!(
        "query: {:.3} us/op",
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
}

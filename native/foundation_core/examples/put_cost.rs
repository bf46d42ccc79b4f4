use foundation_core::store::{NewEvent, Store, StoreConfig, Query};
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let store = Store::new(StoreConfig { shards: 4, ..Default::default() }).unwrap();
    let types: Vec<Arc<[u8]>> = (0..10).map(|i| Arc::from(format!("type_{i}").as_bytes())).collect();
    let corrs: Vec<Arc<[u8]>> = (0..1000).map(|i| Arc::from(format!("corr-{i}").as_bytes())).collect();
    let n = 200_000u64;
    let evs: Vec<NewEvent> = (1..=n).map(|i| NewEvent { id: i, event_type: types[(i % 10) as usize].clone(), timestamp: i as i64, correlation_id: Some(corrs[(i % 1000) as usize].clone()), payload: Arc::from(vec![7u8; 200]) }).collect();
    let t = Instant::now();
    for e in evs { store.put(e).unwrap(); }
    println!("put: {:.0} ns/op", t.elapsed().as_nanos() as f64 / n as f64);
    let t = Instant::now();
    let mut k = 0;
    for i in 0..100_000u64 { if store.get(1 + (i * 7919) % n).unwrap().is_some() { k += 1; } }
    println!("get: {:.0} ns/op ({k})", t.elapsed().as_nanos() as f64 / 100_000.0);
    let q = Query { event_type: Some(types[3].clone()), time_range: Some((1000, 21000)), limit: Some(100), ..Default::default() };
    let t = Instant::now();
    for _ in 0..1000 { store.query(&q).unwrap(); }
    println!("query unordered: {:.0} ns/op", t.elapsed().as_nanos() as f64 / 1000.0);
    let t = Instant::now();
    store.prune_before(n as i64 / 2).unwrap();
    println!("prune half: {:.2} ms", t.elapsed().as_secs_f64() * 1000.0);
}

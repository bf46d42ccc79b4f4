//! The events the hot-store examples write: 10 types, 1 000 correlation
//! ids, a payload of `payload` bytes.

use foundation_core::store::NewEvent;
use std::sync::Arc;

/// Events `from..from + n` of the workload.
pub fn events(from: u64, n: u64, payload: usize) -> Vec<NewEvent> {
    let types: Vec<Arc<[u8]>> = (0..10)
        .map(|i| Arc::from(format!("type_{i}").as_bytes()))
        .collect();
    let corrs: Vec<Arc<[u8]>> = (0..1000)
        .map(|i| Arc::from(format!("corr-{i}").as_bytes()))
        .collect();
    (from..from + n)
        .map(|i| NewEvent {
            id: i,
            event_type: types[(i % 10) as usize].clone(),
            timestamp: i as i64,
            correlation_id: Some(corrs[(i % 1000) as usize].clone()),
            payload: Arc::from(vec![7u8; payload]),
        })
        .collect()
}

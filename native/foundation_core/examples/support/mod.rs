//! The event the warm-tier examples write: about 300 bytes of body, 10
//! types, 1 000 correlation ids.

use foundation_core::store::warm::{Compression, Warm, WarmConfig, WarmEvent};
use std::path::PathBuf;

/// A body of about 300 bytes that compresses like a small event.
pub fn body(id: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(300);
    for i in 0..30u64 {
        b.extend_from_slice(&(id.wrapping_mul(31).wrapping_add(i)).to_be_bytes()[6..]);
        b.extend_from_slice(b"field-name");
    }
    b
}

/// Event `id` of the examples' workload.
pub fn event(id: u64) -> WarmEvent {
    WarmEvent {
        id,
        event_type: format!("type_{}", id % 10).into_bytes(),
        sys_ts: id as i64,
        correlation_id: Some(format!("corr-{}", id % 1000).into_bytes()),
        body: body(id),
    }
}

/// A fresh tier in a temporary directory named after `name` (journal off,
/// no size bound, background fsync), with that directory.
#[allow(dead_code)]
pub fn open(name: &str, compression: Compression) -> (Warm, PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (warm, _) = Warm::open(&WarmConfig {
        path: dir.clone(),
        max_bytes: 0,
        compression,
        fsync_ms: 1000,
        journal: false,
    })
    .unwrap();
    (warm, dir)
}

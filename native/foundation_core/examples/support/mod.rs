//! The event the warm-tier examples write: about 300 bytes of body, 10
//! types, 1 000 correlation ids.

use foundation_core::store::warm::WarmEvent;

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

//! The asynchronous put path: a bounded crossbeam channel drained by one
//! worker thread into the store. Callers never block: a full queue is
//! refused (and counted) by `Store::put_async`.

use super::{Inner, NewEvent};
use crate::error::{CoreError, CoreResult};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

/// Starts the worker; it stops when the returned sender (owned by the
/// `Store`) is dropped, or when the store itself is gone.
pub(super) fn start(inner: &Arc<Inner>, capacity: usize) -> CoreResult<Sender<NewEvent>> {
    let (tx, rx) = bounded(capacity);
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("event_store_async".into())
        .spawn(move || drain(rx, weak))
        .map_err(|e| CoreError::Internal(format!("cannot start worker: {e}")))?;
    Ok(tx)
}

fn drain(rx: Receiver<NewEvent>, store: Weak<Inner>) {
    for event in rx.iter() {
        let Some(inner) = store.upgrade() else {
            return;
        };
        if inner.put(event).is_err() {
            inner.counters.async_failed.fetch_add(1, Relaxed);
        }
    }
}

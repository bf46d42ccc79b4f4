//! The asynchronous put path: a bounded crossbeam channel drained by one
//! worker thread into the store. Callers never block: a full queue is
//! refused (and counted) by `Store::put_async`. `Store::close` stops and
//! joins the worker.

use super::{Inner, NewEvent, Store};
use crate::error::{CoreError, CoreResult};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

impl Store {
    /// Queues an event for the worker thread. A full queue is counted in
    /// `async_dropped` and reported as `QueueFull`; a closed store is `Closed`.
    pub fn put_async(&self, event: NewEvent) -> CoreResult<()> {
        let queue = self.queue.read().map_err(CoreError::poisoned)?;
        let Some(queue) = queue.as_ref() else {
            return Err(CoreError::Closed);
        };
        match queue.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.inner.counters.async_dropped.fetch_add(1, Relaxed);
                Err(CoreError::QueueFull(queue.capacity().unwrap_or(0)))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.counters.async_failed.fetch_add(1, Relaxed);
                Err(CoreError::Internal("event store worker stopped".into()))
            }
        }
    }

    /// Stops the async worker and drops every event, now rather than when
    /// the store is freed. The worker stores what is already queued, then
    /// exits and is joined, so it is gone when this returns. Idempotent;
    /// counters are kept. Afterwards writes fail with `Closed`.
    pub fn close(&self) -> CoreResult<()> {
        // Dropping the only sender ends the worker's receive loop.
        drop(self.queue.write().map_err(CoreError::poisoned)?.take());
        let worker = self.worker.lock().map_err(CoreError::poisoned)?.take();
        if let Some(worker) = worker {
            worker
                .join()
                .map_err(|_| CoreError::Internal("event store worker panicked".into()))?;
        }
        self.close_subscriptions()?;
        // Set before the shards are emptied under their locks: a `put` that
        // locks a shard afterwards sees it and stores nothing.
        self.inner.closed.store(true, Release);
        self.inner.drop_events()?;
        Ok(())
    }

    /// Events waiting in the queue (0 once closed).
    pub(super) fn queue_len(&self) -> CoreResult<u64> {
        let queue = self.queue.read().map_err(CoreError::poisoned)?;
        Ok(queue.as_ref().map_or(0, |q| q.len() as u64))
    }
}

/// Starts the worker; it stops when the returned sender (owned by the
/// `Store`) is dropped, after storing what is still queued, or when the
/// store itself is gone. `Store::close` joins the returned handle.
pub(super) fn start(
    inner: &Arc<Inner>,
    capacity: usize,
) -> CoreResult<(Sender<NewEvent>, JoinHandle<()>)> {
    let (tx, rx) = bounded(capacity);
    let weak = Arc::downgrade(inner);
    let worker = std::thread::Builder::new()
        .name("event_store_async".into())
        .spawn(move || drain(rx, weak))
        .map_err(|e| CoreError::Internal(format!("cannot start worker: {e}")))?;
    Ok((tx, worker))
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

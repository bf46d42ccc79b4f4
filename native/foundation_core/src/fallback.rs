//! Bounded buffer of opaque items, newest first: where
//! `Events.GracefulDegradation.store_safe/1` keeps events it could not store.
//! It lives outside any process, so it survives the caller's death.

use crate::{CoreError, CoreResult};
use std::collections::VecDeque;
use std::sync::Mutex;

/// A bounded, thread-safe buffer; pushing past `capacity` drops the oldest.
#[derive(Debug)]
pub struct Buffer {
    capacity: usize,
    items: Mutex<VecDeque<Vec<u8>>>,
}

impl Buffer {
    /// An empty buffer holding at most `capacity` items (usable in a `static`).
    pub const fn new(capacity: usize) -> Self {
        Buffer {
            capacity,
            items: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds `item` as the newest; returns the new length.
    pub fn push(&self, item: Vec<u8>) -> CoreResult<usize> {
        let mut items = self.items.lock().map_err(CoreError::poisoned)?;
        items.push_front(item);
        items.truncate(self.capacity);
        Ok(items.len())
    }

    /// Copies of the items, newest first.
    pub fn list(&self) -> CoreResult<Vec<Vec<u8>>> {
        let items = self.items.lock().map_err(CoreError::poisoned)?;
        Ok(items.iter().cloned().collect())
    }

    /// Removes and returns every item, newest first.
    pub fn take(&self) -> CoreResult<Vec<Vec<u8>>> {
        let mut items = self.items.lock().map_err(CoreError::poisoned)?;
        Ok(items.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_first_and_bounds_the_size() {
        let b = Buffer::new(3);
        for i in 0..5u8 {
            b.push(vec![i]).unwrap();
        }
        assert_eq!(b.list().unwrap(), vec![vec![4], vec![3], vec![2]]);
        assert_eq!(b.take().unwrap().len(), 3);
        assert!(b.list().unwrap().is_empty());
    }
}

//! The events of one correlation group in one shard, by (timestamp, id).
//!
//! Most groups are small and many, so a write usually lands in a group
//! that no recent write touched: a small group is a sorted deque (its
//! newest entries, where writes append, sit in one place), a big one an
//! ordered tree (bounded cost for writes anywhere in it). A group becomes
//! a tree past `FEW` members and stays one.

use super::super::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// Members kept in a deque at most (an insert or removal inside it moves
/// at most this many entries).
const FEW: usize = 64;

/// A group member: its (timestamp, id) key and payload.
pub(crate) type Member = ((i64, u64), Bytes);

#[derive(Debug)]
pub(crate) enum Members {
    Few(VecDeque<Member>),
    Many(BTreeMap<(i64, u64), Bytes>),
}

impl Members {
    /// A group of one member.
    pub(crate) fn one(key: (i64, u64), payload: Bytes) -> Members {
        Members::Few(VecDeque::from([(key, payload)]))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Members::Few(few) => few.len(),
            Members::Many(many) => many.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts (or replaces) the member with `key`.
    pub(crate) fn insert(&mut self, key: (i64, u64), payload: Bytes) {
        match self {
            Members::Few(few) => {
                match few.back() {
                    Some((last, _)) if *last >= key => {
                        let at = few.partition_point(|(k, _)| *k < key);
                        match few.get_mut(at) {
                            Some(member) if member.0 == key => member.1 = payload,
                            _ => few.insert(at, (key, payload)),
                        }
                    }
                    _ => few.push_back((key, payload)),
                }
                if few.len() > FEW {
                    *self = Members::Many(few.drain(..).collect());
                }
            }
            Members::Many(many) => {
                many.insert(key, payload);
            }
        }
    }

    /// Removes the member with `key`, if any.
    pub(crate) fn remove(&mut self, key: (i64, u64)) {
        match self {
            // Retention removes the oldest member: no search for it.
            Members::Few(few) if few.front().is_some_and(|(k, _)| *k == key) => {
                few.pop_front();
            }
            Members::Few(few) => {
                let at = few.partition_point(|(k, _)| *k < key);
                if few.get(at).is_some_and(|(k, _)| *k == key) {
                    few.remove(at);
                }
            }
            Members::Many(many) => {
                many.remove(&key);
            }
        }
    }

    /// Removes the members before `cut`, moving them to `garbage`.
    pub(crate) fn cut_before(&mut self, cut: (i64, u64), garbage: &mut Vec<Member>) {
        match self {
            Members::Few(few) => {
                let at = few.partition_point(|(k, _)| *k < cut);
                garbage.extend(few.drain(..at));
            }
            Members::Many(many) => {
                let kept = many.split_off(&cut);
                garbage.extend(std::mem::replace(many, kept));
            }
        }
    }

    /// Removes the members before `cut` that `keep` refuses, moving them to
    /// `garbage`; the others stay, in order.
    pub(crate) fn retain_before(
        &mut self,
        cut: (i64, u64),
        garbage: &mut Vec<Member>,
        keep: impl Fn(&(i64, u64)) -> bool,
    ) {
        match self {
            Members::Few(few) => {
                let at = few.partition_point(|(k, _)| *k < cut);
                let old: Vec<Member> = few.drain(..at).collect();
                for member in old.into_iter().rev() {
                    match keep(&member.0) {
                        true => few.push_front(member),
                        false => garbage.push(member),
                    }
                }
            }
            Members::Many(many) => {
                let gone: Vec<(i64, u64)> = many
                    .range(..cut)
                    .map(|(k, _)| *k)
                    .filter(|k| !keep(k))
                    .collect();
                for key in gone {
                    if let Some(payload) = many.remove(&key) {
                        garbage.push((key, payload));
                    }
                }
            }
        }
    }

    /// The members with keys after `low` (all when `None`), in order.
    pub(crate) fn after<'a>(
        &'a self,
        low: Option<(i64, u64)>,
    ) -> Box<dyn Iterator<Item = (&'a (i64, u64), &'a Bytes)> + 'a> {
        match self {
            Members::Few(few) => {
                let from = low.map_or(0, |low| few.partition_point(|(k, _)| *k <= low));
                Box::new(few.range(from..).map(|(k, p)| (k, p)))
            }
            Members::Many(many) => match low {
                Some(low) => Box::new(
                    many.range((std::ops::Bound::Excluded(low), std::ops::Bound::Unbounded)),
                ),
                None => Box::new(many.iter()),
            },
        }
    }
}

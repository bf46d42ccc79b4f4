//! One shard of the event store: the records it owns and their indexes.
//!
//! A shard is only ever touched under its own `RwLock` (see `mod.rs`), so
//! nothing here synchronizes. Every index is ordered, which is what makes
//! `get`, ranges, correlation groups and pruning O(log n + k).

mod arrivals;
mod chunked;
mod members;

use super::query::{rank, Order, Query};
use super::{Bytes, NewEvent};
use arrivals::Arrivals;
use chunked::{Chunked, Range, Summary};
use members::{Member, Members};
use rustc_hash::FxHashMap as HashMap;
use std::ops::Bound;

/// A stored event: its queryable fields and the encoded event.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) event_type: Bytes,
    pub(crate) timestamp: i64,
    pub(crate) correlation_id: Option<Bytes>,
    pub(crate) payload: Bytes,
    /// Global insertion sequence number (FIFO eviction; its arrival key).
    pub(crate) seq: u64,
}

/// The newest timestamp and the latest arrival among some records: what a
/// prune reads of each chunk of `by_id` rather than its records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Newest {
    timestamp: i64,
    seq: u64,
}

impl Default for Newest {
    fn default() -> Newest {
        Newest {
            timestamp: i64::MIN,
            seq: 0,
        }
    }
}

impl Summary<Record> for Newest {
    fn of(r: &Record) -> Newest {
        Newest {
            timestamp: r.timestamp,
            seq: r.seq,
        }
    }
    fn merge(self, other: Newest) -> Newest {
        Newest {
            timestamp: self.timestamp.max(other.timestamp),
            seq: self.seq.max(other.seq),
        }
    }
    fn outlives(self, r: &Record) -> bool {
        r.timestamp < self.timestamp && r.seq < self.seq
    }
}

/// Ids of one event type, ordered by id and by (timestamp, id), and the
/// type's name shared by its records.
#[derive(Debug)]
struct TypeIndex {
    name: Bytes,
    ids: Chunked<u64, ()>,
    times: Chunked<(i64, u64), Bytes>,
}

/// The events of one correlation id by (timestamp, id), and the id's bytes
/// shared by its records.
#[derive(Debug)]
struct Group {
    name: Bytes,
    events: Members,
}

/// Records and indexes of one shard.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    by_id: Chunked<u64, Record, Newest>,
    /// The time-ordered indexes keep the payloads too (shared `Arc`s), so
    /// a query reads its results without one `by_id` lookup per result.
    by_time: Chunked<(i64, u64), Bytes>,
    by_type: HashMap<Bytes, TypeIndex>,
    /// Correlation groups keep the payloads themselves (shared `Arc`s), so
    /// a group is read without one `by_id` lookup per member.
    by_corr: HashMap<Bytes, Group>,
    /// Insertion order: live records by sequence number, with the time
    /// each was stored (see `arrivals`: appending is a push, and no write
    /// pays for more than one small block of it).
    arrivals: Arrivals,
    /// A prune's cut still to apply to the correlation groups: their
    /// members older than it whose records are gone (see `sweep_groups`).
    /// Until then, group reads skip those members.
    unswept: Option<i64>,
    /// Whether an event older than `unswept` was stored since that prune
    /// (the sweep then checks each old member against its record).
    late: bool,
    /// A prune's cut still to apply to the type indexes (see
    /// `sweep_types`): their entries older than it belong to removed
    /// events unless `types_late`. Until then, type reads skip them.
    types_cut: Option<i64>,
    /// Whether, since that prune, an event older than `types_cut` was
    /// stored or a removed id stored again under its type: entries below
    /// the cut are then checked against their records.
    types_late: bool,
    /// The newest timestamp of the events retention removed (`None`: none
    /// yet); what a disk tier may hold that this shard no longer does.
    retired: Option<i64>,
}

/// What a prune removed, to be freed after the shard locks are released
/// (freeing the events is most of a big prune's cost).
#[derive(Debug, Default)]
pub(crate) struct Garbage {
    pub(crate) records: Vec<Record>,
    pub(crate) by_id: Vec<Chunked<u64, Record, Newest>>,
    pub(crate) times: Vec<Chunked<(i64, u64), Bytes>>,
    pub(crate) ids: Vec<Chunked<u64, ()>>,
    pub(crate) members: Vec<Member>,
}

/// A query hit: its sort key and payload.
pub(crate) type Hit = ((i64, u64), Bytes);

/// A query stream item: sort rank, id and the payload when the index holds it.
pub(crate) type Key<'a> = (u128, u64, Option<&'a Bytes>);

impl Shard {
    /// Number of records held.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Inserts (or overwrites) an event. Returns true when the id was new.
    /// Each index is looked up once (an overwrite's old index entries are
    /// removed first); a type or correlation id seen before shares its
    /// bytes with the records already holding it. Those shared bytes are
    /// the shard's own copy (see `private`). This is the one place where
    /// an event enters the shard.
    pub(crate) fn insert(&mut self, event: NewEvent, seq: u64, now_ms: u64) -> bool {
        let id = event.id;
        let key = (event.timestamp, id);
        if self.unswept.is_some_and(|cut| event.timestamp < cut) {
            self.late = true;
        }
        if self.types_cut.is_some_and(|cut| event.timestamp < cut) {
            self.types_late = true;
        }
        let Shard {
            by_id,
            by_time,
            by_type,
            by_corr,
            arrivals,
            types_late,
            ..
        } = self;
        // The record's place is found once; the other indexes change
        // before it is filled, `by_id` does not.
        let (old, slot) = by_id.find(&id);
        let replaced = match old {
            Some(old) => {
                unindex(id, old, by_time, by_type, by_corr, arrivals);
                true
            }
            None => false,
        };
        by_time.insert(key, event.payload.clone());
        let event_type = match by_type.get_mut(&event.event_type) {
            Some(ti) => {
                // The id is already there for a new record only when a
                // pruned event of that id awaits its type cut.
                if ti.ids.insert(id, ()).is_some() && !replaced {
                    *types_late = true;
                }
                ti.times.insert(key, event.payload.clone());
                ti.name.clone()
            }
            None => {
                let name = private(&event.event_type);
                let ti = TypeIndex {
                    name: name.clone(),
                    ids: Chunked::from_iter([(id, ())]),
                    times: Chunked::from_iter([(key, event.payload.clone())]),
                };
                by_type.insert(name.clone(), ti);
                name
            }
        };
        let correlation_id = event.correlation_id.map(|cid| match by_corr.get_mut(&cid) {
            Some(group) => {
                group.events.insert(key, event.payload.clone());
                group.name.clone()
            }
            None => {
                let name = private(&cid);
                let events = Members::one(key, event.payload.clone());
                let group = Group {
                    name: name.clone(),
                    events,
                };
                by_corr.insert(name.clone(), group);
                name
            }
        });
        let record = Record {
            event_type,
            timestamp: event.timestamp,
            correlation_id,
            payload: event.payload,
            seq,
        };
        drop(by_id.put(slot, id, record));
        arrivals.push(seq, now_ms, id);
        !replaced
    }

    /// Removes a record and its index entries.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Record> {
        let record = self.by_id.remove(&id)?;
        let Shard {
            by_time,
            by_type,
            by_corr,
            arrivals,
            ..
        } = self;
        unindex(id, &record, by_time, by_type, by_corr, arrivals);
        Some(record)
    }

    /// Records with arrival numbers in `start..end`, in arrival order.
    pub(crate) fn arrivals_between(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = (u64, &Record)> + '_ {
        self.arrivals
            .between(start, end)
            .filter_map(|e| self.by_id.get(&e.id).map(|r| (e.seq, r)))
    }

    /// The oldest arrival (sequence number).
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.arrivals.first().map(|e| e.seq)
    }

    /// Removes the oldest arrival if its sequence number is `seq`.
    pub(crate) fn evict_oldest(&mut self, seq: u64) -> bool {
        match self.arrivals.first() {
            Some(e) if e.seq == seq => self.remove_arrival(e.seq, e.id),
            _ => false,
        }
    }

    /// Removes records stored before `cutoff_ms`; returns how many.
    pub(crate) fn expire(&mut self, cutoff_ms: u64) -> usize {
        let mut removed = 0;
        while let Some(e) = self.arrivals.first() {
            if e.at >= cutoff_ms {
                break;
            }
            removed += usize::from(self.remove_arrival(e.seq, e.id));
        }
        removed
    }

    /// Removes the record of arrival `seq` (of `id`) and its arrival, also
    /// if the record is missing or holds another arrival (so retention
    /// always makes progress). Removing the record removes its own arrival.
    fn remove_arrival(&mut self, seq: u64, id: u64) -> bool {
        let removed = self.remove(id);
        if removed.as_ref().is_none_or(|r| r.seq != seq) {
            self.arrivals.remove(seq);
        }
        if let Some(r) = &removed {
            self.retired = self.retired.max(Some(r.timestamp));
        }
        removed.is_some()
    }

    /// The newest timestamp of the events retention removed, if any.
    pub(crate) fn retired(&self) -> Option<i64> {
        self.retired
    }

    /// Removes every record with `timestamp < ts`; returns how many.
    /// The time-ordered sets are cut with `split_before`, which moves whole
    /// chunks and reads no entry but those of the one chunk it splits. The
    /// id- and arrival-keyed sets are cut the same way at the largest
    /// removed id (or arrival): when the part cut off holds exactly as many
    /// entries as were removed, it holds exactly the removed ones (ids and
    /// arrivals usually grow with time). The records are cut first at the
    /// id of the newest removed event and the cut checked on the newest
    /// timestamp of each chunk cut off (no record is read), so no pass
    /// looks for the largest id. Otherwise a cut is undone and the removed
    /// entries are taken out one by one.
    ///
    /// The type indexes are cut later (`sweep_types`, off the caller's
    /// path): a shard holds two sets per type, and cutting them all was
    /// most of the memory a prune touched. Correlation groups are cut later
    /// too (`sweep_groups`) when there are fewer groups than removed
    /// events; otherwise each removed event leaves its group now.
    pub(crate) fn prune_before(&mut self, ts: i64, garbage: &mut Garbage) -> usize {
        self.sweep_groups(&mut garbage.members);
        self.sweep_types(garbage);
        let cut = (ts, 0);
        let old = self.by_time.split_before(&cut);
        if old.is_empty() {
            return 0;
        }
        let removed = old.len();
        // Few groups: cut each group's set; many groups: per-event removal.
        let cut_groups = self.by_corr.len() < removed;
        let by_corr = &mut self.by_corr;
        let unlink = |by_corr: &mut HashMap<Bytes, Group>, id: u64, record: &Record| {
            if let (false, Some(cid)) = (cut_groups, &record.correlation_id) {
                remove_corr(by_corr, cid, (record.timestamp, id));
            }
        };
        let newest = old.last_key_value().map_or(0, |(&(_, id), _)| id);
        let mut max_seq = 0;
        let first_record = garbage.records.len();
        // The chunks' summaries answer for their records: a cut of fresh
        // records reads none of them.
        let records =
            cut_prefix(&mut self.by_id, newest, removed).map(|gone| (gone.summary(), gone));
        match records {
            Some((summary, gone)) if summary.timestamp < ts => {
                max_seq = summary.seq;
                if !cut_groups {
                    for (&id, record) in &gone {
                        unlink(by_corr, id, record);
                    }
                }
                garbage.by_id.push(gone);
            }
            cut => {
                if let Some((_, gone)) = cut {
                    // Every key cut off is below every key kept.
                    self.by_id.prepend(gone);
                }
                for &(_, id) in old.keys() {
                    if let Some(record) = self.by_id.remove(&id) {
                        max_seq = max_seq.max(record.seq);
                        unlink(by_corr, id, &record);
                        garbage.records.push(record);
                    }
                }
            }
        }
        (self.types_cut, self.types_late) = (Some(ts), false);
        if cut_groups {
            (self.unswept, self.late) = (Some(ts), false);
        }
        if !self.arrivals.cut_prefix(max_seq, removed) {
            let seqs: Vec<u64> = match garbage.records.len() > first_record {
                true => garbage.records[first_record..]
                    .iter()
                    .map(|r| r.seq)
                    .collect(),
                false => garbage
                    .by_id
                    .last()
                    .map(|gone| gone.values().map(|r| r.seq).collect())
                    .unwrap_or_default(),
            };
            for &seq in &seqs {
                self.arrivals.remove(seq);
            }
        }
        garbage.times.push(old);
        removed
    }

    /// Whether a prune left a group or type cut to sweep.
    pub(crate) fn unswept(&self) -> bool {
        self.unswept.is_some() || self.types_cut.is_some()
    }

    /// Applies a prune's deferred type cut: the entries older than the cut
    /// whose events are gone leave the type indexes, into `garbage`. With
    /// no such event stored again since the prune, every such entry is
    /// gone: the sets are cut without looking at the records.
    pub(crate) fn sweep_types(&mut self, garbage: &mut Garbage) {
        let Some(ts) = self.types_cut.take() else {
            return;
        };
        let late = std::mem::take(&mut self.types_late);
        let by_id = &self.by_id;
        for ti in self.by_type.values_mut() {
            let mut gone = ti.times.split_before(&(ts, 0));
            if gone.is_empty() {
                continue;
            }
            if late {
                // Entries of events stored again go back, as they were,
                // and an id stored again under this type keeps its entry.
                let kept: Vec<_> = gone
                    .iter()
                    .filter(|(&(t, id), _)| typed_record(by_id, &ti.name, id, Some(t)))
                    .map(|(&k, p)| (k, p.clone()))
                    .collect();
                for (k, p) in kept {
                    gone.remove(&k);
                    ti.times.insert(k, p);
                }
                for &(_, id) in gone.keys() {
                    if !typed_record(by_id, &ti.name, id, None) {
                        ti.ids.remove(&id);
                    }
                }
            } else {
                let max_id = gone.keys().map(|&(_, id)| id).max().unwrap_or(0);
                match cut_prefix(&mut ti.ids, max_id, gone.len()) {
                    Some(ids) => garbage.ids.push(ids),
                    None => gone.keys().for_each(|(_, id)| {
                        ti.ids.remove(id);
                    }),
                }
            }
            garbage.times.push(gone);
        }
        self.by_type.retain(|_, ti| !ti.ids.is_empty());
    }

    /// Whether id `id` of type index `name` belongs to a stored event of
    /// that type: always, unless a deferred type cut left ids of removed
    /// events in the index.
    fn live_in_type(&self, name: &[u8], id: u64) -> bool {
        self.types_cut.is_none() || typed_record(&self.by_id, name, id, None)
    }

    /// Applies a prune's deferred group cut: the members older than the cut
    /// whose records are gone leave their groups, into `garbage` (to be
    /// freed once the shard lock is released). With no event stored older
    /// than the cut since the prune, every such member is gone: the groups
    /// are cut without looking at the records.
    pub(crate) fn sweep_groups(&mut self, garbage: &mut Vec<Member>) {
        let Some(ts) = self.unswept.take() else {
            return;
        };
        let cut = (ts, 0);
        let by_id = &self.by_id;
        for (name, group) in self.by_corr.iter_mut() {
            match self.late {
                false => group.events.cut_before(cut, garbage),
                true => group
                    .events
                    .retain_before(cut, garbage, |&key| stored_member(by_id, name, key)),
            }
        }
        self.by_corr.retain(|_, group| !group.events.is_empty());
        self.late = false;
    }

    /// The stored members of `group` after `low` (all when `None`), in
    /// order: every group read goes through here, so it skips the members
    /// an unswept cut has left (only those older than the cut can be
    /// stale).
    fn members_after<'a>(
        &'a self,
        group: &'a Group,
        low: Option<(i64, u64)>,
    ) -> impl Iterator<Item = (&'a (i64, u64), &'a Bytes)> + 'a {
        group
            .events
            .after(low)
            .filter(move |(&key, _)| match self.unswept {
                Some(cut) if key.0 < cut => stored_member(&self.by_id, &group.name, key),
                _ => true,
            })
    }

    /// The payload of `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Bytes> {
        self.by_id.get(&id).map(|r| r.payload.clone())
    }

    /// Events of one correlation group, by (timestamp, id).
    pub(crate) fn correlation(&self, cid: &[u8]) -> Vec<Hit> {
        match self.by_corr.get(cid) {
            None => Vec::new(),
            Some(group) => self
                .members_after(group, None)
                .map(|(k, p)| (*k, p.clone()))
                .collect(),
        }
    }

    /// One correlation group's events after time-order rank `after`, as
    /// query stream items.
    pub(crate) fn correlation_keys_after<'a>(
        &'a self,
        cid: &[u8],
        after: Option<u128>,
    ) -> Box<dyn Iterator<Item = Key<'a>> + 'a> {
        let Some(group) = self.by_corr.get(cid) else {
            return Box::new(std::iter::empty());
        };
        let low = after.map(|r| time_key(r, false));
        Box::new(
            self.members_after(group, low)
                .map(|(&(ts, id), p)| (rank(Order::Timestamp, ts, id), id, Some(p))),
        )
    }

    /// Size of one correlation group in this shard.
    pub(crate) fn correlation_len(&self, cid: &[u8]) -> usize {
        match (self.by_corr.get(cid), self.unswept) {
            (None, _) => 0,
            (Some(group), None) => group.events.len(),
            (Some(group), Some(_)) => self.members_after(group, None).count(),
        }
    }

    /// Number of events of one type in this shard, and whether that is
    /// exact: a deferred type cut (`sweep_types`) makes it an upper bound.
    pub(crate) fn type_len(&self, event_type: &[u8]) -> (usize, bool) {
        let n = self.by_type.get(event_type).map_or(0, |ti| ti.ids.len());
        (n, self.types_cut.is_none())
    }

    /// This shard's matches for `q` (filters only, no offset/limit) as
    /// `(rank, id, payload if at hand)` in ascending rank, lazily: see
    /// `query::rank`.
    /// Starts after rank `after` when given (a seek in the ordered index,
    /// except for id order over a time range, which filters).
    pub(crate) fn query_keys<'a>(
        &'a self,
        q: &Query,
        after: Option<u128>,
    ) -> Box<dyn Iterator<Item = Key<'a>> + 'a> {
        let type_index = match &q.event_type {
            Some(t) => match self.by_type.get(t.as_ref()) {
                Some(ti) => Some(ti),
                None => return Box::new(std::iter::empty()),
            },
            None => None,
        };
        let times = type_index.map_or(&self.by_time, |ti| &ti.times);
        let order = q.order;
        let ranked =
            move |(&(ts, id), p): (&(i64, u64), &'a Bytes)| (rank(order, ts, id), id, Some(p));
        // A deferred type cut (`sweep_types`) leaves entries of removed
        // events below it: skipped by the time range when no event below
        // it was stored since, else checked one by one.
        // (An id-order scan of a whole type reads the type's ids instead.)
        let by_time_key =
            q.time_range.is_some() || matches!(order, Order::Timestamp | Order::TimestampDesc);
        let (range, check) = match (type_index, self.types_cut) {
            (Some(ti), Some(cut)) if self.types_late => (q.time_range, Some((ti, cut))),
            (Some(_), Some(cut)) if by_time_key => (Some(above(q.time_range, cut)), None),
            _ => (q.time_range, None),
        };
        let live = move |&(&(ts, id), _): &(&(i64, u64), &'a Bytes)| match check {
            Some((ti, cut)) if ts < cut => typed_record(&self.by_id, &ti.name, id, Some(ts)),
            _ => true,
        };
        let from_id = match after {
            Some(r) => Bound::Excluded(r as u64),
            None => Bound::Unbounded,
        };
        match (order, range) {
            (_, Some((start, stop))) if start > stop => Box::new(std::iter::empty()),
            (Order::Timestamp, range) => {
                let low = after.map(|r| time_key(r, false));
                Box::new(
                    time_range_from(times, range, low, None)
                        .filter(live)
                        .map(ranked),
                )
            }
            (Order::TimestampDesc, range) => {
                let high = after.map(|r| time_key(r, true));
                Box::new(
                    time_range_from(times, range, None, high)
                        .rev()
                        .filter(live)
                        .map(ranked),
                )
            }
            (Order::Id | Order::Unordered, Some(range)) => {
                let mut keys: Vec<Key> = time_range(times, Some(range))
                    .filter(live)
                    .map(ranked)
                    .filter(|k| after.is_none_or(|a| k.0 > a))
                    .collect();
                keys.sort_unstable_by_key(|k| k.0);
                Box::new(keys.into_iter())
            }
            (Order::Id | Order::Unordered, None) => match type_index {
                Some(ti) => Box::new(
                    ti.ids
                        .range((from_id, Bound::Unbounded))
                        .filter(move |(&id, ())| self.live_in_type(&ti.name, id))
                        .map(|(&id, ())| (u128::from(id), id, None)),
                ),
                None => Box::new(
                    self.by_id
                        .range((from_id, Bound::Unbounded))
                        .map(|(&id, r)| (u128::from(id), id, Some(&r.payload))),
                ),
            },
        }
    }
}

/// The entries of `map` with keys up to `last`, cut off when there are
/// exactly `count` of them; else `None`, with `map` as it was. The caller
/// knows `count` of its keys are at most `last`, so an equal count means
/// the cut-off part is exactly those.
fn cut_prefix<V, S: Summary<V>>(
    map: &mut Chunked<u64, V, S>,
    last: u64,
    count: usize,
) -> Option<Chunked<u64, V, S>> {
    let gone = match last.checked_add(1) {
        Some(next) => map.split_before(&next),
        None => std::mem::take(map),
    };
    if gone.len() == count {
        return Some(gone);
    }
    map.prepend(gone);
    None
}

/// The shard's own copy of a type name or correlation id, made when it is
/// first indexed. The caller's bytes usually come from a per-thread cache
/// shared by every shard; reference counts kept on them would be written
/// by writers on every core for every event (one cache line passed between
/// cores), while the shard's copy is only touched under the shard's lock.
fn private(name: &Bytes) -> Bytes {
    Bytes::from(&name[..])
}

/// Removes the index entries of `record` (stored under `id`), except its
/// `by_id` entry.
fn unindex(
    id: u64,
    record: &Record,
    by_time: &mut Chunked<(i64, u64), Bytes>,
    by_type: &mut HashMap<Bytes, TypeIndex>,
    by_corr: &mut HashMap<Bytes, Group>,
    arrivals: &mut Arrivals,
) {
    arrivals.remove(record.seq);
    let key = (record.timestamp, id);
    by_time.remove(&key);
    let type_empty = match by_type.get_mut(&record.event_type) {
        Some(ti) => {
            ti.ids.remove(&id);
            ti.times.remove(&key);
            ti.ids.is_empty()
        }
        None => false,
    };
    if type_empty {
        by_type.remove(&record.event_type);
    }
    if let Some(cid) = &record.correlation_id {
        remove_corr(by_corr, cid, key);
    }
}

/// Whether `by_id` holds event `id` of type `name` (stored at `ts`, when
/// given).
fn typed_record(
    by_id: &Chunked<u64, Record, Newest>,
    name: &[u8],
    id: u64,
    ts: Option<i64>,
) -> bool {
    by_id
        .get(&id)
        .is_some_and(|r| *r.event_type == *name && ts.is_none_or(|t| r.timestamp == t))
}

/// Whether `by_id` holds the event `key` in correlation group `name`.
fn stored_member(by_id: &Chunked<u64, Record, Newest>, name: &Bytes, (ts, id): (i64, u64)) -> bool {
    by_id
        .get(&id)
        .is_some_and(|r| r.timestamp == ts && r.correlation_id.as_deref() == Some(&**name))
}

fn remove_corr(by_corr: &mut HashMap<Bytes, Group>, cid: &Bytes, key: (i64, u64)) {
    let empty = match by_corr.get_mut(cid) {
        Some(group) => {
            group.events.remove(key);
            group.events.is_empty()
        }
        None => false,
    };
    if empty {
        by_corr.remove(cid);
    }
}

/// The (timestamp, id) key of a time-order rank (see `query::rank`).
fn time_key(rank: u128, descending: bool) -> (i64, u64) {
    let r = if descending { !rank } else { rank };
    let ts = ((r >> 64) as u64 ^ (1 << 63)) as i64;
    (ts, r as u64)
}

/// `range` (all time when `None`) from `cut` on.
fn above(range: Option<(i64, i64)>, cut: i64) -> (i64, i64) {
    let (start, stop) = range.unwrap_or((i64::MIN, i64::MAX));
    (start.max(cut), stop)
}

/// `time_range`, narrowed to keys after `low` and before `high`.
fn time_range_from(
    set: &Chunked<(i64, u64), Bytes>,
    range: Option<(i64, i64)>,
    low: Option<(i64, u64)>,
    high: Option<(i64, u64)>,
) -> Range<'_, (i64, u64), Bytes> {
    let (start, stop) = range.unwrap_or((i64::MIN, i64::MAX));
    let (lower, open_low) = match low {
        Some(k) if k >= (start, 0) => (k, true),
        _ => ((start, 0), false),
    };
    let (upper, open_high) = match high {
        Some(k) if k <= (stop, u64::MAX) => (k, true),
        _ => ((stop, u64::MAX), false),
    };
    let bound = |k, open| match open {
        true => Bound::Excluded(k),
        false => Bound::Included(k),
    };
    set.range((bound(lower, open_low), bound(upper, open_high)))
}

fn time_range(
    set: &Chunked<(i64, u64), Bytes>,
    range: Option<(i64, i64)>,
) -> Range<'_, (i64, u64), Bytes> {
    match range {
        Some((start, stop)) => set.range((
            Bound::Included((start, 0)),
            Bound::Included((stop, u64::MAX)),
        )),
        None => set.range(..),
    }
}

#[cfg(test)]
mod tests;

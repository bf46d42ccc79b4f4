//! A prune's deferred group and type cuts: reads before and after the
//! sweeps.

use super::*;
use std::sync::Arc;

fn ev(id: u64, ts: i64, cid: &str) -> NewEvent {
    NewEvent {
        id,
        event_type: Arc::from(b"t".as_slice()),
        timestamp: ts,
        correlation_id: Some(Arc::from(cid.as_bytes())),
        payload: Arc::from(id.to_be_bytes().as_slice()),
    }
}

/// A shard holding `event(id)` for ids `1..=n`, stored in id order.
fn filled(n: u64, event: impl Fn(u64) -> NewEvent) -> Shard {
    let mut shard = Shard::default();
    for id in 1..=n {
        shard.insert(event(id), id, 0);
    }
    shard
}

fn group(shard: &Shard, cid: &str) -> Vec<u64> {
    let hits = shard.correlation(cid.as_bytes());
    assert_eq!(shard.correlation_len(cid.as_bytes()), hits.len());
    hits.into_iter().map(|((_, id), _)| id).collect()
}

/// Ids 1..=10 at their own timestamps in group "g", then a prune of the
/// first five (one group, five removed: the group cut is deferred).
fn pruned() -> Shard {
    let mut shard = filled(10, |id| ev(id, id as i64, "g"));
    let mut garbage = Garbage::default();
    assert_eq!(shard.prune_before(6, &mut garbage), 5);
    assert!(shard.unswept());
    shard
}

#[test]
fn reads_skip_pruned_members_before_the_sweep_and_the_sweep_removes_them() {
    let mut shard = pruned();
    assert_eq!(group(&shard, "g"), vec![6, 7, 8, 9, 10]);
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert!(shard.unswept.is_none());
    assert_eq!(gone.len(), 5);
    assert_eq!(group(&shard, "g"), vec![6, 7, 8, 9, 10]);
}

#[test]
fn an_event_older_than_the_cut_stored_after_the_prune_stays() {
    let mut shard = pruned();
    shard.insert(ev(100, 2, "g"), 11, 0);
    assert_eq!(group(&shard, "g"), vec![100, 6, 7, 8, 9, 10]);
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert_eq!(gone.len(), 5);
    assert_eq!(group(&shard, "g"), vec![100, 6, 7, 8, 9, 10]);
}

#[test]
fn a_pruned_id_stored_again_in_another_group_is_read_there_only() {
    let mut shard = pruned();
    // Same id and timestamp as the pruned event 1, another group.
    shard.insert(ev(1, 1, "h"), 11, 0);
    assert_eq!(group(&shard, "g"), vec![6, 7, 8, 9, 10]);
    assert_eq!(group(&shard, "h"), vec![1]);
    // And stored again in its old group: read once.
    shard.insert(ev(2, 2, "g"), 12, 0);
    assert_eq!(group(&shard, "g"), vec![2, 6, 7, 8, 9, 10]);
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert_eq!(gone.len(), 4);
    assert_eq!(group(&shard, "g"), vec![2, 6, 7, 8, 9, 10]);
    assert_eq!(group(&shard, "h"), vec![1]);
}

#[test]
fn a_second_prune_applies_the_first_cut_before_its_own() {
    let mut shard = pruned();
    shard.insert(ev(100, 3, "g"), 11, 0);
    let mut garbage = Garbage::default();
    assert_eq!(shard.prune_before(8, &mut garbage), 3);
    assert_eq!(garbage.members.len(), 5);
    assert_eq!(group(&shard, "g"), vec![8, 9, 10]);
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert_eq!(gone.len(), 3);
    assert_eq!(group(&shard, "g"), vec![8, 9, 10]);
}

#[test]
fn a_group_whose_members_are_all_pruned_is_dropped_by_the_sweep() {
    let mut shard = filled(6, |id| {
        let cid = if id <= 2 { "old" } else { "new" };
        ev(id, id as i64, cid)
    });
    let mut garbage = Garbage::default();
    // Two groups, three removed: deferred.
    assert_eq!(shard.prune_before(4, &mut garbage), 3);
    assert_eq!(group(&shard, "old"), Vec::<u64>::new());
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert!(!shard.by_corr.contains_key(b"old".as_slice()));
    assert_eq!(group(&shard, "new"), vec![4, 5, 6]);
}

fn typed(id: u64, ts: i64, event_type: &str) -> NewEvent {
    NewEvent {
        event_type: Arc::from(event_type.as_bytes()),
        correlation_id: None,
        ..ev(id, ts, "g")
    }
}

/// Ids of type `t` in each order a query can ask for, checked against one
/// another: by id (the type's id set), by time both ways, and by id over
/// all time (the type's time set).
fn of_type(shard: &Shard, t: &str) -> Vec<u64> {
    let query = |order, time_range| Query {
        event_type: Some(Arc::from(t.as_bytes())),
        time_range,
        order,
        offset: 0,
        limit: None,
    };
    let ids = |q: Query| -> Vec<u64> { shard.query_keys(&q, None).map(|(_, id, _)| id).collect() };
    let by_id = ids(query(Order::Id, None));
    let by_time = ids(query(Order::Timestamp, None));
    let mut desc = ids(query(Order::TimestampDesc, None));
    desc.reverse();
    assert_eq!(by_time, desc);
    let mut sorted = by_time.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, by_id);
    assert_eq!(ids(query(Order::Id, Some((i64::MIN, i64::MAX)))), by_id);
    let (len, exact) = shard.type_len(t.as_bytes());
    assert!(len >= by_id.len());
    if exact {
        assert_eq!(len, by_id.len());
    }
    by_time
}

/// Ids 1..=10 at their own timestamps, types alternating "a" and "b",
/// then a prune of the first five: the type cut is deferred.
fn pruned_types() -> Shard {
    let mut shard = filled(10, |id| {
        let t = if id % 2 == 1 { "a" } else { "b" };
        typed(id, id as i64, t)
    });
    let mut garbage = Garbage::default();
    assert_eq!(shard.prune_before(6, &mut garbage), 5);
    assert!(garbage.times.len() == 1 && garbage.ids.is_empty());
    assert!(shard.types_cut.is_some());
    assert!(!shard.type_len(b"a").1);
    shard
}

fn sweep_types(shard: &mut Shard) -> Garbage {
    let mut gone = Garbage::default();
    shard.sweep_types(&mut gone);
    assert!(shard.types_cut.is_none());
    assert!(shard.type_len(b"a").1);
    gone
}

#[test]
fn type_reads_skip_pruned_entries_before_the_sweep_and_the_sweep_removes_them() {
    let mut shard = pruned_types();
    assert_eq!(of_type(&shard, "a"), vec![7, 9]);
    assert_eq!(of_type(&shard, "b"), vec![6, 8, 10]);
    let gone = sweep_types(&mut shard);
    let cut: usize = gone.times.iter().map(|t| t.len()).sum();
    assert_eq!(cut, 5);
    assert_eq!(shard.type_len(b"a"), (2, true));
    assert_eq!(of_type(&shard, "a"), vec![7, 9]);
    assert_eq!(of_type(&shard, "b"), vec![6, 8, 10]);
}

#[test]
fn an_event_older_than_the_type_cut_stored_after_the_prune_stays() {
    let mut shard = pruned_types();
    shard.insert(typed(100, 2, "a"), 11, 0);
    assert_eq!(of_type(&shard, "a"), vec![100, 7, 9]);
    sweep_types(&mut shard);
    assert_eq!(of_type(&shard, "a"), vec![100, 7, 9]);
    assert_eq!(of_type(&shard, "b"), vec![6, 8, 10]);
}

#[test]
fn a_pruned_id_stored_again_is_read_under_its_new_type_only() {
    let mut shard = pruned_types();
    // Pruned id 1 (type "a") again as "b", after the cut; pruned id 3
    // again as "a", after the cut; pruned id 2 (type "b") again as "b",
    // at its old timestamp.
    shard.insert(typed(1, 20, "b"), 11, 0);
    shard.insert(typed(3, 21, "a"), 12, 0);
    shard.insert(typed(2, 2, "b"), 13, 0);
    assert_eq!(of_type(&shard, "a"), vec![7, 9, 3]);
    assert_eq!(of_type(&shard, "b"), vec![2, 6, 8, 10, 1]);
    sweep_types(&mut shard);
    assert_eq!(of_type(&shard, "a"), vec![7, 9, 3]);
    assert_eq!(of_type(&shard, "b"), vec![2, 6, 8, 10, 1]);
}

#[test]
fn a_pruned_id_stored_again_under_its_type_after_the_cut_keeps_its_id_entry() {
    let mut shard = pruned_types();
    // No event older than the cut: only the id set knows it came back.
    shard.insert(typed(5, 30, "a"), 11, 0);
    assert!(shard.types_late);
    assert_eq!(of_type(&shard, "a"), vec![7, 9, 5]);
    sweep_types(&mut shard);
    assert_eq!(of_type(&shard, "a"), vec![7, 9, 5]);
}

#[test]
fn a_second_prune_applies_the_first_type_cut_before_its_own() {
    let mut shard = pruned_types();
    let mut garbage = Garbage::default();
    assert_eq!(shard.prune_before(9, &mut garbage), 3);
    let swept: usize = garbage.times.iter().map(|t| t.len()).sum();
    // The first cut's five entries, and the by-time cut of the second.
    assert_eq!(swept, 5 + 3);
    assert_eq!(of_type(&shard, "a"), vec![9]);
    assert_eq!(of_type(&shard, "b"), vec![10]);
    sweep_types(&mut shard);
    assert_eq!(of_type(&shard, "a"), vec![9]);
    assert_eq!(of_type(&shard, "b"), vec![10]);
}

#[test]
fn a_type_whose_events_are_all_pruned_is_dropped_by_the_sweep() {
    let mut shard = filled(6, |id| {
        let t = if id <= 2 { "old" } else { "new" };
        typed(id, id as i64, t)
    });
    let mut garbage = Garbage::default();
    assert_eq!(shard.prune_before(4, &mut garbage), 3);
    assert_eq!(of_type(&shard, "old"), Vec::<u64>::new());
    shard.sweep_types(&mut Garbage::default());
    assert!(!shard.by_type.contains_key(b"old".as_slice()));
    assert_eq!(of_type(&shard, "new"), vec![4, 5, 6]);
}

//! A prune's deferred group cut: reads before and after the sweep.

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

fn group(shard: &Shard, cid: &str) -> Vec<u64> {
    let hits = shard.correlation(cid.as_bytes());
    assert_eq!(shard.correlation_len(cid.as_bytes()), hits.len());
    hits.into_iter().map(|((_, id), _)| id).collect()
}

/// Ids 1..=10 at their own timestamps in group "g", then a prune of the
/// first five (one group, five removed: the group cut is deferred).
fn pruned() -> Shard {
    let mut shard = Shard::default();
    for id in 1..=10 {
        shard.insert(ev(id, id as i64, "g"), id, 0);
    }
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
    assert!(!shard.unswept());
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
    let mut shard = Shard::default();
    for id in 1..=6 {
        let cid = if id <= 2 { "old" } else { "new" };
        shard.insert(ev(id, id as i64, cid), id, 0);
    }
    let mut garbage = Garbage::default();
    // Two groups, three removed: deferred.
    assert_eq!(shard.prune_before(4, &mut garbage), 3);
    assert_eq!(group(&shard, "old"), Vec::<u64>::new());
    let mut gone = Vec::new();
    shard.sweep_groups(&mut gone);
    assert!(!shard.by_corr.contains_key(b"old".as_slice()));
    assert_eq!(group(&shard, "new"), vec![4, 5, 6]);
}

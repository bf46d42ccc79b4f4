//! Unit tests of the store (the property suite is in tests/store_props.rs).

use super::*;
use std::collections::BTreeMap;

fn ev(id: u64, ty: &str, ts: i64, cid: Option<&str>) -> NewEvent {
    NewEvent {
        id,
        event_type: Arc::from(ty.as_bytes()),
        timestamp: ts,
        correlation_id: cid.map(|c| Arc::from(c.as_bytes())),
        payload: Arc::from(id.to_be_bytes().as_slice()),
    }
}

fn ids(v: Vec<Bytes>) -> Vec<u64> {
    v.iter()
        .map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap()))
        .collect()
}

fn store(max_events: usize) -> Store {
    Store::new(StoreConfig {
        max_events,
        ..StoreConfig::default()
    })
    .unwrap()
}

fn sharded(shards: usize) -> Store {
    Store::new(StoreConfig {
        shards,
        ..StoreConfig::default()
    })
    .unwrap()
}

#[test]
fn put_get_and_overwrite_cleans_indexes() {
    let s = store(0);
    assert_eq!(s.put(ev(7, "a", 10, Some("c"))).unwrap(), 7);
    assert_eq!(ids(vec![s.get(7).unwrap().unwrap()]), vec![7]);
    s.put(ev(7, "b", 20, None)).unwrap();
    assert!(s.get_by_correlation(b"c").unwrap().is_empty());
    let q = Query {
        event_type: Some(Arc::from(b"a".as_slice())),
        ..Query::default()
    };
    assert!(s.query(&q).unwrap().is_empty());
    let st = s.stats().unwrap();
    assert_eq!((st.current_event_count, st.events_stored), (1, 2));
}

#[test]
fn query_order_offset_limit() {
    let s = store(0);
    for id in 1..=10 {
        s.put(ev(id, "t", 100 - id as i64, None)).unwrap();
    }
    let q = Query {
        offset: 2,
        limit: Some(3),
        ..Query::default()
    };
    assert_eq!(ids(s.query(&q).unwrap()), vec![3, 4, 5]);
    let q = Query {
        order: Order::Timestamp,
        limit: Some(2),
        time_range: Some((91, 95)),
        ..Query::default()
    };
    assert_eq!(ids(s.query(&q).unwrap()), vec![9, 8]);
    let q = Query {
        time_range: Some((95, 91)),
        ..Query::default()
    };
    assert!(s.query(&q).unwrap().is_empty());
}

#[test]
fn prune_is_strict() {
    let s = store(0);
    for id in 1..=10 {
        s.put(ev(id, "t", id as i64, None)).unwrap();
    }
    assert_eq!(s.prune_before(4).unwrap(), 3);
    assert_eq!(s.stats().unwrap().current_event_count, 7);
    assert_eq!(s.stats().unwrap().events_pruned, 3);
}

#[test]
fn retention_keeps_the_newest_timestamp_it_removed() {
    let s = store(2);
    assert_eq!(s.retired_newest().unwrap(), None);
    // The oldest arrival goes first, whatever its timestamp.
    s.put(ev(1, "t", 50, None)).unwrap();
    s.put(ev(2, "t", 5, None)).unwrap();
    s.put(ev(3, "t", 7, None)).unwrap();
    assert_eq!(s.retired_newest().unwrap(), Some(50));
    s.put(ev(4, "t", 9, None)).unwrap();
    assert_eq!(s.retired_newest().unwrap(), Some(50));
    // A prune is not retention: both tiers drop what it removes.
    s.prune_before(8).unwrap();
    assert_eq!(s.retired_newest().unwrap(), Some(50));
    s.clear().unwrap();
    assert_eq!(s.retired_newest().unwrap(), None);
}

#[test]
fn max_events_evicts_oldest_stored() {
    let s = store(5);
    for id in 1..=12 {
        s.put(ev(id, "t", -(id as i64), None)).unwrap();
    }
    let all = ids(s.query(&Query::default()).unwrap());
    assert_eq!(all, vec![8, 9, 10, 11, 12]);
    assert_eq!(s.stats().unwrap().evicted_max_events, 7);
}

/// Many writers passing `max_events` at once: each leaves the store at the
/// limit (the count, the counters and what a query returns agree), and
/// what is kept is the newest arrivals up to the few a writer may skip
/// while another holds their shard.
#[test]
fn concurrent_writers_over_the_limit_keep_it_exactly() {
    let (max, writers, per) = (1_000usize, 8u64, 5_000u64);
    let s = Arc::new(
        Store::new(StoreConfig {
            shards: 8,
            max_events: max,
            ..StoreConfig::default()
        })
        .unwrap(),
    );
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..per {
                    let id = 1 + w * per + i;
                    s.put(ev(id, "t", i as i64, None)).unwrap();
                    assert!(s.stats().unwrap().current_event_count <= max as u64 + writers);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = s.stats().unwrap();
    let total = writers * per;
    assert_eq!(st.current_event_count, max as u64);
    assert_eq!(st.evicted_max_events, total - max as u64);
    let kept = ids(s.query(&Query::default()).unwrap());
    assert_eq!(kept.len(), max);
    // Each writer's own arrivals are in id order: what is kept of a writer
    // is a suffix of its ids, up to the skipped few.
    for w in 0..writers {
        let mine: Vec<u64> = kept
            .iter()
            .copied()
            .filter(|id| (id - 1) / per == w)
            .collect();
        if let Some(&first) = mine.first() {
            let suffix = (first..=w * per + per).count();
            assert!(
                suffix - mine.len() <= 64,
                "writer {w} kept {} of its last {suffix}",
                mine.len()
            );
        }
    }
}

/// A writer over the limit whose oldest arrival's shard another writer
/// holds evicts the next oldest instead, and waits for the oldest's shard
/// when the next one is held too, or when the holder is not a writer (a
/// read here): then eviction stays exactly oldest first.
#[test]
fn eviction_skips_a_shard_another_writer_holds_and_waits_for_other_holders() {
    let s = Arc::new(
        Store::new(StoreConfig {
            shards: 4,
            max_events: 6,
            ..StoreConfig::default()
        })
        .unwrap(),
    );
    // Ids a block of shard ids apart, so they spread over the shards.
    let ids: Vec<u64> = (1..=6).map(|i| i * SHARD_BLOCK).collect();
    for &id in &ids {
        s.put(ev(id, "t", id as i64, None)).unwrap();
    }
    let shard_of = |id: u64| s.inner.shard_index(id);
    let count = |s: &Store| s.stats().unwrap().current_event_count;
    let stored = |s: &Store, id: u64| s.get(id).unwrap().is_some();
    // The first id stored in a shard holds that shard's oldest arrival.
    let first_in = |s: &Store, shard: usize| {
        ids.iter()
            .copied()
            .find(|&id| shard_of(id) == shard && stored(s, id))
    };
    let outside = |held: [usize; 2]| {
        (100..)
            .map(|block| block * SHARD_BLOCK)
            .find(|&id| !held.contains(&shard_of(id)))
            .unwrap()
    };
    let put_from_thread = |id: u64| {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.put(ev(id, "t", id as i64, None)).unwrap())
    };
    let wait = std::time::Duration::from_millis(50);

    // Held by a writer: the next oldest goes.
    let ((oldest, _), next) = s.inner.two_oldest().unwrap();
    let (next, _) = next.unwrap();
    let (oldest_id, next_id) = (first_in(&s, oldest).unwrap(), first_in(&s, next).unwrap());
    assert_eq!(oldest_id, ids[0]);
    {
        let _held = s
            .inner
            .writing(oldest, s.inner.shards[oldest].write().unwrap());
        put_from_thread(outside([oldest, next])).join().unwrap();
    }
    assert_eq!(count(&s), 6);
    assert!(stored(&s, oldest_id), "the held shard's oldest stays");
    assert!(!stored(&s, next_id), "the next oldest goes");

    // Both held by writers: the writer waits for the oldest's shard.
    let ((oldest, _), next) = s.inner.two_oldest().unwrap();
    let (next, _) = next.unwrap();
    let oldest_id = first_in(&s, oldest).unwrap();
    let held_oldest = s
        .inner
        .writing(oldest, s.inner.shards[oldest].write().unwrap());
    let held_next = s.inner.writing(next, s.inner.shards[next].write().unwrap());
    let writer = put_from_thread(outside([oldest, next]));
    std::thread::sleep(wait);
    assert!(!writer.is_finished(), "both shards held: the writer waits");
    assert_eq!(count(&s), 7);
    drop(held_oldest);
    writer.join().unwrap();
    drop(held_next);
    assert_eq!(count(&s), 6);
    assert!(!stored(&s, oldest_id));

    // Held by a reader: the writer waits, and the oldest goes.
    let ((oldest, _), next) = s.inner.two_oldest().unwrap();
    let (next, _) = next.unwrap();
    let (oldest_id, next_id) = (first_in(&s, oldest).unwrap(), first_in(&s, next).unwrap());
    let reading = s.inner.shards[oldest].read().unwrap();
    let writer = put_from_thread(outside([oldest, next]));
    std::thread::sleep(wait);
    assert!(
        !writer.is_finished(),
        "a reader holds the oldest: the writer waits"
    );
    drop(reading);
    writer.join().unwrap();
    assert_eq!(count(&s), 6);
    assert!(!stored(&s, oldest_id));
    assert!(stored(&s, next_id));
}

/// A spinning write lock is taken once its holder lets go, whether that
/// is within the spin or after it (the writer then sleeps in the lock),
/// and reports a poisoned lock.
#[test]
fn write_spinning_waits_for_the_holder_and_reports_poison() {
    for hold in [
        std::time::Duration::from_micros(1),
        std::time::Duration::from_millis(20),
    ] {
        let lock = Arc::new(RwLock::new(0u32));
        let held = Arc::new(std::sync::Barrier::new(2));
        let holder = {
            let (lock, held) = (Arc::clone(&lock), Arc::clone(&held));
            std::thread::spawn(move || {
                let mut guard = lock.write().unwrap();
                held.wait();
                std::thread::sleep(hold);
                *guard += 1;
            })
        };
        held.wait();
        *write_spinning(&lock).unwrap() += 1;
        holder.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 2, "held for {hold:?}");
    }
    let lock = Arc::new(RwLock::new(0u32));
    let poisoner = Arc::clone(&lock);
    let _ = std::thread::spawn(move || {
        let _guard = poisoner.write().unwrap();
        panic!("poison the lock");
    })
    .join();
    assert!(write_spinning(&lock).is_err());
}

#[test]
fn two_oldest_reads_the_tallies() {
    let s = sharded(4);
    assert_eq!(s.inner.two_oldest(), None);
    for (index, seq) in [(2, 9), (0, 4), (3, 7)] {
        s.inner.tallies[index].oldest.store(seq, Relaxed);
    }
    assert_eq!(s.inner.two_oldest(), Some(((0, 4), Some((3, 7)))));
    s.inner.tallies[0].oldest.store(NO_ARRIVAL, Relaxed);
    s.inner.tallies[3].oldest.store(NO_ARRIVAL, Relaxed);
    assert_eq!(s.inner.two_oldest(), Some(((2, 9), None)));
}

/// Retention evicts in arrival order across shards whatever the writes:
/// single puts, batches, overwrites (a new arrival) and prunes, checked
/// against a model after every step; the stored count and largest id
/// follow too.
#[test]
fn eviction_follows_arrivals_across_shards_and_writes() {
    let max = 40;
    let s = Store::new(StoreConfig {
        shards: 8,
        max_events: max,
        ..StoreConfig::default()
    })
    .unwrap();
    let mut model: std::collections::VecDeque<u64> = Default::default();
    let arrive = |model: &mut std::collections::VecDeque<u64>, id: u64| {
        model.retain(|&m| m != id);
        model.push_back(id);
        while model.len() > max {
            model.pop_front();
        }
    };
    let (mut stored, mut max_id) = (0u64, 0u64);
    for step in 0..300u64 {
        match step % 5 {
            0..=1 => {
                let id = 1 + (step * 7919) % 120;
                s.put(ev(id, "t", id as i64, Some("g"))).unwrap();
                arrive(&mut model, id);
                (stored, max_id) = (stored + 1, max_id.max(id));
            }
            2..=3 => {
                let batch: Vec<u64> = (0..7).map(|i| 1 + (step * 31 + i * 17) % 120).collect();
                s.put_batch(
                    batch
                        .iter()
                        .map(|&id| ev(id, "t", id as i64, None))
                        .collect(),
                )
                .unwrap();
                for &id in &batch {
                    arrive(&mut model, id);
                }
                stored += batch.len() as u64;
                max_id = max_id.max(batch.iter().copied().max().unwrap_or(0));
            }
            _ => {
                let cut = (step % 13) as i64;
                s.prune_before(cut).unwrap();
                model.retain(|&id| id as i64 >= cut);
            }
        }
        let mut want: Vec<u64> = model.iter().copied().collect();
        want.sort_unstable();
        let all = Query {
            order: Order::Id,
            ..Query::default()
        };
        assert_eq!(ids(s.query(&all).unwrap()), want, "step {step}");
        let stats = s.stats().unwrap();
        assert_eq!(stats.current_event_count, want.len() as u64);
        assert_eq!((stats.events_stored, stats.max_id), (stored, max_id));
    }
    s.clear().unwrap();
    assert_eq!(s.stats().unwrap().max_id, 0);
    s.put(ev(5, "t", 5, None)).unwrap();
    assert_eq!(ids(s.query(&Query::default()).unwrap()), vec![5]);
}

/// A prune whose removed events are as many as the ids up to the newest
/// removed one, but not the same events: nothing else is removed, and
/// every index still agrees.
#[test]
fn prune_with_ids_out_of_time_order_removes_only_old_events() {
    let s = sharded(1);
    // Removed: 5 (t=0) and 2 (t=1); kept: 1 (t=9) and 7 (t=8).
    for (id, ts) in [(1, 9), (5, 0), (2, 1), (7, 8)] {
        s.put(ev(id, "t", ts, Some("g"))).unwrap();
    }
    assert_eq!(s.prune_before(5).unwrap(), 2);
    let by_id = Query {
        order: Order::Id,
        ..Query::default()
    };
    let typed = Query {
        event_type: Some(Arc::from(b"t".as_slice())),
        ..by_id.clone()
    };
    assert_eq!(ids(s.query(&by_id).unwrap()), vec![1, 7]);
    assert_eq!(ids(s.query(&typed).unwrap()), vec![1, 7]);
    assert_eq!(ids(s.get_by_correlation(b"g").unwrap()), vec![7, 1]);
    assert!(s.get(5).unwrap().is_none() && s.get(1).unwrap().is_some());
    // Arrival order is intact: the oldest kept arrival (1) goes first.
    s.set_limits(2, 0);
    s.put(ev(9, "t", 9, None)).unwrap();
    assert_eq!(ids(s.query(&by_id).unwrap()), vec![7, 9]);
}

#[test]
fn max_age_expires() {
    let s = store(0);
    s.set_limits(0, 1);
    s.put(ev(1, "t", 0, None)).unwrap();
    let stored = super::clock::coarse_ms();
    // The store's clock moves by timer ticks (up to 10 ms on some kernels):
    // wait until it has passed the 1 ms age.
    while super::clock::coarse_ms() < stored + 2 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(s.expire().unwrap(), 1);
    assert_eq!(s.stats().unwrap().evicted_max_age, 1);
    assert!(s.get(1).unwrap().is_none());
}

#[test]
fn async_puts_arrive_and_full_queue_counts() {
    let s = Store::new(StoreConfig {
        async_capacity: 1,
        ..StoreConfig::default()
    })
    .unwrap();
    let mut dropped = 0;
    for id in 1..=1000 {
        if let Err(CoreError::QueueFull(1)) = s.put_async(ev(id, "t", 0, None)) {
            dropped += 1;
        }
    }
    for _ in 0..1000 {
        if s.stats().unwrap().async_queue_len == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(std::time::Duration::from_millis(10));
    let st = s.stats().unwrap();
    assert_eq!(st.async_dropped, dropped);
    assert_eq!(st.current_event_count + dropped, 1000);
}

#[test]
fn clear_resets() {
    let s = store(0);
    s.put(ev(1, "t", 0, Some("x"))).unwrap();
    s.clear().unwrap();
    assert_eq!(s.stats().unwrap(), StoreStats::default());
    assert!(s.get_by_correlation(b"x").unwrap().is_empty());
}

#[test]
fn concurrent_writers_and_readers() {
    let s = Arc::new(store(0));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    let cid = format!("w{w}");
                    s.put(ev(w * 10_000 + i + 1, "t", i as i64, Some(&cid)))
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let q = Query {
                        order: Order::Timestamp,
                        limit: Some(10),
                        ..Query::default()
                    };
                    assert!(s.query(&q).unwrap().len() <= 10);
                    s.get_by_correlation(b"w1").unwrap();
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }
    assert_eq!(s.stats().unwrap().current_event_count, 4000);
    for w in 0..8u64 {
        let got = ids(s.get_by_correlation(format!("w{w}").as_bytes()).unwrap());
        let want: Vec<u64> = (0..500).map(|i| w * 10_000 + i + 1).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn eviction_after_prune_stays_fifo() {
    let s = store(10);
    for id in 1..=10 {
        s.put(ev(id, "t", id as i64, None)).unwrap();
    }
    assert_eq!(s.prune_before(6).unwrap(), 5);
    for id in 11..=20 {
        s.put(ev(id, "t", id as i64, None)).unwrap();
    }
    assert_eq!(
        ids(s.query(&Query::default()).unwrap()),
        (11..=20).collect::<Vec<_>>()
    );
}

#[test]
fn close_drains_queue_joins_worker_and_frees_events() {
    let s = Store::new(StoreConfig {
        async_capacity: 10_000,
        ..StoreConfig::default()
    })
    .unwrap();
    s.put(ev(1, "t", 0, Some("c"))).unwrap();
    for id in 2..=5000 {
        s.put_async(ev(id, "t", 0, None)).unwrap();
    }
    s.close().unwrap();
    // Joined: the worker thread has exited and its handle is gone.
    assert!(s.worker.lock().unwrap().is_none());
    let st = s.stats().unwrap();
    // Every queued event was stored before the worker exited.
    assert_eq!(st.events_stored, 5000);
    assert_eq!((st.current_event_count, st.async_queue_len), (0, 0));
    assert!(s.get(1).unwrap().is_none());
    assert!(s.get_by_correlation(b"c").unwrap().is_empty());
}

#[test]
fn writes_after_close_fail_and_close_is_idempotent() {
    let s = store(0);
    s.close().unwrap();
    s.close().unwrap();
    assert_eq!(s.put_async(ev(1, "t", 0, None)), Err(CoreError::Closed));
    assert_eq!(s.put(ev(2, "t", 0, None)), Err(CoreError::Closed));
    assert_eq!(
        s.put_batch(vec![ev(3, "t", 0, None)]),
        Err(CoreError::Closed)
    );
    assert!(s.query(&Query::default()).unwrap().is_empty());
    assert_eq!(s.prune_before(10).unwrap(), 0);
    s.clear().unwrap();
    assert_eq!(s.stats().unwrap(), StoreStats::default());
}

#[test]
fn dropping_an_unclosed_store_stops_its_worker() {
    let s = store(0);
    let worker = s.worker.lock().unwrap().take().unwrap();
    s.put_async(ev(1, "t", 0, None)).unwrap();
    drop(s);
    // Returns only once the worker has exited (a hang would fail the test).
    worker.join().unwrap();
}

#[test]
fn close_racing_writers_leaves_no_event_behind() {
    let s = Arc::new(store(0));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    let id = w * 10_000 + i + 1;
                    let r = if i % 2 == 0 {
                        s.put(ev(id, "t", 0, None)).map(|_| ())
                    } else {
                        s.put_async(ev(id, "t", 0, None))
                    };
                    assert!(matches!(r, Ok(()) | Err(CoreError::Closed)), "{r:?}");
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(2));
    s.close().unwrap();
    for t in writers {
        t.join().unwrap();
    }
    assert_eq!(s.stats().unwrap().current_event_count, 0);
}

/// Reads `q` slice by slice, as a caller resuming from each cursor does.
fn sliced(s: &Store, q: &Query, max_items: usize, max_skip: usize) -> Vec<u64> {
    let q = s.resolved(q);
    let mut slice = Slice {
        after: None,
        skip: q.offset,
        take: q.limit,
        max_items,
        max_skip,
        max_bytes: usize::MAX,
    };
    let mut out = Vec::new();
    loop {
        let page = s.query_page(&q, &slice).unwrap();
        slice.skip -= page.skipped;
        slice.take = slice.take.map(|t| t - page.items.len());
        slice.after = page.cursor;
        out.extend(ids(page.items));
        if page.done {
            return out;
        }
    }
}

#[test]
fn queries_read_in_slices_equal_whole_answers() {
    let s = store(0);
    // Timestamps repeat and run against ids, so every order is exercised.
    for i in 1..=300u64 {
        let ty = ["a", "b", "c"][(i % 3) as usize];
        s.put(ev(i, ty, (i as i64 * 7919) % 97, Some("g"))).unwrap();
    }
    let types = [None, Some("a"), Some("zzz")];
    let orders = [
        Order::Unordered,
        Order::Id,
        Order::Timestamp,
        Order::TimestampDesc,
    ];
    let ranges = [None, Some((10, 60)), Some((60, 10)), Some((50, 50))];
    for ty in types {
        for order in orders {
            for time_range in ranges {
                for (offset, limit) in [(0, None), (5, Some(17)), (250, None), (3, Some(1))] {
                    let q = Query {
                        event_type: ty.map(|t| Arc::from(t.as_bytes())),
                        time_range,
                        order,
                        offset,
                        limit,
                    };
                    let whole = ids(s.query(&q).unwrap());
                    for (items, skips) in [(1, 1), (7, 3), (1000, 1000)] {
                        assert_eq!(sliced(&s, &q, items, skips), whole, "{q:?} {items}/{skips}");
                    }
                }
            }
        }
    }
}

#[test]
fn correlation_groups_read_in_slices() {
    let s = store(0);
    for i in 1..=200u64 {
        s.put(ev(
            i,
            "t",
            (i as i64 * 31) % 50,
            Some(["x", "y"][(i % 2) as usize]),
        ))
        .unwrap();
    }
    let whole = ids(s.get_by_correlation(b"x").unwrap());
    let mut slice = Slice {
        max_items: 9,
        ..Slice::all(0, None)
    };
    let mut got = Vec::new();
    loop {
        let page = s.correlation_page(b"x", &slice).unwrap();
        slice.after = page.cursor;
        got.extend(ids(page.items));
        if page.done {
            break;
        }
    }
    assert_eq!(got, whole);
    assert_eq!(whole.len(), 100);
}

/// A store big enough to be pruned by several threads: same answers as
/// the model, with timestamps that follow the ids (the split path) and
/// timestamps that do not (per-event removal).
#[test]
fn a_big_prune_on_several_threads_keeps_every_index_consistent() {
    for aligned in [true, false] {
        let s = store(0);
        let n = 60_000;
        let ts_of = |id: u64| match aligned {
            true => id as i64,
            false => ((id * 7919) % n) as i64,
        };
        let types = ["a", "b", "c"];
        let events: Vec<_> = (1..=n)
            .map(|id| {
                let cid = format!("g{}", id % 50);
                ev(id, types[(id % 3) as usize], ts_of(id), Some(cid.as_str()))
            })
            .collect();
        for chunk in events.chunks(1000) {
            s.put_batch(chunk.to_vec()).unwrap();
        }
        let cut = (n / 2) as i64;
        let kept: Vec<u64> = (1..=n).filter(|&id| ts_of(id) >= cut).collect();
        assert_eq!(s.prune_before(cut).unwrap(), (n as usize) - kept.len());
        assert_eq!(s.stats().unwrap().current_event_count, kept.len() as u64);
        let all = Query {
            order: Order::Id,
            ..Query::default()
        };
        assert_eq!(ids(s.query(&all).unwrap()), kept);
        let of_b = Query {
            event_type: Some(Arc::from(b"b".as_slice())),
            order: Order::Id,
            ..Query::default()
        };
        let kept_b: Vec<u64> = kept.iter().copied().filter(|id| id % 3 == 1).collect();
        assert_eq!(ids(s.query(&of_b).unwrap()), kept_b);
        let group: Vec<u64> = ids(s.get_by_correlation(b"g7").unwrap());
        let mut want: Vec<u64> = kept.iter().copied().filter(|id| id % 50 == 7).collect();
        want.sort_by_key(|&id| (ts_of(id), id));
        assert_eq!(group, want);
        assert!(s.get(kept[0] - 1).unwrap().is_none() || ts_of(kept[0] - 1) >= cut);
        // Retention still evicts the oldest arrivals among the kept events.
        s.set_limits(10, 0);
        s.put(ev(n + 1, "a", cut, None)).unwrap();
        let mut left = ids(s.query(&all).unwrap());
        left.sort_unstable();
        let mut want: Vec<u64> = kept[kept.len() - 9..].to_vec();
        want.push(n + 1);
        assert_eq!(left, want);
    }
}

/// Correlation groups small and big (a group changes form past a few dozen
/// members): out-of-order timestamps, overwrites into and out of the group,
/// eviction and prunes give the same members as a model, whole and paged.
#[test]
fn correlation_groups_of_every_size_match_a_model() {
    let s = sharded(1);
    let mut model: BTreeMap<u64, (i64, bool)> = BTreeMap::new();
    let check = |model: &BTreeMap<u64, (i64, bool)>| {
        let mut want: Vec<(i64, u64)> = model
            .iter()
            .filter(|(_, (_, in_group))| *in_group)
            .map(|(&id, &(ts, _))| (ts, id))
            .collect();
        want.sort_unstable();
        let want: Vec<u64> = want.into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids(s.get_by_correlation(b"g").unwrap()), want);
        let mut slice = Slice {
            max_items: 7,
            ..Slice::all(0, None)
        };
        let mut paged = Vec::new();
        loop {
            let page = s.correlation_page(b"g", &slice).unwrap();
            slice.after = page.cursor;
            paged.extend(ids(page.items));
            if page.done {
                break;
            }
        }
        assert_eq!(paged, want);
    };
    // Timestamps in a scrambled order, with ties.
    for id in 1..=200u64 {
        let ts = ((id * 37) % 101) as i64;
        s.put(ev(id, "t", ts, Some("g"))).unwrap();
        model.insert(id, (ts, true));
        if id % 25 == 0 {
            check(&model);
        }
    }
    // Overwrites: moved in time, out of the group, back into it.
    for id in (1..=200u64).step_by(3) {
        let in_group = id % 2 == 0;
        let ts = 500 - id as i64;
        s.put(ev(id, "t", ts, in_group.then_some("g"))).unwrap();
        model.insert(id, (ts, in_group));
    }
    check(&model);
    s.prune_before(50).unwrap();
    model.retain(|_, (ts, _)| *ts >= 50);
    check(&model);
    // Eviction down to a small group again (oldest arrivals first).
    s.set_limits(20, 0);
    s.put(ev(1000, "t", 1000, Some("g"))).unwrap();
    let kept = ids(s.query(&Query::default()).unwrap());
    assert_eq!(kept.len(), 20);
    model.insert(1000, (1000, true));
    model.retain(|id, _| kept.contains(id));
    check(&model);
    for id in 2000..2100u64 {
        s.put(ev(id, "t", 7, Some("g"))).unwrap();
    }
    assert_eq!(s.get_by_correlation(b"g").unwrap().len(), 20);
}

/// Ids of one block share a shard (a writer of nearby ids keeps to one
/// shard), and blocks spread evenly over the shards, whether they are
/// consecutive or strided.
#[test]
fn ids_go_to_shards_by_blocks_spread_evenly() {
    let s = sharded(8);
    let shard_of = |id: u64| s.inner.shard_index(id);
    for block in [0, 1, 7, 1_000, u64::MAX / SHARD_BLOCK - 1] {
        let first = block * SHARD_BLOCK;
        let shard = shard_of(first);
        assert!((first..first + SHARD_BLOCK).all(|id| shard_of(id) == shard));
    }
    for stride in [1, 2, 31, 4_096] {
        let mut counts = [0usize; 8];
        for block in 0..16_000u64 {
            counts[shard_of(block * stride * SHARD_BLOCK)] += 1;
        }
        assert!(
            counts.iter().all(|&n| (1_700..=2_300).contains(&n)),
            "stride {stride}: {counts:?}"
        );
    }
}

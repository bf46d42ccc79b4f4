use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warm-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(path: &Path, compression: Compression, max_bytes: u64) -> WarmConfig {
    WarmConfig {
        path: path.to_path_buf(),
        max_bytes,
        compression,
        fsync_ms: 1000,
        journal: false,
    }
}

fn event(id: u64, ts: i64, t: &str, cid: Option<&str>) -> WarmEvent {
    WarmEvent {
        id,
        event_type: t.as_bytes().to_vec(),
        sys_ts: ts,
        correlation_id: cid.map(|c| c.as_bytes().to_vec()),
        body: format!("body-{id}-{ts}").into_bytes(),
    }
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

fn q(t: Option<&str>, range: Option<(i64, i64)>, order: Order, limit: Option<usize>) -> Query {
    Query {
        event_type: t.map(|t| Arc::from(t.as_bytes())),
        time_range: range,
        order,
        offset: 0,
        limit,
    }
}

#[test]
fn reads_go_through_the_indexes_and_survive_reopen() {
    let d = dir("reopen");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let _ = std::fs::remove_dir_all(&d);
        {
            let (w, notes) = Warm::open(&config(&d, compression, 0)).unwrap();
            assert!(notes.is_empty());
            w.append(vec![
                event(3, 30, "a", Some("c")),
                event(1, 50, "b", None),
                event(2, 10, "a", Some("c")),
                event(4, -5, "a", None),
            ])
            .unwrap();
            // Overwrite: new time and type, old index entries gone.
            w.append(vec![event(1, 20, "a", Some("c"))]).unwrap();
            w.close().unwrap();
        }
        let (w, _) = Warm::open(&config(&d, compression, 0)).unwrap();
        let s = w.stats();
        assert_eq!((s.events, s.stored), (4, 5));
        assert_eq!(w.get(1).unwrap().unwrap().body, b"body-1-20");
        assert_eq!(w.get(9).unwrap(), None);
        assert_eq!(
            ids(&w.query(&q(None, None, Order::Id, None)).unwrap()),
            [1, 2, 3, 4]
        );
        assert_eq!(
            ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap()),
            [4, 2, 1, 3]
        );
        assert_eq!(
            ids(&w
                .query(&q(None, None, Order::TimestampDesc, Some(2)))
                .unwrap()),
            [3, 1]
        );
        assert_eq!(
            ids(&w.query(&q(Some("b"), None, Order::Id, None)).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(
            ids(&w
                .query(&q(Some("a"), Some((0, 25)), Order::Id, None))
                .unwrap()),
            [1, 2]
        );
        assert_eq!(ids(&w.get_by_correlation(b"c").unwrap()), [2, 1, 3]);
        assert_eq!(w.prune_before(20).unwrap(), 2);
        assert_eq!(
            ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap()),
            [1, 3]
        );
        assert_eq!(w.stats().pruned, 2);
        w.close().unwrap();
        assert_eq!(w.get(1), Err(CoreError::Closed));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_second_owner_is_refused() {
    let d = dir("owner");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    let err = Warm::open(&config(&d, Compression::None, 0)).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    w.close().unwrap();
    drop(w);
    let (again, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    again.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_size_bound_evicts_oldest_first() {
    let d = dir("bound");
    let (w, _) = Warm::open(&config(&d, Compression::None, 20_000)).unwrap();
    for id in 1..=1000 {
        w.append(vec![event(id, id as i64, "t", None)]).unwrap();
    }
    let s = w.stats();
    assert!(s.bytes <= 20_000, "{s:?}");
    assert!(s.evicted > 0 && s.events + s.evicted == 1000, "{s:?}");
    let kept = ids(&w.query(&q(None, None, Order::Id, None)).unwrap());
    assert_eq!(kept.len() as u64, s.events);
    assert_eq!(*kept.last().unwrap(), 1000);
    assert_eq!(kept[0], 1001 - s.events);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn concurrent_writers_all_land() {
    let d = dir("group");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    let w = Arc::new(w);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let id = t * 1000 + i + 1;
                    w.append(vec![event(id, id as i64, "t", None)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(w.stats().events, 2000);
    assert_eq!(
        w.query(&q(None, None, Order::Timestamp, None))
            .unwrap()
            .len(),
        2000
    );
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_damaged_record_is_skipped_and_counted() {
    let d = dir("damage");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    w.append(vec![event(1, 1, "t", None), event(2, 2, "t", None)])
        .unwrap();
    // Damage record 1 behind the codec's back (record 2 shares its block).
    damage_record(&w, 1);
    assert_eq!(w.get(1).unwrap(), None);
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap()),
        [2]
    );
    assert_eq!(w.stats().corrupt_records, 1);
    assert_eq!(w.take_new_corrupt(), [1]);
    assert_eq!(w.get(1).unwrap(), None);
    assert_eq!(w.take_new_corrupt(), Vec::<u64>::new());
    w.append(vec![event(3, 3, "t", None)]).unwrap();
    assert_eq!(w.get(3).unwrap().unwrap().id, 3);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

/// Flips the last byte of `id`'s record inside its block (in a packed
/// block, inside its compressed records, which are packed again with
/// their charges).
fn damage_record(w: &Warm, id: u64) {
    let engine = w.engine().unwrap();
    for kv in engine.blocks.iter() {
        let (key, stored) = kv.unwrap();
        let unpacked = codec::unpack_block(&stored);
        let slots = match &unpacked {
            Some(u) => u.slots(),
            None => codec::block_slots(&stored).unwrap(),
        };
        if !slots.iter().any(|&(i, _)| i == id) {
            continue;
        }
        let mut records: Vec<(u64, Vec<u8>)> =
            slots.iter().map(|&(i, r)| (i, r.to_vec())).collect();
        for (_, record) in records.iter_mut().filter(|(i, _)| *i == id) {
            let last = record.len() - 1;
            record[last] ^= 1;
        }
        let slots: Vec<(u64, &[u8])> = records.iter().map(|(i, r)| (*i, &r[..])).collect();
        let changed = match &unpacked {
            Some(u) => {
                let charges: Vec<u32> = slots.iter().map(|&(i, _)| u.charge(i).unwrap()).collect();
                codec::pack_block(&slots, Compression::Zstd, Some(&charges)).0
            }
            None => codec::block(&slots),
        };
        engine.blocks.insert(key, changed).unwrap();
        return;
    }
    panic!("no record of {id}");
}

#[test]
fn a_damaged_record_is_replaced_by_an_overwrite_and_its_block_mates_stay() {
    let d = dir("damage-overwrite");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    w.append((1..=5).map(|i| event(i, i as i64, "t", None)).collect())
        .unwrap();
    damage_record(&w, 3);
    w.append(vec![event(3, 30, "u", None)]).unwrap();
    assert_eq!(w.get(3).unwrap().unwrap().sys_ts, 30);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(w.get(3).unwrap().unwrap().sys_ts, 30);
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Id, None)).unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        ids(&w
            .query(&q(Some("u"), None, Order::Timestamp, None))
            .unwrap()),
        [3]
    );
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn removals_rewrite_blocks_and_an_emptied_block_goes() {
    let d = dir("block-removals");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    // Two batches: ids 1-100 (blocks of 64 and 36), then 101-110.
    w.append((1..=100).map(|i| event(i, i as i64, "t", None)).collect())
        .unwrap();
    w.append((101..=110).map(|i| event(i, i as i64, "t", None)).collect())
        .unwrap();
    let blocks = || w.engine().unwrap().blocks.iter().count();
    assert_eq!(blocks(), 3);
    // Overwrites of ids of the first block, in a batch with new ids.
    w.append(vec![
        event(2, 1000, "x", None),
        event(111, 111, "t", None),
        event(64, 1001, "x", None),
    ])
    .unwrap();
    assert_eq!(w.stats().events, 111);
    assert_eq!(w.prune_before(50).unwrap(), 48);
    // Every event of the first block but 50-63 is gone, none of its others.
    let all = ids(&w.query(&q(None, None, Order::Id, None)).unwrap());
    let mut want: Vec<u64> = vec![2, 64];
    want.extend(50..=63);
    want.extend(65..=111);
    want.sort_unstable();
    assert_eq!(all, want);
    assert_eq!(w.prune_before(1_000_000).unwrap(), 63);
    assert_eq!(w.stats().events, 0);
    assert_eq!(blocks(), 0);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    assert_eq!(w.stats().events, 0);
    assert!(w.query(&q(None, None, Order::Id, None)).unwrap().is_empty());
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn overwritten_records_stay_in_their_block_until_it_holds_no_event() {
    let d = dir("lazy-overwrites");
    // Plain blocks of 64 records (packed ones hold 32).
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    let blocks = |w: &Warm| w.engine().unwrap().blocks.iter().count();
    // One block of ids 1-64, one of 65-100.
    w.append((1..=100).map(|i| event(i, i as i64, "a", None)).collect())
        .unwrap();
    assert_eq!(blocks(&w), 2);
    // Overwrite half of the first block: it stays (with its old records).
    w.append(
        (1..=32)
            .map(|i| event(i, 1000 + i as i64, "b", None))
            .collect(),
    )
    .unwrap();
    assert_eq!(blocks(&w), 3);
    // The other half: now every record of it is replaced, so it goes.
    w.append(
        (33..=64)
            .map(|i| event(i, 1000 + i as i64, "b", None))
            .collect(),
    )
    .unwrap();
    assert_eq!(blocks(&w), 3);
    // Two versions of id 70 on disk after a reopen: the newer one counts.
    w.append(vec![event(70, 2000, "c", Some("x"))]).unwrap();
    let check = |w: &Warm| {
        let by_type = |t| ids(&w.query(&q(Some(t), None, Order::Id, None)).unwrap());
        assert_eq!(by_type("a").len(), 35);
        assert_eq!(by_type("b"), (1..=64).collect::<Vec<_>>());
        assert_eq!(by_type("c"), [70]);
        assert_eq!(ids(&w.get_by_correlation(b"x").unwrap()), [70]);
        assert_eq!(w.get(70).unwrap().unwrap().sys_ts, 2000);
        assert_eq!(w.get(5).unwrap().unwrap().sys_ts, 1005);
        assert_eq!(w.stats().events, 100);
        let all = ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap());
        assert_eq!(all.len(), 100);
    };
    check(&w);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    check(&w);
    // A prune rewrites the block of 65-100 without 70's old record: after
    // a reopen 70 keeps its newer version and the pruned events stay gone.
    assert_eq!(w.prune_before(90).unwrap(), 24);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(w.get(70).unwrap().unwrap().sys_ts, 2000);
    assert_eq!(w.get(66).unwrap(), None);
    assert_eq!(w.stats().events, 76);
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap()).len(),
        76
    );
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_block_mostly_replaced_is_rewritten_with_its_live_records() {
    let d = dir("mostly-replaced");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    let records = |w: &Warm| -> Vec<usize> {
        let engine = w.engine().unwrap();
        let sizes = engine
            .blocks
            .iter()
            .map(|kv| codec::block_slots(&kv.unwrap().1).unwrap().len())
            .collect();
        sizes
    };
    w.append((1..=64).map(|i| event(i, i as i64, "a", None)).collect())
        .unwrap();
    // 20 replaced: 44 of 64 still live, the block stays as it is.
    w.append(
        (1..=20)
            .map(|i| event(i, 100 + i as i64, "b", None))
            .collect(),
    )
    .unwrap();
    assert_eq!(records(&w), [64, 20]);
    // 20 more: 24 left, under half: the block keeps only those.
    w.append(
        (21..=40)
            .map(|i| event(i, 100 + i as i64, "b", None))
            .collect(),
    )
    .unwrap();
    assert_eq!(records(&w), [24, 20, 20]);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    assert_eq!(w.stats().events, 64);
    let by_type = |t| ids(&w.query(&q(Some(t), None, Order::Id, None)).unwrap());
    assert_eq!(by_type("a"), (41..=64).collect::<Vec<_>>());
    assert_eq!(by_type("b"), (1..=40).collect::<Vec<_>>());
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_overwrite_after_reopen_replaces_the_old_version() {
    let d = dir("overwrite");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    w.append(vec![event(5, 5, "a", Some("c")), event(9, 9, "a", None)])
        .unwrap();
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    // Below the highest id: the old version is found and replaced.
    w.append(vec![event(5, 7, "b", None)]).unwrap();
    assert_eq!(w.stats().events, 2);
    assert_eq!(w.get(5).unwrap().unwrap().sys_ts, 7);
    let by_type = |t| ids(&w.query(&q(Some(t), None, Order::Timestamp, None)).unwrap());
    assert_eq!(by_type("a"), [9]);
    assert_eq!(by_type("b"), [5]);
    assert!(w.get_by_correlation(b"c").unwrap().is_empty());
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn damage_in_the_middle_of_the_journal_is_counted() {
    let d = dir("journal-middle");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    for id in 1..=4 {
        w.append(vec![event(id, id as i64, "t", None)]).unwrap();
    }
    // As after kill -9: no close, so every write is only in the journal.
    drop(w);
    // Break the marker of event 3's block (one per write here, keyed by
    // its first arrival sequence plus one: 3): the engine's replay stops
    // there and cuts the journal, dropping events 3 and 4.
    let mut pattern = b"\x06blocks\x00\x08".to_vec();
    pattern.extend_from_slice(&3u64.to_be_bytes());
    let mut hit = false;
    for file in files(&d.join("data")) {
        let mut bytes = std::fs::read(&file).unwrap();
        if let Some(pos) = bytes.windows(pattern.len()).position(|w| w == pattern) {
            bytes[pos - 2] = 0x7f;
            std::fs::write(&file, bytes).unwrap();
            hit = true;
        }
    }
    assert!(hit, "event 3 not found in the journal");

    let (w, notes) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    assert!(
        notes.iter().any(|n| n.contains("2 acknowledged event(s)")),
        "{notes:?}"
    );
    assert_eq!(w.stats().corrupt_records, 2);
    assert!(w.get(2).unwrap().is_some());
    assert_eq!(w.get(3).unwrap(), None);
    w.append(vec![event(5, 5, "t", None)]).unwrap();
    w.close().unwrap();
    drop(w);

    // Counted once, and the count survives.
    let (w, notes) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(w.stats().corrupt_records, 2);
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Timestamp, None)).unwrap()),
        [1, 2, 5]
    );
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_unwritable_path_is_an_error() {
    let err = Warm::open(&config(Path::new("/proc/warm-nope"), Compression::None, 0)).unwrap_err();
    assert!(err.to_string().contains("warm storage"), "{err}");
}

#[test]
fn open_append_close_cycles_from_many_threads() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..10 {
                    let d = dir(&format!("cycle-{t}-{round}"));
                    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 50 << 20)).unwrap();
                    for id in 1..=30 {
                        w.append(vec![event(id, id as i64, "t", Some("c"))])
                            .unwrap();
                    }
                    w.close().unwrap();
                    drop(w);
                    let _ = std::fs::remove_dir_all(&d);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Disk full: needs root (mounts a 40 MiB tmpfs), so it runs on demand:
/// `cargo test -p foundation_core --lib a_full_disk -- --ignored`.
#[test]
#[ignore]
fn a_full_disk_fails_the_write_and_writes_resume_when_space_returns() {
    let mnt = dir("full");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mount.success(), "needs root to mount a tmpfs");
    let filler = mnt.join("filler");
    let (w, _) = Warm::open(&config(&mnt.join("warm"), Compression::None, 0)).unwrap();
    // Fill the rest of the disk, leaving a little room for the journal.
    std::fs::write(&filler, vec![0u8; 36 << 20]).unwrap();
    let mut acked = Vec::new();
    let mut failed = None;
    for id in 1..=200_000u64 {
        let mut e = event(id, id as i64, "t", None);
        e.body = vec![7u8; 1000];
        match w.append(vec![e]) {
            Ok(()) => acked.push(id),
            Err(err) => {
                failed = Some(err);
                break;
            }
        }
    }
    let err = failed.expect("the disk never filled up");
    assert!(
        err.to_string().contains("warm storage write failed"),
        "{err}"
    );
    // Still failing while the disk is full; resumes once space returns.
    std::fs::remove_file(&filler).unwrap();
    w.append(vec![event(900_000, 1, "t", None)]).unwrap();
    for id in &acked {
        assert!(w.get(*id).unwrap().is_some(), "acknowledged {id} lost");
    }
    w.close().unwrap();
    drop(w);
    let (again, _) = Warm::open(&config(&mnt.join("warm"), Compression::None, 0)).unwrap();
    assert!(again.get(900_000).unwrap().is_some());
    assert!(again.get(*acked.last().unwrap()).unwrap().is_some());
    again.close().unwrap();
    drop(again);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir_all(&mnt);
}

#[test]
fn records_of_the_one_entry_per_event_layout_are_read_overwritten_and_removed() {
    // Directories written before blocks hold each record under its event
    // id in `events`: they read, overwrite and prune as before.
    let d = dir("per-event-layout");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    let engine = w.engine().unwrap();
    for id in 1..=5u64 {
        let header = codec::Header {
            seq: id - 1,
            sys_ts: id as i64 * 10,
            event_type: if id % 2 == 0 {
                b"even".to_vec()
            } else {
                b"odd".to_vec()
            },
            correlation_id: Some(b"c".to_vec()),
        };
        let body = format!("body {id}").into_bytes();
        let record = codec::encode(Compression::Zstd, &header, &body).unwrap();
        engine.events.insert(id.to_be_bytes(), record).unwrap();
    }
    let mut counters = *w.writer.lock().unwrap();
    (counters.seq, counters.events, counters.top) = (5, 5, 5);
    engine.meta.insert(COUNTERS, counters.encode()).unwrap();
    drop(engine);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(w.get(4).unwrap().unwrap().body, b"body 4");
    assert_eq!(
        ids(&w
            .query(&q(Some("even"), None, Order::Timestamp, None))
            .unwrap()),
        [2, 4]
    );
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Id, None)).unwrap()),
        [1, 2, 3, 4, 5]
    );
    // An overwrite moves the event to a block; a prune removes the others.
    w.append(vec![event(2, 100, "new", None)]).unwrap();
    assert_eq!(w.prune_before(35).unwrap(), 2);
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Id, None)).unwrap()),
        [2, 4, 5]
    );
    assert_eq!(w.get(2).unwrap().unwrap().sys_ts, 100);
    assert_eq!(ids(&w.get_by_correlation(b"c").unwrap()), [4, 5]);
    assert_eq!(w.engine().unwrap().events.iter().count(), 2);
    assert_eq!(w.stats().events, 3);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_older_layout_with_index_partitions_opens_and_reads_the_same() {
    // Older layouts kept time, type and correlation indexes as partitions
    // of their own: they are dropped on open and every index comes from the
    // records' headers.
    let d = dir("old-layout");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    w.append(vec![
        event(1, 10, "a", Some("c1")),
        event(2, 20, "b", Some("c1")),
        event(3, 30, "a", None),
    ])
    .unwrap();
    let engine = w.engine().unwrap();
    for name in ["by_time", "by_type", "by_cid"] {
        let part = engine
            .keyspace
            .open_partition(name, fjall::PartitionCreateOptions::default())
            .unwrap();
        part.insert(b"stale key", b"stale value").unwrap();
    }
    drop(engine);
    w.close().unwrap();
    drop(w);
    // Their writes were still in the engine's journal (given back to them
    // on open): the first open deletes them all the same.
    let exists = |w: &Warm, name| w.engine().unwrap().keyspace.partition_exists(name);
    for round in 0..2 {
        let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
        for name in ["by_time", "by_type", "by_cid"] {
            assert!(!exists(&w, name), "{name} in round {round}");
        }
        let by_type = |t| ids(&w.query(&q(Some(t), None, Order::Timestamp, None)).unwrap());
        assert_eq!(by_type("a"), [1, 3]);
        assert_eq!(by_type("b"), [2]);
        assert_eq!(ids(&w.get_by_correlation(b"c1").unwrap()), [1, 2]);
        let all = |order| ids(&w.query(&q(None, Some((15, 30)), order, None)).unwrap());
        assert_eq!(all(Order::Timestamp), [2, 3]);
        assert_eq!(all(Order::TimestampDesc), [3, 2]);
        assert_eq!(all(Order::Id), [2, 3]);
        w.close().unwrap();
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_floor_is_the_newest_time_on_disk_at_open() {
    let d = dir("floor");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    drop(w.mem_read().unwrap());
    assert_eq!(w.floor(), Some(None));
    w.append(vec![event(1, 20, "t", None), event(2, 10, "t", None)])
        .unwrap();
    // Writes of this lifetime after the indexes were built leave it.
    assert_eq!(w.floor(), Some(None));
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    drop(w.mem_read().unwrap());
    assert_eq!(w.floor(), Some(Some(20)));
    // Known without the index lock: an apply holding it does not make
    // the floor unknown (a read would then go to the disk for nothing).
    {
        let _applying = w.mem.write().unwrap();
        assert_eq!(w.floor(), Some(Some(20)));
    }
    w.clear().unwrap();
    assert_eq!(w.floor(), Some(None));
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_memory_indexes_follow_overwrites_evictions_prunes_and_clear() {
    let d = dir("mem-follow");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    // Written right after open: while the rebuild may still run.
    w.append(
        (1..=20)
            .map(|i| event(i, i as i64, "t", Some("c")))
            .collect(),
    )
    .unwrap();
    // Overwrite 5 with another type and correlation id, prune below 10.
    w.append(vec![event(5, 50, "u", Some("d"))]).unwrap();
    assert_eq!(w.prune_before(10).unwrap(), 8);
    let by_type = |w: &Warm, t| ids(&w.query(&q(Some(t), None, Order::Timestamp, None)).unwrap());
    let expect_t: Vec<u64> = (10..=20).collect();
    assert_eq!(by_type(&w, "t"), expect_t);
    assert_eq!(by_type(&w, "u"), [5]);
    assert_eq!(ids(&w.get_by_correlation(b"c").unwrap()), expect_t);
    assert_eq!(ids(&w.get_by_correlation(b"d").unwrap()), [5]);
    let in_mem = |w: &Warm| {
        let state = w.mem_read().unwrap();
        let count = |m: &FxHashMap<Vec<u8>, Entries>| m.values().map(|s| s.len()).sum::<usize>();
        (count(&state.mem.by_type), count(&state.mem.by_cid))
    };
    assert_eq!(in_mem(&w), (12, 12));
    w.close().unwrap();
    drop(w);

    // Rebuilt on open: the same entries.
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    assert_eq!(in_mem(&w), (12, 12));
    assert_eq!(by_type(&w, "u"), [5]);
    w.clear().unwrap();
    assert_eq!(in_mem(&w), (0, 0));
    assert!(by_type(&w, "t").is_empty());
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);

    // Evictions leave the indexes too.
    let d = dir("mem-evict");
    let (w, _) = Warm::open(&config(&d, Compression::None, 4096)).unwrap();
    for i in 1..=200u64 {
        w.append(vec![event(i, i as i64, "t", Some("c"))]).unwrap();
    }
    let live = w.stats().events as usize;
    assert!(live < 200, "{live}");
    assert_eq!(in_mem(&w), (live, live));
    assert_eq!(ids(&w.get_by_correlation(b"c").unwrap()).len(), live);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

fn journaled(path: &Path, compression: Compression) -> WarmConfig {
    WarmConfig {
        journal: true,
        ..config(path, compression, 0)
    }
}

fn incoming(id: u64, ts: i64, body: &[u8]) -> Incoming<'_> {
    Incoming {
        id,
        event_type: b"t",
        sys_ts: ts,
        correlation_id: Some(b"c"),
        body,
    }
}

/// Writes one frame of `ids` (bodies `body-<id>`) to the journal.
fn journal_write(w: &Warm, ids: &[u64]) {
    let bodies: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| format!("body-{id}").into_bytes())
        .collect();
    let events: Vec<Incoming> = ids
        .iter()
        .zip(&bodies)
        .map(|(id, b)| incoming(*id, *id as i64, b))
        .collect();
    w.write_journal(&Warm::journal_frame(&events), true)
        .unwrap();
}

fn segments(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path.join("journal"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn journal_writes_are_applied_read_back_and_cleared_on_close() {
    let d = dir("journal-apply");
    let (w, _) = Warm::open(&journaled(&d, Compression::Zstd)).unwrap();
    let w = Arc::new(w);
    w.start_threads().unwrap();
    // Enough events to train a dictionary on the way.
    for id in 1..=3000u64 {
        journal_write(&w, &[id]);
    }
    journal_write(&w, &[5, 3001]);
    // Reads wait for the apply thread: every write is visible.
    let hit = w.get(3001).unwrap().unwrap();
    assert_eq!(hit.body, b"body-3001");
    assert_eq!(w.stats().events, 3001);
    assert_eq!(w.get_by_correlation(b"c").unwrap().len(), 3001);
    // With zstd the records of a block are compressed together.
    let blocks: Vec<_> = w
        .engine()
        .unwrap()
        .blocks
        .iter()
        .map(|kv| kv.unwrap().1)
        .collect();
    assert!(!blocks.is_empty() && blocks.iter().all(|b| codec::is_packed(b)));
    w.close().unwrap();
    assert!(segments(&d).is_empty(), "{:?}", segments(&d));
    drop(w);
    let (again, _) = Warm::open(&journaled(&d, Compression::Zstd)).unwrap();
    assert_eq!(again.get(1).unwrap().unwrap().body, b"body-1");
    assert_eq!(again.get(2999).unwrap().unwrap().body, b"body-2999");
    assert_eq!(again.stats().events, 3001);
    again.close().unwrap();
}

#[test]
fn unapplied_journal_frames_are_replayed_on_open() {
    let d = dir("journal-replay");
    // No apply thread: the frames stay in the journal, as when the VM is
    // killed right after the writes.
    let (w, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    for id in 1..=100u64 {
        journal_write(&w, &[id]);
    }
    journal_write(&w, &[7, 101, 102]);
    drop(w);
    let (again, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    assert_eq!(again.stats().events, 102);
    assert_eq!(again.get(102).unwrap().unwrap().body, b"body-102");
    // The replayed events count as found on open, even when the index
    // rebuild (of an engine that had none of them) ended before them.
    drop(again.mem_read().unwrap());
    assert_eq!(again.floor(), Some(Some(102)));
    assert_eq!(
        ids(&again.query(&q(None, None, Order::Id, None)).unwrap()),
        (1..=102).collect::<Vec<_>>()
    );
    // Applied and synced: the old segments are gone, nothing replays twice.
    drop(again);
    let (third, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    assert_eq!(third.stats().events, 102);
    assert_eq!(third.stats().stored, 103);
    third.close().unwrap();
}

#[test]
fn a_torn_journal_tail_is_dropped_and_the_rest_replayed() {
    let d = dir("journal-torn");
    let (w, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    for id in 1..=20u64 {
        journal_write(&w, &[id]);
    }
    drop(w);
    // Damage the last frame (a write cut by the crash: never acknowledged).
    let seg = segments(&d)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wj"))
        .max_by_key(|p| {
            std::fs::read(p)
                .map(|b| b.iter().rposition(|&x| x != 0))
                .ok()
        })
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[last] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let (again, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    assert_eq!(again.stats().events, 19);
    assert!(again.get(20).unwrap().is_none());
    assert_eq!(again.get(19).unwrap().unwrap().body, b"body-19");
    // New writes go on after it.
    journal_write(&again, &[21]);
    drop(again);
    let (third, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    assert_eq!(third.get(21).unwrap().unwrap().body, b"body-21");
    assert_eq!(third.stats().events, 20);
    third.close().unwrap();
}

#[test]
fn a_write_that_cannot_wait_says_so_when_the_apply_thread_is_behind() {
    let d = dir("journal-lag");
    let (w, _) = Warm::open(&journaled(&d, Compression::None)).unwrap();
    let big = vec![1u8; 1 << 20];
    let frame = Warm::journal_frame(&[incoming(1, 1, &big)]);
    // No apply thread: the lag grows until a normal-scheduler write must
    // go where it may wait.
    let mut blocked = false;
    for _ in 0..64 {
        match w.write_journal(&frame, false) {
            Ok(()) => {}
            Err(Blocked::Wait) => {
                blocked = true;
                break;
            }
            Err(Blocked::Failed(e)) => panic!("{e}"),
        }
    }
    assert!(blocked);
    w.close().ok();
}

/// As root: a journal segment that cannot be reserved (its file system is
/// full) fails the write that needs it, never a fault on a mapped page;
/// acknowledged writes stay; writes resume once space returns (here: once
/// the apply thread retires an applied segment).
/// `cargo test -p foundation_core --lib a_full_disk -- --ignored`.
#[test]
#[ignore]
fn a_full_disk_when_a_journal_segment_is_made_fails_that_write() {
    let path = dir("full-journal");
    let mnt = path.join("journal");
    std::fs::create_dir_all(&mnt).unwrap();
    // Room for two segments, not three.
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mount.success(), "needs root to mount a tmpfs");
    let (w, _) = Warm::open(&journaled(&path, Compression::None)).unwrap();
    let w = Arc::new(w);
    w.start_threads().unwrap();
    // Nothing applied, so no segment is retired.
    w.hold_apply(true);
    let body = vec![7u8; 4000];
    let mut acked = Vec::new();
    let mut failed = None;
    for id in 1..=100_000u64 {
        let frame = Warm::journal_frame(&[incoming(id, id as i64, &body)]);
        match w.write_journal(&frame, true) {
            Ok(()) => acked.push(id),
            Err(Blocked::Failed(e)) => {
                failed = Some(e);
                break;
            }
            Err(Blocked::Wait) => unreachable!(),
        }
    }
    let err = failed.expect("the journal never filled its disk");
    assert!(err.to_string().contains("cannot reserve"), "{err}");
    // The apply thread catches up and retires the first segment: room.
    w.hold_apply(false);
    w.caught_up().unwrap();
    let frame = Warm::journal_frame(&[incoming(900_000, 1, &body)]);
    w.write_journal(&frame, true).unwrap();
    w.close().unwrap();
    drop(w);
    let (again, _) = Warm::open(&journaled(&path, Compression::None)).unwrap();
    assert!(again.get(900_000).unwrap().is_some());
    assert_eq!(again.stats().events, acked.len() as u64 + 1);
    again.close().unwrap();
    drop(again);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn journals_go_once_the_events_memtables_are_flushed() {
    let d = dir("journals");
    let (w, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    let engine = w.engine().unwrap();
    let mut next = 1;
    let mut write = || {
        w.append(
            (next..next + 50)
                .map(|i| event(i, i as i64, "t", None))
                .collect(),
        )
        .unwrap();
        next += 50;
    };
    write();
    // Three times what a full `blocks` memtable does: seal it and its
    // journal, then the writes go on.
    for _ in 0..3 {
        assert!(engine.blocks.rotate_memtable().unwrap());
        write();
    }
    // `meta` rotated after each (its memtable holds writes of every
    // journal), so once the flushes are done only the active journal and
    // the one sealed with `meta`'s last rotation are left. Without that,
    // the three sealed journals would stay until `meta` filled its
    // memtable or the engine's monitor saw half of its journal budget.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count = engine.keyspace.journal_count();
        if count <= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "journals kept: {count}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The engine deletes flushed journals when it next rotates or
        // flushes; writes keep coming in real use.
        write();
    }
    drop(engine);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ids_made_one_after_another_take_different_stripes() {
    let n = 1024;
    // `Utils.generate_id/0`: a count above the node's 12 bits.
    let node = 0b1010_0110_0101;
    let generated: HashSet<usize> = (0..n as u64)
        .map(|i| id_stripe(((5_000 + i) << 12) | node, n))
        .collect();
    // A plain counter, as a host's own ids may be.
    let counted: HashSet<usize> = (0..n as u64).map(|i| id_stripe(1_000_000 + i, n)).collect();
    assert_eq!(generated.len(), n);
    assert_eq!(counted.len(), n);
}

/// Event `id` with a 2 KB body: a block of them is past the engine's
/// threshold for keeping a value in a blob file.
fn blob_event(id: u64, cid: Option<&str>) -> WarmEvent {
    WarmEvent {
        body: vec![(id % 251) as u8; 2000],
        ..event(id, id as i64, "t", cid)
    }
}

#[test]
fn removed_blocks_leave_the_blob_files_once_collected() {
    let d = dir("collect");
    // 4 MiB blob files (an eighth of the bound); blocks of about 16
    // records of 2 KB, so each is kept in a blob file, not in the tree.
    let cfg = config(&d, Compression::None, 32 << 20);
    let event = |id: u64| blob_event(id, Some("c"));
    let (w, _) = Warm::open(&cfg).unwrap();
    for first in (1..=4000).step_by(200) {
        w.append((first..first + 200).map(event).collect()).unwrap();
    }
    let engine = w.engine().unwrap();
    assert!(engine.blocks.is_kv_separated());
    engine.blocks.rotate_memtable_and_wait().unwrap();
    let blobs = d.join("data/partitions/blocks/blobs");
    let before = dir_size(&blobs);
    assert_eq!(w.prune_before(3501).unwrap(), 3500);
    let counters = *w.writer.lock().unwrap();
    w.collect(&engine, &counters, true);
    drop(engine);
    // Of 8 MB of records in two files, 1 MB is left: the file of the
    // oldest is dropped, the other (three quarters stale) rewritten.
    let after = dir_size(&blobs);
    assert!(
        before > 7_000_000 && after < 2_000_000,
        "{before} -> {after} bytes"
    );

    let check = |w: &Warm| {
        for id in [1, 2000, 3500] {
            assert_eq!(w.get(id).unwrap(), None, "{id} came back");
        }
        for id in [3501, 3800, 4000] {
            assert_eq!(w.get(id).unwrap().unwrap().body, event(id).body);
        }
        let all = ids(&w.query(&q(None, None, Order::Id, None)).unwrap());
        assert_eq!(all, (3501..=4000).collect::<Vec<_>>());
    };
    check(&w);
    w.close().unwrap();
    let (w, _) = Warm::open(&cfg).unwrap();
    check(&w);
    assert_eq!(w.stats().events, 500);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn blocks_an_earlier_version_kept_in_the_tree_stay_there() {
    // Directories made before blob files have a `blocks` partition without
    // key-value separation: it keeps its layout, and collecting is a no-op.
    let d = dir("tree-blocks");
    {
        let keyspace = fjall::Config::new(d.join("data")).open().unwrap();
        let blocks = keyspace
            .open_partition("blocks", PartitionCreateOptions::default())
            .unwrap();
        assert!(!blocks.is_kv_separated());
    }
    let cfg = config(&d, Compression::None, 0);
    let event = |id: u64| blob_event(id, None);
    let (w, _) = Warm::open(&cfg).unwrap();
    w.append((1..=100).map(event).collect()).unwrap();
    let engine = w.engine().unwrap();
    assert!(!engine.blocks.is_kv_separated());
    assert_eq!(w.prune_before(51).unwrap(), 50);
    let counters = *w.writer.lock().unwrap();
    w.collect(&engine, &counters, true);
    drop(engine);
    w.clear().unwrap();
    w.append((101..=110).map(event).collect()).unwrap();
    w.close().unwrap();
    let (w, _) = Warm::open(&cfg).unwrap();
    assert!(!w.engine().unwrap().blocks.is_kv_separated());
    let all = ids(&w.query(&q(None, None, Order::Id, None)).unwrap());
    assert_eq!(all, (101..=110).collect::<Vec<_>>());
    assert_eq!(w.get(105).unwrap().unwrap().body, event(105).body);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn packed_blocks_count_their_share_of_the_compressed_bytes_and_give_it_back() {
    // Bodies of 300 bytes much like one another, as events' are.
    let batches = |w: &Warm| {
        for b in 0..10u64 {
            let events = (1..=50)
                .map(|i| {
                    let id = b * 50 + i;
                    let mut e = event(id, id as i64, "t", Some("c"));
                    e.body.resize(300, b'.');
                    e
                })
                .collect();
            w.append(events).unwrap();
        }
    };
    let d = dir("charges-none");
    let (plain, _) = Warm::open(&config(&d, Compression::None, 0)).unwrap();
    batches(&plain);
    let raw = plain.stats().bytes;
    plain.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);

    let d = dir("charges-zstd");
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    batches(&w);
    let packed = w.stats().bytes;
    assert!(packed < raw, "{packed} >= {raw}");
    // Overwrites (left in their blocks, then their blocks rewritten once
    // mostly replaced), a prune and a reopen: what is counted stays what
    // the live records were charged, and nothing is left once all go.
    for id in (1..=40).chain(300..=320) {
        w.append(vec![event(id, 1_000 + id as i64, "u", None)])
            .unwrap();
    }
    assert_eq!(w.get(7).unwrap().unwrap().body, b"body-7-1007");
    assert!(w
        .get(41)
        .unwrap()
        .unwrap()
        .body
        .starts_with(b"body-41-41..."));
    w.close().unwrap();
    drop(w);
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(w.stats().events, 500);
    assert_eq!(
        ids(&w.query(&q(Some("u"), None, Order::Id, None)).unwrap()),
        (1..=40).chain(300..=320).collect::<Vec<u64>>()
    );
    // Ids 41 to 299 keep their first times (41 to 299); 41 to 249 go.
    let before = w.stats().bytes;
    assert_eq!(w.prune_before(250).unwrap(), 209);
    let after = w.stats().bytes;
    assert!(after > before / 3 && after < before, "{before} -> {after}");
    assert_eq!(w.prune_before(i64::MAX).unwrap(), 291);
    let s = w.stats();
    assert_eq!((s.events, s.bytes), (0, 0), "{s:?}");
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn records_compressed_alone_by_earlier_versions_still_read_and_give_way() {
    let d = dir("earlier-records");
    let samples: Vec<Vec<u8>> = (0..1024u64)
        .map(|i| format!("body-{i}-{} and some text every body has", i * 10).into_bytes())
        .collect();
    let dict = codec::Trained::train(&samples, 4096).expect("a dictionary");
    {
        let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
        w.append(vec![event(1, 10, "t", Some("c")), event(2, 20, "t", None)])
            .unwrap();
        // Their block as an earlier version wrote it: plain, each body
        // compressed alone (zstd with a trained dictionary, and zlib).
        let engine = w.engine().unwrap();
        let (key, stored) = engine.blocks.iter().next().unwrap().unwrap();
        let packed = codec::unpack_block(&stored).unwrap();
        let old: Vec<(u64, Vec<u8>)> = packed
            .slots()
            .into_iter()
            .map(|(id, record)| {
                let h = codec::parse(record).unwrap().header;
                let body = format!("body-{id}-{}", h.sys_ts).into_bytes();
                let cid = h.correlation_id.as_deref();
                let mut rec = match id {
                    1 => codec::unsealed_trained(7, &dict, h.sys_ts, &h.event_type, cid, &body),
                    _ => codec::encode(Compression::Gzip, &h, &body),
                }
                .unwrap();
                codec::seal(&mut rec, h.seq);
                (id, rec)
            })
            .collect();
        let slots: Vec<(u64, &[u8])> = old.iter().map(|(i, r)| (*i, &r[..])).collect();
        engine.blocks.insert(key, codec::block(&slots)).unwrap();
        let mut dict_key = DICT_PREFIX.to_vec();
        dict_key.extend_from_slice(&7u32.to_be_bytes());
        engine.meta.insert(dict_key, dict.as_slice()).unwrap();
        drop(engine);
        w.close().unwrap();
    }
    let (w, _) = Warm::open(&config(&d, Compression::Zstd, 0)).unwrap();
    assert_eq!(w.get(1).unwrap().unwrap().body, b"body-1-10");
    assert_eq!(w.get(2).unwrap().unwrap().body, b"body-2-20");
    assert_eq!(ids(&w.get_by_correlation(b"c").unwrap()), [1]);
    // New events go to packed blocks beside them; an overwrite and a prune
    // take the old records out.
    w.append(vec![event(3, 30, "t", None), event(1, 40, "u", None)])
        .unwrap();
    assert_eq!(w.get(1).unwrap().unwrap().sys_ts, 40);
    assert_eq!(w.get(2).unwrap().unwrap().body, b"body-2-20");
    assert_eq!(w.prune_before(25).unwrap(), 1);
    assert_eq!(w.get(2).unwrap(), None);
    assert_eq!(
        ids(&w.query(&q(None, None, Order::Id, None)).unwrap()),
        [1, 3]
    );
    assert_eq!(w.stats().corrupt_records, 0);
    w.close().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

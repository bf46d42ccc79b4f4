//! Engine comparison for the warm tier: the fjall-based `Warm` (as shipped)
//! against redb with the same key layout and a group-commit writer. Run:
//!
//!     cargo run --release -p foundation_core --example warm_engines [events]
//!
//! Workload: 4 writer threads append small events (~300 bytes) one per
//! call; then reopen time, directory size, and point/indexed read latency.

mod support;

use foundation_core::store::warm::{Compression, Warm, WarmConfig, WarmEvent};
use foundation_core::store::{Order, Query};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::event;

const WRITERS: u64 = 4;

fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                du(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            };
        }
    }
    total
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warm-engines-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fjall_run(n: u64) {
    let dir = tmp("fjall");
    let config = WarmConfig {
        path: dir.clone(),
        max_bytes: 0,
        compression: Compression::None,
        fsync_ms: 1000,
        journal: false,
    };
    let (warm, _) = Warm::open(&config).unwrap();
    let warm = Arc::new(warm);
    let t = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let warm = warm.clone();
            std::thread::spawn(move || {
                for i in 0..n / WRITERS {
                    warm.append(vec![event(w * 1_000_000_000 + i + 1)]).unwrap();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let ingest = t.elapsed();
    warm.close().unwrap();
    drop(warm);
    let t = Instant::now();
    let (warm, _) = Warm::open(&config).unwrap();
    let reopen = t.elapsed();
    let gets: Vec<_> = (0..1000)
        .map(|i| {
            let t = Instant::now();
            warm.get((i % WRITERS) * 1_000_000_000 + i * 7 % (n / WRITERS) + 1)
                .unwrap()
                .unwrap();
            t.elapsed()
        })
        .collect();
    let q = Query {
        event_type: Some(Arc::from(&b"type_3"[..])),
        time_range: None,
        order: Order::Timestamp,
        offset: 0,
        limit: Some(10),
    };
    let queries: Vec<_> = (0..200)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(warm.query(&q).unwrap().len(), 10);
            t.elapsed()
        })
        .collect();
    warm.close().unwrap();
    report(
        "fjall",
        n,
        ingest,
        reopen,
        du(&dir),
        median(gets),
        median(queries),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const EVENTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");
const BY_TYPE: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("by_type");
const BY_CID: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("by_cid");
const BY_TIME: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("by_time");

/// redb needs an fsync per commit to persist anything, so writers queue and
/// one of them commits everything queued (group commit).
struct RedbGroup {
    db: redb::Database,
    queue: Mutex<(Vec<WarmEvent>, u64, u64, bool)>,
    done: Condvar,
}

fn key(prefix: &[u8], ts: i64, id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

impl RedbGroup {
    fn append(&self, ev: WarmEvent) {
        let mut g = self.queue.lock().unwrap();
        g.0.push(ev);
        g.1 += 1;
        let mine = g.1;
        loop {
            if g.2 >= mine {
                return;
            }
            if !g.3 {
                g.3 = true;
                let batch = std::mem::take(&mut g.0);
                let upto = g.1;
                drop(g);
                let tx = self.db.begin_write().unwrap();
                {
                    let mut events = tx.open_table(EVENTS).unwrap();
                    let mut by_type = tx.open_table(BY_TYPE).unwrap();
                    let mut by_cid = tx.open_table(BY_CID).unwrap();
                    let mut by_time = tx.open_table(BY_TIME).unwrap();
                    for e in &batch {
                        events.insert(e.id, e.body.as_slice()).unwrap();
                        by_type
                            .insert(key(&e.event_type, e.sys_ts, e.id).as_slice(), ())
                            .unwrap();
                        let cid = e.correlation_id.as_deref().unwrap_or_default();
                        by_cid
                            .insert(key(cid, e.sys_ts, e.id).as_slice(), ())
                            .unwrap();
                        by_time
                            .insert(key(&[], e.sys_ts, e.id).as_slice(), ())
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
                g = self.queue.lock().unwrap();
                g.2 = upto;
                g.3 = false;
                self.done.notify_all();
                continue;
            }
            g = self.done.wait(g).unwrap();
        }
    }
}

fn redb_run(n: u64) {
    let dir = tmp("redb");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("db.redb");
    let group = Arc::new(RedbGroup {
        db: redb::Database::create(&file).unwrap(),
        queue: Mutex::new((Vec::new(), 0, 0, false)),
        done: Condvar::new(),
    });
    let t = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let group = group.clone();
            std::thread::spawn(move || {
                for i in 0..n / WRITERS {
                    group.append(event(w * 1_000_000_000 + i + 1));
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let ingest = t.elapsed();
    drop(group);
    let t = Instant::now();
    let db = redb::Database::create(&file).unwrap();
    let reopen = t.elapsed();
    let tx = db.begin_read().unwrap();
    let events = tx.open_table(EVENTS).unwrap();
    let by_type = tx.open_table(BY_TYPE).unwrap();
    let gets: Vec<_> = (0..1000)
        .map(|i| {
            let t = Instant::now();
            events
                .get((i % WRITERS) * 1_000_000_000 + i * 7 % (n / WRITERS) + 1)
                .unwrap()
                .unwrap();
            t.elapsed()
        })
        .collect();
    let queries: Vec<_> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let lo = key(b"type_3", i64::MIN, 0);
            let hits: Vec<_> = by_type
                .range(lo.as_slice()..)
                .unwrap()
                .take(10)
                .map(|kv| {
                    let (k, _) = kv.unwrap();
                    let id = u64::from_be_bytes(k.value()[14..22].try_into().unwrap());
                    events.get(id).unwrap().unwrap().value().len()
                })
                .collect();
            assert_eq!(hits.len(), 10);
            t.elapsed()
        })
        .collect();
    report(
        "redb",
        n,
        ingest,
        reopen,
        du(&dir),
        median(gets),
        median(queries),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(
    name: &str,
    n: u64,
    ingest: Duration,
    reopen: Duration,
    bytes: u64,
    get: Duration,
    q: Duration,
) {
    println!(
        "| {name:6} | {n:>9} | {:>10.0} | {:>9.1} | {:>8.1} | {:>7.1} | {:>9.1} |",
        n as f64 / ingest.as_secs_f64(),
        reopen.as_secs_f64() * 1000.0,
        bytes as f64 / 1_048_576.0,
        get.as_secs_f64() * 1e6,
        q.as_secs_f64() * 1e6,
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    println!("| engine | events    | ingest/s   | reopen ms | MB disk  | get us  | query us  |");
    println!("|--------|-----------|------------|-----------|----------|---------|-----------|");
    fjall_run(n);
    if std::env::var("SKIP_REDB").is_err() {
        redb_run(n);
    }
}

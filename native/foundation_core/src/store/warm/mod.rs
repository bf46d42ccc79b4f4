//! The warm tier: events on disk that outlive the VM.
//!
//! One [`fjall`] keyspace (an LSM tree with a write-ahead journal) in
//! `<path>/data`, owned through an exclusive `flock` on `<path>/LOCK`.
//! Partitions:
//!
//! * `blocks`: block key -> the records of up to `BLOCK_EVENTS` events
//!   written in one batch (`PACKED_EVENTS` when compressed), see
//!   `codec::block` and `codec::pack_block`; a record: checksum,
//!   arrival sequence, system timestamp, type, correlation id, body. With
//!   `:zstd` or `:gzip` a block's records are compressed together. The key
//!   is the arrival sequence of its first record, plus one.
//!   A new directory keeps the blocks in the engine's blob files (key-value
//!   separation), whose stale space `Warm::collect` frees;
//! * `events`: event id -> record, one entry per event, as directories
//!   written before blocks hold them (read, overwritten and removed as
//!   before; new events go to blocks);
//! * `meta`: the counters, written in the same atomic batch as the events.
//!
//! The indexes by id (id -> block), (system timestamp, id),
//! (type, system timestamp, id) and (correlation id, system timestamp, id)
//! are kept in memory (see `Mem`) and rebuilt on open from the records'
//! headers. The engine's cost is per entry (its batch, memtable, journal
//! and table work), so one entry per block of events instead of one per
//! event is most of the apply thread's saving. An eviction or a prune
//! rewrites the blocks it takes events from, in the same batch; an
//! overwrite leaves the old record in its block (see `Edits::write`), and
//! the rebuild keeps the version with the higher arrival sequence. A
//! block left without live records is removed.
//!
//! Beside the keyspace, `<path>/ACKED` records the arrival sequence after
//! the last acknowledged write, so acknowledged events the engine cannot
//! give back on open are counted (see `Acked`).
//!
//! Every read goes through one of these ordered indexes, and every index
//! hit is checked against the record it names (checksum, timestamp), so a
//! stale or damaged entry is skipped, never returned.
//!
//! Writes, with the journal ([`WarmConfig::journal`], see `journal`):
//! the writing callers copy their events into a memory-mapped segment log
//! ([`Warm::write_journal`]); the tier's apply threads
//! ([`Warm::start_threads`]) build their records and blocks and write them to the engine in
//! big batches, recording the journal position reached in the same batch,
//! so a reopen replays exactly what the engine had not got. Reads wait for
//! the journal to be applied ([`Warm::caught_up`]). Without it (fsync on
//! every write): callers queue their events and one of them (the leader)
//! writes everything queued as one batch (group commit): one engine write
//! for all concurrent writers. (The NIF layer calls [`Warm::append_now`]
//! from one writer thread that gathers the concurrent callers itself;
//! records are built by [`Warm::pack`] before, on the callers' side.)
//! `fjall` hands each batch to the OS before `commit` returns; its own
//! thread fsyncs every `fsync_ms` (or each batch is synced when `fsync_ms`
//! is 0). Past `max_bytes` of records, the oldest events by system time
//! are evicted (down to 90 % of it).
//!
//! Threads: fjall's flush, compaction, fsync and monitor threads belong
//! to the keyspace; `close` drops it, which stops and waits for them.

mod codec;
mod journal;
pub mod ordered;

pub use codec::Compression;
use codec::{Header, Parsed, Trained};
pub use journal::Blocked;
use journal::Journal;

use super::query::{Order, Query};
use crate::error::{CoreError, CoreResult};
use fjall::{
    GarbageCollection, Keyspace, KvSeparationOptions, PartitionCreateOptions, PartitionHandle,
    PersistMode,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// Settings of a warm tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmConfig {
    /// Directory of the tier (created if missing).
    pub path: PathBuf,
    /// Record bytes kept before the oldest events are evicted (0: no bound).
    pub max_bytes: u64,
    /// Body compression.
    pub compression: Compression,
    /// Milliseconds between background fsyncs; 0 syncs every write batch.
    pub fsync_ms: u16,
    /// Writes go through the memory-mapped journal ([`Warm::write_journal`];
    /// only with `fsync_ms` above 0), applied to the engine by a thread of
    /// the tier ([`Warm::start_threads`]).
    pub journal: bool,
}

/// An event to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmEvent {
    /// Event id.
    pub id: u64,
    /// Event type name.
    pub event_type: Vec<u8>,
    /// `timestamp + time offset` of the storing VM lifetime.
    pub sys_ts: i64,
    /// Correlation id bytes, if any.
    pub correlation_id: Option<Vec<u8>>,
    /// The event in external term format.
    pub body: Vec<u8>,
}

/// An event ready to append: its record built (body compressed) by
/// [`Warm::pack`], all but its arrival sequence and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    id: u64,
    event_type: Vec<u8>,
    sys_ts: i64,
    correlation_id: Option<Vec<u8>>,
    record: Vec<u8>,
}

/// An event as a writer hands it to the journal (borrowed: it is copied
/// into the journal as is; the apply thread compresses its body).
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// Event id.
    pub id: u64,
    /// Event type name.
    pub event_type: &'a [u8],
    /// `timestamp + time offset` of the storing VM lifetime.
    pub sys_ts: i64,
    /// Correlation id bytes, if any.
    pub correlation_id: Option<&'a [u8]>,
    /// The event in external term format.
    pub body: &'a [u8],
}

/// A stored event read back: its system timestamp, id and body (ETF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `timestamp + time offset` of the lifetime that stored it.
    pub sys_ts: i64,
    /// Event id.
    pub id: u64,
    /// The event in external term format, as stored.
    pub body: Vec<u8>,
}

/// Counters of a warm tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WarmStats {
    /// Events held.
    pub events: u64,
    /// Record and index bytes held (what `max_bytes` bounds).
    pub bytes: u64,
    /// Bytes the directory's files take on disk.
    pub disk_bytes: u64,
    /// Events evicted by the size bound.
    pub evicted: u64,
    /// Damaged records seen (each id counted once).
    pub corrupt_records: u64,
    /// Events stored over the directory's life (overwrites included).
    pub stored: u64,
    /// Events removed by `prune_before`.
    pub pruned: u64,
}

/// Persisted counters (the `meta` partition), changed only by the writer.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    seq: u64,
    events: u64,
    bytes: u64,
    evicted: u64,
    stored: u64,
    pruned: u64,
    /// Acknowledged events the engine no longer had on open (see `Acked`).
    lost: u64,
    /// The highest id written (at least the highest on disk): a write of a
    /// higher id cannot overwrite anything, so it skips the lookup of an
    /// older version. `UNKNOWN_TOP` when the counters predate it.
    top: u64,
    /// The journal position after the last frame applied (see `journal`).
    jpos: u64,
}

const UNKNOWN_TOP: u64 = u64::MAX;

impl Counters {
    fn encode(&self) -> Vec<u8> {
        [
            self.seq,
            self.events,
            self.bytes,
            self.evicted,
            self.stored,
            self.pruned,
            self.lost,
            self.top,
            self.jpos,
        ]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
    }

    fn decode(bytes: &[u8]) -> Option<Counters> {
        let mut v = bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()));
        Some(Counters {
            seq: v.next()?,
            events: v.next()?,
            bytes: v.next()?,
            evicted: v.next()?,
            stored: v.next()?,
            pruned: v.next()?,
            lost: v.next().unwrap_or(0),
            top: v.next().unwrap_or(UNKNOWN_TOP),
            jpos: v.next().unwrap_or(0),
        })
    }
}

const COUNTERS: &[u8] = b"counters";

/// Memtables (all partitions) kept before writes wait for flushes. Below
/// 90 % of it fjall never stalls a writer; a buffer much smaller than the
/// writes in flight made every write wait for flushes (figures in
/// docs/benchmarks.md).
const WRITE_BUFFER: u64 = 128 * 1024 * 1024;
/// Journal bytes kept before writes wait for flushes; also what a reopen
/// may have to replay (the recovery time bound). The engine counts a
/// sealed journal at its file size, and it makes each file 32 MiB ahead,
/// however little the journal holds: every rotation of `blocks` (16 MiB
/// of data, `EVENTS_MEMTABLE`) and of `meta` (see
/// `Engine::let_journals_go`) seals one. At 128 MiB four sealed files
/// reached the engine's 90 % mark, where it puts the writer to sleep
/// for 500 ms, whenever the flushes of two `blocks` memtables lagged on a
/// busy machine; 256 MiB leaves room for four of them, with at most
/// 64 MiB of data to replay.
const JOURNALS: u64 = 256 * 1024 * 1024;
/// Memtable size per partition: a flush (and the end of a journal's life)
/// comes every few MiB of writes.
const MEMTABLE: u32 = 4 * 1024 * 1024;
/// Memtable size of the `blocks` partition (and the `events` one). Every
/// memtable rotation starts a new journal, and a journal is retired only
/// once every partition has
/// flushed what it holds; the index partitions fill several times slower
/// than `blocks`, so with its memtable at `MEMTABLE` the journals reached
/// `JOURNALS` within a few hundred thousand events and writes halted
/// (100 ms at a time) until the engine's monitor flushed the index trees.
/// A bigger one keeps the journal count low under sustained ingest
/// (100 000 events in batches of 1 000: 2.8 s at 4 MiB, 1.5 s at 16 MiB).
const EVENTS_MEMTABLE: u32 = 16 * 1024 * 1024;

struct Engine {
    keyspace: Keyspace,
    /// Records one per event (directories written before blocks).
    events: PartitionHandle,
    /// Blocks of records (see `codec::block`).
    blocks: PartitionHandle,
    meta: PartitionHandle,
    /// The engine's journal count after `meta`'s last rotation (see
    /// `Engine::let_journals_go`).
    journals: AtomicUsize,
    /// Holds the directory's `flock` until the engine is dropped.
    _lock: File,
}

/// Group commit: queued events and how far the leader has written.
#[derive(Default)]
struct Group {
    queue: Vec<Packed>,
    /// Tickets handed out (one per queued event).
    next: u64,
    /// Tickets below this are written (or failed).
    done: u64,
    leader: bool,
    /// Recent failed ticket ranges and their error.
    failures: Vec<(u64, u64, String)>,
}

/// (system timestamp, id) entries of one type or correlation id.
type Entries = ordered::Ordered;

/// The in-memory indexes by id, by time, by type and by correlation id:
/// what index ranges of a disk layout would hold, without their engine
/// writes. Changed by the writer after each commit; rebuilt from the
/// records on open.
#[derive(Default)]
struct Mem {
    by_time: Entries,
    by_type: FxHashMap<Vec<u8>, Entries>,
    by_cid: FxHashMap<Vec<u8>, Entries>,
    /// Every id on disk, as (`id_key(id)`, where: a block key, or `LEGACY`
    /// for a record of the `events` partition), in id order.
    ids: Entries,
    /// Live records per block. An overwrite leaves the old record in its
    /// block (the index rebuild keeps the version with the higher arrival
    /// sequence); a block whose records are all replaced is removed.
    live: FxHashMap<Loc, u32>,
}

/// Where an event's record is: the key of its block, or `LEGACY` (the
/// `events` partition, under its id). Block keys start at 1.
type Loc = u64;
const LEGACY: Loc = 0;

/// An id as the first half of an `Entries` key, in the ids' order.
fn id_key(id: u64) -> i64 {
    (id ^ (1 << 63)) as i64
}

fn id_of_key(k: i64) -> u64 {
    (k as u64) ^ (1 << 63)
}

/// Which in-memory index a read walks (`Time`: all events).
#[derive(Clone, Copy)]
enum Side {
    Time,
    Type,
    Cid,
}

impl Side {
    /// Whether the event of header `h` belongs to this index's `name`.
    fn holds(self, name: &[u8], h: &Header) -> bool {
        match self {
            Side::Time => true,
            Side::Type => h.event_type == name,
            Side::Cid => h.correlation_id.as_deref() == Some(name),
        }
    }
}

impl Mem {
    /// Takes the id entry of `id` at `loc` out, with its block's count.
    fn unlocate(&mut self, id: u64, loc: Loc) {
        if self.ids.remove(&(id_key(id), loc)) && loc != LEGACY {
            if let Some(n) = self.live.get_mut(&loc) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.live.remove(&loc);
                }
            }
        }
    }

    /// Live records of block `loc`.
    fn live(&self, loc: Loc) -> u32 {
        self.live.get(&loc).copied().unwrap_or(0)
    }

    fn remove(&mut self, event_type: &[u8], cid: Option<&[u8]>, key: (i64, u64), loc: Loc) {
        let take = |map: &mut FxHashMap<Vec<u8>, Entries>, name: &[u8]| {
            if let Some(set) = map.get_mut(name) {
                set.remove(&key);
                if set.is_empty() {
                    map.remove(name);
                }
            }
        };
        self.by_time.remove(&key);
        take(&mut self.by_type, event_type);
        if let Some(cid) = cid {
            take(&mut self.by_cid, cid);
        }
        self.unlocate(key.1, loc);
    }

    fn apply(&mut self, ops: Vec<MemOp>) {
        // Consecutive additions go in together (`add_all`); the order of
        // an addition and a removal of the same key is kept.
        let mut adds = Vec::with_capacity(ops.len());
        for op in ops {
            if !matches!(op, MemOp::Add(..)) {
                self.add_all(std::mem::take(&mut adds));
            }
            match op {
                MemOp::Add(h, id, loc) => adds.push((h, id, loc)),
                MemOp::Remove(h, id, loc) => self.remove(
                    &h.event_type,
                    h.correlation_id.as_deref(),
                    (h.sys_ts, id),
                    loc,
                ),
                MemOp::Forget(key) => self.forget(key),
                MemOp::Unlocate(id, loc) => self.unlocate(id, loc),
            }
        }
        self.add_all(adds);
    }

    /// Adds the events of a batch: each index takes its keys in ascending
    /// order (by type and by correlation id: grouped by name first), so an
    /// index's blocks are visited once a batch, not once an event (see
    /// `Ordered::insert_sorted`). One event at a time, the blocks of a
    /// thousand correlation ids fall out of the cache between two of their
    /// events.
    fn add_all(&mut self, adds: Vec<(Header, u64, Loc)>) {
        if adds.is_empty() {
            return;
        }
        let mut keys: Vec<(i64, u64)> = adds.iter().map(|(h, id, _)| (h.sys_ts, *id)).collect();
        keys.sort_unstable();
        self.by_time.insert_sorted(&keys, |_| ());
        let mut ids: Vec<(i64, Loc)> = adds.iter().map(|&(_, id, loc)| (id_key(id), loc)).collect();
        ids.sort_unstable();
        let live = &mut self.live;
        self.ids.insert_sorted(&ids, |(_, loc)| {
            if loc != LEGACY {
                *live.entry(loc).or_insert(0) += 1;
            }
        });
        let mut types: FxHashMap<&[u8], Vec<(i64, u64)>> = FxHashMap::default();
        let mut cids: FxHashMap<&[u8], Vec<(i64, u64)>> = FxHashMap::default();
        for (h, id, _) in &adds {
            let key = (h.sys_ts, *id);
            types.entry(&h.event_type).or_default().push(key);
            if let Some(cid) = &h.correlation_id {
                cids.entry(cid).or_default().push(key);
            }
        }
        for (map, groups) in [(&mut self.by_type, types), (&mut self.by_cid, cids)] {
            for (name, mut keys) in groups {
                keys.sort_unstable();
                let set = match map.get_mut(name) {
                    Some(set) => set,
                    None => map.entry(name.to_vec()).or_default(),
                };
                set.insert_sorted(&keys, |_| ());
            }
        }
    }

    /// Where the record of `id` is (the newest place, should an id be in
    /// two).
    fn loc(&self, id: u64) -> Option<Loc> {
        use std::ops::Bound::Included;
        let k = id_key(id);
        let found = self
            .ids
            .range(Included(&(k, 0)), Included(&(k, u64::MAX)), true, 1);
        found.first().map(|&(_, loc)| loc)
    }

    /// Up to `max` (id, where) entries after id `after` (exclusive), by id.
    fn ids_after(&self, after: Option<u64>, max: usize) -> Vec<(u64, Loc)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let from = after.map(|id| (id_key(id), u64::MAX));
        let lower = from.as_ref().map_or(Unbounded, Excluded);
        let upper: std::ops::Bound<&(i64, u64)> = Included(&(i64::MAX, u64::MAX));
        self.ids
            .range(lower, upper, false, max)
            .into_iter()
            .map(|(k, loc)| (id_of_key(k), loc))
            .collect()
    }

    /// Removes a time entry whose record is damaged or gone (its type and
    /// correlation id are unknown; reads skip what is left of it there).
    fn forget(&mut self, key: (i64, u64)) {
        self.by_time.remove(&key);
    }

    /// Up to `max` entries of `name` in `side` within `[lo, hi]`, after
    /// `after` (exclusive) in the walk's direction (`Side::Time` ignores
    /// `name`).
    fn range(
        &self,
        side: Side,
        name: &[u8],
        (lo, hi): ((i64, u64), (i64, u64)),
        after: Option<(i64, u64)>,
        desc: bool,
        max: usize,
    ) -> Vec<(i64, u64)> {
        use std::ops::Bound::{Excluded, Included};
        let set = match side {
            Side::Time => Some(&self.by_time),
            Side::Type => self.by_type.get(name),
            Side::Cid => self.by_cid.get(name),
        };
        let Some(set) = set else {
            return Vec::new();
        };
        let lower = match &after {
            Some(a) if !desc && *a >= lo => Excluded(a),
            _ => Included(&lo),
        };
        let upper = match &after {
            Some(a) if desc && *a <= hi => Excluded(a),
            _ => Included(&hi),
        };
        set.range(lower, upper, desc, max)
    }
}

/// Each name's (system timestamp, id) entries, while the indexes are rebuilt.
type Lists = FxHashMap<Vec<u8>, Vec<(i64, u64)>>;

/// What one part of the index rebuild read: the time entries, the type and
/// correlation lists, and the ids of damaged records.
#[derive(Default)]
struct Part {
    times: Vec<(i64, u64)>,
    /// (`id_key`, arrival sequence, where) of every record read (a damaged
    /// record's sequence counts as 0).
    ids: Vec<(i64, u64, Loc)>,
    types: Lists,
    cids: Lists,
    corrupt: Vec<u64>,
}

fn push(lists: &mut Lists, name: &[u8], key: (i64, u64)) {
    match lists.get_mut(name) {
        Some(list) => list.push(key),
        None => {
            lists.insert(name.to_vec(), vec![key]);
        }
    }
}

/// The in-memory indexes and their rebuild after open.
#[derive(Default)]
struct MemState {
    mem: Mem,
    /// The rebuild has installed `mem`; until then reads by type or
    /// correlation id wait, and writes queue their changes in `pending`.
    ready: bool,
    /// Changes committed while the rebuild ran, applied once it is done.
    pending: Vec<MemOp>,
    /// Why the rebuild failed: reads through these indexes fail.
    failed: Option<String>,
    /// Damaged records the rebuild found, not yet counted by the tier.
    corrupt: Vec<u64>,
}

impl MemState {
    fn built(built: fjall::Result<(Mem, Vec<u64>)>) -> MemState {
        let mut state = MemState {
            ready: true,
            ..MemState::default()
        };
        match built {
            Ok((mem, corrupt)) => (state.mem, state.corrupt) = (mem, corrupt),
            Err(e) => state.failed = Some(format!("warm storage: index rebuild failed: {e}")),
        }
        state
    }

    /// What [`Opened`] records once this state is installed.
    fn opened(&self) -> i64 {
        match (&self.failed, self.mem.by_time.last()) {
            (Some(_), _) => Opened::UNKNOWN,
            (None, None) => Opened::NOTHING,
            (None, Some(&(ts, _))) => ts.max(Opened::NOTHING + 1),
        }
    }
}

/// The newest system time on disk when the indexes were built (with the
/// writes made while they were): the lifetimes before this one stored
/// nothing newer. An atomic, so a read on a normal scheduler learns it
/// without waiting on the index lock.
struct Opened(AtomicI64);

impl Opened {
    /// The rebuild has not finished, or it failed.
    const UNKNOWN: i64 = i64::MIN;
    /// There was nothing on disk.
    const NOTHING: i64 = i64::MIN + 1;

    fn unknown() -> Opened {
        Opened(AtomicI64::new(Opened::UNKNOWN))
    }

    fn set(&self, state: &MemState) {
        self.0.store(state.opened(), Release);
    }

    /// `None` while unknown, else the newest time, if any.
    fn get(&self) -> Option<Option<i64>> {
        match self.0.load(Acquire) {
            Opened::UNKNOWN => None,
            Opened::NOTHING => Some(None),
            ts => Some(Some(ts)),
        }
    }
}

/// An in-memory index change, applied once its batch is committed.
enum MemOp {
    /// An event written (its header, id and place).
    Add(Header, u64, Loc),
    /// An event removed.
    Remove(Header, u64, Loc),
    /// A time entry whose record is damaged or gone.
    Forget((i64, u64)),
    /// The id entry of a damaged record removed from its place.
    Unlocate(u64, Loc),
}

/// Keys one read takes from an in-memory index at a time (the lock is not
/// held while the records are read).
const MEM_CHUNK: usize = 512;

/// The warm tier. All methods take `&self`; share it behind an `Arc`.
pub struct Warm {
    engine: RwLock<Option<Arc<Engine>>>,
    mem: Arc<RwLock<MemState>>,
    /// What the rebuild found on disk (see [`Warm::floor`]).
    opened: Arc<Opened>,
    /// The thread rebuilding `mem` after open (joined by `close`).
    rebuild: Mutex<Option<std::thread::JoinHandle<()>>>,
    writer: Mutex<Counters>,
    group: Mutex<Group>,
    written: Condvar,
    corrupt: Mutex<HashSet<u64>>,
    /// Damaged ids not yet handed to `take_new_corrupt`.
    fresh_corrupt: Mutex<Vec<u64>>,
    /// Copies of the counters for lock-free `stats`.
    mirror: [AtomicU64; 7],
    /// `<path>/ACKED`: what the last acknowledged write left on disk.
    acked: Acked,
    max_bytes: u64,
    /// Events gone (`stored - events`) at the last collection of blob
    /// files (see `Warm::collect`).
    collected: AtomicU64,
    compression: Compression,
    sync_each: bool,
    /// The engine's directory (`<path>/data`).
    data: PathBuf,
    /// The directory's `flock` (each engine holds a duplicate); released
    /// by `close`.
    lock: Mutex<Option<File>>,
    config: WarmConfig,
    /// A write failed: the engine refuses writes until it is reopened.
    broken: AtomicBool,
    /// Test support: writes still to fail as a full disk would.
    #[cfg(any(test, feature = "test-support"))]
    fail_writes: AtomicU64,
    /// The ingest journal, when writes go through it.
    journal: Option<Journal>,
    /// The journal's apply and segment threads (joined by `close`).
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Trained zstd dictionaries of the directory, by id: records written
    /// by earlier versions name them (see `codec`).
    dicts: RwLock<FxHashMap<u32, Arc<Trained>>>,
    /// The newest system time of the events on disk that no memory tier
    /// got (`i64::MIN`: none): those the journal replayed on open (the
    /// index rebuild may have ended before them), and writes whose memory
    /// insert failed after their disk write (see `note_disk_only`).
    disk_only: AtomicI64,
}

/// `meta` keys of trained dictionaries: this prefix and the id.
const DICT_PREFIX: &[u8] = b"dict/";

impl Drop for Warm {
    /// The index rebuild thread holds the engine (and so the directory's
    /// lock): a dropped tier waits for it, so the directory is free after.
    fn drop(&mut self) {
        let _ = self.join_rebuild();
    }
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm")
            .field("max_bytes", &self.max_bytes)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("warm storage: {what} {}: {e}", path.display()))
}

fn engine_error(e: fjall::Error) -> CoreError {
    CoreError::Internal(format!("warm storage write failed: {e}"))
}

fn read_error(e: fjall::Error) -> CoreError {
    CoreError::Internal(format!("warm storage read failed: {e}"))
}

/// Order-preserving bytes of a signed timestamp.
fn ts_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from_key(bytes: &[u8]) -> i64 {
    let raw = u64::from_be_bytes(bytes.try_into().unwrap_or_default());
    (raw ^ (1 << 63)) as i64
}

fn id_from(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or_default())
}

fn type_prefix(t: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(t.len() + 18);
    k.extend_from_slice(&(t.len() as u16).to_be_bytes());
    k.extend_from_slice(t);
    k
}

fn cid_prefix(c: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(c.len() + 20);
    k.extend_from_slice(&(c.len() as u32).to_be_bytes());
    k.extend_from_slice(c);
    k
}

fn with_ts_id(mut prefix: Vec<u8>, ts: i64, id: u64) -> Vec<u8> {
    prefix.extend_from_slice(&ts_key(ts));
    prefix.extend_from_slice(&id.to_be_bytes());
    prefix
}

/// The in-memory index bounds of a time range (inclusive).
fn mem_bounds(range: Option<(i64, i64)>) -> ((i64, u64), (i64, u64)) {
    let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
    ((lo, 0), (hi, u64::MAX))
}

/// The (system timestamp, id) a cursor of an in-memory index ends on.
fn cursor_tail(cursor: &[u8]) -> CoreResult<(i64, u64)> {
    key_tail(cursor).ok_or_else(|| CoreError::InvalidInput("warm storage: malformed cursor".into()))
}

/// (system timestamp, id) of the last 16 bytes of an index key (a cursor).
fn key_tail(key: &[u8]) -> Option<(i64, u64)> {
    let n = key.len().checked_sub(16)?;
    Some((ts_from_key(&key[n..n + 8]), id_from(&key[n + 8..])))
}

/// The bytes an event counts for against the bound: its record and id key,
/// and the keys of its time, type and correlation index entries (as if
/// those indexes were on disk, so the count does not depend on where they
/// are kept; directories written when they were on disk count the same).
fn entry_size(h: &Header, record_len: usize) -> u64 {
    let cid = h.correlation_id.as_ref().map_or(0, |c| c.len() + 20);
    (8 + record_len + 16 + h.event_type.len() + 18 + cid) as u64
}

/// `<path>/ACKED`: the arrival sequence and live event count after the last
/// acknowledged write, rewritten in place (not synced) after each one.
///
/// The engine's journal recovery ends at the first batch it cannot decode
/// and cuts the journal there, so damage in the middle of a journal would
/// silently drop every later batch; a directory it refuses to open is moved
/// aside. Comparing this file with the counters the engine recovered tells
/// how many acknowledged events were lost either way; they are logged and
/// counted in `warm_corrupt_records`. (After a power loss within the fsync
/// window the lost events are counted the same way.)
struct Acked(Mutex<Option<File>>);

impl Acked {
    fn open(path: &Path) -> Acked {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path.join("ACKED"))
            .ok();
        Acked(Mutex::new(file))
    }

    /// The recorded `(seq, events)`, if the file holds a valid record.
    fn read(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::FileExt;
        let guard = self.0.lock().ok()?;
        let mut buf = [0u8; 20];
        guard.as_ref()?.read_exact_at(&mut buf, 0).ok()?;
        let crc = u32::from_be_bytes(buf[16..].try_into().ok()?);
        (codec::crc32(&buf[..16]) == crc).then(|| (id_from(&buf[..8]), id_from(&buf[8..16])))
    }

    /// Records `c` (a failed write only weakens the check on next open).
    fn write(&self, c: &Counters) {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 20];
        buf[..8].copy_from_slice(&c.seq.to_be_bytes());
        buf[8..16].copy_from_slice(&c.events.to_be_bytes());
        let crc = codec::crc32(&buf[..16]);
        buf[16..].copy_from_slice(&crc.to_be_bytes());
        if let Ok(guard) = self.0.lock() {
            if let Some(file) = guard.as_ref() {
                let _ = file.write_all_at(&buf, 0);
            }
        }
    }
}

/// The nice value of the tier's background threads (segments, and the
/// engine's flush, compaction and sync threads): callers' writes and reads
/// on the schedulers come first.
const BACKGROUND_NICE: libc::c_int = 10;

/// Puts the calling thread in the idle scheduling class (`SCHED_IDLE`): it
/// runs only on a CPU nothing else wants. The background apply thread
/// applies the journal so, in idle time; past half the lag bound (or when
/// a read waits) the urgent apply thread, at normal priority, takes over,
/// so a busy machine cannot starve the tier. Best effort.
fn idle_priority() {
    // SAFETY: plain system calls about the calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            super::background::lower_priority(19);
        }
    }
}

impl Engine {
    /// [`Engine::open`] on a short-lived thread of background priority, so
    /// the engine's threads (started by the open) inherit it.
    fn open_background(data: &Path, config: &WarmConfig, lock: File) -> fjall::Result<Engine> {
        let (data, config) = (data.to_path_buf(), config.clone());
        std::thread::Builder::new()
            .name("warm-open".into())
            .spawn(move || {
                super::background::lower_priority(BACKGROUND_NICE);
                Engine::open(&data, &config, lock)
            })
            .map_err(fjall::Error::Io)?
            .join()
            .unwrap_or_else(|_| {
                Err(fjall::Error::Io(std::io::Error::other(
                    "the engine's open panicked",
                )))
            })
    }

    fn open(data: &Path, config: &WarmConfig, lock: File) -> fjall::Result<Engine> {
        let mut cfg = fjall::Config::new(data)
            .flush_workers(2)
            .compaction_workers(1)
            .cache_size(8 * 1024 * 1024)
            .max_write_buffer_size(WRITE_BUFFER)
            .max_journaling_size(JOURNALS);
        if config.fsync_ms > 0 {
            cfg = cfg.fsync_ms(Some(config.fsync_ms));
        }
        let keyspace = cfg.open()?;
        let plain = || PartitionCreateOptions::default().max_memtable_size(MEMTABLE);
        // Bodies are compressed by the codec (or stored raw for `:none`).
        let records = || {
            plain()
                .max_memtable_size(EVENTS_MEMTABLE)
                .compression(fjall::CompressionType::None)
        };
        let events = keyspace.open_partition("events", records())?;
        // A new directory keeps its blocks in blob files beside the tree
        // (the tree holds their keys and places): compactions then move a
        // few bytes per block instead of rewriting every record two or
        // three times (see `Warm::collect` for the space they leave). An
        // existing partition keeps the layout it was made with.
        let blobs = KvSeparationOptions::default().file_target_size(blob_file_bytes(config));
        let blocks = keyspace.open_partition("blocks", records().with_kv_separation(blobs))?;
        let meta = keyspace.open_partition("meta", plain())?;
        // Older layouts kept the time, type and correlation indexes on
        // disk; they are rebuilt in memory now (see `Engine::mem`).
        for old in ["by_time", "by_type", "by_cid"] {
            if keyspace.partition_exists(old) {
                let handle = keyspace.open_partition(old, plain())?;
                // Deleted only once the engine is flushing nothing: a
                // write of its own makes the rotation below happen, and it
                // returns when every queued flush is done (a flush of a
                // deleted partition would bring the engine down).
                handle.insert(b"\0", b"")?;
                handle.rotate_memtable_and_wait()?;
                keyspace.delete_partition(handle)?;
            }
        }
        Ok(Engine {
            keyspace,
            events,
            blocks,
            meta,
            journals: AtomicUsize::new(0),
            _lock: lock,
        })
    }

    /// Lets the engine retire its journals as soon as `blocks` has
    /// flushed them. The engine deletes a journal once every partition
    /// has flushed what was written while it was active. `blocks` rotates
    /// its memtable every `EVENTS_MEMTABLE` bytes (starting a new
    /// journal), but `meta` (a few small keys rewritten by every commit)
    /// hardly ever fills its own, so the journals stayed until the
    /// engine's monitor (every 250 ms, once they pass half of `JOURNALS`)
    /// rotated it, and a long ingest reached the engine's 90 % mark,
    /// where the apply thread slept 500 ms (twice per 400 000 uncompressed
    /// events in the bench). So when the journal count has grown since
    /// the last time, `meta` rotates too (its flush is a tiny table).
    fn let_journals_go(&self) {
        let count = self.keyspace.journal_count();
        let seen = self.journals.load(Relaxed);
        if count > seen.max(1) {
            if self.meta.rotate_memtable().is_ok() {
                self.journals.store(self.keyspace.journal_count(), Relaxed);
            }
        } else if count < seen {
            self.journals.store(count, Relaxed);
        }
    }

    /// The in-memory indexes, from the records' headers, and the ids of
    /// the records that fail their checksum. The blocks (and the records
    /// of the `events` partition) are read in parts on parallel threads,
    /// cut by key; each name's entries are sorted once all are read, and
    /// its set is built in bulk.
    fn mem(&self) -> fjall::Result<(Mem, Vec<u64>)> {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
        let mut ranges = Vec::new();
        for (legacy, part) in [(true, &self.events), (false, &self.blocks)] {
            if let (Some((first, _)), Some((last, _))) =
                (part.first_key_value()?, part.last_key_value()?)
            {
                let (lo, hi) = (u128::from(id_from(&first)), u128::from(id_from(&last)));
                // Part i covers keys from cuts[i] (inclusive) to cuts[i + 1].
                let cuts: Vec<Option<[u8; 8]>> = (0..=parts)
                    .map(|i| match i {
                        0 => None,
                        i if i == parts => None,
                        i => {
                            let key = lo + (hi - lo) * i as u128 / parts as u128;
                            Some((key as u64).to_be_bytes())
                        }
                    })
                    .collect();
                ranges.extend(cuts.windows(2).map(|w| (legacy, w[0], w[1])));
            }
        }
        let read = |&(legacy, from, to): &(bool, Option<[u8; 8]>, Option<[u8; 8]>)| {
            use std::ops::Bound::{Excluded, Included, Unbounded};
            let lower = from.map_or(Unbounded, Included);
            let upper = to.map_or(Unbounded, Excluded);
            let mut part = Part::default();
            let add = |part: &mut Part, id: u64, record: &[u8], loc: Loc| {
                let Some(p) = codec::parse(record) else {
                    part.corrupt.push(id);
                    // Its id entry stays: an overwrite then replaces it.
                    part.ids.push((id_key(id), 0, loc));
                    return;
                };
                let tail = (p.header.sys_ts, id);
                part.times.push(tail);
                part.ids.push((id_key(id), p.header.seq, loc));
                push(&mut part.types, &p.header.event_type, tail);
                if let Some(cid) = &p.header.correlation_id {
                    push(&mut part.cids, cid, tail);
                }
            };
            let source = if legacy { &self.events } else { &self.blocks };
            for kv in source.range::<[u8; 8], _>((lower, upper)) {
                let (key, value) = kv?;
                let key = id_from(&key);
                if legacy {
                    add(&mut part, key, &value, LEGACY);
                    continue;
                }
                match Held::read(value).slots() {
                    Some(slots) => {
                        for (id, record) in slots {
                            add(&mut part, id, record, key);
                        }
                    }
                    // Its events are unknown: counted as one damaged record.
                    None => part.corrupt.push(u64::MAX - key),
                }
            }
            Ok(part)
        };
        let results: Vec<fjall::Result<Part>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .skip(1)
                .map(|r| scope.spawn(move || read(r)))
                .collect();
            let mut results: Vec<_> = ranges.first().map(read).into_iter().collect();
            for h in handles {
                results.push(h.join().unwrap_or_else(|_| {
                    Err(fjall::Error::Io(std::io::Error::other(
                        "index rebuild panicked",
                    )))
                }));
            }
            results
        });
        let mut all = Part::default();
        for part in results {
            let part = part?;
            all.times.extend(part.times);
            all.ids.extend(part.ids);
            all.corrupt.extend(part.corrupt);
            for (into, from) in [(&mut all.types, part.types), (&mut all.cids, part.cids)] {
                for (name, list) in from {
                    into.entry(name).or_default().extend(list);
                }
            }
        }
        let sets = |lists: Lists| {
            lists
                .into_iter()
                .map(|(name, list)| (name, list.into_iter().collect::<Entries>()))
                .collect()
        };
        let mut mem = Mem {
            by_time: all.times.into_iter().collect(),
            by_type: sets(all.types),
            by_cid: sets(all.cids),
            ..Mem::default()
        };
        // An id in two places was overwritten (the old record stays in its
        // block): the higher arrival sequence is the event; the other's
        // index entries go, and the event's are put back (they may be the
        // same keys).
        // Sorted by id then arrival sequence: the last of each id's run wins.
        let mut ids = all.ids;
        ids.sort_unstable();
        let mut winners: Vec<(i64, u64)> = Vec::with_capacity(ids.len());
        let mut replaced = Vec::new();
        for run in ids.chunk_by(|a, b| a.0 == b.0) {
            let Some((&(k, _, at), older)) = run.split_last() else {
                continue;
            };
            winners.push((k, at));
            if !older.is_empty() {
                let old: Vec<Loc> = older.iter().map(|&(_, _, loc)| loc).collect();
                replaced.push((id_of_key(k), at, old));
            }
        }
        for &(_, loc) in &winners {
            if loc != LEGACY {
                *mem.live.entry(loc).or_insert(0) += 1;
            }
        }
        mem.ids = winners.into_iter().collect();
        // The replaced versions' index entries go; the winner's are put
        // back after them (they may be the same keys). Neither touches the
        // id index or the block counts built above.
        let mut ops = Vec::new();
        for (id, at, old) in replaced {
            for loc in old {
                if let Some(h) = self.header_at(id, loc)? {
                    ops.push(MemOp::Remove(h, id, loc));
                }
            }
            if let Some(h) = self.header_at(id, at)? {
                ops.push(MemOp::Add(h, id, at));
            }
        }
        mem.apply(ops);
        Ok((mem, all.corrupt))
    }

    /// The header of the record of `id` at `loc`, if it is there and whole.
    fn header_at(&self, id: u64, loc: Loc) -> fjall::Result<Option<Header>> {
        let header = |record: &[u8]| codec::parse(record).map(|p| p.header);
        Ok(match loc {
            LEGACY => self.events.get(id.to_be_bytes())?.and_then(|r| header(&r)),
            key => self
                .blocks
                .get(key.to_be_bytes())?
                .and_then(|b| Held::read(b).find(id).flatten().and_then(header)),
        })
    }

    fn top_id(&self) -> fjall::Result<u64> {
        Ok(self
            .events
            .last_key_value()?
            .map_or(0, |(k, _)| id_from(&k)))
    }

    fn counters(&self) -> fjall::Result<Counters> {
        let mut counters = self
            .meta
            .get(COUNTERS)?
            .and_then(|v| Counters::decode(&v))
            .unwrap_or(Counters {
                top: UNKNOWN_TOP,
                ..Counters::default()
            });
        if counters.top == UNKNOWN_TOP {
            counters.top = self.top_id()?;
        }
        Ok(counters)
    }
}

impl Warm {
    /// Opens (or creates) the tier at `config.path`. Returns the tier and
    /// notes to log (e.g. a damaged directory moved aside). Errors: the
    /// path cannot be created or written, or another process owns it.
    pub fn open(config: &WarmConfig) -> CoreResult<(Warm, Vec<String>)> {
        let path = &config.path;
        std::fs::create_dir_all(path).map_err(|e| io_error("cannot create", path, e))?;
        let lock_path = path.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error("cannot write", path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CoreError::Internal(format!(
                    "warm storage: {} is in use by another process (lock {})",
                    path.display(),
                    lock_path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("cannot lock", path, e)),
        }
        let data = path.join("data");
        let mut notes = Vec::new();
        let acked = Acked::open(path);
        let recorded = acked.read();
        let mut moved = false;
        let engine = match Engine::open_background(&data, config, clone_lock(&lock, path)?) {
            Ok(engine) => engine,
            Err(e) => {
                moved = true;
                let aside = path.join(format!("data.damaged-{}", unix_ms()));
                std::fs::rename(&data, &aside)
                    .map_err(|e| io_error("cannot move aside", path, e))?;
                notes.push(format!(
                    "warm storage: the engine refused {} ({e}); moved it to {} and started empty",
                    data.display(),
                    aside.display()
                ));
                Engine::open_background(&data, config, clone_lock(&lock, path)?)
                    .map_err(|e| io_error("cannot open", &data, e))?
            }
        };
        let counters = engine.counters().map_err(read_error)?;
        let (journal, frames) = if config.journal && config.fsync_ms > 0 {
            let (journal, frames, jnotes) = Journal::open(&path.join("journal"), counters.jpos)?;
            notes.extend(jnotes);
            (Some(journal), frames)
        } else {
            (None, Vec::new())
        };
        // The type and correlation indexes are rebuilt on a thread of the
        // tier, so the tier answers (and takes writes) at once; reads that
        // need those indexes wait for it.
        let engine = Arc::new(engine);
        let mem = Arc::new(RwLock::new(MemState::default()));
        let opened = Arc::new(Opened::unknown());
        let rebuild = {
            let (engine, mem, opened) =
                (Arc::clone(&engine), Arc::clone(&mem), Arc::clone(&opened));
            std::thread::Builder::new()
                .name("warm-index".into())
                .spawn(move || {
                    let mut built = MemState::built(engine.mem());
                    drop(engine);
                    if let Ok(mut state) = mem.write() {
                        let pending = std::mem::take(&mut state.pending);
                        built.mem.apply(pending);
                        // Replayed writes of the last lifetime are among
                        // them (and this one's first writes: harmless).
                        opened.set(&built);
                        *state = built;
                    }
                })
                .map_err(|e| io_error("cannot start the index thread for", path, e))?
        };
        let warm = Warm {
            engine: RwLock::new(Some(engine)),
            mem,
            opened,
            rebuild: Mutex::new(Some(rebuild)),
            writer: Mutex::new(counters),
            group: Mutex::new(Group::default()),
            written: Condvar::new(),
            corrupt: Mutex::new(HashSet::new()),
            fresh_corrupt: Mutex::new(Vec::new()),
            mirror: Default::default(),
            max_bytes: config.max_bytes,
            collected: AtomicU64::new(counters.stored.saturating_sub(counters.events)),
            compression: config.compression,
            sync_each: config.fsync_ms == 0,
            data,
            lock: Mutex::new(Some(lock)),
            config: config.clone(),
            broken: AtomicBool::new(false),
            acked,
            #[cfg(any(test, feature = "test-support"))]
            fail_writes: AtomicU64::new(0),
            journal,
            threads: Mutex::new(Vec::new()),
            dicts: RwLock::new(FxHashMap::default()),
            disk_only: AtomicI64::new(i64::MIN),
        };
        warm.load_dicts()?;
        // Frames the engine had not got when the last lifetime ended.
        warm.replay(frames)?;
        let mut counters = warm.writer.lock().map_err(CoreError::poisoned)?;
        // Acknowledged events the engine did not give back (see `Acked`).
        let lost = match recorded {
            Some((_, events)) if moved => events,
            Some((seq, _)) => seq.saturating_sub(counters.seq),
            None => 0,
        };
        if lost > 0 {
            notes.push(format!(
                "warm storage: {lost} acknowledged event(s) in {} could not be recovered \
                 (damaged journal or data); counted in warm_corrupt_records",
                warm.data.display()
            ));
            counters.lost += lost;
            warm.engine()?
                .meta
                .insert(COUNTERS, counters.encode())
                .map_err(engine_error)?;
        }
        warm.acked.write(&counters);
        warm.publish(&counters);
        drop(counters);
        Ok((warm, notes))
    }

    /// Reads the directory's trained dictionaries.
    fn load_dicts(&self) -> CoreResult<()> {
        let engine = self.engine()?;
        let mut dicts = self.dicts.write().map_err(CoreError::poisoned)?;
        for kv in engine.meta.prefix(DICT_PREFIX) {
            let (key, value) = kv.map_err(read_error)?;
            let Some(id) = key
                .get(DICT_PREFIX.len()..)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
            else {
                continue;
            };
            dicts.insert(id, Arc::new(Trained::new(value.to_vec())));
        }
        Ok(())
    }

    /// The trained dictionary `id`.
    fn dict(&self, id: u32) -> Option<Arc<Trained>> {
        self.dicts.read().ok()?.get(&id).cloned()
    }

    /// Applies replayed journal frames in order, syncs the engine, and
    /// deletes the segments they came from.
    fn replay(&self, frames: journal::Replayed) -> CoreResult<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if frames.is_empty() {
            return journal.retire_replayed();
        }
        let mut chunk: Vec<&[u8]> = Vec::new();
        let mut bytes = 0;
        for (i, (payload, next)) in frames.iter().enumerate() {
            chunk.push(payload);
            bytes += payload.len();
            if bytes >= APPLY_BYTES || i + 1 == frames.len() {
                // Events of the last lifetime that only the journal had: on
                // disk now, and in no memory (see `floor`).
                if let Some(ts) = self.apply_frames(&chunk, *next)? {
                    self.note_disk_only(ts);
                }
                chunk.clear();
                bytes = 0;
            }
        }
        self.engine()?
            .keyspace
            .persist(PersistMode::SyncAll)
            .map_err(engine_error)?;
        journal.retire_replayed()
    }

    /// Writes journal frames to the engine as one batch (with `next`, the
    /// journal position after them); returns the newest system time among
    /// their events.
    fn apply_frames(&self, frames: &[&[u8]], next: u64) -> CoreResult<Option<i64>> {
        let mut events = Vec::with_capacity(frames.iter().map(|f| frame_len(f)).sum());
        let mut newest = None;
        for frame in frames {
            if !decode_frame(frame, &mut |e: Incoming<'_>| {
                newest = newest.max(Some(e.sys_ts));
                events.push(self.pack_body(
                    e.id,
                    e.event_type.to_vec(),
                    e.sys_ts,
                    e.correlation_id.map(<[u8]>::to_vec),
                    e.body,
                )?);
                Ok(())
            })? {
                return Err(CoreError::Internal(
                    "warm storage: a journal frame does not decode".into(),
                ));
            }
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.commit(events, Some(next))
        }))
        .unwrap_or_else(|_| {
            Err(CoreError::Internal(
                "warm storage: the apply panicked".into(),
            ))
        })
        .map(|()| newest)
    }

    /// Whether writes go through the journal.
    pub fn journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// Whether a journal write now would wait for the apply thread (a
    /// caller on a normal scheduler then goes to a dirty one before doing
    /// any of the write's work).
    pub fn journal_full(&self) -> bool {
        self.journal.as_ref().is_some_and(Journal::full)
    }

    /// The journal frame of `events` (for [`Warm::write_journal`]).
    pub fn journal_frame(events: &[Incoming<'_>]) -> Vec<u8> {
        let size = events
            .iter()
            .map(|e| {
                e.body.len() + e.event_type.len() + e.correlation_id.map_or(0, <[u8]>::len) + 30
            })
            .sum::<usize>()
            + 4;
        let mut payload = Vec::with_capacity(size);
        encode_frame(events, &mut payload);
        payload
    }

    /// Appends a frame made by [`Warm::journal_frame`] to the journal; the
    /// events reach the engine on the tier's apply thread. With `wait`
    /// false this never blocks for long (see [`Blocked::Wait`]). Once it
    /// returns `Ok` the events survive a killed VM.
    pub fn write_journal(&self, frame: &[u8], wait: bool) -> Result<(), Blocked> {
        let Some(journal) = &self.journal else {
            return Err(Blocked::Failed(CoreError::Internal(
                "warm storage: no journal".into(),
            )));
        };
        journal.append(frame, wait)
    }

    /// Starts the journal's apply and segment threads (no journal: none).
    /// They hold the tier until [`Warm::close`] (or [`Warm::detach`]).
    pub fn start_threads(self: &Arc<Self>) -> CoreResult<()> {
        if self.journal.is_none() {
            return Ok(());
        }
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| CoreError::Internal(format!("warm storage: no {name} thread: {e}")))
        };
        let applier = |urgent: bool| {
            let w = Arc::clone(self);
            move || {
                if !urgent {
                    idle_priority();
                }
                if let Some(j) = &w.journal {
                    j.run_applier(
                        urgent,
                        |frames, next| w.apply_frames(frames, next).map(|_| ()),
                        || w.persist(),
                        APPLY_BYTES,
                    );
                }
            }
        };
        let background = spawn("warm-apply", Box::new(applier(false)))?;
        let urgent = spawn("warm-apply-urgent", Box::new(applier(true)))?;
        let w = Arc::clone(self);
        let sync = std::time::Duration::from_millis(u64::from(self.config.fsync_ms));
        let preparer = spawn(
            "warm-segments",
            Box::new(move || {
                super::background::lower_priority(BACKGROUND_NICE);
                if let Some(j) = &w.journal {
                    j.run_preparer(Some(sync));
                }
            }),
        )?;
        self.threads
            .lock()
            .map_err(CoreError::poisoned)?
            .extend([background, urgent, preparer]);
        Ok(())
    }

    /// Lets the journal's threads end on their own once everything is
    /// applied (a tier dropped without `close`).
    pub fn detach(&self) {
        if let Some(j) = &self.journal {
            j.close();
        }
    }

    /// Syncs the engine's journal to disk.
    fn persist(&self) -> CoreResult<()> {
        self.engine()?
            .keyspace
            .persist(PersistMode::SyncData)
            .map_err(engine_error)
    }

    /// Waits until every journal frame written before the call is in the
    /// engine (reads see every acknowledged write).
    pub fn caught_up(&self) -> CoreResult<()> {
        match &self.journal {
            Some(j) => j.barrier(),
            None => Ok(()),
        }
    }

    fn engine(&self) -> CoreResult<Arc<Engine>> {
        self.engine
            .read()
            .map_err(CoreError::poisoned)?
            .clone()
            .ok_or(CoreError::Closed)
    }

    fn publish(&self, c: &Counters) {
        let values = [
            c.seq, c.events, c.bytes, c.evicted, c.stored, c.pruned, c.lost,
        ];
        for (slot, v) in self.mirror.iter().zip(values) {
            slot.store(v, Relaxed);
        }
    }

    /// Builds an event's record (compressing its body) for
    /// [`Warm::append_packed`], so writers can compress in parallel before
    /// the shared write.
    pub fn pack(&self, ev: WarmEvent) -> CoreResult<Packed> {
        self.pack_body(ev.id, ev.event_type, ev.sys_ts, ev.correlation_id, &ev.body)
    }

    /// [`Warm::pack`] of an event given by its parts (`body`: the event
    /// in external term format).
    pub fn pack_body(
        &self,
        id: u64,
        event_type: Vec<u8>,
        sys_ts: i64,
        correlation_id: Option<Vec<u8>>,
        body: &[u8],
    ) -> CoreResult<Packed> {
        // The records of a block are compressed together (see
        // `codec::pack_block`): the body goes in raw.
        let cid = correlation_id.as_deref();
        let record = codec::unsealed(sys_ts, &event_type, cid, body)
            .map_err(|e| CoreError::InvalidInput(format!("warm storage: {e}")))?;
        Ok(Packed {
            id,
            event_type,
            sys_ts,
            correlation_id,
            record,
        })
    }

    /// Persists `events` in order (later ones overwrite earlier ones with
    /// the same id). Returns once they are handed to the OS (or synced,
    /// with `fsync_ms` 0). Concurrent callers share one write.
    pub fn append(&self, events: Vec<WarmEvent>) -> CoreResult<()> {
        let packed = events
            .into_iter()
            .map(|ev| self.pack(ev))
            .collect::<CoreResult<Vec<_>>>()?;
        self.append_packed(packed)
    }

    /// [`Warm::append_packed`] for a caller that gathers concurrent writers
    /// itself (one writer thread): writes `events` as one batch now,
    /// without the group-commit queue. Concurrent calls are still safe
    /// (they write one after the other).
    pub fn append_now(&self, events: Vec<Packed>) -> CoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.commit(events, None)
    }

    /// [`Warm::append`] of events packed already.
    pub fn append_packed(&self, events: Vec<Packed>) -> CoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut g = self.group.lock().map_err(CoreError::poisoned)?;
        let start = g.next;
        g.next += events.len() as u64;
        let end = g.next;
        g.queue.extend(events);
        loop {
            if g.done >= end {
                return match g
                    .failures
                    .iter()
                    .find(|(a, b, _)| *a <= start && start < *b)
                {
                    Some((_, _, msg)) => Err(CoreError::Internal(msg.clone())),
                    None => Ok(()),
                };
            }
            if !g.leader {
                g.leader = true;
                let batch = std::mem::take(&mut g.queue);
                let (from, to) = (g.done, g.next);
                drop(g);
                let result = self.commit(batch, None);
                g = self.group.lock().map_err(CoreError::poisoned)?;
                g.done = to;
                g.leader = false;
                if let Err(e) = result {
                    if g.failures.len() >= 64 {
                        g.failures.remove(0);
                    }
                    g.failures.push((from, to, e.to_string()));
                }
                self.written.notify_all();
                continue;
            }
            g = self.written.wait(g).map_err(CoreError::poisoned)?;
        }
    }

    fn parse_header(&self, id: u64, record: &[u8]) -> Option<Header> {
        match codec::parse(record) {
            Some(p) => Some(p.header),
            None => {
                self.mark_corrupt(id);
                None
            }
        }
    }

    fn mark_corrupt(&self, id: u64) {
        if let Ok(mut set) = self.corrupt.lock() {
            if set.insert(id) {
                if let Ok(mut fresh) = self.fresh_corrupt.lock() {
                    fresh.push(id);
                }
            }
        }
    }

    /// The newest system time of the events on disk when the tier opened
    /// (and of the writes made until its indexes were rebuilt), which no
    /// event stored by an earlier lifetime passes: `Some(None)` when there
    /// were none, `None` while the rebuild runs (or when it failed).
    pub fn floor(&self) -> Option<Option<i64>> {
        let disk_only = Some(self.disk_only.load(Relaxed)).filter(|&ts| ts != i64::MIN);
        Some(self.opened.get()?.max(disk_only))
    }

    /// Records that events up to system time `sys_ts` are on disk and in no
    /// memory tier (a write whose memory insert failed after its disk
    /// write), so [`Warm::floor`] covers them.
    pub fn note_disk_only(&self, sys_ts: i64) {
        self.disk_only.fetch_max(sys_ts, Relaxed);
    }

    /// Counts the damaged records the index rebuild found.
    fn count_rebuild_corrupt(&self) {
        let found = match self.mem.try_write() {
            Ok(mut state) => std::mem::take(&mut state.corrupt),
            Err(_) => return,
        };
        for id in found {
            self.mark_corrupt(id);
        }
    }

    /// Ids of damaged records found since the last call (for the caller
    /// to log), each reported once.
    pub fn take_new_corrupt(&self) -> Vec<u64> {
        self.count_rebuild_corrupt();
        self.fresh_corrupt
            .lock()
            .map(|mut fresh| std::mem::take(&mut *fresh))
            .unwrap_or_default()
    }

    /// A failed write leaves fjall refusing every later one (it marks the
    /// keyspace poisoned); the next write reopens the engine, which
    /// recovers from its journal like after a crash.
    fn failed(&self, e: fjall::Error) -> CoreError {
        self.broken.store(true, Relaxed);
        engine_error(e)
    }

    /// Applies committed index changes (queued while the rebuild runs).
    fn mem_apply(&self, ops: Vec<MemOp>) -> CoreResult<()> {
        let mut state = self.mem.write().map_err(CoreError::poisoned)?;
        if state.ready {
            state.mem.apply(ops);
        } else {
            state.pending.extend(ops);
        }
        Ok(())
    }

    /// Which of `events`' ids up to `top` may be on disk: `None` when the
    /// in-memory indexes cannot tell now (any may be), else those the id
    /// index holds. The ids are looked up in ascending order under one
    /// read of the indexes, each search starting where the one before it
    /// ended.
    fn maybe_on_disk(&self, events: &[Packed], top: u64) -> Option<FxHashSet<u64>> {
        let mut ids: Vec<u64> = events
            .iter()
            .map(|e| e.id)
            .filter(|&id| id <= top)
            .collect();
        if ids.is_empty() {
            return Some(FxHashSet::default());
        }
        ids.sort_unstable();
        ids.dedup();
        let state = self.mem.try_read().ok()?;
        if !state.ready || state.failed.is_some() {
            return None;
        }
        let mut hint = 0;
        let held = |&id: &u64| {
            let k = id_key(id);
            let at = state.mem.ids.ceiling_near(&(k, 0), &mut hint);
            at.is_some_and(|(found, _)| found == k)
        };
        Some(ids.into_iter().filter(held).collect())
    }

    /// The in-memory indexes, once rebuilt (this waits for the rebuild).
    fn mem_read(&self) -> CoreResult<std::sync::RwLockReadGuard<'_, MemState>> {
        loop {
            let state = self.mem.read().map_err(CoreError::poisoned)?;
            if let Some(e) = &state.failed {
                return Err(CoreError::Internal(e.clone()));
            }
            if state.ready {
                return Ok(state);
            }
            drop(state);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Waits for the index rebuild thread to end.
    fn join_rebuild(&self) -> CoreResult<()> {
        let handle = self.rebuild.lock().map_err(CoreError::poisoned)?.take();
        if let Some(handle) = handle {
            handle
                .join()
                .map_err(|_| CoreError::Internal("warm storage: index rebuild panicked".into()))?;
        }
        Ok(())
    }

    fn reopen(&self, counters: &mut Counters) -> CoreResult<()> {
        self.join_rebuild()?;
        let mut slot = self.engine.write().map_err(CoreError::poisoned)?;
        if let Some(old) = slot.take() {
            // Readers hold the engine for one call; wait for them so two
            // engines never share the directory.
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(engine) => break drop(engine),
                    Err(shared) => old = shared,
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let lock = match self.lock.lock().map_err(CoreError::poisoned)?.as_ref() {
            Some(lock) => clone_lock(lock, &self.data)?,
            None => return Err(CoreError::Closed),
        };
        let engine = Engine::open_background(&self.data, &self.config, lock)
            .map_err(|e| io_error("cannot reopen", &self.data, e))?;
        *counters = engine.counters().map_err(read_error)?;
        *self.mem.write().map_err(CoreError::poisoned)? = MemState::built(engine.mem());
        *slot = Some(Arc::new(engine));
        self.broken.store(false, Relaxed);
        self.publish(counters);
        Ok(())
    }

    /// Test support: while `held`, the journal's apply thread applies
    /// nothing (frames stay in the journal only, as right after a write).
    #[cfg(any(test, feature = "test-support"))]
    pub fn hold_apply(&self, held: bool) {
        if let Some(j) = &self.journal {
            j.hold.store(held, Relaxed);
        }
    }

    /// Test support: the next `n` writes fail (nothing written), as they
    /// would on a full disk.
    #[cfg(any(test, feature = "test-support"))]
    pub fn fail_next_writes(&self, n: u64) {
        match &self.journal {
            Some(j) => j.fail_appends.store(n, Relaxed),
            None => self.fail_writes.store(n, Relaxed),
        }
    }

    fn commit(&self, events: Vec<Packed>, jpos: Option<u64>) -> CoreResult<()> {
        #[cfg(any(test, feature = "test-support"))]
        if self
            .fail_writes
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(CoreError::Internal(
                "warm storage write failed: injected failure".into(),
            ));
        }
        let mut counters = self.writer.lock().map_err(CoreError::poisoned)?;
        if self.broken.load(Relaxed) {
            self.reopen(&mut counters)?;
        }
        let engine = self.engine()?;
        let mut next = *counters;
        let mut batch = engine.keyspace.batch();
        if self.sync_each {
            batch = batch.durability(Some(PersistMode::SyncData));
        }
        // In-memory index changes, applied once the batch is committed.
        let mut ops: Vec<MemOp> = Vec::with_capacity(events.len());
        // The new records, in order (`None`: replaced later in this batch).
        let mut fresh: Vec<Option<(Header, u64, Vec<u8>)>> = Vec::with_capacity(events.len());
        // Versions written earlier in this batch: their place in `fresh`.
        let mut staged: FxHashMap<u64, usize> =
            FxHashMap::with_capacity_and_hasher(events.len(), Default::default());
        let mut edits = Edits::default();
        let mut top = next.top;
        // Only ids up to the top before this batch can be on disk.
        let on_disk = self.maybe_on_disk(&events, next.top);
        for ev in events {
            if let Some(at) = staged.remove(&ev.id) {
                if let Some((h, _, record)) = fresh[at].take() {
                    next.events = next.events.saturating_sub(1);
                    next.bytes = next.bytes.saturating_sub(entry_size(&h, record.len()));
                }
            } else if ev.id <= next.top && on_disk.as_ref().is_none_or(|ids| ids.contains(&ev.id)) {
                let removed =
                    self.take_out(&engine, &mut batch, &mut edits, &mut ops, ev.id, None)?;
                if let Some(size) = removed {
                    next.events = next.events.saturating_sub(1);
                    next.bytes = next.bytes.saturating_sub(size);
                }
            }
            let header = Header {
                seq: next.seq,
                sys_ts: ev.sys_ts,
                event_type: ev.event_type,
                correlation_id: ev.correlation_id,
            };
            let mut record = ev.record;
            codec::seal(&mut record, next.seq);
            next.seq += 1;
            next.events += 1;
            next.bytes += entry_size(&header, record.len());
            next.stored += 1;
            staged.insert(ev.id, fresh.len());
            fresh.push(Some((header, ev.id, record)));
            top = top.max(ev.id);
        }
        if !edits.is_empty() {
            edits.write(&engine, &mut batch, &self.mem_read()?.mem);
        }
        let mut fresh = fresh.into_iter().flatten().peekable();
        let (most, full) = match self.compression {
            Compression::None => (BLOCK_EVENTS, BLOCK_BYTES),
            _ => (PACKED_EVENTS, PACKED_BYTES),
        };
        while fresh.peek().is_some() {
            let mut chunk = Vec::with_capacity(most);
            let mut bytes = 0;
            while chunk.len() < most && (chunk.is_empty() || bytes < full) {
                let Some(item) = fresh.next() else {
                    break;
                };
                bytes += item.2.len();
                chunk.push(item);
            }
            let key: Loc = chunk[0].0.seq + 1;
            let slots: Vec<(u64, &[u8])> = chunk.iter().map(|(_, id, r)| (*id, &r[..])).collect();
            let (value, charges) = codec::pack_block(&slots, self.compression, None);
            // Each record was counted at its length; it stays at its charge.
            for ((_, r), charge) in slots.iter().zip(charges) {
                next.bytes = (next.bytes + u64::from(charge)).saturating_sub(r.len() as u64);
            }
            batch.insert(&engine.blocks, key.to_be_bytes(), value);
            // The headers move into the index changes (no copy of their names).
            ops.extend(chunk.into_iter().map(|(h, id, _)| MemOp::Add(h, id, key)));
        }
        next.top = top;
        if let Some(jpos) = jpos {
            next.jpos = jpos;
        }
        batch.insert(&engine.meta, COUNTERS, next.encode());
        self.commit_batch(&engine, batch)?;
        self.mem_apply(ops)?;
        *counters = next;
        if self.max_bytes > 0 && counters.bytes > self.max_bytes {
            self.evict(&engine, &mut counters)?;
        }
        self.collect(&engine, &counters, false);
        self.acked.write(&counters);
        self.publish(&counters);
        Ok(())
    }

    /// Commits `batch` to the engine, then lets the engine retire the
    /// journals its flushes have covered (`Engine::let_journals_go`):
    /// removals fill the memtables and the journal as writes do.
    fn commit_batch(&self, engine: &Engine, batch: fjall::Batch) -> CoreResult<()> {
        batch.commit().map_err(|e| self.failed(e))?;
        engine.let_journals_go();
        Ok(())
    }

    /// Takes the stored version of `id` out (its record from the `events`
    /// partition in `batch`, or from its block through `edits`), with its
    /// index entries (in `ops`, applied after the commit); only when its
    /// system time is `expect_ts`, if given. Returns its size, `None` when
    /// there was none to take (or a damaged one: its place is freed all the
    /// same when `expect_ts` is not given, so an overwrite replaces it).
    fn take_out(
        &self,
        engine: &Engine,
        batch: &mut fjall::Batch,
        edits: &mut Edits,
        ops: &mut Vec<MemOp>,
        id: u64,
        expect_ts: Option<i64>,
    ) -> CoreResult<Option<u64>> {
        let Some(loc) = self.mem_read()?.mem.loc(id) else {
            return Ok(None);
        };
        // An overwrite (no expected time) leaves the old record where it
        // is: rewriting a block of 64 records for one of them cost 28-70 µs
        // an overwrite (`examples/warm_overwrite`).
        let lazy = expect_ts.is_none();
        let record = match loc {
            LEGACY => engine
                .events
                .get(id.to_be_bytes())
                .map_err(read_error)?
                .map(|r| (r.to_vec(), r.len())),
            key => edits.record(engine, key, id)?,
        };
        let header = record
            .as_ref()
            .and_then(|(r, charge)| self.parse_header(id, r).map(|h| (h, *charge)));
        match header {
            Some((h, _)) if expect_ts.is_some_and(|ts| ts != h.sys_ts) => Ok(None),
            Some((h, len)) => {
                self.drop_record(engine, batch, edits, id, loc, lazy);
                let size = entry_size(&h, len);
                ops.push(MemOp::Remove(h, id, loc));
                Ok(Some(size))
            }
            None if lazy => {
                self.drop_record(engine, batch, edits, id, loc, lazy);
                ops.push(MemOp::Unlocate(id, loc));
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn drop_record(
        &self,
        engine: &Engine,
        batch: &mut fjall::Batch,
        edits: &mut Edits,
        id: u64,
        loc: Loc,
        lazy: bool,
    ) {
        match loc {
            LEGACY => batch.remove(&engine.events, id.to_be_bytes()),
            key if lazy => edits.replaced(key, id),
            key => edits.drop(key, id),
        }
    }

    /// The oldest `max` entries of the time index up to `end` (this waits
    /// for the index rebuild after open).
    fn oldest(&self, end: (i64, u64), max: usize) -> CoreResult<Vec<(i64, u64)>> {
        let range = ((i64::MIN, 0), end);
        Ok(self
            .mem_read()?
            .mem
            .range(Side::Time, &[], range, None, false, max))
    }

    /// Removes the events of `keys` (time index entries) in one batch,
    /// each counted by `count`; an entry whose record is damaged or gone
    /// is dropped alone. Returns the events removed.
    fn remove_keys(
        &self,
        engine: &Engine,
        keys: &[(i64, u64)],
        counters: &mut Counters,
        count: impl Fn(&mut Counters),
        mut enough: impl FnMut(&Counters) -> bool,
    ) -> CoreResult<usize> {
        let mut next = *counters;
        let mut batch = engine.keyspace.batch();
        let mut edits = Edits::default();
        let mut ops = Vec::new();
        let mut removed = 0;
        for &(ts, id) in keys {
            match self.take_out(engine, &mut batch, &mut edits, &mut ops, id, Some(ts))? {
                Some(size) => {
                    next.bytes = next.bytes.saturating_sub(size);
                    next.events = next.events.saturating_sub(1);
                    count(&mut next);
                    removed += 1;
                }
                None => ops.push(MemOp::Forget((ts, id))),
            }
            if enough(&next) {
                break;
            }
        }
        edits.write(engine, &mut batch, &self.mem_read()?.mem);
        batch.insert(&engine.meta, COUNTERS, next.encode());
        self.commit_batch(engine, batch)?;
        self.mem_apply(ops)?;
        *counters = next;
        Ok(removed)
    }

    /// Evicts the oldest events (by system time) until the records take
    /// 90 % of the bound.
    fn evict(&self, engine: &Engine, counters: &mut Counters) -> CoreResult<()> {
        let target = self.max_bytes / 10 * 9;
        while counters.bytes > target {
            let keys = self.oldest((i64::MAX, u64::MAX), 1024)?;
            if keys.is_empty() {
                // Nothing left to evict: the count was off.
                counters.bytes = 0;
                return Ok(());
            }
            let evicted = |c: &mut Counters| c.evicted += 1;
            self.remove_keys(engine, &keys, counters, evicted, |c| c.bytes <= target)?;
        }
        Ok(())
    }

    /// Removes the events with a system timestamp below `sys_ts` (after the
    /// memory tier did: when this fails, what it left counts as on disk
    /// only, see [`Warm::floor`]).
    pub fn prune_before(&self, sys_ts: i64) -> CoreResult<usize> {
        let pruned = self.prune_events_before(sys_ts);
        if pruned.is_err() {
            // The memory tier has pruned them: what is left here is on
            // disk only.
            self.note_disk_only(sys_ts.saturating_sub(1));
        }
        pruned
    }

    fn prune_events_before(&self, sys_ts: i64) -> CoreResult<usize> {
        const CHUNK: usize = 4096;
        self.caught_up()?;
        let engine = self.engine()?;
        let mut counters = self.writer.lock().map_err(CoreError::poisoned)?;
        // No time is below the smallest one.
        if sys_ts == i64::MIN {
            return Ok(0);
        }
        // Keys below (sys_ts, 0): every id of an earlier time.
        let end = (sys_ts - 1, u64::MAX);
        let mut total = 0;
        loop {
            let keys = self.oldest(end, CHUNK)?;
            if keys.is_empty() {
                break;
            }
            let pruned = |c: &mut Counters| c.pruned += 1;
            total += self.remove_keys(&engine, &keys, &mut counters, pruned, |_| false)?;
            if keys.len() < CHUNK {
                break;
            }
        }
        self.collect(&engine, &counters, false);
        self.publish(&counters);
        Ok(total)
    }

    /// Frees the space of removed and replaced blocks in blob files (a
    /// partition that keeps its blocks in its tree needs nothing): blob
    /// files left without a live block are deleted, and those more than
    /// half stale are rewritten with their live blocks. Runs under the
    /// writer's lock, once enough events have gone since the last time
    /// (`COLLECT_EVENTS`), or always with `now`. A failure is retried at
    /// the next collection (the space stays taken meanwhile).
    fn collect(&self, engine: &Engine, counters: &Counters, now: bool) {
        if !engine.blocks.is_kv_separated() {
            return;
        }
        let gone = counters.stored.saturating_sub(counters.events);
        let last = self.collected.load(Relaxed).min(gone);
        if !now && gone - last < COLLECT_EVENTS.max(counters.events / 4) {
            return;
        }
        // The engine counts a blob file's blocks as stale only below its
        // watermark of what no snapshot can still read, and moves that
        // watermark once every 50 closed snapshots: closing 50 moves it up
        // to now (a snapshot still open, such as the index rebuild's, holds
        // it back as before).
        for _ in 0..50 {
            drop(engine.blocks.snapshot());
        }
        let collected = engine
            .blocks
            .gc_scan()
            .and_then(|_| engine.blocks.gc_with_staleness_threshold(0.5));
        if collected.is_ok() {
            self.collected.store(gone, Relaxed);
        }
    }

    /// Removes every event and resets the counters.
    pub fn clear(&self) -> CoreResult<()> {
        self.caught_up()?;
        self.join_rebuild()?;
        let engine = self.engine()?;
        let mut counters = self.writer.lock().map_err(CoreError::poisoned)?;
        let parts = [&engine.events, &engine.blocks, &engine.meta];
        for part in parts {
            loop {
                let keys: Vec<_> = part
                    .keys()
                    .take(4096)
                    .collect::<Result<_, _>>()
                    .map_err(read_error)?;
                if keys.is_empty() {
                    break;
                }
                let mut batch = engine.keyspace.batch();
                for k in keys {
                    batch.remove(part, k);
                }
                self.commit_batch(&engine, batch)?;
            }
        }
        // The journal position stays: its applied frames must not return.
        *counters = Counters {
            jpos: counters.jpos,
            ..Counters::default()
        };
        let empty = MemState::built(Ok((Mem::default(), Vec::new())));
        self.opened.set(&empty);
        *self.mem.write().map_err(CoreError::poisoned)? = empty;
        self.disk_only.store(i64::MIN, Relaxed);
        // The dictionaries went with `meta`.
        self.dicts.write().map_err(CoreError::poisoned)?.clear();
        self.collect(&engine, &counters, true);
        self.acked.write(&counters);
        if let Ok(mut set) = self.corrupt.lock() {
            set.clear();
        }
        self.publish(&counters);
        Ok(())
    }

    /// Syncs the journal to disk and closes the engine (its threads are
    /// stopped and joined once no reader holds it). Later calls fail with
    /// `Closed`.
    pub fn close(&self) -> CoreResult<()> {
        if let Some(j) = &self.journal {
            // Apply what is left, then stop the journal's threads.
            let threads = std::mem::take(&mut *self.threads.lock().map_err(CoreError::poisoned)?);
            if !threads.is_empty() {
                let _ = j.barrier();
            }
            j.close();
            for t in threads {
                let _ = t.join();
            }
        }
        self.join_rebuild()?;
        let mut writer = self.writer.lock().map_err(CoreError::poisoned)?;
        if self.broken.load(Relaxed) {
            // A failed write left the engine refusing all: reopen to close.
            self.reopen(&mut writer)?;
        }
        let engine = self.engine.write().map_err(CoreError::poisoned)?.take();
        let _lock = self.lock.lock().map_err(CoreError::poisoned)?.take();
        if let Some(engine) = engine {
            // Flushing the memtables retires the journals, so the next open
            // has nothing to replay.
            for part in [&engine.events, &engine.blocks, &engine.meta] {
                part.rotate_memtable_and_wait().map_err(engine_error)?;
            }
            engine
                .keyspace
                .persist(PersistMode::SyncAll)
                .map_err(engine_error)?;
            // Everything applied is synced in the engine: the segments can go
            // (unapplied ones stay for the next open to replay).
            if let Some(j) = self.journal.as_ref().filter(|j| j.idle()) {
                j.remove_all()?;
            }
        }
        Ok(())
    }

    /// Reads a record and checks it; `expect_ts` rejects stale index hits.
    fn fetch(&self, engine: &Engine, id: u64, expect_ts: Option<i64>) -> CoreResult<Option<Hit>> {
        self.fetch_if(engine, id, expect_ts, |_| true)
    }

    /// [`Warm::fetch`] of a record whose header also passes `keep`.
    fn fetch_if(
        &self,
        engine: &Engine,
        id: u64,
        expect_ts: Option<i64>,
        keep: impl Fn(&Header) -> bool,
    ) -> CoreResult<Option<Hit>> {
        let Some(loc) = self.mem_read()?.mem.loc(id) else {
            return Ok(None);
        };
        self.fetch_at(engine, id, loc, expect_ts, keep, &mut None)
    }

    /// [`Warm::fetch_if`] of the record of `id` at `loc`. `recent` keeps
    /// the last block read, for the next record of a walk: the events of
    /// one apply batch share blocks, and walks by id or time meet them one
    /// after another.
    fn fetch_at(
        &self,
        engine: &Engine,
        id: u64,
        loc: Loc,
        expect_ts: Option<i64>,
        keep: impl Fn(&Header) -> bool,
        recent: &mut Option<(Loc, Arc<Held>)>,
    ) -> CoreResult<Option<Hit>> {
        if loc == LEGACY {
            let Some(record) = engine.events.get(id.to_be_bytes()).map_err(read_error)? else {
                return Ok(None);
            };
            return Ok(self.hit(id, &record, expect_ts, keep));
        }
        let block = match recent {
            Some((key, block)) if *key == loc => Arc::clone(block),
            _ => {
                let Some(block) = engine.blocks.get(loc.to_be_bytes()).map_err(read_error)? else {
                    return Ok(None);
                };
                let block = Arc::new(Held::read(block));
                *recent = Some((loc, Arc::clone(&block)));
                block
            }
        };
        match block.find(id) {
            Some(Some(record)) => Ok(self.hit(id, record, expect_ts, keep)),
            Some(None) => Ok(None),
            None => {
                self.mark_corrupt(id);
                Ok(None)
            }
        }
    }

    /// Walks every event by ascending id from after `after`, reading each
    /// record; `visit` takes each id and its hit and says whether to go on.
    /// Returns whether the walk reached the last id.
    fn walk_ids(
        &self,
        engine: &Engine,
        mut after: Option<u64>,
        mut visit: impl FnMut(u64, Option<Hit>) -> bool,
    ) -> CoreResult<bool> {
        let mut recent = None;
        loop {
            let ids = self.mem_read()?.mem.ids_after(after, MEM_CHUNK);
            let n = ids.len();
            for (id, loc) in ids {
                let hit = self.fetch_at(engine, id, loc, None, |_| true, &mut recent)?;
                if !visit(id, hit) {
                    return Ok(false);
                }
                after = Some(id);
            }
            if n < MEM_CHUNK {
                return Ok(true);
            }
        }
    }

    fn hit(
        &self,
        id: u64,
        record: &[u8],
        expect_ts: Option<i64>,
        keep: impl Fn(&Header) -> bool,
    ) -> Option<Hit> {
        let parsed: Parsed = match codec::parse(record) {
            Some(p) => p,
            None => {
                self.mark_corrupt(id);
                return None;
            }
        };
        if expect_ts.is_some_and(|ts| ts != parsed.header.sys_ts) || !keep(&parsed.header) {
            return None;
        }
        match parsed.body_with(&|id| self.dict(id)) {
            Some(body) => Some(Hit {
                sys_ts: parsed.header.sys_ts,
                id,
                body,
            }),
            None => {
                self.mark_corrupt(id);
                None
            }
        }
    }

    /// Walks the entries of `name` in an in-memory index within `range`,
    /// after `after`, by ascending (or, `desc`, descending) (system time,
    /// id), reading each record (a hit only when it is still that entry's
    /// event and passes `keep`). `visit` takes each entry and its hit and
    /// says whether to go on. Returns whether the range was walked to its
    /// end. The index lock is held only while a chunk of keys is copied.
    #[allow(clippy::too_many_arguments)]
    fn walk_mem(
        &self,
        engine: &Engine,
        side: Side,
        name: &[u8],
        range: ((i64, u64), (i64, u64)),
        mut after: Option<(i64, u64)>,
        desc: bool,
        keep: &dyn Fn(&Header) -> bool,
        mut visit: impl FnMut((i64, u64), Option<Hit>) -> bool,
    ) -> CoreResult<bool> {
        let matches = |h: &Header| side.holds(name, h);
        let mut recent = None;
        // Small first: a read of a few events resolves only a few.
        let mut chunk = 16;
        loop {
            // Each entry with where its record is, under one lock.
            let keys: Vec<_> = {
                let state = self.mem_read()?;
                let keys = state.mem.range(side, name, range, after, desc, chunk);
                keys.into_iter().map(|k| (k, state.mem.loc(k.1))).collect()
            };
            let n = keys.len();
            for (key, loc) in keys {
                let hit = match loc {
                    Some(loc) => self.fetch_at(
                        engine,
                        key.1,
                        loc,
                        Some(key.0),
                        |h| matches(h) && keep(h),
                        &mut recent,
                    )?,
                    None => None,
                };
                if !visit(key, hit) {
                    return Ok(false);
                }
                after = Some(key);
            }
            if n < chunk {
                return Ok(true);
            }
            chunk = (chunk * 2).min(MEM_CHUNK);
        }
    }

    /// The event with `id`.
    pub fn get(&self, id: u64) -> CoreResult<Option<Hit>> {
        self.caught_up()?;
        self.fetch(&*self.engine()?, id, None)
    }

    /// Events matching `q` (its time range in system time), at most
    /// `q.offset + q.limit` of them in `q.order`; the caller applies the
    /// offset after merging with the hot tier.
    pub fn query(&self, q: &Query) -> CoreResult<Vec<Hit>> {
        self.caught_up()?;
        let engine = self.engine()?;
        let want = q.limit.map_or(usize::MAX, |l| l.saturating_add(q.offset));
        let mut out = Vec::new();
        if want == 0 {
            return Ok(out);
        }
        let (side, name) = match &q.event_type {
            Some(t) => (Side::Type, &t[..]),
            None => (Side::Time, &[][..]),
        };
        let range = mem_bounds(q.time_range);
        match q.order {
            // Every event by id: the id index's own order.
            Order::Id | Order::Unordered if q.event_type.is_none() && q.time_range.is_none() => {
                self.walk_ids(&engine, None, |_, hit| {
                    out.extend(hit);
                    out.len() < want
                })?;
            }
            Order::Id | Order::Unordered => {
                let mut keys: Vec<_> = {
                    let state = self.mem_read()?;
                    let keys = state.mem.range(side, name, range, None, false, usize::MAX);
                    keys.into_iter().map(|k| (k, state.mem.loc(k.1))).collect()
                };
                keys.sort_unstable_by_key(|&((ts, id), _)| (id, ts));
                let mut recent = None;
                for ((ts, id), loc) in keys {
                    let Some(loc) = loc else {
                        continue;
                    };
                    let keep = |h: &Header| side.holds(name, h);
                    if let Some(hit) =
                        self.fetch_at(&engine, id, loc, Some(ts), keep, &mut recent)?
                    {
                        out.push(hit);
                        if out.len() >= want {
                            break;
                        }
                    }
                }
            }
            Order::Timestamp | Order::TimestampDesc => {
                let desc = q.order == Order::TimestampDesc;
                self.walk_mem(
                    &engine,
                    side,
                    name,
                    range,
                    None,
                    desc,
                    &|_| true,
                    |_, hit| {
                        out.extend(hit);
                        out.len() < want
                    },
                )?;
            }
        }
        Ok(out)
    }

    /// The arrival sequence number the next stored event gets: every event
    /// on disk has a smaller one.
    pub fn next_seq(&self) -> CoreResult<u64> {
        Ok(self.writer.lock().map_err(CoreError::poisoned)?.seq)
    }

    /// A page of a subscription's catch-up: events with arrival sequence
    /// numbers below `before`, of `event_type` and `cid` when given, in
    /// (system time, id) order after the index key `cursor` (`None`: from
    /// the first). Returns at most `max` hits after visiting at most `scan`
    /// index entries, the last key visited, and whether the index is done.
    pub fn scan(
        &self,
        event_type: Option<&[u8]>,
        cid: Option<&[u8]>,
        cursor: Option<&[u8]>,
        before: u64,
        max: usize,
        scan: usize,
    ) -> CoreResult<(Vec<Hit>, Option<Vec<u8>>, bool)> {
        let engine = self.engine()?;
        let wanted = |h: &Header| {
            h.seq < before && cid.is_none_or(|c| h.correlation_id.as_deref() == Some(c))
        };
        let (mut hits, mut last, mut visited) = (Vec::new(), cursor.map(<[u8]>::to_vec), 0);
        let (side, name, prefix) = match (event_type, cid) {
            (Some(t), _) => (Side::Type, t, type_prefix(t)),
            (None, Some(c)) => (Side::Cid, c, cid_prefix(c)),
            (None, None) => (Side::Time, &[][..], Vec::new()),
        };
        let after = cursor.map(cursor_tail).transpose()?;
        let range = mem_bounds(None);
        let done = self.walk_mem(
            &engine,
            side,
            name,
            range,
            after,
            false,
            &wanted,
            |key, hit| {
                visited += 1;
                last = Some(with_ts_id(prefix.clone(), key.0, key.1));
                hits.extend(hit);
                hits.len() < max && visited < scan
            },
        )?;
        Ok((hits, last, done))
    }

    /// One page of a stream: up to `max` events of `event_type` (when
    /// given) within `range` (system time), in `order`, after `cursor` (the
    /// key the previous page ended on; `None`: from the first). Time orders
    /// read the time indexes; `Order::Id` reads the records by id and takes
    /// no type or range. Returns the hits, the cursor of the next page and
    /// whether the answer is complete.
    pub fn page(
        &self,
        event_type: Option<&[u8]>,
        range: Option<(i64, i64)>,
        order: Order,
        cursor: Option<&[u8]>,
        max: usize,
    ) -> CoreResult<(Vec<Hit>, Option<Vec<u8>>, bool)> {
        self.caught_up()?;
        let engine = self.engine()?;
        let (mut hits, mut last) = (Vec::new(), cursor.map(<[u8]>::to_vec));
        if order == Order::Id {
            if event_type.is_some() || range.is_some() {
                return Err(CoreError::InvalidInput(
                    "a page by id takes no type or time range".into(),
                ));
            }
            let after = match cursor {
                None => None,
                Some(c) => Some(u64::from_be_bytes(c.try_into().map_err(|_| {
                    CoreError::InvalidInput("warm storage: malformed cursor".into())
                })?)),
            };
            let done = self.walk_ids(&engine, after, |id, hit| {
                last = Some(id.to_be_bytes().to_vec());
                hits.extend(hit);
                hits.len() < max
            })?;
            return Ok((hits, last, done));
        }
        let desc = order == Order::TimestampDesc;
        let (side, name, prefix) = match event_type {
            Some(t) => (Side::Type, t, type_prefix(t)),
            None => (Side::Time, &[][..], Vec::new()),
        };
        let after = cursor.map(cursor_tail).transpose()?;
        let done = self.walk_mem(
            &engine,
            side,
            name,
            mem_bounds(range),
            after,
            desc,
            &|_| true,
            |key, hit| {
                last = Some(with_ts_id(prefix.clone(), key.0, key.1));
                hits.extend(hit);
                hits.len() < max
            },
        )?;
        Ok((hits, last, done))
    }

    /// The events of a correlation group by ascending (system time, id).
    pub fn get_by_correlation(&self, cid: &[u8]) -> CoreResult<Vec<Hit>> {
        self.caught_up()?;
        let engine = self.engine()?;
        let mut out = Vec::new();
        let range = mem_bounds(None);
        self.walk_mem(
            &engine,
            Side::Cid,
            cid,
            range,
            None,
            false,
            &|_| true,
            |_, hit| {
                out.extend(hit);
                true
            },
        )?;
        Ok(out)
    }

    /// Current counters, and the size of the files in the directory.
    pub fn stats(&self) -> WarmStats {
        let _ = self.caught_up();
        self.count_rebuild_corrupt();
        let m = |i: usize| self.mirror[i].load(Relaxed);
        let disk_bytes =
            dir_size(&self.data) + self.journal.as_ref().map_or(0, Journal::disk_bytes);
        WarmStats {
            events: m(1),
            bytes: m(2),
            disk_bytes,
            evicted: m(3),
            corrupt_records: self.corrupt.lock().map_or(0, |s| s.len() as u64) + m(6),
            stored: m(4),
            pruned: m(5),
        }
    }
}

/// Which of `stripes` locks guards writes of event `id` (the NIF's lock
/// stripes keep two writes of one id in the same order in the journal and
/// in memory). `Utils.generate_id/0` puts the node's bits in an id's low
/// 12 bits and counts above them, so the id's own low bits would send
/// every id of a node to one stripe, and every write through one lock;
/// folding the count in keeps ids made one after another, from
/// `generate_id/0` or a plain counter, on different stripes, and a batch
/// of consecutive ids on a run of them.
pub fn id_stripe(id: u64, stripes: usize) -> usize {
    ((id ^ (id >> 12)) % stripes.max(1) as u64) as usize
}

/// Journal bytes one engine batch of the apply thread takes at most.
const APPLY_BYTES: usize = 4 << 20;

/// The size blob files of blocks are cut at: an eighth of the disk bound
/// (so evictions leave whole files stale, dropped without a rewrite),
/// between 4 and 64 MiB.
fn blob_file_bytes(config: &WarmConfig) -> u64 {
    match config.max_bytes {
        0 => 64 << 20,
        max => (max / 8).clamp(4 << 20, 64 << 20),
    }
}

/// Events removed (or replaced) since the last collection of blob files
/// past which the next commit collects: a quarter of the events held, and
/// at least this many.
const COLLECT_EVENTS: u64 = 1_000;

/// Records a block holds at most, and the bytes past which it takes no
/// more: a read by id decodes one record but reads its whole block.
const BLOCK_EVENTS: usize = 64;
const BLOCK_BYTES: usize = 32 << 10;
/// The same for a packed block, which a read decompresses whole: 32 small
/// records decompress in about 2 µs (64 in about 3.3), compress in about
/// 0.2 µs a record (0.18) and take 18 bytes a record (14).
const PACKED_EVENTS: usize = 32;
const PACKED_BYTES: usize = 8 << 10;

/// A block as read from the engine (a packed one decompressed once, for
/// all the reads of its records).
enum Held {
    Plain(fjall::Slice),
    /// A packed block's records, and how they were compressed.
    Unpacked(codec::Unpacked, Compression),
}

impl Held {
    fn read(value: fjall::Slice) -> Held {
        match (codec::packed_with(&value), codec::unpack_block(&value)) {
            (Some(compression), Some(unpacked)) => Held::Unpacked(unpacked, compression),
            // Plain, or a packed block whose table is damaged: its records
            // are then unknown, as for a plain one.
            _ => Held::Plain(value),
        }
    }

    /// The (id, record) slots, in order; `None` when the table is damaged.
    fn slots(&self) -> Option<Vec<(u64, &[u8])>> {
        match self {
            Held::Plain(v) => codec::block_slots(v),
            Held::Unpacked(u, _) => Some(u.slots()),
        }
    }

    /// The record of `id`: `None` when the table is damaged, `Some(None)`
    /// when the block does not hold it.
    fn find(&self, id: u64) -> Option<Option<&[u8]>> {
        match self {
            Held::Plain(v) => codec::block_find(v, id),
            Held::Unpacked(u, _) => Some(u.find(id)),
        }
    }

    /// What the record of `id` is counted as against the disk bound, when
    /// it is not its length.
    fn charge(&self, id: u64) -> Option<usize> {
        match self {
            Held::Plain(_) => None,
            Held::Unpacked(u, _) => u.charge(id).map(|c| c as usize),
        }
    }

    /// How the block is written again when it is rewritten.
    fn compression(&self) -> Compression {
        match self {
            Held::Plain(_) => Compression::None,
            Held::Unpacked(_, compression) => *compression,
        }
    }
}

/// Blocks changed by one engine batch: each read once, with the ids to
/// take out of it; [`Edits::write`] puts the rewritten blocks in the batch.
#[derive(Default)]
struct Edits {
    blocks: FxHashMap<Loc, (Arc<Held>, FxHashSet<u64>)>,
    /// Records overwritten in this batch, by block (left in place).
    replaced: FxHashMap<Loc, FxHashSet<u64>>,
}

impl Edits {
    /// The record of `id` in block `key` (`None`: not there, or the block
    /// is gone or its table damaged).
    /// With it, the record's charge against the disk bound.
    fn record(
        &mut self,
        engine: &Engine,
        key: Loc,
        id: u64,
    ) -> CoreResult<Option<(Vec<u8>, usize)>> {
        let block = match self.blocks.get(&key) {
            Some((block, _)) => Arc::clone(block),
            None => match engine.blocks.get(key.to_be_bytes()).map_err(read_error)? {
                Some(block) => {
                    let block = Arc::new(Held::read(block));
                    self.blocks
                        .insert(key, (Arc::clone(&block), FxHashSet::default()));
                    block
                }
                None => return Ok(None),
            },
        };
        let Some(record) = block.find(id).flatten() else {
            return Ok(None);
        };
        Ok(Some((
            record.to_vec(),
            block.charge(id).unwrap_or(record.len()),
        )))
    }

    /// Takes `id` out of block `key` (read by `record` before).
    fn drop(&mut self, key: Loc, id: u64) {
        if let Some((_, ids)) = self.blocks.get_mut(&key) {
            ids.insert(id);
        }
    }

    fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.replaced.is_empty()
    }

    /// Notes the record of `id` in block `key` overwritten (it stays in
    /// the block unless `write` finds the block mostly replaced).
    fn replaced(&mut self, key: Loc, id: u64) {
        self.replaced.entry(key).or_default().insert(id);
    }

    /// Rewrites each block with dropped records without them and without
    /// the records overwritten before (removes it when none is left). A
    /// block whose live records (in `mem`, before this batch) this batch's
    /// overwrites leave at less than half its records is rewritten the
    /// same way (removed when none is left), so replaced records never take
    /// more room than live ones. A block whose table is damaged stays.
    fn write(mut self, engine: &Engine, batch: &mut fjall::Batch, mem: &Mem) {
        for (key, ids) in std::mem::take(&mut self.replaced) {
            let Some((block, dropped)) = self.blocks.get_mut(&key) else {
                continue;
            };
            let left = mem.live(key).saturating_sub(ids.len() as u32) as usize;
            let total = block.slots().map_or(0, |slots| slots.len());
            if left * 2 < total {
                dropped.extend(ids);
            }
        }
        for (key, (block, dropped)) in self.blocks {
            if dropped.is_empty() {
                continue;
            }
            let Some(slots) = block.slots() else {
                continue;
            };
            let kept: Vec<_> = slots
                .into_iter()
                .filter(|&(id, _)| !dropped.contains(&id) && mem.loc(id) == Some(key))
                .collect();
            if kept.is_empty() {
                batch.remove(&engine.blocks, key.to_be_bytes());
            } else {
                // A packed block stays packed, its records keep their charges.
                let charges: Vec<u32> = kept
                    .iter()
                    .map(|&(id, r)| block.charge(id).unwrap_or(r.len()) as u32)
                    .collect();
                let (value, _) = codec::pack_block(&kept, block.compression(), Some(&charges));
                batch.insert(&engine.blocks, key.to_be_bytes(), value);
            }
        }
    }
}

/// A journal frame of `events`: `count u32`, then per event `id u64 |
/// sys_ts i64 | type_len u16 | type | cid_len u32 (u32::MAX: none) | cid |
/// body_len u32 | body` (little endian; the body uncompressed).
fn encode_frame(events: &[Incoming<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&e.sys_ts.to_le_bytes());
        out.extend_from_slice(&(e.event_type.len() as u16).to_le_bytes());
        out.extend_from_slice(e.event_type);
        match e.correlation_id {
            Some(c) => {
                out.extend_from_slice(&(c.len() as u32).to_le_bytes());
                out.extend_from_slice(c);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        out.extend_from_slice(&(e.body.len() as u32).to_le_bytes());
        out.extend_from_slice(e.body);
    }
}

/// The number of events a journal frame says it holds (at most as many as
/// its bytes could: a damaged count never sizes an allocation).
fn frame_len(frame: &[u8]) -> usize {
    let said = frame
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    // An event takes at least 26 bytes of a frame (id, time, lengths).
    said.min(frame.len() / 26)
}

/// Hands each event of a journal frame to `each`; `Ok(false)`: malformed.
fn decode_frame(
    mut b: &[u8],
    each: &mut dyn FnMut(Incoming<'_>) -> CoreResult<()>,
) -> CoreResult<bool> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn u32_of(b: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?))
    }
    fn u64_of(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn one<'a>(b: &mut &'a [u8]) -> Option<Incoming<'a>> {
        let id = u64_of(b)?;
        let sys_ts = u64_of(b)? as i64;
        let type_len = u16::from_le_bytes(take(b, 2)?.try_into().ok()?) as usize;
        let event_type = take(b, type_len)?;
        let correlation_id = match u32_of(b)? {
            u32::MAX => None,
            n => Some(take(b, n as usize)?),
        };
        let n = u32_of(b)? as usize;
        let body = take(b, n)?;
        Some(Incoming {
            id,
            event_type,
            sys_ts,
            correlation_id,
            body,
        })
    }
    let Some(count) = u32_of(&mut b) else {
        return Ok(false);
    };
    for _ in 0..count {
        match one(&mut b) {
            Some(e) => each(e)?,
            None => return Ok(false),
        }
    }
    Ok(b.is_empty())
}

/// Bytes of the files under `path` (the engine keeps a few dozen).
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn clone_lock(lock: &File, path: &Path) -> CoreResult<File> {
    lock.try_clone()
        .map_err(|e| io_error("cannot lock", path, e))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests;

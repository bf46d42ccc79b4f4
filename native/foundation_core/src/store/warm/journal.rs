//! The warm tier's ingest journal: segment files mapped into memory
//! (`MAP_SHARED`), appended to by the writing callers themselves.
//!
//! A write copies its framed events into the mapping of the current
//! segment under a short lock: once the copy is done the bytes are in the
//! OS page cache, so a killed VM cannot lose them (the fsync policy covers
//! a power loss: the active segment is `msync`ed every `fsync_ms`). No
//! system call, no thread hand-off. Segments are created and their blocks
//! reserved with `fallocate` ahead of need by a background thread, so a
//! full disk shows up as an error of the write that needs a new segment,
//! never as a fault on a mapped page.
//!
//! The tier's apply thread follows the journal and writes its frames to
//! the engine in order (many callers' events in one engine batch); the
//! position after the last applied frame is stored in the same engine
//! batch, so a reopen replays exactly the frames the engine has not got.
//! Fully applied segments are deleted once the engine has synced them.
//!
//! Segment file `<dir>/<no:016x>.wj`: a `HEADER`-byte header (magic,
//! number, length), then frames `len u32 | crc32 u32 | payload` (little
//! endian). The unused rest of a segment is zeros: a zero length ends it.
//! A position is `segment number << 32 | offset`.

use crate::error::{CoreError, CoreResult};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes before the first frame of a segment.
pub(super) const HEADER: usize = 64;
const MAGIC: &[u8; 8] = b"ESWJRNL1";
/// Size of a segment (a frame bigger than this gets a segment of its own).
pub const SEGMENT: usize = 16 << 20;
const FRAME_HEAD: usize = 8;

/// A position in the journal.
pub(super) fn pos(seg: u64, off: usize) -> u64 {
    (seg << 32) | off as u64
}

fn seg_of(p: u64) -> u64 {
    p >> 32
}

fn off_of(p: u64) -> usize {
    (p & 0xffff_ffff) as usize
}

/// One mapped segment file.
pub(super) struct Segment {
    no: u64,
    ptr: *mut u8,
    len: usize,
    path: PathBuf,
    _file: File,
}

// SAFETY: the mapping lives as long as the `Segment`; writers copy into
// disjoint ranges under the journal's tail lock, and readers read only
// ranges published through `Journal::committed` (acquire/release).
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

fn errno(what: &str, path: &Path) -> CoreError {
    CoreError::Internal(format!(
        "warm storage: {what} {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    ))
}

/// A frame's checksum: CRC-32 of its segment number and payload.
fn frame_crc(no: u64, payload: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(&no.to_le_bytes());
    crc.update(payload);
    crc.sum()
}

fn seg_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016x}.wj"))
}

impl Segment {
    fn map(file: File, path: PathBuf, no: u64, len: usize) -> CoreResult<Segment> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared read/write mapping of `len` bytes of `file`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(errno("cannot map the journal segment", &path));
        }
        Ok(Segment {
            no,
            ptr: ptr.cast(),
            len,
            path,
            _file: file,
        })
    }

    /// Creates segment `no` of `len` bytes with its blocks reserved.
    fn create(dir: &Path, no: u64, len: usize) -> CoreResult<Segment> {
        use std::os::fd::AsRawFd;
        let path = seg_path(dir, no);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                CoreError::Internal(format!(
                    "warm storage: cannot create {}: {e}",
                    path.display()
                ))
            })?;
        // SAFETY: plain system calls on an owned descriptor.
        let reserved = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
        if reserved != 0 {
            let e = std::io::Error::from_raw_os_error(reserved);
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(CoreError::Internal(format!(
                "warm storage write failed: cannot reserve {} bytes for the journal segment {}: {e}",
                len,
                path.display()
            )));
        }
        let seg = Segment::map(file, path, no, len)?;
        seg.populate();
        let mut head = [0u8; 24];
        head[..8].copy_from_slice(MAGIC);
        head[8..16].copy_from_slice(&no.to_le_bytes());
        head[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        seg.write(0, &head);
        Ok(seg)
    }

    /// Gives a segment without frames the number `no` (its name and its
    /// header).
    fn renumber(&mut self, dir: &Path, no: u64) -> CoreResult<()> {
        let path = seg_path(dir, no);
        std::fs::rename(&self.path, &path).map_err(|e| {
            CoreError::Internal(format!(
                "warm storage: cannot rename {}: {e}",
                self.path.display()
            ))
        })?;
        self.path = path;
        self.no = no;
        self.write(8, &no.to_le_bytes());
        Ok(())
    }

    /// Faults the pages in now (on the thread making the segment ready),
    /// not on the writers' first touch of each page. Older kernels lack
    /// it: then the writers fault them in.
    fn populate(&self) {
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        // SAFETY: advice on our own mapping.
        unsafe {
            libc::madvise(self.ptr.cast(), self.len, MADV_POPULATE_WRITE);
        }
    }

    /// Maps an existing segment (for replay); `None` if it is not one.
    fn open(path: &Path) -> CoreResult<Option<Segment>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                CoreError::Internal(format!("warm storage: cannot open {}: {e}", path.display()))
            })?;
        let len = file
            .metadata()
            .map_err(|e| {
                CoreError::Internal(format!("warm storage: cannot read {}: {e}", path.display()))
            })?
            .len() as usize;
        if len < HEADER || len > u32::MAX as usize {
            return Ok(None);
        }
        let mut seg = Segment::map(file, path.to_path_buf(), 0, len)?;
        let head = seg.slice(0, 24);
        if &head[..8] != MAGIC
            || u64::from_le_bytes(head[16..24].try_into().unwrap_or_default()) != len as u64
        {
            return Ok(None);
        }
        seg.no = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        Ok(Some(seg))
    }

    fn write(&self, off: usize, bytes: &[u8]) {
        debug_assert!(off + bytes.len() <= self.len);
        // SAFETY: in bounds (checked by the callers) and not read by anyone
        // before it is published.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(off), bytes.len()) }
    }

    fn slice(&self, off: usize, len: usize) -> &[u8] {
        let len = len.min(self.len.saturating_sub(off));
        // SAFETY: in bounds; published bytes only (see `Journal`).
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) }
    }

    /// The frame at `off`: its payload and the offset after it, if a valid
    /// one starts there.
    fn frame(&self, off: usize) -> Option<(&[u8], usize)> {
        if off + FRAME_HEAD > self.len {
            return None;
        }
        let head = self.slice(off, FRAME_HEAD);
        let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
        if len == 0 || off + FRAME_HEAD + len > self.len {
            return None;
        }
        let payload = self.slice(off + FRAME_HEAD, len);
        (frame_crc(self.no, payload) == crc).then_some((payload, off + FRAME_HEAD + len))
    }

    /// Reuses a retired segment's file (its blocks and cached pages) as
    /// segment `no`. Its old frames stay behind the new ones, but their
    /// checksums name the old number, so they end a replay.
    fn recycle(mut self, dir: &Path, no: u64) -> CoreResult<Segment> {
        self.renumber(dir, no)?;
        // No frame yet: a zero length ends it.
        self.write(HEADER, &[0; FRAME_HEAD]);
        // Its synced pages were unmapped (see `sync`).
        self.populate();
        Ok(self)
    }

    /// Syncs `[from, to)` of the mapping to disk.
    ///
    /// The whole pages of the range are unmapped first (their contents stay
    /// in the page cache, marked dirty). Writing back a page that is still
    /// mapped writable makes the kernel write-protect it with a TLB flush
    /// of its own, one interrupt to every other core per 4 KiB page (a VM
    /// exit each under a hypervisor); unmapping the range costs one flush
    /// for all of it. A later read of those pages maps them again
    /// read-only, from the cache.
    fn sync(&self, from: usize, to: usize) {
        let page = 4096;
        let start = from / page * page;
        let end = to.min(self.len);
        if end > start {
            let whole = end / page * page;
            // SAFETY: page-aligned ranges inside the mapping; the pages of
            // a shared file mapping keep their data when unmapped.
            unsafe {
                if whole > start {
                    libc::madvise(
                        self.ptr.add(start).cast(),
                        whole - start,
                        libc::MADV_DONTNEED,
                    );
                }
                libc::msync(self.ptr.add(start).cast(), end - start, libc::MS_SYNC);
            }
        }
    }
}

/// The writers' end of the journal.
struct Tail {
    seg: Arc<Segment>,
    off: usize,
    /// Bytes of `seg` synced so far.
    synced: usize,
}

/// What stops a write from being appended on the calling thread now.
#[derive(Debug)]
pub enum Blocked {
    /// It would have to wait (the apply thread is behind, or a segment has
    /// to be made): retry where waiting is allowed.
    Wait,
    /// It failed.
    Failed(CoreError),
}

impl From<CoreError> for Blocked {
    fn from(e: CoreError) -> Blocked {
        Blocked::Failed(e)
    }
}

/// The apply thread's progress, for barriers and backpressure.
#[derive(Default)]
struct Progress {
    applied: u64,
    /// The last apply failure (cleared by the next success).
    error: Option<String>,
}

/// The journal of one warm tier.
pub struct Journal {
    dir: PathBuf,
    tail: Mutex<Option<Tail>>,
    /// Segments not yet retired, by number.
    segs: Mutex<BTreeMap<u64, Arc<Segment>>>,
    /// The next segment, made ahead of need.
    spare: Mutex<Option<Segment>>,
    /// Retired segments kept to be reused. One is reused once nothing
    /// else holds it (an apply batch or a pending sync may, for a while).
    free: Mutex<Vec<Arc<Segment>>>,
    need_spare: Condvar,
    /// Ranges of former tail segments still to sync.
    to_sync: Mutex<Vec<(Arc<Segment>, usize, usize)>>,
    next_no: AtomicU64,
    /// Position after the last complete frame.
    committed: AtomicU64,
    /// Bytes appended and applied (the lag is their difference).
    appended: AtomicU64,
    applied_bytes: AtomicU64,
    progress: Mutex<Progress>,
    advanced: Condvar,
    /// Wakes the background apply thread.
    work: Mutex<bool>,
    has_work: Condvar,
    /// Wakes the urgent apply thread.
    urgent: Mutex<bool>,
    urgent_cv: Condvar,
    /// Held by the apply thread applying a batch.
    applying: Mutex<()>,
    closed: AtomicBool,
    max_lag: u64,
    /// Test support: appends still to fail as a full disk would.
    #[cfg(any(test, feature = "test-support"))]
    pub(super) fail_appends: AtomicU64,
    /// Test support: the apply thread applies nothing while set.
    #[cfg(any(test, feature = "test-support"))]
    pub(super) hold: AtomicBool,
}

/// How often the apply thread looks for new frames when nobody wakes it.
const APPLY_TICK: Duration = Duration::from_millis(2);
/// Unapplied bytes past which a writer wakes the background apply thread.
const WAKE_LAG: u64 = 1 << 20;
/// Unapplied bytes past which the urgent apply thread works.
const URGENT_LAG: u64 = MAX_LAG / 2;
/// How often the urgent apply thread checks the lag by itself.
const URGENT_TICK: Duration = Duration::from_millis(20);
/// Retired segments kept for reuse.
const FREE: usize = 1;
/// Unapplied bytes past which writers wait for the apply thread.
pub const MAX_LAG: u64 = 32 << 20;
/// How long a write waits for the apply thread before it fails.
const LAG_WAIT: Duration = Duration::from_secs(10);

/// What one turn of an apply thread did.
enum Applied {
    Nothing,
    Some,
    Failed,
}

/// Frames found by a replay: `(payload, position after it)`.
pub(super) type Replayed = Vec<(Vec<u8>, u64)>;

impl Journal {
    /// Opens the journal in `dir`: returns it, the frames after `applied`
    /// (to replay before writes start), and notes to log. Segments older
    /// than `applied` are deleted.
    pub(super) fn open(dir: &Path, applied: u64) -> CoreResult<(Journal, Replayed, Vec<String>)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            CoreError::Internal(format!(
                "warm storage: cannot create {}: {e}",
                dir.display()
            ))
        })?;
        let mut notes = Vec::new();
        let mut found = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            CoreError::Internal(format!("warm storage: cannot read {}: {e}", dir.display()))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wj") {
                match Segment::open(&path)? {
                    Some(seg) => found.push(seg),
                    None => {
                        notes.push(format!(
                            "warm storage: {} is not a journal segment; removed",
                            path.display()
                        ));
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|s| s.no);
        let mut frames = Vec::new();
        let mut last_no = seg_of(applied);
        for seg in &found {
            last_no = last_no.max(seg.no);
            if seg.no < seg_of(applied) {
                continue;
            }
            let mut off = if seg.no == seg_of(applied) {
                off_of(applied).max(HEADER)
            } else {
                HEADER
            };
            while let Some((payload, next)) = seg.frame(off) {
                frames.push((payload.to_vec(), pos(seg.no, next)));
                off = next;
            }
            // Past the end: zeros (the unused rest) or a frame that fails
            // its checksum. Only the last frame of the journal can have
            // been cut by a crash (it was never acknowledged).
            let rest = seg.slice(off, FRAME_HEAD.min(seg.len.saturating_sub(off)));
            if rest.iter().any(|&b| b != 0) && seg.no != found.last().map_or(0, |s| s.no) {
                notes.push(format!(
                    "warm storage: journal segment {} is damaged at byte {off}; its later frames are skipped",
                    seg.path.display()
                ));
            }
        }
        let journal = Journal {
            dir: dir.to_path_buf(),
            tail: Mutex::new(None),
            segs: Mutex::new(BTreeMap::new()),
            spare: Mutex::new(None),
            free: Mutex::new(Vec::new()),
            need_spare: Condvar::new(),
            to_sync: Mutex::new(Vec::new()),
            next_no: AtomicU64::new(last_no + 1),
            committed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            applied_bytes: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            advanced: Condvar::new(),
            work: Mutex::new(false),
            has_work: Condvar::new(),
            urgent: Mutex::new(false),
            urgent_cv: Condvar::new(),
            applying: Mutex::new(()),
            closed: AtomicBool::new(false),
            max_lag: MAX_LAG,
            #[cfg(any(test, feature = "test-support"))]
            fail_appends: AtomicU64::new(0),
            #[cfg(any(test, feature = "test-support"))]
            hold: AtomicBool::new(false),
        };
        // The replayed segments stay until the replay is in the engine
        // (`retire_replayed`); writes go to a new segment.
        journal
            .segs
            .lock()
            .map_err(CoreError::poisoned)?
            .extend(found.into_iter().map(|s| (s.no, Arc::new(s))));
        let first = journal.make_segment(FRAME_HEAD)?;
        let start = pos(first.no, HEADER);
        journal.committed.store(start, Ordering::Release);
        journal
            .progress
            .lock()
            .map_err(CoreError::poisoned)?
            .applied = start;
        let first = Arc::new(first);
        journal
            .segs
            .lock()
            .map_err(CoreError::poisoned)?
            .insert(first.no, Arc::clone(&first));
        *journal.tail.lock().map_err(CoreError::poisoned)? = Some(Tail {
            seg: first,
            off: HEADER,
            synced: 0,
        });
        Ok((journal, frames, notes))
    }

    /// Deletes the segments older than the current one (after a replay
    /// the engine has synced).
    pub(super) fn retire_replayed(&self) -> CoreResult<()> {
        let current = seg_of(self.committed.load(Ordering::Acquire));
        self.retire_below(current)
    }

    fn retire_below(&self, no: u64) -> CoreResult<()> {
        let old: Vec<Arc<Segment>> = {
            let mut segs = self.segs.lock().map_err(CoreError::poisoned)?;
            let keep = segs.split_off(&no);
            std::mem::replace(&mut *segs, keep).into_values().collect()
        };
        let mut free = self.free.lock().map_err(CoreError::poisoned)?;
        for seg in old {
            if seg.len == SEGMENT && free.len() < FREE && !self.closed.load(Ordering::Relaxed) {
                free.push(seg);
            } else {
                // Unmapped and closed when its last holder lets it go.
                let _ = std::fs::remove_file(&seg.path);
            }
        }
        Ok(())
    }

    /// A retired segment nothing else holds any more, to be reused.
    fn reusable(&self) -> Option<Segment> {
        let mut free = self.free.lock().ok()?;
        let at = free.iter().position(|s| Arc::strong_count(s) == 1)?;
        // Nothing can take a new hold on it: it is in no other list.
        Arc::try_unwrap(free.swap_remove(at)).ok()
    }

    /// A new segment with room for a frame of `frame` bytes.
    fn make_segment(&self, frame: usize) -> CoreResult<Segment> {
        let len = SEGMENT.max(HEADER + frame + FRAME_HEAD);
        if len > u32::MAX as usize {
            return Err(CoreError::InvalidInput(
                "warm storage: a write of more than 4 GiB".into(),
            ));
        }
        let no = self.next_no.fetch_add(1, Ordering::Relaxed);
        Segment::create(&self.dir, no, len)
    }

    /// Appends one frame of `payload`. With `wait` false (a normal
    /// scheduler) it never blocks for long: a lagging apply thread or a
    /// missing segment gives `Blocked::Wait`.
    pub fn append(&self, payload: &[u8], wait: bool) -> Result<(), Blocked> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Blocked::Failed(CoreError::Closed));
        }
        #[cfg(any(test, feature = "test-support"))]
        if self
            .fail_appends
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Blocked::Failed(CoreError::Internal(
                "warm storage write failed: injected failure".into(),
            )));
        }
        if self.full() {
            if !wait {
                return Err(Blocked::Wait);
            }
            self.wait_lag()?;
        }
        let frame = FRAME_HEAD + payload.len();
        // Checksummed before the lock for the segment being written now;
        // again under it in the rare case the frame opens the next one.
        let expected = seg_of(self.committed.load(Ordering::Acquire));
        let crc = frame_crc(expected, payload);
        let mut tail = self.tail.lock().map_err(CoreError::poisoned)?;
        let t = tail.as_mut().ok_or(CoreError::Closed)?;
        if t.off + frame > t.seg.len {
            let mut next = self.next_segment(frame, wait)?;
            // Positions order by segment number, so the next segment must
            // have a higher one than the tail. A spare numbered while a
            // writer made a segment of its own has a lower one: it gets a
            // new number (no frame names the old one yet).
            if next.no <= t.seg.no {
                let no = self.next_no.fetch_add(1, Ordering::Relaxed);
                next.renumber(&self.dir, no)?;
            }
            let next = Arc::new(next);
            self.segs
                .lock()
                .map_err(CoreError::poisoned)?
                .insert(next.no, Arc::clone(&next));
            // The old segment's unsynced frames: synced by the preparer.
            if let Ok(mut later) = self.to_sync.lock() {
                later.push((Arc::clone(&t.seg), t.synced, t.off));
            }
            *t = Tail {
                seg: next,
                off: HEADER,
                synced: 0,
            };
        }
        let mut head = [0u8; FRAME_HEAD];
        head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = match t.seg.no == expected {
            true => crc,
            false => frame_crc(t.seg.no, payload),
        };
        head[4..].copy_from_slice(&crc.to_le_bytes());
        t.seg.write(t.off + FRAME_HEAD, payload);
        t.seg.write(t.off, &head);
        let half = t.seg.len / 2;
        if t.off < half && t.off + frame >= half {
            self.need_spare.notify_one();
        }
        t.off += frame;
        // A zero length after the last frame (a recycled segment holds old
        // bytes there).
        if t.off + FRAME_HEAD <= t.seg.len {
            t.seg.write(t.off, &[0; FRAME_HEAD]);
        }
        self.committed
            .store(pos(t.seg.no, t.off), Ordering::Release);
        drop(tail);
        // The apply thread looks every `APPLY_TICK` by itself; it is woken
        // only when much is waiting, so it writes big engine batches and
        // writers rarely make a system call.
        let appended = self.appended.fetch_add(frame as u64, Ordering::Relaxed) + frame as u64;
        let lag = appended.saturating_sub(self.applied_bytes.load(Ordering::Relaxed));
        if lag > URGENT_LAG {
            self.wake(true);
        } else if lag > WAKE_LAG {
            self.wake(false);
        }
        Ok(())
    }

    /// The prepared spare (a new one is asked for), or, when waiting is
    /// allowed, a segment made now.
    fn next_segment(&self, frame: usize, wait: bool) -> Result<Segment, Blocked> {
        if frame + HEADER <= SEGMENT {
            let spare = match self.spare.try_lock() {
                Ok(mut spare) => spare.take(),
                Err(_) if wait => self.spare.lock().map_err(CoreError::poisoned)?.take(),
                Err(_) => return Err(Blocked::Wait),
            };
            self.need_spare.notify_one();
            if let Some(seg) = spare {
                return Ok(seg);
            }
        }
        if !wait {
            return Err(Blocked::Wait);
        }
        Ok(self.make_segment(frame)?)
    }

    /// Wakes the background apply thread, or the urgent one.
    fn wake(&self, urgent: bool) {
        let (flag, cv) = if urgent {
            (&self.urgent, &self.urgent_cv)
        } else {
            (&self.work, &self.has_work)
        };
        if let Ok(mut set) = flag.lock() {
            if !*set {
                *set = true;
                cv.notify_one();
            }
        }
    }

    fn wake_applier(&self) {
        self.wake(false);
        self.wake(true);
    }

    /// Whether a write now would wait for the apply thread (unapplied
    /// bytes past the bound).
    pub fn full(&self) -> bool {
        self.lag() > self.max_lag
    }

    /// Unapplied bytes.
    pub fn lag(&self) -> u64 {
        self.appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.applied_bytes.load(Ordering::Relaxed))
    }

    fn wait_lag(&self) -> Result<(), Blocked> {
        let deadline = Instant::now() + LAG_WAIT;
        let mut p = self.progress.lock().map_err(CoreError::poisoned)?;
        while self.full() {
            let now = Instant::now();
            if now >= deadline {
                return Err(Blocked::Failed(self.behind(&p)));
            }
            p = self
                .advanced
                .wait_timeout(p, (deadline - now).min(Duration::from_millis(50)))
                .map_err(CoreError::poisoned)?
                .0;
        }
        Ok(())
    }

    fn behind(&self, p: &Progress) -> CoreError {
        CoreError::Internal(format!(
            "warm storage write failed: the disk tier is {} bytes behind{}",
            self.lag(),
            p.error
                .as_ref()
                .map_or(String::new(), |e| format!(" ({e})"))
        ))
    }

    /// Waits until every frame appended before the call is applied.
    pub fn barrier(&self) -> CoreResult<()> {
        let target = self.committed.load(Ordering::Acquire);
        let deadline = Instant::now() + LAG_WAIT;
        let mut p = self.progress.lock().map_err(CoreError::poisoned)?;
        while p.applied < target {
            drop(p);
            self.wake_applier();
            p = self.progress.lock().map_err(CoreError::poisoned)?;
            if p.applied >= target {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.behind(&p));
            }
            p = self
                .advanced
                .wait_timeout(p, Duration::from_millis(20))
                .map_err(CoreError::poisoned)?
                .0;
        }
        Ok(())
    }

    /// An apply thread: hands the frames after the applied position to
    /// `apply` (at most about `max` bytes at a time, with the position
    /// after them), retires applied segments once `persist` has synced the
    /// engine, and ends when the journal is closed and everything is
    /// applied (or cannot be). Two run: the background one (low priority)
    /// looks every `APPLY_TICK`; the `urgent` one (normal priority) only
    /// when the lag passes `URGENT_LAG` or a read waits, so a burst of
    /// writes is absorbed by the journal and applied in idle time, while a
    /// busy machine cannot starve the tier. They take turns on `applying`.
    pub(super) fn run_applier(
        &self,
        urgent: bool,
        mut apply: impl FnMut(&[&[u8]], u64) -> CoreResult<()>,
        persist: impl Fn() -> CoreResult<()>,
        max: usize,
    ) {
        let (flag, cv, tick) = if urgent {
            (&self.urgent, &self.urgent_cv, URGENT_TICK)
        } else {
            (&self.work, &self.has_work, APPLY_TICK)
        };
        loop {
            // Sleep a tick unless woken: frames gather meanwhile and go to
            // the engine together.
            let woken = {
                let Ok(mut set) = flag.lock() else {
                    return;
                };
                if !*set && !self.closed.load(Ordering::Relaxed) {
                    set = match cv.wait_timeout(set, tick) {
                        Ok((s, _)) => s,
                        Err(_) => return,
                    };
                }
                std::mem::replace(&mut *set, false)
            };
            let closed = self.closed.load(Ordering::Relaxed);
            if urgent && !woken && !closed && self.lag() <= URGENT_LAG {
                continue;
            }
            // The background thread applies one batch per turn; the urgent
            // one until it has caught up.
            loop {
                match self.apply_once(&mut apply, &persist, max) {
                    Applied::Nothing => {
                        if self.closed.load(Ordering::Relaxed) {
                            return;
                        }
                        break;
                    }
                    Applied::Failed => {
                        if self.closed.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                    Applied::Some if urgent || self.closed.load(Ordering::Relaxed) => {}
                    Applied::Some => {
                        if self.lag() > WAKE_LAG {
                            self.wake(false);
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Applies one batch of frames, if any, under `applying`.
    fn apply_once(
        &self,
        apply: &mut impl FnMut(&[&[u8]], u64) -> CoreResult<()>,
        persist: &impl Fn() -> CoreResult<()>,
        max: usize,
    ) -> Applied {
        let Ok(_turn) = self.applying.lock() else {
            return Applied::Failed;
        };
        #[cfg(any(test, feature = "test-support"))]
        if self.hold.load(Ordering::Relaxed) {
            return Applied::Nothing;
        }
        let Ok(at) = self.progress.lock().map(|p| p.applied) else {
            return Applied::Failed;
        };
        let end = self.committed.load(Ordering::Acquire);
        if at >= end {
            return Applied::Nothing;
        }
        let (frames, next, bytes) = match self.collect(at, end, max) {
            Ok(found) => found,
            Err(e) => {
                self.record(at, 0, Err(e));
                return Applied::Failed;
            }
        };
        let views: Vec<&[u8]> = frames
            .iter()
            .map(|(seg, off, len)| seg.slice(*off, *len))
            .collect();
        let result = apply(&views, next);
        drop(views);
        let failed = result.is_err();
        if seg_of(next) > seg_of(at) && !failed {
            // Every frame of the older segments is in the engine: sync it,
            // then they can go.
            if persist().is_ok() {
                let _ = self.retire_below(seg_of(next));
            }
        }
        self.record(next, bytes, result);
        if failed {
            Applied::Failed
        } else {
            Applied::Some
        }
    }

    fn record(&self, next: u64, bytes: u64, result: CoreResult<()>) {
        if let Ok(mut p) = self.progress.lock() {
            match result {
                Ok(()) => {
                    p.applied = next;
                    p.error = None;
                    self.applied_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        self.advanced.notify_all();
    }

    /// Frames from `at` up to `end` (about `max` bytes): (segment, payload
    /// offset, length), the position after them, and their framed bytes.
    #[allow(clippy::type_complexity)]
    fn collect(
        &self,
        at: u64,
        end: u64,
        max: usize,
    ) -> CoreResult<(Vec<(Arc<Segment>, usize, usize)>, u64, u64)> {
        let segs = self.segs.lock().map_err(CoreError::poisoned)?;
        let mut out = Vec::new();
        let (mut seg_no, mut off) = (seg_of(at), off_of(at));
        let mut bytes = 0u64;
        let mut seg = segs.get(&seg_no).cloned().ok_or_else(|| {
            CoreError::Internal(format!("warm storage: journal segment {seg_no} is missing"))
        })?;
        while pos(seg_no, off) < end && (bytes as usize) < max {
            match seg.frame(off) {
                Some((payload, next)) if pos(seg_no, off) < end => {
                    out.push((Arc::clone(&seg), off + FRAME_HEAD, payload.len()));
                    bytes += (next - off) as u64;
                    off = next;
                }
                // Every frame before `end` in its segment was committed:
                // one that does not read back is damage, never an end.
                _ if seg_of(end) == seg_no => {
                    return Err(CoreError::Internal(format!(
                        "warm storage: journal frame at {:x} damaged in memory",
                        pos(seg_no, off)
                    )))
                }
                _ => {
                    // The end of this segment: the next one follows.
                    let Some((&no, next)) = segs.range(seg_no + 1..).next() else {
                        return Err(CoreError::Internal(
                            "warm storage: journal frame damaged in memory".into(),
                        ));
                    };
                    seg = Arc::clone(next);
                    seg_no = no;
                    off = HEADER;
                }
            }
        }
        Ok((out, pos(seg_no, off), bytes))
    }

    /// The segment-making and sync thread: keeps a spare segment ready and
    /// syncs the active one every `sync` (none: never). Ends when closed.
    pub(super) fn run_preparer(&self, sync: Option<Duration>) {
        let tick = sync.unwrap_or(Duration::from_millis(500));
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return;
            }
            // The spare is made once the current segment is half full (a
            // store that takes few writes never makes one).
            let ready = self.spare.lock().map(|s| s.is_some()).unwrap_or(true);
            let half = self
                .tail
                .lock()
                .map(|t| t.as_ref().is_some_and(|t| t.off >= t.seg.len / 2))
                .unwrap_or(false);
            if !ready && half {
                let made = match self.reusable() {
                    Some(seg) => {
                        let no = self.next_no.fetch_add(1, Ordering::Relaxed);
                        seg.recycle(&self.dir, no)
                    }
                    None => self.make_segment(FRAME_HEAD),
                };
                if let Ok(mut spare) = self.spare.lock() {
                    match made {
                        Ok(seg) if spare.is_none() => *spare = Some(seg),
                        Ok(seg) => {
                            let _ = std::fs::remove_file(&seg.path);
                        }
                        // A full disk: the write that needs the segment
                        // makes it itself and reports the error.
                        Err(_) => {}
                    }
                }
            }
            if sync.is_some() {
                let later = self.to_sync.lock().map(|mut l| std::mem::take(&mut *l));
                for (seg, from, to) in later.unwrap_or_default() {
                    seg.sync(from, to);
                }
                if let Ok(mut tail) = self.tail.lock() {
                    if let Some(t) = tail.as_mut() {
                        let (seg, from, to) = (Arc::clone(&t.seg), t.synced, t.off);
                        t.synced = to;
                        drop(tail);
                        seg.sync(from, to);
                    }
                }
            }
            if let Ok(spare) = self.spare.lock() {
                let _ = self.need_spare.wait_timeout(spare, tick);
            }
        }
    }

    /// Refuses new writes and wakes the threads (they end once idle).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.wake_applier();
        self.need_spare.notify_all();
    }

    /// Deletes every segment (after a clean close, all applied and synced).
    pub(super) fn remove_all(&self) -> CoreResult<()> {
        if let Ok(mut tail) = self.tail.lock() {
            *tail = None;
        }
        if let Ok(mut spare) = self.spare.lock() {
            if let Some(seg) = spare.take() {
                let _ = std::fs::remove_file(&seg.path);
            }
        }
        self.retire_below(u64::MAX)?;
        if let Ok(mut free) = self.free.lock() {
            for seg in free.drain(..) {
                let _ = std::fs::remove_file(&seg.path);
            }
        }
        Ok(())
    }

    /// Whether the apply thread has applied everything appended.
    pub fn idle(&self) -> bool {
        self.progress
            .lock()
            .is_ok_and(|p| p.applied >= self.committed.load(Ordering::Acquire))
    }

    /// Bytes of the segment files.
    pub fn disk_bytes(&self) -> u64 {
        let live: u64 = self
            .segs
            .lock()
            .map_or(0, |s| s.values().map(|s| s.len as u64).sum());
        let spare = self
            .spare
            .lock()
            .map_or(0, |s| s.as_ref().map_or(0, |s| s.len as u64));
        let free: u64 = self
            .free
            .lock()
            .map_or(0, |f| f.iter().map(|s| s.len as u64).sum());
        live + spare + free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_increasing_when_a_spare_is_numbered_before_a_segment_a_writer_made() {
        let dir = std::env::temp_dir().join(format!("journal-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (j, _, _) = Journal::open(&dir, 0).unwrap();
        let start = j.committed.load(Ordering::Acquire);
        // The preparer numbers a spare, and before it is installed a writer
        // rolls over with no spare ready and makes a segment itself.
        let early = j.make_segment(FRAME_HEAD).unwrap();
        let payload = vec![7u8; 1 << 20];
        // Appends one frame; the committed position must grow.
        let append = |j: &Journal, last: &mut u64, frames: &mut usize| {
            j.append(&payload, true).unwrap();
            let now = j.committed.load(Ordering::Acquire);
            assert!(now > *last, "{now:x} after {last:x}");
            *last = now;
            *frames += 1;
        };
        let (mut last, mut frames) = (start, 0);
        while seg_of(last) == seg_of(start) {
            append(&j, &mut last, &mut frames);
        }
        assert!(seg_of(last) > early.no);
        *j.spare.lock().unwrap() = Some(early);
        let made = seg_of(last);
        while seg_of(last) == made {
            append(&j, &mut last, &mut frames);
        }
        // The apply thread's walk finds every frame, in order.
        let (found, next, _) = j.collect(start, last, usize::MAX).unwrap();
        assert_eq!(found.len(), frames);
        assert_eq!(next, last);
        j.close();
        drop(j);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

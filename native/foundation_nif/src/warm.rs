//! Warm storage NIFs: the disk tier of the event store
//! (`foundation_core::store::warm`). Reads, prune, clear and close run on
//! a dirty I/O scheduler; `warm_stats` only reads counters.
//!
//! Writes with the tier's journal (the default fsync policy): a
//! normal-scheduler NIF validates the event, converts it to the hot tier's
//! form (`to_new_event`) and the durable form (external term format),
//! copies the durable form into the journal and puts the event in the hot
//! tier under the journal's lock (so both see writes in the same order),
//! and returns `{:ok, id}`: the event is in the OS page cache. A write that
//! would have to wait answers `:dirty` and its dirty twin does it.
//!
//! With an fsync on every write: the NIF queues both forms to the tier's
//! writer thread, then returns `{:ok, :queued}`. The writer takes
//! everything queued (group commit), appends it to disk in one batch, puts
//! the events in the hot tier, and sends each caller `{ref, result}` with
//! the result `store/1` returns (big groups are put and answered by a
//! second thread while the writer appends the next group); the caller
//! waits for it in `receive`, off every scheduler. So an event is
//! acknowledged, and visible in the hot tier, only once the disk tier has
//! it; a failed disk write leaves the hot tier without it.

use crate::budget::Routed;
use crate::budget::NORMAL_BYTES;
use crate::error::{NifError, NifOutcome};
use crate::store::{checked, prepare_each, StoreHandle};
use crate::store_codec::{list_terms, prepare, query_from, to_new_events, Prepared};
use foundation_core::store::warm::{
    id_stripe, Blocked, Compression, Hit, Incoming, Packed, Warm, WarmConfig,
};
use foundation_core::store::{Bytes, ColdPage, ColdSource, Filter, NewEvent};
use foundation_core::{CoreError, CoreResult};
use rustler::env::OwnedEnv;
use rustler::{
    Atom, Binary, Encoder, Env, Error, LocalPid, NifResult, Resource, ResourceArc, Term,
};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

mod atoms {
    rustler::atoms! {
        ok,
        nil,
        gzip,
        zstd,
        warm_events,
        warm_bytes,
        warm_disk_bytes,
        warm_evicted,
        warm_corrupt_records,
        warm_stored,
        warm_pruned,
        queued,
        dirty,
        // valid events whose journal write would wait: the caller goes to
        // the dirty twin without validating them again
        busy,
        // the tier's indexes are still being rebuilt
        unknown,
    }
}

/// The warm tier resource: the tier and its writer thread (or, with the
/// journal, the tier's own apply threads).
pub struct WarmHandle {
    warm: Arc<Warm>,
    quiet: Arc<Quiet>,
    /// Journal writes by event id (see `IdLocks`).
    ids: IdLocks,
    /// The writer's queue; `None` once the tier is closed.
    queue: RwLock<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Lock stripes by event id. A journal write holds the stripes of its
/// events' ids from before its journal append until its memory-tier insert
/// is done, so two writes of one id reach the journal and the memory tier
/// in the same order, while writes of other ids insert into the memory
/// tier side by side, outside the journal's own lock (held only to copy
/// the frame).
struct IdLocks([Mutex<()>; ID_STRIPES]);

/// Stripes of `IdLocks` (see `id_stripe`): a batch of 100 events made one
/// after another takes 100 of them, so concurrent batches rarely meet.
/// With 64, every batch took every stripe, and batches from different
/// processes went through the memory tier one at a time.
const ID_STRIPES: usize = 1024;

impl Default for IdLocks {
    fn default() -> Self {
        IdLocks(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl IdLocks {
    /// Locks the stripes of `ids`, in stripe order (so two batches never
    /// wait for each other in a cycle). A stripe guards no data: one left
    /// poisoned by a panic is taken as it is.
    fn lock(&self, ids: impl Iterator<Item = u64>) -> Vec<std::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids.map(|id| id_stripe(id, ID_STRIPES)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|i| self.0[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

/// One caller's write: its events in both forms, and where to answer.
struct Job {
    hot: ResourceArc<StoreHandle>,
    news: Vec<NewEvent>,
    durables: Vec<Packed>,
    /// The newest system time among `news` (for `Warm::note_disk_only`).
    newest: i64,
    /// One event (`{:ok, id}`) or a batch (`{:ok, ids}`).
    one: bool,
    pid: LocalPid,
    /// The caller's reference, in external term format.
    tag: Vec<u8>,
}

/// Events one group commit takes at most (more wait for the next one).
const GROUP_EVENTS: usize = 4096;

impl WarmHandle {
    fn start(warm: Warm) -> CoreResult<WarmHandle> {
        let warm = Arc::new(warm);
        let quiet = Arc::new(Quiet::default());
        if warm.journaled() {
            warm.start_threads()?;
            return Ok(WarmHandle {
                warm,
                quiet,
                ids: IdLocks::default(),
                queue: RwLock::new(None),
                writer: Mutex::new(None),
            });
        }
        let (tx, rx) = channel();
        let (thread_warm, thread_quiet) = (Arc::clone(&warm), Arc::clone(&quiet));
        let writer = std::thread::Builder::new()
            .name("warm-writer".into())
            .spawn(move || write_loop(&thread_warm, &thread_quiet, &rx))
            .map_err(|e| CoreError::Internal(format!("warm storage: no writer thread: {e}")))?;
        Ok(WarmHandle {
            warm,
            quiet,
            ids: IdLocks::default(),
            queue: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn enqueue(&self, job: Job) -> Result<(), NifError> {
        let queue = self.queue.read().map_err(CoreError::poisoned)?;
        match queue.as_ref().map(|q| q.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err(CoreError::Closed.into()),
        }
    }

    /// Stops the writer once it has answered every queued write.
    fn stop_writer(&self) -> CoreResult<()> {
        drop(self.queue.write().map_err(CoreError::poisoned)?.take());
        let writer = self.writer.lock().map_err(CoreError::poisoned)?.take();
        if let Some(writer) = writer {
            writer
                .join()
                .map_err(|_| CoreError::Internal("warm storage: the writer failed".into()))?;
        }
        Ok(())
    }
}

/// Groups of at least this many events are answered by the answering
/// thread, so the writer can append the next group meanwhile; smaller ones
/// (a few `store/1` callers) are answered by the writer itself, sparing
/// them a second thread hand-off.
const PIPELINE_EVENTS: usize = 64;

/// The writer thread: one disk append per group of queued writes, then the
/// hot tier and the answers (here, or on the answering thread it starts).
/// Ends when the queue's sender is dropped, after answering everything.
fn write_loop(warm: &Warm, quiet: &Quiet, rx: &Receiver<Job>) {
    let (done_tx, done_rx) = channel::<(Vec<Job>, CoreResult<()>)>();
    // Groups handed to the answering thread and not yet answered: while
    // any are, later groups go the same way, so hot puts keep their order.
    let pending = &AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let answering = std::thread::Builder::new()
            .name("warm-answers".into())
            .spawn_scoped(scope, move || {
                let mut env = OwnedEnv::new();
                while let Ok((mut jobs, written)) = done_rx.recv() {
                    finish(warm, &mut env, &mut jobs, written);
                    quiet.finished();
                    pending.fetch_sub(1, Relaxed);
                }
            })
            .is_ok();
        let mut env = OwnedEnv::new();
        // Whether the last group was small (callers of `store/1`).
        let mut small = false;
        while let Some(first) = next_job(rx, small) {
            let mut jobs = vec![first];
            let mut n = jobs[0].news.len();
            while n < GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.news.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            small = n < PIPELINE_EVENTS;
            let written = {
                let _gate = quiet.gate.read();
                quiet.appended();
                append(warm, &mut jobs)
            };
            if answering && (n >= PIPELINE_EVENTS || pending.load(Relaxed) > 0) {
                pending.fetch_add(1, Relaxed);
                match done_tx.send((jobs, written)) {
                    Ok(()) => continue,
                    Err(back) => {
                        pending.fetch_sub(1, Relaxed);
                        let (mut jobs, written) = back.0;
                        finish(warm, &mut env, &mut jobs, written);
                        quiet.finished();
                    }
                }
            } else {
                finish(warm, &mut env, &mut jobs, written);
                quiet.finished();
            }
        }
        drop(done_tx);
    });
}

/// How long the writer polls for the next job before it sleeps.
const POLL: std::time::Duration = std::time::Duration::from_micros(50);

/// The next job: after a small group, polled (yielding the CPU between
/// polls) for up to `POLL`, then waited for. Callers of `store/1` queue
/// their next event within microseconds of their answer; catching it while
/// polling spares the writer a sleep and a wake-up per group, and the
/// caller a futex call. After a big group the callers take longer to come
/// back, and polling would only take CPU time from them. `None` once the
/// queue is closed and empty.
fn next_job(rx: &Receiver<Job>, poll: bool) -> Option<Job> {
    use std::sync::mpsc::TryRecvError;
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if poll && start.elapsed() < POLL => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// Lets a subscription find a moment when no write is between the disk and
/// the hot tier: the writer appends under `gate`, and counts each group
/// until its events are in the hot tier.
#[derive(Default)]
struct Quiet {
    /// Held shared by each write between the disk and the hot tier.
    gate: RwLock<()>,
    /// Groups appended (or failed) and not yet put in the hot tier.
    in_flight: Mutex<usize>,
    drained: Condvar,
}

impl Quiet {
    fn appended(&self) {
        if let Ok(mut n) = self.in_flight.lock() {
            *n += 1;
        }
    }

    fn finished(&self) {
        if let Ok(mut n) = self.in_flight.lock() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.drained.notify_all();
            }
        }
    }
}

/// The warm tier as the hot store's cold source: a `from: :start`
/// subscription's catch-up reads every event on disk (also those the hot
/// tier has evicted), in (system time, id) order.
struct WarmCold {
    warm: Arc<Warm>,
    quiet: Arc<Quiet>,
}

/// Index entries one catch-up page visits at most.
const CATCH_UP_SCAN: usize = 4096;

impl ColdSource for WarmCold {
    fn quiesced(&self, register: &mut dyn FnMut(u64)) -> CoreResult<()> {
        let _gate = self.quiet.gate.write().map_err(CoreError::poisoned)?;
        let mut n = self.quiet.in_flight.lock().map_err(CoreError::poisoned)?;
        while *n > 0 {
            n = self.quiet.drained.wait(n).map_err(CoreError::poisoned)?;
        }
        drop(n);
        // Journal writes: every one so far is in the engine.
        self.warm.caught_up()?;
        register(self.warm.next_seq()?);
        Ok(())
    }

    fn page(
        &self,
        filter: &Filter,
        cursor: Option<&[u8]>,
        boundary: u64,
        max: usize,
    ) -> CoreResult<ColdPage> {
        let (hits, cursor, done) = self.warm.scan(
            filter.event_type.as_deref(),
            filter.correlation_id.as_deref(),
            cursor,
            boundary,
            max,
            CATCH_UP_SCAN,
        )?;
        // A disk body behind tag 0: the hot tier's payload reader decodes
        // it as such.
        let events = hits
            .into_iter()
            .map(|hit| {
                let mut payload = Vec::with_capacity(hit.body.len() + 1);
                payload.push(0);
                payload.extend_from_slice(&hit.body);
                Bytes::from(payload)
            })
            .collect();
        Ok(ColdPage {
            events,
            cursor,
            done,
        })
    }
}

/// Makes the warm tier the cold source of the hot store's subscriptions.
#[rustler::nif]
fn warm_attach(hot: ResourceArc<StoreHandle>, warm: ResourceArc<WarmHandle>) -> NifOutcome<Atom> {
    let cold = WarmCold {
        warm: Arc::clone(&warm.warm),
        quiet: Arc::clone(&warm.quiet),
    };
    hot.0.set_cold_source(Some(Arc::new(cold)))?;
    Ok(atoms::ok())
}

/// Appends every job's events to disk in one batch.
fn append(warm: &Warm, jobs: &mut [Job]) -> CoreResult<()> {
    let durables: Vec<Packed> = jobs
        .iter_mut()
        .flat_map(|j| std::mem::take(&mut j.durables))
        .collect();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| warm.append_now(durables)))
        .unwrap_or_else(|_| Err(panicked()))
}

/// The newest system time among `news` (stored with `offset`).
fn newest_sys_ts(news: &[NewEvent], offset: i64) -> i64 {
    news.iter()
        .map(|n| n.timestamp.saturating_add(offset))
        .max()
        .unwrap_or(i64::MIN)
}

fn panicked() -> CoreError {
    CoreError::Internal("warm storage: the write panicked".into())
}

/// Puts the jobs' events in the hot tier (when `written`) and sends each
/// caller its answer: its ids, or the error.
fn finish(warm: &Warm, env: &mut OwnedEnv, jobs: &mut [Job], written: CoreResult<()>) {
    for job in jobs.iter_mut() {
        let on_disk = written.is_ok();
        let result = written.clone().and_then(|()| {
            let news = std::mem::take(&mut job.news);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if job.one && news.len() == 1 {
                    let new = news.into_iter().next().map(|n| job.hot.0.put(n));
                    new.unwrap_or(Ok(0)).map(|id| vec![id])
                } else {
                    job.hot.0.put_batch(news)
                }
            }))
            .unwrap_or_else(|_| Err(panicked()))
        });
        if on_disk && result.is_err() {
            warm.note_disk_only(job.newest);
        }
        // A caller that has exited has nobody to answer.
        let _ = env.send_and_clear(&job.pid, |env| {
            let tag = env
                .binary_to_term(&job.tag)
                .map_or_else(|| atoms::nil().encode(env), |(t, _)| t);
            let answer = match result {
                Ok(ids) if job.one => (atoms::ok(), ids.first().copied().unwrap_or(0)).encode(env),
                Ok(ids) => (atoms::ok(), ids).encode(env),
                Err(e) => Err::<(), _>(NifError(e)).encode(env),
            };
            (tag, answer).encode(env)
        });
    }
}

// Warm holds Mutexes/RwLocks (poisoned on panic, reported as errors).
impl std::panic::RefUnwindSafe for WarmHandle {}

impl Drop for WarmHandle {
    /// A tier dropped without `warm_close`: the journal's threads apply
    /// what is left and end, then release the tier.
    fn drop(&mut self) {
        self.warm.detach();
    }
}

#[rustler::resource_impl]
impl Resource for WarmHandle {}

/// Opens the tier: `{:ok, {handle, notes}}` (notes: messages to log).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_open(
    path: String,
    max_bytes: u64,
    compression: Atom,
    fsync_ms: u64,
) -> NifOutcome<(ResourceArc<WarmHandle>, Vec<String>)> {
    let compression = match compression {
        c if c == atoms::gzip() => Compression::Gzip,
        c if c == atoms::zstd() => Compression::Zstd,
        _ => Compression::None,
    };
    let config = WarmConfig {
        path: path.into(),
        max_bytes,
        compression,
        fsync_ms: u16::try_from(fsync_ms).unwrap_or(u16::MAX),
        journal: fsync_ms > 0,
    };
    let (warm, notes) = Warm::open(&config)?;
    Ok((ResourceArc::new(WarmHandle::start(warm)?), notes))
}

/// The event's disk record, around its disk form (see `disk_body`).
fn pack(warm: &Warm, event: Term, hot: &NewEvent, offset: i64) -> CoreResult<Packed> {
    crate::store_codec::with_scratch_buffer(|body| {
        crate::disk_body::append(event, body);
        warm.pack_body(
            hot.id,
            hot.event_type.to_vec(),
            hot.timestamp.saturating_add(offset),
            hot.correlation_id.as_ref().map(|c| c.to_vec()),
            body,
        )
    })
}

/// Converts `events` (checked already) and queues them to the writer.
fn queue<'a>(
    env: Env<'a>,
    hot: ResourceArc<StoreHandle>,
    warm: &WarmHandle,
    terms: Vec<Term<'a>>,
    one: bool,
    offset: i64,
    tag: Term<'a>,
) -> NifResult<NifOutcome<Atom>> {
    let news = match to_new_events(&terms)? {
        Ok(news) => news,
        Err(e) => return Ok(Err(e.into())),
    };
    let packed = terms
        .iter()
        .zip(&news)
        .map(|(&t, new)| pack(&warm.warm, t, new, offset));
    let durables = match packed.collect::<CoreResult<Vec<_>>>() {
        Ok(durables) => durables,
        Err(e) => return Ok(Err(e.into())),
    };
    let job = Job {
        hot,
        newest: newest_sys_ts(&news, offset),
        news,
        durables,
        one,
        pid: env.pid(),
        tag: tag.to_binary().as_slice().to_vec(),
    };
    Ok(warm.enqueue(job).map(|()| atoms::queued()))
}

/// Converts `terms` (checked already) and writes them to the journal, then
/// the hot tier (in journal order): `{:ok, id}` / `{:ok, ids}`, `{:error,
/// _}`, or `:dirty` when `wait` is false and the write would have to wait
/// (the apply thread is behind, a segment has to be made, or a
/// subscription is catching up): the dirty twin then waits.
#[allow(clippy::too_many_arguments)]
fn put_now<'a>(
    env: Env<'a>,
    hot: &StoreHandle,
    warm: &WarmHandle,
    terms: Vec<Term<'a>>,
    one: bool,
    offset: i64,
    wait: bool,
) -> NifResult<Term<'a>> {
    let news = match to_new_events(&terms)? {
        Ok(news) => news,
        Err(e) => return Ok(Err::<(), _>(NifError(e)).encode(env)),
    };
    put_converted(env, hot, warm, &terms, news, one, offset, wait)
}

/// `put_now` of events converted already (`news`, from `terms`).
#[allow(clippy::too_many_arguments)]
fn put_converted<'a>(
    env: Env<'a>,
    hot: &StoreHandle,
    warm: &WarmHandle,
    terms: &[Term<'a>],
    news: Vec<NewEvent>,
    one: bool,
    offset: i64,
    wait: bool,
) -> NifResult<Term<'a>> {
    // On a normal scheduler, a write that would wait goes to the dirty
    // twin before its encoding is made (`:busy`: the events are valid).
    let _gate = if wait {
        warm.quiet.gate.read().map_err(|_| Error::BadArg)?
    } else {
        match warm.quiet.gate.try_read() {
            Ok(gate) if !warm.warm.journal_full() => gate,
            _ => return Ok(atoms::busy().encode(env)),
        }
    };
    // The events' external term format, one after another in `etf`.
    let frame = crate::store_codec::with_scratch_buffer(|etf| {
        let ranges: Vec<_> = terms
            .iter()
            .map(|t| {
                let start = etf.len();
                crate::disk_body::append(*t, etf);
                start..etf.len()
            })
            .collect();
        let incoming: Vec<Incoming> = news
            .iter()
            .zip(ranges)
            .map(|(new, range)| Incoming {
                id: new.id,
                event_type: &new.event_type,
                sys_ts: new.timestamp.saturating_add(offset),
                correlation_id: new.correlation_id.as_deref(),
                body: &etf[range],
            })
            .collect();
        Warm::journal_frame(&incoming)
    });
    let _ids = warm.ids.lock(news.iter().map(|n| n.id));
    let newest = newest_sys_ts(&news, offset);
    let written = warm.warm.write_journal(&frame, wait).map(|()| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if one && news.len() == 1 {
                news.into_iter()
                    .next()
                    .map_or(Ok(vec![0]), |n| hot.0.put(n).map(|id| vec![id]))
            } else {
                hot.0.put_batch(news)
            }
        }))
        .unwrap_or_else(|_| Err(panicked()))
    });
    if matches!(written, Ok(Err(_))) {
        warm.warm.note_disk_only(newest);
    }
    Ok(match written {
        Ok(Ok(ids)) if one => (atoms::ok(), ids.first().copied().unwrap_or(0)).encode(env),
        Ok(Ok(ids)) => (atoms::ok(), ids).encode(env),
        Ok(Err(e)) | Err(Blocked::Failed(e)) => Err::<(), _>(NifError(e)).encode(env),
        Err(Blocked::Wait) => atoms::busy().encode(env),
    })
}

/// A write through the journal or the writer thread (see `put_now`,
/// `queue`).
#[allow(clippy::too_many_arguments)]
fn write<'a>(
    env: Env<'a>,
    hot: ResourceArc<StoreHandle>,
    warm: &WarmHandle,
    terms: Vec<Term<'a>>,
    one: bool,
    offset: i64,
    tag: Term<'a>,
    wait: bool,
) -> NifResult<Term<'a>> {
    if warm.warm.journaled() {
        put_now(env, &hot, warm, terms, one, offset, wait)
    } else {
        Ok(queue(env, hot, warm, terms, one, offset, tag)?.encode(env))
    }
}

/// Queues one event for the writer, which answers `{tag, {:ok, id}}` (or
/// `{tag, {:error, _}}`) once it is on disk and in the hot tier: `:queued`,
/// `{:error, _}` (tier closed), or `:dirty` / `:invalid` as the store's
/// normal writes answer (nothing queued). With the journal the write is
/// done here: `{:ok, id}` (see `put_now`).
#[rustler::nif]
fn warm_put<'a>(
    env: Env<'a>,
    hot: Term<'a>,
    warm: &WarmHandle,
    event: Term<'a>,
    offset: i64,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    if warm.warm.journaled() {
        // As the hot tier's own put: one read of the event checks,
        // measures and converts it; the handles are borrowed.
        let started = std::time::Instant::now();
        let hot: &StoreHandle = hot.decode()?;
        return Ok(match prepare(event, NORMAL_BYTES)? {
            Prepared::Ready(Ok(new), bytes) => {
                let out = put_converted(env, hot, warm, &[event], vec![new], true, offset, false);
                crate::budget::charge(env, started, bytes);
                out?
            }
            Prepared::Ready(Err(e), _) => Err::<(), _>(NifError(e)).encode(env),
            Prepared::Invalid => Routed::<()>::Invalid.encode(env),
            Prepared::Undecided => Routed::<()>::Dirty.encode(env),
        });
    }
    let hot: ResourceArc<StoreHandle> = hot.decode()?;
    Ok(checked(env, event, false, || {
        write(env, hot, warm, vec![event], true, offset, tag, false)
    })?
    .encode(env))
}

/// `warm_put` for an event validated by the caller, on a dirty scheduler
/// (where a journal write may wait).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_put_dirty<'a>(
    env: Env<'a>,
    hot: ResourceArc<StoreHandle>,
    warm: ResourceArc<WarmHandle>,
    event: Term<'a>,
    offset: i64,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    write(env, hot, &warm, vec![event], true, offset, tag, true)
}

/// Writes a chunk of events as one write (answer `{:ok, ids}`, or with
/// the writer thread `{tag, {:ok, ids}}`); otherwise as `warm_put`.
#[rustler::nif]
fn warm_put_batch<'a>(
    env: Env<'a>,
    hot: Term<'a>,
    warm: &WarmHandle,
    events: Term<'a>,
    offset: i64,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    if warm.warm.journaled() {
        let started = std::time::Instant::now();
        let hot: &StoreHandle = hot.decode()?;
        // Each event read once (checked, measured, converted) within what
        // is left of the byte budget, as the hot tier's batch put.
        let mut terms = Vec::new();
        let (news, bytes) = match prepare_each(events, |t| terms.push(t))? {
            Routed::Done((Ok(news), bytes)) => (news, bytes),
            Routed::Done((Err(e), _)) => return Ok(Err::<(), _>(NifError(e)).encode(env)),
            Routed::Invalid => return Ok(Routed::<()>::Invalid.encode(env)),
            Routed::Dirty => return Ok(Routed::<()>::Dirty.encode(env)),
        };
        let out = put_converted(env, hot, warm, &terms, news, false, offset, false);
        crate::budget::charge(env, started, bytes);
        return out;
    }
    let hot: ResourceArc<StoreHandle> = hot.decode()?;
    Ok(checked(env, events, true, || {
        write(
            env,
            hot,
            warm,
            list_terms(events)?,
            false,
            offset,
            tag,
            false,
        )
    })?
    .encode(env))
}

/// `warm_put_batch` for events validated by the caller, on a dirty scheduler.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_put_batch_dirty<'a>(
    env: Env<'a>,
    hot: ResourceArc<StoreHandle>,
    warm: ResourceArc<WarmHandle>,
    events: Term<'a>,
    offset: i64,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    write(
        env,
        hot,
        &warm,
        list_terms(events)?,
        false,
        offset,
        tag,
        true,
    )
}

fn hit_term<'a>(env: Env<'a>, hit: &Hit) -> NifResult<Term<'a>> {
    Ok((hit.sys_ts, event_term(env, hit)?).encode(env))
}

fn event_term<'a>(env: Env<'a>, hit: &Hit) -> NifResult<Term<'a>> {
    // The body passed its checksum and was written by this library; trusted
    // decoding also recreates atoms a new VM has not seen yet.
    crate::disk_body::decode(env, &hit.body, true).ok_or(Error::BadArg)
}

fn hits<'a>(env: Env<'a>, found: Result<Vec<Hit>, CoreError>) -> NifResult<Term<'a>> {
    match found {
        Ok(found) => {
            let terms = found
                .iter()
                .map(|h| hit_term(env, h))
                .collect::<NifResult<Vec<_>>>()?;
            Ok((atoms::ok(), terms).encode(env))
        }
        Err(e) => Ok(Err::<(), _>(crate::error::NifError(e)).encode(env)),
    }
}

/// `{sys_ts, event}`, `nil`, or `{:error, _}`.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_get<'a>(env: Env<'a>, warm: ResourceArc<WarmHandle>, id: u64) -> NifResult<Term<'a>> {
    match warm.warm.get(id) {
        Ok(Some(hit)) => hit_term(env, &hit),
        Ok(None) => Ok(atoms::nil().encode(env)),
        Err(e) => Ok(Err::<(), _>(crate::error::NifError(e)).encode(env)),
    }
}

/// `{:ok, [{sys_ts, event}]}`: at most `limit` (0: all) matches in `order`,
/// the time range in system time.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_query<'a>(
    env: Env<'a>,
    warm: ResourceArc<WarmHandle>,
    event_type: Atom,
    sys_range: Option<(i64, i64)>,
    order: Atom,
    limit: usize,
) -> NifResult<Term<'a>> {
    let q = query_from(env, event_type, sys_range, order, 0, limit)?;
    hits(env, warm.warm.query(&q))
}

/// One page of a stream over the tier: `{:ok, {events, cursor, done}}`
/// (`cursor` a binary to pass back, or nil), or `{:error, _}`. `order` is
/// `:timestamp`, `:timestamp_desc` or `:event_id` (no type, no range).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_page<'a>(
    env: Env<'a>,
    warm: ResourceArc<WarmHandle>,
    event_type: Atom,
    sys_range: Option<(i64, i64)>,
    order: Atom,
    cursor: Option<Binary>,
    max: usize,
) -> NifResult<Term<'a>> {
    let q = query_from(env, event_type, sys_range, order, 0, 0)?;
    let cursor = cursor.map(|c| c.as_slice().to_vec());
    let page = warm.warm.page(
        q.event_type.as_deref(),
        q.time_range,
        q.order,
        cursor.as_deref(),
        max.clamp(1, 4096),
    );
    match page {
        Ok((found, cursor, done)) => {
            let events = found
                .iter()
                .map(|h| event_term(env, h))
                .collect::<NifResult<Vec<_>>>()?;
            let cursor = match cursor {
                Some(c) => {
                    let mut bin = rustler::OwnedBinary::new(c.len());
                    bin.as_mut_slice().copy_from_slice(&c);
                    bin.release(env).encode(env)
                }
                None => atoms::nil().encode(env),
            };
            Ok((atoms::ok(), (events, cursor, done)).encode(env))
        }
        Err(e) => Ok(Err::<(), _>(crate::error::NifError(e)).encode(env)),
    }
}

/// `{:ok, [{sys_ts, event}]}` of a correlation group, by (time, id).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_get_by_correlation<'a>(
    env: Env<'a>,
    warm: ResourceArc<WarmHandle>,
    cid: Binary,
) -> NifResult<Term<'a>> {
    hits(env, warm.warm.get_by_correlation(cid.as_slice()))
}

#[rustler::nif(schedule = "DirtyIo")]
fn warm_prune_before(warm: ResourceArc<WarmHandle>, sys_ts: i64) -> NifOutcome<usize> {
    Ok(warm.warm.prune_before(sys_ts)?)
}

#[rustler::nif(schedule = "DirtyIo")]
fn warm_clear(warm: ResourceArc<WarmHandle>) -> NifOutcome<Atom> {
    warm.warm.clear()?;
    Ok(atoms::ok())
}

/// Syncs and closes the tier; its engine threads are joined.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_close(warm: ResourceArc<WarmHandle>) -> NifOutcome<Atom> {
    warm.stop_writer()?;
    warm.warm.close()?;
    Ok(atoms::ok())
}

/// The newest system time on disk when the tier opened (see
/// `Warm::floor`): an integer, `nil` (nothing), or `:unknown` while the
/// indexes are rebuilt.
#[rustler::nif]
fn warm_floor(env: Env, warm: ResourceArc<WarmHandle>) -> Term {
    match warm.warm.floor() {
        Some(floor) => floor.encode(env),
        None => atoms::unknown().encode(env),
    }
}

/// Counters and sizes (reads the engine's file-size metadata).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_stats(warm: ResourceArc<WarmHandle>) -> Vec<(Atom, u64)> {
    let s = warm.warm.stats();
    vec![
        (atoms::warm_events(), s.events),
        (atoms::warm_bytes(), s.bytes),
        (atoms::warm_disk_bytes(), s.disk_bytes),
        (atoms::warm_evicted(), s.evicted),
        (atoms::warm_corrupt_records(), s.corrupt_records),
        (atoms::warm_stored(), s.stored),
        (atoms::warm_pruned(), s.pruned),
    ]
}

/// Ids of damaged records found since the last call (each once).
#[rustler::nif]
fn warm_take_corrupt(warm: ResourceArc<WarmHandle>) -> Vec<u64> {
    warm.warm.take_new_corrupt()
}

/// Test support: the tier's next `n` disk writes fail.
#[cfg(feature = "test-support")]
mod fail {
    use super::{atoms, WarmHandle};
    use rustler::{Atom, ResourceArc};

    #[rustler::nif]
    fn warm_fail_writes(warm: ResourceArc<WarmHandle>, n: u64) -> Atom {
        warm.warm.fail_next_writes(n);
        atoms::ok()
    }

    /// The journal's apply thread applies nothing while `held`.
    #[rustler::nif]
    fn warm_hold_apply(warm: ResourceArc<WarmHandle>, held: bool) -> Atom {
        warm.warm.hold_apply(held);
        atoms::ok()
    }
}

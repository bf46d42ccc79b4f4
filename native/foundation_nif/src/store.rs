//! Event store NIFs: a `Store` held in a resource, called straight from the
//! caller's process. Work that grows with the store (prune, expiry, clear)
//! runs on a dirty CPU scheduler. Work that grows with the result or the
//! input is bounded on normal schedulers, by count (batches are chunked by
//! the caller; queries with a small limit and small correlation groups) and
//! by bytes (`budget::NORMAL_BYTES`), and dirty otherwise: decoding terms
//! on a dirty scheduler costs more (every allocation becomes a heap
//! fragment), so small work stays on the normal schedulers.

use crate::atoms;
use crate::budget::{self, Routed, Sched, NORMAL_BYTES};
use crate::error::{NifError, NifOutcome};
use crate::metrics_hot;
use crate::store_codec::Prepared;
use crate::store_codec::{
    list_terms, prepare, query_from, to_new_event, to_new_events, to_term, to_terms,
};
use crate::validation::{self, Fast};
use foundation_core::store::{Bytes, NewEvent, Query, Store, StoreConfig};
use foundation_core::CoreError;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Resource, ResourceArc, Term};
use std::time::Instant;

/// A write: `{:ok, t}`, `{:error, {kind, detail}}`, or `:dirty` (see below).
type Put<T> = NifResult<Routed<NifOutcome<T>>>;
/// Events read for a write (or why one cannot be stored), and the bytes of
/// work that took.
type Ready<T> = (Result<T, CoreError>, usize);
/// A read's term, or `:dirty`.
type Read<T> = NifResult<Routed<T>>;

/// The store resource.
pub struct StoreHandle(pub Store);

// Store holds a crossbeam Sender and RwLocks; a caught panic never leaves it
// observed half-updated (locks poison and are reported as errors).
impl std::panic::RefUnwindSafe for StoreHandle {}

#[rustler::resource_impl]
impl Resource for StoreHandle {}

#[rustler::nif]
fn store_new(
    shards: usize,
    max_events: usize,
    max_age_ms: u64,
    async_capacity: usize,
) -> NifOutcome<ResourceArc<StoreHandle>> {
    let config = StoreConfig {
        shards,
        max_events,
        max_age_ms,
        async_capacity,
    };
    Ok(ResourceArc::new(StoreHandle(Store::new(config)?)))
}

#[rustler::nif]
fn store_set_limits(store: ResourceArc<StoreHandle>, max_events: usize, max_age_ms: u64) -> Atom {
    store.0.set_limits(max_events, max_age_ms);
    atoms::ok()
}

// Writes and reads that grow with the event bytes come in pairs: the
// normal NIF answers `:dirty` (nothing done) above `budget::NORMAL_BYTES`
// of input (measured by a bounded walk) or of stored payloads, and its
// `*_dirty` twin runs the same inner function on a dirty CPU scheduler.

// The normal-scheduler writes also validate, so a valid event is checked
// and stored in one call; anything else answers `:invalid` having done
// nothing, and the caller validates exactly (for the error) before its
// dirty twin, which does not validate again. They read each event once
// (`store_codec::prepare`) to check it, measure it and encode it.

// The hot NIFs (puts and get by id) borrow the store handle (`&StoreHandle`)
// instead of taking a `ResourceArc`: the argument term keeps the resource
// alive for the call, and no reference count is bumped and dropped per call
// (one cache line every writer on every scheduler would otherwise write).

#[rustler::nif]
fn store_put<'a>(env: Env<'a>, store: &StoreHandle, event: Term<'a>) -> Put<u64> {
    put_now(env, store, event)
}

/// `store_put`, then, once the event is stored, the counter `name` (value
/// 1) in the `metrics` handle, counted as `metrics_add_cached/3` counts:
/// a write and its `events_stored` count in one call. `{:ok, id}` when
/// both are done; `{:ok, id, :handler | :miss}` when the event is stored
/// and the caller finishes the count (runs the handler, or counts the slow
/// way); otherwise `store_put`'s answer, with nothing stored or counted.
#[rustler::nif]
fn store_put_counted<'a>(
    env: Env<'a>,
    store: &StoreHandle,
    event: Term<'a>,
    metrics: Term<'a>,
    name: Term<'a>,
) -> NifResult<Term<'a>> {
    Ok(match put_now(env, store, event)? {
        Routed::Done(Ok(id)) => match metrics_hot::add_cached_int(metrics, name, 1) {
            counted if counted == atoms::ok() => (counted, id).encode(env),
            counted => (atoms::ok(), id, counted).encode(env),
        },
        other => other.encode(env),
    })
}

/// One event checked, converted and stored on a normal scheduler (see
/// `prepare`), charged to the caller's timeslice by its bytes.
fn put_now(env: Env, store: &StoreHandle, event: Term) -> Put<u64> {
    Ok(match prepare(event, NORMAL_BYTES)? {
        Prepared::Ready(event, bytes) => {
            let put = event.and_then(|e| store.0.put(e)).map_err(Into::into);
            budget::charge_bytes(env, bytes);
            Routed::Done(put)
        }
        Prepared::Invalid => Routed::Invalid,
        Prepared::Undecided => Routed::Dirty,
    })
}

/// The events of a list, each `prepare`d within what is left of the byte
/// budget: `Invalid` or `Dirty` as soon as one is, else the events (or the
/// first one that cannot be stored) and the bytes of work.
fn prepare_list(list: Term) -> NifResult<Routed<Ready<Vec<NewEvent>>>> {
    prepare_each(list, |_| ())
}

/// `prepare_list`, handing `keep` the term of each event converted.
pub(crate) fn prepare_each<'a>(
    list: Term<'a>,
    mut keep: impl FnMut(Term<'a>),
) -> NifResult<Routed<Ready<Vec<NewEvent>>>> {
    let (mut bytes, mut rest) = (0usize, list);
    let mut events = Ok(Vec::new());
    while !rest.is_empty_list() {
        let (head, tail) = rest.list_get_cell().map_err(|_| rustler::Error::BadArg)?;
        rest = tail;
        match prepare(head, NORMAL_BYTES - bytes)? {
            Prepared::Ready(event, n) => {
                bytes += n;
                match (&mut events, event) {
                    (Ok(all), Ok(event)) => {
                        all.push(event);
                        keep(head);
                    }
                    (Ok(_), Err(e)) => events = Err(e),
                    (Err(_), _) => {}
                }
            }
            Prepared::Invalid => return Ok(Routed::Invalid),
            Prepared::Undecided => return Ok(Routed::Dirty),
        }
    }
    Ok(Routed::Done((events, bytes)))
}

/// Runs `f` on a normal scheduler when `input` (an event, or a list of
/// them when `list`) passes validation and fits the byte budget; else
/// answers `:invalid` or `:dirty` without running it.
pub(crate) fn checked<'a, T>(
    env: Env<'a>,
    input: Term<'a>,
    list: bool,
    f: impl FnOnce() -> NifResult<T>,
) -> NifResult<Routed<T>> {
    // Each event takes at least `FIELDS_BYTES` of the budget, so a long
    // list is given up after a bounded number of cells.
    let (mut bytes, mut rest) = (0usize, input);
    loop {
        let event = match list {
            false => input,
            true if rest.is_empty_list() => break,
            true => {
                let (head, tail) = rest.list_get_cell().map_err(|_| rustler::Error::BadArg)?;
                rest = tail;
                head
            }
        };
        match validation::fast(event, NORMAL_BYTES - bytes)? {
            Fast::Valid(n) => bytes += n,
            Fast::Invalid => return Ok(Routed::Invalid),
            Fast::Undecided => return Ok(Routed::Dirty),
        }
        if !list {
            break;
        }
    }
    Sched::Normal.run(env, || Some(bytes), f)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_put_dirty(store: ResourceArc<StoreHandle>, event: Term) -> NifResult<NifOutcome<u64>> {
    put(&store, event)
}

pub(crate) fn put(store: &StoreHandle, event: Term) -> NifResult<NifOutcome<u64>> {
    Ok(to_new_event(event)?
        .and_then(|e| store.0.put(e))
        .map_err(Into::into))
}

/// The caller sends chunks of a bounded count (see `EventStore`).
#[rustler::nif]
fn store_put_batch<'a>(env: Env<'a>, store: &StoreHandle, events: Term<'a>) -> Put<Vec<u64>> {
    let started = Instant::now();
    Ok(prepare_list(events)?.map(|(events, bytes)| {
        let put = events.and_then(|evs| store.0.put_batch(evs));
        budget::charge(env, started, bytes);
        put.map_err(Into::into)
    }))
}

/// Validates a chunk of a batch without storing it: `:ok`, `:invalid` (run
/// the exact validation) or `:dirty` (over the budget: validate in Elixir).
#[rustler::nif]
fn store_check_batch<'a>(env: Env<'a>, events: Term<'a>) -> NifResult<Routed<Atom>> {
    checked(env, events, true, || Ok(atoms::ok()))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_put_batch_dirty(
    store: ResourceArc<StoreHandle>,
    events: Term,
) -> NifResult<NifOutcome<Vec<u64>>> {
    put_batch(&store, events)
}

fn put_batch(store: &StoreHandle, events: Term) -> NifResult<NifOutcome<Vec<u64>>> {
    Ok(to_new_events(&list_terms(events)?)?
        .and_then(|evs| store.0.put_batch(evs))
        .map_err(Into::into))
}

#[rustler::nif]
fn store_put_async<'a>(env: Env<'a>, store: &StoreHandle, event: Term<'a>) -> Put<Atom> {
    Ok(match prepare(event, NORMAL_BYTES)? {
        Prepared::Ready(event, bytes) => {
            let queued = event.and_then(|e| store.0.put_async(e));
            budget::charge_bytes(env, bytes);
            Routed::Done(queued.map(|_| atoms::ok()).map_err(Into::into))
        }
        Prepared::Invalid => Routed::Invalid,
        Prepared::Undecided => Routed::Dirty,
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_put_async_dirty(
    store: ResourceArc<StoreHandle>,
    event: Term,
) -> NifResult<NifOutcome<Atom>> {
    put_async(&store, event)
}

fn put_async(store: &StoreHandle, event: Term) -> NifResult<NifOutcome<Atom>> {
    let result = to_new_event(event)?.and_then(|e| store.0.put_async(e));
    Ok(result.map(|_| atoms::ok()).map_err(Into::into))
}

#[rustler::nif]
fn store_get<'a>(env: Env<'a>, store: &StoreHandle, id: u64) -> Read<Term<'a>> {
    get(env, store, id, Sched::Normal)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_get_dirty<'a>(env: Env<'a>, store: ResourceArc<StoreHandle>, id: u64) -> Read<Term<'a>> {
    get(env, &store, id, Sched::Dirty)
}

fn get<'a>(env: Env<'a>, store: &StoreHandle, id: u64, sched: Sched) -> Read<Term<'a>> {
    match store.0.get(id) {
        Ok(Some(payload)) => {
            let size = || budget::stored_size(std::slice::from_ref(&payload));
            sched.run(env, size, || to_term(env, &payload))
        }
        Ok(None) => Ok(Routed::Done(atoms::nil().encode(env))),
        Err(e) => Ok(Routed::Done(Err::<(), _>(NifError(e)).encode(env))),
    }
}

/// Normal scheduler: answers only groups of at most `max` events within the
/// byte budget, `:dirty` otherwise (the caller then uses the dirty variant).
#[rustler::nif]
fn store_get_by_correlation<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    cid: Binary,
    max: usize,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    match store.0.get_by_correlation_bounded(cid.as_slice(), max) {
        Ok(Some(payloads)) => decode_all(env, &payloads, Sched::Normal),
        Ok(None) => Ok(Routed::Dirty),
        Err(e) => Ok(Routed::Done(Err(e.into()))),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_get_by_correlation_dirty<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    cid: Binary,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    match store.0.get_by_correlation(cid.as_slice()) {
        Ok(payloads) => decode_all(env, &payloads, Sched::Dirty),
        Err(e) => Ok(Routed::Done(Err(e.into()))),
    }
}

/// Normal scheduler: the caller uses it only with a small limit (bounded
/// count), and it answers `:dirty` above the byte budget;
/// `store_query_dirty` is the same query on a dirty scheduler.
#[rustler::nif]
fn store_query<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
    order: Atom,
    offset: usize,
    limit: usize,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    let q = query_from(env, event_type, time_range, order, offset, limit)?;
    run_query(env, &store, &q, Sched::Normal)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_query_dirty<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
    order: Atom,
    offset: usize,
    limit: usize,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    let q = query_from(env, event_type, time_range, order, offset, limit)?;
    run_query(env, &store, &q, Sched::Dirty)
}

fn run_query<'a>(
    env: Env<'a>,
    store: &StoreHandle,
    q: &Query,
    sched: Sched,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    match store.0.query(q) {
        Ok(payloads) => decode_all(env, &payloads, sched),
        Err(e) => Ok(Routed::Done(Err(e.into()))),
    }
}

/// `{:ok, events}`, or `:dirty` on a normal scheduler over the budget.
fn decode_all<'a>(
    env: Env<'a>,
    payloads: &[Bytes],
    sched: Sched,
) -> Read<NifOutcome<Vec<Term<'a>>>> {
    let size = || budget::stored_size(payloads);
    sched.run(env, size, || Ok(Ok(to_terms(env, payloads)?)))
}

/// Shards holding more events than this are pruned on a dirty scheduler
/// (`store_prune_shard` answers `:dirty`): pruning half of a 22 000-event
/// shard took 0.4-0.7 ms (the first shard of a prune up to 1.4 ms).
const INLINE_PRUNE: usize = 24_576;

/// Number of shards of the store (`store_prune_shard` indexes).
#[rustler::nif]
fn store_shard_count(store: &StoreHandle) -> usize {
    store.0.shard_count()
}

/// `prune_before` of shard `index` on a normal scheduler; `:dirty`
/// (nothing done) when the shard holds more than `INLINE_PRUNE` events or
/// has a group cut pending (the prune would apply it first). Pruning shard
/// by shard from the caller's own scheduler costs no hand-off to a dirty
/// scheduler, and other processes run between shards.
#[rustler::nif]
fn store_prune_shard(
    env: Env,
    store: &StoreHandle,
    ts: i64,
    index: usize,
) -> NifResult<Routed<NifOutcome<usize>>> {
    let started = Instant::now();
    let pruned = match store.0.shard_state(index) {
        Ok((len, unswept)) if unswept || len > INLINE_PRUNE => return Ok(Routed::Dirty),
        Ok(_) => store.0.prune_shard(ts, index).map_err(Into::into),
        Err(e) => Err(e.into()),
    };
    budget::charge_time(env, started);
    Ok(Routed::Done(pruned))
}

/// `store_prune_shard` on a dirty scheduler, for any shard size.
#[rustler::nif(schedule = "DirtyCpu")]
fn store_prune_shard_dirty(store: &StoreHandle, ts: i64, index: usize) -> NifOutcome<usize> {
    Ok(store.0.prune_shard(ts, index)?)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_expire(store: ResourceArc<StoreHandle>) -> NifOutcome<usize> {
    Ok(store.0.expire()?)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_clear(store: ResourceArc<StoreHandle>) -> NifOutcome<Atom> {
    store.0.clear()?;
    crate::alloc::trim();
    Ok(atoms::ok())
}

/// Joins the async worker, which first drains the queue: may wait. The
/// freed events' memory is then handed back to the system (see `trim`).
#[rustler::nif(schedule = "DirtyIo")]
fn store_close(store: ResourceArc<StoreHandle>) -> NifOutcome<Atom> {
    store.0.close()?;
    crate::alloc::trim();
    Ok(atoms::ok())
}

/// The newest timestamp of the events retention removed (`nil`: none).
#[rustler::nif]
fn store_retired_newest(store: ResourceArc<StoreHandle>) -> NifOutcome<Option<i64>> {
    Ok(store.0.retired_newest()?)
}

#[rustler::nif]
fn store_stats(store: ResourceArc<StoreHandle>) -> NifOutcome<Vec<(Atom, u64)>> {
    let s = store.0.stats()?;
    Ok(vec![
        (atoms::current_event_count(), s.current_event_count),
        (atoms::events_stored(), s.events_stored),
        (atoms::events_pruned(), s.events_pruned),
        (atoms::evicted_max_events(), s.evicted_max_events),
        (atoms::evicted_max_age(), s.evicted_max_age),
        (atoms::async_dropped(), s.async_dropped),
        (atoms::async_failed(), s.async_failed),
        (atoms::async_queue_len(), s.async_queue_len),
        (atoms::max_id(), s.max_id),
    ])
}

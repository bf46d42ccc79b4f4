//! Warm storage NIFs: the disk tier of the event store
//! (`foundation_core::store::warm`). Every call that may touch the disk runs
//! on a dirty I/O scheduler; `warm_stats` only reads counters.
//!
//! A write decodes the event once: the hot tier's form (`to_new_event`)
//! and the durable form (external term format, `term_to_binary`). The warm
//! append comes first, so an event is acknowledged, and visible in the hot
//! tier, only once the disk tier has handed it to the OS.

use crate::error::NifOutcome;
use crate::store::StoreHandle;
use crate::store_codec::{list_terms, query_from, to_new_event};
use foundation_core::store::warm::{Compression, Hit, Warm, WarmConfig, WarmEvent};
use foundation_core::store::NewEvent;
use foundation_core::CoreError;
use rustler::{Atom, Binary, Encoder, Env, Error, NifResult, Resource, ResourceArc, Term};

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
    }
}

/// The warm tier resource.
pub struct WarmHandle(pub Warm);

// Warm holds Mutexes/RwLocks (poisoned on panic, reported as errors).
impl std::panic::RefUnwindSafe for WarmHandle {}

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
    };
    let (warm, notes) = Warm::open(&config)?;
    Ok((ResourceArc::new(WarmHandle(warm)), notes))
}

fn to_warm(event: Term, hot: &NewEvent, offset: i64) -> WarmEvent {
    WarmEvent {
        id: hot.id,
        event_type: hot.event_type.to_vec(),
        sys_ts: hot.timestamp.saturating_add(offset),
        correlation_id: hot.correlation_id.as_ref().map(|c| c.to_vec()),
        body: event.to_binary().as_slice().to_vec(),
    }
}

/// Stores one event in the warm tier, then the hot tier.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_put(
    hot: ResourceArc<StoreHandle>,
    warm: ResourceArc<WarmHandle>,
    event: Term,
    offset: i64,
) -> NifResult<NifOutcome<u64>> {
    let new = match to_new_event(event)? {
        Ok(new) => new,
        Err(e) => return Ok(Err(e.into())),
    };
    let durable = to_warm(event, &new, offset);
    Ok(warm
        .0
        .append(vec![durable])
        .and_then(|()| hot.0.put(new))
        .map_err(Into::into))
}

/// Stores a list of events (one group-commit batch), then in the hot tier.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_put_batch(
    hot: ResourceArc<StoreHandle>,
    warm: ResourceArc<WarmHandle>,
    events: Term,
    offset: i64,
) -> NifResult<NifOutcome<Vec<u64>>> {
    let terms = list_terms(events)?;
    let mut news = Vec::with_capacity(terms.len());
    let mut durables = Vec::with_capacity(terms.len());
    for term in terms {
        match to_new_event(term)? {
            Ok(new) => {
                durables.push(to_warm(term, &new, offset));
                news.push(new);
            }
            Err(e) => return Ok(Err(e.into())),
        }
    }
    Ok(warm
        .0
        .append(durables)
        .and_then(|()| hot.0.put_batch(news))
        .map_err(Into::into))
}

fn hit_term<'a>(env: Env<'a>, hit: &Hit) -> NifResult<Term<'a>> {
    // SAFETY: the body passed its checksum and was written by `term_to_binary`;
    // trusted decoding also recreates atoms a new VM has not seen yet.
    let (term, _) = unsafe { env.binary_to_term_trusted(&hit.body) }.ok_or(Error::BadArg)?;
    Ok((hit.sys_ts, term).encode(env))
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
    match warm.0.get(id) {
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
    hits(env, warm.0.query(&q))
}

/// `{:ok, [{sys_ts, event}]}` of a correlation group, by (time, id).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_get_by_correlation<'a>(
    env: Env<'a>,
    warm: ResourceArc<WarmHandle>,
    cid: Binary,
) -> NifResult<Term<'a>> {
    hits(env, warm.0.get_by_correlation(cid.as_slice()))
}

#[rustler::nif(schedule = "DirtyIo")]
fn warm_prune_before(warm: ResourceArc<WarmHandle>, sys_ts: i64) -> NifOutcome<usize> {
    Ok(warm.0.prune_before(sys_ts)?)
}

#[rustler::nif(schedule = "DirtyIo")]
fn warm_clear(warm: ResourceArc<WarmHandle>) -> NifOutcome<Atom> {
    warm.0.clear()?;
    Ok(atoms::ok())
}

/// Syncs and closes the tier; its engine threads are joined.
#[rustler::nif(schedule = "DirtyIo")]
fn warm_close(warm: ResourceArc<WarmHandle>) -> NifOutcome<Atom> {
    warm.0.close()?;
    Ok(atoms::ok())
}

/// Counters and sizes (reads the engine's file-size metadata).
#[rustler::nif(schedule = "DirtyIo")]
fn warm_stats(warm: ResourceArc<WarmHandle>) -> Vec<(Atom, u64)> {
    let s = warm.0.stats();
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
    warm.0.take_new_corrupt()
}

//! Metric store NIFs of the TelemetryService (`metrics_*`).
//!
//! Names arrive as lists of atoms and are kept as the atoms' names; snapshot
//! rebuilds atoms only from those names (atoms that already existed).
//! Metadata and non-numeric measurements are kept in the external term
//! format, so they come back exactly as given.
//!
//! Counter NIFs also pass the core the atoms' term words as segment ids
//! (atoms are immediates, unique and never freed while the VM runs), so a
//! repeated increment is served from the core's per-thread cache without
//! turning atoms into strings. They borrow the handle (`metrics_handle`):
//! no reference-count traffic on the resource per call.

use crate::atoms;
use crate::budget::{self, Routed, NORMAL_BYTES};
use crate::clock;
use crate::error::{NifError, NifOutcome};
use crate::metrics_handle;
use foundation_core::metrics::{
    EntrySnapshot, Key, Measure, Metrics, Name, Recorded, MAX_CACHED_SEGMENTS,
};
use foundation_core::CoreError;
use rustler::sys::ErlNifTerm;
use rustler::{Atom, Encoder, Env, Error, MapIterator, NifResult, Term, TermType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// `{:ok, t}`, `{:error, {kind, detail}}`, or `:dirty` from a normal NIF
/// over its budget (see `budget`).
type Outcome<T> = NifResult<Routed<NifOutcome<T>>>;

/// A handle (see `metrics_handle`) on a new, empty store.
#[rustler::nif]
fn metrics_new(env: Env, max_metrics: usize) -> NifResult<Term> {
    metrics_handle::make(env, Metrics::new(max_metrics))
}

/// Makes the calling process the handle's owner (see `metrics_handle`):
/// `metrics_add_cached/3` serves the handle only while its owner lives.
#[rustler::nif]
fn metrics_own(env: Env, handle: Term) -> NifResult<bool> {
    metrics_handle::own(env, handle)
}

/// Normal scheduler: `:dirty` (nothing recorded) when the measurements, or
/// the metadata of a new name, exceed `budget::NORMAL_BYTES`.
#[rustler::nif]
fn metrics_record<'a>(
    handle: Term<'a>,
    name: Term<'a>,
    measurements: Term<'a>,
    metadata: Term<'a>,
    now: i64,
) -> Outcome<bool> {
    record(
        metrics_handle::get(handle)?,
        name,
        measurements,
        metadata,
        now,
        Some(NORMAL_BYTES),
    )
}

/// `metrics_record/5` on a dirty scheduler, without a budget.
#[rustler::nif(schedule = "DirtyCpu")]
fn metrics_record_dirty<'a>(
    handle: Term<'a>,
    name: Term<'a>,
    measurements: Term<'a>,
    metadata: Term<'a>,
    now: i64,
) -> Outcome<bool> {
    record(
        metrics_handle::get(handle)?,
        name,
        measurements,
        metadata,
        now,
        None,
    )
}

/// Normal scheduler: `:dirty` (nothing recorded) when the value, or the
/// metadata of a new name, exceeds `budget::NORMAL_BYTES`.
#[rustler::nif]
fn metrics_emit_counter<'a>(
    handle: Term<'a>,
    name: Term<'a>,
    value: Term<'a>,
    metadata: Term<'a>,
    now: i64,
) -> Outcome<bool> {
    let m = metrics_handle::get(handle)?;
    add_counter(m, name, value, metadata, now, Some(NORMAL_BYTES))
}

/// `metrics_emit_counter/5` on a dirty scheduler, without a budget.
#[rustler::nif(schedule = "DirtyCpu")]
fn metrics_emit_counter_dirty<'a>(
    handle: Term<'a>,
    name: Term<'a>,
    value: Term<'a>,
    metadata: Term<'a>,
    now: i64,
) -> Outcome<bool> {
    add_counter(
        metrics_handle::get(handle)?,
        name,
        value,
        metadata,
        now,
        None,
    )
}

/// `metrics_emit_counter/5` stamped with the VM's monotonic clock (native
/// units, as `System.monotonic_time/0`), read here instead of in Elixir.
/// Returns a bare atom (see `Counted`): no tuple to build on the hot path.
#[rustler::nif]
fn metrics_emit_counter_now<'a>(
    handle: Term<'a>,
    name: Term<'a>,
    value: Term<'a>,
    metadata: Term<'a>,
) -> NifResult<Routed<Counted>> {
    let m = metrics_handle::get(handle)?;
    let outcome = match clock::metric_now() {
        Some(now) => add_counter(m, name, value, metadata, now, Some(NORMAL_BYTES))?,
        None => Routed::Done(Err(NifError(CoreError::Internal("no clock".to_string())))),
    };
    Ok(outcome.map(Counted))
}

/// `:ok` (done; a new name beyond the cap is dropped and counted, as in
/// `metrics_emit_counter/5`), `:handler` (a handler is attached to the name)
/// or `{:error, {kind, detail}}`.
struct Counted(NifOutcome<bool>);

impl Encoder for Counted {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match &self.0 {
            Ok(false) => atoms::ok().encode(env),
            Ok(true) => atoms::handler().encode(env),
            Err(e) => (atoms::error(), e).encode(env),
        }
    }
}

/// Every entry as `{name, count, timestamp, measurements, metadata}`.
#[rustler::nif(schedule = "DirtyCpu")]
fn metrics_snapshot<'a>(
    env: Env<'a>,
    handle: Term<'a>,
) -> NifResult<Result<Vec<Term<'a>>, NifError>> {
    Ok(match metrics_handle::get(handle)?.snapshot() {
        Ok(entries) => encode_entries(env, &entries),
        Err(e) => Err(e.into()),
    })
}

/// Names a normal-scheduler snapshot encodes at most.
const NORMAL_SNAPSHOT_ENTRIES: usize = 64;

/// `metrics_snapshot/1` on a normal scheduler, for a small store: `:dirty`
/// (nothing returned) when it holds more than `NORMAL_SNAPSHOT_ENTRIES`
/// names or more than `budget::NORMAL_BYTES` of stored terms to decode.
/// Spares a small read the dirty scheduler hop, which costs more than it.
#[rustler::nif]
fn metrics_snapshot_small<'a>(env: Env<'a>, handle: Term<'a>) -> Outcome<Vec<Term<'a>>> {
    let m = metrics_handle::get(handle)?;
    if m.status().metrics > NORMAL_SNAPSHOT_ENTRIES {
        return Ok(Routed::Dirty);
    }
    let entries = match m.snapshot() {
        Ok(entries) => entries,
        Err(e) => return Ok(Routed::Done(Err(e.into()))),
    };
    if entries.len() > NORMAL_SNAPSHOT_ENTRIES || stored_bytes(&entries) > NORMAL_BYTES {
        return Ok(Routed::Dirty);
    }
    Ok(Routed::Done(encode_entries(env, &entries)))
}

/// Bytes of stored terms (metadata, non-numeric measurements) in `entries`.
fn stored_bytes(entries: &[(Name, EntrySnapshot)]) -> usize {
    let measure = |m: &Measure| match m {
        Measure::Term(bytes) => bytes.len(),
        _ => 0,
    };
    let key = |k: &Key| match k {
        Key::Other(bytes) => bytes.len(),
        _ => 0,
    };
    entries
        .iter()
        .map(|(_, e)| {
            let values: usize = e
                .measurements
                .iter()
                .map(|(k, v)| key(k) + measure(v))
                .sum();
            e.metadata.len() + values
        })
        .sum()
}

fn encode_entries<'a>(
    env: Env<'a>,
    entries: &[(Name, EntrySnapshot)],
) -> Result<Vec<Term<'a>>, NifError> {
    // Names share segments: make each atom once (an atom-table lookup each).
    let mut atoms: HashMap<&str, Atom> = HashMap::new();
    let terms: Result<Vec<Term>, CoreError> = entries
        .iter()
        .map(|(name, entry)| encode_entry(env, &mut atoms, name, entry))
        .collect();
    terms.map_err(Into::into)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn metrics_cleanup(handle: Term, cutoff: i64) -> NifResult<usize> {
    Ok(metrics_handle::get(handle)?.cleanup(cutoff))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn metrics_clear(handle: Term) -> NifResult<usize> {
    Ok(metrics_handle::get(handle)?.clear())
}

/// `{metrics_count, metrics_dropped, handlers_count, max_metrics}`.
#[rustler::nif]
fn metrics_status(handle: Term) -> NifResult<(usize, u64, usize, usize)> {
    let s = metrics_handle::get(handle)?.status();
    Ok((s.metrics, s.dropped, s.handlers, s.max_metrics))
}

#[rustler::nif]
fn metrics_attach(handle: Term, names: Term) -> NifResult<Atom> {
    let m = metrics_handle::get(handle)?;
    let names: NifResult<Vec<Name>> = list_items(names)?.into_iter().map(decode_name).collect();
    m.attach(names?);
    Ok(atoms::ok())
}

#[rustler::nif]
fn metrics_detach(handle: Term, names: Term) -> NifResult<Atom> {
    let m = metrics_handle::get(handle)?;
    let names: NifResult<Vec<Name>> = list_items(names)?.into_iter().map(decode_name).collect();
    m.detach(&names?);
    Ok(atoms::ok())
}

#[rustler::nif]
fn metrics_clear_handlers(handle: Term) -> NifResult<Atom> {
    metrics_handle::get(handle)?.clear_handlers();
    Ok(atoms::ok())
}

/// Records into `m` (see `metrics_record`); `budget` is `None` on a dirty
/// scheduler.
fn record(
    m: &Metrics,
    name: Term,
    measurements: Term,
    metadata: Term,
    now: i64,
    budget: Option<usize>,
) -> Outcome<bool> {
    if budget.is_some_and(|b| budget::measure(measurements, b).is_none()) {
        return Ok(Routed::Dirty);
    }
    let name = decode_name(name)?;
    let incoming = decode_measurements(measurements)?;
    let meta = || encode_within(metadata, budget);
    Ok(budget::routed(
        m.record(name, incoming, meta, now).map(|r| r.handler),
    ))
}

/// Cached increment by segment ids when possible, else the general path
/// (which caches the entry for the next call of this thread). The metadata
/// is encoded (and measured against `budget`) only for a new name.
fn add_counter(
    m: &Metrics,
    name: Term,
    value: Term,
    metadata: Term,
    now: i64,
    budget: Option<usize>,
) -> Outcome<bool> {
    if budget.is_some_and(|b| !is_number(value) && budget::measure(value, b).is_none()) {
        return Ok(Routed::Dirty);
    }
    let delta = decode_measure(value);
    let meta = || encode_within(metadata, budget);
    let recorded: Result<Recorded, CoreError> = match segment_ids(name)? {
        Some((ids, len)) => {
            let ids = ids.get(..len).ok_or(Error::BadArg)?;
            match m.try_add_cached(ids, &delta, now) {
                Ok(Some(hit)) => Ok(hit),
                Ok(None) => m.add_counter_caching(ids, decode_name(name)?, delta, meta, now),
                Err(e) => Err(e),
            }
        }
        None => m.add_counter(decode_name(name)?, delta, meta, now),
    };
    Ok(budget::routed(recorded.map(|r| r.handler)))
}

fn is_number(term: Term) -> bool {
    matches!(term.get_type(), TermType::Integer | TermType::Float)
}

/// The external term format of `term`, or `OverBudget` when it exceeds
/// `budget` (checked before encoding anything).
fn encode_within(term: Term, budget: Option<usize>) -> Result<Vec<u8>, CoreError> {
    match budget {
        Some(b) if budget::measure(term, b).is_none() => Err(budget::over_budget()),
        _ => Ok(term.to_binary().as_slice().to_vec()),
    }
}

/// The atoms' term words of a name of at most `MAX_CACHED_SEGMENTS` atoms,
/// on the stack; `None` for a longer name. Non-atoms and improper lists are
/// a badarg, as in `decode_name`.
fn segment_ids(term: Term) -> NifResult<Option<([u64; MAX_CACHED_SEGMENTS], usize)>> {
    let mut ids = [0u64; MAX_CACHED_SEGMENTS];
    let mut len = 0;
    let mut rest = term;
    while !rest.is_empty_list() {
        let (head, tail) = rest.list_get_cell()?;
        if !head.is_atom() {
            return Err(Error::BadArg);
        }
        match ids.get_mut(len) {
            Some(slot) => *slot = term_word(head),
            None => return Ok(None),
        }
        len += 1;
        rest = tail;
    }
    Ok(Some((ids, len)))
}

/// The word of `[]` (an immediate, the same for the VM's life), read at load.
pub(crate) static NIL_WORD: AtomicU64 = AtomicU64::new(u64::MAX);

/// Remembers the word of `[]` (called by the library's load callback).
pub fn set_nil(env: Env) {
    NIL_WORD.store(term_word(Term::list_new_empty(env)), Ordering::Relaxed);
}

/// The raw word of an immediate term (for an atom: its unique table index
/// and tag), which `ErlNifTerm` keeps in a private field.
pub(crate) fn term_word(term: Term) -> u64 {
    // SAFETY: ErlNifTerm is #[repr(transparent)] over usize; transmute checks the sizes.
    let word: usize = unsafe { std::mem::transmute::<ErlNifTerm, usize>(term.as_c_arg()) };
    word as u64
}

/// A list of atoms; anything else (or an atom outside Latin-1) is a badarg.
fn decode_name(term: Term) -> NifResult<Name> {
    list_items(term)?
        .into_iter()
        .map(|item| match item.get_type() {
            TermType::Atom => item.atom_to_string(),
            _ => Err(Error::BadArg),
        })
        .collect()
}

/// The items of a proper list, walked cell by cell: an improper list is a
/// badarg (rustler's `Vec` decoder would panic on it).
fn list_items(term: Term) -> NifResult<Vec<Term>> {
    let mut items = Vec::new();
    let mut rest = term;
    while !rest.is_empty_list() {
        let (head, tail) = rest.list_get_cell()?;
        items.push(head);
        rest = tail;
    }
    Ok(items)
}

fn decode_measurements(term: Term) -> NifResult<Vec<(Key, Measure)>> {
    let iter = MapIterator::new(term).ok_or(Error::BadArg)?;
    Ok(iter
        .map(|(k, v)| (decode_key(k), decode_measure(v)))
        .collect())
}

fn decode_key(term: Term) -> Key {
    match term.decode::<Atom>() {
        Ok(a) if a == atoms::gauge() => Key::Gauge,
        Ok(a) if a == atoms::counter() => Key::Counter,
        _ => Key::Other(term.to_binary().as_slice().to_vec()),
    }
}

/// Integers within 64 bits stay exact; wider ones (up to 128 bits) become
/// floats; anything else is kept as an opaque term.
fn decode_measure(term: Term) -> Measure {
    match term.get_type() {
        TermType::Integer => match term.decode::<i64>() {
            Ok(i) => Measure::Int(i),
            Err(_) => match term.decode::<i128>() {
                Ok(big) => Measure::Float(big as f64),
                Err(_) => Measure::Term(term.to_binary().as_slice().to_vec()),
            },
        },
        TermType::Float => match term.decode::<f64>() {
            Ok(f) => Measure::Float(f),
            Err(_) => Measure::Term(term.to_binary().as_slice().to_vec()),
        },
        _ => Measure::Term(term.to_binary().as_slice().to_vec()),
    }
}

/// `{name, count, timestamp, measurements, metadata}`.
fn encode_entry<'a, 'n>(
    env: Env<'a>,
    cache: &mut HashMap<&'n str, Atom>,
    name: &'n Name,
    e: &EntrySnapshot,
) -> Result<Term<'a>, CoreError> {
    let mut atoms = Vec::with_capacity(name.len());
    for segment in name {
        let atom = match cache.get(segment.as_str()) {
            Some(atom) => *atom,
            None => {
                let atom = Atom::from_str(env, segment).map_err(|_| internal("metric name"))?;
                cache.insert(segment, atom);
                atom
            }
        };
        atoms.push(atom);
    }
    let mut keys = Vec::with_capacity(e.measurements.len());
    let mut values = Vec::with_capacity(e.measurements.len());
    for (key, value) in &e.measurements {
        keys.push(match key {
            Key::Gauge => atoms::gauge().encode(env),
            Key::Counter => atoms::counter().encode(env),
            Key::Other(bytes) => stored_term(env, bytes)?,
        });
        values.push(match value {
            Measure::Int(i) => i.encode(env),
            Measure::Float(f) => f.encode(env),
            Measure::Term(bytes) => stored_term(env, bytes)?,
        });
    }
    let map = measurement_map(env, &keys, &values)?;
    let metadata = stored_term(env, &e.metadata)?;
    Ok((atoms, e.count, e.timestamp, map, metadata).encode(env))
}

/// One allocation for the map; keys are distinct terms, but should two of
/// them ever compare equal, `map_put` keeps the last one instead of failing.
fn measurement_map<'a>(
    env: Env<'a>,
    keys: &[Term<'a>],
    values: &[Term<'a>],
) -> Result<Term<'a>, CoreError> {
    if let Ok(map) = Term::map_from_term_arrays(env, keys, values) {
        return Ok(map);
    }
    let mut map = Term::map_new(env);
    for (k, v) in keys.iter().zip(values) {
        map = map.map_put(*k, *v).map_err(|_| internal("measurements"))?;
    }
    Ok(map)
}

/// Decodes bytes this crate produced with `to_binary` (their atoms exist).
fn stored_term<'a>(env: Env<'a>, bytes: &[u8]) -> Result<Term<'a>, CoreError> {
    env.binary_to_term(bytes)
        .map(|(term, _)| term)
        .ok_or_else(|| internal("stored term"))
}

fn internal(what: &str) -> CoreError {
    CoreError::Internal(format!("cannot encode {what}"))
}

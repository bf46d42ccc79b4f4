//! Event term <-> stored form.
//!
//! A payload is a tag byte and a body. Tag 1 (what `to_new_event` writes
//! for usual events) is the store's own form (`store_term`): atoms and local
//! pids as their term words, known struct shapes without keys, the rest as
//! external term format, decoded without any atom lookup by name. Tag 0 is
//! the whole event as external term format: written for events of more
//! than `store_term::MAX_TERMS` terms (the VM's C codec is faster there),
//! and the durable form a disk log would persist (decode, then
//! `term_to_binary`), since the words of tag 1 are only meaningful inside
//! the VM that wrote them. Both decode to a term `==` the stored one (pids,
//! refs and funs included).

use crate::atoms;
use crate::store_term::{immediate, Encoded, Immediate};
use crate::validation::{self, Fast};
use crate::{store_term, store_term_read};
use foundation_core::store::{Bytes, NewEvent, Order, Query};
use foundation_core::validation::{event, EventFields};
use foundation_core::CoreError;
use rustler::sys::ErlNifTerm;
use rustler::{Atom, Binary, Env, Error, NifResult, Term};
use std::sync::Arc;

const TAG_ETF: u8 = 0;
/// Payload tag of the store's own form (`store_term`).
pub(crate) const TAG_NATIVE: u8 = 1;

fn invalid(what: &str) -> CoreError {
    CoreError::InvalidInput(format!("event {what} is not storable"))
}

/// Converts an event map into a `NewEvent`. A non-map raises ArgumentError;
/// fields of the wrong type (or ids beyond 64 bits) give `InvalidInput`.
pub fn to_new_event(term: Term) -> NifResult<Result<NewEvent, CoreError>> {
    if !term.is_map() {
        return Err(Error::BadArg);
    }
    Ok(fields(term))
}

/// `to_new_event` of every term: the events, or the first one's error.
pub fn to_new_events(terms: &[Term]) -> NifResult<Result<Vec<NewEvent>, CoreError>> {
    let decoded: Vec<_> = terms
        .iter()
        .map(|&t| to_new_event(t))
        .collect::<NifResult<_>>()?;
    Ok(decoded.into_iter().collect())
}

fn fields(term: Term) -> Result<NewEvent, CoreError> {
    let get = |k: rustler::Atom| term.map_get(k).map_err(|_| invalid("field"));
    let id = get(atoms::event_id())?;
    let event_type = get(atoms::event_type())?;
    let timestamp = get(atoms::timestamp())?;
    let cid = get(atoms::correlation_id())?;
    new_event([id, event_type, timestamp, cid], || payload(term))
}

/// A `NewEvent` from the id, type, timestamp and correlation id terms.
fn new_event(
    [id, event_type, timestamp, cid]: [Term; 4],
    payload: impl FnOnce() -> Bytes,
) -> Result<NewEvent, CoreError> {
    let id: u64 = match immediate(id) {
        Some(Immediate::Small(i)) => u64::try_from(i).map_err(|_| invalid("id"))?,
        _ => id.decode().map_err(|_| invalid("id"))?,
    };
    let event_type = names::atom(event_type).ok_or_else(|| invalid("type"))?;
    let timestamp: i64 = match immediate(timestamp) {
        Some(Immediate::Small(i)) => i,
        _ => timestamp.decode().map_err(|_| invalid("timestamp"))?,
    };
    let correlation_id = match Binary::from_term(cid) {
        Ok(bin) => Some(names::bytes(bin.as_slice())),
        Err(_) if cid.is_atom() => None,
        Err(_) => return Err(invalid("correlation id")),
    };
    Ok(NewEvent {
        id,
        event_type,
        timestamp,
        correlation_id,
        payload: payload(),
    })
}

/// What a normal-scheduler write may do with one event (see `prepare`).
pub enum Prepared {
    /// Valid: the event to store (or why it cannot be stored), and about
    /// how many bytes of work it was.
    Ready(Result<NewEvent, CoreError>, usize),
    /// Fails `EventValidator.validate/1`'s rules.
    Invalid,
    /// Over the byte `budget`, or too unusual to bound cheaply: decide
    /// with the exact validation.
    Undecided,
}

/// `validation::fast` and `to_new_event` in one read of the event: an
/// `%Event{}` map's pairs are read once (one map iterator) for the checked
/// fields, the stored fields and the encoding. Other maps take the two
/// separate steps. A non-map is a BadArg.
pub fn prepare(term: Term, budget: usize) -> NifResult<Prepared> {
    if !term.is_map() {
        return Err(Error::BadArg);
    }
    let (mut keys, mut values) = ([ErlNifTerm::default(); 10], [ErlNifTerm::default(); 10]);
    if term.map_size().ok() != Some(keys.len())
        || !store_term::map_pairs(term, &mut keys, &mut values)
        || !store_term::is_event_shape(&keys)
    {
        return prepare_slow(term, budget);
    }
    let env = term.get_env();
    // SAFETY: each value is a term of the event's own env.
    let value = |i: usize| unsafe { Term::new(env, values[i]) };
    // Iteration order: __struct__, correlation_id, data, event_id,
    // event_type, node, parent_id, pid, timestamp, wall_time.
    let (cid, data, id, event_type) = (value(1), value(2), value(3), value(4));
    let (timestamp, wall_time) = (value(8), value(9));
    let fields = EventFields {
        event_id: validation::classify(id),
        event_type: validation::classify(event_type),
        timestamp: validation::classify(timestamp),
        wall_time: validation::classify(wall_time),
        node: validation::classify(value(5)),
        pid: validation::classify(value(7)),
        correlation_id: validation::classify(cid),
        parent_id: validation::classify(value(6)),
    };
    if event::validate_event(&fields, 0).is_err() {
        return Ok(Prepared::Invalid);
    }
    let mut size = None;
    let encoded = with_scratch(|out| {
        out.push(TAG_NATIVE);
        match store_term::encode_event(env, &keys, &values, out, budget) {
            Encoded::Native(bytes) if bytes <= budget => {
                size = Some(bytes);
                true
            }
            _ => false,
        }
    });
    // A small encoding bounds the data's external size far below the
    // limit (see `SURELY_SMALL`); a bigger one is measured as the exact
    // validation will see it.
    let limit = usize::try_from(event::MAX_DATA_SIZE).unwrap_or(usize::MAX);
    let small =
        |bytes| bytes <= SURELY_SMALL || crate::budget::measure_data(data, budget, limit).is_some();
    match (size, encoded) {
        (Some(bytes), Some(_)) if !small(bytes) => Ok(Prepared::Undecided),
        (Some(bytes), Some(payload)) => Ok(Prepared::Ready(
            new_event([id, event_type, timestamp, cid], || payload),
            bytes,
        )),
        // Over the budget, or too many terms for the native form (the
        // separate steps measure the rest and store external term format).
        _ => prepare_slow(term, budget),
    }
}

/// Bytes of work (as `store_term::encode_event` counts them) up to which an
/// encoded event's data is known to pass `budget::measure_data`: every term
/// the encoding writes counts at least a word, and no term's external size
/// bound is more than 256 words (an atom of 255 four-byte characters, the
/// worst case), so the data's bound stays under `event::MAX_DATA_SIZE`; and
/// anything `measure_data` cannot price (funs, bitstrings, improper lists,
/// bignums beyond 128 bits) is not written natively within a byte limit.
const SURELY_SMALL: usize = (event::MAX_DATA_SIZE / 512) as usize;

/// `prepare` for maps other than an `%Event{}` and for unusual events.
fn prepare_slow(term: Term, budget: usize) -> NifResult<Prepared> {
    Ok(match validation::fast(term, budget)? {
        Fast::Valid(bytes) => Prepared::Ready(fields(term), bytes),
        Fast::Invalid => Prepared::Invalid,
        Fast::Undecided => Prepared::Undecided,
    })
}

/// Per-thread caches of the shared bytes of event types (by atom) and
/// correlation ids, so storing an event of a known type or group allocates
/// nothing for them. Each holds at most `CAP` entries and starts over when
/// full; a miss only costs the allocation it would have made anyway.
mod names {
    use foundation_core::store::Bytes;
    use rustc_hash::{FxHashMap, FxHashSet};
    use rustler::Term;
    use std::cell::RefCell;
    use std::sync::Arc;

    const CAP: usize = 1024;

    thread_local! {
        static ATOMS: RefCell<FxHashMap<usize, Bytes>> = RefCell::default();
        static BYTES: RefCell<FxHashSet<Bytes>> = RefCell::default();
    }

    /// The name of atom `t` (`None` if `t` is not an atom).
    pub fn atom(t: Term) -> Option<Bytes> {
        // SAFETY: `ErlNifTerm` is `repr(transparent)` over the word; an atom's
        // word never changes (atoms are never garbage collected).
        let word: usize = unsafe { std::mem::transmute(t.as_c_arg()) };
        let cached = ATOMS.with(|m| m.try_borrow().ok()?.get(&word).cloned());
        if cached.is_some() {
            return cached;
        }
        let name: Bytes = Arc::from(t.atom_to_string().ok()?.as_bytes());
        ATOMS.with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                if m.len() >= CAP {
                    m.clear();
                }
                m.insert(word, name.clone());
            }
        });
        Some(name)
    }

    /// Shared bytes equal to `b`.
    pub fn bytes(b: &[u8]) -> Bytes {
        if let Some(hit) = BYTES.with(|s| s.try_borrow().ok()?.get(b).cloned()) {
            return hit;
        }
        let fresh: Bytes = Arc::from(b);
        BYTES.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                if s.len() >= CAP {
                    s.clear();
                }
                s.insert(fresh.clone());
            }
        });
        fresh
    }
}

/// Encodes into a per-thread scratch buffer, so the stored payload is the
/// event's one allocation (an exact-size copy of the buffer).
fn payload(term: Term) -> Bytes {
    let encoded = with_scratch(|out| {
        out.push(TAG_NATIVE);
        if !store_term::encode(term, out) {
            out.clear();
            out.push(TAG_ETF);
            out.extend_from_slice(term.to_binary().as_slice());
        }
        true
    });
    encoded.unwrap_or_else(|| Bytes::from([TAG_ETF].as_slice()))
}

/// Runs `write` on an empty per-thread scratch buffer; when it returns
/// true, the buffer's bytes (an exact-size copy: the event's one
/// allocation).
fn with_scratch(write: impl FnOnce(&mut Vec<u8>) -> bool) -> Option<Bytes> {
    with_scratch_buffer(|out| write(out).then(|| Bytes::from(out.as_slice())))
}

/// Runs `f` on this thread's scratch buffer, empty; the buffer keeps its
/// allocation for the next call unless it grew past `SCRATCH_KEEP` (a
/// call made inside `f` gets a buffer of its own).
pub(crate) fn with_scratch_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    let mut out = SCRATCH
        .with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
        .unwrap_or_default();
    out.clear();
    let result = f(&mut out);
    // Keep the scratch small after an unusually big call.
    if out.capacity() <= SCRATCH_KEEP {
        SCRATCH.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = out;
            }
        });
    }
    result
}

/// Scratch capacity kept between events.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Decodes a stored payload back into the event term.
pub fn to_term<'a>(env: Env<'a>, payload: &[u8]) -> NifResult<Term<'a>> {
    match payload.split_first() {
        Some((&TAG_NATIVE, body)) => store_term_read::decode(env, body),
        Some((&TAG_ETF, body)) => crate::disk_body::decode(env, body, false).ok_or(Error::BadArg),
        _ => Err(Error::BadArg),
    }
}

/// Decodes a list of payloads.
pub fn to_terms<'a>(env: Env<'a>, payloads: &[Bytes]) -> NifResult<Vec<Term<'a>>> {
    payloads.iter().map(|p| to_term(env, p)).collect()
}

/// The elements of a proper list. rustler's `Vec<T>` decoder panics on an
/// improper list (rustler 0.39 `types/list.rs`), so lists are walked here
/// and an improper one is a BadArg (ArgumentError).
pub fn list_terms(list: Term) -> NifResult<Vec<Term>> {
    let mut items = Vec::new();
    let mut rest = list;
    while !rest.is_empty_list() {
        let (head, tail) = rest.list_get_cell().map_err(|_| Error::BadArg)?;
        items.push(head);
        rest = tail;
    }
    Ok(items)
}

/// Builds a core query from the NIF arguments: a `nil` type means any type
/// (rustler's `Option<Atom>` would decode nil as `Some(nil)`), order is
/// `:timestamp`, `:timestamp_desc` or anything else for ascending id, and a
/// limit of 0 means none.
pub fn query_from(
    env: Env,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
    order: Atom,
    offset: usize,
    limit: usize,
) -> NifResult<Query> {
    let event_type = match event_type == atoms::nil() {
        true => None,
        false => Some(Arc::from(
            event_type.to_term(env).atom_to_string()?.as_bytes(),
        )),
    };
    let order = match order {
        o if o == atoms::timestamp() => Order::Timestamp,
        o if o == atoms::timestamp_desc() => Order::TimestampDesc,
        o if o == atoms::event_id() => Order::Id,
        _ => Order::Unordered,
    };
    let limit = (limit > 0).then_some(limit);
    Ok(Query {
        event_type,
        time_range,
        order,
        offset,
        limit,
    })
}

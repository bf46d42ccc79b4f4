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
use crate::{store_term, store_term_read};
use foundation_core::store::{Bytes, NewEvent, Order, Query};
use foundation_core::CoreError;
use rustler::{Atom, Binary, Env, Error, NifResult, Term};
use std::sync::Arc;

const TAG_ETF: u8 = 0;
const TAG_NATIVE: u8 = 1;

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

fn fields(term: Term) -> Result<NewEvent, CoreError> {
    let get = |k: rustler::Atom| term.map_get(k).map_err(|_| invalid("field"));
    let id: u64 = get(atoms::event_id())?
        .decode()
        .map_err(|_| invalid("id"))?;
    let event_type = names::atom(get(atoms::event_type())?).ok_or_else(|| invalid("type"))?;
    let timestamp: i64 = get(atoms::timestamp())?
        .decode()
        .map_err(|_| invalid("timestamp"))?;
    let cid = get(atoms::correlation_id())?;
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
        payload: payload(term),
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
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut out) => encode_payload(term, &mut out),
        // Not reachable (encoding never re-enters), but never panic.
        Err(_) => encode_payload(term, &mut Vec::new()),
    })
}

fn encode_payload(term: Term, out: &mut Vec<u8>) -> Bytes {
    out.clear();
    out.push(TAG_NATIVE);
    if !store_term::encode(term, out) {
        out.clear();
        out.push(TAG_ETF);
        out.extend_from_slice(term.to_binary().as_slice());
    }
    let bytes = Bytes::from(out.as_slice());
    // Keep the scratch small after an unusually big event.
    if out.capacity() > SCRATCH_KEEP {
        *out = Vec::with_capacity(1024);
    }
    bytes
}

/// Scratch capacity kept between events.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Decodes a stored payload back into the event term.
pub fn to_term<'a>(env: Env<'a>, payload: &[u8]) -> NifResult<Term<'a>> {
    match payload.split_first() {
        Some((&TAG_NATIVE, body)) => store_term_read::decode(env, body),
        Some((&TAG_ETF, body)) => Ok(env.binary_to_term(body).ok_or(Error::BadArg)?.0),
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

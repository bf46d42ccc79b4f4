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
    let type_term = get(atoms::event_type())?;
    let event_type = type_term.atom_to_string().map_err(|_| invalid("type"))?;
    let timestamp: i64 = get(atoms::timestamp())?
        .decode()
        .map_err(|_| invalid("timestamp"))?;
    let cid = get(atoms::correlation_id())?;
    let correlation_id = match Binary::from_term(cid) {
        Ok(bin) => Some(Arc::from(bin.as_slice())),
        Err(_) if cid.is_atom() => None,
        Err(_) => return Err(invalid("correlation id")),
    };
    Ok(NewEvent {
        id,
        event_type: Arc::from(event_type.as_bytes()),
        timestamp,
        correlation_id,
        payload: payload(term),
    })
}

fn payload(term: Term) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.push(TAG_NATIVE);
    if !store_term::encode(term, &mut out) {
        out.clear();
        out.push(TAG_ETF);
        out.extend_from_slice(term.to_binary().as_slice());
    }
    Bytes::from(out)
}

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

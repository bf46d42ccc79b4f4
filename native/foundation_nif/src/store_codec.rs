//! Event term <-> stored form.
//!
//! A plain `%Types.Event{}` (exactly its ten keys) is stored compactly: tag
//! byte 1, then the external term format of the tuple of its nine field
//! values in struct order, so the struct name and key atoms are not repeated
//! in every event (~120 bytes saved); tag 2 is the same with an ISO
//! `wall_time` packed by `store_datetime` (the common case). Any other map
//! is stored whole: tag byte 0, then its external term format. Both decode to a term `==` the
//! stored one (pids, refs and funs included).

use crate::atoms;
use crate::store_datetime;
use foundation_core::store::{Bytes, NewEvent, Order, Query};
use foundation_core::CoreError;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Binary, Encoder, Env, Error, NifResult, Term};
use std::sync::Arc;

const TAG_FULL: u8 = 0;
const TAG_COMPACT: u8 = 1;
const TAG_COMPACT_DT: u8 = 2;
/// Position of `wall_time` in the compact tuple.
const WALL: usize = 3;

fn keys(env: Env) -> [Term; 10] {
    [
        atoms::struct_key().encode(env),
        atoms::event_type().encode(env),
        atoms::event_id().encode(env),
        atoms::timestamp().encode(env),
        atoms::wall_time().encode(env),
        atoms::node().encode(env),
        atoms::pid().encode(env),
        atoms::correlation_id().encode(env),
        atoms::parent_id().encode(env),
        atoms::data().encode(env),
    ]
}

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
    let env = term.get_env();
    let compact = term.map_size().ok() == Some(10)
        && term.map_get(atoms::struct_key()).ok() == Some(atoms::event_struct().encode(env));
    let (tag, encoded) = if compact {
        let mut values: Vec<Term> = keys(env)[1..]
            .iter()
            .filter_map(|k| term.map_get(*k).ok())
            .collect();
        let packed = values.get(WALL).and_then(|w| store_datetime::pack(*w));
        let tag = match packed {
            Some(p) => {
                values[WALL] = p;
                TAG_COMPACT_DT
            }
            None => TAG_COMPACT,
        };
        (tag, make_tuple(env, &values).to_binary())
    } else {
        (TAG_FULL, term.to_binary())
    };
    // One allocation: the chain is an exact-size iterator.
    std::iter::once(tag)
        .chain(encoded.as_slice().iter().copied())
        .collect()
}

/// Decodes a stored payload back into the event term.
pub fn to_term<'a>(env: Env<'a>, payload: &[u8]) -> NifResult<Term<'a>> {
    let (tag, body) = payload.split_first().ok_or(Error::BadArg)?;
    let (term, _) = env.binary_to_term(body).ok_or(Error::BadArg)?;
    if *tag == TAG_FULL {
        return Ok(term);
    }
    let mut fields = get_tuple(term)?;
    if fields.len() != 9 {
        return Err(Error::BadArg);
    }
    if *tag == TAG_COMPACT_DT {
        fields[WALL] = store_datetime::unpack(env, fields[WALL])?;
    }
    // Keys and values in term order (atoms sort by name): the VM then
    // validates the flatmap without reordering it.
    let values: [Term; 10] = [
        atoms::event_struct().encode(env),
        fields[6],
        fields[8],
        fields[1],
        fields[0],
        fields[4],
        fields[7],
        fields[5],
        fields[2],
        fields[3],
    ];
    Term::map_from_term_arrays(env, &sorted_keys(env), &values)
}

/// The event struct's keys in term order, matching `to_term`'s values.
fn sorted_keys(env: Env) -> [Term; 10] {
    [
        atoms::struct_key().encode(env),
        atoms::correlation_id().encode(env),
        atoms::data().encode(env),
        atoms::event_id().encode(env),
        atoms::event_type().encode(env),
        atoms::node().encode(env),
        atoms::parent_id().encode(env),
        atoms::pid().encode(env),
        atoms::timestamp().encode(env),
        atoms::wall_time().encode(env),
    ]
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
        _ => Order::Id,
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

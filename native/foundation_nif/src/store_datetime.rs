//! Packing of a `%DateTime{calendar: Calendar.ISO}` into a tuple of its
//! eleven other field values, so a stored event does not carry the thirteen
//! key atoms (as text) of its `wall_time`: decoding atoms dominates
//! `binary_to_term`, and this halves the cost of reading an event.

use crate::atoms;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Encoder, Env, Error, NifResult, Term};

fn field_keys(env: Env) -> [Term; 11] {
    [
        atoms::year().encode(env),
        atoms::month().encode(env),
        atoms::day().encode(env),
        atoms::hour().encode(env),
        atoms::minute().encode(env),
        atoms::second().encode(env),
        atoms::microsecond().encode(env),
        atoms::time_zone().encode(env),
        atoms::zone_abbr().encode(env),
        atoms::utc_offset().encode(env),
        atoms::std_offset().encode(env),
    ]
}

/// The packed tuple when `term` is exactly an ISO-calendar `%DateTime{}`.
pub fn pack<'a>(term: Term<'a>) -> Option<Term<'a>> {
    let env = term.get_env();
    let is_iso = term.map_size().ok() == Some(13)
        && term.map_get(atoms::struct_key()).ok() == Some(atoms::date_time().encode(env))
        && term.map_get(atoms::calendar()).ok() == Some(atoms::calendar_iso().encode(env));
    if !is_iso {
        return None;
    }
    let values: Vec<Term> = field_keys(env)
        .iter()
        .filter_map(|k| term.map_get(*k).ok())
        .collect();
    (values.len() == 11).then(|| make_tuple(env, &values))
}

/// Rebuilds the `%DateTime{}` from a packed tuple.
pub fn unpack<'a>(env: Env<'a>, packed: Term<'a>) -> NifResult<Term<'a>> {
    let values = get_tuple(packed)?;
    if values.len() != 11 {
        return Err(Error::BadArg);
    }
    let mut keys = field_keys(env).to_vec();
    keys.extend([
        atoms::struct_key().encode(env),
        atoms::calendar().encode(env),
    ]);
    let mut all = values;
    all.extend([
        atoms::date_time().encode(env),
        atoms::calendar_iso().encode(env),
    ]);
    Term::map_from_term_arrays(env, &keys, &all)
}

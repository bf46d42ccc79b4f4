//! How the warm tier keeps an event's body on disk.
//!
//! A body is external term format, so a VM that has never seen the atoms
//! it names can still read it. Most of the bytes of a small event written
//! whole by `term_to_binary/1` are names: the ten keys of the struct, the
//! struct's module, and for a `%DateTime{}` wall time its twelve keys and
//! two modules (about 300 of the 480 bytes of an event from
//! `Events.new_event/2`). Every one of those bytes is copied, checksummed,
//! written through the engine's journal and its files, and decoded again on
//! a read. So an `%Event{}` is kept as its values only:
//!
//! * byte 0 is `SHAPED` (a whole term starts with 131, the version byte);
//! * byte 1 says how the wall time is written: `PLAIN_TIME` (as the term
//!   it is) or `ISO_TIME` (a `%DateTime{}` of the ISO calendar, as the tuple
//!   of its other eleven values);
//! * then the tuple of the event's nine values, in the order of the
//!   struct's keys, as `term_to_binary/1` writes it.
//!
//! Anything else (another struct, an event with a key added, a map too big
//! for the fast path) is written whole, as before. Bodies written whole by
//! earlier versions read as they always did.

use crate::atoms;
use crate::etf_write::{self, Item};
use crate::store_term::{date_time_keys, event_keys, is_event_shape};
use crate::store_term_read::make_map;
use crate::walk::tuple_elements;
use rustler::sys::ErlNifTerm;
use rustler::{Env, Term};

/// First byte of an event kept as its values.
const SHAPED: u8 = 1;
/// The wall time is written as the term it is.
const PLAIN_TIME: u8 = 0;
/// The wall time is an ISO `%DateTime{}`, written as its values.
const ISO_TIME: u8 = 1;

/// Keys of `%Event{}`, and of `%DateTime{}`.
const EVENT_KEYS: usize = 10;
const DATE_TIME_KEYS: usize = 13;

/// Appends the body of `event` to `out`.
pub(crate) fn append(event: Term, out: &mut Vec<u8>) {
    if !shaped(event, out) {
        etf_write::append(event, out);
    }
}

/// Writes `event` as its values when it is an `%Event{}` the fast path
/// can read; false (and `out` as it was) otherwise.
fn shaped(event: Term, out: &mut Vec<u8>) -> bool {
    let Some(values) = pairs_of::<EVENT_KEYS>(event, is_event_shape) else {
        return false;
    };
    let env = event.get_env();
    // SAFETY: the values are terms of the event's own env.
    let term = |w: ErlNifTerm| unsafe { Term::new(env, w) };
    if values[0] != atoms::event_struct().as_c_arg() {
        return false;
    }
    let wall = term(values[EVENT_KEYS - 1]);
    let time = pairs_of::<DATE_TIME_KEYS>(wall, |keys| {
        keys.iter()
            .zip(date_time_keys())
            .all(|(k, a)| *k == a.as_c_arg())
    })
    .filter(|dt| {
        dt[0] == atoms::date_time().as_c_arg() && dt[1] == atoms::calendar_iso().as_c_arg()
    });
    let dt_values: Option<[Term; DATE_TIME_KEYS - 2]> =
        time.map(|dt| std::array::from_fn(|i| term(dt[i + 2])));
    let items: [Item; EVENT_KEYS - 1] = std::array::from_fn(|i| match (i, &dt_values) {
        (i, _) if i < EVENT_KEYS - 2 => Item::Term(term(values[i + 1])),
        (_, Some(dt)) => Item::Tuple(dt),
        (_, None) => Item::Term(wall),
    });
    let start = out.len();
    out.extend([
        SHAPED,
        if dt_values.is_some() {
            ISO_TIME
        } else {
            PLAIN_TIME
        },
    ]);
    if !etf_write::encode_tuple(&items, out) {
        out.truncate(start);
        return false;
    }
    true
}

/// The values of `map` when it is a small map of `N` keys, in key order,
/// whose keys pass `keys_ok`.
fn pairs_of<const N: usize>(
    map: Term,
    keys_ok: impl Fn(&[ErlNifTerm]) -> bool,
) -> Option<[ErlNifTerm; N]> {
    if map.map_size().ok()? != N {
        return None;
    }
    let (mut keys, mut values) = ([ErlNifTerm::default(); N], [ErlNifTerm::default(); N]);
    crate::flatmap::pairs(map, &mut keys, &mut values)?;
    keys_ok(&keys).then_some(values)
}

/// The event a body holds. `trusted` decodes as `binary_to_term/2` without
/// `:safe` would (it may create atoms: a body from an earlier run of the VM
/// can name atoms this one has not seen); only for bodies that passed the
/// tier's checksum.
pub(crate) fn decode<'a>(env: Env<'a>, body: &[u8], trusted: bool) -> Option<Term<'a>> {
    let whole = |etf: &[u8]| {
        if trusted {
            // SAFETY: the caller vouches for the bytes (see above).
            unsafe { env.binary_to_term_trusted(etf) }.map(|(t, _)| t)
        } else {
            env.binary_to_term(etf).map(|(t, _)| t)
        }
    };
    let (time, etf) = match body {
        [SHAPED, time, etf @ ..] => (*time, etf),
        _ => return whole(body),
    };
    let items: Vec<Term> = tuple_elements(whole(etf)?)?.collect();
    if items.len() != EVENT_KEYS - 1 {
        return None;
    }
    let mut values = [ErlNifTerm::default(); EVENT_KEYS];
    values[0] = atoms::event_struct().as_c_arg();
    for (slot, item) in values[1..].iter_mut().zip(&items) {
        *slot = item.as_c_arg();
    }
    match time {
        PLAIN_TIME => {}
        ISO_TIME => {
            let parts: Vec<Term> = tuple_elements(items[EVENT_KEYS - 2])?.collect();
            if parts.len() != DATE_TIME_KEYS - 2 {
                return None;
            }
            let mut dt = [ErlNifTerm::default(); DATE_TIME_KEYS];
            dt[0] = atoms::date_time().as_c_arg();
            dt[1] = atoms::calendar_iso().as_c_arg();
            for (slot, part) in dt[2..].iter_mut().zip(&parts) {
                *slot = part.as_c_arg();
            }
            values[EVENT_KEYS - 1] = make_map(env, &date_time_keys().map(|k| k.as_c_arg()), &dt)?;
        }
        _ => return None,
    }
    let map = make_map(env, &event_keys().map(|k| k.as_c_arg()), &values)?;
    // SAFETY: made in `env` just now.
    Some(unsafe { Term::new(env, map) })
}

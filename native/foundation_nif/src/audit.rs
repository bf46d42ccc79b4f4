//! The ConfigServer's audit writes.
//!
//! `store_put_valid/2` stores an event its caller built valid and small (a
//! few terms: the audit events of config updates and resets, whose data are
//! a path and two validated leaf values, or two integers), on a normal
//! scheduler, with `store_put/2`'s write but without its walks of the event
//! (the validation and the byte budget): the encoding is the only walk.
//!
//! `store_put_audit/7` stores the same event without the caller building
//! it: the caller passes the fields that vary (id, type, monotonic
//! timestamp, wall time in microseconds, node, pid, data) and the stored
//! form of the `%Event{}` around the data, with its `%DateTime{}` wall
//! time, is written here directly; only the data term is walked. The event
//! read back is the one the caller would have built (`correlation_id` and
//! `parent_id` nil, `wall_time` as `DateTime.from_unix!(us, :microsecond)`).
//!
//! Anything else must go through `store_put/2`.

use crate::atoms;
use crate::error::NifOutcome;
use crate::store::{put, StoreHandle};
use crate::store_codec::TAG_NATIVE;
use crate::store_term::{self, immediate, Immediate};
use crate::store_term::{ATOM, BIN, INT, PID, SHAPE, SHAPE_DATE_TIME, SHAPE_EVENT, TUPLE};
use foundation_core::store::{Bytes, NewEvent};
use rustler::{Atom, Error, NifResult, ResourceArc, Term};
use std::cell::RefCell;
use std::sync::Arc;

/// `{:ok, id}` or `{:error, {kind, detail}}`, as `store_put/2` answers for
/// a valid event.
#[rustler::nif]
fn store_put_valid(store: ResourceArc<StoreHandle>, event: Term) -> NifResult<NifOutcome<u64>> {
    put(&store, event)
}

/// `{:ok, id}` or `{:error, {kind, detail}}` (as `store_put_valid/2`);
/// ArgumentError when a field is not of the expected kind (an id or a
/// timestamp beyond 64 bits, a non-local pid, data of more terms than the
/// native form holds): the caller then builds the event and stores it the
/// usual way.
#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn store_put_audit(
    store: ResourceArc<StoreHandle>,
    id: u64,
    event_type: Term,
    timestamp: i64,
    wall_us: i64,
    node: Term,
    pid: Term,
    data: Term,
) -> NifResult<NifOutcome<u64>> {
    let event = audit_event(id, event_type, timestamp, wall_us, node, pid, data)?;
    Ok(store.0.put(event).map_err(Into::into))
}

fn audit_event(
    id: u64,
    event_type: Term,
    timestamp: i64,
    wall_us: i64,
    node: Term,
    pid: Term,
    data: Term,
) -> NifResult<NewEvent> {
    let (Some(type_word), Some(node_word), Some(pid_word)) =
        (atom_word(event_type), atom_word(node), pid_word(pid))
    else {
        return Err(Error::BadArg);
    };
    let signed_id = i64::try_from(id).map_err(|_| Error::BadArg)?;
    let mut out = Vec::with_capacity(160);
    out.extend([TAG_NATIVE, SHAPE, SHAPE_EVENT]);
    // Event values in key order: __struct__, correlation_id, data,
    // event_id, event_type, node, parent_id, pid, timestamp, wall_time.
    word(&mut out, ATOM, atom_term_word(atoms::event_struct()));
    let nil = atom_term_word(atoms::nil());
    word(&mut out, ATOM, nil);
    if !store_term::encode(data, &mut out) {
        return Err(Error::BadArg);
    }
    word(&mut out, INT, zigzag(signed_id));
    word(&mut out, ATOM, type_word);
    word(&mut out, ATOM, node_word);
    word(&mut out, ATOM, nil);
    word(&mut out, PID, pid_word);
    word(&mut out, INT, zigzag(timestamp));
    date_time(&mut out, wall_us);
    Ok(NewEvent {
        id,
        event_type: type_name(event_type, type_word)?,
        timestamp,
        correlation_id: None,
        payload: Bytes::from(out.as_slice()),
    })
}

const US_PER_DAY: i64 = 86_400_000_000;

/// `DateTime.from_unix!(us, :microsecond)` in the native form: values in
/// key order (__struct__, calendar, day, hour, microsecond, minute, month,
/// second, std_offset, time_zone, utc_offset, year, zone_abbr).
fn date_time(out: &mut Vec<u8>, us: i64) {
    let days = us.div_euclid(US_PER_DAY);
    let in_day = us.rem_euclid(US_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let second = in_day / 1_000_000;
    out.extend([SHAPE, SHAPE_DATE_TIME]);
    word(out, ATOM, atom_term_word(atoms::date_time()));
    word(out, ATOM, atom_term_word(atoms::calendar_iso()));
    int(out, day);
    int(out, second / 3600);
    word(out, TUPLE, 2);
    int(out, in_day % 1_000_000);
    int(out, 6);
    int(out, second / 60 % 60);
    int(out, month);
    int(out, second % 60);
    int(out, 0);
    binary(out, b"Etc/UTC");
    int(out, 0);
    int(out, year);
    binary(out, b"UTC");
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn atom_word(t: Term) -> Option<u64> {
    match immediate(t) {
        Some(Immediate::Atom(w)) => Some(w),
        _ => None,
    }
}

fn pid_word(t: Term) -> Option<u64> {
    match immediate(t) {
        Some(Immediate::Pid(w)) => Some(w),
        _ => None,
    }
}

/// The term word of an atom (atoms are never garbage collected, so the
/// word is the same in every env).
fn atom_term_word(a: Atom) -> u64 {
    // SAFETY: ErlNifTerm is #[repr(transparent)] over usize; transmute checks the sizes.
    unsafe { std::mem::transmute::<rustler::sys::ErlNifTerm, usize>(a.as_c_arg()) as u64 }
}

/// The shared name of the event type (a per-thread cache by atom word: the
/// audit writes use two types).
fn type_name(t: Term, w: u64) -> NifResult<Bytes> {
    thread_local! {
        static NAMES: RefCell<Vec<(u64, Bytes)>> = const { RefCell::new(Vec::new()) };
    }
    let hit = NAMES.with(|n| {
        n.try_borrow()
            .ok()?
            .iter()
            .find(|(word, _)| *word == w)
            .map(|(_, b)| b.clone())
    });
    if let Some(name) = hit {
        return Ok(name);
    }
    let name: Bytes = Arc::from(t.atom_to_string()?.as_bytes());
    NAMES.with(|n| {
        if let Ok(mut n) = n.try_borrow_mut() {
            if n.len() >= 8 {
                n.clear();
            }
            n.push((w, name.clone()));
        }
    });
    Ok(name)
}

fn int(out: &mut Vec<u8>, i: i64) {
    word(out, INT, zigzag(i));
}

fn binary(out: &mut Vec<u8>, b: &[u8]) {
    word(out, BIN, b.len() as u64);
    out.extend_from_slice(b);
}

fn word(out: &mut Vec<u8>, tag: u8, mut v: u64) {
    out.push(tag);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        // 2000-02-29 and 2026-12-06
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
    }
}

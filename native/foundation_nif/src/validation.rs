//! Validation NIFs: ConfigValidator and EventValidator.
//! The core reads config trees through `ConfigTree`, implemented here over
//! terms (only the keys the rules name are looked up, nothing is copied);
//! event fields are only classified (`Field`), so `data` is never converted.

use crate::atoms;
use crate::error::NifOutcome;
use crate::store_term::{immediate, Immediate};
use foundation_core::validation::{config, event, ConfigTree, EventFields, Field, Leaf, Section};
use foundation_core::CoreError;
use rustler::types::atom;
use rustler::{Atom, Binary, Encoder, Env, Error, NifResult, Term, TermType};

#[rustler::nif]
fn config_validate(config: Term) -> NifOutcome<Atom> {
    config::validate_config(TermNode(config)).map_err(CoreError::from)?;
    Ok(atoms::ok())
}

#[rustler::nif]
fn config_validate_section(section: Atom, value: Term) -> NifResult<NifOutcome<Atom>> {
    let name = section.to_term(value.get_env()).atom_to_string()?;
    let section = Section::from_name(&name).ok_or(Error::BadArg)?;
    Ok(config::validate_section(section, TermNode(value))
        .map(|()| atoms::ok())
        .map_err(|e| CoreError::from(e).into()))
}

/// Declares the config keys the rules read as atoms made once at load, and
/// `key_atom/1` mapping a key name to its atom (no atom-table lookup per key:
/// `Atom::existing_from_str` per key would cost more than the rules).
macro_rules! config_keys {
    ($($key:ident),* $(,)?) => {
        mod keys {
            rustler::atoms! { $($key),* }
        }

        fn key_atom(key: &str) -> Option<Atom> {
            match key {
                $(stringify!($key) => Some(keys::$key()),)*
                _ => None,
            }
        }
    };
}

config_keys!(
    ai,
    analysis,
    capture,
    storage,
    interface,
    dev,
    provider,
    max_file_size,
    timeout,
    cache_ttl,
    planning,
    performance_target,
    sampling_rate,
    default_strategy,
    ring_buffer,
    processing,
    vm_tracing,
    size,
    max_events,
    overflow_strategy,
    batch_size,
    flush_interval,
    max_queue_size,
    enable_spawn_trace,
    enable_exit_trace,
    enable_message_trace,
    trace_children,
    hot,
    warm,
    cold,
    max_age_seconds,
    prune_interval,
    enable,
    path,
    max_size_mb,
    compression,
    query_timeout,
    max_results,
    enable_streaming,
    debug_mode,
    verbose_logging,
    performance_monitoring,
);

/// A config node read in place.
#[derive(Clone, Copy)]
struct TermNode<'a>(Term<'a>);

impl ConfigTree for TermNode<'_> {
    fn get(self, key: &str) -> Option<Self> {
        if self.0.get_type() != TermType::Map {
            return None;
        }
        // Unknown names fall back to a lookup; a key whose atom does not
        // exist cannot be in the map.
        let key = match key_atom(key) {
            Some(atom) => atom,
            None => Atom::existing_from_str(self.0.get_env(), key).ok()?,
        };
        self.0.map_get(key).ok().map(TermNode)
    }

    fn leaf(self) -> Leaf {
        let term = self.0;
        match term.get_type() {
            TermType::Atom if term == atom::true_().encode(term.get_env()) => Leaf::Bool(true),
            TermType::Atom if term == atom::false_().encode(term.get_env()) => Leaf::Bool(false),
            TermType::Atom if term == atom::nil().encode(term.get_env()) => Leaf::Nil,
            TermType::Atom => term.atom_to_string().map_or(Leaf::Other, Leaf::Atom),
            TermType::Integer => match term.decode::<i64>() {
                Ok(i) => Leaf::Int(i),
                Err(_) => Leaf::BigInt {
                    negative: term < 0.encode(term.get_env()),
                },
            },
            TermType::Float => term.decode::<f64>().map_or(Leaf::Other, Leaf::Float),
            TermType::Binary if Binary::from_term(term).is_ok() => Leaf::Binary,
            _ => Leaf::Other,
        }
    }
}

#[rustler::nif]
fn event_validate(event: Term, data_size: u64) -> NifResult<NifOutcome<Atom>> {
    let fields = event_fields(event)?;
    Ok(outcome(event::validate_event(&fields, data_size)))
}

#[rustler::nif]
fn event_validate_required(event: Term) -> NifResult<NifOutcome<Atom>> {
    Ok(outcome(event::validate_required(&event_fields(event)?)))
}

#[rustler::nif]
fn event_validate_types(event: Term) -> NifResult<NifOutcome<Atom>> {
    Ok(outcome(event::validate_types(&event_fields(event)?)))
}

#[rustler::nif]
fn event_validate_data_size(data_size: u64) -> NifOutcome<Atom> {
    outcome(event::validate_data_size(data_size))
}

#[rustler::nif]
fn event_validate_type(event_type: Term) -> NifOutcome<Atom> {
    let name = match event_type.get_type() {
        TermType::Atom => event_type.atom_to_string().ok(),
        _ => None,
    };
    outcome(event::validate_event_type(name.as_deref()))
}

/// The core's constants, for building error contexts in Elixir.
#[rustler::nif]
fn validation_constants(env: Env) -> NifResult<Term> {
    let atoms_of = |names: &[&str]| -> NifResult<Vec<Atom>> {
        names.iter().map(|n| Atom::from_str(env, n)).collect()
    };
    Term::map_from_pairs(
        env,
        &[
            (
                atoms::valid_providers().encode(env),
                atoms_of(&config::VALID_PROVIDERS)?.encode(env),
            ),
            (
                atoms::allowed_event_types().encode(env),
                atoms_of(&event::ALLOWED_EVENT_TYPES)?.encode(env),
            ),
            (
                atoms::max_data_size().encode(env),
                event::MAX_DATA_SIZE.encode(env),
            ),
        ],
    )
}

fn outcome(check: Result<(), event::EventRule>) -> NifOutcome<Atom> {
    check
        .map(|()| atoms::ok())
        .map_err(|r| CoreError::from(r).into())
}

/// What a normal-scheduler write may do with one event.
pub enum Fast {
    /// Valid, and about this many bytes to encode.
    Valid(usize),
    /// Fails `EventValidator.validate/1`'s rules.
    Invalid,
    /// Over the byte `budget`, or its data is too close to the size limit
    /// (or too unusual) to bound cheaply: decide with the exact validation.
    Undecided,
}

/// `EventValidator.validate/1`'s verdict on `event` where it is cheap to
/// reach, with the bytes a write would encode: one walk of `data` gives
/// both its size for scheduling and an upper bound of its external size
/// (`budget::measure_data`), so the exact size is never needed here. A
/// non-map is a BadArg.
pub fn fast(event: Term, budget: usize) -> NifResult<Fast> {
    if !event.is_map() {
        return Err(Error::BadArg);
    }
    let (Ok(fields), Ok(data)) = (event_fields(event), event.map_get(atoms::data())) else {
        return Ok(Fast::Invalid);
    };
    if event::validate_event(&fields, 0).is_err() {
        return Ok(Fast::Invalid);
    }
    let limit = usize::try_from(event::MAX_DATA_SIZE).unwrap_or(usize::MAX);
    let Some((data_bytes, _)) = crate::budget::measure_data(data, budget, limit) else {
        return Ok(Fast::Undecided);
    };
    // The other fields are typed by now; only the correlation id and the
    // DateTime's fields can be large.
    let rest = |key| {
        event
            .map_get(key)
            .ok()
            .and_then(|t| crate::budget::measure(t, budget))
    };
    let (Some(cid), Some(wall)) = (rest(atoms::correlation_id()), rest(atoms::wall_time())) else {
        return Ok(Fast::Undecided);
    };
    match data_bytes + cid + wall + FIELDS_BYTES {
        bytes if bytes <= budget => Ok(Fast::Valid(bytes)),
        _ => Ok(Fast::Undecided),
    }
}

/// The fixed-size fields of an event, counted as `budget::measure` would.
const FIELDS_BYTES: usize = 16 * 8;

/// Reads the eight checked fields of an `%Event{}` map (missing key: badarg).
fn event_fields(event: Term) -> NifResult<EventFields> {
    let get = |key: Atom| event.map_get(key).map(classify);
    Ok(EventFields {
        event_id: get(atoms::event_id())?,
        event_type: get(atoms::event_type())?,
        timestamp: get(atoms::timestamp())?,
        wall_time: get(atoms::wall_time())?,
        node: get(atoms::node())?,
        pid: get(atoms::pid())?,
        correlation_id: get(atoms::correlation_id())?,
        parent_id: get(atoms::parent_id())?,
    })
}

/// The term's type as far as the event rules care. Immediates (most of an
/// event's fields) are told from their word.
pub(crate) fn classify(term: Term) -> Field {
    match immediate(term) {
        Some(Immediate::Small(i)) if i > 0 => return Field::PosInt,
        Some(Immediate::Small(_)) => return Field::NonPosInt,
        Some(Immediate::Pid(_)) => return Field::Pid,
        Some(Immediate::Atom(_)) if term == atoms::nil().to_term(term.get_env()) => {
            return Field::Nil
        }
        Some(Immediate::Atom(_)) if term == atom::false_().to_term(term.get_env()) => {
            return Field::False
        }
        Some(Immediate::Atom(_)) => return Field::Atom,
        None => {}
    }
    match term.get_type() {
        TermType::Atom if term == atom::nil().encode(term.get_env()) => Field::Nil,
        TermType::Atom if term == atom::false_().encode(term.get_env()) => Field::False,
        TermType::Atom => Field::Atom,
        TermType::Integer if term > 0.encode(term.get_env()) => Field::PosInt,
        TermType::Integer => Field::NonPosInt,
        TermType::Binary if Binary::from_term(term).is_ok() => Field::Binary,
        TermType::Pid => Field::Pid,
        TermType::Map if is_date_time(term) => Field::DateTime,
        _ => Field::Other,
    }
}

fn is_date_time(term: Term) -> bool {
    term.map_get(atoms::struct_key())
        .is_ok_and(|tag| tag == atoms::date_time().encode(term.get_env()))
}

//! Validation NIFs: ConfigValidator and EventValidator (API.md sections 8, 9).
//! The core reads config trees through `ConfigTree`, implemented here over
//! terms (only the keys the rules name are looked up, nothing is copied);
//! event fields are only classified (`Field`), so `data` is never converted.

use crate::atoms;
use crate::error::NifOutcome;
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

/// The config keys the rules read, made once (no atom lookup per key).
mod keys {
    rustler::atoms! {
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
    }
}

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

/// The term's type as far as the event rules care.
fn classify(term: Term) -> Field {
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

/// The cached atom of a key the config rules name.
fn key_atom(key: &str) -> Option<Atom> {
    Some(match key {
        "ai" => keys::ai(),
        "analysis" => keys::analysis(),
        "capture" => keys::capture(),
        "storage" => keys::storage(),
        "interface" => keys::interface(),
        "dev" => keys::dev(),
        "provider" => keys::provider(),
        "max_file_size" => keys::max_file_size(),
        "timeout" => keys::timeout(),
        "cache_ttl" => keys::cache_ttl(),
        "planning" => keys::planning(),
        "performance_target" => keys::performance_target(),
        "sampling_rate" => keys::sampling_rate(),
        "default_strategy" => keys::default_strategy(),
        "ring_buffer" => keys::ring_buffer(),
        "processing" => keys::processing(),
        "vm_tracing" => keys::vm_tracing(),
        "size" => keys::size(),
        "max_events" => keys::max_events(),
        "overflow_strategy" => keys::overflow_strategy(),
        "batch_size" => keys::batch_size(),
        "flush_interval" => keys::flush_interval(),
        "max_queue_size" => keys::max_queue_size(),
        "enable_spawn_trace" => keys::enable_spawn_trace(),
        "enable_exit_trace" => keys::enable_exit_trace(),
        "enable_message_trace" => keys::enable_message_trace(),
        "trace_children" => keys::trace_children(),
        "hot" => keys::hot(),
        "warm" => keys::warm(),
        "cold" => keys::cold(),
        "max_age_seconds" => keys::max_age_seconds(),
        "prune_interval" => keys::prune_interval(),
        "enable" => keys::enable(),
        "path" => keys::path(),
        "max_size_mb" => keys::max_size_mb(),
        "compression" => keys::compression(),
        "query_timeout" => keys::query_timeout(),
        "max_results" => keys::max_results(),
        "enable_streaming" => keys::enable_streaming(),
        "debug_mode" => keys::debug_mode(),
        "verbose_logging" => keys::verbose_logging(),
        "performance_monitoring" => keys::performance_monitoring(),
        _ => return None,
    })
}

//! `NifError` encodes a core error as `{kind_atom, detail_binary}`.

use crate::atoms;
use foundation_core::validation::{ConfigError, ConfigKind, ConfigRule, EventKind, EventRule};
use foundation_core::CoreError;
use rustler::{Atom, Encoder, Env, Term};

/// Newtype so the NIF crate can implement `Encoder` for the core error.
#[derive(Debug)]
pub struct NifError(pub CoreError);

impl From<CoreError> for NifError {
    fn from(e: CoreError) -> Self {
        NifError(e)
    }
}

// Holds only owned strings: observing it after a caught panic is sound.
impl std::panic::RefUnwindSafe for NifError {}

impl Encoder for NifError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let kind = match &self.0 {
            CoreError::InvalidInput(_) => atoms::invalid_input(),
            CoreError::Internal(_) => atoms::internal_error(),
            // Normal NIFs answer `:dirty` instead (budget.rs); never reaches Elixir.
            CoreError::OverBudget(_) => atoms::internal_error(),
            CoreError::QueueFull(_) => atoms::queue_full(),
            CoreError::Closed => atoms::store_closed(),
            CoreError::Config(e) => config_kind(e),
            CoreError::Event(rule) => event_kind(*rule),
        };
        (kind, self.0.to_string()).encode(env)
    }
}

fn config_kind(error: &ConfigError) -> Atom {
    match error {
        ConfigError::Rule(ConfigRule::Provider) => atoms::invalid_ai_provider(),
        ConfigError::Rule(rule) => match rule.kind() {
            ConfigKind::ValidationFailed => atoms::config_validation_failed(),
            ConfigKind::InvalidValue => atoms::invalid_config_value(),
            ConfigKind::ConstraintViolation => atoms::constraint_violation(),
            ConfigKind::RangeError => atoms::range_error(),
        },
        ConfigError::NoClause(_) => atoms::function_clause(),
        ConfigError::MissingKey(_) => atoms::key_error(),
    }
}

fn event_kind(rule: EventRule) -> Atom {
    match rule.kind() {
        EventKind::ValidationFailed => atoms::validation_failed(),
        EventKind::TypeMismatch => atoms::type_mismatch(),
        EventKind::DataTooLarge => atoms::data_too_large(),
        EventKind::InvalidEventType => atoms::invalid_event_type(),
    }
}

/// Result type of every fallible NIF.
pub type NifOutcome<T> = Result<T, NifError>;

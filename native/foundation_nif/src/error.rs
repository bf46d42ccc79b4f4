//! `NifError` encodes a core error as `{kind_atom, detail_binary}`.

use crate::atoms;
use foundation_core::CoreError;
use rustler::{Encoder, Env, Term};

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
            CoreError::QueueFull(_) => atoms::queue_full(),
        };
        (kind, self.0.to_string()).encode(env)
    }
}

/// Result type of every fallible NIF.
pub type NifOutcome<T> = Result<T, NifError>;

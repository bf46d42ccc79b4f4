//! The store_safe fallback buffer (`fallback_*`): one node-wide bounded
//! buffer of terms (100, newest first) held by the library, not by a process,
//! so it survives whichever process filled it.

use crate::error::NifError;
use foundation_core::fallback::Buffer;
use foundation_core::CoreError;
use rustler::{Env, Term};

/// Most items kept (the original's process-dictionary limit).
const CAPACITY: usize = 100;

static BUFFER: Buffer = Buffer::new(CAPACITY);

/// Adds a term as the newest item; `{:ok, length}`.
#[rustler::nif(schedule = "DirtyCpu")]
fn fallback_push(item: Term) -> Result<usize, NifError> {
    Ok(BUFFER.push(item.to_binary().as_slice().to_vec())?)
}

/// The buffered terms, newest first.
#[rustler::nif(schedule = "DirtyCpu")]
fn fallback_list(env: Env) -> Result<Vec<Term>, NifError> {
    decode_all(env, BUFFER.list()?)
}

/// Removes and returns the buffered terms, newest first.
#[rustler::nif(schedule = "DirtyCpu")]
fn fallback_take(env: Env) -> Result<Vec<Term>, NifError> {
    decode_all(env, BUFFER.take()?)
}

fn decode_all(env: Env, items: Vec<Vec<u8>>) -> Result<Vec<Term>, NifError> {
    items
        .iter()
        .map(|bytes| {
            env.binary_to_term(bytes)
                .map(|(term, _)| term)
                .ok_or_else(|| NifError(CoreError::Internal("cannot decode buffered term".into())))
        })
        .collect()
}

//! Event deserialization off the normal schedulers (`EventLogic.deserialize_event/1`).
//!
//! `:erlang.binary_to_term(binary, [:safe])` inflates a compressed binary
//! (`<<131, 80, Size::32, ZlibStream>>`) in large slices on the calling
//! normal scheduler, each holding it well past the ~1 ms budget for a
//! large event (figures in docs/benchmarks.md). Binaries whose
//! decoded size is small keep that BIF; the Elixir side reads the size
//! from the header in O(1) and sends bigger ones to `deserialize_dirty/1`,
//! which inflates like erts (`foundation_core::etf::decompress`, the same
//! system zlib) and decodes the plain form with the VM's own decoder
//! (`enif_binary_to_term` with `ERL_NIF_BIN2TERM_SAFE`: the checks of the
//! BIF's `[:safe]` option, no new atoms, no new external funs), on a dirty
//! CPU scheduler.

use crate::error::NifOutcome;
use foundation_core::{etf, CoreError};
use rustler::{Binary, Env, Term};

/// `{:ok, term}` as `:erlang.binary_to_term(binary, [:safe])` returns it.
/// Like the BIF, bytes after a complete term (or after the zlib stream)
/// are ignored. `{:error, {:invalid_input, detail}}` where the BIF raises
/// `badarg` (not an external term, truncated, corrupt, or naming an atom
/// this node does not know); `ArgumentError` when `binary` is no binary.
#[rustler::nif(schedule = "DirtyCpu")]
fn deserialize_dirty<'a>(env: Env<'a>, binary: Binary<'a>) -> NifOutcome<Term<'a>> {
    let inflated = etf::decompress(binary.as_slice())?;
    let plain = inflated.as_deref().unwrap_or(binary.as_slice());
    // `Env::binary_to_term` passes `ERL_NIF_BIN2TERM_SAFE`; the count of
    // bytes it used is dropped, as the BIF drops it.
    match env.binary_to_term(plain) {
        Some((term, _used)) => Ok(term),
        None => Err(CoreError::InvalidInput(
            "invalid or unsafe external representation of a term".to_string(),
        )
        .into()),
    }
}

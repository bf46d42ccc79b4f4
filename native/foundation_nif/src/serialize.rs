//! Event serialization off the normal schedulers (`EventLogic.serialize_event/2`).
//!
//! `:erlang.term_to_binary(term, [:compressed])` yields while it encodes,
//! but compresses in large slices on the calling normal scheduler: for a
//! large event each slice holds the scheduler well past the ~1 ms budget
//! (figures in docs/benchmarks.md). `serialize_small/2` serializes a small
//! event on the caller's scheduler, giving up once it is not small;
//! `serialize_dirty/2` produces the same bytes for a big one on a
//! dirty CPU scheduler: the VM's own encoder (`enif_term_to_binary`) and,
//! for the compressed form, the BEAM's framing and zlib settings
//! (`foundation_core::etf`).

use crate::atoms;
use crate::budget;
use crate::error::{NifError, NifOutcome};
use crate::etf_write::{self, Stop};
use foundation_core::{etf, CoreError};
use rustler::sys::{enif_term_to_binary, ErlNifBinary};
use rustler::{Binary, Encoder, Env, NewBinary, OwnedBinary, Term};
use std::mem::MaybeUninit;

/// Encoded size (and, for a term the library leaves to the VM's encoder,
/// input size as `budget::measure` counts it) up to which a term is
/// serialized on the caller's normal scheduler: 8 KiB is about 1 000 small
/// terms, whose encoding and compression stay well under the ~1 ms budget
/// (docs/benchmarks.md).
pub const FITS_BYTES: usize = 8 * 1024;

/// `{:ok, binary}` equal to `:erlang.term_to_binary(term, [:compressed])`
/// (`compressed` true) or `:erlang.term_to_binary(term)`, made on the
/// caller's normal scheduler, when its encoding takes at most `FITS_BYTES`;
/// `false` for any other (call `serialize_dirty/2`). The encoding is
/// written by the library (byte for byte the VM's, see `etf_write`), which
/// stops at that size, so the work stays bounded; a term holding something
/// the library leaves to the VM's encoder is first bounded by a walk.
#[rustler::nif]
fn serialize_small<'a>(env: Env<'a>, term: Term<'a>, compressed: bool) -> Term<'a> {
    let binary = crate::store_codec::with_scratch_buffer(|plain| {
        match etf_write::encode_within(term, plain, FITS_BYTES) {
            Ok(()) => {}
            Err(Stop::TooBig) => return None,
            // Something the library does not write: the VM's encoder, once
            // a walk has bounded its work.
            Err(Stop::Unsupported) => {
                budget::measure_with(term, FITS_BYTES, budget::Atoms::Spelled)?;
                plain.extend_from_slice(term.to_binary().as_slice());
            }
        }
        budget::charge_bytes(env, plain.len());
        Some(finish(env, plain, compressed))
    });
    match binary {
        None => false.encode(env),
        Some(Ok(binary)) => (atoms::ok(), binary).encode(env),
        Some(Err(e)) => (atoms::error(), NifError(e)).encode(env),
    }
}

/// The binary of encoding `plain`: compressed as the BIF would (or kept
/// plain when that is no shorter), or as it is.
fn finish<'a>(env: Env<'a>, plain: &[u8], compressed: bool) -> Result<Binary<'a>, CoreError> {
    if !compressed {
        return Ok(copy(env, plain));
    }
    Ok(match etf::compress(plain, etf::DEFAULT_LEVEL)? {
        Some(packed) => copy(env, &packed),
        None => copy(env, plain),
    })
}

fn copy<'a>(env: Env<'a>, bytes: &[u8]) -> Binary<'a> {
    let mut out = NewBinary::new(env, bytes.len());
    out.as_mut_slice().copy_from_slice(bytes);
    out.into()
}

/// `{:ok, binary}` equal to `:erlang.term_to_binary(term, [:compressed])`
/// (`compressed` true) or `:erlang.term_to_binary(term)`, on a dirty CPU
/// scheduler; `{:error, {:internal_error, detail}}` if the VM cannot
/// encode the term.
#[rustler::nif(schedule = "DirtyCpu")]
fn serialize_dirty<'a>(env: Env<'a>, term: Term<'a>, compressed: bool) -> NifOutcome<Binary<'a>> {
    let plain = encode(term)?;
    if !compressed {
        return Ok(plain.release(env));
    }
    match etf::compress(plain.as_slice(), etf::DEFAULT_LEVEL)? {
        None => Ok(plain.release(env)),
        Some(bytes) => Ok(copy(env, &bytes)),
    }
}

/// The VM's external term format of `term` (what `term_to_binary/1` gives).
fn encode(term: Term) -> NifOutcome<OwnedBinary> {
    let mut raw = MaybeUninit::<ErlNifBinary>::uninit();
    // SAFETY: `term` is a live term of its env; on success the VM fills
    // `raw` with a newly allocated binary that we then own.
    let ok = unsafe {
        enif_term_to_binary(term.get_env().as_c_arg(), term.as_c_arg(), raw.as_mut_ptr())
    };
    if ok == 0 {
        return Err(CoreError::Internal("term_to_binary failed".to_string()).into());
    }
    // SAFETY: initialized by the successful call above; ownership moves
    // to the `OwnedBinary`, which releases it when dropped.
    Ok(unsafe { OwnedBinary::from_raw(raw.assume_init()) })
}

//! Exact `:erlang.external_size/1` without holding a normal scheduler long.
//!
//! `external_size/1` is a BIF that does not yield: on about 1 MB of event
//! data made of small tuples it runs past the ~1 ms budget (figures in
//! docs/benchmarks.md). `term_size_small` (normal
//! scheduler) walks a bounded number of terms (`SMALL_UNITS`) and answers
//! whether the term is small enough for the BIF to stay cheap; for a
//! bigger one (or one holding a fun) the Elixir side
//! (`ElixirScope.Foundation.TermSize`) calls `term_size_exact` on a dirty
//! CPU scheduler, which encodes the term (`enif_term_to_binary`, the same
//! encoder and flags as `external_size/1`) and returns the length plus the
//! bytes `external_size/1` reserves but the encoder does not write
//! (`foundation_core::etf`: 3 per local fun).

use crate::store_term::immediate;
use crate::walk::{walk, Cost};
use foundation_core::etf;
use rustler::sys::{enif_release_binary, enif_term_to_binary, ErlNifBinary};
use rustler::{Error, NifResult, Term, TermType};
use std::mem::MaybeUninit;

/// Work units `term_size_small` spends at most: one per term, plus
/// `MAP_ENTRY` per map entry (a map entry costs the walk several times a
/// list cell, through the map iterator). At this bound a `true` answer
/// costs a short bounded walk plus the BIF, far below the ~1 ms budget
/// (figures in docs/benchmarks.md). Bigger terms pay the dirty hop and an encoding
/// instead.
const SMALL_UNITS: usize = 2048;

/// Units of a map entry (its key and value count as terms on top).
const MAP_ENTRY: usize = 2;

/// `true` when walking `term` costs at most `SMALL_UNITS` (a binary or
/// bignum counts as one term: `external_size/1` reads its length) and it
/// holds no fun (whose environment a NIF cannot see); `false` otherwise.
#[rustler::nif]
fn term_size_small(term: Term) -> bool {
    fits(term, SMALL_UNITS)
}

/// The exact external term format size of `term` (what
/// `:erlang.external_size/1` returns), computed on a dirty CPU scheduler.
/// `ArgumentError` if the VM cannot encode the term.
#[rustler::nif(schedule = "DirtyCpu")]
fn term_size_exact(term: Term) -> NifResult<usize> {
    encoded_size(term).ok_or(Error::BadArg)
}

/// Walks `term`, giving up as soon as it would cost more than `budget`
/// units (`Units`).
fn fits(term: Term, budget: usize) -> bool {
    walk(term, budget, &mut Units).is_some()
}

/// `fits`'s model: one unit a term, `MAP_ENTRY` more per map entry; a fun
/// (whose environment a NIF cannot see) gives up.
struct Units;

impl Cost for Units {
    fn leaf(&mut self, t: Term) -> Option<usize> {
        if immediate(t).is_some() {
            return Some(1);
        }
        match t.get_type() {
            TermType::Fun | TermType::Unknown => None,
            _ => Some(1),
        }
    }

    fn cell(&mut self) -> usize {
        1
    }

    /// Gives up when there are more elements than units left.
    fn tuple(&mut self, arity: usize, left: usize) -> Option<usize> {
        (arity <= left).then_some(1)
    }

    /// Gives up when the keys, values and iteration would cost `left` or more.
    fn map(&mut self, size: usize, left: usize) -> Option<usize> {
        (size.checked_mul(MAP_ENTRY + 2)? < left).then_some(size * MAP_ENTRY + 1)
    }
}

/// `external_size/1` from `term_to_binary(term)` (see `foundation_core::etf`);
/// the encoded copy is released at once.
fn encoded_size(term: Term) -> Option<usize> {
    let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
    // SAFETY: `term` is a live term of its env; on success the VM fills
    // `bin` with a binary we own and release right after reading its size.
    unsafe {
        if enif_term_to_binary(term.get_env().as_c_arg(), term.as_c_arg(), bin.as_mut_ptr()) == 0 {
            return None;
        }
        let mut bin = bin.assume_init();
        let size = etf::external_size(std::slice::from_raw_parts(bin.data, bin.size));
        enif_release_binary(&mut bin);
        size
    }
}

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

/// Walks `term` with an explicit stack (no recursion on deep nesting),
/// giving up as soon as it would cost more than `budget` units.
fn fits(term: Term, budget: usize) -> bool {
    let mut left = budget;
    let mut stack = Stack::new(term);
    while let Some(t) = stack.pop() {
        let cost = match primary_tag(t) {
            TAG_IMMEDIATE => Some(1),
            TAG_LIST => list_cell(t, &mut stack),
            _ => match t.get_type() {
                TermType::Tuple => tuple_items(t, left, &mut stack),
                TermType::Map => map_items(t, left, &mut stack),
                TermType::Fun | TermType::Unknown => None,
                _ => Some(1),
            },
        };
        match cost.and_then(|c| left.checked_sub(c)) {
            Some(rest) => left = rest,
            None => return false,
        }
    }
    true
}

/// Primary tags of a term word (erts `erl_term.h`, unchanged since the
/// 1990s): a non-empty list cell, or an immediate (small integer, atom,
/// local pid or port, `[]`). Reading the tag saves an `enif_term_type`
/// call per leaf and cell (a large share of a small map's walk); a wrong answer
/// could only change which of the two exact paths sizes the term.
const TAG_LIST: usize = 1;
const TAG_IMMEDIATE: usize = 3;

fn primary_tag(t: Term) -> usize {
    // SAFETY: `ErlNifTerm` is `repr(transparent)` over the word `size_t`.
    let word: usize = unsafe { std::mem::transmute(t.as_c_arg()) };
    word & 3
}

/// Terms still to visit, in any order: the first `INLINE` in an array on
/// the native stack, the rest in a `Vec`, so the common small term costs
/// no allocation (an allocation would be a large share of a small map's walk).
pub(crate) struct Stack<'a> {
    inline: [Term<'a>; INLINE],
    len: usize,
    spill: Vec<Term<'a>>,
}

const INLINE: usize = 32;

impl<'a> Stack<'a> {
    pub(crate) fn new(root: Term<'a>) -> Self {
        Stack {
            inline: [root; INLINE],
            len: 1,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, t: Term<'a>) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = t;
                self.len += 1;
            }
            None => self.spill.push(t),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Term<'a>> {
        if let Some(t) = self.spill.pop() {
            return Some(t);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get(self.len).copied()
    }
}

/// A non-empty list cell: pushes its head and tail.
fn list_cell<'a>(t: Term<'a>, stack: &mut Stack<'a>) -> Option<usize> {
    let (head, tail) = t.list_get_cell().ok()?;
    stack.push(tail);
    stack.push(head);
    Some(1)
}

/// Pushes the elements unless there are more than `left`.
fn tuple_items<'a>(t: Term<'a>, left: usize, stack: &mut Stack<'a>) -> Option<usize> {
    let items = crate::budget::tuple_elements(t)?;
    if items.len() > left {
        return None;
    }
    items.for_each(|item| stack.push(item));
    Some(1)
}

/// Pushes keys and values unless they and the iteration cost more than
/// `left`; returns the iteration's cost.
fn map_items<'a>(t: Term<'a>, left: usize, stack: &mut Stack<'a>) -> Option<usize> {
    let size = t.map_size().ok()?;
    if size.checked_mul(MAP_ENTRY + 2)? >= left {
        return None;
    }
    for (key, value) in rustler::MapIterator::new(t)? {
        stack.push(key);
        stack.push(value);
    }
    Some(size * MAP_ENTRY + 1)
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

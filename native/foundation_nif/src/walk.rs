//! One bounded walk over a term, priced by a cost model.
//!
//! Every size check before NIF work walks the term the same way: with an
//! explicit stack (no recursion on deep nesting), pushing the cells of
//! lists and the elements of tuples and maps, and giving up as soon as the
//! spend would exceed the budget. Only the price of each term differs, so
//! the models (`budget::Bytes`, `budget::DataBound`, `term_size::Units`)
//! implement `Cost` and share `walk`.

use crate::store_term::immediate;
use rustler::sys::{c_int, enif_get_tuple, ErlNifTerm};
use rustler::{MapIterator, Term, TermType};
use std::mem::MaybeUninit;

/// How a walk prices the terms it visits. `None` gives the walk up.
pub(crate) trait Cost {
    /// A term that is not a non-empty list cell, a tuple or a map.
    fn leaf(&mut self, t: Term) -> Option<usize>;
    /// A non-empty list cell (its head and tail are visited next).
    fn cell(&mut self) -> usize;
    /// A tuple of `arity` elements, given what is `left` of the budget.
    fn tuple(&mut self, arity: usize, left: usize) -> Option<usize>;
    /// A map of `size` pairs, given what is `left` of the budget.
    fn map(&mut self, size: usize, left: usize) -> Option<usize>;
}

/// The budget `term` costs under `cost`, or `None` once it would exceed
/// `budget` or the model gives up.
pub(crate) fn walk<C: Cost>(term: Term, budget: usize, cost: &mut C) -> Option<usize> {
    let mut left = budget;
    let mut stack = Stack::new(term);
    while let Some(t) = stack.pop() {
        let spent = if immediate(t).is_some() {
            cost.leaf(t)?
        } else {
            match t.get_type() {
                TermType::List if !t.is_empty_list() => {
                    let (head, tail) = t.list_get_cell().ok()?;
                    stack.push(tail);
                    stack.push(head);
                    cost.cell()
                }
                TermType::Tuple => {
                    let items = tuple_elements(t)?;
                    let spent = cost.tuple(items.len(), left)?;
                    items.for_each(|item| stack.push(item));
                    spent
                }
                TermType::Map => {
                    let spent = cost.map(t.map_size().ok()?, left)?;
                    for (key, value) in MapIterator::new(t)? {
                        stack.push(key);
                        stack.push(value);
                    }
                    spent
                }
                _ => cost.leaf(t)?,
            }
        };
        left = left.checked_sub(spent)?;
    }
    Some(budget - left)
}

/// The elements of tuple `t` (`None` if `t` is not a tuple), without
/// copying the tuple.
pub(crate) fn tuple_elements<'a>(t: Term<'a>) -> Option<impl ExactSizeIterator<Item = Term<'a>>> {
    let env = t.get_env();
    let mut arity: c_int = 0;
    let mut array = MaybeUninit::<*const ErlNifTerm>::uninit();
    // SAFETY: `t` is a live term of `env`; on success the VM fills `array`
    // with `arity` terms owned by the tuple, valid as long as `t` is.
    let raw: &'a [ErlNifTerm] = unsafe {
        if enif_get_tuple(env.as_c_arg(), t.as_c_arg(), &mut arity, array.as_mut_ptr()) != 1 {
            return None;
        }
        match usize::try_from(arity).ok()? {
            0 => &[],
            len => std::slice::from_raw_parts(array.assume_init(), len),
        }
    };
    // SAFETY: each element is a term of the same env.
    Some(raw.iter().map(move |item| unsafe { Term::new(env, *item) }))
}

/// Terms still to visit, in any order: the first `INLINE` in an array on
/// the native stack, the rest in a `Vec`, so the common small term costs
/// no allocation.
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

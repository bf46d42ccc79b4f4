//! One bounded walk over a term, priced by a cost model.
//!
//! Every size check before NIF work walks the term the same way: with an
//! explicit stack (no recursion on deep nesting), pushing the cells of
//! lists and the elements of tuples and maps, and giving up as soon as the
//! spend would exceed the budget. Only the price of each term differs, so
//! the models (`budget::Bytes`, `budget::DataBound`, `term_size::Units`)
//! implement `Cost` and share `walk`.

use crate::store_term::map_pairs;
use rustler::sys::{c_int, enif_get_tuple, ErlNifTerm};
use rustler::{Env, MapIterator, Term, TermType};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Maps of up to this many pairs are read from their heap words (see
/// `flatmap`); bigger ones through the map iterator.
const SMALL_MAP: usize = 32;

/// Whether `calibrate` verified the list cell layout (see `cons`).
static CONS_READ: AtomicBool = AtomicBool::new(false);

/// Primary tag of a list cell term (its word points at the cell, plus 1).
const LIST: usize = 0b01;

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
    while let Some(mut t) = stack.pop() {
        // A list is followed cell by cell here, its immediate heads priced
        // at once: only heads that hold more terms go on the stack.
        while let Some((head, tail)) = cell(t) {
            left = left.checked_sub(cost.cell())?;
            match is_immediate(head) {
                true => left = left.checked_sub(cost.leaf(head)?)?,
                false => stack.push(head),
            }
            t = tail;
        }
        let spent = if is_immediate(t) {
            cost.leaf(t)?
        } else {
            match t.get_type() {
                TermType::Tuple => {
                    let items = tuple_elements(t)?;
                    let spent = cost.tuple(items.len(), left)?;
                    items.for_each(|item| stack.push(item));
                    spent
                }
                TermType::Map => {
                    let size = t.map_size().ok()?;
                    let spent = cost.map(size, left)?;
                    push_pairs(t, size, &mut stack)?;
                    spent
                }
                _ => cost.leaf(t)?,
            }
        };
        left = left.checked_sub(spent)?;
    }
    Some(budget - left)
}

/// Pushes the keys and values of map `t` (of `size` pairs).
fn push_pairs<'a>(t: Term<'a>, size: usize, stack: &mut Stack<'a>) -> Option<()> {
    if size <= SMALL_MAP {
        let (mut keys, mut values) = (
            [ErlNifTerm::default(); SMALL_MAP],
            [ErlNifTerm::default(); SMALL_MAP],
        );
        if !map_pairs(t, &mut keys[..size], &mut values[..size]) {
            return None;
        }
        let env = t.get_env();
        for (k, v) in keys[..size].iter().zip(&values[..size]) {
            // SAFETY: the pairs are terms of the map's own env.
            unsafe {
                stack.push(Term::new(env, *k));
                stack.push(Term::new(env, *v));
            }
        }
        return Some(());
    }
    for (key, value) in MapIterator::new(t)? {
        stack.push(key);
        stack.push(value);
    }
    Some(())
}

/// The head and tail of list cell `t` (`None` for anything else): read
/// from the cell's two words once `calibrate` verified their layout, which
/// saves a term type call and a list cell call per element of a list, else
/// through `enif_get_list_cell`.
pub(crate) fn cell(t: Term) -> Option<(Term, Term)> {
    match CONS_READ.load(Relaxed) {
        true => cons(t),
        false => t.list_get_cell().ok(),
    }
}

/// `cell` from the cell's words (`calibrate` checked their layout).
fn cons(t: Term) -> Option<(Term, Term)> {
    let w = word(t);
    if w & 0b11 != LIST {
        return None;
    }
    let cell = (w - LIST) as *const usize;
    let env = t.get_env();
    // SAFETY: `t` is a live list cell of `env` (its primary tag says so,
    // and `calibrate` verified that such a word points one past a cell of
    // two words: head, then tail), readable for the call.
    unsafe {
        let (head, tail) = (*cell, *cell.add(1));
        Some((
            Term::new(env, std::mem::transmute::<usize, ErlNifTerm>(head)),
            Term::new(env, std::mem::transmute::<usize, ErlNifTerm>(tail)),
        ))
    }
}

/// Whether `t` is an immediate (an atom, small integer, local pid or
/// port, `[]`...): its primary tag says so, and it holds no other term.
fn is_immediate(t: Term) -> bool {
    word(t) & 0b11 == IMMEDIATE
}

/// Primary tag of an immediate term.
const IMMEDIATE: usize = 0b11;

fn word(t: Term) -> usize {
    crate::metrics::term_word(t) as usize
}

/// Turns the direct list cell read on when lists built here (of immediates,
/// binaries, tuples and nested lists, proper and improper) read the same
/// cell by cell through their words as through `enif_get_list_cell`.
/// Called once, from the library's load callback.
pub fn calibrate(env: Env) {
    CONS_READ.store(false, Relaxed);
    CONS_READ.store(cons_layout_holds(env), Relaxed);
}

fn cons_layout_holds(env: Env) -> bool {
    use rustler::Encoder;
    let items: Vec<Term> = vec![
        1.encode(env),
        "two".encode(env),
        (3, 4.5).encode(env),
        vec![5, 6].encode(env),
        rustler::types::atom::ok().encode(env),
        (-(1i64 << 62)).encode(env),
    ];
    let proper = items.encode(env);
    // SAFETY: both lists are terms of `env`.
    let improper = unsafe {
        Term::new(
            env,
            rustler::sys::enif_make_list_cell(
                env.as_c_arg(),
                items[0].as_c_arg(),
                items[1].as_c_arg(),
            ),
        )
    };
    [proper, improper].into_iter().all(|list| {
        let mut rest = list;
        while let Ok((head, tail)) = rest.list_get_cell() {
            if word(rest) & 0b11 != LIST {
                return false;
            }
            let cell = (word(rest) - LIST) as *const usize;
            // SAFETY: `rest` is a list cell just built in `env`; its word's
            // tag says it points one past a cell, which is only compared.
            let (h, t) = unsafe { (*cell, *cell.add(1)) };
            if h != word(head) || t != word(tail) {
                return false;
            }
            rest = tail;
        }
        true
    })
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
/// no allocation. Only the term words are kept (every term of one walk
/// belongs to the root's env): a word is stored and loaded whole, which
/// the CPU forwards from the store to the next load at once.
pub(crate) struct Stack<'a> {
    env: Env<'a>,
    /// Slots below `len` hold pushed words; the rest are never read, so
    /// the array is left uninitialized (a walk of a small term does not
    /// pay for filling it).
    inline: [MaybeUninit<ErlNifTerm>; INLINE],
    len: usize,
    spill: Vec<ErlNifTerm>,
}

const INLINE: usize = 128;

impl<'a> Stack<'a> {
    pub(crate) fn new(root: Term<'a>) -> Self {
        let mut inline = [const { MaybeUninit::uninit() }; INLINE];
        inline[0] = MaybeUninit::new(root.as_c_arg());
        Stack {
            env: root.get_env(),
            inline,
            len: 1,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, t: Term<'a>) {
        let word = t.as_c_arg();
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = MaybeUninit::new(word);
                self.len += 1;
            }
            None => self.spill.push(word),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Term<'a>> {
        let word = match self.spill.pop() {
            Some(word) => word,
            None => {
                self.len = self.len.checked_sub(1)?;
                // SAFETY: every slot below the old `len` was written by
                // `new` or `push`.
                unsafe { self.inline.get(self.len)?.assume_init() }
            }
        };
        // SAFETY: every word pushed is a term of the root's env.
        Some(unsafe { Term::new(self.env, word) })
    }
}

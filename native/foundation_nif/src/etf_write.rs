//! External term format written here, byte for byte as `term_to_binary/1`
//! writes it, for the terms events usually hold.
//!
//! The warm tier stores each event in external term format. The VM's
//! encoder (`enif_term_to_binary`) looks up every atom's text and makes a
//! binary per call: for a small event about 0.8 µs, much of a write's cost.
//! Here an atom's bytes come from a per-thread cache (filled by the VM's
//! encoder, so they are its bytes), a local pid's from the VM's encoder,
//! and the rest is written by the rules of the VM's encoder: integers,
//! floats, binaries, tuples, lists (strings included), and maps of up to 32
//! keys read from their heap words (see `flatmap`). Anything else (bigger
//! maps, bignums, bitstrings, refs, funs, ports, remote pids, nesting deeper
//! than `MAX_DEPTH`) makes `encode` give up, and the caller uses the VM's
//! encoder for the whole term. Test builds compare every result with the
//! VM's encoder, so every warm write of the test suite checks it.

use crate::store_term::{immediate, Immediate};
use crate::walk::{cell, tuple_elements};
use rustc_hash::FxHashMap;
use rustler::sys::ErlNifTerm;
use rustler::{Binary, Term, TermType};
use std::cell::RefCell;

const VERSION: u8 = 131;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const MAP_EXT: u8 = 116;

/// Nesting past this gives up (bounds the recursion).
const MAX_DEPTH: usize = 64;
/// The longest list the VM writes as a string.
const MAX_STRING: usize = 0xFFFF;
/// Entries a thread's cache holds before it starts over.
const CACHE: usize = 4096;

thread_local! {
    /// The encoding (without the version byte) of atoms by term word: an
    /// atom's word and text never change while the VM runs.
    static WORDS: RefCell<Atoms> = RefCell::default();
}

/// Atom encodings by term word (see `WORDS`).
type Atoms = FxHashMap<u64, Box<[u8]>>;

/// One encoding's state: the thread's atom cache, and the output length
/// past which it stops (`too_big` then says why it gave up).
struct Ctx<'a> {
    atoms: &'a mut Atoms,
    limit: usize,
    too_big: bool,
}

impl Ctx<'_> {
    /// Whether `more` bytes after `out` would pass the limit (noted).
    fn over(&mut self, out: &[u8], more: usize) -> bool {
        self.too_big |= out.len().saturating_add(more) > self.limit;
        self.too_big
    }
}

/// Why [`encode_within`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The term holds something this encoder leaves to the VM.
    Unsupported,
    /// The encoding would pass the limit.
    TooBig,
}

/// Appends `term_to_binary(term)` to `out`: written here when `encode`
/// can, else by the VM's encoder.
pub(crate) fn append(term: Term, out: &mut Vec<u8>) {
    if !encode(term, out) {
        out.extend_from_slice(term.to_binary().as_slice());
    }
}

/// Appends `term_to_binary(term)` to `out`; false (with `out` as it was)
/// when `term` holds something this encoder leaves to the VM.
pub(crate) fn encode(term: Term, out: &mut Vec<u8>) -> bool {
    encode_within(term, out, usize::MAX).is_ok()
}

/// [`encode`], giving up once the output (`out` included) would pass
/// `limit` bytes: the work is bounded by the limit, whatever the term
/// (each step adds a few bytes, and a binary or a list is checked before
/// it is copied or walked). `out` is as it was on an error.
pub(crate) fn encode_within(term: Term, out: &mut Vec<u8>, limit: usize) -> Result<(), Stop> {
    #[cfg(feature = "test-support")]
    let start = out.len();
    with_ctx(out, limit, |out, ctx| write(term, out, 0, ctx))?;
    #[cfg(feature = "test-support")]
    {
        let vm = term.to_binary();
        assert!(
            out[start..] == *vm.as_slice(),
            "etf_write: {:?} differs from term_to_binary",
            term
        );
    }
    Ok(())
}

/// One element of a tuple written by [`encode_tuple`]: a term, or a tuple
/// of terms (written as the VM would write that tuple, without making it).
pub(crate) enum Item<'a, 'b> {
    Term(Term<'a>),
    Tuple(&'b [Term<'a>]),
}

/// Appends what `term_to_binary/1` gives for the tuple of `items`; false
/// (with `out` as it was) when an item holds something this encoder leaves
/// to the VM.
pub(crate) fn encode_tuple(items: &[Item], out: &mut Vec<u8>) -> bool {
    #[cfg(feature = "test-support")]
    let start = out.len();
    let written = with_ctx(out, usize::MAX, |out, ctx| {
        tuple_head(items.len(), out)?;
        for item in items {
            match item {
                Item::Term(t) => write(*t, out, 1, ctx)?,
                Item::Tuple(terms) => {
                    tuple_head(terms.len(), out)?;
                    for t in *terms {
                        write(*t, out, 2, ctx)?;
                    }
                }
            }
        }
        Some(())
    });
    #[cfg(feature = "test-support")]
    if written.is_ok() {
        if let Some(first) = items.iter().find_map(|i| match i {
            Item::Term(t) => Some(*t),
            Item::Tuple(terms) => terms.first().copied(),
        }) {
            let env = first.get_env();
            let terms: Vec<Term> = items
                .iter()
                .map(|i| match i {
                    Item::Term(t) => *t,
                    Item::Tuple(terms) => rustler::types::tuple::make_tuple(env, terms),
                })
                .collect();
            let vm = rustler::types::tuple::make_tuple(env, &terms).to_binary();
            assert!(
                out[start..] == *vm.as_slice(),
                "etf_write: tuple differs from term_to_binary"
            );
        }
    }
    written.is_ok()
}

/// Writes the version byte, then runs `body` with the thread's atom cache;
/// `out` is left as it was when `body` gives up or passes `limit`.
fn with_ctx(
    out: &mut Vec<u8>,
    limit: usize,
    body: impl FnOnce(&mut Vec<u8>, &mut Ctx) -> Option<()>,
) -> Result<(), Stop> {
    let start = out.len();
    out.push(VERSION);
    // The thread's atom cache, taken once for the whole term.
    let (done, too_big) = WORDS.with(|cache| {
        let mut fresh = Atoms::default();
        let mut borrowed = cache.try_borrow_mut();
        let atoms = match borrowed.as_deref_mut() {
            Ok(atoms) => atoms,
            Err(_) => &mut fresh,
        };
        let mut ctx = Ctx {
            atoms,
            limit,
            too_big: false,
        };
        let done = body(out, &mut ctx).is_some() && !ctx.over(out, 0);
        (done, ctx.too_big)
    });
    if !done {
        out.truncate(start);
        return Err(if too_big {
            Stop::TooBig
        } else {
            Stop::Unsupported
        });
    }
    Ok(())
}

/// A tuple's header for `n` elements.
fn tuple_head(n: usize, out: &mut Vec<u8>) -> Option<()> {
    match u8::try_from(n) {
        Ok(n) => out.extend_from_slice(&[SMALL_TUPLE_EXT, n]),
        Err(_) => {
            out.push(LARGE_TUPLE_EXT);
            out.extend_from_slice(&u32::try_from(n).ok()?.to_be_bytes());
        }
    }
    Some(())
}

fn write(term: Term, out: &mut Vec<u8>, depth: usize, ctx: &mut Ctx) -> Option<()> {
    if depth > MAX_DEPTH || ctx.over(out, 0) {
        return None;
    }
    match immediate(term) {
        Some(Immediate::Small(i)) => {
            integer(i, out);
            return Some(());
        }
        Some(Immediate::Atom(w)) => return atom(w, term, out, ctx.atoms),
        // A local pid's encoding names the node, which changes when the
        // VM starts or stops distribution: the VM writes it each time.
        Some(Immediate::Pid(_)) => {
            out.extend_from_slice(term.to_binary().as_slice().get(1..)?);
            return Some(());
        }
        None => {}
    }
    match term.get_type() {
        TermType::Float => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&term.decode::<f64>().ok()?.to_be_bytes());
        }
        TermType::Binary => {
            // Not byte-aligned: a bitstring (left to the VM).
            let bin = Binary::from_term(term).ok()?;
            if ctx.over(out, bin.len()) {
                return None;
            }
            out.push(BINARY_EXT);
            out.extend_from_slice(&u32::try_from(bin.len()).ok()?.to_be_bytes());
            out.extend_from_slice(bin.as_slice());
        }
        TermType::Tuple => {
            let items = tuple_elements(term)?;
            if ctx.over(out, items.len()) {
                return None;
            }
            tuple_head(items.len(), out)?;
            for item in items {
                write(item, out, depth + 1, ctx)?;
            }
        }
        TermType::List => list(term, out, depth, ctx)?,
        TermType::Map => map(term, out, depth, ctx)?,
        _ => return None,
    }
    Some(())
}

/// A small integer, as the VM writes it: one byte, four, or a small big.
fn integer(i: i64, out: &mut Vec<u8>) {
    if (0..=255).contains(&i) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, i as u8]);
    } else if let Ok(i) = i32::try_from(i) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&i.to_be_bytes());
    } else {
        let digits = i.unsigned_abs().to_le_bytes();
        let n = 8 - digits.iter().rev().take_while(|&&b| b == 0).count();
        out.extend_from_slice(&[SMALL_BIG_EXT, n as u8, u8::from(i < 0)]);
        out.extend_from_slice(&digits[..n]);
    }
}

/// An atom (its term `word`), from the cache or the VM.
fn atom(word: u64, term: Term, out: &mut Vec<u8>, atoms: &mut Atoms) -> Option<()> {
    if let Some(bytes) = atoms.get(&word) {
        out.extend_from_slice(bytes);
        return Some(());
    }
    let vm = term.to_binary();
    let bytes = vm.as_slice().get(1..)?;
    out.extend_from_slice(bytes);
    if atoms.len() >= CACHE {
        atoms.clear();
    }
    atoms.insert(word, bytes.into());
    Some(())
}

/// A list: `[]`, a string (a proper list of at most `MAX_STRING` bytes),
/// or its elements and its tail.
fn list(term: Term, out: &mut Vec<u8>, depth: usize, ctx: &mut Ctx) -> Option<()> {
    if term.is_empty_list() {
        out.push(NIL_EXT);
        return Some(());
    }
    let (mut len, mut bytes, mut rest) = (0usize, true, term);
    while let Some((head, tail)) = cell(rest) {
        len += 1;
        // Every element takes at least a byte.
        if ctx.over(out, len) {
            return None;
        }
        bytes &= matches!(immediate(head), Some(Immediate::Small(0..=255)));
        rest = tail;
    }
    if bytes && len <= MAX_STRING && rest.is_empty_list() {
        out.push(STRING_EXT);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let mut rest = term;
        while let Some((head, tail)) = cell(rest) {
            if let Some(Immediate::Small(b)) = immediate(head) {
                out.push(b as u8);
            }
            rest = tail;
        }
        return Some(());
    }
    out.push(LIST_EXT);
    out.extend_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
    let mut rest = term;
    while let Some((head, tail)) = cell(rest) {
        write(head, out, depth + 1, ctx)?;
        rest = tail;
    }
    write(rest, out, depth + 1, ctx)
}

/// A map of up to 32 keys (read from its heap words), pairs in its order.
fn map(term: Term, out: &mut Vec<u8>, depth: usize, ctx: &mut Ctx) -> Option<()> {
    let size = term.map_size().ok()?;
    if size > 32 {
        return None;
    }
    let (mut keys, mut values) = ([ErlNifTerm::default(); 32], [ErlNifTerm::default(); 32]);
    crate::flatmap::pairs(term, &mut keys[..size], &mut values[..size])?;
    out.push(MAP_EXT);
    out.extend_from_slice(&(size as u32).to_be_bytes());
    let env = term.get_env();
    for (k, v) in keys[..size].iter().zip(&values[..size]) {
        // SAFETY: the pairs are terms of the map's own env.
        let (k, v) = unsafe { (Term::new(env, *k), Term::new(env, *v)) };
        write(k, out, depth + 1, ctx)?;
        write(v, out, depth + 1, ctx)?;
    }
    Some(())
}

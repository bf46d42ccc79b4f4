//! A small map's pairs read straight from its heap words.
//!
//! A map of up to 32 keys is one block on the heap: a header word, the
//! size, the term of a tuple holding the keys, then the values, in the
//! order the map iterator walks them. Reading them there costs a few loads
//! per pair; the iterator API costs two calls per pair, which is a tenth
//! of storing an event (three maps: the event, its wall time, its data).
//!
//! The layout is not part of the NIF API, so it is never assumed: at load,
//! `calibrate` builds maps of several sizes through the API and compares
//! what the layout says with what the iterator says. Only when every one
//! agrees is the fast path turned on, with the header words it saw; each
//! read then checks the map's header, size and key tuple against them and
//! falls back to the iterator on any difference (a large map, a VM whose
//! layout differs).

use crate::store_term;
use rustler::sys::ErlNifTerm;
use rustler::{Env, Term};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The header word of a small map, once `calibrate` has verified the
/// layout (0: not verified, the fast path is off).
static MAP_HEADER: AtomicU64 = AtomicU64::new(0);

/// Primary tag of a boxed term (its word points at a header, plus 2).
const BOXED: u64 = 0b10;

/// The tuple header of arity `n`: arity above the six tag bits.
fn tuple_header(n: usize) -> u64 {
    (n as u64) << 6
}

fn word(t: ErlNifTerm) -> u64 {
    // SAFETY: ErlNifTerm is #[repr(transparent)] over usize.
    let w: usize = unsafe { std::mem::transmute::<ErlNifTerm, usize>(t) };
    w as u64
}

fn from_word(w: u64) -> ErlNifTerm {
    // SAFETY: as `word`; `w` was read from a term's own heap block.
    unsafe { std::mem::transmute::<usize, ErlNifTerm>(w as usize) }
}

/// Whether `calibrate` turned the fast path on.
pub(crate) fn enabled() -> bool {
    MAP_HEADER.load(Relaxed) != 0
}

/// The heap block of a boxed term.
fn block(t: u64) -> Option<*const u64> {
    (t & 0b11 == BOXED).then(|| (t - BOXED) as *const u64)
}

/// Fills `keys`/`values` with the pairs of `map` from its heap words, or
/// `None` (nothing written that matters: the caller uses the iterator)
/// when the fast path is off or `map` is not a small map of exactly
/// `keys.len()` pairs in the verified layout.
pub(crate) fn pairs(map: Term, keys: &mut [ErlNifTerm], values: &mut [ErlNifTerm]) -> Option<()> {
    match MAP_HEADER.load(Relaxed) {
        0 => None,
        header => read(header, map, keys, values),
    }
}

/// `pairs` for small maps whose header word is `header`.
fn read(header: u64, map: Term, keys: &mut [ErlNifTerm], values: &mut [ErlNifTerm]) -> Option<()> {
    let n = keys.len();
    if values.len() != n {
        return None;
    }
    let at = block(word(map.as_c_arg()))?;
    // SAFETY: `map` is a live term of the caller's env, so its heap block
    // is readable for the call. The header and size words are read first;
    // the key tuple and the values only once the header says this is a
    // small map of `n` pairs, the layout `calibrate` verified, in which
    // the block holds three words and then `n` values.
    unsafe {
        if *at != header || *at.add(1) != n as u64 {
            return None;
        }
        let tuple = block(*at.add(2))?;
        if *tuple != tuple_header(n) {
            return None;
        }
        for i in 0..n {
            keys[i] = from_word(*tuple.add(1 + i));
            values[i] = from_word(*at.add(3 + i));
        }
    }
    Some(())
}

/// Turns the fast path on when maps built here of several sizes (up to
/// 32 keys, mixing atom, integer and binary keys and values) read the same
/// through their heap words as through the iterator, all with one header
/// word. Called once, from the library's load callback.
pub fn calibrate(env: Env) {
    MAP_HEADER.store(verified_header(env).unwrap_or(0), Relaxed);
}

fn verified_header(env: Env) -> Option<u64> {
    let mut header = None;
    for n in [1usize, 2, 3, 10, 13, 32] {
        let keys: Vec<Term> = (0..n)
            .map(|i| match i % 3 {
                0 => rustler::Atom::from_str(env, &format!("flatmap_probe_{i}"))
                    .ok()
                    .map(|a| a.to_term(env)),
                1 => Some(rustler::Encoder::encode(&(i as i64 * 1_000), env)),
                _ => Some(rustler::Encoder::encode(&format!("k{i}"), env)),
            })
            .collect::<Option<_>>()?;
        let values: Vec<Term> = (0..n)
            .map(|i| rustler::Encoder::encode(&(i as i64 - 7), env))
            .collect();
        let map = Term::map_from_term_arrays(env, &keys, &values).ok()?;
        let at = block(word(map.as_c_arg()))?;
        // SAFETY: `map` was just built in `env`, so its first three words
        // are readable (every map block is at least that long). The key
        // tuple is followed only if it was built next to the map.
        let (seen, tuple) = unsafe { (*at, block(*at.add(2))) };
        if tuple.is_none_or(|t| (t as usize).abs_diff(at as usize) > 64 * 1024) {
            return None;
        }
        if *header.get_or_insert(seen) != seen {
            return None;
        }
        let blank = || vec![ErlNifTerm::default(); n];
        let (mut ks, mut vs, mut iks, mut ivs) = (blank(), blank(), blank(), blank());
        read(seen, map, &mut ks, &mut vs)?;
        if !store_term::iterated_pairs(map, &mut iks, &mut ivs) {
            return None;
        }
        let words = |terms: &[ErlNifTerm]| terms.iter().map(|t| word(*t)).collect::<Vec<_>>();
        if words(&ks) != words(&iks) || words(&vs) != words(&ivs) {
            return None;
        }
    }
    header
}

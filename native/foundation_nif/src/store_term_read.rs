//! Decoding of the store's term format (see `store_term` for the format).
//!
//! Terms are built with raw enif_* calls: rustler's `make_tuple` and
//! `map_from_term_arrays` copy their input into fresh Vecs on every call,
//! which measured as a large share of a decode. Small tuples, lists and maps
//! are read into stack buffers.

use crate::store_term::{date_time_keys, event_keys, STACK};
use crate::store_term::{ATOM, BIN, ETF, FLOAT, INT, LIST, MAP, PID, SHAPE, TUPLE};
use rustler::sys::{self, c_uint, ErlNifTerm};
use rustler::{Atom, Env, Error, NewBinary, NifResult, Term};

/// Decodes bytes written by `encode` into a term of `env`.
pub fn decode<'a>(env: Env<'a>, bytes: &[u8]) -> NifResult<Term<'a>> {
    let mut reader = Reader { bytes, pos: 0, env };
    let raw = reader.term().ok_or_else(|| Error::BadArg)?;
    // SAFETY: `raw` was made in `env` by the enif_* calls below.
    Ok(unsafe { Term::new(env, raw) })
}

/// A cursor over an encoded term, building into `env`.
struct Reader<'a, 'b> {
    bytes: &'b [u8],
    pos: usize,
    env: Env<'a>,
}

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }

    fn slice(&mut self, len: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(len)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    fn term(&mut self) -> Option<ErlNifTerm> {
        let env = self.env.as_c_arg();
        Some(match self.byte()? {
            ATOM | PID => immediate(usize::try_from(self.varint()?).ok()?),
            INT => {
                let z = self.varint()?;
                // SAFETY: `env` is the calling NIF's live env.
                unsafe { sys::enif_make_int64(env, (z >> 1) as i64 ^ -((z & 1) as i64)) }
            }
            FLOAT => {
                let f = f64::from_le_bytes(self.slice(8)?.try_into().ok()?);
                // SAFETY: as above.
                unsafe { sys::enif_make_double(env, f) }
            }
            BIN => {
                let n = self.len()?;
                Term::from(NewBinary::from_slice(self.env, self.slice(n)?)).as_c_arg()
            }
            TUPLE => self.with_terms(|ts, n| {
                // SAFETY: `ts` holds `n` terms of `env`.
                unsafe { sys::enif_make_tuple_from_array(env, ts.as_ptr(), n) }
            })?,
            LIST => self.with_terms(|ts, n| {
                // SAFETY: as above.
                unsafe { sys::enif_make_list_from_array(env, ts.as_ptr(), n) }
            })?,
            MAP => self.map()?,
            SHAPE => match self.byte()? {
                0 => self.known(event_keys())?,
                1 => self.known(date_time_keys())?,
                _ => return None,
            },
            ETF => {
                let n = self.len()?;
                self.env.binary_to_term(self.slice(n)?)?.0.as_c_arg()
            }
            _ => return None,
        })
    }

    /// Reads a count and that many terms, then calls `f(terms, count)`.
    fn with_terms(
        &mut self,
        f: impl FnOnce(&[ErlNifTerm], c_uint) -> ErlNifTerm,
    ) -> Option<ErlNifTerm> {
        let n = self.len()?;
        let count = c_uint::try_from(n).ok()?;
        if n <= STACK {
            let mut buf = [ErlNifTerm::default(); STACK];
            for slot in buf.iter_mut().take(n) {
                *slot = self.term()?;
            }
            return Some(f(&buf[..n], count));
        }
        // Every term takes at least one byte: bounds the allocation.
        let mut items = Vec::with_capacity(n.min(self.bytes.len()));
        for _ in 0..n {
            items.push(self.term()?);
        }
        Some(f(&items, count))
    }

    fn map(&mut self) -> Option<ErlNifTerm> {
        let n = self.len()?;
        if 2 * n <= STACK {
            let mut buf = [ErlNifTerm::default(); STACK];
            for slot in buf.iter_mut().take(2 * n) {
                *slot = self.term()?;
            }
            let (keys, values) = buf[..2 * n].split_at(n);
            return make_map(self.env, keys, values);
        }
        let mut all = Vec::with_capacity(n.saturating_mul(2).min(self.bytes.len()));
        for _ in 0..n.checked_mul(2)? {
            all.push(self.term()?);
        }
        let (keys, values) = all.split_at(n);
        make_map(self.env, keys, values)
    }

    fn known<const N: usize>(&mut self, keys: [Atom; N]) -> Option<ErlNifTerm> {
        let mut values = [ErlNifTerm::default(); N];
        for v in values.iter_mut() {
            *v = self.term()?;
        }
        make_map(self.env, &keys.map(|k| k.as_c_arg()), &values)
    }
}

/// The term whose word is `w` (an atom or local pid written by `encode`).
fn immediate(w: usize) -> ErlNifTerm {
    // SAFETY: ErlNifTerm is repr(transparent) over usize, and `w` was copied
    // from an atom or local pid of this VM; both are immediates valid for
    // the VM's life (atoms are never freed; an ErlNifPid is env-free).
    unsafe { std::mem::transmute::<usize, ErlNifTerm>(w) }
}

/// `None` when keys repeat (never, for maps written by `encode`).
pub(crate) fn make_map(env: Env, keys: &[ErlNifTerm], values: &[ErlNifTerm]) -> Option<ErlNifTerm> {
    let mut out = ErlNifTerm::default();
    // SAFETY: `keys` and `values` hold `keys.len()` terms of `env`.
    let ok = unsafe {
        sys::enif_make_map_from_arrays(
            env.as_c_arg(),
            keys.as_ptr(),
            values.as_ptr(),
            keys.len().min(values.len()),
            &mut out,
        )
    };
    (ok != 0).then_some(out)
}

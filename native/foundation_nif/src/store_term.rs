//! The store's in-memory term format: a compact, tagged byte form that
//! decodes without looking anything up by name.
//!
//! `binary_to_term` spends most of its time finding atoms by their text
//! (every atom, including the node inside each pid) and sorting map keys.
//! Here an atom is written as its term word: atoms are never garbage
//! collected, so the word stays valid for the life of the VM, and this form
//! never leaves the VM (a disk log would persist external term format:
//! decode, then `term_to_binary`). A local pid is written the same way (an
//! `ErlNifPid` is self-contained and valid in any env). Maps are written in
//! iteration order, which for maps of up to 32 keys is term order, so the VM
//! rebuilds them without reordering; `%Types.Event{}` and
//! `%DateTime{}` are written as their values only (shapes with known keys).
//! Anything else (refs, funs, ports, remote pids, bignums, bitstrings,
//! improper lists, deeper than `MAX_DEPTH`) is embedded as external term
//! format, so every term round-trips `==`. Decoding is in `store_term_read`.

use crate::atoms;
use rustler::sys::{self, c_int, ErlNifMapIterator, ErlNifMapIteratorEntry, ErlNifTerm};
use rustler::{Atom, Binary, Env, LocalPid, Term, TermType};

pub(crate) const ATOM: u8 = 1;
pub(crate) const INT: u8 = 2;
pub(crate) const FLOAT: u8 = 3;
pub(crate) const BIN: u8 = 4;
pub(crate) const TUPLE: u8 = 5;
pub(crate) const LIST: u8 = 6;
pub(crate) const MAP: u8 = 7;
pub(crate) const PID: u8 = 8;
pub(crate) const ETF: u8 = 9;
pub(crate) const SHAPE: u8 = 10;

/// Tuples, lists and maps up to this many terms are handled in stack
/// buffers (else a Vec).
pub(crate) const STACK: usize = 16;

/// Nesting deeper than this is embedded as external term format (bounds
/// the recursion of both directions).
const MAX_DEPTH: usize = 64;

/// Event struct keys in term order (the iteration order of its map).
pub(crate) fn event_keys() -> [Atom; 10] {
    [
        atoms::struct_key(),
        atoms::correlation_id(),
        atoms::data(),
        atoms::event_id(),
        atoms::event_type(),
        atoms::node(),
        atoms::parent_id(),
        atoms::pid(),
        atoms::timestamp(),
        atoms::wall_time(),
    ]
}

/// DateTime struct keys in term order.
pub(crate) fn date_time_keys() -> [Atom; 13] {
    [
        atoms::struct_key(),
        atoms::calendar(),
        atoms::day(),
        atoms::hour(),
        atoms::microsecond(),
        atoms::minute(),
        atoms::month(),
        atoms::second(),
        atoms::std_offset(),
        atoms::time_zone(),
        atoms::utc_offset(),
        atoms::year(),
        atoms::zone_abbr(),
    ]
}

/// Terms written natively per event at most: past it, per-term enif calls
/// cost more than the VM's own `term_to_binary`/`binary_to_term` (a very
/// long list is slower both ways), so the caller stores
/// such an event as external term format instead. ~35 for a usual event.
pub const MAX_TERMS: usize = 4096;

/// Appends the encoding of `term` to `out`; false (with `out` partly
/// written) when `term` holds more than `MAX_TERMS` terms.
pub fn encode(term: Term, out: &mut Vec<u8>) -> bool {
    let mut writer = Writer::new(term.get_env(), out, usize::MAX);
    writer.write(term, 0);
    writer.budget > 0
}

/// How `encode_event` ended.
pub(crate) enum Encoded {
    /// Written in native form; about this many bytes of work (as
    /// `budget::measure` counts: a word per term, binaries by length).
    Native(usize),
    /// More than `MAX_TERMS` terms (`out` partly written).
    TooManyTerms,
    /// Over `limit` bytes of work (`out` partly written).
    OverBudget,
}

/// Appends the encoding of an `%Event{}` whose pairs (in iteration order,
/// keys `event_keys()`) were already read, stopping once the work exceeds
/// `limit` bytes: the store's write path reads the event's map once for
/// its fields and its encoding.
pub(crate) fn encode_event(
    env: Env,
    keys: &[ErlNifTerm],
    values: &[ErlNifTerm],
    out: &mut Vec<u8>,
    limit: usize,
) -> Encoded {
    let mut writer = Writer::new(env, out, limit);
    // The map itself, as `write` would count it.
    writer.budget -= 1;
    writer.spent = WORD;
    writer.map_body(keys, values, 0);
    match (writer.over, writer.budget) {
        (true, _) => Encoded::OverBudget,
        (false, 0) => Encoded::TooManyTerms,
        (false, _) => Encoded::Native(writer.spent),
    }
}

/// Bytes of work each term counts at least (as `budget::measure` does).
const WORD: usize = 8;

/// Walks terms with raw enif_* calls where rustler would allocate (tuple
/// element Vecs, collected map pairs): allocation would be most of an encode.
struct Writer<'a, 'o> {
    env: Env<'a>,
    out: &'o mut Vec<u8>,
    /// Terms left before giving up (0: gave up, stop writing).
    budget: usize,
    /// Bytes of work so far: a word per term, binaries by length.
    spent: usize,
    /// Past this many bytes of work, give up (`over`).
    limit: usize,
    over: bool,
}

impl<'a, 'o> Writer<'a, 'o> {
    fn new(env: Env<'a>, out: &'o mut Vec<u8>, limit: usize) -> Self {
        Writer {
            env,
            out,
            budget: MAX_TERMS,
            spent: 0,
            limit,
            over: false,
        }
    }

    /// Counts `bytes` of work; gives up once over the limit.
    fn spend(&mut self, bytes: usize) {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.limit {
            self.over = true;
            self.budget = 0;
        }
    }

    fn write(&mut self, term: Term<'a>, depth: usize) {
        if self.budget == 0 {
            return;
        }
        self.budget -= 1;
        self.spend(WORD);
        // Immediates (most of an event's terms) are read from their word,
        // before any other check.
        if depth < MAX_DEPTH {
            let written = match immediate(term) {
                Some(Immediate::Atom(w)) => self.word(ATOM, w),
                Some(Immediate::Small(i)) => self.word(INT, zigzag(i)),
                Some(Immediate::Pid(w)) => self.word(PID, w),
                None => false,
            };
            if written {
                return;
            }
        }
        let start = self.out.len();
        if depth >= MAX_DEPTH || !self.native(term, depth) {
            self.out.truncate(start);
            if self.limit != usize::MAX && !self.bounded_etf(term, depth) {
                self.over = true;
                self.budget = 0;
                return;
            }
            let etf = term.to_binary();
            self.out.push(ETF);
            varint(self.out, etf.len() as u64);
            self.out.extend_from_slice(etf.as_slice());
        }
    }

    /// Writes `term` in native form; false when it cannot (the caller then
    /// truncates and writes external term format).
    /// Immediates are written by `write` before it gets here.
    fn native(&mut self, term: Term<'a>, depth: usize) -> bool {
        match term.get_type() {
            TermType::Atom => self.word(ATOM, raw(term)),
            TermType::Integer => term
                .decode::<i64>()
                .is_ok_and(|i| self.word(INT, zigzag(i))),
            TermType::Float => term.decode::<f64>().is_ok_and(|f| {
                self.out.push(FLOAT);
                self.out.extend_from_slice(&f.to_le_bytes());
                true
            }),
            TermType::Binary => Binary::from_term(term).is_ok_and(|b| {
                self.spend(b.len());
                if self.over {
                    return true;
                }
                self.word(BIN, b.len() as u64);
                self.out.extend_from_slice(b.as_slice());
                true
            }),
            TermType::Pid => term.decode::<LocalPid>().is_ok() && self.word(PID, raw(term)),
            TermType::Tuple => self.tuple(term, depth),
            TermType::List => self.list(term, depth),
            TermType::Map => self.map(term, depth),
            _ => false,
        }
    }

    /// With a byte limit, only terms whose external form is small are
    /// embedded (as `budget::measure` bounds them: refs, ports, pids,
    /// integers up to 128 bits); anything else counts as over the limit.
    fn bounded_etf(&mut self, term: Term<'a>, depth: usize) -> bool {
        let cost = match term.get_type() {
            _ if depth >= MAX_DEPTH => None,
            TermType::Ref | TermType::Port | TermType::Pid => Some(4 * WORD),
            TermType::Integer => crate::budget::integer(term),
            _ => None,
        };
        cost.is_some_and(|c| {
            self.spend(c);
            !self.over
        })
    }

    /// Stops the whole encoding (the caller stores external term format).
    fn give_up(&mut self) -> bool {
        self.budget = 0;
        true
    }

    /// Writes `tag` and the varint of `w` (at most 11 bytes) after one
    /// capacity check: a word is written per term, and a push per byte
    /// checks the capacity each time.
    fn word(&mut self, tag: u8, mut w: u64) -> bool {
        self.out.reserve(11);
        let len = self.out.len();
        // SAFETY: 11 bytes of capacity are reserved past `len`; at most 11
        // are written (a tag and a 64-bit varint of at most 10 bytes), all
        // initialized before `set_len` covers them.
        unsafe {
            let at = self.out.as_mut_ptr().add(len);
            at.write(tag);
            let mut n = 1;
            while w >= 0x80 {
                at.add(n).write((w as u8) | 0x80);
                w >>= 7;
                n += 1;
            }
            at.add(n).write(w as u8);
            self.out.set_len(len + n + 1);
        }
        true
    }

    fn child(&self, t: ErlNifTerm) -> Term<'a> {
        // SAFETY: `t` is an element of a term of `self.env`.
        unsafe { Term::new(self.env, t) }
    }

    fn tuple(&mut self, term: Term<'a>, depth: usize) -> bool {
        let (mut arity, mut items) = (0 as c_int, std::ptr::null());
        // SAFETY: `term` belongs to the live `env`; on success `items`
        // points at the tuple's `arity` elements, alive as long as `term`.
        let ok = unsafe {
            sys::enif_get_tuple(self.env.as_c_arg(), term.as_c_arg(), &mut arity, &mut items)
        };
        let Ok(n) = usize::try_from(arity) else {
            return false;
        };
        if ok == 0 || (n > 0 && items.is_null()) {
            return false;
        }
        self.word(TUPLE, n as u64);
        for i in 0..n {
            // SAFETY: `i < arity` (see above).
            let t = unsafe { *items.add(i) };
            self.write(self.child(t), depth + 1);
        }
        true
    }

    /// Proper lists only (length first, so nothing is collected).
    fn list(&mut self, term: Term<'a>, depth: usize) -> bool {
        // Count the cells first, but never more than the budget allows.
        let (mut n, mut rest) = (0usize, term);
        while let Ok((_, tail)) = rest.list_get_cell() {
            n += 1;
            if n > self.budget {
                return self.give_up();
            }
            rest = tail;
        }
        if !rest.is_empty_list() {
            return false;
        }
        self.word(LIST, n as u64);
        let mut rest = term;
        while let Ok((head, tail)) = rest.list_get_cell() {
            self.write(head, depth + 1);
            rest = tail;
        }
        true
    }

    fn map(&mut self, term: Term<'a>, depth: usize) -> bool {
        let Ok(n) = term.map_size() else {
            return false;
        };
        if n.saturating_mul(2) > self.budget {
            return self.give_up();
        }
        if n > STACK {
            let mut keys = vec![ErlNifTerm::default(); n];
            let mut values = keys.clone();
            return self.pairs(term, &mut keys, &mut values)
                && self.map_body(&keys, &values, depth);
        }
        let mut keys = [ErlNifTerm::default(); STACK];
        let mut values = keys;
        self.pairs(term, &mut keys[..n], &mut values[..n])
            && self.map_body(&keys[..n], &values[..n], depth)
    }

    fn pairs(&self, map: Term<'a>, keys: &mut [ErlNifTerm], values: &mut [ErlNifTerm]) -> bool {
        map_pairs(map, keys, values)
    }

    fn map_body(&mut self, keys: &[ErlNifTerm], values: &[ErlNifTerm], depth: usize) -> bool {
        match shape_of(keys) {
            Some(shape) => self.out.extend([SHAPE, shape]),
            None => {
                self.word(MAP, keys.len() as u64);
                for k in keys {
                    self.write(self.child(*k), depth + 1);
                }
            }
        }
        for v in values {
            self.write(self.child(*v), depth + 1);
        }
        true
    }
}

/// Fills `keys`/`values` (sized to the map) with the pairs of `map` in
/// iteration order (callers size them to the map); false if `map` is not
/// a map or has fewer pairs. A small map is read from its heap words when
/// the layout was verified (see `flatmap`), else through the iterator.
pub(crate) fn map_pairs(map: Term, keys: &mut [ErlNifTerm], values: &mut [ErlNifTerm]) -> bool {
    crate::flatmap::pairs(map, keys, values).is_some() || iterated_pairs(map, keys, values)
}

/// `map_pairs` through the NIF map iterator only.
pub(crate) fn iterated_pairs(
    map: Term,
    keys: &mut [ErlNifTerm],
    values: &mut [ErlNifTerm],
) -> bool {
    let env = map.get_env().as_c_arg();
    let mut iter = std::mem::MaybeUninit::<ErlNifMapIterator>::uninit();
    let head = ErlNifMapIteratorEntry::ERL_NIF_MAP_ITERATOR_HEAD;
    // SAFETY: `map` is a term of the live `env`; the iterator is used only
    // after a successful create and destroyed once.
    unsafe {
        if sys::enif_map_iterator_create(env, map.as_c_arg(), iter.as_mut_ptr(), head) == 0 {
            return false;
        }
        let mut filled = 0;
        for (k, v) in keys.iter_mut().zip(values.iter_mut()) {
            if sys::enif_map_iterator_get_pair(env, iter.as_mut_ptr(), k, v) == 0 {
                break;
            }
            filled += 1;
            sys::enif_map_iterator_next(env, iter.as_mut_ptr());
        }
        sys::enif_map_iterator_destroy(env, iter.as_mut_ptr());
        filled == keys.len()
    }
}

/// True when `keys` (in iteration order) are exactly an `%Event{}`'s.
pub(crate) fn is_event_shape(keys: &[ErlNifTerm]) -> bool {
    shape_of(keys) == Some(SHAPE_EVENT)
}

/// Known shape number of `%ElixirScope.Foundation.Types.Event{}`.
pub(crate) const SHAPE_EVENT: u8 = 0;
/// Known shape number of `%DateTime{}`.
pub(crate) const SHAPE_DATE_TIME: u8 = 1;

/// The known shape whose keys are exactly `keys` (atoms compare by word).
fn shape_of(keys: &[ErlNifTerm]) -> Option<u8> {
    let same = |shape: &[Atom]| {
        shape.len() == keys.len() && shape.iter().zip(keys).all(|(a, k)| a.as_c_arg() == *k)
    };
    match keys.len() {
        10 if same(&event_keys()) => Some(SHAPE_EVENT),
        13 if same(&date_time_keys()) => Some(SHAPE_DATE_TIME),
        _ => None,
    }
}

/// An immediate term read from its word (erts `erl_term.h` tags, stable
/// across releases): an atom or a local pid (its word, as `raw`), or a small
/// integer (its value). Reading the tags saves an `enif_term_type` call and
/// a decode per term; anything else (including ports, `[]` and boxed terms)
/// is `None` and goes through the enif calls.
pub(crate) enum Immediate {
    Atom(u64),
    Small(i64),
    Pid(u64),
}

pub(crate) fn immediate(term: Term) -> Option<Immediate> {
    const PID: u64 = 0x3; // primary IMMED1 with subtag PID
    const SMALL: u64 = 0xF; // primary IMMED1 with subtag SMALL
    const ATOM: u64 = 0x0B; // IMMED1 IMMED2 with subtag ATOM
    let w = raw(term);
    match w & 0xF {
        SMALL => Some(Immediate::Small((w as i64) >> 4)),
        PID => Some(Immediate::Pid(w)),
        _ if w & 0x3F == ATOM => Some(Immediate::Atom(w)),
        _ => None,
    }
}

/// The term word of an immediate (atom or local pid).
fn raw(term: Term) -> u64 {
    // SAFETY: ErlNifTerm is #[repr(transparent)] over usize; transmute checks the sizes.
    unsafe { std::mem::transmute::<ErlNifTerm, usize>(term.as_c_arg()) as u64 }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

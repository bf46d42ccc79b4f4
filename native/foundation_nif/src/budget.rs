//! Size-based scheduling: how much term work a NIF may do on a normal
//! scheduler before it must hand the call to its `DirtyCpu` twin.
//!
//! The cost of encoding or decoding event data grows with its size, so
//! `NORMAL_BYTES` keeps a normal-scheduler call under the ~1 ms a NIF may
//! hold a scheduler, while the small, common calls (an event of a few
//! hundred bytes, a counter bump) never pay the dirty hop, which costs
//! several times their own work (figures in docs/benchmarks.md; design in
//! docs/architecture.md, "Scheduler safety").
//!
//! A normal NIF that would exceed the budget does nothing and answers
//! `:dirty` (`Routed::Dirty`); the Elixir wrapper then calls the dirty twin,
//! which runs the same inner function without a budget. Sizes come from the
//! stored payload lengths (reads) or from `measure`, a walk of the input
//! term that stops as soon as the budget is spent (writes), so declining
//! costs at most the budget's worth of walking.

use crate::atoms;
use crate::store_term::{immediate, Immediate};
use crate::walk::{walk, Cost};
use foundation_core::CoreError;
use rustler::sys::{c_int, c_uint, enif_get_atom_length, ErlNifCharEncoding};
use rustler::{Binary, Encoder, Env, NifResult, Term, TermType};
use std::time::{Duration, Instant};

/// Bytes of event data (stored payload bytes, or `measure`d input) one
/// normal-scheduler NIF call may encode or decode.
pub const NORMAL_BYTES: usize = 64 * 1024;

/// The scheduling constants Elixir code shares with the NIFs, so each has
/// one definition: `%{normal_bytes: NORMAL_BYTES}` (the Elixir side decodes
/// event binaries up to that size with the BIF, bigger ones on a dirty
/// scheduler), and `small_map_layout`: whether small maps are read from
/// their heap words on this VM (see `flatmap`).
#[rustler::nif]
fn native_constants(env: Env) -> NifResult<Term> {
    Term::map_from_pairs(
        env,
        &[
            (atoms::normal_bytes().encode(env), NORMAL_BYTES.encode(env)),
            (
                atoms::small_map_layout().encode(env),
                crate::flatmap::enabled().encode(env),
            ),
        ],
    )
}

/// Normal calls below this size are not timed (see `Sched::run`).
const TIMED_BYTES: usize = 4 * 1024;

/// Every term counts at least one word: the walk and the codecs spend
/// their time per term, not per byte, on small terms.
const WORD: usize = 8;

/// The result of a normal-scheduler NIF: done, or `:dirty` (nothing was
/// done; call the `*_dirty` twin).
pub enum Routed<T> {
    Done(T),
    Dirty,
    /// A write whose input would fail validation (or whose data size is
    /// too close to the limit to tell cheaply): nothing was done; the
    /// caller validates exactly, then uses the `*_dirty` twin.
    Invalid,
}

impl<T> Routed<T> {
    /// Maps the `Done` value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Routed<U> {
        match self {
            Routed::Done(value) => Routed::Done(f(value)),
            Routed::Dirty => Routed::Dirty,
            Routed::Invalid => Routed::Invalid,
        }
    }
}

impl<T: Encoder> Encoder for Routed<T> {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Routed::Done(value) => value.encode(env),
            Routed::Dirty => atoms::dirty().encode(env),
            Routed::Invalid => atoms::invalid().encode(env),
        }
    }
}

/// Where a NIF runs: a `Normal` call is bounded by `NORMAL_BYTES`, its
/// `Dirty` twin is not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sched {
    Normal,
    Dirty,
}

impl Sched {
    /// Runs `f` and returns `Done`, except on a normal scheduler when `size`
    /// (the bytes `f` would encode or decode; not computed on a dirty one)
    /// is `None` (over the budget): then returns `Dirty` without running it.
    /// A normal call of at least `TIMED_BYTES` charges the time it took to
    /// the process's timeslice; smaller ones are so short that the two
    /// clock reads would be a noticeable share of them, and their callers'
    /// own reductions preempt a loop of them.
    pub fn run<T>(
        self,
        env: Env,
        size: impl FnOnce() -> Option<usize>,
        f: impl FnOnce() -> NifResult<T>,
    ) -> NifResult<Routed<T>> {
        if self == Sched::Dirty {
            return f().map(Routed::Done);
        }
        match size() {
            Some(bytes) if bytes < TIMED_BYTES => f().map(Routed::Done),
            Some(_) => {
                let started = Instant::now();
                let out = f()?;
                consume(env, started.elapsed());
                Ok(Routed::Done(out))
            }
            // The dirty twin runs next, off this scheduler.
            None => Ok(Routed::Dirty),
        }
    }
}

/// Charges a normal-scheduler call that did `bytes` of work by their
/// count, with no clock read: the whole `NORMAL_BYTES` budget counts as a
/// whole timeslice (such a call is kept under ~1 ms), less in proportion
/// (calls below `TIMED_BYTES` are not charged, as in `charge`). For
/// single-event writes, where two clock reads would be a noticeable share
/// of the call.
pub fn charge_bytes(env: Env, bytes: usize) {
    if bytes >= TIMED_BYTES {
        let percent = (bytes.saturating_mul(100) / NORMAL_BYTES).clamp(1, 100);
        let _ = rustler::schedule::consume_timeslice(env, percent as c_int);
    }
}

/// Charges a normal-scheduler call that did `bytes` of work, started at
/// `started`, to the process's timeslice, as `Sched::run` does (calls
/// below `TIMED_BYTES` are not charged).
pub fn charge(env: Env, started: Instant, bytes: usize) {
    if bytes >= TIMED_BYTES {
        consume(env, started.elapsed());
    }
}

/// Charges a normal-scheduler call's whole running time since `started`
/// to the process's timeslice, whatever its size: for calls whose cost is
/// not in the bytes they return (a query slice that only skips matches
/// for an offset returns none).
pub fn charge_time(env: Env, started: Instant) {
    consume(env, started.elapsed());
}

/// The error a budgeted closure returns to make the core give up (see
/// `metrics`); `routed` turns it into `Routed::Dirty`.
pub fn over_budget() -> CoreError {
    CoreError::OverBudget(NORMAL_BYTES)
}

/// `Dirty` for `CoreError::OverBudget`, the outcome otherwise.
pub fn routed<T, E: From<CoreError>>(result: Result<T, CoreError>) -> Routed<Result<T, E>> {
    match result {
        Err(CoreError::OverBudget(_)) => Routed::Dirty,
        other => Routed::Done(other.map_err(E::from)),
    }
}

/// Total bytes of stored payloads, or `None` when above `NORMAL_BYTES`.
pub fn stored_size<B: AsRef<[u8]>>(payloads: &[B]) -> Option<usize> {
    let total = payloads
        .iter()
        .fold(0usize, |acc, p| acc.saturating_add(p.as_ref().len()));
    (total <= NORMAL_BYTES).then_some(total)
}

/// The approximate encoded size of `term` (binaries by length, any other
/// term one word), or `None` as soon as it exceeds `budget` or holds
/// something whose size cannot be bounded cheaply (a fun's environment, a
/// bignum beyond 128 bits, a bitstring). Walks at most `budget / 8` terms,
/// with an explicit stack (no recursion on deep nesting).
pub fn measure(term: Term, budget: usize) -> Option<usize> {
    measure_with(term, budget, Atoms::Word)
}

/// How `measure_with` counts an atom: one word (the store keeps atoms as VM
/// words), or spelled out, as the external term format writes them (the
/// serialization BIF: ~1 000 distinct 255-character atoms are ~250 KB).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Atoms {
    Word,
    Spelled,
}

/// One walk of an event's `data` for a normal-scheduler write: its
/// `measure` (as `Atoms::Word` counts it) and an upper bound of its
/// `:erlang.external_size/1`, or `None` as soon as the first exceeds
/// `budget`, the second exceeds `etf_limit`, or the term holds something
/// not bounded cheaply (a fun, a bitstring, a bignum beyond 128 bits).
/// For the bound, each term counts the most its external form can take: a
/// binary its length plus a 6-byte header, an integer 11 bytes (19 beyond
/// 64 bits), a float 31, an atom twice its spelled size (UTF-8 doubles a
/// Latin-1 character at most), a pid, port or reference `REMOTE_ID_BOUND`
/// (its node atom may be long), and every list cell, tuple and map a
/// 5-byte header.
pub fn measure_data(term: Term, budget: usize, etf_limit: usize) -> Option<(usize, usize)> {
    // The thread's table of spelled sizes, found once for the walk.
    SPELLED.with(|spelled| {
        let mut model = DataBound {
            etf: 1,
            limit: etf_limit,
            spelled,
        };
        let bytes = walk(term, budget, &mut model)?;
        Some((bytes, model.etf))
    })
}

/// `measure_data`'s model: `Bytes` with `Atoms::Word`, plus the external
/// size bound accumulated in `etf` (at most `limit`).
struct DataBound<'t> {
    etf: usize,
    limit: usize,
    /// Where spelled atom sizes are kept (see `spelled_in`).
    spelled: &'t SpelledTable,
}

impl DataBound<'_> {
    fn add(&mut self, bound: usize) -> Option<()> {
        self.etf = self.etf.checked_add(bound).filter(|&e| e <= self.limit)?;
        Some(())
    }
}

impl Cost for DataBound<'_> {
    fn leaf(&mut self, t: Term) -> Option<usize> {
        let (cost, bound) = match immediate(t) {
            Some(Immediate::Small(_)) => (WORD, 11),
            Some(Immediate::Pid(_)) => (4 * WORD, REMOTE_ID_BOUND),
            Some(Immediate::Atom(_)) => (WORD, 2 * spelled_in(self.spelled, t)),
            None => match t.get_type() {
                TermType::Binary => {
                    let len = t.decode::<Binary>().ok()?.len();
                    (len.saturating_add(WORD), len.saturating_add(6))
                }
                TermType::Integer => {
                    let words = integer(t)?;
                    (words, words + 3)
                }
                TermType::Float => (WORD, 31),
                TermType::Atom => (WORD, 2 * spelled_in(self.spelled, t)),
                TermType::Pid | TermType::Port | TermType::Ref => (4 * WORD, REMOTE_ID_BOUND),
                TermType::List => (WORD, 5),
                _ => return None,
            },
        };
        self.add(bound)?;
        Some(cost)
    }

    fn cell(&mut self) -> usize {
        // Bounds never fail here by themselves for long: the next leaf
        // checks the limit.
        self.etf = self.etf.saturating_add(5);
        WORD
    }

    fn tuple(&mut self, arity: usize, left: usize) -> Option<usize> {
        self.add(5)?;
        let mut words = Bytes::WORDS;
        words.tuple(arity, left)
    }

    fn map(&mut self, size: usize, left: usize) -> Option<usize> {
        self.add(5)?;
        let mut words = Bytes::WORDS;
        words.map(size, left)
    }
}

/// The largest external form of a pid, port or reference: a tag, a node
/// atom of up to 255 four-byte characters, and up to five 32-bit words.
const REMOTE_ID_BOUND: usize = 1 + 3 + 255 * 4 + 4 + 5 * 4;

/// `measure`, with atoms counted as `atoms` says.
pub fn measure_with(term: Term, budget: usize, atoms: Atoms) -> Option<usize> {
    match atoms {
        Atoms::Word => {
            let mut words = Bytes::WORDS;
            walk(term, budget, &mut words)
        }
        // The thread's table of spelled sizes, found once for the walk.
        Atoms::Spelled => SPELLED.with(|table| {
            let mut bytes = Bytes {
                spelled: Some(table),
            };
            walk(term, budget, &mut bytes)
        }),
    }
}

/// `measure`'s model: binaries by length, integers by words, pids, ports
/// and references four words, atoms a word or spelled out (from the
/// thread's table of spelled sizes, when there is one), anything else one
/// word; funs, bitstrings and bignums beyond 128 bits give up.
#[derive(Clone, Copy)]
struct Bytes<'t> {
    /// Where spelled atom sizes are kept (see `spelled_in`); `None`:
    /// atoms count a word.
    spelled: Option<&'t SpelledTable>,
}

impl Bytes<'static> {
    const WORDS: Bytes<'static> = Bytes { spelled: None };
}

impl Bytes<'_> {
    fn atom(&self, t: Term) -> usize {
        self.spelled.map_or(WORD, |table| spelled_in(table, t))
    }
}

impl Cost for Bytes<'_> {
    fn leaf(&mut self, t: Term) -> Option<usize> {
        match immediate(t) {
            Some(Immediate::Small(_)) => Some(WORD),
            Some(Immediate::Pid(_)) => Some(4 * WORD),
            Some(Immediate::Atom(_)) => Some(self.atom(t)),
            _ => match t.get_type() {
                TermType::Binary => Some(t.decode::<Binary>().ok()?.len().saturating_add(WORD)),
                TermType::Integer => integer(t),
                TermType::Atom => Some(self.atom(t)),
                TermType::Float | TermType::List => Some(WORD),
                TermType::Pid | TermType::Port | TermType::Ref => Some(4 * WORD),
                _ => None,
            },
        }
    }

    fn cell(&mut self) -> usize {
        WORD
    }

    /// Gives up when the elements alone would exceed what is left.
    fn tuple(&mut self, arity: usize, left: usize) -> Option<usize> {
        (arity.saturating_mul(WORD) <= left).then_some(WORD)
    }

    fn map(&mut self, size: usize, left: usize) -> Option<usize> {
        (size.saturating_mul(2 * WORD) <= left).then_some(WORD)
    }
}

/// The external-format bytes of atom `t`: its Latin-1 length plus a
/// 3-byte header; an atom beyond Latin-1 counts as the longest UTF-8
/// spelling (255 characters of 4 bytes). Answers are kept per thread by
/// the atom's word (an atom's word never changes: atoms are never
/// collected), in a direct-mapped table, so an event's keys cost one
/// table read each after their first sight instead of a VM call (a walk
/// finds the thread's `table` once).
fn spelled_in(table: &SpelledTable, t: Term) -> usize {
    let word = crate::metrics::term_word(t) as usize;
    let slot = &table[(word >> 6) % SPELLED_SLOTS];
    match slot.get() {
        (seen, bytes) if seen == word => bytes,
        _ => {
            let bytes = spelled_atom_now(t);
            slot.set((word, bytes));
            bytes
        }
    }
}

/// Slots of the per-thread table of atoms' spelled sizes.
const SPELLED_SLOTS: usize = 1024;

/// (atom word, spelled size) by slot; a word of 0 is no atom.
type SpelledTable = [std::cell::Cell<(usize, usize)>; SPELLED_SLOTS];

thread_local! {
    static SPELLED: SpelledTable = const { [const { std::cell::Cell::new((0, 0)) }; SPELLED_SLOTS] };
}

fn spelled_atom_now(t: Term) -> usize {
    let mut len: c_uint = 0;
    let env = t.get_env();
    // SAFETY: `t` is a live atom term of `env`; the call only reads it.
    let latin1 = unsafe {
        enif_get_atom_length(
            env.as_c_arg(),
            t.as_c_arg(),
            &mut len,
            ErlNifCharEncoding::ERL_NIF_LATIN1,
        )
    };
    let bytes = if latin1 != 0 { len as usize } else { 255 * 4 };
    (bytes + 3).max(WORD)
}

/// Tells the VM how long a normal NIF ran, so a process calling such NIFs
/// in a loop is preempted (a NIF call costs almost no reductions
/// otherwise). The erl_nif docs call a timeslice ~1 ms; we count 0.5 ms as
/// a whole one (5 µs per percent), so other processes wait less behind a
/// long `store_batch` loop (docs/architecture.md, "Scheduler safety").
/// Time, not bytes: a small event's cost is dominated by its fixed
/// per-event overhead and a big one's by its size, so a byte count would
/// badly underrate batches of small events.
fn consume(env: Env, elapsed: Duration) {
    let percent = elapsed.as_micros().div_ceil(5).clamp(1, 100);
    // The answer (timeslice exhausted) needs no action: we return next.
    let _ = rustler::schedule::consume_timeslice(env, percent as c_int);
}

/// Two words up to 128 bits (compared as terms: decoding a bignum would
/// encode it whole); `None` beyond.
pub(crate) fn integer(t: Term) -> Option<usize> {
    if t.decode::<i64>().is_ok() {
        return Some(WORD);
    }
    let env = t.get_env();
    (t >= i128::MIN.encode(env) && t <= i128::MAX.encode(env)).then_some(2 * WORD)
}

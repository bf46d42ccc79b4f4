//! The counter hot path, `Native.metrics_add_cached/3`: a repeated integer
//! increment of a name this scheduler thread counted before, served from the
//! store's per-thread cache keyed by the atoms' term words (see `metrics`).

use crate::atoms;
use crate::clock;
use crate::metrics::{term_word, NIL_WORD};
use crate::metrics_handle;
use foundation_core::metrics::{Measure, Recorded, MAX_CACHED_SEGMENTS};
use rustler::sys::{c_int, ErlNifEnv, ErlNifTerm};
use rustler::{Atom, Encoder, Env, Term};
use std::sync::atomic::Ordering;

/// The common counter call, a repeated integer increment of a name this
/// scheduler thread counted before (in its cache, see `Metrics::try_add_cached`):
/// `:ok`, `:handler` (a handler is attached to the name), or `:miss`, having
/// done nothing (another value, a name not cached, a counter that is no
/// longer an atomic integer, a handle that is not one or has no live owner): call
/// `metrics_emit_counter_now/4`. No metadata argument: a cached name has its
/// metadata already. Never raises.
///
/// Registered by hand rather than with `#[rustler::nif]`, whose wrapper
/// collects the arguments into a `Vec` (an allocation per call) and goes
/// through a panic guard and result conversion; nothing here can panic.
fn add_cached(handle: Term, name: Term, value: Term) -> Atom {
    match value.decode::<i64>() {
        Ok(delta) => add_cached_int(handle, name, delta),
        Err(_) => atoms::miss(),
    }
}

/// `add_cached` of an integer already decoded; also the counter half of
/// the writes that count themselves (`store_put_counted/4`) and of
/// `metrics_add_cached_pair/3`.
pub(crate) fn add_cached_int(handle: Term, name: Term, delta: i64) -> Atom {
    let Ok(m) = metrics_handle::get_owned(handle) else {
        return atoms::miss();
    };
    let Some((ids, len)) = cached_ids(name) else {
        return atoms::miss();
    };
    let (Some(ids), Some(now)) = (ids.get(..len), clock::metric_now()) else {
        return atoms::miss();
    };
    match m.try_add_cached(ids, &Measure::Int(delta), now) {
        Ok(Some(Recorded { handler: true, .. })) => atoms::handler(),
        Ok(Some(_)) => atoms::ok(),
        Ok(None) | Err(_) => atoms::miss(),
    }
}

/// `Native.metrics_add_cached_pair/3`: two names counted once each (value
/// 1) in one call, as two `metrics_add_cached/3` calls would: `:ok` when
/// both were recorded with no handler to run, else `{outcome_a,
/// outcome_b}` (each `:ok`, `:handler` or `:miss`) for the caller to
/// finish. Never raises.
#[rustler::nif]
fn metrics_add_cached_pair<'a>(
    env: Env<'a>,
    handle: Term<'a>,
    a: Term<'a>,
    b: Term<'a>,
) -> Term<'a> {
    let (a, b) = (add_cached_int(handle, a, 1), add_cached_int(handle, b, 1));
    if a == atoms::ok() && b == atoms::ok() {
        a.encode(env)
    } else {
        (a, b).encode(env)
    }
}

/// `Native.metrics_add_cached/3`: see `add_cached`.
unsafe extern "C" fn add_cached_nif(
    env: *mut ErlNifEnv,
    argc: c_int,
    argv: *const ErlNifTerm,
) -> ErlNifTerm {
    let lifetime = ();
    // SAFETY: the VM passes the caller's env and `argc` terms at `argv`,
    // valid for this call; the function is registered with arity 3.
    unsafe {
        let env = Env::new(&lifetime, env);
        let args = std::slice::from_raw_parts(argv, usize::try_from(argc).unwrap_or(0));
        match args {
            [handle, name, value] => add_cached(
                Term::new(env, *handle),
                Term::new(env, *name),
                Term::new(env, *value),
            )
            .as_c_arg(),
            _ => atoms::miss().as_c_arg(),
        }
    }
}

rustler::codegen_runtime::inventory::submit!(rustler::Nif {
    name: c"metrics_add_cached".as_ptr(),
    arity: 3,
    flags: 0,
    raw_func: add_cached_nif,
});

/// `segment_ids` for the cached path, with one NIF API call per segment:
/// the items' words are not checked to be atoms, since only names that
/// decoded as lists of atoms are ever cached (an atom's word never equals
/// another term's word), so any other name simply misses. `None` (a miss)
/// for a longer name, an improper list or a non-list.
fn cached_ids(term: Term) -> Option<([u64; MAX_CACHED_SEGMENTS], usize)> {
    let nil = NIL_WORD.load(Ordering::Relaxed);
    let mut ids = [0u64; MAX_CACHED_SEGMENTS];
    let mut len = 0;
    let mut rest = term;
    while term_word(rest) != nil {
        let (head, tail) = rest.list_get_cell().ok()?;
        *ids.get_mut(len)? = term_word(head);
        len += 1;
        rest = tail;
    }
    Some((ids, len))
}

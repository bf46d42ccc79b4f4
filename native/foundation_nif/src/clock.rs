//! The VM's monotonic clock in native time units, read from a NIF so hot
//! paths need not pass `System.monotonic_time/0` in. The NIF API only knows
//! s/ms/µs/ns, so the loader tells us the native unit (units per second).

use rustler::sys::{enif_monotonic_time, ErlNifTimeUnit, ERL_NIF_TIME_ERROR};
use rustler::Term;
use std::sync::atomic::{AtomicI64, Ordering};

/// Native units per second; nanoseconds (Linux) until the loader says.
static NATIVE_PER_SEC: AtomicI64 = AtomicI64::new(1_000_000_000);

/// Takes the native unit from the library's load info (a positive integer,
/// `System.convert_time_unit(1, :second, :native)`); keeps the default
/// otherwise.
pub fn set_native_unit(load_info: Term) {
    if let Ok(per_sec) = load_info.decode::<i64>() {
        if per_sec > 0 {
            NATIVE_PER_SEC.store(per_sec, Ordering::Relaxed);
        }
    }
}

/// `erlang:monotonic_time()` (native units); `None` off a scheduler thread.
pub fn monotonic_native() -> Option<i64> {
    let per_sec = NATIVE_PER_SEC.load(Ordering::Relaxed);
    let unit = match per_sec {
        1 => ErlNifTimeUnit::ERL_NIF_SEC,
        1_000 => ErlNifTimeUnit::ERL_NIF_MSEC,
        1_000_000 => ErlNifTimeUnit::ERL_NIF_USEC,
        _ => ErlNifTimeUnit::ERL_NIF_NSEC,
    };
    // SAFETY: enif_monotonic_time takes a plain enum and only requires a scheduler thread (it returns ERL_NIF_TIME_ERROR otherwise).
    let t = unsafe { enif_monotonic_time(unit) };
    if t == ERL_NIF_TIME_ERROR {
        return None;
    }
    match per_sec {
        1 | 1_000 | 1_000_000 | 1_000_000_000 => Some(t),
        // ERTS converts with floor division; do the same from nanoseconds.
        _ => i64::try_from((t as i128 * per_sec as i128).div_euclid(1_000_000_000)).ok(),
    }
}

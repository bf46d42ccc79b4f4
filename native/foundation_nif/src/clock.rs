//! The VM's monotonic clock in native time units, read from a NIF so hot
//! paths need not pass `System.monotonic_time/0` in. The NIF API only knows
//! s/ms/µs/ns, so the loader tells us the native unit (units per second).
//!
//! Metric timestamps (`metric_now`) read the VM clock at most once per
//! `WINDOW_NS` per scheduler thread: in between they extend the thread's
//! last reading by the CPU's time-stamp counter (x86-64 with an invariant
//! counter; elsewhere every call reads the VM clock). Such a timestamp is
//! never later than the VM clock at the same instant and at most a fraction
//! of a microsecond earlier (see `foundation_core::metrics::clock`).

use foundation_core::metrics::clock::Interpolator;
use rustler::sys::{enif_monotonic_time, ErlNifTimeUnit, ERL_NIF_TIME_ERROR};
use rustler::Term;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

/// How long one VM clock reading serves a thread's metric timestamps.
const WINDOW_NS: i64 = 2_000;

/// Time-stamp counter baseline before the rate is first calibrated.
const BASELINE_NS: i64 = 10_000_000;

/// A VM clock reading that took more ticks than this anchors nothing (the
/// thread was likely descheduled in between); a normal one takes a few hundred.
const MAX_SPREAD_TICKS: u64 = 1_024;

/// The interpolator, made at load on an x86-64 CPU with an invariant
/// time-stamp counter; unset elsewhere.
static TSC: OnceLock<Interpolator> = OnceLock::new();

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
    if tsc::invariant() {
        let per_sec = i128::from(NATIVE_PER_SEC.load(Ordering::Relaxed));
        let native = |ns: i64| i64::try_from(i128::from(ns) * per_sec / 1_000_000_000).ok();
        if let (Some(window), Some(baseline)) = (native(WINDOW_NS), native(BASELINE_NS)) {
            if window > 0 {
                let _ = TSC.set(Interpolator::new(window, baseline, MAX_SPREAD_TICKS));
            }
        }
    }
}

/// A metric timestamp: `monotonic_native()`, read through the time-stamp
/// counter when the thread read the VM clock less than `WINDOW_NS` ago (see
/// the module doc). `None` off a scheduler thread.
#[inline]
pub fn metric_now() -> Option<i64> {
    match TSC.get() {
        Some(interpolator) => tsc::now(interpolator),
        None => monotonic_native(),
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

#[cfg(target_arch = "x86_64")]
mod tsc {
    use foundation_core::metrics::clock::{Anchor, Interpolator};
    use std::arch::x86_64::{__cpuid, _rdtsc};
    use std::cell::Cell;

    thread_local! {
        /// This thread's last VM clock reading and the ticks right after it.
        static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::NONE) };
    }

    /// True when the CPU says its time-stamp counter runs at a constant
    /// rate in every power state (CPUID 0x8000_0007, EDX bit 8).
    pub(super) fn invariant() -> bool {
        // SAFETY: CPUID exists on every x86-64 CPU; the extended leaf is
        // read only when the CPU reports it.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
        }
    }

    #[inline]
    fn ticks() -> u64 {
        // SAFETY: RDTSC exists on every x86-64 CPU and only reads a counter.
        #[allow(unused_unsafe)]
        unsafe {
            _rdtsc()
        }
    }

    #[inline]
    pub(super) fn now(interpolator: &Interpolator) -> Option<i64> {
        let anchor = ANCHOR.try_with(Cell::get).unwrap_or(Anchor::NONE);
        if let Some(time) = interpolator.estimate(anchor, ticks()) {
            return Some(time);
        }
        let before = ticks();
        let time = super::monotonic_native()?;
        if let Some(anchor) = interpolator.anchor(before, time, ticks()) {
            let _ = ANCHOR.try_with(|cell| cell.set(anchor));
        }
        Some(time)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    use foundation_core::metrics::clock::Interpolator;

    pub(super) fn invariant() -> bool {
        false
    }

    pub(super) fn now(_interpolator: &Interpolator) -> Option<i64> {
        super::monotonic_native()
    }
}

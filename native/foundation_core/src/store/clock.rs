//! The store's clock for retention by age.

/// Milliseconds of the system's coarse monotonic clock. On Linux this is
/// `CLOCK_MONOTONIC_COARSE`: the vDSO answers from the last timer tick
/// without reading the clock source, so it costs a few nanoseconds, and it
/// is a few milliseconds coarse, which ages counted in seconds do not
/// notice. Every write reads it once. Elsewhere, the standard monotonic
/// clock.
#[cfg(target_os = "linux")]
pub(crate) fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` passed, which we own.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0;
    match ok {
        true => (ts.tv_sec as u64).saturating_mul(1000) + ts.tv_nsec as u64 / 1_000_000,
        false => fallback_ms(),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn coarse_ms() -> u64 {
    fallback_ms()
}

/// Milliseconds of `Instant` since the first call.
fn fallback_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_coarse_clock_moves_forward_in_milliseconds() {
        let a = super::coarse_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = super::coarse_ms();
        assert!(b >= a + 20 && b < a + 2_000, "{a} then {b}");
    }
}

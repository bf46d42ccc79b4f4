//! A cheap reading of a slow reference clock (the VM's monotonic clock) from a
//! fast tick counter (the CPU's time-stamp counter), for metric timestamps.
//!
//! A caller keeps, per thread, an `Anchor`: one reference reading and the
//! tick count taken right after it. While fewer than `window` ticks have
//! passed since, `estimate` extends the reading by the elapsed ticks times
//! a calibrated rate; past the window (or when ticks went backwards, e.g.
//! another core's counter) the caller reads the reference clock again and
//! passes the sample to `anchor`, which also refines the rate.
//!
//! The estimate never runs ahead of the reference clock: the anchor's tick
//! count is taken after the reference reading, and the rate is scaled down
//! by `RATE_MARGIN`, more than the reference may be slewed (the VM corrects
//! its monotonic clock's frequency by at most 1%) plus the calibration
//! error. It lags the reference by at most the time the anchor's reading
//! took (`max_spread` ticks at most) plus `RATE_MARGIN` of the window.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Fraction of the measured rate not used (see the module doc), in 1/1024.
const RATE_MARGIN_1024: u128 = 20;

/// One reference reading and the ticks counted right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Ticks when the reading was done.
    pub ticks: u64,
    /// The reference reading.
    pub time: i64,
}

impl Anchor {
    /// No anchor yet: every estimate from it misses.
    pub const NONE: Anchor = Anchor {
        ticks: 0,
        time: i64::MIN,
    };
}

/// Calibration shared by all threads.
#[derive(Debug)]
pub struct Interpolator {
    /// Reference units per tick, 32.32 fixed point, scaled down by the
    /// margin; 0 until calibrated (every estimate then misses).
    rate: AtomicU64,
    /// Ticks an anchor serves; 0 until calibrated.
    window: AtomicU64,
    /// The first good sample: the baseline of the calibration.
    base: OnceLock<Anchor>,
    /// Reference time since `base` at the last calibration (0: none yet).
    calibrated_span: AtomicI64,
    /// Longest reference reading kept as an anchor, in ticks.
    max_spread: u64,
    /// Reference units an anchor serves.
    window_time: i64,
    /// Reference units of baseline before the first calibration.
    min_baseline: i64,
}

impl Interpolator {
    /// An uncalibrated interpolator: anchors serve `window_time` reference
    /// units; calibration starts once `min_baseline` units passed since the
    /// first good sample; a reading that took more than `max_spread` ticks
    /// is used once but never kept.
    pub const fn new(window_time: i64, min_baseline: i64, max_spread: u64) -> Self {
        Interpolator {
            rate: AtomicU64::new(0),
            window: AtomicU64::new(0),
            base: OnceLock::new(),
            calibrated_span: AtomicI64::new(0),
            max_spread,
            window_time,
            min_baseline,
        }
    }

    /// The reference time at `ticks`, extended from `anchor`; `None` when
    /// the anchor does not serve (too old, ticks went back, not calibrated).
    #[inline]
    pub fn estimate(&self, anchor: Anchor, ticks: u64) -> Option<i64> {
        let elapsed = ticks.wrapping_sub(anchor.ticks);
        if elapsed >= self.window.load(Ordering::Relaxed) {
            return None;
        }
        let rate = self.rate.load(Ordering::Relaxed);
        // elapsed < window fits a u64 product with a 32.32 rate of a few
        // units per tick; u128 keeps any rate exact.
        let extra = (u128::from(elapsed) * u128::from(rate)) >> 32;
        anchor.time.checked_add(i64::try_from(extra).ok()?)
    }

    /// Takes a reference reading `time` made between tick counts `before`
    /// and `after`: the anchor to keep, or `None` when the reading took too
    /// long to anchor anything (the caller still uses `time` as is).
    pub fn anchor(&self, before: u64, time: i64, after: u64) -> Option<Anchor> {
        let spread = after.wrapping_sub(before);
        if spread > self.max_spread {
            return None;
        }
        let anchor = Anchor { ticks: after, time };
        let base = *self.base.get_or_init(|| anchor);
        self.calibrate(base, anchor);
        Some(anchor)
    }

    /// Refines the rate from the baseline to `now` each time the baseline
    /// doubled since the last calibration (a division on a few reanchors).
    fn calibrate(&self, base: Anchor, now: Anchor) {
        let span = now.time.saturating_sub(base.time);
        let done = self.calibrated_span.load(Ordering::Relaxed);
        if span < self.min_baseline || span < done.saturating_mul(2) {
            return;
        }
        let ticks = now.ticks.wrapping_sub(base.ticks);
        if ticks == 0 || ticks > u64::MAX / 2 {
            return;
        }
        let Ok(span_u) = u128::try_from(span) else {
            return;
        };
        let full = (span_u << 32) / u128::from(ticks);
        let rate = full * (1024 - RATE_MARGIN_1024) / 1024;
        let window = u128::try_from(self.window_time).unwrap_or(0) * u128::from(ticks) / span_u;
        let (Ok(rate), Ok(window)) = (u64::try_from(rate), u64::try_from(window)) else {
            return;
        };
        if rate == 0 {
            return;
        }
        self.rate.store(rate, Ordering::Relaxed);
        self.window.store(window, Ordering::Relaxed);
        self.calibrated_span.store(span, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 ticks per reference unit.
    fn sample(i: &Interpolator, time: i64) -> Option<Anchor> {
        let ticks = (time as u64) * 3 + 1_000;
        i.anchor(ticks - 10, time, ticks)
    }

    #[test]
    fn misses_until_calibrated_then_extends_the_anchor() {
        let i = Interpolator::new(1_000, 10_000, 100);
        let a = sample(&i, 0).unwrap();
        assert_eq!(i.estimate(a, a.ticks + 3), None);
        let b = sample(&i, 10_000).unwrap();
        // 300 ticks = 100 units, less the margin; never ahead.
        let t = i.estimate(b, b.ticks + 300).unwrap();
        assert!((10_097..=10_100).contains(&t), "{t}");
        assert_eq!(i.estimate(b, b.ticks), Some(10_000));
        // The window is 1 000 units = 3 000 ticks.
        assert!(i.estimate(b, b.ticks + 2_999).is_some());
        assert_eq!(i.estimate(b, b.ticks + 3_000), None);
        // Ticks that went back miss.
        assert_eq!(i.estimate(b, b.ticks - 1), None);
        assert_eq!(i.estimate(Anchor::NONE, b.ticks), None);
    }

    #[test]
    fn slow_readings_are_not_anchored() {
        let i = Interpolator::new(1_000, 10_000, 100);
        assert_eq!(i.anchor(0, 5, 101), None);
        assert!(i.anchor(0, 5, 100).is_some());
    }

    #[test]
    fn never_ahead_of_a_reference_slewed_by_one_percent() {
        let i = Interpolator::new(1_000, 10_000, 100);
        sample(&i, 0).unwrap();
        sample(&i, 100_000).unwrap();
        // The reference now runs 1% slow: 3.03 ticks per unit.
        let a = Anchor {
            ticks: 1_000_000,
            time: 200_000,
        };
        for units in [1, 10, 100, 900, 990] {
            let ticks = a.ticks + units * 303 / 100;
            let t = i.estimate(a, ticks).unwrap();
            assert!(t <= a.time + units as i64, "{units}: {t}");
            assert!(t >= a.time + units as i64 * 96 / 100, "{units}: {t}");
        }
    }

    #[test]
    fn recalibrates_when_the_baseline_doubles() {
        let i = Interpolator::new(1_000, 10_000, 100);
        sample(&i, 0).unwrap();
        sample(&i, 10_000).unwrap();
        assert_eq!(i.calibrated_span.load(Ordering::Relaxed), 10_000);
        sample(&i, 15_000).unwrap();
        assert_eq!(i.calibrated_span.load(Ordering::Relaxed), 10_000);
        sample(&i, 20_000).unwrap();
        assert_eq!(i.calibrated_span.load(Ordering::Relaxed), 20_000);
    }
}

//! Pacing: a rate as a fixed schedule of ticks. Operation k of a phase at rate r is due at
//! k / r seconds from the phase's start; a tick sends every operation due within it. The counts
//! are computed from the start each time, never accumulated, so fractions carry from tick to
//! tick, the rate is met exactly on average for any value, and a late tick on a real clock does
//! not shift the ones after it.

/// A rate of operations per second, as a schedule of ticks of `tick_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Schedule {
    /// Operations per 1000 seconds: a scaled rate keeps three decimals exactly.
    per_kilosecond: u128,
    tick_ms: u64,
}

impl Schedule {
    /// `rate` per second (already scaled), ticking every `tick_ms`. `None` for a rate of zero
    /// (flat out); a rate above zero is at least one per 1000 s.
    pub(super) fn new(rate: f64, tick_ms: u64) -> Option<Schedule> {
        (rate > 0.0 && rate.is_finite() && tick_ms > 0).then(|| Schedule {
            per_kilosecond: ((rate * 1000.0).round() as u128).max(1),
            tick_ms,
        })
    }

    pub(super) fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// Operations due by the end of tick `ticks - 1`: those with k / r < ticks × tick.
    pub(super) fn due_by(&self, ticks: u64) -> u64 {
        let ms = u128::from(ticks) * u128::from(self.tick_ms);
        // k is due when k × 1000 s / per_kilosecond < ms / 1000 s, i.e. k × 10^6 < ms × pk.
        (ms * self.per_kilosecond).div_ceil(1_000_000) as u64
    }

    /// Ticks until `count` operations have been due.
    pub(super) fn ticks_for(&self, count: u64) -> u64 {
        if count == 0 {
            return 0;
        }
        // The tick holding operation count - 1, which is due at (count - 1) / r seconds.
        let due_ms = (u128::from(count - 1) * 1_000_000) / self.per_kilosecond;
        due_ms as u64 / self.tick_ms + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Schedule {
        /// Operations due in tick `i` (from 0).
        fn in_tick(&self, i: u64) -> u64 {
            self.due_by(i + 1) - self.due_by(i)
        }
    }

    /// What each of the first `ticks` ticks sends.
    fn ticks(rate: f64, tick_ms: u64, ticks: u64) -> Vec<u64> {
        let s = Schedule::new(rate, tick_ms).unwrap();
        (0..ticks).map(|i| s.in_tick(i)).collect()
    }

    #[test]
    fn a_rate_is_met_exactly_for_any_value() {
        // The cases: 5/s for 2 s is 10, not 20; 15/s for 2 s is 30, not 20.
        for (rate, seconds) in [(1.0, 7), (5.0, 2), (15.0, 2), (999.0, 3), (20_000.0, 2)] {
            let s = Schedule::new(rate, 100).unwrap();
            let sent: u64 = (0..seconds * 10).map(|i| s.in_tick(i)).sum();
            assert_eq!(sent, (rate as u64) * seconds, "rate {rate} for {seconds} s");
        }
        // Each tick of 100 ms at 15/s sends 1 or 2, alternating: never a burst.
        assert_eq!(ticks(15.0, 100, 4), [2, 1, 2, 1]);
        assert_eq!(ticks(5.0, 100, 4), [1, 0, 1, 0]);
        assert_eq!(ticks(1.0, 100, 12), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(ticks(20_000.0, 100, 2), [2000, 2000]);
        // A scaled rate keeps its fraction: 0.5/s sends one every other second.
        let s = Schedule::new(0.5, 1000).unwrap();
        assert_eq!(
            (0..6).map(|i| s.in_tick(i)).collect::<Vec<_>>(),
            [1, 0, 1, 0, 1, 0]
        );
        // And any prefix is within one of the ideal.
        let s = Schedule::new(333.333, 100).unwrap();
        for t in 1..1000u64 {
            let ideal = 333.333 * t as f64 / 10.0;
            assert!((s.due_by(t) as f64 - ideal).abs() <= 1.0, "tick {t}");
        }
    }

    #[test]
    fn ticks_for_a_count_cover_it_and_no_more() {
        for rate in [1.0, 5.0, 15.0, 999.0, 20_000.0, 0.3] {
            let s = Schedule::new(rate, 100).unwrap();
            for count in [1u64, 2, 9, 10, 11, 1000, 12345] {
                let t = s.ticks_for(count);
                assert!(s.due_by(t) >= count, "rate {rate} count {count}");
                assert!(s.due_by(t - 1) < count, "rate {rate} count {count}");
            }
            assert_eq!(s.ticks_for(0), 0);
        }
    }

    #[test]
    fn no_rate_is_no_schedule() {
        assert_eq!(Schedule::new(0.0, 100), None);
        assert_eq!(Schedule::new(f64::NAN, 100), None);
        assert_eq!(Schedule::new(5.0, 0), None);
        // A rate above zero stays one, however small the scale made it: one per 1000 s.
        let s = Schedule::new(0.0004, 1000).unwrap();
        assert_eq!((s.due_by(1), s.due_by(1000), s.due_by(1001)), (1, 1, 2));
    }
}

//! The table's time: real (milliseconds since the table started) or virtual (moves only when
//! told). Every table operation reads `now` here and passes it down to the core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug)]
pub enum Clock {
    /// `from` ms at `start`, then real time.
    Real {
        start: Instant,
        from: u64,
    },
    Virtual {
        now: AtomicU64,
    },
}

impl Clock {
    /// The latest time a virtual clock may reach: 2^53 ms, about 285 000 years, far enough for
    /// any scenario, and low enough that a deadline (at most 2^31 ms ahead, see
    /// `tcp::endpoint::MAX_TIMER_MS`) never overflows, nor a time passed as a JSON number.
    pub const MAX_MS: u64 = 1 << 53;

    pub fn real() -> Clock {
        Clock::real_at(0)
    }

    /// A real clock that reads `ms` now: a restored run's time goes on from where it stopped.
    pub fn real_at(ms: u64) -> Clock {
        Clock::Real {
            start: Instant::now(),
            from: ms,
        }
    }

    pub fn virtual_at(ms: u64) -> Clock {
        Clock::Virtual {
            now: AtomicU64::new(ms),
        }
    }

    /// Milliseconds on this clock.
    pub fn now(&self) -> u64 {
        match self {
            Clock::Real { start, from } => from + start.elapsed().as_millis() as u64,
            Clock::Virtual { now } => now.load(Ordering::Acquire),
        }
    }

    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual { .. })
    }

    /// Moves a virtual clock forward to `ms` (never back). No effect on a real clock.
    pub(crate) fn set(&self, ms: u64) {
        if let Clock::Virtual { now } = self {
            now.fetch_max(ms, Ordering::AcqRel);
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Clock::Real { .. } => "real",
            Clock::Virtual { .. } => "virtual",
        }
    }
}

//! The table's timers: which wheel holds a connection's, arming and disarming it, taking what
//! is due (in bounded batches, each wheel's lock let go between them), firing it under the
//! connection's lock, and a virtual clock's advance.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tcp::TimerKind;

use super::addr::{self, ConnId};
use super::clock::Clock;
use super::conn::Conn;
use super::counters;
use super::types::{Advanced, Error};
use super::wheel::Wheel;
use super::{DUE, Table, splitmix64};

/// Timer wheels per table: `WHEEL_SHARDS / PORT_SHARDS` for each port shard (see `Table::wheel`).
pub(crate) const WHEEL_SHARDS: usize = 64;

/// One timer wheel, and a lower bound on its earliest deadline (`u64::MAX`: none) that the
/// real-clock driver reads without the lock. Written only under the lock: lowered when a timer is
/// filed, set exact after a poll; a cancelled timer may leave it low, which costs one empty poll.
///
/// `filings` counts the timers armed or disarmed in the wheel (`Wheel::set`), also written only
/// under the lock. The timer path reads it to learn, without the lock, that nothing was filed in
/// the wheel since it took its due entries out (see `Filed`).
#[derive(Debug)]
pub(crate) struct WheelShard {
    pub(super) wheel: Mutex<Wheel>,
    pub(super) bound: AtomicU64,
    pub(super) filings: AtomicU64,
}

impl WheelShard {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound, read without the lock (`u64::MAX`: nothing armed).
    pub(super) fn bound(&self) -> u64 {
        self.bound.load(Ordering::SeqCst)
    }

    /// Makes the bound exact from `w`, this shard's locked wheel; returns it as `w` gives it.
    pub(super) fn set_bound(&self, w: &Wheel) -> Option<u64> {
        let next = w.next_expiration();
        self.bound.store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        next
    }
}

/// What the wheel holds for a connection, as far as a call on it knows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Filed {
    /// The connection's deadline: the wheel is kept equal to it whenever its shard is unlocked.
    Deadline,
    /// The timer path took the entry out of wheel `wheel` when its filings count was `filings`.
    /// If the count is unchanged, nothing was filed there since (every filing for a connection
    /// is made under its shard's lock, which the timer path holds when it looks), and the wheel
    /// holds nothing for the connection; otherwise it is not known, and the wheel is set anew.
    Polled { wheel: usize, filings: u64 },
}

impl Table {
    /// The wheel that holds `id`'s timer. It follows the port shard of the client IP, and the
    /// allocator hands each thread ports from a shard of its own: so threads that arm timers for
    /// the connections they opened meet on neither lock. Within a port shard, the id's hash
    /// spreads connections over several wheels (one client IP alone still gets several).
    pub(super) fn wheel_of(id: ConnId) -> usize {
        const PER_PORT_SHARD: usize = WHEEL_SHARDS / addr::PORT_SHARDS;
        id.port_shard() * PER_PORT_SHARD + splitmix64(id.0) as usize % PER_PORT_SHARD
    }

    pub(super) fn wheel(&self, id: ConnId) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheel_at(Self::wheel_of(id))
    }

    pub(super) fn wheel_at(&self, i: usize) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheels[i].0.lock()
    }

    /// Arms (or, with `None`, disarms) `id`'s timer, and wakes a sleeping real-clock driver if
    /// the timer falls due before it would wake.
    pub(super) fn file_timer(&self, id: ConnId, deadline: Option<u64>) {
        let shard = &self.wheels[Self::wheel_of(id)].0;
        {
            let mut w = shard.lock();
            w.set(id.0, deadline, self.clock.now());
            let n = shard.filings.load(Ordering::Relaxed);
            shard.filings.store(n + 1, Ordering::Release);
            // Only this lock's holder writes the bound: a plain store suffices, and none at all
            // when the bound is already at or before `d` (most timers are armed later than the
            // earliest one).
            if let Some(d) = deadline.filter(|&d| d < shard.bound.load(Ordering::Relaxed)) {
                shard.bound.store(d, Ordering::SeqCst);
            }
        }
        if let Some(d) = deadline {
            self.wake.armed(d);
        }
    }

    /// Polls wheel `i` for up to `budget` timers due at `now`; keeps its bound. See `Wheel::poll`.
    /// Returns whether more may be due, and the wheel's filings count as the poll left it.
    pub(super) fn poll_wheel(
        &self,
        i: usize,
        now: u64,
        budget: usize,
        due: &mut Vec<(u64, u64)>,
    ) -> (bool, u64) {
        let shard = &self.wheels[i].0;
        let mut w = shard.lock();
        let more = w.poll(now, budget, due);
        shard.set_bound(&w);
        (more, shard.filings.load(Ordering::Relaxed))
    }

    /// The earliest bound over all wheels, read without their locks (`u64::MAX`: none).
    pub(super) fn earliest_bound(&self) -> u64 {
        self.wheels
            .iter()
            .map(|w| w.0.bound())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The earliest time at or before `until` at which any wheel could fire something. Only the
    /// wheels whose bound is at or before `until` are locked (and their bounds made exact).
    pub(super) fn next_expiration(&self, until: u64) -> Option<u64> {
        self.wheels
            .iter()
            .map(|w| &w.0)
            .filter(|shard| shard.bound() <= until)
            .filter_map(|shard| shard.set_bound(&shard.lock()))
            .min()
            .filter(|&t| t <= until)
    }

    /// After a call changed `conn`: keep the timer counters and the wheel in step with it.
    /// `filed`: what the wheel holds for `id`, `None` if that is not known (the wheel is then set
    /// from the connection whatever it holds).
    pub(super) fn sync_timers(
        &self,
        c: &counters::Slot,
        id: ConnId,
        before: [Option<TimerKind>; 2],
        filed: Option<Option<u64>>,
        conn: &Conn,
        now: u64,
    ) {
        let after = conn.timers();
        for (b, a) in before.into_iter().zip(after) {
            if b != a {
                if let Some(k) = b {
                    c.timer_disarmed(k);
                }
                if let Some(k) = a {
                    c.timer_armed(k);
                }
            }
        }
        let deadline = conn.deadline(now);
        if filed != Some(deadline) {
            self.file_timer(id, deadline);
        }
    }

    /// Fires every timer due at or before `now`, wheel by wheel, a batch at a time (a wheel's
    /// lock is let go between batches). Returns how many timers fired.
    ///
    /// The wheels are taken in order from wheel 0, unless another call runs at the same time (two
    /// load threads advancing one virtual clock): then each caller starts with the wheels of its
    /// own port shard, which hold the connections it opened, still in its CPU's cache. Alone, the
    /// order is always the same; together, which caller fires which timer was a race anyway.
    pub fn run_timers(&self, now: u64) -> u64 {
        let mut fired = 0;
        let mut due = DUE.take();
        let others = self.expiring.0.fetch_add(1, Ordering::Relaxed);
        let start = if others == 0 {
            0
        } else {
            self.counters.with(|c| c.index % addr::PORT_SHARDS) * (WHEEL_SHARDS / addr::PORT_SHARDS)
        };
        for i in (start..WHEEL_SHARDS).chain(0..start) {
            if self.wheels[i].0.bound() > now {
                continue; // nothing due there: not even its lock
            }
            loop {
                let (more, filings) = self.poll_wheel(i, now, self.batch, &mut due);
                let filed = Filed::Polled { wheel: i, filings };
                for (key, deadline) in due.drain(..) {
                    fired += self.fire(ConnId(key), deadline, now, filed);
                }
                if !more {
                    break;
                }
            }
        }
        self.expiring.0.fetch_sub(1, Ordering::Relaxed);
        DUE.set(due);
        fired
    }

    /// One batch per wheel of `run_timers`, for drivers that yield between batches. Returns
    /// (fired, whether more may be due).
    pub fn run_timer_batch(&self, now: u64) -> (u64, bool) {
        let mut due = DUE.take();
        let mut fired = 0;
        let mut more = false;
        for i in 0..WHEEL_SHARDS {
            if self.wheels[i].0.bound() > now {
                continue; // nothing due there: not even its lock
            }
            let (more_here, filings) =
                self.poll_wheel(i, now, self.batch / WHEEL_SHARDS + 1, &mut due);
            more |= more_here;
            let filed = Filed::Polled { wheel: i, filings };
            fired += due
                .drain(..)
                .map(|(key, deadline)| self.fire(ConnId(key), deadline, now, filed))
                .sum::<u64>();
        }
        DUE.set(due);
        (fired, more)
    }

    /// Fires `id`'s timer, due at `deadline`, which the poll `filed` says took out of the wheel.
    pub(super) fn fire(&self, id: ConnId, deadline: u64, now: u64, filed: Filed) -> u64 {
        let real = !self.clock.is_virtual();
        // The wheel says this entry is due: another thread may have moved the wheel past our
        // `now`, so fire no earlier than the deadline itself.
        let now = now.max(deadline);
        let r = self.with_conn_synced(id, filed, |conn, tally| {
            let mut fired = 0;
            for &side in conn.sides() {
                if let Some(t) = conn
                    .endpoint(side)
                    .and_then(|e| e.timer(now))
                    .filter(|t| t.deadline <= now)
                {
                    tally.counters.timer_fired(t.kind);
                    if real {
                        tally
                            .counters
                            .lag(self.clock.now().saturating_sub(t.deadline));
                    }
                    fired += 1;
                }
            }
            conn.on_timeout(tally.cfg, now, tally);
            Ok(fired)
        });
        r.unwrap_or(0)
    }

    /// Virtual clock: moves time on by `ms`, firing every timer due on the way in deadline order,
    /// each at its own deadline. Deterministic: the same calls give the same results.
    pub fn advance(&self, ms: u64) -> Result<Advanced, Error> {
        self.advance_unless(ms, || false)
    }

    /// `advance`, checking `stop` before each deadline it reaches: when it says stop, the clock
    /// stays where it got to, every timer due by then fired and none after, and the advance is
    /// refused with how far it got (a caller gone, a deadline passed).
    pub fn advance_unless(&self, ms: u64, stop: impl Fn() -> bool) -> Result<Advanced, Error> {
        if !self.clock.is_virtual() {
            return Err(Error::RealClock);
        }
        let now = self.clock.now();
        let target = now.saturating_add(ms);
        if target > Clock::MAX_MS {
            return Err(Error::ClockLimit { now, ms });
        }
        let mut fired = 0;
        while let Some(t) = self.next_expiration(target) {
            if stop() {
                return Err(Error::AdvanceStopped {
                    now: self.clock.now(),
                    target,
                    fired,
                });
            }
            // A wheel that was not polled for long may report a slot start already past: its
            // timers then fire now (each at its own deadline), never with the clock moved back.
            let t = t.max(self.clock.now());
            self.clock.set(t);
            fired += self.run_timers(t);
        }
        self.clock.set(target);
        Ok(Advanced { now: target, fired })
    }
}

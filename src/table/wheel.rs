//! A hierarchical hashed timing wheel (Varghese & Lauck; the layout of tokio's
//! `runtime/time/wheel`): six levels of 64 slots, millisecond resolution at level 0 and 64× coarser
//! at each level above, covering 2^36 ms (about two years) ahead. A deadline further ahead is
//! filed at that horizon and filed again when its slot comes round, so a clock may move decades.
//!
//! Owns: at most one entry per key (a connection id) with its deadline. Insert and cancel are
//! O(1): entries live in a slab, linked into their slot's list, and an index maps a key to its
//! entry. Expiry is incremental: a due slot is detached in O(1) and then drained at most `budget`
//! entries per [`Wheel::poll`] call, so a million timers due at once never hold the caller's lock
//! for long. Never reads a clock: `now` is a parameter.

use std::collections::{HashMap, hash_map};

use rustc_hash::FxBuildHasher;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const NIL: u32 = u32::MAX;
/// The farthest ahead of `elapsed` an entry is filed: one rotation of the top level, less one
/// millisecond (tokio's `MAX_DURATION`). The top level's slots are a ring over that span: its
/// current slot, once taken, holds only what is due a rotation later.
const HORIZON: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - 1;

/// One pending timer: its key, its deadline, and its neighbours in a slot list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    deadline: u64,
    prev: u32,
    next: u32,
}

/// Where an entry is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    Slot { level: u8, slot: u8 },
    Pending,
    Free,
}

/// 64 slot lists (FIFO: appended at the tail) and a bitmap of the non-empty ones.
#[derive(Clone, Debug)]
struct Level {
    occupied: u64,
    head: [u32; SLOTS],
    tail: [u32; SLOTS],
}

impl Default for Level {
    fn default() -> Level {
        Level {
            occupied: 0,
            head: [NIL; SLOTS],
            tail: [NIL; SLOTS],
        }
    }
}

/// The wheel. Invariant: every linked entry has `deadline >= elapsed`, except entries in the
/// pending list, which are all due at or before `elapsed` or must be re-filed relative to it.
#[derive(Debug)]
pub struct Wheel {
    /// Time up to which slots have been taken (ms).
    elapsed: u64,
    levels: Box<[Level; LEVELS]>,
    entries: Vec<Entry>,
    homes: Vec<Home>,
    free: Vec<u32>,
    index: HashMap<u64, u32, FxBuildHasher>,
    /// A detached slot being drained: entries still to fire or to re-file.
    pending: u32,
}

impl Default for Wheel {
    fn default() -> Wheel {
        Wheel::new(0)
    }
}

impl Wheel {
    /// An empty wheel whose time starts at `now`.
    pub fn new(now: u64) -> Wheel {
        Wheel {
            elapsed: now,
            levels: Box::default(),
            entries: Vec::new(),
            homes: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            pending: NIL,
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The deadline armed for `key`, if any.
    pub fn deadline(&self, key: u64) -> Option<u64> {
        self.index
            .get(&key)
            .map(|&e| self.entries[e as usize].deadline)
    }

    /// Arms (or re-arms) the timer of `key`. A deadline already past fires at the next poll.
    /// `now` is the caller's time: an empty wheel moves to it first, so that a wheel without
    /// timers never falls behind the clock (a poll only ever moves a wheel that has some).
    pub fn insert(&mut self, key: u64, deadline: u64, now: u64) {
        if self.index.is_empty() && self.pending == NIL {
            self.elapsed = self.elapsed.max(now);
        }
        // One probe of the index, whether the key is armed or not.
        let slot = match self.index.entry(key) {
            hash_map::Entry::Occupied(o) => {
                let e = *o.get();
                if self.entries[e as usize].deadline == deadline {
                    return;
                }
                self.unlink(e);
                self.entries[e as usize].deadline = deadline;
                self.file(e);
                return;
            }
            hash_map::Entry::Vacant(v) => v,
        };
        let entry = Entry {
            key,
            deadline,
            prev: NIL,
            next: NIL,
        };
        let e = match self.free.pop() {
            Some(e) => {
                self.entries[e as usize] = entry;
                e
            }
            None => {
                self.entries.push(entry);
                self.homes.push(Home::Free);
                (self.entries.len() - 1) as u32
            }
        };
        slot.insert(e);
        self.file(e);
    }

    /// Disarms the timer of `key`. Returns its deadline if one was armed.
    pub fn cancel(&mut self, key: u64) -> Option<u64> {
        let e = self.index.remove(&key)?;
        self.unlink(e);
        self.homes[e as usize] = Home::Free;
        self.free.push(e);
        Some(self.entries[e as usize].deadline)
    }

    /// Arms `key` for `deadline`, or disarms it for `None`; `now` as for `insert`.
    pub fn set(&mut self, key: u64, deadline: Option<u64>, now: u64) {
        match deadline {
            Some(d) => self.insert(key, d, now),
            None => {
                self.cancel(key);
            }
        }
    }

    /// The earliest time at which `poll` could return something: exact at level 0, the start of
    /// the slot for higher levels (its entries are re-filed then). `None` when empty.
    pub fn next_expiration(&self) -> Option<u64> {
        if self.pending != NIL {
            return Some(self.elapsed);
        }
        (0..LEVELS).filter_map(|l| self.next_slot_time(l)).min()
    }

    /// Removes up to `budget` timers due at or before `now`, in deadline order (slot by slot;
    /// within one millisecond, in the order they were filed), appending `(key, deadline)` to
    /// `out`. Returns true if more may be due at `now` (the budget ran out).
    pub fn poll(&mut self, now: u64, budget: usize, out: &mut Vec<(u64, u64)>) -> bool {
        let mut work = 0;
        loop {
            // Drain the detached slot first: it holds the earliest entries.
            while self.pending != NIL {
                if work >= budget {
                    return true;
                }
                work += 1;
                let e = self.pending;
                self.unlink(e);
                let entry = self.entries[e as usize];
                if entry.deadline <= self.elapsed {
                    self.index.remove(&entry.key);
                    self.homes[e as usize] = Home::Free;
                    self.free.push(e);
                    out.push((entry.key, entry.deadline));
                } else {
                    self.file(e);
                }
            }
            let Some((level, slot, at)) = self.next_slot() else {
                self.elapsed = self.elapsed.max(now);
                return false;
            };
            if at > now {
                self.elapsed = self.elapsed.max(now);
                return false;
            }
            // Detach the whole slot in O(1) and move time to its start.
            let lv = &mut self.levels[level];
            let head = lv.head[slot];
            lv.head[slot] = NIL;
            lv.tail[slot] = NIL;
            lv.occupied &= !(1u64 << slot);
            self.elapsed = self.elapsed.max(at);
            let mut e = head;
            while e != NIL {
                self.homes[e as usize] = Home::Pending;
                e = self.entries[e as usize].next;
            }
            self.pending = head;
        }
    }

    /// Files entry `e` in the slot its deadline falls in, relative to `elapsed`; a deadline past
    /// the horizon in the slot of the horizon, from where it is filed again.
    fn file(&mut self, e: u32) {
        let deadline = self.entries[e as usize]
            .deadline
            .clamp(self.elapsed, self.elapsed.saturating_add(HORIZON));
        let level = level_for(self.elapsed, deadline);
        let slot = ((deadline >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize;
        let lv = &mut self.levels[level];
        let tail = lv.tail[slot];
        self.entries[e as usize].prev = tail;
        self.entries[e as usize].next = NIL;
        if tail != NIL {
            self.entries[tail as usize].next = e;
        } else {
            lv.head[slot] = e;
        }
        lv.tail[slot] = e;
        lv.occupied |= 1u64 << slot;
        self.homes[e as usize] = Home::Slot {
            level: level as u8,
            slot: slot as u8,
        };
    }

    /// Takes entry `e` out of whatever list holds it.
    fn unlink(&mut self, e: u32) {
        let Entry { prev, next, .. } = self.entries[e as usize];
        let home = self.homes[e as usize];
        if next != NIL {
            self.entries[next as usize].prev = prev;
        } else if let Home::Slot { level, slot } = home {
            self.levels[level as usize].tail[slot as usize] = prev;
        }
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            match home {
                Home::Slot { level, slot } => {
                    let lv = &mut self.levels[level as usize];
                    lv.head[slot as usize] = next;
                    if next == NIL {
                        lv.occupied &= !(1u64 << slot);
                    }
                }
                Home::Pending => self.pending = next,
                Home::Free => {}
            }
        }
        self.entries[e as usize].prev = NIL;
        self.entries[e as usize].next = NIL;
    }

    /// The next occupied slot at or after `elapsed`, over all levels: (level, slot, start time).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            if let Some((slot, at)) = self.next_slot_in(level)
                && best.is_none_or(|(_, _, b)| at < b)
            {
                best = Some((level, slot, at));
            }
        }
        best
    }

    fn next_slot_time(&self, level: usize) -> Option<u64> {
        self.next_slot_in(level).map(|(_, at)| at)
    }

    /// The first occupied slot of `level` at or after the current position, and when it starts.
    fn next_slot_in(&self, level: usize) -> Option<(usize, u64)> {
        let lv = &self.levels[level];
        if lv.occupied == 0 {
            return None;
        }
        let shift = level as u32 * SLOT_BITS;
        let slot_range = 1u64 << shift; // time one slot covers
        let level_range = slot_range << SLOT_BITS; // time the whole level covers
        let now_slot = (self.elapsed >> shift) & (SLOTS as u64 - 1);
        // Rotate so that the current slot is bit 0, then find the first set bit. The top level's
        // current slot is taken before anything is filed in it again, so what it holds is due a
        // rotation later: after every other slot of the level.
        let mut rotated = lv.occupied.rotate_right(now_slot as u32);
        let top = level == LEVELS - 1;
        if top && rotated != 1 {
            rotated &= !1;
        }
        let zeros = u64::from(rotated.trailing_zeros());
        let slot = (now_slot + zeros) % SLOTS as u64;
        let level_start = self.elapsed & !(level_range - 1);
        let mut at = level_start + slot * slot_range;
        // A slot before the current one is in the next rotation of this level.
        if at < self.elapsed & !(slot_range - 1) || (top && zeros == 0) {
            at = at.saturating_add(level_range);
        }
        Some((slot as usize, at.max(self.elapsed)))
    }

    /// Checks the structure (tests): every indexed entry is linked exactly once, in the right
    /// slot, and the bitmaps match the lists.
    #[cfg(test)]
    fn check(&self) {
        let mut seen = 0;
        for (level, lv) in self.levels.iter().enumerate() {
            for slot in 0..SLOTS {
                let mut e = lv.head[slot];
                assert_eq!(
                    lv.occupied >> slot & 1 == 1,
                    e != NIL,
                    "bitmap of level {level} slot {slot}"
                );
                let mut prev = NIL;
                if e == NIL {
                    assert_eq!(lv.tail[slot], NIL);
                }
                while e != NIL {
                    let entry = self.entries[e as usize];
                    assert_eq!(entry.prev, prev);
                    assert_eq!(
                        self.homes[e as usize],
                        Home::Slot {
                            level: level as u8,
                            slot: slot as u8
                        }
                    );
                    assert_eq!(self.index.get(&entry.key), Some(&e));
                    seen += 1;
                    prev = e;
                    e = entry.next;
                }
                assert_eq!(lv.tail[slot], prev, "tail of level {level} slot {slot}");
            }
        }
        let mut e = self.pending;
        while e != NIL {
            seen += 1;
            e = self.entries[e as usize].next;
        }
        assert_eq!(seen, self.index.len());
    }
}

/// The level whose slots separate `elapsed` and `when`: the highest 6-bit group in which they
/// differ (tokio's `level_for`).
fn level_for(elapsed: u64, when: u64) -> usize {
    const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / SLOT_BITS as usize).min(LEVELS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Wheel, now: u64) -> Vec<(u64, u64)> {
        let mut out = vec![];
        while w.poll(now, 3, &mut out) {}
        out
    }

    #[test]
    fn test_fires_at_deadline_not_before() {
        let mut w = Wheel::new(0);
        w.insert(1, 10, 0);
        w.insert(2, 5, 0);
        assert!(drain(&mut w, 4).is_empty());
        assert_eq!(drain(&mut w, 5), [(2, 5)]);
        assert_eq!(drain(&mut w, 9), []);
        assert_eq!(drain(&mut w, 10), [(1, 10)]);
        assert!(w.is_empty());
        w.check();
    }

    #[test]
    fn test_far_deadlines_cascade_exactly() {
        let mut w = Wheel::new(1_000);
        let deadlines = [
            1_063,
            1_064,
            1_065,
            5_000,
            60_000,
            61_234,
            3_600_000,
            86_400_000,
            40_000_000_000,
        ];
        for (k, &d) in deadlines.iter().enumerate() {
            w.insert(k as u64, d, 0);
        }
        w.check();
        for &d in &deadlines {
            assert_eq!(drain(&mut w, d - 1).len(), 0, "nothing before {d}");
            let fired = drain(&mut w, d);
            assert_eq!(fired.len(), 1);
            assert_eq!(fired[0].1, d);
            w.check();
        }
    }

    #[test]
    fn test_jumping_far_fires_everything_in_deadline_order() {
        let mut w = Wheel::new(0);
        let mut x = 12345u64;
        let mut want = vec![];
        for k in 0..5000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = (x >> 20) % 10_000_000;
            w.insert(k, d, 0);
            want.push(d);
        }
        want.sort();
        let got: Vec<u64> = drain(&mut w, 20_000_000)
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, want);
        w.check();
    }

    #[test]
    fn test_cancel_and_rearm_keep_one_entry_per_key() {
        let mut w = Wheel::new(0);
        w.insert(7, 100, 0);
        w.insert(7, 5000, 0); // re-arm
        assert_eq!(w.len(), 1);
        assert_eq!(w.deadline(7), Some(5000));
        assert!(drain(&mut w, 100).is_empty());
        assert_eq!(w.cancel(7), Some(5000));
        assert_eq!(w.cancel(7), None);
        assert!(drain(&mut w, 10_000).is_empty());
        w.insert(8, 1, 0);
        w.set(8, None, 0);
        assert!(w.is_empty());
        w.check();
    }

    #[test]
    fn test_past_deadline_fires_at_next_poll() {
        let mut w = Wheel::new(0);
        drain(&mut w, 1000);
        w.insert(1, 10, 0);
        assert_eq!(drain(&mut w, 1000), [(1, 10)]);
    }

    #[test]
    fn test_budget_bounds_each_poll_and_cancel_works_mid_drain() {
        let mut w = Wheel::new(0);
        for k in 0..10_000u64 {
            w.insert(k, 60_000, 0);
        }
        let mut out = vec![];
        // The first poll detaches the level-2 slot holding all of them and re-files 1000.
        assert!(w.poll(60_000, 1000, &mut out));
        assert!(out.is_empty());
        // Entries still being drained can be cancelled or re-armed.
        assert_eq!(w.cancel(5), Some(60_000));
        w.insert(9_999, 90_000, 0);
        w.check();
        let mut calls = 1;
        loop {
            let before = out.len();
            let more = w.poll(60_000, 1000, &mut out);
            assert!(out.len() - before <= 1000);
            calls += 1;
            if !more {
                break;
            }
        }
        assert_eq!(out.len(), 10_000 - 2);
        assert!(
            calls >= 20,
            "10 000 re-files and 9 998 expiries at 1000 per call took {calls} calls"
        );
        // Same-millisecond timers fire in the order they were armed.
        let keys: Vec<u64> = out.iter().map(|&(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(drain(&mut w, 90_000), [(9_999, 90_000)]);
        w.check();
    }

    #[test]
    fn test_next_expiration() {
        let mut w = Wheel::new(0);
        assert_eq!(w.next_expiration(), None);
        w.insert(1, 30, 0);
        assert_eq!(w.next_expiration(), Some(30));
        w.insert(2, 70_000, 0);
        drain(&mut w, 30);
        let next = w.next_expiration().unwrap();
        assert!(next <= 70_000 && next > 30);
        // Polling at the reported time makes progress towards the deadline.
        let mut t = next;
        let mut fired = vec![];
        while fired.is_empty() {
            fired = drain(&mut w, t);
            t = w.next_expiration().unwrap_or(t);
        }
        assert_eq!(fired, [(2, 70_000)]);
    }

    #[test]
    fn test_entries_are_reused() {
        let mut w = Wheel::new(0);
        for round in 0..10u64 {
            for k in 0..100u64 {
                w.insert(k, round * 1000 + 500, 0);
            }
            drain(&mut w, round * 1000 + 500);
        }
        assert!(w.entries.len() <= 100);
    }

    /// Runs `f` on a thread of its own and fails if it does not return within 20 s: a wheel that
    /// spins must fail its test, not hang it.
    fn returns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the wheel did not return: it spins")
    }

    #[test]
    fn test_a_timer_armed_years_after_the_last_poll_fires_on_time() {
        // The defect: an empty wheel, never polled, whose clock moved more than 2^36 ms; a timer
        // armed then was filed in the top level's current slot and polled for ever.
        for (gap, steps) in [(3 << 36, 1), (86_400_000, 800), (40 * 365 * 86_400_000, 1)] {
            let fired = returns(move || {
                let mut w = Wheel::new(0);
                let now = gap * steps;
                w.insert(1, now + 1000, now);
                let early = drain(&mut w, now + 999);
                (early, drain(&mut w, now + 1000))
            });
            assert_eq!(fired, (vec![], vec![(1, gap * steps + 1000)]));
        }
        // Not empty: one timer decades away keeps the wheel from being polled while the clock
        // moves years; a timer armed then still fires at its deadline, and so does the far one.
        let fired = returns(|| {
            let mut w = Wheel::new(0);
            let year = 365 * 86_400_000u64;
            w.insert(1, 30 * year, 0);
            w.insert(2, 5 * year + 7, 5 * year);
            let mut out = vec![];
            while w.poll(5 * year + 7, 2, &mut out) {}
            while w.poll(30 * year, 2, &mut out) {}
            out
        });
        let year = 365 * 86_400_000u64;
        assert_eq!(fired, [(2, 5 * year + 7), (1, 30 * year)]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Random timers, armed at random times, from a millisecond to decades ahead, and random
        /// clock moves of the same spread: every poll returns, and every timer fires once, at
        /// the first poll at or after its deadline, never before.
        #[test]
        fn prop_every_timer_fires_once_at_its_deadline(
            ops in proptest::collection::vec(
                (0u8..3, 0u64..4, 0u64..1_000_000, 0u64..64),
                1..60,
            )
        ) {
            let result = returns(move || {
                let mut w = Wheel::new(0);
                let mut now = 0u64;
                let mut armed = std::collections::HashMap::new();
                let spread = |scale: u64, x: u64| match scale {
                    0 => x % 1000,                    // milliseconds
                    1 => x * 10,                      // up to hours
                    2 => x * 100_000,                 // up to years
                    _ => x * 1_000_000_000,           // up to decades
                };
                for (op, scale, x, key) in ops {
                    match op {
                        0 => {
                            let d = now + spread(scale, x);
                            w.insert(key, d, now);
                            armed.insert(key, d);
                        }
                        1 => {
                            w.cancel(key);
                            armed.remove(&key);
                        }
                        _ => {
                            now += spread(scale, x);
                            let mut out = vec![];
                            while w.poll(now, 7, &mut out) {}
                            for (k, d) in out {
                                if armed.remove(&k) != Some(d) || d > now {
                                    return Err(format!("{k} fired at {d} (now {now})"));
                                }
                            }
                            if let Some((k, d)) = armed.iter().find(|&(_, &d)| d <= now) {
                                return Err(format!("{k} due at {d} did not fire by {now}"));
                            }
                        }
                    }
                    w.check();
                }
                Ok(())
            });
            proptest::prop_assert_eq!(result, Ok(()));
        }
    }
}

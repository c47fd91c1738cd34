//! Accounting without scans: every figure the table reports is kept up to date on each
//! transition, segment and timer change, so reading it costs O(states), never O(connections).
//!
//! Owns: atomic counters only. Knows nothing of maps or locks; the table calls in.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::tcp::{Side, State, TimerKind};

const STATES: usize = 11;
const SIDES: usize = 2;

pub fn side_ix(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

pub fn timer_ix(kind: TimerKind) -> usize {
    TimerKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("ALL lists every kind")
}

/// What happened to a segment, counted by the side it concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentOutcome {
    /// Emitted by an endpoint of this side.
    Sent,
    /// Arrived at an endpoint of this side (over the wire or by AUTO delivery).
    Delivered,
    /// Forged by a caller and injected into this side.
    Injected,
    /// Dropped on the wire on its way from this side.
    Dropped,
    /// Duplicated on the wire on its way from this side.
    Duplicated,
    /// Reordered on the wire on its way from this side.
    Reordered,
    /// Lost when AUTO delivery hit its per-call limit.
    Overflowed,
}

impl SegmentOutcome {
    pub const ALL: [SegmentOutcome; 7] = [
        SegmentOutcome::Sent,
        SegmentOutcome::Delivered,
        SegmentOutcome::Injected,
        SegmentOutcome::Dropped,
        SegmentOutcome::Duplicated,
        SegmentOutcome::Reordered,
        SegmentOutcome::Overflowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentOutcome::Sent => "sent",
            SegmentOutcome::Delivered => "delivered",
            SegmentOutcome::Injected => "injected",
            SegmentOutcome::Dropped => "dropped",
            SegmentOutcome::Duplicated => "duplicated",
            SegmentOutcome::Reordered => "reordered",
            SegmentOutcome::Overflowed => "overflowed",
        }
    }

    fn ix(self) -> usize {
        self as usize
    }
}

/// Why an open was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenFailure {
    TableFull,
    PortsExhausted,
    TupleInUse,
}

impl OpenFailure {
    pub const ALL: [OpenFailure; 3] = [
        OpenFailure::TableFull,
        OpenFailure::PortsExhausted,
        OpenFailure::TupleInUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpenFailure::TableFull => "table_full",
            OpenFailure::PortsExhausted => "ports_exhausted",
            OpenFailure::TupleInUse => "tuple_in_use",
        }
    }
}

/// Upper bounds (ms) of the timer-lag histogram's buckets; the last bucket is +Inf.
pub const LAG_BUCKETS_MS: [u64; 11] = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/// All the table's counters.
#[derive(Debug)]
pub struct Counters {
    occupancy: [[AtomicI64; STATES]; SIDES],
    transitions: [[[AtomicU64; STATES]; STATES]; SIDES],
    segments: [[AtomicU64; 7]; SIDES],
    timers_pending: [AtomicI64; 5],
    timers_fired: [AtomicU64; 5],
    open_failures: [AtomicU64; 3],
    opened: AtomicU64,
    removed: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
    lag_max_ms: AtomicU64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            occupancy: Default::default(),
            transitions: std::array::from_fn(|_| std::array::from_fn(|_| Default::default())),
            segments: Default::default(),
            timers_pending: Default::default(),
            timers_fired: Default::default(),
            open_failures: Default::default(),
            opened: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            lag_buckets: Default::default(),
            lag_sum_ms: AtomicU64::new(0),
            lag_max_ms: AtomicU64::new(0),
        }
    }
}

impl Counters {
    pub fn enter(&self, side: Side, state: State) {
        self.occupancy[side_ix(side)][state as usize].fetch_add(1, Relaxed);
    }

    pub fn leave(&self, side: Side, state: State) {
        self.occupancy[side_ix(side)][state as usize].fetch_sub(1, Relaxed);
    }

    pub fn transition(&self, side: Side, from: State, to: State) {
        self.leave(side, from);
        self.enter(side, to);
        self.transitions[side_ix(side)][from as usize][to as usize].fetch_add(1, Relaxed);
    }

    pub fn segment(&self, side: Side, outcome: SegmentOutcome, n: u64) {
        self.segments[side_ix(side)][outcome.ix()].fetch_add(n, Relaxed);
    }

    pub fn timer_armed(&self, kind: TimerKind) {
        self.timers_pending[timer_ix(kind)].fetch_add(1, Relaxed);
    }

    pub fn timer_disarmed(&self, kind: TimerKind) {
        self.timers_pending[timer_ix(kind)].fetch_sub(1, Relaxed);
    }

    pub fn timer_fired(&self, kind: TimerKind) {
        self.timers_fired[timer_ix(kind)].fetch_add(1, Relaxed);
    }

    pub fn open_failed(&self, why: OpenFailure) {
        self.open_failures[why as usize].fetch_add(1, Relaxed);
    }

    pub fn opened(&self) {
        self.opened.fetch_add(1, Relaxed);
    }

    pub fn removed(&self) {
        self.removed.fetch_add(1, Relaxed);
    }

    /// How late a timer fired (real clock).
    pub fn lag(&self, ms: u64) {
        let b = LAG_BUCKETS_MS
            .iter()
            .position(|&ub| ms <= ub)
            .unwrap_or(LAG_BUCKETS_MS.len());
        self.lag_buckets[b].fetch_add(1, Relaxed);
        self.lag_sum_ms.fetch_add(ms, Relaxed);
        self.lag_max_ms.fetch_max(ms, Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        CounterSnapshot {
            occupancy: std::array::from_fn(|s| {
                std::array::from_fn(|st| self.occupancy[s][st].load(Relaxed))
            }),
            transitions: std::array::from_fn(|s| {
                std::array::from_fn(|f| std::array::from_fn(|t| load(&self.transitions[s][f][t])))
            }),
            segments: std::array::from_fn(|s| std::array::from_fn(|o| load(&self.segments[s][o]))),
            timers_pending: std::array::from_fn(|k| self.timers_pending[k].load(Relaxed)),
            timers_fired: std::array::from_fn(|k| load(&self.timers_fired[k])),
            open_failures: std::array::from_fn(|r| load(&self.open_failures[r])),
            opened: load(&self.opened),
            removed: load(&self.removed),
            lag_buckets: std::array::from_fn(|b| load(&self.lag_buckets[b])),
            lag_sum_ms: load(&self.lag_sum_ms),
            lag_max_ms: load(&self.lag_max_ms),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// [side][state]
    pub occupancy: [[i64; STATES]; SIDES],
    /// [side][from][to]
    pub transitions: [[[u64; STATES]; STATES]; SIDES],
    /// [side][SegmentOutcome]
    pub segments: [[u64; 7]; SIDES],
    /// [TimerKind::ALL index]
    pub timers_pending: [i64; 5],
    pub timers_fired: [u64; 5],
    /// [OpenFailure]
    pub open_failures: [u64; 3],
    pub opened: u64,
    pub removed: u64,
    pub lag_buckets: [u64; LAG_BUCKETS_MS.len() + 1],
    pub lag_sum_ms: u64,
    pub lag_max_ms: u64,
}

impl CounterSnapshot {
    pub fn occupancy(&self, side: Side, state: State) -> i64 {
        self.occupancy[side_ix(side)][state as usize]
    }

    pub fn transitions(&self, side: Side, from: State, to: State) -> u64 {
        self.transitions[side_ix(side)][from as usize][to as usize]
    }

    pub fn segments(&self, side: Side, outcome: SegmentOutcome) -> u64 {
        self.segments[side_ix(side)][outcome.ix()]
    }

    pub fn timers_pending(&self, kind: TimerKind) -> i64 {
        self.timers_pending[timer_ix(kind)]
    }

    pub fn timers_fired(&self, kind: TimerKind) -> u64 {
        self.timers_fired[timer_ix(kind)]
    }

    pub fn open_failures(&self, why: OpenFailure) -> u64 {
        self.open_failures[why as usize]
    }
}

//! Accounting without scans: every figure the table reports is kept up to date on each
//! transition, segment and timer change, so reading it costs O(states), never O(connections).
//!
//! Owns: the counters, sharded per writing thread so that counting costs plain stores. Knows
//! nothing of maps or connections; the table calls in. A thread's slot lives as long as the
//! thread: when it exits, what it counted is folded into a retired total, so that a server whose
//! pools replace threads (tokio's blocking pool does) keeps a bounded number of slots.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use crate::tcp::{Side, State, TimerKind};

pub use super::listeners::ListenEvent;

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

/// By its name in scenario files and the API (`ports_exhausted`).
impl<'de> serde::Deserialize<'de> for OpenFailure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OpenFailure, D::Error> {
        let name = String::deserialize(d)?;
        let known = OpenFailure::ALL.map(OpenFailure::as_str);
        OpenFailure::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{name:?} is not a refusal reason ({})",
                    known.join(", ")
                ))
            })
    }
}

/// Upper bounds (ms) of the connect-time histogram's buckets, either side of the round trips
/// and of the SYN retransmission steps (1 s apart for the first five, then doubling); the last
/// bucket is +Inf.
pub const CONNECT_BUCKETS_MS: [u64; 16] = [
    1, 10, 25, 50, 75, 100, 250, 500, 1_000, 1_500, 2_000, 2_500, 3_000, 5_000, 10_000, 60_000,
];

/// Upper bounds (ms) of the timer-lag histogram's buckets; the last bucket is +Inf.
pub const LAG_BUCKETS_MS: [u64; 11] = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/// One thread's share of the counters. Only its own thread writes it, with plain relaxed loads
/// and stores (no read-modify-write, so no bus lock and no cache-line ping-pong between threads);
/// any thread may read it. Occupancy deltas can be negative per thread; the sum is exact.
#[derive(Debug)]
pub struct Slot {
    /// The order in which this thread first wrote to these counters: 0, 1, 2…
    pub index: usize,
    occupancy: [[AtomicI64; STATES]; SIDES],
    transitions: [[[AtomicU64; STATES]; STATES]; SIDES],
    segments: [[AtomicU64; 7]; SIDES],
    timers_pending: [AtomicI64; 5],
    timers_fired: [AtomicU64; 5],
    open_failures: [AtomicU64; 3],
    opened: AtomicU64,
    removed: AtomicU64,
    time_wait_overflows: AtomicU64,
    /// [ListenEvent]
    listen: [AtomicU64; 5],
    time_wait_reused: AtomicU64,
    /// Segments in flight on the link (a gauge: this slot's share, which may be negative).
    in_flight: AtomicI64,
    connect_buckets: [AtomicU64; CONNECT_BUCKETS_MS.len() + 1],
    connect_sum_ms: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
    lag_max_ms: AtomicU64,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            index: 0,
            occupancy: Default::default(),
            transitions: std::array::from_fn(|_| std::array::from_fn(|_| Default::default())),
            segments: Default::default(),
            timers_pending: Default::default(),
            timers_fired: Default::default(),
            open_failures: Default::default(),
            opened: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            time_wait_overflows: AtomicU64::new(0),
            listen: Default::default(),
            time_wait_reused: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            connect_buckets: Default::default(),
            connect_sum_ms: AtomicU64::new(0),
            lag_buckets: Default::default(),
            lag_sum_ms: AtomicU64::new(0),
            lag_max_ms: AtomicU64::new(0),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

fn add_i(a: &AtomicI64, n: i64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One observation of `ms` in a histogram whose buckets have the upper `bounds` (one bucket
/// more, +Inf, at the end), and its sum.
fn observe(bounds: &[u64], buckets: &[AtomicU64], sum: &AtomicU64, ms: u64) {
    let b = bounds
        .iter()
        .position(|&ub| ms <= ub)
        .unwrap_or(bounds.len());
    add(&buckets[b], 1);
    add(sum, ms);
}

impl Slot {
    pub fn enter(&self, side: Side, state: State) {
        add_i(&self.occupancy[side_ix(side)][state as usize], 1);
    }

    pub fn leave(&self, side: Side, state: State) {
        add_i(&self.occupancy[side_ix(side)][state as usize], -1);
    }

    pub fn transition(&self, side: Side, from: State, to: State) {
        self.leave(side, from);
        self.enter(side, to);
        add(
            &self.transitions[side_ix(side)][from as usize][to as usize],
            1,
        );
    }

    pub fn segment(&self, side: Side, outcome: SegmentOutcome, n: u64) {
        add(&self.segments[side_ix(side)][outcome.ix()], n);
    }

    pub fn timer_armed(&self, kind: TimerKind) {
        add_i(&self.timers_pending[timer_ix(kind)], 1);
    }

    pub fn timer_disarmed(&self, kind: TimerKind) {
        add_i(&self.timers_pending[timer_ix(kind)], -1);
    }

    pub fn timer_fired(&self, kind: TimerKind) {
        add(&self.timers_fired[timer_ix(kind)], 1);
    }

    pub fn open_failed(&self, why: OpenFailure) {
        self.open_failures(why, 1);
    }

    pub fn open_failures(&self, why: OpenFailure, n: u64) {
        add(&self.open_failures[why as usize], n);
    }

    pub fn opened(&self) {
        add(&self.opened, 1);
    }

    pub fn removed(&self) {
        add(&self.removed, 1);
    }

    /// A timewait sock the host had no room for (Linux's `TCPTimeWaitOverflow`).
    pub fn time_wait_overflow(&self) {
        add(&self.time_wait_overflows, 1);
    }

    /// Segments in flight on the link: `delta` more or fewer.
    pub fn in_flight(&self, delta: i64) {
        add_i(&self.in_flight, delta);
    }

    /// A connect took over a TIME-WAIT (Linux's `TWRecycled`).
    pub fn time_wait_reused(&self) {
        add(&self.time_wait_reused, 1);
    }

    /// What a listener did (Linux's `ListenDrops`, `SyncookiesSent`, …).
    pub fn listen_event(&self, ev: ListenEvent) {
        add(&self.listen[ev as usize], 1);
    }

    /// An active open completed after `ms`.
    pub fn connected(&self, ms: u64) {
        observe(
            &CONNECT_BUCKETS_MS,
            &self.connect_buckets,
            &self.connect_sum_ms,
            ms,
        );
    }

    /// How late a timer fired (real clock).
    pub fn lag(&self, ms: u64) {
        observe(&LAG_BUCKETS_MS, &self.lag_buckets, &self.lag_sum_ms, ms);
        if ms > self.lag_max_ms.load(Relaxed) {
            self.lag_max_ms.store(ms, Relaxed);
        }
    }
}

impl Slot {
    /// Adds everything `other` counted to this slot. Only for the retired total, which is
    /// written under its registry's lock.
    fn absorb(&self, other: &Slot) {
        fn each<const N: usize, T>(a: &[T; N], b: &[T; N], f: impl Fn(&T, &T)) {
            a.iter().zip(b).for_each(|(x, y)| f(x, y));
        }
        let u = |a: &AtomicU64, b: &AtomicU64| add(a, b.load(Relaxed));
        let i = |a: &AtomicI64, b: &AtomicI64| add_i(a, b.load(Relaxed));
        each(&self.occupancy, &other.occupancy, |a, b| each(a, b, i));
        each(&self.transitions, &other.transitions, |a, b| {
            each(a, b, |a, b| each(a, b, u))
        });
        each(&self.segments, &other.segments, |a, b| each(a, b, u));
        each(&self.timers_pending, &other.timers_pending, i);
        each(&self.timers_fired, &other.timers_fired, u);
        each(&self.open_failures, &other.open_failures, u);
        u(&self.opened, &other.opened);
        u(&self.removed, &other.removed);
        u(&self.time_wait_overflows, &other.time_wait_overflows);
        each(&self.listen, &other.listen, u);
        u(&self.time_wait_reused, &other.time_wait_reused);
        i(&self.in_flight, &other.in_flight);
        each(&self.connect_buckets, &other.connect_buckets, u);
        u(&self.connect_sum_ms, &other.connect_sum_ms);
        each(&self.lag_buckets, &other.lag_buckets, u);
        u(&self.lag_sum_ms, &other.lag_sum_ms);
        let max = other.lag_max_ms.load(Relaxed);
        if max > self.lag_max_ms.load(Relaxed) {
            self.lag_max_ms.store(max, Relaxed);
        }
    }
}

static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// A table's slots: the live threads', and what the threads that have exited counted.
#[derive(Debug, Default)]
struct Registry {
    live: Vec<Arc<Slot>>,
    retired: Slot,
    /// Slots ever handed out: the next one's index.
    registered: usize,
}

type Shared = Arc<Mutex<Registry>>;

fn lock(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// This thread's slot in each `Counters` it has written to, by the counters' id. When the
/// thread exits, each slot is folded into its table's retired total and let go.
#[derive(Default)]
struct ThreadSlots(Vec<(u64, Arc<Slot>, Weak<Mutex<Registry>>)>);

impl Drop for ThreadSlots {
    fn drop(&mut self) {
        for (_, slot, registry) in self.0.drain(..) {
            if let Some(registry) = registry.upgrade() {
                let mut r = lock(&registry);
                r.live.retain(|s| !Arc::ptr_eq(s, &slot));
                r.retired.absorb(&slot);
            }
        }
    }
}

thread_local! {
    static SLOTS: RefCell<ThreadSlots> = RefCell::new(ThreadSlots::default());
}

/// All the table's counters: a slot per thread that writes, summed when read.
#[derive(Debug)]
pub struct Counters {
    id: u64,
    registry: Shared,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            id: NEXT_TABLE.fetch_add(1, Relaxed),
            registry: Shared::default(),
        }
    }
}

impl Counters {
    /// Runs `f` with this thread's slot (registering one on first use).
    ///
    /// `f` is called from one place only, so that the compiler can inline it: every table call
    /// runs inside it, and a call it cannot inline returns its result through memory.
    pub fn with<R>(&self, f: impl FnOnce(&Slot) -> R) -> R {
        SLOTS.with(|cell| {
            loop {
                // One pass, or two the first time this thread writes to these counters.
                let slots = cell.borrow();
                if let Some((_, slot, _)) = slots.0.iter().find(|(id, _, _)| *id == self.id) {
                    return f(slot);
                }
                drop(slots);
                self.register(cell);
            }
        })
    }

    #[cold]
    fn register(&self, cell: &RefCell<ThreadSlots>) {
        let slot = {
            let mut r = lock(&self.registry);
            let slot = Arc::new(Slot {
                index: r.registered,
                ..Slot::default()
            });
            r.registered += 1;
            r.live.push(slot.clone());
            slot
        };
        let mut slots = cell.borrow_mut();
        // Forget the slots of tables that are gone.
        slots.0.retain(|(_, _, r)| r.strong_count() > 0);
        slots
            .0
            .push((self.id, slot, Arc::downgrade(&self.registry)));
    }

    /// Adds running totals counted elsewhere (a restored run's): transitions, segments, timers
    /// fired, opens refused, made and removed, and the timer lag. Occupancy and pending timers
    /// are not totals: they are recounted from the connections.
    pub fn carry(&self, totals: &CounterSnapshot) {
        let r = lock(&self.registry);
        let t = &r.retired;
        let set = |a: &AtomicU64, v: u64| add(a, v);
        for (s, side) in totals.transitions.iter().enumerate() {
            for (f, from) in side.iter().enumerate() {
                for (to, &n) in from.iter().enumerate() {
                    set(&t.transitions[s][f][to], n);
                }
            }
        }
        for (s, side) in totals.segments.iter().enumerate() {
            for (o, &n) in side.iter().enumerate() {
                set(&t.segments[s][o], n);
            }
        }
        for (k, &n) in totals.timers_fired.iter().enumerate() {
            set(&t.timers_fired[k], n);
        }
        for (k, &n) in totals.open_failures.iter().enumerate() {
            set(&t.open_failures[k], n);
        }
        set(&t.opened, totals.opened);
        set(&t.removed, totals.removed);
        set(&t.time_wait_overflows, totals.time_wait_overflows);
        for (e, &n) in totals.listen.iter().enumerate() {
            set(&t.listen[e], n);
        }
        set(&t.time_wait_reused, totals.time_wait_reused);
        for (b, &n) in totals.connect_buckets.iter().enumerate() {
            set(&t.connect_buckets[b], n);
        }
        set(&t.connect_sum_ms, totals.connect_sum_ms);
        for (b, &n) in totals.lag_buckets.iter().enumerate() {
            set(&t.lag_buckets[b], n);
        }
        set(&t.lag_sum_ms, totals.lag_sum_ms);
        if totals.lag_max_ms > t.lag_max_ms.load(Relaxed) {
            t.lag_max_ms.store(totals.lag_max_ms, Relaxed);
        }
    }

    /// Slots of threads still running that have written here.
    pub fn live_slots(&self) -> usize {
        lock(&self.registry).live.len()
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let r = lock(&self.registry);
        let slots: Vec<&Slot> = r.live.iter().map(|s| &**s).chain([&r.retired]).collect();
        let load = |a: &AtomicU64| a.load(Relaxed);
        let sum =
            |f: &dyn Fn(&Slot) -> u64| slots.iter().map(|s| f(s)).fold(0u64, u64::wrapping_add);
        let sum_i =
            |f: &dyn Fn(&Slot) -> i64| slots.iter().map(|s| f(s)).fold(0i64, i64::wrapping_add);
        CounterSnapshot {
            occupancy: std::array::from_fn(|s| {
                std::array::from_fn(|st| sum_i(&|x| x.occupancy[s][st].load(Relaxed)))
            }),
            transitions: std::array::from_fn(|s| {
                std::array::from_fn(|f| {
                    std::array::from_fn(|t| sum(&|x| load(&x.transitions[s][f][t])))
                })
            }),
            segments: std::array::from_fn(|s| {
                std::array::from_fn(|o| sum(&|x| load(&x.segments[s][o])))
            }),
            timers_pending: std::array::from_fn(|k| sum_i(&|x| x.timers_pending[k].load(Relaxed))),
            timers_fired: std::array::from_fn(|k| sum(&|x| load(&x.timers_fired[k]))),
            open_failures: std::array::from_fn(|r| sum(&|x| load(&x.open_failures[r]))),
            opened: sum(&|x| load(&x.opened)),
            removed: sum(&|x| load(&x.removed)),
            time_wait_overflows: sum(&|x| load(&x.time_wait_overflows)),
            listen: std::array::from_fn(|e| sum(&|x| load(&x.listen[e]))),
            time_wait_reused: sum(&|x| load(&x.time_wait_reused)),
            in_flight: sum_i(&|x| x.in_flight.load(Relaxed)),
            connect_buckets: std::array::from_fn(|b| sum(&|x| load(&x.connect_buckets[b]))),
            connect_sum_ms: sum(&|x| load(&x.connect_sum_ms)),
            lag_buckets: std::array::from_fn(|b| sum(&|x| load(&x.lag_buckets[b]))),
            lag_sum_ms: sum(&|x| load(&x.lag_sum_ms)),
            lag_max_ms: slots.iter().map(|s| load(&s.lag_max_ms)).max().unwrap_or(0),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Timewait socks a host had no room for (`tcp_max_tw_buckets`; `TCPTimeWaitOverflow`).
    pub time_wait_overflows: u64,
    /// What listeners did, by [`ListenEvent`] (`ListenDrops`, `SyncookiesSent`, …).
    pub listen: [u64; 5],
    /// TIME-WAITs a connect took over (`tcp_tw_reuse`; Linux's `TWRecycled`).
    pub time_wait_reused: u64,
    /// Segments in flight on the link.
    pub in_flight: i64,
    /// How long active opens took, by `CONNECT_BUCKETS_MS`, and in all.
    pub connect_buckets: [u64; CONNECT_BUCKETS_MS.len() + 1],
    pub connect_sum_ms: u64,
    pub lag_buckets: [u64; LAG_BUCKETS_MS.len() + 1],
    pub lag_sum_ms: u64,
    pub lag_max_ms: u64,
}

impl CounterSnapshot {
    pub fn occupancy(&self, side: Side, state: State) -> i64 {
        self.occupancy[side_ix(side)][state as usize]
    }

    pub fn listen(&self, ev: ListenEvent) -> u64 {
        self.listen[ev as usize]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads come and go (as a blocking pool's do): what each counted stays in the totals, and
    /// its slot goes with it.
    #[test]
    fn threads_that_exit_leave_their_counts_and_take_their_slots() {
        let c = Arc::new(Counters::default());
        c.with(|s| s.opened());
        for round in 0..50 {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        c.with(|s| {
                            s.opened();
                            s.enter(Side::Client, State::Established);
                            s.lag(7);
                        })
                    })
                })
                .collect();
            workers.into_iter().for_each(|w| w.join().unwrap());
            assert_eq!(
                c.live_slots(),
                1,
                "round {round}: only this thread's slot lives"
            );
        }
        let snap = c.snapshot();
        assert_eq!(snap.opened, 1 + 200);
        assert_eq!(snap.occupancy(Side::Client, State::Established), 200);
        assert_eq!((snap.lag_sum_ms, snap.lag_max_ms), (1400, 7));
        // Each thread had a slot of its own, in order.
        assert_eq!(lock(&c.registry).registered, 201);
    }

    /// A thread that outlives a table it wrote to exits cleanly: nothing is left to fold into.
    #[test]
    fn a_thread_may_outlive_the_counters_it_wrote_to() {
        std::thread::spawn(|| {
            let c = Counters::default();
            c.with(|s| s.opened());
            drop(c);
        })
        .join()
        .unwrap();
    }
}

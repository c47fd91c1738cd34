//! The connection table: connections by id in a sharded map (dashmap), their timers in one
//! hierarchical wheel, addresses and ports like a real host's, and counters kept on every change.
//!
//! Owns: which connections exist, their 4-tuples and ports, their timers, and the accounting.
//! Uses the core (`crate::tcp`) for every protocol decision and knows nothing of gRPC.
//!
//! Concurrency rules, which every method keeps:
//! - a map guard is never held across `.await` (no method here is async but the clock driver,
//!   which holds none), nor while touching another key;
//! - lock order is map shard → wheel, and map shard → ports: the timer path takes due entries
//!   from the wheel, lets go of it, then locks each connection's shard.
//!
//! Memory: the map holds `ConnId → Box<Conn>` (16-byte buckets), because hashbrown's load factor
//! (0.44–0.87) would waste too much around 104-byte values stored inline. A pending timer costs a
//! wheel entry; a connection without one costs nothing there.

pub mod addr;
pub mod clock;
pub mod counters;
pub mod wheel;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use rustc_hash::FxBuildHasher;
use tokio::sync::broadcast;

use crate::tcp::pair::{Manual, Observer, PairMut, Scratch, WireError};
use crate::tcp::{
    self, Direction, Endpoint, External, Pair, Segment, SeqNum, Side, State, Timer, TimerKind,
    Transition,
};
use addr::Ports;
pub use addr::{AddrError, Addresses, Cidr, ConnId, FourTuple};
pub use clock::Clock;
pub use counters::{CounterSnapshot, Counters, OpenFailure, SegmentOutcome};
use wheel::Wheel;

/// How a connection's segments travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A pair whose segments are delivered at once.
    Auto,
    /// A pair whose segments wait on the wire for the caller.
    Manual,
    /// One endpoint (a client that connects, or a server that listens) whose peer is the caller.
    External(Side),
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "AUTO",
            Mode::Manual => "MANUAL",
            Mode::External(_) => "EXTERNAL",
        }
    }
}

/// What the map holds (boxed, 104 bytes: an AUTO pair inline, the other kinds behind a pointer
/// of their own where they are larger).
#[derive(Clone, Debug)]
pub enum Conn {
    /// A pair whose segments are delivered at once.
    Auto(Pair),
    /// A pair whose segments wait on the wire for the caller.
    Manual(Box<Manual>),
    /// One endpoint whose peer is the caller.
    External(Box<External>),
}

impl Conn {
    pub fn mode(&self) -> Mode {
        match self {
            Conn::Auto(_) => Mode::Auto,
            Conn::Manual(_) => Mode::Manual,
            Conn::External(x) => Mode::External(external_role(x)),
        }
    }

    /// The settings the connection was opened with, if they are its own (MANUAL and EXTERNAL).
    pub fn settings(&self) -> Option<&tcp::Config> {
        match self {
            Conn::Auto(_) => None,
            Conn::Manual(m) => m.settings(),
            Conn::External(x) => x.settings(),
        }
    }

    /// The pair, for AUTO and MANUAL connections.
    pub fn pair(&self) -> Option<&Pair> {
        match self {
            Conn::Auto(p) => Some(p),
            Conn::Manual(m) => Some(&m.pair),
            Conn::External(_) => None,
        }
    }

    /// The pair driven, for AUTO and MANUAL connections.
    fn drive(&mut self) -> Option<PairMut<'_>> {
        match self {
            Conn::Auto(p) => Some(p.drive()),
            Conn::Manual(m) => Some(m.drive()),
            Conn::External(_) => None,
        }
    }

    /// The endpoint on `side`, if this connection has one.
    pub fn endpoint(&self, side: Side) -> Option<&Endpoint> {
        match self {
            Conn::External(x) => (external_role(x) == side).then_some(&x.endpoint),
            pair => pair.pair().map(|p| p.endpoint(side)),
        }
    }

    pub fn sides(&self) -> &'static [Side] {
        match self.mode() {
            Mode::External(Side::Client) => &[Side::Client],
            Mode::External(Side::Server) => &[Side::Server],
            _ => &Side::BOTH,
        }
    }

    /// The earliest armed deadline, on a clock that stands at `now`.
    pub fn deadline(&self, now: u64) -> Option<u64> {
        match self {
            Conn::External(x) => x.endpoint.timer(now).map(|t| t.deadline),
            pair => pair.pair().and_then(|p| p.deadline(now)),
        }
    }

    fn has_timer(&self) -> bool {
        self.timers().iter().any(Option::is_some)
    }

    fn timers(&self) -> [Option<TimerKind>; 2] {
        let kind = |side| self.endpoint(side).and_then(Endpoint::timer_kind);
        [kind(Side::Client), kind(Side::Server)]
    }

    /// An AUTO pair is removed once both ends are CLOSED; MANUAL and EXTERNAL connections stay
    /// (in CLOSED) until the caller removes them, so that their end can be inspected.
    fn reapable(&self) -> bool {
        matches!(self, Conn::Auto(p) if p.state(Side::Client) == State::Closed && p.state(Side::Server) == State::Closed)
    }
}

/// An EXTERNAL endpoint is a server if it was opened with listen (its passive flag stays).
fn external_role(x: &External) -> Side {
    if x.endpoint.is_passive() {
        Side::Server
    } else {
        Side::Client
    }
}

/// Table settings.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Map shards; a power of two. Default: 4 × the cores, rounded up.
    pub shards: usize,
    /// Connections to pre-size the map for.
    pub capacity: usize,
    /// Most connections the table holds; opens beyond are refused, as conntrack refuses.
    pub max_connections: usize,
    pub client_pools: Vec<Cidr>,
    pub servers: Vec<SocketAddrV4>,
    /// The ephemeral port range, inclusive (Linux `ip_local_port_range`).
    pub ports: (u16, u16),
    /// Seeds the initial sequence numbers, so a virtual-clock run replays exactly.
    pub seed: u64,
    /// Timers expired per batch; the wheel's lock is let go between batches.
    pub timer_batch: usize,
    /// Transition events buffered for watchers (rounded up to a power of two); a watcher further
    /// behind misses the oldest and is told how many.
    pub event_buffer: usize,
}

impl Default for TableConfig {
    fn default() -> TableConfig {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        TableConfig {
            shards: (cores * 4).next_power_of_two(),
            capacity: 1 << 16,
            max_connections: 10_000_000,
            client_pools: vec!["10.0.0.0/16".parse().expect("a valid block")],
            servers: vec![SocketAddrV4::new(Ipv4Addr::new(10, 255, 0, 1), 80)],
            ports: (32768, 60999),
            seed: 0x7463_7073_696d,
            timer_batch: 1024,
            event_buffer: 1 << 16,
        }
    }
}

/// Why a table call was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no connection with id {0}")]
    NotFound(ConnId),
    #[error("the table is full: it holds its maximum of {max} connections")]
    TableFull { max: usize },
    #[error("no ephemeral port is free toward {server}{}", client.map(|c| format!(" from {c}")).unwrap_or_default())]
    PortsExhausted {
        server: SocketAddrV4,
        client: Option<Ipv4Addr>,
    },
    #[error("4-tuple {tuple} is in use by connection {id} ({states})")]
    TupleInUse {
        tuple: FourTuple,
        id: ConnId,
        states: String,
    },
    #[error(transparent)]
    Address(#[from] AddrError),
    #[error("{side} endpoint: {source}")]
    Tcp {
        side: &'static str,
        source: tcp::Error,
    },
    #[error("{op} needs a {needs} connection; connection {id} is {mode}")]
    WrongMode {
        op: &'static str,
        id: ConnId,
        mode: &'static str,
        needs: &'static str,
    },
    #[error("connection {id} is EXTERNAL with a {role} endpoint only; it has no {side} endpoint")]
    NoSuchSide {
        id: ConnId,
        role: &'static str,
        side: &'static str,
    },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the clock is real; only a virtual clock can be advanced")]
    RealClock,
    #[error(
        "{ms} ms from {now} ms would take the clock past its limit of 2^53 ms (about 285 000 years)"
    )]
    ClockLimit { now: u64, ms: u64 },
    #[error("settings.{0}")]
    Settings(tcp::ConfigError),
    #[error(
        "settings: an AUTO pair runs on the server's settings; only MANUAL and EXTERNAL connections take their own"
    )]
    SettingsOnAuto,
}

fn tcp_err(side: Side) -> impl FnOnce(tcp::Error) -> Error {
    move |source| Error::Tcp {
        side: side.as_str(),
        source,
    }
}

/// One endpoint's change of state, for watchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: ConnId,
    pub side: Side,
    pub transition: Transition,
    /// When, on the table's clock (ms).
    pub at: u64,
}

/// A subscription to transition events (see `Table::watch`).
pub struct Watcher {
    pub rx: broadcast::Receiver<Event>,
    table: std::sync::Arc<Table>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.table.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which sides a close acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sides {
    One(Side),
    /// Both at once: a simultaneous close.
    Both,
}

/// A half-close (FIN, keep receiving) or a full close (the application is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseHow {
    Shutdown,
    Close,
}

/// What to do with segments on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireAction {
    Deliver,
    Drop,
    Duplicate,
    Reorder,
}

/// An open request.
#[derive(Clone, Debug)]
pub struct OpenSpec {
    pub mode: Mode,
    /// An explicit 4-tuple; else one is allocated like `connect()` would.
    pub tuple: Option<FourTuple>,
    /// Allocate from this client address only.
    pub client_ip: Option<Ipv4Addr>,
    /// Toward this server; else the first configured one.
    pub server: Option<SocketAddrV4>,
    /// The client's (or the EXTERNAL endpoint's) ISS; else one is derived from the seed.
    pub iss: Option<u32>,
    /// The server's ISS in a pair.
    pub server_iss: Option<u32>,
    /// MANUAL and EXTERNAL: protocol settings for this connection instead of the table's.
    pub settings: Option<tcp::Config>,
    /// The port shard (a set of client IPs) the allocator starts in. `None`: the calling
    /// thread's own, so that threads opening at once fill different client IPs under different
    /// locks. A fixed shard makes the 4-tuples depend on the order of the opens only, whichever
    /// thread makes them: what a replay on a virtual clock needs.
    pub port_shard: Option<usize>,
}

impl OpenSpec {
    pub fn new(mode: Mode) -> OpenSpec {
        OpenSpec {
            mode,
            tuple: None,
            client_ip: None,
            server: None,
            iss: None,
            server_iss: None,
            settings: None,
            port_shard: None,
        }
    }
}

/// A connection as opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub id: ConnId,
    pub tuple: FourTuple,
    pub states: [Option<State>; 2],
    /// The 4-tuple was taken over from a server-side TIME-WAIT (Linux's TIME-WAIT recycling).
    pub reused_time_wait: bool,
}

/// One side of a connection, for `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideInfo {
    pub side: Side,
    pub state: State,
    pub iss: SeqNum,
    pub irs: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    pub snd_wnd: u16,
    pub rcv_nxt: SeqNum,
    pub rcv_wnd: u16,
    pub unsent: u32,
    pub srtt_ms: Option<u16>,
    pub rto_ms: u64,
    pub timer: Option<Timer>,
}

/// A connection's whole state, for `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    pub tuple: FourTuple,
    pub mode: Mode,
    pub sides: Vec<SideInfo>,
    /// MANUAL: segments on the wire, by direction. EXTERNAL: the outbox, in the endpoint's
    /// direction.
    pub wire: Vec<(Direction, Vec<Segment>)>,
    /// The settings it runs on: its own, or the table's.
    pub settings: tcp::Config,
}

impl ConnInfo {
    pub fn side(&self, side: Side) -> Option<&SideInfo> {
        self.sides.iter().find(|s| s.side == side)
    }
}

/// The states of both sides (`None` where an EXTERNAL connection has no endpoint).
pub type States = [Option<State>; 2];

fn states_of(conn: &Conn) -> States {
    [Side::Client, Side::Server].map(|s| conn.endpoint(s).map(Endpoint::state))
}

/// What an injection did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub before: State,
    pub after: State,
    /// What the endpoint emitted in answer (EXTERNAL), or put on the wire (MANUAL), or what the
    /// pair exchanged as a result (AUTO).
    pub emitted: Vec<Segment>,
}

/// What a wire action moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireOutcome {
    pub moved: Vec<Segment>,
    /// EXTERNAL: when each moved segment was emitted (ms). Empty for pairs.
    pub emitted_at: Vec<u64>,
    pub states: States,
}

/// Timers fired by a clock advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advanced {
    pub now: u64,
    pub fired: u64,
}

/// A full scan of the table, for checking the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub connections: usize,
    pub occupancy: [[i64; 11]; 2],
    pub timers_pending: [i64; 5],
    pub connections_with_timers: usize,
    pub tracked_ports: u64,
}

/// Table-wide figures.
#[derive(Clone, Debug)]
pub struct Stats {
    pub connections: usize,
    pub max_connections: usize,
    pub counters: CounterSnapshot,
    pub ports_used: u64,
    pub ports_capacity: u64,
    pub wheel_entries: usize,
    pub clock: &'static str,
    pub now: u64,
}

/// Timer wheels per table: `WHEEL_SHARDS / PORT_SHARDS` for each port shard (see `Table::wheel`).
const WHEEL_SHARDS: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    /// Due timers taken from a wheel, reused so that expiry allocates nothing once warm.
    static DUE: std::cell::Cell<Vec<(u64, u64)>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Counts what a connection does while a table call runs.
struct Tally<'a> {
    counters: &'a counters::Slot,
    /// Where to publish transitions, while anyone watches: the channel, the id, the time.
    events: Option<(&'a broadcast::Sender<Event>, ConnId, u64)>,
}

impl Tally<'_> {
    /// Runs `f` on an EXTERNAL endpoint: its transitions are reported for `role`, and what it
    /// put in its outbox is counted as sent (a pair reports both through `Observer`).
    fn external<R>(
        &mut self,
        x: &mut External,
        role: Side,
        f: impl FnOnce(&mut External, &mut dyn FnMut(Transition)) -> R,
    ) -> R {
        let sent = x.outbox().len();
        let r = f(x, &mut |t| self.transition(role, t));
        self.counters
            .segment(role, SegmentOutcome::Sent, (x.outbox().len() - sent) as u64);
        r
    }
}

impl Observer for Tally<'_> {
    fn transition(&mut self, side: Side, t: Transition) {
        self.counters.transition(side, t.from, t.to);
        if let Some((tx, id, at)) = self.events {
            // No receiver is not an error: a watcher may just have gone.
            let _ = tx.send(Event {
                id,
                side,
                transition: t,
                at,
            });
        }
    }
    fn segment(&mut self, from: Side, _: &Segment) {
        self.counters.segment(from, SegmentOutcome::Sent, 1);
    }
    fn delivered(&mut self, to: Side, _: &Segment) {
        self.counters.segment(to, SegmentOutcome::Delivered, 1);
    }
    fn overflow(&mut self, from: Side, _: &Segment) {
        self.counters.segment(from, SegmentOutcome::Overflowed, 1);
    }
}

/// One timer wheel, and a lower bound on its earliest deadline (`u64::MAX`: none) that the
/// real-clock driver reads without the lock. Written only under the lock: lowered when a timer is
/// filed, set exact after a poll; a cancelled timer may leave it low, which costs one empty poll.
///
/// `filings` counts the timers armed or disarmed in the wheel (`Wheel::set`), also written only
/// under the lock. The timer path reads it to learn, without the lock, that nothing was filed in
/// the wheel since it took its due entries out (see `Filed`).
#[derive(Debug)]
struct WheelShard {
    wheel: Mutex<Wheel>,
    bound: AtomicU64,
    filings: AtomicU64,
}

impl WheelShard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound, read without the lock (`u64::MAX`: nothing armed).
    fn bound(&self) -> u64 {
        self.bound.load(Ordering::SeqCst)
    }

    /// Makes the bound exact from `w`, this shard's locked wheel; returns it as `w` gives it.
    fn set_bound(&self, w: &Wheel) -> Option<u64> {
        let next = w.next_expiration();
        self.bound.store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        next
    }
}

/// What the wheel holds for a connection, as far as a call on it knows.
#[derive(Clone, Copy, Debug)]
enum Filed {
    /// The connection's deadline: the wheel is kept equal to it whenever its shard is unlocked.
    Deadline,
    /// The timer path took the entry out of wheel `wheel` when its filings count was `filings`.
    /// If the count is unchanged, nothing was filed there since (every filing for a connection
    /// is made under its shard's lock, which the timer path holds when it looks), and the wheel
    /// holds nothing for the connection; otherwise it is not known, and the wheel is set anew.
    Polled { wheel: usize, filings: u64 },
}

/// A value alone on its cache line (128 bytes: the pair of lines x86 prefetches together), for
/// what different threads write: neighbours would otherwise share a line and pass it back and
/// forth between cores ("false sharing").
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// The table.
pub struct Table {
    tcp: tcp::Config,
    addrs: Addresses,
    ports: Ports,
    map: DashMap<ConnId, Box<Conn>, FxBuildHasher>,
    /// Timer wheels, sharded so that threads arming timers rarely meet (see `Table::wheel`), each
    /// on cache lines of its own.
    wheels: Box<[Padded<WheelShard>]>,
    /// When the real-clock driver sleeps: the time (ms) it will wake at, so that arming an
    /// earlier timer wakes it through `wake`. 0 while it is awake, and always on a virtual clock.
    wake_at: Padded<AtomicU64>,
    wake: tokio::sync::Notify,
    clock: Clock,
    counters: Counters,
    events: broadcast::Sender<Event>,
    watchers: AtomicUsize,
    /// Written by every open and removal, from every thread: on a cache line of its own, so that
    /// it does not drag the read-mostly fields beside it (the clock, the limits) between cores.
    len: Padded<AtomicUsize>,
    /// `run_timers` calls under way (see there).
    expiring: Padded<AtomicUsize>,
    max: usize,
    seed: u64,
    batch: usize,
}

impl Table {
    pub fn new(cfg: TableConfig, tcp: tcp::Config, clock: Clock) -> Result<Table, String> {
        if !cfg.shards.is_power_of_two() || cfg.shards < 2 {
            return Err(format!(
                "shards: {} is not a power of two of at least 2",
                cfg.shards
            ));
        }
        tcp.validate().map_err(|e| e.to_string())?;
        let addrs = Addresses::new(&cfg.client_pools, &cfg.servers, cfg.ports)
            .map_err(|e| e.to_string())?;
        let now = clock.now();
        Ok(Table {
            tcp,
            addrs,
            ports: Ports::default(),
            map: DashMap::with_capacity_and_hasher_and_shard_amount(
                cfg.capacity,
                FxBuildHasher,
                cfg.shards,
            ),
            wheels: (0..WHEEL_SHARDS)
                .map(|_| {
                    Padded(WheelShard {
                        wheel: Mutex::new(Wheel::new(now)),
                        bound: AtomicU64::new(u64::MAX),
                        filings: AtomicU64::new(0),
                    })
                })
                .collect(),
            wake_at: Padded(AtomicU64::new(0)),
            wake: tokio::sync::Notify::new(),
            clock,
            counters: Counters::default(),
            events: broadcast::channel(cfg.event_buffer.max(1)).0,
            watchers: AtomicUsize::new(0),
            len: Padded(AtomicUsize::new(0)),
            expiring: Padded(AtomicUsize::new(0)),
            max: cfg.max_connections,
            seed: cfg.seed,
            batch: cfg.timer_batch.max(1),
        })
    }

    fn events_for(&self, id: ConnId) -> Option<(&broadcast::Sender<Event>, ConnId, u64)> {
        (self.watchers.load(Ordering::Relaxed) > 0).then(|| (&self.events, id, self.clock.now()))
    }

    /// Subscribes to every transition from now on. The buffer is shared and bounded: a watcher
    /// that falls further behind than `event_buffer` events is told how many it missed.
    pub fn watch(self: &std::sync::Arc<Self>) -> Watcher {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx: self.events.subscribe(),
            table: self.clone(),
        }
    }

    pub fn tcp_config(&self) -> &tcp::Config {
        &self.tcp
    }

    pub fn addresses(&self) -> &Addresses {
        &self.addrs
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub fn len(&self) -> usize {
        self.len.0.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn lookup(&self, tuple: &FourTuple) -> Option<ConnId> {
        let id = self.addrs.id_of(tuple).ok()?;
        self.map.contains_key(&id).then_some(id)
    }

    /// The wheel that holds `id`'s timer. It follows the port shard of the client IP, and the
    /// allocator hands each thread ports from a shard of its own: so threads that arm timers for
    /// the connections they opened meet on neither lock. Within a port shard, the id's hash
    /// spreads connections over several wheels (one client IP alone still gets several).
    fn wheel_of(id: ConnId) -> usize {
        const PER_PORT_SHARD: usize = WHEEL_SHARDS / addr::PORT_SHARDS;
        id.port_shard() * PER_PORT_SHARD + splitmix64(id.0) as usize % PER_PORT_SHARD
    }

    fn wheel(&self, id: ConnId) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheel_at(Self::wheel_of(id))
    }

    fn wheel_at(&self, i: usize) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheels[i].0.lock()
    }

    /// Arms (or, with `None`, disarms) `id`'s timer, and wakes a sleeping real-clock driver if
    /// the timer falls due before it would wake.
    fn file_timer(&self, id: ConnId, deadline: Option<u64>) {
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
        // After the bound is lowered; `drive_timers` says why the two SeqCst steps suffice.
        if deadline.is_some_and(|d| d < self.wake_at.0.load(Ordering::SeqCst)) {
            self.wake.notify_one();
        }
    }

    /// Polls wheel `i` for up to `budget` timers due at `now`; keeps its bound. See `Wheel::poll`.
    /// Returns whether more may be due, and the wheel's filings count as the poll left it.
    fn poll_wheel(
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
    fn earliest_bound(&self) -> u64 {
        self.wheels
            .iter()
            .map(|w| w.0.bound())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The earliest time at or before `until` at which any wheel could fire something. Only the
    /// wheels whose bound is at or before `until` are locked (and their bounds made exact).
    fn next_expiration(&self, until: u64) -> Option<u64> {
        self.wheels
            .iter()
            .map(|w| &w.0)
            .filter(|shard| shard.bound() <= until)
            .filter_map(|shard| shard.set_bound(&shard.lock()))
            .min()
            .filter(|&t| t <= until)
    }

    /// A deterministic ISS per (seed, id, time), spread like RFC 6528's.
    fn iss(&self, id: ConnId, now: u64, salt: u64) -> SeqNum {
        SeqNum(
            splitmix64(self.seed ^ id.0.rotate_left(17) ^ now.wrapping_mul(0x9E37_79B9) ^ salt)
                as u32,
        )
    }

    /// After a call changed `conn`: keep the timer counters and the wheel in step with it.
    /// `filed`: what the wheel holds for `id`, `None` if that is not known (the wheel is then set
    /// from the connection whatever it holds).
    fn sync_timers(
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

    /// Runs `op` on connection `id` under its shard's lock, keeps the accounting, and removes the
    /// connection if it is finished. The single path for every mutation of an existing connection.
    fn with_conn<R>(
        &self,
        id: ConnId,
        op: impl FnOnce(&mut Conn, &mut Tally<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.with_conn_synced(id, Filed::Deadline, op)
    }

    /// `with_conn`, told what the wheel holds for `id` (the timer path took the entry out before
    /// locking the connection).
    fn with_conn_synced<R>(
        &self,
        id: ConnId,
        filed: Filed,
        op: impl FnOnce(&mut Conn, &mut Tally<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.counters.with(|c| {
            let mut result = None;
            let removed = self.map.remove_if_mut(&id, |_, conn| {
                // Any time near the deadlines resolves them (see `Endpoint::timer`).
                let now = self.clock.now();
                let timers = conn.timers();
                let filed = match filed {
                    Filed::Deadline => Some(conn.deadline(now)),
                    // Acquire: pairs with the Release of a filing for `id` made before its
                    // caller let go of the shard lock we now hold.
                    Filed::Polled { wheel, filings }
                        if self.wheels[wheel].0.filings.load(Ordering::Acquire) == filings =>
                    {
                        Some(None)
                    }
                    Filed::Polled { .. } => None,
                };
                let mut tally = Tally {
                    counters: c,
                    events: self.events_for(id),
                };
                let r = op(conn, &mut tally);
                self.sync_timers(c, id, timers, filed, conn, now);
                let reap = conn.reapable();
                if reap {
                    // Under the shard lock, so that an open of this 4-tuple sees the entry or
                    // the free port, never the one without the other.
                    self.ports.release(&self.addrs, id);
                }
                result = Some(r);
                reap
            });
            if let Some((_, conn)) = removed {
                // A reaped pair is CLOSED on both sides: `sync_timers` disarmed it above.
                self.forget(c, &conn);
            }
            result.unwrap_or(Err(Error::NotFound(id)))
        })
    }

    /// Accounting for a connection that left the map. Its port was released and its timer
    /// disarmed as it left, under its shard's lock: done after, they could free the port or cancel
    /// the timer of a new connection that had taken the same 4-tuple in between.
    fn forget(&self, c: &counters::Slot, conn: &Conn) {
        for &side in conn.sides() {
            if let Some(ep) = conn.endpoint(side) {
                c.leave(side, ep.state());
                if let Some(kind) = ep.timer_kind() {
                    c.timer_disarmed(kind);
                }
            }
        }
        self.len.0.fetch_sub(1, Ordering::Relaxed);
        c.removed();
    }

    // ---- open ------------------------------------------------------------------------------------

    /// Opens one connection: an AUTO pair is ESTABLISHED when this returns; a MANUAL pair has its
    /// SYN on the wire; an EXTERNAL client has sent its SYN, an EXTERNAL server listens.
    pub fn open(&self, spec: &OpenSpec) -> Result<Opened, Error> {
        // Reserve a place first, so concurrent opens never pass the maximum.
        if self.len.0.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.len.0.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .with(|c| c.open_failed(OpenFailure::TableFull));
            return Err(Error::TableFull { max: self.max });
        }
        let r = self.counters.with(|c| self.open_reserved(c, spec));
        if r.as_ref().is_ok_and(|o| o.reused_time_wait) || r.is_err() {
            self.len.0.fetch_sub(1, Ordering::Relaxed); // no new entry after all
        }
        r
    }

    fn open_reserved(&self, c: &counters::Slot, spec: &OpenSpec) -> Result<Opened, Error> {
        if let Some(own) = &spec.settings {
            if spec.mode == Mode::Auto {
                return Err(Error::SettingsOnAuto);
            }
            own.validate().map_err(Error::Settings)?;
        }
        let now = self.clock.now();
        let (id, tuple, claimed) = match spec.tuple {
            Some(tuple) => {
                let id = self.addrs.id_of(&tuple)?;
                let (server, ip) = (
                    self.addrs.server_index(tuple.server)?,
                    self.addrs.ip_index(*tuple.client.ip())?,
                );
                let claimed = self
                    .ports
                    .claim(&self.addrs, server, ip, tuple.client.port());
                (id, tuple, claimed)
            }
            None => {
                let server_addr = spec.server.unwrap_or(self.addrs.servers()[0]);
                let server = self.addrs.server_index(server_addr)?;
                let ip = spec
                    .client_ip
                    .map(|ip| self.addrs.ip_index(ip))
                    .transpose()?;
                let Ok((ip, port)) = self.ports.allocate(
                    &self.addrs,
                    server,
                    ip,
                    spec.port_shard.unwrap_or(c.index),
                ) else {
                    c.open_failed(OpenFailure::PortsExhausted);
                    return Err(Error::PortsExhausted {
                        server: server_addr,
                        client: spec.client_ip,
                    });
                };
                let tuple = FourTuple {
                    client: SocketAddrV4::new(self.addrs.ip_at(ip), port),
                    server: server_addr,
                };
                (
                    self.addrs.id_of(&tuple).expect("allocated from the pools"),
                    tuple,
                    true,
                )
            }
        };
        let iss = spec.iss.map_or_else(|| self.iss(id, now, 1), SeqNum);
        let server_iss = spec.server_iss.map_or_else(|| self.iss(id, now, 2), SeqNum);
        let mut tally = Tally {
            counters: c,
            events: self.events_for(id),
        };
        match self.map.entry(id) {
            MapEntry::Vacant(slot) => {
                if !claimed {
                    // The port was held when we looked, by a connection that has left since (we
                    // hold this 4-tuple's shard now, so nothing else can take it): claim again.
                    let (server, ip) = (
                        self.addrs.server_index(tuple.server)?,
                        self.addrs.ip_index(*tuple.client.ip())?,
                    );
                    if !self
                        .ports
                        .claim(&self.addrs, server, ip, tuple.client.port())
                    {
                        c.open_failed(OpenFailure::TupleInUse);
                        return Err(Error::TupleInUse {
                            tuple,
                            id,
                            states: "its port is held".into(),
                        });
                    }
                }
                let mut conn = match spec.mode {
                    Mode::Auto => Conn::Auto(Pair::new()),
                    Mode::Manual => Conn::Manual(Box::new(Manual::new(spec.settings.clone()))),
                    Mode::External(_) => {
                        Conn::External(Box::new(External::with_settings(spec.settings.clone())))
                    }
                };
                let sides: &[Side] = match spec.mode {
                    Mode::External(role) => std::slice::from_ref(if role == Side::Client {
                        &Side::Client
                    } else {
                        &Side::Server
                    }),
                    _ => &Side::BOTH,
                };
                for &side in sides {
                    c.enter(side, State::Closed);
                }
                let cfg = &self.tcp;
                let r = SCRATCH.with_borrow_mut(|scratch| match (&mut conn, spec.mode) {
                    (Conn::External(x), Mode::External(Side::Client)) => {
                        tally.external(x, Side::Client, |x, t| x.connect(cfg, now, iss, t))
                    }
                    (Conn::External(x), _) => {
                        x.listen(cfg, now, iss, &mut |t| tally.transition(Side::Server, t))
                    }
                    (pair, _) => pair
                        .drive()
                        .expect("a pair")
                        .open(cfg, now, iss, server_iss, scratch, &mut tally),
                });
                r.expect("a fresh endpoint accepts listen and connect");
                self.sync_timers(c, id, [None, None], Some(None), &conn, now);
                let states = states_of(&conn);
                slot.insert(Box::new(conn));
                c.opened();
                Ok(Opened {
                    id,
                    tuple,
                    states,
                    reused_time_wait: false,
                })
            }
            MapEntry::Occupied(mut entry) => {
                // Only an explicit 4-tuple can meet a connection already there (the allocator hands
                // out free ports only), and that connection holds the port: nothing to give back.
                let conn: &mut Conn = entry.get_mut();
                let states = states_of(conn);
                let recyclable =
                    conn.pair().is_some() && states == [Some(State::Closed), Some(State::TimeWait)];
                if !recyclable || spec.mode != conn.mode() {
                    c.open_failed(OpenFailure::TupleInUse);
                    return Err(Error::TupleInUse {
                        tuple,
                        id,
                        states: describe_states(&states),
                    });
                }
                // Linux: a SYN above RCV.NXT takes over a TIME-WAIT 4-tuple. Our SYN must be
                // above the old connection's sequence space, so the ISS is placed past it.
                let old = conn.pair().expect("checked above").server.rcv_nxt();
                let iss = spec.iss.map_or(old + (1 << 20), SeqNum);
                let (timers, deadline) = (conn.timers(), conn.deadline(now));
                let cfg = &self.tcp;
                let mut p = conn.drive().expect("checked above");
                SCRATCH
                    .with_borrow_mut(|scratch| p.reconnect(cfg, now, iss, scratch, &mut tally))
                    .map_err(tcp_err(Side::Client))?;
                self.sync_timers(c, id, timers, Some(deadline), conn, now);
                c.opened();
                Ok(Opened {
                    id,
                    tuple,
                    states: states_of(conn),
                    reused_time_wait: true,
                })
            }
        }
    }

    // ---- user calls on existing connections ---------------------------------------------------

    /// Closes one side (FIN; `Close` also orphans it), or both at once (simultaneous close).
    pub fn close(&self, id: ConnId, sides: Sides, how: CloseHow) -> Result<States, Error> {
        let now = self.clock.now();
        let cfg = &self.tcp;
        self.with_conn(id, |conn, tally| {
            let half = how == CloseHow::Shutdown;
            match (&mut *conn, sides) {
                (Conn::External(x), sides) => {
                    let role = external_role(x);
                    if sides != Sides::One(role) {
                        return Err(no_side(
                            id,
                            role,
                            if sides == Sides::Both {
                                "BOTH"
                            } else {
                                role.peer().as_str()
                            },
                        ));
                    }
                    tally
                        .external(x, role, |x, t| {
                            if half {
                                x.shutdown(cfg, now, t)
                            } else {
                                x.close(cfg, now, t)
                            }
                        })
                        .map_err(tcp_err(role))?;
                }
                (pair, Sides::Both) => {
                    let mut p = pair.drive().expect("a pair");
                    SCRATCH
                        .with_borrow_mut(|s| p.close_both(cfg, now, half, s, tally))
                        .map_err(|e| Error::Tcp {
                            side: "both",
                            source: e,
                        })?
                }
                (pair, Sides::One(side)) => {
                    let mut p = pair.drive().expect("a pair");
                    SCRATCH
                        .with_borrow_mut(|s| {
                            if half {
                                p.shutdown(cfg, now, side, s, tally)
                            } else {
                                p.close(cfg, now, side, s, tally)
                            }
                        })
                        .map_err(tcp_err(side))?
                }
            }
            Ok(states_of(conn))
        })
    }

    /// Aborts one side: RST where Linux sends one, then CLOSED.
    pub fn abort(&self, id: ConnId, side: Side) -> Result<States, Error> {
        self.user_call(id, side, UserOp::Abort)
    }

    /// The application on `side` sends `bytes`.
    pub fn send(&self, id: ConnId, side: Side, bytes: u32) -> Result<States, Error> {
        self.user_call(id, side, UserOp::Send(bytes))
    }

    fn user_call(&self, id: ConnId, side: Side, op: UserOp) -> Result<States, Error> {
        let now = self.clock.now();
        let cfg = &self.tcp;
        self.with_conn(id, |conn, tally| {
            match &mut *conn {
                Conn::External(x) => {
                    let role = external_role(x);
                    if role != side {
                        return Err(no_side(id, role, side.as_str()));
                    }
                    tally.external(x, role, |x, t| match op {
                        UserOp::Abort => x.abort(cfg, now, t),
                        UserOp::Send(n) => x.send(cfg, now, n, t),
                    })
                }
                pair => {
                    let mut p = pair.drive().expect("a pair");
                    SCRATCH.with_borrow_mut(|s| match op {
                        UserOp::Abort => p.abort(cfg, now, side, s, tally),
                        UserOp::Send(n) => p.send(cfg, now, side, n, s, tally),
                    })
                }
            }
            .map_err(tcp_err(side))?;
            Ok(states_of(conn))
        })
    }

    /// A forged segment arrives at `to`.
    pub fn inject(&self, id: ConnId, to: Side, seg: &Segment) -> Result<Injected, Error> {
        let now = self.clock.now();
        let cfg = &self.tcp;
        self.with_conn(id, |conn, tally| {
            let before = conn.endpoint(to).map(Endpoint::state);
            let Some(before) = before else {
                let role = if let Conn::External(x) = conn {
                    external_role(x)
                } else {
                    to
                };
                return Err(no_side(id, role, to.as_str()));
            };
            tally.counters.segment(to, SegmentOutcome::Injected, 1);
            let emitted = match &mut *conn {
                Conn::External(x) => {
                    let out = x.inject(cfg, now, seg, &mut |t| tally.transition(to, t));
                    tally
                        .counters
                        .segment(to, SegmentOutcome::Sent, out.len() as u64);
                    out
                }
                pair => {
                    let mut log = Collect {
                        inner: tally,
                        segments: Vec::new(),
                    };
                    let mut p = pair.drive().expect("a pair");
                    SCRATCH.with_borrow_mut(|s| p.inject(cfg, now, to, seg, s, &mut log));
                    log.segments
                }
            };
            let after = conn.endpoint(to).map_or(before, Endpoint::state);
            Ok(Injected {
                before,
                after,
                emitted,
            })
        })
    }

    /// MANUAL: deliver, drop, duplicate or reorder the first `count` segments travelling `dir`.
    /// EXTERNAL: `Deliver` hands the caller what the endpoint emitted on its own (timers, calls),
    /// `Drop` discards it; `dir` must be the endpoint's own direction.
    pub fn wire(
        &self,
        id: ConnId,
        dir: Direction,
        action: WireAction,
        count: u32,
    ) -> Result<WireOutcome, Error> {
        let now = self.clock.now();
        let cfg = &self.tcp;
        self.with_conn(id, |conn, tally| {
            let from = dir.to().peer();
            let mut emitted_at = Vec::new();
            let moved = match conn {
                Conn::Auto(_) => {
                    return Err(Error::WrongMode {
                        op: "wire",
                        id,
                        mode: "AUTO",
                        needs: "MANUAL or EXTERNAL",
                    });
                }
                Conn::Manual(m) => {
                    let mut p = m.drive();
                    match action {
                        WireAction::Deliver => SCRATCH
                            .with_borrow_mut(|s| p.deliver(cfg, now, dir, count, s, tally))?,
                        WireAction::Drop => p.drop_segments(dir, count)?,
                        WireAction::Duplicate => p.duplicate(dir, count)?,
                        WireAction::Reorder => p.reorder(dir, count)?,
                    }
                }
                Conn::External(x) => {
                    let role = external_role(x);
                    if from != role {
                        return Err(no_side(id, role, from.as_str()));
                    }
                    let waiting = x.outbox().len() as u32;
                    if waiting < count {
                        return Err(WireError::NotEnough {
                            dir,
                            requested: count,
                            waiting,
                        }
                        .into());
                    }
                    match action {
                        WireAction::Deliver | WireAction::Drop => {
                            let taken = x.take(count as usize);
                            emitted_at = taken.iter().map(|e| e.at).collect();
                            taken.into_iter().map(|e| e.seg).collect()
                        }
                        WireAction::Duplicate | WireAction::Reorder => {
                            return Err(Error::WrongMode {
                                op: "duplicate or reorder",
                                id,
                                mode: "EXTERNAL",
                                needs: "MANUAL",
                            });
                        }
                    }
                }
            };
            let outcome = match action {
                WireAction::Deliver => None, // counted as delivered by the pair
                WireAction::Drop => Some(SegmentOutcome::Dropped),
                WireAction::Duplicate => Some(SegmentOutcome::Duplicated),
                WireAction::Reorder => Some(SegmentOutcome::Reordered),
            };
            if let Some(o) = outcome {
                tally.counters.segment(from, o, moved.len() as u64);
            }
            if matches!(conn, Conn::External(_)) && action == WireAction::Deliver {
                tally
                    .counters
                    .segment(from.peer(), SegmentOutcome::Delivered, moved.len() as u64);
            }
            Ok(WireOutcome {
                moved,
                emitted_at,
                states: states_of(conn),
            })
        })
    }

    /// Removes a connection (MANUAL and EXTERNAL ones stay until removed), freeing its port.
    /// No segment is sent: use `abort` first for a RST.
    pub fn remove(&self, id: ConnId) -> Result<(), Error> {
        let (_, conn) = self
            .map
            .remove_if(&id, |_, conn| {
                // Under the shard lock, as in `with_conn_synced`: see `forget`.
                self.ports.release(&self.addrs, id);
                if conn.has_timer() {
                    self.file_timer(id, None);
                }
                true
            })
            .ok_or(Error::NotFound(id))?;
        self.counters.with(|c| self.forget(c, &conn));
        Ok(())
    }

    // ---- queries ------------------------------------------------------------------------------

    pub fn get(&self, id: ConnId) -> Result<ConnInfo, Error> {
        let conn = self.map.get(&id).ok_or(Error::NotFound(id))?;
        Ok(self.info(id, &conn))
    }

    fn info(&self, id: ConnId, conn: &Conn) -> ConnInfo {
        let cfg = conn.settings().unwrap_or(&self.tcp);
        let now = self.clock.now();
        let sides = conn
            .sides()
            .iter()
            .filter_map(|&side| conn.endpoint(side).map(|ep| (side, ep)))
            .map(|(side, ep)| SideInfo {
                side,
                state: ep.state(),
                iss: ep.iss(),
                irs: ep.irs(),
                snd_una: ep.snd_una(),
                snd_nxt: ep.snd_nxt(),
                snd_wnd: ep.snd_wnd(),
                rcv_nxt: ep.rcv_nxt(),
                rcv_wnd: cfg.rcv_wnd,
                unsent: ep.unsent(),
                srtt_ms: ep.srtt(),
                rto_ms: ep.rto_ms(cfg),
                timer: ep.timer(now),
            })
            .collect();
        let wire = match conn {
            Conn::Auto(_) => Vec::new(),
            Conn::Manual(m) => [Direction::ClientToServer, Direction::ServerToClient]
                .map(|d| (d, m.wire().queue(d).iter().copied().collect()))
                .to_vec(),
            Conn::External(x) => {
                vec![(
                    Direction::from_side(external_role(x)),
                    x.outbox().iter().map(|e| e.seg).collect(),
                )]
            }
        };
        ConnInfo {
            id,
            tuple: self
                .addrs
                .tuple_of(id)
                .expect("ids in the map come from this table's addresses"),
            mode: conn.mode(),
            sides,
            wire,
            settings: cfg.clone(),
        }
    }

    /// Visits every connection (shard by shard, holding one shard's read lock at a time).
    pub fn for_each(&self, mut f: impl FnMut(ConnId, &Conn)) {
        for item in self.map.iter() {
            f(*item.key(), item.value());
        }
    }

    /// Connections matching `filter`, in id order, after `after`, at most `limit` of them. One
    /// pass over the table keeping the `limit` smallest matching ids in a heap: memory is
    /// O(limit) whatever the table holds, time O(connections · log limit).
    pub fn list(
        &self,
        after: Option<ConnId>,
        limit: usize,
        filter: impl Fn(&Conn) -> bool,
    ) -> Vec<ConnInfo> {
        if limit == 0 {
            return Vec::new();
        }
        let mut smallest: std::collections::BinaryHeap<ConnId> =
            std::collections::BinaryHeap::with_capacity(limit.min(1 << 16) + 1);
        self.for_each(|id, c| {
            if after.is_some_and(|a| id <= a)
                || smallest.len() == limit && smallest.peek() < Some(&id)
            {
                return;
            }
            if filter(c) {
                smallest.push(id);
                if smallest.len() > limit {
                    smallest.pop(); // the largest
                }
            }
        });
        smallest
            .into_sorted_vec()
            .into_iter()
            .filter_map(|id| self.get(id).ok())
            .collect()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.len(),
            max_connections: self.max,
            counters: self.counters.snapshot(),
            ports_used: self.ports.used(),
            ports_capacity: Ports::capacity(&self.addrs),
            wheel_entries: (0..WHEEL_SHARDS).map(|i| self.wheel_at(i).len()).sum(),
            clock: self.clock.name(),
            now: self.clock.now(),
        }
    }

    /// Recounts everything from the connections themselves (O(connections); for checks).
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        self.for_each(|id, conn| {
            scan.connections += 1;
            for &side in conn.sides() {
                if let Some(ep) = conn.endpoint(side) {
                    scan.occupancy[counters::side_ix(side)][ep.state() as usize] += 1;
                    if let Some(kind) = ep.timer_kind() {
                        scan.timers_pending[counters::timer_ix(kind)] += 1;
                    }
                }
            }
            if conn.has_timer() {
                scan.connections_with_timers += 1;
            }
            if addr::tracks(&self.addrs, id) {
                scan.tracked_ports += 1;
            }
        });
        scan
    }

    /// Checks that the wheel holds exactly one entry per connection with a timer, at its
    /// deadline. O(connections); for tests.
    pub fn check_wheel(&self) -> Result<(), String> {
        let mut with_timers = 0;
        let mut err = None;
        let now = self.clock.now();
        self.for_each(|id, conn| {
            let want = conn.deadline(now);
            let got = self.wheel(id).deadline(id.0);
            if want.is_some() {
                with_timers += 1;
            }
            // The wheel's bound must not be past any of its deadlines: the real-clock driver
            // sleeps until the earliest bound.
            let bound = self.wheels[Self::wheel_of(id)].0.bound();
            if let Some(d) = want.filter(|&d| bound > d)
                && err.is_none()
            {
                err = Some(format!(
                    "connection {id}: deadline {d}, but its wheel's bound is {bound}"
                ));
            }
            if want != got && err.is_none() {
                err = Some(format!(
                    "connection {id}: deadline {want:?}, wheel has {got:?}"
                ));
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let entries: usize = (0..WHEEL_SHARDS).map(|i| self.wheel_at(i).len()).sum();
        if entries != with_timers {
            return Err(format!(
                "{entries} wheel entries for {with_timers} connections with timers"
            ));
        }
        Ok(())
    }

    /// Checks every invariant the table keeps, by a full scan (O(connections); for tests and
    /// the simulation): the counters equal a recount, the wheel holds exactly one entry per
    /// connection with a timer, at its deadline, the ports in use are the connections holding
    /// them, and every endpoint has SND.UNA ≤ SND.NXT.
    pub fn verify(&self) -> Result<(), String> {
        let stats = self.stats();
        let scan = self.scan();
        let c = &stats.counters;
        let checks: [(&str, bool); 5] = [
            ("connections", scan.connections == stats.connections),
            ("occupancy", scan.occupancy == c.occupancy),
            ("timers pending", scan.timers_pending == c.timers_pending),
            ("ports in use", scan.tracked_ports == stats.ports_used),
            (
                "wheel entries",
                scan.connections_with_timers == stats.wheel_entries,
            ),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!("{what} differ: counters {stats:?}, scan {scan:?}"));
        }
        self.check_wheel()?;
        let mut bad = None;
        self.for_each(|id, conn| {
            for &side in conn.sides() {
                if let Some(ep) = conn.endpoint(side)
                    && ep.snd_una() > ep.snd_nxt()
                    && bad.is_none()
                {
                    bad = Some(format!(
                        "connection {id} {side:?}: SND.UNA {} > SND.NXT {}",
                        ep.snd_una(),
                        ep.snd_nxt()
                    ));
                }
            }
        });
        bad.map_or(Ok(()), Err)
    }

    // ---- time ---------------------------------------------------------------------------------

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
    fn fire(&self, id: ConnId, deadline: u64, now: u64, filed: Filed) -> u64 {
        let cfg = &self.tcp;
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
            match conn {
                Conn::External(x) => {
                    let role = external_role(x);
                    tally.external(x, role, |x, t| x.on_timeout(cfg, now, t));
                }
                pair => {
                    let mut p = pair.drive().expect("a pair");
                    SCRATCH.with_borrow_mut(|s| p.on_timeout(cfg, now, s, tally));
                }
            }
            Ok(fired)
        });
        r.unwrap_or(0)
    }

    /// Virtual clock: moves time on by `ms`, firing every timer due on the way in deadline order,
    /// each at its own deadline. Deterministic: the same calls give the same results.
    pub fn advance(&self, ms: u64) -> Result<Advanced, Error> {
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

/// Drives a real-clock table's timers until `stop` says true: it fires what is due, one batch at a
/// time, yielding to other tasks between batches so that a storm of expiries never starves the
/// runtime; then it sleeps until the earliest deadline in any wheel, at most `max_sleep`, or until
/// a sooner timer is armed. An idle table costs no wake-ups. Lateness is recorded per timer
/// (`Counters::lag`).
///
/// No wake-up is lost: the driver publishes `wake_at` = 0 (awake), reads the wheels' bounds,
/// publishes the time it will sleep until, and reads the bounds again; `file_timer` lowers a bound
/// and then reads `wake_at`, all SeqCst. Either the driver's second read sees the new bound (and
/// it does not sleep past it), or the filer's read comes after the driver published its wake time
/// (and it notifies: `Notify` keeps the permit if the driver is not waiting yet).
pub async fn drive_timers(
    table: std::sync::Arc<Table>,
    max_sleep: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Clock::Real { start } = table.clock else {
        return; // a virtual clock moves only by `advance`
    };
    let start = tokio::time::Instant::from_std(start);
    loop {
        if *stop.borrow() {
            return;
        }
        table.wake_at.0.store(0, Ordering::SeqCst);
        let now = table.now();
        loop {
            let (_, more) = table.run_timer_batch(now);
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
        let next = table.earliest_bound();
        if next <= table.now() {
            continue; // due already (armed while we fired, or re-filed)
        }
        let cap = table.now() + max_sleep.as_millis() as u64;
        let until = next.min(cap);
        table.wake_at.0.store(until, Ordering::SeqCst);
        if table.earliest_bound() < until {
            continue; // armed meanwhile, sooner
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + std::time::Duration::from_millis(until)) => {}
            _ = table.wake.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return; // the server is gone
                }
            }
        }
    }
}

/// The user calls that act on one side.
#[derive(Clone, Copy)]
enum UserOp {
    Abort,
    Send(u32),
}

/// Collects the segments a pair sends during one call, and counts as usual.
struct Collect<'a, 'b> {
    inner: &'a mut Tally<'b>,
    segments: Vec<Segment>,
}

impl Observer for Collect<'_, '_> {
    fn transition(&mut self, side: Side, t: Transition) {
        self.inner.transition(side, t);
    }
    fn segment(&mut self, from: Side, seg: &Segment) {
        self.segments.push(*seg);
        self.inner.segment(from, seg);
    }
    fn delivered(&mut self, to: Side, seg: &Segment) {
        self.inner.delivered(to, seg);
    }
    fn overflow(&mut self, from: Side, seg: &Segment) {
        self.inner.overflow(from, seg);
    }
}

fn no_side(id: ConnId, role: Side, side: &'static str) -> Error {
    Error::NoSuchSide {
        id,
        role: role.as_str(),
        side,
    }
}

fn describe_states(states: &States) -> String {
    let name = |s: &Option<State>| s.map_or("-", |s| s.rfc_name());
    format!("client {}, server {}", name(&states[0]), name(&states[1]))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;

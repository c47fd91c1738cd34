//! The connection table: connections by id in a sharded map (dashmap), their timers in
//! hierarchical wheels, addresses and ports like a real host's, and counters kept on every change.
//!
//! Owns: which connections exist, their 4-tuples and ports, their timers, and the accounting.
//! Uses the core (`crate::tcp`) for every protocol decision and knows nothing of gRPC. One file
//! per concern: [`types`] (what calls take and return), [`conn`] (a connection of each kind, and
//! every call on it), [`open`], [`calls`], [`query`], [`timers`], [`verify`], and [`driver`] (the
//! only async part).
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
mod calls;
pub mod clock;
mod conn;
pub mod counters;
mod driver;
mod hosts;
pub mod links;
pub mod listeners;
mod open;
mod query;
mod restore;
mod timers;
mod types;
mod verify;
pub mod wheel;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

pub(crate) use crate::mix::splitmix64;
use crate::tcp::{self, Segment, Side, Transition};
use addr::Ports;
pub use addr::{AddrError, Addresses, Cidr, ConnId, FourTuple, PortsPosition};
pub use clock::Clock;
pub use conn::Conn;
pub use counters::{CounterSnapshot, Counters, OpenFailure, SegmentOutcome};
use driver::{Events, Sink, Wake};
pub use driver::{WatchFilter, Watched, Watcher, drive_timers};
pub use hosts::TwReuse;
pub use restore::RestoreError;
use timers::{Filed, WHEEL_SHARDS, WheelShard};
pub use types::{
    Advanced, ConnInfo, Error, Event, INJECT_REPLY_LIMIT, Injected, Mode, OpenSpec, Opened, Scan,
    SetupError, SideInfo, Sides, States, Stats, TableConfig, Target, WireAction, WireOutcome,
};
use wheel::Wheel;

thread_local! {
    /// Due timers taken from a wheel, reused so that expiry allocates nothing once warm.
    static DUE: std::cell::Cell<Vec<(u64, u64)>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Counts what a connection does while a table call runs, and publishes its transitions to
/// watchers if any.
struct Tally<'a> {
    /// The settings the connection runs on (the table's, with its link: `Table::with_cfg`).
    cfg: &'a tcp::Config,
    counters: &'a counters::Slot,
    events: Option<Sink<'a>>,
    hosts: Hosts<'a>,
    /// The connection is an AUTO pair, whose handshakes mostly end within the call that began
    /// them: its request socks take no place in their listener's queue unless they outlive the
    /// call, so that a lifecycle writes nothing to the listener (whose cache line every thread's
    /// opens read).
    auto: bool,
    /// A request sock found room for and not yet put in the queue: whether it is young.
    unreserved: Option<bool>,
}

impl<'a> Tally<'a> {
    fn new(
        table: &'a Table,
        cfg: &'a tcp::Config,
        c: &'a counters::Slot,
        id: ConnId,
        now: u64,
        auto: bool,
    ) -> Self {
        Tally {
            cfg,
            counters: c,
            events: table.events.sink(id, now),
            hosts: table.hosts(id),
            auto,
            unreserved: None,
        }
    }
}

impl Drop for Tally<'_> {
    /// A request sock that outlived its call takes its place in the SYN queue now.
    fn drop(&mut self) {
        if let Some(young) = self.unreserved.take() {
            let Hosts { table, id } = self.hosts;
            table.listeners.restore_request(id.server(), young);
        }
    }
}

/// The hosts of one connection's sides, as its timewait socks count on them.
#[derive(Clone, Copy)]
struct Hosts<'a> {
    table: &'a Table,
    id: ConnId,
}

impl tcp::Observer for Tally<'_> {
    fn admit_timewait(&mut self, side: Side) -> bool {
        let Hosts { table, id } = self.hosts;
        let admitted = table.timewait.admit(id, side);
        if !admitted {
            self.counters.time_wait_overflow();
        }
        admitted
    }
    fn left_timewait(&mut self, side: Side) {
        let Hosts { table, id } = self.hosts;
        table.timewait.leave(id, side);
    }
    // Only a server side listens (a client side's SYN-RECEIVED is a simultaneous open's).
    fn conn_request(&mut self, side: Side) -> tcp::SynVerdict {
        let Hosts { table, id } = self.hosts;
        if side == Side::Client {
            return tcp::SynVerdict::Queue;
        }
        let reserve = !self.auto;
        let counters = self.counters;
        let verdict = table
            .listeners
            .conn_request(id.server(), reserve, |e| counters.listen_event(e));
        if verdict == tcp::SynVerdict::Queue && !reserve {
            self.unreserved = Some(true);
        }
        verdict
    }
    fn reqsk_timeout(&mut self, side: Side, max: u8, retries: u8) -> bool {
        let Hosts { table, id } = self.hosts;
        match side {
            Side::Server => {
                // Its place first, so that the queue it is judged in holds it.
                if let Some(young) = self.unreserved.take() {
                    table.listeners.restore_request(id.server(), young);
                }
                table.listeners.reqsk_timeout(id.server(), max, retries)
            }
            Side::Client => retries >= max,
        }
    }
    fn reqsk_removed(&mut self, side: Side, young: bool) {
        let Hosts { table, id } = self.hosts;
        if side == Side::Server && self.unreserved.take().is_none() {
            table.listeners.reqsk_removed(id.server(), young);
        }
    }
    fn syn_recv_sock(&mut self, side: Side, cookie: bool) -> tcp::ChildVerdict {
        let Hosts { table, id } = self.hosts;
        match side {
            Side::Server => table
                .listeners
                .syn_recv_sock(id.server(), cookie, |e| self.counters.listen_event(e)),
            Side::Client => tcp::ChildVerdict::Accept,
        }
    }
    fn cookie_failed(&mut self, _: Side) {
        self.counters
            .listen_event(listeners::ListenEvent::CookieFailed);
    }
    fn transition(&mut self, side: Side, t: Transition) {
        self.counters.transition(side, t.from, t.to);
        if let Some(sink) = &self.events {
            sink.publish(side, t);
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
    fn link(&mut self, from: Side, ev: tcp::LinkEvent) {
        let outcome = match ev {
            tcp::LinkEvent::Lost => SegmentOutcome::Dropped,
            tcp::LinkEvent::Duplicated => SegmentOutcome::Duplicated,
            tcp::LinkEvent::Reordered => SegmentOutcome::Reordered,
        };
        self.counters.segment(from, outcome, 1);
    }
    fn in_flight(&mut self, delta: i64) {
        self.counters.in_flight(delta);
    }
    fn connected(&mut self, _: Side, ms: u64) {
        self.counters.connected(ms);
    }
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
    /// Timer wheels, sharded so that threads arming timers rarely meet (see `Table::wheel_of`),
    /// each on cache lines of its own.
    wheels: Box<[Padded<WheelShard>]>,
    wake: Wake,
    clock: Clock,
    counters: Counters,
    events: Events,
    /// Written by every open and removal, from every thread: on a cache line of its own, so that
    /// it does not drag the read-mostly fields beside it (the clock, the limits) between cores.
    len: Padded<AtomicUsize>,
    /// `run_timers` calls under way (see there).
    expiring: Padded<AtomicUsize>,
    max: usize,
    seed: u64,
    /// This table's run, random: the high half of every incarnation, so that an id from an
    /// earlier run of the server never matches (restored with the state it belongs to).
    epoch: AtomicU32,
    batch: usize,
    /// Each host's timewait socks (see `TableConfig::max_tw_buckets`).
    timewait: hosts::Timewait,
    /// Each server's listener: its queues and settings (see `TableConfig::listen`).
    listeners: listeners::Listeners,
    /// Whether a connect may take over a TIME-WAIT (see `TableConfig::tw_reuse`).
    reuse: hosts::Reuse,
    /// The links AUTO pairs run over (`tcp::Config::link` is the default).
    links: links::Links,
}

impl Table {
    pub fn new(cfg: TableConfig, tcp: tcp::Config, clock: Clock) -> Result<Table, SetupError> {
        if !cfg.shards.is_power_of_two() || cfg.shards < 2 {
            return Err(SetupError::Shards(cfg.shards));
        }
        tcp.validate()?;
        cfg.listen.validate().map_err(SetupError::Host)?;
        cfg.tw_reuse.validate().map_err(SetupError::Host)?;
        let addrs = Addresses::new(&cfg.client_pools, &cfg.servers, cfg.ports)?;
        let timewait = hosts::Timewait::new(
            addrs.client_ips(),
            addrs.servers().len(),
            cfg.max_tw_buckets,
        );
        let now = clock.now();
        Ok(Table {
            addrs,
            ports: Ports::new(cfg.seed),
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
            wake: Wake::default(),
            clock,
            counters: Counters::default(),
            events: Events::default(),
            len: Padded(AtomicUsize::new(0)),
            expiring: Padded(AtomicUsize::new(0)),
            max: cfg.max_connections,
            seed: cfg.seed,
            epoch: AtomicU32::new(random_u32()),
            batch: cfg.timer_batch.max(1),
            timewait,
            listeners: listeners::Listeners::new(cfg.servers.len(), cfg.listen),
            reuse: hosts::Reuse::new(cfg.tw_reuse),
            links: links::Links::new(&tcp),
            // The link lives in `links` (the default, changeable): the table's own settings,
            // which a connection runs on when no link is set anywhere, carry none.
            tcp: tcp::Config {
                link: tcp::Link::default(),
                ..tcp
            },
        })
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

    /// Which connection of its 4-tuple `conn` is: this run's epoch, and its initial sequence
    /// numbers (RFC 9293 §3.4.1 chooses them to tell incarnations apart; a 4-tuple taken over
    /// from TIME-WAIT gets new ones), so that knowing it costs no memory per connection.
    pub(crate) fn incarnation(&self, conn: &Conn) -> u64 {
        let (a, b) = conn.initial_sequence_numbers();
        let mixed = splitmix64(u64::from(a.0) << 32 | u64::from(b.0)) as u32;
        u64::from(self.epoch.load(Ordering::Relaxed)) << 32 | u64::from(mixed)
    }

    /// Refuses a call meant for another incarnation than `conn`'s.
    fn check_incarnation(&self, target: Target, conn: &Conn) -> Result<(), Error> {
        match target.incarnation {
            Some(given) if given != self.incarnation(conn) => Err(Error::Incarnation {
                id: target.id,
                current: self.incarnation(conn),
                given,
            }),
            _ => Ok(()),
        }
    }

    /// Runs `op` on connection `target` under its shard's lock, keeps the accounting, and
    /// removes the connection if it is finished. The single path for every mutation of an
    /// existing connection.
    fn with_conn<R>(
        &self,
        target: Target,
        op: impl FnOnce(&mut Conn, &mut Tally<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.with_conn_synced(target.id, Filed::Deadline, |conn, tally| {
            self.check_incarnation(target, conn)?;
            op(conn, tally)
        })
    }

    /// `with_conn`, told what the wheel holds for `id` (the timer path took the entry out before
    /// locking the connection).
    fn with_conn_synced<R>(
        &self,
        id: ConnId,
        filed: Filed,
        op: impl FnOnce(&mut Conn, &mut Tally<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // The settings once for the whole call (with links set, a read lock).
        self.with_cfg(id, |cfg| {
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
                    let at_once = matches!(&**conn, Conn::Auto(_)) && cfg.link.is_none();
                    let mut tally = Tally::new(self, cfg, c, id, now, at_once);
                    let r = op(conn, &mut tally);
                    drop(tally);
                    conn.settle();
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
                    self.forget(c, id, &conn);
                }
                result.unwrap_or(Err(Error::NotFound(id)))
            })
        })
    }

    /// Accounting for a connection that left the map. Its port was released and its timer
    /// disarmed as it left, under its shard's lock: done after, they could free the port or cancel
    /// the timer of a new connection that had taken the same 4-tuple in between.
    /// Which sides of `conn` are timewait socks, as their host counts them.
    fn timewait_socks(&self, conn: &Conn) -> [bool; 2] {
        let cfg = conn.settings().unwrap_or(&self.tcp);
        Side::BOTH.map(|s| conn.endpoint(s).is_some_and(|e| e.is_timewait_sock(cfg)))
    }

    /// Runs `f` with the settings connection `id` runs on: the table's, with the link its
    /// 4-tuple takes (see `links`).
    pub(crate) fn with_cfg<R>(&self, id: ConnId, f: impl FnOnce(&tcp::Config) -> R) -> R {
        self.links
            .with(&self.tcp, id, || self.addrs.ip_at(id.ip()), f)
    }

    /// Sets the link of `target` (for a server or a pool, "none" removes its override).
    /// Returns every link set.
    pub fn set_link(
        &self,
        target: links::LinkTarget,
        link: tcp::Link,
    ) -> Result<Vec<(links::LinkTarget, tcp::Link)>, Error> {
        link.validate().map_err(Error::HostSetting)?;
        let server = match target {
            links::LinkTarget::Server(s) => Some(self.addrs.server_index(s)?),
            links::LinkTarget::Pool(p) if !self.addrs.pools().any(|q| q == p) => {
                return Err(Error::HostSetting(format!(
                    "client pool {p} is not one of this server's pools ({})",
                    self.addrs
                        .pools()
                        .map(|q| q.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            _ => None,
        };
        self.links.set(target, server, link);
        Ok(self.links.all())
    }

    /// Every link set: the default first, then the overrides.
    pub fn links(&self) -> Vec<(links::LinkTarget, tcp::Link)> {
        self.links.all()
    }

    /// The client hosts' TIME-WAIT reuse settings (`TableConfig::tw_reuse`).
    pub fn tw_reuse(&self) -> TwReuse {
        self.reuse.get()
    }

    /// Changes them; refused (nothing changes) if Linux would not take them.
    pub fn set_tw_reuse(&self, r: TwReuse) -> Result<(), Error> {
        r.validate().map_err(Error::HostSetting)?;
        self.reuse.set(r);
        Ok(())
    }

    /// Timewait socks each host may hold (`TableConfig::max_tw_buckets`).
    pub fn max_tw_buckets(&self) -> u32 {
        self.timewait.max()
    }

    fn hosts(&self, id: ConnId) -> Hosts<'_> {
        Hosts { table: self, id }
    }

    /// Timewait socks on each host with any: ((side, client IP index or server index), count).
    pub fn timewait_hosts(&self) -> Vec<((Side, u32), u32)> {
        self.timewait.hosts()
    }

    fn forget(&self, c: &counters::Slot, id: ConnId, conn: &Conn) {
        let timewait = self.timewait_socks(conn);
        for (k, side) in Side::BOTH.into_iter().enumerate() {
            if timewait[k] {
                self.timewait.leave(id, side);
            }
        }
        if let Some(young) = conn.endpoint(Side::Server).and_then(|e| e.request_sock()) {
            self.listeners.reqsk_removed(id.server(), young);
        }
        if !conn.in_flight().is_empty() {
            c.in_flight(-(conn.in_flight().len() as i64));
        }
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
}

/// A number that differs from one run of the process to the next (std's hash keys are random).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests;

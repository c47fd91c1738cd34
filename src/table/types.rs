//! The table's vocabulary: its settings, what its calls take and return, and why one is refused.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::pair::WireError;
use crate::tcp::{self, Direction, Segment, SeqNum, Side, State, Timer, Transition};

use super::addr::{AddrError, Cidr, ConnId, FourTuple};
use super::counters::{CounterSnapshot, OpenFailure};

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

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Linux's `tcp_max_tw_buckets`: the timewait socks (TIME-WAIT and orphaned FIN-WAIT-2) each
    /// host may hold, a host being a client address for client sides and a server address for
    /// server sides. One more is freed at once instead (`TCPTimeWaitOverflow`).
    pub max_tw_buckets: u32,
    /// Every server's listener: `listen()`'s backlog and the host's `somaxconn`,
    /// `tcp_max_syn_backlog`, `tcp_syncookies` and `tcp_abort_on_overflow` (changeable per
    /// server while running).
    pub listen: super::listeners::HostSettings,
    /// The client hosts' `tcp_tw_reuse`, `tcp_timestamps` and `tcp_tw_reuse_delay`: whether a
    /// connect may take over a TIME-WAIT of its 4-tuple (changeable while running).
    pub tw_reuse: super::hosts::TwReuse,
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
            max_tw_buckets: 131_072,
            listen: Default::default(),
            tw_reuse: Default::default(),
        }
    }
}

/// Why a table call was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no connection with id {0}")]
    NotFound(ConnId),
    /// The connection with this id is not the one the caller meant.
    #[error(
        "connection {id} is incarnation {current}, not {given}: its 4-tuple was reused since, or the server restarted"
    )]
    Incarnation {
        id: ConnId,
        current: u64,
        given: u64,
    },
    #[error("the table is full: it holds its maximum of {max} connections")]
    TableFull { max: usize },
    #[error("no ephemeral port is free toward {server}{}", client.map(|c| format!(" from {c}")).unwrap_or_default())]
    PortsExhausted {
        server: SocketAddrV4,
        client: Option<Ipv4Addr>,
    },
    /// `states`: the connection's, or `None` if only its port is held (it is leaving).
    #[error(
        "4-tuple {tuple} is in use by connection {id} ({})",
        describe_states(states)
    )]
    TupleInUse {
        tuple: FourTuple,
        id: ConnId,
        states: Option<States>,
    },
    #[error(transparent)]
    Address(#[from] AddrError),
    #[error("{side} endpoint: {source}")]
    Tcp { side: Sides, source: tcp::Error },
    /// A host setting (a listener's, the client hosts' sysctls, a link) Linux would not take, or
    /// one for a pool this table does not have; the message names it.
    #[error("{0}")]
    HostSetting(String),
    #[error("{} needs a {} connection; connection {id} is {mode}", action.as_str(), action.needs())]
    WrongMode {
        action: WireAction,
        id: ConnId,
        mode: Mode,
    },
    #[error("connection {id} is EXTERNAL with a {} endpoint only; it has no {side} endpoint", role.as_str())]
    NoSuchSide { id: ConnId, role: Side, side: Sides },
    /// A wire action on an EXTERNAL connection in the direction its endpoint does not send.
    #[error("connection {id} is EXTERNAL with a {} endpoint only: what it sends travels {}, not {dir}", role.as_str(), Direction::from_side(*role))]
    NoSuchDirection {
        id: ConnId,
        role: Side,
        dir: Direction,
    },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the clock is real; only a virtual clock can be advanced")]
    RealClock,
    /// A clock advance stopped before its end (its caller went away or its deadline passed):
    /// the clock stands at `now`, every timer due by then fired.
    #[error(
        "the advance to {target} ms stopped at {now} ms, its caller gone or its deadline passed ({fired} timers fired)"
    )]
    AdvanceStopped { now: u64, target: u64, fired: u64 },
    #[error("{max} watchers are subscribed already, the most this server takes")]
    TooManyWatchers { max: usize },
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
    /// An AUTO open over a server-side TIME-WAIT with an ISS the TIME-WAIT would not take as a
    /// new connection (Linux: not above its RCV.NXT): the pair could not be ESTABLISHED.
    #[error(
        "iss: {iss} is not above the TIME-WAIT server's RCV.NXT {rcv_nxt} on 4-tuple {tuple}: Linux would not take the SYN as a new connection"
    )]
    IssInTimeWait {
        tuple: FourTuple,
        iss: u32,
        rcv_nxt: u32,
    },
}

/// Why a table could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("shards: {0} is not a power of two of at least 2")]
    Shards(usize),
    #[error(transparent)]
    Settings(#[from] tcp::ConfigError),
    #[error(transparent)]
    Addresses(#[from] AddrError),
    #[error("host settings: {0}")]
    Host(String),
}

impl Error {
    /// The limit an open ran into, as `Stats` counts refused opens; `None` for any other error.
    pub fn refusal(&self) -> Option<OpenFailure> {
        match self {
            Error::TableFull { .. } => Some(OpenFailure::TableFull),
            Error::PortsExhausted { .. } => Some(OpenFailure::PortsExhausted),
            Error::TupleInUse { .. } => Some(OpenFailure::TupleInUse),
            _ => None,
        }
    }

    /// `source`, a user call refused by the endpoint on `side`.
    pub(crate) fn tcp(side: Sides) -> impl FnOnce(tcp::Error) -> Error {
        move |source| Error::Tcp { side, source }
    }
}

/// "client ESTABLISHED, server CLOSE-WAIT", or "its port is held".
fn describe_states(states: &Option<States>) -> String {
    let Some(states) = states else {
        return "its port is held".into();
    };
    let name = |s: &Option<State>| s.map_or("-", |s| s.rfc_name());
    format!("client {}, server {}", name(&states[0]), name(&states[1]))
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

/// Which sides a call acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sides {
    One(Side),
    /// Both at once: a simultaneous close (shutdown or close only).
    Both,
}

impl Sides {
    /// The sides named: one, or client and server.
    pub fn iter(self) -> impl Iterator<Item = Side> {
        let both = [Side::Client, Side::Server];
        let n = match self {
            Sides::One(_) => 1,
            Sides::Both => 2,
        };
        let first = match self {
            Sides::One(s) => s,
            Sides::Both => Side::Client,
        };
        [first, both[1]].into_iter().take(n)
    }
}

impl fmt::Display for Sides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sides::One(side) => f.write_str(side.as_str()),
            Sides::Both => f.write_str("both"),
        }
    }
}

/// What to do with segments on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireAction {
    Deliver,
    Drop,
    Duplicate,
    Reorder,
}

impl WireAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WireAction::Deliver => "deliver",
            WireAction::Drop => "drop",
            WireAction::Duplicate => "duplicate",
            WireAction::Reorder => "reorder",
        }
    }

    /// The modes whose connections take it: a MANUAL pair's wire, or an EXTERNAL endpoint's
    /// outbox (which only delivers or drops).
    pub(crate) fn needs(self) -> &'static str {
        match self {
            WireAction::Deliver | WireAction::Drop => "MANUAL or EXTERNAL",
            WireAction::Duplicate | WireAction::Reorder => "MANUAL",
        }
    }
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
    /// AUTO: the link this connection runs over for its life, instead of the table's.
    pub link: Option<tcp::Link>,
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
            link: None,
            port_shard: None,
        }
    }
}

/// Which connection a call means: its id, and, if the caller knows it, its incarnation, so that
/// a call meant for an earlier connection of the same 4-tuple (or one from before a restart) is
/// refused rather than applied to whichever connection holds the id now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: ConnId,
    pub incarnation: Option<u64>,
}

impl From<ConnId> for Target {
    fn from(id: ConnId) -> Target {
        Target {
            id,
            incarnation: None,
        }
    }
}

/// A connection as opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub id: ConnId,
    /// Which connection of this 4-tuple it is (see `Target`).
    pub incarnation: u64,
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
    pub incarnation: u64,
    pub tuple: FourTuple,
    pub mode: Mode,
    pub sides: Vec<SideInfo>,
    /// MANUAL: segments on the wire, by direction. EXTERNAL: the outbox, in the endpoint's
    /// direction.
    pub wire: Vec<(Direction, Vec<Segment>)>,
    /// AUTO on a link: the segments in flight, by direction, each with when it arrives,
    /// earliest first.
    pub in_flight: Vec<(Direction, Vec<(Segment, u64)>)>,
    /// The settings it runs on: its own, or the table's.
    pub settings: tcp::Config,
}

impl ConnInfo {
    pub fn side(&self, side: Side) -> Option<&SideInfo> {
        self.sides.iter().find(|s| s.side == side)
    }

    /// Client and server states, `None` where an EXTERNAL connection has no such endpoint.
    pub fn states(&self) -> States {
        [Side::Client, Side::Server].map(|s| self.side(s).map(|i| i.state))
    }
}

/// The states of both sides (`None` where an EXTERNAL connection has no endpoint).
pub type States = [Option<State>; 2];

/// The most segments an injection's result lists: an AUTO pair can exchange up to
/// `tcp::pair::AUTO_DELIVERY_LIMIT` in answer to one forged segment (an ACK war where ACKs for
/// unacceptable segments are not rate-limited), and one small request must not draw megabytes.
pub const INJECT_REPLY_LIMIT: usize = 1024;

/// What an injection did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub before: State,
    pub after: State,
    /// What the endpoint emitted in answer (EXTERNAL), or put on the wire (MANUAL), or what the
    /// pair exchanged as a result (AUTO): the first `INJECT_REPLY_LIMIT`.
    pub emitted: Vec<Segment>,
    /// How many segments were emitted in all.
    pub emitted_total: u64,
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
    /// Each server's listener: its settings and queues.
    pub listeners: Vec<super::listeners::ListenerInfo>,
}

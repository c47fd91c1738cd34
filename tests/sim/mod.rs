//! The table's deterministic simulation, shared by `tests/table_sim.rs` and
//! `examples/soak.rs`: a seeded random driver, and a small reference model that says what each
//! call must return — success, or which refusal — from what the model knows: which ids exist,
//! their kind, each side's state as last seen and whether the application shut it down or
//! closed it, what waits on each wire, which ports are held, how full the table is.
//!
//! The model does not simulate TCP (the transition table and the conformance recordings check
//! that); it checks the table's own promises: existence and removal, ports and limits, the
//! validity of each user call in its state (RFC 9293 §3.10, with Linux's `close()` on a dead
//! socket), the shape of an open, and the refusals of the wire. After each step it looks at the
//! connection the step touched (after a clock advance, at all of them), as a client would.
#![allow(dead_code)] // each user takes part of it

use std::collections::BTreeMap;

use tcpsim::table::{
    Clock, Conn, ConnId, Error, Mode, OpenSpec, Sides, Table, TableConfig, WireAction,
};
use tcpsim::tcp::{self, Call, Direction, Flags, Segment, SeqNum, Side, State};

/// splitmix64: small, fast, and the same everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn side(&mut self) -> Side {
        if self.chance(50) {
            Side::Client
        } else {
            Side::Server
        }
    }
}

const MAX_CONNECTIONS: usize = 380;
const PORTS: (u16, u16) = (40000, 40049);
const CLIENT_IPS: u64 = 4;

/// A small world, so that ports run out, the table fills and 4-tuples get reused.
pub fn world(clock: Clock) -> Table {
    let cfg = TableConfig {
        shards: 8,
        capacity: 256,
        // 4 client IPs × 50 ports per server: the busier server runs out of ports, and the
        // table fills, both well within a run.
        max_connections: MAX_CONNECTIONS,
        // Two /31s: every address a host, 10.1.0.0 to 10.1.0.3.
        client_pools: vec![
            "10.1.0.0/31".parse().unwrap(),
            "10.1.0.2/31".parse().unwrap(),
        ],
        servers: vec![
            "10.255.0.1:80".parse().unwrap(),
            "10.255.0.2:443".parse().unwrap(),
        ],
        ports: PORTS,
        seed: 42,
        timer_batch: 64,
        // Small, so that hosts run out of timewait socks (tcp_max_tw_buckets) within a run.
        max_tw_buckets: 6,
        // A SYN queue of 3, so that half-open MANUAL pairs fill it and further SYNs, AUTO
        // pairs' included, are answered with cookies (which complete an AUTO handshake alike).
        listen: tcpsim::table::listeners::HostSettings {
            backlog: 2,
            ..Default::default()
        },
        // Linux's default: reuse on loopback only, which these addresses are not, so that the
        // model's port exhaustion stays what it predicts.
        tw_reuse: Default::default(),
    };
    Table::new(cfg, tcp::Config::default(), clock).unwrap()
}

/// What the model knows of one side: its state as last seen, and what the application did.
#[derive(Clone, Copy, Debug, Default)]
struct SideKnown {
    state: Option<State>,
    /// shutdown or close was accepted: a FIN is queued or sent.
    fin_queued: bool,
    /// close was accepted: the application is gone.
    orphaned: bool,
    unsent: u32,
    /// The endpoint's ISS: a new one means a new endpoint (a 4-tuple taken over from
    /// TIME-WAIT, a SYN taken in TIME-WAIT), whatever its state when seen.
    iss: Option<SeqNum>,
}

/// What the model knows of one connection.
#[derive(Clone, Debug)]
struct Known {
    mode: Mode,
    sides: [SideKnown; 2],
    /// Segments waiting: MANUAL by direction (client→server, server→client); EXTERNAL, its
    /// outbox in its own direction.
    waiting: [usize; 2],
    server: u16,
    port: u16,
}

fn ix(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn dir_ix(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// What a call must return, by the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    NotFound,
    TableFull,
    PortsExhausted,
    TupleInUse,
    Tcp,
    WrongMode,
    NoSuchSide,
    NoSuchDirection,
    NotEnough,
    ClockLimit,
}

fn kind<T>(r: &Result<T, Error>) -> Expect {
    match r {
        Ok(_) => Expect::Ok,
        Err(Error::NotFound(_)) => Expect::NotFound,
        Err(Error::TableFull { .. }) => Expect::TableFull,
        Err(Error::PortsExhausted { .. }) => Expect::PortsExhausted,
        Err(Error::TupleInUse { .. }) => Expect::TupleInUse,
        Err(Error::Tcp { .. }) => Expect::Tcp,
        Err(Error::WrongMode { .. }) => Expect::WrongMode,
        Err(Error::NoSuchSide { .. }) => Expect::NoSuchSide,
        Err(Error::NoSuchDirection { .. }) => Expect::NoSuchDirection,
        Err(Error::Wire(tcp::pair::WireError::NotEnough { .. })) => Expect::NotEnough,
        Err(Error::ClockLimit { .. }) => Expect::ClockLimit,
        Err(e) => panic!("a refusal the model does not know: {e}"),
    }
}

/// Where `shutdown` and `close` take a state (RFC 9293 §3.10.4), if they can be made there.
/// Written again from the RFC on purpose, not taken from the endpoint: a model that used the
/// code under test would agree with its mistakes.
fn fin_next(state: State) -> Option<State> {
    match state {
        State::Listen | State::SynSent => Some(State::Closed),
        State::SynReceived | State::Established => Some(State::FinWait1),
        State::CloseWait => Some(State::LastAck),
        _ => None,
    }
}

/// Whether `call` is taken by a side the model knows so (RFC 9293 §3.10; Linux's `close()` and
/// abort on a socket already reset, for an EXTERNAL endpoint).
fn accepts(s: &SideKnown, call: Call, external: bool, snd_buf: u32) -> bool {
    let Some(state) = s.state else { return false };
    match call {
        Call::Send(n) => {
            matches!(
                state,
                State::SynSent | State::SynReceived | State::Established | State::CloseWait
            ) && !s.fin_queued
                && u64::from(s.unsent) + u64::from(n) <= u64::from(snd_buf)
        }
        Call::Shutdown => !s.fin_queued && fin_next(state).is_some(),
        Call::Close if external && state == State::Closed => true,
        Call::Close => {
            !s.orphaned && state != State::Closed && (s.fin_queued || fin_next(state).is_some())
        }
        Call::Abort => state != State::Closed || external,
        Call::Listen { .. } | Call::Connect { .. } => false,
    }
}

/// What one look at a connection shows the model.
struct Seen {
    mode: Mode,
    /// Each side's state, unsent bytes and ISS, where it has one.
    sides: [Option<(State, u32, SeqNum)>; 2],
    waiting: [usize; 2],
}

impl Seen {
    fn of(conn: &Conn) -> Seen {
        let mut seen = Seen {
            mode: conn.mode(),
            sides: [None; 2],
            waiting: [0; 2],
        };
        for side in Side::BOTH {
            seen.sides[ix(side)] = conn
                .endpoint(side)
                .map(|ep| (ep.state(), ep.unsent(), ep.iss()));
        }
        match conn {
            // The simulation's world has no link: its AUTO pairs deliver at once.
            Conn::Auto(_) | Conn::Flying(_) => {}
            Conn::Manual(m) => {
                for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                    seen.waiting[dir_ix(dir)] = m.wire().queue(dir).len();
                }
            }
            Conn::External(x) => {
                seen.waiting[dir_ix(Direction::from_side(x.role()))] = x.outbox().len();
            }
        }
        seen
    }
}

/// The reference model.
#[derive(Default)]
pub struct Model {
    conns: BTreeMap<ConnId, Known>,
}

impl Model {
    fn used(&self, server: u16) -> u64 {
        self.conns
            .values()
            .filter(|k| k.server == server && (PORTS.0..=PORTS.1).contains(&k.port))
            .count() as u64
    }

    /// Takes what the table shows of `id` now; `None` if it is gone.
    fn observe(&mut self, t: &Table, id: ConnId) -> Option<()> {
        let Ok(info) = t.get(id) else {
            self.conns.remove(&id);
            return None;
        };
        let mut seen = Seen {
            mode: info.mode,
            sides: [None; 2],
            waiting: [0; 2],
        };
        for side in Side::BOTH {
            seen.sides[ix(side)] = info.side(side).map(|si| (si.state, si.unsent, si.iss));
        }
        for (dir, q) in &info.wire {
            seen.waiting[dir_ix(*dir)] = q.len();
        }
        self.learn(t, id, seen);
        Some(())
    }

    /// After a clock advance: every connection again, in one pass. Only AUTO pairs leave by
    /// themselves (both sides CLOSED); nothing appears.
    fn observe_all(&mut self, t: &Table) -> Result<(), String> {
        let mut present = Vec::with_capacity(self.conns.len());
        t.for_each(|id, conn| present.push((id, Seen::of(conn))));
        if present.len() != self.conns.len()
            || present.iter().any(|(id, _)| !self.conns.contains_key(id))
        {
            let gone: Vec<ConnId> = self
                .conns
                .keys()
                .filter(|id| !present.iter().any(|(p, _)| p == *id))
                .copied()
                .collect();
            for id in gone {
                let mode = self.conns[&id].mode;
                if mode != Mode::Auto {
                    return Err(format!("{mode} connection {id} left by itself"));
                }
                self.conns.remove(&id);
            }
            if let Some((id, _)) = present.iter().find(|(id, _)| !self.conns.contains_key(id)) {
                return Err(format!("connection {id} appeared"));
            }
        }
        for (id, seen) in present {
            self.learn(t, id, seen);
        }
        Ok(())
    }

    fn learn(&mut self, t: &Table, id: ConnId, seen: Seen) {
        let k = self.conns.entry(id).or_insert_with(|| {
            let tuple = t.addresses().tuple_of(id).expect("an id of this table");
            let server = t
                .addresses()
                .servers()
                .iter()
                .position(|s| *s == tuple.server)
                .unwrap_or(0) as u16;
            Known {
                mode: seen.mode,
                sides: Default::default(),
                waiting: [0; 2],
                server,
                port: tuple.client.port(),
            }
        });
        k.mode = seen.mode;
        k.waiting = seen.waiting;
        for (s, side) in k.sides.iter_mut().zip(seen.sides) {
            match side {
                Some((state, unsent, iss)) => {
                    // A new endpoint (its ISS changed), or one back before any FIN call could
                    // have been made: whatever the application did is forgotten.
                    if s.iss != Some(iss)
                        || matches!(state, State::Listen | State::SynSent | State::SynReceived)
                    {
                        s.fin_queued = false;
                        s.orphaned = false;
                    }
                    s.state = Some(state);
                    s.unsent = unsent;
                    s.iss = Some(iss);
                }
                None => *s = SideKnown::default(),
            }
        }
    }

    fn expect_open(&self, t: &Table, spec: &OpenSpec) -> Expect {
        if self.conns.len() >= MAX_CONNECTIONS {
            return Expect::TableFull;
        }
        if let Some(tuple) = &spec.tuple {
            let id = t
                .addresses()
                .id_of(tuple)
                .expect("the driver's tuples are valid");
            return match self.conns.get(&id) {
                None => Expect::Ok,
                // Linux's TIME-WAIT recycling: the server side in TIME-WAIT, the client's gone.
                Some(k)
                    if k.mode == spec.mode
                        && k.mode != Mode::External(Side::Client)
                        && k.mode != Mode::External(Side::Server)
                        && k.sides[0].state == Some(State::Closed)
                        && k.sides[1].state == Some(State::TimeWait) =>
                {
                    Expect::Ok
                }
                Some(_) => Expect::TupleInUse,
            };
        }
        let server = spec.server.map_or(0, |s| {
            t.addresses()
                .servers()
                .iter()
                .position(|x| *x == s)
                .unwrap() as u16
        });
        let ports = u64::from(PORTS.1 - PORTS.0 + 1) * CLIENT_IPS;
        if self.used(server) >= ports {
            return Expect::PortsExhausted;
        }
        Expect::Ok
    }

    fn expect_call(&self, id: ConnId, sides: Sides, call: Call, snd_buf: u32) -> Expect {
        let Some(k) = self.conns.get(&id) else {
            return Expect::NotFound;
        };
        if let Mode::External(role) = k.mode
            && sides != Sides::One(role)
        {
            return Expect::NoSuchSide;
        }
        let external = matches!(k.mode, Mode::External(_));
        let ok = match sides {
            Sides::One(side) => accepts(&k.sides[ix(side)], call, external, snd_buf),
            Sides::Both => {
                matches!(call, Call::Shutdown | Call::Close)
                    && k.sides.iter().all(|s| accepts(s, call, false, snd_buf))
            }
        };
        if ok { Expect::Ok } else { Expect::Tcp }
    }

    /// What the application did, once the table took the call.
    fn called(&mut self, id: ConnId, sides: Sides, call: Call) {
        let Some(k) = self.conns.get_mut(&id) else {
            return;
        };
        let targets: Vec<Side> = match sides {
            Sides::One(s) => vec![s],
            Sides::Both => Side::BOTH.to_vec(),
        };
        for side in targets {
            let s = &mut k.sides[ix(side)];
            match call {
                Call::Shutdown => s.fin_queued = true,
                Call::Close => {
                    s.fin_queued = true;
                    s.orphaned = true;
                }
                _ => {}
            }
        }
    }

    fn expect_wire(&self, id: ConnId, dir: Direction, action: WireAction, n: u32) -> Expect {
        let Some(k) = self.conns.get(&id) else {
            return Expect::NotFound;
        };
        match k.mode {
            Mode::Auto => Expect::WrongMode,
            Mode::External(role) if dir != Direction::from_side(role) => Expect::NoSuchDirection,
            Mode::External(_) if matches!(action, WireAction::Duplicate | WireAction::Reorder) => {
                Expect::WrongMode
            }
            _ if k.waiting[dir_ix(dir)] < n as usize => Expect::NotEnough,
            _ => Expect::Ok,
        }
    }

    fn expect_side(&self, id: ConnId, to: Side) -> Expect {
        match self.conns.get(&id) {
            None => Expect::NotFound,
            Some(Known {
                mode: Mode::External(role),
                ..
            }) if *role != to => Expect::NoSuchSide,
            Some(_) => Expect::Ok,
        }
    }

    fn expect_id(&self, id: ConnId) -> Expect {
        if self.conns.contains_key(&id) {
            Expect::Ok
        } else {
            Expect::NotFound
        }
    }
}

/// The states an open returns, by kind.
fn opened_states(mode: Mode) -> [Option<State>; 2] {
    match mode {
        Mode::Auto => [Some(State::Established), Some(State::Established)],
        Mode::Manual => [Some(State::SynSent), Some(State::Listen)],
        Mode::External(Side::Client) => [Some(State::SynSent), None],
        Mode::External(Side::Server) => [None, Some(State::Listen)],
    }
}

/// The driver: one random step at a time, each result held to the model's (when it checks).
pub struct Driver {
    rng: Rng,
    ids: Vec<ConnId>,
    advance: bool,
    /// Off where several drivers share a table: each one's model would miss the others' calls.
    model: Option<Model>,
    /// The longest clock jump, ms.
    pub max_jump: u64,
}

impl Driver {
    pub fn new(seed: u64, advance: bool, checked: bool) -> Driver {
        Driver {
            rng: Rng(seed),
            ids: Vec::new(),
            advance,
            model: checked.then(Model::default),
            max_jump: 0,
        }
    }

    fn pick(&mut self) -> ConnId {
        if self.ids.is_empty() || self.rng.chance(2) {
            return ConnId(self.rng.next()); // sometimes an id that never existed
        }
        self.ids[self.rng.below(self.ids.len() as u64) as usize]
    }

    /// Holds a result to the model's expectation.
    fn check(&self, what: &str, want: Option<Expect>, got: Expect) -> Result<(), String> {
        match want {
            Some(want) if want != got => {
                Err(format!("{what}: the model expects {want:?}, got {got:?}"))
            }
            _ => Ok(()),
        }
    }

    /// Looks at what the step touched.
    fn observe(&mut self, t: &Table, id: ConnId) {
        if let Some(m) = &mut self.model {
            m.observe(t, id);
        }
    }

    pub fn step(&mut self, t: &Table) -> Result<(), String> {
        let snd_buf = t.tcp_config().snd_buf;
        let r = &mut self.rng;
        match r.below(100) {
            0..=17 => {
                let mode = match r.below(10) {
                    0..=4 => Mode::Auto,
                    5..=7 => Mode::Manual,
                    8 => Mode::External(Side::Client),
                    _ => Mode::External(Side::Server),
                };
                let mut spec = OpenSpec::new(mode);
                if r.chance(20) {
                    // An explicit 4-tuple, often one in use or in TIME-WAIT; a few outside the
                    // ephemeral range.
                    spec.tuple = Some(tcpsim::table::FourTuple {
                        client: format!("10.1.0.{}:{}", r.below(4), 40000 + r.below(55))
                            .parse()
                            .unwrap(),
                        server: if r.chance(50) {
                            "10.255.0.1:80"
                        } else {
                            "10.255.0.2:443"
                        }
                        .parse()
                        .unwrap(),
                    });
                } else if r.chance(30) {
                    spec.server = Some("10.255.0.2:443".parse().unwrap());
                }
                let want = self.model.as_ref().map(|m| m.expect_open(t, &spec));
                let got = t.open(&spec);
                self.check(&format!("open {spec:?}"), want, kind(&got))?;
                if let Ok(o) = got {
                    if self.model.is_some() && o.states != opened_states(mode) {
                        return Err(format!("open {mode}: states {:?}", o.states));
                    }
                    self.ids.push(o.id);
                    self.observe(t, o.id);
                }
            }
            18..=35 => {
                let id = self.pick();
                let r = &mut self.rng;
                let (sides, call) = match r.below(18) {
                    0..=3 => (Sides::One(r.side()), Call::Abort),
                    4..=7 => (
                        Sides::Both,
                        if r.chance(50) {
                            Call::Close
                        } else {
                            Call::Shutdown
                        },
                    ),
                    s => (
                        Sides::One(r.side()),
                        if s % 2 == 0 {
                            Call::Close
                        } else {
                            Call::Shutdown
                        },
                    ),
                };
                let want = self
                    .model
                    .as_ref()
                    .map(|m| m.expect_call(id, sides, call, snd_buf));
                let got = t.call(id, sides, call);
                self.check(&format!("{call} on {id} {sides:?}"), want, kind(&got))?;
                if got.is_ok()
                    && let Some(m) = &mut self.model
                {
                    m.called(id, sides, call);
                }
                self.observe(t, id);
            }
            36..=47 => {
                let id = self.pick();
                let (side, n) = (self.rng.side(), self.rng.below(6000) as u32);
                let call = Call::Send(n);
                let want = self
                    .model
                    .as_ref()
                    .map(|m| m.expect_call(id, Sides::One(side), call, snd_buf));
                let got = t.call(id, Sides::One(side), call);
                self.check(&format!("{call} on {id} {side:?}"), want, kind(&got))?;
                self.observe(t, id);
            }
            48..=69 => {
                let id = self.pick();
                let r = &mut self.rng;
                let dir = if r.chance(50) {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                let action = match r.below(10) {
                    0..=5 => WireAction::Deliver,
                    6..=7 => WireAction::Drop,
                    8 => WireAction::Duplicate,
                    _ => WireAction::Reorder,
                };
                let n = 1 + r.below(3) as u32;
                let want = self
                    .model
                    .as_ref()
                    .map(|m| m.expect_wire(id, dir, action, n));
                let got = t.wire(id, dir, action, n);
                self.check(
                    &format!("wire {action:?} {n} {dir:?} on {id}"),
                    want,
                    kind(&got),
                )?;
                self.observe(t, id);
            }
            70..=79 => {
                let id = self.pick();
                let to = self.rng.side();
                // Forge near the target's own numbers when it exists, else anywhere.
                let (rcv, una) = t
                    .get(id)
                    .ok()
                    .and_then(|c| c.side(to).map(|s| (s.rcv_nxt, s.snd_una)))
                    .unwrap_or((
                        SeqNum(self.rng.next() as u32),
                        SeqNum(self.rng.next() as u32),
                    ));
                let r = &mut self.rng;
                let near = |r: &mut Rng, base: SeqNum| {
                    if r.chance(80) {
                        SeqNum(base.0.wrapping_add(r.below(3000) as u32).wrapping_sub(1000))
                    } else {
                        SeqNum(r.next() as u32)
                    }
                };
                let seg = Segment {
                    seq: near(r, rcv),
                    ack: near(r, una),
                    len: if r.chance(50) {
                        0
                    } else {
                        r.below(2000) as u16
                    },
                    wnd: r.next() as u16,
                    mss: None,
                    flags: Flags(r.below(64) as u8),
                };
                let want = self.model.as_ref().map(|m| m.expect_side(id, to));
                let got = t.inject(id, to, &seg);
                self.check(&format!("inject {seg} to {id} {to:?}"), want, kind(&got))?;
                self.observe(t, id);
            }
            80..=91 if self.advance => {
                let ms = match self.rng.below(1000) {
                    0..=599 => self.rng.below(300),
                    600..=899 => self.rng.below(5_000),
                    900..=997 => self.rng.below(130_000),
                    // Now and then a jump of years or decades, with timers armed; once the
                    // clock is half way to its limit (10^8 steps get there), one past the
                    // limit instead, which must be refused and change nothing.
                    _ if t.now() < Clock::MAX_MS / 2 => {
                        (1 + self.rng.below(40)) * 365 * 24 * 3600 * 1000
                    }
                    _ => Clock::MAX_MS - t.now() + 1 + self.rng.below(1000),
                };
                let before = t.now();
                let want = if before + ms > Clock::MAX_MS {
                    Expect::ClockLimit
                } else {
                    self.max_jump = self.max_jump.max(ms);
                    Expect::Ok
                };
                let got = t.advance(ms);
                self.check(
                    &format!("advance {ms} ms from {before} ms"),
                    Some(want),
                    kind(&got),
                )?;
                if want == Expect::ClockLimit && t.now() != before {
                    return Err(format!(
                        "a refused advance moved the clock from {before} to {} ms",
                        t.now()
                    ));
                }
                if let Some(m) = &mut self.model {
                    m.observe_all(t)?;
                }
            }
            92..=95 => {
                let id = self.pick();
                let want = self.model.as_ref().map(|m| m.expect_id(id));
                let got = t.remove(id);
                self.check(&format!("remove {id}"), want, kind(&got))?;
                self.observe(t, id);
            }
            _ => {
                let id = self.pick();
                let want = self.model.as_ref().map(|m| m.expect_id(id));
                let got = t.get(id);
                self.check(&format!("get {id}"), want, kind(&got))?;
            }
        }
        if self.ids.len() > 4096 {
            self.ids.drain(..2048);
        }
        if let Some(m) = &self.model
            && m.conns.len() != t.len()
        {
            return Err(format!(
                "the table holds {} connections, the model {}",
                t.len(),
                m.conns.len()
            ));
        }
        Ok(())
    }
}

/// Runs `steps` steps from `seed` with the model on a virtual clock starting at `start` ms,
/// verifying the table's invariants every `batch` steps. Returns a digest of the end state (every connection in id order but the run
/// in its incarnation, and the counters) and the longest clock jump.
pub fn simulate(seed: u64, steps: u64, batch: u64, start: u64) -> Result<(String, u64), String> {
    let t = world(Clock::virtual_at(start));
    let mut d = Driver::new(seed, true, true);
    for i in 0..steps {
        d.step(&t).map_err(|e| format!("step {}: {e}", i + 1))?;
        if (i + 1) % batch == 0 {
            t.verify()
                .map_err(|e| format!("after step {}: {e}", i + 1))?;
        }
    }
    t.verify()?;
    let mut digest = String::new();
    for mut c in t.list(None, usize::MAX, |_| true) {
        // The incarnation's high half is the table's run, random by design (an id from another
        // run must not match); its low half follows from the initial sequence numbers.
        c.incarnation &= u64::from(u32::MAX);
        digest += &format!("{c:?}\n");
    }
    digest += &format!("{:?}\n", t.stats().counters);
    Ok((digest, d.max_jump))
}

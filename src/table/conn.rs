//! What the map holds for a connection, and every call on it dispatched to its kind: an AUTO
//! pair, a MANUAL pair with its wire, or an EXTERNAL endpoint. The table's methods lock a
//! connection, call one of these, and count; only here does the kind of connection matter.

use std::cell::RefCell;

use crate::tcp::pair::{Flying, Manual, PairMut, Scratch};
use crate::tcp::{
    self, Call, Direction, Endpoint, External, Observer, Pair, Segment, SeqNum, Side, State,
    TimerKind,
};

use super::addr::ConnId;
use super::types::{
    Error, INJECT_REPLY_LIMIT, Mode, OpenSpec, SideInfo, Sides, States, WireAction,
};

thread_local! {
    /// The AUTO pump's queues, reused so that a pair's calls allocate nothing once warm.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What the map holds (boxed, 104 bytes: an AUTO pair inline, the other kinds behind a pointer
/// of their own where they are larger).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Conn {
    /// A pair whose segments are delivered at once.
    Auto(Pair),
    /// A pair whose segments wait on the wire for the caller.
    Manual(Box<Manual>),
    /// One endpoint whose peer is the caller.
    External(Box<External>),
    /// An AUTO pair with segments in flight on the table's link (`tcp::Config::link`); an
    /// AUTO pair again once none is.
    Flying(Flying),
}

impl Conn {
    /// A fresh connection of `spec`'s kind, its endpoints CLOSED.
    pub(crate) fn new(spec: &OpenSpec) -> Conn {
        match spec.mode {
            Mode::Auto => match spec.link {
                Some(own) => Conn::Flying(Flying::new(Pair::new(), Some(own))),
                None => Conn::Auto(Pair::new()),
            },
            Mode::Manual => Conn::Manual(Box::new(Manual::new(spec.settings.clone()))),
            Mode::External(_) => {
                Conn::External(Box::new(External::with_settings(spec.settings.clone())))
            }
        }
    }

    pub fn mode(&self) -> Mode {
        match self {
            Conn::Auto(_) | Conn::Flying(_) => Mode::Auto,
            Conn::Manual(_) => Mode::Manual,
            Conn::External(x) => Mode::External(x.role()),
        }
    }

    /// The settings the connection was opened with, if they are its own (MANUAL and EXTERNAL).
    pub fn settings(&self) -> Option<&tcp::Config> {
        match self {
            Conn::Auto(_) | Conn::Flying(_) => None,
            Conn::Manual(m) => m.settings(),
            Conn::External(x) => x.settings(),
        }
    }

    /// The pair, for AUTO and MANUAL connections.
    pub fn pair(&self) -> Option<&Pair> {
        match self {
            Conn::Auto(p) => Some(p),
            Conn::Manual(m) => Some(&m.pair),
            Conn::Flying(f) => Some(&*f.pair),
            Conn::External(_) => None,
        }
    }

    /// The pair driven, for AUTO and MANUAL connections: an AUTO pair on a link (`cfg.link`)
    /// is driven with its segments in flight, becoming `Flying` first if it is at rest.
    fn drive<'a>(&'a mut self, cfg: &'a tcp::Config) -> Option<PairMut<'a>> {
        if let Conn::Auto(p) = self
            && !cfg.link.is_none()
        {
            *self = Conn::Flying(Flying::new(std::mem::take(p), None));
        }
        match self {
            Conn::Auto(p) => Some(p.drive()),
            Conn::Manual(m) => Some(m.drive()),
            Conn::Flying(f) => Some(f.drive(&cfg.link)),
            Conn::External(_) => None,
        }
    }

    /// An AUTO pair with nothing in flight is a plain pair again, unless it has a link of its
    /// own (the table calls this after every call on a connection).
    pub(crate) fn settle(&mut self) {
        if let Conn::Flying(f) = self
            && f.in_flight.is_empty()
            && f.own.is_none()
        {
            *self = Conn::Auto(std::mem::take(&mut *f.pair));
        }
    }

    /// The segments in flight on the link, by direction, with when each arrives on a clock at
    /// `now`, earliest first; nothing for a connection not on a link.
    pub(crate) fn in_flight_by_direction(&self, now: u64) -> Vec<(Direction, Vec<(Segment, u64)>)> {
        let Conn::Flying(f) = self else {
            return Vec::new();
        };
        [Direction::ClientToServer, Direction::ServerToClient]
            .map(|d| {
                let mut segs: Vec<(Segment, u64)> = f
                    .in_flight
                    .iter()
                    .filter(|x| x.to == d.to())
                    .map(|x| (x.seg, x.at(now)))
                    .collect();
                segs.sort_by_key(|&(_, at)| at);
                (d, segs)
            })
            .to_vec()
    }

    /// The segments in flight on the link, if any.
    pub fn in_flight(&self) -> &[tcp::InFlight] {
        match self {
            Conn::Flying(f) => &f.in_flight,
            _ => &[],
        }
    }

    /// The endpoint on `side`, if this connection has one.
    pub fn endpoint(&self, side: Side) -> Option<&Endpoint> {
        match self {
            Conn::External(x) => (x.role() == side).then_some(&x.endpoint),
            pair => pair.pair().map(|p| p.endpoint(side)),
        }
    }

    /// The initial sequence numbers: the client's and the server's for a pair, the endpoint's
    /// (and 0) for an EXTERNAL one. Fixed for a connection's life.
    pub fn initial_sequence_numbers(&self) -> (SeqNum, SeqNum) {
        match self {
            Conn::External(x) => (x.endpoint.iss(), SeqNum(0)),
            pair => {
                let p = pair.pair().expect("a pair");
                (p.client.iss(), p.server.iss())
            }
        }
    }

    pub fn sides(&self) -> &'static [Side] {
        match self.mode() {
            Mode::External(Side::Client) => &[Side::Client],
            Mode::External(Side::Server) => &[Side::Server],
            _ => &Side::BOTH,
        }
    }

    /// The states of both sides (`None` where an EXTERNAL connection has no endpoint).
    pub fn states(&self) -> States {
        [Side::Client, Side::Server].map(|s| self.endpoint(s).map(Endpoint::state))
    }

    /// The earliest armed deadline, on a clock that stands at `now`.
    pub fn deadline(&self, now: u64) -> Option<u64> {
        match self {
            Conn::External(x) => x.endpoint.timer(now).map(|t| t.deadline),
            Conn::Flying(f) => f.deadline(now),
            pair => pair.pair().and_then(|p| p.deadline(now)),
        }
    }

    pub(crate) fn has_timer(&self) -> bool {
        self.timers().iter().any(Option::is_some)
    }

    pub(crate) fn timers(&self) -> [Option<TimerKind>; 2] {
        let kind = |side| self.endpoint(side).and_then(Endpoint::timer_kind);
        [kind(Side::Client), kind(Side::Server)]
    }

    /// An AUTO pair is removed once both ends are CLOSED; MANUAL and EXTERNAL connections stay
    /// (in CLOSED) until the caller removes them, so that their end can be inspected.
    pub(crate) fn reapable(&self) -> bool {
        matches!(self, Conn::Auto(p) if p.state(Side::Client) == State::Closed && p.state(Side::Server) == State::Closed)
    }

    /// A side that `id` does not have (an EXTERNAL endpoint has one), as the error names it.
    fn check_side(&self, id: ConnId, side: Sides) -> Result<(), Error> {
        match self {
            Conn::External(x) if side != Sides::One(x.role()) => Err(Error::NoSuchSide {
                id,
                role: x.role(),
                side,
            }),
            _ => Ok(()),
        }
    }

    /// Opens a fresh connection as `mode` says: a pair's server listens and its client connects
    /// (an AUTO pair is ESTABLISHED when this returns); an EXTERNAL server listens, an EXTERNAL
    /// client connects.
    pub(crate) fn open(
        &mut self,
        cfg: &tcp::Config,
        now: u64,
        mode: Mode,
        [iss, server_iss]: [SeqNum; 2],
        obs: &mut impl Observer,
    ) -> Result<(), tcp::Error> {
        match (self, mode) {
            (Conn::External(x), Mode::External(Side::Server)) => {
                x.call(cfg, now, Call::Listen { iss }, obs)
            }
            (Conn::External(x), _) => x.call(cfg, now, Call::Connect { iss }, obs),
            (pair, _) => {
                let mut p = pair.drive(cfg).expect("a pair");
                SCRATCH.with_borrow_mut(|s| p.open(cfg, now, iss, server_iss, s, obs))
            }
        }
    }

    /// A pair's client connects again over its server's TIME-WAIT (Linux's TIME-WAIT
    /// recycling: the TIME-WAIT takes a SYN above its RCV.NXT as a new connection).
    pub(crate) fn reconnect(
        &mut self,
        cfg: &tcp::Config,
        now: u64,
        iss: SeqNum,
        obs: &mut impl Observer,
    ) -> Result<(), tcp::Error> {
        let mut p = self.drive(cfg).expect("a pair");
        SCRATCH.with_borrow_mut(|s| p.reconnect(cfg, now, iss, s, obs))
    }

    /// A pair whose client is in TIME-WAIT and whose server is gone (CLOSED) becomes a fresh
    /// pair of `spec`'s kind, the client's TIME-WAIT taken over (`tcp_tw_reuse`), ready to open.
    pub(crate) fn take_over_client_timewait(
        &mut self,
        cfg: &tcp::Config,
        now: u64,
        spec: &OpenSpec,
        obs: &mut impl Observer,
    ) -> Result<(), tcp::Error> {
        let mut p = self.drive(cfg).expect("a pair");
        SCRATCH.with_borrow_mut(|s| p.take_over_timewait(cfg, now, Side::Client, s, obs))?;
        // What the old connection still had in flight is gone with it.
        obs.in_flight(-(self.in_flight().len() as i64));
        *self = Conn::new(spec);
        Ok(())
    }

    /// A user call on one side, or a simultaneous shutdown or close on both.
    pub(crate) fn call(
        &mut self,
        id: ConnId,
        cfg: &tcp::Config,
        now: u64,
        sides: Sides,
        call: Call,
        obs: &mut impl Observer,
    ) -> Result<(), Error> {
        self.check_side(id, sides)?;
        let refused = Error::tcp(sides);
        match (self, sides) {
            (Conn::External(x), _) => x.call(cfg, now, call, obs).map_err(refused),
            (pair, Sides::Both) => {
                let half = match call {
                    Call::Shutdown => true,
                    Call::Close => false,
                    other => {
                        return Err(refused(tcp::Error::InvalidInState {
                            call: other,
                            state: pair.pair().expect("a pair").state(Side::Client),
                        }));
                    }
                };
                let mut p = pair.drive(cfg).expect("a pair");
                SCRATCH
                    .with_borrow_mut(|s| p.close_both(cfg, now, half, s, obs))
                    .map_err(refused)
            }
            (pair, Sides::One(side)) => {
                let mut p = pair.drive(cfg).expect("a pair");
                SCRATCH
                    .with_borrow_mut(|s| p.call(cfg, now, side, call, s, obs))
                    .map_err(refused)
            }
        }
    }

    /// A forged segment arrives at `to`. Returns what was emitted as a result: the endpoint's
    /// answer (EXTERNAL), what went onto the wire (MANUAL), or what the pair exchanged (AUTO).
    pub(crate) fn inject(
        &mut self,
        id: ConnId,
        cfg: &tcp::Config,
        now: u64,
        to: Side,
        seg: &Segment,
        obs: &mut impl Observer,
    ) -> Result<(Vec<Segment>, u64), Error> {
        self.check_side(id, Sides::One(to))?;
        let mut log = Collect {
            inner: obs,
            segments: Vec::new(),
            total: 0,
        };
        match self {
            Conn::External(x) => {
                x.inject(cfg, now, seg, &mut log);
            }
            pair => {
                let mut p = pair.drive(cfg).expect("a pair");
                SCRATCH.with_borrow_mut(|s| p.inject(cfg, now, to, seg, s, &mut log));
            }
        }
        Ok((log.segments, log.total))
    }

    /// Fires every timer due at `now`.
    pub(crate) fn on_timeout(&mut self, cfg: &tcp::Config, now: u64, obs: &mut impl Observer) {
        match self {
            Conn::External(x) => {
                x.on_timeout(cfg, now, obs);
            }
            pair => {
                let mut p = pair.drive(cfg).expect("a pair");
                SCRATCH.with_borrow_mut(|s| p.on_timeout(cfg, now, s, obs));
            }
        }
    }

    /// MANUAL: deliver, drop, duplicate or reorder the first `count` segments travelling `dir`.
    /// EXTERNAL: deliver (to the caller) or drop what the endpoint emitted on its own. Returns the
    /// segments moved and, for EXTERNAL, when each was emitted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn wire(
        &mut self,
        id: ConnId,
        cfg: &tcp::Config,
        now: u64,
        dir: Direction,
        action: WireAction,
        count: u32,
        obs: &mut impl Observer,
    ) -> Result<(Vec<Segment>, Vec<u64>), Error> {
        let wrong_mode = |mode| Error::WrongMode { action, id, mode };
        match self {
            Conn::Auto(_) | Conn::Flying(_) => Err(wrong_mode(Mode::Auto)),
            Conn::Manual(m) => {
                let mut p = m.drive();
                let moved = match action {
                    WireAction::Deliver => {
                        SCRATCH.with_borrow_mut(|s| p.deliver(cfg, now, dir, count, s, obs))?
                    }
                    WireAction::Drop => p.drop_segments(dir, count)?,
                    WireAction::Duplicate => p.duplicate(dir, count)?,
                    WireAction::Reorder => p.reorder(dir, count)?,
                };
                Ok((moved, Vec::new()))
            }
            Conn::External(x) => {
                let role = x.role();
                if dir != Direction::from_side(role) {
                    return Err(Error::NoSuchDirection { id, role, dir });
                }
                if matches!(action, WireAction::Duplicate | WireAction::Reorder) {
                    return Err(wrong_mode(Mode::External(role)));
                }
                let waiting = x.outbox().len() as u32;
                if waiting < count {
                    return Err(tcp::pair::WireError::NotEnough {
                        dir,
                        requested: count,
                        waiting,
                    }
                    .into());
                }
                let taken = x.take(count as usize);
                Ok((
                    taken.iter().map(|e| e.seg).collect(),
                    taken.iter().map(|e| e.at).collect(),
                ))
            }
        }
    }

    /// Each side's TCB, as `get` shows it, under settings `cfg` (the connection's own, or the
    /// table's) on a clock that stands at `now`.
    pub(crate) fn side_infos(&self, cfg: &tcp::Config, now: u64) -> Vec<SideInfo> {
        self.sides()
            .iter()
            .filter_map(|&side| self.endpoint(side).map(|ep| (side, ep)))
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
            .collect()
    }

    /// MANUAL: the segments on the wire, by direction. EXTERNAL: the outbox, in the endpoint's
    /// direction.
    pub(crate) fn queues(&self) -> Vec<(Direction, Vec<Segment>)> {
        match self {
            // An AUTO pair's segments in flight are `in_flight_by_direction`'s, with their times.
            Conn::Auto(_) | Conn::Flying(_) => Vec::new(),
            Conn::Manual(m) => [Direction::ClientToServer, Direction::ServerToClient]
                .map(|d| (d, m.wire().queue(d).iter().copied().collect()))
                .to_vec(),
            Conn::External(x) => vec![(
                Direction::from_side(x.role()),
                x.outbox().iter().map(|e| e.seg).collect(),
            )],
        }
    }
}

/// Collects the segments sent during one call, and reports everything on as usual.
struct Collect<'a, O: Observer> {
    inner: &'a mut O,
    /// The first `INJECT_REPLY_LIMIT` segments.
    segments: Vec<Segment>,
    /// All of them.
    total: u64,
}

impl<O: Observer> Observer for Collect<'_, O> {
    fn transition(&mut self, side: Side, t: tcp::Transition) {
        self.inner.transition(side, t);
    }
    fn segment(&mut self, from: Side, seg: &Segment) {
        if self.segments.len() < INJECT_REPLY_LIMIT {
            self.segments.push(*seg);
        }
        self.total += 1;
        self.inner.segment(from, seg);
    }
    fn delivered(&mut self, to: Side, seg: &Segment) {
        self.inner.delivered(to, seg);
    }
    fn overflow(&mut self, from: Side, seg: &Segment) {
        self.inner.overflow(from, seg);
    }
    fn link(&mut self, from: Side, ev: tcp::LinkEvent) {
        self.inner.link(from, ev);
    }
    fn in_flight(&mut self, delta: i64) {
        self.inner.in_flight(delta);
    }
    fn admit_timewait(&mut self, side: Side) -> bool {
        self.inner.admit_timewait(side)
    }
    fn left_timewait(&mut self, side: Side) {
        self.inner.left_timewait(side);
    }
    fn conn_request(&mut self, side: Side) -> tcp::SynVerdict {
        self.inner.conn_request(side)
    }
    fn reqsk_timeout(&mut self, side: Side, max: u8, retries: u8) -> bool {
        self.inner.reqsk_timeout(side, max, retries)
    }
    fn reqsk_removed(&mut self, side: Side, young: bool) {
        self.inner.reqsk_removed(side, young);
    }
    fn syn_recv_sock(&mut self, side: Side, cookie: bool) -> tcp::ChildVerdict {
        self.inner.syn_recv_sock(side, cookie)
    }
    fn cookie_failed(&mut self, side: Side) {
        self.inner.cookie_failed(side);
    }
    fn connected(&mut self, side: Side, ms: u64) {
        self.inner.connected(side, ms);
    }
}

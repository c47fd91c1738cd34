//! A connection pair: a client endpoint (active opener) and a server endpoint (passive, starting
//! in LISTEN) joined by a simulated wire. Still sans-IO: `now` is a parameter.
//!
//! AUTO: every segment is delivered as soon as it is sent, until the pair is quiet; the wire is
//! never materialised. MANUAL: segments wait on the wire, one queue per direction, and the caller
//! delivers, drops, duplicates or reorders them, or injects forged ones.

use std::collections::VecDeque;

use super::config::Config;
use super::endpoint::{Call, Endpoint, Error, Output};
use super::link::{self, Flight, InFlightQueue, Link};
pub use super::observe::{Log, Observer};
use super::segment::Segment;
use super::seq::SeqNum;
use super::state::{State, Transition};

/// Which endpoint of a pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Client, Side::Server];

    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// A direction on the wire, named by where segments come from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// The direction segments sent by `side` travel.
    pub fn from_side(side: Side) -> Direction {
        match side {
            Side::Client => Direction::ClientToServer,
            Side::Server => Direction::ServerToClient,
        }
    }

    /// The endpoint that receives segments travelling this way.
    pub fn to(self) -> Side {
        match self {
            Direction::ClientToServer => Side::Server,
            Direction::ServerToClient => Side::Client,
        }
    }

    /// As the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "DIRECTION_CLIENT_TO_SERVER",
            Direction::ServerToClient => "DIRECTION_SERVER_TO_CLIENT",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Segments in flight, one FIFO per direction (MANUAL mode).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wire {
    pub client_to_server: VecDeque<Segment>,
    pub server_to_client: VecDeque<Segment>,
}

impl Wire {
    pub fn queue(&self, dir: Direction) -> &VecDeque<Segment> {
        match dir {
            Direction::ClientToServer => &self.client_to_server,
            Direction::ServerToClient => &self.server_to_client,
        }
    }

    fn queue_mut(&mut self, dir: Direction) -> &mut VecDeque<Segment> {
        match dir {
            Direction::ClientToServer => &mut self.client_to_server,
            Direction::ServerToClient => &mut self.server_to_client,
        }
    }
}

/// Reusable buffer for AUTO delivery, kept by the caller so that a pump allocates nothing once
/// warm. One per thread is enough.
///
/// Delivery is FIFO, in rounds: the segments queued so far are taken as a batch and delivered in
/// order by reference, while what they provoke queues up for the next round. That is the order
/// of a single FIFO queue, without copying each segment out of it: a copy right after the
/// endpoint wrote it stalls store forwarding, and removing those copies (with the inlined output
/// path) took the AUTO lifecycle benchmark from 200 to about 148 ns.
#[derive(Default, Debug)]
pub struct Scratch {
    queue: Vec<Queued>,
    batch: Vec<Queued>,
}

/// A segment on its way in AUTO mode, and the side it goes to.
#[derive(Clone, Copy, Debug)]
struct Queued {
    seg: Segment,
    to: Side,
}

/// AUTO delivery stops after this many segments in one call and drops the rest. Forged segments
/// can make two endpoints answer each other's ACKs for ever (an "ACK war"), which Linux breaks
/// with `tcp_invalid_ratelimit` (the `linux` profile does too); without that limit (`rfc9293`)
/// the pump bounds the work instead. A send of the default 4 MiB buffer at the smallest MSS (88)
/// needs about 95 k deliveries, its segments and their ACKs; a larger send at that MSS is cut
/// short and recovered by retransmission.
pub const AUTO_DELIVERY_LIMIT: u32 = 1 << 17;

/// "1 segment", "2 segments".
fn segments(n: u32) -> String {
    format!("{n} segment{}", if n == 1 { "" } else { "s" })
}

/// A misuse of the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the wire is only steerable in MANUAL mode; this pair is AUTO")]
    NotManual,
    #[error(
        "{} asked for but only {waiting} {} {dir}",
        segments(*requested),
        if *waiting == 1 { "waits" } else { "wait" }
    )]
    NotEnough {
        dir: Direction,
        requested: u32,
        waiting: u32,
    },
}

/// Routes what one endpoint emits: in AUTO onto the scratch queue, in MANUAL onto the wire.
struct Emit<'a, O: Observer> {
    side: Side,
    target: Target<'a>,
    obs: &'a mut O,
}

enum Target<'a> {
    Scratch(&'a mut Vec<Queued>),
    Wire(&'a mut VecDeque<Segment>),
    /// Onto a link, sent at the time given.
    Link(Flight<'a>, u64),
}

impl<O: Observer> Output for Emit<'_, O> {
    // Inlined into the endpoint, so that a segment is built where it is queued.
    #[inline(always)]
    fn segment(&mut self, seg: Segment) {
        self.obs.segment(self.side, &seg);
        match &mut self.target {
            Target::Scratch(q) => q.push(Queued {
                seg,
                to: self.side.peer(),
            }),
            Target::Wire(q) => q.push_back(seg),
            Target::Link(flight, now) => onto_link(flight, *now, self.side, seg, self.obs),
        }
    }
    #[inline(always)]
    fn transition(&mut self, t: Transition) {
        self.obs.transition(self.side, t);
    }
    crate::tcp::observe::ask_observer!();
}

/// A segment from `side` onto a link, reported. Out of line: the endpoint inlines `segment`
/// into every place it sends from, and a pair without a link should not carry this there.
#[inline(never)]
fn onto_link<O: Observer>(
    flight: &mut Flight<'_>,
    now: u64,
    side: Side,
    seg: Segment,
    obs: &mut O,
) {
    let before = flight.queue.len();
    if let Some(ev) = flight.send(now, side.peer(), seg) {
        obs.link(side, ev);
    }
    obs.in_flight((flight.queue.len() - before) as i64);
}

/// Two endpoints. An AUTO pair is just this (104 bytes): its segments are delivered at once.
/// A MANUAL pair is one inside a [`Manual`]. Either is driven through a [`PairMut`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub client: Endpoint,
    pub server: Endpoint,
}

/// A MANUAL pair: its endpoints, the wire its segments wait on, and the settings it runs on if
/// it was opened with its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manual {
    pub pair: Pair,
    wire: Wire,
    settings: Option<Config>,
}

/// An AUTO pair with segments in flight on a link: its endpoints and the segments on their way
/// (24 bytes each). A pair becomes one when it sends onto a link and is a plain `Pair` again
/// once nothing is in flight, so a pair at rest costs what it always did — unless it was opened
/// with a link of its own, which it keeps for its life. Its draws are seeded by its initial
/// sequence numbers, fixed for its life.
///
/// Its endpoints are boxed apart (104 bytes, as a table's box of a connection at rest) and its
/// first four segments in flight take 96: every allocation a pair makes and frees on a link is
/// of the size class the table's connections are, so the heap reuses each one whole. (One box
/// of 152 bytes left, once freed and split for a 104-byte connection, a remainder nothing else
/// allocates: 15 bytes more per connection at 1 M opened over a link.)
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flying {
    pub pair: Box<Pair>,
    pub in_flight: InFlightQueue,
    /// Its own link, if it was opened with one; else the caller's.
    pub own: Option<Link>,
}

/// A pair being driven: its endpoints and, for a MANUAL one, its wire and own settings, or for
/// one on a link, the segments in flight. Every call on a pair goes through one (`Pair::drive`,
/// `Manual::drive`, `Flying::drive`).
pub struct PairMut<'a> {
    ends: &'a mut Pair,
    path: Path<'a>,
}

/// How a driven pair's segments travel: one way only.
enum Path<'a> {
    /// Delivered at once, within the call (AUTO).
    AtOnce,
    /// Onto the MANUAL wire, the pair running on its own settings if it has them.
    Manual(&'a mut Wire, Option<&'a Config>),
    /// Onto a link, joining the segments in flight.
    Link(&'a mut InFlightQueue, &'a Link),
}

/// Where one endpoint's output goes, and the settings it runs under (see `PairMut::route`).
type Routed<'a> = (&'a mut Endpoint, Target<'a>, &'a Config);

impl Pair {
    /// Two fresh endpoints in CLOSED.
    pub fn new() -> Pair {
        Pair::default()
    }

    /// Drives the pair in AUTO mode.
    pub fn drive(&mut self) -> PairMut<'_> {
        PairMut {
            ends: self,
            path: Path::AtOnce,
        }
    }

    pub fn endpoint(&self, side: Side) -> &Endpoint {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    pub fn state(&self, side: Side) -> State {
        self.endpoint(side).state()
    }

    /// The earliest armed deadline of the two endpoints, on a clock that stands at `now`.
    pub fn deadline(&self, now: u64) -> Option<u64> {
        let c = self.client.timer(now).map(|t| t.deadline);
        let s = self.server.timer(now).map(|t| t.deadline);
        match (c, s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Manual {
    /// A pair whose segments wait on the wire for the caller. With `settings`, its endpoints use
    /// them instead of the settings each call passes.
    pub fn new(settings: Option<Config>) -> Manual {
        Manual {
            settings,
            ..Manual::default()
        }
    }

    /// Drives the pair, its segments going onto the wire.
    pub fn drive(&mut self) -> PairMut<'_> {
        PairMut {
            ends: &mut self.pair,
            path: Path::Manual(&mut self.wire, self.settings.as_ref()),
        }
    }

    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// The settings this pair was opened with, if it has its own.
    pub fn settings(&self) -> Option<&Config> {
        self.settings.as_ref()
    }
}

impl Flying {
    /// A pair about to send onto a link: `own`, for its life, or the caller's.
    pub fn new(pair: Pair, own: Option<Link>) -> Flying {
        Flying {
            pair: Box::new(pair),
            in_flight: InFlightQueue::new(),
            own,
        }
    }

    /// Drives the pair, its segments going onto its own link, else `link`; with no link and
    /// nothing in flight, as a plain pair (delivered at once).
    pub fn drive<'a>(&'a mut self, link: &'a Link) -> PairMut<'a> {
        let link = self.own.as_ref().unwrap_or(link);
        let on_link = !link.is_none() || !self.in_flight.is_empty();
        PairMut {
            ends: &mut self.pair,
            path: match on_link {
                true => Path::Link(&mut self.in_flight, link),
                false => Path::AtOnce,
            },
        }
    }

    /// The earliest of the endpoints' deadlines and the deliveries, on a clock at `now`.
    pub fn deadline(&self, now: u64) -> Option<u64> {
        let d = self.pair.deadline(now);
        match (d, link::next_due(&self.in_flight, now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<'a> PairMut<'a> {
    pub fn state(&self, side: Side) -> State {
        self.ends.state(side)
    }

    /// One endpoint, where its output goes (the AUTO queue or its side of the wire), and the
    /// settings it runs under: the pair's own, else `cfg`.
    fn route<'b>(
        &'b mut self,
        side: Side,
        queue: &'b mut Vec<Queued>,
        cfg: &'b Config,
        now: u64,
    ) -> Routed<'b> {
        // A link's draws are seeded by the pair's initial sequence numbers.
        let seed = match self.path {
            Path::Link(..) => {
                u64::from(self.ends.client.iss().0) << 32 | u64::from(self.ends.server.iss().0)
            }
            _ => 0,
        };
        let ep = match side {
            Side::Client => &mut self.ends.client,
            Side::Server => &mut self.ends.server,
        };
        match &mut self.path {
            Path::Link(in_flight, link) => (
                ep,
                Target::Link(Flight::seeded(in_flight, link, seed), now),
                cfg,
            ),
            Path::Manual(wire, settings) => {
                let q = match side {
                    Side::Client => &mut wire.client_to_server,
                    Side::Server => &mut wire.server_to_client,
                };
                (ep, Target::Wire(q), settings.unwrap_or(cfg))
            }
            Path::AtOnce => (ep, Target::Scratch(queue), cfg),
        }
    }

    /// Runs `f` on one endpoint with its output routed and its settings, then (AUTO) pumps
    /// until quiet.
    fn with<O: Observer, R>(
        &mut self,
        cfg: &Config,
        now: u64,
        side: Side,
        scratch: &mut Scratch,
        obs: &mut O,
        f: impl FnOnce(&mut Endpoint, &Config, &mut Emit<'_, O>) -> R,
    ) -> R {
        let r = {
            let (ep, target, cfg) = self.route(side, &mut scratch.queue, cfg, now);
            let mut emit = Emit {
                side,
                target,
                obs: &mut *obs,
            };
            f(ep, cfg, &mut emit)
        };
        if matches!(self.path, Path::AtOnce) {
            self.pump(cfg, now, scratch, obs);
        }
        r
    }

    /// AUTO: delivers queued segments, and whatever they provoke, until none is left.
    fn pump<O: Observer>(&mut self, cfg: &Config, now: u64, scratch: &mut Scratch, obs: &mut O) {
        let mut delivered = 0;
        let mut batch = std::mem::take(&mut scratch.batch);
        while !scratch.queue.is_empty() {
            batch.clear();
            std::mem::swap(&mut batch, &mut scratch.queue);
            for (i, &Queued { ref seg, to }) in batch.iter().enumerate() {
                delivered += 1;
                if delivered > AUTO_DELIVERY_LIMIT {
                    for q in batch[i..].iter().chain(scratch.queue.iter()) {
                        obs.overflow(q.to.peer(), &q.seg);
                    }
                    scratch.queue.clear();
                    break;
                }
                obs.delivered(to, seg);
                let ep = match to {
                    Side::Client => &mut self.ends.client,
                    Side::Server => &mut self.ends.server,
                };
                let mut emit = Emit {
                    side: to,
                    target: Target::Scratch(&mut scratch.queue),
                    obs: &mut *obs,
                };
                ep.on_segment(cfg, now, seg, &mut emit);
            }
        }
        batch.clear();
        scratch.batch = batch;
    }

    /// Server listens, client connects. In AUTO both are ESTABLISHED when this returns.
    pub fn open<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        client_iss: SeqNum,
        server_iss: SeqNum,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<(), Error> {
        if self.ends.client.state() != State::Closed || self.ends.server.state() != State::Closed {
            let ep = if self.ends.client.state() != State::Closed {
                &self.ends.client
            } else {
                &self.ends.server
            };
            return Err(Error::InvalidInState {
                call: Call::Connect { iss: client_iss },
                state: ep.state(),
            });
        }
        let listen = Call::Listen { iss: server_iss };
        self.call(cfg, now, Side::Server, listen, scratch, obs)?;
        let connect = Call::Connect { iss: client_iss };
        self.call(cfg, now, Side::Client, connect, scratch, obs)
    }

    /// A new connection on this pair's 4-tuple while the server is in TIME-WAIT and the client
    /// is gone (CLOSED): the client connects again with `client_iss`, and the server's TIME-WAIT
    /// takes the SYN if it is above RCV.NXT, as Linux does (see `Endpoint::on_segment`).
    pub fn reconnect<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        client_iss: SeqNum,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<(), Error> {
        let connect = Call::Connect { iss: client_iss };
        if self.ends.server.state() != State::TimeWait {
            return Err(Error::InvalidInState {
                call: connect,
                state: self.ends.server.state(),
            });
        }
        self.call(cfg, now, Side::Client, connect, scratch, obs)
    }

    /// `side`'s TIME-WAIT is taken over by a new connect of the same 4-tuple (`tcp_tw_reuse`):
    /// it goes to CLOSED, and the pair can be opened afresh.
    pub fn take_over_timewait<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        side: Side,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<(), Error> {
        self.with(cfg, now, side, scratch, obs, |ep, cfg, out| {
            ep.take_over_timewait(cfg, now, out)
        })
    }

    /// A user call on one side (listen and connect are `open`'s).
    pub fn call<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        side: Side,
        call: Call,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<(), Error> {
        self.with(cfg, now, side, scratch, obs, |ep, cfg, out| {
            ep.call(cfg, now, call, out)
        })
    }

    /// Both sides close before either sees the other's FIN: a simultaneous close. `half` selects
    /// shutdown rather than close. Checked for both sides before either acts.
    pub fn close_both<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        half: bool,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<(), Error> {
        // Both sides are checked before either acts, so that a refusal from the server leaves
        // the client untouched.
        self.ends.client.check_fin_call(half)?;
        self.ends.server.check_fin_call(half)?;
        // In AUTO, hold delivery until both FINs are out: queue both, then pump.
        for side in Side::BOTH {
            let (ep, target, cfg) = self.route(side, &mut scratch.queue, cfg, now);
            let mut emit = Emit {
                side,
                target,
                obs: &mut *obs,
            };
            let r = ep.call(
                cfg,
                now,
                if half { Call::Shutdown } else { Call::Close },
                &mut emit,
            );
            debug_assert!(r.is_ok(), "the dry run above accepted this call");
        }
        if matches!(self.path, Path::AtOnce) {
            self.pump(cfg, now, scratch, obs);
        }
        Ok(())
    }

    /// Fires every timer due at or before `now`, earliest first (a fired timer may arm another
    /// that is also due), and on a link delivers every segment due, in time order with them.
    /// Returns how many timers fired.
    pub fn on_timeout<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> u32 {
        let mut fired = 0;
        let on_link = matches!(self.path, Path::Link(..));
        loop {
            let c = self
                .ends
                .client
                .timer(now)
                .map(|t| t.deadline)
                .filter(|&d| d <= now);
            let s = self
                .ends
                .server
                .timer(now)
                .map(|t| t.deadline)
                .filter(|&d| d <= now);
            let timer = match (c, s) {
                (Some(a), Some(b)) if b < a => Some((Side::Server, b)),
                (Some(a), _) => Some((Side::Client, a)),
                (None, Some(b)) => Some((Side::Server, b)),
                (None, None) => None,
            };
            // On a link, a delivery due before the next timer (or with it: the segment was on
            // its way first) arrives first, at its own time.
            let before = timer.map_or(now, |(_, t)| t);
            if on_link && self.arrive_from_link(cfg, now, before, scratch, obs) {
                continue;
            }
            let Some((side, at)) = timer else {
                return fired;
            };
            // Each timer fires at its own deadline, so the clock seen inside is exact.
            if self.with(cfg, at, side, scratch, obs, |ep, cfg, out| {
                ep.on_timeout(cfg, at, out)
            }) {
                fired += 1;
            }
        }
    }

    /// The first segment on the link due at or before `before`, if any, arrives, at its own
    /// time, on a clock at `now`. Out of line: the timer loop of a pair without a link should
    /// not carry it.
    #[inline(never)]
    fn arrive_from_link<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        before: u64,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> bool {
        let Path::Link(q, _) = &mut self.path else {
            return false;
        };
        let Some(at) = link::next_due(q, now).filter(|&d| d <= before) else {
            return false;
        };
        let (_, f) = link::take_due(q, at).expect("due at `at`");
        obs.in_flight(-1);
        obs.delivered(f.to, &f.seg);
        self.with(cfg, at, f.to, scratch, obs, |ep, cfg, out| {
            ep.on_segment(cfg, at, &f.seg, out)
        });
        true
    }

    /// A forged segment arrives at `to` directly (not through the wire).
    pub fn inject<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        to: Side,
        seg: &Segment,
        scratch: &mut Scratch,
        obs: &mut O,
    ) {
        self.with(cfg, now, to, scratch, obs, |ep, cfg, out| {
            ep.on_segment(cfg, now, seg, out)
        })
    }

    fn manual_wire(&self, dir: Direction, requested: u32) -> Result<(), WireError> {
        let Path::Manual(wire, _) = &self.path else {
            return Err(WireError::NotManual);
        };
        let waiting = wire.queue(dir).len() as u32;
        if waiting < requested {
            return Err(WireError::NotEnough {
                dir,
                requested,
                waiting,
            });
        }
        Ok(())
    }

    /// The MANUAL wire's queue travelling `dir`, holding at least `requested` segments.
    fn manual_queue(
        &mut self,
        dir: Direction,
        requested: u32,
    ) -> Result<&mut VecDeque<Segment>, WireError> {
        self.manual_wire(dir, requested)?;
        let Path::Manual(wire, _) = &mut self.path else {
            return Err(WireError::NotManual);
        };
        Ok(wire.queue_mut(dir))
    }

    /// MANUAL: delivers the first `n` segments travelling `dir`, one at a time; what they provoke
    /// goes onto the wire.
    pub fn deliver<O: Observer>(
        &mut self,
        cfg: &Config,
        now: u64,
        dir: Direction,
        n: u32,
        scratch: &mut Scratch,
        obs: &mut O,
    ) -> Result<Vec<Segment>, WireError> {
        self.manual_wire(dir, n)?;
        let mut moved = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let Path::Manual(wire, _) = &mut self.path else {
                break;
            };
            let Some(seg) = wire.queue_mut(dir).pop_front() else {
                break;
            };
            moved.push(seg);
            obs.delivered(dir.to(), &seg);
            self.inject(cfg, now, dir.to(), &seg, scratch, obs);
        }
        Ok(moved)
    }

    /// MANUAL: drops the first `n` segments travelling `dir`.
    pub fn drop_segments(&mut self, dir: Direction, n: u32) -> Result<Vec<Segment>, WireError> {
        let q = self.manual_queue(dir, n)?;
        Ok(q.drain(..n as usize).collect())
    }

    /// MANUAL: each of the first `n` segments travelling `dir` is followed by a copy of itself.
    pub fn duplicate(&mut self, dir: Direction, n: u32) -> Result<Vec<Segment>, WireError> {
        let q = self.manual_queue(dir, n)?;
        let mut copies = Vec::with_capacity(n as usize);
        for i in (0..n as usize).rev() {
            let seg = q[i];
            q.insert(i + 1, seg);
            copies.push(seg);
        }
        copies.reverse();
        Ok(copies)
    }

    /// MANUAL: moves the first `n` segments travelling `dir` behind all the others.
    pub fn reorder(&mut self, dir: Direction, n: u32) -> Result<Vec<Segment>, WireError> {
        let q = self.manual_queue(dir, n)?;
        let moved: Vec<Segment> = q.drain(..n as usize).collect();
        q.extend(moved.iter().copied());
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod wire_error_tests {
    use super::*;

    #[test]
    fn wire_errors_read_as_english_and_name_directions_as_the_api() {
        let e = WireError::NotEnough {
            dir: Direction::ClientToServer,
            requested: 1,
            waiting: 0,
        };
        assert_eq!(
            e.to_string(),
            "1 segment asked for but only 0 wait DIRECTION_CLIENT_TO_SERVER"
        );
        let e = WireError::NotEnough {
            dir: Direction::ServerToClient,
            requested: 3,
            waiting: 1,
        };
        assert_eq!(
            e.to_string(),
            "3 segments asked for but only 1 waits DIRECTION_SERVER_TO_CLIENT"
        );
    }
}

//! Pair scenarios, every segment spelled out with its seq and ack, and both states at each step.

use super::*;
use crate::tcp::{Cause, Flags, Recorder, TimerKind};
use Direction::{ClientToServer as C2S, ServerToClient as S2C};
use State::*;

const X: u32 = 100; // client ISS
const Y: u32 = 300; // server ISS

fn cfg() -> Config {
    Config::default()
}

/// A tiny harness: a pair (AUTO, or MANUAL with its wire), its scratch, a log, and a clock.
struct Sim {
    cfg: Config,
    m: Manual,
    auto: bool,
    scratch: Scratch,
    log: Log,
    now: u64,
}

impl Sim {
    fn auto() -> Sim {
        Sim {
            auto: true,
            ..Sim::manual()
        }
    }

    fn manual() -> Sim {
        Sim {
            cfg: cfg(),
            m: Manual::new(None),
            auto: false,
            scratch: Scratch::default(),
            log: Log::default(),
            now: 0,
        }
    }

    /// The pair driven, with the settings, clock, scratch and log a call takes.
    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut PairMut<'_>, &Config, u64, &mut Scratch, &mut Log) -> R,
    ) -> R {
        let mut p = if self.auto {
            self.m.pair.drive()
        } else {
            self.m.drive()
        };
        f(
            &mut p,
            &self.cfg,
            self.now,
            &mut self.scratch,
            &mut self.log,
        )
    }

    fn open(&mut self, x: u32, y: u32) {
        self.with(|p, cfg, now, s, log| p.open(cfg, now, SeqNum(x), SeqNum(y), s, log))
            .unwrap();
    }

    fn states(&self) -> (State, State) {
        let p = &self.m.pair;
        (p.state(Side::Client), p.state(Side::Server))
    }

    /// Delivers the next segment travelling `dir` and returns it as `FLAGS seq ack`.
    fn deliver(&mut self, dir: Direction) -> String {
        let moved = self
            .with(|p, cfg, now, s, log| p.deliver(cfg, now, dir, 1, s, log))
            .unwrap();
        brief(&moved[0])
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.with(|p, cfg, now, s, log| p.on_timeout(cfg, now, s, log));
    }

    fn close(&mut self, side: Side) {
        self.with(|p, cfg, now, s, log| p.call(cfg, now, side, Call::Close, s, log))
            .unwrap();
    }
}

fn brief(s: &Segment) -> String {
    let mut text = format!("{} seq={}", s.flags, s.seq);
    if s.has(Flags::ACK) {
        text += &format!(" ack={}", s.ack);
    }
    if s.len > 0 {
        text += &format!(" len={}", s.len);
    }
    text
}

#[test]
fn test_seed_handshake_and_four_way_close() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    assert_eq!(sim.states(), (SynSent, Listen));
    // SYN seq=x
    assert_eq!(sim.deliver(C2S), "SYN seq=100");
    assert_eq!(sim.states(), (SynSent, SynReceived));
    // SYN-ACK seq=y ack=x+1
    assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101");
    assert_eq!(sim.states(), (Established, SynReceived));
    // ACK seq=x+1 ack=y+1
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301");
    assert_eq!(sim.states(), (Established, Established));

    // Four-way close, client first. u = 101, w = 301.
    sim.close(Side::Client);
    assert_eq!(sim.states(), (FinWait1, Established));
    assert_eq!(sim.deliver(C2S), "FIN|ACK seq=101 ack=301"); // FIN seq=u
    assert_eq!(sim.states(), (FinWait1, CloseWait));
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=102"); // ACK u+1
    assert_eq!(sim.states(), (FinWait2, CloseWait));
    sim.close(Side::Server);
    assert_eq!(sim.states(), (FinWait2, LastAck));
    assert_eq!(sim.deliver(S2C), "FIN|ACK seq=301 ack=102"); // FIN seq=w ack=u+1
    assert_eq!(sim.states(), (TimeWait, LastAck));
    assert_eq!(sim.deliver(C2S), "ACK seq=102 ack=302"); // ACK w+1
    assert_eq!(sim.states(), (TimeWait, Closed));

    let tw = sim.m.pair.client.timer(sim.now).unwrap();
    assert_eq!(tw.kind, TimerKind::TimeWait);
    assert_eq!(tw.deadline, sim.now + 2 * u64::from(sim.cfg.msl_ms));
    sim.advance(2 * u64::from(sim.cfg.msl_ms) - 1);
    assert_eq!(sim.states(), (TimeWait, Closed));
    sim.advance(1);
    assert_eq!(sim.states(), (Closed, Closed));
    let last = sim.log.transitions.last().unwrap();
    assert_eq!(
        *last,
        (
            Side::Client,
            Transition {
                from: TimeWait,
                to: Closed,
                cause: Cause::TimeWaitExpired
            }
        )
    );
}

#[test]
fn test_auto_open_is_established_in_one_call_and_close_walks_every_state() {
    let mut sim = Sim::auto();
    sim.open(X, Y);
    assert_eq!(sim.states(), (Established, Established));
    let segs: Vec<String> = sim
        .log
        .segments
        .iter()
        .map(|(side, s)| format!("{} {}", side.as_str(), brief(s)))
        .collect();
    assert_eq!(
        segs,
        [
            "client SYN seq=100",
            "server SYN|ACK seq=300 ack=101",
            "client ACK seq=101 ack=301"
        ]
    );
    sim.close(Side::Client);
    assert_eq!(sim.states(), (FinWait2, CloseWait));
    sim.close(Side::Server);
    assert_eq!(sim.states(), (TimeWait, Closed));
    sim.advance(cfg().time_wait_ms());
    assert_eq!(sim.states(), (Closed, Closed));
    let client_path: Vec<State> = sim
        .log
        .transitions
        .iter()
        .filter(|(s, _)| *s == Side::Client)
        .map(|(_, t)| t.to)
        .collect();
    assert_eq!(
        client_path,
        [SynSent, Established, FinWait1, FinWait2, TimeWait, Closed]
    );
    let server_path: Vec<State> = sim
        .log
        .transitions
        .iter()
        .filter(|(s, _)| *s == Side::Server)
        .map(|(_, t)| t.to)
        .collect();
    assert_eq!(
        server_path,
        [Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );
}

#[test]
fn test_simultaneous_open() {
    // Two active openers whose SYNs cross (RFC 9293 figure 7).
    let c = cfg();
    let (mut a, mut b) = (Endpoint::new(), Endpoint::new());
    let (mut ra, mut rb) = (Recorder::default(), Recorder::default());
    a.call(&c, 0, Call::Connect { iss: SeqNum(X) }, &mut ra)
        .unwrap();
    b.call(&c, 0, Call::Connect { iss: SeqNum(Y) }, &mut rb)
        .unwrap();
    assert_eq!(brief(&ra.segments[0]), "SYN seq=100");
    assert_eq!(brief(&rb.segments[0]), "SYN seq=300");
    let (syn_a, syn_b) = (ra.segments[0], rb.segments[0]);
    let (mut ra, mut rb) = (Recorder::default(), Recorder::default());
    a.on_segment(&c, 5, &syn_b, &mut ra);
    b.on_segment(&c, 5, &syn_a, &mut rb);
    assert_eq!((a.state(), b.state()), (SynReceived, SynReceived));
    assert_eq!(brief(&ra.segments[0]), "SYN|ACK seq=100 ack=301");
    assert_eq!(brief(&rb.segments[0]), "SYN|ACK seq=300 ack=101");
    let (sa_a, sa_b) = (ra.segments[0], rb.segments[0]);
    let (mut ra, mut rb) = (Recorder::default(), Recorder::default());
    a.on_segment(&c, 10, &sa_b, &mut ra);
    b.on_segment(&c, 10, &sa_a, &mut rb);
    assert_eq!((a.state(), b.state()), (Established, Established));
    // Each SYN-ACK acknowledges the SYN and repeats the peer's: Linux answers the old SYN with a
    // bare ACK (tcp_validate_incoming, then tcp_data_queue's "retransmit, 2nd most common case").
    assert_eq!(brief(&ra.segments[0]), "ACK seq=101 ack=301");
    assert_eq!(brief(&rb.segments[0]), "ACK seq=301 ack=101");
    assert_eq!((ra.segments.len(), rb.segments.len()), (1, 1));
    let (ack_a, ack_b) = (ra.segments[0], rb.segments[0]);
    let (mut ra, mut rb) = (Recorder::default(), Recorder::default());
    a.on_segment(&c, 15, &ack_b, &mut ra);
    b.on_segment(&c, 15, &ack_a, &mut rb);
    // The bare ACKs are duplicates: nothing more to say.
    assert!(ra.segments.is_empty() && rb.segments.is_empty());
    assert_eq!((a.state(), b.state()), (Established, Established));
    assert_eq!((a.snd_nxt(), a.rcv_nxt()), (SeqNum(101), SeqNum(301)));
}

#[test]
fn test_simultaneous_close_goes_through_closing() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.with(|p, cfg, now, s, log| p.close_both(cfg, now, false, s, log))
        .unwrap();
    assert_eq!(sim.states(), (FinWait1, FinWait1));
    assert_eq!(sim.deliver(C2S), "FIN|ACK seq=101 ack=301");
    assert_eq!(sim.states(), (FinWait1, Closing));
    assert_eq!(sim.deliver(S2C), "FIN|ACK seq=301 ack=101");
    assert_eq!(sim.states(), (Closing, Closing));
    assert_eq!(sim.deliver(S2C), "ACK seq=302 ack=102");
    assert_eq!(sim.states(), (TimeWait, Closing));
    assert_eq!(sim.deliver(C2S), "ACK seq=102 ack=302");
    assert_eq!(sim.states(), (TimeWait, TimeWait));
    sim.advance(cfg().time_wait_ms());
    assert_eq!(sim.states(), (Closed, Closed));
}

#[test]
fn test_auto_simultaneous_close_leaves_both_in_time_wait() {
    let mut sim = Sim::auto();
    sim.open(X, Y);
    sim.with(|p, cfg, _, s, log| p.close_both(cfg, 0, false, s, log))
        .unwrap();
    assert_eq!(sim.states(), (TimeWait, TimeWait));
    let closing = sim
        .log
        .transitions
        .iter()
        .filter(|(_, t)| t.to == Closing)
        .count();
    assert_eq!(closing, 2);
}

#[test]
fn test_close_both_refused_by_one_side_changes_neither() {
    let mut sim = Sim::auto();
    sim.open(X, Y);
    sim.close(Side::Server); // server in FIN-WAIT-2 now (orphaned), client in CLOSE-WAIT
    let before = sim.m.clone();
    let err = sim
        .with(|p, cfg, _, s, log| p.close_both(cfg, 0, false, s, log))
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidInState {
            call: crate::tcp::Call::Close,
            state: FinWait2
        }
    );
    assert_eq!(sim.m, before);
}

#[test]
fn test_half_close_with_data_flowing_in_close_wait() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.with(|p, cfg, _, s, log| p.call(cfg, 0, Side::Client, Call::Shutdown, s, log))
        .unwrap();
    assert_eq!(sim.deliver(C2S), "FIN|ACK seq=101 ack=301");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=102");
    assert_eq!(sim.states(), (FinWait2, CloseWait));
    // The server keeps sending; the half-closed client keeps receiving.
    sim.with(|p, cfg, _, s, log| p.call(cfg, 0, Side::Server, Call::Send(2000), s, log))
        .unwrap();
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=102 len=1460");
    assert_eq!(sim.deliver(S2C), "PSH|ACK seq=1761 ack=102 len=540");
    assert_eq!(sim.deliver(C2S), "ACK seq=102 ack=1761");
    assert_eq!(sim.deliver(C2S), "ACK seq=102 ack=2301");
    assert_eq!(sim.states(), (FinWait2, CloseWait));
    sim.close(Side::Server);
    assert_eq!(sim.deliver(S2C), "FIN|ACK seq=2301 ack=102");
    assert_eq!(sim.deliver(C2S), "ACK seq=102 ack=2302");
    assert_eq!(sim.states(), (TimeWait, Closed));
}

#[test]
fn test_iss_near_wrap_moves_data_and_closes() {
    let mut sim = Sim::auto();
    sim.open(u32::MAX - 1, u32::MAX);
    assert_eq!(sim.states(), (Established, Established));
    sim.with(|p, cfg, _, s, log| p.call(cfg, 0, Side::Client, Call::Send(10_000), s, log))
        .unwrap();
    sim.with(|p, cfg, _, s, log| p.call(cfg, 0, Side::Server, Call::Send(7_000), s, log))
        .unwrap();
    let (c, s) = (&sim.m.pair.client, &sim.m.pair.server);
    assert_eq!(c.snd_nxt(), SeqNum(u32::MAX - 1) + 1 + 10_000);
    assert_eq!(c.snd_una(), c.snd_nxt());
    assert_eq!(s.rcv_nxt(), c.snd_nxt());
    assert_eq!(c.rcv_nxt(), s.snd_nxt());
    assert_eq!(s.snd_nxt().0, 7_000); // u32::MAX + 1 + 7000 wraps to 7000
    sim.close(Side::Client);
    sim.close(Side::Server);
    sim.advance(cfg().time_wait_ms());
    assert_eq!(sim.states(), (Closed, Closed));
}

#[test]
fn test_dropped_final_ack_leaves_server_half_open_until_it_gives_up() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    sim.deliver(C2S);
    sim.deliver(S2C);
    assert_eq!(sim.m.drive().drop_segments(C2S, 1).unwrap().len(), 1);
    assert_eq!(sim.states(), (Established, SynReceived));
    // SYN-ACK retransmissions at 1, 3, 7, 15, 31 s; the client re-acknowledges each one, and we
    // drop those too; the server gives up at 63 s and returns to LISTEN.
    let mut synacks = 0;
    for _ in 0..70 {
        sim.advance(1000);
        while !sim.m.wire().server_to_client.is_empty() {
            assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101");
            synacks += 1;
            sim.m.drive().drop_segments(C2S, 1).unwrap();
        }
    }
    assert_eq!(synacks, 5);
    assert_eq!(sim.states(), (Established, Listen));
}

#[test]
fn test_retransmitted_syn_ack_completes_handshake() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    sim.deliver(C2S);
    sim.m.drive().drop_segments(S2C, 1).unwrap();
    sim.advance(1000); // both the client's SYN and the server's SYN-ACK time out at 1 s
    assert_eq!(sim.deliver(C2S), "SYN seq=100");
    assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101"); // retransmission by timer
    assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101"); // answer to the SYN (Linux)
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301");
    assert_eq!(sim.states(), (Established, Established));
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301"); // duplicate SYN-ACK: dup ACK
    assert!(sim.m.wire().client_to_server.is_empty());
}

#[test]
fn test_duplicate_and_reorder_on_the_wire() {
    let mut sim = Sim::manual();
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.with(|p, cfg, _, s, log| p.call(cfg, 0, Side::Client, Call::Send(2000), s, log))
        .unwrap();
    assert_eq!(sim.m.drive().duplicate(C2S, 1).unwrap().len(), 1);
    assert_eq!(sim.m.wire().client_to_server.len(), 3);
    sim.m.drive().reorder(C2S, 2).unwrap(); // the first segment and its copy go behind the second
    assert_eq!(sim.deliver(C2S), "PSH|ACK seq=1561 ack=301 len=540");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=101"); // out of order: duplicate ACK
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301 len=1460");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=1561");
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301 len=1460");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=1561"); // the copy is old: ACK again
    // The last 540 bytes were dropped as out of order: the client's timer resends them.
    sim.advance(200);
    assert_eq!(sim.deliver(C2S), "PSH|ACK seq=1561 ack=301 len=540");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=2101");
    assert_eq!(sim.m.pair.server.rcv_nxt(), SeqNum(2101));
}

#[test]
fn test_wire_errors() {
    let mut auto = Pair::new();
    assert_eq!(
        auto.drive().drop_segments(C2S, 1),
        Err(WireError::NotManual)
    );
    let mut manual = Manual::new(None);
    assert_eq!(
        manual.drive().duplicate(S2C, 2),
        Err(WireError::NotEnough {
            dir: S2C,
            requested: 2,
            waiting: 0
        })
    );
    let mut sim = Sim::manual();
    sim.open(X, Y);
    let before = sim.m.clone();
    assert!(
        sim.with(|p, cfg, _, s, log| p.deliver(cfg, 0, C2S, 2, s, log))
            .is_err()
    );
    assert_eq!(sim.m, before, "a refused wire call changes nothing");
}

#[test]
fn test_open_twice_is_refused() {
    let mut sim = Sim::auto();
    sim.open(X, Y);
    let before = sim.m.clone();
    let err = sim.with(|p, cfg, _, s, log| p.open(cfg, 0, SeqNum(1), SeqNum(2), s, log));
    assert!(err.is_err());
    assert_eq!(sim.m, before);
}

#[test]
fn test_ack_war_ends_at_the_rate_limit_or_the_delivery_limit() {
    // Forged in-order data makes the client acknowledge bytes the server never sent. The server
    // answers that ACK with a challenge ACK, which the client finds out of window and answers in
    // turn: an ACK war. Linux ends it with tcp_invalid_ratelimit (each side sends one such ACK
    // per 500 ms); without the limit (rfc9293), AUTO delivery stops at its cap and reports what
    // it dropped.
    let forged = Segment {
        seq: SeqNum(301),
        ack: SeqNum(101),
        len: 100,
        wnd: 65535,
        mss: None,
        flags: Flags::ACK,
    };
    for (cfg, sent, overflowed) in [
        (cfg(), 3, 0),
        (
            Config::for_profile(crate::tcp::ProfileName::Rfc9293),
            1 + AUTO_DELIVERY_LIMIT,
            1,
        ),
    ] {
        let mut sim = Sim::auto();
        sim.cfg = cfg;
        sim.open(X, Y);
        let before = sim.log.segments.len() as u32;
        sim.with(|p, cfg, _, s, log| p.inject(cfg, 0, Side::Client, &forged, s, log));
        assert_eq!(sim.log.segments.len() as u32 - before, sent);
        assert_eq!(sim.log.overflowed, overflowed);
        assert!(sim.scratch.queue.is_empty());
        assert_eq!(sim.states(), (Established, Established));
        // Nothing is wedged: the next call works and the pair still closes.
        sim.close(Side::Client);
        assert_eq!(sim.m.pair.state(Side::Client), FinWait1);
    }
}

#[test]
fn test_sizes() {
    // An AUTO pair is two endpoints and nothing else; it is what the table holds per connection.
    assert_eq!(std::mem::size_of::<Endpoint>(), 52);
    assert_eq!(std::mem::size_of::<Pair>(), 104);
    // Copied onto the AUTO queue on every hop: it stays two machine words.
    assert_eq!(std::mem::size_of::<Segment>(), 16);
    // On a link: each segment in flight, and the box of a pair with segments in flight (or a
    // link of its own).
    assert_eq!(std::mem::size_of::<crate::tcp::InFlight>(), 24);
    assert_eq!(std::mem::size_of::<Flying>(), 56);
}

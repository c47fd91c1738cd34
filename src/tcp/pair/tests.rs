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

/// A tiny harness: a pair, its scratch, a log, and a clock.
struct Sim {
    cfg: Config,
    pair: Pair,
    scratch: Scratch,
    log: Log,
    now: u64,
}

impl Sim {
    fn new(pair: Pair) -> Sim {
        Sim {
            cfg: cfg(),
            pair,
            scratch: Scratch::default(),
            log: Log::default(),
            now: 0,
        }
    }

    fn open(&mut self, x: u32, y: u32) {
        self.pair
            .open(
                &self.cfg,
                self.now,
                SeqNum(x),
                SeqNum(y),
                &mut self.scratch,
                &mut self.log,
            )
            .unwrap();
    }

    fn states(&self) -> (State, State) {
        (self.pair.state(Side::Client), self.pair.state(Side::Server))
    }

    /// Delivers the next segment travelling `dir` and returns it as `FLAGS seq ack`.
    fn deliver(&mut self, dir: Direction) -> String {
        let moved = self
            .pair
            .deliver(
                &self.cfg,
                self.now,
                dir,
                1,
                &mut self.scratch,
                &mut self.log,
            )
            .unwrap();
        brief(&moved[0])
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.pair
            .on_timeout(&self.cfg, self.now, &mut self.scratch, &mut self.log);
    }

    fn close(&mut self, side: Side) {
        self.pair
            .close(&self.cfg, self.now, side, &mut self.scratch, &mut self.log)
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
    let mut sim = Sim::new(Pair::manual(None));
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

    let tw = sim.pair.client.timer(sim.now).unwrap();
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
    let mut sim = Sim::new(Pair::auto());
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
    a.connect(&c, 0, SeqNum(X), &mut ra).unwrap();
    b.connect(&c, 0, SeqNum(Y), &mut rb).unwrap();
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
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.pair
        .close_both(&sim.cfg, sim.now, false, &mut sim.scratch, &mut sim.log)
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
    let mut sim = Sim::new(Pair::auto());
    sim.open(X, Y);
    sim.pair
        .close_both(&sim.cfg, 0, false, &mut sim.scratch, &mut sim.log)
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
    let mut sim = Sim::new(Pair::auto());
    sim.open(X, Y);
    sim.close(Side::Server); // server in FIN-WAIT-2 now (orphaned), client in CLOSE-WAIT
    let before = sim.pair.clone();
    let err = sim
        .pair
        .close_both(&sim.cfg, 0, false, &mut sim.scratch, &mut sim.log)
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidInState {
            call: crate::tcp::Call::Close,
            state: FinWait2
        }
    );
    assert_eq!(sim.pair, before);
}

#[test]
fn test_half_close_with_data_flowing_in_close_wait() {
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.pair
        .shutdown(&sim.cfg, 0, Side::Client, &mut sim.scratch, &mut sim.log)
        .unwrap();
    assert_eq!(sim.deliver(C2S), "FIN|ACK seq=101 ack=301");
    assert_eq!(sim.deliver(S2C), "ACK seq=301 ack=102");
    assert_eq!(sim.states(), (FinWait2, CloseWait));
    // The server keeps sending; the half-closed client keeps receiving.
    sim.pair
        .send(
            &sim.cfg,
            0,
            Side::Server,
            2000,
            &mut sim.scratch,
            &mut sim.log,
        )
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
    let mut sim = Sim::new(Pair::auto());
    sim.open(u32::MAX - 1, u32::MAX);
    assert_eq!(sim.states(), (Established, Established));
    sim.pair
        .send(
            &sim.cfg,
            0,
            Side::Client,
            10_000,
            &mut sim.scratch,
            &mut sim.log,
        )
        .unwrap();
    sim.pair
        .send(
            &sim.cfg,
            0,
            Side::Server,
            7_000,
            &mut sim.scratch,
            &mut sim.log,
        )
        .unwrap();
    let (c, s) = (&sim.pair.client, &sim.pair.server);
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
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    sim.deliver(C2S);
    sim.deliver(S2C);
    assert_eq!(sim.pair.drop_segments(C2S, 1).unwrap().len(), 1);
    assert_eq!(sim.states(), (Established, SynReceived));
    // SYN-ACK retransmissions at 1, 3, 7, 15, 31 s; the client re-acknowledges each one, and we
    // drop those too; the server gives up at 63 s and returns to LISTEN.
    let mut synacks = 0;
    for _ in 0..70 {
        sim.advance(1000);
        while !sim.pair.wire().unwrap().server_to_client.is_empty() {
            assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101");
            synacks += 1;
            sim.pair.drop_segments(C2S, 1).unwrap();
        }
    }
    assert_eq!(synacks, 5);
    assert_eq!(sim.states(), (Established, Listen));
}

#[test]
fn test_retransmitted_syn_ack_completes_handshake() {
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    sim.deliver(C2S);
    sim.pair.drop_segments(S2C, 1).unwrap();
    sim.advance(1000); // both the client's SYN and the server's SYN-ACK time out at 1 s
    assert_eq!(sim.deliver(C2S), "SYN seq=100");
    assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101"); // retransmission by timer
    assert_eq!(sim.deliver(S2C), "SYN|ACK seq=300 ack=101"); // answer to the SYN (Linux)
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301");
    assert_eq!(sim.states(), (Established, Established));
    assert_eq!(sim.deliver(C2S), "ACK seq=101 ack=301"); // duplicate SYN-ACK: dup ACK
    assert!(sim.pair.wire().unwrap().client_to_server.is_empty());
}

#[test]
fn test_duplicate_and_reorder_on_the_wire() {
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    for dir in [C2S, S2C, C2S] {
        sim.deliver(dir);
    }
    sim.pair
        .send(
            &sim.cfg,
            0,
            Side::Client,
            2000,
            &mut sim.scratch,
            &mut sim.log,
        )
        .unwrap();
    assert_eq!(sim.pair.duplicate(C2S, 1).unwrap().len(), 1);
    assert_eq!(sim.pair.wire().unwrap().client_to_server.len(), 3);
    sim.pair.reorder(C2S, 2).unwrap(); // the first segment and its copy go behind the second
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
    assert_eq!(sim.pair.server.rcv_nxt(), SeqNum(2101));
}

#[test]
fn test_wire_errors() {
    let mut auto = Pair::auto();
    assert_eq!(auto.drop_segments(C2S, 1), Err(WireError::NotManual));
    let mut manual = Pair::manual(None);
    assert_eq!(
        manual.duplicate(S2C, 2),
        Err(WireError::NotEnough {
            dir: S2C,
            requested: 2,
            waiting: 0
        })
    );
    let mut sim = Sim::new(Pair::manual(None));
    sim.open(X, Y);
    let before = sim.pair.clone();
    assert!(
        sim.pair
            .deliver(&sim.cfg, 0, C2S, 2, &mut sim.scratch, &mut sim.log)
            .is_err()
    );
    assert_eq!(sim.pair, before, "a refused wire call changes nothing");
}

#[test]
fn test_open_twice_is_refused() {
    let mut sim = Sim::new(Pair::auto());
    sim.open(X, Y);
    let before = sim.pair.clone();
    let err = sim.pair.open(
        &sim.cfg,
        0,
        SeqNum(1),
        SeqNum(2),
        &mut sim.scratch,
        &mut sim.log,
    );
    assert!(err.is_err());
    assert_eq!(sim.pair, before);
}

#[test]
fn test_ack_war_is_bounded() {
    // Forged in-order data makes the client acknowledge bytes the server never sent. The server
    // answers that ACK with its own, which the client finds out of window and answers in turn:
    // an ACK war. AUTO delivery stops at its limit and reports what it dropped.
    let mut sim = Sim::new(Pair::auto());
    sim.open(X, Y);
    let forged = Segment {
        seq: SeqNum(301),
        ack: SeqNum(101),
        len: 100,
        wnd: 65535,
        mss: None,
        flags: Flags::ACK,
    };
    let before = sim.log.segments.len() as u32;
    sim.pair.inject(
        &sim.cfg,
        0,
        Side::Client,
        &forged,
        &mut sim.scratch,
        &mut sim.log,
    );
    // The client's ACK of the forged data, then one answer per delivery until the limit.
    assert_eq!(
        sim.log.segments.len() as u32 - before,
        1 + AUTO_DELIVERY_LIMIT
    );
    assert_eq!(sim.log.overflowed, 1);
    assert!(sim.scratch.queue.is_empty());
    assert_eq!(sim.states(), (Established, Established));
    // Nothing is wedged: the next call works and the pair still closes.
    sim.close(Side::Client);
    assert_eq!(sim.pair.state(Side::Client), FinWait1);
}

#[test]
fn test_sizes() {
    let pair = std::mem::size_of::<Pair>();
    assert!(pair <= 112, "Pair is {pair} bytes");
    assert!(std::mem::size_of::<Endpoint>() <= 48);
    // Copied onto the AUTO queue on every hop: it stays two machine words.
    assert_eq!(std::mem::size_of::<Segment>(), 16);
}

//! Property tests of the core: whatever the calls, segments and clock do, nothing panics and the
//! TCB stays sane; an AUTO pair always opens and always closes.

use proptest::prelude::*;
use tcpsim::tcp::pair::Manual;
use tcpsim::tcp::pair::{Log, Scratch};
use tcpsim::tcp::{Call, Config, Direction, Flags, Pair, Segment, SeqNum, Side, State};

#[derive(Clone, Debug)]
enum Op {
    Send(Side, u32),
    Shutdown(Side),
    Close(Side),
    Abort(Side),
    CloseBoth(bool),
    Deliver(Direction),
    Drop(Direction),
    Duplicate(Direction),
    Reorder(Direction, u32),
    /// A forged segment: numbers are offsets from the receiver's RCV.NXT and SND.UNA.
    Forge {
        to: Side,
        flags: u8,
        seq_off: i32,
        ack_off: i32,
        len: u16,
        wnd: u16,
    },
    Advance(u64),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Server)]
}

fn dir() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::ClientToServer),
        Just(Direction::ServerToClient)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (side(), 0u32..20_000).prop_map(|(s, n)| Op::Send(s, n)),
        1 => side().prop_map(Op::Shutdown),
        1 => side().prop_map(Op::Close),
        1 => side().prop_map(Op::Abort),
        1 => any::<bool>().prop_map(Op::CloseBoth),
        4 => dir().prop_map(Op::Deliver),
        1 => dir().prop_map(Op::Drop),
        1 => dir().prop_map(Op::Duplicate),
        1 => (dir(), 1u32..4).prop_map(|(d, n)| Op::Reorder(d, n)),
        2 => (side(), 0u8..64, prop_oneof![-3000i32..3000, any::<i32>()], prop_oneof![-3000i32..3000, any::<i32>()],
            prop_oneof![Just(0u16), 1u16..3000], any::<u16>())
            .prop_map(|(to, flags, seq_off, ack_off, len, wnd)| Op::Forge { to, flags, seq_off, ack_off, len, wnd }),
        2 => prop_oneof![0u64..500, 0u64..5_000, 0u64..200_000].prop_map(Op::Advance),
    ]
}

fn check_invariants(p: &Pair, now: u64) -> Result<(), TestCaseError> {
    for side in Side::BOTH {
        let ep = p.endpoint(side);
        prop_assert!(
            ep.snd_una() <= ep.snd_nxt(),
            "{side:?}: SND.UNA {} > SND.NXT {}",
            ep.snd_una(),
            ep.snd_nxt()
        );
        prop_assert!(
            ep.snd_nxt() - ep.snd_una() <= 65_535 + 2,
            "{side:?}: more in flight than any window"
        );
        if let Some(t) = ep.timer(now) {
            prop_assert!(
                t.deadline > now,
                "{side:?}: timer at {} not fired by {now}",
                t.deadline
            );
        }
        if matches!(ep.state(), State::Closed | State::Listen) {
            prop_assert!(
                ep.timer(now).is_none(),
                "{side:?}: a timer in {}",
                ep.state()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn manual_pair_survives_anything(
        client_iss in any::<u32>(),
        server_iss in any::<u32>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let cfg = Config::default();
        let mut m = Manual::new(None);
        let mut scratch = Scratch::default();
        let mut log = Log::default();
        let mut now = 0u64;
        m.drive().open(&cfg, now, SeqNum(client_iss), SeqNum(server_iss), &mut scratch, &mut log).unwrap();
        for op in ops {
            match op {
                Op::Send(s, n) => { let _ = m.drive().call(&cfg, now, s, Call::Send(n), &mut scratch, &mut log); }
                Op::Shutdown(s) => { let _ = m.drive().call(&cfg, now, s, Call::Shutdown, &mut scratch, &mut log); }
                Op::Close(s) => { let _ = m.drive().call(&cfg, now, s, Call::Close, &mut scratch, &mut log); }
                Op::Abort(s) => { let _ = m.drive().call(&cfg, now, s, Call::Abort, &mut scratch, &mut log); }
                Op::CloseBoth(half) => { let _ = m.drive().close_both(&cfg, now, half, &mut scratch, &mut log); }
                Op::Deliver(d) => { let _ = m.drive().deliver(&cfg, now, d, 1, &mut scratch, &mut log); }
                Op::Drop(d) => { let _ = m.drive().drop_segments(d, 1); }
                Op::Duplicate(d) => { let _ = m.drive().duplicate(d, 1); }
                Op::Reorder(d, n) => { let _ = m.drive().reorder(d, n); }
                Op::Forge { to, flags, seq_off, ack_off, len, wnd } => {
                    let ep = m.pair.endpoint(to);
                    let seg = Segment {
                        seq: SeqNum(ep.rcv_nxt().0.wrapping_add(seq_off as u32)),
                        ack: SeqNum(ep.snd_una().0.wrapping_add(ack_off as u32)),
                        len,
                        wnd,
                        mss: (flags & Flags::SYN.0 != 0).then_some(std::num::NonZeroU16::new(536).unwrap()),
                        flags: Flags(flags),
                    };
                    m.drive().inject(&cfg, now, to, &seg, &mut scratch, &mut log);
                }
                Op::Advance(ms) => {
                    now += ms;
                    m.drive().on_timeout(&cfg, now, &mut scratch, &mut log);
                }
            }
            check_invariants(&m.pair, now)?;
        }
        // Every transition reported chains: each side's next `from` is its previous `to`.
        for side in Side::BOTH {
            let mut at = State::Closed;
            for (_, t) in log.transitions.iter().filter(|(s, _)| *s == side) {
                prop_assert_eq!(t.from, at);
                prop_assert_ne!(t.from, t.to);
                at = t.to;
            }
            prop_assert_eq!(at, m.pair.state(side));
        }
    }

    #[test]
    fn auto_pair_opens_and_closes(
        client_iss in any::<u32>(),
        server_iss in any::<u32>(),
        sends in prop::collection::vec((side(), 0u32..200_000), 0..6),
        how in 0u8..4,
    ) {
        let cfg = Config::default();
        let mut p = Pair::new();
        let mut scratch = Scratch::default();
        let mut now = 0u64;
        p.drive().open(&cfg, now, SeqNum(client_iss), SeqNum(server_iss), &mut scratch, &mut ()).unwrap();
        prop_assert_eq!((p.state(Side::Client), p.state(Side::Server)), (State::Established, State::Established));
        for (s, n) in sends {
            p.drive().call(&cfg, now, s, Call::Send(n), &mut scratch, &mut ()).unwrap();
        }
        for side in Side::BOTH {
            let ep = p.endpoint(side);
            prop_assert_eq!(ep.snd_una(), ep.snd_nxt(), "AUTO delivers and acknowledges everything");
            prop_assert_eq!(ep.unsent(), 0);
            prop_assert_eq!(ep.rcv_nxt(), p.endpoint(side.peer()).snd_nxt());
        }
        match how {
            0 => {
                p.drive().call(&cfg, now, Side::Client, Call::Close, &mut scratch, &mut ()).unwrap();
                p.drive().call(&cfg, now, Side::Server, Call::Close, &mut scratch, &mut ()).unwrap();
            }
            1 => {
                p.drive().call(&cfg, now, Side::Server, Call::Close, &mut scratch, &mut ()).unwrap();
                p.drive().call(&cfg, now, Side::Client, Call::Close, &mut scratch, &mut ()).unwrap();
            }
            2 => p.drive().close_both(&cfg, now, false, &mut scratch, &mut ()).unwrap(),
            _ => {
                p.drive().call(&cfg, now, Side::Client, Call::Shutdown, &mut scratch, &mut ()).unwrap();
                p.drive().call(&cfg, now, Side::Server, Call::Shutdown, &mut scratch, &mut ()).unwrap();
            }
        }
        now += cfg.time_wait_ms();
        p.drive().on_timeout(&cfg, now, &mut scratch, &mut ());
        prop_assert_eq!((p.state(Side::Client), p.state(Side::Server)), (State::Closed, State::Closed));
        prop_assert_eq!(p.deadline(now), None);
    }
}

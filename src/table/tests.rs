//! Table tests: every operation's normal path, limits, addresses, refusals, and the counters
//! against a full scan.

use super::hosts::TwReuse;
use super::*;
use crate::tcp::pair::WireError;
use crate::tcp::{Call, Direction, Endpoint, Flags, SeqNum, State, TimerKind};
use std::net::Ipv4Addr;

fn table_with(cfg: TableConfig, tcp: tcp::Config) -> Table {
    Table::new(cfg, tcp, Clock::virtual_at(0)).unwrap()
}

fn table() -> Table {
    table_with(
        TableConfig {
            shards: 4,
            capacity: 64,
            ..TableConfig::default()
        },
        tcp::Config::default(),
    )
}

/// Counters, scan and wheel agree.
fn consistent(t: &Table) {
    t.verify().unwrap();
}

const C: Option<State> = Some(State::Closed);

#[test]
fn auto_lifecycle_through_the_table() {
    let t = table();
    let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    assert_eq!(
        o.states,
        [Some(State::Established), Some(State::Established)]
    );
    // The pool's first host, and an even port of the range, as connect() starts.
    assert_eq!(o.tuple.client.ip(), &std::net::Ipv4Addr::new(10, 0, 0, 1));
    assert!(
        (32768..=60999).contains(&o.tuple.client.port()) && o.tuple.client.port().is_multiple_of(2)
    );
    assert_eq!(t.lookup(&o.tuple), Some(o.id));
    let s = t.stats();
    assert_eq!(s.counters.occupancy(Side::Client, State::Established), 1);
    assert_eq!(
        s.counters
            .transitions(Side::Server, State::SynReceived, State::Established),
        1
    );
    assert_eq!(s.counters.segments(Side::Client, SegmentOutcome::Sent), 2);
    assert_eq!(
        s.counters.segments(Side::Client, SegmentOutcome::Delivered),
        1
    );
    assert_eq!(s.ports_used, 1);
    consistent(&t);

    t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
    assert_eq!(
        t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap(),
        [Some(State::TimeWait), C]
    );
    assert_eq!(t.stats().counters.timers_pending(TimerKind::TimeWait), 1);
    consistent(&t);

    assert_eq!(t.advance(59_999).unwrap().fired, 0);
    assert_eq!(
        t.get(o.id).unwrap().side(Side::Client).unwrap().state,
        State::TimeWait
    );
    let a = t.advance(1).unwrap();
    assert_eq!((a.now, a.fired), (60_000, 1));
    assert_eq!(
        t.get(o.id),
        Err(Error::NotFound(o.id)),
        "an AUTO pair is removed once both sides are CLOSED"
    );
    let s = t.stats();
    assert_eq!((s.connections, s.ports_used, s.wheel_entries), (0, 0, 0));
    assert_eq!(s.counters.timers_fired(TimerKind::TimeWait), 1);
    assert_eq!(s.counters.removed, 1);
    assert!(s.counters.occupancy.iter().flatten().all(|&n| n == 0));
    consistent(&t);
}

#[test]
fn simultaneous_close_leaves_both_in_time_wait_with_one_wheel_entry() {
    let t = table();
    let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    assert_eq!(
        t.call(o.id, Sides::Both, Call::Close).unwrap(),
        [Some(State::TimeWait), Some(State::TimeWait)]
    );
    let s = t.stats();
    assert_eq!(s.counters.timers_pending(TimerKind::TimeWait), 2);
    assert_eq!(s.wheel_entries, 1);
    assert_eq!(
        s.counters
            .transitions(Side::Server, State::FinWait1, State::Closing),
        1
    );
    consistent(&t);
    assert_eq!(t.advance(60_000).unwrap().fired, 2);
    assert!(t.is_empty());
    consistent(&t);
}

#[test]
fn table_full_is_refused_and_counted() {
    let t = table_with(
        TableConfig {
            shards: 2,
            max_connections: 3,
            ..TableConfig::default()
        },
        tcp::Config::default(),
    );
    for _ in 0..3 {
        t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    }
    assert_eq!(
        t.open(&OpenSpec::new(Mode::Manual)),
        Err(Error::TableFull { max: 3 })
    );
    let s = t.stats();
    assert_eq!(s.counters.open_failures(OpenFailure::TableFull), 1);
    assert_eq!((s.connections, s.ports_used), (3, 3));
    consistent(&t);
}

/// A batch that runs out of ports counts every open it could not make, as the alert rules
/// expect: 1000 asked, 4 ports, 996 refused.
#[test]
fn a_refused_batch_counts_every_refused_open() {
    let cfg = TableConfig {
        shards: 2,
        client_pools: vec!["10.9.0.0/31".parse().unwrap()],
        ports: (1000, 1001),
        ..TableConfig::default()
    };
    let t = table_with(cfg, tcp::Config::default());
    let mut opened = 0;
    let refused = t
        .open_batch(&OpenSpec::new(Mode::Auto), 1000, |_| opened += 1)
        .unwrap();
    assert_eq!(
        (opened, refused),
        (4, Some((OpenFailure::PortsExhausted, 996)))
    );
    let c = t.stats().counters;
    assert_eq!(c.open_failures(OpenFailure::PortsExhausted), 996);
    assert_eq!(c.opened, 4);
    // A full table likewise.
    let cfg = TableConfig {
        shards: 2,
        max_connections: 3,
        ..TableConfig::default()
    };
    let t = table_with(cfg, tcp::Config::default());
    let refused = t
        .open_batch(&OpenSpec::new(Mode::Auto), 10, |_| {})
        .unwrap();
    assert_eq!(refused, Some((OpenFailure::TableFull, 7)));
    assert_eq!(t.stats().counters.open_failures(OpenFailure::TableFull), 7);
    consistent(&t);
}

#[test]
fn ports_run_out_and_come_back_after_time_wait() {
    let cfg = TableConfig {
        shards: 2,
        client_pools: vec!["10.9.0.0/31".parse().unwrap()],
        ports: (1000, 1001),
        ..TableConfig::default()
    };
    let t = table_with(cfg, tcp::Config::default());
    let ids: Vec<ConnId> = (0..4)
        .map(|_| t.open(&OpenSpec::new(Mode::Auto)).unwrap().id)
        .collect();
    let err = t.open(&OpenSpec::new(Mode::Auto)).unwrap_err();
    assert_eq!(
        err,
        Error::PortsExhausted {
            server: "10.255.0.1:80".parse().unwrap(),
            client: None
        }
    );
    assert_eq!(
        t.stats()
            .counters
            .open_failures(OpenFailure::PortsExhausted),
        1
    );
    // TIME-WAIT keeps its port.
    for &id in &ids {
        t.call(id, Sides::One(Side::Client), Call::Close).unwrap();
        t.call(id, Sides::One(Side::Server), Call::Close).unwrap();
    }
    assert!(matches!(
        t.open(&OpenSpec::new(Mode::Auto)),
        Err(Error::PortsExhausted { .. })
    ));
    t.advance(60_000).unwrap();
    assert_eq!(t.stats().ports_used, 0);
    let again = t
        .open(&OpenSpec {
            client_ip: Some("10.9.0.1".parse().unwrap()),
            ..OpenSpec::new(Mode::Auto)
        })
        .unwrap();
    assert_eq!(
        *again.tuple.client.ip(),
        "10.9.0.1".parse::<Ipv4Addr>().unwrap()
    );
    consistent(&t);
}

fn tuple(client: &str) -> FourTuple {
    FourTuple {
        client: client.parse().unwrap(),
        server: "10.255.0.1:80".parse().unwrap(),
    }
}

#[test]
fn explicit_tuple_in_use_is_refused_without_change() {
    let t = table();
    let spec = OpenSpec {
        tuple: Some(tuple("10.0.3.4:40000")),
        ..OpenSpec::new(Mode::Auto)
    };
    let o = t.open(&spec).unwrap();
    assert_eq!(o.tuple, tuple("10.0.3.4:40000"));
    let before = t.get(o.id).unwrap();
    let err = t.open(&spec).unwrap_err();
    assert!(
        matches!(err, Error::TupleInUse { id, .. } if id == o.id),
        "{err}"
    );
    assert_eq!(t.get(o.id).unwrap(), before);
    assert_eq!(t.stats().counters.open_failures(OpenFailure::TupleInUse), 1);
    assert_eq!(t.len(), 1);
    // The allocator skips a port an explicit 4-tuple holds.
    let stranger = OpenSpec {
        tuple: Some(tuple("172.16.0.1:40000")),
        ..OpenSpec::new(Mode::Auto)
    };
    assert!(matches!(
        t.open(&stranger),
        Err(Error::Address(AddrError::ClientNotInPool(_)))
    ));
    consistent(&t);
}

#[test]
fn explicit_tuple_on_server_time_wait_reopens_it_like_linux() {
    let t = table();
    let spec = OpenSpec {
        tuple: Some(tuple("10.0.3.4:40000")),
        ..OpenSpec::new(Mode::Auto)
    };
    let o = t.open(&spec).unwrap();
    // The server closes first: it holds TIME-WAIT; the client ends CLOSED.
    t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
    assert_eq!(
        t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap(),
        [C, Some(State::TimeWait)]
    );
    let again = t.open(&spec).unwrap();
    assert!(again.reused_time_wait);
    assert_eq!(again.id, o.id);
    assert_eq!(
        again.states,
        [Some(State::Established), Some(State::Established)]
    );
    let s = t.stats();
    assert_eq!(
        s.counters
            .transitions(Side::Server, State::TimeWait, State::Listen),
        1
    );
    assert_eq!(s.connections, 1);
    consistent(&t);

    // A client-side TIME-WAIT is not reusable (Linux refuses without timestamps).
    t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
    t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
    assert!(matches!(t.open(&spec), Err(Error::TupleInUse { .. })));
    consistent(&t);
}

/// An AUTO pair is ESTABLISHED on return: an open over a server's TIME-WAIT with an ISS the
/// TIME-WAIT would not take as a new connection (not above its RCV.NXT) is refused, and nothing
/// changes; the same open with an ISS above it takes the 4-tuple over.
#[test]
fn an_auto_open_over_time_wait_with_a_stale_iss_is_refused() {
    let t = table();
    let spec = OpenSpec {
        tuple: Some(tuple("10.0.3.5:40000")),
        iss: Some(5000),
        ..OpenSpec::new(Mode::Auto)
    };
    let o = t.open(&spec).unwrap();
    t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
    t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
    let before = t.get(o.id).unwrap();
    let rcv_nxt = before.side(Side::Server).unwrap().rcv_nxt;
    for stale in [rcv_nxt.0, rcv_nxt.0 - 1, 5000] {
        let err = t
            .open(&OpenSpec {
                iss: Some(stale),
                ..spec.clone()
            })
            .unwrap_err();
        assert!(
            matches!(err, Error::IssInTimeWait { iss, .. } if iss == stale),
            "{err}"
        );
        assert!(err.to_string().starts_with("iss: "), "{err}");
        assert_eq!(t.get(o.id).unwrap(), before, "nothing changed");
    }
    let again = t
        .open(&OpenSpec {
            iss: Some(rcv_nxt.0 + 1),
            ..spec.clone()
        })
        .unwrap();
    assert!(again.reused_time_wait);
    assert_eq!(
        again.states,
        [Some(State::Established), Some(State::Established)]
    );
    consistent(&t);
}

#[test]
fn manual_connection_steps_and_dropped_final_ack() {
    let t = table();
    let o = t
        .open(&OpenSpec {
            iss: Some(100),
            server_iss: Some(300),
            ..OpenSpec::new(Mode::Manual)
        })
        .unwrap();
    assert_eq!(o.states, [Some(State::SynSent), Some(State::Listen)]);
    let info = t.get(o.id).unwrap();
    assert_eq!(info.wire[0].1.len(), 1);
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    let w = t.wire(o.id, c2s, WireAction::Deliver, 1).unwrap();
    assert_eq!(
        (w.moved[0].seq, w.moved[0].flags),
        (SeqNum(100), Flags::SYN)
    );
    assert_eq!(w.states, [Some(State::SynSent), Some(State::SynReceived)]);
    t.wire(o.id, s2c, WireAction::Deliver, 1).unwrap();
    let w = t.wire(o.id, c2s, WireAction::Drop, 1).unwrap();
    assert_eq!(w.moved[0].ack, SeqNum(301));
    assert_eq!(
        t.stats()
            .counters
            .segments(Side::Client, SegmentOutcome::Dropped),
        1
    );
    consistent(&t);
    // SYN-ACK retransmissions land on the wire; the server gives up at 63 s and listens again.
    t.advance(1_000).unwrap();
    assert_eq!(t.get(o.id).unwrap().wire[1].1.len(), 1);
    t.wire(o.id, s2c, WireAction::Drop, 1).unwrap();
    t.advance(62_000).unwrap();
    let info = t.get(o.id).unwrap();
    assert_eq!(info.side(Side::Server).unwrap().state, State::Listen);
    assert_eq!(
        t.stats()
            .counters
            .transitions(Side::Server, State::SynReceived, State::Listen),
        1
    );
    consistent(&t);
    // MANUAL connections stay until removed.
    t.remove(o.id).unwrap();
    assert!(t.is_empty());
    consistent(&t);
}

#[test]
fn external_server_answers_injections_and_queues_timer_segments() {
    let t = table();
    let o = t
        .open(&OpenSpec {
            iss: Some(5000),
            ..OpenSpec::new(Mode::External(Side::Server))
        })
        .unwrap();
    assert_eq!(o.states, [None, Some(State::Listen)]);
    let syn = Segment {
        seq: SeqNum(0),
        flags: Flags::SYN,
        wnd: 1000,
        mss: std::num::NonZeroU16::new(1000),
        ..Segment::default()
    };
    let r = t.inject(o.id, Side::Server, &syn).unwrap();
    assert_eq!((r.before, r.after), (State::Listen, State::SynReceived));
    assert_eq!(
        (r.emitted.len(), r.emitted[0].seq, r.emitted[0].ack),
        (1, SeqNum(5000), SeqNum(1))
    );
    // The SYN-ACK retransmission is the endpoint's own: it waits for a wire DELIVER.
    t.advance(1000).unwrap();
    let info = t.get(o.id).unwrap();
    assert_eq!(
        info.wire,
        vec![(Direction::ServerToClient, vec![r.emitted[0]])]
    );
    let w = t
        .wire(o.id, Direction::ServerToClient, WireAction::Deliver, 1)
        .unwrap();
    assert_eq!(w.moved, vec![r.emitted[0]]);
    assert!(matches!(
        t.wire(o.id, Direction::ClientToServer, WireAction::Deliver, 1),
        Err(Error::NoSuchDirection { .. })
    ));
    assert!(matches!(
        t.call(o.id, Sides::One(Side::Client), Call::Send(10)),
        Err(Error::NoSuchSide { .. })
    ));
    assert_eq!(
        t.stats()
            .counters
            .segments(Side::Server, SegmentOutcome::Injected),
        1
    );
    consistent(&t);
}

#[test]
fn refused_calls_change_nothing() {
    let t = table();
    let auto = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    let manual = t.open(&OpenSpec::new(Mode::Manual)).unwrap();
    t.call(auto.id, Sides::One(Side::Client), Call::Close)
        .unwrap();
    let snapshot = |t: &Table| {
        (
            t.get(auto.id).unwrap(),
            t.get(manual.id).unwrap(),
            t.stats().counters,
        )
    };
    let before = snapshot(&t);
    let c2s = Direction::ClientToServer;
    assert!(matches!(
        t.wire(auto.id, c2s, WireAction::Deliver, 1),
        Err(Error::WrongMode { .. })
    ));
    assert!(matches!(
        t.wire(manual.id, c2s, WireAction::Deliver, 5),
        Err(Error::Wire(WireError::NotEnough { .. }))
    ));
    assert!(matches!(
        t.call(manual.id, Sides::One(Side::Server), Call::Send(10)),
        Err(Error::Tcp {
            side: Sides::One(Side::Server),
            ..
        })
    ));
    assert!(matches!(
        t.call(auto.id, Sides::One(Side::Server), Call::Send(u32::MAX)),
        Err(Error::Tcp {
            source: tcp::Error::SendBufferFull { .. },
            ..
        })
    ));
    assert!(matches!(
        t.call(auto.id, Sides::One(Side::Client), Call::Close),
        Err(Error::Tcp {
            side: Sides::One(Side::Client),
            ..
        })
    ));
    assert!(matches!(
        t.call(auto.id, Sides::Both, Call::Close),
        Err(Error::Tcp {
            side: Sides::Both,
            ..
        })
    ));
    assert_eq!(
        t.call(ConnId(12345), Sides::One(Side::Client), Call::Send(1)),
        Err(Error::NotFound(ConnId(12345)))
    );
    assert_eq!(t.remove(ConnId(12345)), Err(Error::NotFound(ConnId(12345))));
    assert_eq!(snapshot(&t), before);
    consistent(&t);
}

#[test]
fn advance_on_a_real_clock_is_refused() {
    let t = Table::new(
        TableConfig {
            shards: 2,
            ..TableConfig::default()
        },
        tcp::Config::default(),
        Clock::real(),
    )
    .unwrap();
    assert_eq!(t.advance(10), Err(Error::RealClock));
}

#[test]
fn run_timers_expires_in_bounded_batches() {
    let t = table_with(
        TableConfig {
            shards: 4,
            timer_batch: 10,
            ..TableConfig::default()
        },
        tcp::Config::default(),
    );
    let ids: Vec<ConnId> = (0..100)
        .map(|_| t.open(&OpenSpec::new(Mode::Auto)).unwrap().id)
        .collect();
    for &id in &ids {
        t.call(id, Sides::Both, Call::Close).unwrap();
    }
    t.clock.set(60_000);
    let mut batches = 0;
    let mut fired = 0;
    loop {
        let (n, more) = t.run_timer_batch(60_000);
        fired += n;
        batches += 1;
        if !more {
            break;
        }
    }
    assert_eq!(fired, 200);
    assert!(batches >= 10, "{batches} batches of at most 10");
    assert!(t.is_empty());
    consistent(&t);
}

/// The timer path takes due entries out of a wheel, then locks each connection. If nothing was
/// filed in that wheel meanwhile, it knows the wheel holds nothing for the connection and leaves
/// the wheel alone when the timer leaves none armed; if something was (here the same deadline
/// again, as a call that moved the deadline away and back would file), it sets the wheel anew.
#[test]
fn timer_path_sets_the_wheel_anew_only_if_something_was_filed_after_its_poll() {
    let t = table_with(
        TableConfig {
            shards: 4,
            ..TableConfig::default()
        },
        tcp::Config {
            // One SYN retransmission, at 1 s; the timeout after it gives up: CLOSED, no timer.
            syn_retries: 1,
            syn_linear_timeouts: 0,
            ..tcp::Config::default()
        },
    );
    // A MANUAL pair's last SYN timer, taken out of its wheel by the timer path's poll, and what
    // the poll knew then.
    let polled_syn_timer = |t: &Table| {
        let id = t.open(&OpenSpec::new(Mode::Manual)).unwrap().id;
        t.advance(1000).unwrap(); // the one retransmission
        let d = t
            .map
            .get(&id)
            .unwrap()
            .deadline(t.now())
            .expect("the SYN timer");
        t.clock.set(d); // as `advance` does before it polls
        let (wheel, mut due) = (Table::wheel_of(id), vec![]);
        let (_, filings) = t.poll_wheel(wheel, d, 16, &mut due);
        assert_eq!(due, [(id.0, d)]);
        (id, d, Filed::Polled { wheel, filings })
    };
    let filings = |t: &Table, id| {
        t.wheels[Table::wheel_of(id)]
            .0
            .filings
            .load(Ordering::Relaxed)
    };
    let client = |t: &Table, id| t.get(id).unwrap().side(Side::Client).unwrap().state;

    // Nothing filed in between: the wheel is not touched again.
    let (id, d, polled) = polled_syn_timer(&t);
    let n = filings(&t, id);
    assert_eq!(t.fire(id, d, d, polled), 1);
    assert_eq!(client(&t, id), State::Closed);
    assert_eq!(filings(&t, id), n, "no second trip to the wheel");
    consistent(&t);
    t.remove(id).unwrap();

    // Filed in between: the stale entry must go.
    let (id, d, polled) = polled_syn_timer(&t);
    t.file_timer(id, Some(d));
    assert_eq!(t.fire(id, d, d, polled), 1);
    assert_eq!(client(&t, id), State::Closed);
    consistent(&t);
}

/// A real-clock table whose TIME-WAIT (2·MSL) lasts 40 ms.
fn real_clock_table_with_40_ms_time_wait() -> std::sync::Arc<Table> {
    let tcp = tcp::Config {
        msl_ms: 20,
        ..tcp::Config::default()
    };
    let cfg = TableConfig {
        shards: 2,
        ..TableConfig::default()
    };
    std::sync::Arc::new(Table::new(cfg, tcp, Clock::real()).unwrap())
}

/// Runs `body` on `rt` while `drive_timers` drives `t`, asleep at most `max_sleep_ms` at a time;
/// then stops the driver and waits for it to end.
fn with_driver(
    rt: tokio::runtime::Runtime,
    t: &std::sync::Arc<Table>,
    max_sleep_ms: u64,
    body: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    rt.block_on(async {
        let max_sleep = std::time::Duration::from_millis(max_sleep_ms);
        let driver = tokio::spawn(drive_timers(t.clone(), max_sleep, stop_rx));
        body.await;
        stop_tx.send(true).unwrap();
        driver.await.unwrap();
    });
}

/// Waits until `done`, looking every millisecond; fails with `what` if 10 s pass first. No test
/// sleeps for a fixed time.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[test]
fn real_clock_driver_expires_time_wait_and_records_lag() {
    // The driver sleeps at most a millisecond at a time.
    let t = real_clock_table_with_40_ms_time_wait();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    with_driver(rt, &t, 1, async {
        let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
        t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
        t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
        wait_until("TIME-WAIT never expired", || t.is_empty()).await;
    });
    let c = t.stats().counters;
    assert_eq!(c.timers_fired(TimerKind::TimeWait), 1);
    assert_eq!(
        c.lag_buckets.iter().sum::<u64>(),
        1,
        "one lag sample per fired timer"
    );
    consistent(&t);
}

#[test]
fn real_clock_driver_sleeps_until_the_next_deadline_and_wakes_for_a_sooner_one() {
    // The driver may sleep an hour: only the wake-up from arming a timer can make TIME-WAIT (40 ms)
    // expire in time. Idle, it sleeps until its cap instead of ticking.
    let t = real_clock_table_with_40_ms_time_wait();
    const HOUR_MS: u64 = 3_600_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let asleep_for_an_hour = || t.wake.at.0.load(Ordering::SeqCst) >= HOUR_MS;
    with_driver(rt, &t, HOUR_MS, async {
        wait_until("the idle driver never slept", asleep_for_an_hour).await;
        let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
        t.call(o.id, Sides::Both, Call::Close).unwrap();
        wait_until("the sleeping driver was not woken for TIME-WAIT", || {
            t.is_empty()
        })
        .await;
        wait_until("the driver never slept again", asleep_for_an_hour).await;
    });
    let c = t.stats().counters;
    assert_eq!(c.timers_fired(TimerKind::TimeWait), 2);
    consistent(&t);
}

#[test]
fn watchers_see_every_transition_in_order_and_miss_what_overflows() {
    let cfg = TableConfig {
        shards: 2,
        ..TableConfig::default()
    };
    let t = std::sync::Arc::new(table_with(cfg, tcp::Config::default()));
    t.open(&OpenSpec::new(Mode::Auto)).unwrap(); // before anyone watches: not published
    let mut w = t.watch(WatchFilter::default(), 8, 4).unwrap();
    let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    let mut got = vec![];
    while let Some(Watched::Event(e)) = w.try_recv() {
        assert_eq!(e.id, o.id);
        got.push((e.side, e.transition.to));
    }
    assert_eq!(
        got,
        [
            (Side::Server, State::Listen),
            (Side::Client, State::SynSent),
            (Side::Server, State::SynReceived),
            (Side::Client, State::Established),
            (Side::Server, State::Established)
        ]
    );
    // Eight transitions (FIN-WAIT-1, CLOSING, TIME-WAIT, CLOSED on each side) fill the queue of
    // eight; another open's five are missed, and said so after the eight, in order.
    t.call(o.id, Sides::Both, Call::Close).unwrap();
    t.advance(60_000).unwrap();
    t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    let rest: Vec<Watched> = std::iter::from_fn(|| w.try_recv()).collect();
    assert_eq!(rest.len(), 9);
    assert!(rest[..8].iter().all(|r| matches!(r, Watched::Event(_))));
    assert_eq!(rest[8], Watched::Missed(5));
    drop(w);
    assert_eq!(t.watchers(), 0);
}

/// A filtered watcher queues only what it asked for, and a count of what it missed counts only
/// events that matched its filter.
#[test]
fn a_filtered_watcher_misses_only_what_it_asked_for() {
    let t = std::sync::Arc::new(table());
    let filter = WatchFilter {
        side: Some(Side::Server),
        to: Some(State::Established),
        ..WatchFilter::default()
    };
    let mut w = t.watch(filter, 3, 4).unwrap();
    for _ in 0..10 {
        t.open(&OpenSpec::new(Mode::Auto)).unwrap(); // 1 matching transition, 4 others each
    }
    let got: Vec<Watched> = std::iter::from_fn(|| w.try_recv()).collect();
    assert_eq!(got.len(), 4);
    assert!(
        got[..3]
            .iter()
            .all(|g| matches!(g, Watched::Event(e) if e.side == Side::Server && e.transition.to == State::Established))
    );
    assert_eq!(got[3], Watched::Missed(7));
    // After it read, new events come again.
    t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    assert!(matches!(w.try_recv(), Some(Watched::Event(_))));
    // The cap on watchers.
    let _more: Vec<_> = (0..3)
        .map(|_| t.watch(WatchFilter::default(), 1, 4).unwrap())
        .collect();
    assert_eq!(
        t.watch(WatchFilter::default(), 1, 4).err(),
        Some(Error::TooManyWatchers { max: 4 })
    );
}

#[test]
fn external_connections_keep_their_own_settings() {
    let t = table();
    let own = tcp::Config {
        syn_retries: 1,
        ..tcp::Config::default()
    };
    let spec = OpenSpec {
        settings: Some(own),
        ..OpenSpec::new(Mode::External(Side::Client))
    };
    let a = t.open(&spec).unwrap();
    let b = t
        .open(&OpenSpec::new(Mode::External(Side::Client)))
        .unwrap();
    // syn_retries = 1: one retransmission at 1 s, given up at the 3 s budget.
    t.advance(3_000).unwrap();
    assert_eq!(t.get(a.id).unwrap().sides[0].state, State::Closed);
    assert_eq!(t.get(b.id).unwrap().sides[0].state, State::SynSent);
    consistent(&t);
}

#[test]
fn list_pages_through_matches_in_id_order() {
    let t = table();
    let mut closed = vec![];
    for i in 0..300 {
        let id = t.open(&OpenSpec::new(Mode::Auto)).unwrap().id;
        if i % 3 == 0 {
            t.call(id, Sides::One(Side::Client), Call::Close).unwrap();
            closed.push(id);
        }
    }
    closed.sort();
    let in_fin_wait_2 =
        |c: &Conn| c.endpoint(Side::Client).map(Endpoint::state) == Some(State::FinWait2);
    // Pages of 7, each after the last id of the one before, give every match once, in order.
    let (mut got, mut after) = (vec![], None);
    loop {
        let page = t.list(after, 7, in_fin_wait_2);
        assert!(page.len() <= 7);
        got.extend(page.iter().map(|c| c.id));
        match page.last() {
            Some(last) if page.len() == 7 => after = Some(last.id),
            _ => break,
        }
    }
    assert_eq!(got, closed);
    assert!(t.list(None, 0, |_| true).is_empty());
    assert_eq!(t.list(None, usize::MAX, |_| true).len(), 300);
}

/// The clock moves years (in one advance, or day by day) over a table with no timers; a timer
/// armed afterwards fires at its deadline and every advance returns. Before the wheel kept to
/// its horizon, the first advance after such a jump spun for ever.
#[test]
fn a_clock_moved_years_still_fires_timers_and_returns() {
    let run = |jumps: Vec<u64>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let t = table();
            for ms in jumps {
                t.advance(ms).unwrap();
            }
            let start = t.now();
            let id = t.open(&OpenSpec::new(Mode::Manual)).unwrap().id;
            let deadline = t.get(id).unwrap().sides[0].timer.unwrap().deadline;
            let fired = t.advance(1500).unwrap().fired;
            consistent(&t);
            let _ = tx.send((deadline - start, fired, t.now() - start));
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("an advance did not return")
    };
    let day = 86_400_000;
    for jumps in [vec![(1 << 36) + 5], vec![day; 800], vec![40 * 365 * day]] {
        // The SYN timer is 1 s after the open and fires once within 1.5 s.
        assert_eq!(run(jumps), (1000, 1, 1500));
    }
}

#[test]
fn the_virtual_clock_stops_at_its_limit() {
    let t = table();
    t.advance(Clock::MAX_MS - 10).unwrap();
    let err = t.advance(11).unwrap_err();
    assert!(matches!(err, Error::ClockLimit { .. }), "{err}");
    assert!(err.to_string().starts_with("11 ms from"), "{err}");
    assert_eq!(
        t.now(),
        Clock::MAX_MS - 10,
        "a refused advance changes nothing"
    );
    t.advance(10).unwrap();
    assert_eq!(t.now(), Clock::MAX_MS);
}

/// Under RFC 9293 (no rate limit on ACKs for unacceptable segments), forged data in an AUTO pair
/// starts an ACK war, which AUTO delivery stops at its limit. The reply keeps the first
/// `INJECT_REPLY_LIMIT` segments and counts the rest, so one small request cannot draw a
/// megabyte.
#[test]
fn an_inject_that_starts_an_ack_war_gets_a_bounded_reply() {
    let cfg = TableConfig {
        shards: 2,
        capacity: 16,
        ..TableConfig::default()
    };
    let t = table_with(cfg, tcp::Config::for_profile(tcp::ProfileName::Rfc9293));
    let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    let info = t.get(o.id).unwrap();
    let (cli, srv) = (
        info.side(Side::Client).unwrap(),
        info.side(Side::Server).unwrap(),
    );
    let forged = Segment {
        seq: cli.snd_nxt,
        ack: srv.snd_nxt,
        flags: Flags::ACK,
        wnd: 100,
        len: 10,
        ..Segment::default()
    };
    let r = t.inject(o.id, Side::Server, &forged).unwrap();
    assert_eq!(r.emitted.len(), INJECT_REPLY_LIMIT);
    assert_eq!(
        r.emitted_total,
        crate::tcp::pair::AUTO_DELIVERY_LIMIT as u64 + 1
    );
    let c = t.stats().counters;
    assert_eq!(
        c.segments(Side::Client, SegmentOutcome::Overflowed)
            + c.segments(Side::Server, SegmentOutcome::Overflowed),
        1
    );
    consistent(&t);
}

/// An id names a 4-tuple; its incarnation names the connection. A call carrying the incarnation
/// of an earlier connection of the same 4-tuple, or of a connection from another run of the
/// table, is refused and changes nothing; one carrying none acts on whatever holds the id.
#[test]
fn a_call_for_an_earlier_incarnation_is_refused() {
    let t = table();
    let spec = OpenSpec {
        tuple: Some(tuple("10.0.4.4:40000")),
        ..OpenSpec::new(Mode::Auto)
    };
    let first = t.open(&spec).unwrap();
    assert_eq!(t.get(first.id).unwrap().incarnation, first.incarnation);
    t.call(first.id, Sides::Both, Call::Close).unwrap();
    t.advance(60_000).unwrap(); // both TIME-WAITs expire; the pair leaves
    let second = t.open(&spec).unwrap();
    assert_eq!(second.id, first.id);
    assert_ne!(second.incarnation, first.incarnation);
    let stale = Target {
        id: first.id,
        incarnation: Some(first.incarnation),
    };
    let before = t.get(second.id).unwrap();
    let refused = t.call(stale, Sides::Both, Call::Close).unwrap_err();
    assert_eq!(
        refused,
        Error::Incarnation {
            id: first.id,
            current: second.incarnation,
            given: first.incarnation
        }
    );
    assert!(t.get(stale).is_err());
    assert!(t.remove(stale).is_err());
    assert_eq!(t.get(second.id).unwrap(), before, "nothing changed");
    let current = Target {
        id: second.id,
        incarnation: Some(second.incarnation),
    };
    t.call(current, Sides::One(Side::Client), Call::Send(10))
        .unwrap();
    // Another run of the table, same seed and same opens: the same ids, other incarnations.
    let again = table();
    let replayed = again.open(&spec).unwrap();
    assert_eq!(replayed.id, first.id);
    assert_ne!(replayed.incarnation >> 32, first.incarnation >> 32);
    consistent(&t);
}

/// `tcp_max_tw_buckets` per host: with a cap of 3, six active closes from one client address
/// leave exactly 3 timewait socks and free 3 at once (`TCPTimeWaitOverflow`); an overflowed
/// client, gone, answers the server's later FIN with RST. Another client address is another
/// host, with its own room.
#[test]
fn a_host_holds_at_most_max_tw_buckets_timewait_socks() {
    let t = table_with(
        TableConfig {
            shards: 4,
            capacity: 64,
            max_tw_buckets: 3,
            ..TableConfig::default()
        },
        tcp::Config::default(),
    );
    let from = |ip: [u8; 4]| OpenSpec {
        client_ip: Some(Ipv4Addr::from(ip)),
        ..OpenSpec::new(Mode::Auto)
    };
    let ids: Vec<ConnId> = (0..6)
        .map(|_| t.open(&from([10, 0, 0, 1])).unwrap().id)
        .collect();
    let mut after_close = vec![];
    for &id in &ids {
        // The client closes: its FIN is acknowledged, it waits in FIN-WAIT-2 as a timewait sock.
        after_close.push(t.call(id, Sides::One(Side::Client), Call::Close).unwrap());
    }
    let fw2 = Some(State::FinWait2);
    let est_cw = [Some(State::Closed), Some(State::CloseWait)];
    assert_eq!(after_close[..3], [[fw2, Some(State::CloseWait)]; 3]);
    assert_eq!(
        after_close[3..],
        [est_cw; 3],
        "freed at once: no room on the host"
    );
    let s = t.stats();
    assert_eq!(s.counters.time_wait_overflows, 3);
    consistent(&t);
    // The servers close: three clients go to TIME-WAIT; the three freed ones answer with RST.
    for &id in &ids {
        let _ = t.call(id, Sides::One(Side::Server), Call::Close);
    }
    let s = t.stats();
    assert_eq!(s.counters.occupancy(Side::Client, State::TimeWait), 3);
    assert_eq!(
        s.counters
            .transitions(Side::Server, State::LastAck, State::Closed),
        6
    );
    assert_eq!(s.connections, 3, "the freed pairs are gone");
    assert_eq!(t.timewait_hosts(), [((Side::Client, 0), 3)]);
    consistent(&t);
    // Another client address has room of its own.
    let other = t.open(&from([10, 0, 0, 2])).unwrap().id;
    t.call(other, Sides::One(Side::Client), Call::Close)
        .unwrap();
    assert_eq!(t.stats().counters.time_wait_overflows, 3);
    // TIME-WAIT ends; the host's count with it.
    t.advance(61_000).unwrap();
    consistent(&t);
    assert!(
        t.timewait_hosts()
            .iter()
            .all(|&((side, _), _)| side == Side::Client)
    );
    assert_eq!(
        t.stats().counters.occupancy(Side::Client, State::TimeWait),
        0
    );
}

/// Opens `n` MANUAL pairs whose SYN reaches the server and whose SYN-ACK is lost: a SYN flood
/// from senders that never answer.
fn syn_flood(t: &Table, n: usize) {
    for _ in 0..n {
        let o = t.open(&OpenSpec::new(Mode::Manual)).unwrap();
        t.wire(o.id, Direction::ClientToServer, WireAction::Deliver, 1)
            .unwrap();
        let _ = t.wire(o.id, Direction::ServerToClient, WireAction::Drop, 1);
    }
}

fn listen_table(backlog: u32, syncookies: u8) -> Table {
    table_with(
        TableConfig {
            shards: 4,
            capacity: 4096,
            listen: listeners::HostSettings {
                backlog,
                syncookies,
                ..Default::default()
            },
            ..TableConfig::default()
        },
        tcp::Config::default(),
    )
}

/// The measurements of Linux 6.18, 2 000 SYNs that never complete, row by row: the SYN
/// queue holds backlog + 1; beyond, SYNs are dropped (`tcp_syncookies` 0) or cookied (1); 2
/// cookies every SYN. Old requests of a more than half full queue get two SYN-ACK resends and go
/// at 7 s, so that backlog / 2 remain at 10 s; the rest resend at 1, 3, 7, 15, 31 s.
#[test]
fn a_syn_flood_meets_the_listen_queue_as_linux_measured() {
    use listeners::ListenEvent::{CookieSent, Drop, Overflow};
    // backlog, cookies → peak, at 10 s, SYN-ACKs sent, SyncookiesSent, ListenDrops
    let rows: [((u32, u8), [u64; 5]); 5] = [
        ((8, 0), [9, 4, 39, 0, 1991]),
        ((128, 0), [129, 64, 579, 0, 1871]),
        ((1024, 0), [1025, 512, 4611, 0, 975]),
        ((128, 1), [129, 64, 2450, 1871, 0]),
        ((128, 2), [0, 0, 2000, 2000, 0]),
    ];
    for ((backlog, cookies), want) in rows {
        let t = listen_table(backlog, cookies);
        syn_flood(&t, 2000);
        let syn_rcvd = |t: &Table| {
            t.stats()
                .counters
                .occupancy(Side::Server, State::SynReceived)
        };
        let peak = syn_rcvd(&t);
        consistent(&t);
        t.advance(10_000).unwrap();
        let at_10s = syn_rcvd(&t);
        consistent(&t);
        t.advance(200_000).unwrap();
        let c = t.stats().counters;
        let got = [
            peak as u64,
            at_10s as u64,
            c.segments(Side::Server, SegmentOutcome::Sent),
            c.listen(CookieSent),
            c.listen(Drop),
        ];
        assert_eq!(got, want, "backlog {backlog}, tcp_syncookies {cookies}");
        assert_eq!(c.listen(Overflow), 0);
        assert_eq!(syn_rcvd(&t), 0);
        assert_eq!(t.stats().listeners[0].syn_queue, 0);
        consistent(&t);
    }
}

/// Without cookies, `tcp_max_syn_backlog` keeps its last quarter for peers proven alive: 64
/// holds 49, whatever the backlog.
#[test]
fn without_cookies_max_syn_backlog_keeps_a_quarter_free() {
    let t = table_with(
        TableConfig {
            shards: 4,
            listen: listeners::HostSettings {
                backlog: 1024,
                max_syn_backlog: 64,
                syncookies: 0,
                ..Default::default()
            },
            ..TableConfig::default()
        },
        tcp::Config::default(),
    );
    syn_flood(&t, 100);
    let s = t.stats();
    assert_eq!(s.counters.occupancy(Side::Server, State::SynReceived), 49);
    assert_eq!(s.counters.listen(listeners::ListenEvent::Drop), 51);
    consistent(&t);
}

/// An EXTERNAL server on a table whose listeners answer every SYN with a cookie
/// (`tcp_syncookies` 2), and the caller's SYN: what it answered.
fn cookied(t: &Table) -> (ConnId, Segment) {
    let o = t
        .open(&OpenSpec::new(Mode::External(Side::Server)))
        .unwrap();
    let syn = Segment {
        seq: SeqNum(100),
        flags: Flags::SYN,
        wnd: 1000,
        mss: std::num::NonZeroU16::new(1000),
        ..Segment::default()
    };
    let r = t.inject(o.id, Side::Server, &syn).unwrap();
    assert_eq!(
        (r.before, r.after),
        (State::Listen, State::Listen),
        "no state kept"
    );
    assert_eq!(r.emitted.len(), 1);
    assert_eq!(r.emitted[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(r.emitted[0].ack, SeqNum(101));
    (o.id, r.emitted[0])
}

fn ack_of(synack: &Segment, seq: u32) -> Segment {
    Segment {
        seq: SeqNum(seq),
        ack: synack.seq + 1,
        flags: Flags::ACK,
        wnd: 1000,
        ..Segment::default()
    }
}

/// `tcp_syncookies`: a cookie SYN-ACK keeps no state (LISTEN, no timer, no SYN queue); an ACK
/// that carries the cookie makes the connection straight from LISTEN (`SyncookiesRecv`); one
/// that does not, or comes when the cookie's minute counter is two behind, draws a RST
/// (`SyncookiesFailed`).
#[test]
fn a_valid_cookie_ack_makes_the_connection_from_listen() {
    use listeners::ListenEvent::{CookieFailed, CookieRecv, CookieSent};
    let t = listen_table(128, 2);
    let (id, synack) = cookied(&t);
    assert_eq!(t.get(id).unwrap().sides[0].timer, None);
    assert_eq!(t.stats().listeners[0].syn_queue, 0);
    // Not the SYN's successor: the hash does not match.
    let r = t.inject(id, Side::Server, &ack_of(&synack, 100)).unwrap();
    assert_eq!(r.after, State::Listen);
    assert_eq!(r.emitted[0].flags, Flags::RST);
    let r = t.inject(id, Side::Server, &ack_of(&synack, 101)).unwrap();
    assert_eq!((r.before, r.after), (State::Listen, State::Established));
    let c = t.stats().counters;
    assert_eq!(
        [
            c.listen(CookieSent),
            c.listen(CookieRecv),
            c.listen(CookieFailed)
        ],
        [1, 1, 1]
    );
    assert_eq!(
        c.transitions(Side::Server, State::Listen, State::Established),
        1
    );
    consistent(&t);

    // A cookie sent in minute 0 is good through minute 1, not in minute 2.
    let t = listen_table(128, 2);
    let (id, synack) = cookied(&t);
    t.advance(119_999).unwrap();
    let (late, late_synack) = cookied(&t);
    t.advance(1).unwrap();
    let r = t.inject(id, Side::Server, &ack_of(&synack, 101)).unwrap();
    assert_eq!((r.after, r.emitted[0].flags), (State::Listen, Flags::RST));
    let r = t
        .inject(late, Side::Server, &ack_of(&late_synack, 101))
        .unwrap();
    assert_eq!(r.after, State::Established);
    consistent(&t);
}

/// The accept queue: with the application not accepting, it holds backlog + 1 connections;
/// then a SYN is dropped (`ListenOverflows`), and a handshake completing is dropped — the
/// request stays in SYN-RECEIVED while the client believes it is ESTABLISHED — or, with
/// `tcp_abort_on_overflow`, reset. Accepting again empties it, and the next SYN-ACK's ACK
/// completes the waiting handshake.
#[test]
fn a_full_accept_queue_drops_or_resets_the_handshake() {
    use listeners::ListenEvent::{Drop, Overflow};
    for abort in [false, true] {
        let t = listen_table(1, 1);
        let pause = listeners::ListenChange {
            accepting: Some(false),
            abort_on_overflow: Some(abort),
            ..Default::default()
        };
        t.change_listeners(None, &pause).unwrap();
        // A handshake half done: SYN in the queue, SYN-ACK at the client.
        let m = t.open(&OpenSpec::new(Mode::Manual)).unwrap().id;
        t.wire(m, Direction::ClientToServer, WireAction::Deliver, 1)
            .unwrap();
        t.wire(m, Direction::ServerToClient, WireAction::Deliver, 1)
            .unwrap();
        // Two AUTO connections fill the accept queue (backlog 1 holds 2).
        for _ in 0..2 {
            let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
            assert_eq!(o.states, [Some(State::Established); 2]);
        }
        assert_eq!(t.stats().listeners[0].accept_queue, 2);
        // A third SYN is dropped: the AUTO client waits in SYN-SENT for its retransmission.
        let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
        assert_eq!(o.states, [Some(State::SynSent), Some(State::Listen)]);
        let c = t.stats().counters;
        assert_eq!([c.listen(Overflow), c.listen(Drop)], [1, 1]);
        // The waiting handshake's ACK meets the full queue.
        t.wire(m, Direction::ClientToServer, WireAction::Deliver, 1)
            .unwrap();
        let states = t.get(m).unwrap().states();
        let c = t.stats().counters;
        assert_eq!([c.listen(Overflow), c.listen(Drop)], [2, 2]);
        if abort {
            assert_eq!(states, [Some(State::Established), Some(State::Listen)]);
            let w = t
                .wire(m, Direction::ServerToClient, WireAction::Deliver, 1)
                .unwrap();
            assert_eq!(w.moved[0].flags, Flags::RST);
            assert_eq!(t.get(m).unwrap().states()[0], Some(State::Closed));
        } else {
            assert_eq!(states, [Some(State::Established), Some(State::SynReceived)]);
            // The application accepts: the queue empties; the SYN-ACK resent at 1 s draws the
            // ACK that completes the handshake.
            let go = listeners::ListenChange {
                accepting: Some(true),
                ..Default::default()
            };
            t.change_listeners(None, &go).unwrap();
            assert_eq!(t.stats().listeners[0].accept_queue, 0);
            t.advance(1000).unwrap();
            t.wire(m, Direction::ServerToClient, WireAction::Deliver, 1)
                .unwrap();
            t.wire(m, Direction::ClientToServer, WireAction::Deliver, 1)
                .unwrap();
            assert_eq!(t.get(m).unwrap().states()[1], Some(State::Established));
            // And the dropped AUTO SYN, resent at 1 s, got through.
            assert_eq!(t.get(o.id).unwrap().states(), [Some(State::Established); 2]);
        }
        consistent(&t);
    }
}

/// Listener settings are checked whole before any changes; an unknown server is refused.
#[test]
fn listener_changes_are_validated() {
    let t = listen_table(128, 1);
    let bad = listeners::ListenChange {
        backlog: Some(8),
        syncookies: Some(3),
        ..Default::default()
    };
    let e = t.change_listeners(None, &bad).unwrap_err();
    assert!(e.to_string().contains("tcp_syncookies 3"), "{e}");
    assert_eq!(
        t.stats().listeners[0].settings.backlog,
        128,
        "nothing changed"
    );
    let unknown = "10.9.9.9:80".parse().unwrap();
    assert!(matches!(
        t.change_listeners(Some(unknown), &listeners::ListenChange::default()),
        Err(Error::Address(_))
    ));
    // somaxconn clamps the backlog in force.
    let clamp = listeners::ListenChange {
        somaxconn: Some(16),
        ..Default::default()
    };
    let l = t.change_listeners(None, &clamp).unwrap();
    assert_eq!(l[0].settings.effective_backlog(), 16);
}

/// The measurement of `tcp_tw_reuse` on Linux 6.18: one client address, ports
/// 40000–40999, 3 000 fast connect-close attempts. Reuse off, or timestamps off: 1 000 succeed.
/// Reuse on: a connect takes over a TIME-WAIT once it is 1 s old, so a port serves at most once
/// a second, and the attempts of each gap between running out and the oldest TIME-WAIT turning
/// 1 s old fail. The issue does not give the attempts' pace; at a steady 1 150 a second, 2 700
/// succeed (Linux: ≈ 2 700), every reuse at an age of 1.0 s (Linux: p50 1.01 s).
#[test]
fn time_wait_reuse_as_linux_measured() {
    let cases = [
        (
            TwReuse {
                tw_reuse: 0,
                ..TwReuse::default()
            },
            1000,
            0,
        ),
        (
            TwReuse {
                tw_reuse: 1,
                ..TwReuse::default()
            },
            2700,
            1700,
        ),
        (
            TwReuse {
                tw_reuse: 1,
                timestamps: false,
                ..TwReuse::default()
            },
            1000,
            0,
        ),
        // The default, 2, reuses on loopback only: not from 10.0.0.1, but from 127.0.0.1.
        (TwReuse::default(), 1000, 0),
        (TwReuse::default(), 2700, 1700),
    ];
    for (k, (reuse, opened, reused)) in cases.into_iter().enumerate() {
        let client = if k == 4 {
            [127, 0, 0, 1]
        } else {
            [10, 0, 0, 1]
        };
        let t = table_with(
            TableConfig {
                shards: 4,
                capacity: 4096,
                ports: (40000, 40999),
                tw_reuse: reuse,
                client_pools: vec![
                    "10.0.0.0/16".parse().unwrap(),
                    "127.0.0.0/24".parse().unwrap(),
                ],
                ..TableConfig::default()
            },
            tcp::Config::default(),
        );
        let spec = OpenSpec {
            client_ip: Some(Ipv4Addr::from(client)),
            ..OpenSpec::new(Mode::Auto)
        };
        let mut ok = 0;
        // When each 4-tuple's TIME-WAIT began (the close: AUTO delivers at once), and the age
        // of each TIME-WAIT a connect took over.
        let mut entered = std::collections::HashMap::new();
        let mut ages = vec![];
        // 100 ms ticks of 115 attempts: 3 000 in 2.61 s.
        for attempt in 0..3000 {
            if attempt > 0 && attempt % 115 == 0 {
                t.advance(100).unwrap();
            }
            {
                match t.open(&spec) {
                    Ok(o) => {
                        ok += 1;
                        if o.reused_time_wait {
                            ages.push(t.now() - entered[&o.id]);
                        }
                        t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
                        t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
                        entered.insert(o.id, t.now());
                    }
                    Err(e) => assert_eq!(e.refusal(), Some(OpenFailure::PortsExhausted)),
                }
            }
        }
        let c = t.stats().counters;
        assert_eq!((ok, c.time_wait_reused), (opened, reused), "{reuse:?}");
        assert_eq!(ok + c.open_failures(OpenFailure::PortsExhausted), 3000);
        assert_eq!(
            c.transitions(Side::Client, State::TimeWait, State::Closed),
            reused
        );
        // Each reuse took a TIME-WAIT exactly 1 000 ms old (as soon as it may: the attempts
        // come every tick).
        assert_eq!(ages.len() as u64, reused);
        assert!(ages.iter().all(|&age| age == 1000), "{ages:?}");
        consistent(&t);
    }
}

fn linked_table(link: &str) -> Table {
    let tcp = tcp::Config {
        link: link.parse().unwrap(),
        ..tcp::Config::default()
    };
    table_with(
        TableConfig {
            shards: 4,
            capacity: 1 << 14,
            ..TableConfig::default()
        },
        tcp,
    )
}

/// On a link of 25 ms each way, an AUTO handshake takes its round trips: the SYN arrives at
/// 25 ms, the SYN-ACK at 50, the ACK at 75. Segments in flight are the table's timer events
/// (the connection's deadline), shown by Get; a pair with nothing in flight is a plain pair.
#[test]
fn an_auto_pair_on_a_link_takes_its_round_trips() {
    let t = linked_table("delay=25ms");
    let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    assert_eq!(o.states, [Some(State::SynSent), Some(State::Listen)]);
    let info = t.get(o.id).unwrap();
    assert_eq!(
        info.in_flight[0].1.len(),
        1,
        "the SYN, on its way: {:?}",
        info.in_flight
    );
    assert!(info.wire.is_empty(), "no MANUAL wire: {:?}", info.wire);
    assert_eq!(t.stats().counters.in_flight, 1);
    consistent(&t);
    let states = |t: &Table| t.get(o.id).unwrap().states();
    t.advance(24).unwrap();
    assert_eq!(states(&t), [Some(State::SynSent), Some(State::Listen)]);
    t.advance(1).unwrap();
    assert_eq!(states(&t), [Some(State::SynSent), Some(State::SynReceived)]);
    t.advance(25).unwrap();
    assert_eq!(
        states(&t),
        [Some(State::Established), Some(State::SynReceived)]
    );
    t.advance(25).unwrap();
    assert_eq!(states(&t), [Some(State::Established); 2]);
    let s = t.stats();
    assert_eq!(s.counters.in_flight, 0);
    assert_eq!(s.wheel_entries, 0, "nothing in flight, no timer");
    consistent(&t);
    // A close: FIN at 75 (+25 arrives), the server closes on CLOSE-WAIT, LAST-ACK until its FIN's
    // ACK comes back; the client is in TIME-WAIT.
    t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
    t.advance(25).unwrap();
    assert_eq!(states(&t), [Some(State::FinWait1), Some(State::CloseWait)]);
    t.call(o.id, Sides::One(Side::Server), Call::Close).unwrap();
    t.advance(50).unwrap();
    assert_eq!(states(&t), [Some(State::TimeWait), Some(State::Closed)]);
    consistent(&t);
}

/// Little's law on a link of 25 ms each way, no loss: 200 connections a second for 30 s of
/// virtual time, each client closing 1 s after it connects and each server closing as soon as
/// it sees the FIN. Each state's mean occupancy equals the rate times the time the link says it
/// lasts: SYN-SENT, FIN-WAIT-1 (client) and SYN-RECEIVED, LAST-ACK (server) one round trip
/// (50 ms): 10 each, within 5% (Linux over such a link: 10.1, 10.2, 10.0, 10.1).
#[test]
fn occupancy_on_a_link_follows_littles_law() {
    let t = linked_table("delay=25ms");
    let mut open: Vec<(u64, ConnId)> = vec![];
    let mut closing: Vec<ConnId> = vec![];
    let watched = [
        (Side::Client, State::SynSent),
        (Side::Client, State::FinWait1),
        (Side::Server, State::SynReceived),
        (Side::Server, State::LastAck),
    ];
    let mut sums = [0i64; 4];
    // Opens for 33 s; occupancy sampled every ms over the 30 s from 3 s on, when every state
    // is in its steady state.
    let (from, to, end) = (3_000, 33_000, 35_000);
    for now in 0..end {
        if now % 5 == 0 && now < to {
            open.push((now, t.open(&OpenSpec::new(Mode::Auto)).unwrap().id));
        }
        while let Some(&(at, id)) = open.first() {
            if at + 1_000 > now {
                break;
            }
            open.remove(0);
            t.call(id, Sides::One(Side::Client), Call::Close).unwrap();
            closing.push(id);
        }
        closing.retain(|&id| match t.get(id) {
            Ok(info) if info.states()[1] == Some(State::CloseWait) => {
                t.call(id, Sides::One(Side::Server), Call::Close).unwrap();
                false
            }
            Ok(_) => true,
            Err(_) => false,
        });
        if (from..to).contains(&now) {
            let c = t.stats().counters;
            for (k, &(side, state)) in watched.iter().enumerate() {
                sums[k] += c.occupancy(side, state);
            }
        }
        t.advance(1).unwrap();
    }
    consistent(&t);
    let samples = (to - from) as f64;
    for (k, &(side, state)) in watched.iter().enumerate() {
        let mean = sums[k] as f64 / samples;
        assert!(
            (mean - 10.0).abs() <= 0.5,
            "{side:?} {state}: mean occupancy {mean:.2}, Little's law says 10"
        );
    }
}

/// Links per server and per client pool, and changed while running: a connection takes its
/// client pool's link, else its server's, else the default; "none" removes an override.
#[test]
fn links_apply_per_server_and_per_pool() {
    use links::LinkTarget;
    let t = table_with(
        TableConfig {
            shards: 4,
            client_pools: vec![
                "10.0.0.0/16".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
            servers: vec![
                "10.255.0.1:80".parse().unwrap(),
                "10.255.0.2:80".parse().unwrap(),
            ],
            ..TableConfig::default()
        },
        tcp::Config::default(),
    );
    let open = |client: [u8; 4], server: &str| {
        t.open(&OpenSpec {
            client_ip: Some(Ipv4Addr::from(client)),
            server: Some(server.parse().unwrap()),
            ..OpenSpec::new(Mode::Auto)
        })
        .unwrap()
        .states[0]
    };
    let (est, syn) = (Some(State::Established), Some(State::SynSent));
    assert_eq!(open([10, 0, 0, 1], "10.255.0.1:80"), est, "no link");
    let b = LinkTarget::Server("10.255.0.2:80".parse().unwrap());
    t.set_link(b, "delay=10ms".parse().unwrap()).unwrap();
    assert_eq!(open([10, 0, 0, 1], "10.255.0.1:80"), est);
    assert_eq!(
        open([10, 0, 0, 1], "10.255.0.2:80"),
        syn,
        "the server's link"
    );
    let pool = LinkTarget::Pool("10.1.0.0/16".parse().unwrap());
    t.set_link(pool, "delay=30ms".parse().unwrap()).unwrap();
    assert_eq!(open([10, 1, 0, 1], "10.255.0.1:80"), syn, "the pool's link");
    let all = t.links();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], (LinkTarget::Default, tcp::Link::default()));
    t.set_link(b, tcp::Link::default()).unwrap();
    t.set_link(pool, tcp::Link::default()).unwrap();
    assert_eq!(
        open([10, 1, 0, 2], "10.255.0.2:80"),
        est,
        "overrides removed"
    );
    t.set_link(LinkTarget::Default, "delay=5ms".parse().unwrap())
        .unwrap();
    assert_eq!(
        open([10, 0, 0, 2], "10.255.0.1:80"),
        syn,
        "the default changed"
    );
    // What was in flight arrives as it was going to; everything settles.
    t.advance(200).unwrap();
    assert_eq!(t.stats().counters.in_flight, 0);
    assert!(
        t.set_link(
            LinkTarget::Pool("10.9.0.0/16".parse().unwrap()),
            tcp::Link::default()
        )
        .is_err()
    );
    consistent(&t);
}

/// With 2% loss each way on a 50 ms round trip, a connect is slower than 1 s exactly when its
/// first SYN or the first SYN-ACK is lost: 1 − 0.98² = 3.96% of them (the issue: about 4%).
/// Connect times come in steps a second apart (50 ms, 1.05 s, 2.05 s, …), the retransmission
/// timeouts, as Linux's distribution shows.
#[test]
fn on_a_lossy_link_slow_connects_are_the_lost_handshakes() {
    let t = std::sync::Arc::new(linked_table("delay=25ms,loss=2%"));
    let filter = WatchFilter {
        ids: vec![],
        side: Some(Side::Client),
        to: Some(State::Established),
    };
    let mut w = t.watch(filter, 1 << 20, 1).unwrap();
    let n: u32 = 20_000;
    let mut opened = std::collections::HashMap::new();
    for k in 0..u64::from(n) {
        let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
        opened.insert(o.id, k * 5);
        t.advance(5).unwrap();
    }
    t.advance(300_000).unwrap();
    let mut times = vec![];
    while let Some(Watched::Event(e)) = w.try_recv() {
        times.push(e.at - opened[&e.id]);
    }
    assert_eq!(times.len(), n as usize, "every connect completes");
    let slow = times.iter().filter(|&&ms| ms > 1000).count() as f64 / f64::from(n);
    let p = 1.0 - 0.98f64 * 0.98;
    let sigma = (p * (1.0 - p) / f64::from(n)).sqrt();
    assert!(
        (slow - p).abs() < 4.0 * sigma,
        "{:.2}% slower than 1 s, analytically {:.2}%",
        slow * 100.0,
        p * 100.0
    );
    // The steps: every connect a whole number of seconds after its round trip.
    let mut steps = std::collections::BTreeMap::<u64, u32>::new();
    for &ms in &times {
        assert_eq!(ms % 1000, 50, "a connect of {ms} ms is not on a step");
        *steps.entry(ms / 1000).or_default() += 1;
    }
    assert!(steps[&1] > steps[&2] && steps[&2] > 0, "{steps:?}");
    // The table's connect-time histogram (tcpsim_connect_seconds) shows the same steps.
    let h = t.stats().counters.connect_buckets;
    let bucket = |ms: u64| {
        counters::CONNECT_BUCKETS_MS
            .iter()
            .position(|&b| b == ms)
            .unwrap()
    };
    assert_eq!(h.iter().sum::<u64>(), u64::from(n));
    assert_eq!(u64::from(steps[&0]), h[bucket(50)]);
    assert_eq!(h[bucket(75)..=bucket(1000)].iter().sum::<u64>(), 0, "{h:?}");
    assert_eq!(u64::from(steps[&1]), h[bucket(1500)]);
    assert_eq!(u64::from(steps[&2]), h[bucket(2500)]);
    consistent(&t);
}

/// Loss draws apart for segments sent at the same instant: 20 000 connects at once over 2%
/// loss each way, and 0.98² of them connect in one round trip (within 4 standard deviations).
/// (A draw that mixed the pair's seed with a SYN-ACK's sequence number in one step once lost no
/// SYN-ACK at all: they cancelled.)
#[test]
fn loss_draws_apart_for_segments_sent_at_once() {
    let t = linked_table("delay=25ms,loss=2%");
    let n = 20_000.0;
    for _ in 0..20_000 {
        t.open(&OpenSpec::new(Mode::Auto)).unwrap();
    }
    t.advance(100).unwrap();
    let c = t.stats().counters;
    let fast = c.occupancy(Side::Client, State::Established) as f64;
    let p = 0.98f64 * 0.98;
    let sigma = (n * p * (1.0 - p)).sqrt();
    assert!(
        (fast - n * p).abs() < 4.0 * sigma,
        "{fast} connected in one round trip"
    );
    let lost = [Side::Client, Side::Server].map(|s| c.segments(s, SegmentOutcome::Dropped));
    assert!(lost.iter().all(|&l| l > 0), "lost by side: {lost:?}");
}

/// On a real clock, a link's deliveries happen at real times: the clock driver fires them as it
/// fires timers. A handshake over 20 ms each way is ESTABLISHED on both sides three deliveries
/// (60 ms) after the open, without anyone advancing anything.
#[test]
fn on_a_real_clock_deliveries_happen_at_real_times() {
    let tcp = tcp::Config {
        link: "delay=20ms".parse().unwrap(),
        ..tcp::Config::default()
    };
    let cfg = TableConfig {
        shards: 2,
        ..TableConfig::default()
    };
    let t = std::sync::Arc::new(Table::new(cfg, tcp, Clock::real()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    with_driver(rt, &t, 1, async {
        let started = std::time::Instant::now();
        let o = t.open(&OpenSpec::new(Mode::Auto)).unwrap();
        assert_eq!(o.states[0], Some(State::SynSent));
        wait_until("the handshake completes", || {
            t.get(o.id).unwrap().states() == [Some(State::Established); 2]
        })
        .await;
        // The clock counts whole milliseconds: the open's may have begun just before `started`.
        assert!(started.elapsed() >= std::time::Duration::from_millis(59));
        assert_eq!(t.stats().counters.in_flight, 0);
    });
}

/// A link per open: a connection opened with its own link keeps it for its life, whatever the
/// table's; one opened with "none" is delivered at once on a table with a link.
#[test]
fn an_open_can_bring_its_own_link() {
    let t = table();
    let own = OpenSpec {
        link: Some("delay=10ms".parse().unwrap()),
        ..OpenSpec::new(Mode::Auto)
    };
    let o = t.open(&own).unwrap();
    assert_eq!(o.states[0], Some(State::SynSent));
    assert_eq!(
        t.open(&OpenSpec::new(Mode::Auto)).unwrap().states,
        [Some(State::Established); 2],
        "the others have no link"
    );
    t.advance(30).unwrap();
    assert_eq!(t.get(o.id).unwrap().states(), [Some(State::Established); 2]);
    // At rest, it keeps its link: its close takes a round trip.
    t.call(o.id, Sides::One(Side::Client), Call::Close).unwrap();
    assert_eq!(t.get(o.id).unwrap().states()[1], Some(State::Established));
    t.advance(10).unwrap();
    assert_eq!(t.get(o.id).unwrap().states()[1], Some(State::CloseWait));
    consistent(&t);

    let t = linked_table("delay=25ms");
    // A table started with a link, whose default is then set to none, delivers at once.
    t.set_link(links::LinkTarget::Default, tcp::Link::default())
        .unwrap();
    assert_eq!(
        t.open(&OpenSpec::new(Mode::Auto)).unwrap().states,
        [Some(State::Established); 2]
    );
    t.set_link(links::LinkTarget::Default, "delay=25ms".parse().unwrap())
        .unwrap();
    let none = OpenSpec {
        link: Some(tcp::Link::default()),
        ..OpenSpec::new(Mode::Auto)
    };
    assert_eq!(t.open(&none).unwrap().states, [Some(State::Established); 2]);
    consistent(&t);
}

#[test]
fn test_a_connection_is_one_pair_whatever_it_holds() {
    // The table's box of a connection: an AUTO pair, or one with segments in flight (its
    // endpoints boxed apart, its queue and own link beside them), in the same 104 bytes, so
    // that a connection at rest costs what a pair does.
    assert_eq!(std::mem::size_of::<Conn>(), 104);
    assert_eq!(
        std::mem::size_of::<Conn>(),
        std::mem::size_of::<tcp::Pair>()
    );
}

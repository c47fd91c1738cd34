//! The gRPC API against a real server on 127.0.0.1:0, through a tonic client.

use std::time::Duration;

use tcpsim::server::{self, ServeConfig};
use tcpsim::service::proto as pb;
use tcpsim::service::proto::simulator_client::SimulatorClient;
use tcpsim::table::TableConfig;
use tonic::transport::Channel;
use tonic::{Code, Request};

mod common;
use common::{TestServer, open_req};

async fn virtual_server() -> TestServer {
    TestServer::start(ServeConfig {
        virtual_clock: true,
        ..small()
    })
    .await
}

fn small() -> ServeConfig {
    ServeConfig {
        table: TableConfig {
            shards: 4,
            capacity: 1024,
            ..TableConfig::default()
        },
        shutdown_grace: Duration::from_secs(5),
        // Tests stop servers often; the drain is tested on its own.
        drain: Duration::ZERO,
        ..ServeConfig::default()
    }
}

const EST: i32 = pb::State::Established as i32;

fn st(s: pb::State) -> i32 {
    s as i32
}

#[tokio::test]
async fn every_rpc_on_its_normal_path() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;

    let o = c.open(open_req(pb::Mode::Auto)).await;
    assert_eq!(o.connections.len(), 1);
    let a = &o.connections[0];
    assert_eq!((a.client, a.server), (EST, EST));
    assert_eq!(a.tuple.as_ref().unwrap().server, "10.255.0.1:80");

    let s = c
        .send(pb::SendRequest {
            incarnation: None,
            id: a.id,
            side: pb::Side::Client as i32,
            bytes: 5000,
            ..Default::default()
        })
        .await;
    assert_eq!((s.client, s.server), (EST, EST));
    let conn = c
        .get(pb::GetRequest {
            incarnation: None,
            id: a.id,
            tuple: None,
        })
        .await;
    let client = conn
        .endpoints
        .iter()
        .find(|e| e.side == pb::Side::Client as i32)
        .unwrap();
    assert_eq!(client.snd_nxt.wrapping_sub(client.iss), 5001);
    // Get by 4-tuple names the same connection.
    let by_tuple = c
        .get(pb::GetRequest {
            incarnation: None,
            id: 0,
            tuple: a.tuple.clone(),
        })
        .await;
    assert_eq!(by_tuple.id, a.id);

    let closed = c
        .close(pb::CloseRequest {
            incarnation: None,
            id: a.id,
            side: pb::Side::Both as i32,
            how: 0,
            ..Default::default()
        })
        .await;
    assert_eq!(
        (closed.client, closed.server),
        (st(pb::State::TimeWait), st(pb::State::TimeWait))
    );

    let batch = c
        .open(pb::OpenRequest {
            count: 50,
            ..open_req(pb::Mode::Auto)
        })
        .await;
    assert_eq!((batch.connections.len(), batch.failed), (50, 0));
    let b = batch.connections[0].id;
    let ab = c
        .abort(pb::AbortRequest {
            incarnation: None,
            id: b,
            side: pb::Side::Client as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(ab.client, st(pb::State::Closed));

    let list = c
        .list(pb::ListRequest {
            state: st(pb::State::Established),
            side: 0,
            page_size: 20,
            page_token: String::new(),
        })
        .await;
    assert_eq!(list.connections.len(), 20);
    assert!(!list.next_page_token.is_empty());
    let rest = c
        .list(pb::ListRequest {
            state: st(pb::State::Established),
            side: 0,
            page_size: 100,
            page_token: list.next_page_token,
        })
        .await;
    assert_eq!(
        rest.connections.len(),
        29,
        "49 ESTABLISHED pairs in all (one was aborted)"
    );
    assert!(rest.next_page_token.is_empty());

    let stats = c.stats(pb::StatsRequest {}).await;
    assert_eq!(stats.clock, "virtual");
    let occ = |side: pb::Side, state: pb::State| {
        stats
            .occupancy
            .iter()
            .find(|o| o.side == side as i32 && o.state == state as i32)
            .map_or(-1, |o| o.count)
    };
    assert_eq!(occ(pb::Side::Client, pb::State::TimeWait), 1);
    // 49: the aborted client's RST reached its server (AUTO), which is CLOSED now.
    assert_eq!(occ(pb::Side::Server, pb::State::Established), 49);
    assert_eq!(
        stats.occupancy.len(),
        22,
        "every (side, state) is listed, zeros included"
    );

    let adv = c.advance(60_000).await;
    assert_eq!(adv.now_ms, 60_000);
    assert!(adv.timers_fired >= 2);
    assert_eq!(
        c.raw
            .get(pb::GetRequest {
                incarnation: None,
                id: a.id,
                tuple: None
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // MANUAL: the wire, Inject, Remove.
    let m = c
        .open_id(pb::OpenRequest {
            iss: Some(100),
            server_iss: Some(300),
            ..open_req(pb::Mode::Manual)
        })
        .await;
    let w = c
        .wire(pb::WireRequest {
            incarnation: None,
            id: m,
            direction: pb::Direction::ClientToServer as i32,
            action: pb::WireAction::Deliver as i32,
            count: 1,
            ..Default::default()
        })
        .await;
    assert_eq!((w.moved[0].seq, w.moved[0].flags.unwrap().syn), (100, true));
    assert_eq!(w.server, st(pb::State::SynReceived));
    let rst = pb::Segment {
        flags: Some(pb::Flags {
            rst: true,
            ..Default::default()
        }),
        seq: 101,
        ..Default::default()
    };
    let i = c
        .inject(pb::InjectRequest {
            incarnation: None,
            id: m,
            to: pb::Side::Server as i32,
            segment: Some(rst),
        })
        .await;
    assert_eq!(
        (i.before, i.after),
        (st(pb::State::SynReceived), st(pb::State::Listen))
    );
    c.remove(pb::RemoveRequest {
        incarnation: None,
        id: m,
    })
    .await;
    assert_eq!(
        c.raw
            .get(pb::GetRequest {
                incarnation: None,
                id: m,
                tuple: None
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    srv.table.verify().unwrap();
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn seed_handshake_and_close_seen_through_get_and_watch() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let mut watch = c
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let id = c
        .open_id(pb::OpenRequest {
            iss: Some(1000),
            server_iss: Some(5000),
            ..open_req(pb::Mode::Manual)
        })
        .await;
    let c2s = pb::Direction::ClientToServer as i32;
    let s2c = pb::Direction::ServerToClient as i32;
    let deliver = |direction| pb::WireRequest {
        incarnation: None,
        id,
        direction,
        action: pb::WireAction::Deliver as i32,
        count: 1,
        ..Default::default()
    };
    // SYN seq=x; SYN-ACK seq=y ack=x+1; ACK seq=x+1 ack=y+1.
    let syn = c.wire(deliver(c2s)).await.moved.remove(0);
    assert_eq!(
        (syn.seq, syn.flags.unwrap().syn, syn.flags.unwrap().ack),
        (1000, true, false)
    );
    let synack = c.wire(deliver(s2c)).await.moved.remove(0);
    assert_eq!((synack.seq, synack.ack), (5000, 1001));
    let ack = c.wire(deliver(c2s)).await.moved.remove(0);
    assert_eq!((ack.seq, ack.ack), (1001, 5001));
    assert_eq!(c.states(id).await, (EST, EST));
    // Four-way close: FIN seq=u; ACK u+1; FIN seq=w ack=u+1; ACK w+1.
    c.close(pb::CloseRequest {
        incarnation: None,
        id,
        side: pb::Side::Client as i32,
        how: 0,
        ..Default::default()
    })
    .await;
    let fin = c.wire(deliver(c2s)).await.moved.remove(0);
    assert_eq!((fin.seq, fin.flags.unwrap().fin), (1001, true));
    assert_eq!(c.wire(deliver(s2c)).await.moved[0].ack, 1002);
    assert_eq!(
        c.states(id).await,
        (st(pb::State::FinWait2), st(pb::State::CloseWait))
    );
    c.close(pb::CloseRequest {
        incarnation: None,
        id,
        side: pb::Side::Server as i32,
        how: 0,
        ..Default::default()
    })
    .await;
    let fin2 = c.wire(deliver(s2c)).await.moved.remove(0);
    assert_eq!((fin2.seq, fin2.ack), (5001, 1002));
    assert_eq!(c.wire(deliver(c2s)).await.moved[0].ack, 5002);
    assert_eq!(
        c.states(id).await,
        (st(pb::State::TimeWait), st(pb::State::Closed))
    );
    c.advance(60_000).await;
    assert_eq!(
        c.states(id).await,
        (st(pb::State::Closed), st(pb::State::Closed))
    );

    // Watch saw every transition of both sides, in order.
    let mut seen = vec![];
    while seen.len() < 12 {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        let Some(pb::watch_event::Event::Transition(t)) = ev.event else {
            panic!("missed events: {ev:?}")
        };
        assert_eq!(t.id, id);
        seen.push((t.side, t.to, t.cause));
    }
    let client: Vec<i32> = seen
        .iter()
        .filter(|s| s.0 == pb::Side::Client as i32)
        .map(|s| s.1)
        .collect();
    let p = |s: pb::State| s as i32;
    use pb::State::*;
    assert_eq!(
        client,
        [
            p(SynSent),
            p(Established),
            p(FinWait1),
            p(FinWait2),
            p(TimeWait),
            p(Closed)
        ]
    );
    let server: Vec<i32> = seen
        .iter()
        .filter(|s| s.0 == pb::Side::Server as i32)
        .map(|s| s.1)
        .collect();
    assert_eq!(
        server,
        [
            p(Listen),
            p(SynReceived),
            p(Established),
            p(CloseWait),
            p(LastAck),
            p(Closed)
        ]
    );
    assert_eq!(seen.last().unwrap().2, "time_wait_expired");
    srv.shutdown().await.unwrap();
}

/// Open and Get give a connection's incarnation; a request that carries an old one (its 4-tuple
/// reused since) is FAILED_PRECONDITION, naming both, and changes nothing.
#[tokio::test]
async fn requests_for_an_earlier_incarnation_are_refused() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let tuple = pb::FourTuple {
        client: "10.0.9.9:40000".into(),
        server: "10.255.0.1:80".into(),
    };
    let open = || pb::OpenRequest {
        tuple: Some(tuple.clone()),
        ..open_req(pb::Mode::Auto)
    };
    let first = c.open(open()).await.connections[0].clone();
    assert_ne!(first.incarnation, 0);
    assert_eq!(c.get_id(first.id).await.incarnation, first.incarnation);
    c.close_side(first.id, pb::Side::Both).await;
    c.advance(60_000).await;
    let second = c.open(open()).await.connections[0].clone();
    assert_eq!(second.id, first.id);
    assert_ne!(second.incarnation, first.incarnation);
    let before = c.get_id(second.id).await;
    let stale = c
        .raw
        .close(pb::CloseRequest {
            id: first.id,
            side: pb::Side::Both as i32,
            how: 0,
            incarnation: Some(first.incarnation),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    for n in [first.incarnation, second.incarnation] {
        assert!(stale.message().contains(&n.to_string()), "{stale:?}");
    }
    assert_eq!(c.get_id(second.id).await, before);
    // The current one is taken, by a unary call and on a stream alike.
    c.send(pb::SendRequest {
        id: second.id,
        side: pb::Side::Client as i32,
        bytes: 10,
        incarnation: Some(second.incarnation),
        ..Default::default()
    })
    .await;
    srv.shutdown().await.unwrap();
}

/// A slow Watch subscriber is told how many events it missed: only those its filter matched,
/// after the ones it was sent, in order; and the server takes at most `max_watchers`.
#[tokio::test]
async fn a_slow_filtered_watch_is_told_exactly_what_it_missed() {
    let srv = TestServer::start(ServeConfig {
        virtual_clock: true,
        limits: tcpsim::service::Limits {
            watch_buffer: 4,
            max_watchers: 2,
            ..Default::default()
        },
        ..small()
    })
    .await;
    let mut c = srv.client().await;
    let mut watch = c
        .raw
        .watch(pb::WatchRequest {
            side: pb::Side::Server as i32,
            to: pb::State::Established as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // 20 opens while it does not read: 20 matching transitions, 80 that do not match.
    c.open(pb::OpenRequest {
        count: 20,
        ..open_req(pb::Mode::Auto)
    })
    .await;
    let mut transitions = 0;
    let missed = loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        match ev.event.unwrap() {
            pb::watch_event::Event::Transition(t) => {
                assert_eq!((t.side, t.to), (pb::Side::Server as i32, EST));
                transitions += 1;
            }
            pb::watch_event::Event::Missed(m) => break m.count,
        }
    };
    // The watcher's queue of 4, and one event already handed to the stream.
    assert_eq!(
        transitions + missed,
        20,
        "{transitions} sent, {missed} missed"
    );
    assert!((4..=6).contains(&transitions), "{transitions}");
    // The cap: one more watcher is taken, the third is refused.
    let _second = c.raw.watch(pb::WatchRequest::default()).await.unwrap();
    let third = c.raw.watch(pb::WatchRequest::default()).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(third.message().contains("watchers"), "{third:?}");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropped_final_ack_leaves_server_in_syn_received_until_it_gives_up() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let id = c.open_id(open_req(pb::Mode::Manual)).await;
    let wire = |direction: pb::Direction, action: pb::WireAction| pb::WireRequest {
        incarnation: None,
        id,
        direction: direction as i32,
        action: action as i32,
        count: 1,
        ..Default::default()
    };
    use pb::Direction::{ClientToServer as C2S, ServerToClient as S2C};
    c.wire(wire(C2S, pb::WireAction::Deliver)).await;
    c.wire(wire(S2C, pb::WireAction::Deliver)).await;
    c.wire(wire(C2S, pb::WireAction::Drop)).await;
    assert_eq!(c.states(id).await, (EST, st(pb::State::SynReceived)));
    // SYN-ACK retransmissions at 1, 3, 7, 15, 31 s, each left on the wire and dropped.
    let mut retransmitted = 0;
    for _ in 0..62 {
        c.advance(1000).await;
        let conn = c.get_id(id).await;
        let waiting = conn
            .wire
            .iter()
            .find(|q| q.direction == S2C as i32)
            .map_or(0, |q| q.segments.len());
        if waiting > 0 {
            retransmitted += waiting;
            c.wire(pb::WireRequest {
                count: waiting as u32,
                ..wire(S2C, pb::WireAction::Drop)
            })
            .await;
        }
        assert_eq!(c.states(id).await.1, st(pb::State::SynReceived));
    }
    assert_eq!(retransmitted, 5);
    c.advance(1000).await; // 63 s: given up
    assert_eq!(c.states(id).await, (EST, st(pb::State::Listen)));
    srv.shutdown().await.unwrap();
}

/// A bad request: which RPC, what is wrong, the code it must get, and a word its message names.
struct Bad {
    what: &'static str,
    code: Code,
    names: &'static str,
}

#[tokio::test]
async fn bad_inputs_get_the_right_code_and_change_nothing() {
    let srv = TestServer::start(ServeConfig {
        virtual_clock: true,
        limits: tcpsim::service::Limits {
            max_open_batch: 100,
            max_page_size: 50,
            max_wire_count: 8,
            ..Default::default()
        },
        ..small()
    })
    .await;
    let mut c = srv.client().await;
    let auto = c.open(open_req(pb::Mode::Auto)).await.connections[0].clone();
    let manual = c.open_id(open_req(pb::Mode::Manual)).await;
    let ext = c
        .open_id(pb::OpenRequest {
            role: pb::Side::Server as i32,
            ..open_req(pb::Mode::External)
        })
        .await;
    c.close(pb::CloseRequest {
        incarnation: None,
        id: auto.id,
        side: pb::Side::Client as i32,
        how: 0,
        ..Default::default()
    })
    .await;
    let id = auto.id;

    let snapshot = |c: &mut SimulatorClient<Channel>| {
        let mut c = c.clone();
        async move {
            let mut all = vec![];
            for id in [id, manual, ext] {
                all.push(format!(
                    "{:?}",
                    c.get(pb::GetRequest {
                        incarnation: None,
                        id,
                        tuple: None
                    })
                    .await
                    .unwrap()
                    .into_inner()
                ));
            }
            let stats = c.stats(pb::StatsRequest {}).await.unwrap().into_inner();
            all.push(format!(
                "{:?}{:?}{:?}{}",
                stats.occupancy, stats.transitions, stats.segments, stats.connections
            ));
            all
        }
    };
    let before = snapshot(&mut c).await;

    let seg = |f: pb::Flags| {
        Some(pb::Segment {
            flags: Some(f),
            ..Default::default()
        })
    };
    let side = |s: pb::Side| s as i32;
    let mut results: Vec<(Bad, Result<(), tonic::Status>)> = vec![];
    macro_rules! check {
        ($what:expr, $code:expr, $names:expr, $call:expr) => {
            results.push((
                Bad {
                    what: $what,
                    code: $code,
                    names: $names,
                },
                $call.await.map(|_| ()),
            ));
        };
    }
    use Code::*;
    check!(
        "open without a mode",
        InvalidArgument,
        "mode",
        c.raw.open(pb::OpenRequest::default())
    );
    check!(
        "open with an unknown mode",
        InvalidArgument,
        "mode",
        c.raw.open(pb::OpenRequest {
            mode: 42,
            ..Default::default()
        })
    );
    check!(
        "open over the batch cap",
        ResourceExhausted,
        "count",
        c.raw.open(pb::OpenRequest {
            count: 101,
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open EXTERNAL without a role",
        InvalidArgument,
        "role",
        c.raw.open(open_req(pb::Mode::External))
    );
    check!(
        "open EXTERNAL with SIDE_BOTH",
        InvalidArgument,
        "role",
        c.raw.open(pb::OpenRequest {
            role: side(pb::Side::Both),
            ..open_req(pb::Mode::External)
        })
    );
    check!(
        "open AUTO with a role",
        InvalidArgument,
        "role",
        c.raw.open(pb::OpenRequest {
            role: side(pb::Side::Client),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open with a malformed client",
        InvalidArgument,
        "tuple.client",
        c.raw.open(pb::OpenRequest {
            tuple: Some(pb::FourTuple {
                client: "nope".into(),
                server: "10.255.0.1:80".into()
            }),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open with a client outside the pools",
        InvalidArgument,
        "tuple",
        c.raw.open(pb::OpenRequest {
            tuple: Some(pb::FourTuple {
                client: "192.0.2.1:4000".into(),
                server: "10.255.0.1:80".into()
            }),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open toward an unknown server",
        InvalidArgument,
        "server",
        c.raw.open(pb::OpenRequest {
            server: "10.9.9.9:22".into(),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open with a malformed client_ip",
        InvalidArgument,
        "client_ip",
        c.raw.open(pb::OpenRequest {
            client_ip: "10.0.0".into(),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open an explicit tuple with count 2",
        InvalidArgument,
        "tuple",
        c.raw.open(pb::OpenRequest {
            count: 2,
            tuple: auto.tuple.clone(),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open a 4-tuple in use",
        FailedPrecondition,
        "in use",
        c.raw.open(pb::OpenRequest {
            tuple: auto.tuple.clone(),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open a pair with settings",
        InvalidArgument,
        "settings",
        c.raw.open(pb::OpenRequest {
            settings: Some(pb::TcpSettings::default()),
            ..open_req(pb::Mode::Auto)
        })
    );
    check!(
        "open with syn_retries over 255",
        InvalidArgument,
        "settings.syn_retries",
        c.raw.open(pb::OpenRequest {
            role: side(pb::Side::Client),
            settings: Some(pb::TcpSettings {
                syn_retries: Some(256),
                ..Default::default()
            }),
            ..open_req(pb::Mode::External)
        })
    );
    // Settings are checked by the one validation every source goes through: each bound.
    let with_settings = |mode, settings: pb::TcpSettings| pb::OpenRequest {
        role: if mode == pb::Mode::External {
            side(pb::Side::Client)
        } else {
            0
        },
        settings: Some(settings),
        ..open_req(mode)
    };
    check!(
        "open with an MSS of 0",
        InvalidArgument,
        "settings.mss: 0 is out of range: allowed 88..=65495",
        c.raw.open(with_settings(
            pb::Mode::External,
            pb::TcpSettings {
                mss: Some(0),
                ..Default::default()
            }
        ))
    );
    check!(
        "open with an MSS over 65535",
        InvalidArgument,
        "settings.mss",
        c.raw.open(with_settings(
            pb::Mode::Manual,
            pb::TcpSettings {
                mss: Some(70_000),
                ..Default::default()
            }
        ))
    );
    check!(
        "open with no SYN retries",
        InvalidArgument,
        "settings.syn_retries: 0 is out of range",
        c.raw.open(with_settings(
            pb::Mode::Manual,
            pb::TcpSettings {
                syn_retries: Some(0),
                ..Default::default()
            }
        ))
    );
    check!(
        "open with an RTO ceiling under 1 s",
        InvalidArgument,
        "settings.rto_max_ms: 500 is out of range: allowed 1000..=120000",
        c.raw.open(with_settings(
            pb::Mode::Manual,
            pb::TcpSettings {
                rto_max_ms: Some(500),
                ..Default::default()
            }
        ))
    );
    check!(
        "open with an unknown profile",
        InvalidArgument,
        "settings.profile",
        c.raw.open(with_settings(
            pb::Mode::Manual,
            pb::TcpSettings {
                profile: 7,
                ..Default::default()
            }
        ))
    );
    check!(
        "close an unknown id",
        NotFound,
        "12345",
        c.raw.close(pb::CloseRequest {
            incarnation: None,
            id: 12345,
            side: side(pb::Side::Client),
            how: 0,
            ..Default::default()
        })
    );
    check!(
        "close without a side",
        InvalidArgument,
        "side",
        c.raw.close(pb::CloseRequest {
            incarnation: None,
            id,
            side: 0,
            how: 0,
            ..Default::default()
        })
    );
    check!(
        "close with an unknown kind",
        InvalidArgument,
        "how",
        c.raw.close(pb::CloseRequest {
            incarnation: None,
            id,
            side: side(pb::Side::Server),
            how: 9,
            ..Default::default()
        })
    );
    check!(
        "close twice",
        FailedPrecondition,
        "FIN-WAIT-2",
        c.raw.close(pb::CloseRequest {
            incarnation: None,
            id,
            side: side(pb::Side::Client),
            how: 0,
            ..Default::default()
        })
    );
    check!(
        "abort with SIDE_BOTH",
        InvalidArgument,
        "side",
        c.raw.abort(pb::AbortRequest {
            incarnation: None,
            id,
            side: side(pb::Side::Both),
            ..Default::default()
        })
    );
    check!(
        "send from a LISTEN server",
        FailedPrecondition,
        "LISTEN",
        c.raw.send(pb::SendRequest {
            incarnation: None,
            id: manual,
            side: side(pb::Side::Server),
            bytes: 10,
            ..Default::default()
        })
    );
    check!(
        "send past the send buffer",
        ResourceExhausted,
        "bytes",
        c.raw.send(pb::SendRequest {
            incarnation: None,
            id,
            side: side(pb::Side::Server),
            bytes: u32::MAX,
            ..Default::default()
        })
    );
    check!(
        "send on the missing side of EXTERNAL",
        InvalidArgument,
        "side",
        c.raw.send(pb::SendRequest {
            incarnation: None,
            id: ext,
            side: side(pb::Side::Client),
            bytes: 1,
            ..Default::default()
        })
    );
    check!(
        "inject without a segment",
        InvalidArgument,
        "segment",
        c.raw.inject(pb::InjectRequest {
            incarnation: None,
            id,
            to: side(pb::Side::Client),
            segment: None
        })
    );
    check!(
        "inject a window over 16 bits",
        InvalidArgument,
        "segment.window",
        c.raw.inject(pb::InjectRequest {
            incarnation: None,
            id,
            to: side(pb::Side::Client),
            segment: Some(pb::Segment {
                window: 70_000,
                ..Default::default()
            })
        })
    );
    check!(
        "inject a huge payload length",
        InvalidArgument,
        "segment.length",
        c.raw.inject(pb::InjectRequest {
            incarnation: None,
            id,
            to: side(pb::Side::Client),
            segment: Some(pb::Segment {
                length: 1 << 20,
                ..Default::default()
            })
        })
    );
    check!(
        "inject without a target side",
        InvalidArgument,
        "to",
        c.raw.inject(pb::InjectRequest {
            incarnation: None,
            id,
            to: 0,
            segment: seg(pb::Flags {
                ack: true,
                ..Default::default()
            })
        })
    );
    check!(
        "wire on an AUTO connection",
        FailedPrecondition,
        "AUTO",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id,
            direction: 1,
            action: 1,
            count: 1,
            ..Default::default()
        })
    );
    check!(
        "wire without a direction",
        InvalidArgument,
        "direction",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id: manual,
            direction: 0,
            action: 1,
            count: 1,
            ..Default::default()
        })
    );
    check!(
        "wire an EXTERNAL server's segments the wrong way",
        InvalidArgument,
        "direction: connection",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id: ext,
            direction: pb::Direction::ClientToServer as i32,
            action: 1,
            count: 1,
            ..Default::default()
        })
    );
    check!(
        "wire with an unknown action",
        InvalidArgument,
        "action",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id: manual,
            direction: 1,
            action: 7,
            count: 1,
            ..Default::default()
        })
    );
    check!(
        "wire more than waits",
        FailedPrecondition,
        "wait",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id: manual,
            direction: 1,
            action: 1,
            count: 5,
            ..Default::default()
        })
    );
    check!(
        "wire over the per-call cap",
        ResourceExhausted,
        "count",
        c.raw.wire(pb::WireRequest {
            incarnation: None,
            id: manual,
            direction: 1,
            action: 1,
            count: 9,
            ..Default::default()
        })
    );
    check!(
        "get with a malformed tuple",
        InvalidArgument,
        "tuple.server",
        c.raw.get(pb::GetRequest {
            incarnation: None,
            id: 0,
            tuple: Some(pb::FourTuple {
                client: "10.0.0.1:1".into(),
                server: "x".into()
            })
        })
    );
    check!(
        "list a page over the cap",
        ResourceExhausted,
        "page_size",
        c.raw.list(pb::ListRequest {
            page_size: 51,
            ..Default::default()
        })
    );
    check!(
        "list with a forged token",
        InvalidArgument,
        "page_token",
        c.raw.list(pb::ListRequest {
            page_token: "abc".into(),
            ..Default::default()
        })
    );
    check!(
        "list with an unknown state",
        InvalidArgument,
        "state",
        c.raw.list(pb::ListRequest {
            state: 99,
            ..Default::default()
        })
    );
    check!(
        "advance over ten years",
        InvalidArgument,
        "millis",
        c.raw.advance_clock(pb::AdvanceClockRequest {
            millis: u64::MAX,
            ms: 0
        })
    );
    check!(
        "remove an unknown id",
        NotFound,
        "id",
        c.raw.remove(pb::RemoveRequest {
            incarnation: None,
            id: 7
        })
    );

    let mut wrong = vec![];
    for (bad, got) in &results {
        match got {
            Err(s) if s.code() == bad.code && s.message().contains(bad.names) => {}
            other => wrong.push(format!(
                "{}: want {:?} naming {:?}, got {:?}",
                bad.what, bad.code, bad.names, other
            )),
        }
    }
    assert!(results.len() >= 30, "only {} bad inputs", results.len());
    assert!(
        wrong.is_empty(),
        "{} bad inputs answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        snapshot(&mut c).await,
        before,
        "a rejected call changed something"
    );
    srv.table.verify().unwrap();
    // Still serving.
    c.open(open_req(pb::Mode::Auto)).await;
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn advance_clock_on_a_real_clock_is_a_failed_precondition() {
    let srv = TestServer::start(small()).await;
    let mut c = srv.client().await;
    let e = c
        .raw
        .advance_clock(pb::AdvanceClockRequest { ms: 1, millis: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("real"));
    srv.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_clients_keep_counters_equal_to_a_scan() {
    let srv = virtual_server().await;
    let mut tasks = vec![];
    for k in 0..32u64 {
        let mut c = srv.client().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..40u64 {
                let mode = if (k + i) % 3 == 0 {
                    pb::Mode::Manual
                } else {
                    pb::Mode::Auto
                };
                let id = c.open_id(open_req(mode)).await;
                let _ = c
                    .raw
                    .send(pb::SendRequest {
                        incarnation: None,
                        id,
                        side: pb::Side::Client as i32,
                        bytes: 3000,
                        ..Default::default()
                    })
                    .await;
                let _ = c
                    .raw
                    .wire(pb::WireRequest {
                        incarnation: None,
                        id,
                        direction: 1,
                        action: 1,
                        count: 1,
                        ..Default::default()
                    })
                    .await;
                let how = if i % 2 == 0 {
                    pb::CloseKind::Close
                } else {
                    pb::CloseKind::Shutdown
                };
                let _ = c
                    .raw
                    .close(pb::CloseRequest {
                        incarnation: None,
                        id,
                        side: pb::Side::Both as i32,
                        how: how as i32,
                        ..Default::default()
                    })
                    .await;
                if i % 7 == 0 {
                    let _ = c
                        .raw
                        .abort(pb::AbortRequest {
                            incarnation: None,
                            id,
                            side: pb::Side::Server as i32,
                            ..Default::default()
                        })
                        .await;
                }
                if k == 0 && i % 5 == 0 {
                    c.advance(20_000).await;
                }
                let _ = c.raw.stats(pb::StatsRequest {}).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    srv.table.verify().unwrap();
    let stats = srv.table.stats();
    assert_eq!(stats.counters.opened, 32 * 40);
    srv.shutdown().await.unwrap();
}

/// Close, Abort and Send on many connections at once: by ids, or by a selector (the side's
/// state, a client block, a limit, pages by `after`), answering how many were done and how many
/// failed by code; bad combinations are refused naming the field, and change nothing.
#[tokio::test]
async fn close_abort_and_send_act_on_many_connections_at_once() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let opened = c
        .raw
        .open(pb::OpenRequest {
            count: 10,
            ids_only: true,
            ..open_req(pb::Mode::Auto)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.connections.len(), 10);
    assert!(
        opened.connections.iter().all(|o| o.tuple.is_none()),
        "ids only"
    );
    let ids: Vec<u64> = opened.connections.iter().map(|o| o.id).collect();
    let side = |s: pb::Side| s as i32;
    // Bad combinations first: each refused, naming the field, nothing done.
    let close = |r: pb::CloseRequest| {
        let mut c = c.raw.clone();
        async move { c.close(r).await }
    };
    let select = |limit: u32| pb::Selector {
        limit,
        ..Default::default()
    };
    for (req, code, field) in [
        (
            pb::CloseRequest {
                ids: ids.clone(),
                select: Some(select(1)),
                side: side(pb::Side::Client),
                ..Default::default()
            },
            Code::InvalidArgument,
            "select",
        ),
        (
            pb::CloseRequest {
                id: ids[0],
                ids: ids.clone(),
                side: side(pb::Side::Client),
                ..Default::default()
            },
            Code::InvalidArgument,
            "id",
        ),
        (
            pb::CloseRequest {
                select: Some(select(100_001)),
                side: side(pb::Side::Client),
                ..Default::default()
            },
            Code::ResourceExhausted,
            "select.limit",
        ),
        (
            pb::CloseRequest {
                select: Some(pb::Selector {
                    client: "10.0.0.1/8".into(),
                    ..Default::default()
                }),
                side: side(pb::Side::Client),
                ..Default::default()
            },
            Code::InvalidArgument,
            "select.client",
        ),
        (
            pb::CloseRequest {
                ids: vec![1; 100_001],
                side: side(pb::Side::Client),
                ..Default::default()
            },
            Code::ResourceExhausted,
            "ids",
        ),
    ] {
        let e = close(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {e:?}");
    }
    let est = srv.stats().await.occupancy;
    let count = |occ: &[pb::Occupancy], side: pb::Side, state: pb::State| {
        occ.iter()
            .filter(|o| o.side == side as i32 && o.state == state as i32)
            .map(|o| o.count)
            .sum::<i64>()
    };
    assert_eq!(count(&est, pb::Side::Client, pb::State::Established), 10);
    // Send from the server on three, chosen by the selector; the first three ids in order.
    let sent = c
        .raw
        .send(pb::SendRequest {
            side: side(pb::Side::Server),
            bytes: 100,
            select: Some(pb::Selector {
                state: pb::State::Established as i32,
                client: "10.0.0.0/16".into(),
                limit: 3,
                after: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.done, sent.failed.len()), (3, 0));
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    // Close the client side of all ten by ids (each to FIN-WAIT-2, its server to CLOSE-WAIT);
    // a second close of the same sides fails for each, counted by code.
    let closed = c
        .raw
        .close(pb::CloseRequest {
            ids: ids.clone(),
            side: side(pb::Side::Client),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((closed.done, closed.failed.len()), (10, 0));
    let again = c
        .raw
        .close(pb::CloseRequest {
            ids: ids.clone(),
            side: side(pb::Side::Client),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.done, 0);
    assert_eq!(
        again.failed.get("FAILED_PRECONDITION"),
        Some(&10),
        "{again:?}"
    );
    // The server sides in CLOSE-WAIT, four at a time, page by page with `after`.
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = c
            .raw
            .abort(pb::AbortRequest {
                side: side(pb::Side::Server),
                select: Some(pb::Selector {
                    state: pb::State::CloseWait as i32,
                    limit: 4,
                    after,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if page.done == 0 {
            break;
        }
        pages += 1;
        after = sorted[(pages * 4).min(10) - 1];
    }
    assert_eq!(pages, 3);
    let occ = srv.stats().await.occupancy;
    assert_eq!(count(&occ, pb::Side::Server, pb::State::CloseWait), 0);
    assert_eq!(count(&occ, pb::Side::Client, pb::State::Established), 0);
    srv.shutdown().await.unwrap();
}

/// Wire `all` moves every segment waiting one way; nothing waiting moves nothing; with a count
/// it is refused.
#[tokio::test]
async fn wire_can_deliver_everything_waiting() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let id = c.open_id(open_req(pb::Mode::Manual)).await;
    let all = |direction: pb::Direction| pb::WireRequest {
        id,
        direction: direction as i32,
        action: pb::WireAction::Duplicate as i32,
        all: true,
        ..Default::default()
    };
    // The SYN, duplicated: two wait; `all` delivers both.
    c.raw
        .wire(all(pb::Direction::ClientToServer))
        .await
        .unwrap();
    let deliver = pb::WireRequest {
        action: pb::WireAction::Deliver as i32,
        ..all(pb::Direction::ClientToServer)
    };
    let moved = c.raw.wire(deliver).await.unwrap().into_inner();
    assert_eq!(moved.moved.len(), 2);
    let again = c.raw.wire(deliver).await.unwrap().into_inner();
    assert!(again.moved.is_empty());
    assert_eq!(again.server, pb::State::SynReceived as i32);
    let e = c
        .raw
        .wire(pb::WireRequest {
            count: 2,
            ..deliver
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("count: give a count or all"),
        "{e:?}"
    );
    // Stats counts the duplicate by side and outcome, both enums.
    let duplicated = srv
        .stats()
        .await
        .segments
        .iter()
        .find(|c| {
            c.side == pb::Side::Client as i32 && c.outcome == pb::SegmentOutcome::Duplicated as i32
        })
        .map(|c| c.count);
    assert_eq!(duplicated, Some(1));
    srv.shutdown().await.unwrap();
}

/// `AdvanceClockRequest.ms` is the name; `millis`, the old one, still works; both at once only
/// if equal.
#[tokio::test]
async fn advance_takes_ms_and_still_millis() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let adv = |ms, millis| pb::AdvanceClockRequest { ms, millis };
    // ms, millis, both equal: each moves the clock by 5.
    for (k, req) in [adv(5, 0), adv(0, 5), adv(5, 5)].into_iter().enumerate() {
        let now = c.raw.advance_clock(req).await.unwrap().into_inner().now_ms;
        assert_eq!(now, 5 * (k as u64 + 1), "{req:?}");
    }
    let e = c.raw.advance_clock(adv(5, 6)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("ms: 5 and millis 6 differ"),
        "{e:?}"
    );
    assert_eq!(srv.stats().await.now_ms, 15, "nothing moved");
    srv.shutdown().await.unwrap();
}

/// Stats counts the timewait socks a host had no room for (`tcp_max_tw_buckets`) and says the
/// cap it runs with.
#[tokio::test]
async fn stats_count_time_wait_overflows() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    cfg.table.max_tw_buckets = 2;
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    for _ in 0..3 {
        let id = c
            .open_id(pb::OpenRequest {
                client_ip: "10.0.0.1".into(),
                ..open_req(pb::Mode::Auto)
            })
            .await;
        c.close_side(id, pb::Side::Client).await;
    }
    let s = srv.stats().await;
    assert_eq!(s.time_wait_overflows, 1);
    assert_eq!(s.settings.unwrap().tcp_max_tw_buckets, 2);
    srv.shutdown().await.unwrap();
}

/// SetListener changes one listener or all, and Stats shows each listener's settings and
/// queues and Linux's listen counters: a SYN flood past a backlog of 2 fills the SYN queue (3)
/// and is answered with cookies; a paused application leaves made connections waiting. A bad
/// setting or an unknown server is refused, naming it, and changes nothing.
#[tokio::test]
async fn set_listener_and_stats_show_the_listen_queues() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    let changed = c
        .set_listener(pb::SetListenerRequest {
            backlog: Some(2),
            accepting: Some(false),
            ..Default::default()
        })
        .await;
    assert_eq!(changed.listeners.len(), 1);
    let l = &changed.listeners[0];
    assert_eq!((l.backlog, l.effective_backlog, l.accepting), (2, 2, false));
    for _ in 0..5 {
        let id = c.open_id(open_req(pb::Mode::Manual)).await;
        c.deliver(id, pb::Direction::ClientToServer).await;
    }
    c.open_id(open_req(pb::Mode::Auto)).await;
    let s = srv.stats().await;
    assert_eq!(s.listen["syncookies_sent"], 3);
    assert_eq!(s.listen["syncookies_recv"], 1);
    assert_eq!(s.listen["listen_drops"], 0);
    let l = &s.listeners[0];
    assert_eq!((l.syn_queue, l.accept_queue), (3, 1));
    // Refusals name the setting, and change nothing.
    for (req, field) in [
        (
            pb::SetListenerRequest {
                backlog: Some(9),
                tcp_syncookies: Some(7),
                ..Default::default()
            },
            "tcp_syncookies",
        ),
        (
            pb::SetListenerRequest {
                server: "10.9.9.9:80".into(),
                ..Default::default()
            },
            "server: server address 10.9.9.9:80",
        ),
        (
            pb::SetListenerRequest {
                server: "nonsense".into(),
                ..Default::default()
            },
            "server",
        ),
    ] {
        let e = c.raw.set_listener(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }
    assert_eq!(srv.stats().await.listeners[0].backlog, 2);
    srv.shutdown().await.unwrap();
}

/// SetClientSysctls turns TIME-WAIT reuse on: with one port, a second open is refused while
/// the first connection's TIME-WAIT is younger than tcp_tw_reuse_delay, and takes it over once
/// it is old enough; Stats shows the settings and counts the reuse. A bad value is refused,
/// naming it, and changes nothing.
#[tokio::test]
async fn set_client_sysctls_turns_time_wait_reuse_on() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    cfg.table.ports = (40000, 40000);
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    let s = srv.stats().await.client_sysctls.unwrap();
    assert_eq!(
        (s.tcp_tw_reuse, s.tcp_timestamps, s.tcp_tw_reuse_delay_ms),
        (2, true, 1000),
        "Linux's defaults"
    );
    let set = c
        .set_client_sysctls(pb::SetClientSysctlsRequest {
            tcp_tw_reuse: Some(1),
            ..Default::default()
        })
        .await;
    assert_eq!((set.tcp_tw_reuse, set.tcp_tw_reuse_delay_ms), (1, 1000));
    let open = pb::OpenRequest {
        client_ip: "10.0.0.1".into(),
        ..open_req(pb::Mode::Auto)
    };
    let first = c.open_id(open.clone()).await;
    c.close_side(first, pb::Side::Client).await;
    c.close_side(first, pb::Side::Server).await;
    c.advance(999).await;
    let e = c.raw.open(open.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    c.advance(1).await;
    let second = c.open_id(open).await;
    assert_eq!(second, first, "the same 4-tuple");
    let s = srv.stats().await;
    assert_eq!(s.time_wait_reused, 1);
    let e = c
        .raw
        .set_client_sysctls(pb::SetClientSysctlsRequest {
            tcp_tw_reuse: Some(3),
            tcp_timestamps: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("tcp_tw_reuse: 3"), "{e:?}");
    assert!(
        srv.stats().await.client_sysctls.unwrap().tcp_timestamps,
        "nothing changed"
    );
    srv.shutdown().await.unwrap();
}

/// On a link (serve --link), Get shows the segments in flight with when each arrives, Stats
/// counts them and names the link, and a handshake takes its round trips.
#[tokio::test]
async fn get_and_stats_show_segments_in_flight_on_a_link() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    cfg.tcp.link = "delay=25ms".parse().unwrap();
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    let id = c.open_id(open_req(pb::Mode::Auto)).await;
    let conn = c.get_id(id).await;
    let flying = &conn.in_flight[0];
    assert_eq!(flying.direction, pb::Direction::ClientToServer as i32);
    let syn = &flying.segments[0];
    assert!(syn.flags.unwrap().syn);
    assert_eq!(syn.arrives_at_ms, Some(25));
    let s = srv.stats().await;
    assert_eq!(s.segments_in_flight, 1);
    assert_eq!(
        s.settings.unwrap().link,
        "delay=25ms,jitter=0ms,loss=0%,dup=0%,reorder=0%"
    );
    c.advance(75).await;
    assert_eq!(
        c.states(id).await,
        (pb::State::Established as i32, pb::State::Established as i32)
    );
    assert_eq!(srv.stats().await.segments_in_flight, 0);
    // An open may bring its own link (AUTO only), or none.
    let own = c
        .open_id(pb::OpenRequest {
            link: "none".into(),
            ..open_req(pb::Mode::Auto)
        })
        .await;
    assert_eq!(c.states(own).await.0, pb::State::Established as i32);
    let e = c
        .raw
        .open(pb::OpenRequest {
            link: "delay=5ms".into(),
            ..open_req(pb::Mode::Manual)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("link: only AUTO pairs"), "{e:?}");
    srv.shutdown().await.unwrap();
}

/// SetLink sets the default link or one for a server or a client pool; Stats lists them; bad
/// input is refused naming the field, and changes nothing.
#[tokio::test]
async fn set_link_sets_and_lists_links() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    let pool = srv.stats().await.settings.unwrap().client_pools[0].clone();
    let r = c
        .set_link(pb::SetLinkRequest {
            link: "delay=25ms,loss=1%".into(),
            client_pool: pool.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.links.len(), 2);
    assert_eq!(r.links[0].target, "default");
    assert_eq!(r.links[0].link, "none");
    assert_eq!(r.links[1].target, format!("client pool {pool}"));
    assert_eq!(
        (r.links[1].server.as_str(), r.links[1].client_pool.as_str()),
        ("", pool.as_str())
    );
    assert_eq!(
        r.links[1].link,
        "delay=25ms,jitter=0ms,loss=1%,dup=0%,reorder=0%"
    );
    let id = c.open_id(open_req(pb::Mode::Auto)).await;
    assert_eq!(c.states(id).await.0, pb::State::SynSent as i32);
    for (req, field) in [
        (
            pb::SetLinkRequest {
                link: "delay=soon".into(),
                ..Default::default()
            },
            "link: delay=soon",
        ),
        (
            pb::SetLinkRequest {
                link: "none".into(),
                server: "10.9.9.9:80".into(),
                ..Default::default()
            },
            "server:",
        ),
        (
            pb::SetLinkRequest {
                link: "none".into(),
                client_pool: "10.9.0.0/16".into(),
                ..Default::default()
            },
            "client_pool: client pool 10.9.0.0/16 is not one of",
        ),
        (
            pb::SetLinkRequest {
                link: "none".into(),
                server: "10.255.0.1:80".into(),
                client_pool: pool.clone(),
            },
            "client_pool: give a server or a client pool",
        ),
    ] {
        let e = c.raw.set_link(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }
    assert_eq!(srv.stats().await.links.len(), 2, "nothing changed");
    srv.shutdown().await.unwrap();
}

/// An open refused by a limit says which one, as Stats counts it: in the trailer
/// `tcpsim-refused` of a unary call and in `Error.refused` on a Run stream; other errors leave
/// it empty.
#[tokio::test]
async fn a_refused_open_names_the_limit() {
    let mut cfg = small();
    cfg.virtual_clock = true;
    cfg.table.max_connections = 1;
    let srv = TestServer::start(cfg).await;
    let mut c = srv.client().await;
    c.raw.open(open_req(pb::Mode::Auto)).await.unwrap();
    let refused = c.raw.open(open_req(pb::Mode::Auto)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.metadata().get("tcpsim-refused").unwrap(),
        "table_full"
    );
    let other = c
        .raw
        .open(pb::OpenRequest {
            client_ip: "192.168.0.1".into(),
            ..open_req(pb::Mode::Auto)
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument, "{other:?}");
    assert!(other.metadata().get("tcpsim-refused").is_none());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut results = c
        .run(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(pb::Command {
        tag: 1,
        op: Some(pb::command::Op::Open(Box::new(open_req(pb::Mode::Auto)))),
    })
    .await
    .unwrap();
    let r = results.message().await.unwrap().unwrap();
    let Some(pb::command_result::Result::Error(e)) = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(
        (e.code, e.refused.as_str()),
        (Code::ResourceExhausted as i32, "table_full")
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn run_stream_answers_in_order_with_errors_inline() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut results = c
        .run(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    use pb::command::Op;
    tx.send(pb::Command {
        tag: 1,
        op: Some(Op::Open(Box::new(open_req(pb::Mode::Auto)))),
    })
    .await
    .unwrap();
    let r = results.message().await.unwrap().unwrap();
    let Some(pb::command_result::Result::Open(o)) = r.result else {
        panic!("{r:?}")
    };
    let id = o.connections[0].id;
    tx.send(pb::Command {
        tag: 2,
        op: Some(Op::Close(pb::CloseRequest {
            incarnation: None,
            id,
            side: 3,
            how: 0,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(pb::Command {
        tag: 3,
        op: Some(Op::Close(pb::CloseRequest {
            incarnation: None,
            id,
            side: 3,
            how: 0,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(pb::Command {
        tag: 4,
        op: Some(Op::AdvanceClock(pb::AdvanceClockRequest {
            ms: 60_000,
            millis: 0,
        })),
    })
    .await
    .unwrap();
    tx.send(pb::Command { tag: 5, op: None }).await.unwrap();
    let mut tags = vec![];
    for _ in 0..4 {
        let r = results.message().await.unwrap().unwrap();
        tags.push(r.tag);
        match (r.tag, r.result.unwrap()) {
            (2, pb::command_result::Result::States(s)) => {
                assert_eq!(s.client, st(pb::State::TimeWait))
            }
            (3, pb::command_result::Result::Error(e)) => {
                assert_eq!(e.code, Code::FailedPrecondition as i32)
            }
            (4, pb::command_result::Result::AdvanceClock(a)) => assert_eq!(a.timers_fired, 2),
            (5, pb::command_result::Result::Error(e)) => {
                assert_eq!(e.code, Code::InvalidArgument as i32)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(tags, [2, 3, 4, 5]);
    srv.shutdown().await.unwrap();
}

/// Passes bytes through unchanged, to send what no generated client would.
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

#[tokio::test]
async fn malformed_messages_are_invalid_arguments_and_change_nothing() {
    use prost::Message;
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let id = c.open_id(open_req(pb::Mode::Auto)).await;
    let before = (srv.stats().await, c.states(id).await);
    let channel = Channel::from_shared(srv.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = |m: &'static str| http::uri::PathAndQuery::from_static(m);
    // A Send whose id varint never ends (what a broken client might write).
    let mut cut = pb::SendRequest {
        incarnation: None,
        id,
        side: pb::Side::Client as i32,
        bytes: 10,
        ..Default::default()
    }
    .encode_to_vec();
    cut.truncate(2);
    grpc.ready().await.unwrap();
    let e = grpc
        .unary(
            Request::new(cut),
            path("/tcpsim.v1.Simulator/Send"),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("SendRequest"), "{e:?}");

    // On Run: a good command is answered, then the broken one ends the stream with the reason.
    let good = pb::Command {
        tag: 7,
        op: Some(pb::command::Op::Send(pb::SendRequest {
            incarnation: None,
            id,
            side: pb::Side::Client as i32,
            bytes: 0,
            ..Default::default()
        })),
    }
    .encode_to_vec();
    let mut broken = good.clone();
    broken.truncate(broken.len() - 1);
    grpc.ready().await.unwrap();
    let mut results = grpc
        .streaming(
            Request::new(tokio_stream::iter([good, broken])),
            path("/tcpsim.v1.Simulator/Run"),
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let first = pb::CommandResult::decode(&results.message().await.unwrap().unwrap()[..]).unwrap();
    assert_eq!(first.tag, 7, "{first:?}");
    let e = results.message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("Command"), "{e:?}");

    // A zero-byte Send changes no state, so everything is as it was.
    assert_eq!((srv.stats().await, c.states(id).await), before);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_ends_open_streams_and_reports_not_serving() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let mut watch = c
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::Command>(1);
    let mut run = c
        .run(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        Channel::from_shared(srv.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), srv.shutdown())
        .await
        .expect("shutdown within the grace");
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Both streams ended cleanly.
    assert!(matches!(watch.message().await, Ok(None) | Err(_)));
    assert!(matches!(run.message().await, Ok(None) | Err(_)));
}

/// Streams the server does not write itself (health's Watch, which gRPC clients keep open for
/// health checking, and reflection's) end when the server stops, so shutdown does not wait out
/// the grace for them; during the drain, health already says NOT_SERVING while calls are taken.
#[tokio::test]
async fn shutdown_drains_then_ends_health_and_reflection_streams() {
    let srv = TestServer::start(ServeConfig {
        virtual_clock: true,
        drain: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(30),
        ..small()
    })
    .await;
    let channel = Channel::from_shared(srv.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    tx.send(list).await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    reflection.message().await.unwrap().unwrap(); // the list; `tx` keeps the stream open

    let started = std::time::Instant::now();
    let mut c = srv.client().await;
    let stopping = tokio::spawn(srv.shutdown());
    // The drain: health's watchers hear NOT_SERVING, and calls are still answered.
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    c.stats(pb::StatsRequest {}).await;
    // Then both streams end, and the server stops long before its 30 s grace.
    let ended = watch.message().await;
    assert!(
        matches!(&ended, Err(s) if s.code() == Code::Unavailable) || matches!(ended, Ok(None)),
        "{ended:?}"
    );
    assert!(matches!(reflection.message().await, Ok(None) | Err(_)));
    let result = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stopped before the grace")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "drained");
    drop(tx);
}

#[tokio::test]
async fn health_and_reflection_answer() {
    let srv = virtual_server().await;
    let channel = Channel::from_shared(srv.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let name = "tcpsim.v1.Simulator".to_string();
    let r = health
        .check(tonic_health::pb::HealthCheckRequest { service: name })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        resp.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["tcpsim.v1.Simulator", "grpc.health.v1.Health"] {
        assert!(names.contains(&service.to_string()), "{service}: {names:?}");
    }
    // The descriptor of the service is served, so grpcurl needs no proto file.
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "tcpsim.v1.Simulator".into(),
        )),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(fd)) =
        resp.message().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor")
    };
    assert!(!fd.file_descriptor_proto.is_empty());

    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaReq;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = AlphaClient::new(channel);
    let req = AlphaReq {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut resp = alpha
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .is_some()
    );
    srv.shutdown().await.unwrap();
}

/// An empty token would turn authentication on with a secret everyone knows: refused, from the
/// library and from the command line (flag or environment).
#[tokio::test]
async fn an_empty_token_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ServeConfig {
        token: Some(String::new()),
        ..small()
    };
    let err = server::start(cfg, listener, std::future::pending())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, server::StartError::EmptyToken), "{err}");
    for (args, env) in [
        (vec!["--token", ""], vec![]),
        (vec![], vec![("TCPSIM_TOKEN", "")]),
    ] {
        let out = common::serve_command()
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: started");
        assert!(err.contains("an empty token would let anyone in"), "{err}");
    }
}

#[tokio::test]
async fn bearer_token_is_required_when_set() {
    let srv = TestServer::start(ServeConfig {
        virtual_clock: true,
        token: Some("s3cret".into()),
        ..small()
    })
    .await;
    let mut c = srv.client().await;
    let e = c.raw.stats(pb::StatsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("missing"));
    let mut wrong = Request::new(pb::StatsRequest {});
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        c.raw.stats(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut right = Request::new(pb::StatsRequest {});
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(c.raw.stats(right).await.is_ok());
    // Health needs no token (container health checks).
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        Channel::from_shared(srv.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok()
    );
    srv.shutdown().await.unwrap();
}

#[test]
fn conformance_scenarios_pass_through_the_grpc_api() {
    // A server on its own runtime; the runner (which blocks) on this thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(virtual_server());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let files = tcpsim::conformance::collect(&[dir]).unwrap();
    let target = srv.url.parse().unwrap();
    let mut engine =
        tcpsim::conformance::grpc::ViaGrpc::connect(&target, &Default::default()).unwrap();
    let reports =
        tcpsim::conformance::run_files(&files, &mut engine, &tcpsim::tcp::Config::default());
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(reports.len(), files.len());
    drop(engine); // its connection closes, so the shutdown has nothing to wait for
    rt.block_on(srv.shutdown()).unwrap();
}

#[test]
fn shutdown_is_bounded_by_the_grace_even_when_a_client_never_lets_go() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(TestServer::start(ServeConfig {
        virtual_clock: true,
        shutdown_grace: Duration::from_millis(300),
        ..small()
    }));
    // A client on a runtime that stops being driven after its call: its connection stays open.
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stuck = idle
        .block_on(SimulatorClient::connect(srv.url.clone()))
        .unwrap();
    idle.block_on(stuck.stats(pb::StatsRequest {})).unwrap();
    let started = std::time::Instant::now();
    let ended = rt.block_on(srv.shutdown());
    assert!(
        ended.is_ok(),
        "the server still ends successfully: {ended:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    drop(stuck);
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_certificate_only() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = server::Tls {
        cert_pem: cert.cert.pem().into_bytes(),
        key_pem: cert.signing_key.serialize_pem().into_bytes(),
        client_ca_pem: None,
    };
    let srv = TestServer::start(ServeConfig {
        virtual_clock: true,
        tls: Some(tls),
        ..small()
    })
    .await;
    let url = srv.url.replace("http://", "https://");
    let trusted = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(trusted)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = SimulatorClient::new(channel);
    let o = c.open(open_req(pb::Mode::Auto)).await.unwrap().into_inner();
    assert_eq!(o.connections[0].client, EST);
    // Plaintext gets nowhere.
    let mut plain = SimulatorClient::connect(srv.url.clone()).await.unwrap();
    assert!(plain.stats(pb::StatsRequest {}).await.is_err());
    drop((c, plain));
    srv.shutdown().await.unwrap();
}

/// A CA, and a certificate it signed for `name` (a server's, or a client's).
struct Pki {
    ca_pem: String,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tcpsim test CA");
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        Pki {
            ca_pem: issuer.pem(),
            issuer,
        }
    }

    /// (certificate, key) in PEM.
    fn sign(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A server whose certificate is self-signed and marked as a CA (what `openssl req -x509`
/// makes) is reached with that certificate as `--tls-ca`, as grpcio and grpcurl reach it; a
/// client trusting another certificate is refused.
#[test]
fn health_trusts_a_self_signed_ca_certificate_given_as_tls_ca() {
    let pki = Pki::new(); // its CA certificate serves as the server's own
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(TestServer::start(ServeConfig {
        virtual_clock: true,
        tls: Some(server::Tls {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
            client_ca_pem: None,
        }),
        ..small()
    }));
    let dir = std::env::temp_dir().join(format!("tcpsim-selfca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("other.pem"), &pki.ca_pem).unwrap();
    let target = srv.url.replace("http://", "https://");
    let health = |ca: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"))
            .args(["health", "--target", &target, "--tls-domain", "localhost"])
            .arg("--tls-ca")
            .arg(dir.join(ca))
            .output()
            .unwrap()
    };
    let ok = health("server.pem");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "SERVING");
    let other = health("other.pem");
    assert!(
        !other.status.success(),
        "a certificate nobody trusts was taken"
    );
    std::fs::remove_dir_all(&dir).ok();
    rt.block_on(srv.shutdown()).unwrap();
}

/// Mutual TLS: with a client CA set, only clients with a certificate it signed get in; the
/// client commands present theirs with --tls-cert and --tls-key.
#[test]
fn mutual_tls_admits_only_clients_with_a_certificate() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.sign("localhost");
    let (client_cert, client_key) = pki.sign("a-client");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(TestServer::start(ServeConfig {
        virtual_clock: true,
        tls: Some(server::Tls {
            cert_pem: server_cert.into_bytes(),
            key_pem: server_key.into_bytes(),
            client_ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        }),
        ..small()
    }));
    let target: tcpsim::client::Target = srv.url.replace("http://", "https://").parse().unwrap();
    let opts = |identity: bool| tcpsim::client::Options {
        tls_ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        tls_domain: Some("localhost".into()),
        tls_identity: identity.then(|| {
            (
                client_cert.clone().into_bytes(),
                client_key.clone().into_bytes(),
            )
        }),
        ..Default::default()
    };
    rt.block_on(async {
        let mut c = opts(true).connect(&target).await.unwrap();
        c.stats(pb::StatsRequest {}).await.unwrap();
        let refused = match opts(false).connect(&target).await {
            Err(e) => e.to_string(),
            Ok(mut c) => c.stats(pb::StatsRequest {}).await.unwrap_err().to_string(),
        };
        assert!(!refused.is_empty());
    });
    // The health command, with the client's certificate and without.
    let dir = std::env::temp_dir().join(format!("tcpsim-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("ca.pem", &pki.ca_pem),
        ("client.pem", &client_cert),
        ("client.key", &client_key),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let health = |with_cert: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"));
        cmd.args([
            "health",
            "--target",
            target.url(),
            "--tls-domain",
            "localhost",
        ])
        .arg("--tls-ca")
        .arg(dir.join("ca.pem"));
        if with_cert {
            cmd.arg("--tls-cert")
                .arg(dir.join("client.pem"))
                .arg("--tls-key")
                .arg(dir.join("client.key"));
        }
        cmd.output().unwrap()
    };
    let ok = health(true);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!health(false).status.success());
    std::fs::remove_dir_all(&dir).ok();
    rt.block_on(srv.shutdown()).unwrap();
}

#[test]
fn health_command_exits_zero_only_when_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(virtual_server());
    let health = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"))
            .args(["health", "--addr", url])
            .output()
            .unwrap()
    };
    let up = health(&srv.url);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), "SERVING");
    let url = srv.url.clone();
    rt.block_on(srv.shutdown()).unwrap();
    let down = health(&url);
    assert!(!down.status.success(), "a stopped server is not healthy");
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach"));
}

/// On a virtual clock, a scenario replays exactly through the API too: one client opening one
/// connection at a time gets the same 4-tuples run after run, whichever of the server's worker
/// threads answers each call (a host fills one client IP's ports in connect()'s order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_clock_opens_replay_the_same_tuples_whatever_thread_answers() {
    let mut runs = vec![];
    for _ in 0..2 {
        let s = virtual_server().await;
        let mut c = s.client().await;
        let mut tuples = vec![];
        for _ in 0..40 {
            let o = c.open(open_req(pb::Mode::Auto)).await;
            let t = o.connections[0].tuple.clone().unwrap();
            tuples.push(t.client);
            // Hand the next call to whichever worker is free.
            tokio::task::yield_now().await;
        }
        s.shutdown().await.unwrap();
        runs.push(tuples);
    }
    // The same tuples both times: one client IP, forty distinct even ports as connect() takes
    // them from the seeded offset.
    assert_eq!(runs[0], runs[1]);
    let mut ports: Vec<u16> = runs[0]
        .iter()
        .map(|c| {
            let a: std::net::SocketAddrV4 = c.parse().unwrap();
            assert_eq!(a.ip().to_string(), "10.0.0.1");
            a.port()
        })
        .collect();
    assert!(ports.iter().all(|p| p % 2 == 0), "{ports:?}");
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 40);
}

/// A MANUAL or EXTERNAL connection may run its own profile; `Get` shows every setting a
/// connection runs on. Under `rfc9293` TIME-WAIT is 2·MSL with RFC 9293's MSL of 2 minutes.
#[tokio::test]
async fn a_connection_runs_the_profile_it_was_opened_with_and_get_shows_it() {
    let srv = virtual_server().await;
    let mut c = srv.client().await;
    let get = |c: &mut SimulatorClient<Channel>, id| {
        let mut c = c.clone();
        async move {
            c.get(pb::GetRequest {
                incarnation: None,
                id,
                tuple: None,
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let auto = c.open_id(open_req(pb::Mode::Auto)).await;
    let s = get(&mut c, auto).await.settings.unwrap();
    assert_eq!(s.profile, pb::Profile::Linux as i32);
    assert_eq!(
        (s.rfc5961, s.rto_min_ms, s.msl_ms, s.syn_linear_timeouts),
        (Some(true), Some(200), Some(30_000), Some(4))
    );

    let rfc = pb::TcpSettings {
        profile: pb::Profile::Rfc9293 as i32,
        ..Default::default()
    };
    let manual = c
        .open_id(pb::OpenRequest {
            settings: Some(rfc),
            ..open_req(pb::Mode::Manual)
        })
        .await;
    let s = get(&mut c, manual).await.settings.unwrap();
    assert_eq!(s.profile, pb::Profile::Rfc9293 as i32);
    assert_eq!(
        (s.rfc5961, s.rto_min_ms, s.msl_ms, s.syn_linear_timeouts),
        (Some(false), Some(1000), Some(120_000), Some(0))
    );
    // The handshake, then the client closes first and ends in TIME-WAIT: 240 s.
    let wire = |c: &mut SimulatorClient<Channel>, direction: pb::Direction| {
        let mut c = c.clone();
        async move {
            c.wire(pb::WireRequest {
                incarnation: None,
                id: manual,
                direction: direction as i32,
                action: pb::WireAction::Deliver as i32,
                count: 1,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    use pb::Direction::{ClientToServer as C2S, ServerToClient as S2C};
    for d in [C2S, S2C, C2S] {
        wire(&mut c, d).await;
    }
    for side in [pb::Side::Client, pb::Side::Server] {
        c.close(pb::CloseRequest {
            incarnation: None,
            id: manual,
            side: side as i32,
            how: 0,
            ..Default::default()
        })
        .await;
    }
    for d in [C2S, S2C, S2C, C2S] {
        wire(&mut c, d).await;
    }
    let conn = get(&mut c, manual).await;
    let client = &conn.endpoints[0];
    assert_eq!(client.state, st(pb::State::TimeWait));
    let now = srv.stats().await.now_ms;
    assert_eq!(client.timers[0].deadline_ms, now + 240_000);

    // An EXTERNAL endpoint under rfc9293 with RFC 5961 turned back on, and an MSS of its own.
    let ext = c
        .open_id(pb::OpenRequest {
            role: pb::Side::Client as i32,
            settings: Some(pb::TcpSettings {
                rfc5961: Some(true),
                mss: Some(1000),
                ..rfc
            }),
            ..open_req(pb::Mode::External)
        })
        .await;
    let s = get(&mut c, ext).await.settings.unwrap();
    assert_eq!(
        (s.profile, s.rfc5961, s.mss),
        (pb::Profile::Rfc9293 as i32, Some(true), Some(1000))
    );
    srv.shutdown().await.unwrap();
}

/// `serve` refuses every out-of-range setting, from a flag or the environment, naming it and its
/// range, before it listens; `--profile` sets the server's defaults.
#[test]
fn serve_refuses_out_of_range_settings_and_takes_a_profile() {
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        common::serve_command()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let refused = [
        (
            serve(&["--mss", "0"], &[]),
            "--mss (TCPSIM_MSS): 0 is out of range: allowed 88..=65495",
        ),
        (
            serve(&[], &[("TCPSIM_MSS", "87")]),
            "--mss (TCPSIM_MSS): 87 is out of range",
        ),
        (
            serve(&["--syn-retries", "0"], &[]),
            "--syn-retries (TCPSIM_SYN_RETRIES): 0 is out of range: allowed 1..=127",
        ),
        (
            serve(&["--rto-max-ms", "500"], &[]),
            "--rto-max-ms (TCPSIM_RTO_MAX_MS): 500 is out of range: allowed 1000..=120000",
        ),
        (
            serve(&["--rto-min-ms", "130000"], &[]),
            "--rto-min-ms (TCPSIM_RTO_MIN_MS): 130000 is out of range: allowed 1..=120000",
        ),
        (
            serve(&["--rcv-wnd", "0"], &[]),
            "--rcv-wnd (TCPSIM_RCV_WND): 0 is out of range",
        ),
        (
            serve(&["--msl-ms", "0"], &[]),
            "--msl-ms (TCPSIM_MSL_MS): 0 is out of range",
        ),
        (
            serve(&["--profile", "bsd"], &[]),
            "not a profile: linux or rfc9293",
        ),
    ];
    for (out, says) in refused {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "accepted what it should refuse: {says}"
        );
        assert!(err.contains(says), "{err:?} does not say {says:?}");
    }

    // A good profile: the server starts, and an AUTO pair runs on its settings.
    let mut child = common::serve_command()
        .args(["--clock", "virtual", "--profile", "rfc9293"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let profile = rt.block_on(async {
        let raw = SimulatorClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut c = common::Sim { raw };
        let id = c.open_id(open_req(pb::Mode::Auto)).await;
        c.get_id(id).await.settings.unwrap().profile
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(profile, pb::Profile::Rfc9293 as i32);
}

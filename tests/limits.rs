//! The limits a public gRPC service keeps, each against a real server: streams per connection,
//! call deadlines (a clock advance stops cleanly), one clock advance at a time, idle and aged
//! connections, who may use reflection, and authentication failures in the log.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tcpsim::server::{ConnectionLimits, Reflection, ServeConfig};
use tcpsim::service::proto as pb;
use tcpsim::table::{Mode, OpenSpec, Sides, TableConfig};
use tcpsim::tcp::Call;
use tonic::Code;

mod common;
use common::TestServer;

fn config(connections: ConnectionLimits) -> ServeConfig {
    ServeConfig {
        virtual_clock: true,
        table: TableConfig {
            shards: 4,
            capacity: 1 << 16,
            ..TableConfig::default()
        },
        drain: Duration::ZERO,
        shutdown_grace: Duration::from_secs(5),
        connections,
        ..ServeConfig::default()
    }
}

/// A call past its deadline stops a clock advance where it got to: every timer due by then has
/// fired, none after, the counters agree with the table, and a later advance finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_advance_past_its_deadline_stops_with_the_clock_consistent() {
    let srv = TestServer::start(config(ConnectionLimits {
        call_timeout: Duration::from_millis(20),
        ..ConnectionLimits::default()
    }))
    .await;
    // 20 000 TIME-WAITs, one per millisecond, so the advance has 20 000 deadlines to visit.
    let t = srv.table.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..20_000 {
            let id = t.open(&OpenSpec::new(Mode::Auto)).unwrap().id;
            t.call(id, Sides::Both, Call::Close).unwrap();
            t.advance(1).unwrap();
        }
    })
    .await
    .unwrap();
    let start = srv.table.now();
    let mut c = srv.client().await;
    let err = c
        .raw
        .advance_clock(pb::AdvanceClockRequest {
            ms: 200_000,
            millis: 0,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    // The advance stops at its next deadline; wait until it has.
    let mut stopped_at = srv.table.now();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = srv.table.now();
        if now == stopped_at {
            break;
        }
        stopped_at = now;
    }
    assert!(
        stopped_at < start + 200_000,
        "it did not stop: {stopped_at}"
    );
    srv.table.verify().unwrap();
    // What is left expires on the next advance (one without a deadline this short).
    srv.table.advance(200_000).unwrap();
    srv.table.verify().unwrap();
    assert_eq!(srv.table.len(), 0);
    srv.shutdown().await.unwrap();
}

/// Clock advances take turns: four at once end at 4 s, each from where the one before ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_advances_take_turns() {
    let srv = TestServer::start(config(ConnectionLimits::default())).await;
    let mut calls = vec![];
    for _ in 0..4 {
        let mut c = srv.client().await;
        calls.push(tokio::spawn(async move { c.advance(1000).await.now_ms }));
    }
    let mut ends = vec![];
    for call in calls {
        ends.push(call.await.unwrap());
    }
    ends.sort();
    assert_eq!(ends, [1000, 2000, 3000, 4000]);
    srv.shutdown().await.unwrap();
}

/// With two streams allowed per connection, a third call on the same connection waits until
/// one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_stream_limit_wait_their_turn() {
    let srv = TestServer::start(config(ConnectionLimits {
        max_concurrent_streams: 2,
        ..ConnectionLimits::default()
    }))
    .await;
    let mut c = srv.client().await; // one connection, cloned
    let w1 = c.raw.watch(pb::WatchRequest::default()).await.unwrap();
    let w2 = c.raw.watch(pb::WatchRequest::default()).await.unwrap();
    let waited =
        tokio::time::timeout(Duration::from_millis(300), c.raw.stats(pb::StatsRequest {})).await;
    assert!(waited.is_err(), "a third stream was opened at once");
    drop(w1);
    let answered = tokio::time::timeout(Duration::from_secs(5), c.raw.stats(pb::StatsRequest {}))
        .await
        .expect("answered once a stream ended");
    assert!(answered.is_ok());
    drop(w2);
    srv.shutdown().await.unwrap();
}

/// Speaks just enough HTTP/2 to hold a connection open, then waits for the server to close it.
fn closed_within(addr: &str, wait: Duration) -> bool {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // an empty SETTINGS frame
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let until = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// A connection with no call in flight is closed after the idle limit; one holding a stream is
/// not, however quiet the stream; with the limit off, nothing is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let srv = TestServer::start(config(ConnectionLimits {
        max_idle: Some(Duration::from_millis(200)),
        ..ConnectionLimits::default()
    }))
    .await;
    let addr = srv.url.trim_start_matches("http://").to_string();
    let a = addr.clone();
    let closed = tokio::task::spawn_blocking(move || closed_within(&a, Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(closed, "an idle connection was kept");
    // A watcher's connection stays through a quiet second and still gets its event.
    let mut c = srv.client().await;
    let mut watch = c
        .raw
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(800)).await;
    srv.table.open(&OpenSpec::new(Mode::Auto)).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), watch.message())
        .await
        .expect("an event")
        .expect("the stream lives");
    assert!(ev.is_some());
    drop(watch);
    srv.shutdown().await.unwrap();

    let srv = TestServer::start(config(ConnectionLimits {
        max_idle: None,
        ..ConnectionLimits::default()
    }))
    .await;
    let addr = srv.url.trim_start_matches("http://").to_string();
    let closed = tokio::task::spawn_blocking(move || closed_within(&addr, Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(!closed, "closed with no idle limit");
    srv.shutdown().await.unwrap();
}

/// A connection past its age is told to go away; its streams get the grace, then it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_connections_are_closed_after_their_grace() {
    let srv = TestServer::start(config(ConnectionLimits {
        max_age: Some(Duration::from_millis(300)),
        max_age_grace: Duration::from_millis(300),
        ..ConnectionLimits::default()
    }))
    .await;
    let mut c = srv.client().await;
    let mut watch = c
        .raw
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the aged connection's stream never ended");
    // A new connection works.
    let mut c = srv.client().await;
    c.stats(pb::StatsRequest {}).await;
    srv.shutdown().await.unwrap();
}

/// Reflection can be left open, put behind the token, or turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_is_open_guarded_or_off() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    async fn list(url: &str, token: Option<&str>) -> Result<(), tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut r = tonic::Request::new(tokio_stream::once(req));
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(r)
            .await?
            .into_inner();
        stream.message().await?;
        Ok(())
    }
    for (mode, anyone, with_token) in [
        (Reflection::On, None, None),
        (Reflection::Token, Some(Code::Unauthenticated), None),
        (
            Reflection::Off,
            Some(Code::Unimplemented),
            Some(Code::Unimplemented),
        ),
    ] {
        let srv = TestServer::start(ServeConfig {
            reflection: mode,
            token: Some("s3cret".into()),
            ..config(ConnectionLimits::default())
        })
        .await;
        let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
        assert_eq!(code(list(&srv.url, None).await), anyone, "{mode:?}");
        assert_eq!(
            code(list(&srv.url, Some("s3cret")).await),
            with_token,
            "{mode:?}"
        );
        srv.shutdown().await.unwrap();
    }
}

/// Refused calls are logged with the caller's address, as JSON if asked, at most one line a
/// second however many come.
#[test]
fn authentication_failures_are_logged_with_the_peer_and_rate_limited() {
    let mut child = common::serve_command()
        .args([
            "--token",
            "s3cret",
            "--log-format",
            "json",
            "--drain-ms",
            "0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let first = lines_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).expect("a JSON log line");
    let message = v["fields"]["message"].as_str().unwrap().to_string();
    let addr = message
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = pb::simulator_client::SimulatorClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        for _ in 0..50 {
            let e = c.stats(pb::StatsRequest {}).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    let failures: Vec<serde_json::Value> = lines_rx
        .try_iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "authentication failed")
        .collect();
    assert!(
        (1..=2).contains(&failures.len()),
        "{} lines for 50 failures",
        failures.len()
    );
    let f = &failures[0]["fields"];
    assert_eq!(f["reason"], "missing");
    assert!(f["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{f}");
}

/// A message over the size limit is RESOURCE_EXHAUSTED, as gRPC defines it (tonic's own code is
/// OUT_OF_RANGE), in a unary call and on a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_resource_exhausted() {
    let srv = TestServer::start(ServeConfig {
        max_message_bytes: 1024,
        ..config(ConnectionLimits::default())
    })
    .await;
    let mut c = srv.client().await;
    let big = pb::OpenRequest {
        client_ip: "x".repeat(2000),
        ..Default::default()
    };
    let e = c.raw.open(big.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("too large"), "{e:?}");
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let mut run = c
        .raw
        .run(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let cmd = pb::Command {
        tag: 1,
        op: Some(pb::command::Op::Open(Box::new(big))),
    };
    tx.send(cmd).await.unwrap();
    let e = loop {
        match run.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    srv.shutdown().await.unwrap();
}

/// A second server started with only `--listen` changed finds the metrics port taken, and says
/// how to move it.
#[test]
fn a_taken_metrics_port_is_named_with_the_way_out() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}"))
            && err.contains("--metrics-listen")
            && err.contains("off"),
        "{err}"
    );
}

//! The state file through the server: a run written at shutdown comes back whole at the next
//! start (Stats and every Get as they were, timers firing as they would have), and a server
//! killed while it writes leaves the previous file loadable.
//!
//! `TCPSIM_STATE_TEST_CONNECTIONS` sets how many connections the round trip holds (20 000 by
//! default; the README's figure was taken at 1 000 000 with `cargo test --release`).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tcpsim::server::{ServeConfig, StateFile};
use tcpsim::service::proto as pb;
use tcpsim::table::TableConfig;

mod common;
use common::{Sim, TestServer, open_req};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tcpsim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(state: Option<PathBuf>) -> ServeConfig {
    ServeConfig {
        virtual_clock: true,
        table: TableConfig {
            capacity: 1 << 20,
            client_pools: vec!["10.0.0.0/12".parse().unwrap()],
            ..TableConfig::default()
        },
        drain: Duration::ZERO,
        state: state.map(|path| StateFile { path, every: None }),
        ..ServeConfig::default()
    }
}

/// The same scenario on a server: `n` connections in many states, some with data in flight.
async fn scenario(c: &mut Sim, n: u32) {
    let mut ids = vec![];
    let mut left = n;
    while left > 0 {
        let count = left.min(10_000);
        let o = c
            .open(pb::OpenRequest {
                count,
                ..open_req(pb::Mode::Auto)
            })
            .await;
        ids.extend(o.connections.iter().map(|c| c.id));
        left -= count;
    }
    for (i, &id) in ids.iter().enumerate() {
        if i % 3 == 0 {
            c.close_side(id, pb::Side::Client).await;
        }
        if i % 7 == 0 {
            c.send(pb::SendRequest {
                id,
                side: pb::Side::Server as i32,
                bytes: 3000,
                incarnation: None,
                ..Default::default()
            })
            .await;
        }
        if i % 3 == 1 && i % 2 == 0 {
            c.close_side(id, pb::Side::Both).await;
        }
    }
    for _ in 0..3 {
        c.open_id(open_req(pb::Mode::Manual)).await;
    }
    c.advance(1234).await;
}

/// Every connection as Get shows it, but the run in its incarnation (another server's run
/// differs by design).
async fn snapshot(c: &mut Sim) -> (Vec<pb::Connection>, pb::StatsResponse) {
    let mut all = vec![];
    let mut token = String::new();
    loop {
        let page = c
            .list(pb::ListRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await;
        all.extend(page.connections.into_iter().map(|mut conn| {
            conn.incarnation &= u64::from(u32::MAX);
            conn
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    (all, c.stats(pb::StatsRequest {}).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_comes_back_whole_and_runs_on_as_it_would_have() {
    let n: u32 = std::env::var("TCPSIM_STATE_TEST_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let d = dir("state-roundtrip");
    let path = d.join("sim.state");
    // Two servers run the same scenario; one is stopped (writing its state) and started again.
    let kept = TestServer::start(config(Some(path.clone()))).await;
    let twin = TestServer::start(config(None)).await;
    let (mut k, mut t) = (kept.client().await, twin.client().await);
    scenario(&mut k, n).await;
    scenario(&mut t, n).await;
    let before = snapshot(&mut k).await;
    let incarnation = k.get_id(before.0[0].id).await.incarnation;
    assert_eq!(before, snapshot(&mut t).await, "the twins differ already");
    kept.shutdown().await.unwrap();
    assert!(path.exists());

    let back = TestServer::start(config(Some(path.clone()))).await;
    let mut b = back.client().await;
    assert_eq!(snapshot(&mut b).await, before, "what came back");
    assert_eq!(
        b.get_id(before.0[0].id).await.incarnation,
        incarnation,
        "incarnations survive"
    );
    back.table.verify().unwrap();
    // Time goes on alike on the restored server and its twin.
    for ms in [500, 5_000, 60_000, 120_000] {
        let (x, y) = (b.advance(ms).await, t.advance(ms).await);
        assert_eq!((x.now_ms, x.timers_fired), (y.now_ms, y.timers_fired));
    }
    assert_eq!(snapshot(&mut b).await, snapshot(&mut t).await);
    back.table.verify().unwrap();
    back.shutdown().await.unwrap();
    twin.shutdown().await.unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

/// A `tcpsim serve` with a state file, and its log lines as they come.
struct Served {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    addr: String,
}

fn serve(state: &std::path::Path) -> Served {
    let mut child = common::serve_command()
        .args(["--clock", "virtual", "--client-pools", "10.0.0.0/12"])
        .args(["--state-every-ms", "25", "--state-file"])
        .arg(state)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", child.try_wait()));
        if let Some(addr) = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
        {
            return Served {
                child,
                lines,
                addr: addr.to_string(),
            };
        }
    }
}

/// Killed at any moment, even while writing, the server leaves a state file the next start
/// loads whole.
#[test]
fn a_server_killed_while_it_writes_leaves_a_loadable_file() {
    let d = dir("state-kill");
    let path = d.join("sim.state");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut s = serve(&path);
    let n = 50_000;
    rt.block_on(async {
        let raw = pb::simulator_client::SimulatorClient::connect(format!("http://{}", s.addr))
            .await
            .unwrap();
        let mut c = Sim { raw };
        for _ in 0..5 {
            c.open(pb::OpenRequest {
                count: n / 5,
                ..open_req(pb::Mode::Auto)
            })
            .await;
        }
    });
    // Wait for a write that holds them all, then kill at varied moments of the next writes.
    let wrote_all = |lines: &std::sync::mpsc::Receiver<String>| {
        let until = Instant::now() + Duration::from_secs(60);
        while let Ok(l) = lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            if l.contains("wrote the state file") && l.contains(&format!("connections={n}")) {
                return true;
            }
        }
        false
    };
    assert!(wrote_all(&s.lines), "no full write");
    for round in 0..10u64 {
        std::thread::sleep(Duration::from_millis(3 + round * 7));
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
        s = serve(&path); // it starts only if the file loaded whole
        let connections = rt.block_on(async {
            let raw = pb::simulator_client::SimulatorClient::connect(format!("http://{}", s.addr))
                .await
                .unwrap();
            Sim { raw }.stats(pb::StatsRequest {}).await.connections
        });
        assert_eq!(connections, u64::from(n), "round {round}");
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    // Kills that landed inside a write left its temporary file behind; the state file was
    // whole every time all the same.
    let interrupted = std::fs::read_dir(&d)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp.")
        })
        .count();
    assert!(
        interrupted > 0,
        "no kill landed inside a write: the test proved nothing"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

//! `tcpsim load`: every shipped scenario keeps the promises its comments make, on a fresh server
//! with a virtual clock; bad scenario files are refused with the line and the reason, before
//! anything is sent; work spreads over several servers.

use std::path::PathBuf;

use tcpsim::load::{self, Options};
use tcpsim::server::ServeConfig;
use tcpsim::table::TableConfig;

mod common;
use common::TestServer;

async fn server() -> TestServer {
    let table = TableConfig {
        capacity: 1 << 16,
        ..TableConfig::default()
    };
    TestServer::start(ServeConfig {
        virtual_clock: true,
        drain: std::time::Duration::ZERO,
        table,
        ..ServeConfig::default()
    })
    .await
}

/// Runs a scenario against `targets`, full size, without progress bars.
async fn run(sc: &load::Scenario, targets: &[&str]) -> load::Report {
    let opts = Options {
        targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
        client: Default::default(),
        scale: 1.0,
        progress: false,
    };
    load::run(sc, &opts).await.unwrap()
}

fn scenarios() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_keeps_its_promises() {
    let files = scenarios();
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let sc = load::parse(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            sc.phases
                .iter()
                .any(|p| matches!(p, load::Phase::Expect(_))),
            "{} promises nothing",
            f.display()
        );
        let srv = server().await;
        let url = srv.url.clone();
        let report = run(&sc, &[&url]).await;
        assert!(report.ok, "{}:\n{}", f.display(), load::render(&report));
        srv.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_spreads_over_targets_and_expectations_sum_them() {
    let (sa, sb) = (server().await, server().await);
    let (a, b) = (sa.url.clone(), sb.url.clone());
    let sc = load::parse(
        "name: two\nphases:\n  - open: {count: 101}\n  - expect: {side: server, state: ESTABLISHED, min: 101, max: 101}\n",
    )
    .unwrap();
    let report = run(&sc, &[&a, &b]).await;
    assert!(report.ok, "{}", load::render(&report));
    // Each server holds its share.
    for (srv, want) in [(&sa, 51), (&sb, 50)] {
        assert_eq!(srv.stats().await.connections, want);
    }
    sa.shutdown().await.unwrap();
    sb.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropped_fins_leave_the_closers_retransmitting_in_fin_wait_1() {
    let srv = server().await;
    let url = srv.url.clone();
    let sc = load::parse(
        "name: fins
phases:
  - open: {count: 6, mode: manual, handshake: true}
  - expect: {side: client, state: ESTABLISHED, min: 6, max: 6}
  - drop_fins: {fraction: 0.5, side: client}
  - hold: {ms: 1000}
  - expect: {side: client, state: FIN_WAIT_1, min: 3, max: 3}
  - expect: {side: server, state: ESTABLISHED, min: 6, max: 6}
",
    )
    .unwrap();
    let report = run(&sc, &[&url]).await;
    assert!(report.ok, "{}", load::render(&report));
    // The lost FINs were retransmitted (after 200 ms, 600 ms) onto the wire, undelivered.
    let s = srv.stats().await;
    let fired = s
        .timers_fired
        .iter()
        .find(|t| t.kind == tcpsim::service::proto::TimerKind::Retransmit as i32)
        .unwrap()
        .count;
    assert!(fired >= 3, "retransmissions: {fired}");
    assert!(
        load::parse("name: x\nphases:\n  - open: {count: 1, handshake: true}\n")
            .unwrap_err()
            .to_string()
            .contains("handshake")
    );
    srv.shutdown().await.unwrap();
}

/// A scenario's MANUAL opens can run a profile of their own, which the connections then carry.
#[tokio::test]
async fn a_scenario_opens_manual_pairs_on_their_own_profile() {
    let srv = server().await;
    let url = srv.url.clone();
    let sc = load::parse(
        "name: profiles
phases:
  - open: {count: 2, mode: manual, handshake: true, settings: {profile: rfc9293}}
  - open: {count: 3, mode: manual, handshake: true}
  - expect: {side: client, state: ESTABLISHED, min: 5, max: 5}
",
    )
    .unwrap();
    let report = run(&sc, &[&url]).await;
    assert!(report.ok, "{}", load::render(&report));
    let profiles: Vec<i32> = srv
        .table
        .list(None, 10, |_| true)
        .iter()
        .map(|c| {
            tcpsim::service::convert::connection_to_pb(c)
                .settings
                .unwrap()
                .profile
        })
        .collect();
    let rfc = tcpsim::service::proto::Profile::Rfc9293 as i32;
    assert_eq!(profiles.iter().filter(|&&p| p == rfc).count(), 2);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_expectation_fails_the_run() {
    let srv = server().await;
    let url = srv.url.clone();
    let sc = load::parse("name: wrong\nphases:\n  - open: {count: 3}\n  - expect: {side: client, state: TIME_WAIT, min: 3}\n").unwrap();
    let report = run(&sc, &[&url]).await;
    assert!(!report.ok);
    assert!(load::render(&report).contains("FAILED: client TIME_WAIT = 0, expected >= 3"));
    srv.shutdown().await.unwrap();
}

#[test]
fn bad_scenarios_are_refused_with_line_and_reason() {
    let cases = [
        (
            "name: x\nphases:\n  - open: {count: 1, colour: red}\n",
            "line 3",
        ),
        ("name: x\nphases:\n  - jump: {ms: 1}\n", "jump"),
        ("name: x\nphases: []\n", "at least one phase"),
        ("phases:\n  - hold: {ms: 1}\n", "name"),
        (
            "name: x\nphases:\n  - close: {side: client, fraction: 1.5}\n",
            "phase 1 (close): fraction 1.5",
        ),
        (
            "name: x\nphases:\n  - abort: {side: both}\n",
            "phase 1 (abort): side",
        ),
        (
            "name: x\nphases:\n  - expect: {state: NAPPING, min: 1}\n",
            "\"NAPPING\" is not a TCP state",
        ),
        (
            "name: x\nphases:\n  - expect: {refused: tired, min: 1}\n",
            "\"tired\" is not a refusal reason",
        ),
        (
            "name: x\nphases:\n  - expect: {state: LISTEN}\n",
            "min, max or both",
        ),
        (
            "name: x\nphases:\n  - churn: {rate: 0, ms: 10}\n",
            "rate and ms",
        ),
        (
            "name: x\nphases:\n  - open: {count: 1, client_ip: 10.0.0}\n",
            "client_ip",
        ),
        (
            "name: x\nphases:\n  - open: {count: 0}\n",
            "count must be at least 1",
        ),
        (
            "name: x\nphases:\n  - open: {count: 1, settings: {profile: rfc9293}}\n",
            "phase 1 (open): settings: AUTO pairs run on the server's settings",
        ),
        (
            "name: x\nphases:\n  - open: {count: 1, mode: manual, settings: {mss: 0}}\n",
            "phase 1 (open): settings.mss: 0 is out of range: allowed 88..=65495",
        ),
        (
            "name: x\nphases:\n  - open: {count: 1, mode: manual, settings: {profile: bsd}}\n",
            "line 3",
        ),
        (
            "name: x\nphases:\n  - open: {count: 1, mode: manual, settings: {colour: red}}\n",
            "colour",
        ),
    ];
    for (text, names) in cases {
        let err = load::parse(text).expect_err(text).to_string();
        assert!(err.contains(names), "{text:?}: {err}");
    }
}

#[test]
fn cli_refuses_a_bad_file_before_connecting() {
    let dir = std::env::temp_dir().join(format!("tcpsim-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "name: x\nphases:\n  - open: {count: 1}\n  - hold: {ms: -5}\n",
    )
    .unwrap();
    // Nothing listens on port 9: the file must be refused before any connection is tried.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"))
        .args([
            "load",
            f.to_str().unwrap(),
            "--target",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: line 4") && !err.contains("cannot reach"),
        "{err}"
    );
}

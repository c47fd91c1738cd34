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
        ..Options::default()
    };
    load::run(sc, &opts).await.unwrap()
}

/// A virtual-clock server with the settings a scenario assumes, the rest at their defaults.
async fn assumed_server(a: &load::scenario::Assumes) -> TestServer {
    let mut cfg = virtual_server();
    cfg.table.capacity = 1 << 16;
    if let Some(ports) = a.port_range() {
        cfg.table.ports = ports;
    }
    if let Some(pools) = &a.client_pools {
        cfg.table.client_pools = pools.iter().map(|p| p.parse().unwrap()).collect();
    }
    if let Some(servers) = &a.servers {
        cfg.table.servers = servers.clone();
    }
    if let Some(ms) = a.time_wait_ms {
        cfg.tcp.msl_ms = (ms / 2) as u32;
    }
    if let Some(n) = a.tcp_max_tw_buckets {
        cfg.table.max_tw_buckets = n;
    }
    TestServer::start(cfg).await
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
        // A server started as the scenario assumes (its comment says how to start one).
        let srv = assumed_server(&sc.assumes).await;
        let url = srv.url.clone();
        let report = run(&sc, &[&url]).await;
        assert!(report.ok, "{}:\n{}", f.display(), load::render(&report));
        srv.shutdown().await.unwrap();
    }
}

/// A scenario's listener settings last for its run: the runner puts back what the servers had.
/// Counter expectations count what the run added, whatever the server counted before it.
#[tokio::test]
async fn listener_phases_last_for_their_run_and_counters_count_the_run() {
    let srv = server().await;
    let url = srv.url.clone();
    let sc = load::parse(
        "name: l
phases:
  - listener: {backlog: 1, tcp_syncookies: 0, accepting: false}
  - syn_flood: {count: 5}
  - expect: {side: server, state: SYN_RECEIVED, min: 2, max: 2}
  - expect: {counter: listen_drops, min: 3, max: 3}
",
    )
    .unwrap();
    for _ in 0..2 {
        let report = run(&sc, &[&url]).await;
        assert!(report.ok, "{}", load::render(&report));
        let s = srv.stats().await;
        let l = &s.listeners[0];
        assert_eq!(
            (l.backlog, l.tcp_syncookies, l.accepting),
            (4096, 1, true),
            "put back"
        );
        // The second run's SYN queue starts empty again: the first run's requests expire.
        srv.client().await.advance(70_000).await;
    }
    assert_eq!(srv.stats().await.listen["listen_drops"], 6);
    // Links too: the run's default link and its pool override go with it.
    let sc = load::parse(
        "name: l
phases:
  - link: {link: \"delay=25ms\"}
  - link: {link: \"delay=5ms\", client_pool: 10.0.0.0/16}
  - open: {count: 3}
  - expect: {counter: segments_sent, side: client, min: 3, max: 3}
",
    )
    .unwrap();
    let report = run(&sc, &[&url]).await;
    assert!(report.ok, "{}", load::render(&report));
    let links = srv.stats().await.links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        (links[0].target.as_str(), links[0].link.as_str()),
        ("default", "none")
    );
    srv.shutdown().await.unwrap();
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

/// Runs `text` against a fresh virtual-clock server; returns the report and the server.
async fn run_text(text: &str, cfg: ServeConfig) -> (load::Report, TestServer) {
    let srv = TestServer::start(cfg).await;
    let sc = load::parse(text).unwrap();
    let report = run(&sc, &[&srv.url]).await;
    (report, srv)
}

fn virtual_server() -> ServeConfig {
    ServeConfig {
        virtual_clock: true,
        drain: std::time::Duration::ZERO,
        ..ServeConfig::default()
    }
}

/// `churn: {rate: 5, ms: 2000}` opens 10, not 20 (the old `(rate / 10).max(1)` per tick); 15/s
/// opens 30, not 20; and so on up to 20 000/s: every connection opened is closed, the clock
/// moves by exactly the phase's time, and the report's achieved rate is the one asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_meets_its_rate_exactly_on_a_virtual_clock() {
    for (rate, ms) in [
        (1, 7000),
        (5, 2000),
        (15, 2000),
        (999, 3000),
        (20_000, 1000),
    ] {
        let (report, srv) = run_text(
            &format!("name: pace\nphases:\n  - churn: {{rate: {rate}, ms: {ms}}}\n"),
            virtual_server(),
        )
        .await;
        assert!(report.ok, "{}", load::render(&report));
        let want = rate * ms / 1000;
        let stats = srv.stats().await;
        let opened = srv.table.stats().counters.opened;
        assert_eq!(opened, want, "rate {rate}/s for {ms} ms");
        assert_eq!(
            stats.now_ms, ms,
            "rate {rate}/s: the clock moved by the phase's time"
        );
        let time_wait: i64 = stats
            .occupancy
            .iter()
            .filter(|o| o.state == tcpsim::service::proto::State::TimeWait as i32)
            .map(|o| o.count)
            .sum();
        assert_eq!(
            time_wait as u64, want,
            "rate {rate}/s: each closed, client first"
        );
        let r = report.phases[0].rate.as_ref().unwrap();
        assert_eq!(
            (r.asked, r.clock_seconds),
            (rate as f64, ms as f64 / 1000.0)
        );
        assert!((r.achieved - rate as f64).abs() < 1e-9, "{r:?}");
        srv.shutdown().await.unwrap();
    }
}

/// A paced open on a virtual clock takes its time on that clock: 10 at 4/s is 2.3 s (the last
/// due at 2.25 s, its tick ending at 2.3 s), and the opens are spread, not sent at once.
#[tokio::test]
async fn a_paced_open_moves_the_virtual_clock_as_it_goes() {
    let srv = TestServer::start(virtual_server()).await;
    let filter = tcpsim::table::WatchFilter {
        ids: vec![],
        side: Some(tcpsim::tcp::Side::Client),
        to: Some(tcpsim::tcp::State::SynSent),
    };
    let mut opens = srv.table.watch(filter, 100, 64).unwrap();
    let sc = load::parse("name: paced\nphases:\n  - open: {count: 10, rate: 4}\n").unwrap();
    let report = run(&sc, &[&srv.url]).await;
    assert!(report.ok, "{}", load::render(&report));
    assert_eq!(srv.stats().await.now_ms, 2300);
    assert_eq!(report.phases[0].rate.as_ref().unwrap().clock_seconds, 2.3);
    // Opened at 0, 250, 500, … ms, to the 100 ms tick.
    let mut at = Vec::new();
    while let Some(tcpsim::table::Watched::Event(e)) = opens.try_recv() {
        at.push(e.at);
    }
    assert_eq!(at, [0, 200, 500, 700, 1000, 1200, 1500, 1700, 2000, 2200]);
    srv.shutdown().await.unwrap();
}

/// On a real clock the schedule is fixed: 40 opens at 40/s take a second (not more, as when
/// each tick slept for what was left of it after its own work), give or take the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_on_a_real_clock_keeps_a_fixed_schedule() {
    let started = std::time::Instant::now();
    let (report, srv) = run_text(
        "name: real\nphases:\n  - churn: {rate: 40, ms: 1000}\n",
        ServeConfig {
            drain: std::time::Duration::ZERO,
            ..ServeConfig::default()
        },
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    assert!(report.ok, "{}", load::render(&report));
    assert_eq!(srv.table.stats().counters.opened, 40);
    let r = report.phases[0].rate.as_ref().unwrap();
    // The phase waits for its last tick's end, so never less than a second; the tolerance
    // is for a loaded machine.
    assert!(
        r.clock_seconds >= 1.0 && took >= 1.0,
        "{r:?}, took {took} s"
    );
    assert!(r.clock_seconds < 1.5, "{r:?}");
    assert!((r.achieved - 40.0).abs() / 40.0 < 0.34, "{r:?}");
    srv.shutdown().await.unwrap();
}

/// A phase in which every open fails with INVALID_ARGUMENT fails the run and says which code;
/// an `errors:` budget lets a phase expect some; refusals by a limit are counted apart and
/// fail nothing.
#[tokio::test]
async fn errors_beyond_the_budget_fail_the_run_and_refusals_are_apart() {
    // 192.168.0.1 is in no client pool: every open is INVALID_ARGUMENT.
    let bad = "name: bad\nphases:\n  - open: {count: 5, client_ip: 192.168.0.1}\n";
    let (report, srv) = run_text(bad, virtual_server()).await;
    assert!(!report.ok);
    assert_eq!(report.phases[0].errors.get("INVALID_ARGUMENT"), Some(&5));
    let text = load::render(&report);
    assert!(
        text.contains("errors: INVALID_ARGUMENT 5 — FAILED"),
        "{text}"
    );
    assert!(text.contains("RUN FAILED"), "{text}");
    srv.shutdown().await.unwrap();

    let budget = "name: bad\nphases:\n  - open: {count: 5, client_ip: 192.168.0.1, errors: 5}\n";
    let (report, srv) = run_text(budget, virtual_server()).await;
    assert!(report.ok, "{}", load::render(&report));
    srv.shutdown().await.unwrap();

    // Ten ports: the eleventh open is refused for ports_exhausted, which the scenario expects.
    let mut cfg = virtual_server();
    cfg.table.ports = (40000, 40009);
    let full = "name: full
phases:
  - open: {count: 14, client_ip: 10.0.0.1}
  - expect: {refused: ports_exhausted, min: 4, max: 4}
";
    let (report, srv) = run_text(full, cfg).await;
    assert!(report.ok, "{}", load::render(&report));
    assert_eq!(report.phases[0].refused.get("ports_exhausted"), Some(&4));
    assert!(report.phases[0].errors.is_empty());
    assert!(load::render(&report).contains("refused: ports_exhausted 4"));
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
            "name: x\nphases:\n  - expect: {state: LISTEN, counter: listen_drops, max: 0}\n",
            "name one of a state, a refusal reason or a counter",
        ),
        (
            "name: x\nphases:\n  - expect: {counter: segments_sent, max: 0}\n",
            "segments_sent: name the side",
        ),
        (
            "name: x\nphases:\n  - expect: {counter: naps, max: 0}\n",
            "\"naps\" is not one of listen_drops",
        ),
        (
            "name: x\nphases:\n  - churn: {rate: 1, ms: 10, close: both, hold_ms: 5}\n",
            "phase 1 (churn): hold_ms: one side closes first",
        ),
        (
            "name: x\nphases:\n  - link: {link: \"delay=soon\"}\n",
            "phase 1 (link): link: delay=soon: not a whole number of ms",
        ),
        (
            "name: x\nphases:\n  - listener: {tcp_syncookies: 3}\n",
            "phase 1 (listener): tcp_syncookies 3: 0, 1 or 2",
        ),
        (
            "name: x\nphases:\n  - listener: {backlog: 8, colour: red}\n",
            "line 3",
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

/// `serve … & load …` typed as one line: the load starts before the server listens, waits for
/// it (saying so), and runs; with `--wait-ms 0` it fails at once, naming the cause.
#[test]
fn cli_load_waits_for_a_server_still_starting() {
    let dir = std::env::temp_dir().join(format!("tcpsim-load-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("one.yaml");
    std::fs::write(
        &f,
        "name: one\nphases:\n  - open: {count: 3}\n  - expect: {side: client, state: ESTABLISHED, min: 3, max: 3}\n",
    )
    .unwrap();
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let bin = env!("CARGO_BIN_EXE_tcpsim");
    let now = std::process::Command::new(bin)
        .args([
            "load",
            f.to_str().unwrap(),
            "--target",
            &target,
            "--wait-ms",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!now.status.success());
    let err = String::from_utf8_lossy(&now.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("refused"),
        "{err}"
    );

    let load = std::process::Command::new(bin)
        .args(["load", f.to_str().unwrap(), "--target", &target])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut server = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            &target,
            "--clock",
            "virtual",
            "--metrics-listen",
            "off",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = load.wait_with_output().unwrap();
    server.kill().ok();
    server.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("waiting up to 5 s for"), "{err}");
}

/// Modes, sides, closes and states are read in any case, as the proto and the RFC spell them.
#[test]
fn names_are_read_in_any_case() {
    let sc = load::parse(
        "name: cases
phases:
  - open: {count: 2, mode: MANUAL, handshake: true}
  - open: {count: 1, mode: Auto}
  - close: {side: CLIENT, how: Shutdown}
  - expect: {side: Server, state: close-wait, min: 3}
",
    )
    .unwrap();
    assert_eq!(sc.phases.len(), 4);
    let err = load::parse("name: x\nphases:\n  - close: {side: sideways}\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"sideways\" is not one of client, server, both"),
        "{err}"
    );
}

/// `--scale` is honest: a scenario states the server settings it assumes, and `load` refuses a
/// server that differs (before sending anything), saying how to start the right one; the port
/// range scales with the run, and then the scenario keeps its promises small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_scenario_runs_only_on_a_server_scaled_with_it() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/time-wait-exhaustion.yaml");
    let sc = load::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let small = |srv: &TestServer| Options {
        targets: vec![srv.url.parse().unwrap()],
        scale: 0.05,
        ..Options::default()
    };
    // The default range, 28 232 ports: at 0.05 the scenario needs 1 412.
    let srv = TestServer::start(virtual_server()).await;
    let err = load::run(&sc, &small(&srv)).await.unwrap_err().to_string();
    assert!(
        err.contains("assumes ephemeral ports 32768-60999 (28232) at --scale 0.05: 1412 ports")
            && err.contains("start it with --ports 32768-34179"),
        "{err}"
    );
    assert_eq!(srv.table.stats().counters.opened, 0, "nothing was sent");
    srv.shutdown().await.unwrap();
    // Started as it says, it runs, runs out of ports and keeps every promise.
    let mut cfg = virtual_server();
    cfg.table.ports = (32768, 34179);
    let srv = TestServer::start(cfg).await;
    let report = load::run(&sc, &small(&srv)).await.unwrap();
    assert!(report.ok, "{}", load::render(&report));
    assert!(
        report.phases[0]
            .refused
            .get("ports_exhausted")
            .is_some_and(|&n| n > 0)
    );
    srv.shutdown().await.unwrap();
    // A server whose TIME-WAIT lasts otherwise is refused at any scale.
    let mut cfg = virtual_server();
    cfg.tcp.msl_ms = 10_000;
    let srv = TestServer::start(cfg).await;
    let full = Options {
        targets: vec![srv.url.parse().unwrap()],
        ..Options::default()
    };
    let err = load::run(&sc, &full).await.unwrap_err().to_string();
    assert!(err.contains("assumes TIME-WAIT lasts 60000 ms"), "{err}");
    srv.shutdown().await.unwrap();
}

#[test]
fn bad_assumptions_are_refused_before_connecting() {
    for (text, why) in [
        ("assumes: {ports: 60999-32768}", "an empty range"),
        ("assumes: {ports: 1000}", "LOW-HIGH"),
        (
            "assumes: {client_pools: [10.0.0.1/16]}",
            "host bits are set",
        ),
        ("assumes: {speed: 3}", "unknown field `speed`"),
    ] {
        let err = load::parse(&format!("name: x\n{text}\nphases:\n  - hold: {{ms: 1}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
}

/// `--json` gives occupancy as {side: {state: count}} and codes as the proto names them.
#[tokio::test]
async fn the_json_report_nests_occupancy_and_names_codes_as_the_proto() {
    let (report, srv) = run_text(
        "name: j\nphases:\n  - open: {count: 3}\n  - open: {count: 2, client_ip: 192.168.0.1, errors: 2}\n",
        virtual_server(),
    )
    .await;
    assert!(report.ok, "{}", load::render(&report));
    let json = serde_json::to_value(&report).unwrap();
    let first = &json["phases"][0];
    assert_eq!(first["occupancy"]["client"]["ESTABLISHED"], 3);
    assert_eq!(first["occupancy"]["server"]["ESTABLISHED"], 3);
    assert_eq!(json["phases"][1]["errors"]["INVALID_ARGUMENT"], 2);
    assert_eq!(json["phases"][1]["errors_allowed"], 2);
    srv.shutdown().await.unwrap();
}

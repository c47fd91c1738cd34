//! The deploy files, checked with the real tools: promtool on the configuration and the alert
//! rules (with their unit tests), docker-compose on the compose file, and a real Prometheus
//! scraping a real tcpsim: the occupancy it scraped equals the server's Stats, every PromQL
//! expression of the dashboard returns data, and every rule evaluates without error.
//!
//! Without `prometheus`, `promtool` or `docker-compose` on the PATH these tests skip with a loud
//! message that a plain `cargo test` shows (written past libtest's capture); with TCPSIM_REQUIRE_EXTERNAL_TOOLS=1 (CI sets it) a missing tool fails them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tcpsim::server::ServeConfig;

mod common;
use common::TestServer;
use tcpsim::service::proto as pb;
use tcpsim::table::TableConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tool's path, or None after a loud message; panics if tools are required.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        let msg = format!("`{name}` is not installed: this test cannot check the deploy files");
        if std::env::var("TCPSIM_REQUIRE_EXTERNAL_TOOLS").is_ok_and(|v| v == "1") {
            panic!(
                "{msg}, and TCPSIM_REQUIRE_EXTERNAL_TOOLS=1 requires it (apt-get install -y prometheus docker-compose)"
            );
        }
        // Straight to stderr, not through `eprintln!`, which libtest captures: a plain
        // `cargo test` shows the skip.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: {msg}. Install it (apt-get install -y prometheus docker-compose) to run it. !!!!!!!!\n"
        );
    }
    found
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_and_the_rules_and_their_tests_pass() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = root().join("deploy/prometheus");
    run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "config", "prometheus.yml"]),
    );
    run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "rules", "rules.yml"]),
    );
    run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["test", "rules", "rules.test.yml"]),
    );
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let Some(compose) = tool("docker-compose") else {
        return;
    };
    run_ok(
        Command::new(compose)
            .current_dir(root().join("deploy"))
            .args(["-f", "docker-compose.yml", "config", "-q"]),
    );
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET over HTTP/1.0; returns the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(prom: SocketAddr, q: &str) -> Option<Value> {
    let body = http_get(prom, &format!("/api/v1/query?query={}", encode(q)))?;
    serde_json::from_str(&body).ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every `expr` in the dashboard.
fn dashboard_exprs() -> Vec<String> {
    let text =
        std::fs::read_to_string(root().join("deploy/grafana/dashboards/tcpsim.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["uid"], "tcpsim", "the dashboard keeps its fixed uid");
    let mut exprs = vec![];
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

#[test]
fn prometheus_scrapes_tcpsim_and_every_dashboard_and_rule_expression_works() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A server, and a scenario: ESTABLISHED pairs, TIME-WAITs, half-open servers, an error.
    let cfg = ServeConfig {
        virtual_clock: true,
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        table: TableConfig {
            shards: 4,
            capacity: 1024,
            ..TableConfig::default()
        },
        ..ServeConfig::default()
    };
    let srv = rt.block_on(TestServer::start(cfg));
    let metrics_addr = srv.metrics_addr.unwrap();
    rt.block_on(async {
        let mut c = srv.client().await;
        let o = c
            .open(pb::OpenRequest {
                mode: pb::Mode::Auto as i32,
                count: 30,
                ..Default::default()
            })
            .await;
        for conn in &o.connections[..10] {
            c.close(pb::CloseRequest {
                incarnation: None,
                id: conn.id,
                side: pb::Side::Client as i32,
                how: 0,
                ..Default::default()
            })
            .await;
            c.close(pb::CloseRequest {
                incarnation: None,
                id: conn.id,
                side: pb::Side::Server as i32,
                how: 0,
                ..Default::default()
            })
            .await;
        }
        for _ in 0..5 {
            let id = c
                .open(pb::OpenRequest {
                    mode: pb::Mode::Manual as i32,
                    ..Default::default()
                })
                .await
                .connections[0]
                .id;
            c.wire(pb::WireRequest {
                incarnation: None,
                id,
                direction: 1,
                action: 1,
                count: 1,
                ..Default::default()
            })
            .await;
        }
        assert!(
            c.raw
                .get(pb::GetRequest {
                    incarnation: None,
                    id: 1,
                    tuple: None
                })
                .await
                .is_err(),
            "a NOT_FOUND for the error panels"
        );
        c.advance(500).await;
    });
    let stats = srv.table.stats();

    // Prometheus, configured from deploy/prometheus/prometheus.yml with this test's ports.
    let dir = std::env::temp_dir().join(format!("tcpsim-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let deployed =
        std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(deployed.contains("tcpsim:9464") && deployed.contains("scrape_interval: 5s"));
    let config = deployed
        .replace("tcpsim:9464", &metrics_addr.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s");
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        root().join("deploy/prometheus/rules.yml"),
        dir.join("rules.yml"),
    )
    .unwrap();
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _prometheus = Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Poll, with a deadline, until Prometheus has scraped what Stats says.
    let deadline = Instant::now() + Duration::from_secs(60);
    let occupancy = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped tcpsim's occupancy"
        );
        if let Some(v) = query(prom, "tcpsim_connections")
            && let Some(r) = v["data"]["result"].as_array()
            && r.len() == 22
        {
            break r.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for series in &occupancy {
        let side = match series["metric"]["side"].as_str().unwrap() {
            "client" => tcpsim::tcp::Side::Client,
            _ => tcpsim::tcp::Side::Server,
        };
        let state = tcpsim::tcp::State::parse(series["metric"]["state"].as_str().unwrap()).unwrap();
        let scraped: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(
            scraped as i64,
            stats.counters.occupancy(side, state),
            "{side:?} {state}"
        );
    }
    assert_eq!(
        stats
            .counters
            .occupancy(tcpsim::tcp::Side::Server, tcpsim::tcp::State::SynReceived),
        5
    );

    // Every dashboard expression is accepted and returns data (rates need two scrapes: poll).
    let mut pending: Vec<String> = dashboard_exprs();
    assert!(pending.len() >= 18);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "dashboard expressions that never returned data: {pending:#?}"
        );
        pending.retain(|q| {
            let v = query(prom, q).unwrap_or_default();
            if v["status"] == "error" {
                panic!(
                    "Prometheus rejects the dashboard expression {q}: {}",
                    v["error"]
                );
            }
            v["data"]["result"].as_array().is_none_or(|r| r.is_empty())
        });
        std::thread::sleep(Duration::from_millis(300));
    }

    // Every alert rule has been evaluated, without error.
    let deployed_rules = std::fs::read_to_string(root().join("deploy/prometheus/rules.yml"))
        .unwrap()
        .matches("- alert:")
        .count();
    assert!(deployed_rules >= 7, "{deployed_rules} rules");
    let rules = loop {
        assert!(
            Instant::now() < deadline,
            "the rules were never all evaluated"
        );
        let rules: Value = http_get(prom, "/api/v1/rules")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if all.len() == deployed_rules && all.iter().all(|r| r["health"] == "ok") {
            break all;
        }
        if let Some(bad) = all.iter().find(|r| r["health"] == "err") {
            panic!("rule {} fails: {}", bad["name"], bad["lastError"]);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // Each alert is `signal > threshold`: the whole expression is accepted, and its signal
    // returns data now (the threshold itself is proven by promtool's unit tests).
    for r in &rules {
        let expr = r["query"].as_str().unwrap();
        let v = query(prom, expr).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {}", v["error"]);
        let (signal, _) = expr
            .rsplit_once(" > ")
            .unwrap_or_else(|| panic!("alert {} is not `signal > threshold`: {expr}", r["name"]));
        let v = query(prom, signal).unwrap();
        let data = v["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        assert!(
            data,
            "the signal of alert {} returns no data: {signal}",
            r["name"]
        );
    }

    rt.block_on(srv.shutdown()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scrape_names_every_metric_with_help_and_bounded_labels() {
    let table = std::sync::Arc::new(
        tcpsim::table::Table::new(
            TableConfig {
                shards: 2,
                ..TableConfig::default()
            },
            Default::default(),
            tcpsim::table::Clock::virtual_at(0),
        )
        .unwrap(),
    );
    let m = tcpsim::metrics::Metrics::new(table.clone());
    table
        .open(&tcpsim::table::OpenSpec::new(tcpsim::table::Mode::Auto))
        .unwrap();
    let text = m.render();
    for name in [
        "tcpsim_connections",
        "tcpsim_table_connections_limit",
        "tcpsim_state_transitions_total",
        "tcpsim_segments_total",
        "tcpsim_timers_pending",
        "tcpsim_timer_expirations_total",
        "tcpsim_timer_lag_seconds",
        "tcpsim_ephemeral_ports",
        "tcpsim_open_failures_total",
        "tcpsim_build_info",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
    assert!(text.contains("# TYPE tcpsim_timer_lag_seconds histogram"));
    assert!(text.contains("tcpsim_timer_lag_seconds_bucket{le=\"+Inf\"} 0"));
    assert!(text.contains(r#"tcpsim_connections{side="client",state="ESTABLISHED"} 1"#));
    assert_eq!(
        text.matches("tcpsim_connections{").count(),
        22,
        "every (side, state) from the start"
    );
    // No label carries an address, a port or an id.
    assert!(!text.contains("10.0.") && !text.contains("id=\""));
}

/// Callers cannot break the exposition: after calls to a thousand made-up methods, and bad
/// requests of every kind, a scrape passes `promtool check metrics` (its parser and its lint)
/// and holds no more gRPC series than one "unknown" method adds.
#[test]
fn a_scrape_after_hostile_calls_passes_promtool_check_metrics() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = ServeConfig {
        virtual_clock: true,
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        drain: Duration::ZERO,
        ..ServeConfig::default()
    };
    let srv = rt.block_on(TestServer::start(cfg));
    let metrics_addr = srv.metrics_addr.unwrap();
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let calm = rt.block_on(async {
        let mut c = srv.client().await;
        c.open(pb::OpenRequest {
            mode: pb::Mode::Auto as i32,
            ..Default::default()
        })
        .await;
        c.raw
            .get(pb::GetRequest {
                incarnation: None,
                id: 9,
                tuple: None,
            })
            .await
            .ok();
        let mut c = srv.client().await;
        c.raw
            .get(pb::GetRequest {
                incarnation: None,
                id: 9,
                tuple: None,
            })
            .await
            .unwrap_err();
        // An unknown path, to have its series before the count.
        made_up(&srv.url, "/tcpsim.v1.Simulator/Nothing").await;
        http_get(metrics_addr, "/metrics").unwrap()
    });
    rt.block_on(async {
        for i in 0..1000 {
            let path = match i % 4 {
                0 => format!("/tcpsim.v1.Simulator/Made{i}"),
                1 => format!("/grpc.health.v1.Health/Check{i}"),
                2 => format!("/evil.Service{i}/Method%22%5C{i}"),
                _ => format!("/tcpsim.v1.Simulator/Open/{i}"),
            };
            made_up(&srv.url, &path).await;
        }
    });
    let text = http_get(metrics_addr, "/metrics").unwrap();
    assert_eq!(series(&text), series(&calm), "hostile calls added series");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(srv.shutdown()).unwrap();
}

/// A unary gRPC call to `path`, whatever it names; its answer does not matter.
async fn made_up(url: &str, path: &str) {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::StatsRequest, pb::StatsResponse>::default();
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let _ = grpc
        .unary(tonic::Request::new(pb::StatsRequest {}), path, codec)
        .await;
}

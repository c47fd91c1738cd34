//! Prometheus metrics, on a listener of their own (`GET /metrics`).
//!
//! Owns: what is exported and how it is named. At each scrape the gauges and counters are set
//! from the table's counters, O(states), never O(connections), through the `metrics` facade into
//! this server's own metrics-exporter-prometheus recorder (no process-wide recorder, so several
//! servers can live in one process). Histograms are not recorded per sample: that exporter keeps
//! every raw sample until the next render, so the gRPC latency and timer lag histograms are
//! aggregated here in atomic buckets and rendered as Prometheus histograms beside its output.
//!
//! Label values are bounded: sides, states, outcomes, kinds, reasons, and the gRPC methods this
//! server has; never an id, an address or a port.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::BodyExt;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::table::counters::{CONNECT_BUCKETS_MS, LAG_BUCKETS_MS};
use crate::table::listeners::ListenEvent;
use crate::table::{OpenFailure, SegmentOutcome, Table};
use crate::tcp::{Side, State, TimerKind};

/// Upper bounds (seconds) of the gRPC handling-time histogram.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// gRPC status code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The services this server has, as compiled: their methods are labelled by name, and every
/// other path counts as one "unknown" method, so that no caller can add label values.
fn descriptor_sets() -> [&'static [u8]; 4] {
    [
        crate::service::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

/// One gRPC method's counts.
#[derive(Debug)]
struct Method {
    service: String,
    method: String,
    kind: &'static str,
    started: AtomicU64,
    handled: [AtomicU64; 17],
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Method {
    fn new(service: &str, method: &str, kind: &'static str) -> Method {
        Method {
            service: service.into(),
            method: method.into(),
            kind,
            started: AtomicU64::new(0),
            handled: Default::default(),
            buckets: Default::default(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// gRPC server metrics in the go-grpc-prometheus shape, fed by [`GrpcMetricsLayer`]: a fixed
/// set of methods, read from the services' descriptors, and "unknown" for any other path.
#[derive(Debug)]
pub struct GrpcStats {
    /// By path, `/package.Service/Method`.
    methods: HashMap<String, Arc<Method>>,
    unknown: Arc<Method>,
}

impl Default for GrpcStats {
    fn default() -> GrpcStats {
        use prost::Message;
        let mut methods = HashMap::new();
        for bytes in descriptor_sets() {
            let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
                continue;
            };
            for file in &set.file {
                for svc in &file.service {
                    let service = format!("{}.{}", file.package(), svc.name());
                    for m in &svc.method {
                        let kind = match (m.client_streaming(), m.server_streaming()) {
                            (false, false) => "unary",
                            (false, true) => "server_stream",
                            (true, false) => "client_stream",
                            (true, true) => "bidi_stream",
                        };
                        let path = format!("/{service}/{}", m.name());
                        methods.insert(path, Arc::new(Method::new(&service, m.name(), kind)));
                    }
                }
            }
        }
        GrpcStats {
            methods,
            unknown: Arc::new(Method::new("unknown", "unknown", "unknown")),
        }
    }
}

impl GrpcStats {
    /// The methods called so far (every method is counted from the start; those never called
    /// are left out of the exposition).
    fn snapshot(&self) -> impl Iterator<Item = &Method> {
        self.methods
            .values()
            .chain([&self.unknown])
            .map(|m| &**m)
            .filter(|m| m.started.load(Relaxed) > 0)
    }

    fn method(&self, path: &str) -> Arc<Method> {
        self.methods.get(path).unwrap_or(&self.unknown).clone()
    }
}

impl Method {
    fn handled(&self, code: usize, started: Instant) {
        self.handled[code.min(16)].fetch_add(1, Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let b = LATENCY_BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[b].fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    }
}

/// A tower layer that counts every gRPC call: started, handled by code, and how long it took
/// (to its trailers, so a stream counts its whole life).
#[derive(Clone)]
pub struct GrpcMetricsLayer(pub Arc<GrpcStats>);

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            stats: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    stats: Arc<GrpcStats>,
}

fn status_of(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

impl<S, B> tower::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = self.stats.method(req.uri().path());
        method.started.fetch_add(1, Relaxed);
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A trailers-only response (an error before any message) has its status in headers.
            if let Some(code) = status_of(resp.headers()) {
                method.handled(code, started);
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            let body = body.map_frame(move |frame| {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    method.handled(code, started);
                }
                frame
            });
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(body),
            ))
        })
    }
}

/// What `GET /metrics` serves.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    table: Arc<Table>,
    pub grpc: Arc<GrpcStats>,
}

fn state_label(s: State) -> &'static str {
    s.ident()
}

impl Metrics {
    pub fn new(table: Arc<Table>) -> Metrics {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_gauge!(
                "tcpsim_connections",
                "Endpoints in each TCP state, by side (client: active opener; server: passive)"
            );
            describe_gauge!(
                "tcpsim_table_connections_limit",
                "Most connections the table holds; opens beyond are refused"
            );
            describe_gauge!("tcpsim_table_connections", "Connections in the table");
            describe_counter!(
                "tcpsim_state_transitions_total",
                "State transitions, by side, from and to"
            );
            describe_counter!(
                "tcpsim_segments_total",
                "Segments by what happened to them: sent, delivered, injected, dropped, duplicated, reordered, overflowed"
            );
            describe_gauge!("tcpsim_timers_pending", "Endpoint timers armed, by kind");
            describe_counter!(
                "tcpsim_timer_expirations_total",
                "Endpoint timers that fired, by kind"
            );
            describe_gauge!(
                "tcpsim_ephemeral_ports",
                "Ephemeral ports over all client IPs and servers, used and free"
            );
            describe_counter!("tcpsim_open_failures_total", "Opens refused, by reason");
            describe_counter!("tcpsim_opens_total", "Connections opened");
            describe_counter!(
                "tcpsim_time_wait_overflow_total",
                "Timewait socks freed at once because their host held tcp_max_tw_buckets (Linux TCPTimeWaitOverflow)"
            );
            describe_gauge!(
                "tcpsim_segments_in_flight",
                "Segments in flight on the link (serve --link)"
            );
            describe_counter!(
                "tcpsim_time_wait_reused_total",
                "TIME-WAITs a connect took over, as tcp_tw_reuse allows (Linux TWRecycled)"
            );
            for e in ListenEvent::ALL {
                describe_counter!(
                    format!("tcpsim_{}_total", e.as_str()),
                    format!("Linux's {} over every listener", e.linux_name())
                );
            }
            describe_gauge!(
                "tcpsim_listen_syn_queue",
                "Request socks in SYN-RECEIVED, by listener (holds backlog + 1)"
            );
            describe_gauge!(
                "tcpsim_listen_accept_queue",
                "Connections made and not yet accepted, by listener (holds backlog + 1)"
            );
            describe_gauge!(
                "tcpsim_listen_backlog",
                "The backlog in force (listen()'s, clamped by somaxconn), by listener"
            );
            describe_gauge!(
                "tcpsim_build_info",
                "Always 1; the labels say which build runs"
            );
            describe_gauge!(
                "tcpsim_clock_now_seconds",
                "The server's clock (virtual or real) in seconds"
            );
            describe_counter!(
                "grpc_server_started_total",
                "gRPC calls started, by service and method"
            );
            describe_counter!(
                "grpc_server_handled_total",
                "gRPC calls finished, by service, method and status code"
            );
        });
        Metrics {
            recorder,
            handle,
            table,
            grpc: Arc::new(GrpcStats::default()),
        }
    }

    /// The Prometheus text exposition: O(states + methods).
    pub fn render(&self) -> String {
        let s = self.table.stats();
        let c = &s.counters;
        metrics::with_local_recorder(&self.recorder, || {
            for side in Side::BOTH {
                for state in State::ALL {
                    gauge!("tcpsim_connections", "side" => side.as_str(), "state" => state_label(state)).set(c.occupancy(side, state) as f64);
                    for to in State::ALL {
                        let n = c.transitions(side, state, to);
                        if n > 0 {
                            counter!("tcpsim_state_transitions_total", "side" => side.as_str(), "from" => state_label(state), "to" => state_label(to)).absolute(n);
                        }
                    }
                }
                for o in SegmentOutcome::ALL {
                    counter!("tcpsim_segments_total", "side" => side.as_str(), "outcome" => o.as_str()).absolute(c.segments(side, o));
                }
            }
            for k in TimerKind::ALL {
                gauge!("tcpsim_timers_pending", "kind" => k.as_str())
                    .set(c.timers_pending(k) as f64);
                counter!("tcpsim_timer_expirations_total", "kind" => k.as_str())
                    .absolute(c.timers_fired(k));
            }
            for why in OpenFailure::ALL {
                counter!("tcpsim_open_failures_total", "reason" => why.as_str())
                    .absolute(c.open_failures(why));
            }
            counter!("tcpsim_opens_total").absolute(c.opened);
            counter!("tcpsim_time_wait_overflow_total").absolute(c.time_wait_overflows);
            counter!("tcpsim_time_wait_reused_total").absolute(c.time_wait_reused);
            gauge!("tcpsim_segments_in_flight").set(c.in_flight.max(0) as f64);
            for e in ListenEvent::ALL {
                counter!(format!("tcpsim_{}_total", e.as_str())).absolute(c.listen(e));
            }
            // One series per configured server: bounded by the server's own settings.
            for l in &s.listeners {
                let server = [("listener", l.server.to_string())];
                gauge!("tcpsim_listen_syn_queue", &server).set(f64::from(l.syn_queue));
                gauge!("tcpsim_listen_accept_queue", &server).set(f64::from(l.accept_queue));
                gauge!("tcpsim_listen_backlog", &server)
                    .set(f64::from(l.settings.effective_backlog()));
            }
            gauge!("tcpsim_table_connections_limit").set(s.max_connections as f64);
            gauge!("tcpsim_table_connections").set(s.connections as f64);
            gauge!("tcpsim_ephemeral_ports", "status" => "used").set(s.ports_used as f64);
            gauge!("tcpsim_ephemeral_ports", "status" => "free")
                .set(s.ports_capacity.saturating_sub(s.ports_used) as f64);
            gauge!("tcpsim_build_info", "version" => env!("CARGO_PKG_VERSION"), "clock" => s.clock)
                .set(1.0);
            gauge!("tcpsim_clock_now_seconds").set(s.now as f64 / 1000.0);
            for m in self.grpc.snapshot() {
                let labels = [
                    ("grpc_service", m.service.clone()),
                    ("grpc_method", m.method.clone()),
                    ("grpc_type", m.kind.to_string()),
                ];
                counter!("grpc_server_started_total", &labels).absolute(m.started.load(Relaxed));
                for (code, name) in CODES.iter().enumerate() {
                    let n = m.handled[code].load(Relaxed);
                    if n > 0 || code == 0 {
                        let mut l = labels.to_vec();
                        l.push(("grpc_code", name.to_string()));
                        counter!("grpc_server_handled_total", &l).absolute(n);
                    }
                }
            }
        });
        let mut out = self.handle.render();
        self.render_histograms(&mut out, c);
        out
    }

    fn render_histograms(&self, out: &mut String, c: &crate::table::CounterSnapshot) {
        let in_seconds =
            |out: &mut String, name: &str, help: &str, ms: &[u64], counts: &[u64], sum_ms: u64| {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
                let bounds: Vec<f64> = ms.iter().map(|&ms| ms as f64 / 1000.0).collect();
                histogram(out, name, "", &bounds, counts, sum_ms as f64 / 1000.0);
            };
        in_seconds(
            out,
            "tcpsim_connect_seconds",
            "How long active opens took, first SYN to ESTABLISHED",
            &CONNECT_BUCKETS_MS,
            &c.connect_buckets,
            c.connect_sum_ms,
        );
        in_seconds(
            out,
            "tcpsim_timer_lag_seconds",
            "How late timers fired (real clock)",
            &LAG_BUCKETS_MS,
            &c.lag_buckets,
            c.lag_sum_ms,
        );
        out.push_str("# HELP grpc_server_handling_seconds Time from a gRPC call's start to its status\n# TYPE grpc_server_handling_seconds histogram\n");
        for m in self.grpc.snapshot() {
            let labels = format!(
                "grpc_service=\"{}\",grpc_method=\"{}\",grpc_type=\"{}\"",
                m.service, m.method, m.kind
            );
            let counts: Vec<u64> = m.buckets.iter().map(|b| b.load(Relaxed)).collect();
            histogram(
                out,
                "grpc_server_handling_seconds",
                &labels,
                &LATENCY_BUCKETS,
                &counts,
                m.sum_ns.load(Relaxed) as f64 / 1e9,
            );
        }
    }
}

/// One histogram's series in the text format: cumulative buckets (`counts` has one more entry
/// than `bounds`, for +Inf), the sum and the count.
fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], counts: &[u64], sum: f64) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cum = 0;
    for (ub, n) in bounds.iter().zip(counts) {
        cum += n;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{ub}\"}} {cum}");
    }
    cum += counts[bounds.len()];
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {cum}");
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub async fn serve(
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                let body = tokio::task::spawn_blocking(move || m.render())
                    .await
                    .unwrap_or_default();
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    body,
                )
            }
        }),
    );
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host out of timewait socks shows on /metrics as Linux's TCPTimeWaitOverflow does.
    #[test]
    fn time_wait_overflows_are_exported() {
        use crate::table::{Clock, Mode, OpenSpec, Sides, TableConfig};
        let cfg = TableConfig {
            max_tw_buckets: 1,
            ..TableConfig::default()
        };
        let table =
            Arc::new(Table::new(cfg, crate::tcp::Config::default(), Clock::virtual_at(0)).unwrap());
        let spec = OpenSpec {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            ..OpenSpec::new(Mode::Auto)
        };
        for _ in 0..3 {
            let id = table.open(&spec).unwrap().id;
            table
                .call(id, Sides::One(Side::Client), crate::tcp::Call::Close)
                .unwrap();
        }
        let text = Metrics::new(table).render();
        assert!(
            text.lines()
                .any(|l| l == "tcpsim_time_wait_overflow_total 2"),
            "{text}"
        );
    }

    /// A SYN flood past the backlog shows as Linux's counters, and each listener's queues as
    /// gauges labelled by the listener's address.
    #[test]
    fn listener_counters_and_queues_are_exported() {
        use crate::table::listeners::{HostSettings, ListenChange};
        use crate::table::{Clock, Mode, OpenSpec, TableConfig, WireAction};
        let cfg = TableConfig {
            listen: HostSettings {
                backlog: 2,
                ..Default::default()
            },
            ..TableConfig::default()
        };
        let table =
            Arc::new(Table::new(cfg, crate::tcp::Config::default(), Clock::virtual_at(0)).unwrap());
        for _ in 0..5 {
            let id = table.open(&OpenSpec::new(Mode::Manual)).unwrap().id;
            let c2s = crate::tcp::Direction::ClientToServer;
            table.wire(id, c2s, WireAction::Deliver, 1).unwrap();
        }
        let pause = ListenChange {
            accepting: Some(false),
            ..Default::default()
        };
        table.change_listeners(None, &pause).unwrap();
        table.open(&OpenSpec::new(Mode::Auto)).unwrap();
        let text = Metrics::new(table).render();
        for want in [
            "tcpsim_syncookies_sent_total 3",
            "tcpsim_syncookies_recv_total 1",
            "tcpsim_listen_drops_total 0",
            "tcpsim_listen_syn_queue{listener=\"10.255.0.1:80\"} 3",
            "tcpsim_listen_accept_queue{listener=\"10.255.0.1:80\"} 1",
            "tcpsim_listen_backlog{listener=\"10.255.0.1:80\"} 2",
        ] {
            assert!(text.lines().any(|l| l == want), "no {want:?} in {text}");
        }
    }

    /// The methods come from the services' descriptors, with their kinds; any other path, made
    /// up by a caller, counts as one "unknown" method, so no caller can add label values.
    #[test]
    fn methods_are_the_served_ones_and_any_other_path_is_unknown() {
        let g = GrpcStats::default();
        for (path, kind) in [
            ("/tcpsim.v1.Simulator/Open", "unary"),
            ("/tcpsim.v1.Simulator/Watch", "server_stream"),
            ("/tcpsim.v1.Simulator/Run", "bidi_stream"),
            ("/grpc.health.v1.Health/Check", "unary"),
            ("/grpc.health.v1.Health/Watch", "server_stream"),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "bidi_stream",
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "bidi_stream",
            ),
        ] {
            let m = g.method(path);
            assert_eq!(
                (m.kind, m.service.as_str()),
                (kind, &path[1..path.rfind('/').unwrap()])
            );
        }
        let known = g.methods.len();
        for i in 0..1000 {
            for path in [
                format!("/tcpsim.v1.Simulator/Made{i}"),
                format!("/x{i}.Y/Z"),
                format!("/tcpsim.v1.Simulator/Open/{i}"),
            ] {
                g.method(&path).started.fetch_add(1, Relaxed);
            }
        }
        assert_eq!(g.methods.len(), known);
        let called: Vec<(&str, u64)> = g
            .snapshot()
            .map(|m| (m.method.as_str(), m.started.load(Relaxed)))
            .collect();
        assert_eq!(called, [("unknown", 3000)]);
    }
}

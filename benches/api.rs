//! gRPC API benchmarks, client and server in one process on this machine, each figure beside its
//! baseline measured in the same run:
//!
//! - unary: Open+Close calls per second (AUTO, 64 concurrent callers) against an empty unary call
//!   (an echo of one integer) — target ≥ 0.8×;
//! - stream: `Run` operations per second (Send on one AUTO pair, pipelined on one stream) against
//!   a raw echo over the same kind of bidirectional stream — target ≥ 0.7×; and, for context,
//!   Open of AUTO pairs on the same stream.
//!
//!     cargo bench --bench api [-- SECONDS]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tcpsim::server::{self, ServeConfig};
use tcpsim::service::proto as pb;
use tcpsim::service::proto::simulator_client::SimulatorClient;
use tcpsim::table::TableConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

mod echo {
    tonic::include_proto!("tcpsim.bench");
}
use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, r: Request<echo::Msg>) -> Result<Response<echo::Msg>, Status> {
        Ok(Response::new(r.into_inner()))
    }

    type StreamStream = std::pin::Pin<Box<dyn Stream<Item = Result<echo::Msg, Status>> + Send>>;

    async fn stream(
        &self,
        r: Request<Streaming<echo::Msg>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        // The same shape as Run: each answer is made when the response stream is polled.
        Ok(Response::new(Box::pin(
            r.into_inner().map_while(|m| m.ok()).map(Ok),
        )))
    }
}

const CALLERS: usize = 64;

/// Runs `CALLERS` tasks calling `f` until `secs` pass; returns calls per second.
async fn unary_rate<F, Fut>(secs: f64, f: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS as u64)
        .map(|k| {
            let (f, done) = (f.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while Instant::now() < deadline {
                    done.fetch_add(f(k * 1_000_000_000 + i).await, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Sends `n` messages made by `make` down a stream opened by `open`, reading the answers at
/// the same time; returns answers per second.
async fn stream_rate<M, R, O, Fut>(n: u64, make: impl Fn(u64) -> M + Send + 'static, open: O) -> f64
where
    M: Send + 'static,
    O: FnOnce(ReceiverStream<M>) -> Fut,
    Fut: std::future::Future<Output = Streaming<R>>,
{
    let (tx, rx) = mpsc::channel(4096);
    let start = Instant::now();
    let mut answers = open(ReceiverStream::new(rx)).await;
    let feeder = tokio::spawn(async move {
        for i in 0..n {
            if tx.send(make(i)).await.is_err() {
                return;
            }
        }
    });
    let mut got = 0;
    while got < n {
        match answers.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("stream ended early after {got} answers"),
            Err(e) => panic!("stream failed after {got} answers: {e}"),
        }
    }
    feeder.await.unwrap();
    got as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    // `stream` alone skips the unary figures (a profiling aid).
    let stream_only = std::env::args().any(|a| a == "stream");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // tcpsim on a virtual clock (TIME-WAITs simply pile up), and the echo baseline.
        let cfg = ServeConfig {
            virtual_clock: true,
            table: TableConfig { capacity: 1 << 22, client_pools: vec!["10.0.0.0/12".parse().unwrap()], ..TableConfig::default() },
            ..ServeConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = server::start(cfg, listener, std::future::pending()).await.unwrap();
        let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo_listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(EchoServer::new(EchoService))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(echo_listener).with_nodelay(Some(true))),
        );
        let sim_ch = Channel::from_shared(format!("http://{}", sim.addr)).unwrap().connect().await.unwrap();
        let echo_ch = Channel::from_shared(format!("http://{echo_addr}")).unwrap().connect().await.unwrap();

        // Unary, three rounds each, interleaved; the medians are reported.
        let (mut base, mut ours) = (vec![], vec![]);
        // Each round's ratio is taken between neighbours in time, so that the machine's drift
        // (the echo alone moves by a third between runs here) cancels; the median of those is
        // reported, beside the median rates.
        let med = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let ratios = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a / b).collect::<Vec<_>>();
        for _ in 0..if stream_only { 0 } else { 3 } {
            let ch = echo_ch.clone();
            base.push(
                unary_rate(secs, move |i| {
                    let mut c = EchoClient::new(ch.clone());
                    async move {
                        c.unary(echo::Msg { tag: i }).await.unwrap();
                        1
                    }
                })
                .await,
            );
            let ch = sim_ch.clone();
            ours.push(
                unary_rate(secs, move |_| {
                    let mut c = SimulatorClient::new(ch.clone());
                    async move {
                        let req = pb::OpenRequest { mode: pb::Mode::Auto as i32, ..Default::default() };
                        let id = c.open(req).await.unwrap().into_inner().connections[0].id;
                        c.close(pb::CloseRequest { incarnation: None, id, side: pb::Side::Both as i32, how: 0, ..Default::default() }).await.unwrap();
                        2
                    }
                })
                .await,
            );
        }
        if !stream_only {
            let (b, o, r) = (med(&base), med(&ours), med(&ratios(&ours, &base)));
            println!(
                "unary: Open+Close {o:.0} calls/s; empty unary call {b:.0} calls/s; ratio {r:.2} (target >= 0.80); {CALLERS} callers"
            );
        }

        // Streams: one stream each, pipelined. Run's operations: Send of 100 bytes on one AUTO
        // pair (a data segment and its ACK through the core), and, for context, Open of pairs.
        let n = (secs * 1_000_000.0) as u64;
        let mut c = SimulatorClient::new(sim_ch.clone());
        let id = c.open(pb::OpenRequest { mode: pb::Mode::Auto as i32, ..Default::default() }).await.unwrap().into_inner().connections[0].id;
        let (mut base, mut sends, mut opens) = (vec![], vec![], vec![]);
        for _ in 0..5 {
            let mut e = EchoClient::new(echo_ch.clone());
            base.push(stream_rate(n, |i| echo::Msg { tag: i }, |s| async move { e.stream(s).await.unwrap().into_inner() }).await);
            let mut c = SimulatorClient::new(sim_ch.clone());
            sends.push(
                stream_rate(
                    n,
                    move |i| pb::Command {
                        tag: i,
                        op: Some(pb::command::Op::Send(pb::SendRequest { incarnation: None, id, side: pb::Side::Client as i32, bytes: 100, ..Default::default() })),
                    },
                    |s| async move { c.run(s).await.unwrap().into_inner() },
                )
                .await,
            );
            let mut c = SimulatorClient::new(sim_ch.clone());
            opens.push(
                stream_rate(
                    n / 16,
                    |i| pb::Command {
                        tag: i,
                        op: Some(pb::command::Op::Open(Box::new(pb::OpenRequest { mode: pb::Mode::Auto as i32, ..Default::default() }))),
                    },
                    |s| async move { c.run(s).await.unwrap().into_inner() },
                )
                .await,
            );
        }
        let (b, o, p) = (med(&base), med(&sends), med(&opens));
        let rs = ratios(&sends, &base);
        let r = med(&rs);
        println!("stream: Run {o:.0} Send operations/s; raw echo {b:.0} messages/s; ratio {r:.2} (target >= 0.70); rounds {rs:.2?}");
        println!("stream: Run {p:.0} Open operations/s (a whole AUTO handshake each); ratio {:.2} to the raw echo", med(&ratios(&opens, &base)));
        let _ = sim.table.verify();
    });
}

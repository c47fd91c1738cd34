//! The `Run` stream with the hand-written protobuf fast path (`service::fast_path`) on and off, in
//! one run: Send commands on one AUTO pair, pipelined down one stream, client and server in this
//! process (both use the codec, so both sides are switched).
//!
//! `cargo bench --bench run_stream`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tcpsim::server::{self, ServeConfig};
use tcpsim::service::proto as pb;
use tcpsim::service::proto::simulator_client::SimulatorClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Sends `n` Send commands down one Run stream and waits for every answer.
async fn sends(ch: &Channel, id: u64, n: u64) -> Duration {
    let mut c = SimulatorClient::new(ch.clone());
    let (tx, rx) = mpsc::channel(1024);
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for tag in 0..n {
            let op = pb::command::Op::Send(pb::SendRequest {
                incarnation: None,
                id,
                side: pb::Side::Client as i32,
                bytes: 100,
                ..Default::default()
            });
            let cmd = pb::Command { tag, op: Some(op) };
            if tx.send(cmd).await.is_err() {
                break;
            }
        }
    });
    let mut answers = c.run(ReceiverStream::new(rx)).await.unwrap().into_inner();
    for _ in 0..n {
        answers
            .message()
            .await
            .unwrap()
            .expect("an answer per command");
    }
    feeder.await.unwrap();
    start.elapsed()
}

fn run_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ch, id) = rt.block_on(async {
        let cfg = ServeConfig {
            virtual_clock: true,
            ..ServeConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = server::start(cfg, listener, std::future::pending())
            .await
            .unwrap();
        let ch = Channel::from_shared(format!("http://{}", sim.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let open = pb::OpenRequest {
            mode: pb::Mode::Auto as i32,
            ..Default::default()
        };
        let mut client = SimulatorClient::new(ch.clone());
        let id = client.open(open).await.unwrap().into_inner().connections[0].id;
        (ch, id)
    });
    let mut g = c.benchmark_group("run_stream_send");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(10));
    for (name, on) in [("fast_path_off", false), ("fast_path_on", true)] {
        g.bench_function(name, |b| {
            tcpsim::service::fast_path::set_enabled(on);
            b.iter_custom(|iters| rt.block_on(sends(&ch, id, iters)));
        });
    }
    tcpsim::service::fast_path::set_enabled(true);
    g.finish();
}

criterion_group!(benches, run_stream);
criterion_main!(benches);

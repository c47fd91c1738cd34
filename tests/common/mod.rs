//! A real server on 127.0.0.1:0 for the integration tests, stopped on request.
#![allow(dead_code)] // each test crate uses part of it

use std::net::SocketAddr;
use std::sync::Arc;

use tcpsim::server::{self, ServeConfig};
use tcpsim::service::proto as pb;
use tcpsim::service::proto::simulator_client::SimulatorClient;
use tcpsim::table::Table;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub struct TestServer {
    pub url: String,
    pub table: Arc<Table>,
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    pub async fn start(cfg: ServeConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = server::start(cfg, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        TestServer {
            url: format!("http://{}", running.addr),
            table: running.table,
            metrics_addr: running.metrics_addr,
            stop: Some(stop),
            done: running.done,
        }
    }

    pub async fn client(&self) -> SimulatorClient<Channel> {
        SimulatorClient::connect(self.url.clone()).await.unwrap()
    }

    pub async fn stats(&self) -> pb::StatsResponse {
        self.client()
            .await
            .stats(pb::StatsRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the server and waits for it to end.
    pub async fn shutdown(mut self) -> Result<(), tonic::transport::Error> {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap()
    }
}

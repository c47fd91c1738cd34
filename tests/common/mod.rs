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
    done: tokio::task::JoinHandle<Result<(), server::RunError>>,
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

    /// A typed client: each call's reply, unwrapped.
    pub async fn client(&self) -> Sim {
        Sim {
            raw: SimulatorClient::connect(self.url.clone()).await.unwrap(),
        }
    }

    pub async fn stats(&self) -> pb::StatsResponse {
        self.client().await.stats(pb::StatsRequest {}).await
    }

    /// Stops the server and waits for it to end.
    pub async fn shutdown(mut self) -> Result<(), server::RunError> {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap()
    }
}

/// A Simulator client for tests: each unary call returns its reply and panics on an error
/// (naming the RPC and the status), so a test reads as the exchange it checks. Calls expected to
/// fail go through `raw`, the plain client, which `Sim` also derefs to.
#[derive(Clone)]
pub struct Sim {
    pub raw: SimulatorClient<Channel>,
}

impl std::ops::Deref for Sim {
    type Target = SimulatorClient<Channel>;
    fn deref(&self) -> &SimulatorClient<Channel> {
        &self.raw
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut SimulatorClient<Channel> {
        &mut self.raw
    }
}

macro_rules! unwrapped {
    ($($rpc:ident($req:ty) -> $reply:ty;)*) => {
        impl Sim {
            $(
                pub async fn $rpc(&mut self, r: $req) -> $reply {
                    match self.raw.$rpc(r).await {
                        Ok(reply) => reply.into_inner(),
                        Err(s) => panic!("{}: {:?}: {}", stringify!($rpc), s.code(), s.message()),
                    }
                }
            )*
        }
    };
}

unwrapped! {
    open(pb::OpenRequest) -> pb::OpenResponse;
    close(pb::CloseRequest) -> pb::ConnectionStates;
    abort(pb::AbortRequest) -> pb::ConnectionStates;
    send(pb::SendRequest) -> pb::ConnectionStates;
    inject(pb::InjectRequest) -> pb::InjectResponse;
    wire(pb::WireRequest) -> pb::WireResponse;
    remove(pb::RemoveRequest) -> pb::RemoveResponse;
    get(pb::GetRequest) -> pb::Connection;
    list(pb::ListRequest) -> pb::ListResponse;
    stats(pb::StatsRequest) -> pb::StatsResponse;
    advance_clock(pb::AdvanceClockRequest) -> pb::AdvanceClockResponse;
    set_listener(pb::SetListenerRequest) -> pb::SetListenerResponse;
    set_client_sysctls(pb::SetClientSysctlsRequest) -> pb::ClientSysctls;
    set_link(pb::SetLinkRequest) -> pb::Links;
}

/// An open request for `mode`, every other field at its default.
pub fn open_req(mode: pb::Mode) -> pb::OpenRequest {
    pb::OpenRequest {
        mode: mode as i32,
        ..Default::default()
    }
}

impl Sim {
    /// Opens one connection and returns its id.
    pub async fn open_id(&mut self, r: pb::OpenRequest) -> u64 {
        self.open(r).await.connections[0].id
    }

    /// The connection `id`.
    pub async fn get_id(&mut self, id: u64) -> pb::Connection {
        self.get(pb::GetRequest {
            incarnation: None,
            id,
            tuple: None,
        })
        .await
    }

    /// Both sides' states (0 where there is no such endpoint).
    pub async fn states(&mut self, id: u64) -> (i32, i32) {
        let conn = self.get_id(id).await;
        let state = |side: pb::Side| {
            conn.endpoints
                .iter()
                .find(|e| e.side == side as i32)
                .map_or(0, |e| e.state)
        };
        (state(pb::Side::Client), state(pb::Side::Server))
    }

    /// Moves the virtual clock.
    pub async fn advance(&mut self, ms: u64) -> pb::AdvanceClockResponse {
        self.advance_clock(pb::AdvanceClockRequest { ms, millis: 0 })
            .await
    }

    /// Delivers the next segment waiting in `direction` and returns it.
    pub async fn deliver(&mut self, id: u64, direction: pb::Direction) -> pb::Segment {
        let req = pb::WireRequest {
            incarnation: None,
            id,
            direction: direction as i32,
            action: pb::WireAction::Deliver as i32,
            count: 1,
            ..Default::default()
        };
        self.wire(req).await.moved.remove(0)
    }

    /// Closes `side` (or both) with close(), returning the states after.
    pub async fn close_side(&mut self, id: u64, side: pb::Side) -> pb::ConnectionStates {
        let req = pb::CloseRequest {
            incarnation: None,
            id,
            side: side as i32,
            how: pb::CloseKind::Close as i32,
            ..Default::default()
        };
        self.close(req).await
    }
}

/// `tcpsim serve` on 127.0.0.1:0 without metrics: the binary, for the tests of its flags, its
/// logs and its process (add the rest, then spawn or run it).
pub fn serve_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tcpsim"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
    ]);
    cmd
}

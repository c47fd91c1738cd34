//! The server: a table and its clock, the Simulator service, grpc.health.v1 and server
//! reflection (v1 and v1alpha), and what a public gRPC service keeps: an optional bearer token
//! ([`auth`]), TLS with optional client certificates, limits on streams, calls, connections and
//! their idle time ([`idle`]), and a graceful shutdown ([`shutdown`]).
//!
//! Shutdown: health turns NOT_SERVING for the drain period while calls are still taken, then
//! every stream ends, new connections are refused and in-flight calls finish; if they have not
//! within the grace period, the server stops anyway (with a warning) — either way it ends
//! successfully.

mod auth;
mod codes;
mod idle;
mod shutdown;

pub use shutdown::signal;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use auth::Auth;
use shutdown::EndsOnStop;

use crate::service::proto::simulator_server::SimulatorServer;
use crate::service::{Limits, SimulatorService, proto};
use crate::table::{Clock, Table, TableConfig, drive_timers};
use crate::tcp;

/// Where `serve` listens for gRPC unless told otherwise (and where clients look by default).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50051));
/// Where `serve` serves `GET /metrics` unless told otherwise (the OpenTelemetry Prometheus
/// exporter's customary port).
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub table: TableConfig,
    pub tcp: tcp::Config,
    pub virtual_clock: bool,
    pub limits: Limits,
    /// Callers of the Simulator service must send `authorization: Bearer <token>`.
    pub token: Option<String>,
    pub max_message_bytes: usize,
    /// On shutdown, how long health reports NOT_SERVING while calls are still taken, so that
    /// load balancers and health-checking clients move away before connections are closed.
    pub drain: Duration,
    pub shutdown_grace: Duration,
    /// Serve TLS with this PEM certificate chain and private key.
    pub tls: Option<Tls>,
    /// Serve Prometheus metrics (`GET /metrics`) here; none if `None`.
    pub metrics_listen: Option<SocketAddr>,
    pub reflection: Reflection,
    pub connections: ConnectionLimits,
    /// Keep the simulation in this file across restarts.
    pub state: Option<StateFile>,
}

/// A PEM certificate chain and its private key, and the CA whose client certificates are
/// required (mutual TLS) if any.
#[derive(Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

/// Who may use server reflection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Reflection {
    /// Anyone (grpcurl needs no proto file).
    #[default]
    On,
    /// Callers with the bearer token, as for the Simulator service.
    Token,
    /// Nobody: the services are not served.
    Off,
}

/// What one client may hold and for how long.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Calls in progress at once on one connection; more wait.
    pub concurrency_per_connection: usize,
    /// How long a call may take, from its start to its response (a stream's messages may come
    /// later); a client's `grpc-timeout` may ask for less. A clock advance stops cleanly there.
    pub call_timeout: Duration,
    /// HTTP/2 pings after this long without a frame, to find peers that are gone.
    pub keepalive_interval: Duration,
    /// A ping unanswered for this long closes the connection.
    pub keepalive_timeout: Duration,
    /// A connection with no call in flight for this long is closed.
    pub max_idle: Option<Duration>,
    /// A connection this old is told to go away (GOAWAY), then given `max_age_grace`.
    pub max_age: Option<Duration>,
    pub max_age_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_concurrent_streams: 256,
            concurrency_per_connection: 256,
            call_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_idle: Some(Duration::from_secs(15 * 60)),
            max_age: None,
            max_age_grace: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }") // never print the key
    }
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            table: TableConfig::default(),
            tcp: tcp::Config::default(),
            virtual_clock: false,
            limits: Limits::default(),
            token: None,
            max_message_bytes: 4 << 20,
            drain: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            metrics_listen: None,
            reflection: Reflection::default(),
            connections: ConnectionLimits::default(),
            state: None,
        }
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    pub table: Arc<Table>,
    pub done: tokio::task::JoinHandle<Result<(), RunError>>,
}

/// Why a running server ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Transport(tonic::transport::Error),
    #[error("the state file: {0}")]
    State(#[from] crate::state::StateError),
    #[error("a task failed: {0}")]
    Join(String),
}

/// Where the whole simulation is kept across restarts, and how often it is written while
/// serving (besides at shutdown).
#[derive(Clone, Debug)]
pub struct StateFile {
    pub path: std::path::PathBuf,
    pub every: Option<Duration>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the listener has no address: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Table(#[from] crate::table::SetupError),
    #[error(
        "cannot listen for metrics on {at}: {source}{}",
        if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another tcpsim serving metrics there? give this one --metrics-listen with another \
             address, 127.0.0.1:0 for any free port, or off)"
        } else {
            ""
        }
    )]
    Metrics {
        at: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("TLS: {0}")]
    Tls(tonic::transport::Error),
    #[error("token: an empty token would let anyone in; give none for no authentication")]
    EmptyToken,
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("a task failed: {0}")]
    Join(String),
}

type Svc = SimulatorServer<SimulatorService>;

/// Writes the state file on a blocking thread, and logs what it wrote.
async fn save(state: StateFile, table: Arc<Table>) -> Result<(), RunError> {
    let path = state.path.clone();
    let saved = tokio::task::spawn_blocking(move || crate::state::save(&table, &path))
        .await
        .map_err(|e| RunError::Join(e.to_string()))??;
    tracing::info!(
        path = %state.path.display(),
        connections = saved.connections,
        bytes = saved.bytes,
        ms = saved.took.as_millis() as u64,
        "wrote the state file"
    );
    Ok(())
}

/// Writes the state file every `state.every` until the server stops; a failed write is logged
/// and the previous file stays.
async fn save_every(state: StateFile, table: Arc<Table>, mut stop: watch::Receiver<bool>) {
    let Some(every) = state.every else { return };
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is at once
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = save(state.clone(), table.clone()).await {
            tracing::warn!(error = %e, "could not write the state file; the previous one stays");
        }
    }
}

/// Starts serving on `listener` until `shutdown` completes (then drains, within the grace).
pub async fn start(
    cfg: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    if cfg.token.as_deref() == Some("") {
        return Err(StartError::EmptyToken);
    }
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let restored = match &cfg.state {
        Some(state) => {
            let (path, table, tcp) = (state.path.clone(), cfg.table.clone(), cfg.tcp.clone());
            let virtual_clock = cfg.virtual_clock;
            tokio::task::spawn_blocking(move || {
                crate::state::load(&path, &table, &tcp, virtual_clock)
            })
            .await
            .map_err(|e| StartError::Join(e.to_string()))??
        }
        None => None,
    };
    let table = match restored {
        Some((table, read)) => {
            tracing::info!(
                connections = read.connections,
                bytes = read.bytes,
                ms = read.took.as_millis() as u64,
                "restored the state file"
            );
            Arc::new(table)
        }
        None => {
            let clock = if cfg.virtual_clock {
                Clock::virtual_at(0)
            } else {
                Clock::real()
            };
            Arc::new(Table::new(cfg.table.clone(), cfg.tcp.clone(), clock)?)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    if !cfg.virtual_clock {
        // It sleeps until the next deadline; the cap only bounds how late a timer could be if a
        // wake-up were ever missed (the lag histogram would show it).
        tokio::spawn(drive_timers(
            table.clone(),
            Duration::from_secs(1),
            stop_rx.clone(),
        ));
    }

    let metrics = Arc::new(crate::metrics::Metrics::new(table.clone()));
    let metrics_addr = match cfg.metrics_listen {
        Some(at) => {
            let metrics_err = |source| StartError::Metrics { at, source };
            let l = tokio::net::TcpListener::bind(at)
                .await
                .map_err(metrics_err)?;
            let bound = l.local_addr().map_err(metrics_err)?;
            tokio::spawn(crate::metrics::serve(metrics.clone(), l, stop_rx.clone()));
            Some(bound)
        }
        None => None,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<Svc>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            // So that `grpcurl … list` shows health checking and `grpcurl …
            // grpc.health.v1.Health/Check` works without a proto file.
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let auth = Auth::new(cfg.token.as_deref());
    let (open_v1, open_v1alpha, guarded_v1, guarded_v1alpha) = match cfg.reflection {
        Reflection::On => (
            Some(EndsOnStop::new(reflection().build_v1()?, &stop_rx)),
            Some(EndsOnStop::new(reflection().build_v1alpha()?, &stop_rx)),
            None,
            None,
        ),
        Reflection::Token => (
            None,
            None,
            Some(InterceptedService::new(
                EndsOnStop::new(reflection().build_v1()?, &stop_rx),
                auth.clone(),
            )),
            Some(InterceptedService::new(
                EndsOnStop::new(reflection().build_v1alpha()?, &stop_rx),
                auth.clone(),
            )),
        ),
        Reflection::Off => (None, None, None, None),
    };
    let simulator = SimulatorServer::new(SimulatorService::new(
        table.clone(),
        cfg.limits.clone(),
        stop_rx.clone(),
    ))
    .max_decoding_message_size(cfg.max_message_bytes)
    .max_encoding_message_size(cfg.max_message_bytes);
    let simulator = InterceptedService::new(simulator, auth);

    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = cfg.drain;
    let on_shutdown = async move {
        shutdown.await;
        health.set_not_serving::<Svc>().await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        tokio::time::sleep(drain).await;
        // Ends every stream (Watch, Run, health Watch, reflection) and stops the clock driver;
        // then connections get GOAWAY and in-flight calls finish.
        let _ = stop_tx.send(true);
        let _ = begun_tx.send(());
    };
    let limits = &cfg.connections;
    let mut builder = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .timeout(limits.call_timeout)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(age) = limits.max_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(limits.max_age_grace);
    }
    if let Some(tls) = &cfg.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).map_err(StartError::Tls)?;
    }
    let idle = limits.max_idle.map(idle::Registry::new);
    // tonic's TcpIncoming sets TCP_NODELAY on each accepted socket; a bare listener stream
    // would leave Nagle on, and small responses would wait out delayed ACKs (~40 ms).
    let accepted = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let registry = idle.clone();
    let incoming = accepted.map(move |io| {
        io.map(|io| match &registry {
            Some(r) => r.wrap(io),
            None => idle::Registry::new(Duration::MAX).wrap(io),
        })
    });
    let serving = builder
        .layer(crate::metrics::GrpcMetricsLayer(metrics.grpc.clone()))
        .layer(idle::Activity(idle))
        .layer(codes::GrpcCodes)
        .add_service(EndsOnStop::new(health_service, &stop_rx))
        .add_optional_service(open_v1)
        .add_optional_service(open_v1alpha)
        .add_optional_service(guarded_v1)
        .add_optional_service(guarded_v1alpha)
        .add_service(simulator)
        .serve_with_incoming_shutdown(incoming, on_shutdown);
    let grace = cfg.shutdown_grace;
    if let Some(state) = cfg.state.clone().filter(|s| s.every.is_some()) {
        tokio::spawn(save_every(state, table.clone(), stop_rx.clone()));
    }
    let state = cfg.state.clone();
    let saved_table = table.clone();
    let done = tokio::spawn(async move {
        let served = tokio::select! {
            r = serving => r.map_err(RunError::Transport),
            _ = async { if begun_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                // The bound is the promise: stop anyway, and say so.
                tracing::warn!(grace_ms = grace.as_millis() as u64, "calls still in flight after the grace were cut off");
                Ok(())
            }
        };
        // Every call has finished (or was cut off): the table is still, and is written whole.
        if let Some(state) = state {
            save(state, saved_table).await?;
        }
        served
    });
    Ok(Running {
        addr,
        metrics_addr,
        table,
        done,
    })
}

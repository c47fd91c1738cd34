//! The server: a table and its clock, the Simulator service, grpc.health.v1 and server
//! reflection (v1 and v1alpha), an optional bearer token, and a graceful shutdown.
//!
//! Shutdown: health turns NOT_SERVING, new connections are refused, Watch and Run streams end,
//! in-flight calls drain; if they have not within the grace period, the server stops anyway
//! (with a warning) — either way it ends successfully.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::{Request, Status};

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
    pub shutdown_grace: Duration,
    /// Serve TLS with this PEM certificate chain and private key.
    pub tls: Option<Tls>,
    /// Serve Prometheus metrics (`GET /metrics`) here; none if `None`.
    pub metrics_listen: Option<SocketAddr>,
}

/// A PEM certificate chain and its private key.
#[derive(Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
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
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            metrics_listen: None,
        }
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    pub table: Arc<Table>,
    pub done: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the listener has no address: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Table(#[from] crate::table::SetupError),
    #[error("cannot listen for metrics on {at}: {source}")]
    Metrics {
        at: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("TLS: {0}")]
    Tls(tonic::transport::Error),
}

type Svc = SimulatorServer<SimulatorService>;

/// Checks the bearer token, if one is configured.
#[derive(Clone)]
struct Auth(Option<Arc<str>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else { return Ok(req) };
        match req
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""))
        {
            None => Err(Status::unauthenticated(
                "missing bearer token: send metadata authorization: Bearer <token>",
            )),
            Some(v)
                if v.strip_prefix("Bearer ")
                    .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) =>
            {
                Ok(req)
            }
            Some(_) => Err(Status::unauthenticated("wrong bearer token")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Starts serving on `listener` until `shutdown` completes (then drains, within the grace).
pub async fn start(
    cfg: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let clock = if cfg.virtual_clock {
        Clock::virtual_at(0)
    } else {
        Clock::real()
    };
    let table = Arc::new(Table::new(cfg.table.clone(), cfg.tcp.clone(), clock)?);
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
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let simulator = SimulatorServer::new(SimulatorService::new(
        table.clone(),
        cfg.limits.clone(),
        stop_rx,
    ))
    .max_decoding_message_size(cfg.max_message_bytes)
    .max_encoding_message_size(cfg.max_message_bytes);
    let simulator = InterceptedService::new(simulator, Auth(cfg.token.as_deref().map(Arc::from)));

    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let on_shutdown = async move {
        shutdown.await;
        health.set_not_serving::<Svc>().await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let _ = stop_tx.send(true); // ends Watch and Run streams, stops the clock driver
        let _ = begun_tx.send(());
    };
    let mut builder = Server::builder();
    if let Some(tls) = &cfg.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(StartError::Tls)?;
    }
    let serving = builder
        .layer(crate::metrics::GrpcMetricsLayer(metrics.grpc.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(simulator)
        // tonic's TcpIncoming sets TCP_NODELAY on each accepted socket; a bare listener stream
        // would leave Nagle on, and small responses would wait out delayed ACKs (~40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            on_shutdown,
        );
    let grace = cfg.shutdown_grace;
    let done = tokio::spawn(async move {
        tokio::select! {
            r = serving => r,
            _ = async { if begun_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                // The bound is the promise: stop anyway, and say so.
                eprintln!("warning: calls still in flight after the {} ms grace were cut off", grace.as_millis());
                Ok(())
            }
        }
    });
    Ok(Running {
        addr,
        metrics_addr,
        table,
        done,
    })
}

/// SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

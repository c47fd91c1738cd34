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
    /// On shutdown, how long health reports NOT_SERVING while calls are still taken, so that
    /// load balancers and health-checking clients move away before connections are closed.
    pub drain: Duration,
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
            drain: Duration::from_secs(1),
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
    #[error("token: an empty token would let anyone in; give none for no authentication")]
    EmptyToken,
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
    if cfg.token.as_deref() == Some("") {
        return Err(StartError::EmptyToken);
    }
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
        stop_rx.clone(),
    ))
    .max_decoding_message_size(cfg.max_message_bytes)
    .max_encoding_message_size(cfg.max_message_bytes);
    let simulator = InterceptedService::new(simulator, Auth(cfg.token.as_deref().map(Arc::from)));

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
    let mut builder = Server::builder();
    if let Some(tls) = &cfg.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(StartError::Tls)?;
    }
    let serving = builder
        .layer(crate::metrics::GrpcMetricsLayer(metrics.grpc.clone()))
        .add_service(EndsOnStop::new(health_service, &stop_rx))
        .add_service(EndsOnStop::new(reflection_v1, &stop_rx))
        .add_service(EndsOnStop::new(reflection_v1alpha, &stop_rx))
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

/// A service whose response streams end (UNAVAILABLE, "the server is shutting down") when the
/// server stops: health's Watch and reflection's streams never end on their own, and one left
/// open would hold the shutdown for the whole grace period.
#[derive(Clone)]
struct EndsOnStop<S> {
    inner: S,
    stop: watch::Receiver<bool>,
}

impl<S> EndsOnStop<S> {
    fn new(inner: S, stop: &watch::Receiver<bool>) -> EndsOnStop<S> {
        EndsOnStop {
            inner,
            stop: stop.clone(),
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for EndsOnStop<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for EndsOnStop<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The request ends too, so that a handler reading a client's stream lets go of it.
        let req = req.map(|body| tonic::body::Body::new(UntilStop::new(body, &self.stop, None)));
        let fut = self.inner.call(req);
        let stop = self.stop.clone();
        Box::pin(async move {
            let resp = fut.await?;
            let unavailable = {
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", http::HeaderValue::from_static("14"));
                t.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("the server is shutting down"),
                );
                t
            };
            Ok(resp
                .map(|body| tonic::body::Body::new(UntilStop::new(body, &stop, Some(unavailable)))))
        })
    }
}

/// A body that ends once the server stops: with `trailers` if given (a response), else simply
/// (a request, as if the client had finished sending).
struct UntilStop {
    body: tonic::body::Body,
    stopped: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    trailers: Option<http::HeaderMap>,
    ended: bool,
}

impl UntilStop {
    fn new(
        body: tonic::body::Body,
        stop: &watch::Receiver<bool>,
        trailers: Option<http::HeaderMap>,
    ) -> UntilStop {
        let mut stop = stop.clone();
        UntilStop {
            body,
            stopped: Box::pin(async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
            trailers,
            ended: false,
        }
    }
}

impl http_body::Body for UntilStop {
    type Data = prost::bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Status>>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.stopped.as_mut().poll(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(
                self.trailers
                    .take()
                    .map(|t| Ok(http_body::Frame::trailers(t))),
            );
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }
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

//! Closing idle connections: a connection with no call in flight for `max_idle` is closed, as
//! gRPC's `MaxConnectionIdle` does (HTTP/2 keepalive pings do not count as activity; an open
//! Watch or Run stream does). tonic has no per-connection hook for it, so each accepted socket
//! is wrapped ([`IdleIo`]) and a tower layer ([`Activity`]) counts the calls in flight on it,
//! matched by the peer's address.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// One connection's calls in flight, and when the last one ended.
#[derive(Debug)]
struct Conn {
    in_flight: AtomicUsize,
    /// Since the idle timer's epoch, ms.
    last_active: std::sync::atomic::AtomicU64,
}

/// The connections being watched for idleness, by peer address.
#[derive(Debug)]
pub(super) struct Registry {
    conns: DashMap<SocketAddr, Arc<Conn>>,
    max_idle: Duration,
    epoch: Instant,
}

impl Registry {
    pub(super) fn new(max_idle: Duration) -> Arc<Registry> {
        Arc::new(Registry {
            conns: DashMap::new(),
            max_idle,
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A call on the connection from `peer` began (true) or ended (false).
    fn call(&self, peer: SocketAddr, began: bool) {
        if let Some(c) = self.conns.get(&peer) {
            if began {
                c.in_flight.fetch_add(1, Ordering::Relaxed);
            } else {
                c.last_active.store(self.now_ms(), Ordering::Relaxed);
                c.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Wraps an accepted socket.
    pub(super) fn wrap(self: &Arc<Self>, io: TcpStream) -> IdleIo {
        let peer = io.peer_addr().ok();
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: self.now_ms().into(),
        });
        if let Some(p) = peer {
            self.conns.insert(p, conn.clone());
        }
        let sleep = Box::pin(tokio::time::sleep(self.max_idle));
        IdleIo {
            io,
            peer,
            conn,
            registry: self.clone(),
            sleep,
        }
    }
}

/// An accepted socket that ends (as if the peer had closed it) once its connection has had no
/// call in flight for `max_idle`.
pub(super) struct IdleIo {
    io: TcpStream,
    peer: Option<SocketAddr>,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    sleep: Pin<Box<Sleep>>,
}

impl IdleIo {
    /// Whether the connection is idle past the limit; else the timer is set for when it could be.
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let r = &self.registry;
            let last = self.conn.last_active.load(Ordering::Relaxed);
            let until = r.epoch + Duration::from_millis(last) + r.max_idle;
            if self.conn.in_flight.load(Ordering::Relaxed) == 0 && until <= Instant::now() {
                return true;
            }
            // A call is in flight, or one ended since: look again a whole period from now, or
            // when the last one ended plus the period.
            let next = until.max(Instant::now() + r.max_idle.min(Duration::from_secs(1)));
            self.sleep.as_mut().reset(next);
        }
    }
}

impl Drop for IdleIo {
    fn drop(&mut self) {
        if let Some(p) = self.peer {
            self.registry
                .conns
                .remove_if(&p, |_, c| Arc::ptr_eq(c, &self.conn));
        }
    }
}

impl Connected for IdleIo {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if read.is_pending() && self.idle(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle",
            )));
        }
        read
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Counts each call in flight on its connection, from its start to the end of its response
/// (a stream counts its whole life).
#[derive(Clone)]
pub(super) struct Activity(pub(super) Option<Arc<Registry>>);

impl<S> tower::Layer<S> for Activity {
    type Service = ActivityService<S>;
    fn layer(&self, inner: S) -> ActivityService<S> {
        ActivityService {
            inner,
            registry: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct ActivityService<S> {
    inner: S,
    registry: Option<Arc<Registry>>,
}

/// Ends the count of one call when dropped (with its response body, or with the call if it
/// never got one).
struct InFlight {
    registry: Arc<Registry>,
    peer: SocketAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.registry.call(self.peer, false);
    }
}

impl<S, B> tower::Service<http::Request<B>> for ActivityService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|i| i.remote_addr)
            .or_else(|| {
                req.extensions()
                    .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|i| i.get_ref().remote_addr)
            });
        let guard = match (&self.registry, peer) {
            (Some(registry), Some(peer)) => {
                registry.call(peer, true);
                Some(InFlight {
                    registry: registry.clone(),
                    peer,
                })
            }
            _ => None,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let Some(guard) = guard else {
                return Ok(resp);
            };
            Ok(resp.map(|body| {
                tonic::body::Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                    let _held = &guard; // dropped with the body
                    f
                }))
            }))
        })
    }
}

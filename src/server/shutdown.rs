//! Stopping well: the streams the server does not write itself (health's Watch, reflection's)
//! end when it stops, so that none holds the shutdown for the whole grace; and the signals that
//! start a shutdown.

use std::future::Future;

use tokio::sync::watch;
use tonic::Status;

/// A service whose response streams end (UNAVAILABLE, "the server is shutting down") when the
/// server stops: health's Watch and reflection's streams never end on their own, and one left
/// open would hold the shutdown for the whole grace period.
#[derive(Clone)]
pub(super) struct EndsOnStop<S> {
    inner: S,
    stop: watch::Receiver<bool>,
}

impl<S> EndsOnStop<S> {
    pub(super) fn new(inner: S, stop: &watch::Receiver<bool>) -> EndsOnStop<S> {
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

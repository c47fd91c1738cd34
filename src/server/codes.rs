//! Status codes as gRPC defines them where tonic's differ: a message over the size limit is
//! `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE`), rewritten in the response's headers or
//! trailers, so that clients retry or split as for any other exhausted limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};

/// tonic's words for a message over `max_decoding_message_size`.
const TOO_LARGE: &str = "message length too large";

/// Rewrites `OUT_OF_RANGE` for an oversized message to `RESOURCE_EXHAUSTED`.
fn fix(headers: &mut HeaderMap) {
    let oversized = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.replace("%20", " ").contains(TOO_LARGE));
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

#[derive(Clone)]
pub(super) struct GrpcCodes;

impl<S> tower::Layer<S> for GrpcCodes {
    type Service = GrpcCodesService<S>;
    fn layer(&self, inner: S) -> GrpcCodesService<S> {
        GrpcCodesService(inner)
    }
}

#[derive(Clone)]
pub(super) struct GrpcCodesService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for GrpcCodesService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            fix(resp.headers_mut()); // a trailers-only response
            Ok(resp.map(|body| {
                tonic::body::Body::new(http_body_util::BodyExt::map_frame(body, |mut f| {
                    if let Some(t) = f.trailers_mut() {
                        fix(t);
                    }
                    f
                }))
            }))
        })
    }
}

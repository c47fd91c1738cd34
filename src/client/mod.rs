//! Reaching a tcpsim server as a client: the target's spelling, TLS, the bearer token, and the
//! health check. What `health`, `load` and `conformance --target` share.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::service::proto::simulator_client::SimulatorClient;

mod pinned;

/// A Simulator client that sends the token, if any, with every call.
pub type Client = SimulatorClient<InterceptedService<Channel, Bearer>>;

/// A server's address as the user wrote it: a URL (`http://host:port`, `https://…`), or a bare
/// `host:port` as `serve` prints it (taken as `http://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target(String);

impl Target {
    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.0
    }
}

impl Default for Target {
    /// Where `serve` listens by default.
    fn default() -> Target {
        Target(format!("http://{}", crate::server::DEFAULT_LISTEN))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Target {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Target, ClientError> {
        let s = s.trim();
        let url = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let uri: http::Uri = url.parse().map_err(|e| ClientError::Target {
            target: s.into(),
            why: format!("{e}"),
        })?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(Target(url)),
            (Some("http" | "https"), _) => Err(ClientError::Target {
                target: s.into(),
                why: "it names no host".into(),
            }),
            _ => Err(ClientError::Target {
                target: s.into(),
                why: "the scheme must be http or https".into(),
            }),
        }
    }
}

/// How to reach the servers: TLS and the token.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Sent as `authorization: Bearer <token>` with every call.
    pub token: Option<String>,
    /// Trust this PEM CA certificate for https:// targets (a self-signed server's own).
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The name the server's certificate is for, if not the target's host.
    pub tls_domain: Option<String>,
    /// A client certificate chain and its key (PEM), for servers that require one (mutual TLS).
    pub tls_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// How long to keep trying a server whose address refuses connections (one still
    /// starting), saying so once on stderr; zero: fail at once.
    pub wait: Duration,
}

/// Why a server could not be reached or asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{target:?} is not a server address: {why}")]
    Target { target: String, why: String },
    #[error("the token cannot be sent as metadata (printable ASCII only)")]
    Token,
    #[error("TLS: {}", causes(.0))]
    Tls(tonic::transport::Error),
    #[error("{0}")]
    TlsCa(String),
    #[error("cannot reach {target}: {}", causes(source))]
    Unreachable {
        target: Target,
        source: tonic::transport::Error,
    },
    #[error("{target}: {}: {}", .status.code(), .status.message())]
    Call { target: Target, status: Status },
}

/// An error and its causes, "a: b: c", each said once: tonic's transport errors say only
/// "transport error" and keep the reason (connection refused, a bad certificate, an unknown
/// host) in their sources, while other errors repeat their source in their own message.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out += ": ";
            out += &text;
        }
        next = cause.source();
    }
    out
}

/// Whether `e` is, at its root, a refused TCP connection: nothing listens there (yet).
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |cause| cause.source()).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// Adds the bearer token to each request.
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Options {
    fn bearer(&self) -> Result<Bearer, ClientError> {
        let value = self.token.as_ref().map(|t| format!("Bearer {t}").parse());
        Ok(Bearer(value.transpose().map_err(|_| ClientError::Token)?))
    }

    fn endpoint(&self, target: &Target) -> Result<Endpoint, ClientError> {
        let mut endpoint = Endpoint::from_shared(target.url().to_string())
            .map_err(|e| ClientError::Target {
                target: target.to_string(),
                why: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        if target.url().starts_with("https://") || self.tls_ca_pem.is_some() {
            let mut tls = ClientTlsConfig::new();
            if let Some((cert, key)) = &self.tls_identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            if let Some(d) = &self.tls_domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = match &self.tls_ca_pem {
                Some(pem) => {
                    let verifier = pinned::Pinned::from_pem(pem).map_err(ClientError::TlsCa)?;
                    endpoint.tls_config_with_verifier(tls, std::sync::Arc::new(verifier))
                }
                None => endpoint.tls_config(tls),
            }
            .map_err(ClientError::Tls)?;
        }
        Ok(endpoint)
    }

    /// A channel to `target`, connected; a refused connection is tried again every 100 ms for
    /// `wait`.
    pub async fn channel(&self, target: &Target) -> Result<Channel, ClientError> {
        let endpoint = self.endpoint(target)?;
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            match endpoint.connect().await {
                Ok(channel) => return Ok(channel),
                Err(source) if refused(&source) && started.elapsed() < self.wait => {
                    if !said {
                        eprintln!(
                            "waiting up to {:.0} s for {target} to start listening…",
                            self.wait.as_secs_f64()
                        );
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(source) => {
                    return Err(ClientError::Unreachable {
                        target: target.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// A Simulator client for `target`, connected.
    pub async fn connect(&self, target: &Target) -> Result<Client, ClientError> {
        let bearer = self.bearer()?;
        Ok(SimulatorClient::with_interceptor(
            self.channel(target).await?,
            bearer,
        ))
    }

    /// Asks `target`'s grpc.health.v1 service for the whole server's status.
    pub async fn health(&self, target: &Target) -> Result<ServingStatus, ClientError> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let mut c = HealthClient::new(self.channel(target).await?);
        let status = c
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| ClientError::Call {
                target: target.clone(),
                status,
            })?
            .into_inner()
            .status;
        Ok(ServingStatus::try_from(status).unwrap_or(ServingStatus::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_url_or_a_bare_host_and_port() {
        let t = |s: &str| s.parse::<Target>().map(|t| t.url().to_string());
        assert_eq!(t("127.0.0.1:50051").unwrap(), "http://127.0.0.1:50051");
        assert_eq!(t("localhost:7").unwrap(), "http://localhost:7");
        assert_eq!(t(" [::1]:50051 ").unwrap(), "http://[::1]:50051");
        assert_eq!(
            t("https://sim.example:443").unwrap(),
            "https://sim.example:443"
        );
        assert_eq!(Target::default().url(), "http://127.0.0.1:50051");
        for (bad, why) in [
            ("ftp://host:21", "the scheme must be http or https"),
            ("http://", "not a server address"),
            ("two words:1", "not a server address"),
        ] {
            let err = t(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_token_that_is_not_metadata_is_refused() {
        let opts = Options {
            token: Some("line\nbreak".into()),
            ..Options::default()
        };
        assert!(matches!(opts.bearer(), Err(ClientError::Token)));
    }

    #[test]
    fn causes_name_the_reason_under_a_vague_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("Connection refused"));
        assert_eq!(causes(&e), "transport error: Connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read: {0}")]
        struct Repeats(#[source] std::io::Error);
        let e = Repeats(std::io::Error::other("gone"));
        assert_eq!(causes(&e), "cannot read: gone");
    }
}

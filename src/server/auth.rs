//! The bearer token: checked in constant time on every call to the services it guards; each
//! refusal is logged with the caller's address, at most one line a second (with how many were
//! not logged since), so that a flood of bad calls cannot flood the log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Status};

/// Checks the bearer token, if one is configured.
#[derive(Clone)]
pub(super) struct Auth {
    token: Option<Arc<str>>,
    log: Arc<Mutex<Quiet>>,
}

/// When a refusal was last logged, and how many have not been since.
#[derive(Default)]
struct Quiet {
    last: Option<Instant>,
    unlogged: u64,
}

const LOG_EVERY: Duration = Duration::from_secs(1);

impl Auth {
    pub(super) fn new(token: Option<&str>) -> Auth {
        Auth {
            token: token.map(Arc::from),
            log: Arc::default(),
        }
    }

    fn refuse(&self, peer: Option<SocketAddr>, why: &'static str, message: &str) -> Status {
        let mut q = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if q.last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
            tracing::warn!(
                peer = %peer,
                reason = why,
                unlogged_since = q.unlogged,
                "authentication failed"
            );
            q.last = Some(now);
            q.unlogged = 0;
        } else {
            q.unlogged += 1;
        }
        Status::unauthenticated(message)
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(req);
        };
        match req
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""))
        {
            None => Err(self.refuse(
                req.remote_addr(),
                "missing",
                "missing bearer token: send metadata authorization: Bearer <token>",
            )),
            Some(v)
                if v.strip_prefix("Bearer ")
                    .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) =>
            {
                Ok(req)
            }
            Some(_) => Err(self.refuse(req.remote_addr(), "wrong", "wrong bearer token")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

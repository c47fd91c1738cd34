//! The conformance engine over the gRPC API: each scenario opens an EXTERNAL connection on a
//! server that runs a virtual clock, with the scenario's settings, and plays the peer through
//! Inject, Wire and AdvanceClock. The server is shared by the scenarios, so times are taken
//! relative to the server's clock when a scenario starts.

use tonic::Request;

use super::{Engine, EngineError};
use crate::client::{Client, ClientError, Options, Target};
use crate::service::convert;
use crate::service::proto as pb;
use crate::tcp::{Call, Config, Segment, SeqNum, State};

pub struct ViaGrpc {
    rt: tokio::runtime::Runtime,
    client: Client,
    settings: pb::TcpSettings,
    /// The server's clock when the scenario started.
    base: u64,
    /// Scenario time the clock stands at.
    now: u64,
    id: Option<u64>,
    /// The endpoint's incarnation, sent with every request about it.
    incarnation: Option<u64>,
    role: i32,
    answers: Vec<(u64, Segment)>,
}

/// Why the engine could not be set up against a server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot start a runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{target}: {source}")]
    Call { target: Target, source: EngineError },
    #[error(
        "the server at {target} runs a {clock} clock; conformance needs `tcpsim serve --clock virtual`"
    )]
    RealClock { target: Target, clock: String },
}

impl ViaGrpc {
    pub fn connect(target: &Target, opts: &Options) -> Result<ViaGrpc, ConnectError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(opts.connect(target))?;
        let mut engine = ViaGrpc {
            rt,
            client,
            settings: pb::TcpSettings::default(),
            base: 0,
            now: 0,
            id: None,
            incarnation: None,
            role: 0,
            answers: Vec::new(),
        };
        let stats = engine
            .call(|c, r| Box::pin(c.stats(r)), pb::StatsRequest {})
            .map_err(|source| ConnectError::Call {
                target: target.clone(),
                source,
            })?;
        if stats.clock != "virtual" {
            return Err(ConnectError::RealClock {
                target: target.clone(),
                clock: stats.clock,
            });
        }
        Ok(engine)
    }

    /// One unary call.
    fn call<Q, A>(
        &mut self,
        f: impl FnOnce(
            &mut Client,
            Request<Q>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<tonic::Response<A>, tonic::Status>> + '_>,
        >,
        q: Q,
    ) -> Result<A, EngineError> {
        let fut = f(&mut self.client, Request::new(q));
        Ok(self.rt.block_on(fut)?.into_inner())
    }

    /// Listen or connect: an EXTERNAL endpoint with the scenario's settings and this ISS.
    fn open(&mut self, role: pb::Side, iss: SeqNum) -> Result<(), EngineError> {
        let req = pb::OpenRequest {
            mode: pb::Mode::External as i32,
            role: role as i32,
            iss: Some(iss.0),
            settings: Some(self.settings),
            ..Default::default()
        };
        let o = self.call(|c, r| Box::pin(c.open(r)), req)?;
        let opened = o.connections.first();
        let opened = opened.ok_or_else(|| EngineError::BadReply("Open opened nothing".into()))?;
        self.id = Some(opened.id);
        self.incarnation = Some(opened.incarnation);
        self.role = role as i32;
        Ok(())
    }

    fn id(&self) -> Result<u64, EngineError> {
        self.id.ok_or(EngineError::NotOpen)
    }

    fn side(&self) -> i32 {
        self.role
    }
}

/// A segment the server reported, or why it is not one.
fn segment(field: &str, s: &pb::Segment) -> Result<Segment, EngineError> {
    convert::segment_from_pb(field, s).map_err(|e| EngineError::BadReply(e.message().into()))
}

impl Engine for ViaGrpc {
    fn start(&mut self, cfg: &Config) -> Result<(), EngineError> {
        if let Some(id) = self.id.take() {
            let incarnation = self.incarnation.take();
            let req = pb::RemoveRequest { id, incarnation };
            self.call(|c, r| Box::pin(c.remove(r)), req)?;
        }
        // Every setting, so that the server's own settings do not matter.
        self.settings = convert::settings_to_pb(cfg);
        self.base = self
            .call(|c, r| Box::pin(c.stats(r)), pb::StatsRequest {})?
            .now_ms;
        self.now = 0;
        self.answers.clear();
        Ok(())
    }

    fn call(&mut self, call: Call) -> Result<(), EngineError> {
        let incarnation = self.incarnation;
        let close = |id, side, how: pb::CloseKind| pb::CloseRequest {
            incarnation,
            id,
            side,
            how: how as i32,
            ..Default::default()
        };
        match call {
            Call::Listen { iss } => self.open(pb::Side::Server, iss),
            Call::Connect { iss } => self.open(pb::Side::Client, iss),
            Call::Send(bytes) => {
                let req = pb::SendRequest {
                    incarnation,
                    id: self.id()?,
                    side: self.side(),
                    bytes,
                    ..Default::default()
                };
                self.call(|c, r| Box::pin(c.send(r)), req).map(drop)
            }
            Call::Shutdown => {
                let req = close(self.id()?, self.side(), pb::CloseKind::Shutdown);
                self.call(|c, r| Box::pin(c.close(r)), req).map(drop)
            }
            Call::Close => {
                let req = close(self.id()?, self.side(), pb::CloseKind::Close);
                self.call(|c, r| Box::pin(c.close(r)), req).map(drop)
            }
            Call::Abort => {
                let req = pb::AbortRequest {
                    incarnation,
                    id: self.id()?,
                    side: self.side(),
                    ..Default::default()
                };
                self.call(|c, r| Box::pin(c.abort(r)), req).map(drop)
            }
        }
    }

    fn inject(&mut self, seg: Segment) -> Result<(), EngineError> {
        let req = pb::InjectRequest {
            incarnation: self.incarnation,
            id: self.id()?,
            to: self.side(),
            segment: Some(convert::segment_to_pb(&seg, None)),
        };
        let r = self.call(|c, r| Box::pin(c.inject(r)), req)?;
        for s in &r.emitted {
            self.answers.push((self.now, segment("emitted", s)?));
        }
        Ok(())
    }

    fn advance_to(&mut self, t: u64) -> Result<(), EngineError> {
        if t > self.now {
            let millis = t - self.now;
            self.call(
                |c, r| Box::pin(c.advance_clock(r)),
                pb::AdvanceClockRequest {
                    ms: millis,
                    millis: 0,
                },
            )?;
            self.now = t;
        }
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, EngineError> {
        let mut all = std::mem::take(&mut self.answers);
        let Some(id) = self.id else { return Ok(all) };
        let conn = self.call(
            |c, r| Box::pin(c.get(r)),
            pb::GetRequest {
                incarnation: self.incarnation,
                id,
                tuple: None,
            },
        )?;
        let waiting = conn.wire.first().map_or(0, |q| q.segments.len()) as u32;
        if waiting > 0 {
            let dir = if self.role == pb::Side::Client as i32 {
                pb::Direction::ClientToServer
            } else {
                pb::Direction::ServerToClient
            };
            let req = pb::WireRequest {
                incarnation: self.incarnation,
                id,
                direction: dir as i32,
                action: pb::WireAction::Deliver as i32,
                count: waiting,
                ..Default::default()
            };
            let w = self.call(|c, r| Box::pin(c.wire(r)), req)?;
            for s in &w.moved {
                let at = s
                    .emitted_at_ms
                    .unwrap_or(self.base + self.now)
                    .saturating_sub(self.base);
                all.push((at, segment("moved", s)?));
            }
        }
        all.sort_by_key(|&(at, _)| at);
        Ok(all)
    }

    fn state(&mut self) -> Result<State, EngineError> {
        let conn = self.call(
            |c, r| Box::pin(c.get(r)),
            pb::GetRequest {
                incarnation: self.incarnation,
                id: self.id()?,
                tuple: None,
            },
        )?;
        let s = conn
            .endpoints
            .first()
            .ok_or_else(|| EngineError::BadReply("the connection has no endpoint".into()))?
            .state;
        let s = pb::State::try_from(s)
            .map_err(|_| EngineError::BadReply(format!("unknown state {s}")))?;
        Ok(convert::state_from_pb(s))
    }
}

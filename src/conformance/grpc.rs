//! The conformance engine over the gRPC API: each scenario opens an EXTERNAL connection on a
//! server that runs a virtual clock, with the scenario's settings, and plays the peer through
//! Inject, Wire and AdvanceClock. The server is shared by the scenarios, so times are taken
//! relative to the server's clock when a scenario starts.

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::{Engine, UserCall};
use crate::service::convert;
use crate::service::proto as pb;
use crate::service::proto::simulator_client::SimulatorClient;
use crate::tcp::{Config, Segment, SeqNum, State};

pub struct ViaGrpc {
    rt: tokio::runtime::Runtime,
    client: SimulatorClient<Channel>,
    token: Option<String>,
    settings: pb::TcpSettings,
    iss: SeqNum,
    /// The server's clock when the scenario started.
    base: u64,
    /// Scenario time the clock stands at.
    now: u64,
    id: Option<u64>,
    role: i32,
    answers: Vec<(u64, Segment)>,
}

impl ViaGrpc {
    pub fn connect(url: &str, token: Option<String>) -> Result<ViaGrpc, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = rt
            .block_on(SimulatorClient::connect(url.to_string()))
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let mut engine = ViaGrpc {
            rt,
            client,
            token,
            settings: pb::TcpSettings::default(),
            iss: SeqNum(0),
            base: 0,
            now: 0,
            id: None,
            role: 0,
            answers: Vec::new(),
        };
        let stats = engine.call(|c, r| Box::pin(c.stats(r)), pb::StatsRequest {})?;
        if stats.clock != "virtual" {
            return Err(format!(
                "the server at {url} runs a {} clock; conformance needs `tcpsim serve --clock virtual`",
                stats.clock
            ));
        }
        Ok(engine)
    }

    /// One unary call, with the token if any.
    fn call<Q, A>(
        &mut self,
        f: impl FnOnce(
            &mut SimulatorClient<Channel>,
            Request<Q>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<tonic::Response<A>, tonic::Status>> + '_>,
        >,
        q: Q,
    ) -> Result<A, String> {
        let mut req = Request::new(q);
        if let Some(t) = &self.token {
            let v: MetadataValue<_> = format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token is not valid metadata".to_string())?;
            req.metadata_mut().insert("authorization", v);
        }
        let client = &mut self.client;
        let fut = f(client, req);
        self.rt
            .block_on(fut)
            .map(|r| r.into_inner())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    fn id(&self) -> Result<u64, String> {
        self.id.ok_or_else(|| {
            "the scenario has not opened its endpoint yet (listen or connect)".into()
        })
    }

    fn side(&self) -> i32 {
        self.role
    }
}

impl Engine for ViaGrpc {
    fn start(&mut self, cfg: &Config, iss: SeqNum) -> Result<(), String> {
        if let Some(id) = self.id.take() {
            self.call(|c, r| Box::pin(c.remove(r)), pb::RemoveRequest { id })?;
        }
        // Every setting, so that the server's own settings do not matter.
        self.settings = convert::settings_to_pb(cfg);
        self.iss = iss;
        self.base = self
            .call(|c, r| Box::pin(c.stats(r)), pb::StatsRequest {})?
            .now_ms;
        self.now = 0;
        self.answers.clear();
        Ok(())
    }

    fn call(&mut self, call: UserCall) -> Result<(), String> {
        let role = match call {
            UserCall::Listen => Some(pb::Side::Server),
            UserCall::Connect => Some(pb::Side::Client),
            _ => None,
        };
        if let Some(role) = role {
            let req = pb::OpenRequest {
                mode: pb::Mode::External as i32,
                role: role as i32,
                iss: Some(self.iss.0),
                settings: Some(self.settings),
                ..Default::default()
            };
            let o = self.call(|c, r| Box::pin(c.open(r)), req)?;
            self.id = Some(
                o.connections
                    .first()
                    .ok_or("Open returned no connection")?
                    .id,
            );
            self.role = role as i32;
            return Ok(());
        }
        let (id, side) = (self.id()?, self.side());
        match call {
            UserCall::Send(bytes) => self
                .call(
                    |c, r| Box::pin(c.send(r)),
                    pb::SendRequest { id, side, bytes },
                )
                .map(drop),
            UserCall::Shutdown | UserCall::Close => {
                let how = if call == UserCall::Shutdown {
                    pb::CloseKind::Shutdown
                } else {
                    pb::CloseKind::Close
                };
                self.call(
                    |c, r| Box::pin(c.close(r)),
                    pb::CloseRequest {
                        id,
                        side,
                        how: how as i32,
                    },
                )
                .map(drop)
            }
            _ => self
                .call(|c, r| Box::pin(c.abort(r)), pb::AbortRequest { id, side })
                .map(drop),
        }
    }

    fn inject(&mut self, seg: Segment) -> Result<(), String> {
        let req = pb::InjectRequest {
            id: self.id()?,
            to: self.side(),
            segment: Some(convert::segment_to_pb(&seg, None)),
        };
        let r = self.call(|c, r| Box::pin(c.inject(r)), req)?;
        for s in &r.emitted {
            let seg =
                convert::segment_from_pb("emitted", s).map_err(|e| e.message().to_string())?;
            self.answers.push((self.now, seg));
        }
        Ok(())
    }

    fn advance_to(&mut self, t: u64) -> Result<(), String> {
        if t > self.now {
            let millis = t - self.now;
            self.call(
                |c, r| Box::pin(c.advance_clock(r)),
                pb::AdvanceClockRequest { millis },
            )?;
            self.now = t;
        }
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, String> {
        let mut all = std::mem::take(&mut self.answers);
        let Some(id) = self.id else { return Ok(all) };
        let conn = self.call(
            |c, r| Box::pin(c.get(r)),
            pb::GetRequest { id, tuple: None },
        )?;
        let waiting = conn.wire.first().map_or(0, |q| q.segments.len()) as u32;
        if waiting > 0 {
            let dir = if self.role == pb::Side::Client as i32 {
                pb::Direction::ClientToServer
            } else {
                pb::Direction::ServerToClient
            };
            let req = pb::WireRequest {
                id,
                direction: dir as i32,
                action: pb::WireAction::Deliver as i32,
                count: waiting,
            };
            let w = self.call(|c, r| Box::pin(c.wire(r)), req)?;
            for s in &w.moved {
                let at = s
                    .emitted_at_ms
                    .unwrap_or(self.base + self.now)
                    .saturating_sub(self.base);
                all.push((
                    at,
                    convert::segment_from_pb("moved", s).map_err(|e| e.message().to_string())?,
                ));
            }
        }
        all.sort_by_key(|&(at, _)| at);
        Ok(all)
    }

    fn state(&mut self) -> Result<State, String> {
        let conn = self.call(
            |c, r| Box::pin(c.get(r)),
            pb::GetRequest {
                id: self.id()?,
                tuple: None,
            },
        )?;
        let s = conn
            .endpoints
            .first()
            .ok_or("the connection has no endpoint")?
            .state;
        Ok(convert::state_from_pb(
            pb::State::try_from(s).map_err(|_| format!("unknown state {s}"))?,
        ))
    }
}

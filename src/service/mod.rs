//! The gRPC service: tonic glue only. Each RPC converts proto to domain types, calls the table,
//! and converts back; table errors become a `Status` through `From<table::Error>` in `convert`.
//! The same operations serve the unary RPCs and the `Run` stream.
//!
//! Owns: request validation (every refusal names its field), the caps that keep a client from
//! growing the server's memory (batch sizes, page sizes, the Watch buffer; Run holds no buffer of
//! its own: it reads a command only when its result can be sent), and the streams.

pub mod codec;
pub mod convert;
pub mod fast_path;
pub mod proto;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::table::links::LinkTarget;
use crate::table::listeners::{ListenChange, ListenEvent};
use crate::table::{self, ConnId, Mode, OpenFailure, OpenSpec, Sides, Table};
use crate::tcp::{Call, Side, State, TimerKind};
use convert::invalid;
use proto as pb;
use proto::simulator_server::Simulator;

/// Caps on what one request may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most connections one Open may ask for.
    pub max_open_batch: u32,
    /// Most connections one List page may hold.
    pub max_page_size: u32,
    /// Most segments one Wire call may move.
    pub max_wire_count: u32,
    /// Events a Watch subscriber may have queued before it is told it missed some.
    pub watch_buffer: usize,
    /// Watch subscribers at once, on all connections.
    pub max_watchers: usize,
    /// Most connections one Close, Abort or Send on many may act on.
    pub max_bulk: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_open_batch: 10_000,
            max_page_size: 1_000,
            max_wire_count: 1_024,
            watch_buffer: 1_024,
            max_watchers: 64,
            max_bulk: 100_000,
        }
    }
}

/// The operations, shared by the unary RPCs and `Run`.
pub struct Ops {
    pub table: Arc<Table>,
    pub limits: Limits,
    /// Clock advances take turns: one runs at a time, the others wait.
    advance_turn: Arc<tokio::sync::Mutex<()>>,
}

/// The connections a call on many names: ids (and a selector, which is an error with them), or
/// a selector alone.
enum Many<'a> {
    Ids(&'a [u64], Option<&'a pb::Selector>),
    Select(&'a pb::Selector),
}

impl<'a> Many<'a> {
    /// `None` for a call on one connection: no ids, no selector.
    fn new(ids: &'a [u64], select: Option<&'a pb::Selector>) -> Option<Many<'a>> {
        match (ids.is_empty(), select) {
            (true, None) => None,
            (true, Some(s)) => Some(Many::Select(s)),
            (false, s) => Some(Many::Ids(ids, s)),
        }
    }
}

/// The connection a request names: its id, and its incarnation if the request carries one.
fn target(id: u64, incarnation: Option<u64>) -> table::Target {
    table::Target {
        id: ConnId(id),
        incarnation,
    }
}

/// Tells a clock advance to stop when the call that asked for it is dropped (its client went
/// away, or its deadline passed).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Ops {
    pub fn open(&self, r: &pb::OpenRequest) -> Result<pb::OpenResponse, Status> {
        let count = r.count.max(1);
        if count > self.limits.max_open_batch {
            return Err(Status::resource_exhausted(format!(
                "count: {count} is over the batch cap of {}",
                self.limits.max_open_batch
            )));
        }
        let mode = convert::mode("mode", r.mode, r.role)?;
        let mut spec = OpenSpec::new(mode);
        if self.table.clock().is_virtual() {
            // The worker thread that answers a call is chance: on a virtual clock, where a
            // scenario must replay exactly, the 4-tuples follow the order of the opens alone.
            spec.port_shard = Some(0);
        }
        if let Some(t) = r
            .tuple
            .as_ref()
            .filter(|t| !t.client.is_empty() || !t.server.is_empty())
        {
            if count > 1 {
                return Err(invalid(
                    "tuple",
                    "an explicit 4-tuple opens one connection; count must be 1",
                ));
            }
            let tuple = convert::tuple("tuple", t)?;
            self.table
                .addresses()
                .id_of(&tuple)
                .map_err(|e| invalid("tuple", e))?;
            spec.tuple = Some(tuple);
        }
        if !r.client_ip.is_empty() {
            let ip = convert::ipv4("client_ip", &r.client_ip)?;
            self.table
                .addresses()
                .ip_index(ip)
                .map_err(|e| invalid("client_ip", e))?;
            spec.client_ip = Some(ip);
        }
        if !r.server.is_empty() {
            let s = convert::socket("server", &r.server)?;
            self.table
                .addresses()
                .server_index(s)
                .map_err(|e| invalid("server", e))?;
            spec.server = Some(s);
        }
        spec.iss = r.iss;
        spec.server_iss = r.server_iss;
        if let Some(s) = &r.settings {
            if mode == Mode::Auto {
                return Err(table::Error::SettingsOnAuto.into());
            }
            spec.settings = Some(convert::settings(self.table.tcp_config(), s)?);
        }
        if !r.link.is_empty() {
            if mode != Mode::Auto {
                return Err(invalid(
                    "link",
                    format!("only AUTO pairs run over a link; this open is {mode}"),
                ));
            }
            spec.link = Some(r.link.parse().map_err(|e| invalid("link", e))?);
        }
        let opened = |o: &table::Opened| opened_pb(o, !r.ids_only);
        if count == 1 {
            let o = self.table.open(&spec)?;
            return Ok(pb::OpenResponse {
                connections: vec![opened(&o)],
                failed: 0,
                failures: HashMap::new(),
            });
        }
        let mut resp = pb::OpenResponse::default();
        let refused = self
            .table
            .open_batch(&spec, count, |o| resp.connections.push(opened(&o)))?;
        if let Some((why, n)) = refused {
            resp.failed = n;
            resp.failures.insert(why.as_str().to_string(), n);
        }
        Ok(resp)
    }

    pub fn close(&self, r: &pb::CloseRequest) -> Result<pb::ConnectionStates, Status> {
        let sides = convert::sides("side", r.side)?;
        let how = convert::close_how("how", r.how)?;
        let many = Many::new(&r.ids, r.select.as_ref());
        self.call(target(r.id, r.incarnation), many, sides, how)
    }

    pub fn abort(&self, r: &pb::AbortRequest) -> Result<pb::ConnectionStates, Status> {
        let side = convert::side("side", r.side)?;
        let many = Many::new(&r.ids, r.select.as_ref());
        let t = target(r.id, r.incarnation);
        self.call(t, many, Sides::One(side), Call::Abort)
    }

    pub fn send(&self, r: &pb::SendRequest) -> Result<pb::ConnectionStates, Status> {
        let side = convert::side("side", r.side)?;
        let many = Many::new(&r.ids, r.select.as_ref());
        let t = target(r.id, r.incarnation);
        self.call(t, many, Sides::One(side), Call::Send(r.bytes))
    }

    /// A user call on one connection, or on many: the ids given, or those a selector picks.
    fn call(
        &self,
        one: table::Target,
        many: Option<Many<'_>>,
        sides: Sides,
        call: Call,
    ) -> Result<pb::ConnectionStates, Status> {
        let Some(many) = many else {
            let s = self.table.call(one, sides, call)?;
            return Ok(convert::states_to_pb(one.id.0, &s));
        };
        let cap = self.limits.max_bulk;
        if one.id.0 != 0 || one.incarnation.is_some() {
            let field = if one.id.0 != 0 { "id" } else { "incarnation" };
            return Err(invalid(
                field,
                "a call on many connections takes ids or select, not one id",
            ));
        }
        let ids: Vec<ConnId> = match many {
            Many::Ids(_, Some(_)) => {
                return Err(invalid("select", "give ids or a selector, not both"));
            }
            Many::Ids(ids, None) => {
                if ids.len() > cap as usize {
                    return Err(Status::resource_exhausted(format!(
                        "ids: {} is over the cap of {cap} per call",
                        ids.len()
                    )));
                }
                ids.iter().map(|&id| ConnId(id)).collect()
            }
            Many::Select(sel) => {
                let limit = if sel.limit == 0 { cap } else { sel.limit };
                if limit > cap {
                    return Err(Status::resource_exhausted(format!(
                        "select.limit: {limit} is over the cap of {cap} per call"
                    )));
                }
                let state = convert::state_filter("select.state", sel.state)?;
                let client = if sel.client.is_empty() {
                    None
                } else {
                    Some(convert::cidr("select.client", &sel.client)?)
                };
                let after = (sel.after != 0).then_some(ConnId(sel.after));
                let addrs = self.table.addresses();
                self.table.select(after, limit as usize, |id, c| {
                    state.is_none_or(|want| {
                        sides
                            .iter()
                            .any(|s| c.endpoint(s).is_some_and(|e| e.state() == want))
                    }) && client.is_none_or(|block| {
                        addrs
                            .tuple_of(id)
                            .is_some_and(|t| block.contains(*t.client.ip()))
                    })
                })
            }
        };
        let mut out = pb::ConnectionStates::default();
        for id in ids {
            match self.table.call(id, sides, call) {
                Ok(_) => out.done += 1,
                Err(e) => {
                    let code = convert::code_name(Status::from(e).code());
                    *out.failed.entry(code).or_default() += 1;
                }
            }
        }
        Ok(out)
    }

    pub fn inject(&self, r: &pb::InjectRequest) -> Result<pb::InjectResponse, Status> {
        let to = convert::side("to", r.to)?;
        let seg = r
            .segment
            .as_ref()
            .ok_or_else(|| invalid("segment", "required"))?;
        let seg = convert::segment_from_pb("segment", seg)?;
        let i = self.table.inject(target(r.id, r.incarnation), to, &seg)?;
        Ok(pb::InjectResponse {
            before: convert::state_to_pb(i.before) as i32,
            after: convert::state_to_pb(i.after) as i32,
            emitted: i
                .emitted
                .iter()
                .map(|s| convert::segment_to_pb(s, None))
                .collect(),
            emitted_count: i.emitted_total,
        })
    }

    pub fn wire(&self, r: &pb::WireRequest) -> Result<pb::WireResponse, Status> {
        let dir = convert::direction("direction", r.direction)?;
        let action = convert::wire_action("action", r.action)?;
        let count = if r.all {
            if r.count != 0 {
                return Err(invalid("count", "give a count or all, not both"));
            }
            let c = self.table.get(target(r.id, r.incarnation))?;
            let waiting = c
                .wire
                .iter()
                .find(|(d, _)| *d == dir)
                .map_or(0, |(_, q)| q.len());
            if waiting == 0 {
                let states = convert::states_to_pb(r.id, &c.states());
                return Ok(pb::WireResponse {
                    moved: Vec::new(),
                    client: states.client,
                    server: states.server,
                });
            }
            (waiting as u32).min(self.limits.max_wire_count)
        } else {
            r.count.max(1)
        };
        if count > self.limits.max_wire_count {
            return Err(Status::resource_exhausted(format!(
                "count: {count} is over the cap of {} segments per call",
                self.limits.max_wire_count
            )));
        }
        let w = self
            .table
            .wire(target(r.id, r.incarnation), dir, action, count)?;
        let at = |i: usize| w.emitted_at.get(i).copied();
        let states = convert::states_to_pb(r.id, &w.states);
        Ok(pb::WireResponse {
            moved: w
                .moved
                .iter()
                .enumerate()
                .map(|(i, s)| convert::segment_to_pb(s, at(i)))
                .collect(),
            client: states.client,
            server: states.server,
        })
    }

    pub fn remove(&self, r: &pb::RemoveRequest) -> Result<pb::RemoveResponse, Status> {
        self.table.remove(target(r.id, r.incarnation))?;
        Ok(pb::RemoveResponse {})
    }

    pub fn get(&self, r: &pb::GetRequest) -> Result<pb::Connection, Status> {
        let id = match r
            .tuple
            .as_ref()
            .filter(|t| !t.client.is_empty() || !t.server.is_empty())
        {
            Some(t) => {
                let tuple = convert::tuple("tuple", t)?;
                self.table
                    .addresses()
                    .id_of(&tuple)
                    .map_err(|e| invalid("tuple", e))?
            }
            None => ConnId(r.id),
        };
        let c = self.table.get(table::Target {
            id,
            incarnation: r.incarnation,
        })?;
        Ok(convert::connection_to_pb(&c))
    }

    pub fn list(&self, r: &pb::ListRequest) -> Result<pb::ListResponse, Status> {
        let state = convert::state_filter("state", r.state)?;
        let side = convert::side_filter("side", r.side)?;
        let cap = self.limits.max_page_size;
        let size = if r.page_size == 0 { cap } else { r.page_size };
        if size > cap {
            return Err(Status::resource_exhausted(format!(
                "page_size: {size} is over the cap of {cap}"
            )));
        }
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(ConnId(r.page_token.parse().map_err(|_| {
                invalid("page_token", "not a token this server gave")
            })?))
        };
        let matches = |c: &table::Conn| {
            c.sides().iter().any(|&s| {
                side.is_none_or(|want| want == s)
                    && state.is_none_or(|want| c.endpoint(s).is_some_and(|e| e.state() == want))
            })
        };
        // One more than asked, to know whether another page follows.
        let mut page = self.table.list(after, size as usize + 1, matches);
        let more = page.len() > size as usize;
        page.truncate(size as usize);
        let next_page_token = if more {
            page.last().map(|c| c.id.0.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListResponse {
            connections: page.iter().map(convert::connection_to_pb).collect(),
            next_page_token,
        })
    }

    /// What the server was started with, as Stats reports it.
    fn settings(&self) -> pb::ServerSettings {
        let a = self.table.addresses();
        pb::ServerSettings {
            ports_low: u32::from(a.port_lo),
            ports_high: u32::from(a.port_hi),
            client_pools: a.pools().map(|p| p.to_string()).collect(),
            servers: a.servers().iter().map(|s| s.to_string()).collect(),
            time_wait_ms: self.table.tcp_config().time_wait_ms(),
            tcp_max_tw_buckets: self.table.max_tw_buckets(),
            link: self.table.links()[0].1.to_string(),
        }
    }

    pub fn stats(&self) -> pb::StatsResponse {
        let s = self.table.stats();
        let c = &s.counters;
        let mut r = pb::StatsResponse {
            connections: s.connections as u64,
            max_connections: s.max_connections as u64,
            ports_used: s.ports_used,
            ports_free: s.ports_capacity.saturating_sub(s.ports_used),
            clock: s.clock.to_string(),
            now_ms: s.now,
            settings: Some(self.settings()),
            time_wait_overflows: s.counters.time_wait_overflows,
            ..Default::default()
        };
        for side in Side::BOTH {
            let ps = convert::side_to_pb(side) as i32;
            for state in State::ALL {
                r.occupancy.push(pb::Occupancy {
                    side: ps,
                    state: convert::state_to_pb(state) as i32,
                    count: c.occupancy(side, state),
                });
                for to in State::ALL {
                    let n = c.transitions(side, state, to);
                    if n > 0 {
                        r.transitions.push(pb::TransitionCount {
                            side: ps,
                            from: convert::state_to_pb(state) as i32,
                            to: convert::state_to_pb(to) as i32,
                            count: n,
                        });
                    }
                }
            }
            for o in table::SegmentOutcome::ALL {
                r.segments.push(pb::SegmentCount {
                    side: ps,
                    outcome: convert::segment_outcome_to_pb(o) as i32,
                    count: c.segments(side, o),
                });
            }
        }
        for k in TimerKind::ALL {
            let kind = convert::timer_kind_to_pb(k) as i32;
            r.timers_pending.push(pb::TimerCount {
                kind,
                count: c.timers_pending(k),
            });
            r.timers_fired.push(pb::TimerCount {
                kind,
                count: c.timers_fired(k) as i64,
            });
        }
        for why in OpenFailure::ALL {
            r.open_failures
                .insert(why.as_str().into(), c.open_failures(why));
        }
        for e in ListenEvent::ALL {
            r.listen.insert(e.as_str().into(), c.listen(e));
        }
        r.listeners = s.listeners.iter().map(convert::listener_to_pb).collect();
        r.client_sysctls = Some(convert::client_sysctls_to_pb(self.table.tw_reuse()));
        r.time_wait_reused = c.time_wait_reused;
        r.segments_in_flight = c.in_flight.max(0) as u64;
        r.links = convert::links_to_pb(&self.table.links());
        r
    }

    pub fn set_link(&self, r: &pb::SetLinkRequest) -> Result<pb::Links, Status> {
        let link: crate::tcp::Link = r.link.parse().map_err(|e| invalid("link", e))?;
        let target = match (r.server.is_empty(), r.client_pool.is_empty()) {
            (true, true) => LinkTarget::Default,
            (false, true) => LinkTarget::Server(convert::socket("server", &r.server)?),
            (true, false) => LinkTarget::Pool(
                r.client_pool
                    .parse()
                    .map_err(|e| invalid("client_pool", e))?,
            ),
            (false, false) => {
                return Err(invalid(
                    "client_pool",
                    "give a server or a client pool, not both",
                ));
            }
        };
        let all = self.table.set_link(target, link).map_err(|e| match e {
            table::Error::Address(a) => invalid("server", a),
            table::Error::HostSetting(why) if matches!(target, LinkTarget::Pool(_)) => {
                invalid("client_pool", why)
            }
            table::Error::HostSetting(why) => invalid("link", why),
            e => Status::from(e),
        })?;
        Ok(pb::Links {
            links: convert::links_to_pb(&all),
        })
    }

    pub fn set_client_sysctls(
        &self,
        r: &pb::SetClientSysctlsRequest,
    ) -> Result<pb::ClientSysctls, Status> {
        let now = self.table.tw_reuse();
        let tw_reuse = match r.tcp_tw_reuse {
            Some(n @ 0..=2) => n as u8,
            Some(n) => return Err(invalid("tcp_tw_reuse", format!("{n}: 0, 1 or 2"))),
            None => now.tw_reuse,
        };
        let want = table::TwReuse {
            tw_reuse,
            timestamps: r.tcp_timestamps.unwrap_or(now.timestamps),
            delay_ms: r.tcp_tw_reuse_delay_ms.unwrap_or(now.delay_ms),
        };
        self.table.set_tw_reuse(want)?;
        Ok(convert::client_sysctls_to_pb(want))
    }

    pub fn set_listener(
        &self,
        r: &pb::SetListenerRequest,
    ) -> Result<pb::SetListenerResponse, Status> {
        let server = (!r.server.is_empty())
            .then(|| convert::socket("server", &r.server))
            .transpose()?;
        let syncookies = r
            .tcp_syncookies
            .map(|n| {
                u8::try_from(n).map_err(|_| invalid("tcp_syncookies", format!("{n}: 0, 1 or 2")))
            })
            .transpose()?;
        let change = ListenChange {
            backlog: r.backlog,
            somaxconn: r.somaxconn,
            max_syn_backlog: r.tcp_max_syn_backlog,
            syncookies,
            abort_on_overflow: r.tcp_abort_on_overflow,
            accepting: r.accepting,
        };
        let changed = self
            .table
            .change_listeners(server, &change)
            .map_err(|e| match e {
                table::Error::Address(a) => invalid("server", a),
                e => Status::from(e),
            })?;
        Ok(pb::SetListenerResponse {
            listeners: changed.iter().map(convert::listener_to_pb).collect(),
        })
    }

    pub fn advance(
        &self,
        r: &pb::AdvanceClockRequest,
        stop: impl Fn() -> bool,
    ) -> Result<pb::AdvanceClockResponse, Status> {
        const MAX: u64 = 10 * 365 * 24 * 3600 * 1000;
        let (ms, field) = match (r.ms, r.millis) {
            (ms, 0) => (ms, "ms"),
            (0, millis) => (millis, "millis"),
            (ms, millis) if ms == millis => (ms, "ms"),
            (ms, millis) => {
                return Err(invalid(
                    "ms",
                    format!("{ms} and millis {millis} differ: give one (millis is its old name)"),
                ));
            }
        };
        if ms > MAX {
            return Err(invalid(field, format!("{ms} is over ten years")));
        }
        let a = self.table.advance_unless(ms, stop)?;
        Ok(pb::AdvanceClockResponse {
            now_ms: a.now,
            timers_fired: a.fired,
        })
    }

    /// A clock advance on a blocking thread, after the one before it has finished; it stops,
    /// with the clock consistent, when this future is dropped.
    fn advance_soon(
        self: &Arc<Self>,
        r: pb::AdvanceClockRequest,
    ) -> impl std::future::Future<Output = Result<pb::AdvanceClockResponse, Status>> + Send + 'static
    {
        let ops = self.clone();
        async move {
            let turn = ops.advance_turn.clone().lock_owned().await;
            let stop = Arc::new(AtomicBool::new(false));
            let _stop_on_drop = StopOnDrop(stop.clone());
            let run = ops.clone();
            tokio::task::spawn_blocking(move || {
                let _turn = turn; // held until the advance has stopped
                run.advance(&r, || stop.load(Ordering::Relaxed))
            })
            .await
            .unwrap_or_else(|e| Err(Status::internal(format!("clock advance failed: {e}"))))
        }
    }

    /// One `Run` command, answered at once, except a clock advance: that is handed back, to run
    /// off the async workers.
    fn command(&self, c: pb::Command) -> Answer {
        use pb::command::Op;
        use pb::command_result::Result as R;
        let result = match c.op {
            None => Err(invalid("op", "required")),
            Some(Op::Open(r)) => self.open(&r).map(|o| R::Open(Box::new(o))),
            Some(Op::Close(r)) => self.close(&r).map(R::States),
            Some(Op::Abort(r)) => self.abort(&r).map(R::States),
            Some(Op::Send(r)) => self.send(&r).map(R::States),
            Some(Op::Inject(r)) => self.inject(&r).map(|i| R::Inject(Box::new(i))),
            Some(Op::Wire(r)) => self.wire(&r).map(|w| R::Wire(Box::new(w))),
            Some(Op::Get(r)) => self.get(&r).map(|c| R::Connection(Box::new(c))),
            Some(Op::Stats(_)) => Ok(R::Stats(Box::new(self.stats()))),
            Some(Op::Remove(r)) => self.remove(&r).map(R::Removed),
            Some(Op::AdvanceClock(r)) => return Answer::Advance(c.tag, r),
        };
        Answer::Ready(command_result(c.tag, result))
    }
}

/// What `Ops::command` made of a command.
enum Answer {
    Ready(pb::CommandResult),
    /// A clock advance, to run on a blocking thread: (tag, request).
    Advance(u64, pb::AdvanceClockRequest),
}

fn command_result(
    tag: u64,
    result: Result<pb::command_result::Result, Status>,
) -> pb::CommandResult {
    pb::CommandResult {
        tag,
        result: Some(result.unwrap_or_else(|s| {
            pb::command_result::Result::Error(Box::new(pb::Error {
                code: s.code() as i32,
                refused: convert::refused(&s),
                message: s.message().to_string(),
            }))
        })),
    }
}

/// The results of a `Run` stream: one per command, in order. Each command is read only when the
/// response body asks for its result, so h2's flow control is the buffer, and a client that
/// stops reading stops the server reading its commands. Commands are answered synchronously in
/// `poll_next` (no future per command); a clock advance runs on a blocking thread meanwhile. Ends
/// when the commands end or the server shuts down.
struct RunResults {
    commands: Streaming<pb::Command>,
    ops: Arc<Ops>,
    advancing: Option<(u64, Advancing)>,
    stop: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// Results since `stop` was last polled: it is polled every `STOP_POLL` results and
    /// whenever the stream waits, not per result.
    since_stop: u32,
}

const STOP_POLL: u32 = 64;

/// A clock advance under way on a `Run` stream.
type Advancing =
    Pin<Box<dyn std::future::Future<Output = Result<pb::AdvanceClockResponse, Status>> + Send>>;

impl Stream for RunResults {
    type Item = Result<pb::CommandResult, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        this.since_stop += 1;
        if this.since_stop >= STOP_POLL {
            this.since_stop = 0;
            if this.stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        loop {
            if let Some((tag, advancing)) = &mut this.advancing {
                let tag = *tag;
                let done = match advancing.as_mut().poll(cx) {
                    Poll::Ready(done) => done,
                    Poll::Pending => return this.pending(cx),
                };
                this.advancing = None;
                let r = done.map(pb::command_result::Result::AdvanceClock);
                return Poll::Ready(Some(Ok(command_result(tag, r))));
            }
            let c = match Pin::new(&mut this.commands).poll_next(cx) {
                Poll::Ready(Some(Ok(c))) => c,
                // A command that does not decode (INVALID_ARGUMENT, from the codec) or a broken
                // stream: the stream ends with that status.
                Poll::Ready(Some(Err(s))) => return Poll::Ready(Some(Err(s))),
                // The client's side ended: so does ours.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return this.pending(cx),
            };
            match this.ops.command(c) {
                Answer::Ready(r) => return Poll::Ready(Some(Ok(r))),
                Answer::Advance(tag, r) => {
                    this.advancing = Some((tag, Box::pin(this.ops.advance_soon(r))));
                }
            }
        }
    }
}

impl RunResults {
    /// Nothing ready: end if the server is stopping, else wait (for a command or the stop).
    fn pending(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<pb::CommandResult, Status>>> {
        self.since_stop = 0;
        match self.stop.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// An opened connection, with its 4-tuple as text or without (`OpenRequest.ids_only`).
fn opened_pb(o: &table::Opened, tuple: bool) -> pb::Opened {
    let s = convert::states_to_pb(o.id.0, &o.states);
    pb::Opened {
        incarnation: o.incarnation,
        id: o.id.0,
        tuple: tuple.then(|| convert::tuple_to_pb(&o.tuple)),
        client: s.client,
        server: s.server,
        reused_time_wait: o.reused_time_wait,
    }
}

/// The tonic service.
pub struct SimulatorService {
    ops: Arc<Ops>,
    /// Turns true when the server shuts down: streams end.
    stopping: watch::Receiver<bool>,
}

impl SimulatorService {
    pub fn new(
        table: Arc<Table>,
        limits: Limits,
        stopping: watch::Receiver<bool>,
    ) -> SimulatorService {
        SimulatorService {
            ops: Arc::new(Ops {
                table,
                limits,
                advance_turn: Arc::default(),
            }),
            stopping,
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Simulator for SimulatorService {
    async fn open(
        &self,
        r: Request<pb::OpenRequest>,
    ) -> Result<Response<pb::OpenResponse>, Status> {
        self.ops.open(r.get_ref()).map(Response::new)
    }
    async fn close(
        &self,
        r: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::ConnectionStates>, Status> {
        self.ops.close(r.get_ref()).map(Response::new)
    }
    async fn abort(
        &self,
        r: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::ConnectionStates>, Status> {
        self.ops.abort(r.get_ref()).map(Response::new)
    }
    async fn send(
        &self,
        r: Request<pb::SendRequest>,
    ) -> Result<Response<pb::ConnectionStates>, Status> {
        self.ops.send(r.get_ref()).map(Response::new)
    }
    async fn inject(
        &self,
        r: Request<pb::InjectRequest>,
    ) -> Result<Response<pb::InjectResponse>, Status> {
        self.ops.inject(r.get_ref()).map(Response::new)
    }
    async fn wire(
        &self,
        r: Request<pb::WireRequest>,
    ) -> Result<Response<pb::WireResponse>, Status> {
        self.ops.wire(r.get_ref()).map(Response::new)
    }
    async fn remove(
        &self,
        r: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        self.ops.remove(r.get_ref()).map(Response::new)
    }
    async fn get(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Connection>, Status> {
        self.ops.get(r.get_ref()).map(Response::new)
    }
    async fn list(
        &self,
        r: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let ops = self.ops.clone();
        let r = r.into_inner();
        tokio::task::spawn_blocking(move || ops.list(&r))
            .await
            .unwrap_or_else(|e| Err(Status::internal(format!("list failed: {e}"))))
            .map(Response::new)
    }
    async fn stats(
        &self,
        _: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        Ok(Response::new(self.ops.stats()))
    }
    async fn set_listener(
        &self,
        r: Request<pb::SetListenerRequest>,
    ) -> Result<Response<pb::SetListenerResponse>, Status> {
        self.ops.set_listener(r.get_ref()).map(Response::new)
    }
    async fn set_link(
        &self,
        r: Request<pb::SetLinkRequest>,
    ) -> Result<Response<pb::Links>, Status> {
        self.ops.set_link(r.get_ref()).map(Response::new)
    }
    async fn set_client_sysctls(
        &self,
        r: Request<pb::SetClientSysctlsRequest>,
    ) -> Result<Response<pb::ClientSysctls>, Status> {
        self.ops.set_client_sysctls(r.get_ref()).map(Response::new)
    }
    async fn advance_clock(
        &self,
        r: Request<pb::AdvanceClockRequest>,
    ) -> Result<Response<pb::AdvanceClockResponse>, Status> {
        self.ops
            .advance_soon(r.into_inner())
            .await
            .map(Response::new)
    }

    type WatchStream = BoxStream<pb::WatchEvent>;

    async fn watch(
        &self,
        r: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = r.into_inner();
        let side = convert::side_filter("side", r.side)?;
        let to = convert::state_filter("to", r.to)?;
        let filter = table::WatchFilter {
            ids: r.ids.into_iter().map(ConnId).collect(),
            side,
            to,
        };
        let limits = &self.ops.limits;
        let mut sub = self
            .ops
            .table
            .watch(filter, limits.watch_buffer, limits.max_watchers)?;
        // The watcher's own queue is the buffer; this channel only hands events to tonic.
        let (tx, rx) = mpsc::channel(1);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            // One waiter for the whole stream, not one per event.
            let stop = stopping.wait_for(|s| *s);
            tokio::pin!(stop);
            loop {
                let item = tokio::select! {
                    biased;
                    _ = &mut stop => return,
                    w = sub.recv() => match w {
                        table::Watched::Event(e) => {
                            pb::watch_event::Event::Transition(convert::event_to_pb(&e))
                        }
                        table::Watched::Missed(count) => {
                            pb::watch_event::Event::Missed(pb::Missed { count })
                        }
                    },
                };
                // While the subscriber reads slowly, this waits, and the watcher's queue counts
                // what it misses meanwhile.
                if tx
                    .send(Ok(pb::WatchEvent { event: Some(item) }))
                    .await
                    .is_err()
                {
                    return; // the subscriber went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type RunStream = BoxStream<pb::CommandResult>;

    async fn run(
        &self,
        r: Request<Streaming<pb::Command>>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let mut stopping = self.stopping.clone();
        let stop = Box::pin(async move {
            let _ = stopping.wait_for(|s| *s).await;
        });
        Ok(Response::new(Box::pin(RunResults {
            commands: r.into_inner(),
            ops: self.ops.clone(),
            advancing: None,
            stop,
            since_stop: 0,
        })))
    }
}

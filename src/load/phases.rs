//! What each kind of phase does to the servers: one function per kind, each spreading its work
//! over the servers by connection, and the expectation checks.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::pace::Schedule;
use super::scenario::{
    AbortPhase, ChurnPhase, ClosePhase, CounterName, DropFinsPhase, ExpectPhase, HowName,
    ListenerPhase, ModeName, OpenPhase, Phase, SendPhase, SideName, SynFloodPhase,
};
use super::stream::{Done, Server, close_cmd, cmd, wire_cmd};
use super::{LoadError, Options};
use crate::service::convert;
use crate::service::proto as pb;
use pb::Direction::{ClientToServer as C2S, ServerToClient as S2C};

/// Where a paced phase stands on its schedule: the tick the clock is at, from when.
struct Ticks {
    schedule: Schedule,
    start: Instant,
    at: u64,
}

impl Ticks {
    fn new(schedule: Schedule) -> Ticks {
        Ticks {
            schedule,
            start: Instant::now(),
            at: 0,
        }
    }
}

/// An expectation, checked.
pub(super) struct Check {
    pub(super) text: String,
    pub(super) ok: bool,
}

/// The servers of a run and its options.
pub(super) struct Runner<'a> {
    pub(super) servers: Vec<Server>,
    pub(super) opts: &'a Options,
}

fn side_pb(s: SideName) -> pb::Side {
    match s {
        SideName::Client => pb::Side::Client,
        SideName::Server => pb::Side::Server,
        SideName::Both => pb::Side::Both,
    }
}

/// The other side of a connection than `s` (client or server).
fn peer_pb(s: pb::Side) -> pb::Side {
    if s == pb::Side::Client {
        pb::Side::Server
    } else {
        pb::Side::Client
    }
}

fn open_cmd(mode: pb::Mode, client_ip: Option<std::net::Ipv4Addr>) -> pb::Command {
    cmd(pb::command::Op::Open(Box::new(open_req(mode, client_ip))))
}

fn open_req(mode: pb::Mode, client_ip: Option<std::net::Ipv4Addr>) -> pb::OpenRequest {
    pb::OpenRequest {
        mode: mode as i32,
        client_ip: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        ..Default::default()
    }
}

/// A group of commands for one server (by index): a group stays together, in order.
type Work = (usize, Vec<pb::Command>);

/// How many groups an unpaced phase takes at a time: enough to keep every stream's window full,
/// few enough that the runner's memory does not grow with the phase.
const CHUNK: usize = 4096;

/// `per(k)` for k in 0..count, each to server k mod `servers`: round-robin, produced lazily.
fn round_robin(
    count: u64,
    servers: usize,
    per: impl Fn() -> Vec<pb::Command>,
) -> impl Iterator<Item = Work> {
    (0..count).map(move |k| ((k % servers as u64) as usize, per()))
}

/// The ids of `lists` interleaved server by server (the first of each, then the second, …), each
/// made into its group by `per`.
fn interleaved(
    lists: Vec<Vec<u64>>,
    per: impl Fn(u64) -> Vec<pb::Command>,
) -> impl Iterator<Item = Work> {
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(move |i| {
        lists
            .iter()
            .enumerate()
            .filter_map(|(server, ids)| ids.get(i).map(|&id| (server, per(id))))
            .collect::<Vec<_>>()
    })
}

impl Runner<'_> {
    /// A count of the scenario at the run's scale (at least 1 if it was).
    fn scale(&self, n: u64) -> u64 {
        ((n as f64 * self.opts.scale).round() as u64).max(u64::from(n > 0))
    }

    /// A phase's rate at the run's scale, as a schedule; `None` for flat out.
    fn schedule(&self, rate: f64) -> Option<Schedule> {
        Schedule::new(rate * self.opts.scale, self.opts.tick_ms)
    }

    /// Whether time is the servers' virtual clock (moved by the runner) or real time.
    pub(super) fn virtual_clock(&self) -> bool {
        self.servers.iter().any(|s| s.virtual_clock)
    }

    /// Runs one phase; an expect phase returns its check.
    pub(super) async fn phase(
        &mut self,
        phase: &Phase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<Option<Check>, LoadError> {
        match phase {
            Phase::Open(o) => self.open(o, bar, done).await?,
            Phase::SynFlood(f) => self.syn_flood(f, bar, done).await?,
            Phase::Close(c) => self.close(c, bar, done).await?,
            Phase::Abort(a) => self.abort(a, bar, done).await?,
            Phase::Send(s) => self.send(s, bar, done).await?,
            Phase::DropFins(d) => self.drop_fins(d, bar, done).await?,
            Phase::Hold(h) => self.hold_phase(h.ms, bar, done).await?,
            Phase::Churn(c) => self.churn(c, bar, done).await?,
            Phase::Listener(l) => self.listener(l).await?,
            Phase::Link(l) => {
                let req = pb::SetLinkRequest {
                    link: l.link.clone(),
                    server: l.server.map(|s| s.to_string()).unwrap_or_default(),
                    client_pool: l.client_pool.clone().unwrap_or_default(),
                };
                for s in self.servers.iter_mut() {
                    s.set_link(req.clone()).await?;
                }
            }
            Phase::ClientSysctls(c) => {
                let req = pb::SetClientSysctlsRequest {
                    tcp_tw_reuse: c.tcp_tw_reuse.map(u32::from),
                    tcp_timestamps: c.tcp_timestamps,
                    tcp_tw_reuse_delay_ms: c.tcp_tw_reuse_delay_ms,
                };
                for s in self.servers.iter_mut() {
                    s.set_client_sysctls(req).await?;
                }
            }
            Phase::Expect(e) => return Ok(Some(self.expect(e, bar).await?)),
        }
        Ok(None)
    }

    /// Sends `work`: without a schedule flat out, a chunk at a time; with one, each group when
    /// the schedule says, the clock moved (virtual) or waited for (real) from tick to tick, and
    /// on to the end of the last tick, counting the groups as the phase's paced operations.
    async fn drive(
        &mut self,
        work: impl Iterator<Item = Work>,
        schedule: Option<Schedule>,
        bar: &ProgressBar,
        done: &mut Done,
        record_ids: bool,
    ) -> Result<(), LoadError> {
        let mut work = work.peekable();
        let Some(s) = schedule else {
            loop {
                let chunk: Vec<Work> = work.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    return Ok(());
                }
                self.send_now(chunk, bar, done, record_ids).await?;
            }
        };
        let mut clock = Ticks::new(s);
        while work.peek().is_some() {
            // The tick the next operation is due in, and every operation due by its end.
            let tick = s.ticks_for(done.paced + 1) - 1;
            self.pass(&mut clock, tick, done).await?;
            let mut due = s.due_by(tick + 1) - done.paced;
            while due > 0 {
                let chunk: Vec<Work> = work.by_ref().take(due.min(CHUNK as u64) as usize).collect();
                if chunk.is_empty() {
                    break;
                }
                due -= chunk.len() as u64;
                done.paced += chunk.len() as u64;
                self.send_now(chunk, bar, done, record_ids).await?;
            }
        }
        let end = clock.at + 1;
        self.pass(&mut clock, end, done).await
    }

    /// Sends groups to their servers and waits for every answer.
    async fn send_now(
        &mut self,
        chunk: Vec<Work>,
        bar: &ProgressBar,
        done: &mut Done,
        record_ids: bool,
    ) -> Result<(), LoadError> {
        let mut per: Vec<Vec<Vec<pb::Command>>> = self.servers.iter().map(|_| Vec::new()).collect();
        for (server, group) in chunk {
            per[server].push(group);
        }
        for (s, groups) in self.servers.iter_mut().zip(per) {
            if !groups.is_empty() {
                s.pump(groups.into_iter(), bar, done, record_ids).await?;
            }
        }
        Ok(())
    }

    /// Moves time to the start of tick `to`: AdvanceClock on virtual clocks, else a wait until
    /// the tick's fixed time (no wait if it is past: a late tick does not delay the rest).
    async fn pass(&mut self, clock: &mut Ticks, to: u64, done: &mut Done) -> Result<(), LoadError> {
        if to <= clock.at {
            return Ok(());
        }
        let tick_ms = clock.schedule.tick_ms();
        if self.virtual_clock() {
            self.advance((to - clock.at) * tick_ms).await?;
        } else {
            let at = clock.start + Duration::from_millis(to * tick_ms);
            tokio::time::sleep_until(at.into()).await;
        }
        done.clock_ms += (to - clock.at) * tick_ms;
        clock.at = to;
        Ok(())
    }

    /// Runs `per(id)` for `fraction` of the connections this run opened on each server (the
    /// oldest first), interleaving the servers, at `rate`; they stay known.
    async fn each_connection(
        &mut self,
        fraction: f64,
        rate: f64,
        bar: &ProgressBar,
        done: &mut Done,
        per: impl Fn(u64) -> Vec<pb::Command>,
    ) -> Result<(), LoadError> {
        let picked: Vec<Vec<u64>> = self
            .servers
            .iter()
            .map(|s| s.ids[..((s.ids.len() as f64 * fraction).round() as usize)].to_vec())
            .collect();
        // The bar counts commands: `per` makes the same number for every connection.
        let per_connection = per(0).len() as u64;
        bar.set_length(picked.iter().map(Vec::len).sum::<usize>() as u64 * per_connection);
        let schedule = self.schedule(rate);
        self.drive(interleaved(picked, per), schedule, bar, done, false)
            .await
    }

    /// How many connections each server holds from this run, to find the ones a phase adds.
    fn marks(&self) -> Vec<usize> {
        self.servers.iter().map(|s| s.ids.len()).collect()
    }

    /// The connections each server opened since `marks`.
    fn since(&self, marks: &[usize]) -> Vec<Vec<u64>> {
        self.servers
            .iter()
            .zip(marks)
            .map(|(s, &from)| s.ids[from..].to_vec())
            .collect()
    }

    async fn open(
        &mut self,
        o: &OpenPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let n = self.scale(o.count);
        bar.set_length(n);
        let mode = match o.mode {
            ModeName::Manual => pb::Mode::Manual,
            ModeName::Auto => pb::Mode::Auto,
        };
        let settings = o.settings.as_ref().map(convert::overrides_to_pb);
        let client_ip = o.client_ip;
        let work = round_robin(n, self.servers.len(), move || {
            vec![cmd(pb::command::Op::Open(Box::new(pb::OpenRequest {
                settings,
                ..open_req(mode, client_ip)
            })))]
        });
        let before = self.marks();
        let schedule = self.schedule(o.rate);
        self.drive(work, schedule, bar, done, true).await?;
        if o.handshake {
            let new = self.since(&before);
            let steps = interleaved(new, |id| {
                [C2S, S2C, C2S]
                    .map(|d| wire_cmd(id, d, pb::WireAction::Deliver))
                    .to_vec()
            });
            self.drive(steps, None, &ProgressBar::hidden(), done, false)
                .await?;
        }
        Ok(())
    }

    /// Open MANUAL, deliver the SYN, drop what the server answered: the server waits in
    /// SYN-RECEIVED for an ACK that never comes, and times out — or, if its listener had no room,
    /// answered with a cookie (and keeps nothing) or dropped the SYN (and there is no answer).
    async fn syn_flood(
        &mut self,
        f: &SynFloodPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let n = self.scale(f.count);
        bar.set_length(n);
        let work = round_robin(n, self.servers.len(), || {
            vec![open_cmd(pb::Mode::Manual, None)]
        });
        let before = self.marks();
        let schedule = self.schedule(f.rate);
        self.drive(work, schedule, bar, done, true).await?;
        let new = self.since(&before);
        let steps = interleaved(new, |id| {
            vec![
                wire_cmd(id, C2S, pb::WireAction::Deliver),
                drop_all(id, S2C),
            ]
        });
        self.drive(steps, None, &ProgressBar::hidden(), done, false)
            .await?;
        Ok(())
    }

    async fn close(
        &mut self,
        c: &ClosePhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let how = match c.how {
            HowName::Shutdown => pb::CloseKind::Shutdown,
            HowName::Close => pb::CloseKind::Close,
        };
        let side = side_pb(c.side);
        self.each_connection(c.fraction, c.rate, bar, done, |id| {
            vec![close_cmd(id, side, how)]
        })
        .await
    }

    async fn abort(
        &mut self,
        a: &AbortPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let side = side_pb(a.side) as i32;
        self.each_connection(a.fraction, a.rate, bar, done, |id| {
            vec![cmd(pb::command::Op::Abort(pb::AbortRequest {
                incarnation: None,
                id,
                side,
                ..Default::default()
            }))]
        })
        .await
    }

    async fn send(
        &mut self,
        s: &SendPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let (side, bytes) = (side_pb(s.side) as i32, s.bytes);
        self.each_connection(s.fraction, s.rate, bar, done, |id| {
            vec![cmd(pb::command::Op::Send(pb::SendRequest {
                incarnation: None,
                id,
                side,
                bytes,
                ..Default::default()
            }))]
        })
        .await
    }

    /// The closer's FIN is dropped from the wire as soon as it is sent.
    async fn drop_fins(
        &mut self,
        d: &DropFinsPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let side = side_pb(d.side);
        let dir = if side == pb::Side::Client { C2S } else { S2C };
        self.each_connection(d.fraction, 0.0, bar, done, |id| {
            vec![
                close_cmd(id, side, pb::CloseKind::Close),
                wire_cmd(id, dir, pb::WireAction::Drop),
            ]
        })
        .await
    }

    /// Moves the virtual clocks forward by `ms`.
    async fn advance(&mut self, ms: u64) -> Result<(), LoadError> {
        for s in self.servers.iter_mut().filter(|s| s.virtual_clock) {
            s.advance(ms).await?;
        }
        Ok(())
    }

    /// Time passes: on virtual clocks by AdvanceClock (in one call), else by waiting, the bar
    /// moving each 100 ms.
    async fn hold_phase(
        &mut self,
        ms: u64,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        bar.set_length(ms);
        if self.virtual_clock() {
            self.advance(ms).await?;
        } else {
            let start = Instant::now();
            let end = start + Duration::from_millis(ms);
            loop {
                let now = Instant::now();
                bar.set_position((now - start).as_millis().min(u128::from(ms)) as u64);
                if now >= end {
                    break;
                }
                tokio::time::sleep_until((now + Duration::from_millis(100)).min(end).into()).await;
            }
        }
        bar.set_position(ms);
        done.clock_ms += ms;
        Ok(())
    }

    /// Opens and closes continuously for `ms`: the opens due in each tick (the rate met exactly,
    /// see `pace`), then the close of what they opened, the `close` side first; time moves to
    /// the next tick that has an open, and to the phase's end.
    async fn churn(
        &mut self,
        c: &ChurnPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let Some(s) = self.schedule(c.rate) else {
            return Ok(());
        };
        let ticks = c.ms.div_ceil(s.tick_ms());
        let total = s.due_by(ticks);
        bar.set_length(total);
        let first = side_pb(c.close);
        let closes = move |id: u64| match first {
            pb::Side::Both => vec![close_cmd(id, pb::Side::Both, pb::CloseKind::Close)],
            s => {
                let other = peer_pb(s);
                vec![
                    close_cmd(id, s, pb::CloseKind::Close),
                    close_cmd(id, other, pb::CloseKind::Close),
                ]
            }
        };
        let client_ip = c.client_ip;
        let n = self.servers.len();
        let mut clock = Ticks::new(s);
        if let Some(hold_ms) = c.hold_ms {
            return self
                .churn_holding(c, s, hold_ms, first, bar, done, &mut clock)
                .await;
        }
        while done.paced < total {
            let tick = s.ticks_for(done.paced + 1) - 1;
            self.pass(&mut clock, tick, done).await?;
            // What is due by the tick's end, a chunk at a time.
            let due = (s.due_by(tick + 1) - done.paced).min(CHUNK as u64);
            let opens = (done.paced..done.paced + due).map(|k| {
                (
                    (k % n as u64) as usize,
                    vec![open_cmd(pb::Mode::Auto, client_ip)],
                )
            });
            done.paced += due;
            let before = self.marks();
            self.send_now(opens.collect(), bar, done, true).await?;
            let new: Vec<Vec<u64>> = self
                .servers
                .iter_mut()
                .zip(&before)
                .map(|(s, &from)| s.ids.drain(from..).collect())
                .collect();
            self.send_now(
                interleaved(new, closes).collect(),
                &ProgressBar::hidden(),
                done,
                false,
            )
            .await?;
        }
        self.pass(&mut clock, ticks, done).await
    }

    /// Churn whose connections are held: each tick opens what is due, closes the `first` side
    /// of those opened `hold_ms` before, and closes the other side of every connection in
    /// CLOSE-WAIT (one call on many per server), so that each lives as an application's
    /// connection does: open, used for a while, closed, the peer closing on EOF.
    #[allow(clippy::too_many_arguments)]
    async fn churn_holding(
        &mut self,
        c: &ChurnPhase,
        s: Schedule,
        hold_ms: u64,
        first: pb::Side,
        bar: &ProgressBar,
        done: &mut Done,
        clock: &mut Ticks,
    ) -> Result<(), LoadError> {
        let ticks = c.ms.div_ceil(s.tick_ms());
        let total = s.due_by(ticks);
        let other = peer_pb(first);
        let n = self.servers.len();
        // Opened and not yet closed: (when to close, ms into the phase; server; id).
        let mut held: std::collections::VecDeque<(u64, usize, u64)> = Default::default();
        for tick in 0..ticks {
            self.pass(clock, tick, done).await?;
            let now = tick * s.tick_ms();
            let due = s.due_by(tick + 1) - done.paced;
            let opens = (done.paced..done.paced + due).map(|k| {
                (
                    (k % n as u64) as usize,
                    vec![open_cmd(pb::Mode::Auto, c.client_ip)],
                )
            });
            done.paced += due;
            let before = self.marks();
            self.send_now(opens.collect(), bar, done, true).await?;
            for (server, (srv, &from)) in self.servers.iter_mut().zip(&before).enumerate() {
                held.extend(srv.ids.drain(from..).map(|id| (now + hold_ms, server, id)));
            }
            let mut work: Vec<Work> = Vec::new();
            while let Some(&(at, server, id)) = held.front() {
                if at > now {
                    break;
                }
                held.pop_front();
                work.push((server, vec![close_cmd(id, first, pb::CloseKind::Close)]));
            }
            work.extend((0..n).map(|server| (server, vec![close_on_eof(other)])));
            self.send_now(work, &ProgressBar::hidden(), done, false)
                .await?;
        }
        debug_assert_eq!(done.paced, total);
        self.pass(clock, ticks, done).await
    }

    async fn expect(&mut self, e: &ExpectPhase, bar: &ProgressBar) -> Result<Check, LoadError> {
        let value = self.observe(e).await?;
        // Expected occupancies scale with the run, widened by one each way (a scaled count
        // is rounded), except a bound of 0, which stays exact; a count of refusals does not
        // scale.
        let scale = self.opts.scale;
        let scaled = e.refused.is_none() && scale != 1.0;
        let min = e.min.map(|m| {
            if scaled && m != 0 {
                ((m as f64 * scale).floor() as i64 - 1).max(0)
            } else {
                m
            }
        });
        let max = e.max.map(|m| {
            if scaled && m != 0 {
                (m as f64 * scale).ceil() as i64 + 1
            } else {
                m
            }
        });
        let ok = min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m);
        let range = match (min, max) {
            (Some(a), Some(b)) if a == b => format!("{a}"),
            (Some(a), Some(b)) => format!("{a}..={b}"),
            (Some(a), None) => format!(">= {a}"),
            (None, Some(b)) => format!("<= {b}"),
            (None, None) => String::new(),
        };
        let what = match (e.refused, e.state) {
            (Some(r), _) => format!("opens refused for {}", r.as_str()),
            (None, None) if e.counter == Some(CounterName::SegmentsSent) => format!(
                "segments sent by {}",
                e.side.map_or("server", SideName::as_str)
            ),
            (None, None) if e.counter.is_some() => {
                e.counter.map_or("", CounterName::as_str).to_string()
            }
            (None, Some(s)) => format!(
                "{} {}",
                e.side
                    .filter(|&s| s != SideName::Both)
                    .map_or("all", SideName::as_str),
                s.ident()
            ),
            (None, None) => String::new(),
        };
        bar.set_length(1);
        bar.set_position(1);
        Ok(Check {
            text: format!("{what} = {value}, expected {range}"),
            ok,
        })
    }

    /// SetListener on every server; a phase naming one server changes that one, on the servers
    /// that have it.
    async fn listener(&mut self, l: &ListenerPhase) -> Result<(), LoadError> {
        let scaled = |n: Option<u32>| n.map(|n| self.scale(u64::from(n)) as u32);
        let req = pb::SetListenerRequest {
            server: l.server.map(|s| s.to_string()).unwrap_or_default(),
            backlog: scaled(l.backlog),
            somaxconn: l.somaxconn,
            tcp_max_syn_backlog: scaled(l.tcp_max_syn_backlog),
            tcp_syncookies: l.tcp_syncookies.map(u32::from),
            tcp_abort_on_overflow: l.tcp_abort_on_overflow,
            accepting: l.accepting,
        };
        for s in self.servers.iter_mut() {
            if req.server.is_empty() || s.settings.servers.contains(&req.server) {
                s.set_listener(req.clone()).await?;
            }
        }
        Ok(())
    }

    /// The value an expectation checks, summed over the servers.
    async fn observe(&mut self, e: &ExpectPhase) -> Result<i64, LoadError> {
        let mut total = 0i64;
        for s in self.servers.iter_mut() {
            let stats = s.stats().await?;
            if let Some(reason) = e.refused {
                total += *stats.open_failures.get(reason.as_str()).unwrap_or(&0) as i64;
                continue;
            }
            if let Some(counter) = e.counter {
                let (now, then) = (
                    counter_value(&stats, counter, e.side),
                    counter_value(&s.start, counter, e.side),
                );
                total += now.saturating_sub(then) as i64;
                continue;
            }
            let Some(state) = e.state else { continue };
            let want = convert::state_to_pb(state) as i32;
            for o in &stats.occupancy {
                let side_ok = match e.side {
                    None | Some(SideName::Both) => true,
                    Some(SideName::Client) => o.side == pb::Side::Client as i32,
                    Some(SideName::Server) => o.side == pb::Side::Server as i32,
                };
                if side_ok && o.state == want {
                    total += o.count;
                }
            }
        }
        Ok(total)
    }
}

/// Closes `side` of every connection whose `side` is in CLOSE-WAIT (the peer's FIN arrived):
/// one call on many, as far as the server's cap.
fn close_on_eof(side: pb::Side) -> pb::Command {
    cmd(pb::command::Op::Close(pb::CloseRequest {
        side: side as i32,
        how: pb::CloseKind::Close as i32,
        select: Some(pb::Selector {
            state: pb::State::CloseWait as i32,
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Drops every segment waiting in `dir` (nothing waiting drops nothing).
fn drop_all(id: u64, dir: pb::Direction) -> pb::Command {
    let mut c = wire_cmd(id, dir, pb::WireAction::Drop);
    if let Some(pb::command::Op::Wire(w)) = &mut c.op {
        (w.count, w.all) = (0, true);
    }
    c
}

/// A counter of one server's Stats.
fn counter_value(stats: &pb::StatsResponse, counter: CounterName, side: Option<SideName>) -> u64 {
    match counter {
        CounterName::TimeWaitOverflows => stats.time_wait_overflows,
        CounterName::TimeWaitReused => stats.time_wait_reused,
        CounterName::SegmentsSent => {
            let side = match side {
                Some(SideName::Client) => pb::Side::Client,
                _ => pb::Side::Server,
            } as i32;
            stats
                .segments
                .iter()
                .filter(|c| c.side == side && c.outcome == pb::SegmentOutcome::Sent as i32)
                .map(|c| c.count)
                .sum()
        }
        listen => *stats.listen.get(listen.as_str()).unwrap_or(&0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The producers are lazy: a phase of any count is made as the streams take it, so taking
    /// the first few of 10^15 returns at once, in round-robin order.
    #[test]
    fn work_is_produced_as_it_is_taken() {
        let made = std::cell::Cell::new(0u64);
        let first: Vec<usize> = round_robin(1_000_000_000_000_000, 3, || {
            made.set(made.get() + 1);
            vec![open_cmd(pb::Mode::Auto, None)]
        })
        .take(7)
        .map(|(server, _)| server)
        .collect();
        assert_eq!(first, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(made.get(), 7);
        // Connections interleave server by server, the oldest first.
        let order: Vec<(usize, u64)> = interleaved(vec![vec![1, 2, 3], vec![10], vec![]], |id| {
            vec![close_cmd(id, pb::Side::Client, pb::CloseKind::Close)]
        })
        .map(|(server, cmds)| match &cmds[0].op {
            Some(pb::command::Op::Close(c)) => (server, c.id),
            _ => unreachable!(),
        })
        .collect();
        assert_eq!(order, [(0, 1), (1, 10), (0, 2), (0, 3)]);
    }
}

//! What each kind of phase does to the servers: one function per kind, each spreading its work
//! over the servers by connection, and the expectation checks.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::scenario::{
    AbortPhase, ChurnPhase, ClosePhase, DropFinsPhase, ExpectPhase, HowName, ModeName, OpenPhase,
    Phase, SendPhase, SideName, SynFloodPhase,
};
use super::stream::{Done, Server, close_cmd, cmd, wire_cmd};
use super::{LoadError, Options};
use crate::service::convert;
use crate::service::proto as pb;
use pb::Direction::{ClientToServer as C2S, ServerToClient as S2C};

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

impl Runner<'_> {
    /// A count or rate of the scenario at the run's scale (at least 1 if it was).
    fn scale(&self, n: u64) -> u64 {
        ((n as f64 * self.opts.scale).round() as u64).max(u64::from(n > 0))
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
            Phase::Hold(h) => {
                bar.set_length(h.ms);
                self.hold(h.ms).await?;
                bar.set_position(h.ms);
            }
            Phase::Churn(c) => self.churn(c, bar, done).await?,
            Phase::Expect(e) => return Ok(Some(self.expect(e, bar).await?)),
        }
        Ok(None)
    }

    /// Spreads groups of commands over the servers round-robin (a group stays on one server).
    async fn spread(
        &mut self,
        groups: impl Iterator<Item = Vec<pb::Command>>,
        rate: u64,
        bar: &ProgressBar,
        done: &mut Done,
        record_ids: bool,
    ) -> Result<(), LoadError> {
        let n = self.servers.len();
        let mut per: Vec<Vec<Vec<pb::Command>>> = (0..n).map(|_| Vec::new()).collect();
        for (i, g) in groups.enumerate() {
            per[i % n].push(g);
        }
        let rate = rate.div_ceil(n as u64);
        for (s, groups) in self.servers.iter_mut().zip(per) {
            s.pump(groups.into_iter(), rate, bar, done, record_ids)
                .await?;
        }
        Ok(())
    }

    /// Runs `per(id)` for `fraction` of the connections this run opened (the oldest first),
    /// server by server; they stay known.
    async fn each_connection(
        &mut self,
        fraction: f64,
        rate: u64,
        bar: &ProgressBar,
        done: &mut Done,
        per: impl Fn(u64) -> Vec<pb::Command>,
    ) -> Result<(), LoadError> {
        let picked: Vec<Vec<u64>> = self
            .servers
            .iter()
            .map(|s| s.ids[..((s.ids.len() as f64 * fraction).round() as usize)].to_vec())
            .collect();
        bar.set_length(picked.iter().map(Vec::len).sum::<usize>() as u64);
        for (s, ids) in self.servers.iter_mut().zip(picked) {
            s.pump(ids.into_iter().map(&per), rate, bar, done, false)
                .await?;
        }
        Ok(())
    }

    /// How many connections each server holds from this run, to find the ones a phase adds.
    fn marks(&self) -> Vec<usize> {
        self.servers.iter().map(|s| s.ids.len()).collect()
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
        let cmds = (0..n).map(|_| {
            vec![cmd(pb::command::Op::Open(Box::new(pb::OpenRequest {
                settings,
                ..open_req(mode, o.client_ip)
            })))]
        });
        let before = self.marks();
        self.spread(cmds, self.scale(o.rate), bar, done, true)
            .await?;
        if o.handshake {
            for (s, from) in self.servers.iter_mut().zip(before) {
                let new: Vec<u64> = s.ids[from..].to_vec();
                let steps = new.into_iter().map(|id| {
                    [C2S, S2C, C2S]
                        .map(|d| wire_cmd(id, d, pb::WireAction::Deliver))
                        .to_vec()
                });
                s.pump(steps, 0, &ProgressBar::hidden(), done, false)
                    .await?;
            }
        }
        Ok(())
    }

    /// Open MANUAL, deliver the SYN, drop the SYN-ACK: the server waits in SYN-RECEIVED for an
    /// ACK that never comes, and times out.
    async fn syn_flood(
        &mut self,
        f: &SynFloodPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let n = self.scale(f.count);
        bar.set_length(n);
        let cmds = (0..n).map(|_| vec![open_cmd(pb::Mode::Manual, None)]);
        let before = self.marks();
        self.spread(cmds, self.scale(f.rate), bar, done, true)
            .await?;
        for (s, from) in self.servers.iter_mut().zip(before) {
            let new: Vec<u64> = s.ids[from..].to_vec();
            let steps = new.iter().flat_map(|&id| {
                [
                    wire_cmd(id, C2S, pb::WireAction::Deliver),
                    wire_cmd(id, S2C, pb::WireAction::Drop),
                ]
            });
            s.pump(steps.map(|c| vec![c]), 0, bar, done, false).await?;
        }
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
        let rate = self.scale(c.rate);
        self.each_connection(c.fraction, rate, bar, done, |id| {
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
        let rate = self.scale(a.rate);
        self.each_connection(a.fraction, rate, bar, done, |id| {
            vec![cmd(pb::command::Op::Abort(pb::AbortRequest {
                incarnation: None,
                id,
                side,
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
        let rate = self.scale(s.rate);
        self.each_connection(s.fraction, rate, bar, done, |id| {
            vec![cmd(pb::command::Op::Send(pb::SendRequest {
                incarnation: None,
                id,
                side,
                bytes,
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
        self.each_connection(d.fraction, 0, bar, done, |id| {
            vec![
                close_cmd(id, side, pb::CloseKind::Close),
                wire_cmd(id, dir, pb::WireAction::Drop),
            ]
        })
        .await
    }

    /// Time passes: on virtual clocks by AdvanceClock, else by waiting.
    async fn hold(&mut self, ms: u64) -> Result<(), LoadError> {
        if self.servers.iter().all(|s| !s.virtual_clock) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(());
        }
        for s in self.servers.iter_mut().filter(|s| s.virtual_clock) {
            s.advance(ms).await?;
        }
        Ok(())
    }

    /// Opens and closes continuously: each 100 ms tick opens its share, then closes what it
    /// opened, the `close` side first.
    async fn churn(
        &mut self,
        c: &ChurnPhase,
        bar: &ProgressBar,
        done: &mut Done,
    ) -> Result<(), LoadError> {
        let rate = self.scale(c.rate);
        let ticks = c.ms.div_ceil(100);
        let per_tick = (rate / 10).max(1);
        bar.set_length(ticks * per_tick);
        let first = side_pb(c.close);
        let closes = move |id: u64| match first {
            pb::Side::Both => vec![close_cmd(id, pb::Side::Both, pb::CloseKind::Close)],
            s => {
                let other = if s == pb::Side::Client {
                    pb::Side::Server
                } else {
                    pb::Side::Client
                };
                vec![
                    close_cmd(id, s, pb::CloseKind::Close),
                    close_cmd(id, other, pb::CloseKind::Close),
                ]
            }
        };
        for _ in 0..ticks {
            let tick_start = Instant::now();
            let cmds = (0..per_tick).map(|_| vec![open_cmd(pb::Mode::Auto, c.client_ip)]);
            let before = self.marks();
            self.spread(cmds, 0, bar, done, true).await?;
            for (s, from) in self.servers.iter_mut().zip(before) {
                let new: Vec<u64> = s.ids.drain(from..).collect();
                s.pump(
                    new.into_iter().map(closes),
                    0,
                    &ProgressBar::hidden(),
                    done,
                    false,
                )
                .await?;
            }
            if self.servers.iter().any(|s| s.virtual_clock) {
                self.hold(100).await?;
            } else if let Some(rest) = Duration::from_millis(100).checked_sub(tick_start.elapsed())
            {
                tokio::time::sleep(rest).await;
            }
        }
        Ok(())
    }

    async fn expect(&mut self, e: &ExpectPhase, bar: &ProgressBar) -> Result<Check, LoadError> {
        let value = self.observe(e).await?;
        // Expected occupancies scale with the run; a count of refusals does not.
        let scaled = |m: i64| {
            if e.refused.is_some() {
                m
            } else {
                (m as f64 * self.opts.scale).round() as i64
            }
        };
        let (min, max) = (e.min.map(scaled), e.max.map(scaled));
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

    /// The value an expectation checks, summed over the servers.
    async fn observe(&mut self, e: &ExpectPhase) -> Result<i64, LoadError> {
        let mut total = 0i64;
        for s in self.servers.iter_mut() {
            let stats = s.stats().await?;
            if let Some(reason) = e.refused {
                total += *stats.open_failures.get(reason.as_str()).unwrap_or(&0) as i64;
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

//! One server as the load runner sees it: its client, its `Run` stream with at most `WINDOW`
//! commands unanswered, the connections this run opened on it, and what each command took.
//! Pacing is `pace`'s: this file sends what it is given as fast as the window allows.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use hdrhistogram::Histogram;

use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::LoadError;
use crate::client::{Client, Options, Target};
use crate::service::convert::code_name;
use crate::service::proto as pb;

/// Commands sent and not yet answered, per stream.
const WINDOW: usize = 512;

/// One server: its client, its Run stream, and the connections this run opened on it.
pub(super) struct Server {
    pub(super) target: Target,
    pub(super) client: Client,
    tx: mpsc::Sender<pb::Command>,
    results: tonic::Streaming<pb::CommandResult>,
    pub(super) ids: Vec<u64>,
    pub(super) virtual_clock: bool,
    /// What it was started with, as its Stats says.
    pub(super) settings: pb::ServerSettings,
    /// Its Stats as the run began: counters are expected as what the run added to them, and
    /// listeners are put back as they were.
    pub(super) start: pb::StatsResponse,
}

/// What the commands of a phase did: how many, their latencies, refusals by limit and other
/// errors by code. Its size does not grow with the number of commands.
pub(super) struct Done {
    /// Commands answered.
    pub(super) ops: u64,
    /// The operations the phase's rate counts (opens for churn, each connection acted on for
    /// close), sent so far.
    pub(super) paced: u64,
    /// Time the phase moved the clock (virtual) or waited for (real), ms.
    pub(super) clock_ms: u64,
    /// Opens refused by a limit ("ports_exhausted", …): expected under load, counted apart.
    pub(super) refused: BTreeMap<String, u64>,
    /// Every other error, by gRPC code as the proto names it ("INVALID_ARGUMENT").
    pub(super) errors: BTreeMap<String, u64>,
    /// Microseconds from send to answer, one sample per command.
    pub(super) latency_us: Histogram<u64>,
}

impl Default for Done {
    fn default() -> Done {
        Done {
            ops: 0,
            paced: 0,
            clock_ms: 0,
            refused: BTreeMap::new(),
            errors: BTreeMap::new(),
            // 1 µs to an hour, three significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Server {
    /// Connects, reads the server's clock, and opens its Run stream.
    pub(super) async fn connect(target: &Target, opts: &Options) -> Result<Server, LoadError> {
        let mut client = opts.connect(target).await?;
        let failed = |what| {
            move |status| LoadError::Call {
                target: target.clone(),
                what,
                status,
            }
        };
        let stats = client
            .stats(pb::StatsRequest {})
            .await
            .map_err(failed("Stats"))?
            .into_inner();
        let (tx, rx) = mpsc::channel(WINDOW * 2);
        let results = client
            .run(ReceiverStream::new(rx))
            .await
            .map_err(failed("Run"))?
            .into_inner();
        Ok(Server {
            target: target.clone(),
            client,
            tx,
            results,
            ids: Vec::new(),
            virtual_clock: stats.clock == "virtual",
            settings: stats.settings.clone().unwrap_or_default(),
            start: stats,
        })
    }

    pub(super) fn failed(&self, what: &'static str) -> impl FnOnce(Status) -> LoadError + '_ {
        move |status| LoadError::Call {
            target: self.target.clone(),
            what,
            status,
        }
    }

    /// The server's figures now.
    pub(super) async fn stats(&mut self) -> Result<pb::StatsResponse, LoadError> {
        let r = self.client.stats(pb::StatsRequest {}).await;
        Ok(r.map_err(self.failed("Stats"))?.into_inner())
    }

    /// Changes its listeners.
    pub(super) async fn set_listener(
        &mut self,
        r: pb::SetListenerRequest,
    ) -> Result<(), LoadError> {
        let r = self.client.set_listener(r).await;
        r.map_err(self.failed("SetListener")).map(drop)
    }

    /// Puts its listeners back as they were when the run began, if a phase changed them.
    pub(super) async fn restore_listeners(&mut self) -> Result<(), LoadError> {
        for l in self.start.listeners.clone() {
            self.set_listener(pb::SetListenerRequest {
                server: l.server,
                backlog: Some(l.backlog),
                somaxconn: Some(l.somaxconn),
                tcp_max_syn_backlog: Some(l.tcp_max_syn_backlog),
                tcp_syncookies: Some(l.tcp_syncookies),
                tcp_abort_on_overflow: Some(l.tcp_abort_on_overflow),
                accepting: Some(l.accepting),
            })
            .await?;
        }
        Ok(())
    }

    /// Changes its client hosts' sysctls.
    pub(super) async fn set_client_sysctls(
        &mut self,
        r: pb::SetClientSysctlsRequest,
    ) -> Result<(), LoadError> {
        let r = self.client.set_client_sysctls(r).await;
        r.map_err(self.failed("SetClientSysctls")).map(drop)
    }

    /// Puts its client hosts' sysctls back as they were when the run began.
    pub(super) async fn restore_client_sysctls(&mut self) -> Result<(), LoadError> {
        let Some(c) = self.start.client_sysctls else {
            return Ok(());
        };
        self.set_client_sysctls(pb::SetClientSysctlsRequest {
            tcp_tw_reuse: Some(c.tcp_tw_reuse),
            tcp_timestamps: Some(c.tcp_timestamps),
            tcp_tw_reuse_delay_ms: Some(c.tcp_tw_reuse_delay_ms),
        })
        .await
    }

    /// Sets a link.
    pub(super) async fn set_link(&mut self, r: pb::SetLinkRequest) -> Result<(), LoadError> {
        let r = self.client.set_link(r).await;
        r.map_err(self.failed("SetLink")).map(drop)
    }

    /// Puts its links back as they were when the run began: the default, the overrides it had,
    /// and none of the others.
    pub(super) async fn restore_links(&mut self) -> Result<(), LoadError> {
        let now = self.stats().await?.links;
        let request = |rule: &pb::LinkRule, link: String| pb::SetLinkRequest {
            link,
            server: rule.server.clone(),
            client_pool: rule.client_pool.clone(),
        };
        for rule in &now {
            if !self.start.links.iter().any(|r| r.target == rule.target) {
                self.set_link(request(rule, "none".into())).await?;
            }
        }
        for rule in self.start.links.clone() {
            self.set_link(request(&rule, rule.link.clone())).await?;
        }
        Ok(())
    }

    /// Moves a virtual clock forward.
    pub(super) async fn advance(&mut self, ms: u64) -> Result<(), LoadError> {
        let r = self
            .client
            .advance_clock(pb::AdvanceClockRequest { ms, millis: 0 })
            .await;
        r.map_err(self.failed("AdvanceClock")).map(drop)
    }

    /// Sends commands down the Run stream as it takes them, at most `WINDOW` unanswered, and
    /// waits for every answer; records latency, refusals and errors; keeps the ids of
    /// connections opened if `record_ids`. Takes commands from `groups` only as the window
    /// opens, so a phase of any size holds at most `WINDOW` of them.
    pub(super) async fn pump(
        &mut self,
        groups: impl Iterator<Item = Vec<pb::Command>>,
        bar: &ProgressBar,
        done: &mut Done,
        record_ids: bool,
    ) -> Result<(), LoadError> {
        let mut commands = groups.flatten();
        let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(WINDOW);
        let mut next_tag: u64 = 1;
        let mut more = true;
        let ended = || LoadError::StreamEnded {
            target: self.target.clone(),
        };
        loop {
            while more && sent_at.len() < WINDOW {
                let Some(mut c) = commands.next() else {
                    more = false;
                    break;
                };
                c.tag = next_tag;
                next_tag += 1;
                sent_at.push_back(Instant::now());
                self.tx.send(c).await.map_err(|_| ended())?;
            }
            // Results come back in order: the oldest sent is the one answered.
            let Some(at) = sent_at.pop_front() else {
                return Ok(());
            };
            let r = self
                .results
                .message()
                .await
                .map_err(|status| LoadError::Call {
                    target: self.target.clone(),
                    what: "Run",
                    status,
                })?
                .ok_or_else(ended)?;
            done.latency_us
                .saturating_record(at.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
            done.ops += 1;
            bar.inc(1);
            match r.result {
                Some(pb::command_result::Result::Error(e)) => {
                    if e.refused.is_empty() {
                        *done
                            .errors
                            .entry(code_name(tonic::Code::from_i32(e.code)))
                            .or_default() += 1;
                    } else {
                        *done.refused.entry(e.refused).or_default() += 1;
                    }
                    let tally: Vec<String> = done
                        .refused
                        .iter()
                        .chain(&done.errors)
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    bar.set_message(tally.join(", "));
                }
                Some(pb::command_result::Result::Open(o)) if record_ids => {
                    self.ids.extend(o.connections.iter().map(|c| c.id));
                }
                _ => {}
            }
        }
    }

    /// Ends the Run stream and drains what is left of it.
    pub(super) async fn finish(&mut self) {
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        while let Ok(Some(_)) = self.results.message().await {}
    }
}

pub(super) fn cmd(op: pb::command::Op) -> pb::Command {
    pb::Command {
        tag: 0,
        op: Some(op),
    }
}

pub(super) fn wire_cmd(id: u64, direction: pb::Direction, action: pb::WireAction) -> pb::Command {
    cmd(pb::command::Op::Wire(Box::new(pb::WireRequest {
        incarnation: None,
        id,
        direction: direction as i32,
        action: action as i32,
        count: 1,
        ..Default::default()
    })))
}

pub(super) fn close_cmd(id: u64, side: pb::Side, how: pb::CloseKind) -> pb::Command {
    cmd(pb::command::Op::Close(pb::CloseRequest {
        incarnation: None,
        id,
        side: side as i32,
        how: how as i32,
        ..Default::default()
    }))
}

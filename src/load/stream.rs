//! One server as the load runner sees it: its client, its `Run` stream with at most `WINDOW`
//! commands unanswered, the connections this run opened on it, and what each command took.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::LoadError;
use crate::client::{Client, Options, Target};
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
}

/// What the commands of a phase did: how many, their latencies, their errors by code.
#[derive(Default)]
pub(super) struct Done {
    pub(super) ops: u64,
    pub(super) errors: BTreeMap<String, u64>,
    /// Microseconds, one per answered command.
    pub(super) latencies: Vec<u32>,
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

    /// Moves a virtual clock forward.
    pub(super) async fn advance(&mut self, ms: u64) -> Result<(), LoadError> {
        let r = self
            .client
            .advance_clock(pb::AdvanceClockRequest { millis: ms })
            .await;
        r.map_err(self.failed("AdvanceClock")).map(drop)
    }

    /// Sends commands down the Run stream, at most `WINDOW` unanswered, paced to `rate` per
    /// second if not 0; records latency and errors; keeps the ids of connections opened if
    /// `record_ids`.
    pub(super) async fn pump(
        &mut self,
        groups: impl Iterator<Item = Vec<pb::Command>>,
        rate: u64,
        bar: &ProgressBar,
        done: &mut Done,
        record_ids: bool,
    ) -> Result<(), LoadError> {
        let start = Instant::now();
        let mut sent_at: HashMap<u64, Instant> = HashMap::new();
        let mut next_tag: u64 = 1;
        let mut queue: VecDeque<pb::Command> = groups.flatten().collect();
        let total = queue.len() as u64;
        let mut answered = 0u64;
        let ended = || LoadError::StreamEnded {
            target: self.target.clone(),
        };
        while answered < total {
            while sent_at.len() < WINDOW && !queue.is_empty() {
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(next_tag as f64 / rate as f64);
                    if due > Instant::now() {
                        if sent_at.is_empty() {
                            tokio::time::sleep_until(due.into()).await;
                        } else {
                            break;
                        }
                    }
                }
                let Some(mut c) = queue.pop_front() else {
                    break;
                };
                c.tag = next_tag;
                sent_at.insert(next_tag, Instant::now());
                next_tag += 1;
                self.tx.send(c).await.map_err(|_| ended())?;
            }
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
            answered += 1;
            if let Some(at) = sent_at.remove(&r.tag) {
                done.latencies
                    .push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            done.ops += 1;
            bar.inc(1);
            match r.result {
                Some(pb::command_result::Result::Error(e)) => {
                    let code = format!("{:?}", tonic::Code::from_i32(e.code));
                    *done.errors.entry(code).or_default() += 1;
                    let errors: Vec<String> = done
                        .errors
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    bar.set_message(format!("errors: {}", errors.join(", ")));
                }
                Some(pb::command_result::Result::Open(o)) if record_ids => {
                    self.ids.extend(o.connections.iter().map(|c| c.id));
                }
                _ => {}
            }
        }
        Ok(())
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
    })))
}

pub(super) fn close_cmd(id: u64, side: pb::Side, how: pb::CloseKind) -> pb::Command {
    cmd(pb::command::Op::Close(pb::CloseRequest {
        incarnation: None,
        id,
        side: side as i32,
        how: how as i32,
    }))
}

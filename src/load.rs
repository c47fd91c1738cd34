//! `tcpsim load`: scenario files of phases, run against one or more servers through `Run`
//! streams, with a progress bar per phase and a report per phase.
//!
//! Owns: the scenario format and its validation (every error names the line and the reason,
//! before anything is sent), pacing, spreading the work over targets by connection, and the
//! report. Knows the server only through the gRPC API.
//!
//! A scenario (YAML):
//!
//! ```yaml
//! name: time-wait-build-up
//! phases:
//!   - open: {count: 1000, rate: 500, mode: auto}   # rate per second; 0 or absent: flat out
//!   - hold: {ms: 2000}                               # virtual clock: AdvanceClock; real: sleep
//!   - close: {fraction: 1.0, side: client}           # side: client, server or both; how: close|shutdown
//!   - abort: {fraction: 0.5, side: server}           # an RST storm
//!   - send: {bytes: 1000, fraction: 1.0, side: client}
//!   - syn_flood: {count: 500}                        # half-open servers: the final ACK never comes
//!   - open: {count: 100, mode: manual, handshake: true}  # MANUAL pairs, handshake delivered
//!   - open: {count: 10, mode: manual, settings: {profile: rfc9293}}  # their own settings
//!   - drop_fins: {fraction: 1.0, side: client}       # MANUAL: the closer's FIN is lost
//!   - churn: {rate: 5000, ms: 10000, client_ip: 10.0.0.1}  # open + close continuously
//!   - expect: {side: client, state: TIME_WAIT, min: 1000, max: 1000}
//!   - expect: {refused: ports_exhausted, min: 1}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::service::convert;
use crate::service::proto as pb;
use crate::service::proto::simulator_client::SimulatorClient;

// ---- the format --------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Each phase is a one-key map: `- open: {count: 10}`.
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub phases: Vec<Phase>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModeName {
    Auto,
    Manual,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SideName {
    Client,
    Server,
    Both,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HowName {
    Shutdown,
    #[default]
    Close,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Open(OpenPhase),
    Hold(HoldPhase),
    Close(ClosePhase),
    Abort(AbortPhase),
    Send(SendPhase),
    SynFlood(SynFloodPhase),
    DropFins(DropFinsPhase),
    Churn(ChurnPhase),
    Expect(ExpectPhase),
}

/// MANUAL connections only: `side` closes and its FIN is lost on the wire, so it stays in
/// FIN-WAIT-1 (or LAST-ACK) retransmitting the FIN, onto the wire where nothing delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropFinsPhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPhase {
    pub count: u64,
    #[serde(default)]
    pub rate: u64,
    #[serde(default = "auto")]
    pub mode: ModeName,
    #[serde(default)]
    pub client_ip: Option<String>,
    /// MANUAL only: deliver the SYN, the SYN-ACK and the final ACK, so the pair is ESTABLISHED
    /// and later phases (drop_fins) can act on it.
    #[serde(default)]
    pub handshake: bool,
    /// MANUAL only: the connections' own protocol settings, as `Open` takes them (`profile:
    /// rfc9293`, `mss: 1000`, …); AUTO pairs run on the server's.
    #[serde(default)]
    pub settings: Option<crate::tcp::Overrides>,
}

fn auto() -> ModeName {
    ModeName::Auto
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldPhase {
    pub ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosePhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub how: HowName,
    #[serde(default)]
    pub rate: u64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortPhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub rate: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPhase {
    pub bytes: u32,
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub rate: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynFloodPhase {
    pub count: u64,
    #[serde(default)]
    pub rate: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnPhase {
    /// Connections opened (and closed) per second.
    pub rate: u64,
    pub ms: u64,
    /// Which side closes first (it holds the TIME-WAIT); both: a simultaneous close.
    #[serde(default = "client")]
    pub close: SideName,
    #[serde(default)]
    pub client_ip: Option<String>,
}

fn client() -> SideName {
    SideName::Client
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPhase {
    #[serde(default)]
    pub side: Option<SideName>,
    #[serde(default)]
    pub state: Option<String>,
    /// Opens refused for this reason so far (table_full, ports_exhausted, tuple_in_use).
    #[serde(default)]
    pub refused: Option<String>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Open(_) => "open",
            Phase::Hold(_) => "hold",
            Phase::Close(_) => "close",
            Phase::Abort(_) => "abort",
            Phase::Send(_) => "send",
            Phase::SynFlood(_) => "syn_flood",
            Phase::DropFins(_) => "drop_fins",
            Phase::Churn(_) => "churn",
            Phase::Expect(_) => "expect",
        }
    }
}

/// Parses and checks a scenario; errors name the line where they can and the reason.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let sc: Scenario = serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {}, column {}: {e}", l.line(), l.column()),
        None => e.to_string(),
    })?;
    if sc.phases.is_empty() {
        return Err("phases: a scenario needs at least one phase".into());
    }
    for (i, p) in sc.phases.iter().enumerate() {
        let at = |why: String| format!("phase {} ({}): {why}", i + 1, p.name());
        let fraction = |f: f64| {
            if (0.0..=1.0).contains(&f) {
                Ok(())
            } else {
                Err(at(format!("fraction {f} is not between 0 and 1")))
            }
        };
        match p {
            Phase::Open(o) if o.count == 0 => return Err(at("count must be at least 1".into())),
            Phase::Open(o) if o.handshake && o.mode != ModeName::Manual => {
                return Err(at(
                    "handshake: only MANUAL connections wait for one (AUTO ones complete it alone)"
                        .into(),
                ));
            }
            Phase::Open(o) => {
                check_ip(o.client_ip.as_deref()).map_err(at)?;
                if let Some(settings) = &o.settings {
                    if o.mode != ModeName::Manual {
                        return Err(at(
                            "settings: AUTO pairs run on the server's settings; only MANUAL connections take their own".into(),
                        ));
                    }
                    settings
                        .apply(&crate::tcp::Config::default())
                        .map_err(|e| at(format!("settings.{e}")))?;
                }
            }
            Phase::Close(c) => fraction(c.fraction)?,
            Phase::Abort(a) if a.side == SideName::Both => {
                return Err(at("side: abort one side, client or server".into()));
            }
            Phase::Abort(a) => fraction(a.fraction)?,
            Phase::Send(s) if s.side == SideName::Both => {
                return Err(at("side: send from one side, client or server".into()));
            }
            Phase::Send(s) => fraction(s.fraction)?,
            Phase::DropFins(d) if d.side == SideName::Both => {
                return Err(at("side: one side closes and loses its FIN".into()));
            }
            Phase::DropFins(d) => fraction(d.fraction)?,
            Phase::SynFlood(f) if f.count == 0 => {
                return Err(at("count must be at least 1".into()));
            }
            Phase::Churn(c) if c.rate == 0 || c.ms == 0 => {
                return Err(at("rate and ms must be above 0".into()));
            }
            Phase::Churn(c) => check_ip(c.client_ip.as_deref()).map_err(at)?,
            Phase::Expect(e) => {
                if e.min.is_none() && e.max.is_none() {
                    return Err(at("give min, max or both".into()));
                }
                match (&e.state, &e.refused) {
                    (Some(s), None) => {
                        crate::tcp::State::parse(s)
                            .ok_or_else(|| at(format!("state {s:?} is not a TCP state")))?;
                    }
                    (None, Some(r)) => {
                        if !crate::table::OpenFailure::ALL
                            .iter()
                            .any(|f| f.as_str() == r)
                        {
                            return Err(at(format!(
                                "refused {r:?}: expected table_full, ports_exhausted or tuple_in_use"
                            )));
                        }
                    }
                    _ => return Err(at("name either a state or a refusal reason".into())),
                }
            }
            _ => {}
        }
    }
    Ok(sc)
}

fn check_ip(ip: Option<&str>) -> Result<(), String> {
    match ip {
        Some(s) if s.parse::<std::net::Ipv4Addr>().is_err() => {
            Err(format!("client_ip {s:?} is not an IPv4 address"))
        }
        _ => Ok(()),
    }
}

// ---- running ----------------------------------------------------------------------------------

/// One server: its client, its Run stream, and the connections this run opened on it.
struct Target {
    client: SimulatorClient<Channel>,
    tx: mpsc::Sender<pb::Command>,
    results: tonic::Streaming<pb::CommandResult>,
    ids: Vec<u64>,
    virtual_clock: bool,
}

/// What one phase did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub operations: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency_ms: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, u64>,
    /// Occupancy after the phase, summed over targets: "client ESTABLISHED" → count (non-zero).
    pub occupancy: BTreeMap<String, i64>,
    /// For expect phases: what was checked and the value found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub ok: bool,
}

/// The whole run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    pub phases: Vec<PhaseReport>,
    pub ok: bool,
}

/// Options of a run.
pub struct Options {
    pub targets: Vec<String>,
    pub token: Option<String>,
    /// Multiplies every count and rate (and churn duration stays): 0.01 runs a scenario small.
    pub scale: f64,
    pub progress: bool,
}

const WINDOW: usize = 512;

fn with_token<T>(token: &Option<String>, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// Runs a scenario; the report says whether every expectation held.
pub async fn run(sc: &Scenario, opts: &Options) -> Result<Report, String> {
    let mut targets = Vec::new();
    for url in &opts.targets {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let mut client = SimulatorClient::new(channel);
        let stats = client
            .stats(with_token(&opts.token, pb::StatsRequest {}))
            .await
            .map_err(|s| format!("{url}: {}", s.message()))?;
        let (tx, rx) = mpsc::channel(WINDOW * 2);
        let results = client
            .run(with_token(&opts.token, ReceiverStream::new(rx)))
            .await
            .map_err(|s| format!("{url}: {}", s.message()))?
            .into_inner();
        targets.push(Target {
            client,
            tx,
            results,
            ids: Vec::new(),
            virtual_clock: stats.into_inner().clock == "virtual",
        });
    }
    let scale = |n: u64| ((n as f64 * opts.scale).round() as u64).max(u64::from(n > 0));
    let mut report = Report {
        scenario: sc.name.clone(),
        ok: true,
        ..Default::default()
    };
    for phase in &sc.phases {
        let started = Instant::now();
        let mut done = Done::default();
        let bar = if opts.progress {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.name());
        let mut check = None;
        let mut ok = true;
        match phase {
            Phase::Open(o) => {
                let n = scale(o.count);
                bar.set_length(n);
                let mode = if o.mode == ModeName::Manual {
                    pb::Mode::Manual
                } else {
                    pb::Mode::Auto
                };
                let ip = o.client_ip.clone().unwrap_or_default();
                let settings = o.settings.as_ref().map(convert::overrides_to_pb);
                let cmds = (0..n).map(|_| {
                    vec![cmd(pb::command::Op::Open(Box::new(pb::OpenRequest {
                        settings,
                        ..open_req(mode, &ip)
                    })))]
                });
                let before: Vec<usize> = targets.iter().map(|t| t.ids.len()).collect();
                pump(&mut targets, cmds, scale(o.rate), &bar, &mut done, true).await?;
                if o.handshake {
                    use pb::Direction::{ClientToServer as C2S, ServerToClient as S2C};
                    for (t, &from) in targets.iter_mut().zip(&before) {
                        let new: Vec<u64> = t.ids[from..].to_vec();
                        let steps = new.into_iter().map(|id| {
                            [C2S, S2C, C2S]
                                .map(|d| wire_cmd(id, d, pb::WireAction::Deliver))
                                .to_vec()
                        });
                        pump_one(t, steps, 0, &ProgressBar::hidden(), &mut done, false).await?;
                    }
                }
            }
            Phase::SynFlood(f) => {
                let n = scale(f.count);
                bar.set_length(n);
                // Open MANUAL, deliver the SYN, drop the SYN-ACK: the server waits in
                // SYN-RECEIVED for an ACK that never comes, and times out.
                let cmds = (0..n).map(|_| vec![open_cmd(pb::Mode::Manual, "")]);
                let before: Vec<usize> = targets.iter().map(|t| t.ids.len()).collect();
                pump(&mut targets, cmds, scale(f.rate), &bar, &mut done, true).await?;
                for (t, &from) in targets.iter_mut().zip(&before) {
                    let new: Vec<u64> = t.ids[from..].to_vec();
                    let steps = new.iter().flat_map(|&id| {
                        [
                            wire_cmd(id, pb::Direction::ClientToServer, pb::WireAction::Deliver),
                            wire_cmd(id, pb::Direction::ServerToClient, pb::WireAction::Drop),
                        ]
                    });
                    pump_one(t, steps.map(|c| vec![c]), 0, &bar, &mut done, false).await?;
                }
            }
            Phase::Close(c) => {
                let (side, how) = (
                    side_pb(c.side) as i32,
                    if c.how == HowName::Shutdown {
                        pb::CloseKind::Shutdown
                    } else {
                        pb::CloseKind::Close
                    } as i32,
                );
                let per = |id| {
                    vec![cmd(pb::command::Op::Close(pb::CloseRequest {
                        id,
                        side,
                        how,
                    }))]
                };
                each_connection(
                    &mut targets,
                    c.fraction,
                    scale(c.rate),
                    &bar,
                    &mut done,
                    per,
                )
                .await?;
            }
            Phase::Abort(a) => {
                let side = side_pb(a.side) as i32;
                let per = |id| vec![cmd(pb::command::Op::Abort(pb::AbortRequest { id, side }))];
                each_connection(
                    &mut targets,
                    a.fraction,
                    scale(a.rate),
                    &bar,
                    &mut done,
                    per,
                )
                .await?;
            }
            Phase::Send(s) => {
                let (side, bytes) = (side_pb(s.side) as i32, s.bytes);
                let per = |id| {
                    vec![cmd(pb::command::Op::Send(pb::SendRequest {
                        id,
                        side,
                        bytes,
                    }))]
                };
                each_connection(
                    &mut targets,
                    s.fraction,
                    scale(s.rate),
                    &bar,
                    &mut done,
                    per,
                )
                .await?;
            }
            Phase::DropFins(d) => {
                let side = side_pb(d.side);
                let dir = if side == pb::Side::Client {
                    pb::Direction::ClientToServer
                } else {
                    pb::Direction::ServerToClient
                };
                let per = |id| {
                    let close = cmd(pb::command::Op::Close(pb::CloseRequest {
                        id,
                        side: side as i32,
                        how: 0,
                    }));
                    vec![close, wire_cmd(id, dir, pb::WireAction::Drop)]
                };
                each_connection(&mut targets, d.fraction, 0, &bar, &mut done, per).await?;
            }
            Phase::Hold(h) => {
                bar.set_length(h.ms);
                hold(&mut targets, h.ms, &opts.token).await?;
                bar.set_position(h.ms);
            }
            Phase::Churn(c) => {
                let rate = scale(c.rate);
                let ticks = c.ms.div_ceil(100);
                let per_tick = (rate / 10).max(1);
                bar.set_length(ticks * per_tick);
                let ip = c.client_ip.clone().unwrap_or_default();
                let side = side_pb(c.close);
                for _ in 0..ticks {
                    let tick_start = Instant::now();
                    // Open, then close what opened, in one pipelined batch per tick.
                    let cmds = (0..per_tick).map(|_| vec![open_cmd(pb::Mode::Auto, &ip)]);
                    let before: Vec<usize> = targets.iter().map(|t| t.ids.len()).collect();
                    pump(&mut targets, cmds, 0, &bar, &mut done, true).await?;
                    for (t, &from) in targets.iter_mut().zip(&before) {
                        let new: Vec<u64> = t.ids.drain(from..).collect();
                        let closes = new.into_iter().map(|id| {
                            let close = |s: pb::Side| {
                                cmd(pb::command::Op::Close(pb::CloseRequest {
                                    id,
                                    side: s as i32,
                                    how: 0,
                                }))
                            };
                            match side {
                                pb::Side::Both => vec![close(pb::Side::Both)],
                                s => vec![
                                    close(s),
                                    close(if s == pb::Side::Client {
                                        pb::Side::Server
                                    } else {
                                        pb::Side::Client
                                    }),
                                ],
                            }
                        });
                        pump_one(t, closes, 0, &ProgressBar::hidden(), &mut done, false).await?;
                    }
                    // Time moves 100 ms per tick: on a virtual clock by AdvanceClock, on a real
                    // one by waiting out the rest of the tick.
                    if targets.iter().any(|t| t.virtual_clock) {
                        hold(&mut targets, 100, &opts.token).await?;
                    } else if let Some(rest) =
                        Duration::from_millis(100).checked_sub(tick_start.elapsed())
                    {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
            Phase::Expect(e) => {
                let (what, value) = observe(&mut targets, e, &opts.token).await?;
                // Expected occupancies scale with the run; a count of refusals does not.
                let scaled = |m: i64| {
                    if e.refused.is_some() {
                        m
                    } else {
                        (m as f64 * opts.scale).round() as i64
                    }
                };
                let (min, max) = (e.min.map(scaled), e.max.map(scaled));
                ok = min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m);
                let range = match (min, max) {
                    (Some(a), Some(b)) if a == b => format!("{a}"),
                    (Some(a), Some(b)) => format!("{a}..={b}"),
                    (Some(a), None) => format!(">= {a}"),
                    (None, Some(b)) => format!("<= {b}"),
                    (None, None) => String::new(),
                };
                check = Some(format!("{what} = {value}, expected {range}"));
                bar.set_length(1);
                bar.set_position(1);
            }
        }
        bar.finish_with_message(if done.errors.is_empty() {
            String::new()
        } else {
            format!("{} errors", done.errors.values().sum::<u64>())
        });
        let seconds = started.elapsed().as_secs_f64();
        let occupancy = occupancy(&mut targets, &opts.token).await?;
        done.latencies.sort_unstable();
        let pct = |p: f64| {
            done.latencies
                .get(((done.latencies.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        let mut latency_ms = BTreeMap::new();
        if !done.latencies.is_empty() {
            for (k, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
                latency_ms.insert(k.to_string(), pct(p));
            }
        }
        report.ok &= ok;
        report.phases.push(PhaseReport {
            phase: phase.name().to_string(),
            operations: done.ops,
            seconds,
            per_second: done.ops as f64 / seconds.max(1e-9),
            latency_ms,
            errors: done.errors,
            occupancy,
            check,
            ok,
        });
    }
    for t in &mut targets {
        // Close the stream and drain what is left.
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut t.tx, tx));
        while let Ok(Some(_)) = t.results.message().await {}
    }
    Ok(report)
}

#[derive(Default)]
struct Done {
    ops: u64,
    errors: BTreeMap<String, u64>,
    latencies: Vec<u32>,
}

fn cmd(op: pb::command::Op) -> pb::Command {
    pb::Command {
        tag: 0,
        op: Some(op),
    }
}

fn open_req(mode: pb::Mode, client_ip: &str) -> pb::OpenRequest {
    pb::OpenRequest {
        mode: mode as i32,
        client_ip: client_ip.to_string(),
        ..Default::default()
    }
}

fn open_cmd(mode: pb::Mode, client_ip: &str) -> pb::Command {
    cmd(pb::command::Op::Open(Box::new(open_req(mode, client_ip))))
}

fn wire_cmd(id: u64, direction: pb::Direction, action: pb::WireAction) -> pb::Command {
    cmd(pb::command::Op::Wire(Box::new(pb::WireRequest {
        id,
        direction: direction as i32,
        action: action as i32,
        count: 1,
    })))
}

fn side_pb(s: SideName) -> pb::Side {
    match s {
        SideName::Client => pb::Side::Client,
        SideName::Server => pb::Side::Server,
        SideName::Both => pb::Side::Both,
    }
}

/// Takes `fraction` of each target's connections (the oldest first); they stay known.
fn pick(targets: &mut [Target], fraction: f64) -> Vec<Vec<u64>> {
    targets
        .iter()
        .map(|t| t.ids[..((t.ids.len() as f64 * fraction).round() as usize)].to_vec())
        .collect()
}

/// Runs `per(id)` for `fraction` of the connections this run opened, target by target.
async fn each_connection(
    targets: &mut [Target],
    fraction: f64,
    rate: u64,
    bar: &ProgressBar,
    done: &mut Done,
    per: impl Fn(u64) -> Vec<pb::Command>,
) -> Result<(), String> {
    let picked = pick(targets, fraction);
    let groups: usize = picked.iter().map(Vec::len).sum();
    bar.set_length(groups as u64);
    for (t, ids) in targets.iter_mut().zip(picked) {
        pump_one(t, ids.into_iter().map(&per), rate, bar, done, false).await?;
    }
    Ok(())
}

/// Spreads groups of commands over the targets round-robin (a group stays on one target).
async fn pump(
    targets: &mut [Target],
    groups: impl Iterator<Item = Vec<pb::Command>>,
    rate: u64,
    bar: &ProgressBar,
    done: &mut Done,
    record_ids: bool,
) -> Result<(), String> {
    let n = targets.len();
    let mut per: Vec<Vec<Vec<pb::Command>>> = (0..n).map(|_| Vec::new()).collect();
    for (i, g) in groups.enumerate() {
        per[i % n].push(g);
    }
    let rate = rate.div_ceil(n as u64);
    for (t, groups) in targets.iter_mut().zip(per) {
        pump_one(t, groups.into_iter(), rate, bar, done, record_ids).await?;
    }
    Ok(())
}

/// Sends commands down one target's Run stream, at most `WINDOW` unanswered, paced to `rate`
/// per second if not 0; records latency and errors; keeps the ids of connections opened.
async fn pump_one(
    t: &mut Target,
    groups: impl Iterator<Item = Vec<pb::Command>>,
    rate: u64,
    bar: &ProgressBar,
    done: &mut Done,
    record_ids: bool,
) -> Result<(), String> {
    let start = Instant::now();
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut next_tag: u64 = 1;
    let mut queue: std::collections::VecDeque<pb::Command> = groups.flatten().collect();
    let total = queue.len() as u64;
    let mut answered = 0u64;
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
            let mut c = queue.pop_front().expect("not empty");
            c.tag = next_tag;
            sent_at.insert(next_tag, Instant::now());
            next_tag += 1;
            t.tx.send(c)
                .await
                .map_err(|_| "the server closed the Run stream".to_string())?;
        }
        let r = t
            .results
            .message()
            .await
            .map_err(|s| format!("Run stream: {}", s.message()))?
            .ok_or("the server ended the Run stream")?;
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
                t.ids.extend(o.connections.iter().map(|c| c.id));
            }
            _ => {}
        }
    }
    Ok(())
}

async fn hold(targets: &mut [Target], ms: u64, token: &Option<String>) -> Result<(), String> {
    if targets.iter().all(|t| !t.virtual_clock) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(());
    }
    for t in targets.iter_mut().filter(|t| t.virtual_clock) {
        t.client
            .advance_clock(with_token(token, pb::AdvanceClockRequest { millis: ms }))
            .await
            .map_err(|s| s.message().to_string())?;
    }
    Ok(())
}

async fn occupancy(
    targets: &mut [Target],
    token: &Option<String>,
) -> Result<BTreeMap<String, i64>, String> {
    let mut all = BTreeMap::new();
    for t in targets.iter_mut() {
        let s = t
            .client
            .stats(with_token(token, pb::StatsRequest {}))
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        for o in s.occupancy.iter().filter(|o| o.count != 0) {
            let side = pb::Side::try_from(o.side).map_or("?", |s| {
                if s == pb::Side::Client {
                    "client"
                } else {
                    "server"
                }
            });
            let state = pb::State::try_from(o.state).map_or("?".to_string(), |s| {
                s.as_str_name().trim_start_matches("STATE_").to_string()
            });
            *all.entry(format!("{side} {state}")).or_default() += o.count;
        }
    }
    Ok(all)
}

async fn observe(
    targets: &mut [Target],
    e: &ExpectPhase,
    token: &Option<String>,
) -> Result<(String, i64), String> {
    let mut total = 0i64;
    for t in targets.iter_mut() {
        let s = t
            .client
            .stats(with_token(token, pb::StatsRequest {}))
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        if let Some(reason) = &e.refused {
            total += *s.open_failures.get(reason).unwrap_or(&0) as i64;
            continue;
        }
        let state = crate::tcp::State::parse(e.state.as_deref().unwrap_or_default())
            .expect("checked when parsed");
        let want = crate::service::convert::state_to_pb(state) as i32;
        for o in &s.occupancy {
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
    let what = match (&e.refused, &e.state) {
        (Some(r), _) => format!("opens refused for {r}"),
        (None, Some(s)) => format!(
            "{} {s}",
            e.side.map_or("all", |s| match s {
                SideName::Client => "client",
                SideName::Server => "server",
                SideName::Both => "all",
            })
        ),
        _ => String::new(),
    };
    Ok((what, total))
}

/// The report as text, a block per phase.
pub fn render(report: &Report) -> String {
    let mut out = format!("scenario {}\n", report.scenario);
    for (i, p) in report.phases.iter().enumerate() {
        out += &format!(
            "{:>2}. {:<9} {:>8} ops in {:>7.3} s = {:>9.0}/s",
            i + 1,
            p.phase,
            p.operations,
            p.seconds,
            p.per_second
        );
        if !p.latency_ms.is_empty() {
            out += &format!(
                "  latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}",
                p.latency_ms["p50"], p.latency_ms["p90"], p.latency_ms["p99"], p.latency_ms["max"]
            );
        }
        out += "\n";
        if !p.errors.is_empty() {
            out += &format!(
                "    errors: {}\n",
                p.errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(c) = &p.check {
            out += &format!("    {} {c}\n", if p.ok { "ok:" } else { "FAILED:" });
        }
        if !p.occupancy.is_empty() {
            out += &format!(
                "    after: {}\n",
                p.occupancy
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out += if report.ok {
        "all expectations held\n"
    } else {
        "SOME EXPECTATIONS FAILED\n"
    };
    out
}

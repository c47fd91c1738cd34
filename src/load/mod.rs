//! `tcpsim load`: scenario files of phases, run against one or more servers through `Run`
//! streams, with a progress bar per phase and a report per phase.
//!
//! Knows the server only through the gRPC API. By concern: [`scenario`] (the format and its
//! checks, all before anything is sent), `stream` (one server's Run stream and pacing),
//! `phases` (what each kind of phase does), [`report`]; this file connects, runs the phases in
//! order and builds the report from what was done.
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

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tonic::Status;

use crate::client::{self, ClientError, Target};

mod phases;
pub mod report;
pub mod scenario;
mod stream;

pub use report::{PhaseReport, Report, render};
pub use scenario::{Phase, Scenario, ScenarioError, parse};

/// Options of a run.
pub struct Options {
    pub targets: Vec<Target>,
    /// How to reach them (TLS, token).
    pub client: client::Options,
    /// Multiplies every count and rate (and churn duration stays): 0.01 runs a scenario small.
    pub scale: f64,
    pub progress: bool,
}

/// Why a run stopped before its end (a failed expectation does not stop it: see the report).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{target}: {what}: {}: {}", .status.code(), .status.message())]
    Call {
        target: Target,
        what: &'static str,
        status: Status,
    },
    #[error("{target}: the server ended the Run stream")]
    StreamEnded { target: Target },
    #[error("no targets to run against")]
    NoTargets,
}

/// Runs a scenario; the report says whether every expectation held.
pub async fn run(sc: &Scenario, opts: &Options) -> Result<Report, LoadError> {
    if opts.targets.is_empty() {
        return Err(LoadError::NoTargets);
    }
    let mut servers = Vec::new();
    for target in &opts.targets {
        servers.push(stream::Server::connect(target, &opts.client).await?);
    }
    let mut runner = phases::Runner { servers, opts };
    let mut report = Report {
        scenario: sc.name.clone(),
        ok: true,
        ..Default::default()
    };
    for phase in &sc.phases {
        let started = Instant::now();
        let mut done = stream::Done::default();
        let bar = progress_bar(opts.progress, phase.name());
        let check = runner.phase(phase, &bar, &mut done).await?;
        bar.finish_with_message(if done.errors.is_empty() {
            String::new()
        } else {
            format!("{} errors", done.errors.values().sum::<u64>())
        });
        let seconds = started.elapsed().as_secs_f64();
        let ok = check.as_ref().is_none_or(|c| c.ok);
        report.ok &= ok;
        report.phases.push(PhaseReport {
            phase: phase.name().to_string(),
            operations: done.ops,
            seconds,
            per_second: done.ops as f64 / seconds.max(1e-9),
            latency_ms: report::percentiles(&mut done.latencies),
            errors: done.errors,
            occupancy: report::occupancy(&mut runner.servers).await?,
            check: check.map(|c| c.text),
            ok,
        });
    }
    for s in &mut runner.servers {
        s.finish().await;
    }
    Ok(report)
}

fn progress_bar(shown: bool, name: &'static str) -> ProgressBar {
    let bar = if shown {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name);
    bar
}

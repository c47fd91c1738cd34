//! `tcpsim load`: scenario files of phases, run against one or more servers through `Run`
//! streams, with a progress bar per phase and a report per phase.
//!
//! Knows the server only through the gRPC API. By concern: [`scenario`] (the format and its
//! checks, all before anything is sent), `pace` (a rate as a fixed schedule of ticks), `stream`
//! (one server's Run stream), `phases` (what each kind of phase does), [`report`]; this file
//! connects, runs the phases in order and builds the report from what was done.
//!
//! A scenario (YAML):
//!
//! ```yaml
//! name: time-wait-build-up
//! phases:
//!   - open: {count: 1000, rate: 500, mode: auto}   # rate per second, exact (pace.rs); absent: flat out
//!   - open: {count: 10, client_ip: 10.9.9.9, errors: 10}  # errors: how many may fail (else the run fails)
//!   - hold: {ms: 2000}                               # virtual clock: AdvanceClock; real: sleep
//!   - close: {fraction: 1.0, side: client}           # side: client, server or both; how: close|shutdown
//!   - abort: {fraction: 0.5, side: server}           # an RST storm
//!   - send: {bytes: 1000, fraction: 1.0, side: client}
//!   - syn_flood: {count: 500}                        # half-open servers: the final ACK never comes
//!   - open: {count: 100, mode: manual, handshake: true}  # MANUAL pairs, handshake delivered
//!   - open: {count: 10, mode: manual, settings: {profile: rfc9293}}  # their own settings
//!   - drop_fins: {fraction: 1.0, side: client}       # MANUAL: the closer's FIN is lost
//!   - churn: {rate: 5000, ms: 10000, client_ip: 10.0.0.1}  # open + close continuously
//!   - churn: {rate: 200, ms: 30000, hold_ms: 1000}   # each held 1 s, the server closing on EOF
//!   - expect: {side: client, state: TIME_WAIT, min: 1000, max: 1000}
//!   - expect: {refused: ports_exhausted, min: 1}
//!   - listener: {backlog: 128, tcp_syncookies: 0, accepting: false}  # SetListener on every server
//!   - expect: {counter: listen_drops, min: 1871, max: 1871}    # or syncookies_sent, …, segments_sent
//!   - client_sysctls: {tcp_tw_reuse: 1}               # SetClientSysctls on every server
//!   - link: {link: "delay=25ms,loss=2%"}             # SetLink: the default (or server:, client_pool:)
//! ```

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tonic::Status;

use crate::client::{self, ClientError, Target};
use crate::service::proto as pb;

mod pace;
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
    /// A paced phase's tick, ms: each sends what its rate makes due by the tick's end, then
    /// time moves on a tick (see `pace`).
    pub tick_ms: u64,
    pub progress: bool,
}

impl Default for Options {
    /// Against the default target, full size, 100 ms ticks, no progress bars.
    fn default() -> Options {
        Options {
            targets: vec![Target::default()],
            client: client::Options::default(),
            scale: 1.0,
            tick_ms: 100,
            progress: false,
        }
    }
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
    /// A server differs from what the scenario assumes: nothing was sent.
    #[error("{target}: {why}")]
    Assumes { target: Target, why: String },
}

/// Whether `s` was started as the scenario assumes, at the run's scale: `Err(why)`, saying how
/// to start one that was, if not.
fn check_assumes(a: &scenario::Assumes, scale: f64, s: &pb::ServerSettings) -> Result<(), String> {
    if let Some((lo, hi)) = a.port_range() {
        let assumed = u32::from(hi - lo) + 1;
        let needed = ((f64::from(assumed) * scale).round() as u32).clamp(1, assumed.max(1));
        let has = (s.ports_high + 1).saturating_sub(s.ports_low);
        if has != needed {
            let at_scale = if scale == 1.0 {
                String::new()
            } else {
                format!(" at --scale {scale}: {needed} ports")
            };
            let new_hi = s.ports_low.max(1) + needed - 1;
            return Err(format!(
                "the scenario assumes ephemeral ports {lo}-{hi} ({assumed}){at_scale}, and this \
                 server has {}-{} ({has}): start it with --ports {}-{new_hi}",
                s.ports_low,
                s.ports_high,
                s.ports_low.max(1)
            ));
        }
    }
    if let Some(pools) = &a.client_pools {
        let parse = |p: &String| p.parse::<crate::table::Cidr>().ok();
        let want: Vec<_> = pools.iter().map(parse).collect();
        let has: Vec<_> = s.client_pools.iter().map(parse).collect();
        if want != has {
            return Err(format!(
                "the scenario assumes client pools {}, and this server has {}: start it with \
                 --client-pools {}",
                pools.join(","),
                s.client_pools.join(","),
                pools.join(",")
            ));
        }
    }
    if let Some(servers) = &a.servers {
        let want: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
        if want != s.servers {
            return Err(format!(
                "the scenario assumes servers {}, and this server has {}: start it with \
                 --servers {}",
                want.join(","),
                s.servers.join(","),
                want.join(",")
            ));
        }
    }
    if let Some(assumed) = a.tcp_max_tw_buckets {
        let needed = ((f64::from(assumed) * scale).round() as u32).max(1);
        if s.tcp_max_tw_buckets != needed {
            let at_scale = if scale == 1.0 {
                String::new()
            } else {
                format!(" ({needed} at --scale {scale})")
            };
            return Err(format!(
                "the scenario assumes tcp_max_tw_buckets {assumed}{at_scale}, and this server has \
                 {}: start it with --tcp-max-tw-buckets {needed}",
                s.tcp_max_tw_buckets
            ));
        }
    }
    if let Some(ms) = a.time_wait_ms.filter(|&ms| ms != s.time_wait_ms) {
        return Err(format!(
            "the scenario assumes TIME-WAIT lasts {ms} ms, and on this server it lasts {} ms \
             (2 × --msl-ms, or the profile's)",
            s.time_wait_ms
        ));
    }
    Ok(())
}

/// Runs a scenario; the report says whether every expectation held.
pub async fn run(sc: &Scenario, opts: &Options) -> Result<Report, LoadError> {
    if opts.targets.is_empty() {
        return Err(LoadError::NoTargets);
    }
    let mut servers = Vec::new();
    for target in &opts.targets {
        let s = stream::Server::connect(target, &opts.client).await?;
        check_assumes(&sc.assumes, opts.scale, &s.settings).map_err(|why| LoadError::Assumes {
            target: target.clone(),
            why,
        })?;
        servers.push(s);
    }
    let mut runner = phases::Runner { servers, opts };
    let mut report = Report {
        scenario: sc.name.clone(),
        ok: true,
        ..Default::default()
    };
    let ran = run_phases(sc, opts, &mut runner, &mut report).await;
    // A scenario's host settings last for its run.
    if sc.phases.iter().any(|p| matches!(p, Phase::Listener(_))) {
        for s in &mut runner.servers {
            s.restore_listeners().await?;
        }
    }
    if sc
        .phases
        .iter()
        .any(|p| matches!(p, Phase::ClientSysctls(_)))
    {
        for s in &mut runner.servers {
            s.restore_client_sysctls().await?;
        }
    }
    if sc.phases.iter().any(|p| matches!(p, Phase::Link(_))) {
        for s in &mut runner.servers {
            s.restore_links().await?;
        }
    }
    ran?;
    for s in &mut runner.servers {
        s.finish().await;
    }
    Ok(report)
}

async fn run_phases(
    sc: &Scenario,
    opts: &Options,
    runner: &mut phases::Runner<'_>,
    report: &mut Report,
) -> Result<(), LoadError> {
    for phase in &sc.phases {
        let started = Instant::now();
        let mut done = stream::Done::default();
        let bar = progress_bar(opts.progress, phase);
        let check = runner.phase(phase, &bar, &mut done).await?;
        let unexpected: u64 = done.errors.values().sum();
        let refused: u64 = done.refused.values().sum();
        bar.finish_with_message(match (unexpected, refused) {
            (0, 0) => String::new(),
            (0, r) => format!("{r} refused"),
            (e, 0) => format!("{e} errors"),
            (e, r) => format!("{e} errors, {r} refused"),
        });
        let seconds = started.elapsed().as_secs_f64();
        let allowed = phase.errors_allowed();
        let within_budget = unexpected <= allowed;
        let ok = check.as_ref().is_none_or(|c| c.ok) && within_budget;
        report.ok &= ok;
        let asked = phase.rate() * opts.scale;
        // Achieved on the clock the phase ran on: virtual time moved, or real time waited for
        // (or taken, if the phase ran late).
        let clock_seconds =
            (done.clock_ms as f64 / 1000.0).max(if runner.virtual_clock() { 0.0 } else { seconds });
        report.phases.push(PhaseReport {
            phase: phase.name().to_string(),
            operations: done.ops,
            seconds,
            per_second: done.ops as f64 / seconds.max(1e-9),
            rate: (asked > 0.0).then(|| report::Rate {
                asked,
                achieved: done.paced as f64 / clock_seconds.max(1e-9),
                clock_seconds,
            }),
            latency_ms: report::percentiles(&done.latency_us),
            refused: done.refused,
            errors_allowed: (allowed > 0).then_some(allowed),
            errors_over_budget: !within_budget,
            errors: done.errors,
            occupancy: report::occupancy(&mut runner.servers).await?,
            check: check.map(|c| c.text),
            ok,
        });
    }
    Ok(())
}

/// A phase's progress bar: operations with their rate (whole numbers), a hold's milliseconds,
/// an expectation with neither.
fn progress_bar(shown: bool, phase: &Phase) -> ProgressBar {
    let bar = if shown {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let template = match phase {
        Phase::Hold(_) => "{prefix:>10} [{bar:30}] {pos}/{len} ms {msg}",
        Phase::Expect(_) | Phase::Listener(_) | Phase::ClientSysctls(_) | Phase::Link(_) => {
            "{prefix:>10} {msg}"
        }
        Phase::Churn(_) => "{prefix:>10} [{bar:30}] {pos}/{len} lifecycles {rate} {msg}",
        _ => "{prefix:>10} [{bar:30}] {pos}/{len} ops {rate} {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(phase.name());
    bar
}

//! Conformance runner: plays scenario files recorded from Linux (format:
//! `tests/conformance/README.md`) against an [`Engine`] and reports pass or fail per file.
//!
//! The runner owns the file format, the sequence-number offsets and the matching rules; an
//! [`Engine`] only performs steps. The engines: the core itself and the connection table
//! ([`local`]), and a server over gRPC ([`grpc`]).

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod grpc;
pub mod local;

pub use local::{InProcess, ThroughTable};

use crate::tcp::{Call, Config, ConfigError, Flags, Overrides, Segment, SeqNum, State};

/// How far from its scripted time an expected segment may be emitted (ms).
pub const TOLERANCE_MS: u64 = 25;

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    pub role: Role,
    #[serde(default)]
    pub config: ScenarioConfig,
    pub steps: Vec<Step>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Client,
}

/// Settings a scenario changed from Linux's defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    pub syn_retries: Option<u8>,
    pub synack_retries: Option<u8>,
    pub fin_timeout_ms: Option<u32>,
}

impl ScenarioConfig {
    /// `base` with the scenario's changes, checked as every source of settings is.
    pub fn apply(&self, base: &Config) -> Result<Config, ConfigError> {
        Overrides {
            syn_retries: self.syn_retries,
            synack_retries: self.synack_retries,
            fin_timeout_ms: self.fin_timeout_ms,
            ..Overrides::default()
        }
        .apply(base)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Listen,
    Connect,
    Send {
        bytes: u32,
    },
    Shutdown,
    Close,
    Abort,
    Inject {
        flags: Flags,
        seq: u32,
        ack: Option<u32>,
        #[serde(default)]
        win: u16,
        /// Payload bytes: at most 65 535 (an IPv4 datagram's limit).
        #[serde(default)]
        len: u16,
        mss: Option<u16>,
    },
    Advance {
        ms: u64,
    },
    Expect {
        flags: Flags,
        seq: u32,
        ack: Option<u32>,
        #[serde(default)]
        len: u16,
    },
    State {
        is: State,
    },
}

/// Why an engine could not perform a step.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The endpoint refused a user call (in process).
    #[error(transparent)]
    Refused(#[from] crate::tcp::Error),
    /// The table refused a call.
    #[error(transparent)]
    Table(#[from] crate::table::Error),
    /// The server answered a call with an error.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the scenario has not opened its endpoint yet (listen or connect)")]
    NotOpen,
    /// The server's reply lacks what the call promises.
    #[error("bad reply: {0}")]
    BadReply(String),
}

/// What the runner needs from a simulator: one endpoint on a virtual clock that starts at 0.
pub trait Engine {
    /// Forgets the last scenario; the next call (listen or connect) opens an endpoint with these
    /// settings.
    fn start(&mut self, cfg: &Config) -> Result<(), EngineError>;
    /// A user call. A refusal is reported as an error.
    fn call(&mut self, call: Call) -> Result<(), EngineError>;
    /// A segment from the peer arrives now.
    fn inject(&mut self, seg: Segment) -> Result<(), EngineError>;
    /// Moves the clock forward to `t` (ms since start), firing every timer due on the way.
    fn advance_to(&mut self, t: u64) -> Result<(), EngineError>;
    /// Takes the segments emitted since the last call, oldest first, with their times.
    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, EngineError>;
    fn state(&mut self) -> Result<State, EngineError>;
}

/// Where a run failed: the step (0-based, as in the file), what was expected and what came.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("step {step} ({op}): expected {expected}, got {got}")]
pub struct Mismatch {
    pub step: usize,
    pub op: &'static str,
    pub expected: String,
    pub got: String,
}

/// The ISS values every scenario runs with: an ordinary one, and one just below 2^32 so that our
/// sequence numbers wrap during the scenario.
pub const ISS_VARIANTS: [(&str, u32, u32); 2] = [
    ("iss=1000000", 1_000_000, 0),
    ("iss=2^32-2", u32::MAX - 1, u32::MAX - 49),
];

/// Runs one scenario against `engine` with the scenario's settings on top of `base`, our ISS
/// `iss` and the peer's numbers shifted by `peer_offset` (the file's peer ISN is 0; shifting
/// makes the peer's numbers wrap too).
pub fn run_scenario(
    engine: &mut dyn Engine,
    sc: &Scenario,
    base: &Config,
    iss: u32,
    peer_offset: u32,
) -> Result<(), Mismatch> {
    let iss = SeqNum(iss);
    let peer = |n: u32| SeqNum(n.wrapping_add(peer_offset));
    let engine_err = |step: usize, op: &'static str, e: EngineError| Mismatch {
        step,
        op,
        expected: "the engine to accept the step".into(),
        got: e.to_string(),
    };
    let cfg = sc.config.apply(base).map_err(|e| Mismatch {
        step: 0,
        op: "start",
        expected: "settings in range".into(),
        got: format!("config.{e}"),
    })?;
    engine.start(&cfg).map_err(|e| engine_err(0, "start", e))?;
    let mut pending: VecDeque<(u64, Segment)> = VecDeque::new();
    let mut script_t: u64 = 0;
    let mut engine_t: u64 = 0;
    let show = |s: &Segment| describe(s, iss, peer_offset);

    // Strictness: nothing may be waiting that the file did not expect.
    let check_quiet = |engine: &mut dyn Engine,
                       pending: &mut VecDeque<(u64, Segment)>,
                       step: usize,
                       op: &'static str| {
        pending.extend(engine.take_emitted().map_err(|e| engine_err(step, op, e))?);
        if let Some((at, seg)) = pending.front() {
            return Err(Mismatch {
                step,
                op,
                expected: "no segment before this step".into(),
                got: format!("{} at {} ms", show(seg), at),
            });
        }
        Ok(())
    };

    for (i, step) in sc.steps.iter().enumerate() {
        match step {
            Step::Listen
            | Step::Connect
            | Step::Send { .. }
            | Step::Shutdown
            | Step::Close
            | Step::Abort => {
                let call = match step {
                    Step::Listen => Call::Listen { iss },
                    Step::Connect => Call::Connect { iss },
                    Step::Send { bytes } => Call::Send(*bytes),
                    Step::Shutdown => Call::Shutdown,
                    Step::Close => Call::Close,
                    _ => Call::Abort,
                };
                engine
                    .call(call)
                    .map_err(|e| engine_err(i, call.name(), e))?;
            }
            Step::Inject {
                flags,
                seq,
                ack,
                win,
                len,
                mss,
            } => {
                check_quiet(engine, &mut pending, i, "inject")?;
                let mut f = *flags;
                if ack.is_some() {
                    f |= Flags::ACK;
                }
                let seg = Segment {
                    seq: peer(*seq),
                    ack: ack.map_or(SeqNum(0), |a| iss + a),
                    len: *len,
                    wnd: *win,
                    mss: mss.and_then(std::num::NonZeroU16::new),
                    flags: f,
                };
                engine.inject(seg).map_err(|e| engine_err(i, "inject", e))?;
            }
            Step::Advance { ms } => {
                check_quiet(engine, &mut pending, i, "advance")?;
                script_t += ms;
                if script_t > engine_t {
                    engine
                        .advance_to(script_t)
                        .map_err(|e| engine_err(i, "advance", e))?;
                    engine_t = script_t;
                }
            }
            Step::Expect {
                flags,
                seq,
                ack,
                len,
            } => {
                let want_flags = *flags;
                let want = format!(
                    "{} seq={} ack={} len={} at {} ms",
                    Flags(want_flags.0 & !Flags::PSH.0),
                    seq,
                    ack.map_or("-".to_string(), |a| a.to_string()),
                    len,
                    script_t
                );
                pending.extend(
                    engine
                        .take_emitted()
                        .map_err(|e| engine_err(i, "expect", e))?,
                );
                if pending.is_empty() && engine_t < script_t + TOLERANCE_MS {
                    engine
                        .advance_to(script_t + TOLERANCE_MS)
                        .map_err(|e| engine_err(i, "expect", e))?;
                    engine_t = script_t + TOLERANCE_MS;
                    pending.extend(
                        engine
                            .take_emitted()
                            .map_err(|e| engine_err(i, "expect", e))?,
                    );
                }
                let Some((at, got)) = pending.pop_front() else {
                    return Err(Mismatch {
                        step: i,
                        op: "expect",
                        expected: want,
                        got: "no segment".into(),
                    });
                };
                let compared = Flags::SYN.0 | Flags::ACK.0 | Flags::FIN.0 | Flags::RST.0;
                let ok = got.flags.0 & compared == want_flags.0 & compared
                    && got.seq - iss == *seq
                    && got.len == *len
                    && ack.is_none_or(|a| got.ack == peer(a))
                    && at + TOLERANCE_MS >= script_t
                    && at <= script_t + TOLERANCE_MS;
                if !ok {
                    return Err(Mismatch {
                        step: i,
                        op: "expect",
                        expected: want,
                        got: format!("{} at {} ms", show(&got), at),
                    });
                }
            }
            Step::State { is: want } => {
                let want = *want;
                let got = engine.state().map_err(|e| engine_err(i, "state", e))?;
                if got != want {
                    return Err(Mismatch {
                        step: i,
                        op: "state",
                        expected: want.ident().into(),
                        got: got.ident().into(),
                    });
                }
            }
        }
    }
    check_quiet(engine, &mut pending, sc.steps.len(), "end of file")
}

/// A segment in the file's terms: our seq relative to ISS, the peer's ack absolute.
fn describe(seg: &Segment, iss: SeqNum, peer_offset: u32) -> String {
    let flags = Flags(seg.flags.0 & !Flags::PSH.0);
    let ack = if seg.has(Flags::ACK) {
        (seg.ack.0.wrapping_sub(peer_offset)).to_string()
    } else {
        "-".into()
    };
    format!(
        "{} seq={} ack={} len={}",
        flags,
        seg.seq - iss,
        ack,
        seg.len
    )
}

/// Why a file failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("cannot parse: {0}")]
    Parse(#[from] serde_json::Error),
    /// A run with ISS variant `variant` (one of [`ISS_VARIANTS`]) did not go as recorded.
    #[error("{mismatch} [{variant}]")]
    Mismatch {
        mismatch: Mismatch,
        variant: &'static str,
    },
}

/// A path given on the command line that names no scenario files.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The outcome for one file.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub name: String,
    pub outcome: Result<(), FileError>,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(f, "pass  {}", self.path.display()),
            Err(why) => write!(f, "FAIL  {}: {}", self.path.display(), why),
        }
    }
}

/// Parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, FileError> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}

/// The `*.json` files under each path (a file is taken as it is), sorted.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PathError> {
    let mut files = vec![];
    for p in paths {
        let err = |source| PathError {
            path: p.clone(),
            source,
        };
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(err)?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            // A file is taken as it is; one that cannot be read fails when it is run.
            std::fs::metadata(p).map_err(err)?;
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Runs every file with every ISS variant, each on its settings on top of `base` (a profile's,
/// usually); a file passes when all variants pass.
pub fn run_files(files: &[PathBuf], engine: &mut dyn Engine, base: &Config) -> Vec<FileReport> {
    files
        .iter()
        .map(|path| {
            let sc = match load(path) {
                Ok(sc) => sc,
                Err(why) => {
                    return FileReport {
                        path: path.clone(),
                        name: String::new(),
                        outcome: Err(why),
                    };
                }
            };
            let outcome = ISS_VARIANTS
                .iter()
                .try_for_each(|&(variant, iss, peer_offset)| {
                    run_scenario(engine, &sc, base, iss, peer_offset)
                        .map_err(|mismatch| FileError::Mismatch { mismatch, variant })
                });
            FileReport {
                path: path.clone(),
                name: sc.name,
                outcome,
            }
        })
        .collect()
}

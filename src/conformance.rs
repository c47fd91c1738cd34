//! Conformance runner: plays scenario files recorded from Linux (format:
//! `tests/conformance/README.md`) against an [`Engine`] and reports pass or fail per file.
//!
//! The runner owns the file format, the sequence-number offsets and the matching rules; an
//! [`Engine`] only performs steps. [`InProcess`] drives the core directly on a virtual clock; the
//! gRPC API can provide another.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod grpc;

use crate::tcp::{Config, ConfigError, External, Flags, Overrides, Segment, SeqNum, State};

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
        flags: Vec<String>,
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
        flags: Vec<String>,
        seq: u32,
        ack: Option<u32>,
        #[serde(default)]
        len: u16,
    },
    State {
        is: String,
    },
}

/// A user call the scenario makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserCall {
    Listen,
    Connect,
    Send(u32),
    Shutdown,
    Close,
    Abort,
}

/// What the runner needs from a simulator: one endpoint on a virtual clock that starts at 0.
pub trait Engine {
    /// A fresh endpoint in CLOSED with these settings and this ISS.
    fn start(&mut self, cfg: &Config, iss: SeqNum) -> Result<(), String>;
    /// A user call. A refusal is reported as an error.
    fn call(&mut self, call: UserCall) -> Result<(), String>;
    /// A segment from the peer arrives now.
    fn inject(&mut self, seg: Segment) -> Result<(), String>;
    /// Moves the clock forward to `t` (ms since start), firing every timer due on the way.
    fn advance_to(&mut self, t: u64) -> Result<(), String>;
    /// Takes the segments emitted since the last call, oldest first, with their times.
    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, String>;
    fn state(&mut self) -> Result<State, String>;
}

/// The core itself, in EXTERNAL mode, on a virtual clock.
#[derive(Default)]
pub struct InProcess {
    cfg: Config,
    ext: External,
    now: u64,
    iss: SeqNum,
    answers: Vec<(u64, Segment)>,
}

impl Engine for InProcess {
    fn start(&mut self, cfg: &Config, iss: SeqNum) -> Result<(), String> {
        self.cfg = cfg.clone();
        self.ext = External::new();
        self.now = 0;
        self.answers.clear();
        self.iss = iss;
        Ok(())
    }

    fn call(&mut self, call: UserCall) -> Result<(), String> {
        let (cfg, now, iss) = (&self.cfg, self.now, self.iss);
        let t = &mut |_| {};
        match call {
            UserCall::Listen => self.ext.listen(cfg, now, iss, t),
            UserCall::Connect => self.ext.connect(cfg, now, iss, t),
            UserCall::Send(n) => self.ext.send(cfg, now, n, t),
            UserCall::Shutdown => self.ext.shutdown(cfg, now, t),
            UserCall::Close => self.ext.close(cfg, now, t),
            UserCall::Abort => self.ext.abort(cfg, now, t),
        }
        .map_err(|e| e.to_string())
    }

    fn inject(&mut self, seg: Segment) -> Result<(), String> {
        let now = self.now;
        let answer = self.ext.inject(&self.cfg, now, &seg, &mut |_| {});
        self.answers.extend(answer.into_iter().map(|s| (now, s)));
        Ok(())
    }

    fn advance_to(&mut self, t: u64) -> Result<(), String> {
        // Fire each timer at its own deadline, in order, so emission times are exact.
        while let Some(timer) = self.ext.endpoint.timer(self.now) {
            if timer.deadline > t {
                break;
            }
            self.now = self.now.max(timer.deadline);
            self.ext.on_timeout(&self.cfg, self.now, &mut |_| {});
        }
        self.now = self.now.max(t);
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, String> {
        // Answers to injections and outbox entries interleave by time; both are in order.
        let mut all: Vec<(u64, Segment)> = self
            .ext
            .take(usize::MAX)
            .into_iter()
            .map(|e| (e.at, e.seg))
            .collect();
        all.append(&mut self.answers);
        all.sort_by_key(|&(at, _)| at);
        Ok(all)
    }

    fn state(&mut self) -> Result<State, String> {
        Ok(self.ext.endpoint.state())
    }
}

impl InProcess {
    pub fn new() -> InProcess {
        InProcess::default()
    }
}

/// The connection table in EXTERNAL mode on a virtual clock: the same path the gRPC API drives.
#[derive(Default)]
pub struct ThroughTable {
    table: Option<crate::table::Table>,
    id: Option<crate::table::ConnId>,
    iss: SeqNum,
    answers: Vec<(u64, Segment)>,
}

impl ThroughTable {
    pub fn new() -> ThroughTable {
        ThroughTable::default()
    }

    fn table(&self) -> Result<&crate::table::Table, String> {
        self.table
            .as_ref()
            .ok_or_else(|| "no scenario started".to_string())
    }

    fn id(&self) -> Result<(crate::table::ConnId, crate::tcp::Side), String> {
        let id = self
            .id
            .ok_or("the scenario has not opened its endpoint yet (listen or connect)")?;
        let info = self.table()?.get(id).map_err(|e| e.to_string())?;
        Ok((id, info.sides[0].side))
    }
}

impl Engine for ThroughTable {
    fn start(&mut self, cfg: &Config, iss: SeqNum) -> Result<(), String> {
        use crate::table::{Clock, Table, TableConfig};
        let tcp = cfg.clone();
        let table_cfg = TableConfig {
            shards: 2,
            capacity: 4,
            ..TableConfig::default()
        };
        self.table = Some(Table::new(table_cfg, tcp, Clock::virtual_at(0))?);
        self.id = None;
        self.iss = iss;
        self.answers.clear();
        Ok(())
    }

    fn call(&mut self, call: UserCall) -> Result<(), String> {
        use crate::table::{CloseHow, Mode, OpenSpec, Sides};
        use crate::tcp::Side;
        let t = self.table()?;
        let open = |role| {
            let spec = OpenSpec {
                iss: Some(self.iss.0),
                ..OpenSpec::new(Mode::External(role))
            };
            t.open(&spec).map(|o| o.id).map_err(|e| e.to_string())
        };
        match call {
            UserCall::Listen => self.id = Some(open(Side::Server)?),
            UserCall::Connect => self.id = Some(open(Side::Client)?),
            other => {
                let (id, side) = self.id()?;
                let t = self.table()?;
                let r = match other {
                    UserCall::Send(n) => t.send(id, side, n),
                    UserCall::Shutdown => t.close(id, Sides::One(side), CloseHow::Shutdown),
                    UserCall::Close => t.close(id, Sides::One(side), CloseHow::Close),
                    _ => t.abort(id, side),
                };
                r.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn inject(&mut self, seg: Segment) -> Result<(), String> {
        let (id, side) = self.id()?;
        let t = self.table()?;
        let now = t.now();
        let r = t.inject(id, side, &seg).map_err(|e| e.to_string())?;
        self.answers.extend(r.emitted.into_iter().map(|s| (now, s)));
        Ok(())
    }

    fn advance_to(&mut self, at: u64) -> Result<(), String> {
        let t = self.table()?;
        let now = t.now();
        t.advance(at.saturating_sub(now))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, String> {
        let mut all = std::mem::take(&mut self.answers);
        if let Ok((id, side)) = self.id() {
            let t = self.table()?;
            let waiting = t
                .get(id)
                .map_err(|e| e.to_string())?
                .wire
                .first()
                .map_or(0, |(_, q)| q.len());
            if waiting > 0 {
                let dir = crate::tcp::Direction::from_side(side);
                let w = t
                    .wire(id, dir, crate::table::WireAction::Deliver, waiting as u32)
                    .map_err(|e| e.to_string())?;
                all.extend(w.emitted_at.into_iter().zip(w.moved));
            }
        }
        all.sort_by_key(|&(at, _)| at);
        Ok(all)
    }

    fn state(&mut self) -> Result<State, String> {
        let (id, _) = self.id()?;
        let info = self.table()?.get(id).map_err(|e| e.to_string())?;
        Ok(info.sides[0].state)
    }
}

/// Where a run failed: the step (0-based, as in the file), what was expected and what came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub step: usize,
    pub op: &'static str,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({}): expected {}, got {}",
            self.step, self.op, self.expected, self.got
        )
    }
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
    let engine_err = |step: usize, op: &'static str, e: String| Mismatch {
        step,
        op,
        expected: "the engine to accept the step".into(),
        got: e,
    };
    let cfg = sc.config.apply(base).map_err(|e| Mismatch {
        step: 0,
        op: "start",
        expected: "settings in range".into(),
        got: format!("config.{e}"),
    })?;
    engine
        .start(&cfg, iss)
        .map_err(|e| engine_err(0, "start", e))?;
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
                let (call, op) = match step {
                    Step::Listen => (UserCall::Listen, "listen"),
                    Step::Connect => (UserCall::Connect, "connect"),
                    Step::Send { bytes } => (UserCall::Send(*bytes), "send"),
                    Step::Shutdown => (UserCall::Shutdown, "shutdown"),
                    Step::Close => (UserCall::Close, "close"),
                    _ => (UserCall::Abort, "abort"),
                };
                engine.call(call).map_err(|e| engine_err(i, op, e))?;
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
                let mut f = parse_flags(flags).map_err(|e| engine_err(i, "inject", e))?;
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
                let want_flags = parse_flags(flags).map_err(|e| engine_err(i, "expect", e))?;
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
            Step::State { is } => {
                let want = State::parse(is)
                    .ok_or_else(|| engine_err(i, "state", format!("unknown state {is:?}")))?;
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

fn parse_flags(names: &[String]) -> Result<Flags, String> {
    names.iter().try_fold(Flags::NONE, |acc, n| {
        Flags::from_name(n)
            .map(|f| acc | f)
            .ok_or_else(|| format!("unknown flag {n:?}"))
    })
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

/// The outcome for one file.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub name: String,
    pub outcome: Result<(), String>,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(f, "pass  {}", self.path.display()),
            Err(why) => write!(f, "FAIL  {}: {}", self.path.display(), why),
        }
    }
}

/// Parses a scenario file, naming the file and the reason on failure.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("cannot parse: {e}"))
}

/// The `*.json` files under each path (a file is taken as it is), sorted.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![];
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
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
                .try_for_each(|&(label, iss, peer_offset)| {
                    run_scenario(engine, &sc, base, iss, peer_offset)
                        .map_err(|m| format!("{m} [{label}]"))
                });
            FileReport {
                path: path.clone(),
                name: sc.name,
                outcome,
            }
        })
        .collect()
}

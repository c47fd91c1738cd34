//! The conformance engines that run in this process: the core itself ([`InProcess`]) and the
//! connection table the gRPC API drives ([`ThroughTable`]), each on a virtual clock from 0.

use super::{Engine, EngineError};
use crate::table::{Clock, ConnId, Mode, OpenSpec, Sides, Table, TableConfig, WireAction};
use crate::tcp::{Call, Config, Direction, External, Segment, Side, State};

/// The core itself, in EXTERNAL mode, on a virtual clock.
#[derive(Default)]
pub struct InProcess {
    cfg: Config,
    ext: External,
    now: u64,
    answers: Vec<(u64, Segment)>,
}

impl InProcess {
    pub fn new() -> InProcess {
        InProcess::default()
    }
}

impl Engine for InProcess {
    fn start(&mut self, cfg: &Config) -> Result<(), EngineError> {
        *self = InProcess {
            cfg: cfg.clone(),
            ..InProcess::default()
        };
        Ok(())
    }

    fn call(&mut self, call: Call) -> Result<(), EngineError> {
        Ok(self.ext.call(&self.cfg, self.now, call, &mut ())?)
    }

    fn inject(&mut self, seg: Segment) -> Result<(), EngineError> {
        let now = self.now;
        let answer = self.ext.inject(&self.cfg, now, &seg, &mut ());
        self.answers.extend(answer.into_iter().map(|s| (now, s)));
        Ok(())
    }

    fn advance_to(&mut self, t: u64) -> Result<(), EngineError> {
        // Fire each timer at its own deadline, in order, so emission times are exact.
        while let Some(timer) = self.ext.endpoint.timer(self.now) {
            if timer.deadline > t {
                break;
            }
            self.now = self.now.max(timer.deadline);
            self.ext.on_timeout(&self.cfg, self.now, &mut ());
        }
        self.now = self.now.max(t);
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, EngineError> {
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

    fn state(&mut self) -> Result<State, EngineError> {
        Ok(self.ext.endpoint.state())
    }
}

/// The connection table in EXTERNAL mode on a virtual clock: the same path the gRPC API drives.
pub struct ThroughTable {
    table: Table,
    settings: Config,
    /// The connection and its one side, once listen or connect opened it.
    conn: Option<(ConnId, Side)>,
    answers: Vec<(u64, Segment)>,
}

impl Default for ThroughTable {
    fn default() -> ThroughTable {
        ThroughTable::new()
    }
}

impl ThroughTable {
    pub fn new() -> ThroughTable {
        ThroughTable {
            table: ThroughTable::fresh_table(),
            settings: Config::default(),
            conn: None,
            answers: Vec::new(),
        }
    }

    fn fresh_table() -> Table {
        let cfg = TableConfig {
            shards: 2,
            capacity: 4,
            ..TableConfig::default()
        };
        Table::new(cfg, Config::default(), Clock::virtual_at(0))
            .expect("the default table settings are valid")
    }

    fn conn(&self) -> Result<(ConnId, Side), EngineError> {
        self.conn.ok_or(EngineError::NotOpen)
    }
}

impl Engine for ThroughTable {
    fn start(&mut self, cfg: &Config) -> Result<(), EngineError> {
        self.table = ThroughTable::fresh_table();
        self.settings = cfg.clone();
        self.conn = None;
        self.answers.clear();
        Ok(())
    }

    fn call(&mut self, call: Call) -> Result<(), EngineError> {
        let opens = match call {
            Call::Listen { iss } => Some((Side::Server, iss)),
            Call::Connect { iss } => Some((Side::Client, iss)),
            _ => None,
        };
        if let Some((role, iss)) = opens {
            let spec = OpenSpec {
                iss: Some(iss.0),
                settings: Some(self.settings.clone()),
                ..OpenSpec::new(Mode::External(role))
            };
            let opened = self.table.open(&spec)?;
            self.conn = Some((opened.id, role));
            return Ok(());
        }
        let (id, side) = self.conn()?;
        self.table.call(id, Sides::One(side), call)?;
        Ok(())
    }

    fn inject(&mut self, seg: Segment) -> Result<(), EngineError> {
        let (id, side) = self.conn()?;
        let now = self.table.now();
        let r = self.table.inject(id, side, &seg)?;
        self.answers.extend(r.emitted.into_iter().map(|s| (now, s)));
        Ok(())
    }

    fn advance_to(&mut self, at: u64) -> Result<(), EngineError> {
        self.table.advance(at.saturating_sub(self.table.now()))?;
        Ok(())
    }

    fn take_emitted(&mut self) -> Result<Vec<(u64, Segment)>, EngineError> {
        let mut all = std::mem::take(&mut self.answers);
        if let Some((id, side)) = self.conn {
            let waiting = self.table.get(id)?.wire.first().map_or(0, |(_, q)| q.len());
            if waiting > 0 {
                let dir = Direction::from_side(side);
                let w = self
                    .table
                    .wire(id, dir, WireAction::Deliver, waiting as u32)?;
                all.extend(w.emitted_at.into_iter().zip(w.moved));
            }
        }
        all.sort_by_key(|&(at, _)| at);
        Ok(all)
    }

    fn state(&mut self) -> Result<State, EngineError> {
        let (id, _) = self.conn()?;
        Ok(self.table.get(id)?.sides[0].state)
    }
}

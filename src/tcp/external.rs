//! EXTERNAL mode: one endpoint whose peer is the caller. What the endpoint emits in answer to a
//! segment the caller injects is handed back at once; what it emits on its own (a timer, a user
//! call) waits in an outbox until the caller takes it.

use std::collections::VecDeque;

use super::config::Config;
use super::endpoint::{Endpoint, Error, Output};
use super::segment::Segment;
use super::seq::SeqNum;
use super::state::Transition;

/// A segment in the outbox and when it was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub at: u64,
    pub seg: Segment,
}

/// One endpoint, its outbox, and the settings it was opened with if they are its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct External {
    pub endpoint: Endpoint,
    outbox: VecDeque<Emitted>,
    settings: Option<Box<Config>>,
}

struct Outbox<'a, T: FnMut(Transition) + ?Sized> {
    at: u64,
    queue: &'a mut VecDeque<Emitted>,
    on_transition: &'a mut T,
}

impl<T: FnMut(Transition) + ?Sized> Output for Outbox<'_, T> {
    fn segment(&mut self, seg: Segment) {
        self.queue.push_back(Emitted { at: self.at, seg });
    }
    fn transition(&mut self, t: Transition) {
        (self.on_transition)(t);
    }
}

impl External {
    pub fn new() -> External {
        External::default()
    }

    /// An endpoint that uses `settings` instead of the settings each call passes.
    pub fn with_settings(settings: Option<Config>) -> External {
        External {
            settings: settings.map(Box::new),
            ..External::default()
        }
    }

    /// The settings this endpoint was opened with, if it has its own.
    pub fn settings(&self) -> Option<&Config> {
        self.settings.as_deref()
    }

    /// Segments waiting for the caller, oldest first.
    pub fn outbox(&self) -> &VecDeque<Emitted> {
        &self.outbox
    }

    /// Takes up to `n` segments from the outbox, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<Emitted> {
        let n = n.min(self.outbox.len());
        self.outbox.drain(..n).collect()
    }

    /// Runs `f` on the endpoint, under its own settings if it has them (else `cfg`), with its
    /// output going to the outbox.
    fn run<R, T: FnMut(Transition) + ?Sized>(
        &mut self,
        cfg: &Config,
        now: u64,
        on_transition: &mut T,
        f: impl FnOnce(&mut Endpoint, &Config, &mut Outbox<'_, T>) -> R,
    ) -> R {
        let mut out = Outbox {
            at: now,
            queue: &mut self.outbox,
            on_transition,
        };
        f(
            &mut self.endpoint,
            self.settings.as_deref().unwrap_or(cfg),
            &mut out,
        )
    }

    pub fn listen(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.listen(cfg, now, iss, out))
    }
    pub fn connect(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.connect(cfg, now, iss, out))
    }
    pub fn send(
        &mut self,
        cfg: &Config,
        now: u64,
        n: u32,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.send(cfg, now, n, out))
    }
    pub fn shutdown(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.shutdown(cfg, now, out))
    }
    pub fn close(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.close(cfg, now, out))
    }
    pub fn abort(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| ep.abort(cfg, now, out))
    }

    /// Fires the timer if due; its segments go to the outbox.
    pub fn on_timeout(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> bool {
        self.run(cfg, now, t, |ep, cfg, out| ep.on_timeout(cfg, now, out))
    }

    /// The caller's segment arrives. Returns what the endpoint answered (not put in the outbox).
    pub fn inject(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Vec<Segment> {
        let mut answer = VecDeque::new();
        let mut out = Outbox {
            at: now,
            queue: &mut answer,
            on_transition: t,
        };
        let cfg = self.settings.as_deref().unwrap_or(cfg);
        self.endpoint.on_segment(cfg, now, seg, &mut out);
        answer.into_iter().map(|e| e.seg).collect()
    }
}

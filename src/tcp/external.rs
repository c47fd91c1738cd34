//! EXTERNAL mode: one endpoint whose peer is the caller. What the endpoint emits in answer to a
//! segment the caller injects is handed back at once; what it emits on its own (a timer, a user
//! call) waits in an outbox until the caller takes it.

use std::collections::VecDeque;

use super::config::Config;
use super::endpoint::{Endpoint, Error, Output};
use super::segment::Segment;
use super::seq::SeqNum;
use super::state::{State, Transition};

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

/// Linux's `tcp_close` on a socket whose connection is gone (`close_after_reset`).
fn releases_dead_socket(ep: &Endpoint, cfg: &Config) -> bool {
    ep.state() == State::Closed && cfg.profile.close_after_reset
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
    /// close(). On an endpoint already CLOSED (reset, timed out) it is the application releasing
    /// a dead socket: nothing happens and, where the profile follows Linux, it is no error.
    pub fn close(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| {
            if releases_dead_socket(ep, cfg) {
                return Ok(());
            }
            ep.close(cfg, now, out)
        })
    }
    /// Abort (`SO_LINGER` 0, then close); on a CLOSED endpoint, as `close`.
    pub fn abort(
        &mut self,
        cfg: &Config,
        now: u64,
        t: &mut (impl FnMut(Transition) + ?Sized),
    ) -> Result<(), Error> {
        self.run(cfg, now, t, |ep, cfg, out| {
            if releases_dead_socket(ep, cfg) {
                return Ok(());
            }
            ep.abort(cfg, now, out)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{Call, Flags, ProfileName};

    /// A server endpoint reset by its peer, then released by the application.
    fn reset_server(cfg: &Config) -> External {
        let mut x = External::new();
        let t = &mut |_| {};
        x.listen(cfg, 0, SeqNum(1000), t).unwrap();
        let syn = Segment {
            seq: SeqNum(5000),
            flags: Flags::SYN,
            wnd: 1000,
            ..Segment::default()
        };
        x.inject(cfg, 0, &syn, t);
        let ack = Segment {
            seq: SeqNum(5001),
            ack: SeqNum(1001),
            flags: Flags::ACK,
            wnd: 1000,
            ..Segment::default()
        };
        x.inject(cfg, 1, &ack, t);
        let rst = Segment {
            seq: SeqNum(5001),
            flags: Flags::RST,
            ..Segment::default()
        };
        x.inject(cfg, 2, &rst, t);
        assert_eq!(x.endpoint.state(), State::Closed);
        x
    }

    #[test]
    fn close_or_abort_after_a_reset_releases_the_socket() {
        // Linux: close() on a socket already reset releases it; nothing is sent.
        let cfg = Config::default();
        for abort in [false, true] {
            let mut x = reset_server(&cfg);
            let before = x.clone();
            let r = if abort {
                x.abort(&cfg, 3, &mut |_| {})
            } else {
                x.close(&cfg, 3, &mut |_| {})
            };
            assert_eq!(r, Ok(()));
            assert_eq!(x, before, "nothing happens");
        }
        // RFC 9293: the connection does not exist.
        let rfc = Config::for_profile(ProfileName::Rfc9293);
        let mut x = reset_server(&rfc);
        assert_eq!(
            x.close(&rfc, 3, &mut |_| {}),
            Err(Error::InvalidInState {
                call: Call::Close,
                state: State::Closed
            })
        );
    }
}

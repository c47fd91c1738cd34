//! EXTERNAL mode: one endpoint whose peer is the caller. What the endpoint emits in answer to a
//! segment the caller injects is handed back at once; what it emits on its own (a timer, a user
//! call) waits in an outbox until the caller takes it.

use std::collections::VecDeque;

use super::config::Config;
use super::endpoint::{Call, Endpoint, Error, Output};
use super::observe::Observer;
use super::pair::Side;
use super::segment::Segment;
use super::state::{State, Transition};

/// A segment in the outbox and when it was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Emitted {
    pub at: u64,
    pub seg: Segment,
}

/// One endpoint, its outbox, and the settings it was opened with if they are its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct External {
    pub endpoint: Endpoint,
    outbox: VecDeque<Emitted>,
    settings: Option<Box<Config>>,
}

/// Where the endpoint's output goes: its segments into `queue` (the outbox, or an injection's
/// answer) and, like its transitions, to the observer, reported for its side.
struct Reported<'a, O: Observer> {
    side: Side,
    at: u64,
    queue: &'a mut VecDeque<Emitted>,
    obs: &'a mut O,
}

impl<O: Observer> Output for Reported<'_, O> {
    fn segment(&mut self, seg: Segment) {
        self.obs.segment(self.side, &seg);
        self.queue.push_back(Emitted { at: self.at, seg });
    }
    fn transition(&mut self, t: Transition) {
        self.obs.transition(self.side, t);
    }
    crate::tcp::observe::ask_observer!();
}

/// Linux's `tcp_close` on a socket whose connection is gone (`close_after_reset`).
fn releases_dead_socket(ep: &Endpoint, cfg: &Config, call: Call) -> bool {
    matches!(call, Call::Close | Call::Abort)
        && ep.state() == State::Closed
        && cfg.profile.close_after_reset
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

    /// A server if it was opened with listen (its passive flag stays), else a client.
    pub fn role(&self) -> Side {
        if self.endpoint.is_passive() {
            Side::Server
        } else {
            Side::Client
        }
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

    /// A user call; what it sends waits in the outbox. close() or abort on an endpoint already
    /// CLOSED (reset, timed out) is the application releasing a dead socket: nothing happens
    /// and, where the profile follows Linux, it is no error.
    pub fn call(
        &mut self,
        cfg: &Config,
        now: u64,
        call: Call,
        obs: &mut impl Observer,
    ) -> Result<(), Error> {
        let side = match call {
            Call::Listen { .. } => Side::Server,
            Call::Connect { .. } => Side::Client,
            _ => self.role(),
        };
        let cfg = self.settings.as_deref().unwrap_or(cfg);
        if releases_dead_socket(&self.endpoint, cfg, call) {
            return Ok(());
        }
        let mut out = Reported {
            side,
            at: now,
            queue: &mut self.outbox,
            obs,
        };
        self.endpoint.call(cfg, now, call, &mut out)
    }

    /// Fires the timer if due; its segments go to the outbox.
    pub fn on_timeout(&mut self, cfg: &Config, now: u64, obs: &mut impl Observer) -> bool {
        let cfg = self.settings.as_deref().unwrap_or(cfg);
        let mut out = Reported {
            side: self.role(),
            at: now,
            queue: &mut self.outbox,
            obs,
        };
        self.endpoint.on_timeout(cfg, now, &mut out)
    }

    /// The caller's segment arrives. Returns what the endpoint answered (not put in the outbox).
    pub fn inject(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        obs: &mut impl Observer,
    ) -> Vec<Segment> {
        let cfg = self.settings.as_deref().unwrap_or(cfg);
        let mut answer = VecDeque::new();
        let mut out = Reported {
            side: self.role(),
            at: now,
            queue: &mut answer,
            obs,
        };
        self.endpoint.on_segment(cfg, now, seg, &mut out);
        answer.into_iter().map(|e| e.seg).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{Flags, ProfileName, SeqNum};

    /// A server endpoint reset by its peer, then released by the application.
    fn reset_server(cfg: &Config) -> External {
        let mut x = External::new();
        let t = &mut ();
        x.call(cfg, 0, Call::Listen { iss: SeqNum(1000) }, t)
            .unwrap();
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
            let call = if abort { Call::Abort } else { Call::Close };
            let r = x.call(&cfg, 3, call, &mut ());
            assert_eq!(r, Ok(()));
            assert_eq!(x, before, "nothing happens");
        }
        // RFC 9293: the connection does not exist.
        let rfc = Config::for_profile(ProfileName::Rfc9293);
        let mut x = reset_server(&rfc);
        assert_eq!(
            x.call(&rfc, 3, Call::Close, &mut ()),
            Err(Error::InvalidInState {
                call: Call::Close,
                state: State::Closed
            })
        );
    }
}

//! One TCP endpoint: the transmission control block of RFC 9293 §3.3.1 and the event processing
//! of §3.10, sans-IO.
//!
//! Owns: the TCB variables, the state, the one timer. Every call takes `now` (milliseconds on the
//! caller's clock) and an [`Output`] that receives the segments emitted and the transitions made.
//! Never reads a clock, spawns, locks or allocates. The caller asks [`Endpoint::timer`] after each
//! call which deadline to arm, and calls [`Endpoint::on_timeout`] when it falls due.
//!
//! Where Linux and a plain reading of RFC 9293 part, this follows Linux; every such place says so
//! and the README's "Deviations" section lists them all.

use super::config::{Config, backoff};
use super::segment::{Flags, Segment};
use super::seq::SeqNum;
use super::state::{Cause, State, Timer, TimerKind, Transition};
use std::num::NonZeroU16;

/// Where a FIN call (shutdown or close) takes an endpoint in `state` (RFC 9293 §3.10.4; Linux
/// `tcp_close_state`), or `None` where it cannot be made.
fn fin_next(state: State) -> Option<State> {
    match state {
        State::Listen | State::SynSent => Some(State::Closed),
        State::SynReceived | State::Established => Some(State::FinWait1),
        State::CloseWait => Some(State::LastAck),
        _ => None,
    }
}

/// Where an endpoint puts what it does.
pub trait Output {
    /// A segment the endpoint sends.
    fn segment(&mut self, seg: Segment);
    /// A change of state. Every change is reported, in order.
    fn transition(&mut self, t: Transition) {
        let _ = t;
    }
}

/// Collects everything, for tests and simple drivers.
#[derive(Default, Debug)]
pub struct Recorder {
    pub segments: Vec<Segment>,
    pub transitions: Vec<Transition>,
}

impl Output for Recorder {
    fn segment(&mut self, seg: Segment) {
        self.segments.push(seg);
    }
    fn transition(&mut self, t: Transition) {
        self.transitions.push(t);
    }
}

/// A user call that the state does not allow, or that asks too much. The endpoint is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{call} is not valid in state {state}")]
    InvalidInState { call: Call, state: State },
    #[error(
        "send of {requested} bytes would exceed the send buffer ({queued} of {limit} bytes queued)"
    )]
    SendBufferFull {
        requested: u32,
        queued: u32,
        limit: u32,
    },
}

/// The user calls of RFC 9293 §3.10 (OPEN split into its passive and active forms; CLOSE split
/// into a half-close and a full close, as sockets do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Listen,
    Connect,
    Send,
    Shutdown,
    Close,
    Abort,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Call::Listen => "listen",
            Call::Connect => "connect",
            Call::Send => "send",
            Call::Shutdown => "shutdown",
            Call::Close => "close",
            Call::Abort => "abort",
        })
    }
}

/// RFC 9293 §3.7.1: the send MSS when the peer announced none.
pub const DEFAULT_PEER_MSS: u16 = 536;

/// The longest timer an endpoint can hold: its deadline is kept as the low 32 bits of the
/// caller's clock (as Linux keeps `tcp_jiffies32`), which is unambiguous within 2^31 ms of now.
/// `Config::validate` keeps every timer under it.
pub const MAX_TIMER_MS: u64 = (1 << 31) - 1;

/// Linux's `TCP_TIMEOUT_MIN`, the shortest timer it arms: 2 jiffies, 8 ms at the recording
/// kernel's HZ of 250.
pub const TCP_TIMEOUT_MIN_MS: u64 = 8;

// Bits of `Endpoint::bits`.
/// The user closed (not just shut down): data arriving now is answered with RST, and FIN-WAIT-2
/// times out (Linux `tcp_fin_timeout`), where the profile says so.
const ORPHANED: u8 = 1 << 0;
/// The connection came from a passive open: a reset or timed-out SYN-RECEIVED returns to LISTEN.
const PASSIVE: u8 = 1 << 1;
/// A segment sent at `rtt_start` is being timed (Karn: never a retransmitted one).
const RTT_PENDING: u8 = 1 << 2;
/// `srtt`, `rttvar` and `mdev` hold at least one sample.
const RTT_VALID: u8 = 1 << 3;
/// The user asked for a FIN (shutdown or close); it follows the last queued byte.
const FIN_QUEUED: u8 = 1 << 4;
/// Our FIN has been sent (it is at `snd_nxt − 1` until acknowledged).
const FIN_SENT: u8 = 1 << 5;
/// A retransmission timeout happened; each ACK that advances SND.UNA resends the next segment,
/// until everything outstanding is acknowledged.
const RECOVERY: u8 = 1 << 6;
/// The timer is armed, at `deadline`.
const ARMED: u8 = 1 << 7;

/// One endpoint. 48 bytes: fields are ordered for packing, times are 32 bits wide, and anything
/// that can be derived (the timer's kind, RCV.WND, the RTO) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    iss: SeqNum,
    irs: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    rcv_nxt: SeqNum,
    /// Bytes the user has sent that have not yet been put in a segment.
    unsent: u32,
    /// When the timer falls due (low 32 bits of the caller's clock), while `ARMED`.
    deadline: u32,
    /// When the timed segment was sent (low 32 bits of `now`). In SYN-SENT, when the first SYN
    /// was sent: the start of the connect's time budget. While retransmitting data or FIN, when
    /// the segment at SND.UNA was first sent (Linux `retrans_stamp`): the start of the retry
    /// budget.
    rtt_start: u32,
    /// SND.WND (no window scaling, so 16 bits).
    snd_wnd: u16,
    /// Smoothed RTT, in ms.
    srtt: u16,
    /// The RTO's variance term, in ms: Linux's `rttvar` (at least `rto_min_ms`), or RFC 6298's
    /// RTTVAR under the `rfc9293` profile.
    rttvar: u16,
    /// Linux's `mdev`: four times the mean deviation of the RTT samples, in ms.
    mdev: u16,
    /// Effective send MSS: the smaller of ours and the peer's.
    mss: u16,
    state: State,
    /// Retransmissions of the segment at SND.UNA so far; the backoff exponent.
    retries: u8,
    bits: u8,
}

impl Default for Endpoint {
    fn default() -> Endpoint {
        Endpoint::new()
    }
}

impl Endpoint {
    /// A fresh endpoint in CLOSED.
    pub const fn new() -> Endpoint {
        Endpoint {
            iss: SeqNum(0),
            irs: SeqNum(0),
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            rcv_nxt: SeqNum(0),
            unsent: 0,
            deadline: 0,
            rtt_start: 0,
            snd_wnd: 0,
            srtt: 0,
            rttvar: 0,
            mdev: 0,
            mss: DEFAULT_PEER_MSS,
            state: State::Closed,
            retries: 0,
            bits: 0,
        }
    }

    // ---- observation -------------------------------------------------------------------------

    pub fn state(&self) -> State {
        self.state
    }
    pub fn iss(&self) -> SeqNum {
        self.iss
    }
    pub fn irs(&self) -> SeqNum {
        self.irs
    }
    pub fn snd_una(&self) -> SeqNum {
        self.snd_una
    }
    pub fn snd_nxt(&self) -> SeqNum {
        self.snd_nxt
    }
    pub fn snd_wnd(&self) -> u16 {
        self.snd_wnd
    }
    pub fn rcv_nxt(&self) -> SeqNum {
        self.rcv_nxt
    }
    /// Bytes queued by the user and not yet sent.
    pub fn unsent(&self) -> u32 {
        self.unsent
    }
    pub fn mss(&self) -> u16 {
        self.mss
    }
    /// The smoothed RTT in ms, once there is a sample.
    pub fn srtt(&self) -> Option<u16> {
        self.has(RTT_VALID).then_some(self.srtt)
    }
    /// The user has closed the socket (not just shut it down).
    pub fn is_orphaned(&self) -> bool {
        self.has(ORPHANED)
    }
    pub fn is_passive(&self) -> bool {
        self.has(PASSIVE)
    }

    /// The armed timer, if any, with its deadline on the caller's clock. `now` is any time within
    /// `MAX_TIMER_MS` of the deadline (the caller's clock as it stands): the endpoint keeps only
    /// the deadline's low 32 bits.
    pub fn timer(&self, now: u64) -> Option<Timer> {
        Some(Timer {
            deadline: self.deadline_at(now)?,
            kind: self.timer_kind()?,
        })
    }

    /// What the armed timer is for, if one is armed.
    pub fn timer_kind(&self) -> Option<TimerKind> {
        if self.has(ARMED) {
            self.state_timer()
        } else {
            None
        }
    }

    /// The kind of timer the state runs, armed or not.
    fn state_timer(&self) -> Option<TimerKind> {
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent => Some(TimerKind::Syn),
            State::SynReceived => Some(TimerKind::SynAck),
            State::FinWait2 => Some(TimerKind::FinWait2),
            State::TimeWait => Some(TimerKind::TimeWait),
            _ => Some(TimerKind::Retransmit),
        }
    }

    /// The deadline, recovered from its low 32 bits and a `now` within `MAX_TIMER_MS` of it.
    fn deadline_at(&self, now: u64) -> Option<u64> {
        if !self.has(ARMED) {
            return None;
        }
        let ahead = i64::from(self.deadline.wrapping_sub(now as u32) as i32);
        Some(now.saturating_add_signed(ahead))
    }

    fn arm(&mut self, at: u64) {
        self.deadline = at as u32;
        self.set(ARMED);
    }

    fn disarm(&mut self) {
        self.clear(ARMED);
    }

    /// The current RTO before backoff: Linux's `tcp_set_rto` (SRTT + RTTVAR) or RFC 6298's
    /// max(`rto_min_ms`, SRTT + max(G, 4·RTTVAR)) with G = 1 ms; the initial RTO before any
    /// sample; never above `rto_max_ms`.
    pub fn rto_ms(&self, cfg: &Config) -> u64 {
        if !self.has(RTT_VALID) {
            return u64::from(cfg.rto_initial_ms);
        }
        let (srtt, rttvar) = (u64::from(self.srtt), u64::from(self.rttvar));
        let rto = if cfg.profile.rtt_estimator {
            srtt + rttvar
        } else {
            (srtt + (4 * rttvar).max(1)).max(u64::from(cfg.rto_min_ms))
        };
        rto.min(u64::from(cfg.rto_max_ms))
    }

    fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }
    fn set(&mut self, bit: u8) {
        self.bits |= bit;
    }
    fn clear(&mut self, bit: u8) {
        self.bits &= !bit;
    }

    // ---- the funnel --------------------------------------------------------------------------

    /// Every change of state goes through here. It arms the timers a state implies on entry
    /// (TIME-WAIT, orphaned FIN-WAIT-2), disarms them on CLOSED and LISTEN, and reports.
    fn set_state(
        &mut self,
        cfg: &Config,
        now: u64,
        to: State,
        cause: Cause,
        out: &mut impl Output,
    ) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        match to {
            State::TimeWait => self.arm(now + cfg.time_wait_ms()),
            State::FinWait2 => self.arm_fin_timeout(cfg, now),
            State::Closed | State::Listen => {
                self.disarm();
                self.retries = 0;
                self.unsent = 0;
                self.clear(RTT_PENDING | RECOVERY);
            }
            _ => {}
        }
        out.transition(Transition { from, to, cause });
    }

    /// FIN-WAIT-2 has a timer only when orphaned, where Linux makes it a timewait sock that lives
    /// `tcp_fin_timeout`; a socket only shut down waits for the peer's FIN for ever.
    fn arm_fin_timeout(&mut self, cfg: &Config, now: u64) {
        if self.has(ORPHANED) && cfg.profile.orphan_fin_timeout {
            self.arm(now + u64::from(cfg.fin_timeout_ms));
        } else {
            self.disarm();
        }
    }

    // ---- user calls (RFC 9293 §3.10.1–§3.10.5) ----------------------------------------------

    /// Passive OPEN. `iss` is the initial send sequence number the SYN-ACK will carry.
    pub fn listen(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        self.require(Call::Listen, self.state == State::Closed)?;
        *self = Endpoint::new();
        self.iss = iss;
        self.set(PASSIVE);
        self.set_state(cfg, now, State::Listen, Cause::Listen, out);
        Ok(())
    }

    /// Active OPEN: send SYN <SEQ=ISS> and enter SYN-SENT.
    pub fn connect(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        self.require(Call::Connect, self.state == State::Closed)?;
        *self = Endpoint::new();
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss + 1;
        self.start_rtt(now);
        self.arm(now + cfg.syn_interval_ms(0));
        self.send_syn(cfg, false, out);
        self.set_state(cfg, now, State::SynSent, Cause::Connect, out);
        Ok(())
    }

    /// SEND `n` bytes. Before the handshake completes they are queued (RFC 9293 §3.10.2).
    pub fn send(
        &mut self,
        cfg: &Config,
        now: u64,
        n: u32,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        let open = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        );
        self.require(Call::Send, open && !self.has(FIN_QUEUED))?;
        let limit = cfg.snd_buf;
        if u64::from(self.unsent) + u64::from(n) > u64::from(limit) {
            return Err(Error::SendBufferFull {
                requested: n,
                queued: self.unsent,
                limit,
            });
        }
        self.unsent += n;
        self.transmit(cfg, now, out);
        Ok(())
    }

    /// Whether `shutdown` (`half`) or `close` would be accepted now, without doing it. The calls
    /// themselves check with it, so a pair's simultaneous close can check both sides first.
    pub fn check_fin_call(&self, half: bool) -> Result<(), Error> {
        let call = if half { Call::Shutdown } else { Call::Close };
        if half {
            self.require(call, !self.has(FIN_QUEUED))?;
        } else {
            self.require(call, !self.has(ORPHANED) && self.state != State::Closed)?;
            if self.has(FIN_QUEUED) {
                return Ok(()); // already shut down: close only orphans it
            }
        }
        self.require(call, fin_next(self.state).is_some())
    }

    /// Half-close (`shutdown(SHUT_WR)`): FIN after the queued data; keep receiving.
    pub fn shutdown(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
        self.check_fin_call(true)?;
        self.fin(cfg, now, Cause::Shutdown, out);
        Ok(())
    }

    /// Full close: as shutdown, and the application is gone (Linux orphans the socket): data
    /// arriving afterwards is answered with RST and FIN-WAIT-2 times out, where the profile
    /// follows Linux.
    pub fn close(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
        self.check_fin_call(false)?;
        if self.has(FIN_QUEUED) {
            // Already shut down: only the orphaning is new.
            self.set(ORPHANED);
            if self.state == State::FinWait2 {
                self.arm_fin_timeout(cfg, now);
            }
            return Ok(());
        }
        self.fin(cfg, now, Cause::Close, out);
        self.set(ORPHANED);
        Ok(())
    }

    /// The FIN half of shutdown and close, once `check_fin_call` has accepted it.
    fn fin(&mut self, cfg: &Config, now: u64, cause: Cause, out: &mut impl Output) {
        match fin_next(self.state) {
            // Nothing was said to anyone yet: just forget it.
            Some(State::Closed) => self.set_state(cfg, now, State::Closed, cause, out),
            Some(to) => {
                self.set(FIN_QUEUED);
                self.set_state(cfg, now, to, cause, out);
                self.transmit(cfg, now, out);
            }
            None => debug_assert!(false, "check_fin_call refuses a FIN in {}", self.state),
        }
    }

    /// ABORT (Linux: `SO_LINGER` 0 then close). An RST <SEQ=SND.NXT> in the states where both
    /// Linux (`tcp_need_reset`) and RFC 9293 §3.10.5 send one, with <ACK=RCV.NXT> as Linux's
    /// `tcp_send_active_reset` adds; then CLOSED.
    pub fn abort(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
        self.require(Call::Abort, self.state != State::Closed)?;
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            let flags = if cfg.profile.abort_rst_ack {
                Flags::RST | Flags::ACK
            } else {
                Flags::RST
            };
            out.segment(self.make(cfg, flags, self.snd_nxt, 0));
        }
        self.set_state(cfg, now, State::Closed, Cause::Abort, out);
        Ok(())
    }

    fn require(&self, call: Call, ok: bool) -> Result<(), Error> {
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInState {
                call,
                state: self.state,
            })
        }
    }

    // ---- timers (RFC 9293 §3.10.8) ----------------------------------------------------------

    /// The timer fell due (or the caller's clock passed it). Does nothing if none is due at `now`.
    /// Returns whether a timer fired.
    pub fn on_timeout(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> bool {
        let Some(deadline) = self.deadline_at(now).filter(|&d| d <= now) else {
            return false;
        };
        let Some(kind) = self.timer_kind() else {
            self.disarm();
            return false;
        };
        match kind {
            TimerKind::TimeWait => {
                self.set_state(cfg, now, State::Closed, Cause::TimeWaitExpired, out)
            }
            TimerKind::FinWait2 => {
                self.set_state(cfg, now, State::Closed, Cause::FinWait2Timeout, out)
            }
            TimerKind::Syn => self.syn_timeout(cfg, now, out),
            TimerKind::SynAck => {
                // Linux's request sock (`inet_rtx_syn_ack`): a count, and no time budget.
                let limit = if self.has(PASSIVE) {
                    cfg.synack_retries
                } else {
                    cfg.syn_retries
                };
                if self.retries >= limit {
                    self.give_up(cfg, now, out);
                } else {
                    self.retransmit(cfg, out);
                    self.arm(
                        now + backoff(
                            u64::from(cfg.rto_initial_ms),
                            self.retries.into(),
                            cfg.rto_max_ms.into(),
                        ),
                    );
                }
            }
            TimerKind::Retransmit => {
                if self.snd_una == self.snd_nxt && self.unsent == 0 {
                    self.disarm(); // nothing left to retransmit
                } else if self.retries_exhausted(cfg, now) {
                    self.give_up(cfg, now, out);
                } else {
                    if self.retries == 0 {
                        // Linux's `retrans_stamp`: the retry budget runs from when the segment
                        // now at SND.UNA went out, which is when this timer was armed.
                        self.rtt_start = deadline.saturating_sub(self.rto_ms(cfg)) as u32;
                    }
                    self.retransmit(cfg, out);
                    self.set(RECOVERY);
                    self.arm(now + self.backed_off_rto(cfg));
                }
            }
        }
        true
    }

    /// Whether data or FIN retransmission must give up now: after `tcp_retries2` (or, for an
    /// orphan, `tcp_orphan_retries`) retransmissions, counted as Linux's `retransmits_timed_out`
    /// does (the time budget of `tcp_model_timeout` from the RTO floor, since the first
    /// transmission) or, under `rfc9293`, one by one.
    fn retries_exhausted(&self, cfg: &Config, now: u64) -> bool {
        if self.retries == 0 {
            return false;
        }
        let limit = cfg.retries_limit(self.has(ORPHANED));
        if cfg.profile.model_timeout {
            let elapsed = u64::from((now as u32).wrapping_sub(self.rtt_start));
            elapsed >= cfg.model_timeout_ms(limit, cfg.rto_min_ms)
        } else {
            self.retries >= limit
        }
    }

    /// The connect timer (`tcp_retransmit_timer` in SYN-SENT): retransmit on the
    /// linear-then-doubling schedule; give up after `syn_retries` + `syn_linear_timeouts`
    /// retransmissions or, under Linux's profile, at the first timeout past the time budget of
    /// `tcp_model_timeout` (`tcp_write_timeout`).
    fn syn_timeout(&mut self, cfg: &Config, now: u64, out: &mut impl Output) {
        let done = u16::from(self.retries);
        let elapsed = u64::from((now as u32).wrapping_sub(self.rtt_start));
        let over_budget = cfg.profile.model_timeout && done > 0 && elapsed >= cfg.syn_budget_ms();
        if done >= cfg.max_syn_retransmits() || over_budget {
            self.give_up(cfg, now, out);
        } else {
            self.retransmit(cfg, out);
            self.arm(now + cfg.syn_interval_ms(self.retries.into()));
        }
    }

    fn give_up(&mut self, cfg: &Config, now: u64, out: &mut impl Output) {
        if self.state == State::SynReceived && self.has(PASSIVE) {
            self.return_to_listen(cfg, now, Cause::RetransmitTimeout, out);
        } else {
            self.set_state(cfg, now, State::Closed, Cause::RetransmitTimeout, out);
        }
    }

    /// A passive open's half-open connection is gone; the listener stays (Linux request socks).
    fn return_to_listen(&mut self, cfg: &Config, now: u64, cause: Cause, out: &mut impl Output) {
        let iss = self.iss;
        *self = Endpoint {
            state: self.state,
            ..Endpoint::new()
        };
        self.iss = iss;
        self.set(PASSIVE);
        self.set_state(cfg, now, State::Listen, cause, out);
    }

    fn backed_off_rto(&self, cfg: &Config) -> u64 {
        backoff(self.rto_ms(cfg), self.retries.into(), cfg.rto_max_ms.into())
    }

    /// Resends the segment at SND.UNA (Linux resends the head of the retransmission queue), or
    /// probes a zero window with one byte. Counts a retry and stops RTT timing (Karn).
    fn retransmit(&mut self, cfg: &Config, out: &mut impl Output) {
        self.retries = self.retries.saturating_add(1);
        self.clear(RTT_PENDING);
        if self.snd_una == self.iss {
            self.send_syn(cfg, self.state != State::SynSent, out); // our SYN is unacknowledged
            return;
        }
        let fin = u32::from(self.has(FIN_SENT));
        let data_out = (self.snd_nxt - self.snd_una) - fin;
        if data_out > 0 {
            let len = data_out.min(self.mss.into());
            let mut flags = Flags::ACK | Flags::PSH;
            if fin == 1 && len == data_out {
                flags |= Flags::FIN;
            }
            out.segment(self.make(cfg, flags, self.snd_una, len));
        } else if fin == 1 {
            out.segment(self.make(cfg, Flags::FIN | Flags::ACK, self.snd_una, 0));
        } else if self.unsent > 0 {
            // Zero-window probe: one byte beyond the window.
            out.segment(self.make(cfg, Flags::ACK, self.snd_nxt, 1));
            self.snd_nxt += 1;
            self.unsent -= 1;
        }
    }

    // ---- sending -----------------------------------------------------------------------------

    /// Sends queued data as the peer's window allows, then the FIN once the data is all out.
    /// Returns how many segments it sent.
    fn transmit(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> u32 {
        let may_send = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::LastAck
                | State::Closing
        );
        if !may_send {
            return 0;
        }
        if self.snd_una == self.iss {
            // Our SYN is unacknowledged: data waits for the handshake. RFC 9293 §3.10.4 sends a
            // lone FIN from SYN-RECEIVED at once; Linux waits for the ACK of the SYN.
            if cfg.profile.fin_after_syn_acked || self.unsent > 0 {
                return 0;
            }
        }
        let mut sent = 0;
        while self.unsent > 0 {
            let in_flight = self.snd_nxt - self.snd_una;
            let wnd = u32::from(self.snd_wnd);
            if in_flight >= wnd {
                break;
            }
            let len = self.unsent.min(self.mss.into()).min(wnd - in_flight);
            let flags = if len == self.unsent {
                Flags::ACK | Flags::PSH
            } else {
                Flags::ACK
            };
            self.start_rtt_if_idle(now);
            out.segment(self.make(cfg, flags, self.snd_nxt, len));
            self.snd_nxt += len;
            self.unsent -= len;
            sent += 1;
        }
        if self.unsent == 0 && self.has(FIN_QUEUED) && !self.has(FIN_SENT) {
            self.start_rtt_if_idle(now);
            out.segment(self.make(cfg, Flags::FIN | Flags::ACK, self.snd_nxt, 0));
            self.snd_nxt += 1;
            self.set(FIN_SENT);
            sent += 1;
        }
        // Arm the retransmission timer for what is in flight, or the persist timer when data
        // waits on a zero window (RFC 9293 §3.8.6.1).
        if !self.has(ARMED) && (self.snd_una != self.snd_nxt || self.unsent > 0) {
            self.arm(now + self.backed_off_rto(cfg));
        }
        sent
    }

    fn start_rtt(&mut self, now: u64) {
        self.rtt_start = now as u32;
        self.set(RTT_PENDING);
    }

    fn start_rtt_if_idle(&mut self, now: u64) {
        if self.snd_una == self.snd_nxt && !self.has(RTT_PENDING) && !self.has(RECOVERY) {
            self.start_rtt(now);
        }
    }

    /// A segment from us: ACK carries RCV.NXT, the window is RCV.WND.
    #[inline(always)]
    fn make(&self, cfg: &Config, flags: Flags, seq: SeqNum, len: u32) -> Segment {
        let ack = if flags.has(Flags::ACK) {
            self.rcv_nxt
        } else {
            SeqNum(0)
        };
        // Every caller sends at most one MSS (a u16) or one probe byte.
        debug_assert!(len <= u32::from(self.mss));
        Segment {
            seq,
            ack,
            len: len as u16,
            wnd: cfg.rcv_wnd,
            mss: None,
            flags,
        }
    }

    /// Our SYN with our MSS: <SEQ=ISS><CTL=SYN>, or with `ack` <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
    fn send_syn(&self, cfg: &Config, ack: bool, out: &mut impl Output) {
        let flags = if ack {
            Flags::SYN | Flags::ACK
        } else {
            Flags::SYN
        };
        let mut seg = self.make(cfg, flags, self.iss, 0);
        seg.mss = NonZeroU16::new(cfg.mss);
        out.segment(seg);
    }

    /// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
    fn send_ack(&self, cfg: &Config, out: &mut impl Output) {
        out.segment(self.make(cfg, Flags::ACK, self.snd_nxt, 0));
    }

    /// The reset that answers a segment with no connection behind it (RFC 9293 §3.10.7.1):
    /// <SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> if SEG had no ACK.
    fn send_reset_for(seg: &Segment, out: &mut impl Output) {
        if seg.has(Flags::RST) {
            return;
        }
        let reply = if seg.has(Flags::ACK) {
            Segment {
                seq: seg.ack,
                flags: Flags::RST,
                wnd: 0,
                ..Segment::default()
            }
        } else {
            Segment {
                ack: seg.seq + seg.seg_len(),
                flags: Flags::RST | Flags::ACK,
                wnd: 0,
                ..Segment::default()
            }
        };
        out.segment(reply);
    }

    // ---- SEGMENT ARRIVES (RFC 9293 §3.10.7) ---------------------------------------------------

    /// A segment from the peer arrives.
    pub fn on_segment(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        match self.state {
            State::Closed => Self::send_reset_for(seg, out),
            State::Listen => self.listen_arrives(cfg, now, seg, out),
            State::SynSent => self.syn_sent_arrives(cfg, now, seg, out),
            State::TimeWait if cfg.profile.timewait_state_process => {
                self.time_wait_arrives(cfg, now, seg, out)
            }
            _ => self.synchronized_arrives(cfg, now, seg, out),
        }
    }

    /// §3.10.7.2.
    fn listen_arrives(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        if seg.has(Flags::RST) {
            return;
        }
        if seg.has(Flags::ACK) {
            Self::send_reset_for(seg, out);
            return;
        }
        if !seg.has(Flags::SYN) {
            return;
        }
        self.take_syn(cfg, seg);
        self.snd_una = self.iss;
        self.snd_nxt = self.iss + 1;
        self.start_rtt(now);
        self.arm(now + u64::from(cfg.rto_initial_ms));
        self.send_syn(cfg, true, out);
        self.set_state(cfg, now, State::SynReceived, Cause::SynReceived, out);
    }

    /// The peer's SYN: IRS, RCV.NXT, its window and MSS.
    fn take_syn(&mut self, cfg: &Config, seg: &Segment) {
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.snd_wnd = seg.wnd;
        self.mss = cfg
            .mss
            .min(seg.mss.map_or(DEFAULT_PEER_MSS, NonZeroU16::get));
        self.retries = 0;
    }

    /// §3.10.7.3.
    fn syn_sent_arrives(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        if seg.has(Flags::ACK) && (seg.ack <= self.iss || seg.ack > self.snd_nxt) {
            // Acknowledges something we never sent: <SEQ=SEG.ACK><CTL=RST> (none for an RST),
            // stay in SYN-SENT. Linux also takes it as a hint that our SYN was lost, and resends
            // it at once if it was never resent (`tcp_rcv_synsent_state_process`).
            if cfg.profile.syn_sent_bad_ack_resend && self.retries == 0 {
                self.arm(now + TCP_TIMEOUT_MIN_MS);
            }
            Self::send_reset_for(seg, out);
            return;
        }
        if seg.has(Flags::RST) {
            if seg.has(Flags::ACK) {
                self.set_state(cfg, now, State::Closed, Cause::RstReceived, out); // refused
            }
            return;
        }
        if !seg.has(Flags::SYN) {
            return;
        }
        self.take_syn(cfg, seg);
        if seg.has(Flags::ACK) {
            self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
            self.set_state(cfg, now, State::Established, Cause::SynAckReceived, out);
            // Text or FIN riding on the SYN-ACK is processed as in ESTABLISHED (step 6 on).
            self.accept_text_and_fin(cfg, now, seg, out);
            if self.transmit(cfg, now, out) == 0 {
                self.send_ack(cfg, out);
            }
        } else {
            // Simultaneous open: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, SYN-RECEIVED.
            self.clear(RTT_PENDING);
            self.arm(now + u64::from(cfg.rto_initial_ms));
            self.send_syn(cfg, true, out);
            self.set_state(cfg, now, State::SynReceived, Cause::SynReceived, out);
        }
    }

    /// §3.10.7.4 for SYN-RECEIVED through LAST-ACK (and TIME-WAIT where the profile does not
    /// follow Linux's `tcp_timewait_state_process`).
    fn synchronized_arrives(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        out: &mut impl Output,
    ) {
        let syn_only = seg.has(Flags::SYN) && !seg.has(Flags::RST);
        // Linux (tcp_check_req): a retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again.
        if cfg.profile.syn_received_resend_syn_ack
            && self.state == State::SynReceived
            && syn_only
            && !seg.has(Flags::ACK)
            && seg.seq == self.irs
        {
            self.send_syn(cfg, true, out);
            return;
        }
        // Linux (tcp_validate_incoming): in a simultaneous open the peer's SYN-ACK repeats the SYN
        // we already took (SEG.SEQ = IRS), which the acceptability test would refuse; it is the
        // ACK of our SYN, so it establishes the connection, as RFC 9293's figure 8 draws it. The
        // SYN is old news to `tcp_data_queue`, which acknowledges it at once: a bare ACK.
        if cfg.profile.simultaneous_open_syn_ack
            && self.state == State::SynReceived
            && syn_only
            && seg.has(Flags::ACK)
            && seg.seq == self.irs
            && seg.ack == self.snd_nxt
        {
            self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
            self.set_state(cfg, now, State::Established, Cause::SynAckReceived, out);
            if self.transmit(cfg, now, out) == 0 {
                self.send_ack(cfg, out);
            }
            return;
        }

        // First: the sequence number.
        if !self.acceptable(cfg, seg) {
            if !seg.has(Flags::RST) {
                self.send_ack(cfg, out);
            }
            return;
        }

        // Second: RST. RFC 5961 §3: reset only at exactly RCV.NXT, else a challenge ACK.
        if seg.has(Flags::RST) {
            if cfg.profile.rfc5961 && seg.seq != self.rcv_nxt {
                self.send_ack(cfg, out);
            } else {
                self.reset(cfg, now, Cause::RstReceived, out);
            }
            return;
        }

        // Fourth: SYN.
        if seg.has(Flags::SYN) {
            if self.has(ORPHANED) && self.state == State::FinWait2 && cfg.profile.orphan_fin_timeout
            {
                // Linux's orphaned FIN-WAIT-2 (a timewait sock) answers with RST and goes.
                Self::send_reset_for(seg, out);
                self.set_state(cfg, now, State::Closed, Cause::RstReceived, out);
            } else if cfg.profile.rfc5961 {
                // RFC 5961 §4: a challenge ACK, whatever its sequence number.
                self.send_ack(cfg, out);
            } else if self.state == State::SynReceived && self.has(PASSIVE) {
                // RFC 9293: a passive open's SYN-RECEIVED returns to LISTEN.
                self.return_to_listen(cfg, now, Cause::SynReceived, out);
            } else {
                // RFC 9293 without RFC 5961: a SYN in the window is an error; reset.
                Self::send_reset_for(seg, out);
                self.set_state(cfg, now, State::Closed, Cause::SynReceived, out);
            }
            return;
        }

        // Fifth: ACK.
        if !seg.has(Flags::ACK) {
            return;
        }
        if self.state == State::TimeWait {
            // RFC 9293: only the peer's FIN can arrive again; acknowledge it, restart 2·MSL.
            self.send_ack(cfg, out);
            self.arm(now + cfg.time_wait_ms());
            return;
        }
        if self.state == State::SynReceived {
            if self.snd_una < seg.ack && seg.ack <= self.snd_nxt {
                self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
                self.set_state(cfg, now, State::Established, Cause::AckReceived, out);
            } else {
                // <SEQ=SEG.ACK><CTL=RST>, and stay (the peer may be stale).
                Self::send_reset_for(seg, out);
                return;
            }
        } else {
            if seg.ack > self.snd_nxt {
                // Acknowledges something not yet sent.
                self.send_ack(cfg, out);
                return;
            }
            if self.snd_una < seg.ack {
                self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
            } else if seg.ack == self.snd_una {
                self.snd_wnd = seg.wnd; // window update
            }
            let fin_acked = self.has(FIN_SENT) && self.snd_una == self.snd_nxt;
            if fin_acked {
                match self.state {
                    State::FinWait1 => {
                        self.set_state(cfg, now, State::FinWait2, Cause::AckReceived, out)
                    }
                    State::Closing => {
                        self.set_state(cfg, now, State::TimeWait, Cause::AckReceived, out);
                        return;
                    }
                    State::LastAck => {
                        self.set_state(cfg, now, State::Closed, Cause::AckReceived, out);
                        return;
                    }
                    _ => {}
                }
            }
        }

        // Seventh and eighth: text and FIN.
        let need_ack = self.accept_text_and_fin(cfg, now, seg, out);
        if self.state == State::Closed {
            return; // reset for data after close
        }
        if self.transmit(cfg, now, out) == 0 && need_ack {
            self.send_ack(cfg, out);
        }
    }

    /// An acceptable reset: a passive open's SYN-RECEIVED returns to LISTEN, anything else is
    /// CLOSED (RFC 9293 §3.10.7.4, second check).
    fn reset(&mut self, cfg: &Config, now: u64, cause: Cause, out: &mut impl Output) {
        if self.state == State::SynReceived && self.has(PASSIVE) {
            self.return_to_listen(cfg, now, cause, out);
        } else {
            self.set_state(cfg, now, State::Closed, cause, out);
        }
    }

    /// Steps seven (text) and eight (FIN). Returns whether the segment must be acknowledged.
    fn accept_text_and_fin(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        out: &mut impl Output,
    ) -> bool {
        let text_start = seg.seq + u32::from(seg.has(Flags::SYN));
        let text_end = text_start + u32::from(seg.len);
        let mut need_ack = false;
        let mut in_order = true;
        if seg.len > 0 {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.has(ORPHANED)
                        && cfg.profile.rst_on_data_after_close
                        && text_end > self.rcv_nxt
                    {
                        // New data after close: RFC 1122 §4.2.2.13 and Linux reset.
                        Self::send_reset_for(seg, out);
                        self.set_state(cfg, now, State::Closed, Cause::DataAfterClose, out);
                        return false;
                    }
                    need_ack = true;
                    if text_start <= self.rcv_nxt {
                        if text_end > self.rcv_nxt {
                            self.rcv_nxt = text_end;
                        }
                    } else {
                        // Out of order: not queued (see the README's deviations); a duplicate
                        // ACK asks for what is missing.
                        in_order = false;
                    }
                }
                // The peer already sent FIN: text cannot follow. Ignore it.
                _ => in_order = false,
            }
        }
        // The peer's FIN was already received in CLOSE-WAIT, CLOSING and LAST-ACK: another can
        // only be forged, and the RFC says to remain (Linux drops it).
        let fin_expected = matches!(
            self.state,
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2
        );
        if seg.has(Flags::FIN) && fin_expected && in_order && text_end == self.rcv_nxt {
            self.rcv_nxt += 1;
            need_ack = true;
            let to = match self.state {
                // Our FIN is unacknowledged (else we would be in FIN-WAIT-2 by now).
                State::FinWait1 => State::Closing,
                State::FinWait2 => State::TimeWait,
                _ => State::CloseWait,
            };
            self.set_state(cfg, now, to, Cause::FinReceived, out);
        } else if seg.has(Flags::FIN) && fin_expected {
            need_ack = true; // a FIN behind a gap: ask again for what is missing
        }
        need_ack
    }

    /// The acceptability test of §3.10.7.4, first check. SEG.LEN counts SYN and FIN.
    fn acceptable(&self, cfg: &Config, seg: &Segment) -> bool {
        let wnd = u32::from(cfg.rcv_wnd);
        let len = seg.seg_len();
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (len - 1)).in_window(self.rcv_nxt, wnd)
            }
        }
    }

    /// SND.UNA < SEG.ACK =< SND.NXT: new data acknowledged. Takes an RTT sample, clears the
    /// backoff, restarts or stops the retransmission timer, and in recovery resends the next
    /// unacknowledged segment.
    fn ack_advances(
        &mut self,
        cfg: &Config,
        now: u64,
        ack: SeqNum,
        wnd: u16,
        out: &mut impl Output,
    ) {
        self.snd_una = ack;
        self.snd_wnd = wnd;
        if self.has(RTT_PENDING) {
            self.clear(RTT_PENDING);
            self.rtt_sample(cfg, u64::from((now as u32).wrapping_sub(self.rtt_start)));
        }
        self.retries = 0;
        if self.snd_una == self.snd_nxt {
            self.clear(RECOVERY);
            if matches!(
                self.state_timer(),
                Some(TimerKind::Syn | TimerKind::SynAck | TimerKind::Retransmit)
            ) {
                if self.unsent > 0 && self.snd_wnd == 0 {
                    self.arm(now + self.rto_ms(cfg));
                } else {
                    self.disarm();
                }
            }
        } else {
            self.arm(now + self.rto_ms(cfg));
            if self.has(RECOVERY) {
                self.retransmit(cfg, out);
                self.retries = 0; // an ACK-clocked resend is not a timeout
            }
        }
    }

    /// One RTT sample `r` (ms): Linux's `tcp_rtt_estimator`, or RFC 6298 §2.2–2.3.
    ///
    /// Linux keeps `mdev`, four times the mean deviation, and `rttvar`, the largest `mdev` of the
    /// last round trip but at least the RTO floor, which decays a quarter of the way toward that
    /// maximum when a round trip ends. One segment is timed at a time and timing starts only
    /// when nothing is outstanding, so every sample after the first ends a round trip.
    fn rtt_sample(&mut self, cfg: &Config, r: u64) {
        let r = r.min(u64::from(u16::MAX)) as i64;
        let floor = i64::from(cfg.rto_min_ms);
        let clamp = |v: i64| v.clamp(0, i64::from(u16::MAX)) as u16;
        let first = !self.has(RTT_VALID);
        self.set(RTT_VALID);
        if cfg.profile.rtt_estimator {
            let (srtt, mdev, rttvar) = if first {
                (r, 2 * r, (2 * r).max(floor))
            } else {
                let (srtt, mdev) = (i64::from(self.srtt), i64::from(self.mdev));
                let err = r - srtt;
                let mut m = err.abs() - mdev / 4;
                if err < 0 && m > 0 {
                    m /= 8; // a sample below SRTT moves the deviation less
                }
                let mdev = mdev + m;
                let most = mdev.max(floor);
                let rttvar = i64::from(self.rttvar);
                let rttvar = if most > rttvar {
                    most
                } else {
                    rttvar - (rttvar - most) / 4
                };
                (srtt + err / 8, mdev, rttvar)
            };
            self.srtt = clamp(srtt);
            self.mdev = clamp(mdev);
            self.rttvar = clamp(rttvar);
        } else if first {
            self.srtt = clamp(r);
            self.rttvar = clamp(r / 2);
        } else {
            let srtt = i64::from(self.srtt);
            self.rttvar = clamp((3 * i64::from(self.rttvar) + (srtt - r).abs()) / 4);
            self.srtt = clamp((7 * srtt + r) / 8);
        }
    }

    /// TIME-WAIT, as Linux's `tcp_timewait_state_process` (no timestamps, `tcp_rfc1337` = 0).
    fn time_wait_arrives(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        let rst = seg.has(Flags::RST);
        if seg.seq == self.rcv_nxt && (seg.seg_len() == 0 || rst) {
            if rst {
                // TIME-WAIT assassination (RFC 1337), as Linux allows by default.
                self.set_state(cfg, now, State::Closed, Cause::RstReceived, out);
            } else {
                self.arm(now + cfg.time_wait_ms());
            }
            return;
        }
        if seg.has(Flags::SYN)
            && !rst
            && !seg.has(Flags::ACK)
            && seg.seq > self.rcv_nxt
            && self.has(PASSIVE)
        {
            // A new connection on the same 4-tuple: the TIME-WAIT endpoint goes and the listener
            // takes the SYN, with Linux's ISS (the old SND.NXT + 65535 + 2).
            let iss = self.snd_nxt + (65535 + 2);
            *self = Endpoint {
                state: self.state,
                ..Endpoint::new()
            };
            self.iss = iss;
            self.set(PASSIVE);
            self.set_state(cfg, now, State::Listen, Cause::SynInTimeWait, out);
            self.listen_arrives(cfg, now, seg, out);
            return;
        }
        if !rst {
            // A retransmitted FIN (or anything else): ACK again and restart 2·MSL.
            if seg.has(Flags::ACK) {
                self.arm(now + cfg.time_wait_ms());
            }
            self.send_ack(cfg, out);
        }
    }
}

#[cfg(test)]
mod tests;

//! One TCP endpoint: the transmission control block of RFC 9293 §3.3.1 and the event processing
//! of §3.10, sans-IO.
//!
//! Owns: the TCB variables, the state, the one timer. Every call takes `now` (milliseconds on the
//! caller's clock) and an [`Output`] that receives the segments emitted and the transitions made.
//! Never reads a clock, spawns, locks or allocates. The caller asks [`Endpoint::timer`] after each
//! call which deadline to arm, and calls [`Endpoint::on_timeout`] when it falls due.
//!
//! Where Linux and a plain reading of RFC 9293 part, the profile (`Config::profile`) decides;
//! every such place names its switch, and the README's "Deviations" section lists them all.
//! SEGMENT ARRIVES is in [`arrives`], the timers and acknowledgments in `timers`, what is sent
//! in `send`.

mod arrives;
mod send;
mod timers;

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
    /// The endpoint is becoming a timewait sock (`Endpoint::is_timewait_sock`): whether its host
    /// has room for one more (`tcp_max_tw_buckets`). If not, it is freed at once.
    fn admit_timewait(&mut self) -> bool {
        true
    }
    /// The endpoint's timewait sock is gone.
    fn left_timewait(&mut self) {}
    /// A SYN reached this listening endpoint: what its listener does with it (Linux
    /// `tcp_conn_request`, against the SYN queue, the accept queue and `tcp_syncookies`).
    fn conn_request(&mut self) -> SynVerdict {
        SynVerdict::Queue
    }
    /// This request sock's SYN-ACK timer fired after `retries` resends: whether it expires now,
    /// `max` being `tcp_synack_retries` (Linux `reqsk_timer_handler`, which gives fewer resends
    /// to old requests while the SYN queue is more than half full).
    fn reqsk_timeout(&mut self, max: u8, retries: u8) -> bool {
        retries >= max
    }
    /// This request sock left its listener's SYN queue; `young` if its timer never fired.
    fn reqsk_removed(&mut self, young: bool) {
        let _ = young;
    }
    /// The handshake completed (from a request sock, or from a SYN cookie): whether the
    /// listener's accept queue takes the new socket (Linux `tcp_v4_syn_recv_sock`).
    fn syn_recv_sock(&mut self, cookie: bool) -> ChildVerdict {
        let _ = cookie;
        ChildVerdict::Accept
    }
    /// An ACK to a listener that had sent a cookie did not carry a valid one
    /// (Linux `SyncookiesFailed`).
    fn cookie_failed(&mut self) {}
    /// An active open completed: `ms` from its first SYN to the SYN-ACK that made it
    /// ESTABLISHED (what `connect()` waited).
    fn connected(&mut self, ms: u64) {
        let _ = ms;
    }
}

/// What a listener does with a SYN (Linux `tcp_conn_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynVerdict {
    /// A request sock: SYN-RECEIVED, in the SYN queue.
    Queue,
    /// A SYN-ACK whose sequence number is a cookie, and no state kept (`tcp_syncookies`).
    Cookie,
    /// Nothing (`ListenDrops`).
    Drop,
}

/// What a listener does with a completed handshake (Linux `tcp_v4_syn_recv_sock`, `tcp_check_req`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildVerdict {
    /// A new socket, in the accept queue.
    Accept,
    /// The accept queue is full: the ACK is dropped and the request sock stays, resending its
    /// SYN-ACK (`ListenOverflows`).
    Drop,
    /// The accept queue is full and `tcp_abort_on_overflow` is set: RST, and the request is gone.
    Reset,
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

/// The user calls of RFC 9293 §3.10 (OPEN split into its passive and active forms, each with the
/// ISS it sends; CLOSE split into a half-close and a full close, as sockets do). Every layer
/// speaks of user calls in this type, and [`Endpoint::call`] takes them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// Passive OPEN; the SYN-ACK will carry `iss`.
    Listen { iss: SeqNum },
    /// Active OPEN: SYN <SEQ=iss>.
    Connect { iss: SeqNum },
    /// SEND that many bytes.
    Send(u32),
    /// `shutdown(SHUT_WR)`: FIN after the queued data; keep receiving.
    Shutdown,
    /// `close()`: as shutdown, and the application is gone.
    Close,
    /// ABORT.
    Abort,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Listen { .. } => "listen",
            Call::Connect { .. } => "connect",
            Call::Send(_) => "send",
            Call::Shutdown => "shutdown",
            Call::Close => "close",
            Call::Abort => "abort",
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

// Flags in `Endpoint::bits`.
/// The user closed (not just shut down): data arriving now is answered with RST, and FIN-WAIT-2
/// times out (Linux `tcp_fin_timeout`), where the profile says so.
const ORPHANED: u16 = 1 << 0;
/// The connection came from a passive open: a reset or timed-out SYN-RECEIVED returns to LISTEN.
const PASSIVE: u16 = 1 << 1;
/// A segment sent at `rtt_start` is being timed (Karn: never a retransmitted one).
const RTT_PENDING: u16 = 1 << 2;
/// In LISTEN, where nothing is timed, the same bit: a SYN cookie went out at `rtt_start`, for the
/// SYN taken into IRS (Linux keeps nothing; the cookie's hash and minute counter stand for this).
const COOKIE_SENT: u16 = RTT_PENDING;
/// `srtt`, `rttvar` and `mdev` hold at least one sample.
const RTT_VALID: u16 = 1 << 3;
/// The user asked for a FIN (shutdown or close); it follows the last queued byte.
const FIN_QUEUED: u16 = 1 << 4;
/// Our FIN has been sent (it is at `snd_nxt − 1` until acknowledged).
const FIN_SENT: u16 = 1 << 5;
/// A retransmission timeout happened; each ACK that advances SND.UNA resends the next segment,
/// until everything outstanding is acknowledged.
const RECOVERY: u16 = 1 << 6;
/// The timer is armed, at `deadline`.
const ARMED: u16 = 1 << 7;
/// At least 65535 bytes have been acknowledged (Linux `bytes_acked`), so RFC 5961's bound on old
/// ACKs is the largest window alone. Below that, `bytes_acked` is SND.UNA − ISS (less our SYN if
/// passive: a request sock's child starts at ISS + 1).
const ACKED_64K: u16 = 1 << 8;
/// The top bits of `bits`: Nagle's marker, Linux's `snd_sml` (where the last sub-MSS segment sent
/// ends), kept as the number of full-sized segments sent since, so that it is SND.NXT − count ·
/// MSS: after a small segment, Nagle lets only full ones go until it is acknowledged.
const SMALL_SHIFT: u32 = 9;
/// The marker when no small segment was sent (or too many full ones since to count).
const SMALL_NONE: u16 = u16::MAX >> SMALL_SHIFT;

/// One endpoint. 52 bytes, four-byte aligned (a pair is 104): fields are ordered for packing,
/// times are 32 bits wide, and anything that can be derived (the timer's kind, RCV.WND, the RTO,
/// `bytes_acked`, `snd_sml`) is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    iss: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    /// IRS between SND.NXT and RCV.NXT, which a segment's <SEQ><ACK> takes right after one of
    /// them changed: side by side, they would be read as one 8-byte load, which cannot take its
    /// value from the 4-byte store still in flight (a store-forwarding stall); apart, they are
    /// read as two loads, which can.
    irs: SeqNum,
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
    /// When the last out-of-window ACK went out (Linux `last_oow_ack_time`): the low 32 bits of
    /// the clock plus one, 0 if none has (as Linux keeps 0 for "never").
    last_oow: u32,
    /// SND.WND (no window scaling, so 16 bits).
    snd_wnd: u16,
    /// The largest window the peer has offered (Linux `max_window`).
    max_wnd: u16,
    /// Smoothed RTT, in ms.
    srtt: u16,
    /// The RTO's variance term, in ms: Linux's `rttvar` (at least `rto_min_ms`), or RFC 6298's
    /// RTTVAR under the `rfc9293` profile.
    rttvar: u16,
    /// Linux's `mdev`: four times the mean deviation of the RTT samples, in ms.
    mdev: u16,
    /// Effective send MSS: the smaller of ours and the peer's.
    mss: u16,
    /// Flags, and Nagle's marker in the top bits (`SMALL_SHIFT`).
    bits: u16,
    #[serde(with = "super::state::index")]
    state: State,
    /// Retransmissions of the segment at SND.UNA so far; the backoff exponent.
    retries: u8,
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
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            unsent: 0,
            deadline: 0,
            rtt_start: 0,
            last_oow: 0,
            snd_wnd: 0,
            max_wnd: 0,
            srtt: 0,
            rttvar: 0,
            mdev: 0,
            mss: DEFAULT_PEER_MSS,
            bits: SMALL_NONE << SMALL_SHIFT,
            state: State::Closed,
            retries: 0,
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

    fn has(&self, bit: u16) -> bool {
        self.bits & bit != 0
    }
    fn set(&mut self, bit: u16) {
        self.bits |= bit;
    }
    fn clear(&mut self, bit: u16) {
        self.bits &= !bit;
    }

    /// Whether Linux holds this endpoint as a timewait sock (`inet_timewait_sock`): in TIME-WAIT,
    /// or an orphaned FIN-WAIT-2 with its `tcp_fin_timeout`. Those count toward the host's
    /// `tcp_max_tw_buckets`.
    pub fn is_timewait_sock(&self, cfg: &Config) -> bool {
        self.state == State::TimeWait
            || (self.state == State::FinWait2
                && self.has(ORPHANED)
                && cfg.profile.orphan_fin_timeout)
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
        // Only FIN-WAIT-2 and TIME-WAIT can be timewait socks: most changes skip the question.
        let tw = |s: State| matches!(s, State::FinWait2 | State::TimeWait);
        let was_timewait = tw(from) && self.is_timewait_sock(cfg);
        if from == State::SynReceived && self.has(PASSIVE) {
            out.reqsk_removed(self.retries == 0);
        }
        self.state = to;
        match to {
            State::TimeWait => {
                self.arm(now + cfg.time_wait_ms());
                self.last_oow = 0; // a fresh timewait sock
            }
            State::FinWait2 => self.arm_fin_timeout(cfg, now),
            // A passive open's handshake ends in a new (child) socket.
            State::Established if from == State::SynReceived && self.has(PASSIVE) => {
                self.last_oow = 0;
                self.retries = 0;
            }
            State::Closed | State::Listen => self.idle(),
            _ => {}
        }
        out.transition(Transition { from, to, cause });
        if was_timewait && !self.is_timewait_sock(cfg) {
            out.left_timewait();
        } else if !was_timewait && tw(to) {
            self.entered_timewait(cfg, out);
        }
    }

    /// If this is a request sock (a passive open's SYN-RECEIVED, in its listener's SYN queue):
    /// whether it is young, its SYN-ACK timer never fired.
    pub fn request_sock(&self) -> Option<bool> {
        (self.state == State::SynReceived && self.has(PASSIVE)).then_some(self.retries == 0)
    }

    /// What CLOSED and LISTEN hold no longer: timers, retries, unsent data, measurements.
    fn idle(&mut self) {
        self.disarm();
        self.retries = 0;
        self.unsent = 0;
        self.clear(RTT_PENDING | RECOVERY);
    }

    /// If the endpoint has just become a timewait sock, its host must have room for it; if not,
    /// Linux's `tcp_time_wait` frees the socket at once (`TCPTimeWaitOverflow`): CLOSED, without
    /// a segment, so that a later segment from the peer finds no socket and draws a RST.
    fn entered_timewait(&mut self, cfg: &Config, out: &mut impl Output) {
        if self.is_timewait_sock(cfg) && !out.admit_timewait() {
            let from = self.state;
            self.state = State::Closed;
            self.idle();
            out.transition(Transition {
                from,
                to: State::Closed,
                cause: Cause::TimeWaitOverflow,
            });
        }
    }

    /// FIN-WAIT-2 has a timer only when orphaned, where Linux makes it a timewait sock that lives
    /// `tcp_fin_timeout`; a socket only shut down waits for the peer's FIN for ever.
    fn arm_fin_timeout(&mut self, cfg: &Config, now: u64) {
        if self.has(ORPHANED) && cfg.profile.orphan_fin_timeout {
            self.arm(now + u64::from(cfg.fin_timeout_ms));
            self.last_oow = 0; // a fresh timewait sock
        } else {
            self.disarm();
        }
    }

    // ---- user calls (RFC 9293 §3.10.1–§3.10.5) ----------------------------------------------

    /// A user call. Refused (and nothing changes) where the state does not allow it.
    pub fn call(
        &mut self,
        cfg: &Config,
        now: u64,
        call: Call,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        match call {
            Call::Listen { iss } => self.listen(cfg, now, iss, out),
            Call::Connect { iss } => self.connect(cfg, now, iss, out),
            Call::Send(n) => self.send(cfg, now, n, out),
            Call::Shutdown => self.shutdown(cfg, now, out),
            Call::Close => self.close(cfg, now, out),
            Call::Abort => self.abort(cfg, now, out),
        }
    }

    /// Passive OPEN. `iss` is the initial send sequence number the SYN-ACK will carry.
    fn listen(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        self.require(Call::Listen { iss }, self.state == State::Closed)?;
        *self = Endpoint::new();
        self.iss = iss;
        self.set(PASSIVE);
        self.set_state(cfg, now, State::Listen, Cause::Listen, out);
        Ok(())
    }

    /// A connect takes over this TIME-WAIT's 4-tuple (Linux `tcp_twsk_unique` with
    /// `tcp_tw_reuse`): the timewait sock is gone, CLOSED, and the caller connects anew. The new
    /// connection's ISS should be past this one's sequence space (Linux: SND.NXT + 65537).
    pub fn take_over_timewait(
        &mut self,
        cfg: &Config,
        now: u64,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        self.require(
            Call::Connect { iss: self.snd_nxt },
            self.state == State::TimeWait,
        )?;
        self.set_state(cfg, now, State::Closed, Cause::TimeWaitReused, out);
        Ok(())
    }

    /// Active OPEN: send SYN <SEQ=ISS> and enter SYN-SENT.
    fn connect(
        &mut self,
        cfg: &Config,
        now: u64,
        iss: SeqNum,
        out: &mut impl Output,
    ) -> Result<(), Error> {
        self.require(Call::Connect { iss }, self.state == State::Closed)?;
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
    fn send(&mut self, cfg: &Config, now: u64, n: u32, out: &mut impl Output) -> Result<(), Error> {
        let open = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        );
        self.require(Call::Send(n), open && !self.has(FIN_QUEUED))?;
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
    fn shutdown(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
        self.check_fin_call(true)?;
        self.fin(cfg, now, Cause::Shutdown, out);
        Ok(())
    }

    /// Full close: as shutdown, and the application is gone (Linux orphans the socket): data
    /// arriving afterwards is answered with RST and FIN-WAIT-2 times out, where the profile
    /// follows Linux.
    fn close(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
        self.check_fin_call(false)?;
        if self.has(FIN_QUEUED) {
            // Already shut down: only the orphaning is new (an orphaned FIN-WAIT-2 becomes a
            // timewait sock, as `tcp_close` makes it).
            self.set(ORPHANED);
            if self.state == State::FinWait2 {
                self.arm_fin_timeout(cfg, now);
                self.entered_timewait(cfg, out);
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
    fn abort(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> Result<(), Error> {
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

    /// A passive open's half-open connection is gone; the listener stays (Linux request socks).
    fn return_to_listen(&mut self, cfg: &Config, now: u64, cause: Cause, out: &mut impl Output) {
        let iss = self.iss;
        *self = Endpoint {
            state: self.state,
            // Until the state changes, for `Output::reqsk_removed`; LISTEN then clears it.
            retries: self.retries,
            ..Endpoint::new()
        };
        self.iss = iss;
        self.set(PASSIVE);
        self.set_state(cfg, now, State::Listen, cause, out);
    }
}

#[cfg(test)]
mod tests;

//! The eleven states of RFC 9293 §3.3.2, what moved an endpoint between them, and its timers.

use std::fmt;

/// Connection state, named as RFC 9293 names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// The RFC's spelling: `SYN-SENT`.
    pub fn rfc_name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }

    /// The identifier spelling used by the conformance files and the API: `SYN_SENT`.
    pub fn ident(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN_SENT",
            State::SynReceived => "SYN_RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN_WAIT_1",
            State::FinWait2 => "FIN_WAIT_2",
            State::CloseWait => "CLOSE_WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST_ACK",
            State::TimeWait => "TIME_WAIT",
        }
    }

    /// Parses either spelling.
    pub fn parse(name: &str) -> Option<State> {
        let norm = name.trim().to_ascii_uppercase().replace('-', "_");
        State::ALL.into_iter().find(|s| s.ident() == norm)
    }

    /// SYN-RECEIVED and every state after it: both sequence spaces are known.
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent)
    }
}

/// A state as its index in `State::ALL`, where it is stored (a state file); scenario files name
/// states (`State`'s own `Deserialize`).
pub(crate) mod index {
    use super::State;

    pub fn serialize<S: serde::Serializer>(st: &State, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*st as u8)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        let i = <u8 as serde::Deserialize>::deserialize(d)?;
        State::ALL
            .get(usize::from(i))
            .copied()
            .ok_or_else(|| serde::de::Error::custom(format!("{i} is not a state")))
    }
}

/// From either spelling (`"TIME-WAIT"`, `"TIME_WAIT"`), as scenario files name states.
impl<'de> serde::Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        let name = String::deserialize(d)?;
        State::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{name:?} is not a TCP state (one of {})",
                State::ALL.map(State::ident).join(", ")
            ))
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc_name())
    }
}

/// Why a state changed. Label-safe (`as_str`) so the layers above can count by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cause {
    /// The user called listen (passive OPEN).
    Listen,
    /// The user called connect (active OPEN): SYN sent.
    Connect,
    /// The user half-closed: FIN queued after any data.
    Shutdown,
    /// The user closed the socket entirely.
    Close,
    /// The user aborted: RST sent where the state calls for one.
    Abort,
    /// A SYN arrived: in LISTEN, in SYN-SENT (simultaneous open), or, without RFC 5961's
    /// challenge ACK (`rfc9293` profile), in the window of a synchronized state, which resets it.
    SynReceived,
    /// A SYN-ACK acknowledging our SYN arrived in SYN-SENT.
    SynAckReceived,
    /// An ACK arrived that acknowledged our SYN or our FIN.
    AckReceived,
    /// The peer's FIN arrived.
    FinReceived,
    /// An acceptable RST arrived.
    RstReceived,
    /// Data arrived after the user closed the socket: RST sent (RFC 1122 §4.2.2.13, Linux).
    DataAfterClose,
    /// A SYN for a new connection reused the 4-tuple of this TIME-WAIT endpoint (Linux).
    SynInTimeWait,
    /// Retransmissions exhausted their retries (SYN, SYN-ACK, data or FIN).
    RetransmitTimeout,
    /// The FIN-WAIT-2 timeout of an orphaned connection (Linux `tcp_fin_timeout`).
    FinWait2Timeout,
    /// 2·MSL passed in TIME-WAIT.
    TimeWaitExpired,
    /// The host's timewait socks were at `tcp_max_tw_buckets`: the socket is freed instead.
    TimeWaitOverflow,
    /// An ACK carrying a valid SYN cookie made the connection, straight from LISTEN.
    SynCookie,
    /// A connect took over this TIME-WAIT's 4-tuple (`tcp_tw_reuse`).
    TimeWaitReused,
    /// The handshake completed with the accept queue full and `tcp_abort_on_overflow` set: RST,
    /// and the request is gone.
    AcceptQueueOverflow,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Listen => "listen",
            Cause::Connect => "connect",
            Cause::Shutdown => "shutdown",
            Cause::Close => "close",
            Cause::Abort => "abort",
            Cause::SynReceived => "syn_received",
            Cause::SynAckReceived => "syn_ack_received",
            Cause::AckReceived => "ack_received",
            Cause::FinReceived => "fin_received",
            Cause::RstReceived => "rst_received",
            Cause::DataAfterClose => "data_after_close",
            Cause::SynInTimeWait => "syn_in_time_wait",
            Cause::RetransmitTimeout => "retransmit_timeout",
            Cause::FinWait2Timeout => "fin_wait_2_timeout",
            Cause::TimeWaitExpired => "time_wait_expired",
            Cause::TimeWaitOverflow => "time_wait_overflow",
            Cause::SynCookie => "syn_cookie",
            Cause::TimeWaitReused => "time_wait_reused",
            Cause::AcceptQueueOverflow => "accept_queue_overflow",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of state, as reported by the endpoint's single funnel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub cause: Cause,
}

/// What an armed timer is for. An endpoint has at most one timer; its kind follows from the state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TimerKind {
    /// SYN retransmission (SYN-SENT).
    Syn,
    /// SYN-ACK retransmission (SYN-RECEIVED).
    SynAck,
    /// Data or FIN retransmission, or a zero-window probe.
    Retransmit,
    /// The orphaned FIN-WAIT-2 timeout.
    FinWait2,
    /// 2·MSL.
    TimeWait,
}

impl TimerKind {
    pub const ALL: [TimerKind; 5] = [
        TimerKind::Syn,
        TimerKind::SynAck,
        TimerKind::Retransmit,
        TimerKind::FinWait2,
        TimerKind::TimeWait,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Syn => "syn",
            TimerKind::SynAck => "syn_ack",
            TimerKind::Retransmit => "retransmit",
            TimerKind::FinWait2 => "fin_wait_2",
            TimerKind::TimeWait => "time_wait",
        }
    }
}

/// An armed timer: when it falls due (milliseconds on the caller's clock) and what for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timer {
    pub deadline: u64,
    pub kind: TimerKind,
}

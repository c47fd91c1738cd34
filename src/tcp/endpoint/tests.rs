//! The endpoint's specification: a fixture per state, and a table of
//! `(state, event) -> (next state, emitted segments)` rows, one per RFC 9293 rule (or the Linux
//! behaviour that replaces it, marked so).
//!
//! Numbers are written as the conformance files write them: our sequence numbers relative to our
//! ISS, the peer's relative to its ISN (IRS). `s=` is SEG.SEQ, `a=` is SEG.ACK.

use super::*;
use crate::tcp::ProfileName;

const ISS: u32 = 1000;
const IRS: u32 = 5000;

fn cfg() -> Config {
    Config {
        mss: 1000,
        ..Config::default()
    }
}

/// The same settings under the `rfc9293` profile.
fn rfc() -> Config {
    Config {
        mss: 1000,
        ..Config::for_profile(ProfileName::Rfc9293)
    }
}

/// A segment from the peer: `s` relative to IRS, `a` relative to our ISS.
fn peer(flags: Flags, s: u32, a: u32, len: u16) -> Segment {
    Segment {
        seq: SeqNum(IRS) + s,
        ack: if flags.has(Flags::ACK) {
            SeqNum(ISS) + a
        } else {
            SeqNum(0)
        },
        len,
        wnd: 32792,
        mss: if flags.has(Flags::SYN) {
            std::num::NonZeroU16::new(1000)
        } else {
            None
        },
        flags,
    }
}

/// A segment we emitted, in the table's notation. Offsets print signed, so an absolute 0 reads
/// `s=-1000`.
fn show(seg: &Segment) -> String {
    let s = (seg.seq.0.wrapping_sub(ISS)) as i32;
    let mut text = format!("{} s={s}", seg.flags);
    if seg.has(Flags::ACK) {
        text += &format!(" a={}", (seg.ack.0.wrapping_sub(IRS)) as i32);
    }
    if seg.len > 0 {
        text += &format!(" len={}", seg.len);
    }
    text
}

fn drive(ep: &mut Endpoint, now: u64, seg: Segment) -> Vec<String> {
    let mut rec = Recorder::default();
    ep.on_segment(&cfg(), now, &seg, &mut rec);
    rec.segments.iter().map(show).collect()
}

// ---- fixtures: one endpoint per state, reached by the RFC's own exchanges, at t = 0 ----------

/// The endpoint in `state` under settings `c`.
fn fixture_in(c: &Config, state: State) -> Endpoint {
    let rec = &mut Recorder::default();
    let after = |from: State, seg: Segment| {
        let mut ep = fixture_in(c, from);
        ep.on_segment(c, 0, &seg, &mut Recorder::default());
        ep
    };
    let ep = match state {
        State::Closed => Endpoint::new(),
        State::Listen => {
            let mut ep = Endpoint::new();
            ep.listen(c, 0, SeqNum(ISS), rec).unwrap();
            ep
        }
        State::SynSent => {
            let mut ep = Endpoint::new();
            ep.connect(c, 0, SeqNum(ISS), rec).unwrap();
            ep
        }
        State::SynReceived => after(State::Listen, peer(Flags::SYN, 0, 0, 0)),
        State::Established => after(State::SynReceived, peer(Flags::ACK, 1, 1, 0)),
        State::FinWait1 => {
            let mut ep = fixture_in(c, State::Established);
            ep.shutdown(c, 0, rec).unwrap();
            ep
        }
        State::FinWait2 => after(State::FinWait1, peer(Flags::ACK, 1, 2, 0)),
        State::CloseWait => after(State::Established, peer(Flags::FIN | Flags::ACK, 1, 1, 0)),
        State::Closing => after(State::FinWait1, peer(Flags::FIN | Flags::ACK, 1, 1, 0)),
        State::LastAck => {
            let mut ep = fixture_in(c, State::CloseWait);
            ep.close(c, 0, rec).unwrap();
            ep
        }
        State::TimeWait => after(State::FinWait2, peer(Flags::FIN | Flags::ACK, 1, 2, 0)),
    };
    assert_eq!(ep.state(), state, "fixture for {state}");
    ep
}

fn fixture(state: State) -> Endpoint {
    fixture_in(&cfg(), state)
}

fn socket_syn_sent() -> Endpoint {
    fixture(State::SynSent)
}
fn socket_syn_received() -> Endpoint {
    fixture(State::SynReceived)
}
fn socket_established() -> Endpoint {
    fixture(State::Established)
}
fn socket_fin_wait_1() -> Endpoint {
    fixture(State::FinWait1)
}
fn socket_fin_wait_2() -> Endpoint {
    fixture(State::FinWait2)
}
fn socket_time_wait() -> Endpoint {
    fixture(State::TimeWait)
}

#[test]
fn test_fixtures_reach_their_states() {
    for state in State::ALL {
        let ep = fixture(state);
        assert!(ep.snd_una() <= ep.snd_nxt());
    }
}

// ---- the table ------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    UserListen,
    UserConnect,
    UserSend,
    UserShutdown,
    UserClose,
    UserAbort,
    /// A bare SYN: at RCV.NXT in synchronized states, else seq 0.
    Syn,
    /// SYN-ACK acknowledging SND.NXT.
    SynAck,
    /// ACK of everything sent, at RCV.NXT.
    AckOk,
    /// ACK of 100 bytes never sent.
    AckBad,
    /// FIN without ACK.
    Fin,
    /// FIN+ACK at RCV.NXT acknowledging SND.NXT.
    FinAck,
    RstExact,
    /// RST 1000 past RCV.NXT: inside the 65535-byte window.
    RstInWindow,
    /// RST 1 000 000 past RCV.NXT.
    RstOutOfWindow,
    /// 100 bytes at RCV.NXT with an ACK of SND.NXT.
    Data,
    /// The clock reaches the armed deadline (nothing happens if none is armed).
    Timer,
}

/// Where the peer's next segment goes (`s`) and what acknowledges all we sent (`a`).
fn cursor(ep: &Endpoint) -> (u32, u32) {
    if ep.state().is_synchronized() {
        (ep.rcv_nxt() - SeqNum(IRS), ep.snd_nxt() - SeqNum(ISS))
    } else {
        (1, 1) // the peer's first byte after its SYN; our SYN acknowledged
    }
}

/// What one event did: the segments emitted (or the refusal of a user call), the transitions,
/// and the timer left armed.
struct Outcome {
    result: Result<Vec<String>, Error>,
    causes: String,
    timer: String,
}

/// Applies `ev` at t = 0 (or at the deadline for `Timer`) under settings `c`.
fn apply(c: &Config, ep: &mut Endpoint, ev: Ev) -> Outcome {
    let mut rec = Recorder::default();
    let (s, a) = cursor(ep);
    let syn_s = if ep.state().is_synchronized() { s } else { 0 };
    let seg = match ev {
        Ev::UserListen => Err(ep.listen(c, 0, SeqNum(ISS), &mut rec)),
        Ev::UserConnect => Err(ep.connect(c, 0, SeqNum(ISS), &mut rec)),
        Ev::UserSend => Err(ep.send(c, 0, 100, &mut rec)),
        Ev::UserShutdown => Err(ep.shutdown(c, 0, &mut rec)),
        Ev::UserClose => Err(ep.close(c, 0, &mut rec)),
        Ev::UserAbort => Err(ep.abort(c, 0, &mut rec)),
        Ev::Timer => {
            if let Some(t) = ep.timer(0) {
                ep.on_timeout(c, t.deadline, &mut rec);
            }
            Err(Ok(()))
        }
        Ev::Syn => Ok(peer(Flags::SYN, syn_s, 0, 0)),
        Ev::SynAck => Ok(peer(Flags::SYN | Flags::ACK, syn_s, a, 0)),
        Ev::AckOk => Ok(peer(Flags::ACK, s, a, 0)),
        Ev::AckBad => Ok(peer(Flags::ACK, s, a + 100, 0)),
        Ev::Fin => Ok(peer(Flags::FIN, s, 0, 0)),
        Ev::FinAck => Ok(peer(Flags::FIN | Flags::ACK, s, a, 0)),
        Ev::RstExact => Ok(peer(Flags::RST, s, 0, 0)),
        Ev::RstInWindow => Ok(peer(Flags::RST, s + 1000, 0, 0)),
        Ev::RstOutOfWindow => Ok(peer(Flags::RST, s + 1_000_000, 0, 0)),
        Ev::Data => Ok(peer(Flags::ACK | Flags::PSH, s, a, 100)),
    };
    // `Err` above carries a user call's result; `Ok` a segment to deliver.
    let called = match seg {
        Ok(seg) => {
            ep.on_segment(c, 0, &seg, &mut rec);
            Ok(())
        }
        Err(r) => r,
    };
    let causes: Vec<&str> = rec.transitions.iter().map(|t| t.cause.as_str()).collect();
    Outcome {
        result: called.map(|_| segs(&rec)),
        causes: if causes.is_empty() {
            "-".into()
        } else {
            causes.join("+")
        },
        timer: ep.timer(0).map_or("-".into(), |t| {
            format!("{}@{}", t.kind.as_str(), when(c, ep, t))
        }),
    }
}

/// A deadline in the terms of the rule that set it, where it is one of them: `2msl` (TIME-WAIT),
/// `fin_timeout` (orphaned FIN-WAIT-2), `rto` and `3rto` (a retransmission and the one after, at
/// the RTO now in force), else milliseconds. So that a row states the rule, and the two profiles'
/// rows differ only where their rules do.
fn when(c: &Config, ep: &Endpoint, t: crate::tcp::Timer) -> String {
    let rto = ep.rto_ms(c);
    match (t.kind, t.deadline) {
        (TimerKind::TimeWait, d) if d == c.time_wait_ms() => "2msl".into(),
        (TimerKind::FinWait2, d) if d == u64::from(c.fin_timeout_ms) => "fin_timeout".into(),
        (_, d) if d == rto => "rto".into(),
        (_, d) if d == 3 * rto => "3rto".into(),
        (_, d) => d.to_string(),
    }
}

fn segs(rec: &Recorder) -> Vec<String> {
    rec.segments.iter().map(show).collect()
}

/// One cell: in `state`, `event` leads to `next` (`None`: the user call is refused and nothing
/// changes), emitting `emitted`, through transitions with `causes` (`-`: none; several joined
/// by `+`), leaving `timer` armed (`kind@deadline`, or `-`).
type Row = (
    State,
    Ev,
    Option<State>,
    &'static [&'static str],
    &'static str,
    &'static str,
);

use Ev::*;
use State::*;

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // ---- CLOSED: §3.10.7.1, a reset for anything but a reset --------------------------------
    (Closed,      UserListen,     Some(Listen),      &[],                          "-",                      "listen"),
    (Closed,      UserConnect,    Some(SynSent),     &["SYN s=0"],                 "syn@rto",                "connect"),
    (Closed,      UserSend,       None,              &[],                          "-",                      "-"),
    (Closed,      UserShutdown,   None,              &[],                          "-",                      "-"),
    (Closed,      UserClose,      None,              &[],                          "-",                      "-"),
    (Closed,      UserAbort,      None,              &[],                          "-",                      "-"),
    (Closed,      Syn,            Some(Closed),      &["RST|ACK s=-1000 a=1"],     "-",                      "-"),
    (Closed,      SynAck,         Some(Closed),      &["RST s=1"],                 "-",                      "-"),
    (Closed,      AckOk,          Some(Closed),      &["RST s=1"],                 "-",                      "-"),
    (Closed,      AckBad,         Some(Closed),      &["RST s=101"],               "-",                      "-"),
    (Closed,      Fin,            Some(Closed),      &["RST|ACK s=-1000 a=2"],     "-",                      "-"),
    (Closed,      FinAck,         Some(Closed),      &["RST s=1"],                 "-",                      "-"),
    (Closed,      RstExact,       Some(Closed),      &[],                          "-",                      "-"),
    (Closed,      RstInWindow,    Some(Closed),      &[],                          "-",                      "-"),
    (Closed,      RstOutOfWindow, Some(Closed),      &[],                          "-",                      "-"),
    (Closed,      Data,           Some(Closed),      &["RST s=1"],                 "-",                      "-"),
    (Closed,      Timer,          Some(Closed),      &[],                          "-",                      "-"),
    // ---- LISTEN: §3.10.7.2 -------------------------------------------------------------------
    (Listen,      UserListen,     None,              &[],                          "-",                      "-"),
    (Listen,      UserConnect,    None,              &[],                          "-",                      "-"),
    (Listen,      UserSend,       None,              &[],                          "-",                      "-"),
    (Listen,      UserShutdown,   Some(Closed),      &[],                          "-",                      "shutdown"),
    (Listen,      UserClose,      Some(Closed),      &[],                          "-",                      "close"),
    (Listen,      UserAbort,      Some(Closed),      &[],                          "-",                      "abort"),
    (Listen,      Syn,            Some(SynReceived), &["SYN|ACK s=0 a=1"],         "syn_ack@rto",            "syn_received"),
    (Listen,      SynAck,         Some(Listen),      &["RST s=1"],                 "-",                      "-"),
    (Listen,      AckOk,          Some(Listen),      &["RST s=1"],                 "-",                      "-"),
    (Listen,      AckBad,         Some(Listen),      &["RST s=101"],               "-",                      "-"),
    (Listen,      Fin,            Some(Listen),      &[],                          "-",                      "-"),
    (Listen,      FinAck,         Some(Listen),      &["RST s=1"],                 "-",                      "-"),
    (Listen,      RstExact,       Some(Listen),      &[],                          "-",                      "-"),
    (Listen,      RstInWindow,    Some(Listen),      &[],                          "-",                      "-"),
    (Listen,      RstOutOfWindow, Some(Listen),      &[],                          "-",                      "-"),
    (Listen,      Data,           Some(Listen),      &["RST s=1"],                 "-",                      "-"),
    (Listen,      Timer,          Some(Listen),      &[],                          "-",                      "-"),
    // ---- SYN-SENT: §3.10.7.3 -----------------------------------------------------------------
    (SynSent,     UserListen,     None,              &[],                          "syn@rto",                "-"),
    (SynSent,     UserConnect,    None,              &[],                          "syn@rto",                "-"),
    (SynSent,     UserSend,       Some(SynSent),     &[],                          "syn@rto",                "-"), // queued until ESTABLISHED
    (SynSent,     UserShutdown,   Some(Closed),      &[],                          "-",                      "shutdown"),
    (SynSent,     UserClose,      Some(Closed),      &[],                          "-",                      "close"),
    (SynSent,     UserAbort,      Some(Closed),      &[],                          "-",                      "abort"), // Linux: no RST from SYN-SENT
    (SynSent,     Syn,            Some(SynReceived), &["SYN|ACK s=0 a=1"],         "syn_ack@rto",            "syn_received"), // simultaneous open
    (SynSent,     SynAck,         Some(Established), &["ACK s=1 a=1"],             "-",                      "syn_ack_received"),
    (SynSent,     AckOk,          Some(SynSent),     &[],                          "syn@rto",                "-"), // neither SYN nor RST: drop
    (SynSent,     AckBad,         Some(SynSent),     &["RST s=101"],               "syn@8",                  "-"), // <SEQ=SEG.ACK><CTL=RST>; SYN resent at once (TCP_TIMEOUT_MIN)
    (SynSent,     Fin,            Some(SynSent),     &[],                          "syn@rto",                "-"),
    (SynSent,     FinAck,         Some(SynSent),     &[],                          "syn@rto",                "-"),
    (SynSent,     RstExact,       Some(SynSent),     &[],                          "syn@rto",                "-"), // RST without ACK: drop
    (SynSent,     RstInWindow,    Some(SynSent),     &[],                          "syn@rto",                "-"),
    (SynSent,     RstOutOfWindow, Some(SynSent),     &[],                          "syn@rto",                "-"),
    (SynSent,     Data,           Some(SynSent),     &[],                          "syn@rto",                "-"),
    (SynSent,     Timer,          Some(SynSent),     &["SYN s=0"],                 "syn@2000",               "-"), // resent after 1 s, next in 1 s (tcp_syn_linear_timeouts)
    // ---- SYN-RECEIVED (passive) --------------------------------------------------------------
    (SynReceived, UserListen,     None,              &[],                          "syn_ack@rto",            "-"),
    (SynReceived, UserConnect,    None,              &[],                          "syn_ack@rto",            "-"),
    (SynReceived, UserSend,       Some(SynReceived), &[],                          "syn_ack@rto",            "-"), // queued until ESTABLISHED
    (SynReceived, UserShutdown,   Some(FinWait1),    &[],                          "retransmit@rto",         "shutdown"), // FIN waits for the SYN's ACK
    (SynReceived, UserClose,      Some(FinWait1),    &[],                          "retransmit@rto",         "close"),
    (SynReceived, UserAbort,      Some(Closed),      &["RST|ACK s=1 a=1"],         "-",                      "abort"),
    (SynReceived, Syn,            Some(Listen),      &["RST|ACK s=-1000 a=2"],     "-",                      "syn_received"), // tcp_check_req: a SYN in the window ends it, with RST
    (SynReceived, SynAck,         Some(Listen),      &["RST s=1"],                 "-",                      "syn_received"), // tcp_check_req: a SYN in the window ends it, with RST
    (SynReceived, AckOk,          Some(Established), &[],                          "-",                      "ack_received"),
    (SynReceived, AckBad,         Some(SynReceived), &["RST s=101"],               "syn_ack@rto",            "-"),
    (SynReceived, Fin,            Some(SynReceived), &[],                          "syn_ack@rto",            "-"), // no ACK bit: drop
    (SynReceived, FinAck,         Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "ack_received+fin_received"),
    (SynReceived, RstExact,       Some(Listen),      &[],                          "-",                      "rst_received"), // passive: back to LISTEN
    (SynReceived, RstInWindow,    Some(Listen),      &[],                          "-",                      "rst_received"), // tcp_check_req: any RST in the window, no challenge
    (SynReceived, RstOutOfWindow, Some(SynReceived), &[],                          "syn_ack@rto",            "-"),
    (SynReceived, Data,           Some(Established), &["ACK s=1 a=101"],           "-",                      "ack_received"),
    (SynReceived, Timer,          Some(SynReceived), &["SYN|ACK s=0 a=1"],         "syn_ack@3rto",           "-"), // SYN-ACK resent, next after 2 s
    // ---- ESTABLISHED ---------------------------------------------------------------------------
    (Established, UserListen,     None,              &[],                          "-",                      "-"),
    (Established, UserConnect,    None,              &[],                          "-",                      "-"),
    (Established, UserSend,       Some(Established), &["PSH|ACK s=1 a=1 len=100"], "retransmit@rto",         "-"),
    (Established, UserShutdown,   Some(FinWait1),    &["FIN|ACK s=1 a=1"],         "retransmit@rto",         "shutdown"),
    (Established, UserClose,      Some(FinWait1),    &["FIN|ACK s=1 a=1"],         "retransmit@rto",         "close"),
    (Established, UserAbort,      Some(Closed),      &["RST|ACK s=1 a=1"],         "-",                      "abort"),
    (Established, Syn,            Some(Established), &["ACK s=1 a=1"],             "-",                      "-"), // RFC 5961 §4 challenge
    (Established, SynAck,         Some(Established), &["ACK s=1 a=1"],             "-",                      "-"),
    (Established, AckOk,          Some(Established), &[],                          "-",                      "-"),
    (Established, AckBad,         Some(Established), &["ACK s=1 a=1"],             "-",                      "-"), // acks unsent data
    (Established, Fin,            Some(Established), &[],                          "-",                      "-"),
    (Established, FinAck,         Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "fin_received"),
    (Established, RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (Established, RstInWindow,    Some(Established), &["ACK s=1 a=1"],             "-",                      "-"),
    (Established, RstOutOfWindow, Some(Established), &[],                          "-",                      "-"),
    (Established, Data,           Some(Established), &["ACK s=1 a=101"],           "-",                      "-"),
    (Established, Timer,          Some(Established), &[],                          "-",                      "-"),
    // ---- FIN-WAIT-1: our FIN (s=1) is unacknowledged; RTO is 200 ms (an RTT sample of 0) --------
    (FinWait1,    UserListen,     None,              &[],                          "retransmit@rto",         "-"),
    (FinWait1,    UserConnect,    None,              &[],                          "retransmit@rto",         "-"),
    (FinWait1,    UserSend,       None,              &[],                          "retransmit@rto",         "-"),
    (FinWait1,    UserShutdown,   None,              &[],                          "retransmit@rto",         "-"),
    (FinWait1,    UserClose,      Some(FinWait1),    &[],                          "retransmit@rto",         "-"), // now orphaned
    (FinWait1,    UserAbort,      Some(Closed),      &["RST|ACK s=2 a=1"],         "-",                      "abort"),
    (FinWait1,    Syn,            Some(FinWait1),    &["ACK s=2 a=1"],             "retransmit@rto",         "-"),
    (FinWait1,    SynAck,         Some(FinWait1),    &["ACK s=2 a=1"],             "retransmit@rto",         "-"),
    (FinWait1,    AckOk,          Some(FinWait2),    &[],                          "-",                      "ack_received"),
    (FinWait1,    AckBad,         Some(FinWait1),    &["ACK s=2 a=1"],             "retransmit@rto",         "-"),
    (FinWait1,    Fin,            Some(FinWait1),    &[],                          "retransmit@rto",         "-"),
    (FinWait1,    FinAck,         Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "ack_received+fin_received"), // FIN and its ACK together
    (FinWait1,    RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (FinWait1,    RstInWindow,    Some(FinWait1),    &["ACK s=2 a=1"],             "retransmit@rto",         "-"),
    (FinWait1,    RstOutOfWindow, Some(FinWait1),    &[],                          "retransmit@rto",         "-"),
    (FinWait1,    Data,           Some(FinWait2),    &["ACK s=2 a=101"],           "-",                      "ack_received"), // still receiving
    (FinWait1,    Timer,          Some(FinWait1),    &["FIN|ACK s=1 a=1"],         "retransmit@3rto",        "-"), // FIN resent at the RTO, next after 2·RTO
    // ---- FIN-WAIT-2 (shut down, not closed: no timer) -----------------------------------------
    (FinWait2,    UserListen,     None,              &[],                          "-",                      "-"),
    (FinWait2,    UserConnect,    None,              &[],                          "-",                      "-"),
    (FinWait2,    UserSend,       None,              &[],                          "-",                      "-"),
    (FinWait2,    UserShutdown,   None,              &[],                          "-",                      "-"),
    (FinWait2,    UserClose,      Some(FinWait2),    &[],                          "fin_wait_2@fin_timeout", "-"), // orphaned: tcp_fin_timeout armed
    (FinWait2,    UserAbort,      Some(Closed),      &["RST|ACK s=2 a=1"],         "-",                      "abort"),
    (FinWait2,    Syn,            Some(FinWait2),    &["ACK s=2 a=1"],             "-",                      "-"),
    (FinWait2,    SynAck,         Some(FinWait2),    &["ACK s=2 a=1"],             "-",                      "-"),
    (FinWait2,    AckOk,          Some(FinWait2),    &[],                          "-",                      "-"),
    (FinWait2,    AckBad,         Some(FinWait2),    &["ACK s=2 a=1"],             "-",                      "-"),
    (FinWait2,    Fin,            Some(FinWait2),    &[],                          "-",                      "-"),
    (FinWait2,    FinAck,         Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "fin_received"),
    (FinWait2,    RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (FinWait2,    RstInWindow,    Some(FinWait2),    &["ACK s=2 a=1"],             "-",                      "-"),
    (FinWait2,    RstOutOfWindow, Some(FinWait2),    &[],                          "-",                      "-"),
    (FinWait2,    Data,           Some(FinWait2),    &["ACK s=2 a=101"],           "-",                      "-"),
    (FinWait2,    Timer,          Some(FinWait2),    &[],                          "-",                      "-"),
    // ---- CLOSE-WAIT: the peer's FIN (s=1) is in, RCV.NXT = 2 ---------------------------------
    (CloseWait,   UserListen,     None,              &[],                          "-",                      "-"),
    (CloseWait,   UserConnect,    None,              &[],                          "-",                      "-"),
    (CloseWait,   UserSend,       Some(CloseWait),   &["PSH|ACK s=1 a=2 len=100"], "retransmit@rto",         "-"),
    (CloseWait,   UserShutdown,   Some(LastAck),     &["FIN|ACK s=1 a=2"],         "retransmit@rto",         "shutdown"),
    (CloseWait,   UserClose,      Some(LastAck),     &["FIN|ACK s=1 a=2"],         "retransmit@rto",         "close"),
    (CloseWait,   UserAbort,      Some(Closed),      &["RST|ACK s=1 a=2"],         "-",                      "abort"),
    (CloseWait,   Syn,            Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "-"),
    (CloseWait,   SynAck,         Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "-"),
    (CloseWait,   AckOk,          Some(CloseWait),   &[],                          "-",                      "-"),
    (CloseWait,   AckBad,         Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "-"),
    (CloseWait,   Fin,            Some(CloseWait),   &[],                          "-",                      "-"),
    (CloseWait,   FinAck,         Some(CloseWait),   &[],                          "-",                      "-"), // a second FIN: remain (Linux drops)
    (CloseWait,   RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (CloseWait,   RstInWindow,    Some(CloseWait),   &["ACK s=1 a=2"],             "-",                      "-"),
    (CloseWait,   RstOutOfWindow, Some(CloseWait),   &[],                          "-",                      "-"),
    (CloseWait,   Data,           Some(CloseWait),   &[],                          "-",                      "-"), // text after FIN: ignored
    (CloseWait,   Timer,          Some(CloseWait),   &[],                          "-",                      "-"),
    // ---- CLOSING: FINs crossed; ours (s=1) unacknowledged ------------------------------------
    (Closing,     UserListen,     None,              &[],                          "retransmit@rto",         "-"),
    (Closing,     UserConnect,    None,              &[],                          "retransmit@rto",         "-"),
    (Closing,     UserSend,       None,              &[],                          "retransmit@rto",         "-"),
    (Closing,     UserShutdown,   None,              &[],                          "retransmit@rto",         "-"),
    (Closing,     UserClose,      Some(Closing),     &[],                          "retransmit@rto",         "-"),
    (Closing,     UserAbort,      Some(Closed),      &[],                          "-",                      "abort"), // RFC and Linux: no RST here
    (Closing,     Syn,            Some(Closing),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (Closing,     SynAck,         Some(Closing),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (Closing,     AckOk,          Some(TimeWait),    &[],                          "time_wait@2msl",         "ack_received"),
    (Closing,     AckBad,         Some(Closing),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (Closing,     Fin,            Some(Closing),     &[],                          "retransmit@rto",         "-"),
    (Closing,     FinAck,         Some(TimeWait),    &[],                          "time_wait@2msl",         "ack_received"),
    (Closing,     RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (Closing,     RstInWindow,    Some(Closing),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (Closing,     RstOutOfWindow, Some(Closing),     &[],                          "retransmit@rto",         "-"),
    (Closing,     Data,           Some(TimeWait),    &[],                          "time_wait@2msl",         "ack_received"), // its ACK acks our FIN
    (Closing,     Timer,          Some(Closing),     &["FIN|ACK s=1 a=2"],         "retransmit@3rto",        "-"),
    // ---- LAST-ACK: our FIN (s=1) unacknowledged, closed by the user --------------------------
    (LastAck,     UserListen,     None,              &[],                          "retransmit@rto",         "-"),
    (LastAck,     UserConnect,    None,              &[],                          "retransmit@rto",         "-"),
    (LastAck,     UserSend,       None,              &[],                          "retransmit@rto",         "-"),
    (LastAck,     UserShutdown,   None,              &[],                          "retransmit@rto",         "-"),
    (LastAck,     UserClose,      None,              &[],                          "retransmit@rto",         "-"), // closed already
    (LastAck,     UserAbort,      Some(Closed),      &[],                          "-",                      "abort"),
    (LastAck,     Syn,            Some(LastAck),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (LastAck,     SynAck,         Some(LastAck),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (LastAck,     AckOk,          Some(Closed),      &[],                          "-",                      "ack_received"),
    (LastAck,     AckBad,         Some(LastAck),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (LastAck,     Fin,            Some(LastAck),     &[],                          "retransmit@rto",         "-"),
    (LastAck,     FinAck,         Some(Closed),      &[],                          "-",                      "ack_received"),
    (LastAck,     RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"),
    (LastAck,     RstInWindow,    Some(LastAck),     &["ACK s=2 a=2"],             "retransmit@rto",         "-"),
    (LastAck,     RstOutOfWindow, Some(LastAck),     &[],                          "retransmit@rto",         "-"),
    (LastAck,     Data,           Some(Closed),      &[],                          "-",                      "ack_received"),
    (LastAck,     Timer,          Some(LastAck),     &["FIN|ACK s=1 a=2"],         "retransmit@3rto",        "-"),
    // ---- TIME-WAIT: Linux's tcp_timewait_state_process ----------------------------------------
    (TimeWait,    UserListen,     None,              &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    UserConnect,    None,              &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    UserSend,       None,              &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    UserShutdown,   None,              &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    UserClose,      Some(TimeWait),    &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    UserAbort,      Some(Closed),      &[],                          "-",                      "abort"),
    (TimeWait,    Syn,            Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"), // not a newer ISN: ACK
    (TimeWait,    SynAck,         Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"),
    (TimeWait,    AckOk,          Some(TimeWait),    &[],                          "time_wait@2msl",         "-"), // bare ACK at RCV.NXT
    (TimeWait,    AckBad,         Some(TimeWait),    &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    Fin,            Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"),
    (TimeWait,    FinAck,         Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"),
    (TimeWait,    RstExact,       Some(Closed),      &[],                          "-",                      "rst_received"), // RFC 1337 assassination (Linux)
    (TimeWait,    RstInWindow,    Some(TimeWait),    &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    RstOutOfWindow, Some(TimeWait),    &[],                          "time_wait@2msl",         "-"),
    (TimeWait,    Data,           Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"),
    (TimeWait,    Timer,          Some(Closed),      &[],                          "-",                      "time_wait_expired"), // 2·MSL
];

/// The cells where the `rfc9293` profile differs from Linux; every other cell is the same under
/// both. Each row here and its namesake above are one deviation, side by side.
#[rustfmt::skip]
const RFC9293_TABLE: &[Row] = &[
    (SynSent,     AckBad,         Some(SynSent),     &["RST s=101"],               "syn@rto",                "-"), // no resend: the SYN waits for its timer
    (SynSent,     Timer,          Some(SynSent),     &["SYN s=0"],                 "syn@3rto",               "-"), // no linear timeouts: doubling
    (SynReceived, UserShutdown,   Some(FinWait1),    &["FIN|ACK s=1 a=1"],         "retransmit@rto",         "shutdown"), // §3.10.4: the FIN goes at once
    (SynReceived, UserClose,      Some(FinWait1),    &["FIN|ACK s=1 a=1"],         "retransmit@rto",         "close"), // §3.10.4: the FIN goes at once
    (SynReceived, UserAbort,      Some(Closed),      &["RST s=1"],                 "-",                      "abort"), // <SEQ=SND.NXT><CTL=RST>, no ACK bit
    (SynReceived, Syn,            Some(Listen),      &[],                          "-",                      "syn_received"), // §3.10.7.4 fourth: back to LISTEN, no RST
    (SynReceived, SynAck,         Some(Listen),      &[],                          "-",                      "syn_received"), // §3.10.7.4 fourth: back to LISTEN, no RST
    (Established, UserAbort,      Some(Closed),      &["RST s=1"],                 "-",                      "abort"), // <SEQ=SND.NXT><CTL=RST>, no ACK bit
    (Established, Syn,            Some(Closed),      &["RST|ACK s=-1000 a=2"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (Established, SynAck,         Some(Closed),      &["RST s=1"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (Established, RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (FinWait1,    UserAbort,      Some(Closed),      &["RST s=2"],                 "-",                      "abort"), // <SEQ=SND.NXT><CTL=RST>, no ACK bit
    (FinWait1,    Syn,            Some(Closed),      &["RST|ACK s=-1000 a=2"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (FinWait1,    SynAck,         Some(Closed),      &["RST s=2"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (FinWait1,    RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (FinWait2,    UserClose,      Some(FinWait2),    &[],                          "-",                      "-"), // no tcp_fin_timeout: it waits for the peer's FIN
    (FinWait2,    UserAbort,      Some(Closed),      &["RST s=2"],                 "-",                      "abort"), // <SEQ=SND.NXT><CTL=RST>, no ACK bit
    (FinWait2,    Syn,            Some(Closed),      &["RST|ACK s=-1000 a=2"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (FinWait2,    SynAck,         Some(Closed),      &["RST s=2"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (FinWait2,    RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (CloseWait,   UserAbort,      Some(Closed),      &["RST s=1"],                 "-",                      "abort"), // <SEQ=SND.NXT><CTL=RST>, no ACK bit
    (CloseWait,   Syn,            Some(Closed),      &["RST|ACK s=-1000 a=3"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (CloseWait,   SynAck,         Some(Closed),      &["RST s=1"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (CloseWait,   RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (Closing,     Syn,            Some(Closed),      &["RST|ACK s=-1000 a=3"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (Closing,     SynAck,         Some(Closed),      &["RST s=2"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (Closing,     RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (LastAck,     Syn,            Some(Closed),      &["RST|ACK s=-1000 a=3"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (LastAck,     SynAck,         Some(Closed),      &["RST s=2"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (LastAck,     RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
    (TimeWait,    Syn,            Some(Closed),      &["RST|ACK s=-1000 a=3"],     "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (TimeWait,    SynAck,         Some(Closed),      &["RST s=2"],                 "-",                      "syn_received"), // no RFC 5961: a SYN in the window resets
    (TimeWait,    AckOk,          Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"), // §3.10.7.4 fifth: ACK it, restart 2·MSL
    (TimeWait,    AckBad,         Some(TimeWait),    &["ACK s=2 a=2"],             "time_wait@2msl",         "-"), // §3.10.7.4 fifth: ACK it, restart 2·MSL
    (TimeWait,    Fin,            Some(TimeWait),    &[],                          "time_wait@2msl",         "-"), // no ACK bit: dropped
    (TimeWait,    RstInWindow,    Some(Closed),      &[],                          "-",                      "rst_received"), // no RFC 5961: any RST in the window resets
];

const EVENTS: [Ev; 17] = [
    UserListen,
    UserConnect,
    UserSend,
    UserShutdown,
    UserClose,
    UserAbort,
    Syn,
    SynAck,
    AckOk,
    AckBad,
    Fin,
    FinAck,
    RstExact,
    RstInWindow,
    RstOutOfWindow,
    Data,
    Timer,
];

#[test]
fn test_transition_table_covers_every_cell() {
    for state in State::ALL {
        for ev in EVENTS {
            let n = TABLE.iter().filter(|r| r.0 == state && r.1 == ev).count();
            assert_eq!(n, 1, "({state}, {ev:?}) has {n} rows");
            let n = RFC9293_TABLE
                .iter()
                .filter(|r| r.0 == state && r.1 == ev)
                .count();
            assert!(n <= 1, "({state}, {ev:?}) has {n} rfc9293 rows");
        }
    }
}

/// Checks one row under settings `c`; describes the difference, if any.
fn check_row(c: &Config, &(state, ev, next, emitted, timer, causes): &Row) -> Option<String> {
    let mut ep = fixture_in(c, state);
    let before = ep.clone();
    let o = apply(c, &mut ep, ev);
    let want: Vec<String> = emitted.iter().map(|s| s.to_string()).collect();
    let cell = format!("({state}, {ev:?})");
    let mut diff = match (next, o.result) {
        (None, Err(Error::InvalidInState { state: s, .. })) if s == state && ep == before => None,
        (None, got) => Some(format!(
            "{cell}: want a refusal that changes nothing, got {got:?}"
        )),
        (Some(to), Ok(got)) if ep.state() == to && got == want => None,
        (Some(to), got) => Some(format!(
            "{cell}: want {to} {want:?}, got {} {got:?}",
            ep.state()
        )),
    };
    if diff.is_none() && (o.timer != timer || o.causes != causes) {
        diff = Some(format!(
            "{cell}: want timer {timer} by {causes}, got timer {} by {}",
            o.timer, o.causes
        ));
    }
    if ep.snd_una() > ep.snd_nxt() {
        diff = Some(format!("{cell}: SND.UNA > SND.NXT"));
    }
    diff
}

fn assert_rows<'a>(c: &Config, rows: impl Iterator<Item = &'a Row>) {
    let failures: Vec<String> = rows.filter_map(|r| check_row(c, r)).collect();
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn test_transition_table() {
    assert_rows(&cfg(), TABLE.iter());
}

#[test]
fn test_transition_table_rfc9293() {
    let rfc_row = |r: &Row| RFC9293_TABLE.iter().find(|x| (x.0, x.1) == (r.0, r.1));
    assert_rows(&rfc(), TABLE.iter().map(|r| rfc_row(r).unwrap_or(r)));
    // Each rfc9293 row is a deviation: it differs from Linux's.
    for r in RFC9293_TABLE {
        let linux = TABLE.iter().find(|x| (x.0, x.1) == (r.0, r.1)).unwrap();
        assert_ne!(
            r, linux,
            "({}, {:?}) is the same under both profiles",
            r.0, r.1
        );
    }
}

// ---- rules the table's generic events do not reach --------------------------------------------

#[test]
fn test_syn_received_retransmitted_syn_gets_syn_ack_again() {
    // Linux tcp_check_req: the peer lost our SYN-ACK and resent its SYN.
    let mut ep = socket_syn_received();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::SYN, 0, 0, 0)),
        ["SYN|ACK s=0 a=1"]
    );
    assert_eq!(ep.state(), State::SynReceived);
}

#[test]
fn test_syn_sent_rst_with_acceptable_ack_refuses() {
    let mut ep = socket_syn_sent();
    assert!(drive(&mut ep, 0, peer(Flags::RST | Flags::ACK, 0, 1, 0)).is_empty());
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_syn_sent_rst_with_bad_ack_is_dropped() {
    let mut ep = socket_syn_sent();
    assert!(drive(&mut ep, 0, peer(Flags::RST | Flags::ACK, 0, 7, 0)).is_empty());
    assert_eq!(ep.state(), State::SynSent);
}

#[test]
fn test_syn_sent_bad_ack_resends_the_syn_at_once() {
    // tcp_rcv_synsent_state_process: an unacceptable ACK re-arms the SYN timer to
    // TCP_TIMEOUT_MIN if the SYN was never retransmitted; the RST answers the segment.
    for (flags, answer) in [
        (Flags::SYN | Flags::ACK, vec!["RST s=1000"]),
        (Flags::RST | Flags::ACK, vec![]), // an RST is never answered
    ] {
        let mut ep = socket_syn_sent();
        assert_eq!(drive(&mut ep, 10, peer(flags, 0, 1000, 0)), answer);
        assert_eq!(ep.state(), State::SynSent);
        let resent = run_timers(&mut ep, 1000);
        assert_eq!(resent[0], (10 + TCP_TIMEOUT_MIN_MS, "SYN s=0".to_string()));
        // The resend counts as the first retransmission: the next is 1 s later.
        assert_eq!(
            ep.timer(0).unwrap().deadline,
            10 + TCP_TIMEOUT_MIN_MS + 1000
        );
    }
}

#[test]
fn test_syn_sent_bad_ack_after_a_retransmission_waits_for_the_timer() {
    let mut ep = socket_syn_sent();
    run_timers(&mut ep, 1000); // the first retransmission, at 1 s
    let next = ep.timer(0).unwrap().deadline;
    assert_eq!(
        drive(&mut ep, 1500, peer(Flags::SYN | Flags::ACK, 0, 1000, 0)),
        ["RST s=1000"]
    );
    assert_eq!(ep.timer(0).unwrap().deadline, next);
}

#[test]
fn test_simultaneous_open_syn_ack_in_syn_received_gets_a_bare_ack() {
    // Our SYN crossed the peer's; its SYN-ACK (SEG.SEQ = IRS) acknowledges ours.
    let mut ep = socket_syn_sent();
    assert_eq!(
        drive(&mut ep, 5, peer(Flags::SYN, 0, 0, 0)),
        ["SYN|ACK s=0 a=1"]
    );
    assert_eq!(ep.state(), State::SynReceived);
    let mut rec = Recorder::default();
    ep.on_segment(
        &cfg(),
        10,
        &peer(Flags::SYN | Flags::ACK, 0, 1, 0),
        &mut rec,
    );
    assert_eq!(segs(&rec), ["ACK s=1 a=1"]);
    assert_eq!(ep.state(), State::Established);
    assert_eq!(rec.transitions[0].cause, Cause::SynAckReceived);
    // RFC 9293's text: the SYN-ACK is outside the window, answered with an ACK; no change.
    let c = rfc();
    let mut ep = fixture_in(&c, State::SynSent);
    ep.on_segment(&c, 5, &peer(Flags::SYN, 0, 0, 0), &mut Recorder::default());
    let mut rec = Recorder::default();
    ep.on_segment(&c, 10, &peer(Flags::SYN | Flags::ACK, 0, 1, 0), &mut rec);
    assert_eq!(
        (segs(&rec), ep.state()),
        (vec!["ACK s=1 a=1".to_string()], State::SynReceived)
    );
}

#[test]
fn test_syn_sent_syn_ack_acking_iss_is_reset() {
    // SEG.ACK =< ISS is unacceptable.
    let mut ep = socket_syn_sent();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::SYN | Flags::ACK, 0, 0, 0)),
        ["RST s=0"]
    );
    assert_eq!(ep.state(), State::SynSent);
}

#[test]
fn test_established_out_of_window_data_gets_duplicate_ack() {
    let mut ep = socket_established();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 1_000_001, 1, 100)),
        ["ACK s=1 a=1"]
    );
    assert_eq!(ep.rcv_nxt(), SeqNum(IRS + 1));
}

#[test]
fn test_established_out_of_order_data_is_not_taken() {
    let mut ep = socket_established();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 101, 1, 100)),
        ["ACK s=1 a=1"]
    );
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 100)),
        ["ACK s=1 a=101"]
    );
}

#[test]
fn test_established_overlapping_data_takes_only_the_new_part() {
    let mut ep = socket_established();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 100));
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 51, 1, 100)),
        ["ACK s=1 a=151"]
    );
}

#[test]
fn test_established_zero_length_old_ack_outside_window_gets_ack() {
    let mut ep = socket_established();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 0, 1, 0)),
        ["ACK s=1 a=1"]
    );
}

#[test]
fn test_established_send_splits_into_mss_segments_within_the_window() {
    let mut ep = socket_established();
    let mut rec = Recorder::default();
    ep.send(&cfg(), 0, 2500, &mut rec).unwrap();
    assert_eq!(
        segs(&rec),
        [
            "ACK s=1 a=1 len=1000",
            "ACK s=1001 a=1 len=1000",
            "PSH|ACK s=2001 a=1 len=500"
        ]
    );
    assert_eq!(ep.snd_nxt() - ep.snd_una(), 2500);
}

#[test]
fn test_established_send_waits_for_window_then_continues_on_ack() {
    let mut ep = socket_established();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 0).with_wnd(1500));
    let mut rec = Recorder::default();
    ep.send(&cfg(), 0, 3000, &mut rec).unwrap();
    assert_eq!(
        segs(&rec),
        ["ACK s=1 a=1 len=1000", "ACK s=1001 a=1 len=500"]
    );
    assert_eq!(ep.unsent(), 1500);
    let acked = drive(&mut ep, 10, peer(Flags::ACK, 1, 1501, 0).with_wnd(1500));
    assert_eq!(
        acked,
        ["ACK s=1501 a=1 len=1000", "PSH|ACK s=2501 a=1 len=500"]
    );
    assert_eq!(ep.unsent(), 0);
}

#[test]
fn test_send_buffer_is_capped() {
    let mut ep = socket_established();
    let before = ep.clone();
    let err = ep
        .send(&cfg(), 0, cfg().snd_buf + 1, &mut Recorder::default())
        .unwrap_err();
    assert!(matches!(err, Error::SendBufferFull { .. }));
    assert_eq!(ep, before);
}

#[test]
fn test_fin_wait_1_orphaned_data_is_reset() {
    // RFC 1122 §4.2.2.13; Linux tcp_rcv_state_process: data after close gets RST <SEQ=SEG.ACK>.
    let mut ep = socket_established();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK | Flags::PSH, 1, 1, 100)),
        ["RST s=1"]
    );
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_fin_wait_2_orphaned_times_out_after_fin_timeout() {
    let mut ep = socket_established();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    drive(&mut ep, 10, peer(Flags::ACK, 1, 2, 0));
    assert_eq!(ep.state(), State::FinWait2);
    let t = ep.timer(0).unwrap();
    assert_eq!((t.kind, t.deadline), (TimerKind::FinWait2, 10 + 60_000));
    let mut rec = Recorder::default();
    assert!(!ep.on_timeout(&cfg(), t.deadline - 1, &mut rec));
    assert!(ep.on_timeout(&cfg(), t.deadline, &mut rec));
    assert_eq!(ep.state(), State::Closed);
    assert_eq!(
        rec.transitions.last().unwrap().cause,
        Cause::FinWait2Timeout
    );
}

#[test]
fn test_fin_wait_2_orphaned_syn_is_reset() {
    let mut ep = socket_fin_wait_2();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::SYN, 1, 0, 0)),
        ["RST|ACK s=-1000 a=2"]
    );
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_time_wait_retransmitted_fin_restarts_2msl() {
    let mut ep = socket_time_wait();
    assert_eq!(ep.timer(0).unwrap().deadline, 60_000);
    assert_eq!(
        drive(&mut ep, 1000, peer(Flags::FIN | Flags::ACK, 1, 2, 0)),
        ["ACK s=2 a=2"]
    );
    assert_eq!(ep.timer(0).unwrap().deadline, 61_000);
}

#[test]
fn test_time_wait_new_syn_with_higher_seq_reopens_passive_side() {
    // Linux TCP_TW_SYN: the listener takes the SYN; ISS = old SND.NXT + 65535 + 2.
    let mut ep = socket_time_wait();
    let mut rec = Recorder::default();
    ep.on_segment(&cfg(), 0, &peer(Flags::SYN, 1002, 0, 0), &mut rec);
    assert_eq!(segs(&rec), ["SYN|ACK s=65539 a=1003"]);
    assert_eq!(ep.state(), State::SynReceived);
    let path: Vec<_> = rec
        .transitions
        .iter()
        .map(|t| (t.from, t.to, t.cause))
        .collect();
    assert_eq!(
        path,
        [
            (State::TimeWait, State::Listen, Cause::SynInTimeWait),
            (State::Listen, State::SynReceived, Cause::SynReceived)
        ]
    );
}

#[test]
fn test_time_wait_rst_exact_closes_and_is_reported() {
    let mut ep = socket_time_wait();
    let mut rec = Recorder::default();
    ep.on_segment(&cfg(), 5, &peer(Flags::RST, 2, 0, 0), &mut rec);
    assert_eq!(
        rec.transitions,
        [Transition {
            from: State::TimeWait,
            to: State::Closed,
            cause: Cause::RstReceived
        }]
    );
}

#[test]
fn test_fin_wait_1_shutdown_then_close_is_allowed_once() {
    let mut ep = socket_fin_wait_1();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    assert!(ep.is_orphaned());
    let err = ep.close(&cfg(), 0, &mut Recorder::default()).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidInState {
            call: Call::Close,
            state: State::FinWait1
        }
    );
}

#[test]
fn test_syn_received_close_sends_fin_once_syn_is_acked() {
    let mut ep = socket_syn_received();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    assert_eq!(
        drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 0)),
        ["FIN|ACK s=1 a=1"]
    );
    assert_eq!(ep.state(), State::FinWait1);
}

#[test]
fn test_syn_sent_queued_data_goes_after_handshake() {
    let mut ep = socket_syn_sent();
    ep.send(&cfg(), 0, 300, &mut Recorder::default()).unwrap();
    let out = drive(&mut ep, 10, peer(Flags::SYN | Flags::ACK, 0, 1, 0));
    // The data segment carries the handshake's ACK.
    assert_eq!(out, ["PSH|ACK s=1 a=1 len=300"]);
    assert_eq!(ep.state(), State::Established);
}

// ---- Linux under random input: the examples, each as Linux answered it --------------

/// The client, ESTABLISHED at t = 10 (SYN-ACK after 10 ms).
fn client_established() -> Endpoint {
    let mut ep = socket_syn_sent();
    drive(&mut ep, 10, peer(Flags::SYN | Flags::ACK, 0, 1, 0));
    assert_eq!(ep.state(), State::Established);
    ep
}

#[test]
fn test_out_of_window_acks_are_rate_limited_per_connection() {
    // tcp_oow_rate_limited, tcp_invalid_ratelimit = 500 ms.
    let mut ep = client_established();
    let far_below = 1u32.wrapping_sub(5000);
    assert_eq!(
        drive(&mut ep, 20, peer(Flags::ACK, far_below, 1, 0)),
        ["ACK s=1 a=1"]
    ); // far below
    assert!(drive(&mut ep, 30, peer(Flags::ACK, 1 + 100_000, 1, 0)).is_empty()); // beyond
    // A challenge ACK shares the limit: an in-window RST at 40 gets none either.
    assert!(drive(&mut ep, 40, peer(Flags::RST, 500, 0, 0)).is_empty());
    // Segments with data are never limited (they are not part of an ACK loop).
    assert_eq!(
        drive(&mut ep, 50, peer(Flags::ACK, 1 + 100_000, 1, 100)),
        ["ACK s=1 a=1"]
    );
    assert!(drive(&mut ep, 519, peer(Flags::ACK, far_below, 1, 0)).is_empty());
    assert_eq!(
        drive(&mut ep, 520, peer(Flags::ACK, far_below, 1, 0)),
        ["ACK s=1 a=1"]
    );
    assert_eq!(ep.state(), State::Established);
    // rfc9293 answers every one.
    let c = rfc();
    let mut ep = fixture_in(&c, State::Established);
    for t in [20, 30] {
        let mut rec = Recorder::default();
        ep.on_segment(&c, t, &peer(Flags::ACK, 1 + 100_000, 1, 0), &mut rec);
        assert_eq!(segs(&rec), ["ACK s=1 a=1"]);
    }
}

#[test]
fn test_too_old_ack_is_dropped_with_a_challenge_ack() {
    // RFC 5961 §5.2 as tcp_ack does it. A server that has received 958 bytes and sent none:
    // bytes_acked = 0, so even SEG.ACK = ISS is too old; the data is dropped.
    let mut ep = socket_established();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 958));
    assert_eq!(ep.rcv_nxt(), SeqNum(IRS + 959));
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::ACK | Flags::PSH, 958, 0, 208)),
        ["ACK s=1 a=959"]
    );
    assert_eq!(ep.rcv_nxt(), SeqNum(IRS + 959), "the data was dropped");
    // A FIN with it is dropped too: still ESTABLISHED (the challenge ACK is rate-limited).
    let mut ep = socket_established();
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::FIN | Flags::ACK, 1, 0, 0)),
        ["ACK s=1 a=1"]
    );
    assert_eq!(ep.state(), State::Established);
    // A client's bytes_acked counts its SYN (tcp_ack takes the SYN-ACK): SEG.ACK = ISS is an
    // old ACK, not too old, and its FIN is taken.
    let mut ep = client_established();
    assert_eq!(
        drive(&mut ep, 20, peer(Flags::FIN | Flags::ACK, 1, 0, 0)),
        ["ACK s=1 a=2"]
    );
    assert_eq!(ep.state(), State::CloseWait);
    // Without RFC 5961 (rfc9293) the old ACK is ignored and the FIN taken.
    let c = rfc();
    let mut ep = fixture_in(&c, State::Established);
    ep.on_segment(
        &c,
        10,
        &peer(Flags::FIN | Flags::ACK, 1, 0, 0),
        &mut Recorder::default(),
    );
    assert_eq!(ep.state(), State::CloseWait);
}

#[test]
fn test_handshake_rtt_sample_sets_the_servers_first_rto() {
    // The server measures SYN-ACK → ACK: 50 ms gives 50 + max(2·50, 200) = 250 ms.
    let mut ep = fixture(State::Listen);
    drive(&mut ep, 0, peer(Flags::SYN, 0, 0, 0));
    drive(&mut ep, 50, peer(Flags::ACK, 1, 1, 0));
    assert_eq!((ep.srtt(), ep.rto_ms(&cfg())), (Some(50), 250));
}

#[test]
fn test_jiffies_are_where_rounding_would_go() {
    // Not modelled by default; with HZ = 250 (4 ms jiffies) a 3 ms round trip's 203 ms RTO is
    // 204 ms, as Linux's usecs_to_jiffies rounds it.
    let mut ep = socket_syn_sent();
    drive(&mut ep, 3, peer(Flags::SYN | Flags::ACK, 0, 1, 0));
    assert_eq!(ep.rto_ms(&cfg()), 203);
    let hz250 = Config {
        jiffy_ms: 4,
        ..cfg()
    };
    assert_eq!(ep.rto_ms(&hz250), 204);
}

#[test]
fn test_nagle_holds_a_small_segment_while_a_small_one_is_unacknowledged() {
    // tcp_nagle_check with Minshall's check (server, MSS 1000).
    let mut ep = socket_established();
    let mut rec = Recorder::default();
    ep.send(&cfg(), 1114, 844, &mut rec).unwrap();
    assert_eq!(segs(&rec), ["PSH|ACK s=1 a=1 len=844"]);
    let mut rec = Recorder::default();
    ep.send(&cfg(), 1124, 693, &mut rec).unwrap();
    assert!(rec.segments.is_empty(), "held: {:?}", segs(&rec));
    // More data: a full segment may go (only the small tail waits).
    let mut rec = Recorder::default();
    ep.send(&cfg(), 1130, 500, &mut rec).unwrap();
    assert_eq!(segs(&rec), ["ACK s=845 a=1 len=1000"]);
    assert_eq!(ep.unsent(), 193);
    // The ACK of the small segment lets the tail go, though the full one is unacknowledged.
    assert_eq!(
        drive(&mut ep, 1140, peer(Flags::ACK, 1, 845, 0)),
        ["PSH|ACK s=1845 a=1 len=193"]
    );
    // With no-delay it goes at once.
    let nodelay = Config {
        nodelay: true,
        ..cfg()
    };
    let mut ep = socket_established();
    ep.send(&nodelay, 0, 844, &mut Recorder::default()).unwrap();
    let mut rec = Recorder::default();
    ep.send(&nodelay, 10, 693, &mut rec).unwrap();
    assert_eq!(segs(&rec), ["PSH|ACK s=845 a=1 len=693"]);
    // A FIN queued behind held data takes it along (tcp_send_fin merges them).
    let mut ep = socket_established();
    ep.send(&cfg(), 0, 844, &mut Recorder::default()).unwrap();
    ep.send(&cfg(), 10, 693, &mut Recorder::default()).unwrap();
    let mut rec = Recorder::default();
    ep.shutdown(&cfg(), 20, &mut rec).unwrap();
    assert_eq!(segs(&rec), ["FIN|PSH|ACK s=845 a=1 len=693"]);
}

#[test]
fn test_rfc_nagle_holds_while_anything_is_unacknowledged() {
    // RFC 1122's Nagle (rfc9293): the full segment's tail waits even after the first small one
    // is acknowledged, until everything is.
    let c = rfc();
    let mut ep = fixture_in(&c, State::Established);
    ep.send(&c, 0, 844, &mut Recorder::default()).unwrap();
    ep.send(&c, 1, 1193, &mut Recorder::default()).unwrap();
    assert_eq!(ep.unsent(), 193);
    let mut rec = Recorder::default();
    ep.on_segment(&c, 10, &peer(Flags::ACK, 1, 845, 0), &mut rec);
    assert!(rec.segments.is_empty());
    ep.on_segment(&c, 20, &peer(Flags::ACK, 1, 1845, 0), &mut rec);
    assert_eq!(segs(&rec), ["PSH|ACK s=1845 a=1 len=193"]);
}

#[test]
fn test_syn_received_checks_the_ack_before_the_sequence_number() {
    // tcp_check_req: an ACK other than ISS + 1 gets RST <SEQ=SEG.ACK> even far out of window.
    let mut ep = socket_syn_received();
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::ACK, 1_000_000, 50, 0)),
        ["RST s=50"]
    );
    assert_eq!(ep.state(), State::SynReceived);
    // With the right ACK, a sequence number out of the window gets an ACK.
    assert_eq!(
        drive(&mut ep, 20, peer(Flags::ACK, 1_000_000, 1, 0)),
        ["ACK s=1 a=1"]
    );
    assert_eq!(ep.state(), State::SynReceived);
    // rfc9293 looks at the sequence number first.
    let c = rfc();
    let mut ep = fixture_in(&c, State::SynReceived);
    let mut rec = Recorder::default();
    ep.on_segment(&c, 10, &peer(Flags::ACK, 1_000_000, 50, 0), &mut rec);
    assert_eq!(segs(&rec), ["ACK s=1 a=1"]);
}

#[test]
fn test_syn_received_repeats_its_syn_ack_rate_limited_and_restarts_its_timer() {
    let mut ep = socket_syn_received();
    assert_eq!(
        drive(&mut ep, 300, peer(Flags::SYN, 0, 0, 0)),
        ["SYN|ACK s=0 a=1"]
    );
    assert_eq!(ep.timer(0).unwrap().deadline, 1300);
    assert!(drive(&mut ep, 400, peer(Flags::SYN, 0, 0, 0)).is_empty());
}

#[test]
fn test_data_after_the_receive_side_is_shut_resets() {
    // After close(), an out-of-order FIN.
    let mut ep = socket_established();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::FIN | Flags::ACK, 50, 1, 0)),
        ["RST s=1"]
    );
    assert_eq!(ep.state(), State::Closed);
    // In CLOSE-WAIT, data overlapping the peer's own FIN.
    let mut ep = fixture(State::CloseWait);
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::ACK | Flags::PSH, 0, 1, 100)),
        ["RST s=1"]
    );
    assert_eq!(ep.state(), State::Closed);
    // Text starting at or past RCV.NXT in CLOSE-WAIT is ignored (RFC 9293 and Linux alike).
    let mut ep = fixture(State::CloseWait);
    assert!(drive(&mut ep, 10, peer(Flags::ACK | Flags::PSH, 2, 1, 100)).is_empty());
    assert_eq!(ep.state(), State::CloseWait);
}

#[test]
fn test_an_old_fin_is_still_acceptable() {
    // tcp_sequence: a FIN+ACK at RCV.NXT − 1 ends at RCV.NXT, so its ACK (of our FIN) counts:
    // FIN-WAIT-2, and a duplicate ACK for the old FIN.
    let mut ep = socket_fin_wait_1();
    assert_eq!(
        drive(&mut ep, 10, peer(Flags::FIN | Flags::ACK, 0, 2, 0)),
        ["ACK s=2 a=1"]
    );
    assert_eq!(ep.state(), State::FinWait2);
    // RFC 9293: unacceptable, an ACK, still FIN-WAIT-1.
    let c = rfc();
    let mut ep = fixture_in(&c, State::FinWait1);
    let mut rec = Recorder::default();
    ep.on_segment(&c, 10, &peer(Flags::FIN | Flags::ACK, 0, 2, 0), &mut rec);
    assert_eq!(
        (segs(&rec), ep.state()),
        (vec!["ACK s=2 a=1".to_string()], State::FinWait1)
    );
}

#[test]
fn test_rst_at_the_fins_own_number_resets_after_the_peers_fin() {
    // tcp_reset_check: in CLOSE-WAIT an RST at RCV.NXT − 1 (the FIN's number).
    let mut ep = fixture(State::CloseWait);
    assert!(drive(&mut ep, 10, peer(Flags::RST, 1, 0, 0)).is_empty());
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_orphaned_fin_wait_2_takes_only_the_fin() {
    // A timewait sock in FIN-WAIT-2: a duplicate is ignored, an in-window RST ends it with no
    // challenge, the FIN at RCV.NXT brings TIME-WAIT.
    let orphan = || {
        let mut ep = socket_fin_wait_2();
        ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
        ep
    };
    let mut ep = orphan();
    assert!(drive(&mut ep, 10, peer(Flags::ACK, 1, 2, 0)).is_empty());
    assert_eq!(
        drive(&mut ep, 20, peer(Flags::FIN | Flags::ACK, 1, 2, 0)),
        ["ACK s=2 a=2"]
    );
    assert_eq!(ep.state(), State::TimeWait);
    let mut ep = orphan();
    assert!(drive(&mut ep, 10, peer(Flags::RST, 500, 0, 0)).is_empty());
    assert_eq!(ep.state(), State::Closed);
}

// ---- timers ---------------------------------------------------------------------------------

/// Fires every timer up to `until`, returning (time, segment) for each emission.
fn run_timers(ep: &mut Endpoint, until: u64) -> Vec<(u64, String)> {
    let mut log = vec![];
    while let Some(t) = ep.timer(0).filter(|t| t.deadline <= until) {
        let mut rec = Recorder::default();
        ep.on_timeout(&cfg(), t.deadline, &mut rec);
        log.extend(rec.segments.iter().map(|s| (t.deadline, show(s))));
    }
    log
}

#[test]
fn test_syn_sent_default_schedule_and_give_up() {
    let mut ep = socket_syn_sent();
    let times: Vec<u64> = run_timers(&mut ep, 200_000)
        .iter()
        .map(|(t, _)| t / 1000)
        .collect();
    assert_eq!(times, [1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
    assert_eq!(ep.state(), State::Closed);
}

/// Drives a fresh SYN-SENT endpoint's timers to the end: when each SYN went out again and when
/// the connect gave up (ms).
fn syn_schedule(c: &Config) -> (Vec<u64>, u64) {
    let mut ep = Endpoint::new();
    ep.connect(c, 0, SeqNum(ISS), &mut Recorder::default())
        .unwrap();
    let mut resent = vec![];
    while let Some(t) = ep.timer(0) {
        let mut rec = Recorder::default();
        ep.on_timeout(c, t.deadline, &mut rec);
        if ep.state() == State::Closed {
            assert!(rec.segments.is_empty());
            assert_eq!(rec.transitions[0].cause, Cause::RetransmitTimeout);
            return (resent, t.deadline);
        }
        assert_eq!(segs(&rec), ["SYN s=0"]);
        resent.push(t.deadline);
    }
    panic!("the connect never gave up");
}

#[test]
fn test_syn_sent_retries_are_a_time_budget() {
    // tcp_syn_linear_timeouts: the first five resends 1 s apart as far as the budget allows, then
    // doubling; the count is a time budget (tcp_model_timeout) checked when the next timer fires.
    let cases: [(u8, &[u64], u64); 4] = [
        (1, &[1, 2], 3),
        (2, &[1, 2, 3, 4, 5], 7),
        (3, &[1, 2, 3, 4, 5, 7, 11], 19),
        (6, &[1, 2, 3, 4, 5, 7, 11, 19, 35, 67], 131),
    ];
    for (retries, resends, give_up) in cases {
        let c = Config {
            syn_retries: retries,
            ..cfg()
        };
        let (got, gave_up) = syn_schedule(&c);
        let secs: Vec<u64> = got.iter().map(|t| t / 1000).collect();
        assert_eq!(
            (secs.as_slice(), gave_up),
            (resends, give_up * 1000),
            "{retries} retries"
        );
    }
}

#[test]
fn test_syn_sent_rfc9293_backs_off_exponentially_and_counts() {
    // RFC 6298 §5.5: the timer doubles; the connect gives up at the timeout after the last of
    // `syn_retries` retransmissions.
    let c = Config {
        syn_retries: 3,
        ..rfc()
    };
    assert_eq!(syn_schedule(&c), (vec![1000, 3000, 7000], 15_000));
}

#[test]
fn test_syn_received_passive_gives_up_to_listen() {
    let mut ep = socket_syn_received();
    let times: Vec<u64> = run_timers(&mut ep, 100_000)
        .iter()
        .map(|(t, _)| t / 1000)
        .collect();
    // synack_retries = 5: 1, 3, 7, 15, 31 s, dropped at 63 s.
    assert_eq!(times, [1, 3, 7, 15, 31]);
    assert_eq!(ep.state(), State::Listen);
    assert_eq!(ep.timer(0), None);
}

#[test]
fn test_established_data_retransmits_with_backoff_then_gives_up() {
    let mut ep = socket_established();
    ep.send(&cfg(), 0, 100, &mut Recorder::default()).unwrap();
    let log = run_timers(&mut ep, 10_000_000);
    let times: Vec<u64> = log.iter().map(|(t, _)| *t).collect();
    // 200 ms doubling to the 120 s ceiling, 15 retransmissions (Linux tcp_retries2).
    let mut want = vec![];
    let (mut t, mut rto) = (0u64, 200u64);
    for _ in 0..15 {
        t += rto;
        want.push(t);
        rto = (rto * 2).min(120_000);
    }
    assert_eq!(times, want);
    assert!(log.iter().all(|(_, s)| s == "PSH|ACK s=1 a=1 len=100"));
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_orphaned_fin_gives_up_after_8_retransmissions() {
    // tcp_orphan_retries (0 acts as 8): the budget of 8 retransmissions from 200 ms is
    // 102.2 s (tcp_model_timeout); with a 200 ms RTO that is 8 resends, then CLOSED.
    let mut ep = socket_established();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    let log = run_timers(&mut ep, 10_000_000);
    let times: Vec<u64> = log.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [200, 600, 1400, 3000, 6200, 12_600, 25_400, 51_000]);
    assert!(log.iter().all(|(_, s)| s == "FIN|ACK s=1 a=1"));
    assert_eq!(ep.state(), State::Closed);
}

#[test]
fn test_shut_down_fin_goes_on_to_tcp_retries2() {
    // Only shut down, not orphaned: tcp_retries2 (15), a budget of 924.6 s.
    let mut ep = socket_established();
    ep.shutdown(&cfg(), 0, &mut Recorder::default()).unwrap();
    let mut rec = Recorder::default();
    let mut resent = 0;
    while let Some(t) = ep.timer(0) {
        rec = Recorder::default();
        ep.on_timeout(&cfg(), t.deadline, &mut rec);
        resent += rec.segments.len();
    }
    assert_eq!(resent, 15);
    assert_eq!(ep.state(), State::Closed);
    assert_eq!(rec.transitions[0].cause, Cause::RetransmitTimeout);
    // Under rfc9293 an orphan is not special: close() is a half-close with tcp_retries2.
    let c = rfc();
    let mut ep = fixture_in(&c, State::Established);
    ep.close(&c, 0, &mut Recorder::default()).unwrap();
    let mut resent = 0;
    while let Some(t) = ep.timer(0) {
        let mut rec = Recorder::default();
        ep.on_timeout(&c, t.deadline, &mut rec);
        resent += rec.segments.len();
    }
    assert_eq!((resent, ep.state()), (15, State::Closed));
}

#[test]
fn test_rto_is_linux_tcp_set_rto() {
    let mut ep = socket_syn_sent();
    assert_eq!(ep.rto_ms(&cfg()), 1000); // no sample yet
    drive(&mut ep, 300, peer(Flags::SYN | Flags::ACK, 0, 1, 0));
    // First sample R = 300 (tcp_rtt_estimator): SRTT = 300, mdev = 2R = 600, RTTVAR =
    // max(600, 200); RTO = SRTT + RTTVAR = 900 (RFC 6298 gives the same: 300 + 4·150).
    assert_eq!(ep.srtt(), Some(300));
    assert_eq!(ep.rto_ms(&cfg()), 900);
    let mut fast = socket_established(); // sample of 0 ms
    assert_eq!(fast.rto_ms(&cfg()), 200);
    fast.send(&cfg(), 0, 10, &mut Recorder::default()).unwrap();
    drive(&mut fast, 40, peer(Flags::ACK, 1, 11, 0));
    // R = 40: SRTT = 0 + 40/8 = 5, mdev = 0 + 40 = 40, RTTVAR stays at its 200 ms floor:
    // RTO = 205 (RFC 6298 would give max(200, 5 + 4·10) = 200).
    assert_eq!(fast.srtt(), Some(5));
    assert_eq!(fast.rto_ms(&cfg()), 205);
}

#[test]
fn test_rto_after_a_10ms_round_trip_is_210_then_doubles_to_420() {
    // The README's example: a 10 ms round trip gives RTO = 10 + max(2·10, 200) = 210 ms; the
    // first resend comes 210 ms after the send, the next 420 ms after that.
    let mut ep = socket_syn_sent();
    drive(&mut ep, 10, peer(Flags::SYN | Flags::ACK, 0, 1, 0));
    assert_eq!(ep.rto_ms(&cfg()), 210);
    ep.send(&cfg(), 10, 100, &mut Recorder::default()).unwrap();
    let times: Vec<u64> = run_timers(&mut ep, 1000).iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [220, 640]);
}

#[test]
fn test_rto_rfc9293_is_rfc_6298_with_a_1s_floor() {
    let c = rfc();
    let mut ep = Endpoint::new();
    ep.connect(&c, 0, SeqNum(ISS), &mut Recorder::default())
        .unwrap();
    assert_eq!(ep.rto_ms(&c), 1000);
    ep.on_segment(
        &c,
        3000,
        &peer(Flags::SYN | Flags::ACK, 0, 1, 0),
        &mut Recorder::default(),
    );
    // R = 3000: SRTT = 3000, RTTVAR = 1500, RTO = 3000 + 4·1500 = 9000.
    assert_eq!(ep.rto_ms(&c), 9000);
    let mut fast = Endpoint::new();
    fast.connect(&c, 0, SeqNum(ISS), &mut Recorder::default())
        .unwrap();
    fast.on_segment(
        &c,
        10,
        &peer(Flags::SYN | Flags::ACK, 0, 1, 0),
        &mut Recorder::default(),
    );
    // R = 10: 10 + 4·5 = 30, raised to the 1 s floor of RFC 6298 §2.4.
    assert_eq!(fast.rto_ms(&c), 1000);
}

#[test]
fn test_karn_no_sample_from_retransmitted_segment() {
    let mut ep = socket_established();
    ep.send(&cfg(), 0, 100, &mut Recorder::default()).unwrap();
    run_timers(&mut ep, 200); // one retransmission at 200 ms
    drive(&mut ep, 5000, peer(Flags::ACK, 1, 101, 0));
    assert_eq!(
        ep.srtt(),
        Some(0),
        "the 5 s round trip of a retransmitted segment is not sampled"
    );
}

#[test]
fn test_zero_window_is_probed() {
    let mut ep = socket_established();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 0).with_wnd(0));
    let mut rec = Recorder::default();
    ep.send(&cfg(), 0, 10, &mut rec).unwrap();
    assert!(rec.segments.is_empty());
    let probes = run_timers(&mut ep, 200);
    assert_eq!(probes, [(200, "ACK s=1 a=1 len=1".to_string())]);
    let more = drive(&mut ep, 250, peer(Flags::ACK, 1, 2, 0).with_wnd(1000));
    assert_eq!(more, ["PSH|ACK s=2 a=1 len=9"]);
}

#[test]
fn test_every_transition_is_reported_once_in_order() {
    let mut ep = socket_fin_wait_1();
    let mut rec = Recorder::default();
    ep.on_segment(&cfg(), 0, &peer(Flags::FIN | Flags::ACK, 1, 2, 0), &mut rec);
    let path: Vec<_> = rec.transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        [
            (State::FinWait1, State::FinWait2),
            (State::FinWait2, State::TimeWait)
        ]
    );
}

#[test]
fn test_sizes() {
    // Four-byte aligned, so that two make a 104-byte pair (see the pair's `test_sizes`).
    assert_eq!(std::mem::size_of::<Endpoint>(), 52);
    assert_eq!(std::mem::align_of::<Endpoint>(), 4);
}

impl Segment {
    fn with_wnd(mut self, wnd: u16) -> Segment {
        self.wnd = wnd;
        self
    }
}

/// A SYN with FIN to a listener: Linux discards it (`tcp_rcv_state_process`); RFC 9293 takes
/// the SYN, the FIN unprocessed in LISTEN.
#[test]
fn a_syn_with_fin_to_a_listener() {
    let syn_fin = Segment {
        seq: SeqNum(IRS),
        flags: Flags::SYN | Flags::FIN,
        wnd: 65535,
        ..Segment::default()
    };
    for (name, to, sent) in [
        (ProfileName::Linux, State::Listen, 0),
        (ProfileName::Rfc9293, State::SynReceived, 1),
    ] {
        let c = Config::for_profile(name);
        let mut ep = fixture_in(&c, State::Listen);
        let mut rec = Recorder::default();
        ep.on_segment(&c, 0, &syn_fin, &mut rec);
        assert_eq!((ep.state(), rec.segments.len()), (to, sent), "{name}");
    }
}

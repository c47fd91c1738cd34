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

fn socket_closed() -> Endpoint {
    Endpoint::new()
}

fn socket_listen() -> Endpoint {
    let mut ep = Endpoint::new();
    ep.listen(&cfg(), 0, SeqNum(ISS), &mut Recorder::default())
        .unwrap();
    ep
}

fn socket_syn_sent() -> Endpoint {
    let mut ep = Endpoint::new();
    ep.connect(&cfg(), 0, SeqNum(ISS), &mut Recorder::default())
        .unwrap();
    ep
}

fn socket_syn_received() -> Endpoint {
    let mut ep = socket_listen();
    drive(&mut ep, 0, peer(Flags::SYN, 0, 0, 0));
    ep
}

fn socket_established() -> Endpoint {
    let mut ep = socket_syn_received();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 1, 0));
    ep
}

fn socket_fin_wait_1() -> Endpoint {
    let mut ep = socket_established();
    ep.shutdown(&cfg(), 0, &mut Recorder::default()).unwrap();
    ep
}

fn socket_fin_wait_2() -> Endpoint {
    let mut ep = socket_fin_wait_1();
    drive(&mut ep, 0, peer(Flags::ACK, 1, 2, 0));
    ep
}

fn socket_close_wait() -> Endpoint {
    let mut ep = socket_established();
    drive(&mut ep, 0, peer(Flags::FIN | Flags::ACK, 1, 1, 0));
    ep
}

fn socket_closing() -> Endpoint {
    let mut ep = socket_fin_wait_1();
    drive(&mut ep, 0, peer(Flags::FIN | Flags::ACK, 1, 1, 0));
    ep
}

fn socket_last_ack() -> Endpoint {
    let mut ep = socket_close_wait();
    ep.close(&cfg(), 0, &mut Recorder::default()).unwrap();
    ep
}

fn socket_time_wait() -> Endpoint {
    let mut ep = socket_fin_wait_2();
    drive(&mut ep, 0, peer(Flags::FIN | Flags::ACK, 1, 2, 0));
    ep
}

fn fixture(state: State) -> Endpoint {
    let ep = match state {
        State::Closed => socket_closed(),
        State::Listen => socket_listen(),
        State::SynSent => socket_syn_sent(),
        State::SynReceived => socket_syn_received(),
        State::Established => socket_established(),
        State::FinWait1 => socket_fin_wait_1(),
        State::FinWait2 => socket_fin_wait_2(),
        State::CloseWait => socket_close_wait(),
        State::Closing => socket_closing(),
        State::LastAck => socket_last_ack(),
        State::TimeWait => socket_time_wait(),
    };
    assert_eq!(ep.state(), state, "fixture for {state}");
    ep
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

/// Applies `ev` at t = 0 (or at the deadline for `Timer`). `Err` for a refused user call.
fn apply(ep: &mut Endpoint, ev: Ev) -> Result<Vec<String>, Error> {
    let cfg = cfg();
    let mut rec = Recorder::default();
    let (s, a) = cursor(ep);
    let syn_s = if ep.state().is_synchronized() { s } else { 0 };
    let seg = match ev {
        Ev::UserListen => {
            return ep
                .listen(&cfg, 0, SeqNum(ISS), &mut rec)
                .map(|_| segs(&rec));
        }
        Ev::UserConnect => {
            return ep
                .connect(&cfg, 0, SeqNum(ISS), &mut rec)
                .map(|_| segs(&rec));
        }
        Ev::UserSend => return ep.send(&cfg, 0, 100, &mut rec).map(|_| segs(&rec)),
        Ev::UserShutdown => return ep.shutdown(&cfg, 0, &mut rec).map(|_| segs(&rec)),
        Ev::UserClose => return ep.close(&cfg, 0, &mut rec).map(|_| segs(&rec)),
        Ev::UserAbort => return ep.abort(&cfg, 0, &mut rec).map(|_| segs(&rec)),
        Ev::Timer => {
            if let Some(t) = ep.timer(0) {
                ep.on_timeout(&cfg, t.deadline, &mut rec);
            }
            return Ok(segs(&rec));
        }
        Ev::Syn => peer(Flags::SYN, syn_s, 0, 0),
        Ev::SynAck => peer(Flags::SYN | Flags::ACK, syn_s, a, 0),
        Ev::AckOk => peer(Flags::ACK, s, a, 0),
        Ev::AckBad => peer(Flags::ACK, s, a + 100, 0),
        Ev::Fin => peer(Flags::FIN, s, 0, 0),
        Ev::FinAck => peer(Flags::FIN | Flags::ACK, s, a, 0),
        Ev::RstExact => peer(Flags::RST, s, 0, 0),
        Ev::RstInWindow => peer(Flags::RST, s + 1000, 0, 0),
        Ev::RstOutOfWindow => peer(Flags::RST, s + 1_000_000, 0, 0),
        Ev::Data => peer(Flags::ACK | Flags::PSH, s, a, 100),
    };
    ep.on_segment(&cfg, 0, &seg, &mut rec);
    Ok(segs(&rec))
}

fn segs(rec: &Recorder) -> Vec<String> {
    rec.segments.iter().map(show).collect()
}

/// `None` for the next state means the call is refused and nothing changes.
type Row = (State, Ev, Option<State>, &'static [&'static str]);

use Ev::*;
use State::*;

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // ---- CLOSED: §3.10.7.1, a reset for anything but a reset --------------------------------
    (Closed, UserListen,         Some(Listen),      &[]),
    (Closed, UserConnect,        Some(SynSent),     &["SYN s=0"]),
    (Closed, UserSend,           None,              &[]),
    (Closed, UserShutdown,       None,              &[]),
    (Closed, UserClose,          None,              &[]),
    (Closed, UserAbort,          None,              &[]),
    (Closed, Syn,            Some(Closed),      &["RST|ACK s=-1000 a=1"]),
    (Closed, SynAck,         Some(Closed),      &["RST s=1"]),
    (Closed, AckOk,          Some(Closed),      &["RST s=1"]),
    (Closed, AckBad,         Some(Closed),      &["RST s=101"]),
    (Closed, Fin,            Some(Closed),      &["RST|ACK s=-1000 a=2"]),
    (Closed, FinAck,         Some(Closed),      &["RST s=1"]),
    (Closed, RstExact,       Some(Closed),      &[]),
    (Closed, RstInWindow,    Some(Closed),      &[]),
    (Closed, RstOutOfWindow, Some(Closed),      &[]),
    (Closed, Data,           Some(Closed),      &["RST s=1"]),
    (Closed, Timer,          Some(Closed),      &[]),
    // ---- LISTEN: §3.10.7.2 -------------------------------------------------------------------
    (Listen, UserListen,         None,              &[]),
    (Listen, UserConnect,        None,              &[]),
    (Listen, UserSend,           None,              &[]),
    (Listen, UserShutdown,       Some(Closed),      &[]),
    (Listen, UserClose,          Some(Closed),      &[]),
    (Listen, UserAbort,          Some(Closed),      &[]),
    (Listen, Syn,            Some(SynReceived), &["SYN|ACK s=0 a=1"]),
    (Listen, SynAck,         Some(Listen),      &["RST s=1"]),
    (Listen, AckOk,          Some(Listen),      &["RST s=1"]),
    (Listen, AckBad,         Some(Listen),      &["RST s=101"]),
    (Listen, Fin,            Some(Listen),      &[]),
    (Listen, FinAck,         Some(Listen),      &["RST s=1"]),
    (Listen, RstExact,       Some(Listen),      &[]),
    (Listen, RstInWindow,    Some(Listen),      &[]),
    (Listen, RstOutOfWindow, Some(Listen),      &[]),
    (Listen, Data,           Some(Listen),      &["RST s=1"]),
    (Listen, Timer,          Some(Listen),      &[]),
    // ---- SYN-SENT: §3.10.7.3 -----------------------------------------------------------------
    (SynSent, UserListen,        None,              &[]),
    (SynSent, UserConnect,       None,              &[]),
    (SynSent, UserSend,          Some(SynSent),     &[]),            // queued until ESTABLISHED
    (SynSent, UserShutdown,      Some(Closed),      &[]),
    (SynSent, UserClose,         Some(Closed),      &[]),
    (SynSent, UserAbort,         Some(Closed),      &[]),            // Linux: no RST from SYN-SENT
    (SynSent, Syn,           Some(SynReceived), &["SYN|ACK s=0 a=1"]), // simultaneous open
    (SynSent, SynAck,        Some(Established), &["ACK s=1 a=1"]),
    (SynSent, AckOk,         Some(SynSent),     &[]),            // neither SYN nor RST: drop
    (SynSent, AckBad,        Some(SynSent),     &["RST s=101"]), // <SEQ=SEG.ACK><CTL=RST>
    (SynSent, Fin,           Some(SynSent),     &[]),
    (SynSent, FinAck,        Some(SynSent),     &[]),
    (SynSent, RstExact,      Some(SynSent),     &[]),            // RST without ACK: drop
    (SynSent, RstInWindow,   Some(SynSent),     &[]),
    (SynSent, RstOutOfWindow,Some(SynSent),     &[]),
    (SynSent, Data,          Some(SynSent),     &[]),
    (SynSent, Timer,         Some(SynSent),     &["SYN s=0"]),   // retransmission after 1 s
    // ---- SYN-RECEIVED (passive) --------------------------------------------------------------
    (SynReceived, UserListen,    None,              &[]),
    (SynReceived, UserConnect,   None,              &[]),
    (SynReceived, UserSend,      Some(SynReceived), &[]),            // queued until ESTABLISHED
    (SynReceived, UserShutdown,  Some(FinWait1),    &[]),            // FIN waits for the SYN's ACK
    (SynReceived, UserClose,     Some(FinWait1),    &[]),
    (SynReceived, UserAbort,     Some(Closed),      &["RST|ACK s=1 a=1"]),
    (SynReceived, Syn,       Some(SynReceived), &["ACK s=1 a=1"]), // RFC 5961 §4 challenge
    (SynReceived, SynAck,    Some(SynReceived), &["ACK s=1 a=1"]),
    (SynReceived, AckOk,     Some(Established), &[]),
    (SynReceived, AckBad,    Some(SynReceived), &["RST s=101"]),
    (SynReceived, Fin,       Some(SynReceived), &[]),            // no ACK bit: drop
    (SynReceived, FinAck,    Some(CloseWait),   &["ACK s=1 a=2"]),
    (SynReceived, RstExact,  Some(Listen),      &[]),            // passive: back to LISTEN
    (SynReceived, RstInWindow, Some(SynReceived), &["ACK s=1 a=1"]), // RFC 5961 §3 challenge
    (SynReceived, RstOutOfWindow, Some(SynReceived), &[]),
    (SynReceived, Data,      Some(Established), &["ACK s=1 a=101"]),
    (SynReceived, Timer,     Some(SynReceived), &["SYN|ACK s=0 a=1"]),
    // ---- ESTABLISHED ---------------------------------------------------------------------------
    (Established, UserListen,    None,              &[]),
    (Established, UserConnect,   None,              &[]),
    (Established, UserSend,      Some(Established), &["PSH|ACK s=1 a=1 len=100"]),
    (Established, UserShutdown,  Some(FinWait1),    &["FIN|ACK s=1 a=1"]),
    (Established, UserClose,     Some(FinWait1),    &["FIN|ACK s=1 a=1"]),
    (Established, UserAbort,     Some(Closed),      &["RST|ACK s=1 a=1"]),
    (Established, Syn,       Some(Established), &["ACK s=1 a=1"]), // RFC 5961 §4 challenge
    (Established, SynAck,    Some(Established), &["ACK s=1 a=1"]),
    (Established, AckOk,     Some(Established), &[]),
    (Established, AckBad,    Some(Established), &["ACK s=1 a=1"]), // acks unsent data
    (Established, Fin,       Some(Established), &[]),
    (Established, FinAck,    Some(CloseWait),   &["ACK s=1 a=2"]),
    (Established, RstExact,  Some(Closed),      &[]),
    (Established, RstInWindow, Some(Established), &["ACK s=1 a=1"]),
    (Established, RstOutOfWindow, Some(Established), &[]),
    (Established, Data,      Some(Established), &["ACK s=1 a=101"]),
    (Established, Timer,     Some(Established), &[]),
    // ---- FIN-WAIT-1: our FIN (s=1) is unacknowledged; RTO is 200 ms (an RTT sample of 0) --------
    (FinWait1, UserListen,       None,              &[]),
    (FinWait1, UserConnect,      None,              &[]),
    (FinWait1, UserSend,         None,              &[]),
    (FinWait1, UserShutdown,     None,              &[]),
    (FinWait1, UserClose,        Some(FinWait1),    &[]),            // now orphaned
    (FinWait1, UserAbort,        Some(Closed),      &["RST|ACK s=2 a=1"]),
    (FinWait1, Syn,          Some(FinWait1),    &["ACK s=2 a=1"]),
    (FinWait1, SynAck,       Some(FinWait1),    &["ACK s=2 a=1"]),
    (FinWait1, AckOk,        Some(FinWait2),    &[]),
    (FinWait1, AckBad,       Some(FinWait1),    &["ACK s=2 a=1"]),
    (FinWait1, Fin,          Some(FinWait1),    &[]),
    (FinWait1, FinAck,       Some(TimeWait),    &["ACK s=2 a=2"]), // FIN and its ACK together
    (FinWait1, RstExact,     Some(Closed),      &[]),
    (FinWait1, RstInWindow,  Some(FinWait1),    &["ACK s=2 a=1"]),
    (FinWait1, RstOutOfWindow, Some(FinWait1),  &[]),
    (FinWait1, Data,         Some(FinWait2),    &["ACK s=2 a=101"]), // still receiving
    (FinWait1, Timer,        Some(FinWait1),    &["FIN|ACK s=1 a=1"]),
    // ---- FIN-WAIT-2 (shut down, not closed: no timer) -----------------------------------------
    (FinWait2, UserListen,       None,              &[]),
    (FinWait2, UserConnect,      None,              &[]),
    (FinWait2, UserSend,         None,              &[]),
    (FinWait2, UserShutdown,     None,              &[]),
    (FinWait2, UserClose,        Some(FinWait2),    &[]),            // orphaned: tcp_fin_timeout armed
    (FinWait2, UserAbort,        Some(Closed),      &["RST|ACK s=2 a=1"]),
    (FinWait2, Syn,          Some(FinWait2),    &["ACK s=2 a=1"]),
    (FinWait2, SynAck,       Some(FinWait2),    &["ACK s=2 a=1"]),
    (FinWait2, AckOk,        Some(FinWait2),    &[]),
    (FinWait2, AckBad,       Some(FinWait2),    &["ACK s=2 a=1"]),
    (FinWait2, Fin,          Some(FinWait2),    &[]),
    (FinWait2, FinAck,       Some(TimeWait),    &["ACK s=2 a=2"]),
    (FinWait2, RstExact,     Some(Closed),      &[]),
    (FinWait2, RstInWindow,  Some(FinWait2),    &["ACK s=2 a=1"]),
    (FinWait2, RstOutOfWindow, Some(FinWait2),  &[]),
    (FinWait2, Data,         Some(FinWait2),    &["ACK s=2 a=101"]),
    (FinWait2, Timer,        Some(FinWait2),    &[]),
    // ---- CLOSE-WAIT: the peer's FIN (s=1) is in, RCV.NXT = 2 ---------------------------------
    (CloseWait, UserListen,      None,              &[]),
    (CloseWait, UserConnect,     None,              &[]),
    (CloseWait, UserSend,        Some(CloseWait),   &["PSH|ACK s=1 a=2 len=100"]),
    (CloseWait, UserShutdown,    Some(LastAck),     &["FIN|ACK s=1 a=2"]),
    (CloseWait, UserClose,       Some(LastAck),     &["FIN|ACK s=1 a=2"]),
    (CloseWait, UserAbort,       Some(Closed),      &["RST|ACK s=1 a=2"]),
    (CloseWait, Syn,         Some(CloseWait),   &["ACK s=1 a=2"]),
    (CloseWait, SynAck,      Some(CloseWait),   &["ACK s=1 a=2"]),
    (CloseWait, AckOk,       Some(CloseWait),   &[]),
    (CloseWait, AckBad,      Some(CloseWait),   &["ACK s=1 a=2"]),
    (CloseWait, Fin,         Some(CloseWait),   &[]),
    (CloseWait, FinAck,      Some(CloseWait),   &[]),            // a second FIN: remain (Linux drops)
    (CloseWait, RstExact,    Some(Closed),      &[]),
    (CloseWait, RstInWindow, Some(CloseWait),   &["ACK s=1 a=2"]),
    (CloseWait, RstOutOfWindow, Some(CloseWait), &[]),
    (CloseWait, Data,        Some(CloseWait),   &[]),            // text after FIN: ignored
    (CloseWait, Timer,       Some(CloseWait),   &[]),
    // ---- CLOSING: FINs crossed; ours (s=1) unacknowledged ------------------------------------
    (Closing, UserListen,        None,              &[]),
    (Closing, UserConnect,       None,              &[]),
    (Closing, UserSend,          None,              &[]),
    (Closing, UserShutdown,      None,              &[]),
    (Closing, UserClose,         Some(Closing),     &[]),
    (Closing, UserAbort,         Some(Closed),      &[]),            // RFC and Linux: no RST here
    (Closing, Syn,           Some(Closing),     &["ACK s=2 a=2"]),
    (Closing, SynAck,        Some(Closing),     &["ACK s=2 a=2"]),
    (Closing, AckOk,         Some(TimeWait),    &[]),
    (Closing, AckBad,        Some(Closing),     &["ACK s=2 a=2"]),
    (Closing, Fin,           Some(Closing),     &[]),
    (Closing, FinAck,        Some(TimeWait),    &[]),
    (Closing, RstExact,      Some(Closed),      &[]),
    (Closing, RstInWindow,   Some(Closing),     &["ACK s=2 a=2"]),
    (Closing, RstOutOfWindow, Some(Closing),    &[]),
    (Closing, Data,          Some(TimeWait),    &[]),            // its ACK acks our FIN
    (Closing, Timer,         Some(Closing),     &["FIN|ACK s=1 a=2"]),
    // ---- LAST-ACK: our FIN (s=1) unacknowledged, closed by the user --------------------------
    (LastAck, UserListen,        None,              &[]),
    (LastAck, UserConnect,       None,              &[]),
    (LastAck, UserSend,          None,              &[]),
    (LastAck, UserShutdown,      None,              &[]),
    (LastAck, UserClose,         None,              &[]),            // closed already
    (LastAck, UserAbort,         Some(Closed),      &[]),
    (LastAck, Syn,           Some(LastAck),     &["ACK s=2 a=2"]),
    (LastAck, SynAck,        Some(LastAck),     &["ACK s=2 a=2"]),
    (LastAck, AckOk,         Some(Closed),      &[]),
    (LastAck, AckBad,        Some(LastAck),     &["ACK s=2 a=2"]),
    (LastAck, Fin,           Some(LastAck),     &[]),
    (LastAck, FinAck,        Some(Closed),      &[]),
    (LastAck, RstExact,      Some(Closed),      &[]),
    (LastAck, RstInWindow,   Some(LastAck),     &["ACK s=2 a=2"]),
    (LastAck, RstOutOfWindow, Some(LastAck),    &[]),
    (LastAck, Data,          Some(Closed),      &[]),
    (LastAck, Timer,         Some(LastAck),     &["FIN|ACK s=1 a=2"]),
    // ---- TIME-WAIT: Linux's tcp_timewait_state_process ----------------------------------------
    (TimeWait, UserListen,       None,              &[]),
    (TimeWait, UserConnect,      None,              &[]),
    (TimeWait, UserSend,         None,              &[]),
    (TimeWait, UserShutdown,     None,              &[]),
    (TimeWait, UserClose,        Some(TimeWait),    &[]),
    (TimeWait, UserAbort,        Some(Closed),      &[]),
    (TimeWait, Syn,          Some(TimeWait),    &["ACK s=2 a=2"]), // not a newer ISN: ACK
    (TimeWait, SynAck,       Some(TimeWait),    &["ACK s=2 a=2"]),
    (TimeWait, AckOk,        Some(TimeWait),    &[]),            // bare ACK at RCV.NXT
    (TimeWait, AckBad,       Some(TimeWait),    &[]),
    (TimeWait, Fin,          Some(TimeWait),    &["ACK s=2 a=2"]),
    (TimeWait, FinAck,       Some(TimeWait),    &["ACK s=2 a=2"]),
    (TimeWait, RstExact,     Some(Closed),      &[]),            // RFC 1337 assassination (Linux)
    (TimeWait, RstInWindow,  Some(TimeWait),    &[]),
    (TimeWait, RstOutOfWindow, Some(TimeWait),  &[]),
    (TimeWait, Data,         Some(TimeWait),    &["ACK s=2 a=2"]),
    (TimeWait, Timer,        Some(Closed),      &[]),            // 2·MSL
];

#[test]
fn test_transition_table_covers_every_cell() {
    let events = [
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
    for state in State::ALL {
        for ev in events {
            let n = TABLE.iter().filter(|r| r.0 == state && r.1 == ev).count();
            assert_eq!(n, 1, "({state}, {ev:?}) has {n} rows");
        }
    }
}

#[test]
fn test_transition_table() {
    let mut failures = vec![];
    for &(state, ev, next, emitted) in TABLE {
        let mut ep = fixture(state);
        let before = ep.clone();
        let result = apply(&mut ep, ev);
        let want: Vec<String> = emitted.iter().map(|s| s.to_string()).collect();
        match (next, result) {
            (None, Err(Error::InvalidInState { state: s, .. })) => {
                if s != state || ep != before {
                    failures.push(format!(
                        "({state}, {ev:?}): refusal changed the endpoint or named {s}"
                    ));
                }
            }
            (Some(to), Ok(got)) => {
                if ep.state() != to || got != want {
                    failures.push(format!(
                        "({state}, {ev:?}): want {to} {want:?}, got {} {got:?}",
                        ep.state()
                    ));
                }
                if ep.snd_una() > ep.snd_nxt() {
                    failures.push(format!("({state}, {ev:?}): SND.UNA > SND.NXT"));
                }
            }
            (want, got) => failures.push(format!("({state}, {ev:?}): want {want:?}, got {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
        assert_eq!((secs.as_slice(), gave_up), (resends, give_up * 1000), "{retries} retries");
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
    assert!(
        std::mem::size_of::<Endpoint>() <= 48,
        "Endpoint is {} bytes",
        std::mem::size_of::<Endpoint>()
    );
}

impl Segment {
    fn with_wnd(mut self, wnd: u16) -> Segment {
        self.wnd = wnd;
        self
    }
}

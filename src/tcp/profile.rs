//! Where tcpsim follows Linux rather than a plain reading of RFC 9293: one switch per deviation,
//! each named for what it changes and documented with the kernel function it mirrors.
//!
//! `linux` (the default) is what the conformance recordings check. `rfc9293` turns every switch
//! off, and its settings (`Config::for_profile`) take the RFC's values where Linux's differ:
//! RFC 6298 timers with a 1 s floor, TIME-WAIT = 2·MSL with MSL = 2 min, no linear SYN
//! timeouts. RFC 5961's challenge ACKs, which RFC 9293 describes as an option, are a switch of
//! their own: on in `linux`, off in `rfc9293` unless asked for.
//!
//! The endpoint reads these switches and nothing else decides between the two readings: a
//! deviation that is not here is a bug.

use std::fmt;

/// Which reading of TCP a set of switches started from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    /// The Linux kernel's TCP (6.x, the conformance recordings' kernel).
    Linux,
    /// A plain reading of RFC 9293, with RFC 6298's timers.
    Rfc9293,
}

impl ProfileName {
    pub const ALL: [ProfileName; 2] = [ProfileName::Linux, ProfileName::Rfc9293];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Linux => "linux",
            ProfileName::Rfc9293 => "rfc9293",
        }
    }

    /// Parses `linux` or `rfc9293` (any case).
    pub fn parse(s: &str) -> Option<ProfileName> {
        ProfileName::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One switch per place where Linux departs from RFC 9293. `true` follows Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub name: ProfileName,
    /// `tcp_rtt_estimator` and `tcp_set_rto`: RTO = SRTT + RTTVAR, where RTTVAR is the largest
    /// mean deviation (×4) of the last round trip but never under `rto_min_ms`, and decays by a
    /// quarter per round. The first sample R gives SRTT + max(2R, 200 ms): 210 ms for a 10 ms
    /// round trip. Off: RFC 6298 §2, RTO = max(`rto_min_ms`, SRTT + max(G, 4·RTTVAR)).
    pub rtt_estimator: bool,
    /// `tcp_write_timeout`, `retransmits_timed_out`, `tcp_model_timeout`: a retry count is a time
    /// budget, the time an exponential schedule of that many retransmissions from the initial
    /// RTO would take, checked when the next timer fires. SYN-SENT also stops after
    /// `syn_retries` + `syn_linear_timeouts` retransmissions. Off: the count of retransmissions.
    pub model_timeout: bool,
    /// `tcp_rcv_synsent_state_process`: after an unacceptable ACK in SYN-SENT (answered with RST,
    /// or an RST ignored), the SYN timer is re-armed to fire at once if the SYN was never
    /// retransmitted (`TCP_TIMEOUT_MIN`). Off: the SYN waits for its timer.
    pub syn_sent_bad_ack_resend: bool,
    /// RFC 5961 §3 and §4 (`tcp_validate_incoming`): an RST inside the window but not at RCV.NXT,
    /// and a SYN in a synchronized state, get a challenge ACK. Off: RFC 9293's own text, an RST
    /// in the window resets and a SYN in the window is answered with RST and resets.
    pub rfc5961: bool,
    /// `tcp_check_req`, a passive open's SYN-RECEIVED (a request sock): the peer's SYN again
    /// (SEG.SEQ = IRS) gets the SYN-ACK again and restarts the timer; an ACK other than ISS + 1
    /// gets RST <SEQ=SEG.ACK> before the sequence number is even looked at; an RST or SYN in the
    /// window ends the half-open connection (a SYN with RST), with no challenge ACK. Off: the
    /// checks of the synchronized states, in RFC 9293's order.
    pub check_req: bool,
    /// `tcp_sequence`: a segment is acceptable if it does not end before RCV.NXT and does not
    /// start past the window, so one that ends exactly at RCV.NXT (a duplicate, an old FIN) is
    /// still taken for its ACK. Off: RFC 9293's test, on its first and last octet.
    pub tcp_sequence: bool,
    /// `tcp_reset_check`: after the peer's FIN, an RST at RCV.NXT − 1 resets too. Off: only at
    /// RCV.NXT (in the window, without RFC 5961).
    pub reset_check: bool,
    /// `tcp_oow_rate_limited` (`tcp_invalid_ratelimit`): the ACK for an unacceptable segment, a
    /// challenge ACK, or an ACK from TIME-WAIT goes out at most once per `invalid_ratelimit_ms`
    /// per connection; segments with data and no SYN are never limited. Off: each gets its ACK.
    pub oow_rate_limit: bool,
    /// `tcp_nagle_check` with Minshall's `tcp_minshall_check`: a sub-MSS segment waits while an
    /// earlier sub-MSS segment is unacknowledged. Off: RFC 1122's Nagle, while anything is.
    /// Either way `nodelay` turns Nagle off.
    pub minshall: bool,
    /// `tcp_close` on a socket already reset: the application releasing a dead socket, nothing on
    /// the wire and no error (EXTERNAL endpoints; a pair refuses a second close). Off: RFC 9293's
    /// "connection does not exist".
    pub close_after_reset: bool,
    /// `tcp_validate_incoming` and `tcp_data_queue`: in a simultaneous open, the peer's SYN-ACK
    /// arriving in SYN-RECEIVED (SEG.SEQ = IRS) acknowledges our SYN: ESTABLISHED, answered with
    /// a bare ACK. Off: it is outside the window and gets an ACK (RFC 9293 §3.10.7.4, first
    /// check), though the RFC's figure 8 draws it as Linux does.
    pub simultaneous_open_syn_ack: bool,
    /// `tcp_rcv_state_process` with `RCV_SHUTDOWN`: once the receive side is shut, by close() in
    /// FIN-WAIT-1 or FIN-WAIT-2, or by the peer's FIN in CLOSE-WAIT, CLOSING or LAST-ACK (for a
    /// segment starting before RCV.NXT), new data or a FIN behind a gap is answered with RST
    /// <SEQ=SEG.ACK> and the connection is gone. Off: CLOSE is RFC 9293's half-close, the
    /// endpoint keeps receiving, and text after the peer's FIN is ignored.
    pub rst_on_data_after_close: bool,
    /// `tcp_fin_timeout` (`tcp_time_wait(sk, TCP_FIN_WAIT2, …)`): an orphaned FIN-WAIT-2 is a
    /// timewait sock, dropped after `fin_timeout_ms`, that answers a SYN with RST. Off: it waits
    /// for the peer's FIN like any FIN-WAIT-2.
    pub orphan_fin_timeout: bool,
    /// `tcp_orphan_retries`: an orphaned connection whose data or FIN is not acknowledged gives
    /// up after `orphan_retries` retransmissions (0 acts as 8) instead of `data_retries`.
    pub orphan_retries: bool,
    /// `tcp_send_active_reset`: abort's RST carries ACK = RCV.NXT. Off: <SEQ=SND.NXT><CTL=RST>
    /// (RFC 9293 §3.10.5). The states that send one are the same in both.
    pub abort_rst_ack: bool,
    /// Linux sends no FIN before our SYN is acknowledged: a close in SYN-RECEIVED enters
    /// FIN-WAIT-1 and the FIN follows the ACK of the SYN. Off: RFC 9293 §3.10.4, the FIN is sent
    /// at once if no data is queued.
    pub fin_after_syn_acked: bool,
    /// `tcp_timewait_state_process`: TIME-WAIT answers anything but an RST with an ACK (and
    /// restarts its timer if it carried one), an RST at RCV.NXT ends it, and a SYN above RCV.NXT
    /// on a passive endpoint starts a new connection (`TCP_TW_SYN`, ISS = old SND.NXT + 65537).
    /// Off: RFC 9293's checks as in the other synchronized states.
    pub timewait_state_process: bool,
    /// `tcp_rcv_state_process`, LISTEN: a SYN that also carries FIN is discarded (`if (th->fin)
    /// goto discard`), as no real stack sends one. Off: RFC 9293 §3.10.7.2 takes the SYN (a FIN
    /// is not processed in LISTEN), and the connection opens.
    pub listen_syn_fin_discard: bool,
}

impl Profile {
    /// Linux's behaviour: every switch on.
    pub const LINUX: Profile = Profile {
        name: ProfileName::Linux,
        rtt_estimator: true,
        model_timeout: true,
        syn_sent_bad_ack_resend: true,
        rfc5961: true,
        check_req: true,
        tcp_sequence: true,
        reset_check: true,
        oow_rate_limit: true,
        minshall: true,
        close_after_reset: true,
        simultaneous_open_syn_ack: true,
        rst_on_data_after_close: true,
        orphan_fin_timeout: true,
        orphan_retries: true,
        abort_rst_ack: true,
        fin_after_syn_acked: true,
        timewait_state_process: true,
        listen_syn_fin_discard: true,
    };

    /// A plain reading of RFC 9293: every switch off.
    pub const RFC9293: Profile = Profile {
        name: ProfileName::Rfc9293,
        rtt_estimator: false,
        model_timeout: false,
        syn_sent_bad_ack_resend: false,
        rfc5961: false,
        check_req: false,
        tcp_sequence: false,
        reset_check: false,
        oow_rate_limit: false,
        minshall: false,
        close_after_reset: false,
        simultaneous_open_syn_ack: false,
        rst_on_data_after_close: false,
        orphan_fin_timeout: false,
        orphan_retries: false,
        abort_rst_ack: false,
        fin_after_syn_acked: false,
        timewait_state_process: false,
        listen_syn_fin_discard: false,
    };

    pub fn named(name: ProfileName) -> Profile {
        match name {
            ProfileName::Linux => Profile::LINUX,
            ProfileName::Rfc9293 => Profile::RFC9293,
        }
    }
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::LINUX
    }
}

//! SEGMENT ARRIVES (RFC 9293 §3.10.7): what an endpoint does with a segment from its peer, state
//! by state, in Linux's order of checks where the profile follows Linux: `tcp_check_req` for a
//! passive open's SYN-RECEIVED, `tcp_validate_incoming` and `tcp_rcv_state_process` for the
//! synchronized states, `tcp_timewait_state_process` for TIME-WAIT and an orphaned FIN-WAIT-2.
//!
//! Must never send more than one ACK per out-of-window segment, and (where the profile rate-limits
//! them, Linux's `tcp_invalid_ratelimit`) at most one per `invalid_ratelimit_ms` for the
//! segments Linux limits.

use super::*;

impl Endpoint {
    /// A segment from the peer arrives.
    ///
    /// Inlined whole, with each state's part below, into the AUTO pump, the core's hottest loop.
    /// Left to the compiler, it stopped doing so once links gave the pair driver more paths: the
    /// AUTO lifecycle went from 152 to 172 ns. (Two parts have a second caller, each also inlined
    /// there: `synchronized_arrives` in `check_req`, `listen_arrives` in TIME-WAIT; all of it
    /// is 14 KB of machine code.)
    #[inline(always)]
    pub fn on_segment(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        let p = &cfg.profile;
        match self.state {
            State::Closed => Self::send_reset_for(seg, out),
            State::Listen => self.listen_arrives(cfg, now, seg, out),
            State::SynSent => self.syn_sent_arrives(cfg, now, seg, out),
            State::SynReceived if p.check_req && self.has(PASSIVE) => {
                self.check_req(cfg, now, seg, out)
            }
            State::TimeWait if p.timewait_state_process => {
                self.time_wait_arrives(cfg, now, seg, out)
            }
            State::FinWait2 if p.orphan_fin_timeout && self.has(ORPHANED) => {
                self.fin_wait_2_timewait_arrives(cfg, now, seg, out)
            }
            _ => self.synchronized_arrives(cfg, now, seg, out),
        }
    }

    /// §3.10.7.2.
    #[inline(always)]
    fn listen_arrives(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        if seg.has(Flags::RST) {
            return;
        }
        if seg.has(Flags::ACK) {
            if !seg.has(Flags::SYN) && self.has(COOKIE_SENT) {
                if self.cookie_valid(now, seg) {
                    // Linux `cookie_v4_check`: the socket is made from the ACK; if the accept
                    // queue has no room, the ACK is dropped whatever `tcp_abort_on_overflow` says.
                    if out.syn_recv_sock(true) == ChildVerdict::Accept {
                        self.cookie_child(cfg, now, seg, out);
                    }
                    return;
                }
                out.cookie_failed();
            }
            Self::send_reset_for(seg, out);
            return;
        }
        if !seg.has(Flags::SYN) {
            return;
        }
        if seg.has(Flags::FIN) && cfg.profile.listen_syn_fin_discard {
            return;
        }
        match out.conn_request() {
            SynVerdict::Drop => {}
            SynVerdict::Cookie => {
                // <SEQ=cookie><ACK=RCV.NXT><CTL=SYN,ACK>, and LISTEN stays LISTEN. The cookie is
                // this endpoint's ISS; what the kernel would read back from it is kept here.
                self.take_syn(cfg, seg);
                self.snd_una = self.iss;
                self.snd_nxt = self.iss + 1;
                self.rtt_start = now as u32;
                self.set(COOKIE_SENT);
                self.send_syn(cfg, true, out);
            }
            SynVerdict::Queue => {
                self.clear(COOKIE_SENT);
                self.take_syn(cfg, seg);
                self.snd_una = self.iss;
                self.snd_nxt = self.iss + 1;
                self.start_rtt(now);
                self.arm(now + u64::from(cfg.rto_initial_ms));
                self.send_syn(cfg, true, out);
                self.set_state(cfg, now, State::SynReceived, Cause::SynReceived, out);
            }
        }
    }

    /// Whether an ACK answers the cookie this listener sent (Linux `__cookie_v4_check`): it
    /// acknowledges the cookie, follows the SYN it answered, and comes while the cookie's minute
    /// counter (`tcp_cookie_time`, minutes of the clock) is at most one behind.
    fn cookie_valid(&self, now: u64, seg: &Segment) -> bool {
        const MINUTE_MS: u64 = 60_000;
        let sent = now - u64::from((now as u32).wrapping_sub(self.rtt_start)).min(now);
        seg.ack == self.iss + 1 && seg.seq == self.irs + 1 && now / MINUTE_MS - sent / MINUTE_MS < 2
    }

    /// The socket a valid cookie makes (Linux `tcp_get_cookie_sock`): ESTABLISHED at once, with no
    /// RTT sample (nothing was timed), then the ACK's text and FIN as in ESTABLISHED.
    fn cookie_child(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        self.clear(COOKIE_SENT);
        self.last_oow = 0;
        self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
        self.set_state(cfg, now, State::Established, Cause::SynCookie, out);
        self.accept_text_and_fin(cfg, now, seg, out);
    }

    /// The peer's SYN: IRS, RCV.NXT, its window and MSS.
    fn take_syn(&mut self, cfg: &Config, seg: &Segment) {
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.snd_wnd = seg.wnd;
        self.max_wnd = seg.wnd;
        self.mss = cfg
            .mss
            .min(seg.mss.map_or(DEFAULT_PEER_MSS, NonZeroU16::get));
        self.retries = 0;
    }

    /// §3.10.7.3.
    #[inline(always)]
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
            // `rtt_start` in SYN-SENT: when the first SYN went out.
            out.connected(u64::from((now as u32).wrapping_sub(self.rtt_start)));
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

    /// A passive open's SYN-RECEIVED as Linux's request sock checks a segment (`tcp_check_req`):
    /// a retransmitted SYN first, then the ACK before the sequence number, and an RST or SYN in
    /// the window ends the half-open connection (no RFC 5961 challenge). What passes completes
    /// the handshake in a new socket, which then takes the segment as SYN-RECEIVED does.
    #[inline(always)]
    fn check_req(&mut self, cfg: &Config, now: u64, seg: &Segment, out: &mut impl Output) {
        let (rst, ack) = (seg.has(Flags::RST), seg.has(Flags::ACK));
        if seg.has(Flags::SYN) && !rst && !ack && seg.seq == self.irs {
            // The peer's SYN again: our SYN-ACK was lost. Send it again (rate-limited) and
            // restart the timer at the current backoff.
            if !self.oow_limited(cfg, now, seg) {
                self.send_syn(cfg, true, out);
                let timeout = backoff(
                    cfg.rto_initial_ms.into(),
                    self.retries.into(),
                    cfg.rto_max_ms.into(),
                );
                self.arm(now + timeout);
            }
            return;
        }
        if ack && seg.ack != self.iss + 1 {
            Self::send_reset_for(seg, out); // <SEQ=SEG.ACK><CTL=RST>; the request stays
            return;
        }
        let end = seg.seq + seg.seg_len();
        let (lo, hi) = (self.rcv_nxt, self.rcv_nxt + u32::from(cfg.rcv_wnd));
        let in_window =
            seg.seq == lo || (end > lo && seg.seq < hi) || (seg.seq == hi && seg.seq == end);
        if !in_window {
            if !rst && !self.oow_limited(cfg, now, seg) {
                self.send_ack(cfg, out);
            }
            return;
        }
        // A SYN at IRS is the one already taken: only its other bits count.
        let syn = seg.has(Flags::SYN) && seg.seq != self.irs;
        if rst || syn {
            if syn {
                Self::send_reset_for(seg, out);
            }
            let cause = if rst {
                Cause::RstReceived
            } else {
                Cause::SynReceived
            };
            self.return_to_listen(cfg, now, cause, out);
            return;
        }
        if ack {
            match out.syn_recv_sock(false) {
                ChildVerdict::Accept => {
                    self.last_oow = 0; // the new socket's own
                    self.synchronized_arrives(cfg, now, seg, out);
                }
                // The peer believes it is connected; our SYN-ACKs go on, and the ACK each draws
                // tries again.
                ChildVerdict::Drop => {}
                ChildVerdict::Reset => {
                    Self::send_reset_for(seg, out);
                    self.return_to_listen(cfg, now, Cause::AcceptQueueOverflow, out);
                }
            }
        }
    }

    /// §3.10.7.4 for SYN-RECEIVED through LAST-ACK (and TIME-WAIT where the profile does not
    /// follow Linux's `tcp_timewait_state_process`).
    #[inline(always)]
    fn synchronized_arrives(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        out: &mut impl Output,
    ) {
        let p = &cfg.profile;
        let (syn, rst, ack) = (
            seg.has(Flags::SYN),
            seg.has(Flags::RST),
            seg.has(Flags::ACK),
        );
        // RFC 9293 without `tcp_check_req`: a retransmitted SYN in SYN-RECEIVED is outside the
        // window (below), and gets an ACK. Linux (tcp_validate_incoming): in a simultaneous open
        // the peer's SYN-ACK repeats the SYN we already took (SEG.SEQ = IRS), which the
        // acceptability test would refuse; it is the ACK of our SYN, so it establishes the
        // connection, as RFC 9293's figure 8 draws it. The SYN is old news to `tcp_data_queue`,
        // which acknowledges it at once: a bare ACK.
        if p.simultaneous_open_syn_ack
            && self.state == State::SynReceived
            && !self.has(PASSIVE)
            && syn
            && ack
            && !rst
            && seg.seq == self.irs
            && seg.len == 0
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
            if rst {
                if self.reset_check(cfg, seg) {
                    self.reset(cfg, now, Cause::RstReceived, out);
                }
            } else if syn && p.rfc5961 {
                self.challenge_ack(cfg, now, out); // Linux: tcp_validate_incoming's syn_challenge
            } else if !self.oow_limited(cfg, now, seg) {
                self.send_ack(cfg, out);
            }
            return;
        }

        // Second: RST. RFC 5961 §3: reset only at exactly RCV.NXT, else a challenge ACK.
        if rst {
            if !p.rfc5961 || seg.seq == self.rcv_nxt || self.reset_check(cfg, seg) {
                self.reset(cfg, now, Cause::RstReceived, out);
            } else {
                self.challenge_ack(cfg, now, out);
            }
            return;
        }

        // Fourth: SYN.
        if syn {
            if p.rfc5961 {
                // RFC 5961 §4: a challenge ACK, whatever its sequence number.
                self.challenge_ack(cfg, now, out);
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
        if !ack {
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
                // Acknowledges something not yet sent: an ACK, and the segment is dropped.
                self.challenge_ack(cfg, now, out);
                return;
            }
            if p.rfc5961 && self.too_old(seg.ack) {
                // RFC 5961 §5.2 (Linux `tcp_ack`): an ACK below what the peer could have seen
                // is blind injection; dropped, data and FIN too, with a challenge ACK.
                self.challenge_ack(cfg, now, out);
                return;
            }
            if self.snd_una < seg.ack {
                self.ack_advances(cfg, now, seg.ack, seg.wnd, out);
            } else if seg.ack == self.snd_una {
                self.update_window(seg.wnd);
            }
            let fin_acked = self.has(FIN_SENT) && self.snd_una == self.snd_nxt;
            if fin_acked {
                match self.state {
                    State::FinWait1 => {
                        self.set_state(cfg, now, State::FinWait2, Cause::AckReceived, out);
                        // An orphan is now Linux's timewait sock (`tcp_time_wait`), which takes
                        // no more than a FIN or new data (reset below) from this segment.
                        if self.has(ORPHANED)
                            && p.orphan_fin_timeout
                            && !seg.has(Flags::FIN)
                            && !self.beyond_rcv_nxt(seg)
                        {
                            return;
                        }
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

    /// Linux's `tcp_reset_check`: after the peer's FIN, an RST at RCV.NXT − 1 (the FIN's own
    /// sequence number) resets too, in or out of the window.
    fn reset_check(&self, cfg: &Config, seg: &Segment) -> bool {
        cfg.profile.reset_check
            && seg.seq + 1 == self.rcv_nxt
            && matches!(
                self.state,
                State::CloseWait | State::LastAck | State::Closing
            )
    }

    /// RFC 5961 §5.2 as Linux's `tcp_ack` applies it: SEG.ACK below SND.UNA by more than the
    /// peer can have seen (the smaller of the largest window it offered and the bytes it has
    /// acknowledged).
    fn too_old(&self, ack: SeqNum) -> bool {
        let acked = if self.has(ACKED_64K) {
            u32::MAX
        } else {
            self.bytes_acked()
        };
        let seen = acked.min(self.max_wnd.into());
        ack < SeqNum(self.snd_una.0.wrapping_sub(seen))
    }

    /// The segment's text or FIN reaches beyond RCV.NXT (Linux: `end_seq != seq` and
    /// `after(end_seq - fin, rcv_nxt)`): new data, or a FIN behind a gap.
    fn beyond_rcv_nxt(&self, seg: &Segment) -> bool {
        let text_end = seg.seq + u32::from(seg.has(Flags::SYN)) + u32::from(seg.len);
        seg.seg_len() > 0 && text_end > self.rcv_nxt
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
        // The receive side is shut (Linux `RCV_SHUTDOWN`): by close(), or by the peer's FIN, for
        // a segment that starts before RCV.NXT (one at or past it is ignored, as RFC 9293 says).
        // New data or a FIN behind a gap then resets (RFC 1122 §4.2.2.13; Linux
        // `tcp_rcv_state_process`).
        let rcv_shut = match self.state {
            State::FinWait1 | State::FinWait2 => self.has(ORPHANED),
            State::CloseWait | State::Closing | State::LastAck => seg.seq < self.rcv_nxt,
            _ => false,
        };
        if rcv_shut && cfg.profile.rst_on_data_after_close && self.beyond_rcv_nxt(seg) {
            Self::send_reset_for(seg, out);
            self.set_state(cfg, now, State::Closed, Cause::DataAfterClose, out);
            return false;
        }
        let mut need_ack = false;
        let mut in_order = true;
        if seg.len > 0 {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
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
            // A FIN behind a gap asks again for what is missing; an old one (Linux accepts a
            // segment that ends at RCV.NXT) is a duplicate to acknowledge.
            need_ack = true;
        }
        need_ack
    }

    /// The acceptability test (§3.10.7.4, first check). RFC 9293: the segment's first or last
    /// octet is in the window (SEG.LEN counts SYN and FIN). Linux (`tcp_sequence`): it does not
    /// end before RCV.NXT (the last window edge advertised, which is RCV.NXT here: every
    /// segment is acknowledged at once) and does not start past the window, so a segment that
    /// ends exactly at RCV.NXT, an old FIN or a duplicate, is still taken for its ACK.
    fn acceptable(&self, cfg: &Config, seg: &Segment) -> bool {
        let wnd = u32::from(cfg.rcv_wnd);
        let len = seg.seg_len();
        if cfg.profile.tcp_sequence {
            return seg.seq + len >= self.rcv_nxt && seg.seq <= self.rcv_nxt + wnd;
        }
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

    /// Whether an ACK for an unacceptable `seg` must be skipped (Linux `tcp_oow_rate_limited`):
    /// one went out less than `invalid_ratelimit_ms` ago. Segments with data or FIN and no SYN
    /// are never limited (they are not part of an ACK loop) and do not count. When not limited,
    /// the ACK about to go out is recorded.
    fn oow_limited(&mut self, cfg: &Config, now: u64, seg: &Segment) -> bool {
        if (seg.len > 0 || seg.has(Flags::FIN)) && !seg.has(Flags::SYN) {
            return false;
        }
        self.rate_limited(cfg, now)
    }

    /// A challenge ACK (RFC 5961 §3–§5; Linux `tcp_send_challenge_ack`), rate-limited like an
    /// out-of-window ACK whatever the segment carried.
    fn challenge_ack(&mut self, cfg: &Config, now: u64, out: &mut impl Output) {
        if !self.rate_limited(cfg, now) {
            self.send_ack(cfg, out);
        }
    }

    /// `__tcp_oow_rate_limited`: true if the last out-of-window ACK was sent less than
    /// `invalid_ratelimit_ms` ago; else records `now` and returns false.
    fn rate_limited(&mut self, cfg: &Config, now: u64) -> bool {
        if !cfg.profile.oow_rate_limit {
            return false;
        }
        if self.last_oow != 0 {
            let elapsed = (now as u32).wrapping_add(1).wrapping_sub(self.last_oow) as i32;
            if (0..i64::from(cfg.invalid_ratelimit_ms)).contains(&i64::from(elapsed)) {
                return true;
            }
        }
        self.last_oow = (now as u32).wrapping_add(1);
        false
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
            // takes the SYN, with Linux's ISS (the old SND.NXT + 65535 + 2, never 0).
            let iss = self.snd_nxt + (65535 + 2);
            let iss = if iss == SeqNum(0) { iss + 1 } else { iss };
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
            // A retransmitted FIN (or anything else): ACK again (rate-limited) and restart 2·MSL
            // if it carried an ACK.
            if seg.has(Flags::ACK) {
                self.arm(now + cfg.time_wait_ms());
            }
            if !self.oow_limited(cfg, now, seg) {
                self.send_ack(cfg, out);
            }
        }
    }

    /// An orphaned FIN-WAIT-2, which Linux keeps as a timewait sock (`tcp_timewait_state_process`,
    /// substate FIN-WAIT-2): it waits only for the peer's FIN. Out of the window: an ACK
    /// (rate-limited); an RST ends it; a SYN at or past RCV.NXT, new data, or anything but the FIN
    /// at RCV.NXT is answered with RST and ends it; a duplicate is ignored.
    fn fin_wait_2_timewait_arrives(
        &mut self,
        cfg: &Config,
        now: u64,
        seg: &Segment,
        out: &mut impl Output,
    ) {
        let end = seg.seq + seg.seg_len();
        let (lo, hi) = (self.rcv_nxt, self.rcv_nxt + u32::from(cfg.rcv_wnd));
        let in_window =
            seg.seq == lo || (end > lo && seg.seq < hi) || (seg.seq == hi && seg.seq == end);
        if !in_window {
            if !self.oow_limited(cfg, now, seg) {
                self.send_ack(cfg, out);
            }
            return;
        }
        if seg.has(Flags::RST) {
            self.set_state(cfg, now, State::Closed, Cause::RstReceived, out);
            return;
        }
        if seg.has(Flags::SYN) && seg.seq >= self.rcv_nxt {
            Self::send_reset_for(seg, out);
            self.set_state(cfg, now, State::Closed, Cause::RstReceived, out);
            return;
        }
        if !seg.has(Flags::ACK) || end <= self.rcv_nxt || seg.seg_len() == 0 {
            return; // a duplicate
        }
        if !seg.has(Flags::FIN) || end != self.rcv_nxt + 1 {
            Self::send_reset_for(seg, out);
            self.set_state(cfg, now, State::Closed, Cause::DataAfterClose, out);
            return;
        }
        self.rcv_nxt += 1;
        self.set_state(cfg, now, State::TimeWait, Cause::FinReceived, out);
        self.send_ack(cfg, out);
    }
}

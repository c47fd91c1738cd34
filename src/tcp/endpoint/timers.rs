//! The retransmission machinery of one endpoint: its one timer and what fires it (RFC 9293
//! §3.10.8: retransmission with backoff, the SYN and SYN-ACK schedules, TIME-WAIT, FIN-WAIT-2),
//! what an advancing ACK does to it, the RTT estimator and the RTO.

use super::*;

impl Endpoint {
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
        // Linux keeps the RTO in whole jiffies, rounded up (`usecs_to_jiffies`); off (0) by
        // default, and then no division on this path.
        let rto = match u64::from(cfg.jiffy_ms) {
            0 | 1 => rto,
            jiffy => rto.div_ceil(jiffy) * jiffy,
        };
        rto.min(u64::from(cfg.rto_max_ms))
    }

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
                // Linux's request sock (`inet_rtx_syn_ack`): a count, and no time budget; its
                // listener may cut the count short (`Output::reqsk_timeout`).
                let expire = if self.has(PASSIVE) {
                    out.reqsk_timeout(cfg.synack_retries, self.retries)
                } else {
                    self.retries >= cfg.syn_retries
                };
                if expire {
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
    pub(super) fn retries_exhausted(&self, cfg: &Config, now: u64) -> bool {
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
    pub(super) fn syn_timeout(&mut self, cfg: &Config, now: u64, out: &mut impl Output) {
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

    pub(super) fn give_up(&mut self, cfg: &Config, now: u64, out: &mut impl Output) {
        if self.state == State::SynReceived && self.has(PASSIVE) {
            self.return_to_listen(cfg, now, Cause::RetransmitTimeout, out);
        } else {
            self.set_state(cfg, now, State::Closed, Cause::RetransmitTimeout, out);
        }
    }

    pub(super) fn backed_off_rto(&self, cfg: &Config) -> u64 {
        backoff(self.rto_ms(cfg), self.retries.into(), cfg.rto_max_ms.into())
    }

    /// Resends the segment at SND.UNA (Linux resends the head of the retransmission queue), or
    /// probes a zero window with one byte. Counts a retry and stops RTT timing (Karn).
    pub(super) fn retransmit(&mut self, cfg: &Config, out: &mut impl Output) {
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

    pub(super) fn start_rtt(&mut self, now: u64) {
        self.rtt_start = now as u32;
        self.set(RTT_PENDING);
    }

    pub(super) fn start_rtt_if_idle(&mut self, now: u64) {
        if self.snd_una == self.snd_nxt && !self.has(RTT_PENDING) && !self.has(RECOVERY) {
            self.start_rtt(now);
        }
    }

    /// SND.UNA < SEG.ACK =< SND.NXT: new data acknowledged. Takes an RTT sample, clears the
    /// backoff, restarts or stops the retransmission timer, and in recovery resends the next
    /// unacknowledged segment.
    pub(super) fn ack_advances(
        &mut self,
        cfg: &Config,
        now: u64,
        ack: SeqNum,
        wnd: u16,
        out: &mut impl Output,
    ) {
        self.snd_una = ack;
        self.update_window(wnd);
        if !self.has(ACKED_64K) && self.bytes_acked() >= u32::from(u16::MAX) {
            self.set(ACKED_64K);
        }
        if self.has(RTT_PENDING) {
            self.clear(RTT_PENDING);
            self.rtt_sample(cfg, u64::from((now as u32).wrapping_sub(self.rtt_start)));
        }
        // A request sock's count tells its listener whether it was young as it leaves the SYN
        // queue (`Output::reqsk_removed`); the new socket clears it on entering ESTABLISHED.
        if self.request_sock().is_none() {
            self.retries = 0;
        }
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

    /// SND.WND from an acceptable ACK, and the largest window seen (Linux `max_window`).
    pub(super) fn update_window(&mut self, wnd: u16) {
        self.snd_wnd = wnd;
        self.max_wnd = self.max_wnd.max(wnd);
    }

    /// Linux's `bytes_acked`, while under 64 KiB (`ACKED_64K` says when it is past): our SYN
    /// counts for an active opener, whose `tcp_ack` takes the SYN-ACK, not for a passive one.
    pub(super) fn bytes_acked(&self) -> u32 {
        (self.snd_una - self.iss).saturating_sub(u32::from(self.has(PASSIVE)))
    }

    /// One RTT sample `r` (ms): Linux's `tcp_rtt_estimator`, or RFC 6298 §2.2–2.3.
    ///
    /// Linux keeps `mdev`, four times the mean deviation, and `rttvar`, the largest `mdev` of the
    /// last round trip but at least the RTO floor, which decays a quarter of the way toward that
    /// maximum when a round trip ends. One segment is timed at a time and timing starts only
    /// when nothing is outstanding, so every sample after the first ends a round trip.
    ///
    /// Inlined into its one caller: called, it reloads the flags its caller has just written,
    /// and that load waits on the store.
    #[inline]
    pub(super) fn rtt_sample(&mut self, cfg: &Config, r: u64) {
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
}

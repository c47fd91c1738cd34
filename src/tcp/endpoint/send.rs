//! What one endpoint puts on the wire: queued data as the peer's window and Nagle allow (with
//! Minshall's variant, as Linux), the FIN merged into the last data segment, SYNs, ACKs, and
//! resets for segments that have no connection.

use super::*;

impl Endpoint {
    /// Sends queued data as the peer's window and Nagle allow, and the FIN after the last byte
    /// (on the last data segment if that goes out with it, as Linux's `tcp_send_fin` merges it).
    /// Returns how many segments it sent. Most calls (every ACK that arrives) have nothing to
    /// send: they return here, inlined.
    #[inline(always)]
    pub(super) fn transmit(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> u32 {
        if self.unsent == 0 && (!self.has(FIN_QUEUED) || self.has(FIN_SENT)) {
            return 0;
        }
        self.transmit_queued(cfg, now, out)
    }

    pub(super) fn transmit_queued(&mut self, cfg: &Config, now: u64, out: &mut impl Output) -> u32 {
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
        loop {
            let fin = self.has(FIN_QUEUED) && !self.has(FIN_SENT);
            let mut len = self.unsent.min(self.mss.into());
            if len > 0 {
                let (in_flight, wnd) = (self.snd_nxt - self.snd_una, u32::from(self.snd_wnd));
                if in_flight >= wnd {
                    break;
                }
                len = len.min(wnd - in_flight);
                if self.nagle_holds(cfg, len) {
                    break;
                }
            } else if !fin {
                break;
            }
            let last = len == self.unsent;
            let mut flags = Flags::ACK;
            if last && len > 0 {
                flags |= Flags::PSH;
            }
            let with_fin = last && fin;
            if with_fin {
                flags |= Flags::FIN;
            }
            self.start_rtt_if_idle(now);
            out.segment(self.make(cfg, flags, self.snd_nxt, len));
            self.snd_nxt += len + u32::from(with_fin);
            self.unsent -= len;
            self.sent_new(len);
            sent += 1;
            if with_fin {
                self.set(FIN_SENT);
                break;
            }
        }
        // Arm the retransmission timer for what is in flight, or the persist timer when data
        // waits on a zero window (RFC 9293 §3.8.6.1).
        if !self.has(ARMED) && (self.snd_una != self.snd_nxt || self.unsent > 0) {
            self.arm(now + self.backed_off_rto(cfg));
        }
        sent
    }

    /// Nagle's algorithm (RFC 9293 §3.7.4): whether a sub-MSS segment that ends the queued data
    /// must wait. Linux (`tcp_nagle_check`, Minshall's variant) holds it while a small segment
    /// is unacknowledged; RFC 1122 while anything is. Never with no-delay, nor with a FIN
    /// queued to follow it.
    pub(super) fn nagle_holds(&self, cfg: &Config, len: u32) -> bool {
        let small_tail = len < u32::from(self.mss) && len == self.unsent;
        if cfg.nodelay || !small_tail || self.has(FIN_QUEUED) || self.snd_una == self.snd_nxt {
            return false;
        }
        !cfg.profile.minshall || self.small_unacked()
    }

    /// Linux's `tcp_minshall_check`: the last small segment sent is not yet acknowledged.
    pub(super) fn small_unacked(&self) -> bool {
        let count = self.bits >> SMALL_SHIFT;
        if count == SMALL_NONE {
            return false;
        }
        let sml = SeqNum(
            self.snd_nxt
                .0
                .wrapping_sub(u32::from(count) * u32::from(self.mss)),
        );
        sml > self.snd_una
    }

    /// Keeps Nagle's marker after new data (`len` bytes, maybe a FIN) went out: a sub-MSS
    /// segment is the new small one (`tcp_minshall_update`); a full one counts.
    pub(super) fn sent_new(&mut self, len: u32) {
        let count = self.bits >> SMALL_SHIFT;
        let count = if len < u32::from(self.mss) {
            0
        } else if count + 1 >= SMALL_NONE {
            SMALL_NONE
        } else {
            count + 1
        };
        self.bits = (self.bits & ((1 << SMALL_SHIFT) - 1)) | (count << SMALL_SHIFT);
    }

    /// A segment from us: ACK carries RCV.NXT, the window is RCV.WND.
    #[inline(always)]
    pub(super) fn make(&self, cfg: &Config, flags: Flags, seq: SeqNum, len: u32) -> Segment {
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
    pub(super) fn send_syn(&self, cfg: &Config, ack: bool, out: &mut impl Output) {
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
    pub(super) fn send_ack(&self, cfg: &Config, out: &mut impl Output) {
        out.segment(self.make(cfg, Flags::ACK, self.snd_nxt, 0));
    }

    /// The reset that answers a segment with no connection behind it (RFC 9293 §3.10.7.1):
    /// <SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> if SEG had no ACK.
    pub(super) fn send_reset_for(seg: &Segment, out: &mut impl Output) {
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
}

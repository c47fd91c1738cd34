//! Protocol settings shared by every endpoint of a table. Defaults are Linux's.

/// Settings an endpoint reads on every call. Endpoints do not store them: one `Config` serves
/// millions of connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our MSS, announced on SYN and SYN-ACK (bytes).
    pub mss: u16,
    /// RCV.WND: the window we advertise. Constant, because the simulated application reads all
    /// data as it arrives (see the README's deviations).
    pub rcv_wnd: u16,
    /// Most bytes a `send` may leave queued and unsent.
    pub snd_buf: u32,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub rto_initial_ms: u32,
    /// Floor of the RTO once it is computed from samples (Linux `TCP_RTO_MIN`: 200 ms).
    pub rto_min_ms: u32,
    /// Ceiling of any RTO after backoff (Linux `TCP_RTO_MAX`: 120 s).
    pub rto_max_ms: u32,
    /// Linux `tcp_syn_retries`.
    pub syn_retries: u8,
    /// Linux `tcp_syn_linear_timeouts`: SYN retransmissions 1 s apart before doubling.
    pub syn_linear_timeouts: u8,
    /// Linux `tcp_synack_retries`.
    pub synack_retries: u8,
    /// Linux `tcp_retries2`: data and FIN retransmissions before giving up.
    pub data_retries: u8,
    /// MSL; TIME-WAIT lasts 2·MSL. Linux's TIME-WAIT is a fixed 60 s, so the default MSL is 30 s.
    pub msl_ms: u32,
    /// Linux `tcp_fin_timeout`: how long an orphaned connection may sit in FIN-WAIT-2.
    pub fin_timeout_ms: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            rcv_wnd: 65535,
            snd_buf: 4 << 20,
            rto_initial_ms: 1000,
            rto_min_ms: 200,
            rto_max_ms: 120_000,
            syn_retries: 6,
            syn_linear_timeouts: 4,
            synack_retries: 5,
            data_retries: 15,
            msl_ms: 30_000,
            fin_timeout_ms: 60_000,
        }
    }
}

impl Config {
    pub fn time_wait_ms(&self) -> u64 {
        2 * u64::from(self.msl_ms)
    }

    /// Most SYN retransmissions. Linux 6.5+ adds `tcp_syn_linear_timeouts` to `tcp_syn_retries`
    /// (the default 6 sends 10); the recorded run with `syn_retries = 2`
    /// (`cli-syn-retransmit-giveup`) sent exactly 2, so the extra applies only when
    /// `syn_retries` exceeds the linear count.
    pub fn max_syn_retransmits(&self) -> u8 {
        if self.syn_retries > self.syn_linear_timeouts {
            self.syn_retries.saturating_add(self.syn_linear_timeouts)
        } else {
            self.syn_retries
        }
    }

    /// The time budget of a connect (Linux `tcp_model_timeout`): the time an exponential schedule
    /// of `syn_retries` retransmissions from the initial RTO would take, doubling up to the RTO
    /// ceiling and linear after it. 2 retries: 1 + 2 + 4 = 7 s; 6 retries: 127 s.
    pub fn syn_budget_ms(&self) -> u64 {
        let base = u64::from(self.rto_initial_ms.max(1));
        let max = u64::from(self.rto_max_ms).max(base);
        let thresh = (max / base).ilog2();
        let n = u32::from(self.syn_retries);
        if n <= thresh {
            ((2u64 << n) - 1) * base
        } else {
            ((2u64 << thresh) - 1) * base + u64::from(n - thresh) * max
        }
    }

    /// The timeout armed after the `k`-th SYN retransmission (k = 0 for the first SYN): 1 s for
    /// the first `syn_linear_timeouts` + 1 timeouts, then doubling (Linux 6.5+).
    pub fn syn_interval_ms(&self, k: u8) -> u64 {
        let base = u64::from(self.rto_initial_ms);
        let doublings = u32::from(k.saturating_sub(self.syn_linear_timeouts));
        backoff(base, doublings, u64::from(self.rto_max_ms))
    }
}

/// `base · 2^doublings`, capped at `max`.
pub(crate) fn backoff(base: u64, doublings: u32, max: u64) -> u64 {
    if doublings >= 32 {
        return max;
    }
    (base << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_syn_budget_matches_linux_model_timeout() {
        let mut cfg = Config::default();
        assert_eq!(cfg.syn_budget_ms(), 127_000);
        cfg.syn_retries = 2;
        assert_eq!(cfg.syn_budget_ms(), 7_000);
        cfg.syn_retries = 8;
        assert_eq!(cfg.syn_budget_ms(), 127_000 + 2 * 120_000);
    }

    #[test]
    fn test_syn_schedule_linear_then_doubling() {
        let cfg = Config::default();
        let mut t = 0;
        let mut fires = vec![];
        for k in 0..=cfg.max_syn_retransmits() {
            t += cfg.syn_interval_ms(k);
            fires.push(t / 1000);
        }
        // Retransmissions at 1,2,3,4,5,7,11,19,35,67 s; the 11th timeout (131 s) gives up.
        assert_eq!(fires, [1, 2, 3, 4, 5, 7, 11, 19, 35, 67, 131]);
    }
}

//! Protocol settings shared by every endpoint of a table, their defaults per profile, and the one
//! check of their ranges.

use super::endpoint::MAX_TIMER_MS;
use super::profile::{Profile, ProfileName};

/// Settings an endpoint reads on every call. Endpoints do not store them: one `Config` serves
/// millions of connections.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Where to follow Linux rather than RFC 9293.
    pub profile: Profile,
    /// Our MSS, announced on SYN and SYN-ACK (bytes).
    pub mss: u16,
    /// RCV.WND: the window we advertise. Constant, because the simulated application reads all
    /// data as it arrives (see the README's deviations).
    pub rcv_wnd: u16,
    /// Most bytes a `send` may leave queued and unsent.
    pub snd_buf: u32,
    /// RTO before any RTT sample (RFC 6298 §2.1, Linux `TCP_TIMEOUT_INIT`: 1 s).
    pub rto_initial_ms: u32,
    /// Floor of the RTO once it is computed from samples (Linux `TCP_RTO_MIN`: 200 ms; RFC 6298
    /// §2.4: 1 s).
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
    /// Linux `tcp_orphan_retries`, for a connection the application closed (0 acts as 8, as in
    /// Linux's `tcp_orphan_retries()`). Used where `profile.orphan_retries` is on.
    pub orphan_retries: u8,
    /// MSL; TIME-WAIT lasts 2·MSL. Linux's TIME-WAIT is a fixed 60 s (`TCP_TIMEWAIT_LEN`), so
    /// its profile's MSL is 30 s; RFC 9293's MSL is 2 minutes.
    pub msl_ms: u32,
    /// Linux `tcp_fin_timeout`: how long an orphaned connection may sit in FIN-WAIT-2.
    pub fin_timeout_ms: u32,
    /// Linux `tcp_invalid_ratelimit`: the least time between two ACKs for unacceptable segments
    /// (where `profile.oow_rate_limit` is on). 0: no limit.
    pub invalid_ratelimit_ms: u32,
    /// `TCP_NODELAY`: no Nagle. Off by default, as on Linux.
    pub nodelay: bool,
    /// The length of a jiffy, ms: Linux keeps timeouts in whole jiffies, so at HZ=250 an RTO of
    /// 200.03 ms is 204 ms. 0 (the default): not modelled, the ideal schedule the conformance
    /// recordings script (their ±25 ms absorbs the rounding up to the third resend).
    pub jiffy_ms: u32,
    /// The network AUTO pairs run over (`serve --link`): not a TCP setting, but every pair's
    /// driver reads it from here. None (the default): segments are delivered at once. Not part
    /// of a connection's own settings.
    #[serde(skip)]
    pub link: super::link::Link,
}

impl Default for Config {
    fn default() -> Config {
        Config::for_profile(ProfileName::Linux)
    }
}

/// A setting outside the range the core can work with. The message names the setting as the
/// command line and the API spell it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {value} is out of range: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub value: u64,
    pub reason: String,
}

/// Settings to change from a starting point, each optional: what flags, an `Open` request or a
/// scenario file give. [`Overrides::apply`] is the one way a `Config` is made from them, and it
/// validates the result.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Start from this profile's defaults rather than from the base.
    pub profile: Option<ProfileName>,
    /// RFC 5961's challenge ACKs, on or off whatever the profile.
    pub rfc5961: Option<bool>,
    pub mss: Option<u16>,
    pub rcv_wnd: Option<u16>,
    pub snd_buf: Option<u32>,
    pub rto_initial_ms: Option<u32>,
    pub rto_min_ms: Option<u32>,
    pub rto_max_ms: Option<u32>,
    pub syn_retries: Option<u8>,
    pub syn_linear_timeouts: Option<u8>,
    pub synack_retries: Option<u8>,
    pub data_retries: Option<u8>,
    pub orphan_retries: Option<u8>,
    pub msl_ms: Option<u32>,
    pub fin_timeout_ms: Option<u32>,
    pub invalid_ratelimit_ms: Option<u32>,
    pub nodelay: Option<bool>,
}

impl Overrides {
    /// Every setting of `c`, so that applying it to any base gives `c` again.
    pub fn every(c: &Config) -> Overrides {
        Overrides {
            profile: Some(c.profile.name),
            rfc5961: Some(c.profile.rfc5961),
            mss: Some(c.mss),
            rcv_wnd: Some(c.rcv_wnd),
            snd_buf: Some(c.snd_buf),
            rto_initial_ms: Some(c.rto_initial_ms),
            rto_min_ms: Some(c.rto_min_ms),
            rto_max_ms: Some(c.rto_max_ms),
            syn_retries: Some(c.syn_retries),
            syn_linear_timeouts: Some(c.syn_linear_timeouts),
            synack_retries: Some(c.synack_retries),
            data_retries: Some(c.data_retries),
            orphan_retries: Some(c.orphan_retries),
            msl_ms: Some(c.msl_ms),
            fin_timeout_ms: Some(c.fin_timeout_ms),
            invalid_ratelimit_ms: Some(c.invalid_ratelimit_ms),
            nodelay: Some(c.nodelay),
        }
    }

    /// `base`, or the profile's defaults if one is named, with every override applied; refused
    /// if the result is out of range.
    pub fn apply(&self, base: &Config) -> Result<Config, ConfigError> {
        let mut c = match self.profile {
            Some(name) => Config::for_profile(name),
            None => base.clone(),
        };
        if let Some(on) = self.rfc5961 {
            c.profile.rfc5961 = on;
        }
        fn set<T: Copy>(field: &mut T, v: Option<T>) {
            *field = v.unwrap_or(*field);
        }
        set(&mut c.mss, self.mss);
        set(&mut c.rcv_wnd, self.rcv_wnd);
        set(&mut c.snd_buf, self.snd_buf);
        set(&mut c.rto_initial_ms, self.rto_initial_ms);
        set(&mut c.rto_min_ms, self.rto_min_ms);
        set(&mut c.rto_max_ms, self.rto_max_ms);
        set(&mut c.syn_retries, self.syn_retries);
        set(&mut c.syn_linear_timeouts, self.syn_linear_timeouts);
        set(&mut c.synack_retries, self.synack_retries);
        set(&mut c.data_retries, self.data_retries);
        set(&mut c.orphan_retries, self.orphan_retries);
        set(&mut c.msl_ms, self.msl_ms);
        set(&mut c.fin_timeout_ms, self.fin_timeout_ms);
        set(&mut c.invalid_ratelimit_ms, self.invalid_ratelimit_ms);
        set(&mut c.nodelay, self.nodelay);
        c.validate()?;
        Ok(c)
    }
}

/// Linux's `TCP_MIN_MSS`; the largest MSS an IPv4 datagram can carry (65535 − 40).
const MSS_RANGE: (u64, u64) = (88, 65495);
/// Linux's bounds of `tcp_rto_max_ms`.
const RTO_MAX_RANGE: (u64, u64) = (1000, 120_000);
/// Linux's `MAX_TCP_SYNCNT`.
const MAX_SYNCNT: u64 = 127;
/// The largest send buffer: 1 GiB.
const MAX_SND_BUF: u64 = 1 << 30;

impl Config {
    /// The settings a profile starts from: Linux's defaults, or RFC 9293's where they differ.
    pub fn for_profile(name: ProfileName) -> Config {
        let linux = name == ProfileName::Linux;
        Config {
            profile: Profile::named(name),
            mss: 1460,
            rcv_wnd: 65535,
            snd_buf: 4 << 20,
            rto_initial_ms: 1000,
            rto_min_ms: if linux { 200 } else { 1000 },
            rto_max_ms: 120_000,
            syn_retries: 6,
            syn_linear_timeouts: if linux { 4 } else { 0 },
            synack_retries: 5,
            data_retries: 15,
            orphan_retries: 0,
            msl_ms: if linux { 30_000 } else { 120_000 },
            fin_timeout_ms: 60_000,
            invalid_ratelimit_ms: 500,
            nodelay: false,
            jiffy_ms: 0,
            link: super::link::Link::default(),
        }
    }

    /// Refuses settings the core cannot work with, naming the first one and its allowed range.
    /// Every place a `Config` comes from (flags, environment, `Open` settings, scenario files)
    /// checks it here before use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |setting: &'static str, value: u64, (lo, hi): (u64, u64)| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError {
                    setting,
                    value,
                    reason: format!("allowed {lo}..={hi}"),
                })
            }
        };
        let rto_max = u64::from(self.rto_max_ms);
        range("mss", self.mss.into(), MSS_RANGE)?;
        range("rcv_wnd", self.rcv_wnd.into(), (1, 65535))?;
        range("snd_buf", self.snd_buf.into(), (1, MAX_SND_BUF))?;
        range("rto_max_ms", rto_max, RTO_MAX_RANGE)?;
        // Both under the ceiling, so that backoff never lowers a timeout.
        range("rto_min_ms", self.rto_min_ms.into(), (1, rto_max))?;
        range("rto_initial_ms", self.rto_initial_ms.into(), (1, rto_max))?;
        range("syn_retries", self.syn_retries.into(), (1, MAX_SYNCNT))?;
        range(
            "syn_linear_timeouts",
            self.syn_linear_timeouts.into(),
            (0, MAX_SYNCNT),
        )?;
        // An endpoint holds deadlines up to MAX_TIMER_MS ahead; TIME-WAIT is 2·MSL.
        range("msl_ms", self.msl_ms.into(), (1, MAX_TIMER_MS / 2))?;
        range(
            "fin_timeout_ms",
            self.fin_timeout_ms.into(),
            (1, MAX_TIMER_MS),
        )?;
        // The rate limit compares 32-bit times, as Linux's jiffies do.
        range(
            "invalid_ratelimit_ms",
            self.invalid_ratelimit_ms.into(),
            (0, MAX_TIMER_MS),
        )?;
        range("jiffy_ms", self.jiffy_ms.into(), (0, 10))?;
        Ok(())
    }

    pub fn time_wait_ms(&self) -> u64 {
        2 * u64::from(self.msl_ms)
    }

    /// Most SYN retransmissions: `tcp_write_timeout` adds the linear timeouts to
    /// `tcp_syn_retries` (Linux 6.5+); without them, `syn_retries`.
    pub fn max_syn_retransmits(&self) -> u16 {
        u16::from(self.syn_retries) + u16::from(self.syn_linear_timeouts)
    }

    /// Linux's `tcp_model_timeout`: the time an exponential schedule of `retries`
    /// retransmissions from `base` ms would take, doubling up to the RTO ceiling and linear
    /// after it. From the 1 s initial RTO, 2 retries: 1 + 2 + 4 = 7 s; 6 retries: 127 s. From
    /// 200 ms, 8 retries (orphans): 102.2 s; 15: 924.6 s.
    pub fn model_timeout_ms(&self, retries: u8, base: u32) -> u64 {
        let base = u64::from(base.max(1));
        let max = u64::from(self.rto_max_ms).max(base);
        let thresh = (max / base).ilog2();
        let n = u32::from(retries);
        if n <= thresh {
            ((2u64 << n) - 1) * base
        } else {
            ((2u64 << thresh) - 1) * base + u64::from(n - thresh) * max
        }
    }

    /// The time budget of a connect: `tcp_model_timeout` from the initial RTO.
    pub fn syn_budget_ms(&self) -> u64 {
        self.model_timeout_ms(self.syn_retries, self.rto_initial_ms)
    }

    /// The retransmission limit of data and FIN: `tcp_retries2`, or for an orphan
    /// `tcp_orphan_retries` (0 acts as 8) where the profile follows Linux.
    pub fn retries_limit(&self, orphaned: bool) -> u8 {
        if orphaned && self.profile.orphan_retries {
            if self.orphan_retries == 0 {
                8
            } else {
                self.orphan_retries
            }
        } else {
            self.data_retries
        }
    }

    /// The timeout armed after the `k`-th SYN retransmission (k = 0 for the first SYN): the
    /// initial RTO for the first `syn_linear_timeouts` + 1 timeouts, then doubling.
    pub fn syn_interval_ms(&self, k: u16) -> u64 {
        let base = u64::from(self.rto_initial_ms);
        let doublings = u32::from(k.saturating_sub(self.syn_linear_timeouts.into()));
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
        // Data and FIN from TCP_RTO_MIN: 8 orphan retries, 15 (tcp_retries2).
        assert_eq!(cfg.model_timeout_ms(8, 200), 102_200);
        assert_eq!(cfg.model_timeout_ms(15, 200), 924_600);
    }

    #[test]
    fn test_syn_intervals_linear_then_doubling() {
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

    #[test]
    fn test_profiles_differ_in_the_rfc_values() {
        let (l, r) = (
            Config::for_profile(ProfileName::Linux),
            Config::for_profile(ProfileName::Rfc9293),
        );
        assert_eq!((l.time_wait_ms(), r.time_wait_ms()), (60_000, 240_000));
        assert_eq!((l.rto_min_ms, r.rto_min_ms), (200, 1000));
        assert_eq!((l.syn_linear_timeouts, r.syn_linear_timeouts), (4, 0));
        assert_eq!(l.profile, Profile::LINUX);
        assert_eq!(r.profile, Profile::RFC9293);
        assert_eq!(Config::default(), l);
    }

    #[test]
    fn test_overrides_start_from_the_base_or_the_named_profile() {
        let base = Config {
            syn_retries: 3,
            ..Config::default()
        };
        let o = Overrides {
            mss: Some(1000),
            ..Overrides::default()
        };
        let c = o.apply(&base).unwrap();
        assert_eq!((c.mss, c.syn_retries), (1000, 3));
        let o = Overrides {
            profile: Some(ProfileName::Rfc9293),
            rfc5961: Some(true),
            ..Overrides::default()
        };
        let c = o.apply(&base).unwrap();
        assert_eq!((c.syn_retries, c.rto_min_ms), (6, 1000));
        assert_eq!(c.profile.name, ProfileName::Rfc9293);
        assert!(c.profile.rfc5961 && !c.profile.rtt_estimator);
        let o = Overrides {
            mss: Some(0),
            ..Overrides::default()
        };
        assert_eq!(o.apply(&base).unwrap_err().setting, "mss");
        // `every` round-trips a configuration, whatever the base.
        let c = Overrides {
            profile: Some(ProfileName::Rfc9293),
            mss: Some(536),
            ..Overrides::default()
        }
        .apply(&base)
        .unwrap();
        assert_eq!(Overrides::every(&c).apply(&Config::default()), Ok(c));
    }

    #[test]
    fn test_defaults_of_both_profiles_are_valid() {
        for p in ProfileName::ALL {
            assert_eq!(Config::for_profile(p).validate(), Ok(()), "{p}");
        }
    }

    /// Each bound, just inside and just outside.
    #[test]
    fn test_validate_checks_every_bound() {
        type Set = fn(&mut Config, u64);
        let cases: [(&str, Set, u64, u64); 10] = [
            ("mss", |c, v| c.mss = v as u16, 88, 65495),
            ("rcv_wnd", |c, v| c.rcv_wnd = v as u16, 1, 65535),
            ("snd_buf", |c, v| c.snd_buf = v as u32, 1, 1 << 30),
            ("rto_max_ms", |c, v| c.rto_max_ms = v as u32, 1000, 120_000),
            ("rto_min_ms", |c, v| c.rto_min_ms = v as u32, 1, 120_000),
            (
                "rto_initial_ms",
                |c, v| c.rto_initial_ms = v as u32,
                1,
                120_000,
            ),
            ("syn_retries", |c, v| c.syn_retries = v as u8, 1, 127),
            (
                "syn_linear_timeouts",
                |c, v| c.syn_linear_timeouts = v as u8,
                0,
                127,
            ),
            ("msl_ms", |c, v| c.msl_ms = v as u32, 1, MAX_TIMER_MS / 2),
            (
                "fin_timeout_ms",
                |c, v| c.fin_timeout_ms = v as u32,
                1,
                MAX_TIMER_MS,
            ),
        ];
        for (name, set, lo, hi) in cases {
            for ok in [lo, hi] {
                let mut c = Config::default();
                set(&mut c, ok);
                assert_eq!(c.validate(), Ok(()), "{name} = {ok}");
            }
            // Outside, where the field's type can hold it.
            let outside = [lo.checked_sub(1), hi.checked_add(1)];
            for bad in outside.into_iter().flatten() {
                let mut c = Config::default();
                set(&mut c, bad);
                if c == Config::default() {
                    continue; // the cast wrapped back onto the default
                }
                let err = c.validate().unwrap_err();
                assert_eq!(err.setting, name, "{name} = {bad}");
                assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
            }
        }
        // The minimum and the initial RTO stay under the ceiling.
        let c = Config {
            rto_max_ms: 1000,
            rto_min_ms: 1001,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().setting, "rto_min_ms");
        // The message names the setting and the range.
        let c = Config {
            mss: 0,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "mss: 0 is out of range: allowed 88..=65495"
        );
    }
}

//! The load scenario format: phases as YAML, deserialized straight into typed values (modes,
//! sides, states, refusal reasons, addresses), and the checks a file must pass before anything
//! is sent. Every error names the line or the phase, and the reason.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::table::OpenFailure;
use crate::tcp::{Overrides, State};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The server settings its figures depend on, checked against each server before anything
    /// is sent.
    #[serde(default)]
    pub assumes: Assumes,
    /// Each phase is a one-key map: `- open: {count: 10}`.
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub phases: Vec<Phase>,
}

/// What a scenario assumes of the server (each as `serve` takes it); what is left out may be
/// anything. `tcpsim load` refuses to run against a server that differs, saying how to start
/// one that does not. Under `--scale`, the number of ports scales with the scenario (a port
/// range is a limit the scenario runs into); the rest must match as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assumes {
    /// The ephemeral port range, "32768-60999" (serve --ports).
    #[serde(default)]
    pub ports: Option<String>,
    /// Client address pools, "10.0.0.0/16" (serve --client-pools).
    #[serde(default)]
    pub client_pools: Option<Vec<String>>,
    /// Servers, "10.255.0.1:80" (serve --servers).
    #[serde(default)]
    pub servers: Option<Vec<std::net::SocketAddrV4>>,
    /// How long TIME-WAIT lasts, ms (the profile's 2 × MSL; serve --msl-ms).
    #[serde(default)]
    pub time_wait_ms: Option<u64>,
    /// Timewait socks each host may hold (serve --tcp-max-tw-buckets); scales with the run.
    #[serde(default)]
    pub tcp_max_tw_buckets: Option<u32>,
}

impl Assumes {
    /// The port range, if assumed: (low, high).
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.ports.as_deref().and_then(|p| parse_range(p).ok())
    }
}

/// "32768-60999", low to high.
fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("ports {s:?}: write the range as LOW-HIGH"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("ports {s:?}: {p:?} is not a port"))
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo == 0 || lo > hi {
        return Err(format!("ports {s:?}: an empty range, or one starting at 0"));
    }
    Ok((lo, hi))
}

/// A closed set of names a scenario may write in any case ("auto", "AUTO", "Auto"), as it
/// writes states.
macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let name = String::deserialize(d)?;
                match name.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(serde::de::Error::custom(format!(
                        "{name:?} is not one of {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

names!(ModeName {
    Auto = "auto",
    Manual = "manual",
});

names!(SideName {
    Client = "client",
    Server = "server",
    Both = "both",
});

names!(HowName {
    Shutdown = "shutdown",
    Close = "close",
});

/// close(), unless a phase asks for shutdown().
fn close_how() -> HowName {
    HowName::Close
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Open(OpenPhase),
    Hold(HoldPhase),
    Close(ClosePhase),
    Abort(AbortPhase),
    Send(SendPhase),
    SynFlood(SynFloodPhase),
    DropFins(DropFinsPhase),
    Churn(ChurnPhase),
    Listener(ListenerPhase),
    ClientSysctls(ClientSysctlsPhase),
    Link(LinkPhase),
    Expect(ExpectPhase),
}

/// Sets the link AUTO pairs run over (SetLink) on every server: the default, or one server's or
/// one client pool's; the runner puts the links back after the run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPhase {
    /// "delay=25ms,jitter=2ms,loss=1%,dup=0.1%,reorder=0.5%" (any of them), or "none".
    pub link: String,
    #[serde(default)]
    pub server: Option<std::net::SocketAddrV4>,
    #[serde(default)]
    pub client_pool: Option<String>,
}

/// Changes the client hosts' TIME-WAIT reuse sysctls on every server (SetClientSysctls); what
/// is left out stays, and the runner puts them back after the run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSysctlsPhase {
    #[serde(default)]
    pub tcp_tw_reuse: Option<u8>,
    #[serde(default)]
    pub tcp_timestamps: Option<bool>,
    #[serde(default)]
    pub tcp_tw_reuse_delay_ms: Option<u32>,
}

/// Changes the servers' listeners (SetListener): `listen()`'s backlog, the host's listen
/// sysctls, whether the application accepts; on one server (`server`, as the servers name it)
/// or every one. What is left out stays. `backlog` and `tcp_max_syn_backlog` scale with the run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerPhase {
    #[serde(default)]
    pub server: Option<std::net::SocketAddrV4>,
    #[serde(default)]
    pub backlog: Option<u32>,
    #[serde(default)]
    pub somaxconn: Option<u32>,
    #[serde(default)]
    pub tcp_max_syn_backlog: Option<u32>,
    #[serde(default)]
    pub tcp_syncookies: Option<u8>,
    #[serde(default)]
    pub tcp_abort_on_overflow: Option<bool>,
    #[serde(default)]
    pub accepting: Option<bool>,
}

names!(
    /// A counter an expectation can check, as `Stats` names it; `segments_sent` counts the
    /// segments the expectation's side sent.
    CounterName {
        ListenDrops = "listen_drops",
        ListenOverflows = "listen_overflows",
        SyncookiesSent = "syncookies_sent",
        SyncookiesRecv = "syncookies_recv",
        SyncookiesFailed = "syncookies_failed",
        TimeWaitOverflows = "time_wait_overflows",
        TimeWaitReused = "time_wait_reused",
        SegmentsSent = "segments_sent",
    }
);

/// MANUAL connections only: `side` closes and its FIN is lost on the wire, so it stays in
/// FIN-WAIT-1 (or LAST-ACK) retransmitting the FIN, onto the wire where nothing delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropFinsPhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub errors: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPhase {
    pub count: u64,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default = "auto")]
    pub mode: ModeName,
    #[serde(default)]
    pub client_ip: Option<Ipv4Addr>,
    /// MANUAL only: deliver the SYN, the SYN-ACK and the final ACK, so the pair is ESTABLISHED
    /// and later phases (drop_fins) can act on it.
    #[serde(default)]
    pub handshake: bool,
    /// MANUAL only: the connections' own protocol settings, as `Open` takes them (`profile:
    /// rfc9293`, `mss: 1000`, …); AUTO pairs run on the server's.
    #[serde(default)]
    pub settings: Option<Overrides>,
}

fn auto() -> ModeName {
    ModeName::Auto
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldPhase {
    pub ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosePhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default = "close_how")]
    pub how: HowName,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortPhase {
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPhase {
    pub bytes: u32,
    #[serde(default = "one")]
    pub fraction: f64,
    pub side: SideName,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynFloodPhase {
    pub count: u64,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnPhase {
    /// Connections opened (and closed) per second.
    pub rate: f64,
    #[serde(default)]
    pub errors: u64,
    pub ms: u64,
    /// Which side closes first (it holds the TIME-WAIT); both: a simultaneous close.
    #[serde(default = "client")]
    pub close: SideName,
    #[serde(default)]
    pub client_ip: Option<Ipv4Addr>,
    /// Hold each connection this long before the `close` side closes it; the other side then
    /// closes when the FIN reaches it (CLOSE-WAIT), as an application reading to EOF does.
    /// Without it, both sides close in the tick that opened the connection. Connections whose
    /// close falls after the phase stay open.
    #[serde(default)]
    pub hold_ms: Option<u64>,
}

fn client() -> SideName {
    SideName::Client
}

/// A check on the servers, summed over them: the endpoints in `state` (on `side`, or both), the
/// opens refused so far for `refused`, or what the run has added to a `counter`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPhase {
    #[serde(default)]
    pub side: Option<SideName>,
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default)]
    pub refused: Option<OpenFailure>,
    #[serde(default)]
    pub counter: Option<CounterName>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
}

impl Phase {
    /// How many commands of the phase may fail with an unexpected error (anything but an open
    /// refused by a limit) before the run fails: `errors:`, 0 unless given.
    pub fn errors_allowed(&self) -> u64 {
        match self {
            Phase::Open(p) => p.errors,
            Phase::Close(p) => p.errors,
            Phase::Abort(p) => p.errors,
            Phase::Send(p) => p.errors,
            Phase::SynFlood(p) => p.errors,
            Phase::DropFins(p) => p.errors,
            Phase::Churn(p) => p.errors,
            Phase::Hold(_)
            | Phase::Expect(_)
            | Phase::Listener(_)
            | Phase::ClientSysctls(_)
            | Phase::Link(_) => 0,
        }
    }

    /// The rate it asks for, per second; 0 for flat out or none.
    pub fn rate(&self) -> f64 {
        match self {
            Phase::Open(p) => p.rate,
            Phase::Close(p) => p.rate,
            Phase::Abort(p) => p.rate,
            Phase::Send(p) => p.rate,
            Phase::SynFlood(p) => p.rate,
            Phase::Churn(p) => p.rate,
            Phase::DropFins(_)
            | Phase::Hold(_)
            | Phase::Expect(_)
            | Phase::Listener(_)
            | Phase::ClientSysctls(_)
            | Phase::Link(_) => 0.0,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Phase::Open(_) => "open",
            Phase::Hold(_) => "hold",
            Phase::Close(_) => "close",
            Phase::Abort(_) => "abort",
            Phase::Send(_) => "send",
            Phase::SynFlood(_) => "syn_flood",
            Phase::DropFins(_) => "drop_fins",
            Phase::Churn(_) => "churn",
            Phase::Listener(_) => "listener",
            Phase::ClientSysctls(_) => "client_sysctls",
            Phase::Link(_) => "link",
            Phase::Expect(_) => "expect",
        }
    }
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("line {line}, column {column}: {message}")]
    At {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Yaml(String),
    #[error("phases: a scenario needs at least one phase")]
    NoPhases,
    #[error("assumes: {0}")]
    Assumes(String),
    /// Phase `index` (1-based, as a reader counts) of kind `kind`.
    #[error("phase {index} ({kind}): {why}")]
    Phase {
        index: usize,
        kind: &'static str,
        why: String,
    },
}

/// Parses and checks a scenario.
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let sc: Scenario = serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(l) => ScenarioError::At {
            line: l.line(),
            column: l.column(),
            message: e.to_string(),
        },
        None => ScenarioError::Yaml(e.to_string()),
    })?;
    if sc.phases.is_empty() {
        return Err(ScenarioError::NoPhases);
    }
    let assumed = |why: String| ScenarioError::Assumes(why);
    if let Some(p) = &sc.assumes.ports {
        parse_range(p).map_err(assumed)?;
    }
    for pool in sc.assumes.client_pools.iter().flatten() {
        pool.parse::<crate::table::Cidr>()
            .map_err(|e| assumed(format!("client_pools: {e}")))?;
    }
    for (i, p) in sc.phases.iter().enumerate() {
        check(p).map_err(|why| ScenarioError::Phase {
            index: i + 1,
            kind: p.name(),
            why,
        })?;
    }
    Ok(sc)
}

/// What the types cannot say: counts above 0, fractions in [0, 1], sides a phase can act on.
fn check(p: &Phase) -> Result<(), String> {
    let fraction = |f: f64| {
        if (0.0..=1.0).contains(&f) {
            Ok(())
        } else {
            Err(format!("fraction {f} is not between 0 and 1"))
        }
    };
    let one_side = |side: SideName, what: &str| {
        if side == SideName::Both {
            Err(format!("side: {what}"))
        } else {
            Ok(())
        }
    };
    let rate = p.rate();
    if !(rate.is_finite() && rate >= 0.0) {
        return Err(format!(
            "rate {rate} is not a number of operations per second"
        ));
    }
    match p {
        Phase::Open(o) if o.count == 0 => Err("count must be at least 1".into()),
        Phase::Open(o) if o.handshake && o.mode != ModeName::Manual => Err(
            "handshake: only MANUAL connections wait for one (AUTO ones complete it alone)".into(),
        ),
        Phase::Open(OpenPhase {
            settings: Some(settings),
            mode,
            ..
        }) => {
            if *mode != ModeName::Manual {
                return Err("settings: AUTO pairs run on the server's settings; only MANUAL connections take their own".into());
            }
            settings
                .apply(&crate::tcp::Config::default())
                .map(drop)
                .map_err(|e| format!("settings.{e}"))
        }
        Phase::Close(c) => fraction(c.fraction),
        Phase::Abort(a) => {
            one_side(a.side, "abort one side, client or server")?;
            fraction(a.fraction)
        }
        Phase::Send(s) => {
            one_side(s.side, "send from one side, client or server")?;
            fraction(s.fraction)
        }
        Phase::DropFins(d) => {
            one_side(d.side, "one side closes and loses its FIN")?;
            fraction(d.fraction)
        }
        Phase::SynFlood(f) if f.count == 0 => Err("count must be at least 1".into()),
        Phase::Churn(c) if c.rate == 0.0 || c.ms == 0 => Err("rate and ms must be above 0".into()),
        Phase::Churn(ChurnPhase {
            hold_ms: Some(_),
            close: SideName::Both,
            ..
        }) => Err("hold_ms: one side closes first (client or server), the other on the FIN".into()),
        Phase::Expect(e) if e.min.is_none() && e.max.is_none() => {
            Err("give min, max or both".into())
        }
        Phase::Expect(e)
            if [e.state.is_some(), e.refused.is_some(), e.counter.is_some()]
                .iter()
                .filter(|&&x| x)
                .count()
                != 1 =>
        {
            Err("name one of a state, a refusal reason or a counter".into())
        }
        Phase::Expect(ExpectPhase {
            counter: Some(CounterName::SegmentsSent),
            side: None | Some(SideName::Both),
            ..
        }) => Err("segments_sent: name the side that sent them, client or server".into()),
        Phase::Listener(l) if l.tcp_syncookies.is_some_and(|n| n > 2) => Err(format!(
            "tcp_syncookies {}: 0, 1 or 2 are allowed",
            l.tcp_syncookies.unwrap_or_default()
        )),
        Phase::Link(l) => match l.link.parse::<crate::tcp::Link>() {
            Err(e) => Err(format!("link: {e}")),
            Ok(_) if l.server.is_some() && l.client_pool.is_some() => {
                Err("give a server or a client pool, not both".into())
            }
            Ok(_) => Ok(()),
        },
        Phase::ClientSysctls(c) if c.tcp_tw_reuse.is_some_and(|n| n > 2) => Err(format!(
            "tcp_tw_reuse {}: 0, 1 or 2 are allowed",
            c.tcp_tw_reuse.unwrap_or_default()
        )),
        Phase::Listener(l) if l.somaxconn == Some(0) || l.tcp_max_syn_backlog == Some(0) => {
            Err("somaxconn and tcp_max_syn_backlog must be at least 1".into())
        }
        _ => Ok(()),
    }
}

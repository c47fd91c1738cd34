//! The `tcpsim` command line: flags to settings, and one error path. Every default comes from
//! the library's `Default` impls and constants; nothing here decides a value.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tcpsim::client::{self, Target};
use tcpsim::conformance;
use tcpsim::server::{self, ConnectionLimits, ServeConfig};
use tcpsim::service::Limits;
use tcpsim::table::listeners::HostSettings;
use tcpsim::table::{Cidr, TableConfig, TwReuse};
use tcpsim::tcp::{self, ProfileName};

#[derive(Parser)]
#[command(
    name = "tcpsim",
    version,
    about = "Simulates RFC 9293 TCP connections at scale"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Via {
    Core,
    Table,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ClockKind {
    Real,
    Virtual,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC server.
    Serve(Box<ServeArgs>),
    /// Asks a server's grpc.health.v1 service; exits 0 only when it is SERVING.
    Health {
        /// The server: a URL (https:// for TLS) or HOST:PORT.
        #[arg(long, visible_alias = "addr", env = "TCPSIM_TARGET", default_value_t)]
        target: Target,
        #[command(flatten)]
        connection: Connection,
    },
    /// Runs conformance scenario files (recorded from Linux) against the engine, once with an
    /// ordinary ISS and once with an ISS just below 2^32. Exits non-zero if any file fails.
    Conformance {
        /// Scenario files, or directories of `*.json` scenario files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What runs the scenarios: the protocol core itself, or the connection table in
        /// EXTERNAL mode on a virtual clock.
        #[arg(long, value_enum, default_value = "core")]
        via: Via,
        /// Run them through a server's gRPC API instead (it must use a virtual clock): a URL or
        /// HOST:PORT.
        #[arg(long, env = "TCPSIM_TARGET")]
        target: Option<Target>,
        #[command(flatten)]
        connection: Connection,
        /// The profile the engine runs (the recordings are Linux's: under `rfc9293` the files
        /// where RFC 9293 and Linux part fail, which shows where they do).
        #[arg(long, default_value_t = ProfileName::Linux, value_parser = profile_name)]
        profile: ProfileName,
    },
    /// Runs a load scenario (YAML: phases of opens, closes, faults, churn and expectations)
    /// against one or more servers, with a progress bar per phase and a report at the end.
    Load {
        /// The scenario file (see scenarios/).
        scenario: PathBuf,
        /// Servers (URLs or HOST:PORT), comma-separated; connections are spread over them.
        #[arg(
            long,
            env = "TCPSIM_TARGET",
            value_delimiter = ',',
            default_values_t = [Target::default()]
        )]
        target: Vec<Target>,
        #[command(flatten)]
        connection: Connection,
        /// Multiply every count, rate and expected occupancy (0.1 runs a scenario small).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// A paced phase's tick, ms: each tick sends what the phase's rate makes due by its
        /// end, then the clock moves on (AdvanceClock on a virtual clock; a real one is waited
        /// for, against a fixed schedule).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        tick_ms: u64,
        /// Print the report as JSON (and no progress bars).
        #[arg(long)]
        json: bool,
    },
}

/// How the client commands reach a server, beyond its address.
#[derive(Args)]
struct Connection {
    /// Bearer token sent with every call (the server's --token).
    #[arg(long, env = "TCPSIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA certificate to trust for https:// (a self-signed server's own certificate).
    #[arg(long, env = "TCPSIM_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate is for, if not the target's host.
    #[arg(long, env = "TCPSIM_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// Mutual TLS: this client's PEM certificate chain (with --tls-key).
    #[arg(long, env = "TCPSIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Mutual TLS: this client's PEM private key (with --tls-cert).
    #[arg(long, env = "TCPSIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long to wait for a server that is still starting (its address refuses connections),
    /// ms: 5000 for load and conformance, 0 for health.
    #[arg(long, env = "TCPSIM_WAIT_MS")]
    wait_ms: Option<u64>,
}

impl Connection {
    /// The options, waiting `default_wait_ms` for a starting server unless --wait-ms says.
    fn options(self, default_wait_ms: u64) -> anyhow::Result<client::Options> {
        let tls_ca_pem = match &self.tls_ca {
            Some(path) => Some(read(path, "--tls-ca")?),
            None => None,
        };
        let tls_identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((read(cert, "--tls-cert")?, read(key, "--tls-key")?)),
            _ => None,
        };
        Ok(client::Options {
            token: self.token,
            tls_ca_pem,
            tls_domain: self.tls_domain,
            tls_identity,
            wait: Duration::from_millis(self.wait_ms.unwrap_or(default_wait_ms)),
        })
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "TCPSIM_LISTEN", default_value_t = server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// A real clock, or a virtual one that moves only on AdvanceClock.
    #[arg(long, env = "TCPSIM_CLOCK", value_enum, default_value = "real")]
    clock: ClockKind,
    #[command(flatten)]
    tcp: TcpArgs,
    /// Connections to pre-size the table for.
    #[arg(long, env = "TCPSIM_CAPACITY", default_value_t = TableConfig::default().capacity)]
    capacity: usize,
    /// Most connections; opens beyond are refused.
    #[arg(long, env = "TCPSIM_MAX_CONNECTIONS", default_value_t = TableConfig::default().max_connections)]
    max_connections: usize,
    /// Client address pools (CIDR blocks, comma-separated).
    #[arg(
        long,
        env = "TCPSIM_CLIENT_POOLS",
        value_delimiter = ',',
        default_values_t = TableConfig::default().client_pools
    )]
    client_pools: Vec<Cidr>,
    /// Server addr:ports connections go to (comma-separated).
    #[arg(
        long,
        env = "TCPSIM_SERVERS",
        value_delimiter = ',',
        default_values_t = TableConfig::default().servers
    )]
    servers: Vec<SocketAddrV4>,
    /// Ephemeral port range (Linux ip_local_port_range).
    #[arg(long, env = "TCPSIM_PORTS", default_value_t = PortRange::from(TableConfig::default().ports))]
    ports: PortRange,
    /// Seeds the ISS of each connection (runs on a virtual clock replay exactly).
    #[arg(long, env = "TCPSIM_SEED", default_value_t = TableConfig::default().seed)]
    seed: u64,
    /// Timewait socks (TIME-WAIT and orphaned FIN-WAIT-2) each host may hold, a host being a
    /// client address or a server address (Linux tcp_max_tw_buckets); one more is freed at once.
    #[arg(long, env = "TCPSIM_TCP_MAX_TW_BUCKETS", default_value_t = TableConfig::default().max_tw_buckets)]
    tcp_max_tw_buckets: u32,
    /// Each server's listen() backlog, clamped by --somaxconn (SetListener changes it while
    /// running): the SYN queue and the accept queue each hold backlog + 1.
    #[arg(long, env = "TCPSIM_LISTEN_BACKLOG", default_value_t = HostSettings::default().backlog)]
    listen_backlog: u32,
    /// Linux net.core.somaxconn: the most a listen() backlog can be.
    #[arg(long, env = "TCPSIM_SOMAXCONN", default_value_t = HostSettings::default().somaxconn)]
    somaxconn: u32,
    /// Linux tcp_max_syn_backlog: without SYN cookies, a SYN is dropped once fewer than a
    /// quarter of it are free.
    #[arg(long, env = "TCPSIM_TCP_MAX_SYN_BACKLOG", default_value_t = HostSettings::default().max_syn_backlog)]
    tcp_max_syn_backlog: u32,
    /// Linux tcp_syncookies: 0 never, 1 when a listener's SYN queue is full, 2 always.
    #[arg(long, env = "TCPSIM_TCP_SYNCOOKIES", default_value_t = HostSettings::default().syncookies,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    tcp_syncookies: u8,
    /// Linux tcp_abort_on_overflow: a handshake completing into a full accept queue is answered
    /// with RST instead of being dropped.
    #[arg(long, env = "TCPSIM_TCP_ABORT_ON_OVERFLOW", default_value_t = HostSettings::default().abort_on_overflow,
          action = clap::ArgAction::Set)]
    tcp_abort_on_overflow: bool,
    /// Linux tcp_tw_reuse on the client hosts: 0 never, 1 always, 2 for loopback (127/8)
    /// addresses only; a connect may take over a TIME-WAIT of its 4-tuple.
    #[arg(long, env = "TCPSIM_TCP_TW_REUSE", default_value_t = TwReuse::default().tw_reuse,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    tcp_tw_reuse: u8,
    /// Linux tcp_timestamps on the client hosts: TIME-WAIT reuse needs them.
    #[arg(long, env = "TCPSIM_TCP_TIMESTAMPS", default_value_t = TwReuse::default().timestamps,
          action = clap::ArgAction::Set)]
    tcp_timestamps: bool,
    /// Linux tcp_tw_reuse_delay: how old a TIME-WAIT must be to be taken over, ms.
    #[arg(long, env = "TCPSIM_TCP_TW_REUSE_DELAY_MS", default_value_t = TwReuse::default().delay_ms)]
    tcp_tw_reuse_delay_ms: u32,
    /// The network AUTO pairs run over, netem's words: "delay=25ms,jitter=2ms,loss=1%,dup=0.1%,
    /// reorder=0.5%" (any of them); "none" delivers every segment at once.
    #[arg(long, env = "TCPSIM_LINK", default_value = "none")]
    link: tcpsim::tcp::Link,
    /// Most connections one Open may ask for.
    #[arg(long, env = "TCPSIM_MAX_OPEN_BATCH", default_value_t = Limits::default().max_open_batch)]
    max_open_batch: u32,
    /// Most connections per List page.
    #[arg(long, env = "TCPSIM_MAX_PAGE_SIZE", default_value_t = Limits::default().max_page_size)]
    max_page_size: u32,
    /// Most segments one Wire call may move.
    #[arg(long, env = "TCPSIM_MAX_WIRE_COUNT", default_value_t = Limits::default().max_wire_count)]
    max_wire_count: u32,
    /// Events a Watch subscriber may have queued before it misses some.
    #[arg(long, env = "TCPSIM_WATCH_BUFFER", default_value_t = Limits::default().watch_buffer)]
    watch_buffer: usize,
    /// Watch subscribers at once, over all clients; more are refused (RESOURCE_EXHAUSTED).
    #[arg(long, env = "TCPSIM_MAX_WATCHERS", default_value_t = Limits::default().max_watchers)]
    max_watchers: usize,
    /// Most connections one Close, Abort or Send on many (ids or a selector) may act on.
    #[arg(long, env = "TCPSIM_MAX_BULK", default_value_t = Limits::default().max_bulk)]
    max_bulk: u32,
    /// Largest gRPC message, either way.
    #[arg(long, env = "TCPSIM_MAX_MESSAGE_BYTES", default_value_t = ServeConfig::default().max_message_bytes)]
    max_message_bytes: usize,
    /// After SIGINT or SIGTERM, how long health reports NOT_SERVING while calls are still
    /// taken, before connections are told to go away (ms).
    #[arg(
        long,
        env = "TCPSIM_DRAIN_MS",
        default_value_t = ServeConfig::default().drain.as_millis() as u64
    )]
    drain_ms: u64,
    /// How long in-flight calls may take to finish after SIGINT or SIGTERM (after the drain).
    #[arg(
        long,
        env = "TCPSIM_SHUTDOWN_GRACE_MS",
        default_value_t = ServeConfig::default().shutdown_grace.as_millis() as u64
    )]
    shutdown_grace_ms: u64,
    /// Require `authorization: Bearer <token>` on every Simulator call.
    #[arg(long, env = "TCPSIM_TOKEN", hide_env_values = true, value_parser = token)]
    token: Option<String>,
    /// Serve Prometheus metrics (GET /metrics) on this address; "off" for none.
    #[arg(
        long,
        env = "TCPSIM_METRICS_LISTEN",
        default_value_t = MetricsListen(Some(server::DEFAULT_METRICS_LISTEN))
    )]
    metrics_listen: MetricsListen,
    /// Serve TLS: PEM certificate chain (with --tls-key).
    #[arg(long, env = "TCPSIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serve TLS: PEM private key (with --tls-cert).
    #[arg(long, env = "TCPSIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: require a client certificate signed by this PEM CA (with --tls-cert).
    #[arg(long, env = "TCPSIM_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Who may use server reflection: anyone, callers with the token, or nobody.
    #[arg(long, env = "TCPSIM_REFLECTION", value_enum, default_value_t = server::Reflection::default())]
    reflection: server::Reflection,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// Keep the whole simulation in this file: restored at start if it exists (a damaged or
    /// foreign file is refused), written at shutdown (atomically).
    #[arg(long, env = "TCPSIM_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Also write the state file this often while serving, ms (0: only at shutdown).
    #[arg(
        long,
        env = "TCPSIM_STATE_EVERY_MS",
        default_value_t = 0,
        requires = "state_file"
    )]
    state_every_ms: u64,
    /// Log lines as text or as JSON objects (one per line), to stderr.
    #[arg(long, env = "TCPSIM_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Which log lines to write: a level (error, warn, info, debug, trace) or a tracing filter
    /// (`tcpsim=debug,tonic=warn`).
    #[arg(long, env = "TCPSIM_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// What one client may hold and for how long; durations in ms, 0 for no limit where noted.
#[derive(Args)]
struct ConnectionArgs {
    /// HTTP/2 streams (calls) open at once on one connection.
    #[arg(long, env = "TCPSIM_MAX_CONCURRENT_STREAMS", default_value_t = ConnectionLimits::default().max_concurrent_streams)]
    max_concurrent_streams: u32,
    /// Calls in progress at once on one connection; more wait their turn.
    #[arg(long, env = "TCPSIM_MAX_CALLS_PER_CONNECTION", default_value_t = ConnectionLimits::default().concurrency_per_connection)]
    max_calls_per_connection: usize,
    /// How long a call may take to its response; a client's deadline may ask for less. A clock
    /// advance stops there, the clock where it got to.
    #[arg(long, env = "TCPSIM_CALL_TIMEOUT_MS", default_value_t = ms(ConnectionLimits::default().call_timeout))]
    call_timeout_ms: u64,
    /// HTTP/2 ping after this long without a frame, to find clients that are gone.
    #[arg(long, env = "TCPSIM_KEEPALIVE_INTERVAL_MS", default_value_t = ms(ConnectionLimits::default().keepalive_interval))]
    keepalive_interval_ms: u64,
    /// A ping unanswered for this long closes the connection.
    #[arg(long, env = "TCPSIM_KEEPALIVE_TIMEOUT_MS", default_value_t = ms(ConnectionLimits::default().keepalive_timeout))]
    keepalive_timeout_ms: u64,
    /// A connection with no call in flight for this long is closed (0: never).
    #[arg(long, env = "TCPSIM_MAX_IDLE_MS", default_value_t = ConnectionLimits::default().max_idle.map_or(0, ms))]
    max_idle_ms: u64,
    /// A connection this old is told to go away (0: never), then given the grace below.
    #[arg(long, env = "TCPSIM_MAX_CONNECTION_AGE_MS", default_value_t = ConnectionLimits::default().max_age.map_or(0, ms))]
    max_connection_age_ms: u64,
    /// How long an aged connection's calls may take to finish.
    #[arg(long, env = "TCPSIM_MAX_CONNECTION_AGE_GRACE_MS", default_value_t = ms(ConnectionLimits::default().max_age_grace))]
    max_connection_age_grace_ms: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl ConnectionArgs {
    fn limits(&self) -> ConnectionLimits {
        let off_if_0 = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        ConnectionLimits {
            max_concurrent_streams: self.max_concurrent_streams,
            concurrency_per_connection: self.max_calls_per_connection,
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            keepalive_interval: Duration::from_millis(self.keepalive_interval_ms),
            keepalive_timeout: Duration::from_millis(self.keepalive_timeout_ms),
            max_idle: off_if_0(self.max_idle_ms),
            max_age: off_if_0(self.max_connection_age_ms),
            max_age_grace: Duration::from_millis(self.max_connection_age_grace_ms),
        }
    }
}

/// Protocol settings: a profile, and any setting changed from its defaults. Each flag is the
/// `tcp::Overrides` field of the same name (they are matched by name, and a test checks that
/// every field has its flag); each is checked against its range before the server starts. The
/// defaults shown in `--help` are read from `tcp::Config::for_profile`.
#[derive(Args, serde::Serialize)]
struct TcpArgs {
    /// Follow Linux (`linux`, what the conformance recordings check) or a plain reading of
    /// RFC 9293 with RFC 6298's timers (`rfc9293`). The profile sets the defaults below where
    /// the two differ.
    #[arg(long, env = "TCPSIM_PROFILE", value_parser = profile_name)]
    profile: Option<ProfileName>,
    /// RFC 5961's challenge ACKs.
    #[arg(long, env = "TCPSIM_RFC5961")]
    rfc5961: Option<bool>,
    /// MSL in ms; TIME-WAIT lasts 2·MSL (Linux's is a fixed 60 s).
    #[arg(long, env = "TCPSIM_MSL_MS")]
    msl_ms: Option<u32>,
    /// How long an orphaned connection may stay in FIN-WAIT-2, ms (Linux tcp_fin_timeout).
    #[arg(long, env = "TCPSIM_FIN_TIMEOUT_MS")]
    fin_timeout_ms: Option<u32>,
    /// SYN retransmissions (Linux tcp_syn_retries, 1-127).
    #[arg(long, env = "TCPSIM_SYN_RETRIES")]
    syn_retries: Option<u8>,
    /// SYN retransmissions 1 s apart before doubling (Linux tcp_syn_linear_timeouts).
    #[arg(long, env = "TCPSIM_SYN_LINEAR_TIMEOUTS")]
    syn_linear_timeouts: Option<u8>,
    /// SYN-ACK retransmissions (Linux tcp_synack_retries).
    #[arg(long, env = "TCPSIM_SYNACK_RETRIES")]
    synack_retries: Option<u8>,
    /// Data and FIN retransmissions (Linux tcp_retries2).
    #[arg(long, env = "TCPSIM_DATA_RETRIES")]
    data_retries: Option<u8>,
    /// Retransmissions of a closed connection's data or FIN; 0 acts as 8 (Linux
    /// tcp_orphan_retries; linux profile only).
    #[arg(long, env = "TCPSIM_ORPHAN_RETRIES")]
    orphan_retries: Option<u8>,
    /// Our MSS, bytes (88-65495).
    #[arg(long, env = "TCPSIM_MSS")]
    mss: Option<u16>,
    /// The receive window advertised, bytes (1-65535).
    #[arg(long, env = "TCPSIM_RCV_WND")]
    rcv_wnd: Option<u16>,
    /// Most bytes a Send may leave queued.
    #[arg(long, env = "TCPSIM_SND_BUF")]
    snd_buf: Option<u32>,
    /// The RTO before any RTT sample, ms.
    #[arg(long, env = "TCPSIM_RTO_INITIAL_MS")]
    rto_initial_ms: Option<u32>,
    /// The RTO's floor, ms.
    #[arg(long, env = "TCPSIM_RTO_MIN_MS")]
    rto_min_ms: Option<u32>,
    /// The RTO's ceiling, ms (1000-120000).
    #[arg(long, env = "TCPSIM_RTO_MAX_MS")]
    rto_max_ms: Option<u32>,
    /// TCP_NODELAY on every connection: no Nagle.
    #[arg(long, env = "TCPSIM_NODELAY")]
    nodelay: Option<bool>,
    /// The least time between two ACKs for unacceptable segments, ms (Linux
    /// tcp_invalid_ratelimit; 0: no limit; linux profile only).
    #[arg(long, env = "TCPSIM_INVALID_RATELIMIT_MS")]
    invalid_ratelimit_ms: Option<u32>,
}

impl TcpArgs {
    /// The settings these flags ask for, checked; an out-of-range one is named as its flag.
    fn config(&self) -> anyhow::Result<tcp::Config> {
        let overrides: tcp::Overrides = serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .context("the protocol flags do not match tcp::Overrides")?;
        overrides.apply(&tcp::Config::default()).map_err(|e| {
            anyhow::anyhow!(
                "--{} (TCPSIM_{}): {} is out of range: {}",
                e.setting.replace('_', "-"),
                e.setting.to_ascii_uppercase(),
                e.value,
                e.reason
            )
        })
    }

    /// Each protocol setting's default per profile, by flag id: "1460", or "linux: 200,
    /// rfc9293: 1000" where the profiles differ.
    fn defaults() -> Vec<(String, String)> {
        let of = |p| serde_json::to_value(tcp::Overrides::every(&tcp::Config::for_profile(p)));
        let (Ok(serde_json::Value::Object(linux)), Ok(serde_json::Value::Object(rfc))) =
            (of(ProfileName::Linux), of(ProfileName::Rfc9293))
        else {
            return vec![];
        };
        linux
            .into_iter()
            .map(|(id, l)| {
                let r = &rfc[&id];
                // The profile's own default is linux's; the others may differ by profile.
                let shown = if id == "profile" || &l == r {
                    l.to_string()
                } else {
                    format!("linux: {l}, rfc9293: {r}")
                };
                (id, shown.replace('"', ""))
            })
            .collect()
    }
}

fn profile_name(s: &str) -> Result<ProfileName, String> {
    ProfileName::parse(s).ok_or_else(|| format!("{s:?} is not a profile: linux or rfc9293"))
}

fn token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty token would let anyone in; leave --token out for none".into());
    }
    Ok(s.to_string())
}

/// `--metrics-listen`: an address, or "off".
#[derive(Clone, Copy)]
struct MetricsListen(Option<SocketAddr>);

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

impl std::str::FromStr for MetricsListen {
    type Err = String;
    fn from_str(s: &str) -> Result<MetricsListen, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen(None));
        }
        s.parse()
            .map(|a| MetricsListen(Some(a)))
            .map_err(|_| format!("{s:?} is not an address:port (or \"off\")"))
    }
}

/// `--ports LOW-HIGH`.
#[derive(Clone, Copy)]
struct PortRange(u16, u16);

impl From<(u16, u16)> for PortRange {
    fn from((lo, hi): (u16, u16)) -> PortRange {
        PortRange(lo, hi)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected LOW-HIGH, e.g. 32768-60999"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port"))
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo == 0 || lo > hi {
            return Err(format!(
                "{s:?}: the range must start above 0 and not end before it starts"
            ));
        }
        Ok(PortRange(lo, hi))
    }
}

/// The command line, with each protocol flag's help naming its defaults.
fn command() -> clap::Command {
    let defaults = TcpArgs::defaults();
    Cli::command().mut_subcommand("serve", |serve| {
        defaults.into_iter().fold(serve, |serve, (id, shown)| {
            serve.mut_arg(id, |arg| {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [default: {shown}]"))
            })
        })
    })
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", client::causes(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; its error is printed once, by `main`.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(*args),
        Command::Health { target, connection } => health(&target, connection.options(0)?),
        Command::Conformance {
            paths,
            via,
            target,
            connection,
            profile,
        } => run_conformance(&paths, via, target, connection.options(5000)?, profile),
        Command::Load {
            scenario,
            target,
            connection,
            scale,
            tick_ms,
            json,
        } => load(
            &scenario,
            target,
            connection.options(5000)?,
            scale,
            tick_ms,
            json,
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

fn read(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))
}

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut tcp = a.tcp.config()?;
    tcp.link = a.link;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(server::Tls {
            cert_pem: read(cert, "--tls-cert")?,
            key_pem: read(key, "--tls-key")?,
            client_ca_pem: match &a.tls_client_ca {
                Some(ca) => Some(read(ca, "--tls-client-ca")?),
                None => None,
            },
        }),
        _ => None,
    };
    let cfg = ServeConfig {
        table: TableConfig {
            capacity: a.capacity,
            max_connections: a.max_connections,
            client_pools: a.client_pools,
            servers: a.servers,
            ports: (a.ports.0, a.ports.1),
            seed: a.seed,
            max_tw_buckets: a.tcp_max_tw_buckets,
            listen: HostSettings {
                backlog: a.listen_backlog,
                somaxconn: a.somaxconn,
                max_syn_backlog: a.tcp_max_syn_backlog,
                syncookies: a.tcp_syncookies,
                abort_on_overflow: a.tcp_abort_on_overflow,
                accepting: true,
            },
            tw_reuse: TwReuse {
                tw_reuse: a.tcp_tw_reuse,
                timestamps: a.tcp_timestamps,
                delay_ms: a.tcp_tw_reuse_delay_ms,
            },
            ..TableConfig::default()
        },
        tcp,
        virtual_clock: matches!(a.clock, ClockKind::Virtual),
        limits: Limits {
            max_open_batch: a.max_open_batch,
            max_page_size: a.max_page_size,
            max_wire_count: a.max_wire_count,
            watch_buffer: a.watch_buffer,
            max_watchers: a.max_watchers,
            max_bulk: a.max_bulk,
        },
        token: a.token,
        max_message_bytes: a.max_message_bytes,
        drain: Duration::from_millis(a.drain_ms),
        shutdown_grace: Duration::from_millis(a.shutdown_grace_ms),
        tls,
        metrics_listen: a.metrics_listen.0,
        reflection: a.reflection,
        connections: a.connections.limits(),
        state: a.state_file.clone().map(|path| server::StateFile {
            path,
            every: (a.state_every_ms > 0).then(|| Duration::from_millis(a.state_every_ms)),
        }),
    };
    logs(a.log_format, &a.log)?;
    let clock = if cfg.virtual_clock { "virtual" } else { "real" };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let running = server::start(cfg, listener, server::signal()).await?;
        let metrics = running
            .metrics_addr
            .map_or("off".to_string(), |m| format!("http://{m}/metrics"));
        tracing::info!(
            "tcpsim serving gRPC on {} ({clock} clock), metrics {metrics}; SIGINT or SIGTERM stops it",
            running.addr
        );
        running.done.await.context("the server task failed")??;
        tracing::info!("tcpsim stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Log lines to stderr, as text or JSON, filtered by `filter`.
fn logs(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("--log {filter:?}"))?;
    // Colours only for a terminal: a file or a pipe gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot start the log: {e}"))
}

fn health(target: &Target, opts: client::Options) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = runtime()?.block_on(opts.health(target))?;
    println!("{}", status.as_str_name());
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_conformance(
    paths: &[PathBuf],
    via: Via,
    target: Option<Target>,
    opts: client::Options,
    profile: ProfileName,
) -> anyhow::Result<ExitCode> {
    let base = tcp::Config::for_profile(profile);
    let files = conformance::collect(paths)?;
    let reports = match (target, via) {
        (Some(target), _) => {
            let mut engine = conformance::grpc::ViaGrpc::connect(&target, &opts)?;
            conformance::run_files(&files, &mut engine, &base)
        }
        (None, Via::Core) => {
            conformance::run_files(&files, &mut conformance::InProcess::new(), &base)
        }
        (None, Via::Table) => {
            conformance::run_files(&files, &mut conformance::ThroughTable::new(), &base)
        }
    };
    let failed = reports.iter().filter(|r| r.outcome.is_err()).count();
    for r in &reports {
        println!("{r}");
    }
    println!("{} passed, {} failed", reports.len() - failed, failed);
    Ok(if failed > 0 || reports.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn load(
    path: &Path,
    targets: Vec<Target>,
    client: client::Options,
    scale: f64,
    tick_ms: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    // Every check on the file happens before anything is sent.
    let scenario = tcpsim::load::parse(&text).with_context(|| path.display().to_string())?;
    if !(scale > 0.0 && scale.is_finite()) {
        bail!("--scale {scale} must be above 0");
    }
    let opts = tcpsim::load::Options {
        targets,
        client,
        scale,
        tick_ms,
        progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = runtime()?.block_on(tcpsim::load::run(&scenario, &opts))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tcpsim::load::render(&report));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    /// Each protocol flag is an `Overrides` field of the same name, and each field has its flag.
    #[test]
    fn every_protocol_setting_has_its_flag() {
        let fields: Vec<String> = TcpArgs::defaults().into_iter().map(|(id, _)| id).collect();
        assert_eq!(fields.len(), 17);
        let serve = command();
        let serve = serve.find_subcommand("serve").unwrap();
        for id in &fields {
            let arg = serve.get_arguments().find(|a| a.get_id() == id.as_str());
            let help = arg.and_then(|a| a.get_help()).map(|h| h.to_string());
            let help = help.unwrap_or_else(|| panic!("no --{id}"));
            assert!(help.contains("[default: "), "--{id}: {help}");
        }
        let rto_min = serve
            .get_arguments()
            .find(|a| a.get_id() == "rto_min_ms")
            .unwrap();
        assert!(
            rto_min
                .get_help()
                .unwrap()
                .to_string()
                .ends_with("[default: linux: 200, rfc9293: 1000]")
        );
    }

    #[test]
    fn flags_reach_the_settings_by_name() {
        let cli = Cli::try_parse_from([
            "tcpsim",
            "serve",
            "--profile",
            "rfc9293",
            "--mss",
            "1000",
            "--nodelay",
            "true",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve")
        };
        let c = a.tcp.config().unwrap();
        assert_eq!(c.profile.name, ProfileName::Rfc9293);
        assert_eq!((c.mss, c.nodelay, c.rto_min_ms), (1000, true, 1000));
    }
}

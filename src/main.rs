//! The `tcpsim` command line.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tcpsim::conformance::{self, InProcess};
use tcpsim::server::{self, ServeConfig};
use tcpsim::service::Limits;
use tcpsim::table::{Cidr, TableConfig};
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
        /// The server, as a URL (https:// for TLS).
        #[arg(long, env = "TCPSIM_ADDR", default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// PEM CA certificate to trust for https:// (a self-signed server's own certificate).
        #[arg(long, env = "TCPSIM_TLS_CA")]
        tls_ca: Option<PathBuf>,
        /// The name the server's certificate is for, if not the URL's host.
        #[arg(long, env = "TCPSIM_TLS_DOMAIN")]
        tls_domain: Option<String>,
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
        /// Run them through a server's gRPC API instead (it must use a virtual clock).
        #[arg(long, env = "TCPSIM_TARGET")]
        target: Option<String>,
        /// Bearer token for --target.
        #[arg(long, env = "TCPSIM_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The profile the engine runs (the recordings are Linux's: under `rfc9293` the files
        /// where RFC 9293 and Linux part fail, which shows where they do).
        #[arg(long, default_value = "linux", value_parser = profile_name)]
        profile: ProfileName,
    },
    /// Runs a load scenario (YAML: phases of opens, closes, faults, churn and expectations)
    /// against one or more servers, with a progress bar per phase and a report at the end.
    Load {
        /// The scenario file (see scenarios/).
        scenario: PathBuf,
        /// Servers, comma-separated; connections are spread over them.
        #[arg(
            long,
            env = "TCPSIM_TARGET",
            value_delimiter = ',',
            default_value = "http://127.0.0.1:50051"
        )]
        target: Vec<String>,
        /// Bearer token.
        #[arg(long, env = "TCPSIM_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Multiply every count, rate and expected occupancy (0.1 runs a scenario small).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Print the report as JSON (and no progress bars).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "TCPSIM_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// A real clock, or a virtual one that moves only on AdvanceClock.
    #[arg(long, env = "TCPSIM_CLOCK", value_enum, default_value = "real")]
    clock: ClockKind,
    #[command(flatten)]
    tcp: TcpArgs,
    /// Connections to pre-size the table for.
    #[arg(long, env = "TCPSIM_CAPACITY", default_value_t = 1 << 16)]
    capacity: usize,
    /// Most connections; opens beyond are refused.
    #[arg(long, env = "TCPSIM_MAX_CONNECTIONS", default_value_t = 10_000_000)]
    max_connections: usize,
    /// Client address pools (CIDR blocks, comma-separated).
    #[arg(
        long,
        env = "TCPSIM_CLIENT_POOLS",
        value_delimiter = ',',
        default_value = "10.0.0.0/16"
    )]
    client_pools: Vec<Cidr>,
    /// Server addr:ports connections go to (comma-separated).
    #[arg(
        long,
        env = "TCPSIM_SERVERS",
        value_delimiter = ',',
        default_value = "10.255.0.1:80"
    )]
    servers: Vec<SocketAddrV4>,
    /// Ephemeral port range (Linux ip_local_port_range).
    #[arg(long, env = "TCPSIM_PORTS", default_value = "32768-60999", value_parser = port_range)]
    ports: (u16, u16),
    /// Seeds the ISS of each connection (runs on a virtual clock replay exactly).
    #[arg(long, env = "TCPSIM_SEED", default_value_t = 0x7463_7073_696d)]
    seed: u64,
    /// Most connections one Open may ask for.
    #[arg(long, env = "TCPSIM_MAX_OPEN_BATCH", default_value_t = 10_000)]
    max_open_batch: u32,
    /// Most connections per List page.
    #[arg(long, env = "TCPSIM_MAX_PAGE_SIZE", default_value_t = 1_000)]
    max_page_size: u32,
    /// Most segments one Wire call may move.
    #[arg(long, env = "TCPSIM_MAX_WIRE_COUNT", default_value_t = 1_024)]
    max_wire_count: u32,
    /// Events a Watch subscriber may have queued before it misses some.
    #[arg(long, env = "TCPSIM_WATCH_BUFFER", default_value_t = 1_024)]
    watch_buffer: usize,
    /// Largest gRPC message, either way.
    #[arg(long, env = "TCPSIM_MAX_MESSAGE_BYTES", default_value_t = 4 << 20)]
    max_message_bytes: usize,
    /// How long in-flight calls may take to finish after SIGINT or SIGTERM.
    #[arg(long, env = "TCPSIM_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    shutdown_grace_ms: u64,
    /// Require `authorization: Bearer <token>` on every Simulator call.
    #[arg(long, env = "TCPSIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve Prometheus metrics (GET /metrics) on this address; "off" for none.
    #[arg(long, env = "TCPSIM_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = metrics_listen)]
    metrics_listen: MetricsListen,
    /// Serve TLS: PEM certificate chain (with --tls-key).
    #[arg(long, env = "TCPSIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serve TLS: PEM private key (with --tls-cert).
    #[arg(long, env = "TCPSIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Protocol settings: a profile, and any setting changed from its defaults. Each is checked
/// against its range before the server starts.
#[derive(Args)]
struct TcpArgs {
    /// Follow Linux (`linux`, what the conformance recordings check) or a plain reading of
    /// RFC 9293 with RFC 6298's timers (`rfc9293`). The profile sets the defaults below where
    /// the two differ.
    #[arg(long, env = "TCPSIM_PROFILE", value_parser = profile_name)]
    profile: Option<ProfileName>,
    /// RFC 5961's challenge ACKs [linux: true; rfc9293: false].
    #[arg(long, env = "TCPSIM_RFC5961")]
    rfc5961: Option<bool>,
    /// MSL in ms; TIME-WAIT lasts 2·MSL [linux: 30000, Linux's fixed 60 s TIME-WAIT; rfc9293:
    /// 120000].
    #[arg(long, env = "TCPSIM_MSL_MS")]
    msl_ms: Option<u32>,
    /// How long an orphaned connection may stay in FIN-WAIT-2, ms (Linux tcp_fin_timeout)
    /// [60000].
    #[arg(long, env = "TCPSIM_FIN_TIMEOUT_MS")]
    fin_timeout_ms: Option<u32>,
    /// SYN retransmissions (Linux tcp_syn_retries, 1-127) [6].
    #[arg(long, env = "TCPSIM_SYN_RETRIES")]
    syn_retries: Option<u8>,
    /// SYN retransmissions 1 s apart before doubling (Linux tcp_syn_linear_timeouts) [linux: 4;
    /// rfc9293: 0].
    #[arg(long, env = "TCPSIM_SYN_LINEAR_TIMEOUTS")]
    syn_linear_timeouts: Option<u8>,
    /// SYN-ACK retransmissions (Linux tcp_synack_retries) [5].
    #[arg(long, env = "TCPSIM_SYNACK_RETRIES")]
    synack_retries: Option<u8>,
    /// Data and FIN retransmissions (Linux tcp_retries2) [15].
    #[arg(long, env = "TCPSIM_DATA_RETRIES")]
    data_retries: Option<u8>,
    /// Retransmissions of a closed connection's data or FIN; 0 acts as 8 (Linux
    /// tcp_orphan_retries; linux profile only) [0].
    #[arg(long, env = "TCPSIM_ORPHAN_RETRIES")]
    orphan_retries: Option<u8>,
    /// Our MSS, bytes (88-65495) [1460].
    #[arg(long, env = "TCPSIM_MSS")]
    mss: Option<u16>,
    /// The receive window advertised, bytes (1-65535) [65535].
    #[arg(long, env = "TCPSIM_RCV_WND")]
    rcv_wnd: Option<u16>,
    /// Most bytes a Send may leave queued [4194304].
    #[arg(long, env = "TCPSIM_SND_BUF")]
    snd_buf: Option<u32>,
    /// The RTO before any RTT sample, ms [1000].
    #[arg(long, env = "TCPSIM_RTO_INITIAL_MS")]
    rto_initial_ms: Option<u32>,
    /// The RTO's floor, ms [linux: 200; rfc9293: 1000].
    #[arg(long, env = "TCPSIM_RTO_MIN_MS")]
    rto_min_ms: Option<u32>,
    /// The RTO's ceiling, ms (1000-120000) [120000].
    #[arg(long, env = "TCPSIM_RTO_MAX_MS")]
    rto_max_ms: Option<u32>,
    /// TCP_NODELAY on every connection: no Nagle [false].
    #[arg(long, env = "TCPSIM_NODELAY")]
    nodelay: Option<bool>,
    /// The least time between two ACKs for unacceptable segments, ms (Linux
    /// tcp_invalid_ratelimit; 0: no limit; linux profile only) [500].
    #[arg(long, env = "TCPSIM_INVALID_RATELIMIT_MS")]
    invalid_ratelimit_ms: Option<u32>,
}

impl TcpArgs {
    /// The settings these flags ask for, checked.
    fn config(&self) -> Result<tcp::Config, tcp::ConfigError> {
        tcp::Overrides {
            profile: self.profile,
            rfc5961: self.rfc5961,
            mss: self.mss,
            rcv_wnd: self.rcv_wnd,
            snd_buf: self.snd_buf,
            rto_initial_ms: self.rto_initial_ms,
            rto_min_ms: self.rto_min_ms,
            rto_max_ms: self.rto_max_ms,
            syn_retries: self.syn_retries,
            syn_linear_timeouts: self.syn_linear_timeouts,
            synack_retries: self.synack_retries,
            data_retries: self.data_retries,
            orphan_retries: self.orphan_retries,
            msl_ms: self.msl_ms,
            fin_timeout_ms: self.fin_timeout_ms,
            invalid_ratelimit_ms: self.invalid_ratelimit_ms,
            nodelay: self.nodelay,
        }
        .apply(&tcp::Config::default())
    }
}

fn profile_name(s: &str) -> Result<ProfileName, String> {
    ProfileName::parse(s).ok_or_else(|| format!("{s:?} is not a profile: linux or rfc9293"))
}

#[derive(Clone, Copy)]
struct MetricsListen(Option<SocketAddr>);

fn metrics_listen(s: &str) -> Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    s.parse()
        .map(|a| MetricsListen(Some(a)))
        .map_err(|_| format!("{s:?} is not an address:port (or \"off\")"))
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected LOW-HIGH, e.g. 32768-60999"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{lo:?} is not a port"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{hi:?} is not a port"))?;
    if lo == 0 || lo > hi {
        return Err(format!(
            "{s:?}: the range must start above 0 and not end before it starts"
        ));
    }
    Ok((lo, hi))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args),
        Command::Health {
            addr,
            tls_ca,
            tls_domain,
        } => health(&addr, tls_ca, tls_domain),
        Command::Conformance {
            paths,
            via,
            target,
            token,
            profile,
        } => run_conformance(&paths, via, target, token, profile),
        Command::Load {
            scenario,
            target,
            token,
            scale,
            json,
        } => load(&scenario, target, token, scale, json),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn serve(a: ServeArgs) -> ExitCode {
    let tcp = match a.tcp.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: --{} (TCPSIM_{}): {} is out of range: {}",
                e.setting.replace('_', "-"),
                e.setting.to_ascii_uppercase(),
                e.value,
                e.reason
            );
            return ExitCode::FAILURE;
        }
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(cert_pem), Ok(key_pem)) => Some(server::Tls { cert_pem, key_pem }),
            (Err(e), _) => {
                eprintln!("error: --tls-cert {}: {e}", cert.display());
                return ExitCode::FAILURE;
            }
            (_, Err(e)) => {
                eprintln!("error: --tls-key {}: {e}", key.display());
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let defaults = TableConfig::default();
    let cfg = ServeConfig {
        table: TableConfig {
            capacity: a.capacity,
            max_connections: a.max_connections,
            client_pools: a.client_pools,
            servers: a.servers,
            ports: a.ports,
            seed: a.seed,
            ..defaults
        },
        tcp,
        virtual_clock: matches!(a.clock, ClockKind::Virtual),
        limits: Limits {
            max_open_batch: a.max_open_batch,
            max_page_size: a.max_page_size,
            max_wire_count: a.max_wire_count,
            watch_buffer: a.watch_buffer,
        },
        token: a.token,
        max_message_bytes: a.max_message_bytes,
        shutdown_grace: Duration::from_millis(a.shutdown_grace_ms),
        tls,
        metrics_listen: a.metrics_listen.0,
    };
    let clock = if cfg.virtual_clock { "virtual" } else { "real" };
    runtime().block_on(async move {
        let listener = match tokio::net::TcpListener::bind(a.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", a.listen);
                return ExitCode::FAILURE;
            }
        };
        let running = match server::start(cfg, listener, server::signal()).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "tcpsim serving gRPC on {} ({clock} clock); SIGINT or SIGTERM stops it",
            running.addr
        );
        match running.done.await {
            Ok(Ok(())) => {
                eprintln!("tcpsim stopped");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn health(addr: &str, tls_ca: Option<PathBuf>, tls_domain: Option<String>) -> ExitCode {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let r: Result<i32, String> = runtime().block_on(async {
        let mut endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| format!("{addr:?} is not a URL: {e}"))?
            .connect_timeout(Duration::from_secs(3));
        if let Some(ca) = &tls_ca {
            let pem = std::fs::read(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            if let Some(d) = &tls_domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        let mut c = HealthClient::new(channel);
        let resp = c
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(resp.into_inner().status)
    });
    match r {
        Ok(s) if s == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(s) => {
            println!(
                "{}",
                tonic_health::pb::health_check_response::ServingStatus::try_from(s)
                    .map_or("UNKNOWN", |s| s.as_str_name())
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_conformance(
    paths: &[PathBuf],
    via: Via,
    target: Option<String>,
    token: Option<String>,
    profile: ProfileName,
) -> ExitCode {
    let base = tcp::Config::for_profile(profile);
    let files = match conformance::collect(paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match (target, via) {
        (Some(url), _) => match conformance::grpc::ViaGrpc::connect(&url, token) {
            Ok(mut engine) => conformance::run_files(&files, &mut engine, &base),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, Via::Core) => conformance::run_files(&files, &mut InProcess::new(), &base),
        (None, Via::Table) => {
            conformance::run_files(&files, &mut conformance::ThroughTable::new(), &base)
        }
    };
    let failed = reports.iter().filter(|r| r.outcome.is_err()).count();
    for r in &reports {
        println!("{r}");
    }
    println!("{} passed, {} failed", reports.len() - failed, failed);
    if failed > 0 || reports.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn load(
    path: &std::path::Path,
    targets: Vec<String>,
    token: Option<String>,
    scale: f64,
    json: bool,
) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    // Every check on the file happens before anything is sent.
    let scenario = match tcpsim::load::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if !(scale > 0.0 && scale.is_finite()) {
        eprintln!("error: --scale {scale} must be above 0");
        return ExitCode::FAILURE;
    }
    let opts = tcpsim::load::Options {
        targets,
        token,
        scale,
        progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    match runtime().block_on(tcpsim::load::run(&scenario, &opts)) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serializes")
                );
            } else {
                print!("{}", tcpsim::load::render(&report));
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

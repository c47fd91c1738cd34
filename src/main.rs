//! The `tcpsim` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tcpsim::conformance::{self, InProcess};
use tcpsim::tcp::{Config, Pair, SeqNum, Side, pair};

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

#[derive(Subcommand)]
enum Command {
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
    },
    /// Walks one MANUAL connection through the seed's handshake and four-way close, printing
    /// every segment and both sides' states.
    Demo,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Conformance { paths, via } => run_conformance(&paths, via),
        Command::Demo => {
            demo();
            ExitCode::SUCCESS
        }
    }
}

fn run_conformance(paths: &[PathBuf], via: Via) -> ExitCode {
    let files = match conformance::collect(paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match via {
        Via::Core => conformance::run_files(&files, &mut InProcess::new()),
        Via::Table => conformance::run_files(&files, &mut conformance::ThroughTable::new()),
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

/// The seed's exchange on a MANUAL pair, one segment at a time.
fn demo() {
    let cfg = Config::default();
    let mut p = Pair::manual();
    let mut scratch = pair::Scratch::default();
    let mut now = 0;
    let show = |p: &Pair, what: &str| {
        println!(
            "{what:<44} client {:<12} server {}",
            p.state(Side::Client).rfc_name(),
            p.state(Side::Server).rfc_name()
        );
    };
    p.open(&cfg, now, SeqNum(100), SeqNum(300), &mut scratch, &mut ())
        .expect("a fresh pair opens");
    show(&p, "client connects, server listens");
    let step = |p: &mut Pair, scratch: &mut pair::Scratch, now: u64, dir: pair::Direction| {
        let moved = p
            .deliver(&cfg, now, dir, 1, scratch, &mut ())
            .expect("a segment waits");
        let arrow = if dir == pair::Direction::ClientToServer {
            "client -> server"
        } else {
            "server -> client"
        };
        show(p, &format!("{arrow} {}", moved[0]));
    };
    use pair::Direction::{ClientToServer as C2S, ServerToClient as S2C};
    step(&mut p, &mut scratch, now, C2S);
    step(&mut p, &mut scratch, now, S2C);
    step(&mut p, &mut scratch, now, C2S);
    p.close(&cfg, now, Side::Client, &mut scratch, &mut ())
        .expect("established closes");
    show(&p, "client closes");
    step(&mut p, &mut scratch, now, C2S);
    step(&mut p, &mut scratch, now, S2C);
    p.close(&cfg, now, Side::Server, &mut scratch, &mut ())
        .expect("close-wait closes");
    show(&p, "server closes");
    step(&mut p, &mut scratch, now, S2C);
    step(&mut p, &mut scratch, now, C2S);
    now += cfg.time_wait_ms();
    p.on_timeout(&cfg, now, &mut scratch, &mut ());
    show(
        &p,
        &format!("{} s later (2·MSL)", cfg.time_wait_ms() / 1000),
    );
}

//! The table's simulation (`tests/sim`) for as long as you like: one seed, many steps, every
//! result held to the reference model and the invariants checked every 500 steps. Too long for
//! CI; run it before a release:
//!
//!     cargo run --release --example soak -- --steps 100000000 --seed 1
//!
//! A failure prints the step, what the model expected and what came, and the command that
//! replays it (`tests/table_sim.rs`'s `replay`); the exit code is then 1.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut steps: u64 = 100_000_000;
    let mut seed: u64 = 1;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--steps", Some(v)) => steps = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: soak [--steps N] [--seed S]");
                return ExitCode::from(2);
            }
        }
    }
    let started = Instant::now();
    match sim::simulate(seed, steps, 500, 0) {
        Ok((_, max_jump)) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "soak: seed {seed}: {steps} steps in {secs:.0} s ({:.0} steps/s), every result as the model expects, every invariant held; longest clock jump {:.1} years",
                steps as f64 / secs,
                max_jump as f64 / (365.0 * 24.0 * 3600.0 * 1000.0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "soak: seed {seed} failed: {e}\nreplay: TCPSIM_SIM_SEED={seed} TCPSIM_SIM_STEPS={steps} cargo test --release --test table_sim -- --ignored replay"
            );
            ExitCode::FAILURE
        }
    }
}

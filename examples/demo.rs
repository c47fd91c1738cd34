//! One MANUAL connection through the handshake and the four-way close, a segment at a time,
//! printing every segment and both sides' states: the core's API in thirty lines.
//!
//! `cargo run --example demo`

use tcpsim::tcp::pair::{Direction, Manual, Scratch};
use tcpsim::tcp::{Call, Config, SeqNum, Side};

fn main() {
    let cfg = Config::default();
    let mut m = Manual::new(None);
    let mut scratch = Scratch::default();
    let show = |m: &Manual, what: &str| {
        println!(
            "{what:<44} client {:<12} server {}",
            m.pair.state(Side::Client).rfc_name(),
            m.pair.state(Side::Server).rfc_name()
        );
    };
    let step = |m: &mut Manual, scratch: &mut Scratch, now: u64, dir: Direction| {
        let moved = m
            .drive()
            .deliver(&cfg, now, dir, 1, scratch, &mut ())
            .expect("a segment waits");
        let arrow = match dir {
            Direction::ClientToServer => "client -> server",
            Direction::ServerToClient => "server -> client",
        };
        show(m, &format!("{arrow} {}", moved[0]));
    };
    let close = |m: &mut Manual, scratch: &mut Scratch, now: u64, side: Side| {
        m.drive()
            .call(&cfg, now, side, Call::Close, scratch, &mut ())
            .expect("an open side closes");
        show(m, &format!("{} closes", side.as_str()));
    };
    use Direction::{ClientToServer as C2S, ServerToClient as S2C};

    let mut now = 0;
    m.drive()
        .open(&cfg, now, SeqNum(100), SeqNum(300), &mut scratch, &mut ())
        .expect("a fresh pair opens");
    show(&m, "client connects, server listens");
    for dir in [C2S, S2C, C2S] {
        step(&mut m, &mut scratch, now, dir);
    }
    close(&mut m, &mut scratch, now, Side::Client);
    step(&mut m, &mut scratch, now, C2S);
    step(&mut m, &mut scratch, now, S2C);
    close(&mut m, &mut scratch, now, Side::Server);
    step(&mut m, &mut scratch, now, S2C);
    step(&mut m, &mut scratch, now, C2S);
    now += cfg.time_wait_ms();
    m.drive().on_timeout(&cfg, now, &mut scratch, &mut ());
    show(
        &m,
        &format!("{} s later (2·MSL)", cfg.time_wait_ms() / 1000),
    );
}

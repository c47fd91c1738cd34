//! A simulated TCP lifecycle against a real one, measured by the same command in the same run.
//!
//! - real: connect, accept and close over the kernel's loopback (127.0.0.1), one connection at a
//!   time; the server side closes first, so TIME-WAIT stays on the listener's side and the client
//!   never runs out of ephemeral ports;
//! - simulated (the in-process lifecycle of `benches/lifecycle.rs`): a `Pair` opens (three-way
//!   handshake), closes both sides and expires its TIME-WAIT: seven segments, thirteen transitions;
//! - the same through the connection table (what a gRPC caller gets, minus gRPC): besides the
//!   protocol, a port taken and given back, a map entry, a timer-wheel entry and the counters.
//!
//! Target: a simulated lifecycle at least 100× cheaper than a real one.
//!
//!     cargo bench --bench loopback [-- N]

use std::hint::black_box;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use tcpsim::table::{Clock, Mode, OpenSpec, Sides, Table, TableConfig};
use tcpsim::tcp::pair::Scratch;
use tcpsim::tcp::{self, Call};

mod common;

fn real(n: u32) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let mut client = TcpStream::connect(addr).expect("connect on loopback");
        let (server, _) = listener.accept().expect("accept");
        drop(server); // server closes first: FIN to the client
        let mut buf = [0u8; 1];
        let _ = client.read(&mut buf); // the client sees EOF, then closes too
        drop(client);
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

fn through_table(n: u32) -> f64 {
    let t = Table::new(
        TableConfig {
            capacity: 4096,
            ..TableConfig::default()
        },
        tcp::Config::default(),
        Clock::virtual_at(0),
    )
    .unwrap();
    let spec = OpenSpec::new(Mode::Auto);
    let start = Instant::now();
    let mut ids = Vec::with_capacity(1000);
    for _ in 0..n / 1000 {
        for _ in 0..1000 {
            ids.push(t.open(&spec).unwrap().id);
        }
        for id in ids.drain(..) {
            t.call(id, Sides::Both, Call::Close).unwrap();
        }
        t.advance(60_000).unwrap();
    }
    assert!(t.is_empty());
    start.elapsed().as_secs_f64() / f64::from(n / 1000 * 1000)
}

fn core_only(n: u32) -> f64 {
    let cfg = tcp::Config::default();
    let mut scratch = Scratch::default();
    let start = Instant::now();
    for i in 0..n {
        black_box(common::core_lifecycle(&cfg, &mut scratch, i));
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    // Interleave three rounds; report medians.
    let (mut r, mut t, mut c) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        r.push(real(n));
        t.push(through_table(n.max(1000) * 20));
        c.push(core_only(n.max(1000) * 20));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (r, t, c) = (med(&mut r), med(&mut t), med(&mut c));
    println!(
        "loopback: real TCP connect+accept+close on 127.0.0.1: {:.1} µs per lifecycle ({:.0}/s)",
        r * 1e6,
        1.0 / r
    );
    println!(
        "loopback: simulated lifecycle (handshake, close both sides, TIME-WAIT expiry): {:.0} ns: {:.0}× cheaper (target >= 100×)",
        c * 1e9,
        r / c
    );
    println!(
        "loopback: the same through the connection table (port, map, wheel, counters): {:.0} ns: {:.0}× cheaper",
        t * 1e9,
        r / t
    );
}

//! The cost of one full AUTO lifecycle in the core: open (three-way handshake), close from both
//! sides, and TIME-WAIT expiry. Issue target: ≤ 250 ns per lifecycle on one core.
//!
//! `cargo bench --bench lifecycle`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tcpsim::tcp::pair::Scratch;
use tcpsim::tcp::{Call, Config, Pair, SeqNum, Side, State};

fn lifecycle(c: &mut Criterion) {
    let cfg = Config::default();
    let mut scratch = Scratch::default();
    let mut group = c.benchmark_group("auto_lifecycle");

    // Four-way close: client first, so the client holds TIME-WAIT.
    group.bench_function("open_close_both_time_wait", |b| {
        let mut iss = 1u32;
        b.iter(|| {
            iss = iss.wrapping_mul(2_654_435_761).wrapping_add(1);
            let mut p = Pair::new();
            p.drive()
                .open(&cfg, 0, SeqNum(iss), SeqNum(!iss), &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .call(&cfg, 1, Side::Client, Call::Close, &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .call(&cfg, 2, Side::Server, Call::Close, &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .on_timeout(&cfg, 2 + cfg.time_wait_ms(), &mut scratch, &mut ());
            debug_assert_eq!(p.state(Side::Client), State::Closed);
            black_box(p)
        })
    });

    // Simultaneous close: both sides pass through CLOSING and both hold TIME-WAIT.
    group.bench_function("open_simultaneous_close_time_wait", |b| {
        b.iter(|| {
            let mut p = Pair::new();
            p.drive()
                .open(&cfg, 0, SeqNum(7), SeqNum(9), &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .close_both(&cfg, 1, false, &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .on_timeout(&cfg, 1 + cfg.time_wait_ms(), &mut scratch, &mut ());
            black_box(p)
        })
    });

    // With 10 kB of data each way in between.
    group.bench_function("open_data_close_time_wait", |b| {
        b.iter(|| {
            let mut p = Pair::new();
            p.drive()
                .open(&cfg, 0, SeqNum(7), SeqNum(9), &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .call(
                    &cfg,
                    1,
                    Side::Client,
                    Call::Send(10_000),
                    &mut scratch,
                    &mut (),
                )
                .unwrap();
            p.drive()
                .call(
                    &cfg,
                    1,
                    Side::Server,
                    Call::Send(10_000),
                    &mut scratch,
                    &mut (),
                )
                .unwrap();
            p.drive()
                .call(&cfg, 2, Side::Client, Call::Close, &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .call(&cfg, 2, Side::Server, Call::Close, &mut scratch, &mut ())
                .unwrap();
            p.drive()
                .on_timeout(&cfg, 2 + cfg.time_wait_ms(), &mut scratch, &mut ());
            black_box(p)
        })
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);

//! Connection-table benchmarks. Prints its figures; the README quotes them.
//!
//!     cargo bench --bench table                   # all, at 1 M connections
//!     cargo bench --bench table -- memory 10000000
//!     cargo bench --bench table -- lifecycle 1000000
//!     cargo bench --bench table -- storm 1000000
//!     cargo bench --bench table -- scrape 1000000
//!     cargo bench --bench table -- state 1000000    # the state file: size, write and read times
//!     cargo bench --bench table -- hosts           # per-host state: servers, client addresses
//!     cargo bench --bench table -- link 1000000     # RSS on a link; lifecycles on one against none
//!     cargo bench --bench table -- link-rss none 1000000  # the RSS alone, on a link given
//!     cargo bench --bench table -- link1 delay=25ms       # profiling aid: lifecycles on one link
//!     cargo bench --bench table -- send            # profiling aid: table Send in a loop
//!
//! - memory: process RSS growth per ESTABLISHED AUTO pair (map, boxes, ports — everything).
//! - lifecycle: full lifecycles per second (open, close both sides, TIME-WAIT expiry on the
//!   virtual clock) on 1 and 2 threads with N connections resident, beside a bare dashmap
//!   insert+get+remove cycle on the same key and value types, measured in the same run; and the
//!   same lifecycle in the core alone, so that each lifecycle splits into map cycle + protocol +
//!   the table's own work (ports, wheel, counters).
//! - storm: N TIME-WAITs due at once: the CPU time to expire them, and the longest pause a
//!   concurrent opener sees meanwhile.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use tcpsim::table::{
    Clock, Conn, ConnId, Mode, OpenSpec, SegmentOutcome, Sides, Table, TableConfig,
};
use tcpsim::tcp::pair::Scratch;
use tcpsim::tcp::{self, Call, Pair};

mod common;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has rss");
    pages * 4096
}

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn table(capacity: usize, shards: usize) -> Table {
    let cfg = TableConfig {
        shards,
        capacity,
        max_connections: 50_000_000,
        client_pools: vec!["10.0.0.0/12".parse().unwrap()],
        ..TableConfig::default()
    };
    Table::new(cfg, tcp::Config::default(), Clock::virtual_at(0)).unwrap()
}

fn fill(t: &Table, n: usize) {
    let spec = OpenSpec::new(Mode::Auto);
    for _ in 0..n {
        t.open(&spec).unwrap();
    }
}

/// The state file of `n` connections, a third of them in TIME-WAIT (a timer each): its size,
/// and the time to write it (fsync included) and to read it back into a new table.
fn state(n: usize) {
    let t = table(n, 64);
    fill(&t, n);
    let mut ids = Vec::with_capacity(n);
    t.for_each(|id, _| ids.push(id));
    for id in ids.into_iter().step_by(3) {
        t.call(id, Sides::One(tcpsim::tcp::Side::Client), Call::Close)
            .unwrap();
        t.call(id, Sides::One(tcpsim::tcp::Side::Server), Call::Close)
            .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("tcpsim-bench-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sim.state");
    let saved = tcpsim::state::save(&t, &path).unwrap();
    let cfg = TableConfig {
        shards: 64,
        capacity: n,
        max_connections: 50_000_000,
        client_pools: vec!["10.0.0.0/12".parse().unwrap()],
        ..TableConfig::default()
    };
    drop(t);
    let (back, read) = tcpsim::state::load(&path, &cfg, &tcp::Config::default(), true)
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), n);
    println!(
        "state: {n} connections: {:.1} MB ({:.1} bytes each); written in {:.2} s, read back in {:.2} s",
        saved.bytes as f64 / 1e6,
        saved.bytes as f64 / n as f64,
        saved.took.as_secs_f64(),
        read.took.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn memory(n: usize) {
    let before = rss_bytes();
    let t = table(n, 64);
    let empty = rss_bytes();
    let start = Instant::now();
    fill(&t, n);
    let took = start.elapsed();
    let after = rss_bytes();
    let per = (after - before) as f64 / n as f64;
    println!(
        "memory: {n} ESTABLISHED AUTO pairs: RSS +{:.0} MiB ({:.1} MiB of it the pre-sized empty table) = {per:.1} bytes per connection (target <= 160); opened in {:.2} s ({:.0} opens/s)",
        (after - before) as f64 / (1 << 20) as f64,
        (empty - before) as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    black_box(&t);
}

/// The per-host state, measured by RSS: what a server host (its listener, its timewait count,
/// its place in the address map) costs, from a table of 65 536 servers against one of 1; and
/// what client addresses cost, from a 10.0.0.0/8 pool (16.7 M addresses) whose timewait counts
/// are touched on 256 addresses 65 536 apart (each a chunk) against none.
fn hosts() {
    let servers = |n: u32| -> Vec<std::net::SocketAddrV4> {
        (0..n)
            .map(|i| std::net::SocketAddrV4::new(std::net::Ipv4Addr::from(0x0AFF_0000 + i), 80))
            .collect()
    };
    let make = |servers: Vec<std::net::SocketAddrV4>, pool: &str| {
        Table::new(
            TableConfig {
                shards: 64,
                capacity: 1 << 10,
                servers,
                client_pools: vec![pool.parse().unwrap()],
                ..TableConfig::default()
            },
            tcp::Config::default(),
            Clock::virtual_at(0),
        )
        .unwrap()
    };
    let before = rss_bytes();
    let one = make(servers(1), "10.0.0.0/16");
    let mid = rss_bytes();
    let many = make(servers(65_536), "10.0.0.0/16");
    let after = rss_bytes();
    let per_server = ((after - mid) as f64 - (mid - before) as f64) / 65_535.0;
    println!(
        "hosts: a server host costs {per_server:.0} bytes (a table of 65 536 servers: RSS +{:.1} MiB; of 1: +{:.1} MiB)",
        (after - mid) as f64 / (1 << 20) as f64,
        (mid - before) as f64 / (1 << 20) as f64
    );
    black_box((&one, &many));
    drop((one, many));
    let t = make(servers(1), "10.0.0.0/8");
    let start = rss_bytes();
    for k in 0..256u32 {
        let ip = std::net::Ipv4Addr::from(0x0A00_0001 + k * 65_536);
        let spec = OpenSpec {
            client_ip: Some(ip),
            ..OpenSpec::new(Mode::Auto)
        };
        let id = t.open(&spec).unwrap().id;
        t.call(id, Sides::Both, Call::Close).unwrap();
    }
    let touched = rss_bytes();
    println!(
        "hosts: client addresses cost nothing until used: a 16.7 M address pool, timewait counts on 256 addresses 65 536 apart: RSS +{:.1} MiB ({:.0} KiB per chunk of 65 536 addresses, {:.1} bytes per address in it)",
        (touched - start) as f64 / (1 << 20) as f64,
        (touched - start) as f64 / 256.0 / 1024.0,
        (touched - start) as f64 / 256.0 / 65_536.0
    );
    black_box(&t);
}

fn linked(link: &str, capacity: usize) -> Table {
    let cfg = TableConfig {
        shards: 64,
        capacity,
        max_connections: 50_000_000,
        client_pools: vec!["10.0.0.0/12".parse().unwrap()],
        ..TableConfig::default()
    };
    let tcp = tcp::Config {
        link: link.parse().unwrap(),
        ..tcp::Config::default()
    };
    Table::new(cfg, tcp, Clock::virtual_at(0)).unwrap()
}

/// Lifecycles through the table on `link`, one thread, in batches: open a batch, let the
/// handshakes arrive, close both sides, let the FINs arrive, let TIME-WAIT expire. Returns
/// lifecycles/s, every delivery and expiry included, the time per lifecycle (ns) in each of
/// the four steps, and the segments delivered per lifecycle.
fn link_lifecycles(link: &str, n: usize) -> (f64, [f64; 4], f64) {
    let t = linked(link, 1 << 16);
    let batch = 1_000;
    let spec = OpenSpec::new(Mode::Auto);
    let mut ids = Vec::with_capacity(batch);
    let mut steps = [0f64; 4];
    let mut lap = Instant::now();
    let mut mark = |step: usize| {
        let now = Instant::now();
        steps[step] += (now - lap).as_nanos() as f64;
        lap = now;
    };
    let start = Instant::now();
    for _ in 0..n / batch {
        ids.clear();
        for _ in 0..batch {
            ids.push(t.open(&spec).unwrap().id);
        }
        mark(0);
        t.advance(2_000).unwrap();
        mark(1);
        for &id in &ids {
            let _ = t.call(id, Sides::Both, Call::Close);
        }
        mark(2);
        t.advance(70_000).unwrap();
        mark(3);
    }
    let took = start.elapsed().as_secs_f64();
    assert_eq!(t.len(), 0, "every lifecycle ended");
    let done = (n / batch * batch) as f64;
    let c = t.stats().counters;
    let delivered = tcp::Side::BOTH
        .map(|s| c.segments(s, SegmentOutcome::Delivered))
        .iter()
        .sum::<u64>();
    (
        done / took,
        steps.map(|ns| ns / done),
        delivered as f64 / done,
    )
}

/// "open 120 + handshake 300 + close 90 + to the end 400 ns".
fn show_steps(steps: [f64; 4]) -> String {
    format!(
        "open {:.0} + handshake {:.0} + close {:.0} + closing to the end {:.0} ns",
        steps[0], steps[1], steps[2], steps[3]
    )
}

/// A link against none, in the same run: lifecycles per second through the table with a 25 ms,
/// 1%-loss link and without (target: at least 0.5×); and RSS at `n` connections opened at
/// 100 k/s over a 50 ms round trip, per connection, segments in flight included.
fn link_bench(n: usize) {
    // The RSS first, on a heap nothing else has used yet: freed tables would lend it pages.
    link_rss("delay=25ms", n);
    let lifecycles = 500_000;
    for round in 0..2 {
        let (none, none_steps, _) = link_lifecycles("none", lifecycles);
        let (lossy, lossy_steps, delivered) = link_lifecycles("delay=25ms,loss=1%", lifecycles);
        println!(
            "link: round {round}: {none:.0} lifecycles/s without a link, {lossy:.0} on delay=25ms,loss=1%: {:.2}× (target >= 0.5); {delivered:.2} segments delivered per lifecycle, each {:.0} ns more than delivered at once",
            lossy / none,
            (1e9 / lossy - 1e9 / none) / delivered
        );
        println!(
            "link: round {round}: per lifecycle without a link: {}; on the link: {}",
            show_steps(none_steps),
            show_steps(lossy_steps)
        );
    }
}

/// RSS per connection at `n` connections opened at 100 k/s of virtual time on `link`, segments
/// in flight included (a fresh process: a heap that freed tables lent pages to would show less).
fn link_rss(link: &str, n: usize) {
    let before = rss_bytes();
    let t = linked(link, n);
    let spec = OpenSpec::new(Mode::Auto);
    for _ in 0..n / 100 {
        for _ in 0..100 {
            t.open(&spec).unwrap();
        }
        t.advance(1).unwrap();
    }
    let after = rss_bytes();
    let s = t.stats();
    println!(
        "link: {n} connections opened at 100 k/s on {link}: RSS +{:.0} MiB = {:.1} bytes per connection, {} segments in flight, {} client endpoints still in SYN-SENT",
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / n as f64,
        s.counters.in_flight,
        s.counters.occupancy(tcp::Side::Client, tcp::State::SynSent)
    );
    black_box(&t);
}

/// Runs `work(k)` for k in 0..threads, each on a thread of its own, all let go together by a
/// barrier, and joins them. Returns when the clock started (just before the threads).
fn on_threads(threads: usize, work: impl Fn(u64) + Clone + Send + 'static) -> Instant {
    let barrier = Arc::new(Barrier::new(threads));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads as u64)
        .map(|k| {
            let (work, barrier) = (work.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(k)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start
}

/// Lifecycles on `threads` threads against a table with `resident` connections: each thread
/// opens and closes (both sides at once) a batch of connections, then moves the virtual clock
/// past their TIME-WAITs. Returns lifecycles/s, expiries included.
fn table_lifecycles(t: &Arc<Table>, threads: usize, per_thread: usize) -> f64 {
    const BATCH: usize = 1000;
    let table = t.clone();
    let start = on_threads(threads, move |_| {
        let (t, spec) = (&table, OpenSpec::new(Mode::Auto));
        let mut ids = Vec::with_capacity(BATCH);
        for _ in 0..per_thread / BATCH {
            for _ in 0..BATCH {
                ids.push(t.open(&spec).unwrap().id);
            }
            for id in ids.drain(..) {
                t.call(id, Sides::Both, Call::Close).unwrap();
            }
            // Each thread moves the virtual clock past its batch's TIME-WAITs, as each load
            // client's AdvanceClock does: the expiries (anyone's that are due) are part of the
            // lifecycles it does. Concurrent advances share the due timers; the clock only moves
            // forward.
            t.advance(60_000).unwrap();
        }
    });
    t.advance(120_000).unwrap();
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

static ROUND: AtomicU64 = AtomicU64::new(0);

/// Bare dashmap cycles (insert, get, remove of a fresh key) beside `resident` entries, with the
/// table's key and value types, hasher and shard count. Returns /s.
fn bare_cycles(
    map: &Arc<DashMap<ConnId, Box<Conn>, FxBuildHasher>>,
    threads: usize,
    per_thread: usize,
) -> f64 {
    // Fresh keys, never resident: each thread counts in a range of its own (a shared counter
    // would add a contended atomic to the baseline that the table does not have).
    let round = ROUND.fetch_add(1, Ordering::Relaxed);
    let map = map.clone();
    let start = on_threads(threads, move |k| {
        let base = 1 << 60 | round << 48 | k << 40;
        for i in 0..per_thread as u64 {
            let key = ConnId((base + i).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            map.insert(key, Box::new(Conn::Auto(Pair::new())));
            black_box(map.get(&key).is_some());
            black_box(map.remove(&key));
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// The same lifecycle in the core alone (a `Pair`: open, simultaneous close, TIME-WAIT expiry),
/// on `threads` threads at once. Returns /s.
fn core_lifecycles(threads: usize, per_thread: usize) -> f64 {
    let start = on_threads(threads, move |_| {
        let (cfg, mut scratch) = (tcp::Config::default(), Scratch::default());
        for i in 0..per_thread as u32 {
            black_box(common::core_lifecycle(&cfg, &mut scratch, i));
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn lifecycle(resident: usize) {
    const PER_THREAD: usize = 400_000;
    let t = Arc::new(table(resident + 2 * PER_THREAD, 64));
    fill(&t, resident);
    let map: Arc<DashMap<ConnId, Box<Conn>, FxBuildHasher>> = Arc::new(
        DashMap::with_capacity_and_hasher_and_shard_amount(resident + 4096, FxBuildHasher, 64),
    );
    for i in 0..resident as u64 {
        map.insert(
            ConnId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            Box::new(Conn::Auto(Pair::new())),
        );
    }
    for threads in [1, 2] {
        // Interleave and repeat, so that both see the same machine.
        let mut table_rates = vec![];
        let mut bare_rates = vec![];
        let mut core_rates = vec![];
        for _ in 0..3 {
            bare_rates.push(bare_cycles(&map, threads, PER_THREAD));
            table_rates.push(table_lifecycles(&t, threads, PER_THREAD));
            core_rates.push(core_lifecycles(threads, PER_THREAD));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (tr, br, cr) = (
            med(&mut table_rates),
            med(&mut bare_rates),
            med(&mut core_rates),
        );
        // The floor: a lifecycle can cost no less than its map cycle plus its protocol work.
        let floor = 1.0 / (1.0 / br + 1.0 / cr);
        println!(
            "lifecycle: {threads} thread(s), {resident} resident: {:.0} lifecycles/s; bare dashmap insert+get+remove {:.0} cycles/s; ratio {:.2} (target >= 0.70)",
            tr,
            br,
            tr / br
        );
        println!(
            "lifecycle: {threads} thread(s): per thread, table {:.0} ns = bare map cycle {:.0} ns + core lifecycle {:.0} ns + table's own {:.0} ns; the map and the core alone would reach {:.2} of the bare rate; the table reaches {:.2} of theirs",
            threads as f64 * 1e9 / tr,
            threads as f64 * 1e9 / br,
            threads as f64 * 1e9 / cr,
            threads as f64 * 1e9 * (1.0 / tr - 1.0 / br - 1.0 / cr),
            floor / br,
            tr / floor
        );
    }
    assert_eq!(t.len(), resident);
}

fn storm(n: usize) {
    let t = Arc::new(table(n + 100_000, 64));
    for _ in 0..n {
        let id = t.open(&OpenSpec::new(Mode::Auto)).unwrap().id;
        t.call(id, Sides::One(tcpsim::tcp::Side::Client), Call::Close)
            .unwrap();
        t.call(id, Sides::One(tcpsim::tcp::Side::Server), Call::Close)
            .unwrap();
    }
    // All n client TIME-WAITs fall due at 60 000 ms (the virtual clock has not moved).
    assert_eq!(
        t.stats()
            .counters
            .occupancy(tcpsim::tcp::Side::Client, tcpsim::tcp::State::TimeWait),
        n as i64
    );
    let done = Arc::new(AtomicBool::new(false));
    let opener = {
        let (t, done) = (t.clone(), done.clone());
        std::thread::spawn(move || {
            let spec = OpenSpec::new(Mode::Auto);
            let (mut worst, mut ops) = (Duration::ZERO, 0u64);
            let mut lat = Vec::with_capacity(1 << 20);
            while !done.load(Ordering::Relaxed) {
                let s = Instant::now();
                let id = t.open(&spec).unwrap().id;
                t.call(id, Sides::One(tcpsim::tcp::Side::Client), Call::Abort)
                    .unwrap();
                t.remove(id).ok();
                let d = s.elapsed();
                worst = worst.max(d);
                lat.push(d);
                ops += 1;
            }
            lat.sort();
            let p999 = lat.get(lat.len() * 999 / 1000).copied().unwrap_or_default();
            (worst, p999, ops)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    let fired = t.advance(60_000).unwrap().fired;
    let (cpu, wall) = (thread_cpu_ns() - cpu0, wall0.elapsed());
    done.store(true, Ordering::Relaxed);
    let (worst, p999, ops) = opener.join().unwrap();
    assert_eq!(fired as usize, n);
    println!(
        "storm: {n} TIME-WAITs due at once expired in {:.0} ms CPU ({:.0} ms wall, {:.0} ns each); a concurrent opener did {ops} open+abort+remove meanwhile, longest {:.2} ms, p99.9 {:.3} ms (target < 5 ms)",
        cpu as f64 / 1e6,
        wall.as_secs_f64() * 1e3,
        cpu as f64 / n as f64,
        worst.as_secs_f64() * 1e3,
        p999.as_secs_f64() * 1e3
    );
}

/// The cost of one Prometheus scrape with `n` connections, beside one with none.
fn scrape(n: usize) {
    let time = |t: &Arc<Table>| {
        let m = tcpsim::metrics::Metrics::new(t.clone());
        let mut v: Vec<Duration> = (0..50)
            .map(|_| {
                let s = Instant::now();
                black_box(m.render());
                s.elapsed()
            })
            .collect();
        v.sort();
        (v[v.len() / 2], m.render().len())
    };
    let empty = Arc::new(table(1024, 64));
    let (e, _) = time(&empty);
    let full = Arc::new(table(n, 64));
    fill(&full, n);
    let (f, bytes) = time(&full);
    println!(
        "scrape: {:.0} µs with {n} connections, {:.0} µs with none ({:.2}×; {bytes} bytes of text): O(states), not O(connections)",
        f.as_secs_f64() * 1e6,
        e.as_secs_f64() * 1e6,
        f.as_secs_f64() / e.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n = |i: usize| {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000usize)
    };
    match args.first().map(String::as_str) {
        Some("memory") => memory(n(1)),
        Some("lifecycle") => lifecycle(n(1)),
        Some("storm") => storm(n(1)),
        Some("scrape") => scrape(n(1)),
        Some("state") => state(n(1)),
        Some("hosts") => hosts(),
        Some("link") => link_bench(n(1)),
        // `link_rss` alone, for a link given (in a process of its own, as it needs).
        Some("link-rss") => link_rss(args.get(1).map_or("none", String::as_str), n(2)),
        Some("link1") => {
            // Profiling aid: lifecycles on one link alone (a lossy one unless named).
            let link = args.get(1).map_or("delay=25ms,loss=1%", String::as_str);
            let (r, steps, delivered) = link_lifecycles(link, 1_000_000);
            println!(
                "link1: {link}: {r:.0} lifecycles/s: {}; {delivered:.2} segments delivered each",
                show_steps(steps)
            );
        }
        Some("table1") => {
            // Profiling aid: the one-thread table lifecycles alone.
            let t = Arc::new(table(n(1) + 1_000_000, 64));
            fill(&t, n(1));
            eprintln!("filled {}", std::process::id());
            std::thread::sleep(std::time::Duration::from_secs(2));
            let r = table_lifecycles(&t, 1, 3_000_000);
            println!("table1: {r:.0} lifecycles/s");
        }
        Some("send") => {
            // Profiling aid: table Send of 100 bytes on one AUTO pair, in a loop.
            let t = table(1 << 16, 64);
            let id = t.open(&OpenSpec::new(Mode::Auto)).unwrap().id;
            let n = 20_000_000;
            let s = Instant::now();
            for _ in 0..n {
                black_box(
                    t.call(id, Sides::One(tcpsim::tcp::Side::Client), Call::Send(100))
                        .unwrap(),
                );
            }
            println!(
                "send: {:.1} ns each",
                s.elapsed().as_nanos() as f64 / n as f64
            );
        }
        Some("table2") => {
            // Profiling aid: the two-thread table lifecycles alone.
            let t = Arc::new(table(n(1) + 1_000_000, 64));
            fill(&t, n(1));
            let r = table_lifecycles(&t, 2, 2_000_000);
            println!("table2: {r:.0} lifecycles/s");
        }
        _ => {
            // Each figure in its own process would be cleaner for RSS; memory runs first here.
            memory(1_000_000);
            lifecycle(1_000_000);
            storm(1_000_000);
            scrape(1_000_000);
        }
    }
}

//! The state file round-trips a table of every kind of connection, and refuses every file it
//! cannot trust.

use super::*;
use crate::table::{Mode, OpenSpec, Sides, WireAction};
use crate::tcp::{Call, Direction, Side};

fn config() -> TableConfig {
    TableConfig {
        shards: 4,
        capacity: 1024,
        ..TableConfig::default()
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tcpsim-state-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A table with connections of every kind and in many states, timers armed.
fn busy() -> Table {
    let t = Table::new(config(), tcp::Config::default(), Clock::virtual_at(5)).unwrap();
    let mut ids = vec![];
    for _ in 0..40 {
        ids.push(t.open(&OpenSpec::new(Mode::Auto)).unwrap().id);
    }
    for (i, &id) in ids.iter().enumerate() {
        match i % 5 {
            0 => drop(t.call(id, Sides::Both, Call::Close)),
            1 => drop(t.call(id, Sides::One(Side::Client), Call::Close)),
            2 => drop(t.call(id, Sides::One(Side::Client), Call::Send(3000))),
            3 => drop(t.call(id, Sides::One(Side::Server), Call::Abort)),
            _ => {}
        }
    }
    // MANUAL pairs with segments on the wire, one on its own profile; EXTERNAL endpoints with
    // an outbox.
    for k in 0..5 {
        let spec = OpenSpec {
            settings: (k == 0).then(|| tcp::Config::for_profile(tcp::ProfileName::Rfc9293)),
            ..OpenSpec::new(Mode::Manual)
        };
        let id = t.open(&spec).unwrap().id;
        if k % 2 == 1 {
            t.wire(id, Direction::ClientToServer, WireAction::Deliver, 1)
                .unwrap();
        }
    }
    for role in [Side::Client, Side::Server] {
        t.open(&OpenSpec::new(Mode::External(role))).unwrap();
    }
    t.advance(1500).unwrap(); // retransmissions on the wires and in the outboxes
    t
}

fn everything(t: &Table) -> Vec<crate::table::ConnInfo> {
    t.list(None, usize::MAX, |_| true)
}

#[test]
fn a_table_round_trips_and_runs_on_as_before() {
    let t = busy();
    let path = dir().join("state");
    let saved = save(&t, &path).unwrap();
    assert_eq!(saved.connections as usize, t.len());
    let (back, read) = load(&path, &config(), &tcp::Config::default(), true)
        .unwrap()
        .expect("the file exists");
    assert_eq!(
        (read.connections, read.bytes),
        (saved.connections, saved.bytes)
    );
    assert_eq!(everything(&back), everything(&t));
    assert_eq!(back.stats().counters, t.stats().counters);
    assert_eq!(back.now(), t.now());
    back.verify().unwrap();
    // Timers fire as they would have: the two run on alike.
    for ms in [100, 1000, 60_000, 200_000] {
        assert_eq!(back.advance(ms).unwrap(), t.advance(ms).unwrap());
        assert_eq!(everything(&back), everything(&t));
        back.verify().unwrap();
    }
    assert_eq!(back.stats().counters, t.stats().counters);
    // New connections take the ports they would have: the allocator stands where it stood.
    for k in 0..50 {
        let spec = OpenSpec::new(Mode::Auto);
        let (a, b) = (t.open(&spec).unwrap(), back.open(&spec).unwrap());
        assert_eq!(a.tuple, b.tuple, "open {k} after the restart");
    }
    assert_eq!(everything(&back), everything(&t));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn no_file_is_a_fresh_start() {
    let path = dir().join("absent");
    assert!(
        load(&path, &config(), &tcp::Config::default(), true)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_file_it_cannot_trust_is_refused_whole() {
    let t = busy();
    let d = dir();
    let path = d.join("state");
    save(&t, &path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let try_load = |bytes: &[u8]| {
        let p = d.join("bad");
        std::fs::write(&p, bytes).unwrap();
        load(&p, &config(), &tcp::Config::default(), true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "loaded".into())
    };
    assert!(try_load(b"hello, world, not a state").contains("not a tcpsim state file"));
    let mut v3 = good.clone();
    v3[8] = 3;
    assert!(try_load(&v3).contains("format version 3; this tcpsim reads version 4"));
    // Cut anywhere: damaged.
    for cut in [13, 40, good.len() / 2, good.len() - 5, good.len() - 1] {
        let why = try_load(&good[..cut]);
        assert!(why.contains("damaged"), "cut at {cut}: {why}");
    }
    // One byte changed anywhere after the version: damaged (the checksum or a record says so).
    for at in [20, good.len() / 3, good.len() / 2, good.len() - 10] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        let why = try_load(&bad);
        assert!(why.contains("damaged"), "byte {at}: {why}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(try_load(&longer).contains("damaged"));
    // Another server's addresses, clock or settings.
    let other_pools = TableConfig {
        client_pools: vec!["10.1.0.0/16".parse().unwrap()],
        ..config()
    };
    let e = load(&path, &other_pools, &tcp::Config::default(), true)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("client pools 10.0.0.0/16; this one has 10.1.0.0/16"),
        "{e}"
    );
    let e = load(&path, &config(), &tcp::Config::default(), false)
        .err()
        .unwrap();
    assert!(e.to_string().contains("a virtual clock"), "{e}");
    let rfc = tcp::Config::for_profile(tcp::ProfileName::Rfc9293);
    let e = load(&path, &config(), &rfc, true).err().unwrap();
    assert!(e.to_string().contains("protocol settings"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The connections are stored as serde encodes the core's types: a change to those types changes
/// the file. This pins one pair's encoding; when it fails, raise `VERSION` (old files are then
/// refused by name) and update the pin.
#[test]
fn the_format_is_pinned() {
    let t = Table::new(config(), tcp::Config::default(), Clock::virtual_at(0)).unwrap();
    let o = t
        .open(&OpenSpec {
            iss: Some(1000),
            server_iss: Some(5000),
            // An explicit 4-tuple: the pin is of the encoding, not of the port allocator's choice.
            tuple: Some(crate::table::FourTuple {
                client: "10.0.0.1:40000".parse().unwrap(),
                server: "10.255.0.1:80".parse().unwrap(),
            }),
            ..OpenSpec::new(Mode::Auto)
        })
        .unwrap();
    t.call(o.id, Sides::One(Side::Client), Call::Send(700))
        .unwrap();
    let mut bytes = vec![];
    t.for_each(|id, conn| {
        bytes = postcard::to_allocvec(&RecordRef { id: id.0, conn }).unwrap();
    });
    assert_eq!(
        (bytes.len(), crc32fast::hash(&bytes)),
        (66, 3_918_038_461),
        "the encoding of a connection changed: raise state::VERSION and update this pin"
    );
}

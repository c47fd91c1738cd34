//! Opening connections: a 4-tuple as `connect()` picks one (or the caller's), a fresh
//! connection in the map, or Linux's TIME-WAIT recycling of a 4-tuple still held.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry as MapEntry;

use crate::tcp::{self, SeqNum, Side, State};

use super::addr::{ConnId, FourTuple, Reusable};
use super::conn::Conn;
use super::counters::{self, OpenFailure};
use super::types::{Error, Mode, OpenSpec, Opened, Sides};
use super::{Table, Tally, TwReuse, splitmix64};

impl Table {
    /// A deterministic ISS per (seed, id, time), spread like RFC 6528's.
    pub(super) fn iss(&self, id: ConnId, now: u64, salt: u64) -> SeqNum {
        SeqNum(
            splitmix64(self.seed ^ id.0.rotate_left(17) ^ now.wrapping_mul(0x9E37_79B9) ^ salt)
                as u32,
        )
    }

    /// Opens one connection: an AUTO pair is ESTABLISHED when this returns; a MANUAL pair has its
    /// SYN on the wire; an EXTERNAL client has sent its SYN, an EXTERNAL server listens.
    pub fn open(&self, spec: &OpenSpec) -> Result<Opened, Error> {
        // Reserve a place first, so concurrent opens never pass the maximum.
        if self.len.0.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.len.0.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .with(|c| c.open_failed(OpenFailure::TableFull));
            return Err(Error::TableFull { max: self.max });
        }
        let r = self.counters.with(|c| self.open_reserved(c, spec));
        if r.as_ref().is_ok_and(|o| o.reused_time_wait) || r.is_err() {
            self.len.0.fetch_sub(1, Ordering::Relaxed); // no new entry after all
        }
        r
    }

    /// Opens up to `count` connections like `spec`, handing each to `each`. When the table is
    /// full or the ports are gone, the rest would be refused alike: they are not tried, but each
    /// is counted as refused for that reason, and the reason and how many are returned. Any
    /// other refusal is returned as the error (the connections opened before it stay).
    pub fn open_batch(
        &self,
        spec: &OpenSpec,
        count: u32,
        mut each: impl FnMut(Opened),
    ) -> Result<Option<(OpenFailure, u32)>, Error> {
        for i in 0..count {
            match self.open(spec) {
                Ok(o) => each(o),
                Err(e) => {
                    let why = match e.refusal() {
                        Some(why @ (OpenFailure::TableFull | OpenFailure::PortsExhausted)) => why,
                        _ => return Err(e),
                    };
                    let rest = count - i;
                    // `open` counted the first.
                    self.counters
                        .with(|c| c.open_failures(why, u64::from(rest - 1)));
                    return Ok(Some((why, rest)));
                }
            }
        }
        Ok(None)
    }

    fn open_reserved(&self, c: &counters::Slot, spec: &OpenSpec) -> Result<Opened, Error> {
        if let Some(own) = &spec.settings {
            if spec.mode == Mode::Auto {
                return Err(Error::SettingsOnAuto);
            }
            own.validate().map_err(Error::Settings)?;
        }
        let now = self.clock.now();
        let reuse = self.reuse.get();
        let (id, tuple, claimed) = match spec.tuple {
            Some(tuple) => {
                let id = self.addrs.id_of(&tuple)?;
                let (server, ip) = (
                    self.addrs.server_index(tuple.server)?,
                    self.addrs.ip_index(*tuple.client.ip())?,
                );
                let claimed = self
                    .ports
                    .claim(&self.addrs, server, ip, tuple.client.port());
                (id, tuple, claimed)
            }
            None => {
                let server_addr = spec.server.unwrap_or(self.addrs.servers()[0]);
                let server = self.addrs.server_index(server_addr)?;
                let ip = spec
                    .client_ip
                    .map(|ip| self.addrs.ip_index(ip))
                    .transpose()?;
                // With `tcp_tw_reuse`, a port held by a TIME-WAIT old enough counts as free.
                let may = |ip: u32| reuse.may(self.addrs.ip_at(ip), *server_addr.ip());
                let port = |ip: u32, port: u16| {
                    let held = self.map.try_get(&ConnId::pack(server, ip, port));
                    held.try_unwrap().is_some_and(|conn| {
                        self.client_timewait_reusable(&conn, spec, now, reuse.delay_ms)
                    })
                };
                let reusable = Reusable {
                    may: &may,
                    port: &port,
                };
                // Reuse 2 is for loopback only: without a loopback address on either side, no
                // port need be asked about.
                let possible = reuse.timestamps
                    && match reuse.tw_reuse {
                        0 => false,
                        2 => server_addr.ip().is_loopback() || self.addrs.has_loopback(),
                        _ => true,
                    };
                let Ok(found) = self.ports.allocate_reusing(
                    &self.addrs,
                    server,
                    ip,
                    spec.port_shard.unwrap_or(c.index),
                    possible.then_some(&reusable),
                ) else {
                    c.open_failed(OpenFailure::PortsExhausted);
                    return Err(Error::PortsExhausted {
                        server: server_addr,
                        client: spec.client_ip,
                    });
                };
                let tuple = FourTuple {
                    client: SocketAddrV4::new(self.addrs.ip_at(found.ip), found.port),
                    server: server_addr,
                };
                (
                    self.addrs.id_of(&tuple).expect("allocated from the pools"),
                    tuple,
                    // A reused port is the TIME-WAIT's until the new connection takes it over.
                    !found.reused,
                )
            }
        };
        let chosen = (id, tuple, claimed);
        self.with_cfg(id, |cfg| self.open_at(c, spec, cfg, chosen, reuse, now))
    }

    /// `open_reserved` once the 4-tuple is chosen (`claimed`: its port taken for it) as `reuse`
    /// allowed, on the settings the connection will run on.
    fn open_at(
        &self,
        c: &counters::Slot,
        spec: &OpenSpec,
        cfg: &tcp::Config,
        (id, tuple, claimed): (ConnId, FourTuple, bool),
        reuse: TwReuse,
        now: u64,
    ) -> Result<Opened, Error> {
        let iss = spec.iss.map_or_else(|| self.iss(id, now, 1), SeqNum);
        let server_iss = spec.server_iss.map_or_else(|| self.iss(id, now, 2), SeqNum);
        let at_once = spec.mode == Mode::Auto && spec.link.is_none() && cfg.link.is_none();
        let mut tally = Tally::new(self, cfg, c, id, now, at_once);
        match self.map.entry(id) {
            MapEntry::Vacant(slot) => {
                if !claimed {
                    // The port was held when we looked, by a connection that has left since (we
                    // hold this 4-tuple's shard now, so nothing else can take it): claim again.
                    let (server, ip) = (
                        self.addrs.server_index(tuple.server)?,
                        self.addrs.ip_index(*tuple.client.ip())?,
                    );
                    if !self
                        .ports
                        .claim(&self.addrs, server, ip, tuple.client.port())
                    {
                        c.open_failed(OpenFailure::TupleInUse);
                        return Err(Error::TupleInUse {
                            tuple,
                            id,
                            states: None,
                        });
                    }
                }
                let mut conn = Conn::new(spec);
                let sides: &[Side] = match spec.mode {
                    Mode::External(Side::Client) => &[Side::Client],
                    Mode::External(Side::Server) => &[Side::Server],
                    _ => &Side::BOTH,
                };
                for &side in sides {
                    c.enter(side, State::Closed);
                }
                conn.open(cfg, now, spec.mode, [iss, server_iss], &mut tally)
                    .expect("a fresh endpoint accepts listen and connect");
                conn.settle();
                self.sync_timers(c, id, [None, None], Some(None), &conn, now);
                let states = conn.states();
                let incarnation = self.incarnation(&conn);
                slot.insert(Box::new(conn));
                c.opened();
                Ok(Opened {
                    id,
                    incarnation,
                    tuple,
                    states,
                    reused_time_wait: false,
                })
            }
            MapEntry::Occupied(mut entry) if spec.tuple.is_none() => {
                // The allocator handed out a port held by a client TIME-WAIT it may take over
                // (`tcp_tw_reuse`): if that is still so, the TIME-WAIT goes and a new connection
                // takes its place, its ISS past the old sequence space (Linux: SND.NXT + 65537).
                let conn: &mut Conn = entry.get_mut();
                if !self.client_timewait_reusable(conn, spec, now, reuse.delay_ms) {
                    c.open_failed(OpenFailure::TupleInUse);
                    return Err(Error::TupleInUse {
                        tuple,
                        id,
                        states: Some(conn.states()),
                    });
                }
                let (timers, deadline) = (conn.timers(), conn.deadline(now));
                let old = conn.endpoint(Side::Client).expect("a pair").snd_nxt();
                let iss = spec.iss.map_or(old + 65537, SeqNum);
                conn.take_over_client_timewait(cfg, now, spec, &mut tally)
                    .and_then(|()| conn.open(cfg, now, spec.mode, [iss, server_iss], &mut tally))
                    .map_err(Error::tcp(Sides::One(Side::Client)))?;
                c.time_wait_reused();
                Ok(self.reopened(c, (id, tuple), (timers, deadline), conn, now))
            }
            MapEntry::Occupied(mut entry) => {
                // An explicit 4-tuple met a connection already there, which holds the port:
                // nothing to give back.
                let conn: &mut Conn = entry.get_mut();
                let states = conn.states();
                let recyclable =
                    conn.pair().is_some() && states == [Some(State::Closed), Some(State::TimeWait)];
                if !recyclable || spec.mode != conn.mode() {
                    c.open_failed(OpenFailure::TupleInUse);
                    return Err(Error::TupleInUse {
                        tuple,
                        id,
                        states: Some(states),
                    });
                }
                // Linux: a SYN above RCV.NXT takes over a TIME-WAIT 4-tuple. Our SYN must be
                // above the old connection's sequence space, so the ISS is placed past it. An
                // AUTO pair must be ESTABLISHED on return: one whose ISS the TIME-WAIT would not
                // take is refused before anything is sent (MANUAL shows what happens).
                let old = conn.pair().expect("checked above").server.rcv_nxt();
                let iss = spec.iss.map_or(old + (1 << 20), SeqNum);
                if spec.mode == Mode::Auto && iss <= old {
                    c.open_failed(OpenFailure::TupleInUse);
                    return Err(Error::IssInTimeWait {
                        tuple,
                        iss: iss.0,
                        rcv_nxt: old.0,
                    });
                }
                let (timers, deadline) = (conn.timers(), conn.deadline(now));
                conn.reconnect(cfg, now, iss, &mut tally)
                    .map_err(Error::tcp(Sides::One(Side::Client)))?;
                Ok(self.reopened(c, (id, tuple), (timers, deadline), conn, now))
            }
        }
    }
}

impl Table {
    /// A connection opened anew over a TIME-WAIT of its 4-tuple (either way Linux allows), now
    /// settled and counted: its timers re-filed (it had `timers`, filed at `deadline`).
    fn reopened(
        &self,
        c: &counters::Slot,
        (id, tuple): (ConnId, FourTuple),
        (timers, deadline): ([Option<crate::tcp::TimerKind>; 2], Option<u64>),
        conn: &mut Conn,
        now: u64,
    ) -> Opened {
        conn.settle();
        self.sync_timers(c, id, timers, Some(deadline), conn, now);
        c.opened();
        Opened {
            id,
            incarnation: self.incarnation(conn),
            tuple,
            states: conn.states(),
            reused_time_wait: true,
        }
    }

    /// Whether a connect of `spec` may take over `conn`'s client TIME-WAIT (Linux
    /// `tcp_twsk_unique`): a pair of the same kind whose client is in TIME-WAIT, at least
    /// `delay_ms` old, and whose server is gone (CLOSED). The caller has checked the hosts'
    /// settings.
    fn client_timewait_reusable(
        &self,
        conn: &Conn,
        spec: &OpenSpec,
        now: u64,
        delay_ms: u32,
    ) -> bool {
        if conn.mode() != spec.mode
            || conn.pair().is_none()
            || conn.states() != [Some(State::TimeWait), Some(State::Closed)]
        {
            return false;
        }
        let cfg = conn.settings().unwrap_or(&self.tcp);
        let entered = conn
            .endpoint(Side::Client)
            .and_then(|e| e.timer(now))
            .map(|t| t.deadline.saturating_sub(cfg.time_wait_ms()));
        entered.is_some_and(|at| now.saturating_sub(at) >= u64::from(delay_ms))
    }
}

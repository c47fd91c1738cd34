//! Opening connections: a 4-tuple as `connect()` picks one (or the caller's), a fresh
//! connection in the map, or Linux's TIME-WAIT recycling of a 4-tuple still held.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry as MapEntry;

use crate::tcp::{SeqNum, Side, State};

use super::addr::{ConnId, FourTuple};
use super::conn::Conn;
use super::counters::{self, OpenFailure};
use super::types::{Error, Mode, OpenSpec, Opened, Sides};
use super::{Table, Tally, splitmix64};

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
                let Ok((ip, port)) = self.ports.allocate(
                    &self.addrs,
                    server,
                    ip,
                    spec.port_shard.unwrap_or(c.index),
                ) else {
                    c.open_failed(OpenFailure::PortsExhausted);
                    return Err(Error::PortsExhausted {
                        server: server_addr,
                        client: spec.client_ip,
                    });
                };
                let tuple = FourTuple {
                    client: SocketAddrV4::new(self.addrs.ip_at(ip), port),
                    server: server_addr,
                };
                (
                    self.addrs.id_of(&tuple).expect("allocated from the pools"),
                    tuple,
                    true,
                )
            }
        };
        let iss = spec.iss.map_or_else(|| self.iss(id, now, 1), SeqNum);
        let server_iss = spec.server_iss.map_or_else(|| self.iss(id, now, 2), SeqNum);
        let mut tally = Tally {
            counters: c,
            events: self.events.sink(id, now),
            hosts: self.hosts(id),
        };
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
                conn.open(&self.tcp, now, spec.mode, [iss, server_iss], &mut tally)
                    .expect("a fresh endpoint accepts listen and connect");
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
            MapEntry::Occupied(mut entry) => {
                // Only an explicit 4-tuple can meet a connection already there (the allocator hands
                // out free ports only), and that connection holds the port: nothing to give back.
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
                conn.reconnect(&self.tcp, now, iss, &mut tally)
                    .map_err(Error::tcp(Sides::One(Side::Client)))?;
                self.sync_timers(c, id, timers, Some(deadline), conn, now);
                c.opened();
                Ok(Opened {
                    id,
                    incarnation: self.incarnation(conn),
                    tuple,
                    states: conn.states(),
                    reused_time_wait: true,
                })
            }
        }
    }
}

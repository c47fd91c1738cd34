//! Rebuilding a table from saved connections (a state file): each connection back in the map
//! under its id, its port claimed, its timer filed, the occupancy and pending timers recounted
//! from the connections themselves, the running totals (transitions, segments, timers fired,
//! opens) carried over, and the port allocator put where it stood.

use std::sync::atomic::Ordering;

use super::addr::{ConnId, PortsPosition};
use super::conn::Conn;
use super::counters::CounterSnapshot;
use super::{SetupError, Table};
use crate::tcp::Side;

/// Why saved connections could not be put back.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("connection {0} is not a 4-tuple of this server's addresses")]
    Foreign(ConnId),
    #[error("connection {0} appears twice")]
    Twice(ConnId),
    #[error("more connections than the table's maximum of {0}")]
    Full(usize),
}

impl Table {
    /// Where the port allocator stands, for a state file.
    pub fn ports_position(&self) -> PortsPosition {
        self.ports.position()
    }

    /// This run's epoch, the high half of every incarnation.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Puts back the run a state file came from: its epoch (so that its incarnations stay
    /// valid), the totals counted before, its connections, and where its port allocator stood
    /// (so that new connections take the ports they would have). For a table just made, before
    /// anyone uses it.
    pub fn restore<E: From<RestoreError>>(
        &self,
        epoch: u32,
        totals: &CounterSnapshot,
        ports: &PortsPosition,
        conns: impl IntoIterator<Item = Result<(ConnId, Conn), E>>,
    ) -> Result<(), E> {
        self.epoch.store(epoch, Ordering::Relaxed);
        self.counters.carry(totals);
        let now = self.clock.now();
        for item in conns {
            let (id, conn) = item?;
            let tuple = self.addrs.tuple_of(id).ok_or(RestoreError::Foreign(id))?;
            let (Ok(server), Ok(ip)) = (
                self.addrs.server_index(tuple.server),
                self.addrs.ip_index(*tuple.client.ip()),
            ) else {
                return Err(RestoreError::Foreign(id).into());
            };
            if self.len.0.load(Ordering::Relaxed) >= self.max {
                return Err(RestoreError::Full(self.max).into());
            }
            if self.map.contains_key(&id)
                || !self
                    .ports
                    .claim(&self.addrs, server, ip, tuple.client.port())
            {
                return Err(RestoreError::Twice(id).into());
            }
            self.counters.with(|c| {
                for &side in conn.sides() {
                    if let Some(ep) = conn.endpoint(side) {
                        c.enter(side, ep.state());
                    }
                }
                self.sync_timers(c, id, [None, None], Some(None), &conn, now);
                c.in_flight(conn.in_flight().len() as i64);
            });
            // The hosts' timewait socks, recounted (a file's run kept within its caps).
            for (k, side) in Side::BOTH.into_iter().enumerate() {
                if self.timewait_socks(&conn)[k] {
                    self.timewait.restore(id, side);
                }
            }
            if let Some(young) = conn.endpoint(Side::Server).and_then(|e| e.request_sock()) {
                self.listeners.restore_request(server, young);
            }
            self.map.insert(id, Box::new(conn));
            self.len.0.fetch_add(1, Ordering::Relaxed);
        }
        self.ports.set_position(&self.addrs, ports);
        Ok(())
    }
}

//! Calls on existing connections: user calls, forged segments, the wire, removal. Each locks the
//! connection, lets its kind act (`Conn`), and counts.

use crate::tcp::{Call, Direction, Segment, Side};

use std::net::SocketAddrV4;

use super::Table;
use super::conn::Conn;
use super::counters::SegmentOutcome;
use super::listeners::{ListenChange, ListenerInfo};
use super::types::{Error, Injected, Sides, States, Target, WireAction, WireOutcome};

impl Table {
    /// Changes the listener of `server` (every server's if `None`): its backlog, its host's
    /// sysctls, whether the application accepts. Nothing changes if any result is invalid.
    /// Returns the listeners changed, as they are now.
    pub fn change_listeners(
        &self,
        server: Option<SocketAddrV4>,
        change: &ListenChange,
    ) -> Result<Vec<ListenerInfo>, Error> {
        let index = server.map(|s| self.addrs.server_index(s)).transpose()?;
        self.listeners
            .change(index, change)
            .map_err(Error::HostSetting)?;
        let all = self.listeners.infos(self.addrs.servers());
        Ok(match index {
            Some(i) => vec![all[usize::from(i)]],
            None => all,
        })
    }

    /// A user call on one side, or a simultaneous shutdown or close on both (`Sides::Both`).
    /// Listen and connect are `open`'s.
    pub fn call(
        &self,
        target: impl Into<Target>,
        sides: Sides,
        call: Call,
    ) -> Result<States, Error> {
        let target = target.into();
        let id = target.id;
        let now = self.clock.now();
        self.with_conn(target, |conn, tally| {
            conn.call(id, tally.cfg, now, sides, call, tally)?;
            Ok(conn.states())
        })
    }

    /// A forged segment arrives at `to`.
    pub fn inject(
        &self,
        target: impl Into<Target>,
        to: Side,
        seg: &Segment,
    ) -> Result<Injected, Error> {
        let target = target.into();
        let id = target.id;
        let now = self.clock.now();
        self.with_conn(target, |conn, tally| {
            let state = |conn: &Conn| conn.endpoint(to).map(|ep| ep.state());
            let before = state(conn);
            let (emitted, emitted_total) = conn.inject(id, tally.cfg, now, to, seg, tally)?;
            tally.counters.segment(to, SegmentOutcome::Injected, 1);
            // `inject` refused a side the connection does not have.
            let (Some(before), Some(after)) = (before, state(conn)) else {
                unreachable!("the side exists")
            };
            Ok(Injected {
                before,
                after,
                emitted,
                emitted_total,
            })
        })
    }

    /// MANUAL: deliver, drop, duplicate or reorder the first `count` segments travelling `dir`.
    /// EXTERNAL: `Deliver` hands the caller what the endpoint emitted on its own (timers, calls),
    /// `Drop` discards it; `dir` must be the endpoint's own direction.
    pub fn wire(
        &self,
        target: impl Into<Target>,
        dir: Direction,
        action: WireAction,
        count: u32,
    ) -> Result<WireOutcome, Error> {
        let target = target.into();
        let id = target.id;
        let now = self.clock.now();
        self.with_conn(target, |conn, tally| {
            let from = dir.to().peer();
            let (moved, emitted_at) = conn.wire(id, &self.tcp, now, dir, action, count, tally)?;
            let outcome = match action {
                // A pair's deliveries were counted as they happened; an EXTERNAL endpoint's
                // segments are delivered to the caller here.
                WireAction::Deliver => {
                    matches!(conn, Conn::External(_)).then_some(SegmentOutcome::Delivered)
                }
                WireAction::Drop => Some(SegmentOutcome::Dropped),
                WireAction::Duplicate => Some(SegmentOutcome::Duplicated),
                WireAction::Reorder => Some(SegmentOutcome::Reordered),
            };
            if let Some(o) = outcome {
                let side = if o == SegmentOutcome::Delivered {
                    from.peer()
                } else {
                    from
                };
                tally.counters.segment(side, o, moved.len() as u64);
            }
            Ok(WireOutcome {
                moved,
                emitted_at,
                states: conn.states(),
            })
        })
    }

    /// Removes a connection (MANUAL and EXTERNAL ones stay until removed), freeing its port.
    /// No segment is sent: use an abort first for a RST.
    pub fn remove(&self, target: impl Into<Target>) -> Result<(), Error> {
        let target = target.into();
        let id = target.id;
        let mut refused = None;
        let removed = self.map.remove_if(&id, |_, conn| {
            if let Err(e) = self.check_incarnation(target, conn) {
                refused = Some(e);
                return false;
            }
            // Under the shard lock, as in `with_conn_synced`: see `forget`.
            self.ports.release(&self.addrs, id);
            if conn.has_timer() {
                self.file_timer(id, None);
            }
            true
        });
        if let Some(e) = refused {
            return Err(e);
        }
        let (_, conn) = removed.ok_or(Error::NotFound(id))?;
        self.counters.with(|c| self.forget(c, id, &conn));
        Ok(())
    }
}

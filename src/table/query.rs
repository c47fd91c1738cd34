//! Reading the table: one connection, a page of them, a visit of all, the table-wide figures.

use super::Table;
use super::addr::{ConnId, Ports};
use super::conn::Conn;
use super::timers::WHEEL_SHARDS;
use super::types::{ConnInfo, Error, Stats, Target};

impl Table {
    pub fn get(&self, target: impl Into<Target>) -> Result<ConnInfo, Error> {
        let target = target.into();
        let conn = self.map.get(&target.id).ok_or(Error::NotFound(target.id))?;
        self.check_incarnation(target, &conn)?;
        Ok(self.info(target.id, &conn))
    }

    fn info(&self, id: ConnId, conn: &Conn) -> ConnInfo {
        let cfg = conn.settings().unwrap_or(&self.tcp);
        let now = self.clock.now();
        let sides = conn.side_infos(cfg, now);
        let wire = conn.queues();
        ConnInfo {
            id,
            incarnation: self.incarnation(conn),
            tuple: self
                .addrs
                .tuple_of(id)
                .expect("ids in the map come from this table's addresses"),
            mode: conn.mode(),
            sides,
            wire,
            in_flight: conn.in_flight_by_direction(now),
            settings: cfg.clone(),
        }
    }

    /// Visits every connection (shard by shard, holding one shard's read lock at a time).
    pub fn for_each(&self, mut f: impl FnMut(ConnId, &Conn)) {
        for item in self.map.iter() {
            f(*item.key(), item.value());
        }
    }

    /// Connections matching `filter`, in id order, after `after`, at most `limit` of them.
    pub fn list(
        &self,
        after: Option<ConnId>,
        limit: usize,
        filter: impl Fn(&Conn) -> bool,
    ) -> Vec<ConnInfo> {
        self.select(after, limit, |_, c| filter(c))
            .into_iter()
            .filter_map(|id| self.get(id).ok())
            .collect()
    }

    /// The ids of connections matching `filter`, in id order, after `after`, at most `limit`
    /// of them. One pass over the table keeping the `limit` smallest matching ids in a heap:
    /// memory is O(limit) whatever the table holds, time O(connections · log limit).
    pub fn select(
        &self,
        after: Option<ConnId>,
        limit: usize,
        filter: impl Fn(ConnId, &Conn) -> bool,
    ) -> Vec<ConnId> {
        if limit == 0 {
            return Vec::new();
        }
        let mut smallest: std::collections::BinaryHeap<ConnId> =
            std::collections::BinaryHeap::with_capacity(limit.min(1 << 16) + 1);
        self.for_each(|id, c| {
            if after.is_some_and(|a| id <= a)
                || smallest.len() == limit && smallest.peek() < Some(&id)
            {
                return;
            }
            if filter(id, c) {
                smallest.push(id);
                if smallest.len() > limit {
                    smallest.pop(); // the largest
                }
            }
        });
        smallest.into_sorted_vec()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.len(),
            max_connections: self.max,
            counters: self.counters.snapshot(),
            ports_used: self.ports.used(),
            ports_capacity: Ports::capacity(&self.addrs),
            wheel_entries: (0..WHEEL_SHARDS).map(|i| self.wheel_at(i).len()).sum(),
            clock: self.clock.name(),
            now: self.clock.now(),
            listeners: self.listeners.infos(self.addrs.servers()),
        }
    }
}

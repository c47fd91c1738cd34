//! The table's invariants, checked by a full scan (O(connections); for tests and the
//! simulation): the counters equal a recount, the wheels hold one entry per connection with a
//! timer, at its deadline, and the ports in use are the connections holding them.

use super::Table;
use super::timers::WHEEL_SHARDS;
use super::types::Scan;
use super::{addr, counters};

impl Table {
    /// Recounts everything from the connections themselves (O(connections); for checks).
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        self.for_each(|id, conn| {
            scan.connections += 1;
            for &side in conn.sides() {
                if let Some(ep) = conn.endpoint(side) {
                    scan.occupancy[counters::side_ix(side)][ep.state() as usize] += 1;
                    if let Some(kind) = ep.timer_kind() {
                        scan.timers_pending[counters::timer_ix(kind)] += 1;
                    }
                }
            }
            if conn.has_timer() {
                scan.connections_with_timers += 1;
            }
            if addr::tracks(&self.addrs, id) {
                scan.tracked_ports += 1;
            }
        });
        scan
    }

    /// Checks that the wheel holds exactly one entry per connection with a timer, at its
    /// deadline. O(connections); for tests.
    pub fn check_wheel(&self) -> Result<(), String> {
        let mut with_timers = 0;
        let mut err = None;
        let now = self.clock.now();
        self.for_each(|id, conn| {
            let want = conn.deadline(now);
            let got = self.wheel(id).deadline(id.0);
            if want.is_some() {
                with_timers += 1;
            }
            // The wheel's bound must not be past any of its deadlines: the real-clock driver
            // sleeps until the earliest bound.
            let bound = self.wheels[Self::wheel_of(id)].0.bound();
            if let Some(d) = want.filter(|&d| bound > d)
                && err.is_none()
            {
                err = Some(format!(
                    "connection {id}: deadline {d}, but its wheel's bound is {bound}"
                ));
            }
            if want != got && err.is_none() {
                err = Some(format!(
                    "connection {id}: deadline {want:?}, wheel has {got:?}"
                ));
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let entries: usize = (0..WHEEL_SHARDS).map(|i| self.wheel_at(i).len()).sum();
        if entries != with_timers {
            return Err(format!(
                "{entries} wheel entries for {with_timers} connections with timers"
            ));
        }
        Ok(())
    }

    /// Checks every invariant the table keeps, by a full scan (O(connections); for tests and
    /// the simulation): the counters equal a recount, the wheel holds exactly one entry per
    /// connection with a timer, at its deadline, the ports in use are the connections holding
    /// them, and every endpoint has SND.UNA ≤ SND.NXT.
    pub fn verify(&self) -> Result<(), String> {
        let stats = self.stats();
        let scan = self.scan();
        let c = &stats.counters;
        let checks: [(&str, bool); 5] = [
            ("connections", scan.connections == stats.connections),
            ("occupancy", scan.occupancy == c.occupancy),
            ("timers pending", scan.timers_pending == c.timers_pending),
            ("ports in use", scan.tracked_ports == stats.ports_used),
            (
                "wheel entries",
                scan.connections_with_timers == stats.wheel_entries,
            ),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!("{what} differ: counters {stats:?}, scan {scan:?}"));
        }
        self.check_wheel()?;
        // Each host's count of timewait socks is what its connections hold, and within its cap.
        let mut timewait = std::collections::BTreeMap::<(u8, u32), u32>::new();
        self.for_each(|id, conn| {
            for (k, side) in crate::tcp::Side::BOTH.into_iter().enumerate() {
                if self.timewait_socks(conn)[k] {
                    *timewait
                        .entry((side as u8, super::hosts::host(id, side)))
                        .or_default() += 1;
                }
            }
        });
        let counted: std::collections::BTreeMap<(u8, u32), u32> = self
            .timewait_hosts()
            .into_iter()
            .map(|((side, host), n)| ((side as u8, host), n))
            .collect();
        if counted != timewait {
            return Err(format!(
                "timewait socks per host differ: counted {counted:?}, scan {timewait:?}"
            ));
        }
        if let Some((host, n)) = counted.iter().find(|(_, n)| **n > self.max_tw_buckets()) {
            return Err(format!(
                "host {host:?} holds {n} timewait socks, over tcp_max_tw_buckets {}",
                self.max_tw_buckets()
            ));
        }
        // The segments in flight on the link are the connections' own.
        let mut flying = 0i64;
        self.for_each(|_, conn| flying += conn.in_flight().len() as i64);
        if flying != c.in_flight {
            return Err(format!(
                "segments in flight differ: counted {}, scan {flying}",
                c.in_flight
            ));
        }
        // Each listener's SYN queue is its request socks, young ones apart.
        let mut requests = vec![(0u32, 0u32); self.addrs.servers().len()];
        self.for_each(|id, conn| {
            if let Some(young) = conn
                .endpoint(crate::tcp::Side::Server)
                .and_then(|e| e.request_sock())
            {
                let r = &mut requests[usize::from(id.server())];
                r.0 += 1;
                r.1 += u32::from(young);
            }
        });
        let queues = self.listeners.syn_queues();
        if queues != requests {
            return Err(format!(
                "SYN queues (length, young) differ: counted {queues:?}, scan {requests:?}"
            ));
        }
        let mut bad = None;
        self.for_each(|id, conn| {
            for &side in conn.sides() {
                if let Some(ep) = conn.endpoint(side)
                    && ep.snd_una() > ep.snd_nxt()
                    && bad.is_none()
                {
                    bad = Some(format!(
                        "connection {id} {side:?}: SND.UNA {} > SND.NXT {}",
                        ep.snd_una(),
                        ep.snd_nxt()
                    ));
                }
            }
        });
        bad.map_or(Ok(()), Err)
    }
}

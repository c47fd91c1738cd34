//! Each host's timewait socks: how many it holds, against Linux's `tcp_max_tw_buckets`, and
//! whether a connect may take one over (`tcp_tw_reuse`, `tcp_timestamps`, `tcp_tw_reuse_delay`).
//! A host is a client address (for client sides) or a server address (for server sides). One
//! atomic count per host, as Linux keeps one per network namespace: every lifecycle passes
//! through here twice, so there is no lock. Client addresses' counts live in chunks allocated the
//! first time one of their addresses is used, so a large pool costs only what it uses.

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use super::addr::ConnId;
use crate::tcp::Side;

/// The host of `id`'s `side`: its client address's index, or its server's.
pub(crate) fn host(id: ConnId, side: Side) -> u32 {
    match side {
        Side::Client => id.ip(),
        Side::Server => u32::from(id.server()),
    }
}

/// Client addresses per chunk of counts.
const CHUNK: usize = 1 << 16;

pub(crate) struct Timewait {
    clients: Box<[OnceLock<Box<[AtomicU32]>>]>,
    servers: Box<[AtomicU32]>,
    max: u32,
}

impl Timewait {
    pub(crate) fn new(client_ips: u64, servers: usize, max: u32) -> Timewait {
        Timewait {
            clients: (0..client_ips.div_ceil(CHUNK as u64))
                .map(|_| OnceLock::new())
                .collect(),
            servers: (0..servers).map(|_| AtomicU32::new(0)).collect(),
            max,
        }
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    fn count(&self, id: ConnId, side: Side) -> &AtomicU32 {
        let host = host(id, side) as usize;
        match side {
            Side::Server => &self.servers[host],
            Side::Client => {
                let chunk = self.clients[host / CHUNK]
                    .get_or_init(|| (0..CHUNK).map(|_| AtomicU32::new(0)).collect());
                &chunk[host % CHUNK]
            }
        }
    }

    /// One more timewait sock on the host of `id`'s `side`, if it has room.
    pub(crate) fn admit(&self, id: ConnId, side: Side) -> bool {
        let max = self.max;
        self.count(id, side)
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// One timewait sock fewer on that host.
    pub(crate) fn leave(&self, id: ConnId, side: Side) {
        let _ = self
            .count(id, side)
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// One more, whatever the cap (a state file's connections, put back).
    pub(crate) fn restore(&self, id: ConnId, side: Side) {
        self.count(id, side).fetch_add(1, Relaxed);
    }

    /// Hosts with timewait socks: ((side, client IP index or server index), count), in order.
    pub(crate) fn hosts(&self) -> Vec<((Side, u32), u32)> {
        let mut out = Vec::new();
        for (c, chunk) in self.clients.iter().enumerate() {
            for (i, n) in chunk.get().into_iter().flat_map(|ch| ch.iter().enumerate()) {
                let n = n.load(Relaxed);
                if n > 0 {
                    out.push(((Side::Client, (c * CHUNK + i) as u32), n));
                }
            }
        }
        for (i, n) in self.servers.iter().enumerate() {
            let n = n.load(Relaxed);
            if n > 0 {
                out.push(((Side::Server, i as u32), n));
            }
        }
        out
    }
}

/// The client hosts' TIME-WAIT reuse settings (Linux 6.x defaults: reuse on loopback only,
/// timestamps on, after 1000 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwReuse {
    /// `tcp_tw_reuse`: 0 never, 1 always, 2 when either address is on loopback (127/8).
    pub tw_reuse: u8,
    /// `tcp_timestamps`: a TIME-WAIT can only be reused if its connection had timestamps (the
    /// servers are taken to have them on, as Linux does by default).
    pub timestamps: bool,
    /// `tcp_tw_reuse_delay`: how old a TIME-WAIT must be, ms.
    pub delay_ms: u32,
}

impl Default for TwReuse {
    fn default() -> TwReuse {
        TwReuse {
            tw_reuse: 2,
            timestamps: true,
            delay_ms: 1000,
        }
    }
}

impl TwReuse {
    pub fn validate(&self) -> Result<(), String> {
        if self.tw_reuse > 2 {
            return Err(format!(
                "tcp_tw_reuse {}: 0, 1 or 2 are allowed",
                self.tw_reuse
            ));
        }
        Ok(())
    }

    /// Whether a connect from `client` to `server` may take over a TIME-WAIT of its 4-tuple at
    /// all (`tcp_twsk_unique`'s conditions but the age).
    pub fn may(&self, client: Ipv4Addr, server: Ipv4Addr) -> bool {
        self.timestamps
            && match self.tw_reuse {
                1 => true,
                2 => client.is_loopback() || server.is_loopback(),
                _ => false,
            }
    }
}

/// `TwReuse`, changeable while connections open.
pub(crate) struct Reuse {
    tw_reuse: AtomicU32,
    timestamps: AtomicBool,
    delay_ms: AtomicU32,
}

impl Reuse {
    pub(crate) fn new(r: TwReuse) -> Reuse {
        let reuse = Reuse {
            tw_reuse: AtomicU32::new(0),
            timestamps: AtomicBool::new(false),
            delay_ms: AtomicU32::new(0),
        };
        reuse.set(r);
        reuse
    }

    pub(crate) fn get(&self) -> TwReuse {
        TwReuse {
            tw_reuse: self.tw_reuse.load(Relaxed) as u8,
            timestamps: self.timestamps.load(Relaxed),
            delay_ms: self.delay_ms.load(Relaxed),
        }
    }

    pub(crate) fn set(&self, r: TwReuse) {
        self.tw_reuse.store(u32::from(r.tw_reuse), Relaxed);
        self.timestamps.store(r.timestamps, Relaxed);
        self.delay_ms.store(r.delay_ms, Relaxed);
    }
}

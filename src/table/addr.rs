//! Addresses like a real host's: client IPs from configured pools, an ephemeral port range
//! (Linux `ip_local_port_range`, 32768–60999), configured server addr:ports — and the connection
//! id, which *is* the 4-tuple packed into 64 bits, so a lookup by either is one lookup.
//!
//! Owns: the id encoding and the port allocator. A port stays taken while its connection exists,
//! TIME-WAIT included. Ports are per (client IP, server addr:port), as Linux's `connect()` shares a
//! local port between different destinations.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;
use std::sync::Mutex;

use rustc_hash::FxBuildHasher;

/// A connection id: `server index:16 | client IP index:32 | client port:16`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ConnId {
    pub(crate) fn pack(server: u16, ip: u32, port: u16) -> ConnId {
        ConnId(u64::from(server) << 48 | u64::from(ip) << 16 | u64::from(port))
    }
    pub(crate) fn server(self) -> u16 {
        (self.0 >> 48) as u16
    }
    pub(crate) fn ip(self) -> u32 {
        (self.0 >> 16) as u32
    }
    fn port(self) -> u16 {
        self.0 as u16
    }
    /// The port shard of this connection's client IP (see `Ports`).
    pub(crate) fn port_shard(self) -> usize {
        self.ip() as usize % PORT_SHARDS
    }
}

/// A connection's IPv4 4-tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FourTuple {
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.client, self.server)
    }
}

/// A block of client addresses, `10.0.0.0/16`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn len(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip).is_some()
    }

    /// The addresses a client may have: all but the block's network and broadcast addresses,
    /// except in a /31 or /32 (RFC 3021), where every address is a host.
    pub fn hosts(&self) -> u64 {
        if self.prefix <= 30 {
            self.len() - 2
        } else {
            self.len()
        }
    }

    fn first_host(&self) -> u64 {
        u64::from(u32::from(self.base)) + u64::from(self.prefix <= 30)
    }

    /// `ip`'s place among the block's hosts.
    fn host_offset(&self, ip: Ipv4Addr) -> Option<u64> {
        let off = u64::from(u32::from(ip)).checked_sub(self.first_host())?;
        (off < self.hosts()).then_some(off)
    }

    fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        let off = u64::from(u32::from(ip)).checked_sub(u64::from(u32::from(self.base)))?;
        (off < self.len()).then_some(off)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s.split_once('/').unwrap_or((s, "32"));
        let base: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{s:?}: prefix is not a number"))?;
        if prefix > 32 {
            return Err(format!("{s:?}: prefix {prefix} is over 32"));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        if u32::from(base) & !mask != 0 {
            return Err(format!(
                "{s:?}: host bits are set (the block starts at {})",
                Ipv4Addr::from(u32::from(base) & mask)
            ));
        }
        Ok(Cidr { base, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error(
        "client address {0} is in no client pool (or is a pool's network or broadcast address)"
    )]
    ClientNotInPool(Ipv4Addr),
    #[error("server address {0} is not a configured server")]
    UnknownServer(SocketAddrV4),
    #[error("client port 0 is not a port")]
    PortZero,
    #[error("{0}")]
    Config(String),
}

/// The configured pools and servers, and the mapping between ids and 4-tuples.
#[derive(Debug)]
pub struct Addresses {
    /// Each pool with the index of its first address.
    pools: Vec<(Cidr, u64)>,
    total_ips: u64,
    servers: Vec<SocketAddrV4>,
    server_index: HashMap<SocketAddrV4, u16, FxBuildHasher>,
    pub port_lo: u16,
    pub port_hi: u16,
}

impl Addresses {
    pub fn new(
        pools: &[Cidr],
        servers: &[SocketAddrV4],
        ports: (u16, u16),
    ) -> Result<Addresses, AddrError> {
        let err = |s: String| Err(AddrError::Config(s));
        if pools.is_empty() {
            return err("no client address pool".into());
        }
        if servers.is_empty() || servers.len() > 1 << 16 {
            return err(format!(
                "{} servers: between 1 and 65536 are allowed",
                servers.len()
            ));
        }
        if ports.0 == 0 || ports.0 > ports.1 {
            return err(format!(
                "port range {}-{} is empty or starts at 0",
                ports.0, ports.1
            ));
        }
        let mut indexed = Vec::with_capacity(pools.len());
        let mut total = 0u64;
        for (i, p) in pools.iter().enumerate() {
            if pools[..i]
                .iter()
                .any(|q| q.offset_of(p.base).is_some() || p.offset_of(q.base).is_some())
            {
                return err(format!("client pools overlap at {p}"));
            }
            indexed.push((*p, total));
            total += p.hosts();
        }
        if total > 1 << 32 {
            return err(format!(
                "client pools hold {total} addresses; at most 2^32 are allowed"
            ));
        }
        let mut server_index = HashMap::default();
        for (i, s) in servers.iter().enumerate() {
            if server_index.insert(*s, i as u16).is_some() {
                return err(format!("server {s} is listed twice"));
            }
        }
        Ok(Addresses {
            pools: indexed,
            total_ips: total,
            servers: servers.to_vec(),
            server_index,
            port_lo: ports.0,
            port_hi: ports.1,
        })
    }

    pub fn client_ips(&self) -> u64 {
        self.total_ips
    }

    /// Whether any client pool holds a loopback address (127/8).
    pub fn has_loopback(&self) -> bool {
        self.pools.iter().any(|(c, _)| {
            let (first, last) = (u32::from(c.base), u32::from(c.base) + (c.len() - 1) as u32);
            first >> 24 <= 127 && last >> 24 >= 127
        })
    }

    pub fn servers(&self) -> &[SocketAddrV4] {
        &self.servers
    }

    pub fn pools(&self) -> impl Iterator<Item = Cidr> + '_ {
        self.pools.iter().map(|(c, _)| *c)
    }

    /// Ephemeral ports per (client IP, server).
    pub fn range_len(&self) -> u32 {
        u32::from(self.port_hi - self.port_lo) + 1
    }

    pub fn ip_index(&self, ip: Ipv4Addr) -> Result<u32, AddrError> {
        self.pools
            .iter()
            .find_map(|(c, start)| c.host_offset(ip).map(|off| (start + off) as u32))
            .ok_or(AddrError::ClientNotInPool(ip))
    }

    pub fn ip_at(&self, index: u32) -> Ipv4Addr {
        let index = u64::from(index);
        let (pool, start) = self
            .pools
            .iter()
            .rev()
            .find(|(_, start)| *start <= index)
            .expect("index 0 is in the first pool, and indices only come from this table");
        Ipv4Addr::from((pool.first_host() + index - start) as u32)
    }

    pub fn server_index(&self, server: SocketAddrV4) -> Result<u16, AddrError> {
        self.server_index
            .get(&server)
            .copied()
            .ok_or(AddrError::UnknownServer(server))
    }

    pub fn id_of(&self, t: &FourTuple) -> Result<ConnId, AddrError> {
        if t.client.port() == 0 {
            return Err(AddrError::PortZero);
        }
        Ok(ConnId::pack(
            self.server_index(t.server)?,
            self.ip_index(*t.client.ip())?,
            t.client.port(),
        ))
    }

    /// The 4-tuple an id stands for, if the id could have come from this table.
    pub fn tuple_of(&self, id: ConnId) -> Option<FourTuple> {
        let server = *self.servers.get(usize::from(id.server()))?;
        if u64::from(id.ip()) >= self.total_ips || id.port() == 0 {
            return None;
        }
        Some(FourTuple {
            client: SocketAddrV4::new(self.ip_at(id.ip()), id.port()),
            server,
        })
    }

    fn in_range(&self, port: u16) -> bool {
        (self.port_lo..=self.port_hi).contains(&port)
    }
}

/// Ephemeral ports in use, one bitmap per (client IP, server) that has any.
#[derive(Debug)]
struct PortSet {
    bits: Box<[u64]>,
    used: u32,
    /// Where connect() starts looking: this destination's seeded offset plus its perturbation,
    /// as Linux's `__inet_hash_connect` keeps them (`port_offset`, `table_perturb`).
    offset: u32,
    /// Draws the random part of each step.
    draws: u64,
}

impl PortSet {
    /// The ports toward one destination from one client address; `key` seeds where the search
    /// starts and its random steps (Linux hashes the addresses with a boot-time secret).
    fn new(len: u32, key: u64) -> PortSet {
        let key = super::splitmix64(key);
        PortSet {
            bits: vec![0; len.div_ceil(64) as usize].into_boxed_slice(),
            used: 0,
            offset: (key % u64::from(len)) as u32,
            draws: key,
        }
    }

    fn is_free(&self, i: u32) -> bool {
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 0
    }

    /// A free port as `connect()` picks one (`__inet_hash_connect`, Linux 6.x): from the
    /// destination's offset, ports of the range's low parity first, two at a time, then the
    /// others; after a find the offset moves on by 2 plus the larger of the ports passed over
    /// and a random even number below 16, so that successive connects to one destination take
    /// increasing even ports, a random 2–16 apart (mean 9), while the range lasts.
    fn take_free(&mut self, len: u32, reusable: Option<&dyn Fn(u32) -> bool>) -> Option<Taken> {
        // Two copies of the search, so that the common one (no reuse) stays a tight loop over
        // the bitmap.
        match reusable {
            None if self.used >= len => None,
            None => self.search(len, |set, port| set.is_free(port).then_some(false)),
            Some(r) => self.search(len, |set, port| {
                if set.is_free(port) {
                    Some(false)
                } else {
                    r(port).then_some(true)
                }
            }),
        }
    }

    /// Linux's search (see `take_free`): the first port `hit` takes, `Some(true)` if it was
    /// held by a TIME-WAIT taken over.
    fn search(&mut self, len: u32, hit: impl Fn(&PortSet, u32) -> Option<bool>) -> Option<Taken> {
        // `offset` stays below `len`; wrapping is by subtraction, not division (this runs for
        // every open).
        let start = self.offset & !1;
        for parity in 0..2 {
            // Linux's loop: from low + offset, two at a time, wrapping by the range's size.
            let mut port = start + parity;
            if port >= len {
                port -= len;
            }
            let mut i = 0;
            while i < len {
                if let Some(reused) = hit(self, port) {
                    // A TIME-WAIT's port stays held, by the new connection.
                    if !reused {
                        let (w, b) = ((port / 64) as usize, port % 64);
                        self.bits[w] |= 1 << b;
                        self.used += 1;
                    }
                    self.draws = super::splitmix64(self.draws);
                    let random = (self.draws & 7) as u32 * 2;
                    let mut next = self.offset + i.max(random) + 2;
                    while next >= len {
                        next -= len;
                    }
                    self.offset = next;
                    return Some(Taken { port, reused });
                }
                i += 2;
                port += 2;
                if port >= len {
                    port -= len;
                }
            }
        }
        // Every port has one parity or the other: none was free, none reusable.
        None
    }

    fn take(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        let was_free = self.bits[w] >> b & 1 == 0;
        if was_free {
            self.bits[w] |= 1 << b;
            self.used += 1;
        }
        was_free
    }

    fn free(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        debug_assert!(self.bits[w] >> b & 1 == 1, "freeing a free port");
        self.bits[w] &= !(1 << b);
        self.used -= 1;
    }
}

#[derive(Debug, Default)]
struct PortsInner {
    sets: HashMap<(u32, u16), PortSet, FxBuildHasher>,
    /// Per server: the client IP index new connections are taken from, until it is full.
    current_ip: HashMap<u16, u32, FxBuildHasher>,
    used: u64,
}

/// Port shards: client IP `i` belongs to shard `i % PORT_SHARDS`.
pub(crate) const PORT_SHARDS: usize = 8;

/// The ephemeral port allocator, sharded by client IP. A caller names the shard it prefers (the
/// table passes the calling thread's index), so threads opening at once fill different client
/// IPs under different locks, and one thread alone fills IP 0, then IP 8, … exactly as before.
#[derive(Debug)]
pub struct Ports {
    /// Each on cache lines of its own: different threads write different shards.
    shards: Box<[super::Padded<Mutex<PortsInner>>]>,
    /// Seeds each destination's starting offset and steps, so a run replays exactly.
    seed: u64,
}

impl Ports {
    pub fn new(seed: u64) -> Ports {
        Ports {
            shards: (0..PORT_SHARDS).map(|_| Default::default()).collect(),
            seed,
        }
    }

    /// The ports of one client address toward one server.
    fn set(&self, ip: u32, server: u16, len: u32) -> PortSet {
        PortSet::new(len, self.seed ^ u64::from(ip) << 16 ^ u64::from(server))
    }
}

/// Where the allocator stands, for a state file: each destination's offset and random draws
/// (client IP index, server index, offset, draws) and, per port shard, the client IP each
/// server's opens come from. What is not here starts from its seeded beginning, as it would.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortsPosition {
    sets: Vec<(u32, u16, u32, u64)>,
    current: Vec<(u8, u16, u32)>,
}

/// A port found by `PortSet::take_free`: its index in the range, and whether a TIME-WAIT held it.
struct Taken {
    port: u32,
    reused: bool,
}

/// A (client IP, port) found by `Ports::allocate_reusing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocated {
    pub ip: u32,
    pub port: u16,
    /// The port was held by a TIME-WAIT of the same 4-tuple, which the new connection takes
    /// over (`tcp_tw_reuse`); it stays held.
    pub reused: bool,
}

/// When a connect may take over a TIME-WAIT (see `Ports::allocate_reusing`).
pub struct Reusable<'a> {
    pub may: &'a dyn Fn(u32) -> bool,
    pub port: &'a dyn Fn(u32, u16) -> bool,
}

/// No ephemeral port is free toward that server (from that client IP, if one was named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortsExhausted;

impl Ports {
    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, PortsInner> {
        self.shards[i % PORT_SHARDS]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a free (client IP, port) toward `server`: from `ip` if given, else from the pools,
    /// filling one client IP before moving to the next (a host uses one address until it runs out
    /// of ports toward a destination), starting in shard `prefer`.
    pub fn allocate(
        &self,
        addrs: &Addresses,
        server: u16,
        ip: Option<u32>,
        prefer: usize,
    ) -> Result<(u32, u16), PortsExhausted> {
        self.allocate_reusing(addrs, server, ip, prefer, None)
            .map(|a| (a.ip, a.port))
    }

    /// As `allocate`, and where `reuse` says so, a port held by a TIME-WAIT toward `server`
    /// counts as free (Linux `__inet_hash_connect` asks `check_established` of each port in its
    /// search, and takes the first that is free or whose TIME-WAIT it may reuse): `reuse.may(ip)`
    /// whether a client address may reuse at all, asked once per address searched, and
    /// `reuse.port(ip, port)` whether that port's TIME-WAIT may be taken over, asked of each held
    /// port in the search, with a ports shard locked: it must not wait for a map shard.
    pub fn allocate_reusing(
        &self,
        addrs: &Addresses,
        server: u16,
        ip: Option<u32>,
        prefer: usize,
        reuse: Option<&Reusable<'_>>,
    ) -> Result<Allocated, PortsExhausted> {
        let reusable = |ip: u32| reuse.filter(|r| (r.may)(ip)).map(|r| r.port);
        let len = addrs.range_len();
        let found = |ip: u32, t: Taken| Allocated {
            ip,
            port: addrs.port_lo + t.port as u16,
            reused: t.reused,
        };
        if let Some(ip) = ip {
            let mut inner = self.shard(ip as usize);
            let set = inner
                .sets
                .entry((ip, server))
                .or_insert_with(|| self.set(ip, server, len));
            let by_index = reusable(ip).map(|r| move |i: u32| r(ip, addrs.port_lo + i as u16));
            let t = set
                .take_free(len, by_index.as_ref().map(|f| f as &dyn Fn(u32) -> bool))
                .ok_or(PortsExhausted)?;
            inner.used += u64::from(!t.reused);
            return Ok(found(ip, t));
        }
        let total = addrs.client_ips();
        for k in 0..PORT_SHARDS {
            let shard = (prefer + k) % PORT_SHARDS;
            if shard as u64 >= total {
                continue; // fewer client IPs than shards: this one holds none
            }
            let mut guard = self.shard(shard);
            let inner = &mut *guard;
            // This shard's IPs are shard, shard + 8, shard + 16, …; start at its current one.
            let in_shard = (total - shard as u64).div_ceil(PORT_SHARDS as u64);
            let start = inner
                .current_ip
                .get(&server)
                .map_or(0, |&ip| u64::from(ip) / PORT_SHARDS as u64);
            for i in 0..in_shard {
                let ip = (shard as u64 + ((start + i) % in_shard) * PORT_SHARDS as u64) as u32;
                let set = inner
                    .sets
                    .entry((ip, server))
                    .or_insert_with(|| self.set(ip, server, len));
                let by_index = reusable(ip).map(|r| move |i: u32| r(ip, addrs.port_lo + i as u16));
                if let Some(t) =
                    set.take_free(len, by_index.as_ref().map(|f| f as &dyn Fn(u32) -> bool))
                {
                    inner.used += u64::from(!t.reused);
                    // `start` is where the current IP sits in the shard: rewrite it only
                    // when the allocation moved on to another IP.
                    if u64::from(ip) / PORT_SHARDS as u64 != start {
                        inner.current_ip.insert(server, ip);
                    }
                    return Ok(found(ip, t));
                }
            }
        }
        Err(PortsExhausted)
    }

    /// Takes a specific port (an explicit 4-tuple). False if it is taken. Ports outside the
    /// ephemeral range are not tracked here: the table's map keeps their 4-tuples unique.
    pub fn claim(&self, addrs: &Addresses, server: u16, ip: u32, port: u16) -> bool {
        if !addrs.in_range(port) {
            return true;
        }
        let len = addrs.range_len();
        let mut inner = self.shard(ip as usize);
        let taken = inner
            .sets
            .entry((ip, server))
            .or_insert_with(|| self.set(ip, server, len))
            .take(u32::from(port - addrs.port_lo));
        if taken {
            inner.used += 1;
        }
        taken
    }

    /// Gives back the port of a connection that is gone.
    pub fn release(&self, addrs: &Addresses, id: ConnId) {
        let port = id.port();
        if !addrs.in_range(port) {
            return;
        }
        let mut inner = self.shard(id.ip() as usize);
        let key = (id.ip(), id.server());
        if let Some(set) = inner.sets.get_mut(&key) {
            set.free(u32::from(port - addrs.port_lo));
            if set.used == 0 {
                inner.sets.remove(&key);
            }
            inner.used -= 1;
        }
    }

    /// Where the allocator stands (see [`PortsPosition`]), in a stable order.
    pub fn position(&self) -> PortsPosition {
        let mut p = PortsPosition::default();
        for shard in 0..PORT_SHARDS {
            let inner = self.shard(shard);
            p.sets.extend(
                inner
                    .sets
                    .iter()
                    .map(|(&(ip, server), set)| (ip, server, set.offset, set.draws)),
            );
            p.current.extend(
                inner
                    .current_ip
                    .iter()
                    .map(|(&server, &ip)| (shard as u8, server, ip)),
            );
        }
        p.sets.sort_unstable();
        p.current.sort_unstable();
        p
    }

    /// Puts the allocator where `p` says, after the ports in use were claimed. A destination
    /// with no port in use is left out: its ports start afresh, as they would have.
    pub fn set_position(&self, addrs: &Addresses, p: &PortsPosition) {
        let len = addrs.range_len();
        for &(ip, server, offset, draws) in &p.sets {
            if let Some(set) = self.shard(ip as usize).sets.get_mut(&(ip, server)) {
                set.offset = offset % len;
                set.draws = draws;
            }
        }
        for &(shard, server, ip) in &p.current {
            if usize::from(shard) < PORT_SHARDS && u64::from(ip) < addrs.client_ips() {
                self.shard(usize::from(shard)).current_ip.insert(server, ip);
            }
        }
    }

    /// Ephemeral ports in use.
    pub fn used(&self) -> u64 {
        (0..PORT_SHARDS).map(|i| self.shard(i).used).sum()
    }

    /// Ephemeral ports in all: every client IP × every server × the range.
    pub fn capacity(addrs: &Addresses) -> u64 {
        addrs.client_ips() * addrs.servers().len() as u64 * u64::from(addrs.range_len())
    }
}

/// Whether `id`'s port is one the allocator tracks.
pub fn tracks(addrs: &Addresses, id: ConnId) -> bool {
    addrs.in_range(id.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(pools: &[&str], ports: (u16, u16)) -> Addresses {
        let pools: Vec<Cidr> = pools.iter().map(|p| p.parse().unwrap()).collect();
        Addresses::new(
            &pools,
            &[
                "10.255.0.1:80".parse().unwrap(),
                "10.255.0.2:443".parse().unwrap(),
            ],
            ports,
        )
        .unwrap()
    }

    #[test]
    fn test_id_is_the_tuple() {
        let a = addrs(&["10.0.0.0/24", "192.168.7.0/30"], (32768, 60999));
        let t = FourTuple {
            client: "192.168.7.2:40000".parse().unwrap(),
            server: "10.255.0.2:443".parse().unwrap(),
        };
        let id = a.id_of(&t).unwrap();
        assert_eq!(a.tuple_of(id), Some(t));
        // Indices count hosts: 254 in the /24, then 192.168.7.2 is the /30's second.
        assert_eq!(id, ConnId::pack(1, 254 + 1, 40000));
        assert_eq!(a.ip_at(0), "10.0.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.client_ips(), 254 + 2);
        // A block's network and broadcast addresses are no client's.
        for ip in ["10.0.0.0", "10.0.0.255", "192.168.7.0", "192.168.7.3"] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            assert_eq!(a.ip_index(ip), Err(AddrError::ClientNotInPool(ip)));
        }
        // In a /31 or a /32 every address is a host.
        let b = addrs(&["10.1.0.0/31", "10.2.0.9/32"], (32768, 60999));
        assert_eq!(b.client_ips(), 3);
        assert_eq!(b.ip_at(0), "10.1.0.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(b.ip_at(2), "10.2.0.9".parse::<Ipv4Addr>().unwrap());
        let stranger = FourTuple {
            client: "172.16.0.1:40000".parse().unwrap(),
            ..t
        };
        assert_eq!(
            a.id_of(&stranger),
            Err(AddrError::ClientNotInPool("172.16.0.1".parse().unwrap()))
        );
        assert!(a.tuple_of(ConnId::pack(9, 0, 1)).is_none());
    }

    #[test]
    fn test_cidr_parsing() {
        assert_eq!("10.0.0.0/16".parse::<Cidr>().unwrap().len(), 65536);
        assert_eq!("10.0.0.7".parse::<Cidr>().unwrap().len(), 1);
        assert!(
            "10.0.0.1/16"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("host bits")
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let overlap = Addresses::new(
            &[
                "10.0.0.0/16".parse().unwrap(),
                "10.0.3.0/24".parse().unwrap(),
            ],
            &["1.1.1.1:1".parse().unwrap()],
            (1, 2),
        );
        assert!(overlap.is_err());
    }

    #[test]
    fn test_ports_fill_one_ip_then_the_next_then_run_out() {
        let a = addrs(&["10.0.0.0/31"], (1000, 1003)); // 2 IPs × 4 ports
        let p = Ports::new(7);
        let mut got = vec![];
        while let Ok(x) = p.allocate(&a, 0, None, 0) {
            got.push(x);
        }
        // One IP's four ports, even ones first, then the next IP's.
        let ips: Vec<u32> = got.iter().map(|&(ip, _)| ip).collect();
        assert_eq!(ips, [0, 0, 0, 0, 1, 1, 1, 1]);
        for ports in got.chunks(4) {
            let mut ports: Vec<u16> = ports.iter().map(|&(_, port)| port).collect();
            assert!(ports[..2].iter().all(|p| p % 2 == 0), "{ports:?}");
            ports.sort_unstable();
            assert_eq!(ports, [1000, 1001, 1002, 1003]);
        }
        assert_eq!(p.used(), 8);
        // Another server has its own ports.
        assert!(p.allocate(&a, 1, None, 0).is_ok());
        p.release(&a, ConnId::pack(0, 1, 1002));
        assert_eq!(p.allocate(&a, 0, None, 0), Ok((1, 1002)));
        assert_eq!(p.allocate(&a, 0, Some(0), 0), Err(PortsExhausted));
    }

    /// connect()'s choice, as measured on Linux with `ip_local_port_range` 40000–40999: even
    /// ports first, each a random even 2–16 above the last (mean about 9) while the range lasts,
    /// odd ones only when every even one is taken, and the 1001st connect refused at once.
    #[test]
    fn test_ports_are_chosen_as_connect_chooses_them() {
        let a = addrs(&["10.0.0.7/32"], (40000, 40999));
        let p = Ports::new(0x7463_7073_696d);
        let ports: Vec<u16> = (0..1000)
            .map(|_| p.allocate(&a, 0, Some(0), 0).unwrap().1)
            .collect();
        assert!(ports[..500].iter().all(|p| p % 2 == 0));
        assert!(ports[500..].iter().all(|p| p % 2 == 1));
        let mut all = ports.clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1000);
        assert_eq!(p.allocate(&a, 0, Some(0), 0), Err(PortsExhausted));
        // The first lap over the range: steps of 2 to 16, even.
        let steps: Vec<u32> = ports
            .windows(2)
            .take(100)
            .map(|w| (u32::from(w[1]) + 1000 - u32::from(w[0])) % 1000)
            .collect();
        assert!(
            steps.iter().all(|s| (2..=16).contains(s) && s % 2 == 0),
            "{steps:?}"
        );
        // And their mean, over a long range where the first thousand never wrap.
        let a = addrs(&["10.0.0.7/32"], (32768, 60999));
        let p = Ports::new(1);
        let ports: Vec<u32> = (0..1001)
            .map(|_| u32::from(p.allocate(&a, 0, Some(0), 0).unwrap().1))
            .collect();
        let mean = ports
            .windows(2)
            .map(|w| f64::from((w[1] + 28232 - w[0]) % 28232))
            .sum::<f64>()
            / 1000.0;
        assert!((8.5..=9.5).contains(&mean), "mean step {mean}");
        // Another destination starts elsewhere.
        let other = p.allocate(&a, 1, Some(0), 0).unwrap().1;
        assert_ne!(u32::from(other), ports[0]);
    }

    #[test]
    fn test_claim_marks_ports_the_allocator_then_skips() {
        let a = addrs(&["10.0.0.0/32"], (1000, 1002));
        let p = Ports::new(0);
        assert!(p.claim(&a, 0, 0, 1000));
        assert!(!p.claim(&a, 0, 0, 1000));
        assert!(p.claim(&a, 0, 0, 80)); // outside the range: not tracked
        // 1000 is claimed: the allocator takes the other even port first.
        assert_eq!(p.allocate(&a, 0, None, 0), Ok((0, 1002)));
        assert_eq!(p.used(), 2);
    }
}

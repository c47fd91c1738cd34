//! Which link a connection's AUTO pair runs over: a default for the whole table (`serve
//! --link`), overridden per server or per client pool, changeable while connections run (a
//! scenario's phase). A connection's link follows from its 4-tuple, so nothing is stored per
//! connection. Every call on a connection reads it: with no link anywhere (the default) that is
//! one relaxed load; with links, a read lock.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::tcp::{self, Link};

use super::addr::{Cidr, ConnId};

/// Where a link applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// Every connection without an override.
    Default,
    /// Connections to this server.
    Server(SocketAddrV4),
    /// Connections from this client pool (one of the table's, exactly).
    Pool(Cidr),
}

impl std::fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkTarget::Default => f.write_str("default"),
            LinkTarget::Server(s) => write!(f, "server {s}"),
            LinkTarget::Pool(p) => write!(f, "client pool {p}"),
        }
    }
}

/// The settings a connection runs on, by the link it takes: the table's own settings with each
/// link set, so that a call borrows one.
struct LinkSet {
    default: tcp::Config,
    servers: Vec<(u16, SocketAddrV4, tcp::Config)>,
    pools: Vec<(Cidr, tcp::Config)>,
}

pub(crate) struct Links {
    /// Whether any link is set: if not, every connection runs on the table's settings as they
    /// are, and no lock is taken.
    any: AtomicBool,
    set: RwLock<LinkSet>,
}

impl Links {
    pub(crate) fn new(tcp: &tcp::Config) -> Links {
        Links {
            any: AtomicBool::new(!tcp.link.is_none()),
            set: RwLock::new(LinkSet {
                default: tcp.clone(),
                servers: Vec::new(),
                pools: Vec::new(),
            }),
        }
    }

    /// Runs `f` with the settings connection `id` runs on: `tcp` (the table's) with its link.
    pub(crate) fn with<R>(
        &self,
        tcp: &tcp::Config,
        id: ConnId,
        client: impl FnOnce() -> Ipv4Addr,
        f: impl FnOnce(&tcp::Config) -> R,
    ) -> R {
        // `f` is written once, so that it is inlined once.
        let set;
        let cfg = if !self.any.load(Relaxed) {
            tcp
        } else {
            set = self.set.read().unwrap_or_else(|p| p.into_inner());
            let ip = client();
            set.pools
                .iter()
                .find(|(p, _)| p.contains(ip))
                .map(|(_, c)| c)
                .or_else(|| {
                    set.servers
                        .iter()
                        .find(|(s, _, _)| *s == id.server())
                        .map(|(_, _, c)| c)
                })
                .unwrap_or(&set.default)
        };
        f(cfg)
    }

    /// Sets the link of `target` (`server` is its index); for a server or a pool, no link
    /// removes the override.
    pub(crate) fn set(&self, target: LinkTarget, server: Option<u16>, link: Link) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        let with = |base: &tcp::Config| tcp::Config {
            link,
            ..base.clone()
        };
        match target {
            LinkTarget::Default => set.default.link = link,
            LinkTarget::Server(addr) => {
                let index = server.expect("a server target comes with its index");
                set.servers.retain(|(s, _, _)| *s != index);
                if !link.is_none() {
                    let cfg = with(&set.default);
                    set.servers.push((index, addr, cfg));
                }
            }
            LinkTarget::Pool(pool) => {
                set.pools.retain(|(p, _)| *p != pool);
                if !link.is_none() {
                    let cfg = with(&set.default);
                    set.pools.push((pool, cfg));
                }
            }
        }
        let any = !set.default.link.is_none() || !set.servers.is_empty() || !set.pools.is_empty();
        self.any.store(any, Relaxed);
    }

    /// Every link set: the default first, then the overrides.
    pub(crate) fn all(&self) -> Vec<(LinkTarget, Link)> {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![(LinkTarget::Default, set.default.link)];
        out.extend(
            set.servers
                .iter()
                .map(|(_, addr, c)| (LinkTarget::Server(*addr), c.link)),
        );
        out.extend(
            set.pools
                .iter()
                .map(|(p, c)| (LinkTarget::Pool(*p), c.link)),
        );
        out
    }
}

//! Each server's listener as Linux keeps one: its SYN queue (request socks in SYN-RECEIVED) and
//! its accept queue (connections made, not yet accepted), against `listen()`'s backlog clamped by
//! `somaxconn`, and its host's `tcp_max_syn_backlog`, `tcp_syncookies` and
//! `tcp_abort_on_overflow`. What a SYN, a SYN-ACK timeout and a completed handshake meet is
//! decided here, as `tcp_conn_request`, `reqsk_timer_handler` and `tcp_v4_syn_recv_sock` decide
//! it; the endpoint asks through `tcp::Output`.
//!
//! Every passive open passes through here, from every thread: the queues are atomics, each
//! listener on cache lines of its own, and a listener's settings are read with them.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::tcp::{ChildVerdict, SynVerdict};

use super::Padded;

/// Linux's defaults in a fresh network namespace (6.x), and `listen(fd, SOMAXCONN)`.
pub const SOMAXCONN: u32 = 4096;
pub const TCP_MAX_SYN_BACKLOG: u32 = 2048;

/// A listener's settings: the socket's backlog and its host's sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSettings {
    /// `listen()`'s backlog, before the clamp by `somaxconn`.
    pub backlog: u32,
    /// `net.core.somaxconn`: the most a backlog can be.
    pub somaxconn: u32,
    /// `tcp_max_syn_backlog`: without SYN cookies, the last quarter of it is kept for peers
    /// proven alive (here: none), so a SYN is dropped once fewer than a quarter are free.
    pub max_syn_backlog: u32,
    /// `tcp_syncookies`: 0 never, 1 when the SYN queue is full, 2 always.
    pub syncookies: u8,
    /// `tcp_abort_on_overflow`: a handshake completing into a full accept queue is reset
    /// instead of dropped.
    pub abort_on_overflow: bool,
    /// Whether the application accepts (at once); paused, completed connections wait.
    pub accepting: bool,
}

impl Default for HostSettings {
    fn default() -> HostSettings {
        HostSettings {
            backlog: SOMAXCONN,
            somaxconn: SOMAXCONN,
            max_syn_backlog: TCP_MAX_SYN_BACKLOG,
            syncookies: 1,
            abort_on_overflow: false,
            accepting: true,
        }
    }
}

impl HostSettings {
    /// Refuses what Linux would not take, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.syncookies > 2 {
            return Err(format!(
                "tcp_syncookies {}: 0, 1 or 2 are allowed",
                self.syncookies
            ));
        }
        if self.somaxconn == 0 {
            return Err("somaxconn 0: it must be at least 1".into());
        }
        if self.max_syn_backlog == 0 {
            return Err("tcp_max_syn_backlog 0: it must be at least 1".into());
        }
        Ok(())
    }

    /// The backlog in force (`__sys_listen` clamps it by `somaxconn`).
    pub fn effective_backlog(&self) -> u32 {
        self.backlog.min(self.somaxconn)
    }
}

/// A change to listeners' settings; `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenChange {
    pub backlog: Option<u32>,
    pub somaxconn: Option<u32>,
    pub max_syn_backlog: Option<u32>,
    pub syncookies: Option<u8>,
    pub abort_on_overflow: Option<bool>,
    pub accepting: Option<bool>,
}

impl ListenChange {
    pub fn apply(&self, s: HostSettings) -> HostSettings {
        HostSettings {
            backlog: self.backlog.unwrap_or(s.backlog),
            somaxconn: self.somaxconn.unwrap_or(s.somaxconn),
            max_syn_backlog: self.max_syn_backlog.unwrap_or(s.max_syn_backlog),
            syncookies: self.syncookies.unwrap_or(s.syncookies),
            abort_on_overflow: self.abort_on_overflow.unwrap_or(s.abort_on_overflow),
            accepting: self.accepting.unwrap_or(s.accepting),
        }
    }
}

/// One listener, as a query shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    pub server: SocketAddrV4,
    pub settings: HostSettings,
    /// Request socks in SYN-RECEIVED.
    pub syn_queue: u32,
    /// Connections made and not yet accepted.
    pub accept_queue: u32,
}

/// What listeners did, for the counters (Linux's MIB names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenEvent {
    /// `ListenDrops`: a SYN or a completing ACK dropped.
    Drop,
    /// `ListenOverflows` (and `ListenDrops`): the accept queue was full.
    Overflow,
    /// `SyncookiesSent`.
    CookieSent,
    /// `SyncookiesRecv`: a valid cookie made a connection.
    CookieRecv,
    /// `SyncookiesFailed`.
    CookieFailed,
}

impl ListenEvent {
    pub const ALL: [ListenEvent; 5] = [
        ListenEvent::Drop,
        ListenEvent::Overflow,
        ListenEvent::CookieSent,
        ListenEvent::CookieRecv,
        ListenEvent::CookieFailed,
    ];

    /// The metric's name part, as Linux's counter reads in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenEvent::Drop => "listen_drops",
            ListenEvent::Overflow => "listen_overflows",
            ListenEvent::CookieSent => "syncookies_sent",
            ListenEvent::CookieRecv => "syncookies_recv",
            ListenEvent::CookieFailed => "syncookies_failed",
        }
    }

    /// Linux's name (`nstat`).
    pub fn linux_name(self) -> &'static str {
        match self {
            ListenEvent::Drop => "ListenDrops",
            ListenEvent::Overflow => "ListenOverflows",
            ListenEvent::CookieSent => "SyncookiesSent",
            ListenEvent::CookieRecv => "SyncookiesRecv",
            ListenEvent::CookieFailed => "SyncookiesFailed",
        }
    }
}

struct Listener {
    /// The SYN queue's length (high half) and how many of it are young, their SYN-ACK timer never
    /// fired (low half): one word, so that each change is one atomic step.
    syn: AtomicU64,
    accept: AtomicU32,
    backlog: AtomicU32,
    somaxconn: AtomicU32,
    max_syn_backlog: AtomicU32,
    syncookies: AtomicU32,
    abort_on_overflow: AtomicBool,
    accepting: AtomicBool,
}

const ONE: u64 = 1 << 32;
const YOUNG: u64 = ONE - 1;

impl Listener {
    fn new(s: HostSettings) -> Listener {
        let l = Listener {
            syn: AtomicU64::new(0),
            accept: AtomicU32::new(0),
            backlog: AtomicU32::new(0),
            somaxconn: AtomicU32::new(0),
            max_syn_backlog: AtomicU32::new(0),
            syncookies: AtomicU32::new(0),
            abort_on_overflow: AtomicBool::new(false),
            accepting: AtomicBool::new(true),
        };
        l.set(s);
        l
    }

    fn settings(&self) -> HostSettings {
        HostSettings {
            backlog: self.backlog.load(Relaxed),
            somaxconn: self.somaxconn.load(Relaxed),
            max_syn_backlog: self.max_syn_backlog.load(Relaxed),
            syncookies: self.syncookies.load(Relaxed) as u8,
            abort_on_overflow: self.abort_on_overflow.load(Relaxed),
            accepting: self.accepting.load(Relaxed),
        }
    }

    fn set(&self, s: HostSettings) {
        self.backlog.store(s.backlog, Relaxed);
        self.somaxconn.store(s.somaxconn, Relaxed);
        self.max_syn_backlog.store(s.max_syn_backlog, Relaxed);
        self.syncookies.store(u32::from(s.syncookies), Relaxed);
        self.abort_on_overflow.store(s.abort_on_overflow, Relaxed);
        if s.accepting {
            // The application accepts what waited.
            self.accept.store(0, Relaxed);
        }
        self.accepting.store(s.accepting, Relaxed);
    }

    fn max_backlog(&self) -> u32 {
        self.backlog.load(Relaxed).min(self.somaxconn.load(Relaxed))
    }

    /// Linux `sk_acceptq_is_full`: more than the backlog waiting (so it holds backlog + 1).
    fn accept_full(&self) -> bool {
        !self.accepting.load(Relaxed) && self.accept.load(Relaxed) > self.max_backlog()
    }
}

/// Every server's listener, by server index.
pub(crate) struct Listeners {
    servers: Box<[Padded<Listener>]>,
}

impl Listeners {
    pub(crate) fn new(servers: usize, s: HostSettings) -> Listeners {
        Listeners {
            servers: (0..servers).map(|_| Padded(Listener::new(s))).collect(),
        }
    }

    fn get(&self, server: u16) -> &Listener {
        &self.servers[usize::from(server)].0
    }

    /// A SYN at `server`'s listener (Linux `tcp_conn_request`): a request sock if the SYN queue
    /// has room, else a cookie if `tcp_syncookies` allows, else nothing; `tcp_syncookies` 2
    /// cookies every SYN. A full accept queue drops the SYN first; without cookies,
    /// `tcp_max_syn_backlog` keeps its last quarter free. With `reserve`, a request sock takes
    /// its place in the queue here, in one atomic step with the check, so that concurrent SYNs
    /// never pass the cap; without, the caller only asks whether there is room (a request whose
    /// handshake ends within the same table call: see `Tally`), and puts it in the queue itself
    /// if it stays (`restore_request`).
    pub(crate) fn conn_request(
        &self,
        server: u16,
        reserve: bool,
        mut count: impl FnMut(ListenEvent),
    ) -> SynVerdict {
        let l = self.get(server);
        let decide = |syn: u64| -> (SynVerdict, bool) {
            let qlen = (syn >> 32) as u32;
            let cookies = l.syncookies.load(Relaxed);
            let max_syn = l.max_syn_backlog.load(Relaxed);
            let want_cookie = cookies == 2 || qlen > l.max_backlog();
            if want_cookie && cookies == 0 {
                (SynVerdict::Drop, false)
            } else if l.accept_full() {
                (SynVerdict::Drop, true)
            } else if want_cookie {
                (SynVerdict::Cookie, false)
            } else if cookies == 0 && max_syn - qlen.min(max_syn) < max_syn >> 2 {
                (SynVerdict::Drop, false)
            } else {
                (SynVerdict::Queue, false)
            }
        };
        let (verdict, overflow) = if reserve {
            let mut decided = (SynVerdict::Drop, false);
            let _ = l.syn.fetch_update(Relaxed, Relaxed, |syn| {
                decided = decide(syn);
                (decided.0 == SynVerdict::Queue).then_some(syn + ONE + 1)
            });
            decided
        } else {
            decide(l.syn.load(Relaxed))
        };
        if overflow {
            count(ListenEvent::Overflow);
        }
        match verdict {
            SynVerdict::Queue => {}
            SynVerdict::Cookie => count(ListenEvent::CookieSent),
            SynVerdict::Drop => count(ListenEvent::Drop),
        }
        verdict
    }

    /// A request sock's SYN-ACK timer fired after `retries` resends (Linux
    /// `reqsk_timer_handler`): while the SYN queue is more than half full (of the backlog, or 8),
    /// old requests get fewer resends, down to 2, the fewer the younger requests there are.
    /// Whether this one expires; if not and this was its first timeout, it is young no more.
    pub(crate) fn reqsk_timeout(&self, server: u16, max: u8, retries: u8) -> bool {
        let l = self.get(server);
        let syn = l.syn.load(Relaxed);
        let (qlen, young) = ((syn >> 32) as u32, (syn & YOUNG) as u32);
        let mut thresh = max;
        if qlen << 1 > l.max_backlog().max(8) {
            let mut young = u64::from(young) << 1;
            while thresh > 2 && u64::from(qlen) >= young {
                thresh -= 1;
                young <<= 1;
            }
        }
        let expire = retries >= thresh;
        if !expire && retries == 0 {
            let _ = l
                .syn
                .fetch_update(Relaxed, Relaxed, |s| (s & YOUNG > 0).then(|| s - 1));
        }
        expire
    }

    /// A request sock left the SYN queue.
    pub(crate) fn reqsk_removed(&self, server: u16, young: bool) {
        let d = ONE + u64::from(young);
        let _ = self
            .get(server)
            .syn
            .fetch_update(Relaxed, Relaxed, |s| s.checked_sub(d));
    }

    /// A handshake completed at `server`'s listener (Linux `tcp_v4_syn_recv_sock`): into the
    /// accept queue, or, if it is full, dropped (or reset, with `tcp_abort_on_overflow`).
    pub(crate) fn syn_recv_sock(
        &self,
        server: u16,
        cookie: bool,
        mut count: impl FnMut(ListenEvent),
    ) -> ChildVerdict {
        let l = self.get(server);
        if l.accept_full() {
            count(ListenEvent::Overflow);
            count(ListenEvent::Drop);
            return if l.abort_on_overflow.load(Relaxed) && !cookie {
                ChildVerdict::Reset
            } else {
                ChildVerdict::Drop
            };
        }
        if !l.accepting.load(Relaxed) {
            l.accept.fetch_add(1, Relaxed);
        }
        if cookie {
            count(ListenEvent::CookieRecv);
        }
        ChildVerdict::Accept
    }

    /// Changes the settings of `server`'s listener, or every listener's.
    pub(crate) fn change(&self, server: Option<u16>, change: &ListenChange) -> Result<(), String> {
        let which: Vec<&Listener> = match server {
            Some(i) => vec![self.get(i)],
            None => self.servers.iter().map(|p| &p.0).collect(),
        };
        // Validate every result before changing any.
        for l in &which {
            change.apply(l.settings()).validate()?;
        }
        for l in which {
            l.set(change.apply(l.settings()));
        }
        Ok(())
    }

    /// Each listener, by server index.
    pub(crate) fn infos(&self, servers: &[SocketAddrV4]) -> Vec<ListenerInfo> {
        servers
            .iter()
            .zip(self.servers.iter())
            .map(|(&server, l)| ListenerInfo {
                server,
                settings: l.0.settings(),
                syn_queue: (l.0.syn.load(Relaxed) >> 32) as u32,
                accept_queue: l.0.accept.load(Relaxed),
            })
            .collect()
    }

    /// Each listener's SYN queue: (length, young), by server index.
    pub(crate) fn syn_queues(&self) -> Vec<(u32, u32)> {
        self.servers
            .iter()
            .map(|l| {
                let syn = l.0.syn.load(Relaxed);
                ((syn >> 32) as u32, (syn & YOUNG) as u32)
            })
            .collect()
    }

    /// Puts a request sock in the SYN queue after the fact: one that `conn_request` found room
    /// for without reserving it and that outlived its table call, or a state file's.
    pub(crate) fn restore_request(&self, server: u16, young: bool) {
        self.get(server)
            .syn
            .fetch_add(ONE + u64::from(young), Relaxed);
    }
}

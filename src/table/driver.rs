//! The table's only contact with tokio: the real-clock driver that fires timers as they fall
//! due, the wake-up that a sooner timer gives it, and the watchers' queues of transitions.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::addr::ConnId;
use super::clock::Clock;
use super::types::{Error, Event};
use super::{Padded, Table};
use crate::tcp::{Side, State, Transition};

/// How the real-clock driver sleeps: the time (ms) it will wake at, so that arming an earlier
/// timer wakes it. 0 while it is awake, and always on a virtual clock.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pub(super) at: Padded<AtomicU64>,
    notify: tokio::sync::Notify,
}

impl Wake {
    /// A timer was armed for `deadline`, after its wheel's bound was lowered: wake the driver if
    /// it sleeps past it. `drive_timers` says why the two SeqCst steps suffice.
    pub(crate) fn armed(&self, deadline: u64) {
        if deadline < self.at.0.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }
}

/// Which transitions a watcher wants: those of `ids` (all if empty), on `side`, into `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchFilter {
    pub ids: Vec<ConnId>,
    pub side: Option<Side>,
    pub to: Option<State>,
}

impl WatchFilter {
    fn matches(&self, id: ConnId, side: Side, t: &Transition) -> bool {
        (self.ids.is_empty() || self.ids.contains(&id))
            && self.side.is_none_or(|s| s == side)
            && self.to.is_none_or(|s| s == t.to)
    }
}

/// What a watcher receives: an event, or how many events it matched and missed, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    Event(Event),
    Missed(u64),
}

/// One watcher's queue: the events that match its filter, at most `buffer` of them; when it is
/// full, a trailing `Missed` counts what did not fit, so what it reads stays in order.
#[derive(Debug)]
struct Subscriber {
    filter: WatchFilter,
    buffer: usize,
    queue: Mutex<VecDeque<Watched>>,
    ready: tokio::sync::Notify,
}

impl Subscriber {
    fn offer(&self, e: Event) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < self.buffer {
            q.push_back(Watched::Event(e));
        } else if let Some(Watched::Missed(n)) = q.back_mut() {
            *n += 1;
        } else {
            q.push_back(Watched::Missed(1));
        }
        drop(q);
        self.ready.notify_one();
    }
}

/// The watchers of a table. Publishing costs one relaxed load while nobody watches.
#[derive(Debug, Default)]
pub(crate) struct Events {
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    pub(super) watchers: AtomicUsize,
}

impl Events {
    /// Where transitions of `id` at `at` go while anyone watches; `None` when nobody does.
    pub(crate) fn sink(&self, id: ConnId, at: u64) -> Option<Sink<'_>> {
        (self.watchers.load(Ordering::Relaxed) > 0).then_some(Sink {
            events: self,
            id,
            at,
        })
    }
}

/// Publishes one connection's transitions.
pub(crate) struct Sink<'a> {
    events: &'a Events,
    id: ConnId,
    at: u64,
}

impl Sink<'_> {
    pub(crate) fn publish(&self, side: Side, transition: Transition) {
        let subs = self
            .events
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for s in subs.iter() {
            if s.filter.matches(self.id, side, &transition) {
                s.offer(Event {
                    id: self.id,
                    side,
                    transition,
                    at: self.at,
                });
            }
        }
    }
}

/// A subscription to transition events (see `Table::watch`); dropping it unsubscribes.
pub struct Watcher {
    sub: Arc<Subscriber>,
    table: Arc<Table>,
}

impl Watcher {
    /// The next event, or how many it missed; waits for one.
    pub async fn recv(&mut self) -> Watched {
        loop {
            if let Some(w) = self.try_recv() {
                return w;
            }
            self.sub.ready.notified().await;
        }
    }

    /// The next event, or how many it missed, if one waits.
    pub fn try_recv(&mut self) -> Option<Watched> {
        let mut q = self.sub.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.pop_front()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let events = &self.table.events;
        let mut subs = events
            .subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| !Arc::ptr_eq(s, &self.sub));
        events.watchers.store(subs.len(), Ordering::Relaxed);
    }
}

impl Table {
    /// Subscribes to the transitions `filter` matches, from now on. Each watcher has its own
    /// queue of at most `buffer` events (at least 1): one that falls behind is told how many
    /// matching events it missed, exactly, and nothing it did not ask for counts. Refused when
    /// `max` watchers are subscribed already.
    pub fn watch(
        self: &Arc<Self>,
        filter: WatchFilter,
        buffer: usize,
        max: usize,
    ) -> Result<Watcher, Error> {
        let sub = Arc::new(Subscriber {
            filter,
            buffer: buffer.max(1),
            queue: Mutex::new(VecDeque::new()),
            ready: tokio::sync::Notify::new(),
        });
        let mut subs = self
            .events
            .subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if subs.len() >= max {
            return Err(Error::TooManyWatchers { max });
        }
        subs.push(sub.clone());
        self.events.watchers.store(subs.len(), Ordering::Relaxed);
        Ok(Watcher {
            sub,
            table: self.clone(),
        })
    }

    /// Watchers subscribed now.
    pub fn watchers(&self) -> usize {
        self.events.watchers.load(Ordering::Relaxed)
    }
}

/// Drives a real-clock table's timers until `stop` says true: it fires what is due, one batch at a
/// time, yielding to other tasks between batches so that a storm of expiries never starves the
/// runtime; then it sleeps until the earliest deadline in any wheel, at most `max_sleep`, or until
/// a sooner timer is armed. An idle table costs no wake-ups. Lateness is recorded per timer
/// (`Counters::lag`).
///
/// No wake-up is lost: the driver publishes `wake_at` = 0 (awake), reads the wheels' bounds,
/// publishes the time it will sleep until, and reads the bounds again; `file_timer` lowers a bound
/// and then reads `wake_at`, all SeqCst. Either the driver's second read sees the new bound (and
/// it does not sleep past it), or the filer's read comes after the driver published its wake time
/// (and it notifies: `Notify` keeps the permit if the driver is not waiting yet).
pub async fn drive_timers(
    table: Arc<Table>,
    max_sleep: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Clock::Real { start, from } = table.clock else {
        return; // a virtual clock moves only by `advance`
    };
    let start = tokio::time::Instant::from_std(start);
    loop {
        if *stop.borrow() {
            return;
        }
        table.wake.at.0.store(0, Ordering::SeqCst);
        let now = table.now();
        loop {
            let (_, more) = table.run_timer_batch(now);
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
        let next = table.earliest_bound();
        if next <= table.now() {
            continue; // due already (armed while we fired, or re-filed)
        }
        let cap = table.now() + max_sleep.as_millis() as u64;
        let until = next.min(cap);
        table.wake.at.0.store(until, Ordering::SeqCst);
        if table.earliest_bound() < until {
            continue; // armed meanwhile, sooner
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + std::time::Duration::from_millis(until.saturating_sub(from))) => {}
            _ = table.wake.notify.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return; // the server is gone
                }
            }
        }
    }
}

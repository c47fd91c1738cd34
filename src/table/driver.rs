//! The table's only contact with tokio: the real-clock driver that fires timers as they fall
//! due, the wake-up that a sooner timer gives it, and the channel that carries transitions to
//! watchers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::broadcast;

use super::addr::ConnId;
use super::clock::Clock;
use super::types::Event;
use super::{Padded, Table};

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

/// Transition events for watchers: a bounded broadcast, and how many watch.
#[derive(Debug)]
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
    pub(super) watchers: AtomicUsize,
}

impl Events {
    /// `buffer` events buffered for watchers (rounded up to a power of two).
    pub(crate) fn new(buffer: usize) -> Events {
        Events {
            tx: broadcast::channel(buffer.max(1)).0,
            watchers: AtomicUsize::new(0),
        }
    }

    /// Where transitions of `id` at `at` go while anyone watches; `None` when nobody does.
    pub(crate) fn sink(&self, id: ConnId, at: u64) -> Option<Sink<'_>> {
        (self.watchers.load(Ordering::Relaxed) > 0).then_some(Sink {
            tx: &self.tx,
            id,
            at,
        })
    }
}

/// Publishes one connection's transitions.
pub(crate) struct Sink<'a> {
    tx: &'a broadcast::Sender<Event>,
    id: ConnId,
    at: u64,
}

impl Sink<'_> {
    pub(crate) fn publish(&self, side: crate::tcp::Side, transition: crate::tcp::Transition) {
        // No receiver is not an error: a watcher may just have gone.
        let _ = self.tx.send(Event {
            id: self.id,
            side,
            transition,
            at: self.at,
        });
    }
}

/// A subscription to transition events (see `Table::watch`).
pub struct Watcher {
    pub rx: broadcast::Receiver<Event>,
    table: Arc<Table>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.table.events.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Table {
    /// Subscribes to every transition from now on. The buffer is shared and bounded: a watcher
    /// that falls further behind than `event_buffer` events is told how many it missed.
    pub fn watch(self: &Arc<Self>) -> Watcher {
        self.events.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx: self.events.tx.subscribe(),
            table: self.clone(),
        }
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
    let Clock::Real { start } = table.clock else {
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
            _ = tokio::time::sleep_until(start + std::time::Duration::from_millis(until)) => {}
            _ = table.wake.notify.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return; // the server is gone
                }
            }
        }
    }
}

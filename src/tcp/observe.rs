//! What the drivers of endpoints (a pair, an EXTERNAL endpoint) report to their caller: one
//! observer trait, and a log of everything for tests.

use super::endpoint::{ChildVerdict, SynVerdict};
use super::pair::Side;
use super::segment::Segment;
use super::state::Transition;

/// What a driver of endpoints reports, side by side: each change of state and each segment
/// sent, and for a pair what its wire did with them. A pair and an EXTERNAL endpoint report
/// through this one trait.
pub trait Observer {
    fn transition(&mut self, side: Side, t: Transition) {
        let _ = (side, t);
    }
    fn segment(&mut self, from: Side, seg: &Segment) {
        let _ = (from, seg);
    }
    /// A segment arrived at `to` from the wire (AUTO delivery or a MANUAL deliver).
    fn delivered(&mut self, to: Side, seg: &Segment) {
        let _ = (to, seg);
    }
    /// AUTO delivery hit its limit (`pair::AUTO_DELIVERY_LIMIT`) and dropped this segment, sent
    /// by `from`.
    fn overflow(&mut self, from: Side, seg: &Segment) {
        let _ = (from, seg);
    }
    /// A link lost, duplicated or reordered a segment `from` sent.
    fn link(&mut self, from: Side, ev: super::link::LinkEvent) {
        let _ = (from, ev);
    }
    /// Segments in flight on a link: `delta` more (sent, or a duplicate) or fewer (arrived, or
    /// gone with their connection).
    fn in_flight(&mut self, delta: i64) {
        let _ = delta;
    }
    /// `side`'s endpoint is becoming a timewait sock: whether its host has room for it
    /// (`tcp_max_tw_buckets`; see `Output::admit_timewait`).
    fn admit_timewait(&mut self, side: Side) -> bool {
        let _ = side;
        true
    }
    /// `side`'s timewait sock is gone.
    fn left_timewait(&mut self, side: Side) {
        let _ = side;
    }
    /// The listener questions of `Output` (`conn_request`, `reqsk_timeout`, `reqsk_removed`,
    /// `syn_recv_sock`, `cookie_failed`), asked by `side`'s endpoint.
    fn conn_request(&mut self, side: Side) -> SynVerdict {
        let _ = side;
        SynVerdict::Queue
    }
    fn reqsk_timeout(&mut self, side: Side, max: u8, retries: u8) -> bool {
        let _ = side;
        retries >= max
    }
    fn reqsk_removed(&mut self, side: Side, young: bool) {
        let _ = (side, young);
    }
    fn syn_recv_sock(&mut self, side: Side, cookie: bool) -> ChildVerdict {
        let _ = (side, cookie);
        ChildVerdict::Accept
    }
    fn cookie_failed(&mut self, side: Side) {
        let _ = side;
    }
    /// `side`'s active open completed after `ms` (see `Output::connected`).
    fn connected(&mut self, side: Side, ms: u64) {
        let _ = (side, ms);
    }
}

impl Observer for () {}

/// The `Output` methods that only pass a host question on to the driver's observer, for the
/// endpoint's side: written once for the outputs that have `obs` and `side` fields (a pair's
/// `Emit`, an EXTERNAL endpoint's `Reported`).
macro_rules! ask_observer {
    () => {
        fn admit_timewait(&mut self) -> bool {
            self.obs.admit_timewait(self.side)
        }
        fn left_timewait(&mut self) {
            self.obs.left_timewait(self.side);
        }
        fn conn_request(&mut self) -> $crate::tcp::SynVerdict {
            self.obs.conn_request(self.side)
        }
        fn reqsk_timeout(&mut self, max: u8, retries: u8) -> bool {
            self.obs.reqsk_timeout(self.side, max, retries)
        }
        fn reqsk_removed(&mut self, young: bool) {
            self.obs.reqsk_removed(self.side, young);
        }
        fn syn_recv_sock(&mut self, cookie: bool) -> $crate::tcp::ChildVerdict {
            self.obs.syn_recv_sock(self.side, cookie)
        }
        fn cookie_failed(&mut self) {
            self.obs.cookie_failed(self.side);
        }
        fn connected(&mut self, ms: u64) {
            self.obs.connected(self.side, ms);
        }
    };
}
pub(crate) use ask_observer;

/// Records every transition and segment, in order.
#[derive(Default, Debug)]
pub struct Log {
    pub transitions: Vec<(Side, Transition)>,
    pub segments: Vec<(Side, Segment)>,
    pub overflowed: u32,
}

impl Observer for Log {
    fn transition(&mut self, side: Side, t: Transition) {
        self.transitions.push((side, t));
    }
    fn segment(&mut self, from: Side, seg: &Segment) {
        self.segments.push((from, *seg));
    }
    fn overflow(&mut self, _: Side, _: &Segment) {
        self.overflowed += 1;
    }
}

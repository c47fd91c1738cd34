//! A network between the hosts, for AUTO pairs: one-way delay, jitter, loss, duplication and
//! reordering (netem's vocabulary), and the segments in flight on it.
//!
//! Sans-IO like the rest of the core: a segment sent at `now` is given its delivery time here,
//! and the pair's driver delivers it when its caller's clock gets there (the table files it in
//! its timer wheel like a timer). Every random draw is a hash of the pair's seed, the segment,
//! the time and the segment's place in its call, so a run on a virtual clock replays exactly,
//! whatever thread drives which connection.

use std::fmt;
use std::str::FromStr;

use super::pair::Side;
use super::segment::Segment;
use crate::mix::splitmix64;

/// A probability, in parts per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chance(pub u32);

impl Chance {
    pub const MILLION: u32 = 1_000_000;

    fn hits(self, draw: u64) -> bool {
        ((draw >> 32) % u64::from(Self::MILLION)) < u64::from(self.0)
    }
}

impl fmt::Display for Chance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", f64::from(self.0) / 10_000.0)
    }
}

/// How a link treats each segment. Zero everywhere is no link: segments are delivered at once,
/// as they always were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// One-way delay, ms.
    pub delay_ms: u32,
    /// Each segment's delay is `delay_ms` plus a draw uniform in [−jitter, +jitter], at least
    /// 1 ms in all. Jitter lets a later segment overtake an earlier one, as on a real link.
    pub jitter_ms: u32,
    /// The segment is lost.
    pub loss: Chance,
    /// The segment arrives twice (the copy 1 ms after it).
    pub duplicate: Chance,
    /// The segment skips the delay (netem's reorder): it arrives 1 ms after it was sent,
    /// overtaking what is in flight.
    pub reorder: Chance,
}

/// The longest delay plus jitter, ms: a delivery time must stay within the range the pair's
/// driver reads back from 32 bits (as the endpoints' timers do).
pub const MAX_LINK_DELAY_MS: u32 = 3_600_000;

impl Link {
    pub fn is_none(&self) -> bool {
        *self == Link::default()
    }

    /// Refuses what the driver cannot work with, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.delay_ms.saturating_add(self.jitter_ms) > MAX_LINK_DELAY_MS {
            return Err(format!(
                "delay + jitter {} ms: at most {MAX_LINK_DELAY_MS} ms",
                u64::from(self.delay_ms) + u64::from(self.jitter_ms)
            ));
        }
        for (name, c) in [
            ("loss", self.loss),
            ("dup", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if c.0 > Chance::MILLION {
                return Err(format!("{name} {c}: at most 100%"));
            }
        }
        Ok(())
    }

    /// What becomes of a segment sent at `now`: when its copies arrive (none if lost). `draw`
    /// is a hash of everything that makes this segment this one (see `Flight::send`).
    ///
    /// Four independent draws, each made only if its setting is not zero (a zero chance never
    /// hits, a zero jitter spreads nothing): a link of delay and loss costs one.
    fn fate(&self, now: u64, draw: u64) -> Fate {
        let nth = |k: u64| splitmix64(draw ^ k.wrapping_mul(0x9E37_79B9));
        let hits = |c: Chance, k: u64| c.0 > 0 && c.hits(nth(k));
        if hits(self.loss, 1) {
            return Fate::Lost;
        }
        let reordered = hits(self.reorder, 2);
        let delay = if reordered {
            1
        } else if self.jitter_ms == 0 {
            u64::from(self.delay_ms.max(1))
        } else {
            let j = i64::from(self.jitter_ms);
            let spread = (nth(3) >> 32) % (2 * j as u64 + 1);
            (i64::from(self.delay_ms) + spread as i64 - j).max(1) as u64
        };
        let at = now + delay;
        if hits(self.duplicate, 4) {
            Fate::Twice(at)
        } else {
            Fate::Once(at, reordered)
        }
    }
}

/// "delay=25ms,jitter=2ms,loss=1%,dup=0.1%,reorder=0.5%": any of them, in any order; "none"
/// or "" for no link.
impl FromStr for Link {
    type Err = String;
    fn from_str(s: &str) -> Result<Link, String> {
        let mut link = Link::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(link);
        }
        for part in s.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: write NAME=VALUE (delay=25ms, loss=1%)"))?;
            let (key, value) = (key.trim(), value.trim());
            let ms = || -> Result<u32, String> {
                let n = value.strip_suffix("ms").unwrap_or(value);
                n.trim()
                    .parse()
                    .map_err(|_| format!("{key}={value}: not a whole number of ms"))
            };
            let chance = || -> Result<Chance, String> {
                let n = value
                    .strip_suffix('%')
                    .ok_or_else(|| format!("{key}={value}: write a percentage (1%, 0.5%)"))?;
                let pct: f64 = n
                    .trim()
                    .parse()
                    .map_err(|_| format!("{key}={value}: not a number"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(format!("{key}={value}: between 0% and 100%"));
                }
                Ok(Chance((pct * 10_000.0).round() as u32))
            };
            match key {
                "delay" => link.delay_ms = ms()?,
                "jitter" => link.jitter_ms = ms()?,
                "loss" => link.loss = chance()?,
                "dup" | "duplicate" => link.duplicate = chance()?,
                "reorder" => link.reorder = chance()?,
                _ => {
                    return Err(format!(
                        "{key:?} is not a link setting (delay, jitter, loss, dup, reorder)"
                    ));
                }
            }
        }
        link.validate()?;
        Ok(link)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        write!(
            f,
            "delay={}ms,jitter={}ms,loss={},dup={},reorder={}",
            self.delay_ms, self.jitter_ms, self.loss, self.duplicate, self.reorder
        )
    }
}

enum Fate {
    Lost,
    Once(u64, bool),
    Twice(u64),
}

/// A segment in flight: when it arrives (the low 32 bits of the clock, read back as the
/// endpoints' deadlines are) and at which side. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InFlight {
    pub at: u32,
    pub to: Side,
    pub seg: Segment,
}

impl InFlight {
    /// Its delivery time on a clock that stands at `now` (within 2^31 ms of it).
    pub fn at(&self, now: u64) -> u64 {
        let ahead = self.at.wrapping_sub(now as u32) as i32;
        now.saturating_add_signed(i64::from(ahead))
    }
}

/// What the link did with a segment, for the pair's observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Lost,
    Duplicated,
    Reordered,
}

/// A pair's segments in flight (see `pair::Flying` for why on the heap, and not inline).
pub type InFlightQueue = Vec<InFlight>;

/// Segments onto a link: a pair's queue of segments in flight, the link, and the pair's seed.
pub struct Flight<'a> {
    pub queue: &'a mut InFlightQueue,
    pub link: &'a Link,
    /// The pair's seed, hashed once (`Flight::seeded`).
    pub seed: u64,
    /// Segments sent so far in this call: two identical segments sent at the same time draw
    /// apart.
    pub sent: u32,
}

impl<'a> Flight<'a> {
    /// Onto `link`, for the pair seeded by `seed`.
    pub fn seeded(queue: &'a mut InFlightQueue, link: &'a Link, seed: u64) -> Flight<'a> {
        Flight {
            queue,
            link,
            seed: splitmix64(seed),
            sent: 0,
        }
    }

    /// `seg`, sent toward `to` at `now`: queued for when it arrives, or lost. Returns what the
    /// link did beyond delaying it.
    pub fn send(&mut self, now: u64, to: Side, seg: Segment) -> Option<LinkEvent> {
        // Each input mixed in turn, so that none can cancel another (a SYN-ACK's sequence
        // number is the seed's own ISS).
        let draw = [
            u64::from(seg.seq.0) << 32 | u64::from(seg.ack.0),
            u64::from(seg.flags.0) << 48
                | u64::from(seg.len) << 16
                | u64::from(self.sent) << 1
                | to as u64,
            now,
        ]
        .into_iter()
        .fold(self.seed, |h, x| splitmix64(h ^ x));
        self.sent += 1;
        let at = |t: u64| InFlight {
            at: t as u32,
            to,
            seg,
        };
        match self.link.fate(now, draw) {
            Fate::Lost => Some(LinkEvent::Lost),
            Fate::Once(t, reordered) => {
                self.queue.push(at(t));
                reordered.then_some(LinkEvent::Reordered)
            }
            Fate::Twice(t) => {
                self.queue.push(at(t));
                self.queue.push(at(t + 1));
                Some(LinkEvent::Duplicated)
            }
        }
    }
}

/// The next segment due at or before `now`, earliest first (ties: the one sent first), taken
/// off the queue.
pub fn take_due(queue: &mut InFlightQueue, now: u64) -> Option<(u64, InFlight)> {
    let (i, at) = queue
        .iter()
        .enumerate()
        .map(|(i, f)| (i, f.at(now)))
        .filter(|&(_, at)| at <= now)
        .min_by_key(|&(i, at)| (at, i))?;
    Some((at, queue.remove(i)))
}

/// The earliest delivery time in `queue`, on a clock at `now`.
pub fn next_due(queue: &[InFlight], now: u64) -> Option<u64> {
    queue.iter().map(|f| f.at(now)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_read_as_netem_writes_them() {
        let l: Link = "delay=25ms,jitter=2ms,loss=1%,dup=0.1%,reorder=0.5%"
            .parse()
            .unwrap();
        assert_eq!(
            l,
            Link {
                delay_ms: 25,
                jitter_ms: 2,
                loss: Chance(10_000),
                duplicate: Chance(1_000),
                reorder: Chance(5_000),
            }
        );
        assert_eq!(l.to_string().parse::<Link>().unwrap(), l);
        assert!("none".parse::<Link>().unwrap().is_none());
        for (bad, why) in [
            ("delay=25", ""),
            ("delay=fast", "not a whole number"),
            ("loss=1", "write a percentage"),
            ("loss=101%", "between 0% and 100%"),
            ("speed=1ms", "not a link setting"),
            ("delay", "NAME=VALUE"),
            ("delay=4000000ms", "at most 3600000 ms"),
        ] {
            match bad.parse::<Link>() {
                Ok(l) => assert!(why.is_empty(), "{bad} parsed as {l:?}"),
                Err(e) => assert!(e.contains(why), "{bad}: {e}"),
            }
        }
    }

    /// Over many segments, each fate comes as often as its chance says (within 4 standard
    /// deviations), and delays stay within delay ± jitter.
    #[test]
    fn fates_follow_their_chances() {
        let link: Link = "delay=25ms,jitter=5ms,loss=2%,dup=1%,reorder=1%"
            .parse()
            .unwrap();
        let mut queue = InFlightQueue::new();
        let mut f = Flight::seeded(&mut queue, &link, 7);
        let n = 200_000u32;
        let mut counts = [0u32; 3];
        for i in 0..n {
            let seg = Segment {
                seq: super::super::seq::SeqNum(i.wrapping_mul(1461)),
                ..Segment::default()
            };
            match f.send(1000, Side::Server, seg) {
                Some(LinkEvent::Lost) => counts[0] += 1,
                Some(LinkEvent::Duplicated) => counts[1] += 1,
                Some(LinkEvent::Reordered) => counts[2] += 1,
                None => {}
            }
        }
        let within = |got: u32, p: f64| {
            let mean = f64::from(n) * p;
            (f64::from(got) - mean).abs() < 4.0 * (mean * (1.0 - p)).sqrt()
        };
        assert!(within(counts[0], 0.02), "lost {}", counts[0]);
        assert!(within(counts[1], 0.98 * 0.01), "duplicated {}", counts[1]);
        assert!(within(counts[2], 0.98 * 0.01), "reordered {}", counts[2]);
        for q in &queue {
            let at = q.at(1000);
            assert!(
                (1001..=1002).contains(&at) || (1020..=1031).contains(&at),
                "{at}"
            );
        }
    }
}

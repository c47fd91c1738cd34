//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
//!
//! Never compare raw `u32`s: `a < b` on a [`SeqNum`] means "a comes before b" in the circular
//! space, which stays right across the wrap from 2^32 − 1 to 0.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A TCP sequence or acknowledgment number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self` lies in `[lo, lo + len)`, modulo 2^32.
    pub fn in_window(self, lo: SeqNum, len: u32) -> bool {
        self.0.wrapping_sub(lo.0) < len
    }
}

impl PartialOrd for SeqNum {
    /// Circular order: `a < b` when `b − a` is in (0, 2^31). Two numbers exactly 2^31 apart are
    /// ordered by the sign of their difference, as every TCP implementation does.
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some((self.0.wrapping_sub(other.0) as i32).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

/// The distance from `rhs` forward to `self`, modulo 2^32.
impl Sub<SeqNum> for SeqNum {
    type Output = u32;
    fn sub(self, rhs: SeqNum) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_order_across_wrap() {
        let before = SeqNum(u32::MAX - 1);
        let after = before + 3;
        assert_eq!(after, SeqNum(1));
        assert!(before < after);
        assert!(after > before);
        assert_eq!(after - before, 3);
        assert!(SeqNum(5) <= SeqNum(5));
    }

    #[test]
    fn test_in_window_across_wrap() {
        let lo = SeqNum(u32::MAX - 10);
        assert!(SeqNum(u32::MAX).in_window(lo, 20));
        assert!(SeqNum(8).in_window(lo, 20));
        assert!(!SeqNum(9).in_window(lo, 20));
        assert!(!SeqNum(u32::MAX - 11).in_window(lo, 20));
        assert!(!lo.in_window(lo, 0));
    }
}

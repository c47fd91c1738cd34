//! A TCP segment as the simulator sees it: the header fields that drive the state machine and a
//! payload length (payload bytes themselves are never stored).

use super::seq::SeqNum;
use std::fmt;
use std::num::NonZeroU16;

/// Control bits (RFC 9293 §3.1), in header order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const NONE: Flags = Flags(0);

    pub fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses `"SYN"`, `"ACK"`… (case-insensitive); `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Flags> {
        Some(match name.to_ascii_uppercase().as_str() {
            "FIN" => Flags::FIN,
            "SYN" => Flags::SYN,
            "RST" => Flags::RST,
            "PSH" => Flags::PSH,
            "ACK" => Flags::ACK,
            "URG" => Flags::URG,
            _ => return None,
        })
    }
}

/// From a list of names (`["SYN", "ACK"]`), as scenario files write control bits.
impl<'de> serde::Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().try_fold(Flags::NONE, |acc, n| {
            Flags::from_name(n).map(|f| acc | f).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{n:?} is not a control bit (FIN, SYN, RST, PSH, ACK, URG)"
                ))
            })
        })
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 6] = [
            (Flags::SYN, "SYN"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
            (Flags::URG, "URG"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.has(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One segment. `ack` is meaningful only with the ACK flag; `mss` is the MSS option (SYNs only;
/// an option of 0 is no option, as Linux's `tcp_parse_options` treats it).
///
/// Sixteen bytes (`test_sizes` pins it): `len` is a `u16` because an IPv4 datagram carries at most
/// 65 535 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub len: u16,
    pub wnd: u16,
    pub mss: Option<NonZeroU16>,
    #[serde(with = "bits")]
    pub flags: Flags,
}

/// Control bits as their byte, where a segment is stored (a state file); scenario files name
/// them (`Flags`'s own `Deserialize`).
mod bits {
    use super::Flags;

    pub fn serialize<S: serde::Serializer>(f: &Flags, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(f.0)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
        <u8 as serde::Deserialize>::deserialize(d).map(Flags)
    }
}

impl Segment {
    /// SEG.LEN: the sequence space the segment occupies, counting SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        u32::from(self.len)
            + u32::from(self.flags.has(Flags::SYN))
            + u32::from(self.flags.has(Flags::FIN))
    }

    pub fn has(&self, flags: Flags) -> bool {
        self.flags.has(flags)
    }
}

impl fmt::Display for Segment {
    /// RFC 9293's notation: `<SEQ=100><ACK=300><CTL=SYN|ACK><LEN=0>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SEQ={}>", self.seq)?;
        if self.has(Flags::ACK) {
            write!(f, "<ACK={}>", self.ack)?;
        }
        write!(f, "<CTL={}><LEN={}>", self.flags, self.len)
    }
}

//! Hand-written protobuf for the `Run` stream's common messages, used by the codec before prost:
//! the one place outside the generated code that knows `simulator.proto`'s field numbers.
//!
//! Kept because it pays: `cargo bench --bench run_stream` measures the `Run` stream with it on
//! and off in one run, and it carries 14–18% more Send operations per second (4.16–4.20 M/s
//! against 3.54–3.66 M/s on 2 cores).
//!
//! prost decodes a message through one out-of-line function per field: 31–45 ns for a 12-byte
//! `Command` carrying a Send, half as much as the table takes to do the Send; this reads it in
//! 16 ns (both timed in a loop over one message, with a harness not kept). The commands whose
//! request is a flat message of integers (Close, Abort, Send, Get by id, Stats, AdvanceClock,
//! Remove) and the results made of integers only (states, a clock advance, a removal) are read
//! and written here instead, straight from and to bytes: by the server, and by Rust clients built
//! on these stubs.
//!
//! The rule that keeps this exact: the fast path takes only what it can read to the very value
//! prost would, and gives up (`None`) on anything else — an unknown or repeated field, a second
//! `op`, an unexpected wire type, a malformed varint — so that prost decides, with its own result
//! or error. Writing, it produces prost's bytes exactly. The tests hold both to prost, and hold
//! [`FIELDS`] and the field numbers below to the compiled descriptor set: a field added to,
//! removed from or renumbered in a message handled here fails them, so that this file is
//! changed with the schema (a field the writer did not know would otherwise be dropped).

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, Ordering};

use super::proto as pb;
use pb::command::Op;
use pb::command_result::Result as R;

/// `Command.op` and `CommandResult.result` members handled here, by field number.
mod member {
    pub const CLOSE: u64 = 3;
    pub const ABORT: u64 = 4;
    pub const SEND: u64 = 5;
    pub const GET: u64 = 8;
    pub const STATS: u64 = 9;
    pub const ADVANCE_CLOCK: u64 = 10;
    pub const REMOVE: u64 = 11;

    pub const STATES: u64 = 3;
    pub const ADVANCED: u64 = 8;
    pub const REMOVED: u64 = 9;
}

/// `tag`, field 1 of both `Command` and `CommandResult`.
const TAG: u64 = 1;

/// Every message handled here and its fields in number order, 1, 2, …: each a varint (an
/// integer or an enum) except where marked as a message (`GetRequest.tuple`, a selector), as
/// optional (an `incarnation`) or as repeated (the ids of a call on many, a map of failures):
/// this path never carries those, a message with one is prost's. `AdvanceClockRequest.ms` is
/// carried only when 0 (the old `millis` is). `Command` and
/// `CommandResult` are listed by their members above and `tag`.
pub const FIELDS: &[(&str, &[&str])] = &[
    (
        "CloseRequest",
        &[
            "id",
            "side",
            "how",
            "incarnation (optional)",
            "ids (repeated)",
            "select (message)",
        ],
    ),
    (
        "AbortRequest",
        &[
            "id",
            "side",
            "incarnation (optional)",
            "ids (repeated)",
            "select (message)",
        ],
    ),
    (
        "SendRequest",
        &[
            "id",
            "side",
            "bytes",
            "incarnation (optional)",
            "ids (repeated)",
            "select (message)",
        ],
    ),
    (
        "GetRequest",
        &["id", "tuple (message)", "incarnation (optional)"],
    ),
    ("StatsRequest", &[]),
    ("AdvanceClockRequest", &["millis", "ms"]),
    ("RemoveRequest", &["id", "incarnation (optional)"]),
    (
        "ConnectionStates",
        &["id", "client", "server", "done", "failed (repeated)"],
    ),
    ("AdvanceClockResponse", &["now_ms", "timers_fired"]),
    ("RemoveResponse", &[]),
];

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fast path on or off in the whole process (clients and servers alike), so that a
/// benchmark can weigh it in one run. On unless turned off.
#[doc(hidden)]
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// `U` read from `bytes` by the fast path, or `None`: leave it to prost.
#[inline]
pub fn decode<U: 'static>(bytes: &[u8]) -> Option<U> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let t = TypeId::of::<U>();
    if t == TypeId::of::<pb::Command>() {
        cast(command(bytes)?)
    } else if t == TypeId::of::<pb::CommandResult>() {
        cast(command_result(bytes)?)
    } else {
        None
    }
}

/// Writes `item` by the fast path and returns true, or returns false: leave it to prost.
#[inline]
pub fn encode<T: 'static>(item: &T, out: &mut impl prost::bytes::BufMut) -> bool {
    if !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    let item = item as &dyn Any;
    let mut w = Writer::default();
    if let Some(c) = item.downcast_ref::<pb::Command>() {
        use member::*;
        w.varint_field(TAG, c.tag);
        match &c.op {
            // Only what this path carries: a request with an incarnation, ids or a selector is
            // prost's.
            Some(Op::Close(r)) if one(r.incarnation, &r.ids, &r.select) => {
                w.message(CLOSE, &[r.id, enum_value(r.side), enum_value(r.how)])
            }
            Some(Op::Abort(r)) if one(r.incarnation, &r.ids, &r.select) => {
                w.message(ABORT, &[r.id, enum_value(r.side)])
            }
            Some(Op::Send(r)) if one(r.incarnation, &r.ids, &r.select) => {
                w.message(SEND, &[r.id, enum_value(r.side), u64::from(r.bytes)])
            }
            Some(Op::Get(r)) if r.tuple.is_none() && r.incarnation.is_none() => {
                w.message(GET, &[r.id])
            }
            Some(Op::Stats(_)) => w.message(STATS, &[]),
            Some(Op::AdvanceClock(r)) if r.ms == 0 => w.message(ADVANCE_CLOCK, &[r.millis]),
            Some(Op::Remove(r)) if r.incarnation.is_none() => w.message(REMOVE, &[r.id]),
            None => {}
            Some(_) => return false,
        }
    } else if let Some(r) = item.downcast_ref::<pb::CommandResult>() {
        use member::*;
        w.varint_field(TAG, r.tag);
        match &r.result {
            Some(R::States(s)) if s.done == 0 && s.failed.is_empty() => {
                w.message(STATES, &[s.id, enum_value(s.client), enum_value(s.server)])
            }
            Some(R::AdvanceClock(a)) => w.message(ADVANCED, &[a.now_ms, a.timers_fired]),
            Some(R::Removed(_)) => w.message(REMOVED, &[]),
            None => {}
            Some(_) => return false,
        }
    } else {
        return false;
    }
    out.put_slice(w.bytes());
    true
}

/// Whether a Close, Abort or Send names one connection by id alone: no incarnation, no ids, no
/// selector (fields this path does not carry).
fn one(incarnation: Option<u64>, ids: &[u64], select: &Option<pb::Selector>) -> bool {
    incarnation.is_none() && ids.is_empty() && select.is_none()
}

/// `a` as a `B`, where the caller has checked that they are one type.
fn cast<A: 'static, B: 'static>(a: A) -> Option<B> {
    let mut a = Some(a);
    (&mut a as &mut dyn Any).downcast_mut::<Option<B>>()?.take()
}

fn command(bytes: &[u8]) -> Option<pb::Command> {
    use member::*;
    let (tag, op) = tagged(bytes, |field, m| {
        Some(match field {
            CLOSE => {
                let [id, side, how] = flat(m)?;
                Op::Close(pb::CloseRequest {
                    incarnation: None,
                    id,
                    side: int32(side),
                    how: int32(how),
                    ..Default::default()
                })
            }
            ABORT => {
                let [id, side] = flat(m)?;
                Op::Abort(pb::AbortRequest {
                    incarnation: None,
                    id,
                    side: int32(side),
                    ..Default::default()
                })
            }
            SEND => {
                let [id, side, bytes] = flat(m)?;
                Op::Send(pb::SendRequest {
                    incarnation: None,
                    id,
                    side: int32(side),
                    bytes: bytes as u32,
                    ..Default::default()
                })
            }
            GET => {
                let [id] = flat(m)?;
                Op::Get(Box::new(pb::GetRequest {
                    incarnation: None,
                    id,
                    tuple: None,
                }))
            }
            STATS => {
                let [] = flat(m)?;
                Op::Stats(pb::StatsRequest {})
            }
            ADVANCE_CLOCK => {
                let [millis] = flat(m)?;
                Op::AdvanceClock(pb::AdvanceClockRequest { millis, ms: 0 })
            }
            REMOVE => {
                let [id] = flat(m)?;
                Op::Remove(pb::RemoveRequest {
                    incarnation: None,
                    id,
                })
            }
            _ => return None,
        })
    })?;
    Some(pb::Command { tag, op })
}

fn command_result(bytes: &[u8]) -> Option<pb::CommandResult> {
    use member::*;
    let (tag, result) = tagged(bytes, |field, m| {
        Some(match field {
            STATES => {
                let [id, client, server] = flat(m)?;
                R::States(pb::ConnectionStates {
                    id,
                    client: int32(client),
                    server: int32(server),
                    ..Default::default()
                })
            }
            ADVANCED => {
                let [now_ms, timers_fired] = flat(m)?;
                R::AdvanceClock(pb::AdvanceClockResponse {
                    now_ms,
                    timers_fired,
                })
            }
            REMOVED => {
                let [] = flat(m)?;
                R::Removed(pb::RemoveResponse {})
            }
            _ => return None,
        })
    })?;
    Some(pb::CommandResult { tag, result })
}

/// The shape `Command` and `CommandResult` share: a varint `tag` (field 1) and a oneof of
/// messages, read by `variant(field, bytes)`. A second oneof member is left to prost, which merges
/// or replaces.
#[inline(always)]
fn tagged<V>(bytes: &[u8], variant: impl Fn(u64, &[u8]) -> Option<V>) -> Option<(u64, Option<V>)> {
    let mut r = Reader(bytes);
    let (mut tag, mut one) = (0, None);
    while !r.0.is_empty() {
        match r.key()? {
            (TAG, VARINT) => tag = r.varint()?,
            (field, LEN) if one.is_none() => one = Some(variant(field, r.len_delimited()?)?),
            _ => return None,
        }
    }
    Some((tag, one))
}

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// An int32 or enum field's value from its varint, as prost reads it (the low 32 bits).
fn int32(v: u64) -> i32 {
    v as i32
}

/// An enum field's varint, as prost writes it (negative values sign-extended).
fn enum_value(v: i32) -> u64 {
    v as i64 as u64
}

/// A message whose fields are numbered 1 to N, every one a varint: their values, 0 where absent
/// (proto3's default). A field seen twice keeps its last value, as prost does.
fn flat<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    let mut r = Reader(bytes);
    let mut values = [0; N];
    while !r.0.is_empty() {
        let (field, wire_type) = r.key()?;
        if wire_type != VARINT || field == 0 || field > N as u64 {
            return None;
        }
        values[field as usize - 1] = r.varint()?;
    }
    Some(values)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A base-128 varint of at most ten bytes, the tenth at most 1 (as prost requires).
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0;
        for (i, &b) in self.0.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }

    /// A field's key: (field number, wire type).
    #[inline(always)]
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        (k <= u64::from(u32::MAX)).then_some((k >> 3, (k & 7) as u8))
    }

    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (m, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(m)
    }
}

/// Room for the longest message written here: a tag and a three-field message, each varint ten
/// bytes at most.
struct Writer {
    buf: [u8; 48],
    len: usize,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl Writer {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf[self.len] = v as u8 | 0x80;
            self.len += 1;
            v >>= 7;
        }
        self.buf[self.len] = v as u8;
        self.len += 1;
    }

    /// A varint field, left out when 0 (proto3's default), as prost writes it.
    fn varint_field(&mut self, field: u64, v: u64) {
        if v != 0 {
            self.varint(field << 3 | u64::from(VARINT));
            self.varint(v);
        }
    }

    /// A message field whose fields 1, 2, … are the varints `values`. Its body is at most three
    /// fields of eleven bytes, so its length is a one-byte varint, written once the body is.
    fn message(&mut self, field: u64, values: &[u64]) {
        debug_assert!(values.len() <= 3);
        self.varint(field << 3 | u64::from(LEN));
        let at = self.len;
        self.len += 1;
        for (i, &v) in values.iter().enumerate() {
            self.varint_field(i as u64 + 1, v);
        }
        self.buf[at] = (self.len - at - 1) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn op() -> impl Strategy<Value = Option<Op>> {
        let i = any::<i32>;
        prop_oneof![
            Just(None),
            (any::<u64>(), i(), i()).prop_map(|(id, side, how)| Some(Op::Close(
                pb::CloseRequest {
                    incarnation: None,
                    id,
                    side,
                    how,
                    ..Default::default()
                }
            ))),
            (any::<u64>(), i()).prop_map(|(id, side)| Some(Op::Abort(pb::AbortRequest {
                incarnation: None,
                id,
                side,
                ..Default::default()
            }))),
            (any::<u64>(), i(), any::<u32>()).prop_map(|(id, side, bytes)| Some(Op::Send(
                pb::SendRequest {
                    incarnation: None,
                    id,
                    side,
                    bytes,
                    ..Default::default()
                }
            ))),
            any::<u64>().prop_map(|id| Some(Op::Get(Box::new(pb::GetRequest {
                incarnation: None,
                id,
                tuple: None
            })))),
            Just(Some(Op::Stats(pb::StatsRequest {}))),
            any::<u64>().prop_map(|millis| Some(Op::AdvanceClock(pb::AdvanceClockRequest {
                millis,
                ms: 0
            }))),
            any::<u64>().prop_map(|id| Some(Op::Remove(pb::RemoveRequest {
                incarnation: None,
                id
            }))),
        ]
    }

    fn result() -> impl Strategy<Value = Option<R>> {
        prop_oneof![
            Just(None),
            (any::<u64>(), any::<i32>(), any::<i32>()).prop_map(|(id, client, server)| Some(
                R::States(pb::ConnectionStates {
                    id,
                    client,
                    server,
                    ..Default::default()
                })
            )),
            (any::<u64>(), any::<u64>()).prop_map(|(now_ms, timers_fired)| Some(R::AdvanceClock(
                pb::AdvanceClockResponse {
                    now_ms,
                    timers_fired
                }
            ))),
            Just(Some(R::Removed(pb::RemoveResponse {}))),
        ]
    }

    /// Small values more often than not, so that fields are often left out (0) or one byte.
    fn small_or_any() -> impl Strategy<Value = u64> {
        prop_oneof![0..3u64, any::<u64>()]
    }

    fn encode_fast<T: 'static>(item: &T) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode(item, &mut out).then_some(out)
    }

    proptest! {
        /// Every command of the fast kinds is written as prost writes it, and reads back.
        #[test]
        fn commands_are_written_and_read_as_prost_does(tag in small_or_any(), op in op()) {
            let c = pb::Command { tag, op };
            let bytes = c.encode_to_vec();
            prop_assert_eq!(encode_fast(&c), Some(bytes.clone()));
            prop_assert_eq!(decode::<pb::Command>(&bytes), Some(c));
        }

        /// Every result of the fast kinds is written as prost writes it, and reads back.
        #[test]
        fn results_are_written_and_read_as_prost_does(tag in small_or_any(), result in result()) {
            let r = pb::CommandResult { tag, result };
            let bytes = r.encode_to_vec();
            prop_assert_eq!(encode_fast(&r), Some(bytes.clone()));
            prop_assert_eq!(decode::<pb::CommandResult>(&bytes), Some(r));
        }

        /// Whatever bytes come: where the fast path reads something, prost reads the same.
        #[test]
        fn any_bytes_the_fast_path_reads_prost_reads_the_same(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(c) = decode::<pb::Command>(&bytes) {
                prop_assert_eq!(pb::Command::decode(&bytes[..]).ok(), Some(c));
            }
            if let Some(r) = decode::<pb::CommandResult>(&bytes) {
                prop_assert_eq!(pb::CommandResult::decode(&bytes[..]).ok(), Some(r));
            }
        }

        /// Valid commands with one byte changed: the fast path agrees with prost or leaves it.
        #[test]
        fn damaged_commands_are_read_as_prost_reads_them_or_left_to_it(
            tag in small_or_any(), op in op(), at in any::<prop::sample::Index>(), byte in any::<u8>()
        ) {
            let mut bytes = pb::Command { tag, op }.encode_to_vec();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Some(c) = decode::<pb::Command>(&bytes) {
                prop_assert_eq!(pb::Command::decode(&bytes[..]).ok(), Some(c));
            }
        }
    }

    #[test]
    fn what_prost_must_decide_is_left_to_it() {
        let send = |id| pb::Command {
            tag: 1,
            op: Some(Op::Send(pb::SendRequest {
                incarnation: None,
                id,
                side: 1,
                bytes: 10,
                ..Default::default()
            })),
        };
        let mut cases: Vec<(&str, Vec<u8>)> = vec![];
        // Open's request is not flat.
        let open = pb::Command {
            tag: 1,
            op: Some(Op::Open(Box::default())),
        };
        cases.push(("an Open", open.encode_to_vec()));
        // Get by tuple.
        let get = pb::Command {
            tag: 1,
            op: Some(Op::Get(Box::new(pb::GetRequest {
                incarnation: None,
                id: 0,
                tuple: Some(Default::default()),
            }))),
        };
        cases.push(("a Get by tuple", get.encode_to_vec()));
        // A second op, which prost merges or replaces.
        let mut twice = send(1).encode_to_vec();
        twice.extend(send(2).encode_to_vec());
        cases.push(("two ops", twice));
        // An unknown field, which prost skips.
        let mut unknown = send(1).encode_to_vec();
        unknown.extend([15 << 3, 1]);
        cases.push(("an unknown field", unknown));
        // A truncated message and an over-long varint: prost's errors.
        let whole = send(300).encode_to_vec();
        cases.push(("a truncated message", whole[..whole.len() - 1].to_vec()));
        cases.push((
            "an eleven-byte varint",
            [vec![1 << 3], vec![0xff; 10], vec![1]].concat(),
        ));
        cases.push((
            "a varint over 64 bits",
            [vec![1 << 3], vec![0xff; 9], vec![2]].concat(),
        ));
        for (what, bytes) in cases {
            assert_eq!(decode::<pb::Command>(&bytes), None, "{what}");
        }
        assert!(encode_fast(&open).is_none());
        assert!(encode_fast(&get).is_none());
        // Types other than Run's are always prost's.
        assert_eq!(decode::<pb::SendRequest>(&[8, 1]), None);
        assert!(encode_fast(&pb::SendRequest::default()).is_none());
        // As are results that are not integers only.
        let error = pb::CommandResult {
            tag: 1,
            result: Some(R::Error(Box::new(pb::Error {
                code: 3,
                message: "x".into(),
                refused: String::new(),
            }))),
        };
        assert!(encode_fast(&error).is_none());
        assert_eq!(decode::<pb::CommandResult>(&error.encode_to_vec()), None);
    }

    /// A message with something this path does not carry (an incarnation, ids, a selector, the
    /// counts of a call on many, the new name of a clock advance) is left to prost, whole.
    #[test]
    fn what_this_path_does_not_carry_is_left_to_prost() {
        let with = |op| pb::Command {
            tag: 1,
            op: Some(op),
        };
        let cases = [
            with(Op::Close(pb::CloseRequest {
                incarnation: Some(7),
                ..Default::default()
            })),
            with(Op::Close(pb::CloseRequest {
                ids: vec![1, 2],
                ..Default::default()
            })),
            with(Op::Abort(pb::AbortRequest {
                select: Some(pb::Selector::default()),
                ..Default::default()
            })),
            with(Op::Send(pb::SendRequest {
                incarnation: Some(0),
                ..Default::default()
            })),
            with(Op::Get(Box::new(pb::GetRequest {
                incarnation: Some(3),
                ..Default::default()
            }))),
            with(Op::Remove(pb::RemoveRequest {
                incarnation: Some(3),
                id: 1,
            })),
            with(Op::AdvanceClock(pb::AdvanceClockRequest {
                ms: 5,
                millis: 0,
            })),
        ];
        for c in cases {
            assert!(encode_fast(&c).is_none(), "{c:?}");
            assert_eq!(decode::<pb::Command>(&c.encode_to_vec()), None, "{c:?}");
        }
        let many = pb::CommandResult {
            tag: 1,
            result: Some(R::States(pb::ConnectionStates {
                done: 3,
                ..Default::default()
            })),
        };
        assert!(encode_fast(&many).is_none());
        assert_eq!(decode::<pb::CommandResult>(&many.encode_to_vec()), None);
    }

    /// The messages handled here, as `simulator.proto` compiles them: `FIELDS` and the member
    /// numbers must match field for field, or a field the writer does not know would be dropped.
    #[test]
    fn the_fields_handled_here_are_the_compiled_schemas() {
        use prost_types::field_descriptor_proto::Type;
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let messages: std::collections::HashMap<&str, &prost_types::DescriptorProto> = set
            .file
            .iter()
            .filter(|f| f.package() == "tcpsim.v1")
            .flat_map(|f| &f.message_type)
            .map(|m| (m.name(), m))
            .collect();
        let varint = [
            Type::Uint64,
            Type::Uint32,
            Type::Int32,
            Type::Int64,
            Type::Enum,
            Type::Bool,
        ];
        for (name, fields) in FIELDS {
            let m = messages[name];
            let got: Vec<(String, i32)> = m
                .field
                .iter()
                .map(|f| {
                    let kind = if f.label() == prost_types::field_descriptor_proto::Label::Repeated
                    {
                        " (repeated)"
                    } else if f.r#type() == Type::Message {
                        " (message)"
                    } else if f.proto3_optional() {
                        " (optional)"
                    } else {
                        ""
                    };
                    assert!(
                        f.r#type() == Type::Message || varint.contains(&f.r#type()),
                        "{name}.{}: {:?} is not a varint",
                        f.name(),
                        f.r#type()
                    );
                    (format!("{}{kind}", f.name()), f.number())
                })
                .collect();
            let want: Vec<(String, i32)> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.to_string(), i as i32 + 1))
                .collect();
            assert_eq!(got, want, "{name} changed: change fast_path.rs with it");
        }
        // Command and CommandResult: `tag` and a oneof, whose members here keep their numbers
        // and types (members added later are prost's).
        for (name, members) in [
            (
                "Command",
                vec![
                    ("close", member::CLOSE, "CloseRequest"),
                    ("abort", member::ABORT, "AbortRequest"),
                    ("send", member::SEND, "SendRequest"),
                    ("get", member::GET, "GetRequest"),
                    ("stats", member::STATS, "StatsRequest"),
                    (
                        "advance_clock",
                        member::ADVANCE_CLOCK,
                        "AdvanceClockRequest",
                    ),
                    ("remove", member::REMOVE, "RemoveRequest"),
                ],
            ),
            (
                "CommandResult",
                vec![
                    ("states", member::STATES, "ConnectionStates"),
                    ("advance_clock", member::ADVANCED, "AdvanceClockResponse"),
                    ("removed", member::REMOVED, "RemoveResponse"),
                ],
            ),
        ] {
            let m = messages[name];
            let plain: Vec<(&str, i32)> = m
                .field
                .iter()
                .filter(|f| f.oneof_index.is_none())
                .map(|f| (f.name(), f.number()))
                .collect();
            assert_eq!(plain, [("tag", TAG as i32)], "{name} changed");
            for (field, number, ty) in members {
                let f = m.field.iter().find(|f| f.name() == field);
                let f = f.unwrap_or_else(|| panic!("{name}.{field} is gone"));
                assert_eq!(f.number() as u64, number, "{name}.{field} renumbered");
                assert_eq!(f.type_name(), format!(".tcpsim.v1.{ty}"), "{name}.{field}");
                assert!(FIELDS.iter().any(|(n, _)| *n == ty), "{ty} not in FIELDS");
            }
        }
    }
}

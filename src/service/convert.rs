//! Proto ↔ domain conversions, and the one mapping from domain errors to `tonic::Status`.
//!
//! Every refusal names the field (or the state) and the reason. No user input becomes INTERNAL.

use std::net::{Ipv4Addr, SocketAddrV4};

use tonic::Status;

use super::proto as pb;
use crate::table::{self, ConnInfo, Mode, Sides, States, WireAction};
use crate::tcp::{
    self, Cause, Direction, Flags, ProfileName, Segment, SeqNum, Side, State, TimerKind,
};

/// The single mapping from table errors to gRPC codes: one code per cause, the message naming
/// the field or the state.
impl From<table::Error> for Status {
    fn from(e: table::Error) -> Status {
        use table::Error as E;
        let msg = e.to_string();
        let refusal = e.refusal();
        let mut status = match e {
            E::NotFound(_) => Status::not_found(msg),
            E::TableFull { .. } | E::PortsExhausted { .. } => Status::resource_exhausted(msg),
            E::Tcp {
                source: tcp::Error::SendBufferFull { .. },
                ..
            } => Status::resource_exhausted(format!("bytes: {msg}")),
            E::Tcp { .. }
            | E::TupleInUse { .. }
            | E::IssInTimeWait { .. }
            | E::Incarnation { .. }
            | E::WrongMode { .. }
            | E::Wire(_)
            | E::RealClock => Status::failed_precondition(msg),
            E::Address(_) | E::Settings(_) | E::SettingsOnAuto | E::HostSetting(_) => {
                Status::invalid_argument(msg)
            }
            E::ClockLimit { .. } => Status::invalid_argument(format!("millis: {msg}")),
            E::TooManyWatchers { .. } => Status::resource_exhausted(msg),
            E::AdvanceStopped { .. } => Status::deadline_exceeded(msg),
            E::NoSuchSide { .. } => Status::invalid_argument(format!("side: {msg}")),
            E::NoSuchDirection { .. } => Status::invalid_argument(format!("direction: {msg}")),
        };
        if let Some(why) = refusal {
            status.metadata_mut().insert(
                REFUSED,
                tonic::metadata::MetadataValue::from_static(why.as_str()),
            );
        }
        status
    }
}

/// The metadata key naming the limit a refused open ran into, as `Stats.open_failures` does
/// (`ports_exhausted`, `table_full`, `tuple_in_use`); a `Run` stream's `Error.refused`.
pub const REFUSED: &str = "tcpsim-refused";

/// The limit named by a status from `From<table::Error>`, or "".
pub fn refused(status: &Status) -> String {
    status
        .metadata()
        .get(REFUSED)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A gRPC code as the proto and grpcurl name it: `RESOURCE_EXHAUSTED`.
pub fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// A client address or block: "10.0.0.1" or "10.0.0.0/24".
pub fn cidr(field: &str, s: &str) -> Result<table::Cidr, Status> {
    s.parse().map_err(|e| invalid(field, e))
}

pub fn invalid(field: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {why}"))
}

/// A proto enum field, refusing unknown values.
fn known<E: TryFrom<i32>>(field: &str, v: i32) -> Result<E, Status> {
    E::try_from(v).map_err(|_| invalid(field, format!("unknown value {v}")))
}

pub fn side(field: &str, v: i32) -> Result<Side, Status> {
    match known::<pb::Side>(field, v)? {
        pb::Side::Client => Ok(Side::Client),
        pb::Side::Server => Ok(Side::Server),
        pb::Side::Unspecified => Err(invalid(field, "required: SIDE_CLIENT or SIDE_SERVER")),
        pb::Side::Both => Err(invalid(
            field,
            "SIDE_BOTH is not allowed here: name one side",
        )),
    }
}

pub fn sides(field: &str, v: i32) -> Result<Sides, Status> {
    match known::<pb::Side>(field, v)? {
        pb::Side::Both => Ok(Sides::Both),
        pb::Side::Unspecified => Err(invalid(
            field,
            "required: SIDE_CLIENT, SIDE_SERVER or SIDE_BOTH",
        )),
        _ => side(field, v).map(Sides::One),
    }
}

/// The user call a `CloseKind` asks for: a half-close or a close.
pub fn close_how(field: &str, v: i32) -> Result<tcp::Call, Status> {
    Ok(match known::<pb::CloseKind>(field, v)? {
        pb::CloseKind::Shutdown => tcp::Call::Shutdown,
        pb::CloseKind::Close | pb::CloseKind::Unspecified => tcp::Call::Close,
    })
}

pub fn mode(field: &str, v: i32, role: i32) -> Result<Mode, Status> {
    let role_set = known::<pb::Side>("role", role)? != pb::Side::Unspecified;
    match known::<pb::Mode>(field, v)? {
        pb::Mode::Unspecified => Err(invalid(
            field,
            "required: MODE_AUTO, MODE_MANUAL or MODE_EXTERNAL",
        )),
        pb::Mode::Auto | pb::Mode::Manual if role_set => {
            Err(invalid("role", "only EXTERNAL connections take a role"))
        }
        pb::Mode::Auto => Ok(Mode::Auto),
        pb::Mode::Manual => Ok(Mode::Manual),
        pb::Mode::External => Ok(Mode::External(side("role", role).map_err(|_| {
            invalid(
                "role",
                "EXTERNAL needs SIDE_CLIENT (connect) or SIDE_SERVER (listen)",
            )
        })?)),
    }
}

pub fn direction(field: &str, v: i32) -> Result<Direction, Status> {
    match known::<pb::Direction>(field, v)? {
        pb::Direction::ClientToServer => Ok(Direction::ClientToServer),
        pb::Direction::ServerToClient => Ok(Direction::ServerToClient),
        pb::Direction::Unspecified => Err(invalid(
            field,
            "required: DIRECTION_CLIENT_TO_SERVER or DIRECTION_SERVER_TO_CLIENT",
        )),
    }
}

pub fn wire_action(field: &str, v: i32) -> Result<WireAction, Status> {
    match known::<pb::WireAction>(field, v)? {
        pb::WireAction::Deliver => Ok(WireAction::Deliver),
        pb::WireAction::Drop => Ok(WireAction::Drop),
        pb::WireAction::Duplicate => Ok(WireAction::Duplicate),
        pb::WireAction::Reorder => Ok(WireAction::Reorder),
        pb::WireAction::Unspecified => Err(invalid(
            field,
            "required: WIRE_ACTION_DELIVER, WIRE_ACTION_DROP, WIRE_ACTION_DUPLICATE or WIRE_ACTION_REORDER",
        )),
    }
}

pub fn state_filter(field: &str, v: i32) -> Result<Option<State>, Status> {
    let s = known::<pb::State>(field, v)?;
    Ok(match s {
        pb::State::Unspecified => None,
        s => Some(state_from_pb(s)),
    })
}

pub fn side_filter(field: &str, v: i32) -> Result<Option<Side>, Status> {
    Ok(match known::<pb::Side>(field, v)? {
        pb::Side::Unspecified | pb::Side::Both => None,
        pb::Side::Client => Some(Side::Client),
        pb::Side::Server => Some(Side::Server),
    })
}

pub fn socket(field: &str, s: &str) -> Result<SocketAddrV4, Status> {
    s.trim()
        .parse()
        .map_err(|_| invalid(field, format!("{s:?} is not an IPv4 address:port")))
}

pub fn ipv4(field: &str, s: &str) -> Result<Ipv4Addr, Status> {
    s.trim()
        .parse()
        .map_err(|_| invalid(field, format!("{s:?} is not an IPv4 address")))
}

pub fn tuple(field: &str, t: &pb::FourTuple) -> Result<table::FourTuple, Status> {
    Ok(table::FourTuple {
        client: socket(&format!("{field}.client"), &t.client)?,
        server: socket(&format!("{field}.server"), &t.server)?,
    })
}

/// A request's settings on top of the server's (or a profile's), checked by the one validation
/// every source of settings goes through (`tcp::Overrides::apply`). Errors name the field.
pub fn settings(base: &tcp::Config, s: &pb::TcpSettings) -> Result<tcp::Config, Status> {
    fn narrow<T: TryFrom<u32>>(field: &str, v: Option<u32>) -> Result<Option<T>, Status> {
        v.map(|v| {
            T::try_from(v).map_err(|_| {
                invalid(
                    &format!("settings.{field}"),
                    format!("{v} is too large for the setting"),
                )
            })
        })
        .transpose()
    }
    let o = tcp::Overrides {
        profile: match known::<pb::Profile>("settings.profile", s.profile)? {
            pb::Profile::Unspecified => None,
            pb::Profile::Linux => Some(ProfileName::Linux),
            pb::Profile::Rfc9293 => Some(ProfileName::Rfc9293),
        },
        rfc5961: s.rfc5961,
        mss: narrow("mss", s.mss)?,
        rcv_wnd: narrow("rcv_wnd", s.rcv_wnd)?,
        snd_buf: s.snd_buf,
        rto_initial_ms: s.rto_initial_ms,
        rto_min_ms: s.rto_min_ms,
        rto_max_ms: s.rto_max_ms,
        syn_retries: narrow("syn_retries", s.syn_retries)?,
        syn_linear_timeouts: narrow("syn_linear_timeouts", s.syn_linear_timeouts)?,
        synack_retries: narrow("synack_retries", s.synack_retries)?,
        data_retries: narrow("data_retries", s.data_retries)?,
        orphan_retries: narrow("orphan_retries", s.orphan_retries)?,
        msl_ms: s.msl_ms,
        fin_timeout_ms: s.fin_timeout_ms,
        invalid_ratelimit_ms: s.invalid_ratelimit_ms,
        nodelay: s.nodelay,
    };
    o.apply(base).map_err(|e| {
        invalid(
            &format!("settings.{}", e.setting),
            format!("{} is out of range: {}", e.value, e.reason),
        )
    })
}

/// Settings to change, as an `Open` carries them.
pub fn overrides_to_pb(o: &tcp::Overrides) -> pb::TcpSettings {
    pb::TcpSettings {
        syn_retries: o.syn_retries.map(u32::from),
        synack_retries: o.synack_retries.map(u32::from),
        fin_timeout_ms: o.fin_timeout_ms,
        msl_ms: o.msl_ms,
        mss: o.mss.map(u32::from),
        profile: o.profile.map_or(pb::Profile::Unspecified, profile_to_pb) as i32,
        rfc5961: o.rfc5961,
        data_retries: o.data_retries.map(u32::from),
        orphan_retries: o.orphan_retries.map(u32::from),
        syn_linear_timeouts: o.syn_linear_timeouts.map(u32::from),
        rto_min_ms: o.rto_min_ms,
        rto_initial_ms: o.rto_initial_ms,
        rto_max_ms: o.rto_max_ms,
        rcv_wnd: o.rcv_wnd.map(u32::from),
        snd_buf: o.snd_buf,
        nodelay: o.nodelay,
        invalid_ratelimit_ms: o.invalid_ratelimit_ms,
    }
}

fn profile_to_pb(p: ProfileName) -> pb::Profile {
    match p {
        ProfileName::Linux => pb::Profile::Linux,
        ProfileName::Rfc9293 => pb::Profile::Rfc9293,
    }
}

/// Every setting a connection runs on, as `Get` shows them.
pub fn settings_to_pb(c: &tcp::Config) -> pb::TcpSettings {
    overrides_to_pb(&tcp::Overrides::every(c))
}

pub fn segment_from_pb(field: &str, s: &pb::Segment) -> Result<Segment, Status> {
    let f = s.flags.unwrap_or_default();
    let mut flags = Flags::NONE;
    for (on, bit) in [
        (f.syn, Flags::SYN),
        (f.ack, Flags::ACK),
        (f.fin, Flags::FIN),
        (f.rst, Flags::RST),
        (f.psh, Flags::PSH),
        (f.urg, Flags::URG),
    ] {
        if on {
            flags |= bit;
        }
    }
    let wnd = u16::try_from(s.window).map_err(|_| {
        invalid(
            &format!("{field}.window"),
            format!("{} is over 65535 (no window scaling)", s.window),
        )
    })?;
    let len = u16::try_from(s.length).map_err(|_| {
        invalid(
            &format!("{field}.length"),
            format!("{} is over 65535", s.length),
        )
    })?;
    let mss = s
        .mss
        .map(|m| {
            u16::try_from(m)
                .map_err(|_| invalid(&format!("{field}.mss"), format!("{m} is over 65535")))
        })
        .transpose()?
        // An MSS option of 0 counts as none, as in Linux's tcp_parse_options.
        .and_then(std::num::NonZeroU16::new);
    Ok(Segment {
        seq: SeqNum(s.seq),
        ack: SeqNum(s.ack),
        len,
        wnd,
        mss,
        flags,
    })
}

pub fn segment_to_pb(s: &Segment, emitted_at: Option<u64>) -> pb::Segment {
    pb::Segment {
        flags: Some(pb::Flags {
            syn: s.has(Flags::SYN),
            ack: s.has(Flags::ACK),
            fin: s.has(Flags::FIN),
            rst: s.has(Flags::RST),
            psh: s.has(Flags::PSH),
            urg: s.has(Flags::URG),
        }),
        seq: s.seq.0,
        ack: s.ack.0,
        window: u32::from(s.wnd),
        length: u32::from(s.len),
        mss: s.mss.map(|m| u32::from(m.get())),
        emitted_at_ms: emitted_at,
        arrives_at_ms: None,
    }
}

pub fn state_to_pb(s: State) -> pb::State {
    match s {
        State::Closed => pb::State::Closed,
        State::Listen => pb::State::Listen,
        State::SynSent => pb::State::SynSent,
        State::SynReceived => pb::State::SynReceived,
        State::Established => pb::State::Established,
        State::FinWait1 => pb::State::FinWait1,
        State::FinWait2 => pb::State::FinWait2,
        State::CloseWait => pb::State::CloseWait,
        State::Closing => pb::State::Closing,
        State::LastAck => pb::State::LastAck,
        State::TimeWait => pb::State::TimeWait,
    }
}

pub fn state_from_pb(s: pb::State) -> State {
    match s {
        pb::State::Listen => State::Listen,
        pb::State::SynSent => State::SynSent,
        pb::State::SynReceived => State::SynReceived,
        pb::State::Established => State::Established,
        pb::State::FinWait1 => State::FinWait1,
        pb::State::FinWait2 => State::FinWait2,
        pb::State::CloseWait => State::CloseWait,
        pb::State::Closing => State::Closing,
        pb::State::LastAck => State::LastAck,
        pb::State::TimeWait => State::TimeWait,
        pb::State::Closed | pb::State::Unspecified => State::Closed,
    }
}

pub fn side_to_pb(s: Side) -> pb::Side {
    match s {
        Side::Client => pb::Side::Client,
        Side::Server => pb::Side::Server,
    }
}

fn opt_state(s: Option<State>) -> i32 {
    s.map_or(pb::State::Unspecified, state_to_pb) as i32
}

pub fn states_to_pb(id: u64, s: &States) -> pb::ConnectionStates {
    pb::ConnectionStates {
        id,
        client: opt_state(s[0]),
        server: opt_state(s[1]),
        ..Default::default()
    }
}

pub fn segment_outcome_to_pb(o: table::SegmentOutcome) -> pb::SegmentOutcome {
    use table::SegmentOutcome as O;
    match o {
        O::Sent => pb::SegmentOutcome::Sent,
        O::Delivered => pb::SegmentOutcome::Delivered,
        O::Injected => pb::SegmentOutcome::Injected,
        O::Dropped => pb::SegmentOutcome::Dropped,
        O::Duplicated => pb::SegmentOutcome::Duplicated,
        O::Reordered => pb::SegmentOutcome::Reordered,
        O::Overflowed => pb::SegmentOutcome::Overflowed,
    }
}

pub fn timer_kind_to_pb(k: TimerKind) -> pb::TimerKind {
    match k {
        TimerKind::Syn => pb::TimerKind::Syn,
        TimerKind::SynAck => pb::TimerKind::SynAck,
        TimerKind::Retransmit => pb::TimerKind::Retransmit,
        TimerKind::FinWait2 => pb::TimerKind::FinWait2,
        TimerKind::TimeWait => pb::TimerKind::TimeWait,
    }
}

pub fn tuple_to_pb(t: &table::FourTuple) -> pb::FourTuple {
    pb::FourTuple {
        client: t.client.to_string(),
        server: t.server.to_string(),
    }
}

pub fn mode_to_pb(m: Mode) -> pb::Mode {
    match m {
        Mode::Auto => pb::Mode::Auto,
        Mode::Manual => pb::Mode::Manual,
        Mode::External(_) => pb::Mode::External,
    }
}

pub fn connection_to_pb(c: &ConnInfo) -> pb::Connection {
    pb::Connection {
        incarnation: c.incarnation,
        id: c.id.0,
        tuple: Some(tuple_to_pb(&c.tuple)),
        mode: mode_to_pb(c.mode) as i32,
        endpoints: c
            .sides
            .iter()
            .map(|s| pb::EndpointState {
                side: side_to_pb(s.side) as i32,
                state: state_to_pb(s.state) as i32,
                iss: s.iss.0,
                irs: s.irs.0,
                snd_una: s.snd_una.0,
                snd_nxt: s.snd_nxt.0,
                snd_wnd: u32::from(s.snd_wnd),
                rcv_nxt: s.rcv_nxt.0,
                rcv_wnd: u32::from(s.rcv_wnd),
                unsent: s.unsent,
                srtt_ms: s.srtt_ms.map(u32::from),
                rto_ms: s.rto_ms,
                timers: s
                    .timer
                    .iter()
                    .map(|t| pb::Timer {
                        kind: timer_kind_to_pb(t.kind) as i32,
                        deadline_ms: t.deadline,
                    })
                    .collect(),
            })
            .collect(),
        wire: c
            .wire
            .iter()
            .map(|(dir, segs)| pb::WireQueue {
                direction: direction_pb(*dir) as i32,
                segments: segs.iter().map(|s| segment_to_pb(s, None)).collect(),
            })
            .collect(),
        in_flight: c
            .in_flight
            .iter()
            .map(|(dir, segs)| pb::WireQueue {
                direction: direction_pb(*dir) as i32,
                segments: segs
                    .iter()
                    .map(|(s, at)| pb::Segment {
                        arrives_at_ms: Some(*at),
                        ..segment_to_pb(s, None)
                    })
                    .collect(),
            })
            .collect(),
        settings: Some(settings_to_pb(&c.settings)),
    }
}

pub fn event_to_pb(e: &table::Event) -> pb::TransitionEvent {
    pb::TransitionEvent {
        id: e.id.0,
        side: side_to_pb(e.side) as i32,
        from: state_to_pb(e.transition.from) as i32,
        to: state_to_pb(e.transition.to) as i32,
        cause: cause_name(e.transition.cause).to_string(),
        at_ms: e.at,
    }
}

fn cause_name(c: Cause) -> &'static str {
    c.as_str()
}

pub fn listener_to_pb(l: &table::listeners::ListenerInfo) -> pb::Listener {
    let s = &l.settings;
    pb::Listener {
        server: l.server.to_string(),
        backlog: s.backlog,
        effective_backlog: s.effective_backlog(),
        somaxconn: s.somaxconn,
        tcp_max_syn_backlog: s.max_syn_backlog,
        tcp_syncookies: u32::from(s.syncookies),
        tcp_abort_on_overflow: s.abort_on_overflow,
        accepting: s.accepting,
        syn_queue: l.syn_queue,
        accept_queue: l.accept_queue,
    }
}

pub fn client_sysctls_to_pb(r: table::TwReuse) -> pb::ClientSysctls {
    pb::ClientSysctls {
        tcp_tw_reuse: u32::from(r.tw_reuse),
        tcp_timestamps: r.timestamps,
        tcp_tw_reuse_delay_ms: r.delay_ms,
    }
}

fn direction_pb(d: Direction) -> pb::Direction {
    match d {
        Direction::ClientToServer => pb::Direction::ClientToServer,
        Direction::ServerToClient => pb::Direction::ServerToClient,
    }
}

pub fn links_to_pb(links: &[(table::links::LinkTarget, tcp::Link)]) -> Vec<pb::LinkRule> {
    links
        .iter()
        .map(|(target, link)| {
            let (server, client_pool) = match target {
                table::links::LinkTarget::Default => (String::new(), String::new()),
                table::links::LinkTarget::Server(s) => (s.to_string(), String::new()),
                table::links::LinkTarget::Pool(p) => (String::new(), p.to_string()),
            };
            pb::LinkRule {
                target: target.to_string(),
                link: link.to_string(),
                server,
                client_pool,
            }
        })
        .collect()
}

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[State]
    STATE_CLOSED: _ClassVar[State]
    STATE_LISTEN: _ClassVar[State]
    STATE_SYN_SENT: _ClassVar[State]
    STATE_SYN_RECEIVED: _ClassVar[State]
    STATE_ESTABLISHED: _ClassVar[State]
    STATE_FIN_WAIT_1: _ClassVar[State]
    STATE_FIN_WAIT_2: _ClassVar[State]
    STATE_CLOSE_WAIT: _ClassVar[State]
    STATE_CLOSING: _ClassVar[State]
    STATE_LAST_ACK: _ClassVar[State]
    STATE_TIME_WAIT: _ClassVar[State]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_CLIENT: _ClassVar[Side]
    SIDE_SERVER: _ClassVar[Side]
    SIDE_BOTH: _ClassVar[Side]

class CloseKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLOSE_KIND_UNSPECIFIED: _ClassVar[CloseKind]
    CLOSE_KIND_SHUTDOWN: _ClassVar[CloseKind]
    CLOSE_KIND_CLOSE: _ClassVar[CloseKind]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_AUTO: _ClassVar[Mode]
    MODE_MANUAL: _ClassVar[Mode]
    MODE_EXTERNAL: _ClassVar[Mode]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_CLIENT_TO_SERVER: _ClassVar[Direction]
    DIRECTION_SERVER_TO_CLIENT: _ClassVar[Direction]

class WireAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WIRE_ACTION_UNSPECIFIED: _ClassVar[WireAction]
    WIRE_ACTION_DELIVER: _ClassVar[WireAction]
    WIRE_ACTION_DROP: _ClassVar[WireAction]
    WIRE_ACTION_DUPLICATE: _ClassVar[WireAction]
    WIRE_ACTION_REORDER: _ClassVar[WireAction]

class TimerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIMER_KIND_UNSPECIFIED: _ClassVar[TimerKind]
    TIMER_KIND_SYN: _ClassVar[TimerKind]
    TIMER_KIND_SYN_ACK: _ClassVar[TimerKind]
    TIMER_KIND_RETRANSMIT: _ClassVar[TimerKind]
    TIMER_KIND_FIN_WAIT_2: _ClassVar[TimerKind]
    TIMER_KIND_TIME_WAIT: _ClassVar[TimerKind]

class Profile(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFILE_UNSPECIFIED: _ClassVar[Profile]
    PROFILE_LINUX: _ClassVar[Profile]
    PROFILE_RFC9293: _ClassVar[Profile]
STATE_UNSPECIFIED: State
STATE_CLOSED: State
STATE_LISTEN: State
STATE_SYN_SENT: State
STATE_SYN_RECEIVED: State
STATE_ESTABLISHED: State
STATE_FIN_WAIT_1: State
STATE_FIN_WAIT_2: State
STATE_CLOSE_WAIT: State
STATE_CLOSING: State
STATE_LAST_ACK: State
STATE_TIME_WAIT: State
SIDE_UNSPECIFIED: Side
SIDE_CLIENT: Side
SIDE_SERVER: Side
SIDE_BOTH: Side
CLOSE_KIND_UNSPECIFIED: CloseKind
CLOSE_KIND_SHUTDOWN: CloseKind
CLOSE_KIND_CLOSE: CloseKind
MODE_UNSPECIFIED: Mode
MODE_AUTO: Mode
MODE_MANUAL: Mode
MODE_EXTERNAL: Mode
DIRECTION_UNSPECIFIED: Direction
DIRECTION_CLIENT_TO_SERVER: Direction
DIRECTION_SERVER_TO_CLIENT: Direction
WIRE_ACTION_UNSPECIFIED: WireAction
WIRE_ACTION_DELIVER: WireAction
WIRE_ACTION_DROP: WireAction
WIRE_ACTION_DUPLICATE: WireAction
WIRE_ACTION_REORDER: WireAction
TIMER_KIND_UNSPECIFIED: TimerKind
TIMER_KIND_SYN: TimerKind
TIMER_KIND_SYN_ACK: TimerKind
TIMER_KIND_RETRANSMIT: TimerKind
TIMER_KIND_FIN_WAIT_2: TimerKind
TIMER_KIND_TIME_WAIT: TimerKind
PROFILE_UNSPECIFIED: Profile
PROFILE_LINUX: Profile
PROFILE_RFC9293: Profile

class FourTuple(_message.Message):
    __slots__ = ("client", "server")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    client: str
    server: str
    def __init__(self, client: _Optional[str] = ..., server: _Optional[str] = ...) -> None: ...

class TcpSettings(_message.Message):
    __slots__ = ("syn_retries", "synack_retries", "fin_timeout_ms", "msl_ms", "mss", "profile", "rfc5961", "data_retries", "orphan_retries", "syn_linear_timeouts", "rto_min_ms", "rto_initial_ms", "rto_max_ms", "rcv_wnd", "snd_buf", "nodelay", "invalid_ratelimit_ms")
    SYN_RETRIES_FIELD_NUMBER: _ClassVar[int]
    SYNACK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    FIN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MSL_MS_FIELD_NUMBER: _ClassVar[int]
    MSS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    RFC5961_FIELD_NUMBER: _ClassVar[int]
    DATA_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_RETRIES_FIELD_NUMBER: _ClassVar[int]
    SYN_LINEAR_TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    RTO_MIN_MS_FIELD_NUMBER: _ClassVar[int]
    RTO_INITIAL_MS_FIELD_NUMBER: _ClassVar[int]
    RTO_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    RCV_WND_FIELD_NUMBER: _ClassVar[int]
    SND_BUF_FIELD_NUMBER: _ClassVar[int]
    NODELAY_FIELD_NUMBER: _ClassVar[int]
    INVALID_RATELIMIT_MS_FIELD_NUMBER: _ClassVar[int]
    syn_retries: int
    synack_retries: int
    fin_timeout_ms: int
    msl_ms: int
    mss: int
    profile: Profile
    rfc5961: bool
    data_retries: int
    orphan_retries: int
    syn_linear_timeouts: int
    rto_min_ms: int
    rto_initial_ms: int
    rto_max_ms: int
    rcv_wnd: int
    snd_buf: int
    nodelay: bool
    invalid_ratelimit_ms: int
    def __init__(self, syn_retries: _Optional[int] = ..., synack_retries: _Optional[int] = ..., fin_timeout_ms: _Optional[int] = ..., msl_ms: _Optional[int] = ..., mss: _Optional[int] = ..., profile: _Optional[_Union[Profile, str]] = ..., rfc5961: _Optional[bool] = ..., data_retries: _Optional[int] = ..., orphan_retries: _Optional[int] = ..., syn_linear_timeouts: _Optional[int] = ..., rto_min_ms: _Optional[int] = ..., rto_initial_ms: _Optional[int] = ..., rto_max_ms: _Optional[int] = ..., rcv_wnd: _Optional[int] = ..., snd_buf: _Optional[int] = ..., nodelay: _Optional[bool] = ..., invalid_ratelimit_ms: _Optional[int] = ...) -> None: ...

class OpenRequest(_message.Message):
    __slots__ = ("count", "mode", "role", "tuple", "client_ip", "server", "iss", "server_iss", "settings", "ids_only")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    ISS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ISS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    IDS_ONLY_FIELD_NUMBER: _ClassVar[int]
    count: int
    mode: Mode
    role: Side
    tuple: FourTuple
    client_ip: str
    server: str
    iss: int
    server_iss: int
    settings: TcpSettings
    ids_only: bool
    def __init__(self, count: _Optional[int] = ..., mode: _Optional[_Union[Mode, str]] = ..., role: _Optional[_Union[Side, str]] = ..., tuple: _Optional[_Union[FourTuple, _Mapping]] = ..., client_ip: _Optional[str] = ..., server: _Optional[str] = ..., iss: _Optional[int] = ..., server_iss: _Optional[int] = ..., settings: _Optional[_Union[TcpSettings, _Mapping]] = ..., ids_only: _Optional[bool] = ...) -> None: ...

class Opened(_message.Message):
    __slots__ = ("id", "incarnation", "tuple", "client", "server", "reused_time_wait")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REUSED_TIME_WAIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    incarnation: int
    tuple: FourTuple
    client: State
    server: State
    reused_time_wait: bool
    def __init__(self, id: _Optional[int] = ..., incarnation: _Optional[int] = ..., tuple: _Optional[_Union[FourTuple, _Mapping]] = ..., client: _Optional[_Union[State, str]] = ..., server: _Optional[_Union[State, str]] = ..., reused_time_wait: _Optional[bool] = ...) -> None: ...

class OpenResponse(_message.Message):
    __slots__ = ("connections", "failed", "failures")
    class FailuresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Opened]
    failed: int
    failures: _containers.ScalarMap[str, int]
    def __init__(self, connections: _Optional[_Iterable[_Union[Opened, _Mapping]]] = ..., failed: _Optional[int] = ..., failures: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ConnectionStates(_message.Message):
    __slots__ = ("id", "client", "server", "done", "failed")
    class FailedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    id: int
    client: State
    server: State
    done: int
    failed: _containers.ScalarMap[str, int]
    def __init__(self, id: _Optional[int] = ..., client: _Optional[_Union[State, str]] = ..., server: _Optional[_Union[State, str]] = ..., done: _Optional[int] = ..., failed: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Selector(_message.Message):
    __slots__ = ("state", "client", "limit", "after")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    state: State
    client: str
    limit: int
    after: int
    def __init__(self, state: _Optional[_Union[State, str]] = ..., client: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[int] = ...) -> None: ...

class CloseRequest(_message.Message):
    __slots__ = ("id", "side", "how", "incarnation", "ids", "select")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    HOW_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    id: int
    side: Side
    how: CloseKind
    incarnation: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    select: Selector
    def __init__(self, id: _Optional[int] = ..., side: _Optional[_Union[Side, str]] = ..., how: _Optional[_Union[CloseKind, str]] = ..., incarnation: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ..., select: _Optional[_Union[Selector, _Mapping]] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("id", "side", "incarnation", "ids", "select")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    id: int
    side: Side
    incarnation: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    select: Selector
    def __init__(self, id: _Optional[int] = ..., side: _Optional[_Union[Side, str]] = ..., incarnation: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ..., select: _Optional[_Union[Selector, _Mapping]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("id", "side", "bytes", "incarnation", "ids", "select")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    id: int
    side: Side
    bytes: int
    incarnation: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    select: Selector
    def __init__(self, id: _Optional[int] = ..., side: _Optional[_Union[Side, str]] = ..., bytes: _Optional[int] = ..., incarnation: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ..., select: _Optional[_Union[Selector, _Mapping]] = ...) -> None: ...

class Flags(_message.Message):
    __slots__ = ("syn", "ack", "fin", "rst", "psh", "urg")
    SYN_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    FIN_FIELD_NUMBER: _ClassVar[int]
    RST_FIELD_NUMBER: _ClassVar[int]
    PSH_FIELD_NUMBER: _ClassVar[int]
    URG_FIELD_NUMBER: _ClassVar[int]
    syn: bool
    ack: bool
    fin: bool
    rst: bool
    psh: bool
    urg: bool
    def __init__(self, syn: _Optional[bool] = ..., ack: _Optional[bool] = ..., fin: _Optional[bool] = ..., rst: _Optional[bool] = ..., psh: _Optional[bool] = ..., urg: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("flags", "seq", "ack", "window", "length", "mss", "emitted_at_ms")
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MSS_FIELD_NUMBER: _ClassVar[int]
    EMITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    flags: Flags
    seq: int
    ack: int
    window: int
    length: int
    mss: int
    emitted_at_ms: int
    def __init__(self, flags: _Optional[_Union[Flags, _Mapping]] = ..., seq: _Optional[int] = ..., ack: _Optional[int] = ..., window: _Optional[int] = ..., length: _Optional[int] = ..., mss: _Optional[int] = ..., emitted_at_ms: _Optional[int] = ...) -> None: ...

class InjectRequest(_message.Message):
    __slots__ = ("id", "to", "segment", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    to: Side
    segment: Segment
    incarnation: int
    def __init__(self, id: _Optional[int] = ..., to: _Optional[_Union[Side, str]] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., incarnation: _Optional[int] = ...) -> None: ...

class InjectResponse(_message.Message):
    __slots__ = ("before", "after", "emitted", "emitted_count")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    EMITTED_FIELD_NUMBER: _ClassVar[int]
    EMITTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    before: State
    after: State
    emitted: _containers.RepeatedCompositeFieldContainer[Segment]
    emitted_count: int
    def __init__(self, before: _Optional[_Union[State, str]] = ..., after: _Optional[_Union[State, str]] = ..., emitted: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., emitted_count: _Optional[int] = ...) -> None: ...

class WireRequest(_message.Message):
    __slots__ = ("id", "direction", "action", "count", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    direction: Direction
    action: WireAction
    count: int
    incarnation: int
    def __init__(self, id: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., action: _Optional[_Union[WireAction, str]] = ..., count: _Optional[int] = ..., incarnation: _Optional[int] = ...) -> None: ...

class WireResponse(_message.Message):
    __slots__ = ("moved", "client", "server")
    MOVED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    moved: _containers.RepeatedCompositeFieldContainer[Segment]
    client: State
    server: State
    def __init__(self, moved: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., client: _Optional[_Union[State, str]] = ..., server: _Optional[_Union[State, str]] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("id", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    incarnation: int
    def __init__(self, id: _Optional[int] = ..., incarnation: _Optional[int] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("id", "tuple", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    tuple: FourTuple
    incarnation: int
    def __init__(self, id: _Optional[int] = ..., tuple: _Optional[_Union[FourTuple, _Mapping]] = ..., incarnation: _Optional[int] = ...) -> None: ...

class Timer(_message.Message):
    __slots__ = ("kind", "deadline_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    kind: TimerKind
    deadline_ms: int
    def __init__(self, kind: _Optional[_Union[TimerKind, str]] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class EndpointState(_message.Message):
    __slots__ = ("side", "state", "iss", "irs", "snd_una", "snd_nxt", "snd_wnd", "rcv_nxt", "rcv_wnd", "unsent", "srtt_ms", "rto_ms", "timers")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ISS_FIELD_NUMBER: _ClassVar[int]
    IRS_FIELD_NUMBER: _ClassVar[int]
    SND_UNA_FIELD_NUMBER: _ClassVar[int]
    SND_NXT_FIELD_NUMBER: _ClassVar[int]
    SND_WND_FIELD_NUMBER: _ClassVar[int]
    RCV_NXT_FIELD_NUMBER: _ClassVar[int]
    RCV_WND_FIELD_NUMBER: _ClassVar[int]
    UNSENT_FIELD_NUMBER: _ClassVar[int]
    SRTT_MS_FIELD_NUMBER: _ClassVar[int]
    RTO_MS_FIELD_NUMBER: _ClassVar[int]
    TIMERS_FIELD_NUMBER: _ClassVar[int]
    side: Side
    state: State
    iss: int
    irs: int
    snd_una: int
    snd_nxt: int
    snd_wnd: int
    rcv_nxt: int
    rcv_wnd: int
    unsent: int
    srtt_ms: int
    rto_ms: int
    timers: _containers.RepeatedCompositeFieldContainer[Timer]
    def __init__(self, side: _Optional[_Union[Side, str]] = ..., state: _Optional[_Union[State, str]] = ..., iss: _Optional[int] = ..., irs: _Optional[int] = ..., snd_una: _Optional[int] = ..., snd_nxt: _Optional[int] = ..., snd_wnd: _Optional[int] = ..., rcv_nxt: _Optional[int] = ..., rcv_wnd: _Optional[int] = ..., unsent: _Optional[int] = ..., srtt_ms: _Optional[int] = ..., rto_ms: _Optional[int] = ..., timers: _Optional[_Iterable[_Union[Timer, _Mapping]]] = ...) -> None: ...

class WireQueue(_message.Message):
    __slots__ = ("direction", "segments")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class Connection(_message.Message):
    __slots__ = ("id", "tuple", "mode", "endpoints", "wire", "settings", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    WIRE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    tuple: FourTuple
    mode: Mode
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointState]
    wire: _containers.RepeatedCompositeFieldContainer[WireQueue]
    settings: TcpSettings
    incarnation: int
    def __init__(self, id: _Optional[int] = ..., tuple: _Optional[_Union[FourTuple, _Mapping]] = ..., mode: _Optional[_Union[Mode, str]] = ..., endpoints: _Optional[_Iterable[_Union[EndpointState, _Mapping]]] = ..., wire: _Optional[_Iterable[_Union[WireQueue, _Mapping]]] = ..., settings: _Optional[_Union[TcpSettings, _Mapping]] = ..., incarnation: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("state", "side", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: State
    side: Side
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[State, str]] = ..., side: _Optional[_Union[Side, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("connections", "next_page_token")
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    next_page_token: str
    def __init__(self, connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Occupancy(_message.Message):
    __slots__ = ("side", "state", "count")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    side: Side
    state: State
    count: int
    def __init__(self, side: _Optional[_Union[Side, str]] = ..., state: _Optional[_Union[State, str]] = ..., count: _Optional[int] = ...) -> None: ...

class TransitionCount(_message.Message):
    __slots__ = ("side", "to", "count")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    side: Side
    to: State
    count: int
    def __init__(self, side: _Optional[_Union[Side, str]] = ..., to: _Optional[_Union[State, str]] = ..., count: _Optional[int] = ..., **kwargs) -> None: ...

class SegmentCount(_message.Message):
    __slots__ = ("side", "outcome", "count")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    side: Side
    outcome: str
    count: int
    def __init__(self, side: _Optional[_Union[Side, str]] = ..., outcome: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TimerCount(_message.Message):
    __slots__ = ("kind", "count")
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: TimerKind
    count: int
    def __init__(self, kind: _Optional[_Union[TimerKind, str]] = ..., count: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("connections", "max_connections", "occupancy", "transitions", "segments", "timers_pending", "timers_fired", "open_failures", "ports_used", "ports_free", "clock", "now_ms")
    class OpenFailuresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    OCCUPANCY_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TIMERS_PENDING_FIELD_NUMBER: _ClassVar[int]
    TIMERS_FIRED_FIELD_NUMBER: _ClassVar[int]
    OPEN_FAILURES_FIELD_NUMBER: _ClassVar[int]
    PORTS_USED_FIELD_NUMBER: _ClassVar[int]
    PORTS_FREE_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    connections: int
    max_connections: int
    occupancy: _containers.RepeatedCompositeFieldContainer[Occupancy]
    transitions: _containers.RepeatedCompositeFieldContainer[TransitionCount]
    segments: _containers.RepeatedCompositeFieldContainer[SegmentCount]
    timers_pending: _containers.RepeatedCompositeFieldContainer[TimerCount]
    timers_fired: _containers.RepeatedCompositeFieldContainer[TimerCount]
    open_failures: _containers.ScalarMap[str, int]
    ports_used: int
    ports_free: int
    clock: str
    now_ms: int
    def __init__(self, connections: _Optional[int] = ..., max_connections: _Optional[int] = ..., occupancy: _Optional[_Iterable[_Union[Occupancy, _Mapping]]] = ..., transitions: _Optional[_Iterable[_Union[TransitionCount, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[SegmentCount, _Mapping]]] = ..., timers_pending: _Optional[_Iterable[_Union[TimerCount, _Mapping]]] = ..., timers_fired: _Optional[_Iterable[_Union[TimerCount, _Mapping]]] = ..., open_failures: _Optional[_Mapping[str, int]] = ..., ports_used: _Optional[int] = ..., ports_free: _Optional[int] = ..., clock: _Optional[str] = ..., now_ms: _Optional[int] = ...) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("millis", "ms")
    MILLIS_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    millis: int
    ms: int
    def __init__(self, millis: _Optional[int] = ..., ms: _Optional[int] = ...) -> None: ...

class AdvanceClockResponse(_message.Message):
    __slots__ = ("now_ms", "timers_fired")
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    TIMERS_FIRED_FIELD_NUMBER: _ClassVar[int]
    now_ms: int
    timers_fired: int
    def __init__(self, now_ms: _Optional[int] = ..., timers_fired: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("ids", "side", "to")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    side: Side
    to: State
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., side: _Optional[_Union[Side, str]] = ..., to: _Optional[_Union[State, str]] = ...) -> None: ...

class TransitionEvent(_message.Message):
    __slots__ = ("id", "side", "to", "cause", "at_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    side: Side
    to: State
    cause: str
    at_ms: int
    def __init__(self, id: _Optional[int] = ..., side: _Optional[_Union[Side, str]] = ..., to: _Optional[_Union[State, str]] = ..., cause: _Optional[str] = ..., at_ms: _Optional[int] = ..., **kwargs) -> None: ...

class Missed(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("transition", "missed")
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    transition: TransitionEvent
    missed: Missed
    def __init__(self, transition: _Optional[_Union[TransitionEvent, _Mapping]] = ..., missed: _Optional[_Union[Missed, _Mapping]] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("tag", "open", "close", "abort", "send", "inject", "wire", "get", "stats", "advance_clock", "remove")
    TAG_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    INJECT_FIELD_NUMBER: _ClassVar[int]
    WIRE_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ADVANCE_CLOCK_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    tag: int
    open: OpenRequest
    close: CloseRequest
    abort: AbortRequest
    send: SendRequest
    inject: InjectRequest
    wire: WireRequest
    get: GetRequest
    stats: StatsRequest
    advance_clock: AdvanceClockRequest
    remove: RemoveRequest
    def __init__(self, tag: _Optional[int] = ..., open: _Optional[_Union[OpenRequest, _Mapping]] = ..., close: _Optional[_Union[CloseRequest, _Mapping]] = ..., abort: _Optional[_Union[AbortRequest, _Mapping]] = ..., send: _Optional[_Union[SendRequest, _Mapping]] = ..., inject: _Optional[_Union[InjectRequest, _Mapping]] = ..., wire: _Optional[_Union[WireRequest, _Mapping]] = ..., get: _Optional[_Union[GetRequest, _Mapping]] = ..., stats: _Optional[_Union[StatsRequest, _Mapping]] = ..., advance_clock: _Optional[_Union[AdvanceClockRequest, _Mapping]] = ..., remove: _Optional[_Union[RemoveRequest, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "refused")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    refused: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., refused: _Optional[str] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("tag", "open", "states", "inject", "wire", "connection", "stats", "advance_clock", "removed", "error")
    TAG_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    INJECT_FIELD_NUMBER: _ClassVar[int]
    WIRE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ADVANCE_CLOCK_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    tag: int
    open: OpenResponse
    states: ConnectionStates
    inject: InjectResponse
    wire: WireResponse
    connection: Connection
    stats: StatsResponse
    advance_clock: AdvanceClockResponse
    removed: RemoveResponse
    error: Error
    def __init__(self, tag: _Optional[int] = ..., open: _Optional[_Union[OpenResponse, _Mapping]] = ..., states: _Optional[_Union[ConnectionStates, _Mapping]] = ..., inject: _Optional[_Union[InjectResponse, _Mapping]] = ..., wire: _Optional[_Union[WireResponse, _Mapping]] = ..., connection: _Optional[_Union[Connection, _Mapping]] = ..., stats: _Optional[_Union[StatsResponse, _Mapping]] = ..., advance_clock: _Optional[_Union[AdvanceClockResponse, _Mapping]] = ..., removed: _Optional[_Union[RemoveResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

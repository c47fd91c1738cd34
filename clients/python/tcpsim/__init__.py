"""A thin, typed client for tcpsim's gRPC API.

    from tcpsim import Simulator

    with Simulator("127.0.0.1:50051") as sim:
        ids = sim.open(count=1000)                  # AUTO pairs, ESTABLISHED on return
        sim.close(ids, side="client")               # one call for all of them
        sim.close(ids, side="server")
        sim.close(side="server", state="CLOSE_WAIT", limit=10_000)   # or by a selector
        print(sim.occupancy()["client"]["TIME_WAIT"])

Names are the proto's without their prefixes ("client", "TIME_WAIT", "auto"); every call raises
`grpc.RpcError` as the server answered it. The stubs themselves are `tcpsim.v1.simulator_pb2`
and `tcpsim.v1.simulator_pb2_grpc`, for anything this layer does not cover.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import grpc

from tcpsim.v1 import simulator_pb2 as pb
from tcpsim.v1 import simulator_pb2_grpc as rpc

__all__ = ["Simulator", "Session", "Many", "Opened", "pb"]


def _enum(enum, prefix: str, name: str) -> int:
    """`name` ("client", "time_wait", "TIME-WAIT") as the value of `enum` (SIDE_CLIENT, …)."""
    key = prefix + name.upper().replace("-", "_")
    try:
        return enum.Value(key)
    except ValueError:
        names = [n.removeprefix(prefix) for n in enum.keys() if not n.endswith("UNSPECIFIED")]
        raise ValueError(f"{name!r} is not one of {', '.join(names)}") from None


def _name(enum, prefix: str, value: int) -> str:
    return enum.Name(value).removeprefix(prefix)


@dataclass(frozen=True)
class Opened:
    """The connections one `open` made, and those it could not make, by reason."""

    ids: List[int]
    refused: Dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Many:
    """What a call on many connections did: how many, and how many failed, by gRPC code."""

    done: int
    failed: Dict[str, int] = field(default_factory=dict)


class Simulator:
    """A connection to one tcpsim server. Use it as a context manager, or call `close_channel`."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        token: Optional[str] = None,
        tls_ca: Optional[bytes] = None,
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        if channel is None:
            options = [("grpc.max_receive_message_length", 64 << 20)]
            if tls_ca is not None:
                creds = grpc.ssl_channel_credentials(root_certificates=tls_ca)
                channel = grpc.secure_channel(target, creds, options=options)
            else:
                channel = grpc.insecure_channel(target, options=options)
        self.channel = channel
        self.stub = rpc.SimulatorStub(channel)
        self._meta = [("authorization", f"Bearer {token}")] if token else None

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close_channel()

    def close_channel(self) -> None:
        self.channel.close()

    # Opening.

    def open(
        self,
        count: int = 1,
        *,
        mode: str = "auto",
        client_ip: Optional[str] = None,
        server: Optional[str] = None,
    ) -> Opened:
        """Opens `count` connections (at most the server's batch cap, 10 000 by default) in one
        call. Refusals by a limit (ports exhausted, table full) are returned, not raised."""
        r = self.stub.Open(
            pb.OpenRequest(
                count=count,
                mode=_enum(pb.Mode, "MODE_", mode),
                client_ip=client_ip or "",
                server=server or "",
                ids_only=True,
            ),
            metadata=self._meta,
        )
        return Opened([c.id for c in r.connections], dict(r.failures))

    # Calls on many connections: by ids, or by a selector.

    def close(
        self,
        ids: Optional[Sequence[int]] = None,
        *,
        side: str = "both",
        how: str = "close",
        state: Optional[str] = None,
        client: Optional[str] = None,
        limit: int = 0,
        after: int = 0,
    ) -> Many:
        """close() (or `how="shutdown"`) on `side` of the connections `ids`, or of those the
        selector picks: the side in `state`, the client in `client` ("10.0.0.0/24"), at most
        `limit` (0: the server's cap), in id order after `after`."""
        return self._bulk(
            self.stub.Close,
            pb.CloseRequest(
                side=_enum(pb.Side, "SIDE_", side),
                how=_enum(pb.CloseKind, "CLOSE_KIND_", how),
                **self._many(ids, state, client, limit, after),
            ),
        )

    def abort(
        self,
        ids: Optional[Sequence[int]] = None,
        *,
        side: str = "client",
        state: Optional[str] = None,
        client: Optional[str] = None,
        limit: int = 0,
        after: int = 0,
    ) -> Many:
        """abort() on one side (an RST) of many connections; selected as for `close`."""
        return self._bulk(
            self.stub.Abort,
            pb.AbortRequest(
                side=_enum(pb.Side, "SIDE_", side),
                **self._many(ids, state, client, limit, after),
            ),
        )

    def send(
        self,
        bytes: int,
        ids: Optional[Sequence[int]] = None,
        *,
        side: str = "client",
        state: Optional[str] = None,
        client: Optional[str] = None,
        limit: int = 0,
        after: int = 0,
    ) -> Many:
        """Sends `bytes` from one side of many connections; selected as for `close`."""
        return self._bulk(
            self.stub.Send,
            pb.SendRequest(
                side=_enum(pb.Side, "SIDE_", side),
                bytes=bytes,
                **self._many(ids, state, client, limit, after),
            ),
        )

    def _bulk(self, rpc, request) -> Many:
        r = rpc(request, metadata=self._meta)
        return Many(r.done, dict(r.failed))

    @staticmethod
    def _many(ids, state, client, limit, after) -> dict:
        if ids is not None:
            if state or client or limit or after:
                raise ValueError("give ids or a selector (state, client, limit, after), not both")
            return {"ids": list(ids)}
        return {
            "select": pb.Selector(
                state=_enum(pb.State, "STATE_", state) if state else 0,
                client=client or "",
                limit=limit,
                after=after,
            )
        }

    # Reading.

    def get(self, id: int) -> "pb.Connection":
        return self.stub.Get(pb.GetRequest(id=id), metadata=self._meta)

    def stats(self) -> "pb.StatsResponse":
        return self.stub.Stats(pb.StatsRequest(), metadata=self._meta)

    def occupancy(self) -> Dict[str, Dict[str, int]]:
        """Endpoints by side and state: {"client": {"TIME_WAIT": 12000, …}, "server": {…}}."""
        out: Dict[str, Dict[str, int]] = {"client": {}, "server": {}}
        for o in self.stats().occupancy:
            side = _name(pb.Side, "SIDE_", o.side).lower()
            out.setdefault(side, {})[_name(pb.State, "STATE_", o.state)] = o.count
        return out

    # Hosts.

    def set_listener(self, server: Optional[str] = None, **settings) -> List["pb.Listener"]:
        """Changes one server's listener ("addr:port"), or every one's: backlog, somaxconn,
        tcp_max_syn_backlog, tcp_syncookies, tcp_abort_on_overflow, accepting. Returns the
        listeners changed, as they are now."""
        r = self.stub.SetListener(
            pb.SetListenerRequest(server=server or "", **settings), metadata=self._meta
        )
        return list(r.listeners)

    def set_client_sysctls(self, **settings) -> "pb.ClientSysctls":
        """Changes the client hosts' TIME-WAIT reuse: tcp_tw_reuse, tcp_timestamps,
        tcp_tw_reuse_delay_ms. Returns the settings now in force."""
        return self.stub.SetClientSysctls(
            pb.SetClientSysctlsRequest(**settings), metadata=self._meta
        )

    def set_link(
        self, link: str, *, server: Optional[str] = None, client_pool: Optional[str] = None
    ) -> List["pb.LinkRule"]:
        """Sets the link AUTO pairs run over ("delay=25ms,loss=1%", or "none"): the default, or
        one server's or client pool's override. Returns every link set, the default first."""
        r = self.stub.SetLink(
            pb.SetLinkRequest(link=link, server=server or "", client_pool=client_pool or ""),
            metadata=self._meta,
        )
        return list(r.links)

    # The clock.

    def advance(self, ms: int) -> int:
        """Moves a virtual clock `ms` forward, firing every timer due; returns the time."""
        return self.stub.AdvanceClock(pb.AdvanceClockRequest(ms=ms), metadata=self._meta).now_ms

    @contextlib.contextmanager
    def session(self) -> Iterator["Session"]:
        """A virtual-clock session: refuses a server on a real clock (ValueError), and on exit
        aborts whatever the session opened that is still there, so the next one starts clean."""
        stats = self.stats()
        if stats.clock != "virtual":
            raise ValueError("a session needs a server on a virtual clock (tcpsim serve --clock virtual)")
        s = Session(self, stats.now_ms)
        try:
            yield s
        finally:
            for i in range(0, len(s.opened), 10_000):
                chunk = s.opened[i : i + 10_000]
                self.abort(chunk, side="client")
                self.abort(chunk, side="server")


class Session:
    """What a `Simulator.session()` yields: opens it remembers, and its own clock."""

    def __init__(self, sim: Simulator, start_ms: int) -> None:
        self.sim = sim
        self.start_ms = start_ms
        self.now_ms = start_ms
        self.opened: List[int] = []

    def open(self, count: int = 1, **kw) -> Opened:
        o = self.sim.open(count, **kw)
        self.opened.extend(o.ids)
        return o

    def advance(self, ms: int) -> int:
        self.now_ms = self.sim.advance(ms)
        return self.now_ms

    @property
    def elapsed_ms(self) -> int:
        """Virtual time since the session began."""
        return self.now_ms - self.start_ms

#!/usr/bin/env python3
"""The seed's three-way handshake and four-way close, one segment at a time, through tcpsim's
gRPC API (a MANUAL connection: segments wait on the wire until this script delivers them).

    pip install ./clients/python
    python examples/python/handshake.py --target 127.0.0.1:50051

It uses the client package's raw stubs (`tcpsim.v1`), generated from proto/ when the package was
built. Every step prints the segment moved and both sides' states.
"""

import argparse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the server, host:port")
    parser.add_argument("--token", help="bearer token, if the server wants one")
    args = parser.parse_args()

    from tcpsim import Simulator, pb

    sim = Simulator(args.target, token=args.token).stub
    meta = [("authorization", f"Bearer {args.token}")] if args.token else None
    state = lambda v: pb.State.Name(v).removeprefix("STATE_")

    def states(conn_id):
        c = sim.Get(pb.GetRequest(id=conn_id), metadata=meta)
        by_side = {e.side: e.state for e in c.endpoints}
        return state(by_side[pb.SIDE_CLIENT]), state(by_side[pb.SIDE_SERVER])

    def show(what, conn_id):
        client, server = states(conn_id)
        print(f"{what:<46} client {client:<12} server {server}")

    def step(conn_id, direction):
        moved = sim.Wire(pb.WireRequest(id=conn_id, direction=direction, action=pb.WIRE_ACTION_DELIVER, count=1), metadata=meta).moved[0]
        f = moved.flags
        flags = "|".join(n for n, on in (("SYN", f.syn), ("FIN", f.fin), ("RST", f.rst), ("ACK", f.ack)) if on)
        arrow = "client -> server" if direction == pb.DIRECTION_CLIENT_TO_SERVER else "server -> client"
        ack = f" ack={moved.ack}" if f.ack else ""
        show(f"{arrow} {flags} seq={moved.seq}{ack}", conn_id)

    c2s, s2c = pb.DIRECTION_CLIENT_TO_SERVER, pb.DIRECTION_SERVER_TO_CLIENT
    opened = sim.Open(pb.OpenRequest(mode=pb.MODE_MANUAL, iss=100, server_iss=300), metadata=meta).connections[0]
    conn = opened.id
    print(f"connection {conn}: {opened.tuple.client} -> {opened.tuple.server}")
    show("client connects, server listens", conn)
    step(conn, c2s)  # SYN seq=x
    step(conn, s2c)  # SYN-ACK seq=y ack=x+1
    step(conn, c2s)  # ACK seq=x+1 ack=y+1
    sim.Close(pb.CloseRequest(id=conn, side=pb.SIDE_CLIENT), metadata=meta)
    show("client closes", conn)
    step(conn, c2s)  # FIN seq=u
    step(conn, s2c)  # ACK u+1
    sim.Close(pb.CloseRequest(id=conn, side=pb.SIDE_SERVER), metadata=meta)
    show("server closes", conn)
    step(conn, s2c)  # FIN seq=w
    step(conn, c2s)  # ACK w+1
    stats = sim.Stats(pb.StatsRequest(), metadata=meta)
    if stats.clock == "virtual":
        sim.AdvanceClock(pb.AdvanceClockRequest(ms=60_000), metadata=meta)
        show("60 s later (2·MSL)", conn)
    else:
        print("(real clock: the client stays in TIME-WAIT for 60 s)")
    sim.Remove(pb.RemoveRequest(id=conn), metadata=meta)


if __name__ == "__main__":
    main()

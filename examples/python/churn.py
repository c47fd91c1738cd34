#!/usr/bin/env python3
"""Connection churn from Python: open, close the client side, close the server side, in batches,
on a virtual-clock server, with the clock moved on so that TIME-WAIT expires as it would.

    pip install ./clients/python
    tcpsim serve --clock virtual &
    python examples/python/churn.py --target 127.0.0.1:50051 --lifecycles 200000

`--batch 1000` (the default) makes each step one call for a thousand connections: Open with
count, then Close by ids, twice. `--batch 1` is the way a script without bulk calls goes: three
unary calls per connection. Either way the virtual clock moves 100 ms per thousand lifecycles. Prints lifecycles per second, and the client's CPU per lifecycle.
"""

import argparse
import sys
import time

from tcpsim import Opened, Simulator, pb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the server, host:port")
    parser.add_argument("--token", help="bearer token, if the server wants one")
    parser.add_argument("--lifecycles", type=int, default=100_000, help="connections to open and close")
    parser.add_argument("--batch", type=int, default=1000, help="connections per call (1: one call per step)")
    parser.add_argument("--ms-per-1000", type=int, default=100, help="virtual time to let pass per 1000 lifecycles")
    args = parser.parse_args()

    with Simulator(args.target, token=args.token) as sim, sim.session() as s:
        before = sim.occupancy()
        start, cpu = time.perf_counter(), time.process_time()
        done = 0
        refused = 0
        while done < args.lifecycles:
            n = min(args.batch, args.lifecycles - done)
            if n == 1:
                # The unary calls on one connection each, as before bulk calls existed.
                r = sim.stub.Open(pb.OpenRequest(mode=pb.MODE_AUTO))
                opened = Opened([c.id for c in r.connections])
                for i in opened.ids:
                    for side in (pb.SIDE_CLIENT, pb.SIDE_SERVER):
                        sim.stub.Close(pb.CloseRequest(id=i, side=side, how=pb.CLOSE_KIND_CLOSE))
            else:
                opened = sim.open(n)
                sim.close(opened.ids, side="client")
                sim.close(opened.ids, side="server")
            refused += sum(opened.refused.values())
            done += n
            # The client sides stay in TIME-WAIT for 60 s of the virtual clock: let it pass, as
            # much per thousand lifecycles whatever the batch.
            if args.ms_per_1000 and done % 1000 == 0:
                s.advance(args.ms_per_1000)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = sim.occupancy()
    print(
        f"{done} lifecycles in {wall:.2f} s = {done / wall:,.0f}/s, batches of {args.batch}; "
        f"client CPU {cpu / done * 1e6:.1f} µs per lifecycle; refused {refused}; "
        f"virtual time {s.elapsed_ms / 1000:.1f} s; client TIME_WAIT "
        f"{before['client'].get('TIME_WAIT', 0)} -> {after['client'].get('TIME_WAIT', 0)}"
    )
    return 0 if refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

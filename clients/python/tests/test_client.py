"""The client against a real server on a virtual clock: TCPSIM_TARGET=host:port (CI starts one).

    TCPSIM_TARGET=127.0.0.1:50551 python -m unittest discover -s clients/python/tests -v
"""

import os
import unittest

import grpc

from tcpsim import Simulator

TARGET = os.environ.get("TCPSIM_TARGET")


@unittest.skipUnless(TARGET, "set TCPSIM_TARGET to a tcpsim server on a virtual clock")
class ClientTest(unittest.TestCase):
    def setUp(self):
        self.sim = Simulator(TARGET)

    def tearDown(self):
        self.sim.close_channel()

    def test_a_lifecycle_in_bulk(self):
        with self.sim.session() as s:
            # The server may hold others' connections: count against what was there.
            time_wait_before = self.sim.occupancy()["client"].get("TIME_WAIT", 0)
            o = s.open(count=500)
            self.assertEqual(len(o.ids), 500)
            self.assertEqual(o.refused, {})
            occ = self.sim.occupancy()
            self.assertGreaterEqual(occ["client"].get("ESTABLISHED", 0), 500)
            done = self.sim.close(o.ids, side="client")
            self.assertEqual((done.done, done.failed), (500, {}))
            again = self.sim.close(o.ids, side="client")
            self.assertEqual((again.done, again.failed), (0, {"FAILED_PRECONDITION": 500}))
            self.assertEqual(self.sim.close(o.ids, side="server").done, 500)
            self.assertEqual(self.sim.occupancy()["client"].get("TIME_WAIT", 0), time_wait_before + 500)
            s.advance(60_000)
            self.assertEqual(s.elapsed_ms, 60_000)
            # Ours have expired (and perhaps some of the others').
            self.assertLessEqual(self.sim.occupancy()["client"].get("TIME_WAIT", 0), time_wait_before)

    def test_a_selector_picks_by_state_and_limit(self):
        with self.sim.session() as s:
            s.open(count=30)
            r = self.sim.send(100, side="server", state="ESTABLISHED", limit=10)
            self.assertEqual(r.done, 10)
            r = self.sim.close(side="client", state="ESTABLISHED", client="10.0.0.0/16", limit=25)
            self.assertEqual(r.done, 25)
            self.assertGreaterEqual(self.sim.occupancy()["server"].get("CLOSE_WAIT", 0), 25)

    def test_names_are_checked_and_errors_raised_as_the_server_answered(self):
        with self.assertRaisesRegex(ValueError, "not one of CLIENT, SERVER, BOTH"):
            self.sim.close([1], side="left")
        with self.assertRaisesRegex(ValueError, "ids or a selector"):
            self.sim.close([1], state="ESTABLISHED")
        with self.assertRaises(grpc.RpcError) as e:
            self.sim.close(side="client", client="10.0.0.1/8")
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("select.client", e.exception.details())

    def test_listener_and_client_sysctls_change_and_show_in_stats(self):
        before = self.sim.stats()
        try:
            changed = self.sim.set_listener(backlog=64, tcp_syncookies=0, accepting=False)
            self.assertEqual(len(changed), len(before.listeners))
            self.assertEqual((changed[0].backlog, changed[0].tcp_syncookies), (64, 0))
            self.assertFalse(self.sim.stats().listeners[0].accepting)
            c = self.sim.set_client_sysctls(tcp_tw_reuse=1, tcp_tw_reuse_delay_ms=500)
            self.assertEqual((c.tcp_tw_reuse, c.tcp_tw_reuse_delay_ms), (1, 500))
            with self.assertRaises(grpc.RpcError) as e:
                self.sim.set_listener(tcp_syncookies=3)
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("tcp_syncookies", e.exception.details())
        finally:
            l = before.listeners[0]
            self.sim.set_listener(
                backlog=l.backlog,
                tcp_syncookies=l.tcp_syncookies,
                accepting=l.accepting,
            )
            c = before.client_sysctls
            self.sim.set_client_sysctls(
                tcp_tw_reuse=c.tcp_tw_reuse, tcp_tw_reuse_delay_ms=c.tcp_tw_reuse_delay_ms
            )
        self.assertEqual(self.sim.stats().listeners[0].backlog, before.listeners[0].backlog)


    def test_a_link_delays_handshakes(self):
        with self.sim.session() as s:
            try:
                rules = self.sim.set_link("delay=25ms")
                self.assertEqual((rules[0].target, rules[0].link[:11]), ("default", "delay=25ms,"))
                o = s.open(count=10)
                occ = self.sim.occupancy()
                self.assertGreaterEqual(occ["client"].get("SYN_SENT", 0), 10)
                self.assertEqual(self.sim.stats().segments_in_flight, 10)
                s.advance(75)
                self.assertEqual(self.sim.stats().segments_in_flight, 0)
                self.assertEqual(len(o.ids), 10)
            finally:
                self.sim.set_link("none")


if __name__ == "__main__":
    unittest.main()

"""WebSocket tickets (POST /api/events/ticket, role viewer), pushed past small bounds: a caller
holds at most server.ws_max_tickets_per_caller unused tickets (past it its own oldest goes, never
another caller's: cronvisor_ws_tickets_dropped_total), and all callers together at most
server.ws_max_tickets (past it 429 too_many_tickets with Retry-After:
cronvisor_ws_tickets_refused_total). Before these bounds one viewer token asking for 1,024 tickets
evicted every other caller's. Every ticket still held authenticates once. Both apply on reload."""
import re
import signal
import unittest

from cvtest import Daemon, WsClient, main

TOKENS = {"a": "viewer-token-a-5a5a5a", "b": "viewer-token-b-6b6b6b", "c": "viewer-token-c-7c7c7c"}

CONFIG = """
server:
  listen: "127.0.0.1:0"
  ws_max_tickets: {total}
  ws_max_tickets_per_caller: 2
auth:
  tokens:
""" + "".join("    - {{name: %s, role: viewer, token: %s}}\n" % kv for kv in sorted(TOKENS.items())) + """
jobs:
  - name: idle
    schedule: manual
    command: 'true'
"""


class TicketBounds(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(CONFIG.format(total=4))
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.port()

    def ticket(self, who):
        return self.d.api("POST", "/api/events/ticket", token=TOKENS[who])

    def issued(self, who):
        r = self.ticket(who)
        self.assertEqual(r.status, 200, r)
        return r.json["ticket"]

    def metric(self, name):
        text = self.d.api("GET", "/metrics", token=TOKENS["a"]).body.decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        self.assertIsNotNone(m, name)
        return float(m.group(1))

    def redeems(self, ticket):
        ws = WsClient(self.d.port(), "/api/events?ticket=" + ticket)
        try:
            if ws.status != 101:
                return False
            ws.recv_until(lambda m: m.get("type") == "authenticated")
            return True
        finally:
            ws.close()

    def test_tickets_past_their_bounds_drop_the_callers_own_oldest_or_are_429(self):
        d = self.d
        a1, a2, a3 = self.issued("a"), self.issued("a"), self.issued("a")
        self.assertEqual(self.metric("cronvisor_ws_tickets_dropped_total"), 1)
        self.assertEqual(self.metric("cronvisor_ws_tickets"), 2)
        self.assertFalse(self.redeems(a1), "a's oldest ticket was dropped for its third")
        self.assertTrue(self.redeems(a2))

        b1, b2, c1 = self.issued("b"), self.issued("b"), self.issued("c")
        self.assertEqual(self.metric("cronvisor_ws_tickets"), 4)
        for who in ("c", "a"):  # each holds fewer than 2, but 4 of all callers are live
            r = self.ticket(who)
            self.assertEqual(r.status, 429, r)
            self.assertEqual(r.json["error"]["code"], "too_many_tickets")
            self.assertIn("server.ws_max_tickets", r.json["error"]["message"])
            self.assertEqual(r.header("Retry-After"), "60")
        self.assertEqual(self.metric("cronvisor_ws_tickets_refused_total"), 2)
        b3 = self.issued("b")  # b holds 2: its own oldest goes, nobody else's
        self.assertEqual(self.metric("cronvisor_ws_tickets_dropped_total"), 2)
        self.assertEqual(self.metric("cronvisor_ws_tickets"), 4)

        # server.ws_max_tickets 4 -> 5 on reload: c gets its second ticket
        with open(d.config_path, "w") as f:
            f.write(CONFIG.format(total=5))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: server\.ws_max_tickets$")
        c2 = self.issued("c")
        self.assertEqual(self.ticket("a").status, 429)

        # nothing held was lost: every ticket not dropped authenticates, once
        self.assertFalse(self.redeems(b1))
        for t in (a3, b2, b3, c1, c2):
            self.assertTrue(self.redeems(t), t)
            self.assertFalse(self.redeems(t), t)
        self.assertEqual(self.metric("cronvisor_ws_tickets"), 0)
        self.assertEqual(d.stop(), 0, d.tail())


if __name__ == "__main__":
    main()

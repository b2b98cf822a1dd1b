"""SIGHUP reloads: API tokens added, removed and re-roled apply at once (HTTP, tickets, open
WebSocket sessions), and the reload's log line says what changed. (Every section at once and
the restart-only keys: test_reload_all.py.)"""
import os
import signal
import unittest

from cvtest import Daemon, WsClient, main

KEEP, GONE, NEW = "keep-token-aaaa1111", "gone-token-bbbb2222", "new-token-cccc3333"

BEFORE = """
server:
  listen: "127.0.0.1:0"
limits:
  max_concurrent: 4
auth:
  tokens:
    - name: keep
      role: viewer
      token: %s
    - name: gone
      role: admin
      token: %s
jobs:
  - name: job1
    schedule: manual
    concurrency: allow
    command: 'true'
""" % (KEEP, GONE)

# keep: viewer -> operator; gone: removed; new: added; one job more; the limit changed (applied);
# a probe added (applied).
AFTER = """
server:
  listen: "127.0.0.1:0"
limits:
  max_concurrent: 2
auth:
  tokens:
    - name: keep
      role: operator
      token: %s
    - name: new
      role: viewer
      token: %s
probes:
  - name: db
    type: tcp
    address: "127.0.0.1:1"
    interval: 1h
jobs:
  - name: job1
    schedule: manual
    concurrency: allow
    command: 'true'
  - name: job2
    schedule: manual
    command: 'true'
""" % (KEEP, NEW)


def started(d):
    """Waits until the daemon handles SIGHUP (its signal handlers start with the actors)."""
    d.wait_log(r"cronvisor \S+ running")
    return d


def ws_authed(d, token):
    ws = WsClient(d.port(), headers={"Authorization": "Bearer " + token})
    assert ws.status == 101, ws.head
    m, _ = ws.recv_until(lambda m: m.get("type") == "authenticated")
    return ws, m


class TokenReload(unittest.TestCase):
    def test_a_removed_token_is_refused_at_once_and_its_sessions_are_closed(self):
        d = started(Daemon(BEFORE).start())
        try:
            port = d.port()
            self.assertEqual(d.api("GET", "/api/jobs", token=GONE).status, 200)
            self.assertEqual(d.api("POST", "/api/jobs/job1/trigger", token=KEEP).status, 403)
            ticket = d.api("POST", "/api/events/ticket", token=GONE).json["ticket"]
            ws_gone, m = ws_authed(d, GONE)
            self.assertEqual((m["name"], m["role"]), ("gone", "admin"))
            ws_keep, _ = ws_authed(d, KEEP)

            with open(d.config_path, "w") as f:
                f.write(AFTER)
            d.signal(signal.SIGHUP)
            line = d.wait_log(r"configuration reloaded").string
            # HTTP: the removed token at once, the kept one with its new role, the added one
            self.assertEqual(d.api("GET", "/api/jobs", token=GONE).status, 401)
            self.assertEqual(d.api("GET", "/api/jobs", token=KEEP).status, 200)
            self.assertEqual(d.api("GET", "/api/jobs", token=NEW).status, 200)
            self.assertEqual(d.api("POST", "/api/jobs/job1/trigger", token=KEEP).status, 202)
            self.assertEqual(d.api("POST", "/api/jobs/job1/trigger", token=NEW).status, 403)
            self.assertEqual(d.port(), port)

            rec = [r for r in d.log if r.get("msg") == line][-1]

            # what changed: named, never a value
            self.assertRegex(line, r": jobs \+1, tokens \+1 -1 ~1, probes \+1, limits.max_concurrent$")
            self.assertEqual(rec["level"], "info", rec)
            for secret in (KEEP, GONE, NEW):
                self.assertNotIn(secret, line)

            # a ticket issued to the removed token is gone with it
            late = WsClient(port, "/api/events?ticket=" + ticket)
            self.assertEqual(late.status, 401, late.head)
            late.close()

            # the session opened with the removed token is told and closed (1008)
            m, _ = ws_gone.recv_until(lambda m: m.get("type") == "error")
            self.assertEqual(m["code"], "token_revoked")
            self.assertIsNone(ws_gone.recv())
            self.assertEqual(ws_gone.closed, 1008)
            ws_gone.close()

            # the kept session goes on
            ws_keep.send({"type": "auth"})
            ws_keep.recv_until(lambda m: m.get("type") == "authenticated")
            ws_keep.close()
        finally:
            d.stop()

    def test_a_reload_that_changes_nothing_says_so(self):
        with Daemon(BEFORE) as d:
            started(d)
            d.signal(signal.SIGHUP)
            m = d.wait_log(r"configuration reloaded from \S+: (.*)$")
            self.assertEqual(m.group(1), "no changes")
            self.assertEqual(d.api("GET", "/api/jobs", token=GONE).status, 200)

    def test_removing_every_token_of_a_non_loopback_server_is_refused(self):
        # An open API is allowed on loopback only: a reload may not open a server listening wider.
        with Daemon(BEFORE.replace("127.0.0.1:0", "0.0.0.0:0")) as d:
            port = d.port()
            started(d)
            with open(d.config_path, "w") as f:
                f.write("server:\n  listen: \"0.0.0.0:0\"\njobs:\n  - name: job1\n    schedule: manual\n"
                        "    command: 'true'\n")
            d.signal(signal.SIGHUP)
            # refused as an invalid configuration, with the same error `cronvisor check` prints
            d.wait_log(r"server\.listen: .*not loopback")
            d.wait_log(r"reload refused: ")
            self.assertEqual(d.api("GET", "/api/jobs").status, 401)
            self.assertEqual(d.api("GET", "/api/jobs", token=KEEP).status, 200)
            self.assertEqual(d.port(), port)


if __name__ == "__main__":
    main()

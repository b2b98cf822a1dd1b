"""/readyz (no authentication) waits for the store's answer to a ping: while server.max_pending
requests already wait for the store it is refused 503 busy like the authenticated reads
(cronvisor_http_pending_refused_total), instead of adding one more store request per caller
without a bound. The requests already waiting are answered once the database answers. Needs a
PostgreSQL 15 server (started here, see pgserver.py); the daemon's database sessions are stopped
(SIGSTOP) to hold the store's answers back."""
import os
import re
import signal
import threading
import time
import unittest

import pgserver
from cvtest import Daemon, main

TOKEN = "viewer-token-readyz-90"

CONFIG = """
instance: readyz-a
storage:
  postgres: "{dsn}"
  spool_dir: "{dir}/spool"
server:
  listen: "127.0.0.1:0"
  max_pending: 2
auth:
  tokens:
    - {{name: prom, role: viewer, token: %s}}
jobs:
  - name: idle
    schedule: manual
    command: 'true'
""" % TOKEN


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class ReadyzPending(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("readyz")
        self.d = Daemon("")
        with open(self.d.config_path, "w") as f:
            f.write(CONFIG.replace("{dir}", self.d.tmp).format(dsn=self.dsn))
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.wait_log(r"running: instance readyz-a")
        self.d.port()
        self.stopped = []
        self.addCleanup(self.resume)

    def resume(self):
        for pid in self.stopped:
            os.kill(pid, signal.SIGCONT)
        self.stopped = []

    def hold_the_database(self):
        pids = [int(r[0]) for r in self.pg.query(
            "readyz", "SELECT pid FROM pg_stat_activity WHERE datname = 'readyz' AND "
                      "pid <> pg_backend_pid()")]
        self.assertTrue(pids, "the daemon has no database session")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)

    def metrics(self):
        return self.d.api("GET", "/metrics", token=TOKEN)

    def test_readyz_past_server_max_pending_is_503_busy_and_the_waiting_ones_are_answered(self):
        d = self.d
        self.assertEqual(d.api("GET", "/readyz").status, 200)
        self.hold_the_database()
        answers = []

        def readyz():
            r = d.api("GET", "/readyz", timeout=120)
            answers.append((r.status, r.json))

        waiting = [threading.Thread(target=readyz) for _ in range(2)]
        waiting[0].start()
        deadline = time.monotonic() + 30
        while True:  # the first waits for the store
            text = self.metrics().body.decode()
            if re.search(r"^cronvisor_http_pending_requests 1$", text, re.M):
                break
            self.assertLess(time.monotonic(), deadline, "the first /readyz is not waiting")
            time.sleep(0.05)
        waiting[1].start()
        refused = 0
        while True:  # the second waits too: max_pending reached, a viewer's read is refused
            r = self.metrics()
            if r.status == 503:
                refused += 1
                self.assertEqual(r.json["error"]["code"], "busy")
                break
            self.assertLess(time.monotonic(), deadline, "the second /readyz is not waiting")
            time.sleep(0.05)
        r = d.api("GET", "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"]["code"], "busy")
        refused += 1
        self.assertEqual(d.api("GET", "/healthz").status, 200)  # never waits: never refused

        self.resume()
        for t in waiting:
            t.join(60)
        self.assertEqual(sorted(a[0] for a in answers), [200, 200], answers)
        self.assertTrue(all(a[1]["status"] == "ready" for a in answers), answers)
        text = self.metrics().body.decode()
        self.assertRegex(text, r"(?m)^cronvisor_http_pending_requests 0$")
        self.assertRegex(text, r"(?m)^cronvisor_http_pending_refused_total %d$" % refused)
        self.assertEqual(d.stop(), 0, d.tail())


if __name__ == "__main__":
    main()

"""Monitored jobs (`ping:`) on several daemons sharing one PostgreSQL database: a ping may reach
any instance. A ping received by one instance keeps every instance from recording the instant as
missed (the check asks the store); a missed instant is recorded once (claimed like a firing); a
/start on one instance is ended by the ping that reaches another (the open run is found in the
store). Needs a PostgreSQL 15 server (started here, see pgserver.py)."""
import time
import unittest

import pgserver
from cvtest import Daemon, main

KEYS = {"watched": "ping-key-watched-1", "tock": "ping-key-tock-2", "startend": "ping-key-startend-3"}

CONFIG = """
instance: {name}
storage:
  postgres: "{dsn}"
cluster:
  heartbeat_timeout: 3s
server:
  listen: "127.0.0.1:0"
limits:
  pings_per_minute: 600
defaults:
  kill_grace: 1s
  shutdown_grace: 2s
jobs:
  - name: watched
    schedule: "* * * * * *"
    ping: {{grace: 3s, key: "%s"}}
  - name: tock
    schedule: "* * * * * *"
    ping: {{grace: 1s, key: "%s"}}
  - name: startend
    schedule: "0 0 1 1 *"
    ping: {{key: "%s"}}
""" % (KEYS["watched"], KEYS["tock"], KEYS["startend"])


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class ClusterPings(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("pings")
        self.nodes = [self.daemon("node-%d" % i) for i in (1, 2)]
        for d in self.nodes:
            d.wait_log(r"running: instance node-\d")
            d.wait_log(r"listening to the other instances$")  # sees the other's events from here

    def q(self, sql):
        return self.pg.query("pings", sql)

    def daemon(self, name):
        d = Daemon(CONFIG.format(name=name, dsn=self.dsn))
        d.name = name
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        return d.start()

    def ping(self, d, job, suffix="", raw=None):
        r = d.api("POST", "/ping/%s%s" % (job, suffix), raw=raw,
                  headers={"Authorization": "Bearer " + KEYS[job]})
        self.assertEqual(r.status, 202, r)

    def now_ms(self):
        return int(self.q("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint")[0][0])

    def until(self, sql, what, timeout=60):
        """Polls sql until it returns a row; returns the rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.q(sql)
            if rows:
                return rows
            self.assertLess(time.monotonic(), deadline, "%s: not within %ds" % (what, timeout))
            time.sleep(0.1)

    def api_until(self, d, cond, what, timeout=30):
        """Polls d's view of the job startend until cond holds."""
        deadline = time.monotonic() + timeout
        while True:
            r = d.api("GET", "/api/jobs/startend")
            if r.status == 200 and cond(r.json):
                return
            self.assertLess(time.monotonic(), deadline, "startend not %s on %s: %r" % (what, d.name, r.body[-300:]))
            time.sleep(0.1)

    def tock_missed_after(self, ms):
        """Waits for tock's missed instant after ms: never pinged, it misses one every second
        (recorded by whichever instance claims it): the test's clock."""
        self.until("SELECT id FROM runs WHERE job = 'tock' AND \"trigger\" = 'ping:missed' AND "
                   "scheduled_for > %d" % ms, "tock's instant after %d missed" % ms)

    def test_a_ping_on_one_instance_counts_on_the_other_and_a_miss_is_recorded_once(self):
        first = self.now_ms()
        last = first
        for _ in range(6):  # one ping a second, all on node-1
            self.ping(self.nodes[0], "watched")
            last = self.now_ms()
            self.tock_missed_after(last)
        # A ping at P counts for the instants in (P - 3s, P + 3s]: those from first to last were
        # all pinged. Their checks (at instant + 3s, on both instances) are over once tock's
        # check of an instant 4 s after the last ping has run.
        self.tock_missed_after(last + 4000)
        missed = self.q("SELECT scheduled_for, instance FROM runs WHERE job = 'watched' AND "
                        "\"trigger\" = 'ping:missed' AND scheduled_for BETWEEN %d AND %d" % (first, last))
        self.assertEqual(missed, [], "instants pinged on node-1 recorded as missed")
        self.assertEqual(int(self.q("SELECT COUNT(*) FROM runs WHERE job = 'watched' AND "
                                    "\"trigger\" = 'ping' AND status = 'SUCCESS'")[0][0]), 6)
        # Once the pings stop, instants are missed again, each recorded once across the two.
        self.until("SELECT id FROM runs WHERE job = 'watched' AND \"trigger\" = 'ping:missed' AND "
                   "scheduled_for > %d" % (last + 3000), "watched missed again")
        self.tock_missed_after(self.now_ms() + 2000)
        for job in ("watched", "tock"):
            dup = self.q("SELECT scheduled_for, COUNT(*) FROM runs WHERE job = '%s' AND \"trigger\" = "
                         "'ping:missed' GROUP BY scheduled_for HAVING COUNT(*) > 1" % job)
            self.assertEqual(dup, [], "%s: instants recorded as missed more than once" % job)
        rows = self.q("SELECT status, error FROM runs WHERE job = 'tock'")
        self.assertTrue(rows)
        for status, error in rows:
            self.assertEqual(status, "FAILED")
            self.assertIn("no ping received", error)

    def test_a_start_on_one_instance_is_ended_by_the_ping_on_the_other(self):
        a, b = self.nodes
        self.ping(a, "startend", "/start")
        running = self.until("SELECT id, instance FROM runs WHERE job = 'startend' AND status = 'RUNNING'",
                             "the /start run recorded RUNNING", timeout=30)
        self.assertEqual(len(running), 1, running)
        run_id = int(running[0][0])
        self.assertEqual(running[0][1], "node-1")
        # both APIs show it running: node-1's its own, node-2's relayed through the store
        for d in self.nodes:
            self.api_until(d, lambda j: j["running"] == 1, "running")
        time.sleep(0.05)  # not a wait for an event: the run must last, so its duration shows
        self.ping(b, "startend", raw=b"done on the far host")
        self.until("SELECT id FROM runs WHERE job = 'startend' AND status <> 'RUNNING'",
                   "the run ended", timeout=30)
        # and both hear of its end, node-1 too though another instance ended its run
        for d in self.nodes:
            self.api_until(d, lambda j: j["running"] == 0 and (j["last_run"] or {}).get("status") == "SUCCESS",
                           "ended")
        for d in self.nodes:
            self.assertEqual(d.stop(), 0)
        rows = self.q("SELECT id, status, started_at, finished_at, duration_ms, output_tail, instance "
                      "FROM runs WHERE job = 'startend'")
        self.assertEqual(len(rows), 1, rows)  # one run: started on node-1, ended on node-2
        rid, status, started, finished, duration, output, instance = rows[0]
        self.assertEqual((int(rid), status, output, instance),
                         (run_id, "SUCCESS", "done on the far host", "node-2"))
        self.assertGreaterEqual(int(duration), 50)
        self.assertEqual(int(duration), int(finished) - int(started))


if __name__ == "__main__":
    main()

"""Bounds of monitored jobs (`ping:`), pushed past with small limits:

- limits.ping_queue: the pings accepted but not yet recorded (with a shared store, those waiting
  for the database). Past it a ping is refused 429 ping_queue_full (Retry-After), counted in
  cronvisor_ping_refused_total{reason="queue"}; every ping accepted before is recorded once the
  database answers. Needs a PostgreSQL 15 server (started here, see pgserver.py); the database is
  held back by a transaction that locks the runs table.
- limits.ping_checks: the checks of one job's scheduled instants waiting for their grace. Past it
  an instant is not checked (logged, cronvisor_ping_checks_dropped_total); every instant whose
  check was armed still ends as a "no ping received" run.

Both apply on reload (SIGHUP)."""
import re
import signal
import subprocess
import time
import unittest

import pgserver
from cvtest import Daemon, main

KEY = "ping-key-bounded-5150"
TOKEN = "viewer-token-bounds-77"

PG_CONFIG = """
instance: bounds-a
storage:
  postgres: "{dsn}"
  spool_dir: "{dir}/spool"
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: prom
      role: viewer
      token: %s
limits:
  ping_queue: {queue}
  pings_per_minute: 600
defaults:
  shutdown_grace: 2s
jobs:
  - name: batch
    schedule: "0 0 1 1 *"
    ping: {{key: "%s"}}
""" % (TOKEN, KEY)

CHECKS_CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: prom
      role: viewer
      token: %s
limits:
  ping_checks: {checks}
jobs:
  - name: silent
    schedule: "* * * * * *"
    ping: {{grace: 3s, key: "%s"}}
""" % (TOKEN, KEY)


def poll(fn, what, timeout=30.0):
    """Polls fn() until it returns something truthy; returns it, fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: not within %.0fs (last: %r)" % (what, timeout, last))


def metric(d, name):
    text = d.api("GET", "/metrics", token=TOKEN).body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    if m is None:
        raise AssertionError("no sample %s in /metrics" % name)
    return float(m.group(1))


class Lock:
    """A psql session holding an ACCESS EXCLUSIVE lock on the runs table until release(): the
    daemon's reads and writes of runs wait for it."""

    def __init__(self, pg, db):
        self.p = subprocess.Popen([pgserver.PSQL, "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                                   "postgres", "-d", db, "-At", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN;\nLOCK TABLE runs IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        while line and line != "locked":
            line = self.p.stdout.readline().strip()
        if line != "locked":
            raise AssertionError("psql could not lock the runs table")

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n")
            self.p.stdin.close()
            self.p.wait(timeout=60)
            self.p.stdout.close()


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class PingQueue(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("bounds")
        self.d = Daemon("")
        self.write(3)
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.wait_log(r"running: instance bounds-a")

    def write(self, queue):
        with open(self.d.config_path, "w") as f:
            f.write(PG_CONFIG.replace("{dir}", self.d.tmp).format(dsn=self.dsn, queue=queue))

    def ping(self, body):
        return self.d.api("POST", "/ping/batch", raw=body.encode(),
                          headers={"Authorization": "Bearer " + KEY})

    def recorded(self):
        return sorted(r[0] for r in self.pg.query(
            "bounds", "SELECT output_tail FROM runs WHERE job = 'batch' AND \"trigger\" = 'ping' "
                      "AND status = 'SUCCESS'"))

    def lock(self):
        lock = Lock(self.pg, "bounds")
        self.addCleanup(lock.release)
        return lock

    def test_pings_past_limits_ping_queue_are_429_and_none_accepted_is_lost(self):
        d = self.d
        lock = self.lock()
        for body in ("one", "two", "three"):
            self.assertEqual(self.ping(body).status, 202)
        r = self.ping("four")
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "ping_queue_full")
        self.assertIn("limits.ping_queue", r.json["error"]["message"])
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertEqual(metric(d, 'cronvisor_ping_refused_total{reason="queue"}'), 1)
        self.assertEqual(metric(d, "cronvisor_ping_queue"), 3)
        self.assertEqual(metric(d, 'cronvisor_ping_refused_total{reason="rate"}'), 0)

        lock.release()
        poll(lambda: self.recorded() == ["one", "three", "two"], "the three accepted pings recorded")
        poll(lambda: metric(d, "cronvisor_ping_queue") == 0, "the ping queue empty")
        self.assertEqual(self.ping("five").status, 202)
        poll(lambda: "five" in self.recorded(), "a ping accepted again once the queue emptied")
        self.assertNotIn("four", self.recorded())

        # limits.ping_queue 3 -> 1 on reload: the second waiting ping is refused
        self.write(1)
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: limits\.ping_queue$")
        poll(lambda: metric(d, "cronvisor_ping_queue") == 0, "the ping queue empty")
        lock = self.lock()
        self.assertEqual(self.ping("six").status, 202)
        r = self.ping("seven")
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "ping_queue_full")
        self.assertEqual(metric(d, 'cronvisor_ping_refused_total{reason="queue"}'), 2)
        lock.release()
        poll(lambda: "six" in self.recorded(), "the ping accepted under the reloaded limit")
        self.assertEqual(self.recorded(), ["five", "one", "six", "three", "two"])
        self.assertEqual(d.stop(), 0, d.tail())


class PingChecks(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(CHECKS_CONFIG.format(checks=2))
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()

    def dropped_instants(self):
        rx = re.compile(r"job silent: \d+ ping checks already wait \(limits\.ping_checks\); the "
                        r"instant (\d+) is not checked")
        return {int(m.group(1)) for m in (rx.search(r.get("msg", "")) for r in self.d.log) if m}

    def missed_instants(self):
        return {r["scheduled_for"] for r in self.d.db(
            "SELECT scheduled_for FROM runs WHERE job = 'silent' AND \"trigger\" = 'ping:missed'")}

    def test_instants_past_limits_ping_checks_are_not_checked_and_armed_ones_end(self):
        d = self.d
        # instants every second, each check waits 3 s: with 2 at most, one in three is dropped
        d.wait_log(r"job silent: 2 ping checks already wait \(limits\.ping_checks\); the instant "
                   r"\d+ is not checked")
        poll(lambda: metric(d, "cronvisor_ping_checks_dropped_total") >= 1, "a drop counted")
        first_dropped = min(self.dropped_instants())
        # the checks armed before and after the drop end as "no ping received" runs
        poll(lambda: len([i for i in self.missed_instants() if i > first_dropped]) >= 3,
             "three instants after the first drop recorded as missed")
        dropped, missed = self.dropped_instants(), self.missed_instants()
        self.assertFalse(dropped & missed, "an instant both dropped and checked")
        # every instant up to the last recorded one was either checked or logged as dropped
        first, last = min(missed | dropped), max(missed)
        self.assertEqual(sorted((missed | dropped) & set(range(first, last + 1, 1000))),
                         list(range(first, last + 1, 1000)))
        self.assertEqual(metric(d, "cronvisor_ping_checks_dropped_total"),
                         len(self.dropped_instants()))

        # limits.ping_checks 2 -> 10 on reload: from then on every instant is checked
        with open(d.config_path, "w") as f:
            f.write(CHECKS_CONFIG.format(checks=10))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: limits\.ping_checks$")
        after = int(time.time() * 1000) + 1000
        poll(lambda: len([i for i in self.missed_instants() if i > after]) >= 5,
             "five instants after the reload recorded as missed")
        later = [i for i in self.dropped_instants() if i > after]
        self.assertEqual(later, [], "instants dropped after the reload raised the limit")
        self.assertEqual(d.stop(), 0, d.tail())


if __name__ == "__main__":
    main()

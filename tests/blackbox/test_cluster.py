"""Several `cronvisor run` daemons on one PostgreSQL database: each cron firing runs exactly once
across them, and the runs of a daemon killed with SIGKILL are marked ABANDONED by the others once
its heartbeats stop. Needs a PostgreSQL 15 server (started here, see pgserver.py)."""
import calendar
import os
import shutil
import tempfile
import time
import unittest

import pgserver
from cvtest import Daemon, main, run_cli
import re

CONFIG = """
instance: {name}
storage:
  postgres: "{dsn}"
cluster:
  heartbeat_timeout: 3s
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 2s
jobs:
  - name: tick
    schedule: "* * * * * *"
    concurrency: allow
    command: 'echo "$CRONVISOR_SCHEDULED_FOR $CRONVISOR_RUN_ID {name}" >> {ran}; sleep 3'
"""


def wait_until(what, cond, timeout):
    """Polls cond() (a database query) until it returns a true value; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class Cluster(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("cluster")
        self.shared = tempfile.mkdtemp(prefix="cv-cluster-")
        self.addCleanup(shutil.rmtree, self.shared, True)
        self.ran = os.path.join(self.shared, "ran.log")

    def q(self, sql):
        return self.pg.query("cluster", sql)

    def daemon(self, name):
        d = Daemon(CONFIG.format(name=name, dsn=self.dsn, ran=self.ran))
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        return d.start()

    def cron_instants(self):
        rows = self.q("SELECT scheduled_for, COUNT(*) FROM runs WHERE job = 'tick' AND "
                      "\"trigger\" = 'cron' AND attempt = 1 GROUP BY scheduled_for")
        return {int(s): int(n) for s, n in rows}

    def test_three_daemons_run_each_firing_once_and_abandon_the_runs_of_a_killed_one(self):
        nodes = [self.daemon("node-%d" % i) for i in (1, 2, 3)]
        for d in nodes:
            d.wait_log(r"running: instance node-\d")
        # Each daemon heart-beats before it starts; the API of any of them lists all three.
        listed = nodes[0].api("GET", "/api/instances").json
        self.assertEqual(sorted(i["id"] for i in listed["instances"]), ["node-1", "node-2", "node-3"])
        self.assertEqual([i["id"] for i in listed["instances"] if i["self"]], [listed["self"]])
        first = (int(time.time()) + 2) * 1000  # every daemon schedules from here on
        wait_until("8 firings", lambda: len([s for s in self.cron_instants() if s >= first]) >= 8, 30)

        # Kill a daemon that has a run in progress (its command runs 3 s).
        victim = wait_until("a running run", lambda: self.q(
            "SELECT instance, id FROM runs WHERE status = 'RUNNING' ORDER BY id DESC LIMIT 1"), 10)
        name, victim_run = victim[0][0], int(victim[0][1])
        dead = nodes[int(name.split("-")[1]) - 1]
        dead.kill9()
        killed_at = int(time.time() * 1000)

        # The others keep the cadence, and abandon the dead one's runs after its timeout.
        wait_until("8 firings after the kill",
                   lambda: len([s for s in self.cron_instants() if s > killed_at]) >= 8, 30)
        wait_until("the dead instance's runs abandoned", lambda: not self.q(
            "SELECT id FROM runs WHERE instance = '%s' AND status IN ('RUNNING', 'QUEUED')" % name), 15)
        last = max(self.cron_instants()) - 1000  # the newest may still be being claimed
        for d in nodes:
            if d is not dead:
                self.assertEqual(d.stop(), 0)

        # Every instant from first to last has exactly one run record ...
        instants = self.cron_instants()
        expected = list(range(first, last + 1, 1000))
        missing = [s for s in expected if s not in instants]
        self.assertEqual(missing, [], "instants without a run")
        self.assertTrue(all(instants[s] == 1 for s in expected))
        # ... and was executed once, by one daemon (the command's own trace, not the database).
        with open(self.ran) as f:
            executed = [line.split() for line in f if line.strip()]
        seen = {}
        for sched, run_id, node in executed:
            ms = calendar.timegm(time.strptime(sched, "%Y-%m-%dT%H:%M:%SZ")) * 1000
            self.assertNotIn(ms, seen, "firing %s ran twice: %s and %s" % (sched, seen.get(ms), node))
            seen[ms] = node
        for s in expected:
            self.assertIn(s, seen, "firing %d was recorded but never executed" % s)
        # Work was shared: more than one daemon won firings.
        self.assertGreater(len(set(seen.values())), 1)

        # The killed daemon's run is ABANDONED, saying why.
        status, error = self.q("SELECT status, error FROM runs WHERE id = %d" % victim_run)[0]
        self.assertEqual(status, "ABANDONED")
        self.assertEqual(error, "instance %s stopped heart-beating" % name)
        # Every instance recorded heartbeats.
        ids = sorted(r[0] for r in self.q("SELECT id FROM instances"))
        self.assertEqual(ids, ["node-1", "node-2", "node-3"])

    def test_a_manual_run_next_to_a_daemon_gets_its_id_from_the_database(self):
        d = self.daemon("node-1")
        d.wait_log(r"running: instance node-1")
        wait_until("two firings", lambda: len(self.cron_instants()) >= 2, 15)
        path = os.path.join(self.shared, "once.yaml")
        with open(path, "w") as f:
            f.write(CONFIG.format(name="manual", dsn=self.dsn, ran=self.ran)
                    .replace("sleep 3", "true"))
        r = run_cli("run", "-c", path, "--once", "tick", cwd=self.shared)
        self.assertEqual(r.returncode, 0, r.stderr)
        run_id = int(re.search(r"SUCCESS run=(\d+)", r.stdout).group(1))
        row = self.q("SELECT status, \"trigger\", instance FROM runs WHERE id = %d" % run_id)
        self.assertEqual(row, [["SUCCESS", "once", "manual"]])
        # The manual run's start did not abandon the live daemon's runs.
        self.assertEqual(self.q("SELECT COUNT(*) FROM runs WHERE instance = 'node-1' AND "
                                "status = 'ABANDONED'"), [["0"]])
        self.assertEqual(d.stop(), 0)

    def test_a_job_disabled_in_the_database_stops_firing_on_every_instance_within_a_second(self):
        nodes = [self.daemon("node-%d" % i) for i in (1, 2)]
        for d in nodes:
            d.wait_log(r"running: instance node-\d")
        wait_until("two firings", lambda: len(self.cron_instants()) >= 2, 15)
        # What the API or an auto-disable does on one instance: an override, announced on commit.
        self.q("BEGIN; INSERT INTO job_overrides (job, field, value, updated_at, updated_by) "
               "VALUES ('tick', 'enabled', 'false', 0, 'test'); "
               "SELECT pg_notify('cronvisor_overrides', 'tick'); COMMIT")
        changed = time.time() * 1000
        for d in nodes:
            d.wait_log(r"runtime overrides changed for job tick", timeout=5)
        # Give a firing already claimed at the change a second to show up, then none may follow.
        time.sleep(3)
        late = [s for s in self.cron_instants() if s > changed + 1000]
        self.assertEqual(late, [], "firings after the job was disabled")

        self.q("BEGIN; DELETE FROM job_overrides WHERE job = 'tick'; "
               "SELECT pg_notify('cronvisor_overrides', 'tick'); COMMIT")
        enabled = time.time() * 1000
        wait_until("a firing after re-enabling",
                   lambda: [s for s in self.cron_instants() if s > enabled], 5)
        for d in nodes:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    main()

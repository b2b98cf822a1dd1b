"""Several `cronvisor run` daemons on one PostgreSQL database: each cron (and catch-up) firing runs
exactly once across them; the runs of a daemon killed with SIGKILL are marked ABANDONED by the
others once its heartbeats stop; every instance's WebSocket clients see every instance's runs and
job changes; forbid and replace hold across instances. Needs a PostgreSQL 15 server (started here,
see pgserver.py)."""
import calendar
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import pgserver
from cvtest import Daemon, WsClient, main, run_cli, response_schema, schema_errors

# What every instance of these tests shares: the database, a short heartbeat timeout.
CONFIG_HEAD = """
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
"""

CONFIG = CONFIG_HEAD + """  - name: tick
    schedule: "* * * * * *"
    concurrency: allow
    command: 'echo "$CRONVISOR_SCHEDULED_FOR $CRONVISOR_RUN_ID {name}" >> {ran}; sleep 3'
"""


def at_ms(rfc3339):
    """RFC 3339 UTC with milliseconds ("2026-03-29T01:30:00.000Z") to Unix ms."""
    return calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(rfc3339[20:23])


def is_run(kind, job=None, run_id=None, status=None):
    return lambda m: (m.get("type") == kind and (job is None or m["run"]["job"] == job) and
                      (run_id is None or m["run"]["id"] == run_id) and
                      (status is None or m["run"]["status"] == status))


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
        self.assertTrue(all(i["alive"] for i in listed["instances"]))
        first = (int(time.time()) + 2) * 1000  # every daemon schedules from here on
        # node-3's clients see the runs of all three: count the firings as they start.
        ws = WsClient(nodes[2].port())
        self.addCleanup(ws.close)
        started = {}  # scheduled_for -> run, of every run.started event (each predicate notes it)

        def note(m):
            if m.get("type") == "run.started" and m["run"]["trigger"] == "cron":
                started.setdefault(at_ms(m["run"]["scheduled_for"]), m["run"])
                return True
            return False
        ws.recv_until(lambda m: note(m) and len([s for s in started if s >= first]) >= 25, timeout=45)
        self.assertGreater(len({r["instance"] for r in started.values()}), 1, "one daemon ran all")

        # Kill the daemon that started the latest run (its command runs 3 s): node-1 or node-2,
        # so that node-3's clients keep listening.
        m, _ = ws.recv_until(lambda m: note(m) and m["run"]["instance"] in ("node-1", "node-2"),
                             timeout=10)
        name, victim_run = m["run"]["instance"], m["run"]["id"]
        dead = nodes[int(name.split("-")[1]) - 1]
        dead.kill9()
        killed_at = int(time.time() * 1000)

        # The others keep the cadence, and abandon the dead one's runs after its timeout: node-3's
        # clients are told (run.finished ABANDONED), whichever survivor swept them.
        after = set()
        abandoned = {}

        def cadence_and_abandoned(m):
            if note(m) and at_ms(m["run"]["scheduled_for"]) > killed_at:
                after.add(at_ms(m["run"]["scheduled_for"]))
            if m.get("type") == "run.finished" and m["run"]["status"] == "ABANDONED":
                abandoned[m["run"]["id"]] = m["run"]
            return len(after) >= 30 and victim_run in abandoned
        ws.recv_until(cadence_and_abandoned, timeout=50)
        self.assertEqual(abandoned[victim_run]["error"], "instance %s stopped heart-beating" % name)
        self.assertEqual(abandoned[victim_run]["instance"], name)
        # No gap longer than one interval, the kill included: seen live, as the runs started.
        seen = sorted(s for s in started if s >= first)
        gaps = [(a, b) for a, b in zip(seen, seen[1:]) if b - a > 1000]
        self.assertEqual(gaps, [], "firings missing")
        self.assertEqual(self.q("SELECT COUNT(*) FROM runs WHERE instance = '%s' AND status IN "
                                "('RUNNING', 'QUEUED')" % name), [["0"]])
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
        for _ in range(2):
            d.wait_log(r"run \d+ job=tick trigger=cron attempt=1 status=RUNNING", timeout=15)
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
        ws = WsClient(nodes[0].port())
        self.addCleanup(ws.close)
        for _ in range(2):
            ws.recv_until(is_run("run.started", "tick"), timeout=15)
        # What the API or an auto-disable does on one instance: an override, announced on commit.
        self.q("BEGIN; INSERT INTO job_overrides (job, field, value, updated_at, updated_by) "
               "VALUES ('tick', 'enabled', 'false', 0, 'test'); "
               "SELECT pg_notify('cronvisor_overrides', 'tick'); COMMIT")
        changed = time.time() * 1000
        for d in nodes:
            d.wait_log(r"runtime overrides changed for job tick", timeout=30)
        # The API's read model follows (job.updated); then no firing may start any more, but one
        # claimed at the change may still start within the second.
        m, _ = ws.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "tick"
                             and not m["job"]["enabled"], timeout=30)
        late = []

        def late_start(m):
            if is_run("run.started", "tick")(m) and at_ms(m["run"]["scheduled_for"]) > changed + 1000:
                late.append(m["run"])
            return False
        with self.assertRaises((AssertionError, TimeoutError)):  # three quiet seconds: as it must be
            ws.recv_until(late_start, timeout=3)
        self.assertEqual(late, [], "firings after the job was disabled")

        self.q("BEGIN; DELETE FROM job_overrides WHERE job = 'tick'; "
               "SELECT pg_notify('cronvisor_overrides', 'tick'); COMMIT")
        enabled = time.time() * 1000
        ws.recv_until(lambda m: is_run("run.started", "tick")(m) and
                      at_ms(m["run"]["scheduled_for"]) > enabled, timeout=30)
        for d in nodes:
            self.assertEqual(d.stop(), 0)


CONFIG_MANUAL = CONFIG_HEAD + """  - name: short
    schedule: manual
    concurrency: allow
    command: 'sleep 0.5; echo done'
  - name: exclusive
    schedule: manual
    concurrency: forbid
    command: 'sleep 30'
  - name: newest
    schedule: manual
    concurrency: replace
    command: 'sleep 30'
  - name: nightly
    schedule: "0 3 * * *"
    command: 'true'
{extra}"""

FORBID_TICK = """
  - name: slow_tick
    schedule: "* * * * * *"
    concurrency: forbid
    command: 'sleep 2.5'
"""

CATCH_UP_JOB = """
  - name: every_minute
    schedule: "* * * * *"
    catch_up: 10m
    command: 'echo "$CRONVISOR_SCHEDULED_FOR $CRONVISOR_TRIGGER $CRONVISOR_INSTANCE" >> {ran}; sleep 0.5'
"""


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class ClusterViews(unittest.TestCase):
    """Two (or three) daemons on one database: one server for the class, a database per test."""

    @classmethod
    def setUpClass(cls):
        cls.pg = pgserver.PgServer().start()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def setUp(self):
        ClusterViews.n += 1
        self.db = "views%d" % ClusterViews.n
        self.dsn = self.pg.create_db(self.db)
        self.shared = tempfile.mkdtemp(prefix="cv-cluster-")
        self.addCleanup(shutil.rmtree, self.shared, True)
        self.ran = os.path.join(self.shared, "ran.log")

    def q(self, sql):
        return self.pg.query(self.db, sql)

    def config(self, name, extra=""):
        return CONFIG_MANUAL.format(name=name, dsn=self.dsn, ran=self.ran,
                                    extra=extra.format(ran=self.ran))

    def daemon(self, name, start=True, extra=""):
        d = Daemon(self.config(name, extra))
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        return d.start() if start else d

    def two(self):
        a, b = self.daemon("node-1"), self.daemon("node-2")
        for d in (a, b):
            d.wait_log(r"running: instance node-\d")
            d.wait_log(r"listening to the other instances$")  # sees the other's events from here
        return a, b

    def ws(self, d):
        ws = WsClient(d.port())
        self.addCleanup(ws.close)
        return ws

    def trigger(self, d, job, expect=202):
        r = d.api("POST", "/api/jobs/%s/trigger" % job)
        self.assertEqual(r.status, expect, r)
        return r.json

    def test_websocket_clients_of_one_instance_see_the_runs_of_another_once(self):
        a, b = self.two()
        wa, wb = self.ws(a), self.ws(b)
        run_id = self.trigger(a, "short")["run_id"]
        m, _ = wb.recv_until(is_run("run.started", run_id=run_id), timeout=30)
        self.assertEqual((m["run"]["instance"], m["run"]["status"]), ("node-1", "RUNNING"))
        m, _ = wb.recv_until(is_run("run.finished", run_id=run_id), timeout=10)
        self.assertEqual((m["run"]["instance"], m["run"]["status"]), ("node-1", "SUCCESS"))
        self.assertEqual(m["run"]["exit_code"], 0)
        # The instance that ran it tells its own clients once, not again from the database.
        _, before = wa.recv_until(is_run("run.finished", run_id=run_id), timeout=10)
        self.assertEqual(len([e for e in before if is_run("run.started", run_id=run_id)(e)]), 1)
        marker = self.trigger(b, "short")["run_id"]  # nothing of run_id may follow on a's side
        _, more = wa.recv_until(is_run("run.finished", run_id=marker), timeout=10)
        self.assertEqual([e for e in more if e.get("run", {}).get("id") == run_id], [])
        # B's /metrics count its own runs only (A's run is not among them).
        wb.recv_until(is_run("run.finished", run_id=marker), timeout=10)
        self.assertEqual(b.api("GET", "/api/jobs/short").json["last_run"]["id"], marker)
        metrics = b.api("GET", "/metrics").body.decode()
        self.assertIn('cronvisor_job_runs_total{job="short",status="SUCCESS"} 1', metrics)

    def test_enable_and_schedule_changes_on_one_instance_reach_the_api_of_another_within_a_second(self):
        a, b = self.two()
        wa, wb = self.ws(a), self.ws(b)
        self.assertTrue(b.api("GET", "/api/jobs/nightly").json["enabled"])
        r = a.api("POST", "/api/jobs/nightly/disable")
        self.assertEqual(r.status, 200, r)
        t0 = time.monotonic()
        wb.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "nightly"
                      and not m["job"]["enabled"], timeout=30)
        self.assertLess(time.monotonic() - t0, 1.0)
        job = b.api("GET", "/api/jobs/nightly").json
        self.assertFalse(job["enabled"])
        self.assertIsNone(job["next_fire"])
        self.assertIn("enabled", job["overridden"])

        r = a.api("PUT", "/api/jobs/nightly/schedule", body={"schedule": "30 4 * * *"})
        self.assertEqual(r.status, 200, r)
        t0 = time.monotonic()
        wb.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "nightly"
                      and m["job"]["schedule"] == "30 4 * * *", timeout=30)
        self.assertLess(time.monotonic() - t0, 1.0)
        r = a.api("POST", "/api/jobs/nightly/enable")
        self.assertEqual(r.status, 200, r)
        wb.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "nightly"
                      and m["job"]["enabled"], timeout=30)
        job = b.api("GET", "/api/jobs/nightly").json
        self.assertEqual(job["schedule"], "30 4 * * *")
        self.assertEqual(job["next_fire"][11:16], "04:30")
        self.assertEqual(schema_errors(job, response_schema("/api/jobs/{name}", "get", 200)), [])
        # The instance where the change was made published it once: the database's echo of it
        # changes nothing there. b's change is the marker that a's events have all arrived.
        r = b.api("POST", "/api/jobs/short/disable")
        self.assertEqual(r.status, 200, r)
        _, before = wa.recv_until(lambda m: m.get("type") == "job.updated" and
                                  m["job"]["name"] == "short" and not m["job"]["enabled"], timeout=30)
        nightly = [(e["job"]["enabled"], e["job"]["schedule"]) for e in before
                   if e.get("type") == "job.updated" and e["job"]["name"] == "nightly"]
        self.assertEqual(nightly, [(False, "0 3 * * *"), (False, "30 4 * * *"), (True, "30 4 * * *")])

    def test_forbid_holds_across_instances(self):
        a, b = self.two()
        wb = self.ws(b)
        first = self.trigger(a, "exclusive")["run_id"]
        r = b.api("POST", "/api/jobs/exclusive/trigger")
        self.assertEqual(r.status, 409, r)
        why = ("skipped: run %d of 'exclusive' is still active on instance node-1 "
               "(concurrency: forbid)" % first)
        self.assertEqual(r.json["error"]["message"], why)
        self.assertEqual(self.q("SELECT status, error FROM runs WHERE job = 'exclusive' AND "
                                "instance = 'node-2'"), [["SKIPPED", why]])
        # b's API cancels a's run (a does it, asked through the database); then b may run the job.
        wb.recv_until(is_run("run.started", run_id=first), timeout=30)
        r = b.api("POST", "/api/runs/%d/cancel" % first)
        self.assertEqual(r.status, 202, r)
        a.wait_log(r"run %d: cancel asked by api:anonymous" % first, timeout=30)
        m, _ = wb.recv_until(is_run("run.finished", run_id=first), timeout=10)
        self.assertEqual((m["run"]["status"], m["run"]["error"]), ("CANCELLED", "cancelled by api:anonymous"))
        second = self.trigger(b, "exclusive")
        self.assertEqual(second["status"], "RUNNING")
        self.assertEqual(self.q("SELECT instance FROM runs WHERE id = %d" % second["run_id"]),
                         [["node-2"]])

    def test_forbid_holds_across_instances_for_cron_firings(self):
        a = self.daemon("node-1", extra=FORBID_TICK)
        b = self.daemon("node-2", extra=FORBID_TICK)
        for d in (a, b):
            d.wait_log(r"running: instance node-\d")
        ws = self.ws(a)
        first = (int(time.time()) + 2) * 1000
        done = {}

        def ten_instants(m):
            if is_run("run.finished", "slow_tick")(m) and at_ms(m["run"]["scheduled_for"]) >= first:
                done[at_ms(m["run"]["scheduled_for"])] = m["run"]
            return len(done) >= 10
        ws.recv_until(ten_instants, timeout=30)
        for d in (a, b):
            self.assertEqual(d.stop(), 0)
        rows = self.q("SELECT scheduled_for, status, started_at, finished_at, instance, error FROM runs"
                      " WHERE job = 'slow_tick' AND scheduled_for >= %d ORDER BY scheduled_for" % first)
        # every instant once: run, or SKIPPED because a run was active on either instance
        instants = [int(r[0]) for r in rows]
        self.assertEqual(instants, sorted(set(instants)))
        self.assertEqual(instants, list(range(first, instants[-1] + 1, 1000)))
        ran = [(int(r[2]), int(r[3]), r[4]) for r in rows if r[1] != "SKIPPED"]
        skipped = [r for r in rows if r[1] == "SKIPPED"]
        self.assertTrue(ran and skipped)
        # never two at once, whichever instance ran them
        overlaps = [(x, y) for x, y in zip(ran, ran[1:]) if y[0] < x[1]]
        self.assertEqual(overlaps, [])
        for r in skipped:
            self.assertRegex(r[5], r"^skipped: (a run of 'slow_tick' is still active|run \d+ of "
                             r"'slow_tick' is still active on instance node-\d) \(concurrency: forbid\)$")

    def test_a_run_that_ended_while_an_instance_was_cut_off_from_the_database_ends_there_too(self):
        # node-1 connects as its own role, so that it alone can be cut off.
        self.q("CREATE ROLE node_a LOGIN SUPERUSER")
        a = Daemon(self.config("node-1").replace(self.dsn, self.dsn.replace("postgres@", "node_a@")))
        self.addCleanup(lambda: a.proc and a.proc.poll() is None and a.kill9())
        a.start()
        b = self.daemon("node-2")
        for d in (a, b):
            d.wait_log(r"running: instance node-\d")
            d.wait_log(r"listening to the other instances$")  # sees the other's events from here
        wa, wb = self.ws(a), self.ws(b)
        run_id = self.trigger(b, "short")["run_id"]
        wa.recv_until(is_run("run.started", run_id=run_id), timeout=30)
        self.q("ALTER ROLE node_a NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE usename = 'node_a'")
        a.wait_log(r"lost the connection to PostgreSQL", timeout=30)
        wb.recv_until(is_run("run.finished", run_id=run_id), timeout=10)  # a was told nothing
        self.q("ALTER ROLE node_a LOGIN")
        a.wait_log(r"listening to the other instances again", timeout=15)
        m, _ = wa.recv_until(is_run("run.finished", run_id=run_id), timeout=30)
        self.assertEqual(m["run"]["status"], "SUCCESS")
        self.assertEqual(a.api("GET", "/api/jobs/short").json["running"], 0)

    def test_replace_cancels_the_run_on_the_other_instance(self):
        a, b = self.two()
        wb = self.ws(b)
        old = self.trigger(a, "newest")["run_id"]
        wb.recv_until(is_run("run.started", run_id=old), timeout=30)
        new = self.trigger(b, "newest")["run_id"]
        a.wait_log(r"run %d: cancel asked by run %d on instance node-2" % (old, new), timeout=30)
        m, _ = wb.recv_until(is_run("run.finished", run_id=old), timeout=10)
        self.assertEqual(m["run"]["status"], "CANCELLED")
        self.assertEqual(m["run"]["error"],
                         "cancelled by run %d on instance node-2 (concurrency: replace)" % new)
        # the new run goes on (its RUNNING record may still be on its way)
        self.assertIn(self.q("SELECT status FROM runs WHERE id = %d" % new), [[["QUEUED"]], [["RUNNING"]]])

    def test_instances_starting_together_catch_up_a_missed_firing_once(self):
        # The schema first (a --once run migrates), then hold the claims table so that every
        # daemon finds the firing missed before any of them records its catch-up.
        path = os.path.join(self.shared, "once.yaml")
        with open(path, "w") as f:
            f.write(self.config("migrate"))
        r = run_cli("run", "-c", path, "--once", "nightly", cwd=self.shared)
        self.assertEqual(r.returncode, 0, r.stderr)
        lock = subprocess.Popen([pgserver.PSQL, "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                                 "postgres", "-d", self.db, "-qAt", "-v", "ON_ERROR_STOP=1"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: lock.poll() is None and lock.kill())
        lock.stdin.write("BEGIN;\nLOCK TABLE firing_claims IN EXCLUSIVE MODE;\nSELECT 'locked';\n")
        lock.stdin.flush()
        self.assertEqual(lock.stdout.readline().strip(), "locked")
        nodes = [self.daemon("node-%d" % i, start=False, extra=CATCH_UP_JOB) for i in (1, 2, 3)]
        for d in nodes:
            d.start()
        caught = [d.wait_log(r"job 'every_minute': catching up the firing missed at (\d+)")
                  for d in nodes]
        lock.stdin.write("COMMIT;\n")
        lock.stdin.close()
        self.assertEqual(lock.wait(10), 0)
        instants = {int(m.group(1)) * 1000 for m in caught}  # logged in seconds
        # Each claimed it; one won and ran it, the others were told it was taken.
        winners = 0
        for d in nodes:
            m = d.wait_log(r"job every_minute: the firing at \d+ was claimed by another instance|"
                           r"run \d+ job=every_minute status=(\w+)", timeout=10)
            winners += m.group(1) is not None
            if m.group(1):
                self.assertEqual(m.group(1), "SUCCESS")
        self.assertEqual(winners, len(instants))
        rows = self.q("SELECT scheduled_for, COUNT(*) FROM runs WHERE job = 'every_minute' "
                      "AND \"trigger\" = 'catch_up' GROUP BY scheduled_for")
        self.assertEqual(sorted(int(s) for s, n in rows), sorted(instants))
        self.assertTrue(all(n == "1" for s, n in rows))
        with open(self.ran) as f:
            executed = [line.split()[0] for line in f if "catch_up" in line]
        self.assertEqual(len(executed), len(set(executed)), executed)
        self.assertEqual(len(executed), len(instants))

    def test_instances_list_what_each_is_running(self):
        a, b = self.two()
        wa = self.ws(a)
        run_id = self.trigger(b, "exclusive")["run_id"]
        wa.recv_until(is_run("run.started", run_id=run_id), timeout=30)
        # a's API counts b's run among the job's running ones; a's /metrics only its own
        self.assertEqual(a.api("GET", "/api/jobs/exclusive").json["running"], 1)
        metrics = a.api("GET", "/metrics").body.decode()
        self.assertIn('cronvisor_job_running{job="exclusive"} 0', metrics)
        self.assertIn('cronvisor_job_running{job="exclusive"} 1', b.api("GET", "/metrics").body.decode())
        # every instance's heartbeat reaches every instance's clients
        seen = set()
        wa.recv_until(lambda m: m.get("type") == "instance.heartbeat" and
                      not seen.add((m["instance"]["id"], m["instance"]["self"])) and len(seen) == 2,
                      timeout=30)
        self.assertEqual(seen, {("node-1", True), ("node-2", False)})
        r = a.api("GET", "/api/instances")
        self.assertEqual(schema_errors(r.json, response_schema("/api/instances", "get", 200)), [])
        self.assertEqual(r.json["heartbeat_timeout_ms"], 3000)
        by_id = {i["id"]: i for i in r.json["instances"]}
        self.assertEqual([x["id"] for x in by_id["node-2"]["running"]], [run_id])
        self.assertEqual(by_id["node-2"]["running"][0]["job"], "exclusive")
        self.assertEqual(by_id["node-1"]["running"], [])
        self.assertTrue(by_id["node-2"]["alive"] and by_id["node-1"]["self"])


if __name__ == "__main__":
    main()

"""The PostgreSQL outage spool (issue 7): while the database is unreachable the daemon keeps
running jobs, their records go to a spool file on disk (surviving a restart of the daemon during
the outage) and are written back in order once the database returns. /readyz, the store.changed
event and /metrics say the store is degraded meanwhile. Needs a PostgreSQL 15 server (started
here, see pgserver.py)."""
import calendar
import os
import re
import time
import unittest

import pgserver
from cvtest import Daemon, WsClient, main, response_schema, schema_errors

# tick runs every second even when its firing cannot be claimed; its exit code, items and output
# follow from its scheduled second, so each record can be checked against the run that made it.
# skip (the default choice) records its unclaimable firings SKIPPED without running them.
CONFIG = """
instance: outage-a
storage:
  postgres: "{dsn}"
  spool_dir: "{dir}/spool"
server:
  listen: "127.0.0.1:0"
defaults:
  shutdown_grace: 5s
jobs:
  - name: tick
    schedule: "* * * * * *"
    concurrency: allow
    on_store_outage: run
    command: ["sh", "{dir}/tick.sh"]
  - name: skip
    schedule: "* * * * * *"
    command: ["sh", "{dir}/skip.sh"]
  - name: manual
    schedule: manual
    command: 'echo "manual run $$CRONVISOR_RUN_ID"'
"""

TICK = """s=$(date -u -d "$CRONVISOR_SCHEDULED_FOR" +%s)
echo "$s" >> "$(dirname "$0")/ticks.log"
echo "tick for $CRONVISOR_SCHEDULED_FOR"
echo "{\\"items_processed\\": $((s % 1000))}" >&"$CRONVISOR_RESULT_FD"
if [ $((s % 5)) -eq 0 ]; then exit 4; fi
"""

SKIP = """date -u -d "$CRONVISOR_SCHEDULED_FOR" +%s >> "$(dirname "$0")/skips.log"
"""

UNCLAIMED = r"job tick: the store is unreachable: run -\d+ starts unclaimed"
TICK_DONE = r"run -?\d+ job=tick status=(SUCCESS|FAILED) "


def instants(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(line) * 1000 for line in f if line.strip()]


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class PgOutage(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("outage")

    def q(self, sql):
        return self.pg.query("outage", sql)

    def daemon(self, workdir=None):
        d = Daemon("", workdir=workdir)
        with open(d.config_path, "w") as f:
            f.write(CONFIG.format(dsn=self.dsn, dir=d.tmp))
        for name, text in (("tick.sh", TICK), ("skip.sh", SKIP)):
            with open(os.path.join(d.tmp, name), "w") as f:
                f.write(text)
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        return d.start()

    def readyz(self, d):
        r = d.api("GET", "/readyz")
        self.assertEqual(schema_errors(r.json, response_schema("/readyz", "GET", r.status)), [])
        return r

    def store_event(self, ws, state):
        m, _ = ws.recv_until(lambda m: m.get("type") == "store.changed" and
                             m["store"]["state"] == state, timeout=30)
        self.assertEqual(schema_errors(m, {"$ref": "#/components/schemas/StoreChangedEvent"}), [])
        return m["store"]

    def test_runs_of_an_outage_reach_the_database_in_order_across_a_restart(self):
        d = self.daemon()
        d.wait_log(r"running: instance outage-a")
        for _ in range(3):
            d.wait_log(r"run \d+ job=tick status=(SUCCESS|FAILED) ")
        self.assertEqual(self.readyz(d).json, {"status": "ready", "store": "up", "spooled": 0})
        jobs = d.api("GET", "/api/jobs")
        self.assertEqual(schema_errors(jobs.json, response_schema("/api/jobs", "GET", 200)), [])
        self.assertEqual({j["name"]: j["on_store_outage"] for j in jobs.json["jobs"]},
                         {"tick": "run", "skip": "skip", "manual": "skip"})
        ws = WsClient(d.port())  # the stream publishes changes of the state

        # The database goes away: the store says so, and jobs keep running.
        self.pg.halt()
        halted = int(time.time() * 1000)
        d.wait_log(r"the store is degraded; run records go to the outage spool")
        self.store_event(ws, "degraded")
        for _ in range(12):
            d.wait_log(UNCLAIMED)
        r = self.readyz(d)
        self.assertEqual(r.status, 503)
        self.assertEqual((r.json["status"], r.json["store"]), ("degraded", "degraded"))
        self.assertGreater(r.json["spooled"], 12)
        self.assertEqual(r.json["error"]["code"], "store_degraded")
        m = re.search(r"^cronvisor_store_up (\d)$", d.api("GET", "/metrics").body.decode(), re.M)
        self.assertEqual(m.group(1), "0")
        # A manual trigger runs here, under a provisional id until the database assigns one.
        t = d.api("POST", "/api/jobs/manual/trigger")
        self.assertEqual(t.status, 202, t)
        provisional = t.json["run_id"]
        self.assertLess(provisional, 0)
        d.wait_log(r"run %d job=manual status=SUCCESS " % provisional)
        ws.close()

        # A restart during the outage: right after a tick finished, so no run is cut short.
        d.wait_log(TICK_DONE)
        self.assertEqual(d.stop(), 0)
        spool = os.path.join(d.tmp, "spool", "pg-spool-outage-a.log")
        self.assertGreater(os.path.getsize(spool), 16)  # the records wait on disk
        d = self.daemon(workdir=d.tmp)
        d.wait_log(r"the outage spool .* holds \d+ record\(s\) not yet in the database")
        d.wait_log(r"starting while the database is unreachable")
        d.wait_log(r"running: instance outage-a")
        self.assertEqual(self.readyz(d).json["store"], "degraded")  # degraded from the start
        ws = WsClient(d.port())
        for _ in range(12):
            d.wait_log(UNCLAIMED)
        self.assertEqual(self.readyz(d).status, 503)

        # The database returns: the spool is written back before anything new.
        resumed = int(time.time() * 1000)  # firings before this one cannot have been claimed
        self.pg.resume()
        m = d.wait_log(r"the outage spool is written back: (\d+) record\(s\) in .*", timeout=30)
        print("\n" + m.group(0))
        self.store_event(ws, "up")
        self.assertEqual(self.readyz(d).json, {"status": "ready", "store": "up", "spooled": 0})
        for _ in range(3):  # claimed runs again, with ids from the database
            d.wait_log(r"run \d+ job=tick status=(SUCCESS|FAILED) ")
        ws.close()
        self.assertEqual(d.stop(), 0)
        self.assertEqual(os.path.getsize(spool), 16)  # empty again

        # Every tick that ran is in the database exactly once, with its own data.
        ran = instants(os.path.join(d.tmp, "ticks.log"))
        self.assertEqual(len(ran), len(set(ran)), "a firing ran twice")
        rows = self.q("SELECT id, scheduled_for, status, exit_code, items_processed,"
                      " translate(output_tail, E'\\n|', '  '),"
                      " finished_at, started_at, ckey IS NOT NULL FROM runs WHERE job = 'tick'"
                      " ORDER BY id")
        by_instant = {}
        for row in rows:
            sched = int(row[1])
            self.assertNotIn(sched, by_instant, "firing %d recorded twice" % sched)
            by_instant[sched] = row
        self.assertEqual(sorted(by_instant), sorted(ran), "recorded firings != executed firings")
        outage = [s for s in ran if halted < s < resumed]
        self.assertGreaterEqual(len(outage), 24)
        gaps = [b - a for a, b in zip(outage, outage[1:]) if b - a != 1000]
        self.assertLessEqual(len(gaps), 1, "firings missing besides the restart: %r" % gaps)
        self.assertTrue(all(g <= 6000 for g in gaps), gaps)
        for s in ran:
            _, _, status, exit_code, items, output, finished, started, keyed = by_instant[s]
            sec = s // 1000
            want_exit = 4 if sec % 5 == 0 else 0
            self.assertEqual((status, int(exit_code)), ("FAILED" if want_exit else "SUCCESS", want_exit))
            self.assertEqual(int(items), sec % 1000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
            self.assertIn("tick for " + stamp, output)
            self.assertGreaterEqual(int(finished), int(started))
            self.assertGreater(int(started), 0)
            if s in outage:
                self.assertEqual(keyed, "t", "run %d did not come through the spool" % s)
        # In order: ids follow the scheduled instants, before, during and after the outage.
        scheduled = [int(row[1]) for row in rows]
        self.assertEqual(scheduled, sorted(scheduled))
        self.assertEqual(self.q("SELECT COUNT(*) FROM runs WHERE status IN ('RUNNING', 'QUEUED')"),
                         [["0"]])

        # The manual run is recorded with the id the database gave it, and its own output.
        manual = self.q("SELECT id, status, \"trigger\", translate(output_tail, E'\\n|', '  ')"
                        " FROM runs WHERE job = 'manual'")
        self.assertEqual(len(manual), 1)
        self.assertGreater(int(manual[0][0]), 0)
        self.assertEqual(manual[0][1], "SUCCESS")
        self.assertTrue(manual[0][2].startswith("api:"), manual)
        self.assertIn("manual run %d" % provisional, manual[0][3])
        self.assertEqual(self.q("SELECT run_id FROM audit WHERE action = 'run.trigger'"),
                         [[manual[0][0]]])  # the audit record points at the real id

        # skip: its unclaimable firings did not run, and are recorded SKIPPED, saying why.
        skipped_ran = [s for s in instants(os.path.join(d.tmp, "skips.log")) if halted < s < resumed]
        self.assertEqual(skipped_ran, [])
        skipped = self.q("SELECT scheduled_for, error FROM runs WHERE job = 'skip' AND"
                         " status = 'SKIPPED' ORDER BY id")
        self.assertGreaterEqual(len(skipped), 20)
        self.assertTrue(all("on_store_outage: skip" in e for _, e in skipped))
        self.assertEqual(len({s for s, _ in skipped}), len(skipped))


if __name__ == "__main__":
    main()

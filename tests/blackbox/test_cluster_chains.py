"""Job chains on several daemons sharing one PostgreSQL database: the follow-up of a run's outcome
runs once across the instances, claimed (firing_claims, under the target job and the parent run)
like a firing. Needs a PostgreSQL 15 server (started here, see pgserver.py)."""
import os
import shutil
import tempfile
import time
import unittest

import pgserver
from cvtest import Daemon, main

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
    command: "true"
    on_complete: [follow]
  - name: follow
    schedule: manual
    concurrency: allow
    command: 'echo "$CRONVISOR_RUN_ID {name}" >> {ran}'
  - name: held
    schedule: manual
    command: 'i=0; while [ ! -e {shared}/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done'
    on_success: [follow]
"""


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class ClusterChains(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.dsn = self.pg.create_db("chains")
        self.shared = tempfile.mkdtemp(prefix="cv-chains-")
        self.addCleanup(shutil.rmtree, self.shared, True)
        self.ran = os.path.join(self.shared, "ran.log")

    def q(self, sql):
        return self.pg.query("chains", sql)

    def daemon(self, name):
        d = Daemon(CONFIG.format(name=name, dsn=self.dsn, ran=self.ran, shared=self.shared))
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        return d.start()

    def test_each_firing_of_two_daemons_is_followed_exactly_once(self):
        nodes = [self.daemon("node-%d" % i) for i in (1, 2)]
        for d in nodes:
            d.wait_log(r"running: instance node-\d")
        # Wait until 8 follow-ups are recorded finished, then stop both and count.
        deadline = time.monotonic() + 60
        while True:
            n = int(self.q("SELECT COUNT(*) FROM runs WHERE job = 'follow' AND status = 'SUCCESS'")[0][0])
            if n >= 8:
                break
            self.assertLess(time.monotonic(), deadline, "fewer than 8 chained runs in 60s")
            time.sleep(0.2)
        for d in nodes:
            self.assertEqual(d.stop(), 0)
        parents = {int(r[0]) for r in self.q("SELECT id FROM runs WHERE job = 'tick' AND status = 'SUCCESS'")}
        per_parent = self.q("SELECT \"trigger\", COUNT(*) FROM runs WHERE job = 'follow' GROUP BY \"trigger\"")
        self.assertTrue(per_parent)
        for trigger, count in per_parent:
            self.assertEqual(int(count), 1, "%s followed %s times" % (trigger, count))
            self.assertIn(int(trigger.split(":")[1]), parents)
        self.assertEqual(len(open(self.ran).read().splitlines()), len(per_parent))
        # both instances ran firings, each followed on the instance that ran it
        self.assertEqual(set(r[0] for r in self.q("SELECT DISTINCT instance FROM runs WHERE job = 'tick'")),
                         {"node-1", "node-2"})

    def test_a_follow_up_claimed_elsewhere_is_not_run_again(self):
        d = self.daemon("node-1")
        d.wait_log(r"running: instance node-1")
        r = d.api("POST", "/api/jobs/held/trigger")
        self.assertEqual(r.status, 202, r)
        parent = r.json["run_id"]
        # Another instance claimed this run's follow-up first (as a second daemon reacting to
        # the same outcome would): this one loses the claim and does not run it.
        self.q("INSERT INTO firing_claims (job, scheduled_for, instance) VALUES ('follow', %d, 'node-2')"
               % -parent)
        open(os.path.join(self.shared, "go"), "w").close()
        d.wait_log(r"run %d job=held status=SUCCESS" % parent)
        d.wait_log(r"job follow: the firing at \d+ was claimed by another instance")
        self.assertEqual(self.q("SELECT COUNT(*) FROM runs WHERE job = 'follow' AND \"trigger\" = "
                                "'chain:%d'" % parent)[0][0], "0")


if __name__ == "__main__":
    main()

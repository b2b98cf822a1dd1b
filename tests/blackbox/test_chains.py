"""Job chains (on_success, on_failure, on_complete): a run's final outcome, after its last retry,
fires the named jobs once with trigger "chain:<run id>"; the API links the runs both ways; `check`
(and `run`) refuse unknown targets and cycles, naming the cycle."""
import os
import re
import tempfile
import time
import unittest

from cvtest import Daemon, main, run_cli

CONFIG = """
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
jobs:
  # fails twice, then succeeds: only the third attempt's outcome fires a chain
  - name: flaky
    schedule: manual
    retries: { max: 2, backoff: 50ms, backoff_max: 50ms }
    command: 'n=$(cat {dir}/flaky 2>/dev/null || echo 0); n=$((n+1)); echo $n > {dir}/flaky; [ $n -ge 3 ]'
    on_success: [ok]
    on_failure: [bad]
    on_complete: [always]
  - name: broken
    schedule: manual
    command: "exit 3"
    on_success: [ok]
    on_failure: [bad]
    on_complete: [always, bad]
  - name: partial
    schedule: manual
    command: 'echo "{\\"items_processed\\": 2, \\"items_failed\\": 1}" >&$CRONVISOR_RESULT_FD'
    on_success: [ok]
    on_failure: [bad]
    on_complete: [always]
  - name: ok
    schedule: manual
    command: "true"
  - name: bad
    schedule: manual
    command: "true"
  - name: always
    schedule: manual
    command: "true"
  - name: gated
    schedule: manual
    command: "true"
    on_complete: [off]
  - name: "off"
    schedule: manual
    command: "true"
"""


def finished(d, *jobs):
    """Waits for a finished run of each job, in any order; returns {job: (run id, status)}."""
    rx = r"run (\d+) job=(%s) .*status=(\w+)(?: |$)" % "|".join(re.escape(j) for j in jobs)
    seen = {}
    while len(seen) < len(jobs):
        m = d.wait_log(rx)
        if m.group(3) not in ("QUEUED", "RUNNING"):
            seen.setdefault(m.group(2), (int(m.group(1)), m.group(3)))
    return seen


def runs(d, job):
    return d.db("SELECT id, status, \"trigger\", attempt FROM runs WHERE job = ? ORDER BY id", (job,))


class Chains(unittest.TestCase):
    def test_the_final_attempt_fires_on_success_and_on_complete_once_and_never_on_failure(self):
        with Daemon(CONFIG) as d:
            d.port()
            self.assertEqual(d.api("POST", "/api/jobs/flaky/trigger").status, 202)
            # on_complete and on_success are fired together, after the third attempt
            done = finished(d, "ok", "always")
            (ok_id, ok_status), (always_id, always_status) = done["ok"], done["always"]
            self.assertEqual((ok_status, always_status), ("SUCCESS", "SUCCESS"))
            flaky = runs(d, "flaky")
            self.assertEqual([(r["status"], r["attempt"]) for r in flaky],
                             [("FAILED", 1), ("FAILED", 2), ("SUCCESS", 3)])
            final = flaky[-1]["id"]
            self.assertEqual([(r["id"], r["trigger"]) for r in runs(d, "ok")], [(ok_id, "chain:%d" % final)])
            self.assertEqual([r["trigger"] for r in runs(d, "always")], ["chain:%d" % final])
            # The failed attempts fired nothing: on_failure's target never ran (its fire would
            # have been posted with the attempt's end, long before ok's run finished).
            self.assertEqual(runs(d, "bad"), [])
            self.assertFalse([r for r in d.log if "fires bad" in r.get("msg", "")])

            # The API links the runs both ways.
            child = d.api("GET", "/api/runs/%d" % ok_id).json
            self.assertEqual(child["chained_from"], {"run": final, "job": "flaky", "status": "SUCCESS"})
            self.assertEqual(child["chained"], [])
            parent = d.api("GET", "/api/runs/%d" % final).json
            self.assertIsNone(parent["chained_from"])
            self.assertEqual(sorted((c["run"], c["job"]) for c in parent["chained"]),
                             sorted([(ok_id, "ok"), (always_id, "always")]))
            first = d.api("GET", "/api/runs/%d" % flaky[0]["id"]).json
            self.assertEqual(first["chained"], [])
            job = d.api("GET", "/api/jobs/flaky").json
            self.assertEqual(job["chains"], {"on_success": ["ok"], "on_failure": ["bad"],
                                             "on_complete": ["always"]})

    def test_a_failure_fires_on_failure_and_on_complete_and_a_target_named_twice_runs_once(self):
        with Daemon(CONFIG) as d:
            d.port()
            r = d.api("POST", "/api/jobs/broken/trigger")
            self.assertEqual(r.status, 202)
            parent = r.json["run_id"]
            done = finished(d, "bad", "always")
            self.assertEqual((done["bad"][1], done["always"][1]), ("SUCCESS", "SUCCESS"))
            self.assertEqual([r["trigger"] for r in runs(d, "bad")], ["chain:%d" % parent])
            self.assertEqual([r["trigger"] for r in runs(d, "always")], ["chain:%d" % parent])
            self.assertEqual(runs(d, "ok"), [])
            self.assertEqual(len(d.api("GET", "/api/runs/%d" % parent).json["chained"]), 2)

    def test_partial_fires_on_complete_only(self):
        with Daemon(CONFIG) as d:
            d.port()
            parent = d.api("POST", "/api/jobs/partial/trigger").json["run_id"]
            self.assertEqual(d.run_finished("partial"), (parent, "PARTIAL"))
            self.assertEqual(d.run_finished("always")[1], "SUCCESS")
            self.assertEqual([r["trigger"] for r in runs(d, "always")], ["chain:%d" % parent])
            # fired together with always, had they followed PARTIAL
            self.assertEqual(runs(d, "ok") + runs(d, "bad"), [])

    def test_a_disabled_target_is_not_run(self):
        with Daemon(CONFIG) as d:
            d.port()
            self.assertEqual(d.api("POST", "/api/jobs/off/disable").status, 200)
            r = d.api("POST", "/api/jobs/gated/trigger")
            d.wait_log(r"chain:%d firing of job off not run: the job is disabled" % r.json["run_id"])
            self.assertEqual(runs(d, "off"), [])


def write(tmp, text):
    path = os.path.join(tmp, "c.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Check(unittest.TestCase):
    def test_a_cycle_is_refused_and_named(self):
        path = write(tempfile.mkdtemp(), """jobs:
  - name: a
    schedule: manual
    command: "true"
    on_success: [b]
  - name: b
    schedule: manual
    command: "true"
    on_failure: [c]
  - name: c
    schedule: manual
    command: "true"
    on_complete: [a]
  - name: d
    schedule: manual
    command: "true"
    on_complete: [d]
""")
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("%s:5:18: job 'a': chain cycle a → b → c → a" % path, r.stderr)
        self.assertIn("%s:17:19: job 'd': chain cycle d → d" % path, r.stderr)
        self.assertIn("2 error(s)", r.stderr)
        # run refuses it too, before starting anything
        r = run_cli("run", "-c", path, timeout=30)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("chain cycle a → b → c → a", r.stderr)

    def test_an_unknown_target_is_refused_with_a_suggestion(self):
        path = write(tempfile.mkdtemp(), """jobs:
  - name: backup
    schedule: manual
    command: "true"
    on_success: [upload, uplod]
  - name: upload
    schedule: manual
    command: "true"
""")
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, re.escape(path) + r":5:26: job 'backup': on_success names unknown job "
                         r"'uplod' — did you mean 'upload'\?")

    def test_a_chain_without_cycle_is_valid(self):
        path = write(tempfile.mkdtemp(), """jobs:
  - name: a
    schedule: manual
    command: "true"
    on_success: [b, c]
  - name: b
    schedule: manual
    command: "true"
    on_complete: [c]
  - name: c
    schedule: manual
    command: "true"
""")
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()

"""The HTTP API end to end: every endpoint against the real daemon, responses checked against
proto/openapi.yaml."""
import hashlib
import os
import shutil
import subprocess
import unittest

from cvtest import Daemon, WsClient, main, response_schema, schema_errors

VIEWER, OPERATOR, ADMIN = "viewer-secret-1", "operator-secret-2", "admin-secret-3"

CONFIG = """
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
auth:
  tokens:
    - name: dash
      role: viewer
      token: ${VIEWER_TOKEN}
    - name: ops
      role: operator
      token: %s
    - name: root
      role: admin
      sha256: %s
jobs:
  - name: quick
    title: Quick one
    description: Says hello and reports items
    schedule: "0 3 * * *"
    timezone: Europe/Stockholm
    command: 'echo "hello $$CRONVISOR_RUN_ID"; echo "{\\"items_processed\\": 7, \\"items_failed\\": 0}" >&3; true'
  - name: slow
    schedule: manual
    command: 'echo started; sleep 30'
  - name: frozen
    schedule: "@hourly"
    locked: true
    command: 'true'
  - name: hook
    schedule: manual
    http:
      url: http://127.0.0.1:1/never?key=${HOOK_SECRET}
      headers:
        X-Api-Key: ${HOOK_SECRET}
""" % (OPERATOR, hashlib.sha256(ADMIN.encode()).hexdigest())

ENV = {"VIEWER_TOKEN": VIEWER, "HOOK_SECRET": "hook-secret-value-42"}


class ApiTest(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG, env=ENV).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def call(self, method, path, doc_path=None, body=None, token=ADMIN, expect=200, raw=None):
        """A request whose status must be `expect` and whose body must match the document."""
        r = self.d.api(method, path, body=body, token=token, raw=raw)
        self.assertEqual(r.status, expect, r)
        self.assertNotIn(b"hook-secret-value-42", r.body)
        self.assertNotIn(OPERATOR.encode(), r.body)
        schema = response_schema(doc_path or path.split("?")[0], method, expect)
        if schema is not None:
            self.assertEqual(schema_errors(r.json, schema), [], r.json)
        return r

    def finished_run(self, job):
        r = self.call("POST", "/api/jobs/%s/trigger" % job, "/api/jobs/{name}/trigger", token=OPERATOR,
                      expect=202)
        run_id = r.json["run_id"]
        self.d.wait_log(r"run %d %s recorded" % (run_id, "(SUCCESS|FAILED|PARTIAL)"))
        return run_id


class Jobs(ApiTest):
    def test_lists_every_job_with_effective_settings_stats_and_next_fire(self):
        jobs = {j["name"]: j for j in self.call("GET", "/api/jobs", token=VIEWER).json["jobs"]}
        self.assertEqual(list(jobs), ["frozen", "hook", "quick", "slow"])  # by name (keyset order)
        q = jobs["quick"]
        self.assertEqual((q["title"], q["timezone"], q["enabled"], q["locked"]),
                         ("Quick one", "Europe/Stockholm", True, False))
        self.assertRegex(q["next_fire"], r"^\d{4}-\d\d-\d\dT0[12]:00:00\.000Z$")
        self.assertIsNone(jobs["slow"]["next_fire"])
        self.assertTrue(jobs["frozen"]["locked"])

    def test_http_job_shows_header_names_but_never_values_or_url(self):
        hook = self.call("GET", "/api/jobs/hook", "/api/jobs/{name}", token=VIEWER).json
        self.assertEqual(hook["action"], {"type": "http", "method": "GET", "header_names": ["X-Api-Key"]})

    def test_a_failed_last_run_carries_its_error_without_secrets(self):
        self.finished_run("hook")
        last = self.call("GET", "/api/jobs/hook", "/api/jobs/{name}", token=VIEWER).json["last_run"]
        self.assertEqual(last["status"], "FAILED")
        self.assertIn("refused", last["error"])

    def test_unknown_job_is_404_with_an_error_body(self):
        r = self.call("GET", "/api/jobs/nope", "/api/jobs/{name}", token=VIEWER, expect=404)
        self.assertEqual(r.json["error"]["code"], "not_found")

    def test_trigger_runs_the_job_and_the_run_shows_in_last_run_stats_and_history(self):
        ws = WsClient(self.d.port(), headers={"Authorization": "Bearer " + VIEWER})
        ws.recv_until(lambda m: m.get("type") == "authenticated")
        run_id = self.finished_run("quick")
        run = self.call("GET", "/api/runs/%d" % run_id, "/api/runs/{id}", token=VIEWER).json
        self.assertEqual((run["job"], run["status"], run["trigger"], run["items_processed"]),
                         ("quick", "SUCCESS", "api:ops", 7))
        self.assertIn("hello %d" % run_id, run["output_tail"])
        log = self.call("GET", "/api/runs/%d/log?offset=6" % run_id, "/api/runs/{id}/log", token=VIEWER).json
        self.assertEqual(log["data"], run["output_tail"][6:])
        self.assertTrue(log["complete"])
        page = self.call("GET", "/api/jobs/quick/runs", "/api/jobs/{name}/runs", token=VIEWER).json
        self.assertIn(run_id, [r["id"] for r in page["runs"]])
        # the statistics are re-read after the durable finish, then job.updated is published
        ws.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "quick" and
                      m["job"]["stats"]["runs"] >= 1 and (m["job"]["last_run"] or {}).get("id") == run_id)
        ws.close()
        job = self.call("GET", "/api/jobs/quick", "/api/jobs/{name}", token=VIEWER).json
        self.assertEqual(job["last_run"]["id"], run_id)
        self.assertEqual(job["last_run"]["items_processed"], 7)
        self.assertGreaterEqual(job["stats"]["successes"], 1)

    def test_trigger_of_a_running_forbid_job_is_409_and_cancel_stops_it(self):
        r = self.call("POST", "/api/jobs/slow/trigger", "/api/jobs/{name}/trigger", token=OPERATOR, expect=202)
        run_id = r.json["run_id"]
        self.call("POST", "/api/jobs/slow/trigger", "/api/jobs/{name}/trigger", token=OPERATOR, expect=409)
        live = self.call("GET", "/api/jobs/slow", "/api/jobs/{name}", token=VIEWER).json
        self.assertEqual(live["running"], 1)
        self.call("POST", "/api/runs/%d/cancel" % run_id, "/api/runs/{id}/cancel", token=OPERATOR, expect=202)
        self.d.wait_log(r"run %d CANCELLED recorded" % run_id)
        self.call("POST", "/api/runs/%d/cancel" % run_id, "/api/runs/{id}/cancel", token=OPERATOR, expect=409)
        self.call("POST", "/api/runs/999999/cancel", "/api/runs/{id}/cancel", token=OPERATOR, expect=404)

    def test_disable_then_enable_are_overrides_with_audit_records(self):
        j = self.call("POST", "/api/jobs/quick/disable", "/api/jobs/{name}/disable", token=OPERATOR).json
        self.assertEqual((j["enabled"], j["overridden"], j["next_fire"]), (False, ["enabled"], None))
        j = self.call("POST", "/api/jobs/quick/enable", "/api/jobs/{name}/enable", token=OPERATOR).json
        self.assertTrue(j["enabled"])
        audit = self.call("GET", "/api/audit?job=quick", "/api/audit", token=VIEWER).json["entries"]
        actions = [(e["actor"], e["action"], e["after"]) for e in audit]
        self.assertIn(("api:ops", "job.disable", {"enabled": False}), actions)
        self.assertIn(("api:ops", "job.enable", {"enabled": True}), actions)

    def test_locked_job_refuses_runtime_changes_with_423(self):
        self.call("PUT", "/api/jobs/frozen/schedule", "/api/jobs/{name}/schedule",
                  body={"schedule": "* * * * *"}, expect=423)
        self.call("POST", "/api/jobs/frozen/disable", "/api/jobs/{name}/disable", token=OPERATOR, expect=423)


class Schedules(ApiTest):
    def test_schedule_change_returns_five_fires_and_reset_restores_the_config(self):
        r = self.call("PUT", "/api/jobs/quick/schedule", "/api/jobs/{name}/schedule",
                      body={"schedule": "*/10 * * * *", "timezone": "UTC"}).json
        self.assertEqual(len(r["next"]), 5)
        self.assertEqual(r["job"]["schedule"], "*/10 * * * *")
        self.assertEqual(sorted(r["job"]["overridden"]), ["schedule", "timezone"])
        self.d.wait_log(r"job 'quick' rescheduled")
        j = self.call("DELETE", "/api/jobs/quick/overrides", "/api/jobs/{name}/overrides").json
        self.assertEqual((j["schedule"], j["timezone"], j["overridden"]), ("0 3 * * *", "Europe/Stockholm", []))

    def test_invalid_schedule_is_422_with_the_column(self):
        r = self.call("PUT", "/api/jobs/quick/schedule", "/api/jobs/{name}/schedule",
                      body={"schedule": "0 25 * * *"}, expect=422).json
        self.assertEqual(r["error"]["code"], "invalid_schedule")
        self.assertEqual(r["error"]["column"], 3)
        r = self.call("PUT", "/api/jobs/quick/schedule", "/api/jobs/{name}/schedule",
                      body={"schedule": "* * * * *", "timezone": "Mars/Olympus"}, expect=422).json
        self.assertEqual(r["error"]["code"], "invalid_timezone")

    def test_preview_gives_the_next_fires_in_the_zone_or_the_error(self):
        r = self.call("POST", "/api/schedule/preview", body={"schedule": "30 2 * * *", "timezone": "UTC",
                                                             "count": 3}, token=VIEWER).json
        self.assertEqual(len(r["next"]), 3)
        self.assertTrue(all(t.endswith("T02:30:00.000Z") for t in r["next"]))
        r = self.call("POST", "/api/schedule/preview", body={"schedule": "0 0 30 2 *"}, token=VIEWER,
                      expect=422).json
        self.assertIn("never", r["error"]["message"])
        self.call("POST", "/api/schedule/preview", body={"schedule": "* * * * *", "count": 0}, token=VIEWER,
                  expect=400)

    def test_schedule_override_survives_a_restart_and_a_reload(self):
        d2 = Daemon(CONFIG, env=ENV).start()
        try:
            r = d2.api("PUT", "/api/jobs/quick/schedule", {"schedule": "15 4 * * *"}, token=ADMIN)
            self.assertEqual(r.status, 200, r)
            d2.signal(__import__("signal").SIGHUP)
            d2.wait_log(r"configuration reloaded")
            self.assertEqual(d2.api("GET", "/api/jobs/quick", token=VIEWER).json["schedule"], "15 4 * * *")
            d2.stop()
            d3 = Daemon(CONFIG, env=ENV, workdir=d2.tmp).start()
            try:
                j = d3.api("GET", "/api/jobs/quick", token=VIEWER).json
                self.assertEqual((j["schedule"], j["overridden"]), ("15 4 * * *", ["schedule"]))
            finally:
                d3.stop()
        finally:
            d2.stop()


class Runs(ApiTest):
    def test_run_filters_and_keyset_pagination_walk_every_run_once(self):
        ids = [self.finished_run("quick") for _ in range(3)]
        seen, cursor = [], None
        while True:
            q = "/api/runs?job=quick&status=SUCCESS&limit=2" + ("&cursor=" + cursor if cursor else "")
            page = self.call("GET", q, "/api/runs", token=VIEWER).json
            self.assertLessEqual(len(page["runs"]), 2)
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, sorted(seen, reverse=True))
        self.assertTrue(set(ids) <= set(seen))
        self.assertEqual(len(seen), len(set(seen)))
        none = self.call("GET", "/api/runs?trigger=cron", "/api/runs", token=VIEWER).json
        self.assertEqual(none["runs"], [])
        future = self.call("GET", "/api/runs?since=2999-01-01T00:00:00Z", "/api/runs", token=VIEWER).json
        self.assertEqual(future["runs"], [])

    def test_bad_filters_are_400(self):
        for q in ("limit=0", "limit=501", "limit=x", "status=NOPE", "since=yesterday", "cursor=garbage"):
            self.call("GET", "/api/runs?" + q, "/api/runs", token=VIEWER, expect=400)

    def test_unknown_run_is_404(self):
        self.call("GET", "/api/runs/987654", "/api/runs/{id}", token=VIEWER, expect=404)
        self.call("GET", "/api/runs/987654/log", "/api/runs/{id}/log", token=VIEWER, expect=404)

    def test_summary_counts_the_last_day(self):
        self.finished_run("quick")
        s = self.call("GET", "/api/summary", token=VIEWER).json
        self.assertGreaterEqual(s["succeeded"], 1)


class Probes(ApiTest):
    def test_healthz_and_readyz_answer_without_a_token(self):
        self.assertEqual(self.call("GET", "/healthz", token=None).json, {"status": "ok"})
        self.assertEqual(self.call("GET", "/readyz", token=None).json, {"status": "ready", "store": "up", "spooled": 0})

    def test_the_openapi_document_is_served(self):
        r = self.d.api("GET", "/api/openapi.yaml")
        self.assertEqual(r.status, 200)
        with open(os.path.join(os.environ.get("CV_SOURCE_DIR", "."), "proto", "openapi.yaml"), "rb") as f:
            self.assertEqual(r.body, f.read())

    @unittest.skipUnless(shutil.which("promtool"), "promtool (Debian package prometheus) not installed")
    def test_metrics_pass_promtool_and_count_runs(self):
        self.finished_run("quick")
        r = self.d.api("GET", "/metrics", token=VIEWER)
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        self.assertRegex(text, r'cronvisor_job_runs_total\{job="quick",status="SUCCESS"\} [1-9]')
        self.assertIn('cronvisor_job_duration_seconds_count{job="quick"}', text)
        self.assertIn("process_resident_memory_bytes", text)
        p = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class StatsWithoutListeners(unittest.TestCase):
    """With no WebSocket client, statistics are not re-read as runs end but when read: the reads
    must still show every run that ended before them."""

    def test_jobs_job_and_metrics_show_the_runs_that_ended_before_the_read(self):
        cfg = """
jobs:
  - name: bad
    schedule: manual
    command: "exit 3"
  - name: good
    schedule: manual
    command: "true"
"""
        with Daemon(cfg) as d:
            before = d.api("GET", "/api/jobs/bad").json["stats"]
            self.assertEqual((before["runs"], before["consecutive_failures"]), (0, 0))
            for job, status, n in (("bad", "FAILED", 3), ("good", "SUCCESS", 1)):
                for _ in range(n):
                    run_id = d.api("POST", "/api/jobs/%s/trigger" % job).json["run_id"]
                    d.wait_log(r"run %d %s recorded" % (run_id, status))
            bad = d.api("GET", "/api/jobs/bad").json["stats"]
            self.assertEqual((bad["runs"], bad["failures"], bad["consecutive_failures"]), (3, 3, 3))
            run_id = d.api("POST", "/api/jobs/good/trigger").json["run_id"]
            d.wait_log(r"run %d SUCCESS recorded" % run_id)
            jobs = {j["name"]: j for j in d.api("GET", "/api/jobs").json["jobs"]}
            self.assertEqual((jobs["good"]["stats"]["runs"], jobs["good"]["stats"]["successes"]), (2, 2))
            self.assertEqual(jobs["good"]["last_run"]["id"], run_id)
            for _ in range(2):
                run_id = d.api("POST", "/api/jobs/bad/trigger").json["run_id"]
                d.wait_log(r"run %d FAILED recorded" % run_id)
            text = d.api("GET", "/metrics").body.decode()
            self.assertRegex(text, r'cronvisor_job_consecutive_failures\{job="bad"\} 5\b')


if __name__ == "__main__":
    main()

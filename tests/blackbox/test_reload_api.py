"""POST /api/reload: the supervisor reloads the configuration file as on SIGHUP and answers with
what changed (admin only); an invalid file is refused with 422 naming each error's line, the
running configuration kept; every reload (API or SIGHUP) is in the audit as config.reload.
Reloads waiting for the store are bounded (server.max_pending_reloads): past it 429 JSON
too_many_reloads, counted in cronvisor_http_reloads_refused_total (on PostgreSQL, whose
job_overrides table a test session locks so that the reload's read of it waits)."""
import re
import signal
import subprocess
import threading
import time
import unittest

import pgserver
from cvtest import Daemon, main, response_schema, schema_errors

ADMIN, OPERATOR, VIEWER = "admin-token-aaaa1111", "operator-token-bbbb2222", "viewer-token-cccc3333"

TOKENS = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: boss
      role: admin
      token: %s
    - name: ops
      role: operator
      token: %s
    - name: eye
      role: viewer
      token: %s
""" % (ADMIN, OPERATOR, VIEWER)

BEFORE = TOKENS + """
jobs:
  - name: job1
    schedule: manual
    command: 'true'
"""

AFTER = TOKENS + """
jobs:
  - name: job1
    schedule: manual
    command: 'true'
  - name: job2
    schedule: manual
    command: 'true'
"""

# the bad schedule is on line 21 of the file (TOKENS starts with an empty line)
INVALID = TOKENS + """
jobs:
  - name: job1
    schedule: manual
    command: 'true'
  - name: broken
    schedule: "61 * * * *"
    command: 'true'
"""


def job_names(d):
    return sorted(j["name"] for j in d.api("GET", "/api/jobs", token=VIEWER).json["jobs"])


def audit_reloads(d):
    entries = d.api("GET", "/api/audit", token=VIEWER).json["entries"]
    return [(e["actor"], e["after"]) for e in entries if e["action"] == "config.reload"]


class ReloadApi(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(BEFORE).start()
        self.d.wait_log(r"cronvisor \S+ running")

    def tearDown(self):
        self.d.stop()

    def write(self, text):
        with open(self.d.config_path, "w") as f:
            f.write(text)

    def reload(self, token, expect):
        r = self.d.api("POST", "/api/reload", token=token)
        self.assertEqual(r.status, expect, r)
        if expect != 403:
            self.assertEqual(schema_errors(r.json, response_schema("/api/reload", "post", expect)),
                             [], r.json)
        return r

    def test_an_admin_reloads_and_the_new_job_is_there_when_it_answers(self):
        self.write(AFTER)
        r = self.reload(ADMIN, 200)
        self.assertIn("jobs +1", r.json["changed"])
        self.assertNotIn("restart", r.json["changed"])
        self.assertEqual(job_names(self.d), ["job1", "job2"])
        self.assertIn(("api:boss", r.json["changed"]), audit_reloads(self.d))

    def test_viewer_and_operator_are_refused_and_nothing_is_reloaded(self):
        self.write(AFTER)
        self.reload(VIEWER, 403)
        self.reload(OPERATOR, 403)
        self.assertEqual(job_names(self.d), ["job1"])
        self.assertEqual(audit_reloads(self.d), [])

    def test_an_invalid_file_gets_422_naming_the_line_and_the_running_config_stays(self):
        self.write(INVALID)
        r = self.reload(ADMIN, 422)
        err = r.json["error"]
        self.assertEqual(err["code"], "invalid_config")
        lines = [e.get("line") for e in err["errors"]]
        self.assertIn(21, lines, err)
        self.assertTrue(any(":21:" in e.get("text", "") for e in err["errors"]), err)
        self.assertEqual(job_names(self.d), ["job1"])
        self.assertEqual(audit_reloads(self.d), [])
        # the running configuration still reloads once the file is fixed
        self.write(AFTER)
        self.assertIn("jobs +1", self.reload(ADMIN, 200).json["changed"])

    def test_a_sighup_reload_is_audited_as_the_system(self):
        self.write(AFTER)
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"configuration reloaded")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not audit_reloads(self.d):
            time.sleep(0.05)
        reloads = audit_reloads(self.d)
        self.assertEqual(len(reloads), 1, reloads)
        self.assertEqual(reloads[0][0], "system")
        self.assertIn("jobs +1", reloads[0][1])


def metric(d, name):
    m = re.search(r"^%s (\d+)$" % name, d.api("GET", "/metrics", token=VIEWER).body.decode(), re.M)
    return int(m.group(1))


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class ReloadBound(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        dsn = self.pg.create_db("reloads")
        head = "storage:\n  postgres: \"%s\"\n" % dsn
        self.before = head + BEFORE.replace("server:\n", "server:\n  max_pending_reloads: 2\n")
        self.after = head + AFTER.replace("server:\n", "server:\n  max_pending_reloads: 2\n")
        self.d = Daemon(self.before).start()
        self.addCleanup(self.d.stop)
        self.d.wait_log(r"cronvisor \S+ running")

    def lock_overrides(self):
        """A psql session holding job_overrides locked until release() (the daemon's read of it
        waits); returns once the lock is held."""
        p = subprocess.Popen([pgserver.PSQL, "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                              "postgres", "-d", "reloads", "-At", "-v", "ON_ERROR_STOP=1"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        p.stdin.write("BEGIN;\nLOCK TABLE job_overrides IN ACCESS EXCLUSIVE MODE;\n"
                      "SELECT 'locked';\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            self.assertNotEqual(line, "", "psql ended before taking the lock")
            if line.strip() == "locked":
                break

        def release():
            p.stdin.write("COMMIT;\n")
            p.stdin.close()
            p.wait(timeout=30)
        return release

    def test_reloads_past_max_pending_reloads_get_429_until_the_waiting_ones_are_answered(self):
        with open(self.d.config_path, "w") as f:
            f.write(self.after)
        release = self.lock_overrides()
        answers = []

        def post():
            answers.append(self.d.api("POST", "/api/reload", token=ADMIN, timeout=60))
        waiting = [threading.Thread(target=post) for _ in range(2)]
        for i, t in enumerate(waiting):
            t.start()
            self.d.wait_log(r"reload by api:boss waits for the stored overrides \(%d waiting\)"
                            % (i + 1))
        self.assertEqual(metric(self.d, "cronvisor_http_reloads_refused_total"), 0)
        for _ in range(3):
            r = self.d.api("POST", "/api/reload", token=ADMIN)
            self.assertEqual(r.status, 429, r)
            self.assertEqual(schema_errors(r.json, response_schema("/api/reload", "post", 429)),
                             [], r.json)
            self.assertEqual(r.json["error"]["code"], "too_many_reloads")
            self.assertIn("server.max_pending_reloads", r.json["error"]["message"])
        self.assertEqual(metric(self.d, "cronvisor_http_reloads_refused_total"), 3)
        self.d.wait_log(r"reload by api:boss refused: 2 reloads are already waiting")
        self.assertEqual(answers, [])  # the two accepted still wait for the store
        release()
        for t in waiting:
            t.join(timeout=60)
        self.assertEqual(sorted(r.status for r in answers), [200, 200], answers)
        # the waiting list is free again: the next reload is applied
        r = self.d.api("POST", "/api/reload", token=ADMIN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(job_names(self.d), ["job1", "job2"])


if __name__ == "__main__":
    main()

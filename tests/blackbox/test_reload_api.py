"""POST /api/reload: the supervisor reloads the configuration file as on SIGHUP and answers with
what changed (admin only); an invalid file is refused with 422 naming each error's line, the
running configuration kept; every reload (API or SIGHUP) is in the audit as config.reload."""
import signal
import time
import unittest

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


if __name__ == "__main__":
    main()

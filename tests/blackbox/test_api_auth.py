"""API authentication and request hygiene: the role matrix of every mutating endpoint, rate limits,
malformed and oversized bodies, unknown routes, HEAD, open mode and the listen-address rule."""
import hashlib
import unittest

from cvtest import Daemon, main, response_schema, schema_errors, run_cli

VIEWER, OPERATOR, ADMIN = "viewer-token-aaaa", "operator-token-bbbb", "admin-token-cccc"

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: dash
      role: viewer
      token: %s
    - name: ops
      role: operator
      token: %s
    - name: root
      role: admin
      sha256: %s
jobs:
  - name: job1
    schedule: manual
    concurrency: allow
    command: 'true'
""" % (VIEWER, OPERATOR, hashlib.sha256(ADMIN.encode()).hexdigest())

# (method, path, body, minimum role, status for a caller with the role)
MUTATIONS = [
    ("POST", "/api/jobs/job1/trigger", None, "operator", 202),
    ("POST", "/api/jobs/job1/disable", None, "operator", 200),
    ("POST", "/api/jobs/job1/enable", None, "operator", 200),
    ("POST", "/api/runs/424242/cancel", None, "operator", 404),
    ("PUT", "/api/jobs/job1/schedule", {"schedule": "manual"}, "admin", 200),
    ("DELETE", "/api/jobs/job1/overrides", None, "admin", 200),
]
ROLES = {"viewer": 1, "operator": 2, "admin": 3}
TOKENS = [("viewer", VIEWER), ("operator", OPERATOR), ("admin", ADMIN)]


class AuthMatrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_every_mutation_needs_a_valid_token_of_a_high_enough_role(self):
        for method, path, body, need, ok in MUTATIONS:
            with self.subTest(path=path, token="none"):
                r = self.d.api(method, path, body)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="cronvisor"')
            with self.subTest(path=path, token="wrong"):
                self.assertEqual(self.d.api(method, path, body, token=ADMIN + "x").status, 401)
            for role, token in TOKENS:
                with self.subTest(path=path, role=role):
                    r = self.d.api(method, path, body, token=token)
                    want = ok if ROLES[role] >= ROLES[need] else 403
                    self.assertEqual(r.status, want, r)
                    self.assertEqual(schema_errors(r.json, response_schema(
                        path.replace("job1", "{name}").replace("424242", "{id}"), method, want)
                        or {"$ref": "#/components/schemas/Error"}), [])

    def test_reads_need_a_viewer_token(self):
        for path in ("/api/jobs", "/api/runs", "/api/summary", "/api/audit", "/metrics"):
            self.assertEqual(self.d.api("GET", path).status, 401, path)
            self.assertEqual(self.d.api("GET", path, token=VIEWER).status, 200, path)

    def test_every_mutation_is_audited_with_the_token_name(self):
        self.d.api("POST", "/api/jobs/job1/disable", token=OPERATOR)
        self.d.api("PUT", "/api/jobs/job1/schedule", {"schedule": "@daily"}, token=ADMIN)
        self.d.api("DELETE", "/api/jobs/job1/overrides", token=ADMIN)
        entries = self.d.api("GET", "/api/audit?job=job1&limit=500", token=VIEWER).json["entries"]
        got = {(e["actor"], e["action"]) for e in entries}
        for want in [("api:ops", "job.disable"), ("api:root", "job.schedule"), ("api:root", "job.overrides_reset")]:
            self.assertIn(want, got)
        sched = [e for e in entries if e["action"] == "job.schedule"][0]
        self.assertEqual(sched["after"]["schedule"], "@daily")
        self.assertIn("schedule", sched["before"])

    def test_manual_triggers_are_rate_limited_per_token(self):
        statuses = [self.d.api("POST", "/api/jobs/job1/trigger", token=OPERATOR).status for _ in range(40)]
        self.assertIn(429, statuses)
        self.assertEqual(statuses[0], 202)
        r = self.d.api("POST", "/api/jobs/job1/trigger", token=OPERATOR)
        if r.status == 429:
            self.assertTrue(int(r.header("Retry-After")) >= 1)
        # another token has its own bucket
        self.assertEqual(self.d.api("POST", "/api/jobs/job1/trigger", token=ADMIN).status, 202)

    def test_no_token_appears_in_any_response_or_log(self):
        bodies = b"".join(self.d.api("GET", p, token=VIEWER).body
                          for p in ("/api/jobs", "/api/runs", "/api/audit", "/metrics"))
        for t in (VIEWER, OPERATOR, ADMIN):
            self.assertNotIn(t.encode(), bodies)
            self.assertNotIn(t, "\n".join(str(r) for r in self.d.log))


class RequestHygiene(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_malformed_json_is_400_with_line_and_column(self):
        r = self.d.api("PUT", "/api/jobs/job1/schedule", raw=b'{"schedule": ', token=ADMIN)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"]["code"], "bad_json")
        r = self.d.api("PUT", "/api/jobs/job1/schedule", raw=b'[1,2]', token=ADMIN)
        self.assertEqual(r.status, 400)
        r = self.d.api("POST", "/api/schedule/preview", {"schedule": 5}, token=VIEWER)
        self.assertEqual(r.status, 400)

    def test_an_oversized_body_is_413(self):
        big = b'{"schedule": "' + b"x" * 100000 + b'"}'
        r = self.d.api("PUT", "/api/jobs/job1/schedule", raw=big, token=ADMIN,
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json["error"]["code"], "body_too_large")

    def test_unknown_routes_are_404_and_wrong_methods_405_with_allow(self):
        r = self.d.api("GET", "/api/nothing", token=VIEWER)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "not_found"))
        r = self.d.api("DELETE", "/api/jobs", token=ADMIN)
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.header("Allow"))

    def test_head_answers_headers_without_a_body(self):
        get = self.d.api("GET", "/api/jobs", token=VIEWER)
        head = self.d.api("HEAD", "/api/jobs", token=VIEWER)
        self.assertEqual(head.status, 200)
        self.assertEqual(head.body, b"")
        self.assertEqual(int(head.header("Content-Length")), len(get.body))


class OpenMode(unittest.TestCase):
    def test_without_tokens_loopback_is_open_read_write_and_says_so(self):
        cfg = "server:\n  listen: \"127.0.0.1:0\"\njobs:\n  - name: j\n    schedule: manual\n    command: 'true'\n"
        with Daemon(cfg) as d:
            d.wait_log(r"no API tokens configured")
            self.assertEqual(d.api("POST", "/api/jobs/j/trigger").status, 202)
            self.assertEqual(d.api("PUT", "/api/jobs/j/schedule", {"schedule": "@daily"}).status, 200)

    def test_without_tokens_a_public_address_refuses_to_start(self):
        cfg = "server:\n  listen: \"0.0.0.0:0\"\njobs:\n  - name: j\n    schedule: manual\n    command: 'true'\n"
        d = Daemon(cfg).start()
        rc = d.wait_exit(30)
        self.assertNotEqual(rc, 0)
        self.assertTrue(any("token" in r.get("msg", "") for r in d.log), d.tail())


if __name__ == "__main__":
    main()

"""People in the audit (auth.proxy): behind an authenticating reverse proxy, the user header names
the person, but only on requests from the proxy's addresses. The proxy here is 127.0.0.2 (the
client binds its socket to it); requests from 127.0.0.1 play a host that forges the headers."""
import http.client
import json
import os
import signal
import tempfile
import unittest

from cvtest import Daemon, main, response_schema, run_cli, schema_errors

OPS = "ops-token-for-the-proxy-test"

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: ops
      role: operator
      token: %s
  proxy:
    user_header: X-Forwarded-Email
    role_header: X-Forwarded-Role
    from: [127.0.0.2/32, "::ffff:127.0.0.2/128"]
    default_role: viewer
jobs:
  - name: job1
    schedule: manual
    concurrency: allow
    command: 'true'
""" % OPS


class ProxyAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def call(self, method, path, source, user=None, role=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port(), timeout=30,
                                          source_address=(source, 0))
        h = {}
        if user is not None:
            h["X-Forwarded-Email"] = user
        if role is not None:
            h["X-Forwarded-Role"] = role
        if token is not None:
            h["Authorization"] = "Bearer " + token
        try:
            conn.request(method, path, headers=h)
            r = conn.getresponse()
            body = r.read()
            return r.status, (json.loads(body) if body else None)
        finally:
            conn.close()

    def audit_actors(self, action):
        status, page = self.call("GET", "/api/audit?job=job1&limit=100", "127.0.0.1", token=OPS)
        self.assertEqual(status, 200, page)
        return [e["actor"] for e in page["entries"] if e["action"] == action]

    def test_a_person_from_the_proxy_is_named_in_the_run_and_the_audit(self):
        status, body = self.call("POST", "/api/jobs/job1/trigger", "127.0.0.2",
                                 user="alice@example.com", role="operator")
        self.assertEqual(status, 202, body)
        status, run = self.call("GET", "/api/runs/%d" % body["run_id"], "127.0.0.1", token=OPS)
        self.assertEqual(run["trigger"], "user:alice@example.com")
        self.assertIn("user:alice@example.com", self.audit_actors("run.trigger"))

    def test_without_a_role_header_a_person_has_the_default_role(self):
        self.assertEqual(self.call("GET", "/api/jobs", "127.0.0.2", user="bob@example.com")[0], 200)
        status, body = self.call("POST", "/api/jobs/job1/trigger", "127.0.0.2", user="bob@example.com")
        self.assertEqual(status, 403, body)
        self.assertIn('user "bob@example.com" has role viewer', body["error"]["message"])

    def test_an_invalid_role_header_falls_back_to_the_default_role(self):
        status, body = self.call("POST", "/api/jobs/job1/disable", "127.0.0.2",
                                 user="carol@example.com", role="superuser")
        self.assertEqual(status, 403, body)

    def test_forged_headers_from_another_address_are_ignored(self):
        status, body = self.call("POST", "/api/jobs/job1/trigger", "127.0.0.1",
                                 user="mallory@example.com", role="admin")
        self.assertEqual(status, 401, body)
        self.assertEqual(self.call("GET", "/api/jobs", "127.0.0.1", user="mallory@example.com")[0], 401)
        # with a token of its own the request is the token's, whatever the headers claim
        status, body = self.call("POST", "/api/jobs/job1/trigger", "127.0.0.1", token=OPS,
                                 user="mallory@example.com", role="admin")
        self.assertEqual(status, 202, body)
        status, run = self.call("GET", "/api/runs/%d" % body["run_id"], "127.0.0.1", token=OPS)
        self.assertEqual(run["trigger"], "api:ops")
        self.assertNotIn("user:mallory@example.com", self.audit_actors("run.trigger"))

    def test_info_tells_the_dashboard_who_asks(self):
        status, info = self.call("GET", "/api/info", "127.0.0.2", user="dora@example.com", role="admin")
        self.assertEqual(status, 200, info)
        self.assertEqual(info["you"], {"name": "dora@example.com", "role": "admin", "person": True})
        self.assertEqual(schema_errors(info, response_schema("/api/info", "get", 200)), [])
        status, info = self.call("GET", "/api/info", "127.0.0.1", token=OPS, user="dora@example.com")
        self.assertEqual(info["you"], {"name": "ops", "role": "operator", "person": False})

    def test_the_proxy_without_the_user_header_is_an_ordinary_client(self):
        self.assertEqual(self.call("GET", "/api/jobs", "127.0.0.2")[0], 401)
        self.assertEqual(self.call("GET", "/api/jobs", "127.0.0.2", token=OPS)[0], 200)


class ProxyReload(unittest.TestCase):
    def test_a_reload_that_adds_or_removes_the_proxy_applies_at_once(self):
        without = CONFIG.split("  proxy:")[0] + CONFIG[CONFIG.index("jobs:"):]
        with Daemon(without) as d:
            d.wait_log(r"cronvisor \S+ running")
            call = ProxyAuth.call.__get__(type("T", (), {"d": d})())
            self.assertEqual(call("GET", "/api/jobs", "127.0.0.2", user="alice@example.com")[0], 401)
            with open(d.config_path, "w") as f:
                f.write(CONFIG)
            d.signal(signal.SIGHUP)
            self.assertIn("auth.proxy", d.wait_log(r"configuration reloaded from \S+: (.*)$").group(1))
            self.assertEqual(call("GET", "/api/jobs", "127.0.0.2", user="alice@example.com")[0], 200)
            with open(d.config_path, "w") as f:
                f.write(without)
            d.signal(signal.SIGHUP)
            d.wait_log(r"configuration reloaded")
            self.assertEqual(call("GET", "/api/jobs", "127.0.0.2", user="alice@example.com")[0], 401)


class ProxyCheck(unittest.TestCase):
    def check(self, proxy):
        path = os.path.join(tempfile.mkdtemp(prefix="cvtest-"), "c.yaml")
        with open(path, "w") as f:
            f.write("auth:\n  proxy:\n" + proxy + "jobs:\n  - name: a\n    schedule: manual\n    command: 'true'\n")
        return run_cli("check", "-c", path)

    def test_check_refuses_an_invalid_cidr_naming_it_and_its_position(self):
        r = self.check("    user_header: X-Forwarded-Email\n    from: [127.0.0.1/32, 10.0.0.300/8, 10.1.2.3/8]\n")
        self.assertEqual(r.returncode, 78, r)
        out = r.stderr + r.stdout
        self.assertRegex(out, r"c\.yaml:4:\d+: auth\.proxy\.from: '10\.0\.0\.300/8' is not an address")
        self.assertRegex(out, r"c\.yaml:4:\d+: auth\.proxy\.from: '10\.1\.2\.3/8' is not an address")
        self.assertNotIn("127.0.0.1/32'", out)

    def test_check_refuses_a_proxy_without_addresses(self):
        r = self.check("    user_header: X-Forwarded-Email\n")
        self.assertEqual(r.returncode, 78, r)
        self.assertIn("auth.proxy.from: list the proxy's addresses", r.stderr + r.stdout)

    def test_check_accepts_a_valid_proxy(self):
        r = self.check("    user_header: X-Forwarded-Email\n    from: [127.0.0.1, \"::1/128\", 10.0.0.0/8]\n"
                       "    default_role: operator\n")
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()

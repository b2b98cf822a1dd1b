"""Issue 14 acceptance: a reload that changes every section of the configuration at once applies
each one (tokens, jobs, probes, notify, limits, retention, links, defaults, server and auth
bounds), names what changed (keys, never values), and a reload that changes a restart-only key
(server.listen, storage.*) is refused, naming the key, with the running configuration kept."""
import http.server
import json
import signal
import threading
import time
import unittest

from cvtest import Daemon, WsClient, main

ADMIN, GONE = "admin-token-aaaa1111", "gone-token-bbbb2222"


def deadline_poll(fn, what, timeout=20.0):
    """Polls fn() (a value or None) until it returns something truthy; fails after timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: not within %.0fs (last: %r)" % (what, timeout, last))


class Hook:
    """A webhook endpoint: records each POSTed document, wakes waiters."""

    def __init__(self):
        self.docs = []
        self.cond = threading.Condition()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(500 if self.path == "/fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer.cond:
                    outer.docs.append((self.path, json.loads(raw)))
                    outer.cond.notify_all()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, path, event, job, timeout=30):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for p, doc in self.docs:
                    if p == path and doc.get("event") == event and doc.get("job") == job:
                        return doc
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s %s on %s within %ds" % (event, job, path, timeout))
                self.cond.wait(left)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


BEFORE = """
server:
  listen: "127.0.0.1:0"
  max_body: 64KiB
storage:
  sqlite:
    path: "{dir}/data/cronvisor.db"
defaults:
  timeout: 1h
limits:
  max_concurrent: 4
  notification_history: 100
retention:
  days: 30
links:
  - title: Old runbook
    url: https://example.com/old
auth:
  rate_per_second: 5
  tokens:
    - name: admin
      role: admin
      token: %s
    - name: gone
      role: viewer
      token: %s
probes:
  - name: kept
    type: exec
    command: 'true'
    interval: 1h
notify:
  - name: old-hook
    url: http://127.0.0.1:%d/old
    events: [run.failed]
jobs:
  - name: slow
    schedule: manual
    concurrency: allow
    command: 'sleep 30'
  - name: boom
    schedule: manual
    command: 'exit 3'
"""

AFTER = """
server:
  listen: "127.0.0.1:0"
  max_body: 1KiB
storage:
  sqlite:
    path: "{dir}/data/cronvisor.db"
defaults:
  timeout: 2h
limits:
  max_concurrent: 1
  notification_history: 50
retention:
  days: 7
links:
  - title: New runbook
    url: https://example.com/new
auth:
  rate_per_second: 9
  tokens:
    - name: admin
      role: admin
      token: %s
probes:
  - name: kept
    type: exec
    command: 'true'
    interval: 1h
  - name: added
    type: exec
    command: 'true'
    interval: 1h
notify:
  - name: new-hook
    url: http://127.0.0.1:%d/new
    events: [run.failed]
jobs:
  - name: slow
    schedule: manual
    concurrency: allow
    command: 'sleep 30'
  - name: boom
    schedule: manual
    command: 'exit 3'
  - name: ticker
    schedule: "* * * * * *"
    command: 'true'
"""


class ReloadEverything(unittest.TestCase):
    def setUp(self):
        self.hook = Hook()
        self.d = Daemon(BEFORE % (ADMIN, GONE, self.hook.port))
        self.d.start()
        self.d.wait_log(r"cronvisor \S+ running")

    def tearDown(self):
        try:
            rc = self.d.stop()
            # a sanitizer build reports use-after-free and leaks on stderr and in the exit code
            self.assertFalse([r for r in self.d.log if "Sanitizer" in r.get("msg", "")],
                             self.d.tail())
            self.assertEqual(rc, 0, self.d.tail())
        finally:
            self.hook.close()

    def api(self, method, path, token=ADMIN, **kw):
        return self.d.api(method, path, token=token, **kw)

    def write(self, text):
        with open(self.d.config_path, "w") as f:
            f.write(text.replace("{dir}", self.d.tmp))

    def big_body(self):
        """A 2 KiB body (an invalid schedule: refused whatever the size limit, never applied)."""
        return self.api("PUT", "/api/jobs/slow/schedule", body={"schedule": "x" * 2048})

    def probes(self):
        return {p["name"]: p for p in self.api("GET", "/api/health").json["probes"]}

    def test_every_section_applies_and_a_restart_only_change_is_refused(self):
        d = self.d
        port = d.port()
        kept_checked = deadline_poll(lambda: self.probes()["kept"]["status"] == "healthy" and
                                     self.probes()["kept"]["checked_at"], "probe kept checked")
        ws = WsClient(port, headers={"Authorization": "Bearer " + GONE})
        self.assertEqual(ws.status, 101, ws.head)
        ws.recv_until(lambda m: m.get("type") == "authenticated")
        self.assertEqual(self.api("GET", "/api/jobs", token=GONE).status, 200)
        self.assertEqual(self.api("GET", "/api/jobs/slow").json["timeout_ms"], 3600 * 1000)
        self.assertNotEqual(self.big_body().status, 413)

        self.write(AFTER % (ADMIN, self.hook.port))
        d.signal(signal.SIGHUP)
        line = d.wait_log(r"configuration reloaded from \S+: .*").group(0)
        # exactly what changed, keys only (no value, no secret)
        # ~2: slow and boom take the new defaults.timeout
        self.assertRegex(line, r": jobs \+1 ~2, tokens -1, probes \+1, notify \+1 -1, "
                               r"limits\.max_concurrent, retention, defaults, links, "
                               r"limits\.notification_history, server\.max_body, "
                               r"auth\.rate_per_second$")
        for secret in (ADMIN, GONE, "example.com", str(self.hook.port)):
            self.assertNotIn(secret, line)

        # tokens: the removed one gets 401, its WebSocket session is told and closed
        self.assertEqual(self.api("GET", "/api/jobs", token=GONE).status, 401)
        m, _ = ws.recv_until(lambda m: m.get("type") == "error")
        self.assertEqual(m["code"], "token_revoked")
        self.assertIsNone(ws.recv())
        self.assertEqual(ws.closed, 1008)
        ws.close()

        # probes: the new one is reported (and checked); the unchanged one kept its history
        deadline_poll(lambda: self.probes().get("added", {}).get("status") == "healthy",
                      "probe added healthy")
        self.assertEqual(self.probes()["kept"]["checked_at"], kept_checked)

        # jobs: the new one fires every second
        deadline_poll(lambda: [r for r in d.db("SELECT status FROM runs WHERE job='ticker'")
                               if r["status"] == "SUCCESS"], "a ticker run")

        # notify: the new notifier delivers a failed run; the removed one gets nothing
        self.assertEqual(self.api("POST", "/api/jobs/boom/trigger").status, 202)
        doc = self.hook.wait("/new", "run.failed", "boom")
        self.assertEqual(doc["notifier"], "new-hook")
        self.assertFalse([p for p, _ in self.hook.docs if p == "/old"])

        # limits.max_concurrent 4 -> 1: a second run of slow waits in the queue
        self.assertEqual(self.api("POST", "/api/jobs/slow/trigger").status, 202)
        self.assertEqual(self.api("POST", "/api/jobs/slow/trigger").status, 202)
        j = deadline_poll(lambda: (lambda j: j if j["running"] == 1 and j["queued"] == 1 else None)(
            self.api("GET", "/api/jobs/slow").json), "slow: 1 running, 1 queued")
        self.assertEqual((j["running"], j["queued"]), (1, 1))

        # links, defaults: shown by the API
        self.assertEqual(self.api("GET", "/api/info").json["links"],
                         [{"title": "New runbook", "url": "https://example.com/new"}])
        self.assertEqual(self.api("GET", "/api/jobs/slow").json["timeout_ms"], 2 * 3600 * 1000)

        # server.max_body 64KiB -> 1KiB: a 2 KiB body is now 413
        self.assertEqual(self.big_body().status, 413)

        # a restart-only change is refused, naming the key; the running configuration stays
        self.write(AFTER.replace('listen: "127.0.0.1:0"', 'listen: "127.0.0.1:1"')
                   .replace("cronvisor.db", "other.db") % (ADMIN, self.hook.port))
        d.signal(signal.SIGHUP)
        m = d.wait_log(r"reload refused: (.*) cannot change without a restart")
        self.assertEqual(m.group(1), "server.listen, storage.sqlite.path")
        self.assertEqual(d.port(), port)
        self.assertEqual(self.api("GET", "/api/jobs").status, 200)
        self.assertIn("ticker", [j["name"] for j in self.api("GET", "/api/jobs").json["jobs"]])
        self.assertFalse([r for r in d.log if "configuration reloaded" in r.get("msg", "")][1:])


    def test_work_in_flight_of_removed_probes_and_notifiers_ends_cleanly(self):
        """A probe removed while its check runs, and a notifier removed while its delivery waits
        for a retry: both end at once (the delivery recorded failed), nothing more is attempted
        (run under ASan: nothing is touched once freed)."""
        d = self.d
        flaky = BEFORE.replace("probes:\n", "probes:\n  - name: hanging\n    type: exec\n"
                               "    command: 'sleep 30'\n    timeout: 25s\n    interval: 1h\n"
                               "  - name: doomed\n    type: exec\n    command: 'false'\n"
                               "    interval: 1h\n")
        flaky = flaky.replace(":%d/old", ":%d/fail")
        self.write(flaky % (ADMIN, GONE, self.hook.port))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: probes \+2, notify ~1$")
        deadline_poll(lambda: "hanging" in self.probes(), "probe hanging listed")
        deadline_poll(lambda: 'cronvisor_probe_up{probe="doomed"} 0' in
                      self.api("GET", "/metrics").body.decode(), "probe doomed in /metrics")
        self.assertEqual(self.api("POST", "/api/jobs/boom/trigger").status, 202)
        d.wait_log(r"notify old-hook: run.failed boom attempt 1 failed: HTTP 500; retry in")

        self.write(BEFORE.replace("  - name: old-hook\n", "  - name: other-hook\n")
                   % (ADMIN, GONE, self.hook.port))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: probes -2, notify \+1 -1$")
        d.wait_log(r"notify old-hook: run.failed boom failed after 1 attempt\(s\): the notifier "
                   r"was removed or changed by a reload")
        self.assertEqual(set(self.probes()), {"store", "kept"})
        metrics = self.api("GET", "/metrics").body.decode()
        self.assertIn('probe="kept"', metrics)
        self.assertNotIn('probe="doomed"', metrics)
        notes = self.api("GET", "/api/notifications").json["notifications"]
        old = [n for n in notes if n["notifier"] == "old-hook"]
        self.assertEqual(len(old), 1, notes)
        self.assertFalse(old[0]["delivered"])
        self.assertEqual(old[0]["attempts"], 1)
        self.assertEqual(len([p for p, _ in self.hook.docs if p == "/fail"]), 1)
        # the daemon goes on: another reload, and a clean stop
        self.write(BEFORE % (ADMIN, GONE, self.hook.port))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: notify \+1 -1$")


if __name__ == "__main__":
    main()

"""What the daemon tells about runs, as a person reads it: a refused "Run now" is not a run,
auto_disable_after counts failed firings, a failing firing is notified once with its attempts."""
import http.server
import json
import os
import re
import threading
import time
import unittest

from cvtest import Daemon, main

OPERATOR = "operator-secret-run-semantics"

HEADER = """
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
auth:
  tokens:
    - name: ops
      role: operator
      token: %s
""" % OPERATOR


class Receiver:
    """A local webhook receiver: every POST body, by path."""

    def __init__(self):
        self.received = []
        self.cond = threading.Condition()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer.cond:
                    outer.received.append((self.path, json.loads(raw)))
                    outer.cond.notify_all()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for p, doc in self.received:
                    if pred(p, doc):
                        return doc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching notification within %ds: %r" %
                                         (timeout, self.received))
                self.cond.wait(left)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def trigger(d, job, expect):
    r = d.api("POST", "/api/jobs/%s/trigger" % job, token=OPERATOR)
    if r.status != expect:
        raise AssertionError("trigger %s: HTTP %d %s" % (job, r.status, r.body))
    return r


def logged(d, pattern, timeout=30):
    """Waits for a log line matching pattern, logged before the call or within timeout."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while not any(rx.search(r.get("msg", "")) for r in list(d.log)):
        if time.monotonic() > deadline:
            raise AssertionError("no log line matching %r" % pattern)
        try:
            d.wait_log(pattern, timeout=0.2)
        except AssertionError:
            pass


def settled_job(d, name, timeout=20):
    """The job as the API shows it once its last run is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        job = d.api("GET", "/api/jobs/" + name, token=OPERATOR).json
        if (job["last_run"] or {}).get("status") not in ("RUNNING", "QUEUED"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError("%s still running: %r" % (name, job["last_run"]))
        time.sleep(0.05)


def finish_firing(d, job, attempts):
    """Waits for the `attempts` finished runs of one firing of job; returns their statuses."""
    return [d.run_finished(job)[1] for _ in range(attempts)]


class RefusedRunNow(unittest.TestCase):
    def test_a_refused_run_now_is_a_409_with_an_audit_entry_and_no_run(self):
        jobs = """jobs:
  - name: slow
    schedule: manual
    concurrency: forbid
    command: 'while [ ! -f {dir}/go ]; do sleep 0.05; done'
"""
        with Daemon(HEADER + jobs) as d:
            first = trigger(d, "slow", 202).json["run_id"]
            r = trigger(d, "slow", 409)
            self.assertIn("concurrency: forbid", r.json["error"]["message"]
                          if isinstance(r.json.get("error"), dict) else json.dumps(r.json))
            open(os.path.join(d.tmp, "go"), "w").close()
            self.assertEqual(d.run_finished("slow"), (first, "SUCCESS"))
            # the job shows its last real outcome, in the list and alone
            job = settled_job(d, "slow")
            self.assertEqual((job["last_run"]["id"], job["last_run"]["status"]), (first, "SUCCESS"))
            jobs_list = d.api("GET", "/api/jobs", token=OPERATOR).json
            listed = jobs_list["jobs"] if isinstance(jobs_list, dict) else jobs_list
            row = next(j for j in listed if j["name"] == "slow")
            self.assertEqual(row["last_run"]["status"], "SUCCESS")
            audit = d.api("GET", "/api/audit?job=slow", token=OPERATOR).json["entries"]
            refused = [e for e in audit if e["action"] == "run.trigger_refused"]
            self.assertEqual(len(refused), 1)
            self.assertEqual(refused[0]["actor"], "api:ops")
            self.assertIn("concurrency: forbid", json.dumps(refused[0]["after"]))
        rows = d.db("SELECT id, status FROM runs WHERE job='slow'")
        self.assertEqual([(r["id"], r["status"]) for r in rows], [(first, "SUCCESS")])


class AutoDisableCountsFirings(unittest.TestCase):
    def test_auto_disable_after_counts_failed_firings_and_starts_afresh_when_re_enabled(self):
        jobs = """jobs:
  - name: broken
    schedule: manual
    retries: { max: 2, backoff: 10ms, backoff_max: 10ms }
    auto_disable_after: 3
    command: 'exit 1'
"""
        disabled = re.compile(r"job broken: disabled after")
        with Daemon(HEADER + jobs) as d:
            for round_ in range(2):  # once, then again after a person re-enables the job
                for firing in range(3):
                    trigger(d, "broken", 202)
                    self.assertEqual(finish_firing(d, "broken", 3), ["FAILED"] * 3)
                    if firing < 2:
                        # the next firing is triggered only once this one's verdict is logged
                        self.assertFalse([r for r in d.log if disabled.search(r.get("msg", ""))][round_:],
                                         "disabled after %d failed firing(s)" % (firing + 1))
                # the executor logs the verdict before the last run's record is durable, so the
                # line may already have been read while waiting for that run's finished line
                if len([r for r in d.log if disabled.search(r.get("msg", ""))]) <= round_:
                    d.wait_log(r"job broken: disabled after 3 consecutive failures", timeout=20)
                deadline = time.monotonic() + 20
                while d.api("GET", "/api/jobs/broken", token=OPERATOR).json["enabled"]:
                    self.assertLess(time.monotonic(), deadline, "the API never saw the job disabled")
                    time.sleep(0.05)
                d.api("POST", "/api/jobs/broken/enable", token=OPERATOR)
        audit = d.db("SELECT * FROM audit WHERE action='job.auto_disabled'")
        self.assertEqual(len(audit), 2)
        self.assertEqual(len(d.db("SELECT id FROM runs WHERE job='broken'")), 18)


class NotifiedOncePerFiring(unittest.TestCase):
    def setUp(self):
        self.rx = Receiver()

    def tearDown(self):
        self.rx.close()

    def test_a_failing_firing_with_retries_is_notified_once_with_its_attempts(self):
        cfg = HEADER + """notify:
  - name: hook
    url: http://127.0.0.1:%(p)d/hook
    events: [run.failed]
  - name: chat
    url: http://127.0.0.1:%(p)d/slack
    format: slack
    events: [run.failed]
jobs:
  - name: flaky
    schedule: manual
    retries: { max: 2, backoff: 10ms, backoff_max: 10ms }
    command: 'exit 3'
  - name: sentinel
    schedule: manual
    command: 'exit 4'
""" % {"p": self.rx.port}
        with Daemon(cfg) as d:
            trigger(d, "flaky", 202)
            self.assertEqual(finish_firing(d, "flaky", 3), ["FAILED"] * 3)
            logged(d, r"notify hook: run.failed flaky delivered")
            logged(d, r"notify chat: run.failed flaky delivered")
            # a later failure, notified after anything flaky's attempts could have sent
            trigger(d, "sentinel", 202)
            self.rx.wait(lambda p, doc: p == "/hook" and doc.get("job") == "sentinel")
            self.rx.wait(lambda p, doc: p == "/slack" and "sentinel" in doc["text"])
        hooks = [doc for p, doc in self.rx.received if p == "/hook" and doc.get("job") == "flaky"]
        slack = [doc for p, doc in self.rx.received if p == "/slack" and "flaky" in doc["text"]]
        self.assertEqual(len(hooks), 1, hooks)
        self.assertEqual(len(slack), 1, slack)
        run = hooks[0]["run"]
        self.assertEqual((run["status"], run["attempts"], run["exit_code"]), ("FAILED", 3, 3))
        rfc3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"
        self.assertRegex(run["started_at"], rfc3339)
        self.assertRegex(run["finished_at"], rfc3339)
        self.assertRegex(hooks[0]["at"], rfc3339)
        self.assertIn("after 3 attempts", slack[0]["text"])
        one = [doc for p, doc in self.rx.received if p == "/hook" and doc.get("job") == "sentinel"]
        self.assertEqual(one[0]["run"]["attempts"], 1)


    def test_the_notification_history_and_its_ids_survive_a_restart(self):
        cfg = HEADER + """notify:
  - name: hook
    url: http://127.0.0.1:%(p)d/hook
    events: [run.failed]
jobs:
  - name: boom
    schedule: manual
    command: 'exit 5'
""" % {"p": self.rx.port}

        def notes(d):
            return d.api("GET", "/api/notifications", token=OPERATOR).json["notifications"]

        d = Daemon(cfg).start()
        try:
            trigger(d, "boom", 202)
            logged(d, r"notify hook: run.failed boom delivered")
            first = notes(d)
            self.assertEqual([(n["id"], n["delivered"]) for n in first], [(1, True)])
        finally:
            d.stop()
        d2 = Daemon(cfg, workdir=d.tmp).start()
        try:
            before = notes(d2)  # read back from the store, before anything new happened
            deadline = time.monotonic() + 20
            while not before and time.monotonic() < deadline:
                time.sleep(0.05)
                before = notes(d2)
            self.assertEqual(before, first)
            trigger(d2, "boom", 202)
            logged(d2, r"notify hook: run.failed boom delivered")
            after = notes(d2)
            self.assertEqual([(n["id"], n["event"], n["delivered"]) for n in after],
                             [(2, "run.failed", True), (1, "run.failed", True)])
            self.assertEqual(after[1], first[0])
        finally:
            d2.stop()
        rows = d2.db("SELECT id, event, pending, delivered FROM notifications ORDER BY id")
        self.assertEqual([(r["id"], r["pending"], r["delivered"]) for r in rows], [(1, 0, 1), (2, 0, 1)])


class RunQueueIsBounded(unittest.TestCase):
    def test_firings_past_limits_max_queued_are_refused_and_the_queue_drains(self):
        cfg = HEADER + """limits:
  max_concurrent: 1
  max_queued: 2
jobs:
  - name: hold
    schedule: manual
    concurrency: allow
    command: 'while [ ! -e {dir}/go ]; do sleep 0.05; done'
"""
        with Daemon(cfg) as d:
            running = trigger(d, "hold", 202).json["run_id"]
            d.wait_log(r"run %d job=hold .*status=RUNNING" % running)
            queued = [trigger(d, "hold", 202).json["run_id"] for _ in range(2)]
            r = trigger(d, "hold", 409)
            self.assertIn("limits.max_queued", json.dumps(r.json))
            depth = re.search(r"^cronvisor_queue_depth (\d+)$",
                              d.api("GET", "/metrics", token=OPERATOR).body.decode(), re.M)
            self.assertEqual(int(depth.group(1)), 2)
            open(os.path.join(d.tmp, "go"), "w").close()
            done = sorted(d.run_finished("hold") for _ in range(3))
            self.assertEqual(done, [(i, "SUCCESS") for i in [running] + queued])
        rows = d.db("SELECT id, status FROM runs WHERE job='hold' ORDER BY id")
        self.assertEqual([(r["id"], r["status"]) for r in rows],
                         [(i, "SUCCESS") for i in [running] + queued])


class BoundsFromTheConfig(unittest.TestCase):
    def setUp(self):
        self.rx = Receiver()

    def tearDown(self):
        self.rx.close()

    def test_notification_history_keeps_limits_notification_history_entries(self):
        cfg = HEADER.replace("auth:", "limits:\n  notification_history: 2\nauth:") + """notify:
  - name: hook
    url: http://127.0.0.1:%(p)d/hook
    events: [run.failed]
jobs:
  - name: bad
    schedule: manual
    command: 'exit 1'
""" % {"p": self.rx.port}
        with Daemon(cfg) as d:
            for n in range(3):
                run_id = int(trigger(d, "bad", 202).json["run_id"])
                d.run_finished("bad")
                # this run's own delivery (an earlier run's line must not satisfy the wait)
                self.rx.wait(lambda p, doc, i=run_id: p == "/hook" and doc.get("run", {}).get("id") == i)
                logged(d, r"notify hook: run.failed bad delivered")
            listed = d.api("GET", "/api/notifications", token=OPERATOR).json
            items = listed["notifications"] if isinstance(listed, dict) else listed
            self.assertEqual(len(items), 2, items)
        self.assertEqual(len([p for p, doc in self.rx.received if p == "/hook"]), 3)

    def test_the_rate_limit_of_a_token_comes_from_auth_rate_settings(self):
        cfg = HEADER.replace("auth:\n", "auth:\n  rate_per_second: 1\n  rate_burst: 2\n") + """jobs:
  - name: quick
    schedule: manual
    concurrency: allow
    command: 'true'
"""
        with Daemon(cfg) as d:
            # a burst of 2, then 1 a second: six requests in a row cannot all pass (the default
            # of 5/s with a burst of 20 would let them)
            codes = [d.api("POST", "/api/jobs/quick/trigger", token=OPERATOR).status for _ in range(6)]
            self.assertEqual(codes[:2], [202, 202])
            self.assertIn(429, codes)
            text = d.api("GET", "/metrics", token=OPERATOR).body.decode()
            m = re.search(r"^cronvisor_http_rate_limited_total (\d+)$", text, re.M)
            self.assertEqual(int(m.group(1)), codes.count(429))


if __name__ == "__main__":
    main()

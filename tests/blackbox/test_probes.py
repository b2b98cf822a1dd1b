"""Health probes and notifications end to end: real redis-server and PostgreSQL started by the
test (temporary directories, free loopback ports, PostgreSQL as the unprivileged `postgres`
user), local HTTP servers that answer slowly or never, and a local webhook receiver."""
import http.server
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from cvtest import Daemon, main

REDIS_PASS = "redis-pw-4f7a9c"
PG_PASS = "pg-pw-8b1e2d"
HOOK_TOKEN = "hook-tok-93c5e1"
PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port that has no event to wait on
    raise AssertionError("port %d not open within %ds" % (port, timeout))


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cvtest-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASS,
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cvtest-pg-")
        self.data = os.path.join(self.dir, "data")
        self.proc = None
        self.as_root = os.getuid() == 0
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PG_PASS + "\n")
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run([PG_BIN + "/initdb", "-D", self.data, "-U", "cv", "-A", "scram-sha-256", "--pwfile", pwfile,
                   "--no-sync"], check=True)

    def _cmd(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if self.as_root else argv

    def _run(self, argv, check):
        return subprocess.run(self._cmd(argv), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self.proc = subprocess.Popen(
            self._cmd([PG_BIN + "/postgres", "-D", self.data, "-p", str(self.port), "-k", self.dir,
                       "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # runuser forwards SIGTERM: a smart shutdown
            self.proc.wait(timeout=60)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Receiver:
    """Webhook receiver (and the slow / hanging endpoints of the http probes)."""

    def __init__(self):
        self.received = []  # (path, doc), in arrival order
        self.cond = threading.Condition()
        self.bodies = []
        self.release = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/slow"):
                    outer.release.wait(0.7)
                elif self.path.startswith("/hang"):
                    outer.release.wait(60)
                body = b"all good here"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n).decode()
                outer.bodies.append((self.path, raw))
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

    def wait(self, event=None, subject=None, path=None, timeout=30):
        """The first notification received so far (or within timeout) that matches."""
        def match(p, doc):
            return ((not path or p.startswith(path)) and (event is None or doc.get("event") == event) and
                    (not subject or subject in (doc.get("job"), (doc.get("probe") or {}).get("name"))))
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for p, doc in self.received:
                    if match(p, doc):
                        return doc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s %s notification within %ds" % (event, subject, timeout))
                self.cond.wait(left)

    def close(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()


def expect(d, pattern, timeout=30.0):
    """Like Daemon.wait_log, but also finds a line logged before the call (probes report in any
    order). Returns the match of the first line matching."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for rec in list(d.log):
            m = rx.search(rec.get("msg", ""))
            if m:
                return m
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no log line matching %r within %.1fs; last lines:\n%s" %
                                 (pattern, timeout, d.tail()))
        try:
            if d.lines.get(timeout=min(left, 1.0)) is None:
                raise AssertionError("daemon exited before %r:\n%s" % (pattern, d.tail()))
        except queue.Empty:
            pass


def assert_no_secrets(test, d, rx):
    text = "\n".join(json.dumps(r) for r in d.log) + (getattr(d, "stdout", "") or "")
    text += "\n".join(b for _, b in rx.bodies)
    for s in (REDIS_PASS, PG_PASS, HOOK_TOKEN):
        test.assertNotIn(s, text)
    for row in d.db("SELECT error FROM runs WHERE error IS NOT NULL"):
        for s in (REDIS_PASS, PG_PASS, HOOK_TOKEN):
            test.assertNotIn(s, row["error"])


ENV = {"REDIS_PASS": REDIS_PASS, "PG_PASS": PG_PASS, "HOOK_TOKEN": HOOK_TOKEN}


class ServiceProbes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = Redis()
        cls.redis.start()
        cls.pg = Postgres()
        cls.pg.start()
        cls.rx = Receiver()

    def setUp(self):
        # a failed test may leave a server stopped
        for srv in (self.redis, self.pg):
            if srv.proc is None or srv.proc.poll() is not None:
                srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.rx.close()
        cls.redis.cleanup()
        cls.pg.cleanup()

    def test_redis_and_postgres_go_unhealthy_when_stopped_and_recover_with_notifications(self):
        cfg = """
server:
  listen: "127.0.0.1:0"
probes:
  - name: cache
    type: redis
    url: redis://:${REDIS_PASS}@localhost:%(rp)d/0
    interval: 500ms
    timeout: 2s
  - name: db
    type: postgres
    conninfo: host=localhost port=%(pp)d user=cv password=${PG_PASS} dbname=postgres sslmode=disable
    interval: 500ms
    timeout: 3s
notify:
  - name: hook
    url: http://127.0.0.1:%(wp)d/hook?token=${HOOK_TOKEN}
    events: [probe.unhealthy, probe.recovered]
  - name: chat
    url: http://127.0.0.1:%(wp)d/slack/${HOOK_TOKEN}
    format: slack
    events: [probe.unhealthy]
jobs:
  - name: needs-cache
    schedule: "* * * * * *"
    requires: [cache, store]
    command: "true"
""" % {"rp": self.redis.port, "pp": self.pg.port, "wp": self.rx.port}
        with Daemon(cfg, env=ENV) as d:
            expect(d, r"probe cache status=healthy")
            expect(d, r"probe db status=healthy")
            expect(d, r"probe store status=healthy")

            self.redis.stop()
            t0 = time.monotonic()
            m = d.wait_log(r"probe cache status=unhealthy previous=\w+ latency=\d+ms: (.*)", timeout=5)
            self.assertLess(time.monotonic() - t0, 0.5 + 2 + 1.0)
            self.assertRegex(m.group(1), r"(?i)refused|lost|closed")
            doc = self.rx.wait("probe.unhealthy", "cache", path="/hook")
            self.assertEqual(doc["probe"]["status"], "unhealthy")
            self.assertEqual(doc["probe"]["previous"], "healthy")
            # the Slack-compatible notifier gets only a text
            doc = self.rx.wait(path="/slack")
            self.assertEqual(list(doc), ["text"])
            self.assertIn("Probe cache is unhealthy", doc["text"])
            run_id, status = d.run_finished("needs-cache")
            self.assertEqual(status, "SKIPPED")

            self.redis.start()
            d.wait_log(r"probe cache status=healthy previous=unhealthy")
            self.rx.wait("probe.recovered", "cache", path="/hook")
            _, status = d.run_finished("needs-cache")
            while status == "SKIPPED":  # a firing decided before the change arrived
                _, status = d.run_finished("needs-cache")
            self.assertEqual(status, "SUCCESS")

            self.pg.stop()
            m = d.wait_log(r"probe db status=unhealthy previous=\w+ latency=\d+ms: (.*)", timeout=8)
            self.assertRegex(m.group(1), r"(?i)refused|connection|server")
            self.rx.wait("probe.unhealthy", "db", path="/hook")
            self.pg.start()
            d.wait_log(r"probe db status=healthy previous=unhealthy", timeout=30)
            self.rx.wait("probe.recovered", "db", path="/hook")
        skipped = d.db("SELECT error FROM runs WHERE job='needs-cache' AND status='SKIPPED'")
        self.assertTrue(skipped)
        self.assertRegex(skipped[0]["error"], r"^required probe 'cache' is unhealthy: .+")
        assert_no_secrets(self, d, self.rx)

    def test_wrong_passwords_are_reported_without_the_password(self):
        cfg = """
probes:
  - name: cache
    type: redis
    url: redis://:wrong-${REDIS_PASS}@127.0.0.1:%(rp)d
    interval: 10s
  - name: db
    type: postgres
    conninfo: postgresql://cv:wrong-${PG_PASS}@127.0.0.1:%(pp)d/postgres?sslmode=disable
    interval: 10s
jobs: []
""" % {"rp": self.redis.port, "pp": self.pg.port}
        with Daemon(cfg, env=ENV) as d:
            m = expect(d, r"probe cache status=unhealthy .*?latency=\d+ms: (.*)")
            self.assertRegex(m.group(1), r"AUTH failed: WRONGPASS")
            m = expect(d, r"probe db status=unhealthy .*?latency=\d+ms: (.*)")
            self.assertRegex(m.group(1), r"password authentication failed")
        assert_no_secrets(self, d, self.rx)


class HttpProbesAndRunEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rx = Receiver()

    @classmethod
    def tearDownClass(cls):
        cls.rx.close()

    def test_slow_is_degraded_and_hanging_is_unhealthy_at_its_timeout_while_others_keep_their_schedule(self):
        cfg = """
probes:
  - name: slowweb
    type: http
    url: http://127.0.0.1:%(p)d/slow
    degraded_after: 300ms
    body_contains: good
    interval: 10s
    timeout: 3s
  - name: hangweb
    type: http
    url: http://127.0.0.1:%(p)d/hang
    interval: 10s
    timeout: 1s
  - name: tick
    type: tcp
    address: 127.0.0.1:%(p)d
    interval: 100ms
  - name: bad-exec
    type: exec
    command: "echo nope; exit 3"
    interval: 10s
jobs: []
""" % {"p": self.rx.port}
        with Daemon(cfg) as d:
            m = expect(d, r"probe slowweb status=degraded previous=unknown latency=(\d+)ms: (.*)")
            self.assertGreaterEqual(int(m.group(1)), 300)
            self.assertEqual(m.group(2), "HTTP 200 (slower than 300ms)")
            m = expect(d, r"probe hangweb status=unhealthy previous=unknown latency=(\d+)ms: (.*)")
            self.assertEqual(m.group(2), "timed out after 1000ms")
            self.assertLess(int(m.group(1)), 1500)
            m = expect(d, r"probe bad-exec status=unhealthy .*?latency=\d+ms: (.*)")
            self.assertEqual(m.group(1), "exit 3: nope")
        msgs = [r.get("msg", "") for r in d.log]
        hang_at = next(i for i, s in enumerate(msgs) if s.startswith("probe hangweb status=unhealthy"))
        ticks = [s for s in msgs[:hang_at] if s.startswith("probe tick check status=healthy")]
        self.assertGreaterEqual(len(ticks), 5, "tick kept checking while hangweb hung")

    def test_a_failing_job_notifies_run_failed_then_run_recovered(self):
        cfg = """
notify:
  - name: hook
    url: http://127.0.0.1:%(p)d/runs?token=${HOOK_TOKEN}
    events: [run.failed, run.recovered]
    jobs: [flaky]
jobs:
  - name: flaky
    schedule: "* * * * * *"
    command: 'test -f {dir}/ok || { echo "not yet"; exit 4; }'
  - name: other
    schedule: "* * * * * *"
    command: "exit 1"
""" % {"p": self.rx.port}
        with Daemon(cfg, env=ENV) as d:
            doc = self.rx.wait("run.failed", "flaky", path="/runs")
            self.assertEqual(doc["run"]["status"], "FAILED")
            self.assertEqual(doc["run"]["exit_code"], 4)
            open(os.path.join(d.tmp, "ok"), "w").close()
            doc = self.rx.wait("run.recovered", "flaky", path="/runs")
            self.assertEqual(doc["run"]["status"], "SUCCESS")
            d.wait_log(r"notify hook: run.recovered flaky delivered \(attempt 1, HTTP 200\) to http://127.0.0.1:\d+/\.\.\.")
        self.assertFalse([b for p, b in self.rx.bodies if '"job":"other"' in b and p.startswith("/runs")])
        assert_no_secrets(self, d, self.rx)


if __name__ == "__main__":
    main()

"""Monitored jobs (`ping:`): jobs run elsewhere report by POST /ping/{job}[/start|/fail] with their
own ping key; a scheduled instant without a ping within its grace becomes a FAILED run
"no ping received", notified like any failed run."""
import http.server
import json
import threading
import time
import unittest

from cvtest import Daemon, main, response_schema, run_cli, schema_errors

TOKEN = "api-token-not-a-ping-key-1"
KEYS = {"far": "ping-key-far-4711", "startjob": "ping-key-start-0815", "failjob": "ping-key-fail-42",
        "burst": "ping-key-burst-99", "missy": "ping-key-missy-7", "kept": "ping-key-kept-3"}

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: ops
      role: operator
      token: %s
limits:
  ping_max_body: 1KiB
  pings_per_minute: 5
notify:
  - name: receiver
    url: "http://127.0.0.1:%%d/hook"
    events: [run.failed]
    jobs: [missy]
jobs:
  - name: far
    schedule: "0 0 1 1 *"
    ping: {key: "${KEY_FAR}"}
  - name: startjob
    schedule: "0 0 1 1 *"
    ping: {key: "%s"}
  - name: failjob
    schedule: "0 0 1 1 *"
    ping: {key: "%s"}
  - name: burst
    schedule: "0 0 1 1 *"
    ping: {key: "%s"}
  - name: missy
    schedule: "* * * * * *"
    ping: {grace: 2s, key: "%s"}
  - name: kept
    schedule: "* * * * * *"
    ping: {grace: 3s, key: "%s"}
""" % (TOKEN, KEYS["startjob"], KEYS["failjob"], KEYS["burst"], KEYS["missy"], KEYS["kept"])


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()


class Pings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        cls.srv.daemon_threads = True
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        cls.d = Daemon(CONFIG % cls.srv.server_address[1], env={"KEY_FAR": KEYS["far"]}).start()
        cls.d.port()
        cls.lock = threading.Lock()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.srv.shutdown()
        cls.srv.server_close()

    def ping(self, job, suffix="", key=None, raw=None, headers=None, query=""):
        h = dict(headers or {})
        if key is not None:
            h.setdefault("Authorization", "Bearer " + key)
        return self.d.api("POST", "/ping/%s%s%s" % (job, suffix, query), raw=raw, headers=h)

    def finished(self, job):
        """The durable end of a run of job (the store's log line) and its row."""
        with self.lock:
            run_id, status = self.d.run_finished(job)
        return status, self.d.db("SELECT * FROM runs WHERE id=?", (run_id,))[0]

    def test_a_success_ping_records_a_run_with_the_body_as_output(self):
        r = self.ping("far", key=KEYS["far"], raw=b"backup done: 12 files\n",
                      query="?items_processed=12")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(schema_errors(r.json, response_schema("/ping/{job}", "post", 202)), [])
        status, row = self.finished("far")
        self.assertEqual(status, "SUCCESS")
        self.assertEqual(row["trigger"], "ping")
        self.assertEqual(row["output_tail"], "backup done: 12 files\n")
        self.assertEqual(row["items_processed"], 12)

    def test_start_then_success_gives_the_run_a_duration_and_json_items(self):
        self.assertEqual(self.ping("startjob", "/start", key=KEYS["startjob"]).status, 202)
        self.d.wait_log(r"ping run \d+ of job startjob started")
        time.sleep(0.05)  # not a wait for an event: the run must last, so its duration shows
        r = self.ping("startjob", key=None, headers={"X-Ping-Key": KEYS["startjob"],
                                                     "Content-Type": "application/json"},
                      raw=json.dumps({"items_processed": 3, "items_failed": 1}).encode())
        self.assertEqual(r.status, 202, r)
        status, row = self.finished("startjob")
        self.assertEqual(status, "PARTIAL")  # items_failed > 0, as for command runs
        self.assertGreater(row["finished_at"], row["started_at"])
        self.assertEqual(row["duration_ms"], row["finished_at"] - row["started_at"])
        self.assertEqual((row["items_processed"], row["items_failed"]), (3, 1))

    def test_a_fail_ping_records_a_failed_run(self):
        self.assertEqual(self.ping("failjob", "/fail", key=KEYS["failjob"], raw=b"disk full").status, 202)
        status, row = self.finished("failjob")
        self.assertEqual(status, "FAILED")
        self.assertEqual(row["output_tail"], "disk full")

    def test_a_wrong_key_an_api_token_and_an_unknown_job_are_refused_alike(self):
        wrong = self.ping("far", key="not-the-key")
        token = self.ping("far", key=TOKEN)
        none = self.ping("far")
        unknown = self.ping("nosuchjob", key=KEYS["far"])
        for r in (wrong, token, none, unknown):
            self.assertEqual(r.status, 404, r)
        self.assertEqual(wrong.body, unknown.body)  # nothing tells which jobs exist
        self.assertEqual(self.ping("far", key=KEYS["missy"]).status, 404)  # another job's key

    def test_a_body_over_limits_ping_max_body_is_413(self):
        r = self.ping("burst", key=KEYS["burst"], raw=b"x" * 2048)
        self.assertEqual(r.status, 413, r)
        self.assertIn("ping_max_body", r.json["error"]["message"])
        m = self.d.api("GET", "/metrics", token=TOKEN).body.decode()
        self.assertIn('cronvisor_ping_refused_total{reason="size"} 1', m)

    def test_pings_past_limits_pings_per_minute_are_429(self):
        codes = [self.ping("burst", key=KEYS["burst"]).status for _ in range(7)]
        self.assertEqual(codes[:5], [202] * 5)
        self.assertEqual(codes[5:], [429, 429])

    def test_run_now_of_a_monitored_job_is_409(self):
        r = self.d.api("POST", "/api/jobs/far/trigger", token=TOKEN)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["error"]["code"], "ping_job")

    def test_the_api_shows_the_ping_url_and_never_the_key(self):
        body = self.d.api("GET", "/api/jobs", token=TOKEN).body
        jobs = {j["name"]: j for j in json.loads(body)["jobs"]}
        self.assertEqual(jobs["far"]["action"]["type"], "ping")
        self.assertEqual(jobs["far"]["action"]["ping_url"], "/ping/far")
        for key in KEYS.values():
            self.assertNotIn(key.encode(), body)
            self.assertFalse(any(key in json.dumps(rec) for rec in self.d.log), key)

    def test_a_missed_instant_is_a_failed_run_at_instant_plus_grace_and_is_notified(self):
        with self.lock:
            run_id, status = self.d.run_finished("missy")
        self.assertEqual(status, "FAILED")
        row = self.d.db("SELECT * FROM runs WHERE id=?", (run_id,))[0]
        self.assertEqual(row["trigger"], "ping:missed")
        self.assertIn("no ping received", row["error"])
        late = row["finished_at"] - row["scheduled_for"]
        self.assertGreaterEqual(late, 2000)
        self.assertLess(late, 2000 + 1500, row)  # on time, give or take a loaded machine
        with self.lock:
            self.d.wait_log(r"notify receiver: run\.failed missy delivered")
        self.assertTrue(any(b.get("event") == "run.failed" for b in Receiver.bodies), Receiver.bodies)
        m = self.d.api("GET", "/metrics", token=TOKEN).body.decode()
        self.assertRegex(m, r'cronvisor_ping_missed_total\{job="missy"\} [1-9]')

    def test_pings_within_the_grace_keep_instants_from_being_missed(self):
        # missy misses an instant every second: its log lines are the test's clock
        def tick(n):
            with self.lock:
                for _ in range(n):
                    self.d.run_finished("missy")
        first = None
        for _ in range(3):
            r = self.ping("kept", key=KEYS["kept"])
            self.assertEqual(r.status, 202, r)
            first = first or self.d.db("SELECT strftime('%s','now') * 1000 AS t")[0]["t"]
            tick(2)
        last = self.d.db("SELECT strftime('%s','now') * 1000 AS t")[0]["t"]
        # every instant of kept up to `last` has been checked once missy's check of an instant
        # after it has run (kept's grace is 1 s longer: wait for one more)
        with self.lock:
            while True:
                run_id, _ = self.d.run_finished("missy")
                if self.d.db("SELECT scheduled_for FROM runs WHERE id=?", (run_id,))[0]["scheduled_for"] > last + 1000:
                    break
        missed = self.d.db("SELECT scheduled_for FROM runs WHERE job='kept' AND trigger='ping:missed' "
                           "AND scheduled_for BETWEEN ? AND ?", (first, last - 1000))
        self.assertEqual(missed, [])
        # and once the pings stop, its instants are missed again
        with self.lock:
            while True:
                run_id, status = self.d.run_finished("kept")
                row = self.d.db("SELECT * FROM runs WHERE id=?", (run_id,))[0]
                if row["trigger"] == "ping:missed" and row["scheduled_for"] > last:
                    break


class Check(unittest.TestCase):
    def check(self, jobs):
        import os
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="cvtest-"), "c.yaml")
        with open(path, "w") as f:
            f.write("jobs:\n" + jobs)
        return run_cli("check", "-c", path)

    def test_check_refuses_a_ping_job_with_a_command_or_without_a_key(self):
        r = self.check('  - name: a\n    schedule: "@daily"\n    command: "true"\n    ping: {key: k}\n'
                       '  - name: b\n    schedule: "@daily"\n    ping: {grace: 5m}\n')
        self.assertEqual(r.returncode, 78, r)
        self.assertRegex(r.stderr + r.stdout, r"c\.yaml:4:\d+: job 'a': a job with ping: runs elsewhere")
        self.assertRegex(r.stderr + r.stdout, r"c\.yaml:8:\d+: job 'b': ping: needs a key")

    def test_check_accepts_a_ping_job(self):
        r = self.check('  - name: a\n    schedule: "@daily"\n    ping: {grace: 10m, key: k}\n')
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()

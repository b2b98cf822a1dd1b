"""`cronvisor run`: the supervisor end to end, against the real binary and its SQLite history."""
import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
import unittest

from cvtest import BIN, Daemon, main, run_cli

HEADER = """
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
jobs:
"""


def config(jobs, extra=""):
    return extra + HEADER + jobs


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped or a zombie.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Firing(unittest.TestCase):
    def test_a_per_second_job_fires_on_each_instant_with_its_environment(self):
        jobs = """
  - name: tick
    schedule: "* * * * * *"
    command: 'echo "$CRONVISOR_JOB $CRONVISOR_RUN_ID $CRONVISOR_TRIGGER $CRONVISOR_SCHEDULED_FOR $(date +%s%N)"'
"""
        with Daemon(config(jobs)) as d:
            for _ in range(3):
                d.run_finished("tick")
        rows = d.db("SELECT * FROM runs WHERE job='tick' ORDER BY id")
        self.assertGreaterEqual(len(rows), 3)
        done = [r for r in rows if r["status"] == "SUCCESS"][:3]
        self.assertEqual(len(done), 3)
        for a, b in zip(done, done[1:]):
            self.assertEqual(b["scheduled_for"] - a["scheduled_for"], 1000)
        for r in done:
            self.assertEqual(r["scheduled_for"] % 1000, 0)
            self.assertLess(r["started_at"] - r["scheduled_for"], 500)
            self.assertIn("tick %d cron " % r["id"], r["output_tail"])
            # The scheduler wakes a few ms ahead to prepare the run; the child never starts early.
            self.assertGreaterEqual(r["started_at"], r["scheduled_for"])
            child_ns = int(r["output_tail"].strip().split()[-1])
            self.assertGreaterEqual(child_ns, r["scheduled_for"] * 10 ** 6)

    def test_reboot_jobs_run_once_at_start(self):
        jobs = """
  - name: boot
    schedule: "@reboot"
    command: "echo booted"
"""
        with Daemon(config(jobs)) as d:
            run_id, status = d.run_finished("boot")
            self.assertEqual(status, "SUCCESS")
        self.assertEqual(len(d.db("SELECT id FROM runs WHERE job='boot'")), 1)


class CatchUp(unittest.TestCase):
    def test_a_missed_firing_younger_than_the_deadline_runs_once_on_start(self):
        jobs = """
  - name: minutely
    schedule: "* * * * *"
    catch_up: 2m
    command: "true"
  - name: no-catch-up
    schedule: "* * * * *"
    command: "true"
"""
        d = Daemon(config(jobs)).start()
        try:
            run_id = int(d.wait_log(r"run (\d+) job=minutely trigger=catch_up").group(1))
            d.wait_log(r"run %d SUCCESS recorded" % run_id)
        finally:
            d.stop()
        d2 = Daemon(config(jobs), workdir=d.tmp).start()
        try:
            d2.wait_log(r"cronvisor .* running")
        finally:
            d2.stop()
        rows = d2.db("SELECT scheduled_for FROM runs WHERE trigger='catch_up'")
        instants = [r["scheduled_for"] for r in rows]
        self.assertEqual(len(instants), len(set(instants)), "an instant was caught up twice")
        self.assertEqual(instants[0] % 60000, 0)
        self.assertFalse(d2.db("SELECT id FROM runs WHERE job='no-catch-up' AND trigger='catch_up'"))


class AutoDisable(unittest.TestCase):
    def test_a_job_is_disabled_after_n_consecutive_failures_with_an_audit_record(self):
        jobs = """
  - name: broken
    schedule: "* * * * * *"
    auto_disable_after: 2
    command: "exit 1"
"""
        with Daemon(config(jobs)) as d:
            d.wait_log(r"job broken: disabled after 2 consecutive failures", timeout=20)
        rows = d.db("SELECT status FROM runs WHERE job='broken'")
        self.assertEqual([r["status"] for r in rows], ["FAILED", "FAILED"])
        a = d.db("SELECT * FROM audit WHERE action='job.auto_disabled'")
        self.assertEqual(len(a), 1)
        self.assertEqual(a[0]["actor"], "system")
        ov = d.db("SELECT * FROM job_overrides WHERE job='broken'")
        self.assertEqual(ov[0]["value"], "false")


class Outcomes(unittest.TestCase):
    def test_statuses_exit_codes_and_the_result_protocol(self):
        tmp_script = "/tmp/cvtest-noexec-%d.sh" % os.getpid()
        with open(tmp_script, "w") as f:
            f.write("#!/bin/sh\necho hi\n")
        os.chmod(tmp_script, stat.S_IRUSR | stat.S_IWUSR)
        jobs = """
  - name: ok
    schedule: "@reboot"
    command: "echo out; echo err >&2"
  - name: fails
    schedule: "@reboot"
    command: "exit 3"
  - name: missing
    schedule: "@reboot"
    command: ["/nonexistent/program", "x"]
  - name: noexec
    schedule: "@reboot"
    command: ["%s"]
  - name: partial
    schedule: "@reboot"
    command: |
      echo '{"items_processed": 10}' >&$CRONVISOR_RESULT_FD
      echo '{"items_failed": 2, "summary": {"batches": 3}}' >&$CRONVISOR_RESULT_FD
      echo 'not json' >&$CRONVISOR_RESULT_FD
  - name: killed
    schedule: "@reboot"
    command: "kill -9 $$$$"
""" % tmp_script
        try:
            with Daemon(config(jobs)) as d:
                got = {}
                for _ in range(6):
                    m = d.wait_log(r"run (\d+) job=(\S+) status=(\w+) exit=(-?\d+) signal=(\d+)")
                    got[m.group(2)] = (m.group(3), int(m.group(4)), int(m.group(5)))
        finally:
            os.unlink(tmp_script)
        self.assertEqual(got["ok"], ("SUCCESS", 0, 0))
        self.assertEqual(got["fails"], ("FAILED", 3, 0))
        self.assertEqual(got["missing"], ("FAILED", 127, 0))
        self.assertEqual(got["noexec"], ("FAILED", 126, 0))
        self.assertEqual(got["partial"][0], "PARTIAL")
        self.assertEqual(got["killed"], ("FAILED", -1, 9))
        rows = {r["job"]: r for r in d.db("SELECT * FROM runs")}
        self.assertIn("stdout", rows["ok"]["output_tail"])
        self.assertIn("err", rows["ok"]["output_tail"])
        self.assertEqual(rows["partial"]["items_processed"], 10)
        self.assertEqual(rows["partial"]["items_failed"], 2)
        self.assertEqual(json.loads(rows["partial"]["summary_json"]), {"batches": 3})
        self.assertIn("result-error", rows["partial"]["output_tail"])
        self.assertIn("not found", rows["missing"]["error"])
        for r in rows.values():
            self.assertGreater(r["finished_at"], 0)
            self.assertIsNotNone(r["cpu_user_ms"])

    def test_resource_use_is_recorded(self):
        jobs = """
  - name: hog
    schedule: "@reboot"
    command: "python3 -c 'b = bytearray(60 * 1024 * 1024); [x for x in range(3000000)]'"
"""
        with Daemon(config(jobs)) as d:
            self.assertEqual(d.run_finished("hog")[1], "SUCCESS")
        r = d.db("SELECT * FROM runs WHERE job='hog'")[0]
        self.assertGreater(r["max_rss_kb"], 50000)
        self.assertGreater(r["cpu_user_ms"] + r["cpu_sys_ms"], 20)


class Timeouts(unittest.TestCase):
    def test_a_timeout_kills_the_whole_process_group_grandchildren_included(self):
        jobs = """
  - name: overrun
    schedule: "@reboot"
    timeout: 1s
    kill_grace: 1s
    command: "sleep 1000 & echo $! > {dir}/grandchild.pid; trap '' TERM; sleep 1000"
"""
        with Daemon(config(jobs)) as d:
            run_id, status = d.run_finished("overrun")
            self.assertEqual(status, "TIMED_OUT")
            with open(os.path.join(d.tmp, "grandchild.pid")) as f:
                gc = int(f.read())
            self.assertFalse(pid_alive(gc), "grandchild %d survived the timeout" % gc)
        r = d.db("SELECT * FROM runs WHERE id=?", (run_id,))[0]
        self.assertIn("timed out", r["error"])
        self.assertGreaterEqual(r["duration_ms"], 1000)


class Retries(unittest.TestCase):
    def test_a_failing_job_is_retried_with_exponential_backoff_each_attempt_its_own_row(self):
        jobs = """
  - name: flaky
    schedule: "@reboot"
    retries:
      max: 2
      backoff: 1s
      backoff_max: 30s
    command: "exit 1"
"""
        with Daemon(config(jobs)) as d:
            for _ in range(3):
                d.run_finished("flaky")
        rows = d.db("SELECT * FROM runs WHERE job='flaky' ORDER BY id")
        self.assertEqual([r["attempt"] for r in rows], [1, 2, 3])
        self.assertEqual([r["trigger"] for r in rows], ["reboot", "retry", "retry"])
        self.assertEqual(rows[1]["retry_of"], rows[0]["id"])
        self.assertEqual(rows[2]["retry_of"], rows[0]["id"])
        gap1 = rows[1]["started_at"] - rows[0]["finished_at"]
        gap2 = rows[2]["started_at"] - rows[1]["finished_at"]
        self.assertGreaterEqual(gap1, 990)
        self.assertLess(gap1, 1900)
        self.assertGreaterEqual(gap2, 1990)
        self.assertLess(gap2, 2900)


class Concurrency(unittest.TestCase):
    def run_policy(self, policy):
        jobs = """
  - name: slow
    schedule: "* * * * * *"
    concurrency: %s
    kill_grace: 1s
    command: "sleep 2.5"
""" % policy
        with Daemon(config(jobs)) as d:
            d.wait_log(r"run \d+ job=slow .*status=(SKIPPED|CANCELLED)", timeout=20) if policy != "allow" \
                else d.wait_log(r"run \d+ job=slow .*status=RUNNING", timeout=20)
            if policy == "allow":
                d.wait_log(r"run \d+ job=slow .*status=RUNNING", timeout=20)
                d.wait_log(r"run \d+ job=slow .*status=SUCCESS", timeout=20)
        return d.db("SELECT * FROM runs WHERE job='slow' ORDER BY id")

    def test_forbid_skips_a_firing_while_a_run_is_active(self):
        rows = self.run_policy("forbid")
        skipped = [r for r in rows if r["status"] == "SKIPPED"]
        self.assertTrue(skipped)
        self.assertIn("still active", skipped[0]["error"])

    def test_allow_runs_firings_side_by_side(self):
        rows = self.run_policy("allow")
        a, b = rows[0], rows[1]
        self.assertLess(b["started_at"], a["finished_at"])

    def test_replace_cancels_the_running_one(self):
        rows = self.run_policy("replace")
        cancelled = [r for r in rows if r["status"] == "CANCELLED" and "replaced by" in (r["error"] or "")]
        self.assertTrue(cancelled, rows)

    def test_the_global_limit_queues_runs_in_order(self):
        jobs = "".join("""
  - name: q%d
    schedule: "@reboot"
    command: "sleep 0.3"
""" % i for i in range(4))
        with Daemon(config(jobs, "limits:\n  max_concurrent: 1\n")) as d:
            for _ in range(4):
                d.wait_log(r"run \d+ job=q\d status=SUCCESS")
        rows = d.db("SELECT * FROM runs ORDER BY started_at")
        for a, b in zip(rows, rows[1:]):
            self.assertGreaterEqual(b["started_at"], a["finished_at"])
        self.assertGreater(max(r["started_at"] - r["queued_at"] for r in rows), 250)


class Output(unittest.TestCase):
    def test_a_job_writing_a_gigabyte_keeps_head_and_tail_and_the_daemon_stays_small(self):
        jobs = """
  - name: flood
    schedule: "@reboot"
    max_output: 64KiB
    command: "head -c 1000000000 /dev/zero | tr '\\\\0' x; echo; echo THE-END"
"""
        with Daemon(config(jobs)) as d:
            self.assertEqual(d.run_finished("flood", timeout=180)[1], "SUCCESS")
            with open("/proc/%d/status" % d.proc.pid) as f:
                hwm = int([l for l in f if l.startswith("VmHWM")][0].split()[1])
        r = d.db("SELECT * FROM runs WHERE job='flood'")[0]
        self.assertGreaterEqual(r["output_bytes"], 1000000000)
        self.assertLess(len(r["output_tail"]), 80 * 1024)
        self.assertIn("dropped", r["output_tail"])
        self.assertIn("THE-END", r["output_tail"])
        self.assertLess(hwm, 64 * 1024, "daemon peak RSS %d kB" % hwm)


class HttpJobs(unittest.TestCase):
    def setUp(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            seen = []

            def log_message(self, *a):
                pass

            def do_POST(self):
                Handler.seen.append(dict(self.headers))
                if self.path == "/good":
                    body = json.dumps({"items_processed": 7, "items_failed": 0, "summary": {"ok": True}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/boom":
                    self.send_response(500)
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"boom")
                else:
                    time.sleep(5)

        self.handler = Handler
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_http_jobs_send_secret_headers_and_read_results(self):
        port = self.server.server_address[1]
        jobs = """
  - name: good
    schedule: "@reboot"
    http:
      method: POST
      url: "http://127.0.0.1:%d/good"
      headers:
        Authorization: "Bearer ${CRON_SECRET}"
  - name: boom
    schedule: "@reboot"
    http:
      method: POST
      url: "http://127.0.0.1:%d/boom"
  - name: hang
    schedule: "@reboot"
    timeout: 1s
    http:
      method: POST
      url: "http://127.0.0.1:%d/hang"
""" % (port, port, port)
        with Daemon(config(jobs), env={"CRON_SECRET": "s3cr3t-value-xyz"}) as d:
            got = {}
            for _ in range(3):
                m = d.wait_log(r"run \d+ job=(good|boom|hang) status=(\w+)")
                got[m.group(1)] = m.group(2)
        self.assertEqual(got, {"good": "SUCCESS", "boom": "FAILED", "hang": "TIMED_OUT"})
        auth = [h.get("Authorization") for h in self.handler.seen if h.get("Authorization")]
        self.assertEqual(auth, ["Bearer s3cr3t-value-xyz"])
        self.assertTrue(any(h.get("X-Triggered-By", "").startswith("cronvisor") for h in self.handler.seen))
        rows = {r["job"]: r for r in d.db("SELECT * FROM runs")}
        self.assertEqual(rows["good"]["items_processed"], 7)
        self.assertIn("500", rows["boom"]["error"])
        for rec in d.log:
            self.assertNotIn("s3cr3t-value-xyz", json.dumps(rec))


class Durability(unittest.TestCase):
    def test_a_run_left_running_by_a_killed_daemon_becomes_abandoned_on_restart(self):
        jobs = """
  - name: long
    schedule: "@reboot"
    command: "sleep 30"
"""
        d = Daemon(config(jobs)).start()
        m = d.wait_log(r"run (\d+) job=long .*status=RUNNING")
        run_id = int(m.group(1))
        # The RUNNING row is committed by the store's worker; wait for the record, not for time.
        d.wait_log(r"run %d RUNNING recorded" % run_id)
        d.kill9()
        d2 = Daemon(config(jobs), workdir=d.tmp).start()
        try:
            d2.wait_log(r"1 run\(s\) left RUNNING or QUEUED by a previous daemon marked ABANDONED")
        finally:
            d2.stop()
        row = d2.db("SELECT * FROM runs WHERE id=?", (run_id,))[0]
        self.assertEqual(row["status"], "ABANDONED")
        self.assertTrue(row["error"])
        self.assertFalse(d2.db("SELECT id FROM runs WHERE status IN ('RUNNING','QUEUED')"))

    def test_the_finished_line_is_written_only_once_the_record_is_durable(self):
        # The end of run 1 cannot be committed while this test holds SQLite's write lock; the
        # daemon is killed then. Its log must not claim an outcome that the restart shows lost.
        jobs = """
  - name: gated
    schedule: manual
    command: 'cat "{dir}/go" > /dev/null'
  - name: next
    schedule: manual
    command: "true"
"""
        cfg = config(jobs, "limits:\n  max_concurrent: 1\n")
        d = Daemon(cfg)
        os.mkfifo(os.path.join(d.tmp, "go"))
        d.start()
        try:
            gated = d.api("POST", "/api/jobs/gated/trigger").json["run_id"]
            d.wait_log(r"run %d RUNNING recorded" % gated)
            queued = d.api("POST", "/api/jobs/next/trigger").json["run_id"]
            d.wait_log(r"run %d QUEUED recorded" % queued)
            lock = sqlite3.connect(d.db_path, timeout=10, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
            with open(os.path.join(d.tmp, "go"), "w"):
                pass  # the gated job reads EOF and exits 0
            # The executor starts the queued run in the same step as it ends run 1: once run 2
            # runs, run 1's end has been handled and its record waits for the lock.
            d.wait_log(r"run %d job=next .*status=RUNNING" % queued)
            d.kill9()
            lock.rollback()
            lock.close()
        finally:
            if d.proc.poll() is None:
                d.kill9()
        said = [r["msg"] for r in d.log if re.search(r"run %d job=gated .*status=" % gated, r.get("msg", ""))]
        # (after SQLite's busy timeout, 5 s, the write fails and the line says NOT RECORDED)
        self.assertFalse([m for m in said if "status=RUNNING" not in m and "NOT RECORDED" not in m],
                         "an outcome logged but never recorded:\n%s" % d.tail())
        d2 = Daemon(cfg, workdir=d.tmp).start()
        try:
            d2.wait_log(r"run\(s\) left RUNNING or QUEUED by a previous daemon marked ABANDONED")
        finally:
            d2.stop()
        self.assertEqual(d2.db("SELECT status FROM runs WHERE id=?", (gated,))[0]["status"], "ABANDONED")

    def test_the_finished_line_follows_the_commit_of_the_record(self):
        jobs = """
  - name: quick
    schedule: "@reboot"
    command: "true"
"""
        with Daemon(config(jobs)) as d:
            run_id, status = d.run_finished("quick")
            self.assertEqual(status, "SUCCESS")
            if not any(r.get("msg") == "run %d SUCCESS recorded" % run_id for r in d.log):
                d.wait_log(r"run %d SUCCESS recorded" % run_id)  # (it came later on ca71b51)
            msgs = [r.get("msg", "") for r in d.log]
            committed = msgs.index("run %d SUCCESS recorded" % run_id)
            logged = [i for i, m in enumerate(msgs) if re.match(r"run %d job=quick .*status=SUCCESS" % run_id, m)]
            self.assertEqual(len(logged), 1, d.tail())
            self.assertLess(committed, logged[0], d.tail())


class Signals(unittest.TestCase):
    def test_sigterm_stops_running_jobs_and_records_their_end(self):
        jobs = """
  - name: sleeper
    schedule: "@reboot"
    command: "sleep 60"
"""
        d = Daemon(config(jobs)).start()
        d.wait_log(r"run \d+ job=sleeper .*status=RUNNING")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait_exit(30), 0)
        row = d.db("SELECT * FROM runs WHERE job='sleeper'")[0]
        self.assertEqual(row["status"], "CANCELLED")
        self.assertIn("shutting down", row["error"])
        self.assertEqual(row["signal"], signal.SIGTERM)

    def test_a_second_sigint_kills_jobs_that_ignore_sigterm_at_once(self):
        jobs = """
  - name: stubborn
    schedule: "@reboot"
    command: "trap '' TERM; echo '{\\"progress\\": 0.5}' >&$CRONVISOR_RESULT_FD; sleep 60"
"""
        d = Daemon(config(jobs).replace("shutdown_grace: 5s", "shutdown_grace: 60s")).start()
        d.wait_log(r"run \d+ job=stubborn .*status=RUNNING")
        d.wait_log(r"run \d+ progress=0.50")  # the job has set its trap
        d.signal(signal.SIGINT)
        d.wait_log(r"SIGINT: shutting down")
        d.signal(signal.SIGINT)
        d.wait_log(r"SIGINT again: killing running jobs now")
        self.assertEqual(d.wait_exit(15), 0)
        row = d.db("SELECT * FROM runs WHERE job='stubborn'")[0]
        self.assertEqual(row["status"], "CANCELLED", row)
        self.assertEqual(row["signal"], signal.SIGKILL)

    def test_sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_applies(self):
        jobs = """
  - name: first
    schedule: "@reboot"
    command: "true"
"""
        with Daemon(config(jobs)) as d:
            d.run_finished("first")
            with open(d.config_path, "w") as f:
                f.write(config("""
  - name: broken
    schedule: "61 * * * *"
    command: "true"
"""))
            d.signal(signal.SIGHUP)
            d.wait_log(r"reload refused")
            with open(d.config_path, "w") as f:
                f.write(config("""
  - name: second
    schedule: "* * * * * *"
    command: "true"
"""))
            d.signal(signal.SIGHUP)
            d.wait_log(r"configuration reloaded")
            d.run_finished("second")


class Pid1(unittest.TestCase):
    def test_as_pid_1_orphans_are_reaped_and_sigterm_shuts_down_gracefully(self):
        probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("unshare --pid is not permitted here: %s" % probe.stderr.decode().strip())
        jobs = """
  - name: orphaner
    schedule: "* * * * * *"
    concurrency: allow
    command: "(sleep 0.2 &) ; (sleep 0.2 &) ; true"
  - name: sleeper
    schedule: "@reboot"
    command: "sleep 60"
"""
        d = Daemon(config(jobs), prefix=["unshare", "--pid", "--fork", "--mount-proc"]).start()
        for _ in range(3):
            d.run_finished("orphaner")
        # The orphans of three runs have been re-parented to the daemon (PID 1) and must be reaped.
        for _ in range(4):
            d.wait_log(r"reaped orphan pid \d+", timeout=10)
        inner = subprocess.run(["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True).stdout.split()
        self.assertEqual(len(inner), 1, "the daemon runs under unshare")
        daemon_pid = int(inner[0])
        os.kill(daemon_pid, signal.SIGTERM)  # unshare does not forward signals to its child
        self.assertEqual(d.wait_exit(30), 0)
        row = d.db("SELECT * FROM runs WHERE job='sleeper'")[0]
        self.assertEqual(row["status"], "CANCELLED")
        ps = subprocess.run(["ps", "-eo", "stat=,ppid="], capture_output=True, text=True).stdout
        self.assertFalse([l for l in ps.splitlines() if l.split()[0].startswith("Z") and int(l.split()[1]) == daemon_pid])


class Once(unittest.TestCase):
    def test_once_runs_one_job_in_the_foreground_and_exits_with_its_status(self):
        import tempfile
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(config("""
  - name: hello
    schedule: manual
    command: "echo hello-from-job; exit 4"
"""))
        r = run_cli("run", "-c", path, "--once", "hello", cwd=tmp)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("hello-from-job", r.stdout)
        self.assertIn("FAILED", r.stdout)


if __name__ == "__main__":
    main()

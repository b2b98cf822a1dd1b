"""The operator commands (`cronvisor jobs|runs|trigger|logs|cancel|enable|disable`) against a real
daemon: human tables, --json (the API's JSON), exit statuses (77 bad token, 66 unknown job or run,
69 server down, 64 usage, 65 refused, trigger --wait's run status), `logs -f` receiving lines
while the run is still running (over the WebSocket), and the token never printed."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from cvtest import BIN, Daemon, WsClient, main, run_cli

OPS, VIEW = "ops-secret-token-7f3a9c", "viewer-secret-token-2b8e41"

CONFIG = """
server:
  ws_max_queued_bytes: 16384
limits:
  live_output_lines: 100000
auth:
  tokens:
    - name: ops
      role: operator
      token: %s
    - name: dash
      role: viewer
      token: %s
jobs:
  - name: good
    schedule: manual
    command: 'echo all fine'
  - name: broken
    schedule: manual
    command: 'echo about to fail; exit 3'
  - name: gated
    schedule: manual
    command: 'echo first; read x < {dir}/gate; echo second'
  - name: sleeper
    schedule: manual
    command: 'exec sleep 300'
  - name: flood
    schedule: manual
    command: 'echo start; read x < {dir}/gate; i=0; while [ $i -lt 30000 ]; do echo $i; i=$((i+1)); done'
  - name: later
    schedule: '0 3 * * *'
    command: 'true'
""" % (OPS, VIEW)


def free_closed_port():
    """A TCP port on 127.0.0.1 where nothing listens (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CliClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.url = "http://127.0.0.1:%d" % cls.d.port()
        os.mkfifo(os.path.join(cls.d.tmp, "gate"))
        cls.outputs = []  # every stdout and stderr of the CLI, checked for the tokens at the end

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def cli(self, *args, token=OPS, env=None, timeout=90):
        """`cronvisor CMD --url URL ARGS...` (no --url when env sets CRONVISOR_URL)."""
        e = {"CRONVISOR_TOKEN": token or ""}
        e.update(env or {})
        argv = list(args) if "CRONVISOR_URL" in e else [args[0], "--url", self.url] + list(args[1:])
        r = run_cli(*argv, env=e, timeout=timeout)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def api_run(self, run_id):
        r = self.d.api("GET", "/api/runs/%d" % run_id, token=VIEW)
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_run_status(self, run_id, pred, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            run = self.api_run(run_id)
            if pred(run["status"]):
                return run
            if time.monotonic() > deadline:
                self.fail("run %d stayed %s" % (run_id, run["status"]))
            time.sleep(0.05)  # the API has no long poll for one run; a short, bounded re-read

    # ---- jobs ----

    def test_jobs_prints_an_aligned_table(self):
        r = self.cli("jobs")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "SCHEDULE", "ENABLED", "NEXT", "LAST", "ACTIVE"])
        names = [l.split()[0] for l in lines[1:]]  # by name, as GET /api/jobs pages them
        self.assertEqual(names, sorted(["good", "broken", "gated", "sleeper", "flood", "later"]))
        col = lines[0].index("ENABLED")
        for l in lines[1:]:  # aligned: every row has its ENABLED value under the header
            self.assertIn(l[col:col + 3], ("yes", "no "), l)
        later = [l for l in lines if l.startswith("later")][0]
        self.assertIn("0 3 * * *", later)
        self.assertRegex(later, r"\bin \d+")  # the next fire, relative
        self.assertNotIn("\x1b[", r.stdout)  # no colour when not a terminal

    def test_jobs_json_is_the_apis_json(self):
        r = self.cli("jobs", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        api = self.d.api("GET", "/api/jobs", token=VIEW).json
        self.assertEqual([j["name"] for j in got["jobs"]], [j["name"] for j in api["jobs"]])
        self.assertEqual(set(got["jobs"][0]), set(api["jobs"][0]))

    def test_url_from_the_environment(self):
        r = self.cli("jobs", env={"CRONVISOR_URL": self.url + "/"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("good", r.stdout)

    # ---- exit statuses ----

    def test_a_bad_token_exits_77_without_printing_it(self):
        for args in (("jobs",), ("trigger", "good"), ("trigger", "--wait", "good"), ("logs", "-f", "1")):
            r = self.cli(*args, token="wrong-token-5d1c0f")
            self.assertEqual(r.returncode, 77, (args, r.stdout, r.stderr))
            self.assertNotIn("wrong-token-5d1c0f", r.stdout + r.stderr)
        r = self.cli("jobs", token=None)
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn("CRONVISOR_TOKEN", r.stderr)

    def test_a_viewer_cannot_trigger_77(self):
        r = self.cli("trigger", "good", token=VIEW)
        self.assertEqual(r.returncode, 77, r.stderr)

    def test_unknown_job_or_run_exits_66(self):
        for args in (("trigger", "nope"), ("trigger", "--wait", "nope"), ("enable", "nope"),
                     ("disable", "nope"), ("runs", "--job", "nope"), ("logs", "987654"),
                     ("logs", "-f", "987654"), ("cancel", "987654")):
            r = self.cli(*args)
            self.assertEqual(r.returncode, 66, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)

    def test_server_down_exits_69(self):
        url = "http://127.0.0.1:%d" % free_closed_port()
        for args in (("jobs",), ("runs",), ("trigger", "--wait", "good"), ("logs", "-f", "1"),
                     ("cancel", "1")):
            r = run_cli(args[0], "--url", url, *args[1:], env={"CRONVISOR_TOKEN": OPS})
            self.outputs.append(r.stdout + r.stderr)
            self.assertEqual(r.returncode, 69, (args, r.stderr))
            self.assertIn("cannot", r.stderr)

    def test_usage_errors_exit_64(self):
        for args in (("trigger",), ("trigger", "a", "b"), ("jobs", "--bogus"), ("runs", "--limit", "0"),
                     ("runs", "--since", "yesterday"), ("logs", "abc"), ("jobs", "--wait"),
                     ("runs", "--url")):
            r = self.cli(*args)
            self.assertEqual(r.returncode, 64, (args, r.stdout, r.stderr))
        r = self.cli("jobs", token=OPS + "\r\nX-Injected: 1")  # never sent, never echoed
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("CRONVISOR_TOKEN", r.stderr)
        r = run_cli("jobs", "--url", "ftp://x")
        self.assertEqual(r.returncode, 64, r.stderr)

    def test_help_of_each_command(self):
        top = run_cli("--help")
        for cmd in ("jobs", "runs", "trigger", "logs", "cancel", "enable", "disable"):
            self.assertRegex(top.stdout, r"\n  %s\b" % cmd)
            r = run_cli(cmd, "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: cronvisor %s" % cmd, r.stdout)
            self.assertIn("CRONVISOR_TOKEN", r.stdout)
            self.assertIn("77", r.stdout)
        self.assertIn("1 FAILED", run_cli("trigger", "--help").stdout)

    # ---- trigger ----

    def test_trigger_prints_the_run_and_json_is_the_apis(self):
        r = self.cli("trigger", "good")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.match(r"run (\d+) of good: (RUNNING|QUEUED)\n$", r.stdout)
        self.assertTrue(m, r.stdout)
        self.wait_run_status(int(m.group(1)), lambda s: s == "SUCCESS")
        r = self.cli("trigger", "--json", "good")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = json.loads(r.stdout)
        self.assertEqual(t["job"], "good")
        self.assertIn(t["status"], ("RUNNING", "QUEUED"))
        self.wait_run_status(t["run_id"], lambda s: s == "SUCCESS")

    def test_trigger_wait_exits_with_the_runs_status(self):
        r = self.cli("trigger", "--wait", "broken")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertRegex(r.stdout, r"run \d+ of broken: FAILED, exit 3")
        r = self.cli("trigger", "--wait", "good")
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        self.assertRegex(r.stdout, r"run \d+ of good: SUCCESS")
        r = self.cli("trigger", "--wait", "--json", "broken")
        self.assertEqual(r.returncode, 1, r.stderr)
        run = json.loads(r.stdout)
        self.assertEqual((run["job"], run["status"], run["exit_code"]), ("broken", "FAILED", 3))

    def test_trigger_wait_on_a_cancelled_run_exits_4(self):
        p = subprocess.Popen([BIN, "trigger", "--wait", "--url", self.url, "sleeper"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, CRONVISOR_TOKEN=OPS))
        first = p.stdout.readline()  # "run N of sleeper: RUNNING, waiting for its end"
        m = re.match(r"run (\d+) of sleeper", first)
        self.assertTrue(m, first)
        self.assertIsNone(p.poll())
        r = self.cli("cancel", m.group(1))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cancellation requested", r.stdout)
        out, err = p.communicate(timeout=60)
        self.outputs.append(first + out + err)
        self.assertEqual(p.returncode, 4, (out, err))
        self.assertIn("CANCELLED", out)
        # the run has ended: cancelling it again is refused
        r = self.cli("cancel", "--json", m.group(1))
        self.assertEqual(r.returncode, 65, (r.stdout, r.stderr))

    # ---- runs ----

    def test_runs_table_filters_and_json(self):
        self.assertEqual(self.cli("trigger", "--wait", "broken").returncode, 1)
        self.assertEqual(self.cli("trigger", "--wait", "good").returncode, 0)
        r = self.cli("runs", "--job", "broken", "--since", "1h")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "JOB", "STATUS", "TRIGGER", "STARTED", "DURATION", "EXIT"])
        self.assertTrue(len(lines) >= 2)
        for l in lines[1:]:
            f = l.split()
            self.assertEqual((f[1], f[2], f[3], f[-1]), ("broken", "FAILED", "api:ops", "3"), l)
        r = self.cli("runs", "--status", "success", "--limit", "1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        page = json.loads(r.stdout)
        self.assertEqual(len(page["runs"]), 1)
        self.assertEqual(page["runs"][0]["status"], "SUCCESS")
        self.assertIn("next_cursor", page)
        # --since in the future: none
        r = self.cli("runs", "--since", "2999-01-01T00:00:00Z", "--json")
        self.assertEqual(json.loads(r.stdout)["runs"], [])

    # ---- enable / disable ----

    def test_disable_then_enable(self):
        r = self.cli("disable", "later")
        self.assertEqual((r.returncode, r.stdout), (0, "later: disabled\n"), r.stderr)
        self.assertFalse(self.d.api("GET", "/api/jobs/later", token=VIEW).json["enabled"])
        r = self.cli("enable", "--json", "later")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["enabled"])
        self.assertTrue(self.d.api("GET", "/api/jobs/later", token=VIEW).json["enabled"])

    # ---- logs ----

    def test_logs_of_a_finished_run(self):
        r = self.cli("trigger", "--json", "--wait", "broken")
        run_id = json.loads(r.stdout)["id"]
        r = self.cli("logs", str(run_id))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("about to fail", r.stdout)
        r = self.cli("logs", "--json", str(run_id))  # the API's log chunk
        self.assertEqual(r.returncode, 0, r.stderr)
        chunk = json.loads(r.stdout)
        self.assertEqual((chunk["run_id"], chunk["complete"]), (run_id, True))
        self.assertIn("about to fail", chunk["data"])
        r = self.cli("logs", "-f", str(run_id))  # nothing to follow: prints and ends
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("about to fail", r.stdout)

    def follow_gated(self, start_after_first):
        """Runs `gated`; logs -f must show "first" while the run waits at its gate."""
        r = self.cli("trigger", "--json", "gated")
        run_id = json.loads(r.stdout)["run_id"]
        if start_after_first:  # the line is already in the log when logs -f starts
            deadline = time.monotonic() + 60
            while "first" not in self.d.api("GET", "/api/runs/%d/log" % run_id, token=VIEW).json["data"]:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        p = subprocess.Popen([BIN, "logs", "-f", "--url", self.url, str(run_id)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, CRONVISOR_TOKEN=VIEW))
        try:
            line = p.stdout.readline()
            self.assertEqual(line, "first\n")
            # the run cannot end before the gate opens: the line came live
            self.assertIn(self.api_run(run_id)["status"], ("RUNNING",))
            self.assertIsNone(p.poll())
            with open(os.path.join(self.d.tmp, "gate"), "w") as g:
                g.write("go\n")
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        self.outputs.append(line + out + err)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out, "second\n")  # each line exactly once
        self.assertEqual(self.api_run(run_id)["status"], "SUCCESS")

    def test_logs_follow_receives_lines_before_the_run_ends(self):
        self.follow_gated(start_after_first=False)

    def test_logs_follow_started_mid_run_prints_each_line_once(self):
        self.follow_gated(start_after_first=True)

    def test_logs_follow_attached_during_a_flood_prints_every_line_once_in_order(self):
        # logs -f is subscribed (it printed "start", read from the log after subscribing), then
        # stopped (SIGSTOP) while 30,000 lines pour out, so it cannot keep up: the hub drops it
        # when its queue passes 16 KiB. Resumed, it reconnects and takes what it missed from the
        # log: each line printed exactly once, in order, none lost.
        r = self.cli("trigger", "--json", "flood")
        run_id = json.loads(r.stdout)["run_id"]
        deadline = time.monotonic() + 60
        while "start" not in self.d.api("GET", "/api/runs/%d/log" % run_id, token=VIEW).json["data"]:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        p = subprocess.Popen([BIN, "logs", "-f", "--url", self.url, str(run_id)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, CRONVISOR_TOKEN=VIEW))
        try:
            self.assertEqual(p.stdout.readline(), "start\n")
            p.send_signal(signal.SIGSTOP)
            with open(os.path.join(self.d.tmp, "gate"), "w") as g:
                g.write("go\n")
            self.d.wait_log(r"dropping slow client \"dash\"", timeout=60)
            p.send_signal(signal.SIGCONT)
            out, err = p.communicate(timeout=90)
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        self.outputs.append(out + err)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out.splitlines(), [str(i) for i in range(30000)])

    def test_output_events_carry_their_line_number(self):
        r = self.cli("trigger", "--json", "gated")
        run_id = json.loads(r.stdout)["run_id"]
        ws = WsClient(self.d.port(), headers={"Authorization": "Bearer " + VIEW})
        try:
            ws.recv_until(lambda m: m.get("type") == "authenticated")
            ws.send({"type": "subscribe", "topic": "run:%d" % run_id})
            ws.recv_until(lambda m: m.get("type") == "subscribed")
            deadline = time.monotonic() + 60
            while "first" not in self.d.api("GET", "/api/runs/%d/log" % run_id, token=VIEW).json["data"]:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            with open(os.path.join(self.d.tmp, "gate"), "w") as g:
                g.write("go\n")
            m, _ = ws.recv_until(lambda m: m.get("type") == "output" and m.get("line") == "second")
            self.assertEqual(m["line_no"], 2)
        finally:
            ws.close()
        self.wait_run_status(run_id, lambda s: s == "SUCCESS")

    # ---- the token ----

    def test_zz_no_output_ever_contains_a_token(self):
        # runs last (zz): every command above has put its output in self.outputs
        self.assertGreater(len(self.outputs), 10)
        for text in self.outputs:
            self.assertNotIn(OPS, text)
            self.assertNotIn(VIEW, text)


if __name__ == "__main__":
    main()

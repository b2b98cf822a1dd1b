"""limits.live_log, pushed past with a small limit: the output of a running run kept in memory
for GET /api/runs/{id}/log (before this key a fixed 1 MiB per running run). Past it the live log
stops growing and says truncated (cronvisor_output_live_log_truncated_total); what it holds is
the output's beginning, intact; the run's record keeps the whole output once it ends
(within max_output), and the memory is given back (cronvisor_output_live_log_bytes). Applies on
reload (SIGHUP)."""
import os
import re
import signal
import time
import unittest

from cvtest import Daemon, main

TOKEN = "operator-token-live-log-44"
LINE = "x" * 99  # 100 bytes with its newline

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - {{name: ops, role: operator, token: %s}}
limits:
  live_log: {live}
jobs:
  - name: chatty
    schedule: manual
    concurrency: allow
    command: 'for i in $(seq 1 300); do echo "%s"; done; while [ ! -f "{dir}/go" ]; do sleep 0.05; done'
""" % (TOKEN, LINE)


def poll(fn, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: not within %.0fs (last: %r)" % (what, timeout, last))


class LiveLog(unittest.TestCase):
    def setUp(self):
        self.d = Daemon("")
        self.write("8KiB")
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.port()

    def write(self, live):
        with open(self.d.config_path, "w") as f:
            f.write(CONFIG.replace("{dir}", self.d.tmp).format(live=live))

    def api(self, method, path):
        return self.d.api(method, path, token=TOKEN)

    def metric(self, name):
        text = self.api("GET", "/metrics").body.decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        self.assertIsNotNone(m, name)
        return float(m.group(1))

    def log(self, run_id):
        r = self.api("GET", "/api/runs/%d/log" % run_id)
        self.assertEqual(r.status, 200, r)
        return r.json

    def truncated_run(self, limit):
        """Starts chatty (300 lines of 100 bytes, then it waits); returns its id and live log once
        the live log is full."""
        go = os.path.join(self.d.tmp, "go")
        if os.path.exists(go):
            os.unlink(go)
        r = self.api("POST", "/api/jobs/chatty/trigger")
        self.assertEqual(r.status, 202, r)
        run_id = r.json["run_id"]
        log = poll(lambda: (lambda j: j if j["truncated"] else None)(self.log(run_id)),
                   "run %d's live log truncated" % run_id)
        self.assertFalse(log["complete"])
        self.assertLessEqual(log["size"], limit)
        self.assertGreater(log["size"], limit - 100)
        self.assertEqual(log["data"], (LINE + "\n") * (log["size"] // 100))
        return run_id, log

    def finish(self, run_id):
        open(os.path.join(self.d.tmp, "go"), "w").close()
        _, status = self.d.run_finished("chatty")
        self.assertEqual(status, "SUCCESS")
        log = poll(lambda: (lambda j: j if j["complete"] else None)(self.log(run_id)),
                   "run %d's log complete" % run_id)
        self.assertFalse(log["truncated"])
        lines = log["data"].splitlines()  # the record has it all ("<time> stdout | <line>")
        self.assertEqual(len(lines), 300)
        self.assertTrue(all(line.endswith(" stdout | " + LINE) for line in lines), lines[:2])

    def test_the_live_log_of_a_running_run_stops_at_limits_live_log_and_nothing_is_lost(self):
        run_id, log = self.truncated_run(8192)
        self.assertEqual(self.metric("cronvisor_output_live_log_truncated_total"), 1)
        self.assertEqual(self.metric("cronvisor_output_live_log_bytes"), log["size"])
        self.finish(run_id)
        self.assertEqual(self.metric("cronvisor_output_live_log_bytes"), 0)

        # limits.live_log 8KiB -> 16KiB on reload: the next run keeps twice as much
        self.write("16KiB")
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"configuration reloaded from \S+: limits\.live_log$")
        run_id, log = self.truncated_run(16384)
        self.assertEqual(self.metric("cronvisor_output_live_log_truncated_total"), 2)
        self.finish(run_id)
        self.assertEqual(self.d.stop(), 0, self.d.tail())


if __name__ == "__main__":
    main()

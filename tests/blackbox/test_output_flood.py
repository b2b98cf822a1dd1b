"""A job that floods its output must not starve the loop (issue 13, finding 3).

`yes` runs as a job next to a job due every second: every per-second firing during the flood runs
(none skipped) and not much late, /healthz keeps answering quickly, the daemon's RSS stays bounded,
and the flood's run keeps its status and the last lines of its output.
"""
import re
import threading
import time
import unittest

from cvtest import Daemon, main

CONFIG = """
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
jobs:
  - name: flood
    schedule: "@reboot"
    timeout: 8s
    command: "exec yes"
  - name: tick
    schedule: "* * * * * *"
    command: "true"
"""

# Generous bounds: CI is noisy and ASan is slow; on base the loop stalled for seconds.
LATE_MAX_MS = 500
HEALTHZ_MAX_S = 1.0
RSS_GROWTH_MAX = 32 * 1024 * 1024


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class OutputFlood(unittest.TestCase):
    def test_a_flooding_job_neither_skips_firings_nor_stalls_the_api_nor_grows_memory(self):
        d = Daemon(CONFIG)
        with d:
            d.port()
            m = d.wait_log(r"run (\d+) job=flood .*status=RUNNING")  # @reboot: at once
            flood_id = int(m.group(1))
            t_start = time.time()
            base_rss = rss_bytes(d.proc.pid)
            samples, worst_rss = [], [base_rss]
            stop = threading.Event()

            def watch():
                while not stop.is_set():
                    t0 = time.monotonic()
                    r = d.api("GET", "/healthz", timeout=30)
                    samples.append((time.monotonic() - t0, r.status))
                    worst_rss[0] = max(worst_rss[0], rss_bytes(d.proc.pid))
                    stop.wait(0.1)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            rid, status = d.run_finished("flood", timeout=60)
            t_end = time.time()
            stop.set()
            w.join(timeout=60)
            metrics = d.api("GET", "/metrics").body.decode()
            d.run_finished("tick")  # one more firing after the flood: the history is complete
        self.assertEqual((rid, status), (flood_id, "TIMED_OUT"))

        # (a) every per-second instant of the flood's window ran, not much late
        lo, hi = int(t_start) + 1, int(t_end) - 1
        rows = d.db("SELECT scheduled_for, started_at, status FROM runs WHERE job='tick' "
                    "AND scheduled_for BETWEEN ? AND ? ORDER BY scheduled_for", (lo * 1000, hi * 1000))
        got = [r["scheduled_for"] // 1000 for r in rows]
        self.assertEqual(got, list(range(lo, hi + 1)), "firings skipped during the flood")
        for r in rows:
            self.assertEqual(r["status"], "SUCCESS")
            self.assertLess(r["started_at"] - r["scheduled_for"], LATE_MAX_MS, r)

        # (b) /healthz answered quickly all along
        self.assertGreater(len(samples), 10)
        self.assertTrue(all(s == 200 for _, s in samples))
        self.assertLess(max(t for t, _ in samples), HEALTHZ_MAX_S)

        # (c) bounded memory
        self.assertLess(worst_rss[0] - base_rss, RSS_GROWTH_MAX,
                        "RSS grew by %d MiB" % ((worst_rss[0] - base_rss) >> 20))

        # the flood was read (throttled, not stopped) and kept its head and tail exactly
        flood = d.db("SELECT output_tail, output_bytes FROM runs WHERE id=?", (flood_id,))[0]
        self.assertGreater(flood["output_bytes"], 4 * 1024 * 1024)
        tail = flood["output_tail"]
        self.assertTrue(re.search(r"^\[\.\.\. \d+ bytes dropped \.\.\.\]$", tail, re.M), tail[-300:])
        self.assertTrue(tail.endswith(" stdout | y\n"), tail[-300:])
        self.assertGreater(len(tail), 512 * 1024)  # head and tail of the 1 MiB budget
        self.assertGreater(metric(metrics, "cronvisor_output_bytes_total"), 4 * 1024 * 1024)
        self.assertGreater(metric(metrics, "cronvisor_output_throttled_total"), 0)
        self.assertGreater(metric(metrics, "cronvisor_output_live_dropped_lines_total"), 0)


if __name__ == "__main__":
    main()

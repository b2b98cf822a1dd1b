#!/usr/bin/env python3
"""Hostile load: a job's output flood next to a job due every second (issue 13, finding 3).

    python3 bench/hostile_output.py                 # both floods, 3 repetitions each
    python3 bench/hostile_output.py --flood yes --reps 5

Floods (1 GiB each, as jobs of the real daemon): `yes | head -c 1G` (2-byte lines: the worst case
for per-line work) and `head -c 1G /dev/zero` (no newline: lines cut at 16 KiB). While a flood
runs, the bench records:
  - the per-second job's firings in the flood's window: how many were due, ran, and started within
    10 ms of their instant (started_at - scheduled_for, from the run history), and the worst one;
  - /healthz latency, one request every 50 ms: p50, p99, max;
  - the daemon's RSS growth from just before the flood to its peak during the flood.
Targets (issue 13): >= 99 % of the firings on time within 10 ms, /healthz p99 <= 20 ms, RSS growth
<= 16 MiB. Needs a Release (or RelWithDebInfo) build: --build DIR (default ./build). Python 3
standard library only.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FLOODS = {
    "yes": "yes | head -c {size}",
    "zero": "head -c {size} /dev/zero",
}

CONFIG = """
server:
  listen: "127.0.0.1:0"
storage:
  sqlite:
    path: {db}
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
{limits}
jobs:
  - name: tick
    schedule: "* * * * * *"
    command: "true"
  - name: flood
    schedule: "@reboot"
    timeout: 5m
    command: "sleep 3; {flood}"
"""


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Run:
    """One daemon, one flood."""

    def __init__(self, binary, root, kind, size, budget):
        self.dir = tempfile.mkdtemp(prefix="cv-hostile-", dir=root)
        self.db = os.path.join(self.dir, "cv.db")
        cfg = os.path.join(self.dir, "cv.yaml")
        with open(cfg, "w") as f:
            limits = "limits:\n  output_read_budget: %s" % budget if budget else ""
            f.write(CONFIG.format(db=self.db, flood=FLOODS[kind].format(size=size), limits=limits))
        self.proc = subprocess.Popen([binary, "run", "-c", cfg, "--log-format", "json"],
                                     cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.port = None
        self.flood_started = self.flood_finished = None
        self.events = threading.Condition()
        threading.Thread(target=self._log, daemon=True).start()

    def _log(self):
        for raw in self.proc.stderr:
            try:
                msg = json.loads(raw).get("msg", "")
            except ValueError:
                continue
            with self.events:
                m = re.search(r"listening on https?://\S+:(\d+)$", msg)
                if m:
                    self.port = int(m.group(1))
                if re.search(r"job=flood .*status=RUNNING", msg):
                    self.flood_started = time.time()
                elif re.search(r"job=flood .*status=(SUCCESS|FAILED|TIMED_OUT)", msg):
                    self.flood_finished = time.time()
                self.events.notify_all()

    def wait(self, pred, timeout):
        with self.events:
            if not self.events.wait_for(pred, timeout):
                raise SystemExit("timed out waiting for the daemon")

    def healthz(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        t0 = time.monotonic()
        c.request("GET", "/healthz")
        c.getresponse().read()
        c.close()
        return (time.monotonic() - t0) * 1000.0

    def measure(self):
        self.wait(lambda: self.port is not None and self.flood_started is not None, 30)
        time.sleep(2.5)  # the flood's command sleeps 3 s: the daemon is settled, not flooded yet
        base = rss_kb(self.proc.pid)
        t_flood = time.time()
        peak, lat = base, []
        while self.flood_finished is None:
            lat.append(self.healthz())
            peak = max(peak, rss_kb(self.proc.pid))
            time.sleep(0.05)
            if time.time() - t_flood > 300:
                raise SystemExit("the flood did not end within 5 minutes")
        t_end = self.flood_finished
        self.proc.terminate()
        self.proc.wait(timeout=60)
        con = sqlite3.connect(self.db)
        lo, hi = int(t_flood) + 1, int(t_end)
        rows = con.execute("SELECT scheduled_for, started_at FROM runs WHERE job='tick' AND "
                           "scheduled_for BETWEEN ? AND ?", (lo * 1000, hi * 1000)).fetchall()
        out = con.execute("SELECT output_bytes FROM runs WHERE job='flood'").fetchone()
        con.close()
        late = [s - f for f, s in rows if s]
        due = hi - lo + 1
        return {
            "flood_s": round(t_end - t_flood - 0.5, 1),
            "output_bytes": out[0] if out else 0,
            "due": due,
            "ran": len(rows),
            "on_time_10ms_pct": round(100.0 * sum(1 for x in late if x <= 10) / due, 1),
            "worst_late_ms": max(late) if late else None,
            "healthz_p50_ms": round(pct(lat, 50), 2),
            "healthz_p99_ms": round(pct(lat, 99), 2),
            "healthz_max_ms": round(max(lat), 2),
            "healthz_n": len(lat),
            "rss_growth_mib": round((peak - base) / 1024.0, 1),
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--flood", choices=["yes", "zero", "both"], default="both")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--size", default="1G", help="bytes each flood writes (head -c syntax)")
    ap.add_argument("--budget", help="limits.output_read_budget (default: the daemon's)")
    args = ap.parse_args()
    binary = os.path.join(os.path.abspath(args.build), "cronvisor")
    if not os.access(binary, os.X_OK):
        sys.exit("missing %s: build first" % binary)
    root = tempfile.mkdtemp(prefix="cv-hostile-bench-", dir=args.dir)
    kinds = ["yes", "zero"] if args.flood == "both" else [args.flood]
    try:
        for kind in kinds:
            results = []
            for i in range(args.reps):
                r = Run(binary, root, kind, args.size, args.budget).measure()
                results.append(r)
                print("%-5s rep %d: %s" % (kind, i + 1, json.dumps(r)), flush=True)
            for key, best in (("on_time_10ms_pct", max), ("worst_late_ms", min),
                              ("healthz_p99_ms", min), ("rss_growth_mib", min)):
                vals = [r[key] for r in results if r[key] is not None]
                print("%-5s %-18s best %-8s median %s" % (kind, key, best(vals),
                                                          statistics.median(vals)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Claim latency as the executor sees it, with N daemons sharing one PostgreSQL database.

Starts a throw-away PostgreSQL 15 (fsync on; see tests/blackbox/pgserver.py), then N `cronvisor
run` daemons with JOBS jobs firing every second (command `true`) for SECONDS seconds, and reads
the executor's debug lines: `run N job=J claimed in Tus` (the claim won) and `... claimed by
another instance (Tus)` (lost). T is from posting MSG_CLAIM to handling MSG_CLAIM_REPLY.

    python3 bench/cluster_bench.py [daemons=3] [jobs=20] [seconds=15]   (CRONVISOR_BIN=build/cronvisor)
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import pgserver  # noqa: E402
from cvtest import Daemon  # noqa: E402

CONFIG = """
instance: node-{n}
storage:
  postgres: "{dsn}"
server:
  listen: "127.0.0.1:0"
jobs:
{jobs}
"""
JOB = """  - name: j{i}
    schedule: "* * * * * *"
    concurrency: allow
    command: "true"
"""


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1)] if v else 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    secs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    with pgserver.PgServer(fsync=True) as pg:
        dsn = pg.create_db("bench")
        js = "".join(JOB.format(i=i) for i in range(jobs))
        ds = [Daemon(CONFIG.format(n=k, dsn=dsn, jobs=js)).start() for k in range(n)]
        for d in ds:
            d.wait_log(r"running: instance")
        time.sleep(secs)
        for d in ds:
            d.stop()
        won, lost, won_st, lost_st = [], [], [], []
        for d in ds:
            for rec in d.log:
                m = re.search(r"claimed in (\d+)us \(store (\d+)us\)", rec.get("msg", ""))
                if m:
                    won.append(int(m.group(1)) / 1000.0)
                    won_st.append(int(m.group(2)) / 1000.0)
                m = re.search(r"claimed by another instance \((\d+)us, store (\d+)us\)",
                              rec.get("msg", ""))
                if m:
                    lost.append(int(m.group(1)) / 1000.0)
                    lost_st.append(int(m.group(2)) / 1000.0)
        runs = pg.query("bench", "SELECT COUNT(*), COUNT(DISTINCT (job, scheduled_for)) FROM runs")
        print("daemons=%d jobs=%d seconds=%d runs=%s distinct firings=%s" %
              (n, jobs, secs, runs[0][0], runs[0][1]))
        for name, v in (("won, executor", won), ("won, store", won_st), ("lost, executor", lost),
                        ("lost, store", lost_st)):
            print("claims %-15s n=%5d  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms" %
                  (name, len(v), pct(v, 50), pct(v, 99), max(v) if v else 0))


if __name__ == "__main__":
    main()

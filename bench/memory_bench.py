#!/usr/bin/env python3
"""Memory of an idle daemon (issue 15): RSS with 10,000 realistic jobs after paging through every
job twice (GET /api/jobs, limit + cursor), the same with 1,000,000 runs in history, and the cost of
a connection (1,000 idle authenticated WebSocket clients, 1,000 idle HTTP/1.1 keep-alive
connections). Each build given is measured in the same run, one after the other, so a baseline
(e.g. main built in another directory) and this build see the same machine.

    python3 bench/memory_bench.py --build build-base --build build-rel [--rounds 2]

Figures are /proc/PID/status (RssAnon, RssFile, RssShmem, VmRSS) and /proc/PID/smaps_rollup (Pss)
read after the daemon has been idle for --settle seconds. Bytes per job: RssAnon at 10,000 jobs
minus RssAnon at 1 job (the same paging), over 9,999. Bytes per connection: the RssAnon delta
with the connections open, over their number, on the one-job daemon (whose heap has no holes left
by large temporary work for them to fill unseen). Python 3 standard library and the sqlite3 CLI.
"""
import argparse
import base64
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supervisor_bench import FILL_SQL, Daemon, hourly_fillers  # noqa: E402

TOKEN = "memory-bench-token-0123456789"
HEADER = """server:
  listen: "127.0.0.1:0"
  max_connections: 4096
  ws_max_clients: 2000
  request_timeout: 10m
auth:
  tokens:
    - name: bench
      role: admin
      token: {token}
storage:
  sqlite:
    path: {db}
retention:
  days: 0
jobs:
"""

WORDS = ("invoice report backup sync nightly export import cleanup rotate compact index mail "
         "digest billing archive refresh warehouse ledger metrics customer partner").split()


def realistic_jobs(n):
    """n hourly jobs with a title, a description, tags and a shell command, none due soon."""
    out = []
    for i, filler in enumerate(hourly_fillers(n, 1800)):
        sched = re.search(r'schedule: "([^"]*)"', filler).group(1)
        w = [WORDS[(i * k + k) % len(WORDS)] for k in (1, 3, 7, 11)]
        out.append(
            "  - name: filler%05d\n"
            "    title: \"%s %s for %s (%d)\"\n"
            "    description: \"Runs the %s %s of the %s team every hour; pages on-call after "
            "three failures in a row. Owner: team-%s.\"\n"
            "    schedule: \"%s\"\n"
            "    tags: [%s, %s, team-%s]\n"
            "    timeout: 10m\n"
            "    command: \"/usr/local/bin/%s-%s --batch %d --region eu-north-1 --quiet\"\n"
            % (i, w[0].capitalize(), w[1], w[2], i, w[0], w[1], w[2], w[3], sched, w[0], w[1],
               w[3], w[0], w[1], i))
    return out


# ---- reading the daemon's memory -------------------------------------------------------------

def mem(pid):
    res = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                res[k] = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("Pss", "Pss_Anon", "Pss_File", "Private_Dirty"):
                res[k] = int(line.split()[1])
    return res


# ---- the daemon's API ------------------------------------------------------------------------

def port_of(d):
    rec = d.wait(r"listening on http://127\.0\.0\.1:\d+", 60, poll=0.05)[1]
    return int(re.search(r":(\d+)$", rec["msg"]).group(1))


def page_all(port, limit):
    """Pages through every job once (limit + cursor); returns the number of jobs seen."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    seen, cursor = 0, None
    while True:
        q = "limit=%d" % limit + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
        c.request("GET", "/api/jobs?" + q, headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("GET /api/jobs?%s: %d %s" % (q, r.status, body[:200]))
        page = json.loads(body)
        seen += len(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    c.close()
    return seen


def ws_clients(port, n):
    """n authenticated WebSocket clients on /api/events, each past its handshake."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (key, TOKEN)).encode())
        socks.append(s)
    for s in socks:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("a WebSocket client was closed during its handshake")
            buf += chunk
        if not buf.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("WebSocket handshake refused: %r" % buf[:100])
    return socks


def http_clients(port, n):
    """n HTTP/1.1 keep-alive connections, each after one answered GET /healthz."""
    conns = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        if r.status != 200 or r.will_close:
            raise RuntimeError("GET /healthz: %d (will_close=%s)" % (r.status, r.will_close))
        conns.append(c)
    return conns


# ---- one build -------------------------------------------------------------------------------

class Ctx:
    def __init__(self, bin_path):
        self.bin = bin_path
        self.prefix = []


def run_daemon(bin_path, wd, jobs, settle, limit, conns=0, kind=None):
    """Starts the daemon in wd, pages twice, and returns its memory; with conns, then opens that
    many connections of kind ("ws" or "http") and adds the RssAnon delta per connection."""
    cfg = HEADER.format(token=TOKEN, db=os.path.join(wd, "cronvisor.db")) + "".join(jobs)
    d = Daemon(Ctx(bin_path), wd, cfg).start()
    try:
        port = port_of(d)
        time.sleep(settle)
        res = {"start": mem(d.proc.pid)}
        for _ in range(2):
            seen = page_all(port, limit)
            if seen != len(jobs):
                raise RuntimeError("paged %d jobs of %d" % (seen, len(jobs)))
        time.sleep(settle)
        res["paged"] = mem(d.proc.pid)
        if conns:
            base = mem(d.proc.pid)
            held = (ws_clients if kind == "ws" else http_clients)(port, conns)
            time.sleep(settle)
            res[kind] = mem(d.proc.pid)
            res["bytes_each"] = round((res[kind]["RssAnon"] - base["RssAnon"]) * 1024 / conns)
            for c in held:
                c.close()
    finally:
        d.stop()
    return res


def show(title, obj):
    print("%s: %s" % (title, json.dumps(obj)), flush=True)


def mib(kb):
    return "%.1f" % (kb / 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", action="append", required=True,
                    help="a build directory (repeat: each is measured in turn)")
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--history", type=int, default=1000000)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=1000, help="limit= of each GET /api/jobs page")
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds before each reading")
    ap.add_argument("--rounds", type=int, default=1, help="each build this many times, interleaved")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    bins = []
    for b in args.build:
        p = os.path.join(os.path.abspath(b), "cronvisor")
        if not os.access(p, os.X_OK):
            sys.exit("missing %s: build first" % p)
        bins.append((b, p))
    root = tempfile.mkdtemp(prefix="cv-membench-", dir=args.dir)
    print("machine: %d CPU(s), load average %s; %s" %
          (os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()),
           time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), flush=True)
    jobs = realistic_jobs(args.jobs)
    one = jobs[:1]
    rows = {b: [] for b, _ in bins}
    try:
        # The history database: made once by the first build (schema), filled with the sqlite3
        # CLI, then copied for each daemon so that every one starts from the same file.
        hist = os.path.join(root, "history")
        os.makedirs(hist)
        run_daemon(bins[0][1], hist, one, 0.5, args.limit)
        db = os.path.join(hist, "cronvisor.db")
        now_ms = int(time.time() * 1000)
        subprocess.run(["sqlite3", db], input=FILL_SQL.format(rows=args.history, jobs=args.jobs,
                                                              now=now_ms), text=True, check=True)
        for rnd in range(args.rounds):
            for name, binp in bins:
                r = {}
                # Connections are counted on one-job daemons, one kind each: their heaps have no
                # free holes (left by large temporary work, or by the other kind's connections
                # closed) that a connection's memory could fill unseen.
                for label, js, n_conn in (("one", one, 0), ("ws", one, args.conns),
                                          ("http", one, args.conns), ("jobs", jobs, 0),
                                          ("history", jobs, 0)):
                    with_hist = label == "history"
                    kind = label if n_conn else None
                    wd = os.path.join(root, "%d-%s-%s" % (rnd, os.path.basename(name), label))
                    os.makedirs(wd)
                    if with_hist:
                        shutil.copy(db, os.path.join(wd, "cronvisor.db"))
                    r[label] = run_daemon(binp, wd, js, args.settle, args.limit, n_conn, kind)
                    show("%s round %d: %s" % (name, rnd + 1, label), r[label])
                rows[name].append(r)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    n = args.jobs
    print("\n| build | RssAnon | RssFile | RssShmem | VmRSS (total) | bytes/job (anon) "
          "| +%d runs: RssAnon / total | bytes/WebSocket | bytes/HTTP conn |" % args.history)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in bins:
        for r in rows[name]:
            p, h = r["jobs"]["paged"], r["history"]["paged"]
            per_job = (p["RssAnon"] - r["one"]["paged"]["RssAnon"]) * 1024 / (n - 1)
            print("| %s | %s MiB | %s MiB | %s MiB | %s MiB | %d | %s / %s MiB | %d | %d |" %
                  (name, mib(p["RssAnon"]), mib(p["RssFile"]), mib(p["RssShmem"]), mib(p["VmRSS"]),
                   per_job, mib(h["RssAnon"]), mib(h["VmRSS"]), r["ws"]["bytes_each"],
                   r["http"]["bytes_each"]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Supervisor benchmarks (issue 3): the real `cronvisor run` against baselines measured in the
same run, reported as ratios.

    python3 bench/supervisor_bench.py precision   # lateness of a per-second job, 2,000 others loaded
    python3 bench/supervisor_bench.py burst       # 1,000 jobs due at one instant
    python3 bench/supervisor_bench.py throughput  # runs started, finished and recorded per second
    python3 bench/supervisor_bench.py idle        # CPU, wake-ups, RSS of an idle daemon
    python3 bench/supervisor_bench.py all

Needs a build (`cmake -S . -B build && make -C build -j2`); --build DIR names another one. Work
files go to a fresh directory under --dir (default /var/tmp: a disk, as the daemon's fsyncs are
part of what is measured). Python 3 standard library only.
"""
import argparse
import calendar
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HEADER = """
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
"""


class Bench:
    def __init__(self, args):
        self.build = os.path.abspath(args.build)
        self.bin = os.path.join(self.build, "cronvisor")
        # --stamp0: the child reads the clock at its entry point, before any C library start-up.
        self.stamp = os.path.join(self.build, "bench", "stamp0" if args.stamp0 else "stamp")
        self.raw = os.path.join(self.build, "bench", "spawn_raw_bench")
        for p in (self.bin, self.stamp, self.raw):
            if not os.access(p, os.X_OK):
                sys.exit("missing %s: build first (cmake -S . -B build && make -C build -j2)" % p)
        self.root = tempfile.mkdtemp(prefix="cv-supbench-", dir=args.dir)
        self.keep = args.keep
        self.seq = 0
        # --rt: the daemon and every baseline under SCHED_FIFO (children inherit it), to take the
        # machine's other load out of the picture.
        self.prefix = ["chrt", "-f", "10"] if args.rt else []

    def workdir(self, name):
        self.seq += 1
        d = os.path.join(self.root, "%02d-%s" % (self.seq, name))
        os.makedirs(d)
        return d

    def cleanup(self):
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def raw_bench(self, *args):
        out = subprocess.run(self.prefix + [self.raw, *map(str, args)], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)


# ---- configuration ---------------------------------------------------------------------------

def config(workdir, jobs, max_concurrent=0):
    limits = "limits:\n  max_concurrent: %d\n" % max_concurrent if max_concurrent else ""
    return HEADER.format(db=os.path.join(workdir, "cronvisor.db"), limits=limits) + "".join(jobs)


def job(name, schedule, argv):
    return "  - name: %s\n    schedule: \"%s\"\n    command: %s\n" % (name, schedule, json.dumps(argv))


def hourly_fillers(n, window_s):
    """n hourly jobs ('S M * * * *'), none due in the next window_s seconds (nor the last 60)."""
    now = int(time.time())
    busy = {((now + dt) // 60) % 60 for dt in range(-60, window_s + 120, 30)}
    slots = [(s, m) for m in range(60) if m not in busy for s in range(60)]
    return [job("filler%05d" % i, "%d %d * * * *" % slots[i % len(slots)], ["/bin/true"])
            for i in range(n)]


# ---- the daemon ------------------------------------------------------------------------------

class Daemon:
    """`cronvisor run` in workdir. Its log goes to a file, read only while waiting for a line (a
    reader woken by every line would compete with the children for the CPU)."""

    def __init__(self, bench, workdir, cfg_text, level="info"):
        self.workdir = workdir
        self.cfg = os.path.join(workdir, "cronvisor.yaml")
        self.log_path = os.path.join(workdir, "daemon-%d.log" % time.monotonic_ns())
        with open(self.cfg, "w") as f:
            f.write(cfg_text)
        self.cmd = bench.prefix + [bench.bin, "run", "-c", self.cfg, "--log-format", "json", "--log-level", level]
        self.lines = []  # (time read, record)
        self.partial = ""
        self.pos = 0

    def start(self):
        self.t_exec = time.time()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                         stderr=log)
        self.t_running = self.wait(r"running: ", 120, poll=0.01)[0]
        return self

    def _read_more(self):
        with open(self.log_path) as f:
            f.seek(self.pos)
            data = f.read()
            self.pos = f.tell()
        now = time.time()
        chunks = (self.partial + data).split("\n")
        self.partial = chunks.pop()
        for raw in chunks:
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = {"msg": raw, "ts": None}
            self.lines.append((now, rec))

    def wait(self, pattern, timeout, count=1, poll=0.2):
        """Waits for `count` lines matching pattern; returns (time read, record) of the last."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        seen, i = 0, 0
        while True:
            self._read_more()
            for t, rec in self.lines[i:]:
                if rx.search(rec.get("msg", "")):
                    seen += 1
                    if seen == count:
                        return t, rec
            i = len(self.lines)
            if self.proc.poll() is not None:
                raise RuntimeError("the daemon exited: %s" % self.tail())
            if time.time() > deadline:
                raise RuntimeError("timed out waiting for %r (%d/%d): %s" %
                                   (pattern, seen, count, self.tail()))
            time.sleep(poll)

    def matching(self, pattern):
        self._read_more()
        rx = re.compile(pattern)
        return [rec for _, rec in self.lines if rx.search(rec.get("msg", ""))]

    def tail(self):
        return " | ".join(str(r.get("msg")) for _, r in self.lines[-5:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def proc_cpu_ms(pid):
    """utime + stime of a process (all its threads, not its children), ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def log_ts(rec):
    """The daemon's own timestamp of a log record, Unix seconds (ms resolution)."""
    ts = rec["ts"]
    base, frac = ts.rstrip("Z").split(".") if "." in ts else (ts.rstrip("Z"), "0")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 10 ** len(frac)


# ---- statistics ------------------------------------------------------------------------------

def read_stamps(path):
    """[(child start ns, scheduled second)] from a stamp file."""
    out = []
    with open(path) as f:
        for line in f:
            t, sched = line.split()
            sec, ns = t.split(".")
            when = calendar.timegm(time.strptime(sched, "%Y-%m-%dT%H:%M:%SZ"))
            out.append((int(sec) * 10 ** 9 + int(ns), when))
    return out


def count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, (len(xs) * p) // 100)]


def summary_ms(xs):
    return {"n": len(xs), "p50_ms": round(pct(xs, 50), 3), "p99_ms": round(pct(xs, 99), 3),
            "max_ms": round(max(xs), 3)}


def median(xs):
    return sorted(xs)[len(xs) // 2]


def show(title, obj):
    print("%s: %s" % (title, json.dumps(obj)), flush=True)


# ---- 1. precision ----------------------------------------------------------------------------

def precision(b, samples=60, fillers=2000):
    timer = b.raw_bench("timer", 5000)
    show("baseline: libuv 1 ms timer lateness (us)", timer)

    wd = b.workdir("precision")
    out = os.path.join(wd, "stamps")
    raw_out = os.path.join(wd, "raw-stamps")
    jobs = hourly_fillers(fillers, samples + 60) + [job("tick", "* * * * * *", [b.stamp, out])]
    d = Daemon(b, wd, config(wd, jobs)).start()
    # The raw floor runs in the same window, half a second out of phase with the daemon's ticks.
    raw_proc = subprocess.Popen(b.prefix + [b.raw, "tick", str(samples + 2), b.stamp, raw_out, "500"],
                                stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + samples + 60
        while count_lines(out) < samples + 3 and time.time() < deadline:
            time.sleep(1)
        raw_proc.wait(60)
    finally:
        d.stop()
    raw = [(ns - s * 10 ** 9) / 1e6 - 500 for ns, s in read_stamps(raw_out)][1:samples + 1]
    show("baseline: clock_nanosleep(REALTIME, ABSTIME) + posix_spawn(stamp), child start lateness",
         summary_ms(raw))
    stamps = read_stamps(out)
    # The first instant may have been due while the daemon was still starting.
    stamps = [(ns, s) for ns, s in stamps if s > d.t_running + 1][:samples]
    late = [(ns - s * 10 ** 9) / 1e6 for ns, s in stamps]
    res = summary_ms(late)
    show("cronvisor: per-second job, %d hourly jobs loaded, child start lateness" % fillers, res)
    with sqlite3.connect(os.path.join(wd, "cronvisor.db")) as db:
        rows = db.execute("SELECT started_at - scheduled_for FROM runs WHERE job='tick' AND "
                          "scheduled_for > ? ORDER BY id LIMIT ?",
                          (int((d.t_running + 1) * 1000), samples)).fetchall()
    spawn_at = summary_ms([r[0] for r in rows])
    show("cronvisor: instant -> posix_spawn call (runs.started_at, ms resolution)", spawn_at)
    ratio = res["p50_ms"] / summary_ms(raw)["p50_ms"]
    show("precision: p50 ratio (cronvisor / raw)", round(ratio, 3))
    return {"timer_us": timer, "raw_ms": summary_ms(raw), "daemon_ms": res, "spawn_at": spawn_at}


# ---- 2. bursts -------------------------------------------------------------------------------

def burst_stats(path, at, n):
    st = read_stamps(path)
    if len(st) != n:
        raise RuntimeError("%s: %d stamps, expected %d" % (path, len(st), n))
    late = [(ns - at * 10 ** 9) / 1e6 for ns, _ in st]
    return {"first_ms": round(min(late), 2), "p50_ms": round(pct(late, 50), 2),
            "last_ms": round(max(late), 2)}


def burst_daemon(b, n):
    wd = b.workdir("burst")
    out = os.path.join(wd, "stamps")
    for lead in (5, 10, 20):
        at = int(time.time()) + lead
        tm = time.gmtime(at)
        sched = "%d %d %d %d %d *" % (tm.tm_sec, tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon)
        jobs = [job("b%04d" % i, sched, [b.stamp, out]) for i in range(n)]
        d = Daemon(b, wd, config(wd, jobs)).start()
        try:
            if d.t_running >= at - 0.5:
                continue  # started too late for the instant: try again with more lead time
            cpu0 = proc_cpu_ms(d.proc.pid)
            d.wait(r"status=SUCCESS", at - time.time() + 60, count=n)
            cpu = proc_cpu_ms(d.proc.pid) - cpu0
        finally:
            d.stop()
        res = burst_stats(out, at, n)
        res["cpu_ms"] = cpu
        return res
    raise RuntimeError("the daemon did not start in time for the burst")


def burst(b, n=1000, reps=3):
    rows = []
    for rep in range(reps):
        wd = b.workdir("burst-raw")
        out = os.path.join(wd, "stamps")
        at = int(time.time()) + 2
        loop = b.raw_bench("burst", n, at, b.stamp, out)
        raw = burst_stats(out, at, n)
        raw["spawn_loop_ms"] = loop["spawn_loop_ms"]
        raw["cpu_ms"] = loop["cpu_ms"]
        cv = burst_daemon(b, n)
        ratio = cv["last_ms"] / raw["last_ms"]
        show("burst %d/%d: raw posix_spawn x%d" % (rep + 1, reps, n), raw)
        show("burst %d/%d: cronvisor, %d jobs due at one instant" % (rep + 1, reps, n), cv)
        show("burst %d/%d: ratio last child (cronvisor / raw)" % (rep + 1, reps), round(ratio, 3))
        show("burst %d/%d: supervisor CPU per child, us (cronvisor, raw)" % (rep + 1, reps),
             [round(cv["cpu_ms"] * 1000 / n), round(raw["cpu_ms"] * 1000 / n)])
        rows.append((raw, cv, ratio))
    show("burst: median ratio", round(median([r[2] for r in rows]), 3))
    return rows


# ---- 3. throughput ---------------------------------------------------------------------------

def throughput_daemon(b, n, k):
    wd = b.workdir("throughput")
    jobs = [job("r%05d" % i, "@reboot", ["/bin/true"]) for i in range(n)]
    d = Daemon(b, wd, config(wd, jobs, max_concurrent=k), level="debug").start()
    try:
        cpu0 = proc_cpu_ms(d.proc.pid)
        d.wait(r"^run \d+ SUCCESS recorded", 600, count=n)
        cpu = proc_cpu_ms(d.proc.pid) - cpu0
    finally:
        d.stop()
    started = d.matching(r"^run \d+ job=\S+ trigger=reboot attempt=1 status=RUNNING")
    recorded = d.matching(r"^run \d+ SUCCESS recorded")
    t0 = min(log_ts(r) for r in started)
    t1 = max(log_ts(r) for r in recorded)
    with sqlite3.connect(os.path.join(wd, "cronvisor.db")) as db:
        rows = db.execute("SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM runs "
                          "WHERE status='SUCCESS'").fetchone()
    return {"runs": n, "in_flight": k, "recorded_rows": rows[0],
            "first_start_to_last_commit_s": round(t1 - t0, 3),
            "runs_per_s": round(n / (t1 - t0), 1),
            "first_start_to_last_exit_s": round((rows[2] - rows[1]) / 1000, 3), "cpu_ms": cpu}


def throughput(b, n=2000, k=8, reps=3):
    rows = []
    for rep in range(reps):
        raw = b.raw_bench("throughput", n, k, "/bin/true")
        cv = throughput_daemon(b, n, k)
        ratio = cv["runs_per_s"] / raw["runs_per_s"]
        show("throughput %d/%d: raw posix_spawn+waitpid" % (rep + 1, reps), raw)
        show("throughput %d/%d: cronvisor @reboot jobs, started+finished+recorded"
             % (rep + 1, reps), cv)
        show("throughput %d/%d: ratio (cronvisor / raw)" % (rep + 1, reps), round(ratio, 3))
        show("throughput %d/%d: supervisor CPU per run, us (cronvisor, raw)" % (rep + 1, reps),
             [round(cv["cpu_ms"] * 1000 / n), round(raw["cpu_ms"] * 1000 / n)])
        rows.append((raw, cv, ratio))
    show("throughput: median ratio", round(median([r[2] for r in rows]), 3))
    return rows


# ---- 4. idle ---------------------------------------------------------------------------------

def proc_sample(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu_ms = (int(fields[11]) + int(fields[12])) * 1000 / tick  # utime, stime (all threads)
    vol = invol = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol += int(line.split()[1])
    mem = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "Threads"):
                mem[k] = int(line.split()[1])
    return cpu_ms, vol, invol, mem


def perf_available():
    try:
        r = subprocess.run(["perf", "stat", "-e", "context-switches", "true"], capture_output=True,
                           timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def idle_window(d, seconds):
    pid = d.proc.pid
    perf = None
    if perf_available():
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "context-switches,task-clock",
                                 "-p", str(pid), "--", "sleep", str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    c0, v0, i0, _ = proc_sample(pid)
    time.sleep(seconds)
    c1, v1, i1, mem = proc_sample(pid)
    res = {"window_s": seconds, "cpu_ms": round(c1 - c0, 1), "voluntary_ctxt_switches": v1 - v0,
           "involuntary_ctxt_switches": i1 - i0, "rss_kb": mem["VmRSS"], "hwm_kb": mem["VmHWM"],
           "threads": mem["Threads"]}
    if perf:
        _, err = perf.communicate()
        for line in err.splitlines():
            parts = line.split(",")
            if len(parts) < 3 or parts[2] not in ("context-switches", "task-clock"):
                continue
            # "<not counted>": the counter was never scheduled in, i.e. the task never ran.
            value = 0.0 if parts[0].startswith("<not") else float(parts[0])
            res["perf_" + parts[2].replace("-", "_")] = round(value, 1)
    return res


FILL_SQL = """
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
INSERT INTO runs (id, job, status, "trigger", scheduled_for, queued_at, started_at, finished_at,
                  duration_ms, attempt, exit_code, output_tail, output_bytes, max_rss_kb,
                  cpu_user_ms, cpu_sys_ms, instance)
SELECT x, printf('filler%05d', x % {jobs}), 'SUCCESS', 'cron',
       {now} - x * 3600, {now} - x * 3600, {now} - x * 3600 + 2, {now} - x * 3600 + 40, 38, 1, 0,
       'processed batch ' || x || char(10) || 'done' || char(10), 29, 2048, 3, 1, 'local'
FROM c;
COMMIT;
"""


def idle(b, jobs=10000, seconds=60, history=1000000):
    wd = b.workdir("idle")
    cfg = config(wd, hourly_fillers(jobs, 2 * seconds + 600))
    d = Daemon(b, wd, cfg).start()
    try:
        time.sleep(5)  # let start-up work (retention pass, first commits) finish
        empty = idle_window(d, seconds)
    finally:
        d.stop()
    empty["start_to_running_s"] = round(d.t_running - d.t_exec, 3)
    show("idle: %d hourly jobs, empty history" % jobs, empty)

    db = os.path.join(wd, "cronvisor.db")
    now_ms = int(time.time() * 1000)
    t = time.time()
    subprocess.run(["sqlite3", db], input=FILL_SQL.format(rows=history, jobs=jobs, now=now_ms),
                   text=True, check=True)
    fill_s = time.time() - t
    with sqlite3.connect(db) as c:
        nrows = c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    d = Daemon(b, wd, cfg).start()
    try:
        time.sleep(5)
        full = idle_window(d, seconds)
    finally:
        d.stop()
    full["start_to_running_s"] = round(d.t_running - d.t_exec, 3)
    full["history_rows"] = nrows
    full["db_mb"] = round(os.path.getsize(db) / 2 ** 20, 1)
    full["fill_s"] = round(fill_s, 1)
    show("idle: %d hourly jobs, %d runs in history" % (jobs, nrows), full)
    return empty, full


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("which", choices=["precision", "burst", "throughput", "idle", "all"])
    ap.add_argument("--build", default=os.environ.get("CV_BUILD_DIR", "build"))
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--rt", action="store_true",
                    help="run the daemon and the baselines under SCHED_FIFO (chrt -f 10)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--stamp0", action="store_true",
                    help="children are bench/stamp0 (no C library; clock read at the entry point)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    b = Bench(args)
    print("machine: %d CPU(s), load average %s; %s%s" %
          (os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()),
           time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "; SCHED_FIFO" if args.rt else ""),
          flush=True)
    try:
        for name in ("precision", "burst", "throughput", "idle"):
            if args.which in (name, "all"):
                globals()[name](b)
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()

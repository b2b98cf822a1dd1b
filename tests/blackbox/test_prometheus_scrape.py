"""A real Prometheus (Debian's package; its own loopback port, config and data directory, never
the packaged service) scrapes a test daemon every second with the viewer token and honor_labels
as deploy/kubernetes/servicemonitor.yaml does, loads deploy/prometheus/alerts.yml, and is queried
over its HTTP API: a triggered run is counted, every alerting rule evaluates without error on the
real series, a failing job's alert becomes active. Every metric name used by
deploy/grafana/cronvisor.json and deploy/prometheus/alerts.yml appears in a live scrape of the
daemon (after runs, so per-run series exist) and in Prometheus."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

from cvtest import SOURCE_DIR, Daemon, main

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "viewer-tok-5d1c9a"
OPERATOR = "operator-tok-2b7e40"

CONFIG = """
server:
  listen: "127.0.0.1:0"
storage:
  sqlite: { path: "{dir}/data/cronvisor.db" }
auth:
  tokens:
    - { name: prometheus, role: viewer, token: "%s" }
    - { name: ops, role: operator, token: "%s" }
jobs:
  - name: work
    schedule: manual
    command: "printf '{\\"items_processed\\": 3}\\\\n' >&$CRONVISOR_RESULT_FD; echo done"
  - name: broken
    schedule: manual
    command: "exit 3"
  - name: tick
    schedule: "@every 1h"
    command: "true"
""" % (TOKEN, OPERATOR)

# PromQL words that are not metric names
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan", "le", "time", "vector", "scalar", "sum", "min", "max", "avg", "count",
    "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}


def metric_names(expr):
    """The metric names an expression reads: label matchers, strings, durations, grouping
    clauses, Grafana variables and function calls removed, what is left are names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                 # ranges, $__rate_interval
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)                                # Grafana variables
    e = re.sub(r"\b[a-zA-Z_]\w*\s*\(", "(", e)                        # function and aggregation names
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", e))
    return {n for n in names if n.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d.*", n)}


def grafana_exprs():
    with open(os.path.join(SOURCE_DIR, "deploy", "grafana", "cronvisor.json")) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(("panel %r" % p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", q["query"])
            assert m, q
            out.append(("variable %r" % v["name"], m.group(1)))
    return out


def alert_exprs():
    """expr: lines of alerts.yml (single-line and block scalars), without a YAML library."""
    with open(os.path.join(SOURCE_DIR, "deploy", "prometheus", "alerts.yml")) as f:
        lines = f.read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m:
            if m.group(2) == "|":
                body, i = [], i + 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1))):
                    body.append(lines[i])
                    i += 1
                out.append(("alerts.yml", "\n".join(body)))
                continue
            out.append(("alerts.yml", m.group(2)))
        i += 1
    return out


def _die_with_parent():
    """Prometheus gets SIGTERM when the test process dies, even killed (PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 15, 0, 0, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="cvprom-")
        self.port = free_port()
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write(TOKEN)
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: cronvisor
    honor_labels: true
    metrics_path: /metrics
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % (os.path.join(SOURCE_DIR, "deploy", "prometheus", "alerts.yml"),
                os.path.join(self.dir, "token"), target_port))
        self.log = []
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=_die_with_parent)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            if "Server is ready to receive web requests" in line:
                self.ready.set()
        self.ready.set()  # exited: wait_ready reports it

    def wait_ready(self, timeout=60):
        self.ready.wait(timeout)
        if self.proc.poll() is not None or not self.ready.is_set():
            raise AssertionError("prometheus did not start:\n" + "\n".join(self.log[-20:]))

    def api(self, path, **params):
        url = "http://127.0.0.1:%d%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def until(self, what, fn, timeout=60):
        """Polls Prometheus's API until fn() returns a true value (scrapes and evaluations every
        second); returns it, or fails with the last answer."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last and last[0]:
                return last[1]
            time.sleep(0.2)
        raise AssertionError("%s within %ss; last: %r" % (what, timeout, last and last[1]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrometheusTest(unittest.TestCase):
    def test_names_are_extracted(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.95, sum by (job, le) (rate(cronvisor_job_duration_seconds_bucket'
            '{job=~"$job"}[$__rate_interval])))'), {"cronvisor_job_duration_seconds_bucket"})
        self.assertEqual(metric_names('time() - (a > 0 or on (instance, job) (a * 0 + on (instance)'
                                      ' group_left () b)) > 2 * c and on (job) d == 1'),
                         {"a", "b", "c", "d"})
        self.assertGreaterEqual(len(grafana_exprs()), 25)
        self.assertEqual(len(alert_exprs()), 8)

    def test_scraped_by_prometheus(self):
        self.assertTrue(os.access(PROMETHEUS, os.X_OK), "no prometheus binary (Debian package)")
        with Daemon(CONFIG) as d:
            port = d.port()
            prom = Prometheus(port)
            try:
                self.check(d, prom)
            finally:
                prom.stop()

    def check(self, d, prom):
        prom.wait_ready()
        # the scrape works (token, path) before anything ran
        prom.until("target up", lambda: (lambda r: (r and r[0]["value"][1] == "1", r))(
            prom.api("/api/v1/query", query='up{job="cronvisor"}')["result"]))
        for job in ("work", "broken"):
            r = d.api("POST", "/api/jobs/%s/trigger" % job, token=OPERATOR)
            self.assertEqual(r.status, 202, r)
            d.run_finished(job)

        # the run is counted in Prometheus, with the daemon's own job label (honor_labels)
        def counted():
            res = prom.api("/api/v1/query",
                           query='cronvisor_job_runs_total{job="work",status="SUCCESS"}')["result"]
            return (bool(res) and res[0]["value"][1] == "1", res)
        res = prom.until("the SUCCESS run of work counted", counted)
        self.assertEqual(res[0]["metric"]["instance"], "127.0.0.1:%d" % d.port())
        res = prom.until("the items counted", lambda: (lambda r: (
            r and r[0]["value"][1] == "3", r))(prom.api(
                "/api/v1/query", query='cronvisor_job_items_processed_total{job="work"}')["result"]))

        # every alerting rule evaluates on the real series without error (label matching of
        # group_left / on() included), and the failing job's alert becomes active
        def rules_ok():
            groups = prom.api("/api/v1/rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = rules and all(r.get("lastEvaluation", "").startswith("2") and
                                 not r["lastEvaluation"].startswith("0001") for r in rules)
            return (done and len(rules) == 8, rules)
        rules = prom.until("every rule evaluated", rules_ok)
        for r in rules:
            self.assertEqual(r["health"], "ok", r)

        def failing():
            alerts = prom.api("/api/v1/alerts")["alerts"]
            hit = [a for a in alerts if a["labels"]["alertname"] == "CronvisorJobFailing"]
            return (bool(hit), hit)
        hit = prom.until("CronvisorJobFailing active", failing)
        self.assertEqual([a["labels"]["job"] for a in hit], ["broken"])
        self.assertNotIn("instance", hit[0]["labels"])

        # the job that succeeded is not overdue, nor anything else (tick's interval is 1h)
        alerts = prom.api("/api/v1/alerts")["alerts"]
        self.assertEqual(sorted({a["labels"]["alertname"] for a in alerts}), ["CronvisorJobFailing"])

        # every metric name of the dashboard and the alerts is in a live scrape and in Prometheus
        scrape = d.api("GET", "/metrics", token=TOKEN)
        self.assertEqual(scrape.status, 200)
        exposed = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", scrape.body.decode(), re.M))
        used = {}
        for where, expr in grafana_exprs() + alert_exprs():
            for n in metric_names(expr):
                used.setdefault(n, where)
        self.assertIn("cronvisor_job_duration_seconds_bucket", used)
        self.assertIn("cronvisor_job_interval_seconds", used)
        generated = {"up"}  # Prometheus's own series for each target
        missing = {n: w for n, w in used.items() if n not in exposed and n not in generated}
        self.assertEqual(missing, {}, "metric names used but not exposed by the daemon")
        for n in sorted(used):
            res = prom.api("/api/v1/query", query="count(%s)" % n)["result"]
            self.assertTrue(res, "%s (%s) has no series in Prometheus" % (n, used[n]))
        # per-run series: the duration histogram of work has its run
        res = prom.api("/api/v1/query", query='cronvisor_job_duration_seconds_count{job="work"}')
        self.assertEqual(res["result"][0]["value"][1], "1")


def sample(body, name, job):
    m = re.search(r'^%s\{job="%s"\} (\S+)$' % (re.escape(name), re.escape(job)), body.decode(), re.M)
    assert m, "%s{job=%r} not in the scrape" % (name, job)
    return float(m.group(1))


class JobMetricsTest(unittest.TestCase):
    """The metrics the alerts need that the daemon adds for them."""

    CONFIG = CONFIG + """  - name: flaky
    schedule: "0 3 * * *"
    command: "exit 1"
    auto_disable_after: 2
"""

    def metrics(self, d):
        r = d.api("GET", "/metrics", token=TOKEN)
        self.assertEqual(r.status, 200)
        return r.body

    def test_interval_and_auto_disabled(self):
        d = Daemon(self.CONFIG)
        with d:
            d.wait_log(r"cronvisor \S+ running")
            body = self.metrics(d)
            self.assertEqual(sample(body, "cronvisor_job_interval_seconds", "tick"), 3600)
            self.assertEqual(sample(body, "cronvisor_job_interval_seconds", "flaky"), 86400)
            self.assertEqual(sample(body, "cronvisor_job_interval_seconds", "work"), 0)  # manual
            self.assertEqual(sample(body, "cronvisor_job_auto_disabled", "flaky"), 0)
            self.assertEqual(d.api("POST", "/api/jobs/flaky/trigger", token=OPERATOR).status, 202)
            d.run_finished("flaky")
            self.assertEqual(d.api("POST", "/api/jobs/flaky/trigger", token=OPERATOR).status, 202)
            d.wait_log(r"job flaky: disabled after 2 consecutive failures")
            d.run_finished("flaky")
            body = self.metrics(d)
            self.assertEqual(sample(body, "cronvisor_job_auto_disabled", "flaky"), 1)
            self.assertEqual(sample(body, "cronvisor_job_enabled", "flaky"), 0)
            self.assertEqual(sample(body, "cronvisor_job_interval_seconds", "flaky"), 0)  # disabled
        # known after a restart (the override's author is in the store)
        d2 = Daemon(self.CONFIG, workdir=d.tmp)
        with d2:
            d2.wait_log(r"cronvisor \S+ running")
            self.assertEqual(sample(self.metrics(d2), "cronvisor_job_auto_disabled", "flaky"), 1)
            # a person re-enables it: 0; a person disables it: still 0 (not auto_disable_after)
            self.assertEqual(d2.api("POST", "/api/jobs/flaky/enable", token=OPERATOR).status, 200)
            self.assertEqual(sample(self.metrics(d2), "cronvisor_job_auto_disabled", "flaky"), 0)
            self.assertEqual(d2.api("POST", "/api/jobs/flaky/disable", token=OPERATOR).status, 200)
            body = self.metrics(d2)
            self.assertEqual(sample(body, "cronvisor_job_enabled", "flaky"), 0)
            self.assertEqual(sample(body, "cronvisor_job_auto_disabled", "flaky"), 0)


if __name__ == "__main__":
    main()

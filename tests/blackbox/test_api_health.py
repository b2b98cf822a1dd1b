"""Health, notifications and info endpoints: GET /api/health, POST /api/health/refresh,
GET /api/notifications, GET /api/info, checked against proto/openapi.yaml."""
import http.server
import json
import os
import subprocess
import threading
import unittest

from cvtest import Daemon, WsClient, main, response_schema, schema_errors

VIEWER, OPERATOR = "viewer-token-health-1", "operator-token-health-2"

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: dash
      role: viewer
      token: %s
    - name: ops
      role: operator
      token: %s
links:
  - title: Runbook
    url: https://runbooks.example/cron
probes:
  - name: fine
    type: exec
    interval: 1h
    command: "true"
  - name: broken
    type: exec
    interval: 1h
    command: "echo nope >&2; exit 3"
  - name: toggle
    type: exec
    interval: 1h
    command: "test -f {dir}/up"
notify:
  - name: receiver
    url: "http://127.0.0.1:%%d/hook?token=${HOOK_TOKEN}"
    events: [probe.unhealthy]
  - name: slowwatch
    url: "http://127.0.0.1:%%d/slow"
    events: [run.slow]
    slow_factor: 20
jobs:
  - name: noop
    schedule: manual
    command: "true"
  - name: sometimes-slow
    schedule: manual
    command: "if [ -f {dir}/slow ]; then read x < {dir}/gate; else sleep 0.05; fi"
""" % (VIEWER, OPERATOR)


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()


class HealthApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        cfg = CONFIG % (cls.srv.server_address[1], cls.srv.server_address[1])
        cls.d = Daemon(cfg, env={"HOOK_TOKEN": "hook-token-secret-77"}).start()
        os.mkfifo(os.path.join(cls.d.tmp, "gate"))
        cls.d.port()
        # Three events, in whatever order they come: both probes checked once, and the webhook
        # told of the broken one.
        wanted = {"probe fine status=healthy", "probe broken status=unhealthy",
                  "notify receiver: probe.unhealthy broken delivered"}
        while wanted:
            m = cls.d.wait_log("|".join("(%s)" % w for w in sorted(wanted)))
            wanted.discard(m.group(0))

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.srv.shutdown()
        cls.srv.server_close()

    def call(self, method, path, token=VIEWER, expect=200, doc=None):
        r = self.d.api(method, path, token=token)
        self.assertEqual(r.status, expect, r)
        self.assertNotIn(b"hook-token-secret-77", r.body)
        schema = response_schema(doc or path.split("?")[0], method, expect)
        if schema is not None:
            self.assertEqual(schema_errors(r.json, schema), [], r.json)
        return r.json

    def test_health_lists_every_probe_with_its_status_and_message(self):
        probes = {p["name"]: p for p in self.call("GET", "/api/health")["probes"]}
        self.assertEqual(set(probes), {"store", "fine", "broken", "toggle"})
        self.assertEqual(probes["fine"]["status"], "healthy")
        self.assertEqual(probes["broken"]["status"], "unhealthy")
        self.assertIn("exit 3", probes["broken"]["message"])
        self.assertEqual(probes["store"]["type"], "store")

    def test_refresh_of_one_probe_answers_with_its_fresh_result(self):
        before = {p["name"]: p for p in self.call("GET", "/api/health")["probes"]}["fine"]
        after = self.call("POST", "/api/health/refresh?probe=fine", token=OPERATOR)["probes"]
        self.assertEqual([p["name"] for p in after], ["fine"])
        self.assertGreaterEqual(after[0]["checked_at"], before["checked_at"])
        self.assertEqual(after[0]["status"], "healthy")

    def test_refresh_of_an_unknown_probe_is_404_and_viewers_may_not_refresh(self):
        r = self.call("POST", "/api/health/refresh?probe=nope", token=OPERATOR, expect=404)
        self.assertIn("nope", r["error"]["message"])
        self.call("POST", "/api/health/refresh", token=VIEWER, expect=403)

    def test_notifications_show_the_delivery_of_probe_unhealthy(self):
        notes = self.call("GET", "/api/notifications")["notifications"]
        mine = [n for n in notes if n["event"] == "probe.unhealthy" and n["subject"] == "broken"]
        self.assertEqual(len(mine), 1)
        self.assertTrue(mine[0]["delivered"])
        self.assertEqual(mine[0]["http_status"], 204)
        self.assertTrue(any(b.get("event") == "probe.unhealthy" for b in Receiver.bodies))

    def test_instances_lists_this_daemon_alone_on_the_embedded_store(self):
        r = self.call("GET", "/api/instances")
        self.assertTrue(r["self"])
        self.assertEqual([(i["id"], i["self"], i["alive"], i["pid"]) for i in r["instances"]],
                         [(r["self"], True, True, self.d.proc.pid)])

    def trigger(self, job):
        r = self.d.api("POST", "/api/jobs/%s/trigger" % job, token=OPERATOR)
        self.assertEqual(r.status, 202, r)
        return r.json["run_id"]

    def run_once(self, job):
        run_id = self.trigger(job)
        self.d.wait_log(r"run %d (SUCCESS|FAILED) recorded" % run_id)
        return run_id

    def test_a_run_much_longer_than_its_p95_raises_run_slow_once(self):
        fast = [self.run_once("sometimes-slow") for _ in range(5)]
        open(os.path.join(self.d.tmp, "slow"), "w").close()
        slow = self.trigger("sometimes-slow")
        # Raised while the run is still going (at p95 x 20): the run waits at its gate until then,
        # however slow the fast runs were on a loaded machine.
        self.d.wait_log(r"notify slowwatch: run.slow sometimes-slow delivered")
        self.assertEqual(self.d.api("GET", "/api/runs/%d" % slow, token=VIEWER).json["status"], "RUNNING")
        with open(os.path.join(self.d.tmp, "gate"), "w") as g:
            g.write("go\n")
        self.d.wait_log(r"run %d SUCCESS recorded" % slow)
        slow_events = [b for b in Receiver.bodies if b.get("event") == "run.slow"]
        self.assertEqual([b["run"]["id"] for b in slow_events], [slow])
        self.assertNotIn(slow, fast)
        self.assertGreater(slow_events[0]["threshold_ms"], 0)

    def test_metrics_carry_each_probe_up_status_and_latency_and_pass_promtool(self):
        r = self.d.api("GET", "/metrics", token=VIEWER)
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        self.assertIn('cronvisor_probe_up{probe="fine"} 1', text)
        self.assertIn('cronvisor_probe_up{probe="broken"} 0', text)
        self.assertIn('cronvisor_probe_status{probe="broken",status="unhealthy"} 1', text)
        self.assertRegex(text, r'cronvisor_probe_latency_seconds\{probe="fine"\} \d')
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_a_status_change_is_pushed_as_health_changed_over_the_websocket(self):
        ws = WsClient(self.d.port(), headers={"Authorization": "Bearer " + VIEWER})
        ws.recv_until(lambda m: m.get("type") == "authenticated")
        open(os.path.join(self.d.tmp, "up"), "w").close()
        fresh = self.call("POST", "/api/health/refresh?probe=toggle", token=OPERATOR)["probes"]
        self.assertEqual(fresh[0]["status"], "healthy")
        ev, _ = ws.recv_until(lambda m: m.get("type") == "health.changed" and m["probe"]["name"] == "toggle")
        self.assertEqual(ev["probe"]["status"], "healthy")
        self.assertIsInstance(ev["seq"], int)
        ws.close()

    def test_info_has_the_version_and_the_configured_links(self):
        info = self.call("GET", "/api/info")
        self.assertEqual(info["links"], [{"title": "Runbook", "url": "https://runbooks.example/cron"}])
        self.assertRegex(info["version"], r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    main()

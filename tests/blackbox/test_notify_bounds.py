"""limits.notify_pending, pushed past with a small limit: the webhook deliveries in flight or
waiting for a retry, all notifiers together. A webhook that does not answer while runs keep
failing would otherwise have the daemon hold a connection and a body per notification. Past the
limit a notification is recorded failed after 0 attempts (history, log,
cronvisor_notify_dropped_total), never sent; the ones already pending are delivered once the
webhook answers. Applies on reload (SIGHUP)."""
import http.server
import json
import re
import signal
import threading
import time
import unittest

from cvtest import Daemon, main

TOKEN = "operator-token-notify-bounds-31"

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: ops
      role: operator
      token: %s
limits:
  notify_pending: {pending}
notify:
  - name: hook
    url: "http://127.0.0.1:{port}/hook"
    events: [run.failed]
jobs:
  - name: boom
    schedule: manual
    command: 'exit 3'
""" % TOKEN


class HeldHook:
    """A webhook that records each POST as it arrives and answers it only once released."""

    def __init__(self):
        self.docs = []
        self.cond = threading.Condition()
        self.open = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with outer.cond:
                    outer.docs.append(doc)
                    outer.cond.notify_all()
                outer.open.wait(120)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait_count(self, n, timeout=30):
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.docs) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d notifications received, not %d" % (len(self.docs), n))
                self.cond.wait(left)

    def run_ids(self):
        with self.cond:
            return sorted({d["run"]["id"] for d in self.docs})

    def close(self):
        self.open.set()
        self.srv.shutdown()
        self.srv.server_close()


def metric(d, name):
    text = d.api("GET", "/metrics", token=TOKEN).body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    if m is None:
        raise AssertionError("no sample %s in /metrics" % name)
    return float(m.group(1))


class NotifyPending(unittest.TestCase):
    def setUp(self):
        self.hook = HeldHook()
        self.addCleanup(self.hook.close)
        self.d = Daemon(CONFIG.format(pending=2, port=self.hook.port))
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.port()

    def fail_once(self):
        """Triggers boom; returns the id of its FAILED run."""
        self.assertEqual(self.d.api("POST", "/api/jobs/boom/trigger", token=TOKEN).status, 202)
        run_id, status = self.d.run_finished("boom")
        self.assertEqual(status, "FAILED")
        return run_id

    def notes(self):
        return {n["run_id"]: n for n in
                self.d.api("GET", "/api/notifications", token=TOKEN).json["notifications"]}

    def test_notifications_past_limits_notify_pending_are_recorded_failed_not_sent(self):
        d, hook = self.d, self.hook
        held = []
        for i in (1, 2):
            held.append(self.fail_once())
            hook.wait_count(i)  # its delivery is in flight, unanswered
        self.assertEqual(metric(d, "cronvisor_notify_pending"), 2)
        refused = self.fail_once()
        d.wait_log(r"notify hook: run\.failed boom failed after 0 attempt\(s\): not attempted: 2 "
                   r"deliveries were pending \(limits\.notify_pending\)")
        self.assertEqual(metric(d, "cronvisor_notify_dropped_total"), 1)
        note = self.notes()[refused]
        self.assertFalse(note["delivered"])
        self.assertFalse(note["pending"])
        self.assertEqual(note["attempts"], 0)
        self.assertIn("limits.notify_pending", note["last_error"])

        hook.open.set()  # the webhook answers: the two pending deliveries arrive, nothing more
        for _ in held:
            d.wait_log(r"notify hook: run\.failed boom delivered")
        self.assertEqual(metric(d, "cronvisor_notify_pending"), 0)
        self.assertEqual(hook.run_ids(), sorted(held))
        self.assertTrue(all(self.notes()[r]["delivered"] for r in held))

        # limits.notify_pending 2 -> 1 on reload: the second pending delivery is refused
        with open(d.config_path, "w") as f:
            f.write(CONFIG.format(pending=1, port=hook.port))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded from \S+: limits\.notify_pending$")
        hook.open.clear()
        kept = self.fail_once()
        hook.wait_count(3)
        refused = self.fail_once()
        d.wait_log(r"notify hook: run\.failed boom failed after 0 attempt\(s\): not attempted: 1 "
                   r"deliveries were pending")
        self.assertEqual(metric(d, "cronvisor_notify_dropped_total"), 2)
        hook.open.set()
        d.wait_log(r"notify hook: run\.failed boom delivered")
        self.assertEqual(hook.run_ids(), sorted(held + [kept]))
        self.assertNotIn(refused, hook.run_ids())
        self.assertEqual(d.stop(), 0, d.tail())


if __name__ == "__main__":
    main()

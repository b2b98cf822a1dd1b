"""storage.pending_max with PostgreSQL: while a lost connection is being re-established (the
connect attempt not yet failed), requests wait in memory, at most storage.pending_max of them.
Past it a read is refused at once (503 store_unavailable, cronvisor_store_queue_refused_total)
and a run record is never refused: the store turns degraded at once, what waits goes to the
outage spool in order, then the record; once the database is back every run is in it.
cronvisor_store_queued_requests shows what waits. Needs a PostgreSQL 15 server (started here,
see pgserver.py); the daemon reaches it through a proxy in this test that can cut the sessions
and hold new connections unanswered (so the connect attempt neither succeeds nor fails)."""
import queue
import re
import socket
import threading
import time
import unittest

import pgserver
from cvtest import Daemon, main, response_schema, schema_errors

LIMIT = 3
READS = 8

CONFIG = """
instance: queue-a
storage:
  postgres: "{dsn}"
  spool_dir: "{dir}/spool"
  pending_max: %d
server:
  listen: "127.0.0.1:0"
defaults:
  shutdown_grace: 5s
jobs:
  - name: quick
    schedule: manual
    concurrency: allow
    on_store_outage: run
    command: 'echo "quick run $$CRONVISOR_RUN_ID"'
""" % LIMIT


class Proxy:
    """TCP proxy to PostgreSQL. cut(): closes every session and accepts new connections without
    ever answering them; restore(): closes those and forwards again."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.forwarding = True
        self.socks = []  # every socket of a session, or a held connection
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.listen_port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(c)
                if not self.forwarding:
                    continue  # held: never answered
                try:
                    u = socket.create_connection(("127.0.0.1", self.port))
                except OSError:
                    c.close()
                    continue
                self.socks.append(u)
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_all(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.socks = []

    def cut(self):
        with self.lock:
            self.forwarding = False
            self._close_all()

    def restore(self):
        with self.lock:
            self.forwarding = True
            self._close_all()

    def close(self):
        self.srv.close()
        with self.lock:
            self._close_all()


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


@unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
class PgQueueBounds(unittest.TestCase):
    def setUp(self):
        self.pg = pgserver.PgServer().start()
        self.addCleanup(self.pg.stop)
        self.pg.create_db("queue")
        self.proxy = Proxy(self.pg.port)
        self.addCleanup(self.proxy.close)
        # A connect attempt held by the proxy stays pending (not failed) for the whole test.
        dsn = "postgres://postgres@127.0.0.1:%d/queue?connect_timeout=600" % self.proxy.listen_port
        self.d = Daemon(CONFIG.replace("{dsn}", dsn))
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.kill9())
        self.d.start()
        self.d.wait_log(r"running: instance queue-a")

    def metrics(self):
        return self.d.api("GET", "/metrics").body.decode()

    def wait_metrics(self, want, timeout=60):
        """Waits until every metric of want has its value (they follow MSG_STORE_STATE)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.metrics()
            got = {k: metric(text, k) for k in want}
            if got == want:
                return text
            if time.monotonic() > deadline:
                self.assertEqual(got, want)
            time.sleep(0.1)

    def trigger(self):
        t = self.d.api("POST", "/api/jobs/quick/trigger")
        self.assertEqual(t.status, 202, t)
        return t.json["run_id"]

    def test_past_pending_max_reads_are_refused_and_runs_go_to_the_spool(self):
        d = self.d
        first = self.trigger()
        self.assertEqual(d.run_finished("quick"), (first, "SUCCESS"))
        text = self.metrics()
        self.assertEqual(metric(text, "cronvisor_store_queued_max_requests"), LIMIT)
        self.assertEqual(metric(text, "cronvisor_store_queued_requests"), 0)
        self.assertEqual(metric(text, "cronvisor_store_queue_refused_total"), 0)

        # The sessions are cut and the reconnect hangs: requests wait in memory, up to LIMIT.
        self.proxy.cut()
        d.wait_log(r"lost the connection to PostgreSQL .*; reconnecting")
        answers = queue.Queue()

        def read():
            r = d.api("GET", "/api/runs?job=quick", timeout=300)
            answers.put(r)

        for _ in range(READS):
            threading.Thread(target=read, daemon=True).start()
        refused = [answers.get(timeout=120) for _ in range(READS - LIMIT)]
        for r in refused:
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"]["code"], "store_unavailable")
            self.assertEqual(schema_errors(r.json, response_schema("/api/runs", "GET", 503)), [])
        d.wait_log(r"requests wait \(storage.pending_max\): refusing more")
        text = self.wait_metrics({"cronvisor_store_queued_requests": LIMIT,
                                  "cronvisor_store_up": 1})
        self.assertGreaterEqual(metric(text, "cronvisor_store_queue_refused_total"), READS - LIMIT)
        self.assertTrue(answers.empty(), "a waiting read was answered while the database was away")

        # Runs now: their claim is refused (they run unclaimed), their records are not: the store
        # turns degraded, the waiting reads are answered 503, the records go to the spool.
        provisional = [self.trigger() for _ in range(3)]
        self.assertTrue(all(p < 0 for p in provisional), provisional)
        d.wait_log(r"the store turns degraded before the connect attempt ends")
        for _ in range(LIMIT):
            r = answers.get(timeout=120)
            self.assertEqual((r.status, r.json["error"]["code"]), (503, "store_unavailable"))
        done = {}
        while len(done) < len(provisional):
            m = d.wait_log(r"run (-\d+) job=quick status=(\w+) ", timeout=120)
            done[int(m.group(1))] = m.group(2)
        self.assertEqual(done, {p: "SUCCESS" for p in provisional})
        text = self.wait_metrics({"cronvisor_store_queued_requests": 0, "cronvisor_store_up": 0})
        self.assertGreaterEqual(metric(text, "cronvisor_store_spooled_records"), len(provisional))
        self.assertEqual(metric(text, "cronvisor_store_spool_dropped_total"), 0)
        refused_total = metric(text, "cronvisor_store_queue_refused_total")

        # The database is back: every run accepted is recorded, with its own output.
        self.proxy.restore()
        d.wait_log(r"the outage spool is written back: \d+ record\(s\)", timeout=120)
        text = self.wait_metrics({"cronvisor_store_up": 1, "cronvisor_store_spooled_records": 0,
                                  "cronvisor_store_queued_requests": 0})
        self.assertEqual(metric(text, "cronvisor_store_queue_refused_total"), refused_total)
        self.assertEqual(d.stop(), 0)
        rows = self.pg.query("queue", "SELECT id, status, translate(output_tail, E'\\n|', '  ')"
                                      " FROM runs WHERE job = 'quick' ORDER BY id")
        self.assertEqual(len(rows), 1 + len(provisional), rows)
        self.assertTrue(all(row[1] == "SUCCESS" for row in rows), rows)
        outputs = sorted(re.sub(r"^.* stdout +", "", row[2].strip()) for row in rows)
        self.assertEqual(outputs, sorted("quick run %d" % p for p in [first] + provisional))


if __name__ == "__main__":
    main()

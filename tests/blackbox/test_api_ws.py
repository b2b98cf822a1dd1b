"""The WebSocket event stream /api/events: authentication, event order, live output, resuming with
a sequence number, and a slow client that must not grow the daemon's memory."""
import os
import re
import socket
import struct
import unittest

import signal

from cvtest import Daemon, WsClient, main, schema_errors

TOKEN = "ws-admin-token-123"

CONFIG = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: root
      role: admin
      token: %s
jobs:
  - name: quick
    schedule: manual
    concurrency: allow
    command: 'echo one; echo two'
  - name: gated
    schedule: manual
    command: 'echo waiting; while [ ! -e {dir}/go ]; do sleep 0.02; done; echo "line after go"; echo "second line"'
  - name: flood
    schedule: manual
    # about 9 MB of output events: more than the kernel's socket buffers (tcp_wmem max 4 MiB) hold
    command: 'i=0; while [ $$i -lt 150 ]; do head -c 60000 /dev/zero | tr "\\\\0" a | fold -w 200; i=$$((i+1)); done'
""" % TOKEN


def is_type(t, job=None):
    return lambda m: m.get("type") == t and (job is None or m["run"]["job"] == job)


class Events(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def client(self, since=None):
        ws = WsClient(self.d.port())
        self.assertEqual(ws.status, 101)
        msg = {"type": "auth", "token": TOKEN}
        if since is not None:
            msg["since"] = since
        ws.send(msg)
        auth, _ = ws.recv_until(lambda m: m.get("type") in ("authenticated", "error"))
        self.assertEqual(auth["type"], "authenticated", auth)
        return ws, auth["seq"]

    def trigger(self, job):
        r = self.d.api("POST", "/api/jobs/%s/trigger" % job, token=TOKEN)
        self.assertEqual(r.status, 202, r)
        return r.json["run_id"]

    def test_a_bad_token_in_the_first_message_is_refused_and_closed(self):
        ws = WsClient(self.d.port())
        ws.send({"type": "auth", "token": "nope"})
        err, _ = ws.recv_until(lambda m: m.get("type") == "error")
        self.assertEqual(err["code"], "unauthorized")
        self.assertIsNone(ws.recv())
        self.assertEqual(ws.closed, 1008)

    def test_a_ticket_authenticates_once(self):
        ticket = self.d.api("POST", "/api/events/ticket", token=TOKEN).json["ticket"]
        ws = WsClient(self.d.port(), "/api/events?ticket=" + ticket)
        self.assertEqual(ws.status, 101)
        ws.recv_until(lambda m: m.get("type") == "authenticated")
        ws.close()
        again = WsClient(self.d.port(), "/api/events?ticket=" + ticket)
        self.assertEqual(again.status, 401)

    def test_run_events_arrive_in_order_with_increasing_sequence_numbers(self):
        ws, _ = self.client()
        run_id = self.trigger("quick")
        fin, before = ws.recv_until(lambda m: m.get("type") == "run.finished" and m["run"]["id"] == run_id)
        mine = [m for m in before if "run" in m and m["run"]["id"] == run_id] + [fin]
        self.assertEqual([m["type"] for m in mine], ["run.started", "run.finished"])
        self.assertEqual(fin["run"]["status"], "SUCCESS")
        seqs = [m["seq"] for m in before + [fin] if "seq" in m]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(seqs), len(set(seqs)))
        # the finish is durable when published
        r = self.d.api("GET", "/api/runs/%d" % run_id, token=TOKEN)
        self.assertEqual(r.json["status"], "SUCCESS")
        ws.close()

    def test_job_updated_follows_a_change(self):
        ws, _ = self.client()
        self.d.api("POST", "/api/jobs/quick/disable", token=TOKEN)
        # other jobs' statistics refreshes may publish job.updated too
        m, _ = ws.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "quick")
        self.assertEqual(m["job"]["enabled"], False)
        self.assertEqual(m["job"]["overridden"], ["enabled"])
        self.d.api("POST", "/api/jobs/quick/enable", token=TOKEN)
        ws.close()

    def test_a_subscriber_gets_a_runs_output_lines_as_they_are_written(self):
        ws, _ = self.client()
        run_id = self.trigger("gated")
        ws.send({"type": "subscribe", "topic": "run:%d" % run_id})
        ws.recv_until(lambda m: m.get("type") == "subscribed")
        open(os.path.join(self.d.tmp, "go"), "w").close()
        # "waiting" may or may not come after the subscription; what follows "go" must
        a, _ = ws.recv_until(lambda m: m.get("type") == "output" and m["line"] != "waiting")
        b, _ = ws.recv_until(lambda m: m.get("type") == "output")
        self.assertEqual((a["line"], b["line"]), ("line after go", "second line"))
        self.assertEqual((a["run_id"], a["stream"], a["topic"]), (run_id, "stdout", "run:%d" % run_id))
        self.assertRegex(a["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        ws.close()

    def test_a_client_that_reconnects_with_its_last_sequence_number_gets_what_it_missed(self):
        ws, last = self.client()
        ws.close()
        ids = [self.trigger("quick") for _ in range(3)]
        recorded = set()  # runs of an "allow" job finish in any order
        while not set(ids) <= recorded:
            recorded.add(int(self.d.wait_log(r"run (\d+) SUCCESS recorded").group(1)))
        ws, _ = self.client(since=last)
        got = []
        while not set(ids) <= {m["run"]["id"] for m in got if m.get("type") == "run.finished"}:
            m, _ = ws.recv_until(lambda m: "seq" in m)
            got.append(m)
        self.assertEqual(got[0]["seq"], last + 1)
        self.assertEqual([m["seq"] for m in got], list(range(last + 1, last + 1 + len(got))))
        ws.close()

    def test_a_sequence_number_from_the_future_gets_a_resync(self):
        ws, last = self.client(since=None)
        ws.send({"type": "resume", "since": last + 100000})
        m, _ = ws.recv_until(lambda m: m.get("type") == "resync")
        self.assertGreaterEqual(m["seq"], last)  # events published meanwhile may count
        self.assertLess(m["seq"], last + 100000)
        ws.close()

    def test_a_slow_client_is_dropped_while_a_fast_one_keeps_receiving(self):
        fast, _ = self.client()
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", self.d.port()))
        slow.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        run_id = self.trigger("flood")
        # subscribe the slow client to the flood's output, then never read again
        frame = b'{"type":"subscribe","topic":"run:%d"}' % run_id
        mask = b"\x00\x00\x00\x00"
        slow.sendall(bytes([0x81, 0x80 | len(frame)]) + mask + frame)
        fin, _ = fast.recv_until(lambda m: m.get("type") == "run.finished" and m["run"]["id"] == run_id,
                                 timeout=60)
        self.assertEqual(fin["run"]["status"], "SUCCESS")
        metrics = self.d.api("GET", "/metrics", token=TOKEN).body.decode()
        dropped = int(re.search(r'cronvisor_ws_dropped_total\{reason="slow"\} (\d+)', metrics).group(1))
        self.assertGreaterEqual(dropped, 1)
        rss = int(re.search(r"process_resident_memory_bytes (\d+)", metrics).group(1))
        self.assertLess(rss, 200 * 1024 * 1024)
        slow.close()
        fast.close()


LIMITS_CONFIG = """
server:
  listen: "127.0.0.1:0"
  ws_max_queued_bytes: 256KiB
  ws_max_message_bytes: 1KiB
  ws_max_clients: 4
auth:
  tokens:
    - name: root
      role: admin
      token: %s
jobs:
  - name: quick
    schedule: manual
    command: 'true'
""" % TOKEN

UPGRADE = (b"GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def masked_text(payload):
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def read_close_code(sock, timeout=30.0):
    """Reads frames until a close frame; its code, or None when the connection ends first."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, socket.timeout):
            return None
        if not chunk:
            return None
        buf += chunk
        while len(buf) >= 2:
            n, h = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, h = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, h = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < h + n:
                break
            if buf[0] & 0x0F == 8:
                return struct.unpack("!H", buf[h:h + 2])[0]
            buf = buf[h + n:]


class Limits(unittest.TestCase):
    """Every byte queued for a client counts against server.ws_max_queued_bytes; messages,
    clients are bounded too (server.ws_max_message_bytes, server.ws_max_clients)."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(LIMITS_CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def metric(self, name):
        body = self.d.api("GET", "/metrics", token=TOKEN).body.decode()
        return int(re.search(r"^%s (\d+)$" % re.escape(name), body, re.M).group(1))

    def raw_client(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", self.d.port()))
        s.sendall(UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        return s

    def test_a_client_flooding_subscribes_without_reading_is_closed_1008_and_memory_stays_bounded(self):
        pid = self.d.proc.pid
        self.metric("cronvisor_ws_clients")  # warm up the metrics path before measuring
        before = vm_rss(pid)
        s = self.raw_client(rcvbuf=4096)
        chunk = masked_text(b'{"type":"subscribe","topic":"run:1"}') * 2000  # 84 KB
        sent = 0
        s.settimeout(3)  # the daemon stops reading from it: sends block
        try:
            while sent < 48 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
        except (socket.timeout, ConnectionError):
            pass
        grown = vm_rss(pid) - before
        # on the base, 48 MB of messages queued about 1.1 million replies (well over 100 MiB)
        self.assertLess(grown, 24 * 1024 * 1024, "RSS grew by %d bytes" % grown)
        self.assertLess(sent, 48 * 1024 * 1024)
        self.assertEqual(read_close_code(s), 1008)
        s.close()
        self.assertGreaterEqual(self.metric('cronvisor_ws_dropped_total{reason="flood"}'), 1)

    def test_a_message_above_ws_max_message_bytes_is_closed_1009(self):
        s = self.raw_client()
        s.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", 2000)
                  + b"\x00\x00\x00\x00" + b'"' * 2000)
        self.assertEqual(read_close_code(s), 1009)
        s.close()

    def test_upgrades_beyond_ws_max_clients_get_a_503(self):
        held = [WsClient(self.d.port(), headers={"Authorization": "Bearer " + TOKEN}) for _ in range(4)]
        for ws in held:
            self.assertEqual(ws.status, 101)
        extra = WsClient(self.d.port(), headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(extra.status, 503)
        self.assertIn("too_many_clients", extra.buf.decode() + extra.sock.recv(4096).decode())
        extra.sock.close()
        self.assertGreaterEqual(self.metric("cronvisor_ws_refused_total"), 1)
        for ws in held:
            ws.close()


RELOAD_BEFORE = """
server:
  listen: "127.0.0.1:0"
auth:
  tokens:
    - name: root
      role: admin
      token: %s
jobs:
  - name: kept
    schedule: manual
    command: 'true'
  - name: dropped
    schedule: manual
    command: 'true'
""" % TOKEN

RELOAD_AFTER = RELOAD_BEFORE.replace("name: dropped", "name: arrived").replace(
    "command: 'true'\n  - name: arrived", "command: 'true'\n  - name: arrived\n    title: Arrived by reload")


def event_schema(name):
    return {"$ref": "#/components/schemas/" + name}


class ReloadEvents(unittest.TestCase):
    """A reload tells the dashboard which jobs came and went, then what changed, in that order;
    each event has the shape proto/openapi.yaml gives it (the dashboard's types come from it)."""

    def test_a_reload_sends_job_added_job_removed_then_config_reloaded(self):
        d = Daemon(RELOAD_BEFORE).start()
        try:
            d.wait_log(r"cronvisor \S+ running")
            ws = WsClient(d.port())
            ws.send({"type": "auth", "token": TOKEN})
            auth, _ = ws.recv_until(lambda m: m.get("type") == "authenticated")
            self.assertEqual(auth["type"], "authenticated")
            with open(d.config_path, "w") as f:
                f.write(RELOAD_AFTER)
            d.signal(signal.SIGHUP)
            done, before = ws.recv_until(lambda m: m.get("type") == "config.reloaded")
            self.assertRegex(done["summary"], r"^jobs \+1 -1(,|$)")
            self.assertGreater(done["seq"], auth["seq"])
            self.assertEqual(schema_errors(done, event_schema("ConfigReloadedEvent")), [], done)
            added = [m for m in before if m.get("type") == "job.added"]
            removed = [m for m in before if m.get("type") == "job.removed"]
            self.assertEqual([m["job"]["name"] for m in added], ["arrived"])
            self.assertEqual(added[0]["job"]["title"], "Arrived by reload")
            self.assertEqual(schema_errors(added[0], event_schema("JobAddedEvent")), [], added[0])
            self.assertEqual([m["job"] for m in removed], ["dropped"])
            self.assertEqual(schema_errors(removed[0], event_schema("JobRemovedEvent")), [], removed[0])
            # the REST view agrees with the events
            names = [j["name"] for j in d.api("GET", "/api/jobs", token=TOKEN).json["jobs"]]
            self.assertEqual(names, ["arrived", "kept"])
            ws.close()
        finally:
            d.stop()


if __name__ == "__main__":
    main()

"""Hostile HTTP clients: clear-text HTTP/2, too many connections, readers that never read."""
import re
import socket
import time
import unittest

from cvtest import Daemon, main

CONFIG = """
server:
  listen: "127.0.0.1:0"
  max_connections: {maxc}
  write_timeout: 1
jobs:
  - name: noop
    schedule: manual
    command: "true"
"""


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(15)
    s.connect(("127.0.0.1", port))
    return s


def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def metric(d, name):
    text = d.api("GET", "/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class Limits(unittest.TestCase):
    def test_clear_text_http2_prior_knowledge_is_refused(self):
        with Daemon(CONFIG.format(maxc=0)) as d:
            s = connect(d.port())
            # the connection preface, then an empty SETTINGS frame
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            head = read_head(s)
            s.close()
            self.assertTrue(head.startswith(b"HTTP/1.1 4"), head[:40])

    def test_clear_text_upgrade_to_h2c_is_ignored(self):
        with Daemon(CONFIG.format(maxc=0)) as d:
            s = connect(d.port())
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
            head = read_head(s)
            s.close()
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:40])

    def test_connections_beyond_max_connections_are_closed_and_counted(self):
        with Daemon(CONFIG.format(maxc=3)) as d:
            held = []
            for _ in range(3):
                s = connect(d.port())
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(read_head(s).startswith(b"HTTP/1.1 200"))
                held.append(s)
            extra = connect(d.port())
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                got = extra.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            self.assertEqual(got, b"", "a connection over the cap must be closed unanswered")
            extra.close()
            held.pop().close()
            deadline = time.monotonic() + 20
            refused = None
            while time.monotonic() < deadline:  # the freed slot is seen once the close is processed
                try:
                    refused = metric(d, "cronvisor_http_connections_refused_total")
                    break
                except Exception:  # refused while the slot is still taken
                    time.sleep(0.05)
            self.assertIsNotNone(refused)
            self.assertGreaterEqual(refused, 1)
            for s in held:
                s.close()

    def test_a_client_that_never_reads_is_closed_after_the_write_timeout(self):
        with Daemon(CONFIG.format(maxc=0)) as d:
            s = connect(d.port(), rcvbuf=4096)
            req = b"GET /api/openapi.yaml HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(req * 400)  # ~11 MiB of replies: more than the socket buffers hold
            d.wait_log(r"writes made no progress", timeout=30)
            total = 0
            while True:  # what the kernel had taken is still readable, then the end
                try:
                    chunk = s.recv(1 << 16)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                total += len(chunk)
            s.close()
            self.assertLess(total, 400 * 29000, "the connection must end before every reply")
            self.assertGreaterEqual(metric(d, "cronvisor_http_write_timeouts_total"), 1)


    def test_max_body_and_request_timeout_come_from_the_config(self):
        cfg = CONFIG.format(maxc=0).replace("  write_timeout: 1\n",
                                            "  write_timeout: 1\n  max_body: 2KiB\n"
                                            "  request_timeout: 300ms\n")
        with Daemon(cfg) as d:
            body = b'{"schedule": "' + b"x" * 3000 + b'"}'
            r = d.api("POST", "/api/schedule/preview", raw=body,
                      headers={"Content-Type": "application/json"})
            self.assertEqual((r.status, r.json["error"]["code"]), (413, "body_too_large"))
            r = d.api("POST", "/api/schedule/preview", {"schedule": "* * * * *"})
            self.assertEqual(r.status, 200)
            # a client that sends half a request head is closed once request_timeout passes
            s = connect(d.port())
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            try:
                got = s.recv(4096)
            except ConnectionResetError:
                got = b""
            waited = time.monotonic() - t0
            s.close()
            self.assertFalse(got.startswith(b"HTTP/1.1 200"), got[:40])
            self.assertLess(waited, 9, "the default 10 s read timeout applied, not request_timeout")


if __name__ == "__main__":
    main()

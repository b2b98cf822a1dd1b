"""HTTP/2 rapid reset over TLS: a client that opens and resets store-backed requests is closed."""
import http.client
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import unittest

from cvtest import Daemon, main

CONFIG = """
server:
  listen: "127.0.0.1:0"
  max_resets: 20
  tls:
    cert: {dir}/cert.pem
    key: {dir}/key.pem
jobs:
  - name: noop
    schedule: manual
    command: "true"
"""


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(index, value):
    """HPACK literal without indexing, name from the static table."""
    v = value.encode()
    return bytes([index]) + bytes([len(v)]) + v


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class RapidReset(unittest.TestCase):
    def test_a_client_resetting_store_requests_in_a_loop_is_closed(self):
        d = Daemon(CONFIG)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(d.tmp, "key.pem"),
                        "-out", os.path.join(d.tmp, "cert.pem")], check=True, capture_output=True)
        with d:
            port = d.port()
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = socket.create_connection(("127.0.0.1", port), timeout=20)
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            self.assertEqual(s.selected_alpn_protocol(), "h2")
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
            block = (b"\x82\x87" + literal(0x04, "/api/runs?limit=100") +
                     literal(0x01, "127.0.0.1"))
            closed = False
            sent = 0
            for n in range(2000):  # bounded: the daemon must close long before
                stream = 1 + 2 * n
                try:
                    s.sendall(frame(1, 0x5, stream, block) +  # HEADERS, END_STREAM|END_HEADERS
                              frame(3, 0, stream, struct.pack(">I", 8)))  # RST_STREAM CANCEL
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    closed = True
                    break
                sent += 1
            if not closed:  # the close may come after everything was sent: read to the end
                try:
                    while s.recv(65536):
                        pass
                except (ConnectionResetError, ssl.SSLError, OSError):
                    pass
            s.close()
            d.wait_log(r"reset \d+ requests within", timeout=30)
            deadline = time.monotonic() + 30
            while True:  # 503 "busy" while the store still works off the reset requests
                c = http.client.HTTPSConnection("127.0.0.1", port, timeout=20,
                                                context=ssl._create_unverified_context())
                c.request("GET", "/metrics")
                r = c.getresponse()
                text = r.read().decode()
                c.close()
                if r.status != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(r.status, 200, text)
            m = re.search(r"^cronvisor_http_reset_floods_total (\d+)$", text, re.M)
            self.assertIsNotNone(m, text[-2000:])
            self.assertGreaterEqual(int(m.group(1)), 1)
            # the reads of requests reset before the store actor reached them were never done
            m = re.search(r"^cronvisor_http_store_calls_cancelled_total (\d+)$", text, re.M)
            self.assertIsNotNone(m, text[-2000:])
            self.assertGreaterEqual(int(m.group(1)), 1)
            self.assertLess(rss_kib(d.proc.pid), 256 * 1024, "RSS must stay bounded")


if __name__ == "__main__":
    main()

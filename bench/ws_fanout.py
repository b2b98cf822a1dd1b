#!/usr/bin/env python3
"""WebSocket fan-out: N connected clients (default 1,000), time from a trigger (the POST is sent)
to each client receiving that run's run.started. Prints p50/p99/max over every client and round.

    python3 bench/ws_fanout.py [path/to/cronvisor] [clients] [rounds]

One Python process reads every socket with selectors; a message is timestamped when its frame is
complete, so the figures include the client's own reading (an upper bound for the daemon)."""
import base64
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import re
import http.client

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/cronvisor")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
TOKEN = "fanout-bench-token"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + 256)), hard))

tmp = tempfile.mkdtemp(prefix="cv-ws-bench-")
with open(os.path.join(tmp, "cv.yaml"), "w") as f:
    f.write('server:\n  listen: "127.0.0.1:0"\nauth:\n  tokens:\n    - name: b\n      role: admin\n'
            '      token: %s\njobs:\n  - name: j\n    schedule: manual\n    concurrency: allow\n'
            '    command: "true"\n' % TOKEN)
proc = subprocess.Popen([BIN, "run", "-c", "cv.yaml", "--log-level", "info"], cwd=tmp,
                        stderr=subprocess.PIPE, text=True)
port = None
for line in proc.stderr:
    m = re.search(r"listening on http://127.0.0.1:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
import threading
threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()


class Client:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                        % (key, TOKEN)).encode())
        self.buf = b""
        self.handshaken = False
        self.s.setblocking(False)

    def feed(self):
        """Reads what is there; returns the complete text messages."""
        try:
            data = self.s.recv(262144)
        except BlockingIOError:
            return []
        self.buf += data
        out = []
        if not self.handshaken:
            if b"\r\n\r\n" not in self.buf:
                return out
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.handshaken = True
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < off + n:
                break
            op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            if op == 1:
                out.append(payload)
        return out


sel = selectors.DefaultSelector()
clients = []
for _ in range(N):
    c = Client()
    clients.append(c)
    sel.register(c.s, selectors.EVENT_READ, c)
authed = 0
while authed < N:
    for key, _ in sel.select(10):
        authed += sum(1 for m in key.data.feed() if b'"authenticated"' in m)

lat = []
for r in range(ROUNDS):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.monotonic()
    conn.request("POST", "/api/jobs/j/trigger", headers={"Authorization": "Bearer " + TOKEN})
    run_id = json.loads(conn.getresponse().read())["run_id"]
    conn.close()
    want = b'"type":"run.started"'
    got = 0
    seen = set()
    while got < N:
        for key, _ in sel.select(10):
            for m in key.data.feed():
                if want in m and key.data not in seen and json.loads(m)["run"]["id"] == run_id:
                    seen.add(key.data)
                    lat.append((time.monotonic() - t0) * 1000)
                    got += 1
    # drain run.finished and job.updated before the next round
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        for key, _ in sel.select(0.05):
            key.data.feed()

lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
print("%d clients x %d rounds: trigger -> run.started at every client: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (N, ROUNDS, pct(50), pct(99), lat[-1]))
for c in clients:
    c.s.close()
proc.terminate()
proc.wait()

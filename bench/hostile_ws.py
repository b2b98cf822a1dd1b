#!/usr/bin/env python3
"""Hostile WebSocket load: N clients (default 2,000) that never read while events flow (a job due
every second, its run.* and job.updated events go to every client), plus F clients (default 20)
that send {"type":"subscribe"} in a loop without reading, reconnecting whenever they are closed.
Measures the daemon's RSS growth over the idle daemon (target <= 64 MiB) and whether the job
keeps firing on time (lateness = started_at - scheduled_for of each firing).

    python3 bench/hostile_ws.py [path/to/cronvisor] [clients] [seconds] [flooders]

The daemon runs with server.ws_max_clients and server.max_connections above N (the defaults
are 1,000 and 1,024) and the default
ws_max_queued_bytes (1 MiB per client)."""
import base64
import datetime
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/cronvisor")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
SECS = int(sys.argv[3]) if len(sys.argv) > 3 else 60
FLOODERS = int(sys.argv[4]) if len(sys.argv) > 4 else 20
TOKEN = "hostile-ws-bench-token"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + FLOODERS + 512)), hard))

tmp = tempfile.mkdtemp(prefix="cv-hostile-ws-")
with open(os.path.join(tmp, "cv.yaml"), "w") as f:
    f.write('server:\n  listen: "127.0.0.1:0"\n  ws_max_clients: %d\n  max_connections: %d\n'
            'auth:\n  tokens:\n    - name: b\n      role: admin\n      token: %s\n'
            'jobs:\n  - name: tick\n    schedule: "* * * * * *"\n    command: "echo tick"\n'
            % (N + FLOODERS + 16, N + FLOODERS + 64, TOKEN))
proc = subprocess.Popen([BIN, "run", "-c", "cv.yaml", "--log-level", "info"], cwd=tmp,
                        stderr=subprocess.PIPE, text=True)
port = None
for line in proc.stderr:
    m = re.search(r"listening on http://127.0.0.1:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()


def rss():
    with open("/proc/%d/status" % proc.pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024


def upgrade(sock):
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (key, TOKEN)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = sock.recv(1)
        if not c:
            raise ConnectionError("closed during the upgrade")
        head += c
    return int(head.split(b" ")[1])


def api(method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body) if body else None


time.sleep(2)
base = rss()
sockets, refused = [], 0
for i in range(N):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow phone, not a fast desk
    s.connect(("127.0.0.1", port))
    if upgrade(s) != 101:
        refused += 1
    sockets.append(s)  # never read again
print("connected %d clients (%d refused), RSS %+.1f MiB" % (N, refused, (rss() - base) / 2**20))

stop = threading.Event()
flood_closes = [0]
SUB = bytes([0x81, 0x80 | 36]) + b"\0\0\0\0" + b'{"type":"subscribe","topic":"run:1"}'


def flooder():
    while not stop.is_set():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.connect(("127.0.0.1", port))
            if upgrade(s) != 101:
                time.sleep(0.1)
                continue
            s.settimeout(2)
            while not stop.is_set():
                s.sendall(SUB * 500)
        except (OSError, ConnectionError):
            flood_closes[0] += 1
        finally:
            s.close()


threads = [threading.Thread(target=flooder, daemon=True) for _ in range(FLOODERS)]
start_wall = datetime.datetime.now(datetime.timezone.utc)
for t in threads:
    t.start()
peak = 0
t_end = time.monotonic() + SECS
while time.monotonic() < t_end:
    peak = max(peak, rss())
    time.sleep(0.25)
stop.set()
for t in threads:
    t.join(5)
end_wall = datetime.datetime.now(datetime.timezone.utc)
metrics = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer " + TOKEN,
                          "http://127.0.0.1:%d/metrics" % port], capture_output=True, text=True).stdout


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


runs = api("GET", "/api/jobs/tick/runs?limit=500")
runs = runs.get("runs", runs.get("items", [])) if isinstance(runs, dict) else runs
window = [r for r in runs if r.get("scheduled_for") and start_wall <= ts(r["scheduled_for"]) <= end_wall]
late = sorted((ts(r["started_at"]) - ts(r["scheduled_for"])).total_seconds() * 1000
              for r in window if r.get("started_at"))
expected = int((end_wall - start_wall).total_seconds())
print("clients %d never reading + %d flooders for %d s" % (N, FLOODERS, SECS))
print("RSS growth: peak %+.1f MiB, end %+.1f MiB (idle %.1f MiB)"
      % ((peak - base) / 2**20, (rss() - base) / 2**20, base / 2**20))
for m in re.finditer(r"^cronvisor_ws_(?:clients|dropped_total\{[^}]*\}|queued_bytes|refused_total) .*$",
                     metrics, re.M):
    print("  " + m.group(0))
print("flooder connections closed by the daemon: %d" % flood_closes[0])
if late:
    print("firings: %d of ~%d seconds; lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms; on time (<10 ms) %d%%"
          % (len(late), expected, late[len(late) // 2], late[min(len(late) - 1, int(len(late) * 0.99))],
             late[-1], 100 * sum(1 for x in late if x < 10) // len(late)))
for s in sockets:
    s.close()
proc.terminate()
proc.wait(60)

#!/usr/bin/env python3
"""Hostile HTTP load against a real daemon, loopback only, bounded loops. Prints RSS growth.

    python3 bench/hostile_http.py [path/to/cronvisor] [slow_readers] [asset_path]

1. slow readers: N connections (default 8,000) each pipelining 64 GETs of asset_path (default the
   largest route without the dashboard, /api/openapi.yaml; with CV_UI=ON pass the biggest
   /assets/<bundle>.js) and never reading, held for 20 s while a job is due every second.
   Reports accepted/refused connections, RSS growth, firings recorded vs. due.
2. h2 rapid reset over TLS: 20 connections each sending up to 2,000 HEADERS + RST_STREAM pairs of
   GET /api/runs. Reports RSS growth and connections the daemon closed.
Targets (issue 13): RSS growth <= 64 MiB (1) and <= 32 MiB (2)."""
import http.client
import json
import os
import re
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/cronvisor")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
ASSET = sys.argv[3] if len(sys.argv) > 3 else "/api/openapi.yaml"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + 512)), hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024.0


def start(tmp, port, tls):
    server = '  listen: "127.0.0.1:%d"\n' % port
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", tmp + "/key.pem", "-out",
                        tmp + "/cert.pem"], check=True, capture_output=True)
        server += "  tls: {cert: %s/cert.pem, key: %s/key.pem}\n" % (tmp, tmp)
    cfg = ("server:\n" + server + "storage: {sqlite: {path: %s/cv.db}}\n"
           "jobs:\n  - name: tick\n    schedule: \"* * * * * *\"\n    command: \"true\"\n" % tmp)
    with open(tmp + "/cv.yaml", "w") as f:
        f.write(cfg)
    p = subprocess.Popen([BIN, "run", "-c", tmp + "/cv.yaml", "--log-format", "json"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("daemon did not start")


def get(port, path, tls=False):
    if tls:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                        context=ssl._create_unverified_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read()


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else -1


def slow_readers():
    tmp = tempfile.mkdtemp(prefix="cv-hostile-")
    port = free_port()
    p = start(tmp, port, False)
    time.sleep(2)
    base = rss_mib(p.pid)
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % ASSET).encode() * 64
    socks = []
    t0 = time.time()
    for _ in range(N):
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            break
    time.sleep(1)
    for s in socks:
        try:
            s.send(req)
        except OSError:
            pass
    peak = base
    end = time.time() + 20
    while time.time() < end:
        peak = max(peak, rss_mib(p.pid))
        time.sleep(0.5)
    for s in socks:  # the counters stay; the cap would refuse this client meanwhile
        s.close()
    text = ""
    for _ in range(100):
        try:
            text = get(port, "/metrics")[1].decode()
            break
        except OSError:
            time.sleep(0.2)
    _, runs = get(port, "/api/runs?job=tick&limit=100")
    since = t0 + 1
    fired = sum(1 for r in json.loads(runs)["runs"] if r.get("scheduled_for", "") >= time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(since)))
    print("slow readers: %d sockets, open %d, refused %d, write timeouts %d" % (
        len(socks), metric(text, "cronvisor_http_connections"),
        metric(text, "cronvisor_http_connections_refused_total"),
        metric(text, "cronvisor_http_write_timeouts_total")))
    print("slow readers: RSS %.1f -> peak %.1f MiB (growth %.1f MiB); tick runs recorded in %.0f s: %d" % (
        base, peak, peak - base, time.time() - since, fired))
    p.terminate()
    p.wait(60)


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def rapid_reset():
    tmp = tempfile.mkdtemp(prefix="cv-hostile-")
    port = free_port()
    p = start(tmp, port, True)
    time.sleep(2)
    base = rss_mib(p.pid)
    peak = base
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    path = b"/api/runs?limit=100"
    block = b"\x82\x87\x04" + bytes([len(path)]) + path + b"\x01\x09127.0.0.1"
    closed = 0
    for _ in range(20):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                            server_hostname="127.0.0.1")
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
        try:
            for n in range(2000):
                st = 1 + 2 * n
                s.sendall(frame(1, 5, st, block) + frame(3, 0, st, struct.pack(">I", 8)))
        except OSError:
            closed += 1
        peak = max(peak, rss_mib(p.pid))
        s.close()
    time.sleep(2)
    peak = max(peak, rss_mib(p.pid))
    _, body = get(port, "/metrics", tls=True)
    print("h2 rapid reset: 20 connections x up to 2000 resets; closed while sending %d; "
          "reset floods %d" % (closed, metric(body.decode(), "cronvisor_http_reset_floods_total")))
    print("h2 rapid reset: RSS %.1f -> peak %.1f MiB (growth %.1f MiB)" % (base, peak, peak - base))
    p.terminate()
    p.wait(60)


if __name__ == "__main__":
    slow_readers()
    rapid_reset()

"""Black-box harness: drives the real cronvisor binary.

A test starts the daemon with a config in a fresh temporary directory, follows its JSON log lines
as events (never sleeping to wait: every wait is for a line or a process to end, with a deadline),
and reads the run history from the SQLite file the daemon writes.
"""
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("CRONVISOR_BIN", os.path.join(os.environ.get("CV_BUILD_DIR", "build"), "cronvisor"))
SOURCE_DIR = os.environ.get("CV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_cli(*args, env=None, timeout=30, cwd=None, input=None):
    """Runs `cronvisor ARGS` to completion; returns CompletedProcess with text output."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout, cwd=cwd,
                          input=input)


class Daemon:
    """A running `cronvisor run` in a temporary directory.

    config: YAML text; `{dir}` in it is replaced by the temporary directory.
    """

    def __init__(self, config, env=None, args=(), prefix=(), workdir=None):
        self.tmp = workdir or tempfile.mkdtemp(prefix="cvtest-")
        self.config_path = os.path.join(self.tmp, "cronvisor.yaml")
        self.db_path = os.path.join(self.tmp, "data", "cronvisor.db")
        # A daemon with no listen address would take the default 127.0.0.1:8080, which another
        # test running at the same time may hold: every test daemon gets a free port instead.
        if not re.search(r"^\s+listen:", config, re.M):
            if re.search(r"^server:", config, re.M):
                config = re.sub(r"^server:\n", 'server:\n  listen: "127.0.0.1:0"\n', config, count=1,
                                flags=re.M)
            else:
                config = 'server:\n  listen: "127.0.0.1:0"\n' + config
        with open(self.config_path, "w") as f:
            f.write(config.replace("{dir}", self.tmp))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.args = list(args)
        self.prefix = list(prefix)
        self.lines = queue.Queue()
        self.log = []
        self.proc = None

    def start(self):
        cmd = self.prefix + [BIN, "run", "-c", self.config_path, "--log-format", "json",
                             "--log-level", "debug"] + self.args
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out = threading.Thread(target=self._drain_stdout, daemon=True)
        self._out.start()
        return self

    def _read(self):
        for raw in self.proc.stderr:
            raw = raw.rstrip("\n")
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = {"level": "raw", "component": "", "msg": raw}
            self.log.append(rec)
            self.lines.put(rec)
        self.lines.put(None)

    def _drain_stdout(self):
        self.stdout = self.proc.stdout.read()

    def wait_log(self, pattern, timeout=30.0):
        """Waits for a log line whose message matches the regex; returns the match object."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no log line matching %r within %.1fs; last lines:\n%s" %
                                     (pattern, timeout, self.tail()))
            try:
                rec = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if rec is None:
                raise AssertionError("daemon exited (rc=%s) before a line matching %r; last lines:\n%s" %
                                     (self.proc.poll(), pattern, self.tail()))
            m = rx.search(rec.get("msg", ""))
            if m:
                return m

    def run_finished(self, job, timeout=30.0):
        """Waits for the log line of a finished run of `job`; returns (run_id, status)."""
        m = self.wait_log(r"run (\d+) job=%s .*status=(\w+)" % re.escape(job) + r"(?: |$)", timeout)
        while m.group(2) in ("QUEUED", "RUNNING"):
            m = self.wait_log(r"run (\d+) job=%s .*status=(\w+)" % re.escape(job) + r"(?: |$)", timeout)
        return int(m.group(1)), m.group(2)

    def tail(self, n=30):
        return "\n".join("%s %s %s" % (r.get("level"), r.get("component"), r.get("msg")) for r in self.log[-n:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=60.0):
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def stop(self, timeout=60.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("daemon did not stop within %.0fs:\n%s" % (timeout, self.tail()))
        return self.proc.returncode if self.proc else None

    def kill9(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5)

    def db(self, sql, args=()):
        """Runs a read-only query on the daemon's SQLite history; returns a list of dict rows."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql, args)]
        finally:
            con.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        except Exception:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def main():
    unittest.main(verbosity=2)


# ---- the HTTP API (issue 4) ----

import base64
import hashlib
import http.client
import socket
import struct


def _daemon_port(self, timeout=30.0):
    """The API's bound port, from the daemon's "listening on http://HOST:PORT" line."""
    if getattr(self, "_port", None):
        return self._port
    rx = re.compile(r"listening on https?://\S+:(\d+)$")
    for rec in list(self.log):
        m = rx.search(rec.get("msg", ""))
        if m:
            self._port = int(m.group(1))
            return self._port
    self._port = int(self.wait_log(rx.pattern, timeout).group(1))
    return self._port


class ApiResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


def _daemon_api(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
    """One HTTP request to the daemon's API. body: a JSON-able value; raw: bytes sent as is."""
    conn = http.client.HTTPConnection("127.0.0.1", self.port(), timeout=timeout)
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return ApiResponse(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


Daemon.port = _daemon_port
Daemon.api = _daemon_api


class WsClient:
    """A tiny WebSocket client (RFC 6455): text frames, masked, answers pings."""

    def __init__(self, port, path="/api/events", headers=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, key))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        self.head = head.decode(errors="replace")
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                   .encode()).digest()).decode()
            assert accept in self.head, self.head
        self.closed = None

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + body)

    def send(self, obj):
        self._send_frame(1, json.dumps(obj).encode() if not isinstance(obj, (bytes, str))
                         else (obj.encode() if isinstance(obj, str) else obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def recv(self, timeout=10.0):
        """The next text message as JSON (answers pings); None when the server closed."""
        self.sock.settimeout(timeout)
        while True:
            op, payload = self.recv_frame()
            if op == 9:
                self._send_frame(10, payload)
            elif op == 8:
                self.closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return None
            elif op == 1:
                return json.loads(payload)

    def recv_until(self, pred, timeout=15.0):
        """Messages until one satisfies pred; returns (that message, every message before it)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching WebSocket message; got %r" % seen[-10:])
            m = self.recv(left)
            if m is None:
                raise AssertionError("closed (%s) before a matching message; got %r" % (self.closed, seen[-10:]))
            if pred(m):
                return m, seen
            seen.append(m)

    def close(self):
        try:
            self._send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


# ---- the OpenAPI document: a reader for the YAML subset it is written in, and a checker for the
# ---- subset of JSON Schema it uses (type, required, properties, items, enum, $ref, allOf) ----

def _yaml_scalar(s):
    s = s.strip()
    if s.startswith('"') and s.endswith('"'):
        return json.loads(s)
    if s.startswith("'") and s.endswith("'"):
        return s[1:-1]
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [_yaml_scalar(x) for x in inner.split(",")] if inner else []
    if s in ("true", "false"):
        return s == "true"
    if s in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def _yaml_key(s):
    s = s.strip()
    return json.loads(s) if s.startswith('"') else s


def load_yaml_subset(text):
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    pos = [0]

    def split_kv(t):
        m = re.match(r'^("[^"]*"|[^:]+):(?:\s+(.*))?$', t)
        if not m:
            raise ValueError("not a mapping line: %r" % t)
        return _yaml_key(m.group(1)), m.group(2)

    def block(indent):
        ind, t = lines[pos[0]]
        if t.startswith("- ") or t == "-":
            out = []
            while pos[0] < len(lines) and lines[pos[0]][0] == indent and lines[pos[0]][1].startswith("-"):
                item = lines[pos[0]][1][1:].strip()
                if re.match(r'^("[^"]*"|[A-Za-z_$][^:]*):(\s|$)', item):
                    # a mapping that starts on the dash line: re-read it at the item's indent
                    lines[pos[0]] = (indent + 2, item)
                    out.append(block(indent + 2))
                else:
                    pos[0] += 1
                    out.append(_yaml_scalar(item))
            return out
        out = {}
        while pos[0] < len(lines) and lines[pos[0]][0] == indent and not lines[pos[0]][1].startswith("- "):
            k, v = split_kv(lines[pos[0]][1])
            pos[0] += 1
            if v is None or v == "":
                if pos[0] < len(lines) and lines[pos[0]][0] > indent:
                    out[k] = block(lines[pos[0]][0])
                else:
                    out[k] = None
            else:
                out[k] = _yaml_scalar(v)
        return out

    return block(lines[0][0])


_OPENAPI = None


def openapi():
    global _OPENAPI
    if _OPENAPI is None:
        with open(os.path.join(SOURCE_DIR, "proto", "openapi.yaml")) as f:
            _OPENAPI = load_yaml_subset(f.read())
    return _OPENAPI


def _resolve(schema):
    while "$ref" in schema:
        ref = schema["$ref"]
        node = openapi()
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
          "array": list, "object": dict, "null": type(None)}


def schema_errors(value, schema, where="$"):
    """Errors of value against an OpenAPI schema (the subset used by proto/openapi.yaml)."""
    schema = _resolve(schema)
    errs = []
    for sub in schema.get("allOf", []):
        errs += schema_errors(value, sub, where)
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        ok = any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                 for t in types)
        if not ok:
            return errs + ["%s: %r is not of type %s" % (where, value, types)]
    if "enum" in schema and value not in schema["enum"]:
        errs.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
    if isinstance(value, dict):
        for k in schema.get("required", []):
            if k not in value:
                errs.append("%s: required field %r missing" % (where, k))
        for k, sub in (schema.get("properties") or {}).items():
            if k in value:
                errs += schema_errors(value[k], sub, "%s.%s" % (where, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errs += schema_errors(v, schema["items"], "%s[%d]" % (where, i))
    return errs


def response_schema(path, method, status):
    """The schema of a documented response, or None when it has no JSON body."""
    op = openapi()["paths"][path][method.lower()]
    resp = op["responses"].get(str(status))
    if resp is None and status in openapi().get("x-common-errors", []):
        resp = openapi()["components"]["responses"]["Error"]
    if resp is None:
        raise AssertionError("%s %s: status %s is not documented" % (method, path, status))
    resp = _resolve(resp)
    content = (resp.get("content") or {}).get("application/json")
    return content["schema"] if content else None

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

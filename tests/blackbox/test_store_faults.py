"""Storage failures of the SQLite store are visible and lose nothing (issue 13, finding 7).

A full disk (the database on a 4 MiB tmpfs in a private mount namespace: skipped where mounting is
not permitted) turns the store degraded: /readyz 503, cronvisor_store_up 0, a store.changed
event, a log line naming the file and the error; runs that end meanwhile are shown with their
final status and their records are written once room is made. A database file deleted while the
daemon runs is noticed, logged and restored: nothing is lost after a restart."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from cvtest import Daemon, WsClient, main, response_schema, schema_errors

TICK_DONE = r"run (\d+) job=tick status=(\w+) "


def can_mount_tmpfs():
    if shutil.which("unshare") is None:
        return False
    d = tempfile.mkdtemp(prefix="cv-mnt-")
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs " + d],
                           capture_output=True, timeout=10)
        return r.returncode == 0
    finally:
        os.rmdir(d)


class StoreFaults(unittest.TestCase):
    def readyz(self, d):
        r = d.api("GET", "/readyz")
        self.assertEqual(schema_errors(r.json, response_schema("/readyz", "GET", r.status)), [])
        return r

    def store_up(self, d):
        m = re.search(r"^cronvisor_store_up (\d)$", d.api("GET", "/metrics").body.decode(), re.M)
        return m.group(1)

    def runs(self, d, job=None):
        r = d.api("GET", "/api/runs?limit=500" + ("&job=%s" % job if job else ""))
        self.assertEqual(r.status, 200, r)
        return {run["id"]: run["status"] for run in r.json["runs"]}

    @unittest.skipUnless(can_mount_tmpfs(), "mounting a tmpfs in a private mount namespace is not "
                         "permitted here (needs root or user namespaces)")
    def test_a_full_disk_degrades_the_store_and_the_runs_are_written_once_room_is_made(self):
        tmp = tempfile.mkdtemp(prefix="cvtest-full-")
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        config = """
storage:
  sqlite:
    path: "{dir}/data/cronvisor.db"
jobs:
  - name: tick
    schedule: "* * * * * *"
    concurrency: allow
    command: 'echo tick'
  - name: fill
    schedule: manual
    command: 'head -c 16M /dev/zero > {dir}/data/filler; true'
  - name: free
    schedule: manual
    command: 'rm -f {dir}/data/filler'
"""
        # The daemon (and its jobs) see the tmpfs; this process does not: everything is checked
        # through the API.
        prefix = ["unshare", "-m", "sh", "-c",
                  'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"', data]
        # 4 MiB, not 1: the tick runs (one a second) keep growing the WAL, and on a loaded
        # machine 1 MiB filled up again between "free" and the replay (disk full a second time).
        d = Daemon(config, prefix=prefix, workdir=tmp)
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        d.start()
        d.wait_log(r"listening on")
        d.wait_log(TICK_DONE)
        self.assertEqual(self.readyz(d).status, 200)
        ws = WsClient(d.port())
        self.assertEqual(d.api("POST", "/api/jobs/fill/trigger").status, 202)
        d.wait_log(r"database .*cronvisor\.db: a write failed \(No space left on device\): the "
                   r"store is degraded")
        m, _ = ws.recv_until(lambda m: m.get("type") == "store.changed" and
                             m["store"]["state"] == "degraded", timeout=30)
        self.assertEqual(schema_errors(m, {"$ref": "#/components/schemas/StoreChangedEvent"}), [])
        ended = []
        for _ in range(4):  # runs that end while nothing can be written
            ended.append(int(d.wait_log(TICK_DONE).group(1)))
        r = self.readyz(d)
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json["store"], "degraded")
        self.assertGreater(r.json["spooled"], 0)
        self.assertEqual(self.store_up(d), "0")
        for rid in ended:  # shown as they ended, never RUNNING
            run = d.api("GET", "/api/runs/%d" % rid)
            self.assertEqual(run.status, 200, run)
            self.assertEqual(run.json["status"], "SUCCESS")

        self.assertEqual(d.api("POST", "/api/jobs/free/trigger").status, 202)
        d.wait_log(r"accepts writes again: \d+ held record\(s\) written; the store is up", timeout=30)
        ws.recv_until(lambda m: m.get("type") == "store.changed" and m["store"]["state"] == "up",
                      timeout=30)
        ws.close()
        self.assertEqual(self.readyz(d).json, {"status": "ready", "store": "up", "spooled": 0})
        self.assertEqual(self.store_up(d), "1")
        last = int(d.wait_log(TICK_DONE).group(1))
        stored = self.runs(d)  # ticks, fill and free share the ids
        for rid in range(min(ended), last):  # every run of the window is recorded, finished
            self.assertIn(stored.get(rid), ("SUCCESS",), "run %d: %s" % (rid, stored.get(rid)))
        self.assertEqual(d.stop(), 0)

    def test_a_database_file_deleted_while_running_is_restored_and_nothing_is_lost(self):
        config = """
jobs:
  - name: tick
    schedule: "* * * * * *"
    concurrency: allow
    command: 'echo tick'
"""
        d = Daemon(config)
        self.addCleanup(lambda: d.proc and d.proc.poll() is None and d.kill9())
        d.start()
        done = [int(d.wait_log(TICK_DONE).group(1)) for _ in range(3)]
        os.unlink(d.db_path)
        d.wait_log(r"database .*cronvisor\.db was deleted while in use: the store is degraded; "
                   r"restoring it from the open handle")
        d.wait_log(r"restored from the open handle: its history is kept")
        done += [int(d.wait_log(TICK_DONE).group(1)) for _ in range(3)]
        self.assertEqual(self.readyz(d).status, 200)
        self.assertEqual(d.stop(), 0)
        rows = {r["id"]: r["status"] for r in d.db("SELECT id, status FROM runs WHERE job = 'tick'")}
        for rid in range(min(done), max(done) + 1):
            self.assertEqual(rows.get(rid), "SUCCESS", "run %d" % rid)
        # and after a restart on the same directory
        d2 = Daemon(config, workdir=d.tmp)
        self.addCleanup(lambda: d2.proc and d2.proc.poll() is None and d2.kill9())
        d2.start()
        d2.wait_log(TICK_DONE)
        self.assertTrue(set(done) <= set(self.runs(d2, "tick")))
        self.assertEqual(d2.stop(), 0)


if __name__ == "__main__":
    main()

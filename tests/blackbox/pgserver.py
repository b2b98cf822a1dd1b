"""A throw-away PostgreSQL 15 server for black-box tests (standard library only).

PostgreSQL refuses to run as root, so the server runs as the `postgres` system user (or
`nobody`) in a temporary directory that user owns, on a free loopback port, with trust
authentication. A watchdog stops it even when the test process is killed.

    with PgServer() as pg:
        dsn = pg.create_db("cluster")      # postgres://postgres@127.0.0.1:PORT/cluster
        rows = pg.query("cluster", "SELECT 1")
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

PG_BIN = os.environ.get("CV_PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = shutil.which("psql") or os.path.join(PG_BIN, "psql")


def available():
    """True when the server binaries and psql are installed."""
    return os.path.exists(os.path.join(PG_BIN, "initdb")) and os.path.exists(PSQL)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, fsync=False):
        self.fsync = fsync
        self.user = "postgres"
        try:
            self.pw = pwd.getpwnam(self.user)
        except KeyError:
            self.user = "nobody"
            self.pw = pwd.getpwnam(self.user)
        self.dir = None
        self.port = None
        self.running = False

    def _as_user(self, *args, **kw):
        cmd = list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, **kw)

    def _ctl(self, action):
        return self._as_user(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                             os.path.join(self.dir, "server.log"), "-w", "-t", "60", "-m", "fast",
                             action)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="cv-pg-bb-")
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            os.chown(self.dir, self.pw.pw_uid, self.pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        r = self._as_user(os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres", "-A",
                          "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stderr)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as c:
            c.write("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"
                    "fsync = %s\nmax_connections = 100\n" %
                    (self.port, self.dir, "on" if self.fsync else "off"))
        r = self._ctl("start")
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: " + r.stderr + r.stdout)
        self.running = True
        # Stops the server even when this process is killed (a ctest timeout skips cleanup).
        prefix = "runuser -u %s -- " % self.user if os.getuid() == 0 else ""
        subprocess.Popen(
            ["sh", "-c", "while kill -0 %d 2>/dev/null; do sleep 1; done; %s%s/pg_ctl -D %s -m "
             "immediate stop; rm -rf %s" % (os.getpid(), prefix, PG_BIN, self.data, self.dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        return self

    def stop(self):
        if self.running:
            self._ctl("stop")
            self.running = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def halt(self):
        """Stops the server (fast shutdown: sessions are cut) and keeps its data for resume()."""
        r = self._ctl("stop")
        if r.returncode != 0:
            raise RuntimeError("pg_ctl stop failed: " + r.stderr + r.stdout)

    def resume(self):
        """Starts a halted server again on the same port, with the same data."""
        r = self._ctl("start")
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: " + r.stderr + r.stdout)

    def dsn(self, db):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def create_db(self, db):
        self.query("postgres", "CREATE DATABASE %s" % db)
        return self.dsn(db)

    def query(self, db, sql):
        """Runs sql with psql; returns the rows as lists of strings (unaligned, '|' separated)."""
        r = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                            db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql: %s: %s" % (sql, r.stderr))
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

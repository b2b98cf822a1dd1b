"""Issue 17's small frictions: `check` refuses what `run` refuses (an API without tokens on a
non-loopback address), `storage.sqlite: PATH` as shorthand for `{path: PATH}`, the Vixie
day-field rule the README states, and a dashboard lock file that `npm ci` accepts."""
import json
import os
import re
import sqlite3
import tempfile
import unittest

from cvtest import Daemon, SOURCE_DIR, main, run_cli


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


JOB = """jobs:
  - name: hello
    schedule: "@manual"
    command: "true"
"""


class CheckRefusesWhatRunRefuses(unittest.TestCase):
    def test_no_tokens_on_a_non_loopback_listen_is_exit_78_at_the_listen_key(self):
        tmp = tempfile.mkdtemp()
        for addr in ("0.0.0.0:8080", ":8080", "[::]:8080", "192.0.2.1:80"):
            path = write(tmp, "open.yaml", 'server:\n  listen: "%s"\n%s' % (addr, JOB))
            r = run_cli("check", "-c", path)
            self.assertEqual(r.returncode, 78, addr + r.stdout)
            self.assertRegex(r.stderr, re.escape(path) + r":2:\d+: server\.listen: .*not loopback.*"
                             r"no api token", addr)
            # run refuses the same file with the same message, before binding anything
            r = run_cli("run", "-c", path, timeout=30)
            self.assertEqual(r.returncode, 78, addr)
            self.assertIn("not loopback", r.stderr + r.stdout)

    def test_tokens_or_loopback_make_it_valid(self):
        tmp = tempfile.mkdtemp()
        ok = [
            'server:\n  listen: "0.0.0.0:8080"\nauth:\n  tokens:\n    - {name: a, role: viewer, token: secret-1}\n',
            'server:\n  listen: "127.0.0.1:8080"\n',
            'server:\n  listen: "[::1]:8080"\n',
            'server:\n  listen: "localhost:8080"\n',
            '',  # the default listen address is loopback
        ]
        for text in ok:
            r = run_cli("check", "-c", write(tmp, "ok.yaml", text + JOB))
            self.assertEqual(r.returncode, 0, text + r.stderr)

    def test_a_listen_address_that_is_not_host_port_is_refused(self):
        tmp = tempfile.mkdtemp()
        path = write(tmp, "bad.yaml", 'server:\n  listen: "localhost"\n' + JOB)
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr, re.escape(path) + r":2:\d+: server\.listen: .*is not host:port")


class SqliteShorthand(unittest.TestCase):
    def test_a_scalar_sqlite_is_the_path_and_the_daemon_starts_on_it(self):
        with Daemon('storage:\n  sqlite: "{dir}/short/history.db"\n' + JOB) as d:
            d.wait_log(r"listening on")
            db = os.path.join(d.tmp, "short", "history.db")
            self.assertTrue(os.path.exists(db), d.tail())
            with sqlite3.connect(db) as c:
                tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self.assertIn("runs", tables)
            self.assertFalse(os.path.exists(d.db_path))  # not the default ./data/cronvisor.db

    def test_the_mapping_form_still_works_and_a_list_is_an_error(self):
        tmp = tempfile.mkdtemp()
        r = run_cli("check", "-c", write(tmp, "a.yaml", "storage:\n  sqlite: {path: ./x.db}\n" + JOB))
        self.assertEqual(r.returncode, 0, r.stderr)
        path = write(tmp, "b.yaml", "storage:\n  sqlite: [./x.db]\n" + JOB)
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr, re.escape(path) + r":2:\d+: sqlite: expected a mapping, got a list")


class VixieDayFields(unittest.TestCase):
    """README: when either day field starts with `*` (also `*/2`) a day must match both; when
    both are restricted, a day matching either fires."""

    def next4(self, expr):
        r = run_cli("next", "--count", "4", "--from", "2026-03-01T00:00:00Z", expr)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [l[:10] for l in r.stdout.split()]

    def test_a_day_of_month_starting_with_star_is_anded_with_the_weekday(self):
        # odd days that are Mondays (March 2 is a Monday but even)
        self.assertEqual(self.next4("0 0 */2 * 1"), ["2026-03-09", "2026-03-23", "2026-04-13", "2026-04-27"])

    def test_the_same_days_written_without_star_are_ored(self):
        self.assertEqual(self.next4("0 0 1-31/2 * 1"), ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-07"])


class DashboardLockFile(unittest.TestCase):
    """`npm ci` refuses a lock file that lacks an entry for any dependency, optional ones (other
    platforms' native builds) included, or whose root differs from package.json."""

    def test_every_dependency_of_every_locked_package_has_an_entry(self):
        for ui in ("http/ui", "tests/ui"):
            with self.subTest(ui=ui):
                self.check_lock(os.path.join(SOURCE_DIR, ui))

    def check_lock(self, ui):
        with open(os.path.join(ui, "package-lock.json")) as f:
            lock = json.load(f)
        with open(os.path.join(ui, "package.json")) as f:
            pkg = json.load(f)
        self.assertGreaterEqual(lock["lockfileVersion"], 2)
        packages = lock["packages"]
        for kind in ("dependencies", "devDependencies"):
            self.assertEqual(packages[""].get(kind, {}), pkg.get(kind, {}), kind)

        def resolve(frm, name):
            base = frm
            while True:
                cand = (base + "/" if base else "") + "node_modules/" + name
                if cand in packages:
                    return cand
                if not base:
                    return None
                i = base.rfind("/node_modules/")
                base = base[:i] if i >= 0 else ""

        missing = []
        for path, meta in packages.items():
            for kind in ("dependencies", "devDependencies" if path == "" else "", "optionalDependencies"):
                for dep in (meta.get(kind) or {}) if kind else {}:
                    if resolve(path, dep) is None:
                        missing.append("%s -> %s (%s)" % (path or "(root)", dep, kind))
            if path:
                self.assertIn("version", meta, path)
                self.assertTrue(meta.get("integrity") or meta.get("link"), path + ": no integrity")
        self.assertEqual(missing, [])
        # rollup's native builds for other platforms are there (what older lock files lacked)
        if "node_modules/rollup" in packages:
            self.assertIn("node_modules/@rollup/rollup-linux-arm64-gnu", packages)

    def test_the_install_script_has_no_npm_install_fallback(self):
        with open(os.path.join(SOURCE_DIR, "scripts", "npm-install.sh")) as f:
            text = f.read()
        commands = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        self.assertEqual(commands, ["exec npm ci --no-audit --no-fund --loglevel=error"])


if __name__ == "__main__":
    main()

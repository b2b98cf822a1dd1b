"""`cronvisor next`, `check`, `--help` and `--version` against the real binary."""
import os
import re
import tempfile
import unittest

from cvtest import SOURCE_DIR, main, run_cli


class NextCommand(unittest.TestCase):
    def test_prints_instants_strictly_after_from_in_utc(self):
        r = run_cli("next", "--from", "2026-01-01T00:00:00Z", "--count", "3", "*/20 * * * *")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["2026-01-01T00:20:00Z", "2026-01-01T00:40:00Z",
                                            "2026-01-01T01:00:00Z"])

    def test_shifts_a_skipped_wall_clock_time_forward_by_the_gap(self):
        # Stockholm springs forward at 02:00 on 2026-03-29: 02:30 does not exist, so it runs at 03:30.
        r = run_cli("next", "--from", "2026-03-28T00:00:00Z", "--count", "3", "--tz",
                    "Europe/Stockholm", "--local", "30 2 * * *")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00",
                                            "2026-03-30T02:30:00+02:00"])

    def test_fires_once_at_the_first_occurrence_when_the_clock_falls_back(self):
        r = run_cli("next", "--from", "2026-10-24T12:00:00Z", "--count", "2", "--tz",
                    "Europe/Stockholm", "30 2 * * *")
        self.assertEqual(r.stdout.split(), ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])

    def test_a_bad_expression_exits_2_naming_field_value_and_column(self):
        r = run_cli("next", "0 0 32 * *")
        self.assertEqual(r.returncode, 2)
        self.assertIn("day-of-month", r.stderr)
        self.assertIn("32", r.stderr)
        self.assertIn("column 5", r.stderr)

    def test_an_expression_that_can_never_fire_is_refused(self):
        r = run_cli("next", "0 0 30 2 *")
        self.assertEqual(r.returncode, 2)
        self.assertIn("never", r.stderr)

    def test_an_unknown_time_zone_is_an_error(self):
        r = run_cli("next", "--tz", "Europe/Stokholm", "* * * * *")
        self.assertEqual(r.returncode, 2)
        self.assertIn("Europe/Stokholm", r.stderr)

    def test_a_bad_from_time_is_an_error(self):
        r = run_cli("next", "--from", "yesterday", "* * * * *")
        self.assertEqual(r.returncode, 2)
        self.assertIn("RFC 3339", r.stderr)

    def test_hash_spread_depends_on_the_job_name_and_is_stable(self):
        a1 = run_cli("next", "--from", "2026-01-01T00:00:00Z", "--job", "alpha", "H * * * *").stdout
        a2 = run_cli("next", "--from", "2026-01-01T00:00:00Z", "--job", "alpha", "H * * * *").stdout
        self.assertEqual(a1, a2)
        minutes = {run_cli("next", "--from", "2026-01-01T00:00:00Z", "--count", "1", "--job", "job%d" % i,
                           "H * * * *").stdout for i in range(20)}
        self.assertGreater(len(minutes), 5)


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class CheckCommand(unittest.TestCase):
    def test_the_example_configuration_is_valid_and_lists_every_job(self):
        path = os.path.join(SOURCE_DIR, "examples", "cronvisor.yaml")
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"OK")
        self.assertIn("manual", r.stdout)
        self.assertRegex(r.stdout, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

    def test_the_example_crontab_is_valid(self):
        r = run_cli("check", "-c", os.path.join(SOURCE_DIR, "examples", "crontab"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_error_is_reported_with_its_position_and_exit_78(self):
        tmp = tempfile.mkdtemp()
        path = write(tmp, "bad.yaml", """jobs:
  - name: first
    schedule: "0 0 32 * *"
    command: "true"
  - name: second
    timzone: UTC
    schedule: "* * * * *"
    command: "true"
""")
        r = run_cli("check", "-c", path)
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr, re.escape(path) + r":3:\d+: job 'first': .*day-of-month")
        self.assertRegex(r.stderr, re.escape(path) + r":6:5: job 'second': unknown key 'timzone'.*did you mean 'timezone'")

    def test_an_unreadable_file_is_an_error(self):
        r = run_cli("check", "-c", "/nonexistent/cronvisor.yaml")
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/cronvisor.yaml", r.stderr)


class HelpAndVersion(unittest.TestCase):
    def test_version_prints_the_version(self):
        r = run_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^cronvisor \d+\.\d+\.\d+")

    def test_each_subcommand_has_help(self):
        for cmd in ("run", "next", "check"):
            r = run_cli(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: cronvisor " + cmd, r.stdout)

    def test_an_unknown_command_exits_2(self):
        r = run_cli("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)


if __name__ == "__main__":
    main()

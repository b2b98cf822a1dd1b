"""One effective job (configuration + runtime overrides): the scheduler, the executor and the API
agree on it, before and after a restart."""
import re
import time
import unittest

from cvtest import Daemon, main

CONFIG = """
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
jobs:
  - name: broken
    schedule: manual
    auto_disable_after: 1
    command: "exit 1"
  - name: ticker
    schedule: manual
    command: "true"
"""


def job(d, name):
    r = d.api("GET", "/api/jobs/%s" % name)
    assert r.status == 200, r
    return r.json


class ExecutorSeesOverrides(unittest.TestCase):
    def test_a_job_disabled_through_the_api_and_run_by_hand_is_not_auto_disabled_again(self):
        with Daemon(CONFIG) as d:
            d.port()
            r = d.api("POST", "/api/jobs/broken/disable")
            self.assertEqual(r.status, 200, r)
            self.assertFalse(r.json["enabled"])
            r = d.api("POST", "/api/jobs/broken/trigger")
            self.assertEqual(r.status, 202, r)  # a person may run a disabled job
            # The executor counts the failure against auto_disable_after: 1. It must know the job
            # is disabled already, as the API says, and not disable it "again" (an audit record
            # claiming it was enabled, a job.auto_disabled notification).
            m = d.wait_log(r"job broken: (disabled after \d+ consecutive failures|"
                           r"\d+ consecutive failures; the job is already disabled)")
            self.assertIn("already disabled", m.group(0))
            self.assertEqual(d.run_finished("broken")[1], "FAILED")
            audit = d.api("GET", "/api/audit?job=broken").json
            actions = [e["action"] for e in audit["entries"]]
            self.assertIn("job.disable", actions)
            self.assertNotIn("job.auto_disabled", actions)
            self.assertFalse(job(d, "broken")["enabled"])

    def test_a_job_enabled_again_through_the_api_is_auto_disabled_by_the_executor(self):
        with Daemon(CONFIG) as d:
            d.port()
            self.assertEqual(d.api("POST", "/api/jobs/broken/disable").status, 200)
            self.assertEqual(d.api("POST", "/api/jobs/broken/enable").status, 200)
            self.assertEqual(d.api("POST", "/api/jobs/broken/trigger").status, 202)
            d.wait_log(r"job broken: disabled after 1 consecutive failures")
            deadline = time.monotonic() + 10
            while job(d, "broken")["enabled"]:
                self.assertLess(time.monotonic(), deadline, "the API never saw the job disabled")
                time.sleep(0.05)


class ScheduleOverride(unittest.TestCase):
    def test_a_schedule_override_is_what_the_api_shows_and_the_scheduler_fires_after_a_restart(self):
        d = Daemon(CONFIG)
        with d:
            d.port()
            r = d.api("PUT", "/api/jobs/ticker/schedule", body={"schedule": "* * * * * *"})
            self.assertEqual(r.status, 200, r)
            j = job(d, "ticker")
            self.assertEqual(j["schedule"], "* * * * * *")
            self.assertEqual(j["overridden"], ["schedule"])
            self.assertIsNotNone(j["next_fire"])
            d.wait_log(r"run \d+ job=ticker trigger=cron ")
        # After a restart the override comes from the store: the scheduler (daemon) and the API
        # compute the same effective job from it.
        d2 = Daemon(CONFIG, workdir=d.tmp)
        with d2:
            d2.port()
            j = job(d2, "ticker")
            self.assertEqual(j["schedule"], "* * * * * *")
            self.assertIsNotNone(j["next_fire"])
            d2.wait_log(r"run \d+ job=ticker trigger=cron ")
            self.assertEqual(d2.api("POST", "/api/jobs/ticker/disable").status, 200)
            self.assertIsNone(job(d2, "ticker")["next_fire"])
            r = d2.api("DELETE", "/api/jobs/ticker/overrides")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["schedule"], "manual")
            self.assertEqual(r.json["overridden"], [])
            self.assertTrue(r.json["enabled"])


if __name__ == "__main__":
    main()

"""Events carry what a dashboard shows: run.queued/started/finished carry the run's job as GET
/api/jobs lists it after the event (live counts, last run, next fire), and a job.updated with the
statistics that count the run follows run.finished, so that a page needs no request per event."""
import unittest

from cvtest import Daemon, WsClient, main, schema_errors

CONFIG = """
server:
  listen: "127.0.0.1:0"
jobs:
  - name: works
    title: Works
    schedule: "0 3 * * *"
    command: 'echo "{\\"items_processed\\": 4}" >&3'
  - name: breaks
    schedule: manual
    command: 'echo "upstream down" >&2; exit 2'
  - name: holds
    schedule: manual
    command: 'sleep 600'
"""


def event_schema(name):
    return {"$ref": "#/components/schemas/" + name}


class EventsCarryState(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def listen(self):
        ws = WsClient(self.d.port())
        ws.send({"type": "auth"})
        ws.recv_until(lambda m: m.get("type") == "authenticated")
        return ws

    def run_job(self, name):
        ws = self.listen()
        try:
            r = self.d.api("POST", "/api/jobs/%s/trigger" % name)
            self.assertEqual(r.status, 202, r)
            run_id = r.json["run_id"]
            started, _ = ws.recv_until(lambda m: m.get("type") == "run.started" and m["run"]["id"] == run_id)
            finished, _ = ws.recv_until(lambda m: m.get("type") == "run.finished" and m["run"]["id"] == run_id)
            updated, _ = ws.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == name
                                       and (m["job"]["last_run"] or {}).get("id") == run_id)
            return run_id, started, finished, updated
        finally:
            ws.close()

    def test_run_events_carry_the_job_after_the_event_and_job_updated_its_statistics(self):
        run_id, started, finished, updated = self.run_job("works")
        for ev in (started, finished):
            self.assertEqual(schema_errors(ev, event_schema("RunEvent")), [], ev)
            self.assertEqual(ev["job"]["name"], "works")
            self.assertIsNotNone(ev["job"]["next_fire"])
        self.assertEqual(started["job"]["running"], 1)
        self.assertEqual(started["job"]["last_run"]["status"], "RUNNING")
        self.assertEqual(finished["job"]["running"], 0)
        self.assertEqual(finished["job"]["last_run"]["id"], run_id)
        self.assertEqual(finished["job"]["last_run"]["status"], "SUCCESS")
        self.assertEqual(finished["job"]["last_run"]["items_processed"], 4)
        self.assertEqual(updated["job"]["stats"]["successes"], updated["job"]["stats"]["runs"])
        self.assertGreaterEqual(updated["job"]["stats"]["runs"], 1)
        # what the events said is what the API says
        self.assertEqual(self.d.api("GET", "/api/jobs/works").json, updated["job"])

    def test_a_failed_run_s_event_carries_its_error_and_the_consecutive_failures(self):
        run_id, _, finished, updated = self.run_job("breaks")
        self.assertEqual(finished["job"]["last_run"]["status"], "FAILED")
        self.assertIn("exit code 2", finished["job"]["last_run"]["error"])
        self.assertGreaterEqual(updated["job"]["stats"]["consecutive_failures"], 1)

    def test_run_events_carry_the_runs_active_over_every_job_as_the_summary_counts_them(self):
        ws = self.listen()
        try:
            def summary():
                s = self.d.api("GET", "/api/summary").json
                return s["running"], s["queued"]

            def ev(kind, run_id):
                m, _ = ws.recv_until(lambda m: m.get("type") == kind and m["run"]["id"] == run_id)
                self.assertEqual(schema_errors(m, event_schema("RunEvent")), [], m)
                return m["active"]["running"], m["active"]["queued"]

            base = summary()
            held = self.d.api("POST", "/api/jobs/holds/trigger").json["run_id"]
            self.assertEqual(ev("run.started", held), (base[0] + 1, base[1]))
            self.assertEqual(summary(), (base[0] + 1, base[1]))
            quick = self.d.api("POST", "/api/jobs/works/trigger").json["run_id"]
            self.assertEqual(ev("run.started", quick), (base[0] + 2, base[1]))
            self.assertEqual(ev("run.finished", quick), (base[0] + 1, base[1]))
            self.assertEqual(self.d.api("POST", "/api/runs/%d/cancel" % held).status, 202)
            self.assertEqual(ev("run.finished", held), base)
            self.assertEqual(summary(), base)
        finally:
            ws.close()


if __name__ == "__main__":
    main()

"""A job's time zone changed at run time with its schedule (PUT /api/jobs/{name}/schedule with a
"timezone"): validated with the zone loading the scheduler uses, applied by the scheduler, shown by
the API and its events, audited, kept across a restart, reverted by the override reset; refused for
a locked job and for a role below admin. Expected instants are computed here from the zone rules
(zoneinfo) at the time of the request, never written down."""
import datetime
import unittest
import zoneinfo

from cvtest import Daemon, WsClient, main, response_schema, schema_errors

VIEWER, OPERATOR, ADMIN = "tz-viewer-secret-1", "tz-operator-secret-2", "tz-admin-secret-3"

CONFIG = """
server:
  listen: "127.0.0.1:0"
defaults:
  kill_grace: 1s
  shutdown_grace: 5s
auth:
  tokens:
    - name: dash
      role: viewer
      token: %s
    - name: ops
      role: operator
      token: %s
    - name: root
      role: admin
      token: %s
jobs:
  - name: nightly
    schedule: "0 3 * * *"
    timezone: Europe/Stockholm
    command: 'true'
  - name: frozen
    schedule: "0 3 * * *"
    timezone: Europe/Stockholm
    locked: true
    command: 'true'
""" % (VIEWER, OPERATOR, ADMIN)

CONFIG_ZONE, NEW_ZONE = "Europe/Stockholm", "Asia/Tokyo"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def next_at_hour(hour, zone, after):
    """The first instant strictly after `after` whose wall clock in zone reads hour:00:00 (the
    zones used here have no transition at that hour, so it exists once a day)."""
    local = after.astimezone(zoneinfo.ZoneInfo(zone))
    cand = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if cand <= local:
        cand = (local + datetime.timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return cand.astimezone(datetime.timezone.utc)


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


class ZoneTest(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def tearDown(self):
        self.call("DELETE", "/api/jobs/nightly/overrides", "/api/jobs/{name}/overrides")

    def call(self, method, path, doc_path=None, body=None, token=ADMIN, expect=200, d=None):
        """A request whose status must be `expect` and whose body must match the document."""
        r = (d or self.d).api(method, path, body=body, token=token)
        self.assertEqual(r.status, expect, r)
        schema = response_schema(doc_path or path, method, expect)
        if schema is not None:
            self.assertEqual(schema_errors(r.json, schema), [], r.json)
        return r

    def put_schedule(self, body, expect=200, token=ADMIN, job="nightly", d=None):
        return self.call("PUT", "/api/jobs/%s/schedule" % job, "/api/jobs/{name}/schedule", body=body,
                         token=token, expect=expect, d=d)

    def job(self, name="nightly", d=None):
        return self.call("GET", "/api/jobs/" + name, "/api/jobs/{name}", token=VIEWER, d=d).json

    def assertNextFireAt(self, job, hour, zone, before, after):
        """next_fire is the first hour:00 in zone after the request (which happened between
        before and after: both candidates are accepted when an hour:00 passed in between)."""
        self.assertIn(parse_time(job["next_fire"]), {next_at_hour(hour, zone, before),
                                                     next_at_hour(hour, zone, after)}, job)


class ZoneOverride(ZoneTest):
    def test_a_new_zone_moves_the_next_fire_and_is_published_audited_and_rescheduled(self):
        ws = WsClient(self.d.port(), headers={"Authorization": "Bearer " + VIEWER})
        try:
            ws.recv_until(lambda m: m.get("type") == "authenticated")
            before = utc_now()
            r = self.put_schedule({"schedule": "0 3 * * *", "timezone": NEW_ZONE}).json
            after = utc_now()
            self.assertEqual((r["job"]["timezone"], sorted(r["job"]["overridden"])),
                             (NEW_ZONE, ["schedule", "timezone"]))
            self.assertNextFireAt(r["job"], 3, NEW_ZONE, before, after)
            # the five next fires are 03:00 in Tokyo, one day apart
            fires = [parse_time(t) for t in r["next"]]
            self.assertEqual(len(fires), 5)
            for t in fires:
                self.assertEqual(t.astimezone(zoneinfo.ZoneInfo(NEW_ZONE)).hour, 3)
            self.assertEqual({b - a for a, b in zip(fires, fires[1:])}, {datetime.timedelta(days=1)})
            # the API's read model, its event and the scheduler agree
            self.assertNextFireAt(self.job(), 3, NEW_ZONE, before, after)
            ev, _ = ws.recv_until(lambda m: m.get("type") == "job.updated" and m["job"]["name"] == "nightly"
                                  and m["job"]["timezone"] == NEW_ZONE)
            self.assertNextFireAt(ev["job"], 3, NEW_ZONE, before, utc_now())
            self.d.wait_log(r"job 'nightly' rescheduled: \"0 3 \* \* \*\" \(Asia/Tokyo\)")
        finally:
            ws.close()
        audit = self.call("GET", "/api/audit?job=nightly", "/api/audit", token=VIEWER).json["entries"]
        changes = [(e["actor"], e["before"], e["after"]) for e in audit if e["action"] == "job.schedule"]
        self.assertIn(("api:root", {"schedule": "0 3 * * *", "timezone": CONFIG_ZONE},
                       {"schedule": "0 3 * * *", "timezone": NEW_ZONE}), changes)

    def test_the_reset_reverts_the_zone_and_the_next_fire(self):
        self.put_schedule({"schedule": "0 3 * * *", "timezone": NEW_ZONE})
        before = utc_now()
        j = self.call("DELETE", "/api/jobs/nightly/overrides", "/api/jobs/{name}/overrides").json
        after = utc_now()
        self.assertEqual((j["timezone"], j["overridden"]), (CONFIG_ZONE, []))
        self.assertNextFireAt(j, 3, CONFIG_ZONE, before, after)
        self.d.wait_log(r"job 'nightly' rescheduled: \"0 3 \* \* \*\" \(Europe/Stockholm\)")

    def test_a_schedule_change_without_a_zone_keeps_the_overridden_zone(self):
        self.put_schedule({"schedule": "0 3 * * *", "timezone": NEW_ZONE})
        before = utc_now()
        j = self.put_schedule({"schedule": "0 5 * * *"}).json["job"]
        after = utc_now()
        self.assertEqual(j["timezone"], NEW_ZONE)
        self.assertNextFireAt(j, 5, NEW_ZONE, before, after)


class ZoneRefused(ZoneTest):
    def assertUnchanged(self):
        j = self.job()
        self.assertEqual((j["schedule"], j["timezone"], j["overridden"]), ("0 3 * * *", CONFIG_ZONE, []))

    def test_unknown_or_hostile_zones_are_422_naming_the_field_and_the_zone(self):
        for zone in ("Mars/Olympus", "Europe/Stokholm", "../../etc/passwd", "/etc/passwd", "Europe",
                     "zone.tab", "Europe//Stockholm", "Europe/Stockholm\n", "x" * 1000, ""):
            with self.subTest(zone=zone[:40]):
                err = self.put_schedule({"schedule": "0 3 * * *", "timezone": zone}, expect=422).json["error"]
                self.assertEqual((err["code"], err["field"]), ("invalid_timezone", "timezone"))
                self.assertIn(zone.strip()[:100], err["message"])
                self.assertLess(len(err["message"]), 400)
                err = self.call("POST", "/api/schedule/preview", body={"schedule": "0 3 * * *", "timezone": zone},
                                token=VIEWER, expect=422).json["error"]
                self.assertEqual(err["code"], "invalid_timezone")
        self.assertIn("did you mean Europe/Stockholm",
                      self.put_schedule({"schedule": "0 3 * * *", "timezone": "Europe/Stokholm"},
                                        expect=422).json["error"]["message"])
        self.assertUnchanged()

    def test_a_zone_that_is_not_a_string_is_400(self):
        for zone in (9, None, ["Asia/Tokyo"], {"name": "Asia/Tokyo"}, True):
            with self.subTest(zone=zone):
                err = self.put_schedule({"schedule": "0 3 * * *", "timezone": zone}, expect=400).json["error"]
                self.assertIn('"timezone"', err["message"])
                self.call("POST", "/api/schedule/preview", body={"schedule": "0 3 * * *", "timezone": zone},
                          token=VIEWER, expect=400)
        self.assertUnchanged()

    def test_viewers_and_operators_are_403(self):
        for token in (VIEWER, OPERATOR):
            self.put_schedule({"schedule": "0 3 * * *", "timezone": NEW_ZONE}, token=token, expect=403)
        self.assertUnchanged()

    def test_a_locked_job_refuses_a_zone_with_423(self):
        err = self.put_schedule({"schedule": "0 3 * * *", "timezone": NEW_ZONE}, job="frozen",
                                expect=423).json["error"]
        self.assertEqual(err["code"], "locked")
        j = self.job("frozen")
        self.assertEqual((j["timezone"], j["overridden"]), (CONFIG_ZONE, []))


class ZoneAcrossRestart(ZoneTest):
    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def tearDown(self):
        pass

    def test_the_scheduler_fires_in_the_new_zone_before_and_after_a_restart_and_the_reset_reverts_it(self):
        # Every second of the current hour and the next one in Tokyo: the scheduler fires it at
        # once in Tokyo's time, and not for hours in Stockholm's (7 or 8 hours behind).
        h = utc_now().astimezone(zoneinfo.ZoneInfo(NEW_ZONE)).hour
        schedule = "* * %d,%d * * *" % (h, (h + 1) % 24)
        d = Daemon(CONFIG)
        with d:
            self.put_schedule({"schedule": schedule, "timezone": NEW_ZONE}, d=d)
            d.wait_log(r"run \d+ job=nightly trigger=cron ")
        d2 = Daemon(CONFIG, workdir=d.tmp)
        with d2:
            j = self.job(d=d2)
            self.assertEqual((j["schedule"], j["timezone"], sorted(j["overridden"])),
                             (schedule, NEW_ZONE, ["schedule", "timezone"]))
            d2.wait_log(r"run \d+ job=nightly trigger=cron ")
            before = utc_now()
            j = self.call("DELETE", "/api/jobs/nightly/overrides", "/api/jobs/{name}/overrides", d=d2).json
            after = utc_now()
            self.assertEqual((j["schedule"], j["timezone"], j["overridden"]), ("0 3 * * *", CONFIG_ZONE, []))
            self.assertNextFireAt(j, 3, CONFIG_ZONE, before, after)
            d2.wait_log(r"job 'nightly' rescheduled: \"0 3 \* \* \*\" \(Europe/Stockholm\)")


if __name__ == "__main__":
    main()

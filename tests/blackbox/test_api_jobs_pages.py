"""GET /api/jobs in pages: limit and keyset cursor (by name), the q / tag / status / enabled filters
with their total, one cached body per page with ETag / If-None-Match (304) and gzip."""
import gzip
import json
import os
import socket
import tempfile
import unittest
from urllib.parse import quote

from cvtest import Daemon, main, response_schema, run_cli, schema_errors

JOBS = 250


def config():
    lines = ['server:\n  listen: "127.0.0.1:0"\n  jobs_cache_pages: 4\njobs:\n']
    for i in range(JOBS):
        lines.append('  - name: job%03d\n    title: %s number %d\n    schedule: "0 3 * * *"\n'
                     '    command: "true"\n    enabled: %s\n    tags: [%s]\n'
                     % (i, "Backup" if i % 10 == 0 else "Report", i, "false" if i % 5 == 0 else "true",
                        "nightly" if i % 2 == 0 else "hourly"))
    lines.append('  - name: breaks\n    title: Always breaks\n    schedule: manual\n    command: "exit 3"\n')
    return "".join(lines)


class JobPages(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config()).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def get(self, query="", headers=None):
        return self.d.api("GET", "/api/jobs" + query, headers=headers)

    def page_through(self, query, limit):
        names, cursor, pages = [], None, 0
        while True:
            q = "?limit=%d%s%s" % (limit, query, "&cursor=" + quote(cursor) if cursor else "")
            r = self.get(q)
            self.assertEqual(r.status, 200, r)
            body = r.json
            self.assertEqual(schema_errors(body, response_schema("/api/jobs", "get", "200")), [])
            self.assertLessEqual(len(body["jobs"]), limit)
            names += [j["name"] for j in body["jobs"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                return names, body["total"], pages

    def test_the_default_page_is_100_jobs_and_the_cursor_walks_every_job_once_by_name(self):
        first = self.get().json
        self.assertEqual(len(first["jobs"]), 100)
        self.assertEqual(first["total"], JOBS + 1)
        self.assertEqual(first["next_cursor"], first["jobs"][-1]["name"])
        names, total, pages = self.page_through("", 64)
        self.assertEqual(total, JOBS + 1)
        self.assertEqual(pages, 4)
        self.assertEqual(names, sorted(["job%03d" % i for i in range(JOBS)] + ["breaks"]))

    def test_filters_select_jobs_and_total_counts_every_match(self):
        names, total, _ = self.page_through("&q=backup", 7)  # case-insensitive, in the title
        self.assertEqual(names, ["job%03d" % i for i in range(0, JOBS, 10)])
        self.assertEqual(total, len(names))
        names, total, _ = self.page_through("&q=ob24", 100)  # in the name
        self.assertEqual(names, ["job%03d" % i for i in range(240, 250)])
        names, _, _ = self.page_through("&tag=nightly&enabled=false", 10)
        self.assertEqual(names, ["job%03d" % i for i in range(0, JOBS, 10)])
        names, total, _ = self.page_through("&enabled=true&tag=hourly", 1000)
        self.assertEqual(total, len([i for i in range(JOBS) if i % 2 and i % 5]))
        names, _, _ = self.page_through("&status=NEVER&q=job24", 3)
        self.assertEqual(names, ["job%03d" % i for i in range(240, 250)])
        self.assertEqual(self.get("?status=SUCCESS&q=job24").json["total"], 0)

    def test_a_job_whose_last_run_failed_is_found_by_status_once_it_failed(self):
        self.assertEqual(self.get("?status=FAILED").json["total"], 0)
        r = self.d.api("POST", "/api/jobs/breaks/trigger")
        self.assertEqual(r.status, 202, r)
        self.d.run_finished("breaks")
        page = self.get("?status=FAILED,TIMED_OUT").json
        self.assertEqual([j["name"] for j in page["jobs"]], ["breaks"])
        self.assertEqual(page["jobs"][0]["last_run"]["status"], "FAILED")
        self.assertEqual(self.get("?status=NEVER").json["total"], JOBS)

    def test_bad_parameters_are_refused_with_what_is_wrong(self):
        for q, words in (("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=ten", "limit"),
                         ("?enabled=yes", "enabled"), ("?status=DONE", "DONE")):
            r = self.get(q)
            self.assertEqual(r.status, 400, q)
            self.assertIn(words, r.json["error"]["message"], q)

    def test_an_unchanged_page_answers_304_and_a_changed_one_a_new_etag(self):
        r = self.get("?limit=5")
        tag = r.header("ETag")
        self.assertTrue(tag and tag.startswith('"'), r.headers)
        self.assertEqual(self.get("?limit=5").header("ETag"), tag)
        again = self.get("?limit=5", {"If-None-Match": tag})
        self.assertEqual((again.status, again.body), (304, b""))
        other = self.get("?limit=6", {"If-None-Match": tag})
        self.assertEqual(other.status, 200)
        self.assertEqual(self.d.api("POST", "/api/jobs/job001/disable").status, 200)
        changed = self.get("?limit=5", {"If-None-Match": tag})
        self.assertEqual(changed.status, 200)
        self.assertNotEqual(changed.header("ETag"), tag)
        self.assertFalse([j for j in changed.json["jobs"] if j["name"] == "job001"][0]["enabled"])
        self.assertEqual(self.d.api("POST", "/api/jobs/job001/enable").status, 200)

    def test_a_page_still_being_written_keeps_its_bytes_when_the_cache_drops_it(self):
        want = self.get("?limit=1000").body
        s = socket.socket()
        # a small window and segment: the daemon's socket cannot take the whole page at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.settimeout(30)
        s.connect(("127.0.0.1", self.d.port()))
        s.sendall(b"GET /api/jobs?limit=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = s.recv(2048)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
        # the model changes (the cache lets go of the page) while the response is half written
        self.assertEqual(self.d.api("POST", "/api/jobs/job002/disable").status, 200)
        self.assertNotEqual(self.get("?limit=1000").body, want)
        got = head
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertEqual(got.split(b"\r\n\r\n", 1)[1], want)
        self.assertEqual(self.d.api("POST", "/api/jobs/job002/enable").status, 200)

    def test_gzip_is_sent_when_accepted_and_holds_the_same_json(self):
        plain = self.get("?limit=200")
        self.assertIsNone(plain.header("Content-Encoding"))
        self.assertEqual(plain.header("Vary"), "Accept-Encoding")
        z = self.get("?limit=200", {"Accept-Encoding": "gzip, br"})
        self.assertEqual(z.header("Content-Encoding"), "gzip")
        self.assertLess(len(z.body), len(plain.body) // 4)
        self.assertEqual(json.loads(gzip.decompress(z.body)), plain.json)
        self.assertNotEqual(z.header("ETag"), plain.header("ETag"))  # one tag per coding
        refused = self.get("?limit=200", {"Accept-Encoding": "gzip;q=0"})
        self.assertIsNone(refused.header("Content-Encoding"))
        not_modified = self.get("?limit=200", {"Accept-Encoding": "gzip", "If-None-Match": z.header("ETag")})
        self.assertEqual(not_modified.status, 304)

    def metric(self, line):
        text = self.d.api("GET", "/metrics").body.decode()
        return int(float([l for l in text.splitlines() if l.startswith(line + " ")][0].split()[-1]))

    def counts(self):
        return tuple(self.metric('cronvisor_http_jobs_cache_requests_total{result="%s"}' % k) for k in ("hit", "miss"))

    def test_pages_are_cached_until_something_changes(self):
        self.get("?limit=3&q=report")
        hits, misses = self.counts()
        for _ in range(3):
            self.get("?limit=3&q=report")
        self.assertEqual(self.counts(), (hits + 3, misses))

    def test_the_cache_keeps_at_most_server_jobs_cache_pages_pages(self):
        for n in range(1, 8):  # seven distinct pages through a cache of four
            self.assertEqual(self.get("?limit=%d&tag=nightly" % n).status, 200)
        self.assertEqual(self.metric("cronvisor_http_jobs_cache_pages"), 4)
        hits, misses = self.counts()
        self.get("?limit=1&tag=nightly")  # replaced since: encoded again
        self.get("?limit=7&tag=nightly")  # the newest: still there
        self.assertEqual(self.counts(), (hits + 1, misses + 1))
        self.assertEqual(self.metric("cronvisor_http_jobs_cache_pages"), 4)

    def test_check_refuses_a_negative_jobs_cache_pages_with_where(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "cv.yaml")
            with open(path, "w") as f:
                f.write('server:\n  jobs_cache_pages: -1\njobs:\n  - name: a\n    schedule: manual\n    command: "true"\n')
            r = run_cli("check", "-c", path)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn("cv.yaml:2:21: jobs_cache_pages", r.stderr)
            with open(path, "w") as f:
                f.write('server:\n  jobs_cache_page: 4\njobs:\n  - name: a\n    schedule: manual\n    command: "true"\n')
            r = run_cli("check", "-c", path)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn("jobs_cache_pages", r.stderr)  # did you mean



class JobPagesByteBound(unittest.TestCase):
    """server.jobs_cache_bytes: the cache keeps at most that many bytes of pages; a page larger
    than the whole bound is answered and not kept."""

    BOUND = 16 * 1024

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config().replace("jobs_cache_pages: 4", "jobs_cache_bytes: 16KiB")).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    metric = JobPages.metric
    counts = JobPages.counts

    def get(self, query):
        r = self.d.api("GET", "/api/jobs" + query)
        self.assertEqual(r.status, 200, r)
        return r

    def test_a_page_larger_than_the_bound_is_answered_whole_and_not_kept(self):
        big = self.get("?limit=200")
        self.assertGreater(len(big.body), self.BOUND)
        self.assertEqual(len(big.json["jobs"]), 200)
        hits, misses = self.counts()
        again = self.get("?limit=200")
        self.assertEqual(again.body, big.body)
        self.assertEqual(self.counts(), (hits, misses + 1))
        self.assertLessEqual(self.metric("cronvisor_http_jobs_cache_bytes"), self.BOUND)

    def test_the_cache_drops_pages_to_stay_within_the_bound(self):
        sizes = [len(self.get("?limit=5&q=number%%20%d" % n).body) for n in range(1, 15)]
        self.assertGreater(sum(sizes), self.BOUND)  # they would not all fit
        kept = self.metric("cronvisor_http_jobs_cache_bytes")
        self.assertLessEqual(kept, self.BOUND)
        self.assertGreater(kept, 0)
        pages = self.metric("cronvisor_http_jobs_cache_pages")
        self.assertLess(pages, 14)
        hits, misses = self.counts()
        self.get("?limit=5&q=number%2014")  # the newest: still kept
        self.get("?limit=5&q=number%201")  # dropped since: encoded again
        self.assertEqual(self.counts(), (hits + 1, misses + 1))


if __name__ == "__main__":
    main()

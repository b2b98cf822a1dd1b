"""Client bytes that are not UTF-8 (a method, a path, a parameter, a header, a JSON body) get a
4xx JSON error that says what was wrong, the daemon keeps serving, and its JSON log stays valid.
Issue 13, finding 1: `PUT /api/jobs/\\xff` and `G\\xe9T /healthz` crashed the daemon (the 405
reply put the raw bytes into json_pack, which returned NULL)."""
import json
import socket
import unittest

from cvtest import Daemon, main

CONFIG = """
server:
  listen: "127.0.0.1:0"
jobs:
  - name: hello
    schedule: manual
    command: 'true'
"""

REPLACEMENT = "\ufffd"


def raw_request(port, data, timeout=10.0):
    """Sends data as is; returns (status, headers text, body bytes) of the reply, read to the end
    (the request asks to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    if not head:
        raise AssertionError("no reply at all (did the daemon die?)")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


class HostileBytesTest(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()
        cls.port = cls.d.port()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def send(self, request_line, headers=b"", body=b""):
        data = request_line + b"\r\nHost: x\r\nConnection: close\r\n" + headers
        if body:
            data += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        return raw_request(self.port, data + b"\r\n" + body)

    def assert_error(self, reply, status, code, quoting=None):
        got_status, head, body = reply
        self.assertEqual(got_status, status, body)
        self.assertIn("content-type: application/json", head.lower())
        err = json.loads(body.decode("utf-8"))["error"]  # strict: must be valid UTF-8
        self.assertEqual(err["code"], code)
        if quoting is not None:
            self.assertIn(quoting, err["message"])
        return err

    def assert_still_serving(self):
        r = self.d.api("GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertIsNone(self.d.proc.poll(), "the daemon exited")

    def test_put_on_a_path_with_a_raw_0xff_byte_is_a_405_naming_the_path(self):
        err = self.assert_error(self.send(b"PUT /api/jobs/\xff HTTP/1.1"), 405,
                                "method_not_allowed", "/api/jobs/" + REPLACEMENT)
        self.assertIn("allowed: GET, HEAD", err["message"])
        self.assert_still_serving()

    def test_a_method_with_a_latin1_byte_is_a_405_naming_the_method(self):
        self.assert_error(self.send(b"G\xe9T /healthz HTTP/1.1"), 405, "method_not_allowed",
                          "G" + REPLACEMENT + "T is not allowed on /healthz")
        self.assert_still_serving()

    def test_an_unknown_job_given_as_a_percent_escaped_invalid_byte_is_a_404_naming_it(self):
        self.assert_error(self.send(b"GET /api/jobs/%ff%c3 HTTP/1.1"), 404, "not_found",
                          'no job named "' + REPLACEMENT + REPLACEMENT + '"')
        self.assert_error(self.send(b"GET /api/jobs/%ff/runs HTTP/1.1"), 404, "not_found",
                          REPLACEMENT)
        self.assert_still_serving()

    def test_a_json_body_with_an_invalid_byte_is_a_400_bad_json(self):
        err = self.assert_error(
            self.send(b"PUT /api/jobs/hello/schedule HTTP/1.1", body=b'{"schedule":"\xff\xfe"}'),
            400, "bad_json", "invalid JSON body")
        self.assertIn("line", err)
        self.assert_still_serving()

    def test_invalid_bytes_in_query_and_headers_do_not_break_the_reply(self):
        r = self.send(b"GET /api/runs?job=%ff&cursor=\xff&status=%e9 HTTP/1.1",
                      headers=b"X-Odd: \xff\xfe\r\nAccept-Encoding: \xe9\r\n")
        self.assertEqual(r[0], 400, r[2])
        json.loads(r[2].decode("utf-8"))
        self.assert_still_serving()

    def test_every_log_line_stays_json_after_hostile_requests(self):
        self.send(b"G\xe9T /\xff\xfe HTTP/1.1")
        self.assert_still_serving()
        raw = [rec["msg"] for rec in self.d.log if rec.get("level") == "raw"]
        self.assertEqual(raw, [], "log lines that are not JSON")
        self.d.wait_log(REPLACEMENT + "T /" + REPLACEMENT + REPLACEMENT + " -> 405")


if __name__ == "__main__":
    main()

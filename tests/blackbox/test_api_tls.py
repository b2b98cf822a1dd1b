"""HTTP/2 over TLS when server.tls gives a certificate and a key (curl as the client)."""
import json
import os
import subprocess
import unittest

from cvtest import Daemon, main

CONFIG = """
server:
  listen: "127.0.0.1:0"
  tls:
    cert: {dir}/cert.pem
    key: {dir}/key.pem
jobs:
  - name: noop
    schedule: manual
    command: "true"
"""


class Tls(unittest.TestCase):
    def test_the_api_answers_over_http2_with_tls(self):
        d = Daemon(CONFIG)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(d.tmp, "key.pem"),
                        "-out", os.path.join(d.tmp, "cert.pem")], check=True, capture_output=True)
        with d:
            port = d.port()
            self.assertTrue(any("listening on https://" in r.get("msg", "") for r in d.log))
            out = subprocess.run(["curl", "-sk", "--http2", "-o", "-", "-w", "\\n%{http_version} %{http_code}",
                                  "https://127.0.0.1:%d/api/jobs" % port],
                                 capture_output=True, text=True, timeout=30)
            body, _, tail = out.stdout.rpartition("\n")
            self.assertEqual(tail, "2 200", out.stderr)
            self.assertEqual([j["name"] for j in json.loads(body)["jobs"]], ["noop"])
            plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "http://127.0.0.1:%d/api/jobs" % port], capture_output=True, text=True)
            self.assertNotEqual(plain.stdout, "200", "plain HTTP must not be served on a TLS port")


if __name__ == "__main__":
    main()

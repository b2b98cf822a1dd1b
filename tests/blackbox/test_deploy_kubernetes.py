"""deploy/kubernetes/ against the real daemon: every manifest parses and is consistent (selectors,
ports, probes, Secret keys, ConfigMap mount, volume claims, terminationGracePeriodSeconds >
shutdown_grace); the ConfigMap's configuration passes `cronvisor check` with the Secret's values
as environment (both variants); the SQLite variant's daemon starts on it and answers the probe
paths on the manifests' port, /metrics with the ServiceMonitor's token; once it gets SIGTERM,
/readyz answers 503 "stopping" while a job is given its grace."""
import glob
import os
import re
import signal
import sys
import threading
import time
import unittest

try:
    import yaml  # python3-yaml (scripts/install-deps.sh)
except ImportError:  # a python3 other than Debian's: Debian's has python3-yaml
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-u"] + sys.argv)
    raise

import pgserver
from cvtest import SOURCE_DIR, Daemon, main, run_cli

KDIR = os.path.join(SOURCE_DIR, "deploy", "kubernetes")


def duration_s(text):
    """A cronvisor duration ("30s", "1m30s", "250ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+)(ms|s|m|h|d)", text):
        assert m.start() == pos, text
        total += int(m.group(1)) * units[m.group(2)]
        pos = m.end()
    assert pos == len(text) and pos > 0, "not a duration: %r" % text
    return total


def load(name):
    with open(os.path.join(KDIR, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        for k in ("apiVersion", "kind", "metadata"):
            assert k in d, "%s: a document without %s" % (name, k)
        assert d["metadata"].get("name"), "%s: a %s without a name" % (name, d["kind"])
    return docs


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, "expected one %s, found %d" % (kind, len(found))
    return found[0]


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class Variant:
    """One manifest file: its objects and the configuration of its ConfigMap."""

    def __init__(self, name, workload_kind):
        self.docs = load(name)
        self.name = name
        self.secret = one(self.docs, "Secret")
        self.cm = one(self.docs, "ConfigMap")
        self.svc = one(self.docs, "Service")
        self.wl = one(self.docs, workload_kind)
        self.pod = self.wl["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        args = self.container["args"]
        assert args[0] == "run", args
        self.config_path = args[args.index("-c") + 1]
        # the ConfigMap mounted at the directory of the -c file, holding that file name
        mounts = {m["name"]: m for m in self.container["volumeMounts"]}
        vols = {v["name"]: v for v in self.pod["volumes"]}
        cfg_dir, cfg_file = os.path.split(self.config_path)
        cm_mount = [m for m in mounts.values() if m["mountPath"] == cfg_dir]
        assert len(cm_mount) == 1, "%s: nothing mounted at %s" % (name, cfg_dir)
        vol = vols[cm_mount[0]["name"]]
        assert vol["configMap"]["name"] == self.cm["metadata"]["name"], vol
        assert cfg_file in self.cm["data"], "%s: the ConfigMap has no %s" % (name, cfg_file)
        self.config_text = self.cm["data"][cfg_file]
        self.config = yaml.safe_load(self.config_text)
        self.mounts, self.vols = mounts, vols

    def env(self):
        """The container's environment with the Secret's values (as the kubelet would set it)."""
        data = self.secret.get("stringData") or {}
        env = {"HOSTNAME": "cronvisor-0"}
        for e in self.container.get("env", []):
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == self.secret["metadata"]["name"], ref
            assert ref["key"] in data, "%s: the Secret has no key %s" % (self.name, ref["key"])
            env[e["name"]] = data[ref["key"]]
        return env

    def port(self):
        """The container port named by the probes, which must be the config's listen port."""
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        return ports


class ManifestTest(unittest.TestCase):
    def check_common(self, v):
        cfg = v.config
        # probes: liveness /healthz, readiness /readyz, on a named container port = listen port
        listen_port = int(cfg["server"]["listen"].rsplit(":", 1)[1])
        ports = v.port()
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = v.container[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertIn(get["port"], ports)
            self.assertEqual(ports[get["port"]], listen_port)
        # the Service selects the pods and targets that port
        pod_labels = v.wl["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(labels_match(v.svc["spec"]["selector"], pod_labels))
        self.assertTrue(labels_match(v.wl["spec"]["selector"]["matchLabels"], pod_labels))
        for p in v.svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], ports)
        # the daemon gets SIGTERM, gives the jobs shutdown_grace, then kill_grace: the kubelet
        # must wait longer before its SIGKILL
        grace = duration_s(cfg["defaults"]["shutdown_grace"])
        tgps = v.pod["terminationGracePeriodSeconds"]
        self.assertGreater(tgps, grace)
        # tokens come from the Secret, never written in the ConfigMap
        for t in cfg["auth"]["tokens"]:
            self.assertRegex(t["token"], r"^\$\{[A-Z_]+:\?", t)
            var = re.match(r"^\$\{([A-Z_]+)", t["token"]).group(1)
            self.assertIn(var, v.env())
        for value in (v.secret.get("stringData") or {}).values():
            self.assertNotIn(value, v.config_text)
        # `cronvisor check` on the ConfigMap's configuration with the Secret's values
        path = os.path.join(self.tmp, v.name)
        with open(path, "w") as f:
            f.write(v.config_text)
        r = run_cli("check", "-c", path, env=v.env())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # ... which refuses to start without the Secret
        bare = {k: "" for k in v.env() if k != "HOSTNAME"}
        r = run_cli("check", "-c", path, env=bare)
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("cronvisor-tokens", r.stdout + r.stderr)
        return grace, tgps

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="cvkube-")

    def test_every_manifest_parses(self):
        files = sorted(glob.glob(os.path.join(KDIR, "*.yaml")))
        self.assertEqual([os.path.basename(f) for f in files],
                         ["postgres.yaml", "servicemonitor.yaml", "sqlite.yaml"])
        for f in files:
            self.assertTrue(load(os.path.basename(f)))

    def test_postgres_variant(self):
        v = Variant("postgres.yaml", "Deployment")
        self.assertGreaterEqual(v.wl["spec"]["replicas"], 2)
        self.assertIn("DATABASE_URL", v.config["storage"]["postgres"])
        self.assertNotIn("sqlite", v.config["storage"])
        self.assertIn("DATABASE_URL", v.env())
        # the spool is on a mounted volume (the root file system is read-only)
        spool = v.config["storage"]["spool_dir"]
        self.assertTrue(any(spool.startswith(m["mountPath"]) for m in v.mounts.values()))
        self.assertTrue(v.container["securityContext"]["readOnlyRootFilesystem"])
        self.check_common(v)

    @unittest.skipUnless(pgserver.available(), "PostgreSQL 15 is not installed")
    def test_postgres_variant_runs_two_replicas(self):
        """Two pods of the Deployment on one real PostgreSQL: both ready, each sees the other."""
        v = Variant("postgres.yaml", "Deployment")
        mount = [m["mountPath"] for m in v.mounts.values()
                 if v.config["storage"]["spool_dir"].startswith(m["mountPath"])][0]
        cfg = v.config_text.replace(mount, "{dir}/data")
        cfg = cfg.replace('listen: "0.0.0.0:8080"', 'listen: "127.0.0.1:0"')
        self.assertIn("127.0.0.1:0", cfg)
        pg = pgserver.PgServer().start()
        try:
            env = v.env()
            env["DATABASE_URL"] = pg.create_db("kube")
            pods = []
            try:
                for name in ("cronvisor-6d4f-a", "cronvisor-6d4f-b"):
                    d = Daemon(cfg, env=dict(env, HOSTNAME=name))
                    pods.append(d.start())
                    d.wait_log(r"cronvisor \S+ running: instance %s" % name)
                token = v.secret["stringData"]["metrics-token"]
                for d in pods:
                    self.assertEqual(d.api("GET", "/healthz").status, 200)
                    r = d.api("GET", "/readyz")
                    self.assertEqual((r.status, r.json["status"]), (200, "ready"), r)
                deadline = time.monotonic() + 60
                while True:  # heart-beats every sixth of cluster.heartbeat_timeout (5 s)
                    ids = {i["id"] for i in pods[0].api("GET", "/api/instances", token=token)
                           .json["instances"]}
                    if ids == {"cronvisor-6d4f-a", "cronvisor-6d4f-b"}:
                        break
                    self.assertLess(time.monotonic(), deadline, ids)
                    time.sleep(0.5)  # polled with a deadline: the next heartbeat lists it
            finally:
                for d in pods:
                    self.assertEqual(d.stop(), 0)
        finally:
            pg.stop()

    def test_servicemonitor_selects_the_services(self):
        sm = one(load("servicemonitor.yaml"), "ServiceMonitor")
        ep = sm["spec"]["endpoints"][0]
        self.assertEqual(ep["path"], "/metrics")
        self.assertTrue(ep["honorLabels"])  # the daemon's job="..." label stays `job`
        for name in ("sqlite.yaml", "postgres.yaml"):
            v = Variant(name, "StatefulSet" if name == "sqlite.yaml" else "Deployment")
            self.assertTrue(labels_match(sm["spec"]["selector"]["matchLabels"],
                                         v.svc["metadata"]["labels"]))
            self.assertIn(ep["port"], [p["name"] for p in v.svc["spec"]["ports"]])
            cred = ep["authorization"]["credentials"]
            self.assertEqual(cred["name"], v.secret["metadata"]["name"])
            self.assertIn(cred["key"], v.secret["stringData"])

    def test_sqlite_variant_runs(self):
        v = Variant("sqlite.yaml", "StatefulSet")
        self.assertEqual(v.wl["spec"]["replicas"], 1)  # SQLite: one daemon per file
        claims = {c["metadata"]["name"] for c in v.wl["spec"]["volumeClaimTemplates"]}
        db = v.config["storage"]["sqlite"]["path"]
        data_mount = [m for m in v.mounts.values() if db.startswith(m["mountPath"] + "/")]
        self.assertEqual(len(data_mount), 1, "the database is on no mounted volume")
        self.assertIn(data_mount[0]["name"], claims)  # ... and that volume is the claim
        self.assertTrue(v.container["securityContext"]["readOnlyRootFilesystem"])
        grace, tgps = self.check_common(v)

        # the daemon on that configuration: the volume's path moved into a temp directory, the
        # port onto a free loopback one; a manual job that outlives the SIGTERM
        mount = data_mount[0]["mountPath"]
        cfg = v.config_text.replace(mount, "{dir}/data")
        cfg = cfg.replace('listen: "0.0.0.0:8080"', 'listen: "127.0.0.1:0"')
        self.assertIn("127.0.0.1:0", cfg)
        self.assertIn("\njobs:\n", cfg)
        # the job ignores SIGTERM and ends when the test writes to its FIFO
        cfg = cfg.replace("\njobs:\n", "\njobs:\n  - name: long\n    schedule: manual\n"
                          "    command: \"trap '' TERM; echo armed > {dir}/armed; read x < {dir}/release\"\n",
                          1)
        env = v.env()
        secrets = v.secret["stringData"]
        d = Daemon(cfg, env=env)
        os.mkfifo(os.path.join(d.tmp, "release"))
        os.mkfifo(os.path.join(d.tmp, "armed"))
        with d:
            d.wait_log(r"cronvisor \S+ running")
            for probe in ("livenessProbe", "readinessProbe"):
                r = d.api("GET", v.container[probe]["httpGet"]["path"])
                self.assertEqual(r.status, 200, r)
            self.assertEqual(d.api("GET", "/readyz").json["status"], "ready")
            # /metrics needs the ServiceMonitor's token
            self.assertEqual(d.api("GET", "/metrics").status, 401)
            r = d.api("GET", "/metrics", token=secrets["metrics-token"])
            self.assertEqual(r.status, 200)
            self.assertIn(b"cronvisor_job_interval_seconds{job=\"heartbeat\"} 60", r.body)
            self.assertIn(b"cronvisor_store_pending_max_records 10000", r.body)
            # SIGTERM while a job runs: /readyz 503 "stopping" during the grace, then exit 0
            r = d.api("POST", "/api/jobs/long/trigger", token=secrets["operator-token"])
            self.assertEqual(r.status, 202, r)
            d.wait_log(r"run \d+ job=long .*status=RUNNING")
            armed = []  # the job's shell ignores SIGTERM from now on (read in a thread: a deadline)
            reader = threading.Thread(target=lambda: armed.append(
                open(os.path.join(d.tmp, "armed")).read()), daemon=True)
            reader.start()
            reader.join(30)
            self.assertEqual(armed, ["armed\n"])
            d.signal(signal.SIGTERM)
            d.wait_log(r"shutting down \(grace %dms\)" % int(grace * 1000))
            r = d.api("GET", "/readyz")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["status"], "stopping")
            self.assertEqual(r.json["error"]["code"], "stopping")
            self.assertEqual(d.api("GET", "/healthz").status, 200)  # alive: no restart
            t0 = time.monotonic()
            with open(os.path.join(d.tmp, "release"), "w") as f:  # the job ends
                f.write("done\n")
            _, status = d.run_finished("long")
            self.assertEqual(status, "CANCELLED")  # ended by the shutdown, within the grace
            self.assertEqual(d.wait_exit(timeout=tgps + 30), 0)
            # it stopped within the grace the kubelet gives it
            self.assertLess(time.monotonic() - t0, tgps)
            for value in secrets.values():
                self.assertNotIn(value, "\n".join(str(r.get("msg")) for r in d.log))


if __name__ == "__main__":
    main()

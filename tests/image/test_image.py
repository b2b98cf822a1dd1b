"""The container image's root filesystem, run for real without a container engine.

scripts/image.sh assembles the filesystem (mmdebstrap, cached under the build directory) and the
OCI archive (umoci). The test checks the archive's configuration, then runs the filesystem the way
a container engine would: new PID, mount and network namespaces (`unshare --fork --pid
--mount-proc`, loopback brought up inside), chroot into it as the image's non-root user, and
`cronvisor run` from the image's own configuration (/etc/cronvisor/cronvisor.yaml) as PID 1.
It verifies: PID 1 in its namespace, /healthz through the image's HEALTHCHECK command (bash, no
curl), the API closed without the token, an orphaned grandchild reaped (no zombie left), and
exit 0 on SIGTERM. Needs root (CI runs as root); skipped with a reason when namespaces are
unavailable."""
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import unittest

SOURCE_DIR = os.environ.get("CV_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_DIR = os.path.abspath(os.environ.get("CV_BUILD_DIR", "build"))
BIN = os.path.join(BUILD_DIR, "cronvisor")
WORK = os.path.join(BUILD_DIR, "image")
ROOTFS = os.path.join(WORK, "rootfs")
TOKEN = "image-test-token-0123456789"
UID = 10001

# Brings lo up in the new network namespace (SIOCSIFFLAGS, no iproute2 needed), then becomes the
# chroot: exec keeps PID 1, so cronvisor ends up as PID 1 of the namespace.
STARTER = r"""
import fcntl, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = struct.pack("16sH14s", b"lo", 0, b"")
flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifr))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
os.execv("/usr/sbin/chroot", sys.argv[1:])
"""


def deadline_poll(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def status_of(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(pid):
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, t)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def namespaces_work():
    if os.geteuid() != 0:
        return "needs root (CI runs as root)"
    r = subprocess.run(["unshare", "--fork", "--pid", "--mount", "--net", "--mount-proc", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "unshare --fork --pid --mount --net is not possible here: " + r.stderr.strip()
    return None


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = namespaces_work()
        if why:
            raise unittest.SkipTest(why)
        r = subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "image.sh"), "--binary", BIN,
                            "--work", WORK], capture_output=True, text=True, timeout=1800)
        sys.stderr.write(r.stdout[-2000:])
        if r.returncode != 0:
            raise AssertionError("scripts/image.sh failed:\n" + r.stdout[-3000:] + r.stderr[-3000:])

    def test_the_oci_archive_has_the_image_configuration(self):
        with tarfile.open(os.path.join(WORK, "cronvisor-oci.tar")) as t:
            names = t.getnames()
            self.assertIn("./oci-layout", names)
            index = json.load(t.extractfile("./index.json"))
            manifest_digest = index["manifests"][0]["digest"].split(":")[1]
            self.assertEqual(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
                             "latest")
            self.assertEqual(index["manifests"][0]["annotations"]["io.containerd.image.name"],
                             "docker.io/library/cronvisor:latest")
            manifest = json.load(t.extractfile("./blobs/sha256/" + manifest_digest))
            config = json.load(t.extractfile("./blobs/sha256/" + manifest["config"]["digest"].split(":")[1]))
            self.assertEqual(len(manifest["layers"]), 1)
            layer = manifest["layers"][0]
            self.assertIn("gzip", layer["mediaType"])
            with tarfile.open(fileobj=t.extractfile("./blobs/sha256/" + layer["digest"].split(":")[1]),
                              mode="r:gz") as lt:
                files = {m.name: m for m in lt.getmembers()}
        # the layer holds the filesystem: the binary, the configuration, the data directory owned
        # by the image's user, and no device nodes (the engine provides /dev)
        self.assertIn("./usr/local/bin/cronvisor", files)
        self.assertIn("./etc/cronvisor/cronvisor.yaml", files)
        self.assertEqual(files["./var/lib/cronvisor"].uid, UID)
        self.assertEqual([n for n, m in files.items() if m.ischr() or m.isblk()], [])
        c = config["config"]
        self.assertEqual(c["Entrypoint"], ["cronvisor", "run"])
        self.assertEqual(c["User"], "%d:%d" % (UID, UID))
        self.assertIn("/var/lib/cronvisor", c["Volumes"])
        self.assertIn("CRONVISOR_CONFIG=/etc/cronvisor/cronvisor.yaml", c["Env"])
        self.assertEqual(config["os"], "linux")

    def test_the_filesystem_has_the_runtime_only(self):
        for path in ("usr/local/bin/cronvisor", "etc/cronvisor/cronvisor.yaml",
                     "usr/share/zoneinfo/Europe/Paris", "etc/ssl/certs/ca-certificates.crt"):
            self.assertTrue(os.path.exists(os.path.join(ROOTFS, path)), path)
        for absent in ("usr/bin/apt", "usr/bin/gcc", "usr/bin/curl", "usr/include/uv.h"):
            self.assertFalse(os.path.exists(os.path.join(ROOTFS, absent)), absent)
        st = os.stat(os.path.join(ROOTFS, "var/lib/cronvisor"))
        self.assertEqual((st.st_uid, st.st_gid), (UID, UID))
        # every shared library the binary needs resolves inside the image
        r = subprocess.run(["chroot", ROOTFS, "/usr/bin/ldd", "/usr/local/bin/cronvisor"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            self.assertNotIn("not found", r.stdout)

    def _run_image(self, check, config="/etc/cronvisor/cronvisor.yaml", name="daemon"):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "CRONVISOR_CONFIG": config, "CRONVISOR_TOKEN": TOKEN, "HOME": "/var/lib/cronvisor"}
        # the ENTRYPOINT of the image, as its USER, in its WORKDIR
        argv = ["chroot", "--userspec=%d:%d" % (UID, UID), ROOTFS, "/usr/bin/env", "-C",
                "/var/lib/cronvisor", "cronvisor", "run"]
        log = open(os.path.join(WORK, name + ".log"), "w+")
        proc = subprocess.Popen(["unshare", "--fork", "--pid", "--mount", "--net",
                                 "--mount-proc=" + os.path.join(ROOTFS, "proc"),
                                 sys.executable, "-c", STARTER] + argv,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            check(proc, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()

    def test_runs_as_pid_1_answers_healthz_reaps_orphans_and_exits_0_on_sigterm(self):
        self._run_image(self._check_running)

    def test_a_jobs_orphaned_grandchild_is_reaped(self):
        # The image's configuration plus one job, started at once, whose shell leaves a grandchild
        # behind: the grandchild is re-parented to PID 1, which must reap it when it exits.
        with open(os.path.join(ROOTFS, "etc/cronvisor/cronvisor.yaml")) as f:
            text = f.read()
        self.assertIn("jobs: []", text)
        text = text.replace("jobs: []", """jobs:
  - name: orphaner
    schedule: "@reboot"
    command: "(sleep 3.456 </dev/null >/dev/null 2>&1 &); echo parent done"
""")
        path = os.path.join(ROOTFS, "etc/cronvisor/test-orphan.yaml")
        with open(path, "w") as f:
            f.write(text)
        try:
            self._run_image(self._check_job_orphan, config="/etc/cronvisor/test-orphan.yaml",
                            name="daemon-orphan")
        finally:
            os.unlink(path)

    def _check_job_orphan(self, proc, log):
        pid1 = deadline_poll(lambda: (children(proc.pid) or [None])[0], 30, "the namespace's PID 1")

        def orphan():
            for c in children(pid1):
                if cmdline(c)[:2] == [b"sleep", b"3.456"]:
                    return c
            return None

        opid = deadline_poll(orphan, 60, "the job's grandchild to be re-parented to cronvisor (log: %s)"
                             % self._log(log)[-2000:])
        deadline_poll(lambda: re.search(r"job=orphaner status=SUCCESS exit=0", self._log(log)), 60,
                      "the job to finish (log: %s)" % self._log(log)[-2000:])
        deadline_poll(lambda: status_of(opid) is None, 30, "the orphan to be reaped (no zombie)")
        self.assertEqual([c for c in children(pid1)
                          if (status_of(c) or {}).get("State", "").startswith("Z")], [])
        os.kill(pid1, 15)
        self.assertEqual(proc.wait(timeout=90), 0, self._log(log)[-3000:])

    def _log(self, log):
        log.seek(0)
        return log.read()

    def _check_running(self, proc, log):
        # PID 1 of the new namespace is cronvisor, running as the image's user
        pid1 = deadline_poll(lambda: (children(proc.pid) or [None])[0], 30, "the namespace's PID 1")
        deadline_poll(lambda: cmdline(pid1)[:2] == [b"cronvisor", b"run"], 30,
                      "PID 1 to exec cronvisor run")
        st = status_of(pid1)
        self.assertEqual(st["NSpid"].split()[-1], "1")
        self.assertEqual(st["Uid"].split()[0], str(UID))
        deadline_poll(lambda: re.search(r"listening on http://0\.0\.0\.0:8080", self._log(log)), 60,
                      "the daemon to listen (log: %s)" % self._log(log)[-2000:])

        def inside(*cmd, user=True, timeout=30):
            ns = ["nsenter", "-t", str(pid1), "--net", "--pid", "--mount", "--root", "--wd=/"]
            if user:
                ns += ["-S", str(UID), "-G", str(UID)]
            return subprocess.run(ns + list(cmd), capture_output=True, text=True, timeout=timeout,
                                  env={"PATH": "/usr/bin:/bin"})

        # The Dockerfile's HEALTHCHECK command, run with the image's own bash
        with open(os.path.join(SOURCE_DIR, "Dockerfile")) as f:
            m = re.search(r'HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])', f.read())
        health = json.loads(m.group(1))
        r = inside(*health)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self._log(log)[-2000:])

        def http(path, token=None):
            hdr = "Authorization: Bearer %s\\r\\n" % token if token else ""
            script = ("exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET %s HTTP/1.0\\r\\n%s\\r\\n' >&3 "
                      "&& read -r _ code _ <&3 && echo $code" % (path, hdr))
            return inside("bash", "-c", script).stdout.strip()

        self.assertEqual(http("/healthz"), "200")
        self.assertEqual(http("/api/jobs"), "401")  # the API is not open on 0.0.0.0
        self.assertEqual(http("/api/jobs", TOKEN), "200")

        # An orphaned grandchild: its parent exits at once, so it is re-parented to PID 1
        r = inside("sh", "-c", "(sleep 4.789 </dev/null >/dev/null 2>&1 &) ; exit 0")
        self.assertEqual(r.returncode, 0, r.stderr)

        def orphan():
            for c in children(pid1):
                if cmdline(c)[:2] == [b"sleep", b"4.789"]:
                    return c
            return None

        opid = deadline_poll(orphan, 30, "the orphan to be re-parented to cronvisor")
        # it exits after 4.8 s; a zombie would stay in /proc (state Z) until PID 1 reaps it
        deadline_poll(lambda: status_of(opid) is None, 30, "the orphan to be reaped (no zombie)")
        zombies = [c for c in children(pid1) if (status_of(c) or {}).get("State", "").startswith("Z")]
        self.assertEqual(zombies, [])

        os.kill(pid1, 15)
        rc = proc.wait(timeout=90)
        self.assertEqual(rc, 0, self._log(log)[-3000:])


if __name__ == "__main__":
    why = namespaces_work()
    if why:
        print("SKIPPED: the image test " + why)
        sys.exit(77)
    unittest.main(verbosity=2)

"""Kubelet 1.20 built from Debian's source (test/kubelet/build-kubelet.sh),
run standalone against edgecri, and the CRI v1alpha2 proto from the same
source tree, compiled into Python stubs at test time (the upstream proto is
not part of our repository).

./build.sh test builds kubelet before pytest starts and passes the directory
in $EDGECRI_KUBELET_DIR; run on their own, the tests call the build script,
which only prints the directory once the build is cached."""
import functools
import glob
import gzip
import importlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

from conftest import TOP
from podtest import in_netns, mountinfo_lines

BUILD_SCRIPT = os.path.join(TOP, "test", "kubelet", "build-kubelet.sh")
COMPARE_SCRIPT = os.path.join(TOP, "test", "kubelet", "compare-protos.py")
# gogoproto options shape Go code only; python's protoc does not know them.
_GOGO = re.compile(r'^\s*(import\s+"github\.com/gogo/[^"]*";|option\s+\(gogoproto\.[^;]*;)\s*$', re.M)


@functools.lru_cache(maxsize=None)
def kubelet_dir():
    d = os.environ.get("EDGECRI_KUBELET_DIR")
    if not d:
        out = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, timeout=3600)
        assert out.returncode == 0, f"{BUILD_SCRIPT} failed:\n{out.stderr[-4000:]}"
        d = out.stdout.strip().splitlines()[-1]
    assert os.access(os.path.join(d, "kubelet"), os.X_OK), f"no kubelet in {d}"
    return d


def kubelet_bin():
    return os.path.join(kubelet_dir(), "kubelet")


def v1alpha2_proto():
    return os.path.join(kubelet_dir(), "v1alpha2", "api.proto")


@functools.lru_cache(maxsize=None)
def v1alpha2_stubs(out_dir):
    """(messages module, grpc module) for runtime.v1alpha2, generated into
    out_dir. The file is renamed so that it does not clash with our own
    api.proto in python's descriptor pool (the packages differ anyway)."""
    with open(v1alpha2_proto(), encoding="utf-8") as f:
        text = _GOGO.sub("", f.read())
    src = os.path.join(out_dir, "cri_v1alpha2.proto")
    with open(src, "w", encoding="utf-8") as f:
        f.write(text)
    subprocess.run(["protoc", f"--proto_path={out_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", src], check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return importlib.import_module("cri_v1alpha2_pb2"), importlib.import_module("cri_v1alpha2_pb2_grpc")


# -- kubelet, standalone --------------------------------------------------------------

# Kernel tunables kubelet 1.20 insists on (pkg/kubelet/cm: setupKernelTunables)
# and the values it wants. It writes them to the host unless
# --protect-kernel-defaults, which instead makes it exit when they differ.
# Both are wrong for a test on a shared machine, so kubelet runs in its own
# mount namespace where these /proc/sys files are bind mounts of files that
# already hold the wanted values: it checks them, finds nothing to change and
# the host's settings stay as they are.
KERNEL_TUNABLES = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}

READ_ONLY_PORT = 10255
HEALTHZ_PORT = 10248
# The authenticated port, opened to anonymous requests here (loopback of
# the test's namespace only): /containerLogs, what `kubectl logs` asks.
SECURE_PORT = 10250
NODE_NAME = "edgecri-node"

# Runs in kubelet's private mount namespace, then becomes kubelet ($1).
_SANDBOX = """set -e
dir=$1; shift
for f in "$dir"/*; do
  mount --bind "$f" "/proc/sys/$(basename "$f" | tr : /)"
done
exec "$@"
"""


class NodeMounts:
    """A mount namespace for the test's node (edgecri and kubelet), kept by
    a bind mount of its nsfs file like `ip netns` keeps network namespaces,
    where /var/log is a directory of the test.

    kubelet owns /var/log/pods and /var/log/containers: its garbage
    collector deletes every pod log directory there that is not one of its
    pods (kuberuntime_gc.go, evictPodLogsDirectories). On a machine where
    other test runs (other kubelets) do the same at the same time, each
    kubelet gets its own /var/log. edgecri and kubelet see the same one, as
    on a node; the test reads it at `var_log`."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "node-mounts")
        self.var_log = os.path.join(workdir, "var-log")
        self.path = os.path.join(self.dir, "mnt")
        self.made = []
        for d in ("pods", "containers"):
            os.makedirs(os.path.join(self.var_log, d), exist_ok=True)
        os.makedirs(self.dir, exist_ok=True)
        # The nsfs file must sit on a private mount (or it could end up
        # holding its own namespace); a bind mount of the directory on
        # itself gives one.
        _run("mount", "--bind", self.dir, self.dir)
        self.made.append(self.dir)
        _run("mount", "--make-private", self.dir)
        open(self.path, "w").close()
        _run("unshare", f"--mount={self.path}", "--propagation", "private", "--",
             "mount", "--bind", self.var_log, "/var/log")
        self.made.append(self.path)

    def host_path(self, path):
        """Where a /var/log path of the node is for the test."""
        assert path.startswith("/var/log/"), path
        return os.path.join(self.var_log, path[len("/var/log/"):])

    def close(self):
        for m in reversed(self.made):
            subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        self.made = []


def _run(*args):
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"{args}: {out.stderr}"


class Kubelet:
    """kubelet 1.20 in standalone mode (static pods from a manifest
    directory, no API server) against an edgecri socket, inside the test's
    network namespace (its ports are that namespace's loopback) and, below
    the node's mount namespace, a private one of its own (its mounts, such
    as the rshared bind mount of its root directory, go away with it)."""

    def __init__(self, workdir, netns_path, node_mounts, cri_socket):
        self.dir = os.path.join(workdir, "kubelet")
        self.netns_path = netns_path
        self.node_mounts = node_mounts
        self.cri_socket = cri_socket
        self.root_dir = os.path.join(self.dir, "root")
        self.manifests = os.path.join(self.dir, "manifests")
        self.tunables = os.path.join(self.dir, "kernel-tunables")
        self.log_path = os.path.join(self.dir, "kubelet.log")
        self.proc = None
        for d in (self.root_dir, self.manifests, self.tunables):
            os.makedirs(d, exist_ok=True)
        for name, value in KERNEL_TUNABLES.items():
            with open(os.path.join(self.tunables, name.replace("/", ":")), "w") as f:
                f.write(f"{value}\n")

    def args(self):
        r = self.root_dir
        return [
            "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{self.cri_socket}",
            "--runtime-request-timeout=60s",
            f"--pod-manifest-path={self.manifests}",
            # How soon manifest changes and pod state changes are acted on.
            "--file-check-frequency=1s",
            "--sync-frequency=2s",
            f"--root-dir={r}",
            f"--cert-dir={r}/pki",
            f"--volume-plugin-dir={r}/volume-plugins",
            f"--seccomp-profile-root={r}/seccomp",
            f"--hostname-override={NODE_NAME}",
            # Not a real node: no QoS cgroups, no allocatable enforcement,
            # no iptables chains, no swap check, no image GC or eviction
            # decided by the disk usage of a shared machine.
            "--fail-swap-on=false",
            "--cgroups-per-qos=false",
            "--enforce-node-allocatable=",
            "--cgroup-driver=cgroupfs",
            "--make-iptables-util-chains=false",
            "--protect-kernel-defaults=true",
            "--image-gc-high-threshold=100",
            "--eviction-hard=memory.available<1Mi",
            "--address=127.0.0.1",
            f"--port={SECURE_PORT}",
            "--anonymous-auth=true",
            "--authorization-mode=AlwaysAllow",
            f"--read-only-port={READ_ONLY_PORT}",
            "--healthz-bind-address=127.0.0.1",
            f"--healthz-port={HEALTHZ_PORT}",
            # Small logs, so that kubelet rotates them (ReopenContainerLog)
            # within the test; its log manager looks every 10 s.
            "--container-log-max-size=8Ki",
            "--container-log-max-files=20",
            "--v=2",
        ]

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        # setpriv: kubelet dies with the test process, whatever happens to it.
        cmd = ["setpriv", "--pdeathsig", "KILL", "--",
               "nsenter", f"--net={self.netns_path}", f"--mount={self.node_mounts.path}", "--",
               "unshare", "--mount", "--propagation", "private", "--",
               "/bin/sh", "-c", _SANDBOX, "sandbox", self.tunables, kubelet_bin()] + self.args()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"kubelet exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                if self.get("/healthz", port=HEALTHZ_PORT) == b"ok":
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"kubelet not healthy after {timeout}s:\n{self.log()[-6000:]}")
            time.sleep(0.2)

    def get(self, path, port=READ_ONLY_PORT, timeout=10):
        """GET on kubelet's loopback inside the network namespace."""
        def fetch():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return r.read()
        return in_netns(self.netns_path, fetch)

    def get_secure(self, path, timeout=10):
        """GET on the authenticated port (kubelet's self-signed certificate)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def fetch():
            with urllib.request.urlopen(f"https://127.0.0.1:{SECURE_PORT}{path}", timeout=timeout,
                                        context=ctx) as r:
                return r.read()
        return in_netns(self.netns_path, fetch)

    def pods(self):
        """The read-only port's /pods: what kubelet reports for each pod."""
        return json.loads(self.get("/pods"))["items"] or []

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def leftover_mounts(self):
        """Mounts under the kubelet's directories seen from the host (there
        should be none: they lived in kubelet's mount namespace)."""
        return mountinfo_lines(self.dir + "/")


class LoopbackBridge:
    """Makes a TCP port of the host's 127.0.0.1 (the test registry) answer
    on 127.0.0.1 of a test network namespace too, by relaying connections:
    an edgecri inside the namespace then pulls from "127.0.0.1:PORT" like
    the test does outside. Loopback on both sides, nothing else."""

    def __init__(self, netns_path, port):
        self.port = port

        def listen():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(16)
            return s

        self.listener = in_netns(netns_path, listen)
        self.closed = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                inner, _ = self.listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            self.conns += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.listener.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# -- what kubelet leaves under /var/log ---------------------------------------------------

def pod_log_dir(namespace, name, uid):
    return f"/var/log/pods/{namespace}_{name}_{uid}"


def container_log_links(node_mounts, namespace, name):
    """kubelet's /var/log/containers/<pod>_<namespace>_<container>-<id>.log
    symlinks, as paths of the test."""
    d = node_mounts.host_path("/var/log/containers")
    return sorted(os.path.join(d, e) for e in os.listdir(d) if e.startswith(f"{name}_{namespace}_"))


def container_log_lines(log_path, attempts=10):
    """Every CRI log line a container wrote, oldest first, across the files
    kubelet rotated (<log>.<timestamp>, compressed to .gz after the next
    rotation) and the current one. kubelet may rotate or compress while we
    read: then read again."""
    for _ in range(attempts):
        try:
            rotated = {}
            for f in glob.glob(log_path + ".*"):
                if f.endswith(".tmp"):
                    continue
                stamp = f[len(log_path) + 1:].removesuffix(".gz")
                # Both the plain file and its .gz exist while compressing.
                if stamp not in rotated or not f.endswith(".gz"):
                    rotated[stamp] = f
            lines = []
            for stamp in sorted(rotated):
                f = rotated[stamp]
                opener = gzip.open if f.endswith(".gz") else open
                with opener(f, "rt", errors="replace") as fh:
                    lines += fh.read().splitlines()
            with open(log_path, errors="replace") as fh:
                lines += fh.read().splitlines()
            return lines
        except (FileNotFoundError, EOFError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"could not read the logs of {log_path}")

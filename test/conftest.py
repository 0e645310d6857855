"""Shared fixtures for edgecri's end-to-end tests.

The tests drive the real binary ($EDGECRI_BIN, set by ./build.sh test) over
its unix socket with python3-grpcio, using stubs generated at session start
from our own src/cri/api.proto. Every daemon a test starts gets its own
socket, root and state directory, and is stopped with SIGTERM at teardown;
the test fails if the daemon did not exit 0 or if a sanitizer reported
anything in its log.
"""
import atexit
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("EDGECRI_BIN", os.path.join(TOP, "build", "edgecri"))
BUILD = os.environ.get("EDGECRI_BUILD", os.path.join(TOP, "build"))
ASAN = os.environ.get("EDGECRI_ASAN") == "1"
PROTO = os.path.join(TOP, "src", "cri", "api.proto")

SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def generate_stubs(out_dir):
    """protoc + grpc_python_plugin from Debian, from our own proto."""
    subprocess.run(
        ["protoc", f"--proto_path={os.path.dirname(PROTO)}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}", "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", PROTO],
        check=True)


_STUB_DIR = tempfile.mkdtemp(prefix="edgecri-stubs-")
atexit.register(shutil.rmtree, _STUB_DIR, True)
generate_stubs(_STUB_DIR)
sys.path.insert(0, _STUB_DIR)

import grpc  # noqa: E402
import api_pb2  # noqa: E402,F401
import api_pb2_grpc  # noqa: E402


class Edgecri:
    """One edgecri process with private directories."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.socket = os.path.join(workdir, "cri.sock")
        self.root = os.path.join(workdir, "root")
        self.state = os.path.join(workdir, "state")
        self.log_path = os.path.join(workdir, "edgecri.log")
        self.proc = None
        self.channels = []
        self.expected_exit = 0
        # A command prefix for the daemon, e.g. ["nsenter", "--net=/run/netns/X"]
        # to run it inside a test's own network namespace.
        self.wrap = []

    # -- process -----------------------------------------------------------
    def command(self, *extra, config=None):
        cmd = [BIN, "--socket", self.socket, "--root", self.root, "--state", self.state, "--log-level", "debug"]
        if config is not None:
            cmd += ["--config", config]
        return list(self.wrap) + cmd + list(extra)

    def env(self):
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        return env

    def start(self, *extra, config=None, wait=True):
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(*extra, config=config), stdout=self.logfile,
                                     stderr=subprocess.STDOUT, env=self.env())
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"edgecri exited with {self.proc.returncode} during startup:\n{self.log()}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.socket)
                s.close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"edgecri did not start serving within {timeout}s:\n{self.log()}")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the daemon and returns its exit code."""
        for ch in self.channels:
            ch.close()
        self.channels = []
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"edgecri did not stop within {timeout}s after {sig!r}:\n{self.log()[-4000:]}")
        self.logfile.close()
        self.proc = None
        return code

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        m = SANITIZER_REPORT.search(self.log())
        assert m is None, f"sanitizer report in the edgecri log:\n{self.log()[-8000:]}"

    # -- clients -------------------------------------------------------------
    def channel(self, **options):
        # A private subchannel pool: each channel is its own connection, as
        # the concurrency tests need.
        options.setdefault("grpc.use_local_subchannel_pool", 1)
        ch = grpc.insecure_channel(f"unix://{self.socket}", options=list(options.items()))
        self.channels.append(ch)
        return ch

    def runtime(self, channel=None):
        return api_pb2_grpc.RuntimeServiceStub(channel or self.channel())

    def images(self, channel=None):
        return api_pb2_grpc.ImageServiceStub(channel or self.channel())


@pytest.fixture
def workdir():
    # Short paths: a unix socket path must fit in 108 bytes.
    d = tempfile.mkdtemp(prefix="ec-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_edgecri(workdir):
    """Factory for daemons; each is stopped and checked at teardown."""
    made = []

    def make(subdir=None):
        d = workdir if subdir is None else os.path.join(workdir, subdir)
        os.makedirs(d, exist_ok=True)
        e = Edgecri(d)
        made.append(e)
        return e

    yield make
    failures = []
    try:
        for e in made:
            if e.proc is not None:
                code = e.stop()
                if code != e.expected_exit:
                    failures.append(f"edgecri exited with {code}, expected {e.expected_exit}:\n{e.log()[-4000:]}")
            m = SANITIZER_REPORT.search(e.log())
            if m:
                failures.append(f"sanitizer report in the edgecri log:\n{e.log()[-8000:]}")
    finally:
        for e in made:
            remove_leftovers(e)
    assert not failures, "\n".join(failures)


def remove_leftovers(e):
    """Pods outlive their daemon by design; a test that ends with some
    (or fails half-way) must not leave them on the machine: their
    processes, namespace and shm mounts under the test's directory, and the
    cgroups edgecri named after them."""
    pods_dir = os.path.join(e.state, "pods")
    pod_ids = os.listdir(pods_dir) if os.path.isdir(pods_dir) else []
    cgroups = []
    for pod_id in pod_ids:
        cgroups += glob.glob(f"/sys/fs/cgroup/*/edgecri/{pod_id}") + glob.glob(f"/sys/fs/cgroup/edgecri/{pod_id}")
    for cg in cgroups:
        kill = os.path.join(cg, "cgroup.kill")
        if os.path.exists(kill):
            try:
                with open(kill, "w") as f:
                    f.write("1")
            except OSError:
                pass
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split(" ")[4] for line in f]
    for m in sorted((m for m in mounts if m.startswith(e.workdir + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    deadline = time.monotonic() + 5
    for cg in cgroups:
        for root, _, _ in os.walk(cg, topdown=False):
            while True:
                try:
                    os.rmdir(root)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


@pytest.fixture
def edgecri(make_edgecri):
    """A started daemon with default settings."""
    return make_edgecri().start()


@pytest.fixture(scope="session")
def pb():
    return api_pb2


@pytest.fixture(scope="session")
def pbg():
    return api_pb2_grpc

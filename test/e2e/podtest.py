"""Helpers for the pod sandbox tests: a private network namespace per test,
a daemon running inside it (so CNI's bridge, iptables rules and routes never
touch the host's network), pod configs, and looks at what a pod leaves on
the node (mounts, links, IPAM files, cgroups, fds)."""
import ctypes
import glob
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time

import grpc

import api_pb2 as pb

CNI_BIN = "/usr/lib/cni"
POD_CIDR = ipaddress.ip_network("10.88.0.0/16")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
NETWORK = "edgecri"  # the built-in network's name (cni.c)
CGROUP_ROOT = "/sys/fs/cgroup"


def sh(*args, check=True, timeout=20, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout, **kw)


class Netns:
    """A named network namespace with only lo, up."""

    def __init__(self):
        self.name = "ec-" + secrets.token_hex(4)
        sh("ip", "netns", "add", self.name)
        self.path = f"/run/netns/{self.name}"
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def run(self, *args, check=True, timeout=20):
        return sh("nsenter", f"--net={self.path}", *args, check=check, timeout=timeout)

    def links(self):
        out = sh("ip", "-n", self.name, "-j", "link", "show").stdout
        return json.loads(out or "[]")

    def iptables_save(self):
        return self.run("iptables-save").stdout

    def delete(self):
        sh("ip", "netns", "delete", self.name, check=False)


def in_pod(netns_path, *args, check=True, timeout=20):
    """Runs a command in a pod's network namespace (and only that one)."""
    return sh("nsenter", f"--net={netns_path}", *args, check=check, timeout=timeout)


def pod_config(name, uid=None, namespace="default", attempt=0, hostname="", labels=None, annotations=None,
               dns=None, ports=(), sysctls=None, network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD,
               cgroup_parent="", log_directory=""):
    ns_opts = pb.NamespaceOption(network=network, pid=pid, ipc=ipc)
    sc = pb.LinuxSandboxSecurityContext(namespace_options=ns_opts)
    linux = pb.LinuxPodSandboxConfig(security_context=sc, cgroup_parent=cgroup_parent, sysctls=sysctls or {})
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid or secrets.token_hex(8), namespace=namespace,
                                       attempt=attempt),
        hostname=hostname, labels=labels or {}, annotations=annotations or {}, dns_config=dns,
        port_mappings=list(ports), linux=linux, log_directory=log_directory)


def mountinfo_lines(needle):
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split(" ", 4)[4] for line in f if needle in line)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def ipam_files(root):
    """host-local's allocation files of the built-in network (cni.c puts its
    dataDir at <root>/cni/ipam): one file named after each IP in use."""
    d = os.path.join(root, "cni", "ipam", NETWORK)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if _is_ip(f))


def _is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def cgroup_dirs(path):
    """Every hierarchy's directory for a cgroup path that exists (cgroup v1
    and the hybrid layout: one mount per hierarchy below /sys/fs/cgroup;
    v2: /sys/fs/cgroup itself)."""
    rel = path.lstrip("/")
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        d = os.path.join(CGROUP_ROOT, rel)
        return [d] if os.path.isdir(d) else []
    return [d for d in glob.glob(os.path.join(CGROUP_ROOT, "*", rel)) if os.path.isdir(d)]


def hierarchy_roots():
    """The root directory of every cgroup hierarchy mounted (one on v2)."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [CGROUP_ROOT]
    return sorted(os.path.join(CGROUP_ROOT, d) for d in os.listdir(CGROUP_ROOT)
                  if os.path.ismount(os.path.join(CGROUP_ROOT, d)))


def kill_cgroup(path):
    """SIGKILLs what a failed test left running in a pod's cgroup (a pod
    init whose daemon was killed)."""
    for d in cgroup_dirs(path):
        for sub, _, files in os.walk(d):
            if "cgroup.procs" in files:
                with open(os.path.join(sub, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass


def rmdir_cgroup(path):
    """Removes what a failed test may have left (deepest first)."""
    for d in cgroup_dirs(path):
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def wait_for(fn, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def grpc_code(fn, *a, **kw):
    """The status code and details of a call expected to fail."""
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded")


class PodEnv:
    """A daemon inside a private network namespace, using the built-in CNI
    network (a private, empty conf_dir; plugins from Debian's
    containernetworking-plugins), and the pods the test created."""

    def __init__(self, make_edgecri, workdir, wrap_extra=()):
        self.netns = Netns()
        # More nsenter options for the daemon (e.g. a mount namespace).
        self.wrap_extra = list(wrap_extra)
        self.make_edgecri = make_edgecri
        self.workdir = workdir
        self.conf_dir = os.path.join(workdir, "net.d")
        os.makedirs(self.conf_dir, exist_ok=True)
        self.config_path = os.path.join(workdir, "config.yaml")
        self.e = None
        self.pod_ids = set()
        self.cgroups = set()

    # -- daemon -----------------------------------------------------------
    def start(self, extra_config="", bin_dirs=CNI_BIN):
        with open(self.config_path, "w") as f:
            f.write(f"cni:\n  conf_dir: {self.conf_dir}\n  bin_dirs: {bin_dirs}\n{extra_config}")
        if self.e is None:
            self.e = self.make_edgecri()
            self.e.wrap = ["nsenter", f"--net={self.netns.path}"] + self.wrap_extra
        self.e.start(config=self.config_path)
        self.rt = self.e.runtime()
        return self

    @property
    def root(self):
        return self.e.root

    @property
    def state(self):
        return self.e.state

    # -- pods --------------------------------------------------------------
    def run(self, config, handler="", timeout=60):
        r = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config, runtime_handler=handler), timeout=timeout)
        self.pod_ids.add(r.pod_sandbox_id)
        self.cgroups.add(config.linux.cgroup_parent or f"/edgecri/{r.pod_sandbox_id}")
        return r.pod_sandbox_id

    def status(self, pod_id, verbose=False):
        r = self.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose), timeout=10)
        info = json.loads(r.info["info"]) if verbose else None
        return r.status, info

    def netns_path(self, pod_id):
        return os.path.join(self.state, "pods", pod_id, "ns", "net")

    def stop(self, pod_id):
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)

    def remove(self, pod_id):
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        self.pod_ids.discard(pod_id)

    def list(self, **filt):
        f = pb.PodSandboxFilter(**filt) if filt else None
        return list(self.rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=f), timeout=10).items)

    # -- teardown ------------------------------------------------------------
    def close(self):
        problems = []
        if self.e is not None:
            # Shown by pytest for a failed test only.
            print(f"--- edgecri log (tail) ---\n{self.e.log()[-30000:]}")
        try:
            if self.e is not None and self.e.proc is not None:
                if self.e.proc.poll() is None:
                    for pod_id in list(self.pod_ids):
                        try:
                            self.remove(pod_id)
                        except grpc.RpcError as err:
                            problems.append(f"RemovePodSandbox {pod_id} at teardown: {err.details()}")
                code = self.e.stop()
                if code != self.e.expected_exit:
                    problems.append(f"edgecri exited with {code}:\n{self.e.log()[-4000:]}")
        finally:
            # Whatever a failed test left: namespace mounts under the state
            # directory, cgroups, the netns (its bridge, veths and iptables
            # rules go with it).
            if self.e is not None:
                for line in mountinfo_lines(self.e.state):
                    mnt = line.split(" ")[0]
                    sh("umount", "-l", mnt, check=False)
                # Pods whose RunPodSandbox never answered have no id but in
                # the log.
                self.cgroups.update(f"/edgecri/{i}" for i in re.findall(r"creating pod ([0-9a-f]{64}) ", self.e.log()))
            for cg in self.cgroups:
                kill_cgroup(cg)
                rmdir_cgroup(cg)
            self.netns.delete()
        assert not problems, "\n".join(problems)


# -- network namespaces of the test process ------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(path, fn, *args):
    """Runs fn(*args) on a thread that entered the network namespace at
    `path` (setns changes only the calling thread's). Sockets it returns keep
    their namespace when used from other threads."""
    out = {}

    def target():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {path}: {os.strerror(e)}")
            finally:
                os.close(fd)
            out["v"] = fn(*args)
        except BaseException as ex:  # handed to the caller
            out["e"] = ex

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def tcp_listener(netns_path, port, host="0.0.0.0", family=socket.AF_INET):
    def make():
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(4)
        s.settimeout(5)
        return s
    return in_netns(netns_path, make)


def tcp_connect(netns_path, host, port, timeout=5):
    def make():
        return socket.create_connection((host, port), timeout=timeout)
    return in_netns(netns_path, make)


def roundtrip(listener, client, payload=b"hello pod"):
    """Sends through client, reads on the accepted side, answers back."""
    conn, peer = listener.accept()
    with conn:
        conn.settimeout(5)
        client.sendall(payload)
        got = conn.recv(100)
        conn.sendall(got[::-1])
        back = client.recv(100)
    return got, back, peer


def children_of(pid):
    """Processes (zombies included) whose parent is `pid`."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(rest[1]) == pid:
            kids.append((int(d), rest[0]))
    return kids


def veths(netns):
    return sorted(link["ifname"] for link in netns.links() if link.get("linkinfo", {}).get("info_kind") == "veth"
                  or link["ifname"].startswith("veth"))

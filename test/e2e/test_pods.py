"""Pod sandboxes end to end: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
PodSandboxStatus, ListPodSandbox and StreamPodSandboxes against the real
binary, with real CNI plugins (Debian's containernetworking-plugins).

Every test runs its daemon inside a network namespace of its own (nsenter
--net, so the daemon's mounts stay visible to the test): the built-in
network's bridge, veths, routes and iptables rules live there and go away
with it. Checks inside pods enter the pods' held namespaces."""
import ctypes
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import grpc
import pytest

import api_pb2 as pb
from conftest import BIN
from podtest import (BUSYBOX, CNI_BIN, POD_CIDR, PodEnv, cgroup_dirs, children_of, fd_count, grpc_code,
                     hierarchy_roots, in_pod, ipam_files, mountinfo_lines, pod_config, rmdir_cgroup, roundtrip, sh,
                     tcp_connect, tcp_listener, veths, wait_for)


@pytest.fixture
def env(make_edgecri, workdir):
    e = PodEnv(make_edgecri, workdir)
    yield e
    e.close()


@pytest.fixture
def subreaper():
    """Makes the test process the reaper of orphans (as systemd is for
    edgecri on a node): a pod's init outlives the daemon that started it,
    and this machine's PID 1 never reaps."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _reap(pid):
    """The init outlived the first daemon, so it is no child of the second:
    the test process, its subreaper, reaps it once it has ended."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return not os.path.exists(f"/proc/{pid}")


def ready(status):
    return status.state == pb.SANDBOX_READY


def pod_dir(env, pod_id):
    return os.path.join(env.state, "pods", pod_id)


def record_dir(env, pod_id):
    return os.path.join(env.root, "pods", pod_id)


def nsfs_mounts(env, pod_id):
    return [line.split(" ")[0] for line in mountinfo_lines(pod_dir(env, pod_id))]


def file_text(path):
    with open(path) as f:
        return f.read()


def assert_pod_gone(env, pod_id, cgroup=None):
    """Nothing of the pod is left on the node."""
    assert mountinfo_lines(pod_dir(env, pod_id)) == []
    assert not os.path.exists(pod_dir(env, pod_id))
    assert not os.path.exists(record_dir(env, pod_id))
    assert cgroup_dirs(cgroup or f"/edgecri/{pod_id}") == []
    code, _ = grpc_code(env.status, pod_id)
    assert code == grpc.StatusCode.NOT_FOUND


# -- 1. a pod and everything it is made of ------------------------------------------

def test_run_pod_namespaces_files_and_record(env):
    env.start()
    daemon = env.e.proc.pid
    dns = pb.DNSConfig(servers=["10.96.0.10", "1.1.1.1"], searches=["default.svc.cluster.local", "cluster.local"],
                       options=["ndots:5", "edns0"])
    t0 = time.time_ns()
    pod_id = env.run(pod_config("web", uid="uid-web", namespace="shop", attempt=2, hostname="web-host",
                                labels={"app": "web"}, annotations={"note": "x"}, dns=dns))
    st, info = env.status(pod_id, verbose=True)
    assert ready(st)
    assert st.id == pod_id
    assert (st.metadata.name, st.metadata.uid, st.metadata.namespace, st.metadata.attempt) == \
        ("web", "uid-web", "shop", 2)
    assert t0 <= st.created_at <= time.time_ns()
    assert dict(st.labels) == {"app": "web"} and dict(st.annotations) == {"note": "x"}
    ip = ipaddress.ip_address(st.network.ip)
    assert ip in POD_CIDR and ip != POD_CIDR[1]  # .1 is the bridge's
    assert st.linux.namespaces.options.network == pb.POD
    assert st.linux.namespaces.options.ipc == pb.POD
    assert st.linux.namespaces.options.pid == pb.CONTAINER

    # The namespaces are held by bind mounts, not by processes: nothing of
    # the pod runs (no pause process, no holder left behind).
    netns = info["netns"]
    assert netns == os.path.join(pod_dir(env, pod_id), "ns", "net")
    assert children_of(daemon) == []
    for ns in ("net", "ipc", "uts"):
        path = os.path.join(pod_dir(env, pod_id), "ns", ns)
        assert os.stat(path).st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino, ns
    assert os.stat(netns).st_ino != os.stat(env.netns.path).st_ino

    # eth0 has the IP; lo is up.
    links = {link["ifname"]: link for link in json.loads(in_pod(netns, "ip", "-j", "addr").stdout)}
    assert set(links) == {"lo", "eth0"}
    assert "UP" in links["lo"]["flags"]
    assert [a["local"] for a in links["eth0"]["addr_info"] if a["family"] == "inet"] == [str(ip)]
    route = in_pod(netns, "ip", "route", "show", "default").stdout
    assert "via 10.88.0.1" in route

    # Hostname in the pod's UTS namespace, and the files containers mount.
    uts = os.path.join(pod_dir(env, pod_id), "ns", "uts")
    assert sh("nsenter", f"--uts={uts}", "hostname").stdout.strip() == "web-host"
    assert file_text(os.path.join(pod_dir(env, pod_id), "hostname")) == "web-host\n"
    hosts = file_text(os.path.join(pod_dir(env, pod_id), "hosts")).splitlines()
    assert "127.0.0.1\tlocalhost" in hosts
    assert any(line.startswith("::1\tlocalhost") for line in hosts)
    assert f"{ip}\tweb-host" in hosts
    assert file_text(info["resolvConf"]) == ("search default.svc.cluster.local cluster.local\n"
                                             "nameserver 10.96.0.10\nnameserver 1.1.1.1\n"
                                             "options ndots:5 edns0\n")

    # /dev/shm: a tmpfs of the pod's own.
    shm = [line for line in mountinfo_lines(pod_dir(env, pod_id)) if line.startswith(pod_dir(env, pod_id) + "/shm ")]
    assert len(shm) == 1, shm
    assert " - tmpfs " in shm[0] and "nosuid" in shm[0] and "nodev" in shm[0] and "noexec" in shm[0]
    assert "size=65536k" in shm[0]

    # The record survives in the root directory.
    rec = json.loads(file_text(os.path.join(record_dir(env, pod_id), "pod.json")))
    assert (rec["id"], rec["name"], rec["namespace"], rec["uid"], rec["attempt"]) == \
        (pod_id, "web", "shop", "uid-web", 2)
    assert rec["state"] == "ready" and rec["ips"] == [str(ip)] and rec["hostname"] == "web-host"
    assert stat.S_IMODE(os.stat(os.path.join(record_dir(env, pod_id), "pod.json")).st_mode) == 0o600


def test_pod_without_dns_config_gets_the_hosts_resolv_conf(env):
    env.start()
    pod_id = env.run(pod_config("plain"))
    st, info = env.status(pod_id, verbose=True)
    assert file_text(info["resolvConf"]) == file_text("/etc/resolv.conf")
    # No hostname asked for: the pod's name.
    uts = os.path.join(pod_dir(env, pod_id), "ns", "uts")
    assert sh("nsenter", f"--uts={uts}", "hostname").stdout.strip() == "plain"
    assert f"{st.network.ip}\tplain" in file_text(os.path.join(pod_dir(env, pod_id), "hosts")).splitlines()


# -- 2. pods reach each other --------------------------------------------------------

def test_two_pods_ping_each_other(env):
    env.start()
    a = env.run(pod_config("a"))
    b = env.run(pod_config("b"))
    ip_a = env.status(a)[0].network.ip
    ip_b = env.status(b)[0].network.ip
    assert ip_a != ip_b
    assert {ipaddress.ip_address(ip_a), ipaddress.ip_address(ip_b)} <= set(POD_CIDR.hosts())
    out = in_pod(env.netns_path(a), BUSYBOX, "ping", "-c", "1", "-W", "3", ip_b).stdout
    assert "1 packets received" in out, out
    out = in_pod(env.netns_path(b), BUSYBOX, "ping", "-c", "1", "-W", "3", ip_a).stdout
    assert "1 packets received" in out, out
    # And TCP from one pod to the other, seen with the sender's pod IP.
    listener = tcp_listener(env.netns_path(b), 7000)
    client = tcp_connect(env.netns_path(a), ip_b, 7000)
    with listener, client:
        got, back, peer = roundtrip(listener, client)
    assert (got, back, peer[0]) == (b"hello pod", b"dop olleh", ip_a)
    # Two veths on the bridge, one per pod.
    assert len(veths(env.netns)) == 2


# -- 3. port mappings ---------------------------------------------------------------

def test_port_mapping_reaches_the_pod_and_goes_away_on_stop(env):
    env.start()
    ports = [pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=18080, host_ip="127.0.0.1"),
             pb.PortMapping(protocol=pb.TCP, container_port=8081, host_port=18081)]
    pod_id = env.run(pod_config("ports", ports=ports))
    ip = env.status(pod_id)[0].network.ip
    rules = env.netns.iptables_save()
    assert "18080" in rules and "18081" in rules, rules
    for container_port, host_port in ((8080, 18080), (8081, 18081)):
        listener = tcp_listener(env.netns_path(pod_id), container_port)
        # From the node (the test's namespace stands for the host) to
        # 127.0.0.1:host_port.
        client = tcp_connect(env.netns.path, "127.0.0.1", host_port)
        with listener, client:
            got, back, _ = roundtrip(listener, client)
        assert (got, back) == (b"hello pod", b"dop olleh"), host_port
    # host_ip 127.0.0.1 only binds there: the node's bridge address does not
    # get the mapping, the other (all addresses) does.
    listener = tcp_listener(env.netns_path(pod_id), 8081)
    with listener, tcp_connect(env.netns.path, "10.88.0.1", 18081) as client:
        assert roundtrip(listener, client)[0] == b"hello pod"
    listener.close()
    env.stop(pod_id)
    rules = env.netns.iptables_save()
    assert "18080" not in rules and "18081" not in rules, rules
    assert pod_id not in rules and ip not in rules, rules
    assert ipam_files(env.root) == []
    assert veths(env.netns) == []


# -- 4. host namespaces; dual stack; traffic shaping ------------------------------------

def test_host_network_pod(env):
    env.start()
    daemon = env.e.proc.pid
    pod_id = env.run(pod_config("hostnet", network=pb.NODE, hostname="ignored"))
    st, info = env.status(pod_id, verbose=True)
    assert ready(st)
    assert st.network.ip == "" and len(st.network.additional_ips) == 0
    assert st.linux.namespaces.options.network == pb.NODE
    assert info.get("netns") is None
    assert not os.path.exists(os.path.join(pod_dir(env, pod_id), "ns", "net"))
    assert not os.path.exists(os.path.join(pod_dir(env, pod_id), "ns", "uts"))
    mounts = nsfs_mounts(env, pod_id)
    assert mounts == sorted([os.path.join(pod_dir(env, pod_id), "ns", "ipc"),
                             os.path.join(pod_dir(env, pod_id), "shm")]), mounts
    # No CNI: no veth, no bridge, no address taken.
    assert veths(env.netns) == [] and ipam_files(env.root) == []
    assert "edgecri0" not in [link["ifname"] for link in env.netns.links()]
    # The node's names: hostname and hosts file.
    assert file_text(os.path.join(pod_dir(env, pod_id), "hostname")) == socket.gethostname() + "\n"
    assert file_text(os.path.join(pod_dir(env, pod_id), "hosts")) == file_text("/etc/hosts")
    assert children_of(daemon) == []
    env.stop(pod_id)
    env.remove(pod_id)
    assert_pod_gone(env, pod_id)


def test_host_ipc_and_pid(env):
    env.start()
    daemon = env.e.proc.pid
    pod_id = env.run(pod_config("hostipc", ipc=pb.NODE, pid=pb.NODE))
    st, info = env.status(pod_id, verbose=True)
    assert ready(st) and st.network.ip
    opts = st.linux.namespaces.options
    assert (opts.network, opts.ipc, opts.pid) == (pb.POD, pb.NODE, pb.NODE)
    assert info["initPid"] == 0 and children_of(daemon) == []
    # No IPC namespace and no /dev/shm of its own: the node's.
    assert nsfs_mounts(env, pod_id) == sorted([os.path.join(pod_dir(env, pod_id), "ns", "net"),
                                               os.path.join(pod_dir(env, pod_id), "ns", "uts")])
    assert not os.path.exists(os.path.join(pod_dir(env, pod_id), "ns", "ipc"))
    # IPC sysctls would change the node.
    code, msg = grpc_code(env.run, pod_config("ipc-sysctl", ipc=pb.NODE, sysctls={"kernel.shm_rmid_forced": "1"}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "kernel.shm_rmid_forced" in msg, (code, msg)
    env.remove(pod_id)
    assert_pod_gone(env, pod_id)


def test_dual_stack_built_in_network(env):
    env.start("network:\n  pod_cidr: 10.88.0.0/16,fd00:88::/64\n")
    a = env.run(pod_config("a", hostname="a-host"))
    b = env.run(pod_config("b"))
    st = env.status(a)[0]
    v4 = ipaddress.ip_address(st.network.ip)
    assert v4 in POD_CIDR
    assert [ip.ip for ip in st.network.additional_ips] != []
    v6 = ipaddress.ip_address(st.network.additional_ips[0].ip)
    assert v6.version == 6 and v6 in ipaddress.ip_network("fd00:88::/64")
    addrs = json.loads(in_pod(env.netns_path(a), "ip", "-j", "addr", "show", "eth0").stdout)[0]["addr_info"]
    assert {str(v4), str(v6)} <= {x["local"] for x in addrs}
    hosts = file_text(os.path.join(pod_dir(env, a), "hosts")).splitlines()
    assert f"{v4}\ta-host" in hosts and f"{v6}\ta-host" in hosts
    b6 = env.status(b)[0].network.additional_ips[0].ip
    listener = tcp_listener(env.netns_path(b), 7000, host="::", family=socket.AF_INET6)
    with listener, tcp_connect(env.netns_path(a), b6, 7000) as client:
        got, _, peer = roundtrip(listener, client)
    assert got == b"hello pod" and ipaddress.ip_address(peer[0]) == v6
    for p in (a, b):
        env.remove(p)
    assert ipam_files(env.root) == []


def test_bandwidth_annotations(env):
    with open(os.path.join(env.conf_dir, "10-shaped.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "shaped", "plugins": [
            {"type": "bridge", "bridge": "ecbw0", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": "10.69.0.0/24",
                      "dataDir": os.path.join(env.workdir, "ipam")}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}}]}, f)
    env.start()
    pod_id = env.run(pod_config("shaped", annotations={"kubernetes.io/ingress-bandwidth": "10M",
                                                       "kubernetes.io/egress-bandwidth": "1Mi"}))
    qdiscs = json.loads(env.netns.run("tc", "-j", "qdisc", "show").stdout)
    rates = sorted(q["options"]["rate"] for q in qdiscs if q.get("kind") == "tbf")
    # tc reports bytes per second: 10 Mbit/s and 1 Mibit/s.
    assert rates == sorted([10_000_000 // 8, 1_048_576 // 8]), qdiscs
    env.remove(pod_id)
    assert [q for q in json.loads(env.netns.run("tc", "-j", "qdisc", "show").stdout) if q.get("kind") == "tbf"] == []
    for bad in ("lots", "10", "2P"):
        code, msg = grpc_code(env.run, pod_config("bad", annotations={"kubernetes.io/ingress-bandwidth": bad}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg)
        assert "kubernetes.io/ingress-bandwidth" in msg and f'"{bad}"' in msg, msg
    assert env.list() == []


# -- 5. sysctls -----------------------------------------------------------------------

def test_namespaced_sysctls_applied_inside_others_refused(env):
    env.start()
    before_host = file_text("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    before_node = env.netns.run("cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout
    pod_id = env.run(pod_config("sysctl", sysctls={"net.ipv4.ip_unprivileged_port_start": "80",
                                                    "kernel.shm_rmid_forced": "1",
                                                    "net/ipv4/conf/lo/rp_filter": "2"}))
    netns = env.netns_path(pod_id)
    ipcns = os.path.join(pod_dir(env, pod_id), "ns", "ipc")
    assert in_pod(netns, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout.strip() == "80"
    assert in_pod(netns, "cat", "/proc/sys/net/ipv4/conf/lo/rp_filter").stdout.strip() == "2"
    assert sh("nsenter", f"--ipc={ipcns}", "cat", "/proc/sys/kernel/shm_rmid_forced").stdout.strip() == "1"
    # Nothing changed outside the pod.
    assert file_text("/proc/sys/net/ipv4/ip_unprivileged_port_start") == before_host
    assert env.netns.run("cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout == before_node

    for sysctls, net, word in [({"vm.swappiness": "10"}, pb.POD, "vm.swappiness"),
                               ({"kernel.panic": "1"}, pb.POD, "kernel.panic"),
                               ({"net.ipv4.ip_forward": "1"}, pb.NODE, "net.ipv4.ip_forward")]:
        code, msg = grpc_code(env.run, pod_config("bad-sysctl", sysctls=sysctls, network=net))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg)
        assert word in msg, msg
    # The refused ones left nothing behind.
    assert [p.id for p in env.list()] == [pod_id]
    assert os.listdir(os.path.join(env.state, "pods")) == [pod_id]
    assert os.listdir(os.path.join(env.root, "pods")) == [pod_id]


# -- 6. a pod-shared PID namespace ------------------------------------------------------

def test_shared_pid_namespace_init(env):
    env.start()
    daemon = env.e.proc.pid
    pod_id = env.run(pod_config("pidns", pid=pb.POD))
    st, info = env.status(pod_id, verbose=True)
    assert st.linux.namespaces.options.pid == pb.POD
    init = info["initPid"]
    assert init > 0
    # edgecri's own binary, its child, PID 1 of a namespace of its own, in
    # the pod's cgroup; and the only process the pod has.
    assert os.path.realpath(f"/proc/{init}/exe") == os.path.realpath(BIN)
    assert file_text(f"/proc/{init}/comm").strip() == "edgecri-init"
    assert [pid for pid, _ in children_of(daemon)] == [init]
    assert os.readlink(f"/proc/{init}/ns/pid") != os.readlink("/proc/self/ns/pid")
    nspid = [line for line in file_text(f"/proc/{init}/status").splitlines() if line.startswith("NSpid:")][0]
    assert nspid.split()[-1] == "1"
    # In a cgroup of its own below the pod's, which stays empty: on cgroup v2
    # (and the hybrid layout's cgroup2 tree) a cgroup holding a process
    # cannot enable controllers for its children, the containers.
    for line in file_text(f"/proc/{init}/cgroup").splitlines():
        assert line.endswith(f":/edgecri/{pod_id}/{pod_id}"), line
    unified = [d for d in cgroup_dirs(f"/edgecri/{pod_id}") if os.path.exists(os.path.join(d, "cgroup.controllers"))]
    assert unified, "no cgroup2 tree: this machine's layout has one (hybrid)"
    for d in unified:
        assert file_text(os.path.join(d, "cgroup.procs")) == ""
        # What creating a container's cgroup does (cgroup_create): a child,
        # and the controllers the tree offers enabled for it.
        os.mkdir(os.path.join(d, "probe"))
        try:
            offered = file_text(os.path.join(d, "cgroup.controllers")).split()
            with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join("+" + c for c in offered))
        finally:
            os.rmdir(os.path.join(d, "probe"))
    # containerd's pause gets -998; lower than edgecri's own only with
    # CAP_SYS_RESOURCE (root on this machine has none: then it keeps ours).
    own = int(file_text(f"/proc/{daemon}/oom_score_adj"))
    capeff = int([line for line in file_text(f"/proc/{daemon}/status").splitlines()
                  if line.startswith("CapEff:")][0].split()[1], 16)
    want = -998 if capeff & (1 << 24) else max(own, -998)
    assert int(file_text(f"/proc/{init}/oom_score_adj")) == want
    # It shares the pod's other namespaces' lifetime: gone, and reaped, once
    # StopPodSandbox returns.
    env.stop(pod_id)
    assert not os.path.exists(f"/proc/{init}"), file_text(f"/proc/{init}/status")
    assert children_of(daemon) == []
    st, info = env.status(pod_id, verbose=True)
    assert not ready(st)


def test_remove_without_stop_ends_the_init(env):
    env.start()
    daemon = env.e.proc.pid
    pod_id = env.run(pod_config("pidns", pid=pb.POD))
    init = env.status(pod_id, verbose=True)[1]["initPid"]
    env.remove(pod_id)
    assert not os.path.exists(f"/proc/{init}")
    assert children_of(daemon) == []
    assert_pod_gone(env, pod_id)


# -- 7. Stop/Remove are idempotent; List, filters, Stream -----------------------------------

def test_stop_remove_idempotent_list_and_stream(env):
    env.start()
    a = env.run(pod_config("a", labels={"app": "a", "tier": "x"}))
    b = env.run(pod_config("b", labels={"app": "b", "tier": "x"}), handler="edgecri")
    c = env.run(pod_config("c", labels={"app": "c"}))
    env.stop(b)
    env.stop(b)  # again: fine
    assert not ready(env.status(b)[0])
    assert env.status(b)[0].network.ip == ""
    assert ready(env.status(a)[0])

    def ids(**f):
        return sorted(p.id for p in env.list(**f))

    assert ids() == sorted([a, b, c])
    assert ids(id=a[:12]) == [a]
    assert ids(id=a) == [a]
    assert ids(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY)) == sorted([a, c])
    assert ids(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY)) == [b]
    assert ids(label_selector={"tier": "x"}) == sorted([a, b])
    assert ids(label_selector={"tier": "x", "app": "b"}) == [b]
    assert ids(label_selector={"app": "b"}, state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY)) == []
    assert ids(label_selector={"nope": "x"}) == []
    item = [p for p in env.list(id=b)][0]
    assert (item.metadata.name, item.state, item.runtime_handler, dict(item.labels)) == \
        ("b", pb.SANDBOX_NOTREADY, "edgecri", {"app": "b", "tier": "x"})

    streamed = []
    for resp in env.rt.StreamPodSandboxes(pb.StreamPodSandboxesRequest(), timeout=10):
        streamed += [p.id for p in resp.pod_sandboxes]
    assert sorted(streamed) == sorted([a, b, c])
    streamed = []
    f = pb.PodSandboxFilter(label_selector={"tier": "x"}, state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    for resp in env.rt.StreamPodSandboxes(pb.StreamPodSandboxesRequest(filter=f), timeout=10):
        streamed += [p.id for p in resp.pod_sandboxes]
    assert streamed == [a]

    for pod in (a, b):
        env.remove(pod)
        env.remove(pod)  # again: fine
        assert_pod_gone(env, pod)
        env.pod_ids.discard(pod)
    env.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id="0123456789abcdef" * 4), timeout=10)
    code, msg = grpc_code(env.stop, "0123456789abcdef" * 4)
    assert code == grpc.StatusCode.NOT_FOUND, (code, msg)
    assert ids() == [c]
    # Stop then remove of the last one; then stop of a removed pod.
    env.stop(c)
    env.stop(c)
    env.remove(c)
    assert_pod_gone(env, c)
    code, _ = grpc_code(env.stop, c)
    assert code == grpc.StatusCode.NOT_FOUND
    assert veths(env.netns) == [] and ipam_files(env.root) == []


def test_ambiguous_id_prefix_is_refused(env):
    # Host-network pods are cheap: make them until two ids share their
    # first character (at most 17).
    env.start()
    first = {}
    while True:
        pod_id = env.run(pod_config(f"h{len(env.pod_ids)}", network=pb.NODE))
        if pod_id[0] in first:
            break
        first[pod_id[0]] = pod_id
    prefix = pod_id[0]
    n = len(env.list())
    for call in (env.remove, env.stop):
        code, msg = grpc_code(call, prefix)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "matches 2 pods" in msg, (code, msg)
    assert len(env.list()) == n
    assert ready(env.status(pod_id)[0]) and ready(env.status(first[prefix])[0])
    # A unique prefix names its pod.
    env.remove(pod_id[:20])
    assert len(env.list()) == n - 1


# -- 8. restart recovery -------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_pods_survive_a_restart(env, subreaper, sig):
    env.start()
    a = env.run(pod_config("a"))
    b = env.run(pod_config("b", pid=pb.POD,
                           ports=[pb.PortMapping(container_port=80, host_port=18090, host_ip="127.0.0.1")]))
    stopped = env.run(pod_config("stopped"))
    env.stop(stopped)
    before = {p: env.status(p, verbose=True) for p in (a, b)}
    init = before[b][1]["initPid"]
    mounts = mountinfo_lines(env.state)

    code = env.e.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), env.e.log()[-3000:]
    # The init outlives edgecri (a subreaper or init reaps it later).
    assert os.path.exists(f"/proc/{init}")
    env.start()

    states = {p.id: p.state for p in env.list()}
    assert states == {a: pb.SANDBOX_READY, b: pb.SANDBOX_READY, stopped: pb.SANDBOX_NOTREADY}
    for p in (a, b):
        st, info = env.status(p, verbose=True)
        assert st.network.ip == before[p][0].network.ip
        assert info["netns"] == before[p][1]["netns"]
    assert env.status(b, verbose=True)[1]["initPid"] == init
    assert mountinfo_lines(env.state) == mounts
    ip_b = before[b][0].network.ip
    out = in_pod(env.netns_path(a), BUSYBOX, "ping", "-c", "1", "-W", "3", ip_b).stdout
    assert "1 packets received" in out, out
    listener = tcp_listener(env.netns_path(b), 80)
    with listener, tcp_connect(env.netns.path, "127.0.0.1", 18090) as client:
        assert roundtrip(listener, client)[0] == b"hello pod"

    # Stop and Remove after the restart clean up everything, the adopted
    # init included.
    for p in (a, b, stopped):
        env.stop(p)
        env.remove(p)
        assert_pod_gone(env, p)
    wait_for(lambda: not os.path.exists(f"/proc/{init}") or _reap(init), what=f"init {init} to go")
    rules = env.netns.iptables_save()
    assert "18090" not in rules
    assert veths(env.netns) == [] and ipam_files(env.root) == []
    assert mountinfo_lines(env.state) == []


def test_crash_during_run_leaves_nothing_after_restart(env, subreaper):
    # edgecri is killed while a CNI plugin of RunPodSandbox runs (after
    # bridge has made the veth and host-local has taken an address, with the
    # pod's init running): the next start finds the pod without a record and
    # removes everything it had.
    bindir = os.path.join(env.workdir, "cnibin")
    os.makedirs(bindir)
    marker = os.path.join(env.workdir, "slowpoke.started")
    with open(os.path.join(bindir, "slowpoke"), "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\n"
                f"if [ \"$CNI_COMMAND\" = ADD ]; then echo \"$CNI_CONTAINERID $$\" >{marker}.tmp; "
                f"mv {marker}.tmp {marker}; exec sleep 60; fi\nexit 0\n")
    os.chmod(os.path.join(bindir, "slowpoke"), 0o755)
    ipam = os.path.join(env.workdir, "ipam")
    with open(os.path.join(env.conf_dir, "10-slow.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "slow", "plugins": [
            {"type": "bridge", "bridge": "ecslow0", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": "10.68.0.0/24", "dataDir": ipam}},
            {"type": "slowpoke"}]}, f)
    env.start(bin_dirs=f"{bindir}:{CNI_BIN}")
    failed = []
    t = threading.Thread(target=lambda: failed.append(grpc_code(env.run, pod_config("crashy", pid=pb.POD))))
    t.start()
    wait_for(lambda: os.path.exists(marker), timeout=20, what="the slow plugin to start")
    pod_id, plugin_pid = file_text(marker).split()
    env.cgroups.add(f"/edgecri/{pod_id}")
    assert env.e.stop(signal.SIGKILL) == -signal.SIGKILL
    os.kill(int(plugin_pid), signal.SIGKILL)
    t.join()
    assert failed and failed[0][0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), failed
    # What the crash left: mounts, an address, a veth, a cgroup with the init.
    assert len(mountinfo_lines(pod_dir(env, pod_id))) == 4
    assert len([f for f in os.listdir(os.path.join(ipam, "slow")) if f[0].isdigit()]) == 1
    assert len(veths(env.netns)) == 1
    procs = [d for d in cgroup_dirs(f"/edgecri/{pod_id}/{pod_id}") if "/memory/" in d or "/unified/" in d]
    init = int(file_text(os.path.join(procs[0], "cgroup.procs")).split()[0])

    env.start(bin_dirs=f"{bindir}:{CNI_BIN}")

    def swept():
        _reap(init)
        _reap(int(plugin_pid))
        return (mountinfo_lines(env.state) == [] and os.listdir(os.path.join(env.state, "pods")) == []
                and os.listdir(os.path.join(env.root, "pods")) == [] and veths(env.netns) == []
                and [f for f in os.listdir(os.path.join(ipam, "slow")) if f[0].isdigit()] == []
                and cgroup_dirs(f"/edgecri/{pod_id}") == [] and not os.path.exists(f"/proc/{init}"))
    wait_for(swept, timeout=15, what="the pod left by the crash to be removed")
    assert env.list() == []
    assert "no record" in env.e.log()


# -- 9. errors; CNI configurations of the node ----------------------------------------------

def test_run_errors(env):
    env.start()
    cfg = pod_config("dup", uid="u1", namespace="ns1", attempt=1)
    first = env.run(cfg)
    code, msg = grpc_code(env.run, cfg)
    assert code == grpc.StatusCode.ALREADY_EXISTS, (code, msg)
    assert first in msg and "reserved" in msg, msg
    # Another attempt of the same pod is a new sandbox.
    second = env.run(pod_config("dup", uid="u1", namespace="ns1", attempt=2))
    assert second != first

    code, msg = grpc_code(env.run, pod_config("h"), handler="kata-fc")
    assert code == grpc.StatusCode.NOT_FOUND, (code, msg)
    assert '"kata-fc"' in msg, msg

    bad = pod_config("m")
    bad.metadata.name = ""
    code, msg = grpc_code(env.run, bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata" in msg, (code, msg)
    code, msg = grpc_code(env.rt.RunPodSandbox, pb.RunPodSandboxRequest(), timeout=10)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg)
    code, msg = grpc_code(env.run, pod_config("tgt", network=pb.TARGET))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg)
    code, msg = grpc_code(env.run, pod_config("dns", dns=pb.DNSConfig(servers=["1.1.1.1\nnameserver 6.6.6.6"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg)
    assert sorted(p.id for p in env.list()) == sorted([first, second])
    assert sorted(os.listdir(os.path.join(env.state, "pods"))) == sorted([first, second])
    assert sorted(os.listdir(os.path.join(env.root, "pods"))) == sorted([first, second])


def _pods_made(env):
    """Ids of every pod the daemon started making, from its debug log (a
    failed RunPodSandbox answers no id)."""
    return re.findall(r"creating pod ([0-9a-f]{64}) ", env.e.log())


def _assert_nothing_left(env):
    made = _pods_made(env)
    assert made, "the daemon did not get as far as making the pod"
    assert env.list() == []
    assert os.listdir(os.path.join(env.state, "pods")) == []
    assert os.listdir(os.path.join(env.root, "pods")) == []
    assert mountinfo_lines(env.state) == []
    for pod_id in made:
        assert cgroup_dirs(f"/edgecri/{pod_id}") == [], pod_id
    assert veths(env.netns) == []
    assert children_of(env.e.proc.pid) == []


def test_cni_plugin_missing_leaves_nothing(env):
    with open(os.path.join(env.conf_dir, "10-broken.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "broken", "plugins": [
            {"type": "bridge", "bridge": "ecbr1", "ipam": {"type": "host-local", "subnet": "10.66.0.0/24",
                                                          "dataDir": os.path.join(env.workdir, "ipam")}},
            {"type": "no-such-plugin"}]}, f)
    env.start()
    code, msg = grpc_code(env.run, pod_config("p", pid=pb.POD))
    assert "no-such-plugin" in msg and "broken" in msg, msg
    assert code != grpc.StatusCode.OK
    _assert_nothing_left(env)


def test_cni_plugin_failing_is_undone(env):
    # A plugin after bridge + host-local that fails: the error carries its
    # message, and the ADD of the plugins before it is undone (IP released,
    # veth deleted) before RunPodSandbox answers.
    bindir = os.path.join(env.workdir, "cnibin")
    os.makedirs(bindir)
    with open(os.path.join(bindir, "refuser"), "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\n"
                "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
                "  echo '{\"cniVersion\":\"1.0.0\",\"code\":101,\"msg\":\"refuser says no\",\"details\":\"by design\"}'\n"
                "  exit 1\nfi\nexit 0\n")
    os.chmod(os.path.join(bindir, "refuser"), 0o755)
    ipam = os.path.join(env.workdir, "ipam")
    with open(os.path.join(env.conf_dir, "10-refuse.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "refusing", "plugins": [
            {"type": "bridge", "bridge": "ecbr2", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": "10.67.0.0/24", "dataDir": ipam}},
            {"type": "refuser"}]}, f)
    env.start(bin_dirs=f"{bindir}:{CNI_BIN}")
    code, msg = grpc_code(env.run, pod_config("p", pid=pb.POD))
    assert code != grpc.StatusCode.OK
    assert "refuser says no" in msg and "by design" in msg and "refusing" in msg, msg
    _assert_nothing_left(env)
    assert [f for f in os.listdir(os.path.join(ipam, "refusing")) if f[0].isdigit()] == []


def test_custom_conflist(env):
    ipam = os.path.join(env.workdir, "ipam")
    with open(os.path.join(env.conf_dir, "20-custom.conflist"), "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": "custom", "plugins": [
            {"type": "bridge", "bridge": "ectest0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": ipam,
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)
    # No loopback plugin (as in k3s's and Calico's conflists): lo is still
    # up in the pod, as containerd makes it. Files that are not a
    # configuration are ignored.
    with open(os.path.join(env.conf_dir, "README"), "w") as f:
        f.write("not a network\n")
    env.start()
    a = env.run(pod_config("a", ports=[pb.PortMapping(container_port=80, host_port=18100)]))
    b = env.run(pod_config("b"))
    ip_a, ip_b = env.status(a)[0].network.ip, env.status(b)[0].network.ip
    net = ipaddress.ip_network("10.77.0.0/24")
    assert ipaddress.ip_address(ip_a) in net and ipaddress.ip_address(ip_b) in net
    assert "ectest0" in [link["ifname"] for link in env.netns.links()]
    assert "edgecri0" not in [link["ifname"] for link in env.netns.links()]
    assert sorted(os.listdir(os.path.join(ipam, "custom"))) >= sorted([ip_a, ip_b])
    # (ip asks the kernel over netlink in the pod's namespace; /sys would
    # show the host's.)
    lo = in_pod(env.netns_path(a), "ip", "-o", "link", "show", "lo").stdout
    assert ",UP" in lo or "<UP" in lo, f"lo is down in the pod: {lo}"
    out = in_pod(env.netns_path(a), BUSYBOX, "ping", "-c", "1", "-W", "3", ip_b).stdout
    assert "1 packets received" in out, out
    listener = tcp_listener(env.netns_path(a), 80)
    with listener, tcp_connect(env.netns.path, "127.0.0.1", 18100) as client:
        assert roundtrip(listener, client)[0] == b"hello pod"
    for p in (a, b):
        env.remove(p)
    assert [f for f in os.listdir(os.path.join(ipam, "custom")) if f[0].isdigit()] == []
    assert veths(env.netns) == []
    assert "18100" not in env.netns.iptables_save()


# -- 10. many pods leave nothing behind --------------------------------------------------------

def _snapshot(env):
    return {
        "mounts": mountinfo_lines(env.state),
        "links": sorted(link["ifname"] for link in env.netns.links()),
        "ipam": ipam_files(env.root),
        "children": children_of(env.e.proc.pid),
        "state": sorted(os.listdir(os.path.join(env.state, "pods"))),
        "records": sorted(os.listdir(os.path.join(env.root, "pods"))),
        "cni_results": sorted(os.listdir(os.path.join(env.root, "cni", "results"))),
        "nat_rules": sorted(line for line in env.netns.iptables_save().splitlines()
                            if line.startswith("-A") and ("CNI" in line or "10.88." in line)),
    }


def test_fifty_pods_leave_nothing_behind(env):
    env.start()
    # Warm up: the first pod makes the bridge, portmap's shared chains and
    # the daemon's lazily opened files; the baseline is taken after it.
    env.remove(env.run(pod_config("warmup", pid=pb.POD, ports=[pb.PortMapping(container_port=80, host_port=19999)])))
    before = _snapshot(env)
    fds_before = fd_count(env.e.proc.pid)
    assert before["mounts"] == [] and before["ipam"] == [] and before["children"] == []

    errors = []
    lock = threading.Lock()

    def worker(w):
        rt = env.e.runtime()
        try:
            for i in range(10):
                n = w * 10 + i
                cfg = pod_config(f"leak-{n}", pid=pb.POD if n % 5 == 0 else pb.CONTAINER,
                                 ports=[pb.PortMapping(container_port=80, host_port=20000 + n)] if n % 7 == 0 else [],
                                 sysctls={"kernel.shm_rmid_forced": "1"} if n % 3 == 0 else {})
                pod_id = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
                with lock:
                    env.pod_ids.add(pod_id)
                st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
                assert st.state == pb.SANDBOX_READY and st.network.ip
                if n % 2:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
                with lock:
                    env.pod_ids.discard(pod_id)
        except Exception as ex:  # reported below
            with lock:
                errors.append(f"worker {w}: {ex!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert env.list() == []
    made = _pods_made(env)
    assert len(made) == 51
    for pod_id in made:
        assert cgroup_dirs(f"/edgecri/{pod_id}") == [], pod_id
    after = _snapshot(env)
    for key in before:
        assert after[key] == before[key], (key, before[key], after[key])
    # fds: the gRPC connections of the worker channels close with them.
    for ch in env.e.channels[1:]:
        ch.close()
    del env.e.channels[1:]
    wait_for(lambda: fd_count(env.e.proc.pid) <= fds_before, what=f"fds back to {fds_before}")


# -- 11. cgroups ----------------------------------------------------------------------------------

def test_pod_cgroup_under_cgroup_parent(env):
    env.start()
    tag = os.path.basename(env.workdir)
    parent = f"/ec-test-{tag}/pod-{tag}"
    env.cgroups.add(f"/ec-test-{tag}")
    try:
        res = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_shares=512)
        overhead = pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20, cpu_shares=128)
        cfg = pod_config("cg", pid=pb.POD, cgroup_parent=parent)
        cfg.linux.resources.CopyFrom(res)
        cfg.linux.overhead.CopyFrom(overhead)
        pod_id = env.run(cfg)
        st, info = env.status(pod_id, verbose=True)
        assert info["cgroupPath"] == parent
        dirs = cgroup_dirs(parent)
        # Every v1 hierarchy, and the hybrid cgroup2 one when mounted.
        assert len(dirs) == len(hierarchy_roots()), (dirs, hierarchy_roots())
        init = info["initPid"]
        assert f":{parent}/{pod_id}\n" in file_text(f"/proc/{init}/cgroup")
        mem = [d for d in dirs if "/memory/" in d]
        if mem:  # cgroup v1 memory controller: the sandbox's resources plus its overhead
            assert int(file_text(os.path.join(mem[0], "memory.limit_in_bytes"))) == 80 << 20
        cpu = [d for d in dirs if d.startswith("/sys/fs/cgroup/cpu/") or "/cpu,cpuacct/" in d]
        if cpu:
            assert int(file_text(os.path.join(cpu[0], "cpu.shares"))) == 640
        # kubelet resizes the pod: the overhead it does not repeat still counts.
        env.rt.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id, resources=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20)),
            timeout=10)
        if mem:
            assert int(file_text(os.path.join(mem[0], "memory.limit_in_bytes"))) == 144 << 20
        rec = json.loads(file_text(os.path.join(record_dir(env, pod_id), "pod.json")))
        assert rec["config"]["resources"]["memoryLimit"] == 128 << 20
        assert rec["config"]["overhead"]["memoryLimit"] == 16 << 20

        env.remove(pod_id)
        assert cgroup_dirs(parent) == [], cgroup_dirs(parent)
        assert_pod_gone(env, pod_id, cgroup=parent)
    finally:
        rmdir_cgroup(f"/ec-test-{tag}")


def test_cgroup_parent_made_by_kubelet_is_left_to_it(env):
    # kubelet creates the pod's cgroup before RunPodSandbox and removes it
    # after RemovePodSandbox: edgecri uses it and leaves it in place; and two
    # pods given the same parent do not take each other's cgroup away.
    env.start()
    tag = os.path.basename(env.workdir)
    kubelets = f"/ec-kubelet-{tag}/pod-{tag}"
    shared = f"/ec-shared-{tag}"
    env.cgroups.update({f"/ec-kubelet-{tag}", shared})
    try:
        for h in hierarchy_roots():
            os.makedirs(f"{h}{kubelets}")
        a = env.run(pod_config("kubelet-made", pid=pb.POD, cgroup_parent=kubelets))
        assert len(cgroup_dirs(f"{kubelets}/{a}")) > 0
        env.remove(a)
        # kubelet's cgroup stays, empty: no process, no cgroup of edgecri's.
        assert len(cgroup_dirs(kubelets)) > 0
        for d in cgroup_dirs(kubelets):
            assert file_text(os.path.join(d, "cgroup.procs")) == ""
            assert [e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))] == [], d

        s1 = env.run(pod_config("s1", pid=pb.POD, cgroup_parent=shared))
        s2 = env.run(pod_config("s2", pid=pb.POD, cgroup_parent=shared))
        init2 = env.status(s2, verbose=True)[1]["initPid"]
        env.remove(s1)
        assert ready(env.status(s2)[0])
        assert os.path.exists(f"/proc/{init2}") and len(cgroup_dirs(shared)) > 0
        assert str(init2) in "".join(file_text(os.path.join(d, "cgroup.procs")) for d in cgroup_dirs(f"{shared}/{s2}"))
        env.remove(s2)
        assert cgroup_dirs(shared) == []
    finally:
        rmdir_cgroup(f"/ec-kubelet-{tag}")
        rmdir_cgroup(shared)


def test_slow_cgroup_removal_does_not_stall_the_loop(env):
    # A process that cannot die yet (frozen by the v1 freezer, above the pod
    # cgroup where edgecri's thaw does not reach) keeps the pod cgroup busy:
    # RemovePodSandbox waits for it in the thread pool while every other
    # call is answered at once.
    freezer = "/sys/fs/cgroup/freezer"
    if not os.path.ismount(freezer):
        pytest.fail("this test needs the cgroup v1 freezer hierarchy (the machine's layout)")
    env.start()
    tag = os.path.basename(env.workdir)
    top = f"/ec-frz-{tag}"
    parent = f"{top}/pod"
    env.cgroups.add(top)
    sleeper = None
    try:
        pod_id = env.run(pod_config("frozen", cgroup_parent=parent))
        sleeper = subprocess.Popen(["sleep", "60"])
        for d in cgroup_dirs(parent):
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(sleeper.pid))
        with open(f"{freezer}{top}/freezer.state", "w") as f:
            f.write("FROZEN")
        wait_for(lambda: file_text(f"{freezer}{top}/freezer.state").strip() == "FROZEN", what="the freeze")
        result = []

        def remove():
            try:
                env.remove(pod_id)
                result.append("ok")
            except grpc.RpcError as err:
                result.append(err)

        t = threading.Thread(target=remove)
        t.start()
        time.sleep(0.3)
        latencies = []
        for _ in range(5):
            t0 = time.monotonic()
            env.rt.Version(pb.VersionRequest(), timeout=2)
            env.list()
            latencies.append(time.monotonic() - t0)
        assert result == [], "RemovePodSandbox did not wait for the frozen process"
        assert max(latencies) < 0.25, latencies
        with open(f"{freezer}{top}/freezer.state", "w") as f:
            f.write("THAWED")
        t.join(10)
        assert result == ["ok"], result
        assert sleeper.wait(5) == -signal.SIGKILL
        assert cgroup_dirs(parent) == []
    finally:
        if os.path.exists(f"{freezer}{top}/freezer.state"):
            with open(f"{freezer}{top}/freezer.state", "w") as f:
                f.write("THAWED")
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        rmdir_cgroup(top)

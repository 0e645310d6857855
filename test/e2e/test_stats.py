"""Stats and metrics end to end: containers burning CPU and holding memory
in pods of the real daemon, their CRI stats checked against the cgroup
files read here, pods (the sum of their containers), stopped containers,
filters, the streaming variants, the writable layer, a pod's network
interfaces (a private CNI bridge with nothing on it: no traffic leaves the
host's loopback), and the cAdvisor-style metrics against their
descriptors and against the stats."""
import json
import os
import subprocess
import time
import uuid

import grpc
import pytest

import api_pb2 as pb
from ctrtest import container_config, create, import_busybox, pod_config, run_pod, run_to_exit, start, \
    wait_state

MiB = 1024 * 1024


# --- cgroup files, read the way the kernel documents them ----------------------------------

def _cgroup_layout():
    """(2, unified mount) or (1, {controller: mount}), as edgecri's cgroup.c
    decides: a v1 memory hierarchy makes it v1 (the hybrid layout), else a
    cgroup2 mount with controllers is v2."""
    v1, v2 = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            mnt = pre.split()[4]
            fstype, _src, opts = post.split()[:3]
            if fstype == "cgroup2":
                v2 = mnt
            elif fstype == "cgroup":
                for o in opts.split(","):
                    v1.setdefault(o, mnt)
    if v2 and "memory" not in v1:
        try:
            with open(os.path.join(v2, "cgroup.controllers")) as f:
                if f.read().strip():
                    return 2, v2
        except OSError:
            pass
    return 1, v1


VERSION, MOUNTS = _cgroup_layout()


def cg_file(controller, cgroup, name):
    base = MOUNTS if VERSION == 2 else MOUNTS[controller]
    with open(base + cgroup + "/" + name) as f:
        return f.read()


def keyed(text, key):
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    raise KeyError(key)


def cg_cpu_ns(cgroup):
    if VERSION == 2:
        return keyed(cg_file("cpu", cgroup, "cpu.stat"), "usage_usec") * 1000
    return int(cg_file("cpuacct", cgroup, "cpuacct.usage"))


def cg_working_set(cgroup):
    if VERSION == 2:
        usage = int(cg_file("memory", cgroup, "memory.current"))
        inactive = keyed(cg_file("memory", cgroup, "memory.stat"), "inactive_file")
    else:
        usage = int(cg_file("memory", cgroup, "memory.usage_in_bytes"))
        inactive = keyed(cg_file("memory", cgroup, "memory.stat"), "total_inactive_file")
    return max(usage - inactive, 0)


def cg_rss(cgroup):
    st = cg_file("memory", cgroup, "memory.stat")
    return keyed(st, "anon") if VERSION == 2 else keyed(st, "total_rss")


def cg_pids(cgroup):
    return int(cg_file("pids", cgroup, "pids.current"))


def cg_memory_limit(cgroup):
    if VERSION == 2:
        v = cg_file("memory", cgroup, "memory.max").strip()
        return 0 if v == "max" else int(v)
    v = int(cg_file("memory", cgroup, "memory.limit_in_bytes"))
    return 0 if v >= 1 << 62 else v


# --- helpers ----------------------------------------------------------------------------------

def info(e, cid):
    return json.loads(e.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True),
                                                  timeout=10).info["info"])


def pod_info(e, pid):
    return json.loads(e.runtime().PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=True),
                                                   timeout=10).info["info"])


def run(e, pod_id, pod_cfg, name, script, labels=None, **kw):
    cid = create(e, pod_id, pod_cfg, container_config(name, command=["sh", "-c", script], labels=labels or {},
                                                        **kw))
    e.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(e, cid, pb.CONTAINER_RUNNING)
    return cid


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cstats(e, cid):
    return e.runtime().ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=30).stats


def pstats(e, pid):
    return e.runtime().PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pid), timeout=30).stats


def remove_all_pods(e):
    rt = e.runtime()
    for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)


# A shell holding ~48 MiB of anonymous memory in a variable, and a file in
# its writable layer; "ready" once both are there.
HOLD = ("head -c 2097152 /dev/zero > /layer-file; x=$(head -c 50331648 /dev/zero | tr '\\0' a); "
        "touch /tmp/ready; while :; do sleep 1; done")
BURN = "while :; do :; done"


@pytest.fixture
def daemon(make_edgecri):
    e = start(make_edgecri)
    yield e
    if e.proc is not None:
        remove_all_pods(e)


@pytest.fixture
def busy_pod(daemon):
    """A pod with one container burning a core and one holding memory."""
    cfg = pod_config(labels={"app": "busy"})
    pid = run_pod(daemon, cfg)
    burn = run(daemon, pid, cfg, "burn", BURN, labels={"role": "burn"})
    hold = run(daemon, pid, cfg, "hold", HOLD, labels={"role": "hold"})
    root = f"/proc/{info(daemon, hold)['pid']}/root"
    wait_for(lambda: os.path.exists(root + "/tmp/ready"), what="the holder's memory")
    return pid, cfg, burn, hold


# --- containers ---------------------------------------------------------------------------------

def test_cpu_and_memory_match_the_cgroup_files(daemon, busy_pod):
    pid, cfg, burn, hold = busy_pod
    burn_cg = info(daemon, burn)["cgroupPath"]
    hold_cg = info(daemon, hold)["cgroupPath"]

    before = cg_cpu_ns(burn_cg)
    t0 = time.time_ns()
    first = cstats(daemon, burn)
    after = cg_cpu_ns(burn_cg)
    assert first.attributes.id == burn
    assert first.attributes.metadata.name == "burn"
    assert first.attributes.labels["role"] == "burn"
    assert before <= first.cpu.usage_core_nano_seconds.value <= after
    assert t0 - 10**9 <= first.cpu.timestamp <= time.time_ns() + 10**9
    # usage_nano_cores needs two samples a second apart or more: kubelet
    # computes its own when it is unset.
    time.sleep(1.5)
    second = cstats(daemon, burn)
    assert second.cpu.HasField("usage_nano_cores")
    window = (second.cpu.timestamp - first.cpu.timestamp) / 1e9
    delta = second.cpu.usage_core_nano_seconds.value - first.cpu.usage_core_nano_seconds.value
    assert second.cpu.usage_nano_cores.value == pytest.approx(delta / window, rel=0.05)
    # one busy loop: at most one core, and a good part of one unless the
    # machine is very busy
    assert 0.05e9 < second.cpu.usage_nano_cores.value < 1.1e9, second.cpu

    # memory: working set = usage - inactive file, RSS = anon/total_rss
    ws_before = cg_working_set(hold_cg)
    h = cstats(daemon, hold)
    ws_after = cg_working_set(hold_cg)
    lo, hi = min(ws_before, ws_after) - MiB, max(ws_before, ws_after) + MiB
    assert lo <= h.memory.working_set_bytes.value <= hi
    assert h.memory.working_set_bytes.value > 44 * MiB
    assert abs(h.memory.rss_bytes.value - cg_rss(hold_cg)) < MiB
    assert h.memory.rss_bytes.value > 40 * MiB
    assert h.memory.usage_bytes.value >= h.memory.working_set_bytes.value
    assert h.memory.page_faults.value > 0
    # no limit set: no available bytes (as cAdvisor)
    assert not h.memory.HasField("available_bytes")
    assert h.memory.timestamp > 0
    # the writable layer holds the 2 MiB file
    assert h.writable_layer.used_bytes.value >= 2 * MiB
    assert h.writable_layer.inodes_used.value >= 2
    assert h.writable_layer.fs_id.mountpoint.startswith("/")
    assert h.writable_layer.timestamp > 0


def test_memory_limit_gives_available_bytes(daemon):
    cfg = pod_config()
    pid = run_pod(daemon, cfg)
    limit = 128 * MiB
    res = pb.LinuxContainerResources(memory_limit_in_bytes=limit)
    cid = run(daemon, pid, cfg, "limited", "x=$(head -c 8388608 /dev/zero | tr '\\0' a); sleep 3600",
              linux=pb.LinuxContainerConfig(resources=res))
    cg = info(daemon, cid)["cgroupPath"]
    wait_for(lambda: cg_rss(cg) > 4 * MiB, what="memory use")
    s = cstats(daemon, cid)
    assert cg_memory_limit(cg) == limit
    assert s.memory.available_bytes.value == limit - s.memory.working_set_bytes.value


def test_stopped_container(daemon, workdir):
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(daemon, cfg)
    cid, st, _ = run_to_exit(daemon, pid, cfg, "done", ["sh", "-c", "echo data > /f"], log_dir)
    assert st.exit_code == 0
    s = cstats(daemon, cid)
    # no cgroup left: usage unknown, which is not zero
    assert s.attributes.id == cid and s.attributes.metadata.name == "done"
    assert not s.HasField("cpu") and not s.HasField("memory")
    assert s.writable_layer.inodes_used.value >= 2
    listed = daemon.runtime().ListContainerStats(pb.ListContainerStatsRequest(), timeout=30).stats
    assert [x.attributes.id for x in listed] == [cid]
    # a created, never started container: the same
    created = create(daemon, pid, cfg, container_config("idle", command=["true"]))
    s = cstats(daemon, created)
    assert s.attributes.id == created and not s.HasField("cpu")


def test_unknown_and_missing_ids(daemon):
    rt = daemon.runtime()
    for call, req in ((rt.ContainerStats, pb.ContainerStatsRequest(container_id="nope")),
                      (rt.PodSandboxStats, pb.PodSandboxStatsRequest(pod_sandbox_id="nope"))):
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in e.value.details()
    for call, req in ((rt.ContainerStats, pb.ContainerStatsRequest()),
                      (rt.PodSandboxStats, pb.PodSandboxStatsRequest())):
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(rt.ListContainerStats(pb.ListContainerStatsRequest(), timeout=10).stats) == []
    assert list(rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(), timeout=10).stats) == []
    assert list(rt.StreamContainerStats(pb.StreamContainerStatsRequest(), timeout=10)) == []


# --- pods -----------------------------------------------------------------------------------------

def test_pod_is_the_sum_of_its_containers(daemon, busy_pod):
    pid, cfg, burn, hold = busy_pod
    pod_cg = pod_info(daemon, pid)["cgroupPath"]
    time.sleep(0.2)
    s = pstats(daemon, pid)
    assert s.attributes.id == pid
    assert s.attributes.metadata.name == cfg.metadata.name
    assert s.attributes.metadata.uid == cfg.metadata.uid
    assert s.attributes.labels["app"] == "busy"
    lx = s.linux
    ctrs = {c.attributes.id: c for c in lx.containers}
    assert set(ctrs) == {burn, hold}
    cpu_sum = sum(c.cpu.usage_core_nano_seconds.value for c in ctrs.values())
    # read one after the other while a core burns: a few ms apart at most
    assert abs(lx.cpu.usage_core_nano_seconds.value - cpu_sum) < 0.05 * cpu_sum + 50e6
    ws_sum = sum(c.memory.working_set_bytes.value for c in ctrs.values())
    assert abs(lx.memory.working_set_bytes.value - ws_sum) < 4 * MiB
    assert lx.memory.working_set_bytes.value > 44 * MiB
    # sh burning; sh + sleep holding
    assert lx.process.process_count.value == cg_pids(pod_cg) == 3
    assert lx.process.timestamp > 0
    # host network: no interfaces of its own to report
    assert not lx.HasField("network")

    # the pod's rate, from two samples
    time.sleep(1.2)
    s2 = pstats(daemon, pid)
    window = (s2.linux.cpu.timestamp - lx.cpu.timestamp) / 1e9
    delta = s2.linux.cpu.usage_core_nano_seconds.value - lx.cpu.usage_core_nano_seconds.value
    assert s2.linux.cpu.usage_nano_cores.value == pytest.approx(delta / window, rel=0.05)
    assert 0.05e9 < s2.linux.cpu.usage_nano_cores.value < 1.2e9


def test_lists_streams_and_filters(daemon):
    rt = daemon.runtime()
    cfg_a = pod_config(labels={"team": "a"})
    cfg_b = pod_config(labels={"team": "b"})
    pa, pb_ = run_pod(daemon, cfg_a), run_pod(daemon, cfg_b)
    a1 = run(daemon, pa, cfg_a, "a1", "sleep 3600", labels={"tier": "web", "x": "1"})
    a2 = run(daemon, pa, cfg_a, "a2", "sleep 3600", labels={"tier": "db"})
    b1 = run(daemon, pb_, cfg_b, "b1", "sleep 3600", labels={"tier": "web"})

    def ids(f=None):
        return sorted(s.attributes.id for s in rt.ListContainerStats(
            pb.ListContainerStatsRequest(filter=f), timeout=30).stats)

    def streamed(f=None):
        return sorted(s.attributes.id for r in rt.StreamContainerStats(
            pb.StreamContainerStatsRequest(filter=f), timeout=30) for s in r.container_stats)

    F = pb.ContainerStatsFilter
    assert ids() == streamed() == sorted([a1, a2, b1])
    assert ids(F(id=a1)) == streamed(F(id=a1)) == [a1]
    assert ids(F(id=a1[:12])) == [a1]
    assert ids(F(pod_sandbox_id=pa)) == sorted([a1, a2])
    assert ids(F(label_selector={"tier": "web"})) == sorted([a1, b1])
    assert ids(F(label_selector={"tier": "web", "x": "1"})) == [a1]
    assert ids(F(pod_sandbox_id=pb_, label_selector={"tier": "db"})) == []
    assert ids(F(id="0000")) == []
    for s in rt.ListContainerStats(pb.ListContainerStatsRequest(), timeout=30).stats:
        assert s.cpu.usage_core_nano_seconds.value > 0 and s.memory.working_set_bytes.value > 0

    def pods(f=None):
        return sorted(s.attributes.id for s in rt.ListPodSandboxStats(
            pb.ListPodSandboxStatsRequest(filter=f), timeout=30).stats)

    def pods_streamed(f=None):
        return sorted(s.attributes.id for r in rt.StreamPodSandboxStats(
            pb.StreamPodSandboxStatsRequest(filter=f), timeout=30) for s in r.pod_sandbox_stats)

    PF = pb.PodSandboxStatsFilter
    assert pods() == pods_streamed() == sorted([pa, pb_])
    assert pods(PF(id=pa)) == pods_streamed(PF(id=pa)) == [pa]
    assert pods(PF(label_selector={"team": "b"})) == [pb_]
    assert pods(PF(label_selector={"team": "c"})) == []
    listed = {s.attributes.id: s for s in rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(), timeout=30).stats}
    assert sorted(c.attributes.id for c in listed[pa].linux.containers) == sorted([a1, a2])
    assert [c.attributes.id for c in listed[pb_].linux.containers] == [b1]

    # a stopped pod leaves the lists; PodSandboxStats still answers
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pb_), timeout=60)
    assert pods() == [pa]
    assert pstats(daemon, pb_).attributes.id == pb_
    assert ids(F(pod_sandbox_id=pb_)) == [b1]
    assert not cstats(daemon, b1).HasField("cpu")
    # a removed container is gone from every answer
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pb_), timeout=60)
    assert ids() == sorted([a1, a2])
    with pytest.raises(grpc.RpcError) as e:
        cstats(daemon, b1)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_writable_layer_is_cached_then_refreshed(daemon):
    """The layer is walked at most every 10 s (more for big layers), never
    on every call; it still catches up with what the container writes."""
    cfg = pod_config()
    pid = run_pod(daemon, cfg)
    cid = run(daemon, pid, cfg, "writer", "while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                                          "head -c 4194304 /dev/zero > /more; sleep 3600")
    first = cstats(daemon, cid).writable_layer
    assert first.used_bytes.value < 4 * MiB
    # go: the container writes 4 MiB, which a walk per call would see at once
    subprocess.run(["touch", f"/proc/{info(daemon, cid)['pid']}/root/tmp/go"], check=True)
    time.sleep(0.5)
    again = cstats(daemon, cid).writable_layer
    assert again.timestamp == first.timestamp and again.used_bytes.value == first.used_bytes.value
    grown = wait_for(lambda: (lambda w: w if w.used_bytes.value >= 4 * MiB else None)(
        cstats(daemon, cid).writable_layer), timeout=30, what="the refreshed layer size")
    assert grown.timestamp > first.timestamp
    assert (grown.timestamp - first.timestamp) / 1e9 >= 9


# --- network ---------------------------------------------------------------------------------------

@pytest.fixture
def net_daemon(make_edgecri, workdir):
    """A daemon whose only network is a private bridge with no address on
    the host and nothing else attached: pods get an eth0 that no traffic
    can leave through."""
    tag = uuid.uuid4().hex[:6]
    bridge = "ecst" + tag
    e = make_edgecri()
    net_d = os.path.join(workdir, "net.d")
    os.makedirs(net_d, exist_ok=True)
    conf = {"cniVersion": "1.0.0", "name": "ecstats-" + tag, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": False, "ipMasq": False,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.77.0/24"}]],
                  "dataDir": os.path.join(workdir, "ipam")}},
        {"type": "loopback"}]}
    with open(os.path.join(net_d, "10-stats.conflist"), "w") as f:
        json.dump(conf, f)
    cfg = os.path.join(workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"cni:\n  conf_dir: {net_d}\n")
    e.start(config=cfg)
    import_busybox(e)
    yield e
    if e.proc is not None:
        remove_all_pods(e)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def netdev_in(netns):
    out = subprocess.run(["nsenter", f"--net={netns}", "cat", "/proc/net/dev"], capture_output=True, text=True,
                         check=True).stdout
    ifs = {}
    for line in out.splitlines()[2:]:
        name, _, rest = line.partition(":")
        v = [int(x) for x in rest.split()]
        ifs[name.strip()] = {"rx_bytes": v[0], "rx_errors": v[2], "tx_bytes": v[8], "tx_errors": v[10]}
    return ifs


def check_interfaces(e, pid, netns):
    """The pod's interfaces as PodSandboxStats gives them, between two reads
    of /proc/net/dev in its namespace (IPv6 may send a packet meanwhile)."""
    before = netdev_in(netns)
    s = pstats(e, pid)
    after = netdev_in(netns)
    net = s.linux.network
    assert net.timestamp > 0
    ifs = [net.default_interface] + list(net.interfaces)
    assert net.default_interface.name == "eth0"
    assert "lo" not in [i.name for i in ifs]
    assert sorted(i.name for i in ifs) == sorted(n for n in after if n != "lo")
    for i in ifs:
        for k in ("rx_bytes", "rx_errors", "tx_bytes", "tx_errors"):
            assert before[i.name][k] <= getattr(i, k).value <= after[i.name][k], (i.name, k)
    return s


def test_pod_network_interfaces(net_daemon):
    e = net_daemon
    cfg = pod_config(host_network=False)
    pid = run_pod(e, cfg)
    netns = pod_info(e, pid)["netns"]
    # no process in the pod yet: read from inside the namespace
    check_interfaces(e, pid, netns)
    # with a container: read through its /proc/<pid>/net/dev
    run(e, pid, cfg, "sleeper", "sleep 3600")
    s = check_interfaces(e, pid, netns)
    # the metrics carry the same interfaces
    pm = [p for p in e.runtime().ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest(), timeout=30).pod_metrics
          if p.pod_sandbox_id == pid][0]
    rx = [m for m in pm.metrics if m.name == "container_network_receive_bytes_total"]
    assert [m.label_values[-1] for m in rx] == ["eth0"]
    assert rx[0].value.value >= s.linux.network.default_interface.rx_bytes.value


# --- metrics --------------------------------------------------------------------------------------------

REQUIRED = {
    "container_cpu_usage_seconds_total": "counter", "container_memory_working_set_bytes": "gauge",
    "container_memory_usage_bytes": "gauge", "container_memory_rss": "gauge",
    "container_spec_memory_limit_bytes": "gauge", "container_network_receive_bytes_total": "counter",
    "container_network_transmit_bytes_total": "counter", "container_processes": "gauge",
    "container_fs_usage_bytes": "gauge", "container_last_seen": "gauge",
}


def metric_map(metrics):
    out = {}
    for m in metrics:
        out.setdefault(m.name, []).append(m)
    return out


def test_metrics_match_descriptors_and_stats(daemon, busy_pod):
    pid, cfg, burn, hold = busy_pod
    rt = daemon.runtime()
    descs = {d.name: d for d in rt.ListMetricDescriptors(pb.ListMetricDescriptorsRequest(), timeout=10).descriptors}
    assert len(descs) == len(rt.ListMetricDescriptors(pb.ListMetricDescriptorsRequest(), timeout=10).descriptors)
    assert set(REQUIRED) <= set(descs)
    for d in descs.values():
        assert d.help
        assert list(d.label_keys[:6]) == ["container", "id", "image", "name", "namespace", "pod"]
    assert list(descs["container_cpu_usage_seconds_total"].label_keys[6:]) == ["cpu"]
    assert list(descs["container_network_receive_bytes_total"].label_keys[6:]) == ["interface"]

    # a second pod with a memory limit, for the spec metric
    cfg2 = pod_config()
    pid2 = run_pod(daemon, cfg2)
    limited = run(daemon, pid2, cfg2, "limited", "sleep 3600",
                  linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=96 * MiB)))

    listed = rt.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest(), timeout=30).pod_metrics
    streamed = [p for r in rt.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest(), timeout=30)
                for p in r.pod_sandbox_metrics]
    assert sorted(p.pod_sandbox_id for p in listed) == sorted(p.pod_sandbox_id for p in streamed) == \
        sorted([pid, pid2])
    kinds = {pb.COUNTER: "counter", pb.GAUGE: "gauge"}
    for p in listed:
        for m in list(p.metrics) + [m for c in p.container_metrics for m in c.metrics]:
            # what kubelet needs to turn a value into a Prometheus sample
            assert m.name in descs, m.name
            assert len(m.label_values) == len(descs[m.name].label_keys), m
            if m.name in REQUIRED:
                assert kinds[m.metric_type] == REQUIRED[m.name], m.name

    pod = [p for p in listed if p.pod_sandbox_id == pid][0]
    assert sorted(c.container_id for c in pod.container_metrics) == sorted([burn, hold])
    pod_m = metric_map(pod.metrics)
    labels = dict(zip(descs["container_memory_working_set_bytes"].label_keys,
                      pod_m["container_memory_working_set_bytes"][0].label_values))
    assert labels["container"] == "" and labels["pod"] == cfg.metadata.name
    assert labels["namespace"] == "default" and labels["id"] == pod_info(daemon, pid)["cgroupPath"]

    hold_m = metric_map([c for c in pod.container_metrics if c.container_id == hold][0].metrics)
    hold_s = cstats(daemon, hold)
    ws = hold_m["container_memory_working_set_bytes"][0]
    labels = dict(zip(descs[ws.name].label_keys, ws.label_values))
    assert labels == {"container": "hold", "id": info(daemon, hold)["cgroupPath"], "image": IMAGE,
                      "name": hold, "namespace": "default", "pod": cfg.metadata.name}
    assert abs(ws.value.value - hold_s.memory.working_set_bytes.value) < 2 * MiB
    assert abs(hold_m["container_memory_rss"][0].value.value - hold_s.memory.rss_bytes.value) < 2 * MiB
    assert hold_m["container_processes"][0].value.value == 2
    assert hold_m["container_spec_memory_limit_bytes"][0].value.value == 0
    fs = hold_m["container_fs_usage_bytes"][0]
    assert fs.value.value == hold_s.writable_layer.used_bytes.value
    assert fs.timestamp == hold_s.writable_layer.timestamp  # a cached value says when it was measured

    burn_m = metric_map([c for c in pod.container_metrics if c.container_id == burn][0].metrics)
    cpu = burn_m["container_cpu_usage_seconds_total"][0]
    assert cpu.label_values[-1] == "total" and cpu.metric_type == pb.COUNTER
    burn_s = cstats(daemon, burn)
    assert abs(cpu.value.value - burn_s.cpu.usage_core_nano_seconds.value / 1e9) <= 2
    assert cpu.timestamp == 0  # live

    lim = [p for p in listed if p.pod_sandbox_id == pid2][0]
    lim_m = metric_map(lim.container_metrics[0].metrics)
    assert lim.container_metrics[0].container_id == limited
    assert lim_m["container_spec_memory_limit_bytes"][0].value.value == 96 * MiB == \
        cg_memory_limit(info(daemon, limited)["cgroupPath"])


IMAGE = "example.test/library/busybox:1"

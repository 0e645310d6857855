"""A real kubelet against edgecri: kubelet 1.20 from Debian's source
(test/kubelet/build-kubelet.sh), standalone with a static pod, speaking CRI
v1alpha2 to edgecri on its socket.

One pod's whole life, checked from three sides: what kubelet reports on its
read-only port (/pods), what edgecri holds (CRI calls of the test), and the
node itself (the process tree, the pod's cgroup, the CRI log files under
/var/log/pods):

  pull from a registry -> run the pod sandbox -> create and start the
  container -> its output in the CRI log -> exec liveness probe passing,
  then failing -> kubelet restarts the container -> edgecri killed with
  SIGKILL and started again: the container runs on, kubelet carries on ->
  manifest removed: kubelet stops and removes everything.

edgecri, kubelet and the pod network live in the test's own network
namespace (the registry on the host's loopback is relayed into it) and in a
mount namespace of the test where /var/log is the test's directory: kubelet
deletes pod log directories it does not know, which must not reach another
test run's kubelet on the same machine (kubelettest.NodeMounts)."""
import ctypes
import glob
import ipaddress
import json
import os
import re
import signal
import subprocess
import time
import uuid

import grpc
import pytest

import api_pb2 as pb
from conftest import BIN
from ctrtest import log_text
from kubelettest import (NODE_NAME, Kubelet, LoopbackBridge, NodeMounts, container_log_lines, container_log_links,
                         pod_log_dir)
from podtest import POD_CIDR, PodEnv, cgroup_dirs, children_of, pid_alive, wait_for
from registry import Dir, File, Layer, busybox_image, push
from registry.fixtures import registry_server  # noqa: F401

NAMESPACE = "default"
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}(Z|[+-]\d\d:\d\d) (stdout|stderr) [PF] ")
# The probe leaves a line per run in the container, so the test can tell
# that kubelet's ExecSync calls keep arriving.
PROBE = "echo probe >> /tmp/probes; test -f /tmp/healthy"
# Numbered lines, enough of them for kubelet to rotate the log now and then.
PAD = "x" * 80
WORKLOAD = ("trap 'echo stopping; exit 0' TERM; echo started; i=0; "
            f"while true; do echo tick $i {PAD}; i=$((i+1)); sleep 0.2; done")


@pytest.fixture
def subreaper():
    """Makes the test process the reaper of orphans, as systemd is for
    edgecri on a node: the container outlives the edgecri that was killed,
    and this machine's PID 1 does not reap."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap(pid):
    """Whether `pid` has ended; reaps it when it was adopted by the test."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return not pid_alive(pid)


def manifest(name, uid, image):
    """The static pod (JSON is YAML)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "app", "image": image, "imagePullPolicy": "Always",
                "command": ["sh", "-c", WORKLOAD],
                "livenessProbe": {"exec": {"command": ["sh", "-c", PROBE]},
                                  "periodSeconds": 1, "timeoutSeconds": 5, "failureThreshold": 1},
            }],
        },
    }


class Scenario:
    """The test's handles: edgecri (PodEnv), kubelet, the node's mounts, the
    pod's names."""

    def __init__(self, env, kubelet, mounts, name, uid):
        self.env, self.kubelet, self.mounts, self.name, self.uid = env, kubelet, mounts, name, uid
        self.pod_name = f"{name}-{NODE_NAME}"  # kubelet names static pods after the node

    @property
    def rt(self):
        return self.env.rt

    def kubelet_pod(self):
        pods = [p for p in self.kubelet.pods() if p["metadata"]["uid"] == self.uid]
        return pods[0] if pods else None

    def container_status(self):
        """kubelet's status of the container when it is running and ready."""
        p = self.kubelet_pod()
        if not p or p["status"].get("phase") != "Running":
            return None
        [cs] = p["status"].get("containerStatuses") or [None]
        return cs if cs and "running" in cs["state"] and cs["ready"] else None

    def cri_pods(self):
        return list(self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items)

    def cri_containers(self):
        return list(self.rt.ListContainers(pb.ListContainersRequest(), timeout=10).containers)

    def info(self, cid):
        r = self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10)
        return r.status, json.loads(r.info["info"])

    def exec(self, cid, *cmd):
        r = self.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10), timeout=30)
        assert r.exit_code == 0, (cmd, r)
        return r.stdout.decode()

    def probes_seen(self, cid):
        return int(self.exec(cid, "sh", "-c", "cat /tmp/probes 2>/dev/null | wc -l").strip())

    def why(self):
        return (f"--- kubelet /pods ---\n{json.dumps(self.kubelet.pods(), indent=1)[-3000:]}\n"
                f"--- kubelet log ---\n{self.kubelet.log()[-6000:]}\n--- edgecri log ---\n{self.env.e.log()[-4000:]}")


def log_of(sc, path):
    """(stream, tag, text) of every line of a container's log (a path on the
    node), rotated files included."""
    out = []
    for line in container_log_lines(sc.mounts.host_path(path)):
        assert CRI_LINE.match(line), f"not a CRI log line in {path}: {line!r}"
        _, stream, tag, text = line.split(" ", 3)
        out.append((stream, tag, text))
    return out


def ticks(sc, path):
    """The tick numbers the workload wrote, in log order."""
    return [int(t.split()[1]) for t in log_text(log_of(sc, path)) if t.startswith("tick ")]


def wait(fn, what, sc, timeout=60):
    try:
        return wait_for(fn, timeout=timeout, interval=0.2, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{sc.why()}") from None


def is_probe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        return b"/tmp/healthy" in cmdline or b"/tmp/probes" in cmdline
    except FileNotFoundError:
        return True  # gone already: a short-lived exec


def assert_only_workload(sc, pod_id, workload, edgecri_pid):
    """No process per container or pod besides the workload: the workload
    is edgecri's own child (no shim, no monitor), edgecri's only other
    children are execs into the container (kubelet's probe), and the pod's
    cgroup holds nothing but the workload, what it runs and those execs."""
    with open(f"/proc/{workload}/stat") as f:
        assert int(f.read().rsplit(") ", 1)[1].split()[1]) == edgecri_pid
    kids = {pid for pid, _ in children_of(edgecri_pid)}
    assert workload in kids
    assert all(is_probe(pid) for pid in kids - {workload}), kids
    in_cgroup = set()
    for d in cgroup_dirs(f"/edgecri/{pod_id}"):
        for sub, _, files in os.walk(d):
            if "cgroup.procs" in files:
                with open(os.path.join(sub, "cgroup.procs")) as f:
                    in_cgroup.update(int(p) for p in f.read().split())
    assert workload in in_cgroup
    descendants = {workload} | {pid for pid, _ in children_of(workload)}
    for pid in in_cgroup - descendants:
        assert is_probe(pid), f"process {pid} in the pod's cgroup is neither the workload nor a probe"
    real_bin = os.path.realpath(BIN)
    for pid in in_cgroup:
        try:
            assert os.path.realpath(f"/proc/{pid}/exe") != real_bin, f"an edgecri process ({pid}) in the pod"
        except FileNotFoundError:
            pass


@pytest.fixture
def scenario(make_edgecri, workdir, registry_server, subreaper):  # noqa: F811
    mounts = NodeMounts(workdir)
    env = PodEnv(make_edgecri, workdir, wrap_extra=[f"--mount={mounts.path}"])
    bridge = kubelet = None
    leftover = []
    name, uid = "kt-" + uuid.uuid4().hex[:8], str(uuid.uuid4())
    try:
        bridge = LoopbackBridge(env.netns.path, registry_server.port)
        env.start()
        kubelet = Kubelet(workdir, env.netns.path, mounts, env.e.socket)
        yield Scenario(env, kubelet, mounts, name, uid)
    finally:
        try:
            if kubelet is not None:
                print(f"--- kubelet log (tail) ---\n{kubelet.log()[-20000:]}")
                kubelet.stop()
                leftover = kubelet.leftover_mounts()
                for line in reversed(leftover):
                    subprocess.run(["umount", "-l", line.split(" ")[0]], check=False)
            # What kubelet would have removed had the test got that far.
            if env.e is not None and env.e.proc is not None and env.e.proc.poll() is None:
                try:
                    env.pod_ids.update(p.id for p in env.list())
                except grpc.RpcError:
                    pass
            env.close()
        finally:
            mounts.close()
            if bridge is not None:
                bridge.close()
    assert not leftover, f"kubelet's mounts seen from the host: {leftover}"


def test_kubelet_runs_a_pod_through_its_whole_life(scenario, registry_server):  # noqa: F811
    sc, env, kubelet = scenario, scenario.env, scenario.kubelet

    # An image only the registry has, with the file the probe looks for.
    img = busybox_image(extra_layers=[Layer([Dir("/tmp", mode=0o1777), File("/tmp/healthy", b"ok\n")])])
    repo = f"kubelet/app-{uuid.uuid4().hex[:8]}"
    push(registry_server.url, repo, img, tag="1")
    image = f"{registry_server.host}/{repo}:1"
    assert list(env.e.images().ListImages(pb.ListImagesRequest(), timeout=10).images) == []

    kubelet.start()
    # Written aside and renamed: kubelet watches the directory.
    tmp = os.path.join(kubelet.dir, "pod.json")
    with open(tmp, "w") as f:
        json.dump(manifest(sc.name, sc.uid, image), f)
    os.rename(tmp, os.path.join(kubelet.manifests, "pod.json"))

    # -- pull, sandbox, create, start ------------------------------------------------
    cs = wait(sc.container_status, "kubelet to report the container running", sc, timeout=90)
    pod = sc.kubelet_pod()
    assert pod["metadata"]["name"] == sc.pod_name
    assert cs["restartCount"] == 0 and cs["name"] == "app"
    # The name from the pod spec, not the image ID kubelet created it with.
    assert cs["image"] == image
    assert cs["imageID"] == f"{registry_server.host}/{repo}@{img.manifest_digest}"
    assert cs["containerID"].startswith("edgecri://")
    cid = cs["containerID"][len("edgecri://"):]

    [cri_image] = env.e.images().ListImages(pb.ListImagesRequest(), timeout=10).images
    assert cri_image.id == img.config_digest and list(cri_image.repo_tags) == [image]
    assert "rpc=PullImage: done status=OK" in env.e.log()

    [sandbox] = sc.cri_pods()
    assert sandbox.state == pb.SANDBOX_READY
    assert sandbox.metadata.name == sc.pod_name and sandbox.metadata.uid == sc.uid
    assert sandbox.labels["io.kubernetes.pod.uid"] == sc.uid
    st, _ = env.status(sandbox.id)
    assert pod["status"]["podIP"] == st.network.ip and ipaddress.ip_address(st.network.ip) in POD_CIDR

    [c] = sc.cri_containers()
    assert (c.id, c.pod_sandbox_id, c.state, c.metadata.name, c.metadata.attempt) == (
        cid, sandbox.id, pb.CONTAINER_RUNNING, "app", 0)

    # -- the CRI log file kubelet asked for -----------------------------------------
    log_dir = pod_log_dir(NAMESPACE, sc.pod_name, sc.uid)
    status0, info0 = sc.info(cid)
    assert status0.log_path == os.path.join(log_dir, "app", "0.log")
    wait(lambda: len(ticks(sc, status0.log_path)) >= 3, "output in the CRI log", sc)
    out = log_text(log_of(sc, status0.log_path))
    assert out[:2] == ["started", f"tick 0 {PAD}"], out[:3]
    links = container_log_links(sc.mounts, NAMESPACE, sc.pod_name)
    assert [os.readlink(link) for link in links] == [status0.log_path]
    # kubelet reads it back for `kubectl logs`.
    shown = kubelet.get_secure(f"/containerLogs/{NAMESPACE}/{sc.pod_name}/app").decode().splitlines()
    assert shown[:2] == ["started", f"tick 0 {PAD}"], shown[:3]

    # -- kubelet's stats come from edgecri (ListContainerStats, ImageFsInfo) --------------
    def app_stats():
        try:
            summary = json.loads(kubelet.get("/stats/summary"))
        except OSError:
            return None
        for p in summary.get("pods") or []:
            if p["podRef"]["uid"] == sc.uid:
                for c in p.get("containers") or []:
                    if c["name"] == "app" and "cpu" in c and "memory" in c:
                        return summary, c
        return None

    summary, app = wait(app_stats, "the container in kubelet's /stats/summary", sc)
    assert app["cpu"]["usageCoreNanoSeconds"] > 0 and app["memory"]["workingSetBytes"] > 0
    assert app["rootfs"]["usedBytes"] > 0 and app["logs"]["usedBytes"] > 0
    assert summary["node"]["runtime"]["imageFs"]["usedBytes"] > 0

    # -- no process per container but the workload -------------------------------------
    workload0 = info0["pid"]
    assert_only_workload(sc, sandbox.id, workload0, env.e.proc.pid)

    # -- exec liveness probe: passes while /tmp/healthy exists ------------------------
    seen = sc.probes_seen(cid)
    wait(lambda: sc.probes_seen(cid) >= seen + 2, "kubelet's probe to run in the container", sc)
    assert sc.container_status()["restartCount"] == 0

    # ... fails once the test removes it: kubelet restarts the container.
    sc.exec(cid, "rm", "/tmp/healthy")

    def restarted():
        s = sc.container_status()
        return s if s and s["restartCount"] == 1 else None

    cs = wait(restarted, "kubelet to restart the container after its probe failed", sc)
    term = cs["lastState"]["terminated"]
    assert term["containerID"] == f"edgecri://{cid}"
    assert term["exitCode"] == 0 and term["reason"] == "Completed"  # the TERM trap ran
    cid1 = cs["containerID"][len("edgecri://"):]
    assert cid1 != cid
    states = {x.id: (x.state, x.metadata.attempt) for x in sc.cri_containers()}
    assert states == {cid: (pb.CONTAINER_EXITED, 0), cid1: (pb.CONTAINER_RUNNING, 1)}
    out = log_text(log_of(sc, status0.log_path))
    assert out[-1] == "stopping" and ticks(sc, status0.log_path) == list(range(len(out) - 2))
    status1, info1 = sc.info(cid1)
    assert status1.log_path == os.path.join(log_dir, "app", "1.log")
    wait(lambda: "started" in log_text(log_of(sc, status1.log_path)), "the new container's output", sc)
    previous = kubelet.get_secure(f"/containerLogs/{NAMESPACE}/{sc.pod_name}/app?previous=true").decode()
    assert previous.splitlines()[-1] == "stopping"
    workload1 = info1["pid"]
    wait(lambda: not pid_alive(workload0), "the first workload to be gone", sc)
    assert_only_workload(sc, sandbox.id, workload1, env.e.proc.pid)

    # -- edgecri killed and started again: the container runs on ------------------------
    ticks_before = len(ticks(sc, status1.log_path))
    probes_before = sc.probes_seen(cid1)
    assert env.e.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(2)  # kubelet notices: its calls fail meanwhile
    assert pid_alive(workload1)
    env.start()
    # kubelet reconnects on its own: its probe calls reach the new edgecri.
    wait(lambda: sc.probes_seen(cid1) >= probes_before + 3, "kubelet's probes through the new edgecri", sc)
    status1b, info1b = sc.info(cid1)
    assert status1b.state == pb.CONTAINER_RUNNING and info1b["pid"] == workload1
    cs = wait(sc.container_status, "kubelet to report the container running", sc)
    assert cs["restartCount"] == 1 and cs["containerID"] == f"edgecri://{cid1}"
    assert sc.kubelet_pod()["status"]["phase"] == "Running"
    assert [p.id for p in sc.cri_pods()] == [sandbox.id]
    # The output written while edgecri was away and after it came back
    # follows in the same log: nothing lost, nothing twice.
    wait(lambda: len(ticks(sc, status1.log_path)) >= ticks_before + 20, "output after the restart", sc)
    # kubelet rotated the log meanwhile (ReopenContainerLog), as often as it
    # grew past 8 KiB.
    wait(lambda: glob.glob(sc.mounts.host_path(status1.log_path) + ".*"), "kubelet to rotate the log", sc,
         timeout=40)
    assert "rpc=ReopenContainerLog: done status=OK" in env.e.log()
    seen = ticks(sc, status1.log_path)
    assert seen == list(range(len(seen))), "lines lost or repeated"
    assert log_text(log_of(sc, status1.log_path))[0] == "started"
    with open(f"/proc/{workload1}/stat") as f:
        # Its parent died: the reaper adopted it; still no shim in between.
        assert int(f.read().rsplit(") ", 1)[1].split()[1]) == os.getpid()
    assert workload1 not in {pid for pid, _ in children_of(env.e.proc.pid)}

    # -- the manifest goes: kubelet stops and removes the pod ---------------------------
    os.unlink(os.path.join(kubelet.manifests, "pod.json"))
    wait(lambda: sc.kubelet_pod() is None, "kubelet to drop the pod", sc)
    wait(lambda: reap(workload1), "the workload to end", sc)
    # Dead containers and the sandbox go at kubelet's next garbage
    # collection (once a minute; not configurable in 1.20).
    wait(lambda: not sc.cri_pods() and not sc.cri_containers(), "kubelet to remove the pod from edgecri", sc,
         timeout=90)
    wait(lambda: not os.path.exists(sc.mounts.host_path(log_dir)), "kubelet to remove the pod's log directory", sc,
         timeout=30)
    assert container_log_links(sc.mounts, NAMESPACE, sc.pod_name) == []
    assert not pid_alive(workload0) and not pid_alive(workload1)
    assert cgroup_dirs(f"/edgecri/{sandbox.id}") == []
    # kubelet still runs the node: nothing else went wrong meanwhile.
    assert kubelet.proc.poll() is None

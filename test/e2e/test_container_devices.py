"""Device access on the cgroup v2 side: the eBPF device filter edgecri
attaches to a container's cgroup in the cgroup2 hierarchy (the whole tree on
pure v2, the cgroup2 mount beside the v1 controllers on a hybrid node), an
allow-all one for a privileged container, a requested device held to its
permissions, and the program gone with the container's cgroup.

Device numbers with no driver behind them tell the filter's answer apart
from the device's: opening one the filter allows fails with ENXIO ("No such
device or address"), one it refuses with EPERM."""
import json
import os
import subprocess
import time

import pytest

import api_pb2 as pb
from ctrtest import pod_env, container_config, create, log_text, read_log, rt, wait_state

ENXIO = "No such device or address"
EPERM = "Operation not permitted"


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


CGROUP2 = cgroup2_mount()
pytestmark = pytest.mark.skipif(CGROUP2 is None, reason="no cgroup2 hierarchy mounted: nothing to attach to")


def free_char_major():
    """A character major no driver registered (/proc/devices), from the
    range the kernel keeps for local use."""
    used = set()
    with open("/proc/devices") as f:
        for line in f:
            if line.startswith("Block"):
                break
            parts = line.split()
            if parts and parts[0].isdigit():
                used.add(int(parts[0]))
    for major in range(234, 255):
        if major not in used:
            return major
    pytest.skip("every local character major has a driver on this machine")


def device_programs(cgroup_dir):
    """The device programs attached to the cgroup itself (bpftool's view)."""
    out = subprocess.run(["bpftool", "-j", "cgroup", "list", cgroup_dir], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [p for p in json.loads(out.stdout or "[]") if p.get("attach_type") in ("device", "cgroup_device")]


def program_exists(prog_id):
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True).returncode == 0


@pytest.fixture
def env(make_edgecri, workdir):
    yield from pod_env(make_edgecri, workdir)


def start_container(env, name, command, **kw):
    e, pod_id, cfg, _ = env
    cid = create(e, pod_id, cfg, container_config(name, command=command, log_path=f"{name}.log", **kw))
    rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    return cid


def cgroup_dir(env, cid):
    e = env[0]
    info = rt(e).ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10).info
    return CGROUP2 + json.loads(info["info"])["cgroupPath"]


def run(env, name, script, **kw):
    e, _, _, log_dir = env
    cid = start_container(env, name, ["sh", "-c", script], **kw)
    st = wait_state(e, cid, pb.CONTAINER_EXITED)
    lines = read_log(os.path.join(log_dir, f"{name}.log"))
    return st, log_text(lines) + log_text(lines, "stderr")


def privileged():
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(privileged=True))


def test_filter_attached_and_gone_with_the_container(env):
    e = env[0]
    cid = start_container(env, "sleeper", ["sleep", "300"])
    wait_state(e, cid, pb.CONTAINER_RUNNING)
    d = cgroup_dir(env, cid)
    progs = device_programs(d)
    assert len(progs) == 1, progs
    assert progs[0]["name"] == "edgecri_devices" and progs[0]["attach_flags"] == "multi", progs
    prog_id = progs[0]["id"]
    # Nothing of edgecri's holds the program: the cgroup alone does.
    daemon_fds = [os.readlink(f"/proc/{e.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{e.proc.pid}/fd")]
    assert not [t for t in daemon_fds if "bpf-prog" in t], daemon_fds

    rt(e).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    rt(e).RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    deadline = time.monotonic() + 10
    while (os.path.exists(d) or program_exists(prog_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(d), f"{d} outlived the container"
    assert not program_exists(prog_id), f"program {prog_id} outlived the container's cgroup"


def test_privileged_container_gets_an_allow_all_filter(env):
    e = env[0]
    major = free_char_major()
    cid = start_container(env, "priv", ["sleep", "300"], linux=privileged())
    wait_state(e, cid, pb.CONTAINER_RUNNING)
    assert len(device_programs(cgroup_dir(env, cid))) == 1
    rt(e).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    # Any node opens as far as the filter goes.
    st, out = run(env, "priv-open", f"mknod /tmp/x c {major} 0 && cat /tmp/x", linux=privileged())
    assert ENXIO in " ".join(out), out


def test_requested_device_held_to_its_permissions(env, workdir):
    major = free_char_major()
    node = os.path.join(workdir, "mydev")
    os.mknod(node, 0o666 | 0o020000, os.makedev(major, 0))
    script = ("cat /dev/mine; echo x > /dev/mine; "
              f"mknod /dev/other c {major} 1 && cat /dev/other")
    st, out = run(env, "ro", script, devices=[pb.Device(container_path="/dev/mine", host_path=node, permissions="r")])
    text = "\n".join(out)
    # Read: the filter lets it through to the missing driver. Write: refused.
    # Another minor of the same major, made inside: refused.
    assert [l for l in out if "/dev/mine" in l and ENXIO in l] and [l for l in out if "/dev/mine" in l and EPERM in l], text
    assert [l for l in out if "/dev/other" in l and EPERM in l], text

    st, out = run(env, "rw", "echo x > /dev/mine",
                  devices=[pb.Device(container_path="/dev/mine", host_path=node, permissions="rw")])
    assert [l for l in out if "/dev/mine" in l and ENXIO in l], out

"""How a container is set up, seen from inside: the standard /dev nodes and
mounts, the pod's files, devices, hostile image symlinks under mount
targets, PID namespace modes, oom_score_adj, cgroup limits, and a start that
fails for a real reason."""
import os

import grpc
import pytest

import api_pb2 as pb
from ctrtest import (pod_env, container_config, create, import_image, log_text, pod_config, rt, run_pod, run_to_exit, start,
                     status, wait_state)
from registry import Layer, Symlink, busybox_image

EVIL_IMAGE = "example.test/evil:1"


@pytest.fixture
def env(make_edgecri, workdir):
    yield from pod_env(make_edgecri, workdir,
                       dns_config=pb.DNSConfig(servers=["10.0.0.10"], searches=["svc.local"]))


def run(env, name, command, **kw):
    e, pod_id, cfg, log_dir = env
    _, st, lines = run_to_exit(e, pod_id, cfg, name, command, log_dir, **kw)
    return st, log_text(lines), log_text(lines, "stderr")


def test_standard_dev_and_pod_files(env):
    script = ("for n in null zero full random urandom tty ptmx; do test -e /dev/$n && echo $n; done; "
              "grep -E ' /dev/(pts|mqueue|shm) ' /proc/self/mountinfo | cut -d' ' -f5 | sort; "
              "cat /etc/resolv.conf; grep -c localhost /etc/hosts; cat /etc/hostname")
    st, out, err = run(env, "dev", ["sh", "-c", script])
    assert st.exit_code == 0, err
    assert out[:7] == ["null", "zero", "full", "random", "urandom", "tty", "ptmx"]
    assert out[7:10] == ["/dev/mqueue", "/dev/pts", "/dev/shm"]
    assert "nameserver 10.0.0.10" in out and "search svc.local" in out
    # Host network pod: the host's name.
    assert out[-1] == open("/proc/sys/kernel/hostname").read().strip()


def test_device(env):
    dev = pb.Device(container_path="/dev/mine", host_path="/dev/zero", permissions="rwm")
    st, out, err = run(env, "devs", ["sh", "-c", "test -c /dev/mine && head -c 4 /dev/mine | wc -c"], devices=[dev])
    assert st.exit_code == 0 and out == ["4"], err


def test_device_cgroup_limits_other_devices(env):
    """CAP_MKNOD lets a container make any node; the devices cgroup (v1) or
    the eBPF device filter (v2) is what keeps it from opening one it was not
    given."""
    with open("/proc/self/mounts") as f:
        cgroup_types = {line.split()[2] for line in f} & {"cgroup", "cgroup2"}
    if not os.path.exists("/sys/fs/cgroup/devices") and "cgroup2" not in cgroup_types:
        pytest.skip("neither a cgroup v1 devices controller nor a cgroup2 hierarchy on this machine")
    # /dev/zero's numbers under another name are allowed (c 1:5 is in the
    # default set); loop0's (b 7:0, openable by root without capabilities)
    # are not.
    script = ("mknod /tmp/z c 1 5 && head -c 1 /tmp/z | wc -c; mknod /tmp/l b 7 0 && "
              "( (exec 3</tmp/l) 2>/dev/null && echo opened || echo denied)")
    st, out, err = run(env, "devcg", ["sh", "-c", script])
    assert out == ["1", "denied"], (out, err)
    st, out, err = run(env, "devcg-priv", ["sh", "-c", script], linux=pb.LinuxContainerConfig(
        security_context=pb.LinuxContainerSecurityContext(privileged=True)))
    assert out == ["1", "opened"], (out, err)


def test_missing_device_is_an_error(env):
    e, pod_id, cfg, _ = env
    dev = pb.Device(container_path="/dev/mine", host_path="/dev/does-not-exist", permissions="rwm")
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("d", devices=[dev]))
    assert "/dev/does-not-exist" in err.value.details()


def test_hostile_symlink_cannot_redirect_a_mount(env, workdir):
    """The image points /mnt/escape at a host path; the mount must land
    inside the container's root, never on the host."""
    e, pod_id, cfg, log_dir = env
    target = os.path.join(workdir, "escaped")
    os.makedirs(target)
    evil = busybox_image(extra_layers=[Layer([Symlink("/mnt/escape", "/../../../../../../.." + target)])])
    import_image(e, evil, EVIL_IMAGE)
    src = os.path.join(workdir, "payload")
    os.makedirs(src)
    with open(os.path.join(src, "marker"), "w") as f:
        f.write("payload\n")
    st, out, err = run(env, "evil", ["sh", "-c", "cat /mnt/escape/marker"], image=EVIL_IMAGE,
                       mounts=[pb.Mount(container_path="/mnt/escape", host_path=src, readonly=True)])
    # Inside, the mount is where the symlink resolves within the root...
    assert out == ["payload"], err
    # ...and on the host nothing was mounted over the symlink's target.
    assert os.listdir(target) == []
    with open("/proc/self/mountinfo") as f:
        assert not any(f" {target} " in line for line in f)


def test_pid_namespace_modes(env):
    e, pod_id, cfg, log_dir = env
    # Per container (the default): our process is pid 1.
    _, out, _ = run(env, "own", ["sh", "-c", "echo $$"])
    assert out == ["1"]
    # The host's: a host pid.
    host = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pb.NODE)))
    _, out, _ = run(env, "host", ["sh", "-c", "echo $$"], linux=host)
    assert int(out[0]) > 1


def test_pod_shared_pid_namespace(make_edgecri, workdir):
    e = start(make_edgecri)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir)
    cfg = pod_config(log_dir=log_dir, pid=pb.POD)
    pod_id = run_pod(e, cfg)
    shared = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pb.POD)))
    a = create(e, pod_id, cfg, container_config("a", command=["sleep", "1000"], linux=shared))
    rt(e).StartContainer(pb.StartContainerRequest(container_id=a), timeout=30)
    wait_state(e, a, pb.CONTAINER_RUNNING)
    _, st, lines = run_to_exit(e, pod_id, cfg, "b", ["sh", "-c", "ps -o pid,args; echo self=$$"], log_dir,
                               linux=shared)
    out = log_text(lines)
    # The other container's sleep is visible; neither of us is pid 1 (the
    # pod's init is).
    assert any("sleep 1000" in l for l in out), out
    assert out[-1] != "self=1"
    rt(e).RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def test_oom_score_adj(env):
    res = pb.LinuxContainerResources(oom_score_adj=500)
    _, out, _ = run(env, "oom500", ["cat", "/proc/self/oom_score_adj"], linux=pb.LinuxContainerConfig(resources=res))
    assert out == ["500"]
    own = int(open("/proc/self/oom_score_adj").read())
    res = pb.LinuxContainerResources(oom_score_adj=-900)
    _, out, _ = run(env, "oomlow", ["cat", "/proc/self/oom_score_adj"], linux=pb.LinuxContainerConfig(resources=res))
    # Lowering needs CAP_SYS_RESOURCE: where we lack it (this machine), the
    # value is clamped to our own, as containerd's restrict_oom_score_adj.
    with open("/proc/self/status") as f:
        bnd = next(int(l.split()[1], 16) for l in f if l.startswith("CapBnd:"))
    assert int(out[0]) == (-900 if bnd & (1 << 24) else max(-900, own))


def test_cpu_and_pids_limits_in_the_cgroup(env):
    res = pb.LinuxContainerResources(cpu_quota=20000, cpu_period=100000, cpu_shares=256, cpuset_cpus="0",
                                     memory_limit_in_bytes=48 << 20)
    script = ("if test -f /sys/fs/cgroup/cpu.max; then cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus "
              "/sys/fs/cgroup/memory.max; else echo v1; fi; grep Cpus_allowed_list /proc/self/status")
    st, out, err = run(env, "cpu", ["sh", "-c", script], linux=pb.LinuxContainerConfig(resources=res))
    assert st.exit_code == 0, err
    if out[0] != "v1":
        assert out[0] == "20000 100000" and out[1] == "0" and out[2] == str(48 << 20)
    assert out[-1].split()[-1] == "0"


def test_start_failure_reports_the_real_reason(env):
    e, pod_id, cfg, log_dir = env
    cid = create(e, pod_id, cfg, container_config("nope", command=["/no/such/binary"]))
    with pytest.raises(grpc.RpcError) as err:
        rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    assert "/no/such/binary" in err.value.details() and "No such file" in err.value.details()
    st = status(e, cid)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code != 0
    assert "/no/such/binary" in st.message
    cid = create(e, pod_id, cfg, container_config("noexec", command=["/etc/passwd"]))
    with pytest.raises(grpc.RpcError) as err:
        rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    assert "Permission denied" in err.value.details()

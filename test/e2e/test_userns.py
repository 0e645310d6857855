"""Pods with their own user namespace (Kubernetes' hostUsers: false).

The daemon runs in a private network namespace (podtest.PodEnv), since
these pods have their own network. Every check looks from both sides: what
the container sees (root, files owned by root) and what the host sees (an
unprivileged uid, files written as it)."""
import fcntl
import json
import os
import signal
import threading
import time

import grpc
import pytest

import api_pb2 as pb
from ctrtest import container_config, import_busybox, log_text, read_log, wait_state
from podtest import PodEnv, mountinfo_lines, pod_config

HOST_ID = 2_000_000  # the first host uid/gid of the pods' range
LENGTH = 65536
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)


@pytest.fixture
def env(make_edgecri, workdir):
    e = PodEnv(make_edgecri, workdir)
    yield e
    e.close()


@pytest.fixture
def subreaper():
    """The shared-PID pod's init outlives a killed daemon; the test reaps it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    yield
    libc.prctl(36, 0, 0, 0, 0)


def reap_when_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)


def mapping(host=HOST_ID, length=LENGTH):
    return [pb.IDMapping(container_id=0, host_id=host, length=length)]


def userns_opts(mode=pb.POD, uids=None, gids=None):
    return pb.UserNamespace(mode=mode, uids=mapping() if uids is None else uids,
                            gids=mapping() if gids is None else gids)


def userns_pod(name, log_dir="", **kw):
    cfg = pod_config(name, log_directory=log_dir, **kw)
    cfg.linux.security_context.namespace_options.userns_options.CopyFrom(userns_opts())
    return cfg


def started_env(env):
    env.start()
    import_busybox(env.e)
    return env


def create(env, pod_id, pod_cfg, cfg):
    return env.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                            sandbox_config=pod_cfg), timeout=60).container_id


def in_userns(cfg):
    """A container config as kubelet sends it for such a pod: the pod's
    namespace options, the mappings again."""
    cfg.linux.security_context.namespace_options.CopyFrom(
        pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD, userns_options=userns_opts()))
    return cfg


def idmapped(container_path, host_path, readonly=False):
    return pb.Mount(container_path=container_path, host_path=host_path, readonly=readonly,
                    uidMappings=mapping(), gidMappings=mapping())


def run(env, pod_id, pod_cfg, name, script, log_dir, **kw):
    cfg = in_userns(container_config(name, command=["sh", "-c", script], log_path=f"{name}.log", **kw))
    cid = create(env, pod_id, pod_cfg, cfg)
    env.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    return cid


def container_pid(env, cid):
    r = env.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10)
    return json.loads(r.info["info"])["pid"]


def status_ids(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def owner_userns_ino(ns_path):
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
        try:
            return os.fstat(owner).st_ino
        finally:
            os.close(owner)
    finally:
        os.close(fd)


def exec_sync(env, cid, cmd):
    r = env.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=20), timeout=30)
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


def test_status_reports_user_namespaces(env):
    env.start()
    r = env.rt.Status(pb.StatusRequest(), timeout=5)
    assert r.runtime_handlers[0].features.user_namespaces is True  # kernel 6.x, user namespaces allowed


def test_container_is_root_inside_and_nobody_outside(env, workdir):
    started_env(env)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir)
    # A volume owned by the host's root (as kubelet leaves them), idmapped;
    # and one without mappings, which root inside must not be able to write.
    data = os.path.join(workdir, "data")
    plain = os.path.join(workdir, "plain")
    for d in (data, plain):
        os.makedirs(d)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "owned"), "w") as f:
            f.write("x\n")
        os.chmod(os.path.join(d, "owned"), 0o644)
    pod_cfg = userns_pod("userns", log_dir=log_dir)
    pod_id = env.run(pod_cfg)
    pod_dir = os.path.join(env.state, "pods", pod_id)
    userns_ino = os.stat(os.path.join(pod_dir, "ns", "user")).st_ino
    # The pod's network, IPC and UTS namespaces belong to its user namespace.
    for ns in ("net", "ipc", "uts"):
        assert owner_userns_ino(os.path.join(pod_dir, "ns", ns)) == userns_ino, ns
    u = env.status(pod_id)[0].linux.namespaces.options.userns_options
    assert u.mode == pb.POD
    assert [(m.container_id, m.host_id, m.length) for m in list(u.uids) + list(u.gids)] == [(0, HOST_ID, LENGTH)] * 2

    script = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
              "stat -c '%u:%g' / /bin/busybox /etc/passwd /data/owned /dev /dev/shm; "
              "touch /newfile && stat -c '%u:%g' /newfile; echo hi > /data/from-container; "
              "(echo y >> /plain/owned) 2>/dev/null && echo plain-written || echo plain-denied; "
              "stat -c '%u' /plain/owned; exec sleep 300")
    cid = run(env, pod_id, pod_cfg, "who", script, log_dir,
              mounts=[idmapped("/data", data), pb.Mount(container_path="/plain", host_path=plain)])
    wait_state(env.e, cid, pb.CONTAINER_RUNNING)
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        lines = log_text(read_log(os.path.join(log_dir, "who.log")))
        if len(lines) >= 13:
            break
        time.sleep(0.1)
    assert lines[:4] == ["0", "0", f"{0:>10} {HOST_ID:>10} {LENGTH:>10}", f"{0:>10} {HOST_ID:>10} {LENGTH:>10}"], lines
    # The image's files and the idmapped volume are root's inside; so are
    # /dev and /dev/shm, which edgecri mounts for the pod.
    assert lines[4:10] == ["0:0"] * 6, lines
    assert lines[10] == "0:0", lines  # a new file in the root filesystem
    assert lines[11] == "plain-denied", lines  # the host's root is not the container's
    assert lines[12] == "65534", lines  # and shows as the overflow id

    # The host's view: an unprivileged process, files written as it.
    pid = container_pid(env, cid)
    assert status_ids(pid, "Uid") == [HOST_ID] * 4
    assert status_ids(pid, "Gid") == [HOST_ID] * 4
    assert os.stat(f"/proc/{pid}/ns/user").st_ino == userns_ino
    upper_file = os.path.join(env.root, "containers", cid, "upper", "newfile")
    st = os.stat(upper_file)
    assert (st.st_uid, st.st_gid) == (HOST_ID, HOST_ID)
    # Through the idmapped volume, the container's root writes as the
    # host's root: the volume keeps one owner whatever the pod's range.
    st = os.stat(os.path.join(data, "from-container"))
    assert (st.st_uid, st.st_gid) == (0, 0)
    with open(os.path.join(plain, "owned")) as f:
        assert f.read() == "x\n"

    # ExecSync runs in the same user namespace, as the same user.
    code, out, _ = exec_sync(env, cid, ["sh", "-c", "id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map"])
    assert code == 0
    uid, ns, uid_map = out.split("\n", 2)
    assert uid == "0" and ns == os.readlink(f"/proc/{pid}/ns/user")
    assert uid_map.split() == ["0", str(HOST_ID), str(LENGTH)]

    env.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    env.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    # No idmapped layer mount stays behind, nor the container's overlay.
    assert mountinfo_lines(os.path.join(env.root, "containers", cid)) == []


def test_capabilities_count_inside_only(env, workdir):
    """CAP_SYS_ADMIN in the pod's user namespace mounts in the container's
    own mount namespace, and still cannot uncover what edgecri mounted."""
    started_env(env)
    pod_cfg = userns_pod("caps")
    pod_id = env.run(pod_cfg)
    cfg = in_userns(container_config("admin", command=["sleep", "300"]))
    cfg.linux.security_context.capabilities.CopyFrom(pb.Capability(add_capabilities=["SYS_ADMIN", "NET_ADMIN"]))
    cfg.linux.security_context.seccomp.CopyFrom(pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))
    cid = create(env, pod_id, pod_cfg, cfg)
    env.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(env.e, cid, pb.CONTAINER_RUNNING)
    code, out, err = exec_sync(env, cid, ["sh", "-c", "mkdir -p /mnt/t && busybox mount -t tmpfs none /mnt/t && echo mounted"])
    assert (code, out.strip()) == (0, "mounted"), err
    assert mountinfo_lines("/mnt/t") == []  # nothing reached the host
    # Mounts made for the container are locked: unmounting one fails.
    code, _, err = exec_sync(env, cid, ["busybox", "umount", "/etc/hostname"])
    assert code != 0 and ("Invalid argument" in err or "not permitted" in err), err
    # Its own network namespace: root inside may take lo down (and up).
    code, out, err = exec_sync(env, cid, ["sh", "-c", "busybox ip link set lo down && busybox ip link set lo up && echo ok"])
    assert (code, out.strip()) == (0, "ok"), err
    # The host's files stay out of reach: /proc/sys is read-only, and the
    # host's kernel settings belong to the host's user namespace anyway.
    code, _, _ = exec_sync(env, cid, ["sh", "-c", "echo 1 > /proc/sys/kernel/sysrq"])
    assert code != 0


def test_refused_requests_leave_nothing(env, workdir):
    started_env(env)

    def refused(cfg):
        with pytest.raises(grpc.RpcError) as ei:
            env.run(cfg)
        return ei.value.code(), ei.value.details()

    cfg = userns_pod("bad")
    cfg.linux.security_context.namespace_options.userns_options.mode = pb.CONTAINER
    assert refused(cfg)[0] == grpc.StatusCode.UNIMPLEMENTED
    cfg = userns_pod("bad")
    del cfg.linux.security_context.namespace_options.userns_options.uids[:]
    code, msg = refused(cfg)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "uid" in msg, msg
    cfg = userns_pod("bad")
    cfg.linux.security_context.namespace_options.userns_options.gids.append(
        pb.IDMapping(container_id=70000, host_id=HOST_ID + 100, length=10))
    code, msg = refused(cfg)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "overlap" in msg, msg
    cfg = userns_pod("bad", network=pb.NODE)
    code, msg = refused(cfg)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "host" in msg, msg
    cfg = userns_pod("bad")
    cfg.linux.security_context.namespace_options.userns_options.uids[0].container_id = 1
    assert refused(cfg)[0] == grpc.StatusCode.INVALID_ARGUMENT
    cfg = userns_pod("bad")
    cfg.linux.security_context.privileged = True
    assert refused(cfg)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert len(env.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items) == 0
    pods_dir = os.path.join(env.state, "pods")
    assert not os.path.exists(pods_dir) or os.listdir(pods_dir) == []

    # Containers: their mappings must be the pod's, their user mapped,
    # and idmapped mounts need a pod with a user namespace.
    pod_cfg = userns_pod("ok")
    pod_id = env.run(pod_cfg)

    def create_refused(pod, cfg, pcfg):
        with pytest.raises(grpc.RpcError) as ei:
            create(env, pod, pcfg, cfg)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()
        return ei.value.details()

    cfg = in_userns(container_config("c", command=["true"]))
    cfg.linux.security_context.namespace_options.userns_options.uids[0].host_id = HOST_ID + 1
    assert "differ" in create_refused(pod_id, cfg, pod_cfg)
    cfg = in_userns(container_config("c", command=["true"]))
    cfg.linux.security_context.run_as_user.value = LENGTH + 5
    assert "not mapped" in create_refused(pod_id, cfg, pod_cfg)
    cfg = in_userns(container_config("c", command=["true"]))
    cfg.linux.security_context.namespace_options.userns_options.CopyFrom(pb.UserNamespace(mode=pb.NODE))
    assert "host" in create_refused(pod_id, cfg, pod_cfg)
    host_pod_cfg = pod_config("hostusers")
    host_pod = env.run(host_pod_cfg)
    cfg = container_config("c", command=["true"], mounts=[idmapped("/data", workdir)])
    assert "user namespace" in create_refused(host_pod, cfg, host_pod_cfg)
    assert len(env.rt.ListContainers(pb.ListContainersRequest(), timeout=10).containers) == 0


def test_shared_pid_pod_survives_a_restart(env, workdir, subreaper):
    started_env(env)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir)
    pod_cfg = userns_pod("shared", log_dir=log_dir, pid=pb.POD)
    pod_id = env.run(pod_cfg)
    cfg = in_userns(container_config("sleeper", command=["sh", "-c", "echo up; exec sleep 300"],
                                     log_path="sleeper.log"))
    cfg.linux.security_context.namespace_options.pid = pb.POD
    cid = create(env, pod_id, pod_cfg, cfg)
    env.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(env.e, cid, pb.CONTAINER_RUNNING)
    pid = container_pid(env, cid)
    # The pod's init runs as the pod's root, unprivileged on the host.
    code, out, _ = exec_sync(env, cid, ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; stat -c %u /proc/1"])
    assert code == 0 and out.split("\n")[0].startswith("edgecri pod-init") and out.split("\n")[1] == "0", out
    init_pid = [p for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/ns/pid")
                and os.stat(f"/proc/{p}/ns/pid").st_ino == os.stat(f"/proc/{pid}/ns/pid").st_ino
                and int(p) != pid]
    assert init_pid, "no init found"
    assert status_ids(int(init_pid[0]), "Uid") == [HOST_ID] * 4
    with open(f"/proc/{init_pid[0]}/status") as f:
        cap_eff = [line for line in f if line.startswith("CapEff:")][0].split()[1]
    assert int(cap_eff, 16) == 0

    env.e.proc.send_signal(signal.SIGKILL)
    env.e.proc.wait()
    env.e.logfile.close()
    env.e.proc = None
    env.start()
    st, _ = env.status(pod_id)
    assert st.state == pb.SANDBOX_READY
    assert env.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=10).status.state == \
        pb.CONTAINER_RUNNING
    code, out, _ = exec_sync(env, cid, ["id", "-u"])
    assert (code, out.strip()) == (0, "0")
    # The container was the first daemon's child, so this test (its
    # subreaper) reaps it, as systemd would: a PID namespace's init only
    # finishes exiting once every process in it is reaped.
    reaper = threading.Thread(target=reap_when_gone, args=(pid,), daemon=True)
    reaper.start()
    env.stop(pod_id)
    env.remove(pod_id)
    reaper.join(30)
    assert mountinfo_lines(os.path.join(env.state, "pods", pod_id)) == []
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"

"""What a container process gets, seen from inside: the image config merged
with the CRI config, capabilities, seccomp (RuntimeDefault, Localhost,
Unconfined), no_new_privs, masked and read-only paths, privileged mode, a
read-only root, bind mounts and their propagation, and memory limits.

A small static C program (test/e2e/probe/probe.c, compiled by the test with
Debian's gcc) makes single system calls by name inside the container."""
import json
import os
import subprocess

import grpc
import pytest

import api_pb2 as pb
from ctrtest import (rt, container_config, create, import_image, log_text, pod_config, run_pod, run_to_exit, start,
                     status, wait_state)
from registry import File, Layer, busybox_image

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_IMAGE = "example.test/probe:1"
MERGE_IMAGE = "example.test/merge:1"

# containerd's default capability set (pkg/oci defaults), by bit number.
DEFAULT_CAPS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
                "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
                "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), os.path.join(HERE, "probe", "probe.c")], check=True)
    return out.read_bytes()


@pytest.fixture
def env(make_edgecri, workdir, probe_binary):
    e = start(make_edgecri)
    probe = Layer([File("/usr/bin/probe", probe_binary, mode=0o755)])
    import_image(e, busybox_image(extra_layers=[probe]), PROBE_IMAGE)
    merge = busybox_image(config={"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["from-cmd"],
                                  "Env": ["PATH=/bin:/usr/bin", "FOO=image", "BAR=image"],
                                  "WorkingDir": "/etc", "User": "edge"})
    import_image(e, merge, MERGE_IMAGE)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pod_id = run_pod(e, cfg)
    yield e, pod_id, cfg, log_dir
    if e.proc is not None:
        rt(e).RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def run(env, name, command, **kw):
    e, pod_id, cfg, log_dir = env
    kw.setdefault("image", PROBE_IMAGE)
    _, st, lines = run_to_exit(e, pod_id, cfg, name, command, log_dir, **kw)
    return st, log_text(lines), log_text(lines, "stderr")


def security(**kw):
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**kw))


def cap_eff(lines):
    for line in lines:
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff in {lines}")


def own_bounding_set():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def bits(*names):
    return sum(1 << DEFAULT_CAPS[n] for n in names)


# --- image config merged with the CRI config ---------------------------------


@pytest.mark.parametrize("command,args,want", [
    ([], [], "ep from-cmd"),
    ([], ["a", "b"], "ep a b"),
    (["/bin/echo", "own"], [], "own"),
    (["/bin/echo"], ["x"], "x"),
])
def test_entrypoint_cmd_merge(env, command, args, want):
    st, out, _ = run(env, "merge", command, args=args, image=MERGE_IMAGE)
    assert st.exit_code == 0 and out == [want]


def test_env_workdir_user_from_image(env):
    st, out, _ = run(env, "img", ["sh", "-c", "echo $FOO $BAR; pwd; id -u"], image=MERGE_IMAGE,
                     envs=[pb.KeyValue(key="FOO", value=b"cri")])
    assert out == ["cri image", "/etc", "1000"]
    assert st.user.linux.uid == 1000


def test_run_as_group_without_user_refused(env):
    e, pod_id, cfg, _ = env
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("g", image=PROBE_IMAGE,
                                                linux=security(run_as_group=pb.Int64Value(value=5))))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RunAsGroup" in err.value.details()


def test_unknown_run_as_username_refused(env):
    e, pod_id, cfg, _ = env
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("u", image=PROBE_IMAGE, linux=security(run_as_username="nosuch")))
    assert "nosuch" in err.value.details()


# --- capabilities, seccomp, no_new_privs ---------------------------------------


RUNTIME_DEFAULT = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)


def test_default_capabilities_and_seccomp(env):
    cmd = ["sh", "-c", "grep CapEff /proc/self/status; probe unshare keyctl nnp; true"]
    _, out, _ = run(env, "def", cmd, linux=security(seccomp=RUNTIME_DEFAULT))
    assert cap_eff(out) == bits(*DEFAULT_CAPS)
    # containerd's default profile refuses both; no_new_privs is off by
    # default (kubelet's allowPrivilegeEscalation defaults to true).
    assert "unshare: EPERM" in out and "keyctl: EPERM" in out and "nnp: ok 0" in out
    # No profile asked for is unconfined, as in containerd (kubelet sends
    # RuntimeDefault when its seccompDefault is on): keyctl works then.
    _, out, _ = run(env, "none", cmd)
    assert "unshare: EPERM" in out and out[2].startswith("keyctl: ok")


def test_capabilities_add_drop(env):
    sc = security(capabilities=pb.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]))
    _, out, _ = run(env, "caps", ["sh", "-c", "grep CapEff /proc/self/status; probe chown"], linux=sc)
    assert cap_eff(out) == bits("CAP_NET_BIND_SERVICE")
    assert "chown: EPERM" in out
    sc = security(capabilities=pb.Capability(drop_capabilities=["CHOWN", "CAP_KILL"]))
    _, out, _ = run(env, "caps2", ["sh", "-c", "grep CapEff /proc/self/status"], linux=sc)
    assert cap_eff(out) == bits(*DEFAULT_CAPS) & ~bits("CAP_CHOWN", "CAP_KILL")


def test_unknown_capability_refused(env):
    e, pod_id, cfg, _ = env
    sc = security(capabilities=pb.Capability(add_capabilities=["CAP_FLY"]))
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("c", image=PROBE_IMAGE, linux=sc))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "CAP_FLY" in err.value.details()


def test_no_new_privs(env):
    _, out, _ = run(env, "nnp", ["probe", "nnp"], linux=security(no_new_privs=True))
    assert out == ["nnp: ok 1"]


def test_seccomp_unconfined_and_localhost(env, workdir):
    _, out, _ = run(env, "unconf", ["probe", "keyctl"],
                    linux=security(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)))
    assert out[0].startswith("keyctl: ok")
    profile = os.path.join(workdir, "profile.json")
    with open(profile, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}, f)
    sp = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=profile)
    _, out, _ = run(env, "local", ["probe", "keyctl", "sethostname"], linux=security(seccomp=sp))
    assert out[0].startswith("keyctl: ok") and out[1] == "sethostname: ENOSYS"


def test_seccomp_localhost_missing_profile(env, workdir):
    e, pod_id, cfg, _ = env
    sp = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost,
                            localhost_ref=os.path.join(workdir, "nope.json"))
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("s", image=PROBE_IMAGE, linux=security(seccomp=sp)))
    assert "nope.json" in err.value.details()


def test_masked_and_readonly_paths(env):
    # /proc/kcore is not in this kernel; timer_list (a file) and acpi (a
    # directory) are masked by containerd's defaults too. /proc/sys is seen
    # in mountinfo, never written: a privileged container on the host's
    # network shares the host's UTS namespace.
    script = "wc -c < /proc/timer_list; ls -A /proc/acpi | wc -l; grep ' /proc/sys ' /proc/self/mountinfo || echo none"
    _, out, err = run(env, "mask", ["sh", "-c", script])
    assert out[:2] == ["0", "0"], (out, err)
    assert "ro" in out[2].split()[5].split(","), out
    _, out, err = run(env, "unmasked", ["sh", "-c", script], linux=security(privileged=True))
    assert int(out[0]) > 0 and out[2] == "none", (out, err)


def test_privileged(env):
    script = "probe unshare keyctl mount; grep CapEff /proc/self/status; ls /dev | wc -l"
    _, out, _ = run(env, "priv", ["sh", "-c", script], linux=security(privileged=True))
    assert "unshare: ok 0" in out and out[1].startswith("keyctl: ok") and "mount: ok 0" in out
    # Every capability we hold ourselves (this machine's root lacks some).
    assert cap_eff(out) == own_bounding_set()
    # The host's devices are there.
    assert int(out[-1]) > 20


def test_readonly_rootfs(env):
    _, out, _ = run(env, "ro", ["sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro; touch /dev/shm/ok && echo shm"],
                    linux=security(readonly_rootfs=True))
    assert out == ["ro", "shm"]
    _, out, _ = run(env, "rw", ["sh", "-c", "touch /x && echo rw"])
    assert out == ["rw"]


# --- mounts ------------------------------------------------------------------------


def test_bind_mounts(env, workdir):
    src = os.path.join(workdir, "hostdir")
    os.makedirs(src)
    with open(os.path.join(src, "f"), "w") as f:
        f.write("from-host\n")
    link = os.path.join(workdir, "link")
    os.symlink(src, link)
    mounts = [pb.Mount(container_path="/data", host_path=link),
              pb.Mount(container_path="/ro", host_path=src, readonly=True)]
    _, out, _ = run(env, "binds", ["sh", "-c", "cat /data/f; echo new > /data/g; echo x > /ro/h 2>/dev/null || echo ro"],
                    mounts=mounts)
    assert out == ["from-host", "ro"]
    assert open(os.path.join(src, "g")).read() == "new\n"
    st = status(env[0], rt(env[0]).ListContainers(pb.ListContainersRequest(), timeout=10).containers[0].id)
    assert [m.container_path for m in st.mounts] == ["/data", "/ro"]


def test_missing_host_path_is_an_error(env, workdir):
    e, pod_id, cfg, _ = env
    missing = os.path.join(workdir, "not-there")
    with pytest.raises(grpc.RpcError) as err:
        create(e, pod_id, cfg, container_config("m", image=PROBE_IMAGE,
                                                mounts=[pb.Mount(container_path="/x", host_path=missing)]))
    assert missing in err.value.details()


def test_host_to_container_propagation(env, workdir):
    e, pod_id, cfg, log_dir = env
    src = os.path.join(workdir, "shared")
    os.makedirs(src)
    subprocess.run(["mount", "--bind", src, src], check=True)
    try:
        subprocess.run(["mount", "--make-shared", src], check=True)
        ccfg = container_config("prop", image=PROBE_IMAGE, log_path="prop.log",
                                command=["sh", "-c", "while ! test -e /data/sub/marker; do usleep 50000; done; echo seen"],
                                mounts=[pb.Mount(container_path="/data", host_path=src,
                                                 propagation=pb.PROPAGATION_HOST_TO_CONTAINER)])
        cid = create(e, pod_id, cfg, ccfg)
        rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
        wait_state(e, cid, pb.CONTAINER_RUNNING)
        os.makedirs(os.path.join(src, "sub"))
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", os.path.join(src, "sub")], check=True)
        with open(os.path.join(src, "sub", "marker"), "w") as f:
            f.write("x")
        st = wait_state(e, cid, pb.CONTAINER_EXITED)
        assert st.exit_code == 0
    finally:
        subprocess.run(["umount", "-R", src], check=False)


# --- resources ---------------------------------------------------------------------


def test_memory_limit_oom_killed(env):
    res = pb.LinuxContainerResources(memory_limit_in_bytes=32 << 20)
    # tail keeps an unterminated line in memory until it has all of it.
    st, _, _ = run(env, "oom", ["sh", "-c", "head -c 256m /dev/zero | tail -n 1 >/dev/null"],
                   linux=pb.LinuxContainerConfig(resources=res))
    assert st.exit_code == 137 and st.reason == "OOMKilled", (st.exit_code, st.reason, st.message)

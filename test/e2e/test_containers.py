"""Containers end to end: busybox (imported from an OCI layout tarball) run
in pods by the real daemon, checked through the CRI, the CRI log files and
/proc. Pods use the host's network here (no CNI); the network is tested in
test_pods.py."""
import json
import os
import signal
import socket
import time

import grpc
import pytest

import api_pb2 as pb
from ctrtest import (rt, IMAGE_NAME, container_config, create, log_text, pod_config, read_log, run_pod, run_to_exit,
                     start, status, wait_state)


@pytest.fixture
def daemon(make_edgecri):
    return start(make_edgecri)


@pytest.fixture
def pod(daemon, workdir):
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(daemon, cfg)
    yield pid, cfg, log_dir
    if daemon.proc is not None:
        rt(daemon).StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        rt(daemon).RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def test_run_to_completion_with_logs_and_exit_code(daemon, pod):
    pid, cfg, log_dir = pod
    cid, st, lines = run_to_exit(daemon, pid, cfg, "hello",
                                 ["sh", "-c", "echo out-line; echo err-line >&2; printf partial; exit 3"], log_dir)
    assert st.exit_code == 3
    assert st.reason == "Error"
    assert st.started_at > 0 and st.finished_at >= st.started_at
    assert log_text(lines) == ["out-line", "partial"], lines
    assert log_text(lines, "stderr") == ["err-line"]
    # The last stdout line had no newline: written as a partial line then
    # closed (containerd writes "partial" with tag F at EOF).
    assert ("stdout", "F", "partial") in lines or ("stdout", "P", "partial") in lines
    assert st.log_path == os.path.join(log_dir, "hello.log")
    assert st.image.image == IMAGE_NAME
    assert st.image_id.startswith("sha256:")


def test_exit_zero_is_completed(daemon, pod):
    pid, cfg, log_dir = pod
    _, st, _ = run_to_exit(daemon, pid, cfg, "ok", ["true"], log_dir)
    assert st.exit_code == 0 and st.reason == "Completed"


def test_environment_workdir_hostname_user(daemon, pod):
    pid, cfg, log_dir = pod
    script = "echo env=$FOO; pwd; hostname; id -u; id -g; id -G; cat /proc/self/status | grep -i ^capeff"
    _, st, lines = run_to_exit(
        daemon, pid, cfg, "env", ["sh", "-c", script], log_dir,
        envs=[pb.KeyValue(key="FOO", value=b"bar baz")], working_dir="/tmp",
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
            run_as_user=pb.Int64Value(value=1000), supplemental_groups=[7])))
    out = log_text(lines)
    assert st.exit_code == 0, out
    assert out[0] == "env=bar baz"
    assert out[1] == "/tmp"
    # A pod on the host's network shares the host's UTS namespace too.
    assert out[2] == socket.gethostname()
    assert out[3] == "1000"
    # edge's primary group from the image's /etc/passwd; groups from
    # /etc/group (video, audio) and the request's supplemental group.
    assert out[4] == "1000"
    assert set(out[5].split()) == {"1000", "44", "29", "7"}
    # Non-root: no effective capabilities.
    assert out[6].split()[1] == "0000000000000000"
    assert st.user.linux.uid == 1000 and st.user.linux.gid == 1000
    assert set(st.user.linux.supplemental_groups) >= {44, 29, 7}


def test_long_running_stop_and_remove(daemon, pod):
    pid, cfg, log_dir = pod
    ccfg = container_config("sleeper", command=["sh", "-c", "trap 'echo got-term; exit 0' TERM; "
                                                            "echo ready; while true; do sleep 0.1; done"],
                            log_path="sleeper.log")
    cid = create(daemon, pid, cfg, ccfg)
    assert status(daemon, cid).state == pb.CONTAINER_CREATED
    rt(daemon).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    st = wait_state(daemon, cid, pb.CONTAINER_RUNNING)
    info = json.loads(rt(daemon).ContainerStatus(
        pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10).info["info"])
    proc_pid = info["pid"]
    assert proc_pid > 0 and os.path.exists(f"/proc/{proc_pid}")
    deadline = time.monotonic() + 10
    while "ready" not in log_text(read_log(os.path.join(log_dir, "sleeper.log"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    listed = rt(daemon).ListContainers(pb.ListContainersRequest(), timeout=10).containers
    assert [c.id for c in listed] == [cid]
    assert listed[0].state == pb.CONTAINER_RUNNING and listed[0].pod_sandbox_id == pid
    rt(daemon).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10), timeout=30)
    st = status(daemon, cid)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 0
    assert "got-term" in log_text(read_log(os.path.join(log_dir, "sleeper.log")))
    # Stop again: nothing to do, still fine.
    rt(daemon).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10), timeout=30)
    rt(daemon).RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    with pytest.raises(grpc.RpcError) as e:
        status(daemon, cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # Removing again succeeds (kubelet retries).
    rt(daemon).RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)


def test_stop_timeout_kills(daemon, pod):
    pid, cfg, log_dir = pod
    ccfg = container_config("stubborn", command=["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
                            log_path="stubborn.log")
    cid = create(daemon, pid, cfg, ccfg)
    rt(daemon).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(daemon, cid, pb.CONTAINER_RUNNING)
    deadline = time.monotonic() + 10
    while "ready" not in log_text(read_log(os.path.join(log_dir, "stubborn.log"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    rt(daemon).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1), timeout=30)
    assert time.monotonic() - t0 >= 0.9
    st = status(daemon, cid)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 128 + signal.SIGKILL


def test_exec_sync(daemon, pod):
    pid, cfg, log_dir = pod
    ccfg = container_config("svc", command=["sleep", "1000"], log_path="svc.log",
                            envs=[pb.KeyValue(key="GREETING", value=b"hi")])
    cid = create(daemon, pid, cfg, ccfg)
    rt(daemon).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(daemon, cid, pb.CONTAINER_RUNNING)
    r = rt(daemon).ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $GREETING; echo e >&2; exit 5"]),
                                  timeout=30)
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n", b"e\n", 5), daemon.log()[-3000:]
    with pytest.raises(grpc.RpcError) as e:
        rt(daemon).ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "10"], timeout=1), timeout=30)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    rt(daemon).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    with pytest.raises(grpc.RpcError) as e:
        rt(daemon).ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"]), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_create_errors(daemon, pod):
    pid, cfg, log_dir = pod
    with pytest.raises(grpc.RpcError) as e:
        rt(daemon).CreateContainer(pb.CreateContainerRequest(pod_sandbox_id="nope", config=container_config("x"),
                                                     sandbox_config=cfg), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    bad = container_config("x")
    bad.image.image = "example.test/not/there:1"
    with pytest.raises(grpc.RpcError) as e:
        rt(daemon).CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid, config=bad, sandbox_config=cfg),
                           timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "not/there" in e.value.details()
    create(daemon, pid, cfg, container_config("dup"))
    with pytest.raises(grpc.RpcError) as e:
        create(daemon, pid, cfg, container_config("dup"))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "dup" in e.value.details()


def test_status_names_the_image_kubelet_asked_for(daemon, pod):
    """kubelet creates containers with the image ID it resolved (the pod
    spec's name goes in user_specified_image, from kubelet 1.30 on) and
    shows ContainerStatus.image as the pod's containerStatuses[].image: a
    name, never "sha256:…" (found by kubelet 1.20 in test_kubelet.py)."""
    pid, cfg, log_dir = pod
    image_id = status(daemon, create(daemon, pid, cfg, container_config("by-name"))).image_id
    assert image_id.startswith("sha256:")
    cases = {
        "by-id": (pb.ImageSpec(image=image_id), IMAGE_NAME),
        "by-bare-id": (pb.ImageSpec(image=image_id.split(":", 1)[1]), IMAGE_NAME),
        "by-id-user": (pb.ImageSpec(image=image_id, user_specified_image="busybox-alias:1"), "busybox-alias:1"),
    }
    for name, (spec, shown) in cases.items():
        cid = create(daemon, pid, cfg, pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=spec))
        st = status(daemon, cid)
        assert st.image.image == shown, name
        assert st.image_id == image_id and st.image_ref.startswith("example.test/library/busybox@sha256:")
        [listed] = rt(daemon).ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(id=cid)),
                                             timeout=10).containers
        assert listed.image.image == shown, name
    assert status(daemon, create(daemon, pid, cfg, container_config("by-name-2"))).image.image == IMAGE_NAME

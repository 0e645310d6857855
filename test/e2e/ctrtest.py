"""Helpers for the container tests: a daemon with busybox imported, pods
that use the host's network (no CNI, no traffic), containers run to
completion, and the CRI log files they write."""
import os
import subprocess
import time
import uuid

import api_pb2 as pb
from conftest import BIN
from registry import busybox_image, oci_layout_tar  # noqa: F401 (busybox_image for callers)

IMAGE_NAME = "example.test/library/busybox:1"
_IMAGE = None


def image():
    global _IMAGE
    if _IMAGE is None:
        _IMAGE = busybox_image()
    return _IMAGE


def start(make_edgecri, subdir=None, config=""):
    """A daemon with busybox imported as IMAGE_NAME. The CNI conf dir is
    private so the host's networks never matter."""
    e = make_edgecri(subdir)
    net_d = os.path.join(e.workdir, "net.d")
    os.makedirs(net_d, exist_ok=True)
    cfg = os.path.join(e.workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"cni:\n  conf_dir: {net_d}\n{config}")
    e.start(config=cfg)
    import_busybox(e)
    return e


def import_busybox(e):
    import_image(e, image(), IMAGE_NAME)


def import_image(e, img, name):
    """Imports ``img`` (a registry.Image) under ``name`` with `edgecri import`."""
    tar = os.path.join(e.workdir, name.replace("/", "_").replace(":", "_") + ".tar")
    if not os.path.exists(tar):
        oci_layout_tar(img, path=tar, image_name=name)
    out = subprocess.run([BIN, "import", "--socket", e.socket, tar], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + e.log()[-3000:]


def rt(e):
    """One RuntimeService stub per daemon process: every e.runtime() opens a
    connection, which the leak tests would count as the daemon's fds."""
    if getattr(e, "_ctr_rt_proc", None) is not e.proc:
        e._ctr_rt = e.runtime()
        e._ctr_rt_proc = e.proc
    return e._ctr_rt


def pod_config(name=None, log_dir=None, host_network=True, pid=None, **kw):
    name = name or "p-" + uuid.uuid4().hex[:8]
    md = pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default", attempt=0)
    ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                            pid=pid if pid is not None else pb.CONTAINER)
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns))
    return pb.PodSandboxConfig(metadata=md, hostname=name, log_directory=log_dir or "", linux=linux, **kw)


def run_pod(e, cfg):
    return rt(e).RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id


def pod_env(make_edgecri, workdir, **pod_kw):
    """Fixture body: a daemon with busybox and one host-network pod logging
    to <workdir>/logs; yields (daemon, pod id, pod config, log dir). The pod
    goes at teardown: containers outlive the daemon by design, and none may
    stay running on the machine."""
    e = start(make_edgecri)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir, **pod_kw)
    pod_id = run_pod(e, cfg)
    yield e, pod_id, cfg, log_dir
    if e.proc is not None:
        rt(e).RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def container_config(name, command=None, args=None, log_path=None, image=IMAGE_NAME, **kw):
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image),
                              command=command or [], args=args or [], log_path=log_path or "", **kw)


def create(e, pod_id, pod_cfg, cfg):
    return rt(e).CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg),
        timeout=60).container_id


def status(e, cid, verbose=False):
    return rt(e).ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=verbose),
                                       timeout=10).status


def wait_state(e, cid, state, timeout=20):
    deadline = time.monotonic() + timeout
    st = status(e, cid)
    while st.state != state and time.monotonic() < deadline:
        time.sleep(0.05)
        st = status(e, cid)
    assert st.state == state, f"{cid}: state {st.state}, wanted {state}\n{e.log()[-3000:]}"
    return st


def run_to_exit(e, pod_id, pod_cfg, name, command, log_dir, **kw):
    """Creates and starts a container, waits for it to exit and returns
    (id, status, log lines)."""
    cfg = container_config(name, command=command, log_path=f"{name}.log", **kw)
    cid = create(e, pod_id, pod_cfg, cfg)
    rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    st = wait_state(e, cid, pb.CONTAINER_EXITED)
    return cid, st, read_log(os.path.join(log_dir, f"{name}.log"))


def read_log(path, timeout=5):
    """The CRI log as (stream, tag, text) lines; waits for the file to appear."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = []
    with open(path, "r", errors="replace") as f:
        for line in f:
            ts, stream, tag, text = line.rstrip("\n").split(" ", 3)
            out.append((stream, tag, text))
    return out


def log_text(lines, stream="stdout"):
    """Joins partial (P) lines as kubelet does."""
    text, cur = [], ""
    for s, tag, t in lines:
        if s != stream:
            continue
        cur += t
        if tag == "F":
            text.append(cur)
            cur = ""
    return text

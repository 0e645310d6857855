"""CRI runtime.v1alpha2 (kubelet 1.20 and older) served next to runtime.v1:
the v1alpha2 proto of Debian's kubernetes source is wire-compatible with
ours (test/kubelet/compare-protos.py), and clients built from that proto
get the same answers on /runtime.v1alpha2.* paths as v1 clients get."""
import os
import subprocess
import uuid

import grpc
import pytest

import api_pb2 as pb
from ctrtest import import_busybox, IMAGE_NAME
from kubelettest import COMPARE_SCRIPT, v1alpha2_proto, v1alpha2_stubs
from registry import busybox_image, push
from registry.fixtures import registry_server  # noqa: F401


@pytest.fixture(scope="module")
def v1a2(tmp_path_factory):
    return v1alpha2_stubs(str(tmp_path_factory.mktemp("v1alpha2-stubs")))


@pytest.fixture
def daemon(make_edgecri):
    e = make_edgecri()
    net_d = os.path.join(e.workdir, "net.d")
    os.makedirs(net_d)
    cfg = os.path.join(e.workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"cni:\n  conf_dir: {net_d}\n")
    return e.start(config=cfg)


def stubs(e, v1a2):
    m, g = v1a2
    ch = e.channel()
    return m, g.RuntimeServiceStub(ch), g.ImageServiceStub(ch)


def test_v1alpha2_proto_is_wire_compatible_with_ours():
    out = subprocess.run([COMPARE_SCRIPT, v1alpha2_proto()], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.endswith("0 wire differences"), out.stdout
    assert "27 RPCs" in summary, summary


def test_version_names_the_package_called(daemon, v1a2):
    m, rs, _ = stubs(daemon, v1a2)
    r = rs.Version(m.VersionRequest(version="0.1.0"), timeout=5)
    # kubelet 1.20 refuses a runtime whose version is not "0.1.0".
    assert (r.version, r.runtime_name, r.runtime_api_version) == ("0.1.0", "edgecri", "v1alpha2")
    assert daemon.runtime().Version(pb.VersionRequest(), timeout=5).runtime_api_version == "v1"
    st = rs.Status(m.StatusRequest(), timeout=5)
    assert {c.type for c in st.status.conditions} == {"RuntimeReady", "NetworkReady"}


def test_pull_image_over_v1alpha2(daemon, v1a2, registry_server):  # noqa: F811
    m, _, ims = stubs(daemon, v1a2)
    img = busybox_image(config={"User": "1000"})
    name = f"v1alpha2/busybox-{uuid.uuid4().hex[:8]}"
    push(registry_server.url, name, img, tag="1")
    ref = f"{registry_server.host}/{name}:1"
    r = ims.PullImage(m.PullImageRequest(image=m.ImageSpec(image=ref)), timeout=120)
    assert r.image_ref == img.config_digest
    st = ims.ImageStatus(m.ImageStatusRequest(image=m.ImageSpec(image=ref)), timeout=10)
    assert st.image.id == img.config_digest and list(st.image.repo_tags) == [ref]
    assert st.image.uid.value == 1000
    assert [i.id for i in ims.ListImages(m.ListImagesRequest(), timeout=10).images] == [img.config_digest]
    fs = ims.ImageFsInfo(m.ImageFsInfoRequest(), timeout=10).image_filesystems
    assert fs and fs[0].used_bytes.value > 0
    ims.RemoveImage(m.RemoveImageRequest(image=m.ImageSpec(image=ref)), timeout=30)
    assert list(ims.ListImages(m.ListImagesRequest(), timeout=10).images) == []


def test_pod_and_container_over_v1alpha2(daemon, v1a2, workdir):
    m, rs, _ = stubs(daemon, v1a2)
    import_busybox(daemon)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir)
    ns = m.NamespaceOption(network=m.NODE, pid=m.CONTAINER)
    pod_cfg = m.PodSandboxConfig(
        metadata=m.PodSandboxMetadata(name="old", uid=uuid.uuid4().hex, namespace="default", attempt=0),
        hostname="old", log_directory=log_dir, labels={"app": "old"},
        linux=m.LinuxPodSandboxConfig(security_context=m.LinuxSandboxSecurityContext(namespace_options=ns)))
    pod_id = rs.RunPodSandbox(m.RunPodSandboxRequest(config=pod_cfg), timeout=60).pod_sandbox_id
    try:
        [listed] = rs.ListPodSandbox(m.ListPodSandboxRequest(
            filter=m.PodSandboxFilter(label_selector={"app": "old"})), timeout=10).items
        assert listed.id == pod_id and listed.state == m.SANDBOX_READY
        assert listed.metadata.name == "old"
        st = rs.PodSandboxStatus(m.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
        assert st.state == m.SANDBOX_READY and st.linux.namespaces.options.network == m.NODE

        # v1alpha2's KeyValue.value is a string (bytes in v1): same wire type.
        cfg = m.ContainerConfig(metadata=m.ContainerMetadata(name="c"), image=m.ImageSpec(image=IMAGE_NAME),
                                command=["sh", "-c", "echo hello-$WHO; exec sleep 1000"],
                                envs=[m.KeyValue(key="WHO", value="v1alpha2")], log_path="c.log")
        cid = rs.CreateContainer(m.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg),
                                 timeout=60).container_id
        rs.StartContainer(m.StartContainerRequest(container_id=cid), timeout=30)
        r = rs.ExecSync(m.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $WHO; exit 3"], timeout=5),
                        timeout=30)
        assert (r.stdout, r.exit_code) == (b"v1alpha2\n", 3)
        cst = rs.ContainerStatus(m.ContainerStatusRequest(container_id=cid), timeout=10).status
        assert cst.state == m.CONTAINER_RUNNING and cst.image.image == IMAGE_NAME
        assert cst.image_ref.startswith(IMAGE_NAME.split(":")[0] + "@sha256:") and cst.log_path == os.path.join(log_dir, "c.log")
        [c] = rs.ListContainers(m.ListContainersRequest(filter=m.ContainerFilter(pod_sandbox_id=pod_id)),
                                timeout=10).containers
        assert c.id == cid and c.state == m.CONTAINER_RUNNING
        stats = rs.ListContainerStats(m.ListContainerStatsRequest(), timeout=10).stats
        assert [s.attributes.id for s in stats] == [cid]
        with open(os.path.join(log_dir, "c.log")) as f:
            assert "stdout F hello-v1alpha2" in f.read()
        rs.StopContainer(m.StopContainerRequest(container_id=cid, timeout=1), timeout=30)
        rs.RemoveContainer(m.RemoveContainerRequest(container_id=cid), timeout=30)
    finally:
        rs.StopPodSandbox(m.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rs.RemovePodSandbox(m.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert list(rs.ListPodSandbox(m.ListPodSandboxRequest(), timeout=10).items) == []


@pytest.mark.parametrize("path", ["/runtime.v1alpha2.RuntimeService/RuntimeConfig",
                                  "/runtime.v1alpha2.RuntimeService/GetContainerEvents",
                                  "/runtime.v1alpha2.ImageService/StreamImages"])
def test_rpcs_newer_than_v1alpha2_are_not_offered_there(daemon, path):
    call = daemon.channel().unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert path in e.value.details()

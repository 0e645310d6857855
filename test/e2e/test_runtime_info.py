"""Version, Status, RuntimeConfig, UpdateRuntimeConfig, and the routing of
every other RPC of runtime.v1 (UNIMPLEMENTED naming itself until its issue
lands, never a fake success)."""
import json
import os

import grpc
import pytest

import api_pb2 as pb
from api_pb2 import DESCRIPTOR

IMPLEMENTED = {"Version", "Status", "RuntimeConfig", "UpdateRuntimeConfig", "GetContainerEvents", "ListImages",
               "StreamImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo", "RunPodSandbox",
               "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox", "StreamPodSandboxes",
               "UpdatePodSandboxResources", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
               "ListContainers", "StreamContainers", "ContainerStatus", "UpdateContainerResources",
               "ReopenContainerLog", "ExecSync", "ContainerStats", "ListContainerStats", "StreamContainerStats",
               "PodSandboxStats", "ListPodSandboxStats", "StreamPodSandboxStats", "ListMetricDescriptors",
               "ListPodSandboxMetrics", "StreamPodSandboxMetrics", "Exec", "Attach",
               "PortForward"}


def test_version(edgecri):
    r = edgecri.runtime().Version(pb.VersionRequest(version="v1"), timeout=5)
    assert r.runtime_name == "edgecri"
    assert r.runtime_api_version == "v1"
    assert r.version == "0.1.0"
    assert r.runtime_version.count(".") == 2


def network_config(workdir, bin_dirs):
    """A config with a private (empty) CNI conf dir, so the built-in network
    is what Status reports on, whatever the host has in /etc/cni/net.d."""
    conf_dir = os.path.join(workdir, "net.d")
    os.makedirs(conf_dir, exist_ok=True)
    path = os.path.join(workdir, "config.yaml")
    with open(path, "w") as f:
        f.write(f"cni:\n  conf_dir: {conf_dir}\n  bin_dirs: {bin_dirs}\n")
    return path


def test_status_network_not_ready_without_plugins(make_edgecri, workdir):
    empty = os.path.join(workdir, "no-plugins")
    os.makedirs(empty)
    e = make_edgecri().start(config=network_config(workdir, empty))
    r = e.runtime().Status(pb.StatusRequest(), timeout=5)
    conds = {c.type: c for c in r.status.conditions}
    assert conds["RuntimeReady"].status is True
    assert conds["NetworkReady"].status is False
    assert conds["NetworkReady"].reason == "NetworkPluginNotReady"
    # The message names what is missing and where it was looked for.
    assert "bridge" in conds["NetworkReady"].message and empty in conds["NetworkReady"].message


def test_status_conditions(make_edgecri, workdir):
    # Debian's containernetworking-plugins (a test package) provide the
    # built-in network's plugins in /usr/lib/cni.
    e = make_edgecri().start(config=network_config(workdir, "/usr/lib/cni"))
    r = e.runtime().Status(pb.StatusRequest(), timeout=5)
    conds = {c.type: c for c in r.status.conditions}
    assert set(conds) == {"RuntimeReady", "NetworkReady"}
    assert conds["RuntimeReady"].status is True
    assert conds["NetworkReady"].status is True, conds["NetworkReady"]
    # The features kubelet copies into the node status: one default handler
    # with recursive read-only mounts (mount_setattr is in every 6.x kernel)
    # and user namespaces (idmapped overlay layers: 5.19+); supplemental
    # groups policy honoured.
    assert [h.name for h in r.runtime_handlers] == [""]
    assert r.runtime_handlers[0].features.recursive_read_only_mounts is True
    assert r.runtime_handlers[0].features.user_namespaces is True
    assert r.features.supplemental_groups_policy is True
    assert len(r.info) == 0, "info is only filled when verbose is asked for"


def test_checkpoint_says_why(edgecri):
    with pytest.raises(grpc.RpcError) as e:
        edgecri.runtime().CheckpointContainer(pb.CheckpointContainerRequest(container_id="x"), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CRIU" in e.value.details() and "CheckpointContainer" in e.value.details()


def test_status_verbose_info_is_json(edgecri):
    r = edgecri.runtime().Status(pb.StatusRequest(verbose=True), timeout=5)
    config = json.loads(r.info["config"])
    assert config["socket"] == edgecri.socket
    assert config["root"] == edgecri.root
    assert config["cgroup_driver"] == "cgroupfs"
    runtime = json.loads(r.info["runtime"])
    assert runtime["name"] == "edgecri"
    assert runtime["pid"] == edgecri.proc.pid
    assert runtime["activeCalls"] == 1  # this very call


def test_runtime_ready_false_when_root_unwritable(edgecri):
    # Simulate a root directory that went away (e.g. a failed disk remount).
    os.rename(edgecri.root, edgecri.root + ".gone")
    try:
        r = edgecri.runtime().Status(pb.StatusRequest(), timeout=5)
        cond = [c for c in r.status.conditions if c.type == "RuntimeReady"][0]
        assert cond.status is False
        assert cond.reason == "RuntimeDirUnavailable"
        assert edgecri.root in cond.message
    finally:
        os.rename(edgecri.root + ".gone", edgecri.root)


def test_runtime_config_cgroupfs_by_default(edgecri):
    r = edgecri.runtime().RuntimeConfig(pb.RuntimeConfigRequest(), timeout=5)
    assert r.linux.cgroup_driver == pb.CGROUPFS


def test_runtime_config_systemd_when_configured(make_edgecri, workdir):
    cfg = os.path.join(workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write("cgroup_driver: systemd\n")
    e = make_edgecri().start(config=cfg)
    r = e.runtime().RuntimeConfig(pb.RuntimeConfigRequest(), timeout=5)
    assert r.linux.cgroup_driver == pb.SYSTEMD


def update_cidr(stub, cidr):
    return stub.UpdateRuntimeConfig(
        pb.UpdateRuntimeConfigRequest(runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=cidr))),
        timeout=5)


def pod_cidr(stub):
    r = stub.Status(pb.StatusRequest(verbose=True), timeout=5)
    return json.loads(r.info["runtime"])["podCIDR"]


def test_update_runtime_config_keeps_pod_cidr_across_restart(make_edgecri):
    e = make_edgecri().start()
    update_cidr(e.runtime(), "10.88.0.0/16, FD00:10:88::/64")
    assert pod_cidr(e.runtime()) == "10.88.0.0/16,fd00:10:88::/64"
    # An empty CIDR changes nothing (kubelet never sends one on purpose).
    update_cidr(e.runtime(), "")
    assert pod_cidr(e.runtime()) == "10.88.0.0/16,fd00:10:88::/64"
    assert e.stop() == 0
    with open(os.path.join(e.root, "pod-cidr")) as f:
        assert f.read() == "10.88.0.0/16,fd00:10:88::/64\n"
    e.start()
    assert pod_cidr(e.runtime()) == "10.88.0.0/16,fd00:10:88::/64"


@pytest.mark.parametrize("bad, words", [
    ("10.88.0.1/16", "host bits"),
    ("10.88.0.0/33", "longer than the address"),
    ("10.88.0.0", "address/prefix"),
    ("banana/8", "not an IP address"),
    ("10.0.0.0/8,10.1.0.0/16", "two IPv4"),
    ("10.0.0.0/8,,", "empty entry"),
])
def test_update_runtime_config_rejects_bad_cidr(edgecri, bad, words):
    stub = edgecri.runtime()
    update_cidr(stub, "10.1.0.0/16")
    with pytest.raises(grpc.RpcError) as e:
        update_cidr(stub, bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in e.value.details()
    assert "UpdateRuntimeConfig" in e.value.details()
    assert pod_cidr(stub) == "10.1.0.0/16", "a rejected value must not replace the current one"


def all_rpcs():
    for svc in DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            yield svc, m


def test_every_rpc_is_routed(edgecri):
    """Each RPC of both services reaches a handler: the implemented ones
    answer for themselves, the others answer UNIMPLEMENTED naming the RPC."""
    ch = edgecri.channel()
    count = 0
    for svc, m in all_rpcs():
        count += 1
        if m.name in IMPLEMENTED:
            continue
        req_cls = getattr(pb, m.input_type.name)
        resp_cls = getattr(pb, m.output_type.name)
        path = f"/{svc.full_name}/{m.name}"
        if m.server_streaming:
            fn = ch.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                 response_deserializer=resp_cls.FromString)
            with pytest.raises(grpc.RpcError) as e:
                list(fn(req_cls(), timeout=5))
        else:
            fn = ch.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                response_deserializer=resp_cls.FromString)
            with pytest.raises(grpc.RpcError) as e:
                fn(req_cls(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
        assert m.name in e.value.details(), path
    assert count == 41, "runtime.v1 has 35 RuntimeService and 6 ImageService RPCs"


def test_unknown_method_is_unimplemented(edgecri):
    ch = edgecri.channel()
    for path in ["/runtime.v1.RuntimeService/NoSuchThing", "/runtime.v1alpha2.RuntimeService/NoSuchThing",
                 "/runtime.v1alpha3.RuntimeService/Version", "/x"]:
        fn = ch.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            fn(b"", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert path in e.value.details()

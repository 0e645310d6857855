"""GetContainerEvents end to end: the lifecycle of real containers reaches
every subscriber in order with the container's status, and a subscriber
that stops reading is cut off instead of growing the daemon's memory."""
import threading
import time

import grpc
import pytest

import api_pb2 as pb
from rawh2 import RawH2, grpc_frame, grpc_status
from conftest import ASAN
from ctrtest import pod_env, container_config, create, pod_config, rt, run_pod, start, wait_state

EV = pb.ContainerEventType


@pytest.fixture
def env(make_edgecri, workdir):
    for e, pod_id, cfg, _ in pod_env(make_edgecri, workdir):
        yield e, pod_id, cfg


class Subscriber:
    """Reads one GetContainerEvents stream in a thread."""

    def __init__(self, e):
        self.events = []
        self.error = None
        self.call = e.runtime(e.channel()).GetContainerEvents(pb.GetEventsRequest())
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            for ev in self.call:
                self.events.append(ev)
        except grpc.RpcError as err:
            self.error = err

    def wait_for(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


def lifecycle(e, pod_id, cfg, name, **kw):
    cid = create(e, pod_id, cfg, container_config(name, command=["sleep", "1000"], **kw))
    rt(e).StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(e, cid, pb.CONTAINER_RUNNING)
    rt(e).StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    rt(e).RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    return cid


def test_lifecycle_events_in_order_at_two_subscribers(env):
    e, pod_id, cfg = env
    subs = [Subscriber(e), Subscriber(e)]
    time.sleep(0.3)  # both subscribed before anything happens
    cid = lifecycle(e, pod_id, cfg, "watched")
    want = [EV.CONTAINER_CREATED_EVENT, EV.CONTAINER_STARTED_EVENT, EV.CONTAINER_STOPPED_EVENT,
            EV.CONTAINER_DELETED_EVENT]
    for s in subs:
        evs = [ev for ev in s.wait_for(4) if ev.container_id == cid]
        assert [ev.container_event_type for ev in evs] == want
        stamps = [ev.created_at for ev in evs]
        assert stamps == sorted(stamps) and stamps[0] > 0
        # The status rides along (not for DELETED: the container is gone).
        assert [ev.containers_statuses[0].state for ev in evs[:3]] == [
            pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING, pb.CONTAINER_EXITED]
        assert len(evs[3].containers_statuses) == 0
        assert evs[2].containers_statuses[0].exit_code == 137
        s.call.cancel()


def test_pod_and_container_events_with_pod_status(make_edgecri, workdir):
    e = start(make_edgecri)
    sub = Subscriber(e)
    time.sleep(0.3)
    cfg = pod_config(log_dir=workdir)
    pod_id = run_pod(e, cfg)
    cid = lifecycle(e, pod_id, cfg, "in-pod")
    rt(e).StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt(e).RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    evs = sub.wait_for(8)
    got = [(ev.container_id, ev.container_event_type) for ev in evs]
    # Sandboxes are reported as containerd does: their ID as container_id.
    assert got == [(pod_id, EV.CONTAINER_CREATED_EVENT), (pod_id, EV.CONTAINER_STARTED_EVENT),
                   (cid, EV.CONTAINER_CREATED_EVENT), (cid, EV.CONTAINER_STARTED_EVENT),
                   (cid, EV.CONTAINER_STOPPED_EVENT), (cid, EV.CONTAINER_DELETED_EVENT),
                   (pod_id, EV.CONTAINER_STOPPED_EVENT), (pod_id, EV.CONTAINER_DELETED_EVENT)]
    # Every event but the sandbox's DELETED carries the sandbox's status.
    for ev in evs[:-1]:
        assert ev.pod_sandbox_status.id == pod_id
        assert ev.pod_sandbox_status.metadata.name == cfg.metadata.name
    assert evs[1].pod_sandbox_status.state == pb.SANDBOX_READY
    assert evs[6].pod_sandbox_status.state == pb.SANDBOX_NOTREADY
    assert not evs[-1].HasField("pod_sandbox_status")
    sub.call.cancel()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_subscriber_that_never_reads_is_cut_off(env):
    e, pod_id, cfg = env
    # A subscriber that never reads: a raw HTTP/2 client that never opens
    # its flow-control window (grpc-python would buffer megabytes for us).
    stuck = RawH2(e.socket, timeout=30)
    sid = stuck.request("/runtime.v1.RuntimeService/GetContainerEvents", grpc_frame(b""))
    reader = Subscriber(e)
    time.sleep(0.3)
    base = rss_kib(e.proc.pid)
    # Big annotations make big events: ~ 3 x 200 KiB per container, far
    # past the 4 MiB a subscriber may fall behind.
    big = {f"k{i}": "v" * 2000 for i in range(100)}
    n = 12
    for i in range(n):
        lifecycle(e, pod_id, cfg, f"c{i}", annotations=big)
    assert len(reader.wait_for(4 * n, timeout=30)) == 4 * n
    # (Under ASan freed memory sits in its quarantine: RSS says nothing.)
    if not ASAN:
        assert rss_kib(e.proc.pid) - base < 32 * 1024
    # Its stream was ended, with a reason, once it was too far behind; what
    # was queued before that still arrives once it reads again.
    stuck.conn.increment_flow_control_window(1 << 30)
    stuck.conn.increment_flow_control_window(1 << 30, sid)
    stuck.flush()
    code, message = grpc_status(stuck.wait(sid, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "not reading" in message
    stuck.close()
    reader.call.cancel()

"""Interoperability with grpc-go, the gRPC library of kubelet and crictl.

test/go/build.sh builds test/go/criclient (Go stubs generated from our own
api.proto, Debian's grpc-go, GOPATH mode, offline); the client then drives a
daemon over its unix socket: unary OK, a rejected request's status (InvalidArgument),
Status, and the GetContainerEvents server stream ended by a client
cancellation and by a deadline. A failing build fails the test: the Go
toolchain and libraries are part of the test packages build.sh installs.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_SCRIPT = os.path.join(TOP, "test", "go", "build.sh")


@pytest.fixture(scope="session")
def criclient():
    """Path of the freshly built Go client."""
    out_dir = tempfile.mkdtemp(prefix="edgecri-criclient-")
    binary = os.path.join(out_dir, "criclient")
    try:
        proc = subprocess.run(["bash", BUILD_SCRIPT, binary], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        pytest.fail(f"test/go/build.sh did not finish within 600s:\n{e.output}", pytrace=False)
    if proc.returncode != 0 or not os.access(binary, os.X_OK):
        shutil.rmtree(out_dir, ignore_errors=True)
        pytest.fail(f"test/go/build.sh failed with exit code {proc.returncode}:\n{proc.stdout}", pytrace=False)
    yield binary
    shutil.rmtree(out_dir, ignore_errors=True)


def test_grpc_go_client(edgecri, criclient):
    try:
        proc = subprocess.run([criclient, "-socket", edgecri.socket], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"criclient hung (120s); output so far:\n{e.stdout}\n{e.stderr}\n"
                    f"--- edgecri log ---\n{edgecri.log()[-8000:]}", pytrace=False)
    report = (f"criclient exit code {proc.returncode}\n--- stdout ---\n{proc.stdout}\n"
              f"--- stderr ---\n{proc.stderr}\n--- edgecri log ---\n{edgecri.log()[-8000:]}")
    assert proc.returncode == 0, report

    lines = proc.stdout.splitlines()

    def line(prefix):
        found = [l for l in lines if l.startswith(prefix)]
        assert found, f"no line starting with {prefix!r}\n{report}"
        return found[0]

    version = line("version ")
    assert "runtime_name=edgecri " in version, report
    assert version.endswith("runtime_api_version=v1"), report

    run_pod = line("invalid rpc=RunPodSandbox ")
    assert "code=InvalidArgument " in run_pod, report
    assert "config" in run_pod.split("message=", 1)[1], report

    assert line("images ") == "images count=0", report
    assert line("imagestatus ") == "imagestatus missing=true", report

    assert line("status ") == "status conditions=2", report
    conditions = {l.split()[1] for l in lines if l.startswith("condition ")}
    assert conditions == {"type=RuntimeReady", "type=NetworkReady"}, report

    assert line("events cancelled ").startswith("events cancelled code=Canceled "), report
    assert line("events deadline ").startswith("events deadline code=DeadlineExceeded "), report
    assert lines[-1] == "ok", report

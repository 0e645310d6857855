"""Kubelet 1.20 built from Debian's source (test/kubelet/build-kubelet.sh)
and the CRI v1alpha2 proto from the same source tree, compiled into Python
stubs at test time (the upstream proto is not part of our repository).

./build.sh test builds kubelet before pytest starts and passes the directory
in $EDGECRI_KUBELET_DIR; run on their own, the tests call the build script,
which only prints the directory once the build is cached."""
import functools
import importlib
import os
import re
import subprocess
import sys

from conftest import TOP

BUILD_SCRIPT = os.path.join(TOP, "test", "kubelet", "build-kubelet.sh")
COMPARE_SCRIPT = os.path.join(TOP, "test", "kubelet", "compare-protos.py")
# gogoproto options shape Go code only; python's protoc does not know them.
_GOGO = re.compile(r'^\s*(import\s+"github\.com/gogo/[^"]*";|option\s+\(gogoproto\.[^;]*;)\s*$', re.M)


@functools.lru_cache(maxsize=None)
def kubelet_dir():
    d = os.environ.get("EDGECRI_KUBELET_DIR")
    if not d:
        out = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, timeout=3600)
        assert out.returncode == 0, f"{BUILD_SCRIPT} failed:\n{out.stderr[-4000:]}"
        d = out.stdout.strip().splitlines()[-1]
    assert os.access(os.path.join(d, "kubelet"), os.X_OK), f"no kubelet in {d}"
    return d


def kubelet_bin():
    return os.path.join(kubelet_dir(), "kubelet")


def v1alpha2_proto():
    return os.path.join(kubelet_dir(), "v1alpha2", "api.proto")


@functools.lru_cache(maxsize=None)
def v1alpha2_stubs(out_dir):
    """(messages module, grpc module) for runtime.v1alpha2, generated into
    out_dir. The file is renamed so that it does not clash with our own
    api.proto in python's descriptor pool (the packages differ anyway)."""
    with open(v1alpha2_proto(), encoding="utf-8") as f:
        text = _GOGO.sub("", f.read())
    src = os.path.join(out_dir, "cri_v1alpha2.proto")
    with open(src, "w", encoding="utf-8") as f:
        f.write(text)
    subprocess.run(["protoc", f"--proto_path={out_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", src], check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return importlib.import_module("cri_v1alpha2_pb2"), importlib.import_module("cri_v1alpha2_pb2_grpc")

"""Ready-made pytest fixtures; import the ones a test module needs:

    from registry.fixtures import registry_server, registry_proxy, busybox  # noqa: F401

registry_server  a plain-http Registry for the module
registry_proxy   a fresh Proxy (no auth, no faults, empty stats) in front of it
busybox          the default busybox Image (OCI, gzip), built once per session
"""
import pytest

from .images import busybox_image
from .proxy import Proxy
from .server import Registry


@pytest.fixture(scope="module")
def registry_server():
    with Registry() as r:
        yield r


@pytest.fixture
def registry_proxy(registry_server):
    with Proxy(registry_server) as p:
        yield p
    assert not p.errors, f"proxy bugs: {p.errors}"


@pytest.fixture(scope="session")
def busybox():
    return busybox_image()

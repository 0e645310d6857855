"""Registry test infrastructure: real images, a real registry on 127.0.0.1,
and a fault-injecting proxy in front of it.

    from registry import Registry, Proxy, busybox_image, push, Client

    img = busybox_image(kind="oci", compression="zstd")
    with Registry() as reg, Proxy(reg, auth="bearer") as px:
        push(reg.url, "library/busybox", img, tag="1.35")
        px.set_fault(r"/blobs/", "cut", after=65536, times=1)
        ...  # point the runtime at px.host; px.stats tells what it did

Modules: images (Layer, Image, Index, archives), server (Registry),
proxy (Proxy, faults), client (Client, push), tls (TestCA).
"""
from .client import ALL_MANIFESTS, Client, RegistryError, Response, parse_challenge, push
from .images import (BUSYBOX, DEFAULT_APPLETS, DEFAULT_PATH, DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST,
                     LAYER_MEDIA_TYPES, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, BlockDevice, CharDevice, Dir,
                     Fifo, File, Hardlink, Image, Index, Layer, Opaque, Raw, Symlink, Whiteout, big_image,
                     build_tar, busybox_image, busybox_layer, compress, decompress, docker_archive_tar,
                     marker_image, multiarch_index, oci_layout_tar, read_tar, sha256)
from .proxy import Fault, PathStats, Proxy, RequestRecord
from .server import Registry, free_port
from .tls import TestCA, client_context, default_ca

__all__ = [
    "ALL_MANIFESTS", "Client", "RegistryError", "Response", "parse_challenge", "push",
    "BUSYBOX", "DEFAULT_APPLETS", "DEFAULT_PATH", "DOCKER_CONFIG", "DOCKER_LIST", "DOCKER_MANIFEST",
    "LAYER_MEDIA_TYPES", "OCI_CONFIG", "OCI_INDEX", "OCI_MANIFEST", "BlockDevice", "CharDevice", "Dir",
    "Fifo", "File", "Hardlink", "Image", "Index", "Layer", "Opaque", "Raw", "Symlink", "Whiteout",
    "big_image", "build_tar", "busybox_image", "busybox_layer", "compress", "decompress",
    "docker_archive_tar", "marker_image", "multiarch_index", "oci_layout_tar", "read_tar", "sha256",
    "Fault", "PathStats", "Proxy", "RequestRecord", "Registry", "free_port", "TestCA", "client_context",
    "default_ca",
]

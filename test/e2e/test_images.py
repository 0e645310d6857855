"""PullImage, ImageStatus, ListImages, StreamImages, RemoveImage and
ImageFsInfo against a real registry (Debian's docker-registry on 127.0.0.1)
with images built from busybox-static; `edgecri pull` on the command line."""
import concurrent.futures
import json
import os
import stat
import subprocess
import threading
import time
import uuid

import grpc
import pytest

import api_pb2 as pb
from conftest import BIN
from imagetest import (MiB, blob_path, chain_ids, layer_dirs, layer_fs, list_images,
                       pull, pull_error, remove, start_daemon, status)
from registry import (Dir, File, Image, Index, Layer, Opaque, Proxy, Registry, Symlink, Whiteout, busybox_image,
                      busybox_layer, marker_image, multiarch_index, push)


@pytest.fixture(scope="module")
def reg():
    with Registry() as r:
        yield r


@pytest.fixture
def proxy(reg):
    with Proxy(reg) as p:
        yield p
    assert not p.errors, p.errors


@pytest.fixture
def daemon(make_edgecri):
    return start_daemon(make_edgecri)


def unique(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_pull_registers_the_image(reg, daemon):
    img = busybox_image(config={"User": "1000", "Labels": {"a": "b"}})
    name = unique("test/busybox")
    push(reg.url, name, img, tag="1.35")
    ref = f"{reg.host}/{name}:1.35"
    image_id = pull(daemon, ref)
    assert image_id == img.config_digest

    [listed] = list_images(daemon)
    assert listed.id == image_id
    assert list(listed.repo_tags) == [ref]
    assert list(listed.repo_digests) == [f"{reg.host}/{name}@{img.manifest_digest}"]
    assert listed.size >= sum(len(l.tar) for l in img.layers) * 0.9
    assert listed.uid.value == 1000 and listed.username == ""
    assert listed.spec.image == image_id

    # Found by tag, by ID (with and without sha256:), and by repo digest.
    for key in [ref, image_id, image_id.split(":")[1], f"{reg.host}/{name}@{img.manifest_digest}"]:
        assert status(daemon, key).image.id == image_id, key
    # Unknown images are an empty answer, not an error (kubelet relies on it).
    assert not status(daemon, f"{reg.host}/{name}:other").HasField("image")

    verbose = status(daemon, ref, verbose=True)
    info = json.loads(verbose.info["info"])
    assert info["config"]["config"]["Labels"] == {"a": "b"}
    assert info["chainIds"] == chain_ids([l.diff_id for l in img.layers])

    # On disk: the layer holds busybox, runnable, with its symlinks.
    fs = layer_fs(daemon, info["chainIds"][0])
    st = os.stat(os.path.join(fs, "bin/busybox"))
    assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o111
    assert os.readlink(os.path.join(fs, "bin/sh")) in ("busybox", "/bin/busybox")
    out = subprocess.run([os.path.join(fs, "bin/busybox"), "echo", "hello"], capture_output=True, text=True)
    assert out.stdout == "hello\n"


def test_username_from_image_user(reg, daemon):
    img = busybox_image(config={"User": "edge:video"})
    name = unique("test/user")
    push(reg.url, name, img, tag="1")
    pull(daemon, f"{reg.host}/{name}:1")
    st = status(daemon, f"{reg.host}/{name}:1").image
    assert st.username == "edge" and not st.HasField("uid")


@pytest.mark.parametrize("kind, compression", [("oci", "zstd"), ("oci", "none"), ("docker", "gzip")])
def test_layer_formats(reg, daemon, kind, compression):
    img = busybox_image(kind=kind, compression=compression)
    name = unique(f"test/{kind}-{compression}")
    push(reg.url, name, img, tag="v")
    assert pull(daemon, f"{reg.host}/{name}:v") == img.config_digest
    fs = layer_fs(daemon, img.layers[0].diff_id)
    assert os.path.exists(os.path.join(fs, "bin/busybox"))


def test_whiteouts_and_opaque_directories(reg, daemon):
    base = Layer([Dir("/data"), File("/data/keep", b"k"), File("/data/gone", b"g"), Dir("/cache"),
                  File("/cache/old", b"o")])
    top = Layer([Whiteout("/data/gone"), Opaque("/cache"), File("/cache/new", b"n"), Symlink("/link", "/data/keep")])
    img = Image([busybox_layer(), base, top], config={"Cmd": ["sh"]})
    name = unique("test/whiteouts")
    push(reg.url, name, img, tag="1")
    pull(daemon, f"{reg.host}/{name}:1")
    chains = chain_ids([l.diff_id for l in img.layers])
    fs = layer_fs(daemon, chains[2])
    wh = os.lstat(os.path.join(fs, "data/gone"))
    assert stat.S_ISCHR(wh.st_mode) and os.major(wh.st_rdev) == 0 and os.minor(wh.st_rdev) == 0
    assert os.getxattr(os.path.join(fs, "cache"), "trusted.overlay.opaque") == b"y"
    assert not os.path.exists(os.path.join(fs, "cache/.wh..wh..opq"))
    assert open(os.path.join(fs, "cache/new"), "rb").read() == b"n"
    assert os.readlink(os.path.join(fs, "link")) == "/data/keep"
    assert open(os.path.join(layer_fs(daemon, chains[1]), "data/gone"), "rb").read() == b"g"


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_index_picks_the_node_platform(reg, daemon, kind):
    idx = multiarch_index(kind=kind)
    amd64 = [i for i in idx.images if i.architecture == "amd64"][0]
    name = unique(f"test/multi-{kind}")
    push(reg.url, name, idx, tag="1")
    assert pull(daemon, f"{reg.host}/{name}:1") == amd64.config_digest
    # The repo digest is the index's: what the tag resolved to.
    [listed] = list_images(daemon)
    assert list(listed.repo_digests) == [f"{reg.host}/{name}@{idx.manifest_digest}"]


def test_index_without_the_node_platform_is_not_found(reg, daemon):
    idx = Index([marker_image("arm64", "v8"), marker_image("s390x")])
    name = unique("test/foreign")
    push(reg.url, name, idx, tag="1")
    err = pull_error(daemon, f"{reg.host}/{name}:1")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "linux/amd64" in err.details() and "arm64" in err.details() and "s390x" in err.details()
    assert list_images(daemon) == []


def test_pull_by_digest_and_by_tag_and_digest(reg, daemon):
    img = busybox_image(config={"Env": ["X=1"]})
    name = unique("test/bydigest")
    push(reg.url, name, img, tag="1")
    assert pull(daemon, f"{reg.host}/{name}@{img.manifest_digest}") == img.config_digest
    assert pull(daemon, f"{reg.host}/{name}:1@{img.manifest_digest}") == img.config_digest
    [listed] = list_images(daemon)
    assert f"{reg.host}/{name}@{img.manifest_digest}" in listed.repo_digests


@pytest.mark.parametrize("ref, words", [
    ("Busybox:latest", "lowercase"),
    ("busybox:", "tag"),
    ("busybox@sha256:1234", "digest"),
    ("a" * 300, "too long"),
])
def test_invalid_references(daemon, ref, words):
    err = pull_error(daemon, ref)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.details()


def test_empty_reference(daemon):
    err = pull_error(daemon, "")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_image_is_not_found(reg, daemon):
    err = pull_error(daemon, f"{reg.host}/test/nothing-here:1")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert f"{reg.host}/test/nothing-here" in err.details()


def test_schema1_manifest_is_refused(reg, daemon, proxy):
    name = unique("test/schema1")
    push(reg.url, name, busybox_image(), tag="1")
    schema1 = json.dumps({"schemaVersion": 1, "name": name, "tag": "1", "architecture": "amd64",
                          "fsLayers": [], "history": []}).encode()
    proxy.set_fault(r"/manifests/1$", "body", data=schema1)
    proxy.set_fault(r"/manifests/1$", "headers",
                    set={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    err = pull_error(daemon, f"{proxy.host}/{name}:1")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "schema 1" in err.details()


def test_remove_image_and_shared_layers(reg, daemon):
    base = busybox_layer()
    a = Image([base, Layer([File("/a", b"a")])], config={"Cmd": ["sh"]})
    b = Image([base, Layer([File("/b", b"b")])], config={"Cmd": ["sh"]})
    name = unique("test/shared")
    push(reg.url, name, a, tag="a")
    push(reg.url, name, b, tag="b")
    pull(daemon, f"{reg.host}/{name}:a")
    pull(daemon, f"{reg.host}/{name}:b")
    assert len(layer_dirs(daemon)) == 3  # one shared base, two tops
    remove(daemon, f"{reg.host}/{name}:a")
    ids = [i.id for i in list_images(daemon)]
    assert ids == [b.config_digest]
    # The base stays for b, a's top goes (removal runs in the background).
    deadline = time.monotonic() + 10
    # (blobs go after layers in the same background job: wait for both)
    while ((len(layer_dirs(daemon)) != 2 or os.path.exists(blob_path(daemon, a.config_digest)))
           and time.monotonic() < deadline):
        time.sleep(0.05)
    chains_b = chain_ids([l.diff_id for l in b.layers])
    assert sorted(layer_dirs(daemon)) == sorted(c.split(":")[1] for c in chains_b)
    assert not os.path.exists(blob_path(daemon, a.config_digest))
    # Removing again, or something never pulled, is fine (kubelet retries).
    remove(daemon, f"{reg.host}/{name}:a")
    remove(daemon, a.config_digest)
    remove(daemon, b.config_digest)
    assert list_images(daemon) == []
    deadline = time.monotonic() + 10
    while layer_dirs(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert layer_dirs(daemon) == []


def test_pull_right_after_remove(reg, daemon):
    """RemoveImage answers once the layers are gone: a pull straight after
    it (kubelet's GC then a new pod) must not find half-deleted layers."""
    # Many files: deleting the layer takes a while.
    img = Image([Layer([File(f"/d/{i // 100}/{i}", b"x") for i in range(2000)])], config={"Cmd": ["sh"]})
    name = unique("test/again")
    push(reg.url, name, img, tag="1")
    for _ in range(2):
        pull(daemon, f"{reg.host}/{name}:1")
        remove(daemon, f"{reg.host}/{name}:1")
        # Nothing of it is left when RemoveImage has answered.
        assert layer_dirs(daemon) == [] or all(
            c.split(":")[1] not in layer_dirs(daemon) for c in chain_ids([l.diff_id for l in img.layers]))
    assert pull(daemon, f"{reg.host}/{name}:1") == img.config_digest
    remove(daemon, img.config_digest)


def test_tag_moves_to_the_new_image(reg, daemon):
    name = unique("test/moving")
    old, new = busybox_image(config={"Env": ["V=1"]}), busybox_image(config={"Env": ["V=2"]})
    push(reg.url, name, old, tag="latest")
    pull(daemon, f"{reg.host}/{name}:latest")
    push(reg.url, name, new, tag="latest")
    pull(daemon, f"{reg.host}/{name}:latest")
    imgs = {i.id: i for i in list_images(daemon)}
    assert list(imgs[new.config_digest].repo_tags) == [f"{reg.host}/{name}:latest"]
    # The old image keeps its digest name, without the tag.
    assert list(imgs[old.config_digest].repo_tags) == []
    assert list(imgs[old.config_digest].repo_digests) == [f"{reg.host}/{name}@{old.manifest_digest}"]


def test_list_stream_and_filter(reg, daemon):
    names = []
    for i in range(3):
        name = unique(f"test/list{i}")
        push(reg.url, name, busybox_image(config={"Env": [f"I={i}"]}), tag="1")
        pull(daemon, f"{reg.host}/{name}:1")
        names.append(f"{reg.host}/{name}:1")
    listed = list_images(daemon)
    streamed = [img for batch in daemon.images().StreamImages(pb.StreamImagesRequest(), timeout=10)
                for img in batch.images]
    assert sorted(i.id for i in listed) == sorted(i.id for i in streamed)
    assert len(listed) == 3
    filt = pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=names[1])))
    [one] = daemon.images().ListImages(filt, timeout=10).images
    assert list(one.repo_tags) == [names[1]]


def test_image_fs_info_counts_what_is_stored(reg, daemon):
    def used():
        r = daemon.images().ImageFsInfo(pb.ImageFsInfoRequest(), timeout=10)
        [fs] = r.image_filesystems
        assert fs.fs_id.mountpoint and fs.timestamp > 0
        return fs.used_bytes.value, fs.inodes_used.value

    before = used()
    name = unique("test/fsinfo")
    push(reg.url, name, busybox_image(), tag="1")
    pull(daemon, f"{reg.host}/{name}:1")
    after = used()
    assert after[0] - before[0] >= 1 * MiB
    assert after[1] - before[1] >= 20


def test_images_survive_a_restart(reg, make_edgecri):
    e = start_daemon(make_edgecri)
    name = unique("test/persist")
    img = busybox_image()
    push(reg.url, name, img, tag="1")
    pull(e, f"{reg.host}/{name}:1")
    before = list_images(e)
    assert e.stop() == 0
    e.start(config=e.config_path)
    assert list_images(e) == before
    assert status(e, f"{reg.host}/{name}:1", verbose=True).image.id == img.config_digest
    assert json.loads(status(e, img.config_digest, verbose=True).info["info"])["config"]["rootfs"]["diff_ids"]


def test_layer_blobs_are_dropped_after_unpack_unless_kept(reg, make_edgecri):
    img = busybox_image(config={"Env": ["K=1"]})
    name = unique("test/keep")
    push(reg.url, name, img, tag="1")
    e = start_daemon(make_edgecri, subdir="drop")
    pull(e, f"{reg.host}/{name}:1")
    deadline = time.monotonic() + 10
    while os.path.exists(blob_path(e, img.layers[0].digest)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(blob_path(e, img.layers[0].digest))
    assert os.path.exists(blob_path(e, img.config_digest))
    assert os.path.exists(blob_path(e, img.manifest_digest))
    k = start_daemon(make_edgecri, subdir="keep", config="images:\n  keep_layer_blobs: true\n")
    pull(k, f"{reg.host}/{name}:1")
    time.sleep(0.3)
    assert os.path.exists(blob_path(k, img.layers[0].digest))


def test_concurrent_pulls_share_one_download(reg, proxy, daemon):
    base = busybox_layer()
    a = Image([base, Layer([File("/a", os.urandom(MiB))])], config={"Cmd": ["sh"]})
    b = Image([base, Layer([File("/b", os.urandom(MiB))])], config={"Cmd": ["sh"]})
    name = unique("test/together")
    push(reg.url, name, a, tag="a")
    push(reg.url, name, b, tag="b")
    # Slow blobs so all the pulls overlap.
    proxy.set_fault(r"/blobs/", "throttle", rate=4 * MiB)
    refs = [f"{proxy.host}/{name}:a"] * 4 + [f"{proxy.host}/{name}:b"] * 2
    barrier = threading.Barrier(len(refs))

    def one(ref):
        barrier.wait()
        return pull(daemon, ref, channel=daemon.channel())

    with concurrent.futures.ThreadPoolExecutor(len(refs)) as pool:
        ids = list(pool.map(one, refs))
    assert ids == [a.config_digest] * 4 + [b.config_digest] * 2
    # Every blob crossed the wire once: the shared base too.
    for layer in [base, a.layers[1], b.layers[1]]:
        assert len(proxy.blob_stats(name, layer.digest).gets().records) == 1, layer.digest
    assert "joining the pull" in daemon.log()


def test_pulling_again_downloads_nothing(reg, proxy, daemon):
    img = busybox_image(config={"Env": ["AGAIN=1"]})
    name = unique("test/again")
    push(reg.url, name, img, tag="1")
    pull(daemon, f"{proxy.host}/{name}:1")
    before = proxy.count("/blobs/", method="GET")
    pull(daemon, f"{proxy.host}/{name}:1")
    # The manifest and the small config are fetched again; no layer blob is.
    assert proxy.count("/blobs/", method="GET") - before <= 1
    assert proxy.blob_stats(name, img.layers[0].digest).gets().records.__len__() == 1


def test_cli_pull(reg, daemon):
    img = busybox_image(config={"Env": ["CLI=1"]})
    name = unique("test/cli")
    push(reg.url, name, img, tag="1")
    r = subprocess.run([BIN, "pull", "--socket", daemon.socket, f"{reg.host}/{name}:1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == img.config_digest
    assert any(img.layers[0].digest in l and "done" in l for l in lines), lines
    assert status(daemon, f"{reg.host}/{name}:1").image.id == img.config_digest
    # Errors: a clear line on stderr and exit 1.
    r = subprocess.run([BIN, "pull", "--socket", daemon.socket, f"{reg.host}/{name}:nope"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "not found" in r.stderr
    r = subprocess.run([BIN, "pull", "--socket", daemon.socket + ".none", "x"], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot reach edgecri" in r.stderr
    r = subprocess.run([BIN, "pull"], capture_output=True, text=True)
    assert r.returncode == 2


def test_debug_log_shows_layer_throughput(reg, daemon):
    name = unique("test/log")
    push(reg.url, name, busybox_image(config={"Env": ["L=1"]}), tag="1")
    pull(daemon, f"{reg.host}/{name}:1")
    assert any("downloaded:" in l and "MiB/s" in l for l in daemon.log().splitlines())
    assert any("unpacked:" in l for l in daemon.log().splitlines())

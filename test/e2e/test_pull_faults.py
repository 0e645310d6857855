"""Pulls over a bad link or from a bad registry: corrupt and truncated blobs,
dropped connections (resumed with Range), 5xx answers, a registry killed
mid-blob, edgecri killed mid-pull, configs that lie about their layers, and
hostile layers. Each ends in a clear error or a correct image, never a
half-registered one."""
import json
import os
import signal
import tarfile
import tempfile
import threading
import time
import uuid

import grpc
import pytest

from imagetest import (MiB, blob_path, chain_ids, image_records, ingest_files, layer_dirs, layer_fs, list_images, pull,
                       pull_error, start_daemon)
from registry import Client, File, Image, Layer, Proxy, Raw, Registry, Symlink, busybox_image, busybox_layer, push
from registry.images import OCI_CONFIG, OCI_MANIFEST, sha256


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


def big_layer_image(mib=4, env="X=1"):
    """busybox plus one incompressible layer, so a download takes a while."""
    payload = Layer([File("/payload", os.urandom(mib * MiB))], compression="gzip")
    return Image([busybox_layer(), payload], config={"Cmd": ["sh"], "Env": [env]}), payload


def assert_store_clean(e, img, bad):
    """Nothing of a failed pull is visible: no record, and the bad blob was
    never committed (good layers may stay for the next attempt)."""
    assert all(r["id"] != img.config_digest for r in image_records(e))
    assert all(i.id != img.config_digest for i in list_images(e))
    assert not os.path.exists(blob_path(e, bad.digest)), bad.digest


def test_corrupt_blob_fails_and_is_never_used(reg, proxy, daemon):
    img, payload = big_layer_image(1)
    name = unique("faults/corrupt")
    push(reg.url, name, img, tag="1")
    proxy.set_fault("/blobs/" + payload.digest, "corrupt", offset=1000)
    err = pull_error(daemon, f"{proxy.host}/{name}:1")
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert payload.digest in err.details() and "discarded" in err.details()
    assert_store_clean(daemon, img, payload)
    # The bad bytes are gone; a good layer cut short by the failed pull may
    # keep its partial file, which the next pull resumes.
    bad_hex = payload.digest.split(":", 1)[1]
    assert [f for f in ingest_files(daemon) if bad_hex in f] == []
    assert wait_tmp_empty(daemon) == []
    assert chain_ids([busybox_layer().diff_id, payload.diff_id])[-1].split(":", 1)[1] not in layer_dirs(daemon)
    # Once the registry behaves, the same pull works.
    proxy.clear_faults()
    assert pull(daemon, f"{proxy.host}/{name}:1") == img.config_digest


def test_short_blob_fails(reg, proxy, daemon):
    img, payload = big_layer_image(1, env="S=1")
    name = unique("faults/short")
    push(reg.url, name, img, tag="1")
    proxy.set_fault("/blobs/" + payload.digest, "body", data=payload.blob[:1000])
    err = pull_error(daemon, f"{proxy.host}/{name}:1")
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert "got 1000 bytes" in err.details()
    assert_store_clean(daemon, img, payload)


def test_dropped_connection_resumes_with_range(reg, proxy, daemon):
    img, payload = big_layer_image(2, env="R=1")
    name = unique("faults/cut")
    push(reg.url, name, img, tag="1")
    proxy.set_fault("/blobs/" + payload.digest, "cut", after=300_000, times=1)
    assert pull(daemon, f"{proxy.host}/{name}:1") == img.config_digest
    st = proxy.blob_stats(name, payload.digest).gets()
    assert st.statuses == [200, 206]
    assert st.ranges[0] is None and st.ranges[1].startswith("bytes=")
    resumed_at = int(st.ranges[1][len("bytes="):].rstrip("-"))
    assert 0 < resumed_at <= 300_000


def test_server_errors_are_retried(reg, proxy, daemon):
    img = busybox_image(config={"Env": ["E=1"]})
    name = unique("faults/503")
    push(reg.url, name, img, tag="1")
    proxy.set_fault(r"/manifests/", "status", code=503, times=2)
    proxy.set_fault(r"/blobs/", "status", code=500, times=1)
    assert pull(daemon, f"{proxy.host}/{name}:1") == img.config_digest


def test_persistent_server_errors_give_up_with_a_clear_error(reg, proxy, daemon):
    name = unique("faults/down")
    push(reg.url, name, busybox_image(), tag="1")
    proxy.set_fault(r"/manifests/", "status", code=404)
    err = pull_error(daemon, f"{proxy.host}/{name}:1")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert proxy.host in err.details() and "404" in err.details()


def test_registry_killed_mid_blob(make_edgecri):
    with Registry() as r, Proxy(r) as px:
        img, payload = big_layer_image(4, env="K=1")
        name = unique("faults/killed")
        push(r.url, name, img, tag="1")
        px.set_fault("/blobs/" + payload.digest, "throttle", rate=1 * MiB, times=1)
        e = start_daemon(make_edgecri)
        result = {}

        def do_pull():
            try:
                result["id"] = pull(e, f"{px.host}/{name}:1", timeout=120)
            except grpc.RpcError as err:
                result["err"] = err

        t = threading.Thread(target=do_pull)
        t.start()
        deadline = time.monotonic() + 30
        while px.blob_stats(name, payload.digest).bytes_sent < 600_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        r.stop()
        time.sleep(1.0)
        r.restart()
        t.join(120)
        assert result.get("id") == img.config_digest, result.get("err")
        ranges = px.blob_stats(name, payload.digest).gets().ranges
        assert any(x and x.startswith("bytes=") and not x.startswith("bytes=0-") for x in ranges), ranges


def test_edgecri_killed_mid_pull_then_resumes(make_edgecri):
    with Registry() as r, Proxy(r) as px:
        img, payload = big_layer_image(8, env="P=1")
        name = unique("faults/crash")
        push(r.url, name, img, tag="1")
        px.set_fault("/blobs/" + payload.digest, "throttle", rate=2 * MiB)
        e = start_daemon(make_edgecri)
        t = threading.Thread(target=lambda: pull_error(e, f"{px.host}/{name}:1", timeout=60))
        t.start()
        deadline = time.monotonic() + 30
        while px.blob_stats(name, payload.digest).bytes_sent < 3 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)
        e.proc.send_signal(signal.SIGKILL)
        e.proc.wait()
        e.logfile.close()
        e.proc = None
        t.join(30)
        # The store after the crash: no image, a partial download kept.
        assert image_records(e) == [] or all(x["id"] != img.config_digest for x in image_records(e))
        partial = ingest_files(e)
        assert partial, "the partial download should stay for a resume"
        px.clear_faults()
        e.start(config=e.config_path)
        assert pull(e, f"{px.host}/{name}:1") == img.config_digest
        last = px.blob_stats(name, payload.digest).gets().ranges[-1]
        assert last and int(last[len("bytes="):].rstrip("-")) >= 1 * MiB, last
        assert "resuming the download" in e.log()
        assert ingest_files(e) == []
        assert os.listdir(os.path.join(e.root, "layers", ".tmp")) == []


def tmp_unpack_dirs(e):
    d = os.path.join(e.root, "layers", ".tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_tmp_empty(e, timeout=10):
    """An aborted streaming unpack removes its directory from its own
    thread, maybe just after the pull answered."""
    deadline = time.monotonic() + timeout
    while tmp_unpack_dirs(e) and time.monotonic() < deadline:
        time.sleep(0.05)
    return tmp_unpack_dirs(e)


def unpacked_files(e, sub):
    """Files under fs/<sub> of every unpack in progress (they come and go)."""
    out = []
    for d in tmp_unpack_dirs(e):
        try:
            out += os.listdir(os.path.join(e.root, "layers", ".tmp", d, "fs", sub))
        except FileNotFoundError:
            pass
    return out


def many_files_layer(n, size, compression="gzip"):
    return Layer([File(f"/data/f{i:03d}", os.urandom(size)) for i in range(n)], compression=compression)


def test_layer_unpacks_while_it_downloads(reg, proxy, daemon):
    # 8 MiB at 1 MiB/s: the unpack must have written files long before the
    # last byte arrives, and the layer appears under its name only after.
    payload = many_files_layer(16, MiB // 2)
    img = Image([busybox_layer(), payload], config={"Cmd": ["sh"], "Env": ["STREAM=1"]})
    name = unique("faults/stream")
    push(reg.url, name, img, tag="1")
    proxy.set_fault("/blobs/" + payload.digest, "throttle", rate=1 * MiB)
    chain = chain_ids([busybox_layer().diff_id, payload.diff_id])[-1]
    result = {}

    def do_pull():
        try:
            result["id"] = pull(daemon, f"{proxy.host}/{name}:1", timeout=120)
        except grpc.RpcError as err:
            result["err"] = err

    t = threading.Thread(target=do_pull)
    t.start()
    seen = None
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        sent = proxy.blob_stats(name, payload.digest).bytes_sent
        files = unpacked_files(daemon, "data")
        if len(files) >= 4 and sent < len(payload.blob) * 3 // 4:
            seen = (len(files), sent)
            # Not registered before its blob is complete and verified.
            assert not os.path.exists(layer_fs(daemon, chain))
            break
        time.sleep(0.05)
    t.join(120)
    assert result.get("id") == img.config_digest, result.get("err")
    assert seen, "no unpacked file appeared before the download was three quarters done"
    assert "unpacking while its blob " + payload.digest in daemon.log()
    assert any("unpacked:" in l and "while downloading" in l for l in daemon.log().splitlines())
    with open(os.path.join(layer_fs(daemon, chain), "data", "f015"), "rb") as f:
        assert f.read() == payload.entries[-1].data()
    assert tmp_unpack_dirs(daemon) == []
    assert ingest_files(daemon) == []


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_corrupt_streamed_layer_leaves_no_layer(reg, proxy, daemon, compression):
    # A byte flipped near the end: an uncompressed layer unpacks all of it
    # and waits for the digest, a gzip one trips over the CRC first. Either
    # way the pull fails on the digest and no layer or temp dir remains.
    payload = many_files_layer(8, MiB // 2, compression)
    img = Image([busybox_layer(), payload], config={"Cmd": ["sh"], "Env": [f"SC={compression}"]})
    name = unique("faults/stream-corrupt")
    push(reg.url, name, img, tag="1")
    proxy.set_fault("/blobs/" + payload.digest, "corrupt", offset=len(payload.blob) - 5000)
    proxy.set_fault("/blobs/" + payload.digest, "throttle", rate=4 * MiB)
    err = pull_error(daemon, f"{proxy.host}/{name}:1")
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert payload.digest in err.details() and "discarded" in err.details()
    assert_store_clean(daemon, img, payload)
    chain = chain_ids([busybox_layer().diff_id, payload.diff_id])[-1]
    assert chain.split(":", 1)[1] not in layer_dirs(daemon)
    assert wait_tmp_empty(daemon) == []
    if compression == "none":
        assert "unpacking while its blob " + payload.digest in daemon.log()


def push_lying_image(url, name, tag, config_diff_ids=None, layers=None):
    """An image whose config does not describe its layers."""
    layers = layers or [busybox_layer()]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": config_diff_ids or [l.diff_id for l in layers]}}
    cfg = json.dumps(config).encode()
    c = Client(url)
    c.push_blob(name, cfg, sha256(cfg))
    for l in layers:
        c.push_blob(name, l.blob, l.digest)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
                "layers": [{"mediaType": l.media_type_for("oci"), "digest": l.digest, "size": len(l.blob)}
                           for l in layers]}
    c.push_manifest(name, tag, json.dumps(manifest).encode(), OCI_MANIFEST)
    return sha256(cfg)


def test_config_that_lies_about_its_layer(reg, daemon):
    other = Layer([File("/other", b"x")])
    name = unique("faults/liar")
    push_lying_image(reg.url, name, "1", config_diff_ids=[other.diff_id])
    err = pull_error(daemon, f"{reg.host}/{name}:1")
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert "does not match the image config" in err.details()
    assert list_images(daemon) == []
    assert layer_dirs(daemon) == []


def test_layer_count_mismatch(reg, daemon):
    layer = busybox_layer()
    name = unique("faults/count")
    push_lying_image(reg.url, name, "1", config_diff_ids=[layer.diff_id, layer.diff_id], layers=[layer])
    err = pull_error(daemon, f"{reg.host}/{name}:1")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "layers" in err.details()


def hostile(tarinfo_kwargs, data=b""):
    ti = tarfile.TarInfo(tarinfo_kwargs.pop("name"))
    for k, v in tarinfo_kwargs.items():
        setattr(ti, k, v)
    ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
    return Raw(ti, data)


def test_hostile_layers_are_refused_and_write_nothing_outside(reg, daemon):
    outside = tempfile.mkdtemp(prefix="ec-outside-", dir="/tmp")
    try:
        cases = {
            "dotdot": [hostile({"name": "../../../../" + outside[1:] + "/planted"}, b"evil")],
            "absolute": [hostile({"name": outside + "/planted"}, b"evil")],
            "through-symlink": [Symlink("/evil", outside), hostile({"name": "evil/planted"}, b"evil")],
            "hardlink-out": [hostile({"name": "h", "type": tarfile.LNKTYPE, "linkname": outside + "/x"})],
        }
        for case, entries in cases.items():
            layer = Layer(entries, parents=False)
            name = unique(f"faults/hostile-{case}")
            push(reg.url, name, Image([busybox_layer(), layer], config={"Cmd": ["sh"]}), tag="1")
            err = pull_error(daemon, f"{reg.host}/{name}:1")
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, err.details())
            assert "refusing layer entry" in err.details(), (case, err.details())
            assert os.listdir(outside) == [], case
        assert list_images(daemon) == []
        # Only the (good) busybox base layer got unpacked.
        assert len(layer_dirs(daemon)) <= 1
        assert os.listdir(os.path.join(daemon.root, "layers", ".tmp")) == []
    finally:
        os.rmdir(outside)

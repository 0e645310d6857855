"""The registry test infrastructure itself (no edgecri involved): images built
in Python, a real docker-registry on 127.0.0.1, and the fault-injecting
proxy — so that an image-service test failing means edgecri, not the rig."""
import base64
import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from registry import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, BlockDevice, CharDevice, Client,
                      Dir, Fifo, File, Hardlink, Layer, Opaque, Proxy, Raw, Registry, RegistryError, Symlink,
                      Whiteout, big_image, busybox_image, busybox_layer, decompress, docker_archive_tar,
                      multiarch_index, oci_layout_tar, parse_challenge, push, read_tar, sha256)
from registry.client import opener


@pytest.fixture(scope="module")
def reg():
    with Registry() as r:
        yield r


@pytest.fixture
def proxy(reg):
    with Proxy(reg) as p:
        yield p
    assert not p.errors, f"proxy bugs: {p.errors}"


@pytest.fixture(scope="module")
def bb(reg):
    """A busybox image pushed as infra/busybox:latest; returns (image, layer)."""
    img = busybox_image(kind="oci")
    push(reg.url, "infra/busybox", img, tag="latest")
    return img, img.layers[0]


def get(url, headers=None, timeout=10, context=None):
    """Plain urllib GET that returns (status, headers, body) for any status."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener(context).open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# -- images --------------------------------------------------------------------

def test_layer_entries_are_in_the_tar():
    layer = Layer([
        File("/etc/motd", b"hello\n", mode=0o640, uid=7, gid=8, mtime=1234567890),
        Dir("/data", mode=0o700, uid=1000, gid=1000),
        Symlink("/bin/sh", "busybox"),
        Hardlink("/etc/motd.link", "/etc/motd"),
        CharDevice("/dev/null", 1, 3),
        BlockDevice("/dev/loop9", 7, 9),
        Fifo("/run/fifo"),
        Whiteout("/etc/old.conf"),
        Opaque("/var/cache"),
        File("/caps", b"x", xattrs={"user.test": "v"}),
        ("/tuple", b"short form", 0o600),
    ], compression="none")
    m = {ti.name: ti for ti in layer.members()}
    motd = m["etc/motd"]
    assert motd.isreg() and (motd.mode, motd.uid, motd.gid, motd.mtime) == (0o640, 7, 8, 1234567890)
    assert m["etc"].isdir() and m["etc"].mode == 0o755, "parent directories are added"
    assert m["data"].isdir() and (m["data"].mode, m["data"].uid) == (0o700, 1000)
    assert m["bin/sh"].issym() and m["bin/sh"].linkname == "busybox"
    assert m["etc/motd.link"].islnk() and m["etc/motd.link"].linkname == "etc/motd"
    assert m["dev/null"].ischr() and (m["dev/null"].devmajor, m["dev/null"].devminor) == (1, 3)
    assert m["dev/loop9"].isblk()
    assert m["run/fifo"].isfifo()
    assert m["etc/.wh.old.conf"].isreg() and m["etc/.wh.old.conf"].size == 0
    assert m["var/cache/.wh..wh..opq"].isreg()
    assert m["caps"].pax_headers["SCHILY.xattr.user.test"] == "v"
    assert m["tuple"].mode == 0o600
    assert all(ti.uname == "" and ti.gname == "" for ti in m.values())
    names = [ti.name for ti in layer.members()]
    assert names.index("etc") < names.index("etc/motd"), "parents come first"


def test_raw_entries_allow_hostile_layers():
    ti = tarfile.TarInfo("../../escape")
    ti.size = 3
    abs_link = tarfile.TarInfo("/abs")
    abs_link.type = tarfile.SYMTYPE
    abs_link.linkname = "/etc/shadow"
    layer = Layer([Raw(ti, b"bad"), Raw(abs_link)], compression="none")
    names = [m.name for m in layer.members()]
    assert names == ["../../escape", "/abs"]


@pytest.mark.parametrize("compression,magic", [("gzip", b"\x1f\x8b"), ("zstd", b"\x28\xb5\x2f\xfd"),
                                               ("none", None)], ids=["gzip", "zstd", "none"])
def test_layer_compression_digests_and_media_types(compression, magic):
    entries = [File("/a", b"a" * 10000), Dir("/d")]
    layer = Layer(entries, compression=compression)
    again = Layer(entries, compression=compression)
    assert (layer.digest, layer.diff_id) == (again.digest, again.diff_id), "builds are reproducible"
    if magic:
        assert layer.blob.startswith(magic)
    assert layer.digest == "sha256:" + hashlib.sha256(layer.blob).hexdigest()
    assert layer.diff_id == "sha256:" + hashlib.sha256(decompress(layer.blob, compression)).hexdigest()
    assert layer.diff_id == sha256(layer.tar)
    suffix = {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[compression]
    assert layer.media_type_for("oci") == "application/vnd.oci.image.layer.v1.tar" + suffix
    assert layer.media_type_for("docker") == "application/vnd.docker.image.rootfs.diff.tar" + suffix.replace("+", ".")
    assert Layer.from_blob(layer.blob).diff_id == layer.diff_id


def test_busybox_layer_is_runnable(tmp_path):
    layer = busybox_layer(applets=["sh", "echo", "id", "cat", "/usr/bin/env"])
    with open("/bin/busybox", "rb") as f:
        assert layer.entries[[e.path for e in layer.entries].index("bin/busybox")].content == f.read()
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as tf:
        tf.extractall(tmp_path, filter="fully_trusted") if hasattr(tarfile, "data_filter") else tf.extractall(tmp_path)
    assert os.readlink(tmp_path / "bin/sh") == "busybox"
    assert os.readlink(tmp_path / "usr/bin/env") == "/bin/busybox"
    out = subprocess.run([str(tmp_path / "bin/sh"), "-c", "echo hi; cat /dev/null"], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    assert out == "hi\n"
    passwd = (tmp_path / "etc/passwd").read_text()
    assert "edge:x:1000:1000:" in passwd and "nobody:x:65534:65534:" in passwd
    assert "video:x:44:edge" in (tmp_path / "etc/group").read_text()
    assert busybox_layer() is busybox_layer(), "cached"


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_image_config_and_manifest(kind):
    img = busybox_image(kind=kind, config=dict(Entrypoint=["/bin/sh", "-c"], Cmd=["echo hi"], User="1000:1000",
                                               WorkingDir="/home/edge", Labels={"a": "b"},
                                               StopSignal="SIGUSR1"),
                        extra_layers=[Layer([Whiteout("/etc/hostname")])])
    cfg = json.loads(img.config_blob)
    assert img.config_digest == sha256(img.config_blob) == img.image_id
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [l.diff_id for l in img.layers]}
    assert cfg["config"]["User"] == "1000:1000" and cfg["config"]["StopSignal"] == "SIGUSR1"
    assert (cfg["os"], cfg["architecture"]) == ("linux", "amd64")
    m = json.loads(img.manifest)
    assert img.manifest_digest == sha256(img.manifest)
    assert m["schemaVersion"] == 2
    if kind == "oci":
        assert m["mediaType"] == OCI_MANIFEST
        assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        assert m["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    else:
        assert m["mediaType"] == DOCKER_MANIFEST
        assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
        assert m["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert m["config"] == {"mediaType": m["config"]["mediaType"], "size": len(img.config_blob),
                           "digest": img.config_digest}
    assert [l["digest"] for l in m["layers"]] == [l.digest for l in img.layers]


# -- push and pull -------------------------------------------------------------

@pytest.mark.parametrize("kind,compression", [("oci", "gzip"), ("oci", "zstd"), ("oci", "none"),
                                              ("docker", "gzip"), ("docker", "zstd")])
def test_push_then_pull_through_proxy(reg, proxy, kind, compression):
    img = busybox_image(kind=kind, compression=compression,
                        extra_layers=[Layer([File("/hello", kind + compression)], compression=compression)])
    name = f"infra/{kind}-{compression}"
    assert push(reg.url, name, img, tag="v1") == img.manifest_digest
    c = Client(proxy.url)
    r = c.manifest(name, "v1")
    assert r.status == 200
    assert r.content_type == img.manifest_media_type
    assert r.digest == img.manifest_digest == sha256(r.body)
    assert r.body == img.manifest
    m = r.json()
    assert c.manifest(name, img.manifest_digest).body == img.manifest, "by digest too"
    cfg = c.blob(name, m["config"]["digest"])
    assert sha256(cfg.body) == img.config_digest
    diff_ids = json.loads(cfg.body)["rootfs"]["diff_ids"]
    for desc, diff_id in zip(m["layers"], diff_ids):
        b = c.blob(name, desc["digest"])
        assert b.status == 200 and b.complete and len(b.body) == desc["size"]
        assert sha256(b.body) == desc["digest"]
        assert sha256(decompress(b.body, compression)) == diff_id
    assert proxy.manifest_stats(name, "v1").count == 1
    assert proxy.blob_stats(name, img.layers[0].digest).statuses == [200]


def test_push_skips_existing_blobs(reg, proxy):
    img = busybox_image(kind="oci", config={"Cmd": ["true"]})
    push(proxy.url, "infra/skip", img, tag="a")
    first = proxy.count(r"/blobs/uploads/", method="POST")
    push(proxy.url, "infra/skip", img, tag="b")
    assert first == 2 and proxy.count(r"/blobs/uploads/", method="POST") == 2, "second push only HEADs"
    assert sorted(Client(reg.url).tags("infra/skip")) == ["a", "b"]


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_multiarch_index(reg, proxy, kind):
    idx = multiarch_index(kind=kind)
    name = f"infra/multi-{kind}"
    assert push(reg.url, name, idx, tag="v1") == idx.manifest_digest
    c = Client(proxy.url)
    r = c.manifest(name, "v1")
    assert r.status == 200 and r.body == idx.manifest and r.digest == idx.manifest_digest
    assert r.content_type == (OCI_INDEX if kind == "oci" else DOCKER_LIST)
    entries = r.json()["manifests"]
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
        {"architecture": "arm", "os": "linux", "variant": "v7"}]
    for e, img in zip(entries, idx.images):
        child = c.manifest(name, e["digest"])
        assert child.status == 200 and child.body == img.manifest and child.content_type == e["mediaType"]
        cfg = json.loads(c.blob(name, img.config_digest).body)
        assert (cfg["architecture"], cfg.get("variant")) == (img.architecture, img.variant)
    arm = idx.image_for("arm", "v7")
    assert decompress(c.blob(name, arm.layers[0].digest).body, "gzip").find(b"linux/arm/v7\n") > 0


def test_registry_content_negotiation(reg, proxy):
    """What docker-registry 2.8 does with Accept headers (the runtime must send them)."""
    c = Client(proxy.url)
    oci = busybox_image(kind="oci")
    push(reg.url, "infra/nego-oci", oci, tag="v1")
    r = c.manifest("infra/nego-oci", "v1", accept=[DOCKER_MANIFEST])
    assert r.status == 404 and b"OCI manifest found, but accept header does not support" in r.body
    docker = multiarch_index(kind="docker")
    push(reg.url, "infra/nego-list", docker, tag="v1")
    # A manifest list asked for without accepting lists: the linux/amd64 child.
    r = c.manifest("infra/nego-list", "v1", accept=[DOCKER_MANIFEST])
    assert r.status == 200 and r.digest == docker.image_for("amd64").manifest_digest
    # No Accept at all: converted to a signed schema 1 manifest.
    r = c.manifest("infra/nego-list", "v1", accept=[])
    assert r.content_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    # HEAD gives the digest and type without a body.
    r = c.manifest("infra/nego-oci", "v1", method="HEAD")
    assert (r.status, r.body, r.digest, r.content_type) == (200, b"", oci.manifest_digest, OCI_MANIFEST)
    assert int(r.header("Content-Length")) == len(oci.manifest)


# -- authentication ------------------------------------------------------------

def test_bearer_token_flow(reg, bb):
    img, _ = bb
    with Proxy(reg, auth="bearer", username="alice", password="s3cret") as px:
        status, hdrs, _ = get(px.url + "/v2/")
        scheme, ch = parse_challenge(hdrs["WWW-Authenticate"])
        assert status == 401 and scheme == "bearer"
        assert ch == {"realm": px.url + "/token", "service": "edgecri-test-registry"}
        status, hdrs, body = get(px.url + "/v2/infra/busybox/manifests/latest")
        assert status == 401 and json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        assert parse_challenge(hdrs["WWW-Authenticate"])[1]["scope"] == "repository:infra/busybox:pull"

        token_url = px.url + "/token?service=edgecri-test-registry&scope=repository:infra/busybox:pull"
        assert get(token_url)[0] == 401, "no anonymous tokens"
        bad = "Basic " + base64.b64encode(b"alice:wrong").decode()
        assert get(token_url, {"Authorization": bad})[0] == 401
        good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        status, _, body = get(token_url, {"Authorization": good})
        doc = json.loads(body)
        assert status == 200 and doc["expires_in"] == 300 and doc["token"] == doc["access_token"]
        bearer = {"Authorization": "Bearer " + doc["token"], "Accept": OCI_MANIFEST}
        status, hdrs, body = get(px.url + "/v2/infra/busybox/manifests/latest", bearer)
        assert status == 200 and sha256(body) == img.manifest_digest
        # The token is for infra/busybox only.
        status, hdrs, _ = get(px.url + "/v2/infra/other/manifests/latest", bearer)
        assert status == 401 and 'error="insufficient_scope"' in hdrs["WWW-Authenticate"]
        assert px.token_requests[-1].scopes == ["repository:infra/busybox:pull"]
        assert px.token_requests[-1].user == "alice"

        # The Client follows the challenge; pushes get a pull,push token.
        c = Client(px.url, auth=("alice", "s3cret"))
        assert c.manifest("infra/busybox", "latest").digest == img.manifest_digest
        c.push("infra/pushed-via-bearer", busybox_image(config={"Cmd": ["id"]}), tag="v1")
        assert "repository:infra/pushed-via-bearer:pull,push" in [s for t in px.token_requests for s in t.scopes]
        # Expired tokens: a 401 with error=invalid_token, the client re-authenticates.
        n = c.token_fetches
        px.expire_tokens()
        assert c.manifest("infra/busybox", "latest").status == 200 and c.token_fetches == n + 1

        # OAuth2 POST form (containerd's first choice), with a refresh token.
        form = "grant_type=password&username=alice&password=s3cret&service=edgecri-test-registry" \
               "&scope=repository:infra/busybox:pull&client_id=edgecri"
        req = urllib.request.Request(px.url + "/token", data=form.encode(), method="POST")
        with opener().open(req, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["access_token"] and doc["refresh_token"] and doc["scope"] == "repository:infra/busybox:pull"
        req = urllib.request.Request(px.url + "/token", method="POST", data=(
            f"grant_type=refresh_token&refresh_token={doc['refresh_token']}&service=x"
            "&scope=repository:infra/busybox:pull").encode())
        with opener().open(req, timeout=10) as r:
            assert json.loads(r.read())["access_token"]
        assert px.token_requests[-1].grant_type == "refresh_token" and px.token_requests[-1].client_id is None


def test_bearer_anonymous_pull(reg, bb):
    img, _ = bb
    with Proxy(reg, auth="bearer", anonymous_pull=True) as px:
        c = Client(px.url)
        assert c.manifest("infra/busybox", "latest").digest == img.manifest_digest
        assert px.token_requests[-1].user is None
        with pytest.raises(Exception, match="401"):
            c.push("infra/anon", busybox_image(config={"Cmd": ["env"]}))
        # A failing token server.
        px.set_fault("^/token$", "status", code=500, times=1)
        with pytest.raises(RegistryError) as e:
            Client(px.url).manifest("infra/busybox", "latest")
        assert e.value.response.status == 500
        assert Client(px.url).manifest("infra/busybox", "latest").status == 200


def test_basic_auth(reg, bb):
    img, _ = bb
    with Proxy(reg, auth="basic", username="bob", password="pw") as px:
        status, hdrs, _ = get(px.url + "/v2/infra/busybox/manifests/latest")
        assert status == 401 and hdrs["WWW-Authenticate"] == 'Basic realm="edgecri-test-registry"'
        assert Client(px.url, auth=("bob", "nope")).manifest("infra/busybox", "latest").status == 401
        r = Client(px.url, auth=("bob", "pw")).manifest("infra/busybox", "latest")
        assert r.status == 200 and r.digest == img.manifest_digest
        assert px.requests[-1].authorization == "Basic " + base64.b64encode(b"bob:pw").decode()
    # The registry's own htpasswd auth (bcrypt), too.
    with Registry(htpasswd={"carol": "pw2"}) as r2:
        assert Client(r2.url).ping().status == 401
        push(r2.url, "infra/htpasswd", img, auth=("carol", "pw2"))
        assert Client(r2.url, auth=("carol", "pw2")).manifest("infra/htpasswd", "latest").status == 200


def test_tls_registry_and_mutual_tls_proxy(bb):
    img, layer = bb
    with Registry(tls=True) as treg:
        assert treg.url.startswith("https://127.0.0.1:")
        push(treg.url, "infra/tls", img, tag="v1", ca_file=treg.ca_file)
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            opener().open(treg.url + "/v2/", timeout=5)
        assert Client(treg.url, ca_file=treg.ca_file).manifest("infra/tls", "v1").digest == img.manifest_digest
        with Proxy(treg, tls=True, require_client_cert=True) as px:
            assert px.url.startswith("https://")
            c = Client(px.url, ca_file=px.ca_file, cert=px.client_cert)
            b = c.blob("infra/tls", layer.digest)
            assert b.status == 200 and sha256(b.body) == layer.digest
            assert px.requests[-1].client_cert == "edgecri-client"
            with pytest.raises(OSError):
                Client(px.url, ca_file=px.ca_file).ping()
            deadline = time.monotonic() + 5  # (TLS 1.3: the server may log it after the client gave up)
            while not px.tls_errors and time.monotonic() < deadline:
                time.sleep(0.01)
            assert px.tls_errors and "certificate" in px.tls_errors[-1][1].lower()


# -- faults --------------------------------------------------------------------

def test_cut_once_then_resume_with_range(proxy, bb):
    _, layer = bb
    c = Client(proxy.url)
    f = proxy.set_fault("/blobs/" + layer.digest, "cut", after=100_000, times=1)
    first = c.blob("infra/busybox", layer.digest)
    assert not first.complete and len(first.body) == 100_000
    rest = c.blob("infra/busybox", layer.digest, range=(len(first.body), None))
    assert rest.status == 206 and rest.complete
    assert rest.header("Content-Range") == f"bytes 100000-{layer.size - 1}/{layer.size}"
    assert sha256(first.body + rest.body) == layer.digest
    st = proxy.blob_stats("infra/busybox", layer.digest)
    assert st.count == 2 and st.ranges == [None, "bytes=100000-"] and st.statuses == [200, 206]
    assert st.bytes_sent == layer.size and st.incomplete == 1
    assert f.hits == 1 and f.remaining == 0
    assert c.blob("infra/busybox", layer.digest).complete, "only once"


def test_cut_every_time_with_reset(proxy, bb):
    _, layer = bb
    proxy.set_fault("/blobs/" + layer.digest, "cut", after=4096, reset=True)
    c = Client(proxy.url)
    for _ in range(3):
        r = c.blob("infra/busybox", layer.digest)
        assert not r.complete and len(r.body) <= 4096
    proxy.clear_faults()
    assert sha256(c.blob("infra/busybox", layer.digest).body) == layer.digest


def test_corrupt_one_byte(proxy, bb):
    _, layer = bb
    proxy.set_fault("/blobs/" + layer.digest, "corrupt", offset=500_000)
    c = Client(proxy.url)
    r = c.blob("infra/busybox", layer.digest)
    assert r.complete and len(r.body) == layer.size and sha256(r.body) != layer.digest
    diff = [i for i in range(layer.size) if r.body[i] != layer.blob[i]]
    assert diff == [500_000]
    # The offset is into the blob: a range crossing it is corrupted at the same place.
    r = c.blob("infra/busybox", layer.digest, range="bytes=499990-500009")
    assert r.status == 206 and r.body != layer.blob[499990:500010] and r.body[:10] == layer.blob[499990:500000]


def test_status_faults(proxy, bb):
    img, layer = bb
    c = Client(proxy.url)
    proxy.set_fault(r"/manifests/latest$", "status", code=503, times=2, headers={"Retry-After": "1"})
    r1, r2, r3 = (c.manifest("infra/busybox", "latest") for _ in range(3))
    assert (r1.status, r2.status, r3.status) == (503, 503, 200)
    assert r1.header("Retry-After") == "1" and r1.json()["errors"][0]["code"] == "UNAVAILABLE"
    proxy.set_fault("/blobs/" + layer.digest, "status", code=404, methods=["GET"])
    r = c.blob("infra/busybox", layer.digest)
    assert r.status == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert c.blob("infra/busybox", layer.digest, method="HEAD").status == 200, "HEAD not matched"
    assert proxy.manifest_stats("infra/busybox", "latest").statuses == [503, 503, 200]


def test_redirect_to_cdn_without_credentials(reg, bb):
    img, layer = bb
    with Proxy(reg, auth="bearer") as px:
        px.set_fault(r"/blobs/sha256:", "redirect", methods=["GET"])
        c = Client(px.url, auth=("user", "pass"))
        r = c.blob("infra/busybox", layer.digest)
        assert r.status == 200 and sha256(r.body) == layer.digest
        assert r.url == f"{px.cdn_url}/cdn/v2/infra/busybox/blobs/{layer.digest}"
        main = px.blob_stats("infra/busybox", layer.digest)
        assert main.statuses == [401, 307] and main.records[-1].bytes_sent == 0
        cdn = px.cdn_stats("infra/busybox", layer.digest)
        assert cdn.count == 1 and cdn.statuses == [200] and cdn.authorization == [None]
        assert px.cdn_authorization_seen == []
        # Range requests work through the redirect.
        r = c.blob("infra/busybox", layer.digest, range="bytes=10-19")
        assert r.status == 206 and r.body == layer.blob[10:20]
        assert px.cdn_stats("infra/busybox", layer.digest).ranges == [None, "bytes=10-19"]
        # A client that leaks its token to the CDN is caught (urllib forwards add_header()s).
        token = c._tokens["repository:infra/busybox:pull"]
        req = urllib.request.Request(f"{px.url}/v2/infra/busybox/blobs/{layer.digest}",
                                     headers={"Authorization": token})
        with opener().open(req, timeout=10) as resp:
            assert sha256(resp.read()) == layer.digest
        assert px.cdn_authorization_seen == [token]


def test_throttle(proxy, bb):
    _, layer = bb
    proxy.set_fault("/blobs/" + layer.digest, "throttle", rate=4_000_000)
    t = time.monotonic()
    r = Client(proxy.url).blob("infra/busybox", layer.digest)
    elapsed = time.monotonic() - t
    assert sha256(r.body) == layer.digest
    expected = layer.size / 4_000_000
    assert expected * 0.9 <= elapsed <= expected + 1.0


def test_drop_delay_stall(proxy, bb):
    c = Client(proxy.url, timeout=0.5)
    proxy.set_fault("/manifests/", "drop", times=1)
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        c.manifest("infra/busybox", "latest")
    proxy.set_fault("/manifests/", "delay", seconds=0.3, times=1)
    t = time.monotonic()
    assert c.manifest("infra/busybox", "latest").status == 200
    assert time.monotonic() - t >= 0.3
    proxy.set_fault("/manifests/", "stall", times=1)
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        c.manifest("infra/busybox", "latest")
    assert c.manifest("infra/busybox", "latest").status == 200


def test_body_headers_and_chunked_faults(proxy, bb):
    img, _ = bb
    c = Client(proxy.url)
    tampered = img.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":2 ')
    proxy.set_fault("/manifests/", "body", data=tampered, times=1)
    r = c.manifest("infra/busybox", "latest")
    assert r.body == tampered and r.digest == img.manifest_digest != sha256(r.body)
    proxy.set_fault("/manifests/", "headers", remove=["Docker-Content-Digest"], set={"Content-Type": "text/plain"},
                    times=1)
    r = c.manifest("infra/busybox", "latest")
    assert r.digest is None and r.content_type == "text/plain" and r.body == img.manifest
    proxy.set_fault("/manifests/", "chunked", times=1)
    r = c.manifest("infra/busybox", "latest")
    assert r.header("Transfer-Encoding") == "chunked" and r.header("Content-Length") is None
    assert r.body == img.manifest


def test_ranges_pass_through(proxy, bb):
    _, layer = bb
    c = Client(proxy.url)
    r = c.blob("infra/busybox", layer.digest, method="HEAD")
    assert r.header("Accept-Ranges") == "bytes" and int(r.header("Content-Length")) == layer.size
    r = c.blob("infra/busybox", layer.digest, range="bytes=0-0")
    assert (r.status, r.body) == (206, layer.blob[:1])
    r = c.blob("infra/busybox", layer.digest, range=f"bytes={layer.size}-")
    assert r.status == 416 and r.header("Content-Range") == f"bytes */{layer.size}"
    # docker-registry 2.8 quirk: the 416 announces the blob's Content-Length, sends a 33-byte text
    # and closes; the proxy passes that on faithfully (and closes too).
    assert int(r.header("Content-Length")) == layer.size and not r.complete
    assert r.body == b"invalid range: failed to overlap\n"
    # If-Range with the digest ETag: still a 206; with a stale one the whole blob.
    r = c.blob("infra/busybox", layer.digest, range="bytes=5-", headers={"If-Range": f'"{layer.digest}"'})
    assert r.status == 206 and r.body == layer.blob[5:]
    r = c.blob("infra/busybox", layer.digest, range="bytes=5-", headers={"If-Range": '"sha256:stale"'})
    assert r.status == 200 and len(r.body) == layer.size
    st = proxy.blob_stats("infra/busybox", layer.digest)
    assert st.methods == ["HEAD", "GET", "GET", "GET", "GET"]
    assert st.gets().ranges == ["bytes=0-0", f"bytes={layer.size}-", "bytes=5-", "bytes=5-"]


def test_registry_stop_restart_pause(bb):
    img, _ = bb
    with Registry() as r, Proxy(r) as px:
        push(r.url, "infra/restart", img)
        port = r.port
        r.stop()
        with pytest.raises(urllib.error.URLError):
            opener().open(r.url + "/v2/", timeout=5)
        assert Client(px.url).manifest("infra/restart", "latest").status == 502, "proxy to a dead registry"
        r.restart()
        assert r.port == port and r.running
        assert Client(px.url).manifest("infra/restart", "latest").digest == img.manifest_digest
        r.pause()
        try:
            with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
                Client(r.url, timeout=0.3).ping()
        finally:
            r.resume()
        assert Client(r.url).ping().status == 200


def test_pull_through_mirror(reg, bb):
    img, layer = bb
    with Proxy(reg, auth="bearer") as px, Registry(mirror_of=px.url, mirror_auth=("user", "pass")) as mirror:
        c = mirror.client()
        assert c.manifest("infra/busybox", "latest").digest == img.manifest_digest
        assert sha256(c.blob("infra/busybox", layer.digest).body) == layer.digest
        assert px.token_requests and all(t.granted for t in px.token_requests)


# -- archives ------------------------------------------------------------------

def _check_layout(files, top):
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/") and data is not None:
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    [desc] = index["manifests"]
    assert desc["digest"] == top.manifest_digest and desc["size"] == len(top.manifest)
    return desc


def test_oci_layout_tar(tmp_path):
    img = busybox_image(kind="oci")
    files = read_tar(oci_layout_tar(img, "1.35", image_name="docker.io/library/busybox:1.35"))
    desc = _check_layout(files, img)
    assert desc["mediaType"] == OCI_MANIFEST
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "1.35",
                                   "io.containerd.image.name": "docker.io/library/busybox:1.35"}
    expected = {img.manifest_digest, img.config_digest} | {l.digest for l in img.layers}
    assert {"sha256:" + n.rsplit("/", 1)[1] for n, d in files.items()
            if n.startswith("blobs/sha256/") and d is not None} == expected
    idx = multiarch_index()
    path = tmp_path / "idx.tar"
    oci_layout_tar(idx, "multi", path=str(path))
    files = read_tar(path.read_bytes())
    assert _check_layout(files, idx)["mediaType"] == OCI_INDEX
    for child in idx.images:
        assert "blobs/sha256/" + child.manifest_digest.split(":")[1] in files


def test_docker_archive_tar():
    img = busybox_image(kind="docker", extra_layers=[Layer([File("/x", b"y")], compression="zstd")])
    files = read_tar(docker_archive_tar(img, ["busybox:1.35", "example.com/bb:v1"]))
    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["busybox:1.35", "example.com/bb:v1"]
    assert entry["Config"] == img.config_digest.split(":")[1] + ".json"
    assert files[entry["Config"]] == img.config_blob
    assert [sha256(files[p]) for p in entry["Layers"]] == [l.diff_id for l in img.layers], "uncompressed tars"
    for p in entry["Layers"]:
        d = p.split("/")[0]
        assert files[d + "/VERSION"] == b"1.0" and json.loads(files[d + "/json"])["id"] == d
    repos = json.loads(files["repositories"])
    assert repos["busybox"]["1.35"] == entry["Layers"][-1].split("/")[0]
    two = read_tar(docker_archive_tar([(img, ["a:1"]), (busybox_image(), ["b:2"])]))
    assert [e["RepoTags"] for e in json.loads(two["manifest.json"])] == [["a:1"], ["b:2"]]


def test_big_image_is_cached_and_reproducible(tmp_path, monkeypatch, reg):
    monkeypatch.setenv("EDGECRI_TEST_CACHE", str(tmp_path))
    t = time.monotonic()
    a = big_image(total_mb=3, layers=2)
    first = time.monotonic() - t
    t = time.monotonic()
    b = big_image(total_mb=3, layers=2)
    second = time.monotonic() - t
    assert a.manifest_digest == b.manifest_digest and len(a.layers) == 3  # busybox + 2
    assert second < first or second < 0.1
    data = a.layers[1:]
    assert sum(len(l.tar) for l in data) >= 3 << 20
    assert all(l.size > len(l.tar) * 0.95 for l in data), "incompressible"
    assert big_image(total_mb=3, layers=2, seed=1).manifest_digest != a.manifest_digest
    push(reg.url, "infra/big", a)
    assert Client(reg.url).manifest("infra/big", "latest").digest == a.manifest_digest

"""`edgecri import` and the import directory, end to end: OCI image-layout
and `docker save` tarballs (plain or compressed) handed to a running daemon,
checked through the CRI image service and the stores on disk."""
import hashlib
import io
import json
import lzma
import os
import subprocess
import tarfile
import time

import pytest

from conftest import BIN
from imagetest import (blob_path, chain_ids, image_records, ingest_files, layer_dirs, layer_fs, list_images,
                       start_daemon, status)
from registry import (File, Image, Layer, Symlink, compress, docker_archive_tar, multiarch_index, oci_layout_tar,
                      read_tar)


def small_image(name, extra=b"", compression="gzip"):
    """Two layers (the second one shadows a file of the first); unique to ``name``."""
    base = Layer([File("/etc/app.conf", "base\n"), File("/usr/share/app/name", name + "\n"),
                  Symlink("/usr/bin/app", "../share/app/name")], compression=compression)
    top = Layer([File("/etc/app.conf", "top\n"), File("/data/extra", extra)], compression=compression)
    return Image([base, top], config={"Cmd": ["/usr/bin/app"], "Labels": {"name": name}})


def run_import(e, path, cwd=None, socket=None, timeout=60):
    return subprocess.run([BIN, "import", "--socket", socket or e.socket, path], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def imported_lines(out):
    """{id: [tags]} from the "imported <id> <tags...>" lines."""
    res = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "imported" and parts[1].startswith("sha256:"):
            res[parts[1]] = parts[2:]
    return res


def import_ok(e, path, **kw):
    out = run_import(e, path, **kw)
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}\n" \
                                f"log:\n{e.log()[-3000:]}"
    return out


def import_fails(e, path, **kw):
    out = run_import(e, path, **kw)
    assert out.returncode == 1, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.stderr.startswith("edgecri import: "), out.stderr
    assert not imported_lines(out), out.stdout
    return out


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def tar_of(files):
    """A tarball of {name: bytes} (regular files only), in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            if data is None:
                continue
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def assert_unpacked(e, img):
    chains = chain_ids([l.diff_id for l in img.layers])
    for c in chains:
        assert os.path.isdir(layer_fs(e, c)), f"layer {c} not unpacked; layers: {layer_dirs(e)}"
    return chains


def store_blobs(e):
    d = os.path.join(e.root, "content", "blobs", "sha256")
    return sorted("sha256:" + x for x in os.listdir(d)) if os.path.isdir(d) else []


def assert_no_images(e):
    assert list_images(e) == []
    assert image_records(e) == []


# -- OCI image layouts ------------------------------------------------------------------

@pytest.mark.parametrize("naming", ["containerd-name", "ref-name-reference", "ref-name-tag-only"])
def test_import_oci_layout(make_edgecri, workdir, naming):
    img = small_image(f"oci-{naming}")
    name = {"containerd-name": "registry.example.com/apps/tool:1.0",
            "ref-name-reference": "registry.example.com/apps/tool:2.0",
            "ref-name-tag-only": None}[naming]
    if naming == "containerd-name":
        # io.containerd.image.name wins over a ref.name that is a reference too.
        data = oci_layout_tar(img, "other.example.com/ignored:9", image_name=name)
    elif naming == "ref-name-reference":
        data = oci_layout_tar(img, name)
    else:
        data = oci_layout_tar(img, "3.0")  # a bare tag is no name
    e = start_daemon(make_edgecri)
    out = import_ok(e, write(os.path.join(workdir, "image.tar"), data))
    tags = [name] if name else []
    assert imported_lines(out) == {img.config_digest: tags}, out.stdout
    assert any("registering image 1 of 1" in line for line in out.stdout.splitlines()), out.stdout

    st = status(e, img.config_digest).image
    assert st.id == img.config_digest
    assert list(st.repo_tags) == tags
    assert list(st.repo_digests) == ([f"{name.rsplit(':', 1)[0]}@{img.manifest_digest}"] if name else [])
    if name:
        assert status(e, name).image.id == img.config_digest
        assert status(e, f"{name.rsplit(':', 1)[0]}@{img.manifest_digest}").image.id == img.config_digest
    listed = list_images(e)
    assert [i.id for i in listed] == [img.config_digest]
    assert list(listed[0].repo_tags) == tags

    chains = assert_unpacked(e, img)
    assert layer_dirs(e) == sorted(c.split(":", 1)[1] for c in chains)
    with open(os.path.join(layer_fs(e, chains[0]), "usr/share/app/name")) as f:
        assert f.read() == f"oci-{naming}\n"
    with open(os.path.join(layer_fs(e, chains[1]), "etc/app.conf")) as f:
        assert f.read() == "top\n"
    assert os.readlink(os.path.join(layer_fs(e, chains[0]), "usr/bin/app")) == "../share/app/name"
    for d in (img.manifest_digest, img.config_digest):
        with open(blob_path(e, d), "rb") as f:
            assert f.read() == (img.manifest if d == img.manifest_digest else img.config_blob)
    recs = image_records(e)
    assert len(recs) == 1
    assert ingest_files(e) == []


def test_import_multiplatform_index_picks_amd64(make_edgecri, workdir):
    idx = multiarch_index()
    amd64 = idx.image_for("amd64")
    e = start_daemon(make_edgecri)
    out = import_ok(e, write(os.path.join(workdir, "multi.tar"),
                             oci_layout_tar(idx, "1", image_name="example.com/multi/busybox:1")))
    assert imported_lines(out) == {amd64.config_digest: ["example.com/multi/busybox:1"]}
    st = status(e, "example.com/multi/busybox:1").image
    assert st.id == amd64.config_digest
    assert list(st.repo_digests) == [f"example.com/multi/busybox@{idx.manifest_digest}"]
    chains = assert_unpacked(e, amd64)
    assert layer_dirs(e) == sorted(c.split(":", 1)[1] for c in chains), "only the amd64 image is unpacked"
    assert os.path.isfile(os.path.join(layer_fs(e, chains[0]), "bin/busybox"))
    for other in idx.images:
        if other is not amd64:
            assert other.config_digest not in [i.id for i in list_images(e)]


# -- docker save archives -------------------------------------------------------------

def test_import_docker_save(make_edgecri, workdir):
    img = small_image("docker-save", extra=b"x" * 5000)
    data = docker_archive_tar(img, ["myapp:v2", "registry.example.com/team/app:latest", "library/other"])
    e = start_daemon(make_edgecri)
    out = import_ok(e, write(os.path.join(workdir, "save.tar"), data))
    tags = ["docker.io/library/myapp:v2", "registry.example.com/team/app:latest", "docker.io/library/other:latest"]
    assert imported_lines(out) == {img.config_digest: tags}, out.stdout
    st = status(e, "myapp:v2").image
    assert st.id == img.config_digest
    assert list(st.repo_tags) == tags
    assert list(st.repo_digests) == [], "a docker save archive has no registry manifest to name"
    assert status(e, "docker.io/library/myapp:v2").image.id == img.config_digest
    assert status(e, "registry.example.com/team/app").image.id == img.config_digest
    chains = assert_unpacked(e, img)
    with open(os.path.join(layer_fs(e, chains[1]), "data/extra"), "rb") as f:
        assert f.read() == b"x" * 5000
    assert [r["id"] for r in image_records(e)] == [img.config_digest]


def test_import_docker_save_with_two_images(make_edgecri, workdir):
    one, two = small_image("save-one"), small_image("save-two", extra=b"two")
    data = docker_archive_tar([(one, ["one:1"]), (two, ["example.com/two:2", "two:latest"])])
    e = start_daemon(make_edgecri)
    out = import_ok(e, write(os.path.join(workdir, "two.tar"), data))
    assert imported_lines(out) == {one.config_digest: ["docker.io/library/one:1"],
                                   two.config_digest: ["example.com/two:2", "docker.io/library/two:latest"]}
    assert status(e, "one:1").image.id == one.config_digest
    assert status(e, "two").image.id == two.config_digest
    assert sorted(i.id for i in list_images(e)) == sorted([one.config_digest, two.config_digest])
    assert_unpacked(e, one)
    assert_unpacked(e, two)


# -- compressed tarballs ----------------------------------------------------------------

@pytest.mark.parametrize("kind,compression", [("oci", "gzip"), ("oci", "zstd"), ("docker", "gzip"),
                                              ("docker", "zstd"), ("oci", "xz")])
def test_import_compressed_tarball(make_edgecri, workdir, kind, compression):
    img = small_image(f"{kind}-{compression}", compression="zstd" if kind == "oci" else "gzip")
    if kind == "oci":
        raw = oci_layout_tar(img, image_name=f"example.com/compressed/{kind}:{compression}")
        tags = [f"example.com/compressed/{kind}:{compression}"]
    else:
        raw = docker_archive_tar(img, [f"compressed-{compression}:1"])
        tags = [f"docker.io/library/compressed-{compression}:1"]
    data = lzma.compress(raw) if compression == "xz" else compress(raw, compression)
    ext = {"gzip": "tar.gz", "zstd": "tar.zst", "xz": "tar.xz"}[compression]
    e = start_daemon(make_edgecri)
    out = import_ok(e, write(os.path.join(workdir, f"image.{ext}"), data))
    assert imported_lines(out) == {img.config_digest: tags}
    assert status(e, tags[0]).image.id == img.config_digest
    assert_unpacked(e, img)


# -- broken input ---------------------------------------------------------------------

def test_import_non_archive(make_edgecri, workdir):
    e = start_daemon(make_edgecri)
    junk = b"these are not the bytes you are looking for\n" * 50
    out = import_fails(e, write(os.path.join(workdir, "notes.tar"), junk))
    assert "notes.tar" in out.stderr and "tar" in out.stderr.lower(), out.stderr
    # A tarball that is no image archive.
    out = import_fails(e, write(os.path.join(workdir, "other.tar"), tar_of({"hello.txt": b"hi\n"})))
    assert "not an image archive" in out.stderr, out.stderr
    # A file that does not exist.
    out = import_fails(e, os.path.join(workdir, "missing.tar"))
    assert "missing.tar" in out.stderr and "No such file" in out.stderr, out.stderr
    assert_no_images(e)
    assert e.proc.poll() is None


def test_import_blob_not_matching_its_name(make_edgecri, workdir):
    img = small_image("tampered")
    files = read_tar(oci_layout_tar(img, image_name="example.com/tampered:1"))
    layer = img.layers[1]
    evil = compress(b"not the layer that was promised" * 100, "gzip")
    files["blobs/sha256/" + layer.digest.split(":", 1)[1]] = evil
    e = start_daemon(make_edgecri)
    out = import_fails(e, write(os.path.join(workdir, "tampered.tar"), tar_of(files)))
    assert layer.digest.split(":", 1)[1] in out.stderr, out.stderr
    assert_no_images(e)
    assert not os.path.exists(blob_path(e, layer.digest)), "a blob with the wrong content is in the store"
    assert not os.path.exists(blob_path(e, "sha256:" + hashlib.sha256(evil).hexdigest()))
    assert ingest_files(e) == []
    assert chain_ids([l.diff_id for l in img.layers])[1].split(":", 1)[1] not in layer_dirs(e)


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_import_archive_missing_a_layer(make_edgecri, workdir, kind):
    img = small_image(f"missing-{kind}")
    layer = img.layers[1]
    if kind == "oci":
        files = read_tar(oci_layout_tar(img, image_name="example.com/missing:1"))
        del files["blobs/sha256/" + layer.digest.split(":", 1)[1]]
        named = layer.digest
    else:
        files = read_tar(docker_archive_tar(img, ["missing:1"]))
        manifest = json.loads(files["manifest.json"])
        named = manifest[0]["Layers"][1]
        del files[named]
    e = start_daemon(make_edgecri)
    out = import_fails(e, write(os.path.join(workdir, "missing.tar"), tar_of(files)))
    assert named in out.stderr, out.stderr
    assert_no_images(e)


# -- idempotence and paths --------------------------------------------------------------

def test_import_twice_is_idempotent(make_edgecri, workdir):
    img = small_image("twice")
    path = write(os.path.join(workdir, "twice.tar"), oci_layout_tar(img, image_name="example.com/twice:1"))
    e = start_daemon(make_edgecri)
    first = import_ok(e, path)
    blobs = store_blobs(e)
    assert blobs == sorted([img.manifest_digest, img.config_digest]), "layer blobs go once unpacked"
    second = import_ok(e, path)
    blobs_after_second = store_blobs(e)
    assert imported_lines(first) == imported_lines(second) == {img.config_digest: ["example.com/twice:1"]}
    recs = image_records(e)
    assert len(recs) == 1 and recs[0]["id"] == img.config_digest
    st = list_images(e)
    assert len(st) == 1
    assert list(st[0].repo_tags) == ["example.com/twice:1"]
    assert list(st[0].repo_digests) == [f"example.com/twice@{img.manifest_digest}"]
    assert layer_dirs(e) == sorted(c.split(":", 1)[1] for c in chain_ids([l.diff_id for l in img.layers]))
    # Another name for the same image adds to its record, not a second one.
    import_ok(e, write(os.path.join(workdir, "other.tar"), oci_layout_tar(img, image_name="example.com/again:2")))
    recs = image_records(e)
    assert len(recs) == 1
    assert sorted(status(e, img.config_digest).image.repo_tags) == ["example.com/again:2", "example.com/twice:1"]
    # Regression (fixed): the second import stores the image's layer blobs again (they were
    # deleted after the first unpack), finds the layers already unpacked, and
    # leaves the blobs in content/blobs for good (keep_layer_blobs is off, and
    # RemoveImage deletes only config/manifest blobs): every re-import of an
    # image (a changed file in the import directory, a repeated
    # `edgecri import`) leaks its compressed layers on disk.
    assert blobs_after_second == blobs, "orphaned layer blobs after importing an image that was already there"


def test_import_relative_path(make_edgecri, workdir):
    img = small_image("relative")
    sub = os.path.join(workdir, "images")
    os.makedirs(sub)
    write(os.path.join(sub, "rel.tar"), oci_layout_tar(img, image_name="example.com/relative:1"))
    e = start_daemon(make_edgecri)
    out = import_ok(e, "images/../images/rel.tar", cwd=workdir)
    assert imported_lines(out) == {img.config_digest: ["example.com/relative:1"]}
    assert status(e, "example.com/relative:1").image.id == img.config_digest


def test_import_without_a_daemon(workdir):
    path = write(os.path.join(workdir, "img.tar"), oci_layout_tar(small_image("nodaemon")))
    sock = os.path.join(workdir, "nobody.sock")
    out = subprocess.run([BIN, "import", "--socket", sock, path], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out
    assert out.stderr.startswith("edgecri import: ") and "cannot reach edgecri" in out.stderr, out.stderr
    assert sock in out.stderr


# -- the import directory -------------------------------------------------------------

def wait_log_count(e, text, n, timeout=20):
    deadline = time.monotonic() + timeout
    while e.log().count(text) < n:
        assert time.monotonic() < deadline, f"{text!r} not {n} times in the log:\n{e.log()[-3000:]}"
        time.sleep(0.02)


def restart(e):
    assert e.stop() == 0, e.log()[-3000:]
    e.start(config=e.config_path)


def test_import_directory_at_start(make_edgecri):
    one = small_image("dir-one")
    e = start_daemon(make_edgecri, start=False)
    d = os.path.join(e.root, "import")
    os.makedirs(d)
    path = write(os.path.join(d, "app.tar"), oci_layout_tar(one, image_name="example.com/dir/app:1"))
    e.start(config=e.config_path)
    wait_log_count(e, f"imported {path}", 1)
    assert f"import directory {d}: 1 new tarball" in e.log()
    assert status(e, "example.com/dir/app:1").image.id == one.config_digest
    assert_unpacked(e, one)
    with open(os.path.join(e.root, "imported.json")) as f:
        st = os.stat(path)
        assert json.load(f) == {"app.tar": f"{st.st_size}:{int(st.st_mtime)}"}

    # Unchanged: not imported again.
    restart(e)
    time.sleep(0.5)
    log = e.log()
    assert log.count(f"imported {path}") == 1, log[-3000:]
    assert log.count("new tarball") == 1
    assert status(e, "example.com/dir/app:1").image.id == one.config_digest

    # Changed (another image under the same file name): imported again.
    two = small_image("dir-two", extra=b"changed")
    write(path, oci_layout_tar(two, image_name="example.com/dir/app:2"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    restart(e)
    wait_log_count(e, f"imported {path}", 2)
    assert log.count("new tarball") + 1 == e.log().count("new tarball")
    assert status(e, "example.com/dir/app:2").image.id == two.config_digest
    assert status(e, "example.com/dir/app:1").image.id == one.config_digest
    with open(os.path.join(e.root, "imported.json")) as f:
        st = os.stat(path)
        assert json.load(f) == {"app.tar": f"{st.st_size}:{int(st.st_mtime)}"}


def test_import_directory_from_config(make_edgecri, workdir):
    d = os.path.join(workdir, "airgap")
    os.makedirs(d)
    imgs = {}
    for ext, comp in (("tar.gz", "gzip"), ("tgz", "gzip"), ("tar.zst", "zstd")):
        img = small_image(f"cfg-{ext}")
        imgs[ext] = img
        layout = oci_layout_tar(img, image_name=f"example.com/cfg:{ext.replace('.', '-')}")
        write(os.path.join(d, f"image.{ext}"), compress(layout, comp))
    write(os.path.join(d, "README.txt"), b"not a tarball\n")
    write(os.path.join(d, ".hidden.tar"), oci_layout_tar(small_image("hidden"), image_name="example.com/hidden:1"))
    broken = write(os.path.join(d, "broken.tar"), b"\0garbage" * 100)
    e = start_daemon(make_edgecri, config=f"images:\n  import_dir: {d}\n")
    wait_log_count(e, "imported " + d, 3)
    wait_log_count(e, f"importing {broken}: ", 1)
    assert f"import directory {d}: 4 new tarballs" in e.log()
    for ext, img in imgs.items():
        assert status(e, f"example.com/cfg:{ext.replace('.', '-')}").image.id == img.config_digest
    assert len(list_images(e)) == 3, "neither the hidden file nor the broken one is an image"
    assert not os.path.exists(os.path.join(e.root, "import"))
    state = os.path.join(e.root, "imported.json")
    deadline = time.monotonic() + 10
    while True:  # written after each import, in the background
        try:
            with open(state) as f:
                done = json.load(f)
            if len(done) == 3:
                break
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "imported.json"
        time.sleep(0.02)
    assert sorted(done) == ["image.tar.gz", "image.tar.zst", "image.tgz"], "a failed import is not remembered"


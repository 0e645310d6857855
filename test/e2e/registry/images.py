"""Build OCI and Docker images in Python, byte for byte reproducibly.

    layer = Layer([File("/etc/motd", b"hi\\n"), Dir("/data", mode=0o700),
                   Symlink("/bin/sh", "busybox"), Whiteout("/etc/old"), Opaque("/var/cache")],
                  compression="zstd")
    img = Image([busybox_layer(), layer], config=dict(Cmd=["sh"], Env=["PATH=/bin"]))
    img.manifest_digest, img.config_digest   # config digest == the CRI image id
    idx = Index([img, Image([...], architecture="arm64", variant="v8")])

Everything is deterministic (mtime 0 unless given, uid/gid 0, no user or
group names, gzip header mtime 0, sorted JSON keys), so the same call always
yields the same digests.
"""
import functools
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile

BUSYBOX = "/bin/busybox"  # Debian's busybox-static (statically linked, amd64)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

LAYER_MEDIA_TYPES = {
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "zstd"): "application/vnd.docker.image.rootfs.diff.tar.zstd",
}

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = "1970-01-01T00:00:00Z"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# -- layer entries -------------------------------------------------------------

class Entry:
    """Common attributes of a tar entry. Paths may start with "/" (stripped)."""
    type = None

    def __init__(self, path, mode, uid=0, gid=0, mtime=0, xattrs=None, uname="", gname=""):
        self.path = path.lstrip("/")
        self.mode = mode
        self.uid, self.gid, self.mtime = uid, gid, mtime
        self.xattrs = xattrs or {}
        self.uname, self.gname = uname, gname

    def tarinfo(self):
        ti = tarfile.TarInfo(self.path)
        ti.type = self.type
        ti.mode = self.mode
        ti.uid, ti.gid, ti.mtime = self.uid, self.gid, self.mtime
        ti.uname, ti.gname = self.uname, self.gname
        if self.xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: (v.decode("latin-1") if isinstance(v, bytes) else v)
                              for k, v in self.xattrs.items()}
        return ti

    def data(self):
        return None

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r})"


class File(Entry):
    type = tarfile.REGTYPE

    def __init__(self, path, data=b"", mode=0o644, uid=0, gid=0, mtime=0, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)
        self.content = data.encode() if isinstance(data, str) else data

    def tarinfo(self):
        ti = super().tarinfo()
        ti.size = len(self.content)
        return ti

    def data(self):
        return self.content


class Dir(Entry):
    type = tarfile.DIRTYPE

    def __init__(self, path, mode=0o755, uid=0, gid=0, mtime=0, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)


class Symlink(Entry):
    type = tarfile.SYMTYPE

    def __init__(self, path, target, uid=0, gid=0, mtime=0, mode=0o777, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)
        self.target = target

    def tarinfo(self):
        ti = super().tarinfo()
        ti.linkname = self.target
        return ti


class Hardlink(Entry):
    """A hard link to ``target``, a path inside the layer (leading "/" stripped)."""
    type = tarfile.LNKTYPE

    def __init__(self, path, target, mode=0o644, uid=0, gid=0, mtime=0, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)
        self.target = target.lstrip("/")

    def tarinfo(self):
        ti = super().tarinfo()
        ti.linkname = self.target
        return ti


class CharDevice(Entry):
    type = tarfile.CHRTYPE

    def __init__(self, path, major, minor, mode=0o666, uid=0, gid=0, mtime=0, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)
        self.major, self.minor = major, minor

    def tarinfo(self):
        ti = super().tarinfo()
        ti.devmajor, ti.devminor = self.major, self.minor
        return ti


class BlockDevice(CharDevice):
    type = tarfile.BLKTYPE


class Fifo(Entry):
    type = tarfile.FIFOTYPE

    def __init__(self, path, mode=0o644, uid=0, gid=0, mtime=0, **kw):
        super().__init__(path, mode, uid, gid, mtime, **kw)


class Whiteout(File):
    """Deletes ``path`` of the lower layers: an empty ``dir/.wh.name`` file."""

    def __init__(self, path, mtime=0):
        d, _, base = path.lstrip("/").rpartition("/")
        super().__init__((d + "/" if d else "") + ".wh." + base, b"", mode=0o600, mtime=mtime)
        self.deleted = path.lstrip("/")


class Opaque(File):
    """Hides everything below ``dir`` in the lower layers: ``dir/.wh..wh..opq``."""

    def __init__(self, dir, mtime=0):
        d = dir.strip("/")
        super().__init__((d + "/" if d else "") + ".wh..wh..opq", b"", mode=0o600, mtime=mtime)
        self.dir = d


class Raw:
    """A verbatim tar member (for hostile layers: "../x", absolute links, ...)."""

    def __init__(self, tarinfo, data=None):
        self.ti = tarinfo
        self.content = data
        self.path = tarinfo.name

    def tarinfo(self):
        return self.ti

    def data(self):
        return self.content


def _as_entry(e):
    if isinstance(e, (Entry, Raw)):
        return e
    if isinstance(e, tuple):  # (path, bytes[, mode[, uid, gid[, mtime]]])
        return File(*e)
    raise TypeError(f"not a layer entry: {e!r}")


def build_tar(entries, parents=True, format=tarfile.PAX_FORMAT):
    """The uncompressed tar of ``entries``; with ``parents`` missing parent
    directories are added first (0755, root, mtime 0)."""
    entries = [_as_entry(e) for e in entries]
    buf = io.BytesIO()
    seen_dirs = set()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tf:
        for e in entries:
            if parents and not isinstance(e, Raw):
                parts = e.path.rstrip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d and d not in seen_dirs:
                        seen_dirs.add(d)
                        if not any(isinstance(x, Dir) and x.path.rstrip("/") == d for x in entries):
                            tf.addfile(Dir(d).tarinfo())
            if isinstance(e, Dir):
                seen_dirs.add(e.path.rstrip("/"))
            data = e.data()
            tf.addfile(e.tarinfo(), io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# -- compression ---------------------------------------------------------------

def compress(data, compression, level=None):
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6 if level is None else level, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", f"-{3 if level is None else level}", "-"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout
    raise ValueError(f"unknown compression {compression!r}")


def decompress(blob, compression):
    if compression == "none":
        return blob
    if compression == "gzip":
        return gzip.decompress(blob)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-d", "-c", "-"], input=blob, stdout=subprocess.PIPE,
                              check=True).stdout
    raise ValueError(f"unknown compression {compression!r}")


def detect_compression(blob):
    if blob[:2] == b"\x1f\x8b":
        return "gzip"
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


# -- layers, images, indexes --------------------------------------------------

class Layer:
    """One filesystem layer.

    ``blob`` (what the registry stores), ``digest`` = sha256(blob), ``tar``
    (uncompressed), ``diff_id`` = sha256(tar), ``size`` = len(blob),
    ``media_type`` (for ``kind``, default OCI), ``media_type_for(kind)``.
    ``media_type=`` forces a media type whatever the kind (odd-type tests).
    """

    def __init__(self, entries=(), compression="gzip", media_type=None, kind="oci", parents=True,
                 level=None, tar=None):
        self.compression = compression
        self.kind = kind
        self.forced_media_type = media_type
        self.entries = [_as_entry(e) for e in entries]
        self._tar = build_tar(self.entries, parents) if tar is None else tar
        self.blob = compress(self._tar, compression, level)
        self.digest = sha256(self.blob)
        self.diff_id = sha256(self._tar)

    @classmethod
    def from_blob(cls, blob, compression=None, diff_id=None, media_type=None, kind="oci"):
        """A layer from an existing blob (garbage allowed if ``diff_id`` is given)."""
        self = cls.__new__(cls)
        self.compression = compression or detect_compression(blob)
        self.kind = kind
        self.forced_media_type = media_type
        self.entries = []
        self.blob = blob
        self.digest = sha256(blob)
        self._tar = None
        self.diff_id = diff_id or sha256(decompress(blob, self.compression))
        return self

    @property
    def tar(self):
        if self._tar is None:
            self._tar = decompress(self.blob, self.compression)
        return self._tar

    @property
    def size(self):
        return len(self.blob)

    def media_type_for(self, kind):
        return self.forced_media_type or LAYER_MEDIA_TYPES[(kind, self.compression)]

    @property
    def media_type(self):
        return self.media_type_for(self.kind)

    def descriptor(self, kind):
        return {"mediaType": self.media_type_for(kind), "size": self.size, "digest": self.digest}

    def members(self):
        """tarfile members of the uncompressed tar (for assertions)."""
        with tarfile.open(fileobj=io.BytesIO(self.tar)) as tf:
            return tf.getmembers()

    def __repr__(self):
        return f"<Layer {self.digest[:19]} {self.compression} {self.size} bytes>"


class Image:
    """An image: config blob + manifest (OCI image manifest or Docker schema2).

    ``config`` is the runtime config (Entrypoint, Cmd, Env, User, WorkingDir,
    Labels, StopSignal, ExposedPorts, Volumes, ...), passed through as given.
    ``config_extra`` is merged into the config blob's top level (e.g. to
    break rootfs.diff_ids); ``annotations`` go into the manifest.
    """

    def __init__(self, layers, config=None, os="linux", architecture="amd64", variant=None, kind="oci",
                 created=EPOCH, history=None, annotations=None, config_extra=None, os_version=None,
                 os_features=None, config_media_type=None, manifest_media_type=None, manifest_extra=None):
        if kind not in ("oci", "docker"):
            raise ValueError(f"kind must be 'oci' or 'docker', not {kind!r}")
        self.layers = list(layers)
        self.runtime_config = dict(config or {})
        self.os, self.architecture, self.variant = os, architecture, variant
        self.os_version, self.os_features = os_version, os_features
        self.kind = kind
        blob = {
            "architecture": architecture,
            "os": os,
            "created": created,
            "config": self.runtime_config,
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in self.layers]},
            "history": history if history is not None else
            [{"created": created, "created_by": f"edgecri test layer {i}"} for i in range(len(self.layers))],
        }
        if variant:
            blob["variant"] = variant
        if os_version:
            blob["os.version"] = os_version
        if os_features:
            blob["os.features"] = list(os_features)
        blob.update(config_extra or {})
        self.config_json = blob
        self.config_blob = canonical_json(blob)
        self.config_digest = sha256(self.config_blob)
        self.config_media_type = config_media_type or (OCI_CONFIG if kind == "oci" else DOCKER_CONFIG)
        self.manifest_media_type = manifest_media_type or (OCI_MANIFEST if kind == "oci" else DOCKER_MANIFEST)
        m = {
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type,
            "config": {"mediaType": self.config_media_type, "size": len(self.config_blob),
                       "digest": self.config_digest},
            "layers": [l.descriptor(kind) for l in self.layers],
        }
        if annotations:
            m["annotations"] = dict(annotations)
        m.update(manifest_extra or {})
        self.manifest_json = m
        self.manifest = json.dumps(m, indent=3).encode()  # deliberately not canonical: digest is of the bytes
        self.manifest_digest = sha256(self.manifest)

    @property
    def image_id(self):
        """What a CRI runtime reports as the image id: the config digest."""
        return self.config_digest

    @property
    def platform(self):
        p = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        if self.os_version:
            p["os.version"] = self.os_version
        if self.os_features:
            p["os.features"] = list(self.os_features)
        return p

    def blobs(self):
        """{digest: bytes} of the config and the layers (what a push uploads)."""
        out = {self.config_digest: self.config_blob}
        for l in self.layers:
            out[l.digest] = l.blob
        return out

    def descriptor(self):
        return {"mediaType": self.manifest_media_type, "size": len(self.manifest),
                "digest": self.manifest_digest}

    @property
    def size(self):
        """Manifest + config + compressed layers, as a pull reports it."""
        return len(self.manifest) + len(self.config_blob) + sum(l.size for l in self.layers)

    def __repr__(self):
        return f"<Image {self.kind} {self.manifest_digest[:19]} {self.os}/{self.architecture}>"


class Index:
    """An OCI image index or a Docker manifest list (``kind``, default the
    first image's kind) of ``images``, with platform fields from each image."""

    def __init__(self, images, kind=None, annotations=None, manifest_annotations=None):
        self.images = list(images)
        self.kind = kind or (self.images[0].kind if self.images else "oci")
        self.manifest_media_type = OCI_INDEX if self.kind == "oci" else DOCKER_LIST
        entries = []
        for i, img in enumerate(self.images):
            d = img.descriptor()
            d["platform"] = img.platform
            if manifest_annotations and manifest_annotations[i]:
                d["annotations"] = dict(manifest_annotations[i])
            entries.append(d)
        m = {"schemaVersion": 2, "mediaType": self.manifest_media_type, "manifests": entries}
        if annotations:
            m["annotations"] = dict(annotations)
        self.manifest_json = m
        self.manifest = json.dumps(m, indent=3).encode()
        self.manifest_digest = sha256(self.manifest)

    def image_for(self, architecture, variant=None, os="linux"):
        for img in self.images:
            if img.architecture == architecture and img.os == os and (variant is None or img.variant == variant):
                return img
        raise KeyError(f"{os}/{architecture}/{variant}")

    def blobs(self):
        out = {}
        for img in self.images:
            out.update(img.blobs())
        return out

    def descriptor(self):
        return {"mediaType": self.manifest_media_type, "size": len(self.manifest),
                "digest": self.manifest_digest}

    def __repr__(self):
        return f"<Index {self.kind} {self.manifest_digest[:19]} {len(self.images)} images>"


# -- ready-made layers and images ---------------------------------------------

DEFAULT_APPLETS = ("sh", "ls", "sleep", "cat", "echo", "true", "false", "id", "env", "ps", "kill", "mkdir",
                   "rm", "touch", "wc", "head", "tail", "grep", "sed", "stat", "pwd", "hostname", "date",
                   "printf", "test", "uname", "readlink", "ln", "cp", "mv", "chmod", "dd", "whoami", "trap",
                   "find", "tr", "cut", "sort", "mount", "nproc", "timeout", "yes", "seq", "md5sum",
                   "sha256sum", "xargs", "expr", "basename", "dirname", "chown", "du", "df", "usleep")

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "edge:x:1000:1000:edge user:/home/edge:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\n"
         "daemon:x:1:\n"
         "video:x:44:edge\n"
         "audio:x:29:edge,daemon\n"
         "edge:x:1000:\n"
         "nogroup:x:65534:\n")


@functools.lru_cache(maxsize=32)
def _busybox_layer(applets, compression, etc, dirs, kind):
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    entries = []
    if dirs:
        entries += [Dir("/bin"), Dir("/dev"), Dir("/etc"), Dir("/home"), Dir("/proc", mode=0o555),
                    Dir("/root", mode=0o700), Dir("/sys", mode=0o555), Dir("/tmp", mode=0o1777),
                    Dir("/usr"), Dir("/usr/bin"), Dir("/var")]
    entries.append(File("/bin/busybox", bb, mode=0o755))
    for a in applets:
        if "/" in a:
            entries.append(Symlink(a, "/bin/busybox"))
        else:
            entries.append(Symlink("/bin/" + a, "busybox"))
    if etc:
        entries += [File("/etc/passwd", PASSWD), File("/etc/group", GROUP),
                    File("/etc/hostname", "busybox\n"), Dir("/home/edge", uid=1000, gid=1000)]
    return Layer(entries, compression=compression, kind=kind)


def busybox_layer(applets=DEFAULT_APPLETS, compression="gzip", etc=True, dirs=True, kind="oci"):
    """A runnable base layer: /bin/busybox (Debian's busybox-static) and
    symlinks /bin/<applet> -> busybox (an applet with a "/" is a full path,
    linked to /bin/busybox). ``etc`` adds /etc/passwd and /etc/group with
    root (0), daemon (1), edge (1000, in groups video=44 and audio=29) and
    nobody (65534). ``dirs`` adds /tmp (1777), /proc, /sys, /dev, /root, ...
    Cached: the same arguments give the same Layer object."""
    return _busybox_layer(tuple(applets), compression, etc, dirs, kind)


def busybox_image(kind="oci", compression="gzip", config=None, extra_layers=(), architecture="amd64",
                  variant=None, **kw):
    """busybox_layer() + ``extra_layers``; config defaults to Cmd ["sh"] and a PATH."""
    cfg = {"Cmd": ["sh"], "Env": [DEFAULT_PATH]}
    cfg.update(config or {})
    return Image([busybox_layer(compression=compression, kind=kind)] + list(extra_layers), config=cfg,
                 kind=kind, architecture=architecture, variant=variant, **kw)


def marker_image(architecture, variant=None, os="linux", kind="oci", compression="gzip"):
    """A tiny non-runnable image for a foreign platform: /platform holds its name."""
    name = "/".join(x for x in (os, architecture, variant) if x)
    layer = Layer([File("/platform", name + "\n")], compression=compression, kind=kind)
    return Image([layer], config={"Cmd": ["/platform"]}, os=os, architecture=architecture, variant=variant,
                 kind=kind)


def multiarch_index(kind="oci", platforms=(("amd64", None), ("arm64", "v8"), ("arm", "v7")),
                    compression="gzip"):
    """Index of busybox for amd64 and marker images for the other platforms."""
    imgs = []
    for arch, variant in platforms:
        if arch == "amd64":
            imgs.append(busybox_image(kind=kind, compression=compression))
        else:
            imgs.append(marker_image(arch, variant, kind=kind, compression=compression))
    return Index(imgs, kind=kind)


def cache_dir():
    d = os.environ.get("EDGECRI_TEST_CACHE") or os.path.join(tempfile.gettempdir(), "edgecri-test-cache")
    os.makedirs(d, exist_ok=True)
    return d


def big_image(total_mb=150, layers=5, compression="gzip", kind="oci", seed=0, level=1, base=True,
              file_mb=4):
    """A large image for benchmarks: ``layers`` layers of pseudo-random
    (incompressible) data totalling ``total_mb`` MiB, in ``file_mb`` MiB files,
    on top of busybox_layer() when ``base``. The data comes from a seeded PRNG
    and the compressed blobs are cached under $EDGECRI_TEST_CACHE (default
    /tmp/edgecri-test-cache), keyed by the parameters: the first call for a
    150 MiB image takes ~10 s, later calls read the cache."""
    key = f"big-{total_mb}-{layers}-{compression}-{seed}-{level}-{file_mb}"
    d = os.path.join(cache_dir(), key)
    meta_path = os.path.join(d, "meta.json")
    if not os.path.exists(meta_path):
        tmp = tempfile.mkdtemp(prefix=key + ".", dir=cache_dir())
        rng = random.Random(f"{seed}-{total_mb}-{layers}")
        total = total_mb << 20
        meta = []
        for i in range(layers):
            size = total // layers + (total % layers if i == layers - 1 else 0)
            entries, j = [], 0
            while size > 0:
                n = min(size, file_mb << 20)
                entries.append(File(f"/data/layer{i}/chunk{j:03d}.bin", rng.randbytes(n)))
                size -= n
                j += 1
            layer = Layer(entries, compression=compression, level=level)
            with open(os.path.join(tmp, f"layer{i}.blob"), "wb") as f:
                f.write(layer.blob)
            meta.append({"digest": layer.digest, "diff_id": layer.diff_id})
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
        try:
            os.rename(tmp, d)
        except OSError:  # a concurrent call won
            shutil.rmtree(tmp, ignore_errors=True)
    with open(meta_path) as f:
        meta = json.load(f)
    ls = [busybox_layer(compression="gzip", kind=kind)] if base else []
    for i, m in enumerate(meta):
        with open(os.path.join(d, f"layer{i}.blob"), "rb") as f:
            blob = f.read()
        ls.append(Layer.from_blob(blob, compression, diff_id=m["diff_id"], kind=kind))
        assert ls[-1].digest == m["digest"], f"corrupt cache {d}"
    return Image(ls, config={"Cmd": ["sh"], "Env": [DEFAULT_PATH]}, kind=kind,
                 annotations={"org.opencontainers.image.title": key})


# -- archives for `edgecri import` -----------------------------------------------

def _tar_bytes(files, path=None):
    """files: list of (name, bytes or None for a directory)."""
    buf = open(path, "wb") if path else io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, data in files:
                ti = tarfile.TarInfo(name)
                ti.mtime = 0
                if data is None:
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    tf.addfile(ti)
                else:
                    ti.mode = 0o644
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        return None if path else buf.getvalue()
    finally:
        if path:
            buf.close()


def oci_layout_tar(image_or_index, ref_name=None, path=None, image_name=None, annotations=None):
    """An OCI image-layout tarball: oci-layout, index.json (one entry for the
    image or index, annotated org.opencontainers.image.ref.name=ref_name and,
    with ``image_name``, io.containerd.image.name) and blobs/sha256/<hex> for
    every manifest, config and layer. Returns bytes, or writes ``path``."""
    blobs = {}
    obj = image_or_index
    for img in getattr(obj, "images", [obj]):
        blobs[img.manifest_digest] = img.manifest
        blobs.update(img.blobs())
    blobs[obj.manifest_digest] = obj.manifest
    desc = obj.descriptor()
    ann = dict(annotations or {})
    if ref_name:
        ann["org.opencontainers.image.ref.name"] = ref_name
    if image_name:
        ann["io.containerd.image.name"] = image_name
    if ann:
        desc["annotations"] = ann
    if not hasattr(obj, "images"):
        desc["platform"] = obj.platform
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
    files = [("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"})),
             ("index.json", canonical_json(index)),
             ("blobs", None), ("blobs/sha256", None)]
    for digest in sorted(blobs):
        files.append(("blobs/sha256/" + digest.split(":", 1)[1], blobs[digest]))
    return _tar_bytes(files, path)


def docker_archive_tar(image, repo_tags=(), path=None):
    """A `docker save` tarball (legacy layout): manifest.json
    [{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<id>/layer.tar", ...]}],
    <config hex>.json, per layer <id>/layer.tar (uncompressed) + VERSION + json,
    and the legacy "repositories" file. ``image`` may also be a list of
    (Image, repo_tags) pairs for a multi-image archive."""
    pairs = image if isinstance(image, list) else [(image, list(repo_tags))]
    files, manifest, repositories, written = [], [], {}, set()
    for img, tags in pairs:
        cfg_name = img.config_digest.split(":", 1)[1] + ".json"
        if cfg_name not in written:
            files.append((cfg_name, img.config_blob))
            written.add(cfg_name)
        parent, layer_paths = "", []
        for i, l in enumerate(img.layers):
            lid = hashlib.sha256((parent + "\n" + l.diff_id).encode()).hexdigest()
            layer_paths.append(f"{lid}/layer.tar")
            if lid not in written:
                written.add(lid)
                legacy = {"id": lid, "created": EPOCH, "container_config": {}, "os": img.os,
                          "architecture": img.architecture}
                if parent:
                    legacy["parent"] = parent
                if i == len(img.layers) - 1:
                    legacy["config"] = img.runtime_config
                files += [(lid, None), (f"{lid}/VERSION", b"1.0"), (f"{lid}/json", canonical_json(legacy)),
                          (f"{lid}/layer.tar", l.tar)]
            parent = lid
        manifest.append({"Config": cfg_name, "RepoTags": list(tags) or None, "Layers": layer_paths})
        for t in tags:
            repo, _, tag = t.rpartition(":")
            if "/" in tag or not repo:
                repo, tag = t, "latest"
            repositories.setdefault(repo, {})[tag] = parent
    files.append(("manifest.json", json.dumps(manifest).encode()))
    if repositories:
        files.append(("repositories", json.dumps(repositories).encode()))
    return _tar_bytes(files, path)


def read_tar(data):
    """{name: bytes or None (non-regular)} of a tarball in memory (tests)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            out[m.name] = tf.extractfile(m).read() if m.isreg() else None
    return out



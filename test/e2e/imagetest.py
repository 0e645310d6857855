"""Shared helpers for the image-service tests: a daemon with its own
registries.yaml, pulls, and looks at the stores on disk."""
import hashlib
import json
import os

import grpc

import api_pb2 as pb

MiB = 1 << 20


def start_daemon(make_edgecri, registries=None, config="", subdir=None, start=True):
    """A daemon whose registries.yaml (text) and extra config.yaml lines are
    the test's. Returns the Edgecri object."""
    e = make_edgecri(subdir)
    reg_path = os.path.join(e.workdir, "registries.yaml")
    with open(reg_path, "w") as f:
        f.write(registries or "")
    cfg = os.path.join(e.workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"registries: {reg_path}\n{config}")
    e.registries_path = reg_path
    e.config_path = cfg
    if start:
        e.start(config=cfg)
    return e


def auth_config(username=None, password=None, auth=None, server=None, identity_token=None, registry_token=None):
    return pb.AuthConfig(username=username or "", password=password or "", auth=auth or "",
                         server_address=server or "", identity_token=identity_token or "",
                         registry_token=registry_token or "")


def pull(e, ref, auth=None, timeout=120, channel=None):
    req = pb.PullImageRequest(image=pb.ImageSpec(image=ref), auth=auth)
    return e.images(channel).PullImage(req, timeout=timeout).image_ref


def pull_error(e, ref, auth=None, timeout=120):
    """Pulls expecting failure; returns the grpc.RpcError."""
    try:
        pull(e, ref, auth=auth, timeout=timeout)
    except grpc.RpcError as err:
        return err
    raise AssertionError(f"pulling {ref} unexpectedly succeeded")


def status(e, ref, verbose=False):
    return e.images().ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref), verbose=verbose), timeout=10)


def list_images(e):
    return list(e.images().ListImages(pb.ListImagesRequest(), timeout=10).images)


def remove(e, ref):
    e.images().RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=30)


def layer_dirs(e):
    d = os.path.join(e.root, "layers")
    return sorted(x for x in os.listdir(d) if not x.startswith(".")) if os.path.isdir(d) else []


def layer_fs(e, chain_id):
    return os.path.join(e.root, "layers", chain_id.split(":", 1)[1], "fs")


def chain_ids(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def blob_path(e, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(e.root, "content", "blobs", algo, hexd)


def ingest_files(e):
    d = os.path.join(e.root, "content", "ingest")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def image_records(e):
    path = os.path.join(e.root, "images.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["images"]

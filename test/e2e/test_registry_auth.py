"""Registry authentication, TLS and mirrors, end to end: a real
docker-registry behind the test proxy (Bearer or Basic auth, TLS, client
certificates, faults), edgecri pulling through the CRI PullImage call with
AuthConfig credentials or registries.yaml (k3s format) settings."""
import base64
import os
import signal
import time

import grpc
import pytest

from imagetest import auth_config, image_records, list_images, pull, pull_error, start_daemon, status
from registry import File, Image, Layer, Proxy, Registry, push


@pytest.fixture(scope="module")
def reg():
    with Registry() as r:
        yield r


@pytest.fixture(scope="module")
def reg2():
    """A second registry: the one behind the mirrors."""
    with Registry() as r:
        yield r


def tiny_image(name):
    """A small image whose config (so whose id) is unique to ``name``."""
    layer = Layer([File("/name", name + "\n"), File("/etc/os-release", "ID=edgecri-test\n")])
    return Image([layer], config={"Cmd": ["/name"], "Labels": {"test": name}})


def pushed(r, repo, tag="v1"):
    img = tiny_image(f"{repo}:{tag}")
    push(r.url, repo, img, tag=tag)
    return img


def blob_gets(px, repo, img):
    """Blob GETs the proxy answered for the image's config and layers."""
    n = 0
    for d in [img.config_digest] + [l.digest for l in img.layers]:
        n += px.blob_stats(repo, d).gets().count
    return n


def wait_log(e, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in e.log():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in the edgecri log:\n{e.log()[-3000:]}")


def assert_secret_not_logged(e, *secrets):
    log = e.log()
    for s in secrets:
        assert s not in log, f"a credential ({s[:3]}...) appears in the edgecri log"


def yaml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- Bearer tokens with AuthConfig credentials ------------------------------------

PASSWORD = "Pw-7c1e9b-S3cret"


def test_bearer_token_with_username_password(reg, make_edgecri):
    img = pushed(reg, "auth/bearer")
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        e = start_daemon(make_edgecri)
        ref = pull(e, f"{px.host}/auth/bearer:v1", auth=auth_config("alice", PASSWORD))
        assert ref == img.config_digest
        granted = [t for t in px.token_requests if t.granted]
        assert granted, px.token_requests
        for t in px.token_requests:
            assert t.scopes == ["repository:auth/bearer:pull"], t
            assert t.service == px.service
        assert all(t.user == "alice" for t in granted), granted
        # The registry itself saw only Bearer tokens, never the password.
        auths = [r.authorization for r in px.requests if r.listener == "main" and r.authorization]
        assert auths and all(a.startswith("Bearer ") for a in auths), auths
        assert blob_gets(px, "auth/bearer", img) == 2
        st = status(e, f"{px.host}/auth/bearer:v1").image
        assert st.id == img.config_digest
        assert list(st.repo_tags) == [f"{px.host}/auth/bearer:v1"]
        assert list(st.repo_digests) == [f"{px.host}/auth/bearer@{img.manifest_digest}"]
        assert not px.errors
    assert_secret_not_logged(e, PASSWORD)


def test_bearer_wrong_password_is_unauthenticated(reg, make_edgecri):
    pushed(reg, "auth/wrongpw")
    wrong = "Wr0ng-Pa55-9f3d2a"
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        e = start_daemon(make_edgecri)
        err = pull_error(e, f"{px.host}/auth/wrongpw:v1", auth=auth_config("alice", wrong))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
        assert "authentication failed" in err.details(), err.details()
        assert f"http://{px.host}" in err.details(), "the message names the endpoint"
        assert px.token_requests and not any(t.granted for t in px.token_requests)
        assert px.count(r"/blobs/") == 0
        assert list_images(e) == []
        assert image_records(e) == []
    assert_secret_not_logged(e, wrong, PASSWORD, base64.b64encode(f"alice:{wrong}".encode()).decode())
    assert wrong not in err.details()


def test_bearer_without_credentials_is_refused(reg, make_edgecri):
    pushed(reg, "auth/nocreds")
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        e = start_daemon(make_edgecri)
        err = pull_error(e, f"{px.host}/auth/nocreds:v1")
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
        assert "authentication failed" in err.details(), err.details()
        assert px.token_requests and all(t.user is None and not t.granted for t in px.token_requests)
        assert px.count(r"/blobs/") == 0
        assert list_images(e) == []


def test_bearer_anonymous_pull(reg, make_edgecri):
    img = pushed(reg, "auth/anon")
    with Proxy(reg, auth="bearer", anonymous_pull=True) as px:
        e = start_daemon(make_edgecri)
        assert pull(e, f"{px.host}/auth/anon:v1") == img.config_digest
        granted = [t for t in px.token_requests if t.granted]
        assert granted and all(t.user is None for t in granted), px.token_requests
        assert all(t.scopes == ["repository:auth/anon:pull"] for t in px.token_requests)
        assert blob_gets(px, "auth/anon", img) == 2


def test_auth_config_base64_auth(reg, make_edgecri):
    img = pushed(reg, "auth/b64")
    b64 = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        e = start_daemon(make_edgecri)
        assert pull(e, f"{px.host}/auth/b64:v1", auth=auth_config(auth=b64)) == img.config_digest
        granted = [t for t in px.token_requests if t.granted]
        assert granted and all(t.user == "alice" for t in granted), px.token_requests
    assert_secret_not_logged(e, PASSWORD, b64)


# -- Basic auth with credentials from registries.yaml -----------------------------

@pytest.mark.parametrize("form", ["username", "auth"])
def test_basic_auth_from_registries_yaml(reg, make_edgecri, form):
    repo = f"auth/basic-{form}"
    img = pushed(reg, repo)
    pw = f"B4sic-{form}-pw"
    with Proxy(reg, auth="basic", username="bob", password=pw) as px:
        if form == "username":
            creds = f"username: bob\n      password: {yaml_str(pw)}"
        else:
            creds = "auth: " + base64.b64encode(f"bob:{pw}".encode()).decode()
        e = start_daemon(make_edgecri, registries=f"""
configs:
  "{px.host}":
    auth:
      {creds}
""")
        # registries.yaml wins over the request's (wrong) credentials.
        ref = pull(e, f"{px.host}/{repo}:v1", auth=auth_config("mallory", "not-the-password"))
        assert ref == img.config_digest
        expected = "Basic " + base64.b64encode(f"bob:{pw}".encode()).decode()
        served = [r for r in px.requests if r.status == 200]
        assert served and all(r.authorization == expected for r in served), px.requests
        assert blob_gets(px, repo, img) >= 2
    assert_secret_not_logged(e, pw, expected.split()[1])


# -- TLS ----------------------------------------------------------------------------

def tls_registries(px, tls_lines):
    """The TLS proxy as its own registry's https endpoint (127.0.0.1 defaults to http)."""
    return f"""
mirrors:
  "{px.host}":
    endpoint: ["https://{px.host}"]
configs:
  "{px.host}":
    tls:
{tls_lines}
"""


def test_zz_explore_tls_nocA(reg, make_edgecri):
    img = pushed(reg, "tls/x")
    with Proxy(reg, tls=True) as px:
        e = start_daemon(make_edgecri, registries=f"""
mirrors:
  "{px.host}":
    endpoint: ["https://{px.host}"]
""")
        t = time.monotonic()
        err = pull_error(e, f"{px.host}/tls/x:v1")
        print("NOCA", time.monotonic() - t, err.code(), err.details())
        print(px.tls_errors)


def test_zz_explore_clientcert(reg, make_edgecri):
    img = pushed(reg, "tls/y")
    with Proxy(reg, tls=True, require_client_cert=True) as px:
        e = start_daemon(make_edgecri, registries=tls_registries(px, f"      ca_file: {px.ca_file}"))
        t = time.monotonic()
        err = pull_error(e, f"{px.host}/tls/y:v1")
        print("NOCERT", time.monotonic() - t, err.code(), err.details())
        print(px.tls_errors)


def test_zz_explore_mirror_down(reg, reg2, make_edgecri):
    img = pushed(reg, "mir/down")
    with Proxy(reg) as up, Proxy(reg2) as mp:
        mp.stop()
        e = start_daemon(make_edgecri, registries=f"""
mirrors:
  "{up.host}":
    endpoint: ["http://{mp.host}"]
""")
        t = time.monotonic()
        pull(e, f"{up.host}/mir/down:v1")
        print("DOWN", time.monotonic() - t)
        print(e.log()[-3000:])

"""Registry authentication, TLS and mirrors, end to end: a real
docker-registry behind the test proxy (Bearer or Basic auth, TLS, client
certificates, faults), edgecri pulling through the CRI PullImage call with
AuthConfig credentials or registries.yaml (k3s format) settings."""
import base64
import json
import re
import signal
import time
import urllib.parse
import urllib.request

import grpc
import pytest

import api_pb2 as pb
from imagetest import auth_config, image_records, list_images, pull, pull_error, start_daemon, status
from registry import Client, File, Image, Layer, Proxy, Registry, push
from registry.client import opener


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


def endpoint_reason(msg, url):
    """What an error message says about one endpoint ("<url>: [GET <request url>: ]<reason>; <next url>: ...")."""
    i = msg.index(url + ": ") + len(url) + 2
    j = msg.find("; http", i)
    part = msg[i:j if j >= 0 else None]
    m = re.match(r"(GET|HEAD) \S+: ", part)
    return part[m.end():] if m else part


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
    # Neither the password nor the tokens it bought are logged.
    assert_secret_not_logged(e, PASSWORD, *{a.split()[1] for a in auths})


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


def test_auth_config_identity_token(reg, make_edgecri):
    """An OAuth2 refresh token (Docker's identity token) instead of a password."""
    img = pushed(reg, "auth/identity")
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        form = urllib.parse.urlencode({"grant_type": "password", "username": "alice", "password": PASSWORD,
                                       "service": px.service, "client_id": "test",
                                       "scope": "repository:auth/identity:pull"}).encode()
        with opener().open(urllib.request.Request(px.url + "/token", data=form), timeout=10) as r:
            refresh = json.loads(r.read())["refresh_token"]
        px.reset_stats()
        e = start_daemon(make_edgecri)
        assert pull(e, f"{px.host}/auth/identity:v1", auth=auth_config(identity_token=refresh)) == img.config_digest
        granted = [t for t in px.token_requests if t.granted]
        assert granted and all(t.method == "POST" and t.grant_type == "refresh_token" for t in granted), \
            px.token_requests
        assert all(t.scopes == ["repository:auth/identity:pull"] for t in px.token_requests)
    assert_secret_not_logged(e, refresh)


def test_auth_config_registry_token(reg, make_edgecri):
    """A ready bearer token: used as is, no token request."""
    img = pushed(reg, "auth/regtoken")
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        token = Client(px.url, auth=("alice", PASSWORD)).fetch_token(px.realm, px.service,
                                                                     "repository:auth/regtoken:pull")
        px.reset_stats()
        e = start_daemon(make_edgecri)
        assert pull(e, f"{px.host}/auth/regtoken:v1", auth=auth_config(registry_token=token)) == img.config_digest
        assert px.token_requests == []
        assert blob_gets(px, "auth/regtoken", img) == 2
        assert all(r.authorization == f"Bearer {token}" for r in px.requests if r.status == 200)
    assert_secret_not_logged(e, token)


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
#
# A 127.0.0.1 registry's default endpoint is plain http, so the TLS proxy is
# listed as the https endpoint (a mirror) of a plain registry that does not
# have the image: a pull succeeds only through TLS, and a failing TLS
# endpoint is followed by a quick 404 instead of retries of plain http sent
# to a TLS port.

def tls_setup(up, px, tls_lines):
    tls = "\n".join("      " + line for line in tls_lines)
    return f"""
mirrors:
  "{up.host}":
    endpoint: ["https://{px.host}"]
configs:
  "{px.host}":
    tls:
{tls}
"""


def test_tls_with_ca_file(reg, reg2, make_edgecri):
    img = pushed(reg, "sec/ca")
    with Proxy(reg2) as up, Proxy(reg, tls=True) as px:
        e = start_daemon(make_edgecri, registries=tls_setup(up, px, [f"ca_file: {px.ca_file}"]))
        assert pull(e, f"{up.host}/sec/ca:v1") == img.config_digest
        assert blob_gets(px, "sec/ca", img) == 2
        assert up.count(r"^/v2/sec/") == 0, up.requests
        assert px.tls_errors == []
        assert list(status(e, f"{up.host}/sec/ca:v1").image.repo_tags) == [f"{up.host}/sec/ca:v1"]


def test_tls_without_ca_is_a_certificate_error(reg, reg2, make_edgecri):
    pushed(reg, "sec/noca")
    with Proxy(reg2) as up, Proxy(reg, tls=True) as px:
        e = start_daemon(make_edgecri, registries=f"""
mirrors:
  "{up.host}":
    endpoint: ["https://{px.host}"]
""")
        err = pull_error(e, f"{up.host}/sec/noca:v1")
        msg = err.details()
        # The https endpoint's reason is the certificate; the registry itself
        # (the last endpoint) does not have the image.
        assert f"https://{px.host}" in msg and f"http://{up.host}" in msg, msg
        assert "certificate" in endpoint_reason(msg, f"https://{px.host}").lower(), msg
        assert "not found" in endpoint_reason(msg, f"http://{up.host}"), msg
        assert px.count(r"^/v2/") == 0, "no HTTP request may pass an unverified TLS connection"
        assert px.tls_errors and "unknown ca" in px.tls_errors[0][1].lower(), px.tls_errors
        assert list_images(e) == []


def test_tls_insecure_skip_verify(reg, reg2, make_edgecri):
    img = pushed(reg, "sec/insecure")
    with Proxy(reg2) as up, Proxy(reg, tls=True) as px:
        e = start_daemon(make_edgecri, registries=tls_setup(up, px, ["insecure_skip_verify: true"]))
        assert pull(e, f"{up.host}/sec/insecure:v1") == img.config_digest
        assert blob_gets(px, "sec/insecure", img) == 2
        assert up.count(r"^/v2/sec/") == 0


def test_tls_client_certificate(reg, reg2, make_edgecri):
    img = pushed(reg, "sec/mtls")
    with Proxy(reg2) as up, Proxy(reg, tls=True, require_client_cert=True) as px:
        cert, key = px.client_cert
        e = start_daemon(make_edgecri, registries=tls_setup(
            up, px, [f"ca_file: {px.ca_file}", f"cert_file: {cert}", f"key_file: {key}"]))
        assert pull(e, f"{up.host}/sec/mtls:v1") == img.config_digest
        assert blob_gets(px, "sec/mtls", img) == 2
        assert {r.client_cert for r in px.requests} == {"edgecri-client"}
        assert px.tls_errors == []


def test_tls_client_certificate_missing(reg, reg2, make_edgecri):
    pushed(reg, "sec/nocert")
    with Proxy(reg2) as up, Proxy(reg, tls=True, require_client_cert=True) as px:
        e = start_daemon(make_edgecri, registries=tls_setup(up, px, [f"ca_file: {px.ca_file}"]))
        err = pull_error(e, f"{up.host}/sec/nocert:v1")
        assert px.count(r"^/v2/") == 0
        assert px.tls_errors and all("certificate" in x[1].lower() for x in px.tls_errors), px.tls_errors
        assert list_images(e) == []
        msg = err.details()
        # Both endpoints failed: the mirror at the TLS level (libcurl's wording
        # varies with timing: "Send failure: Broken pipe", "select/poll
        # returned error"), the registry itself with a 404.
        assert endpoint_reason(msg, f"https://{px.host}"), msg
        assert "not found" in endpoint_reason(msg, f"http://{up.host}"), msg


# -- mirrors ------------------------------------------------------------------------

def mirror_yaml(upstream_host, *endpoints, rewrite=None):
    eps = ", ".join(f'"{x}"' for x in endpoints)
    text = f"""
mirrors:
  "{upstream_host}":
    endpoint: [{eps}]
"""
    if rewrite:
        text += "    rewrite:\n" + "".join(f'      "{k}": "{v}"\n' for k, v in rewrite.items())
    return text


@pytest.mark.parametrize("key", ["host", "*"])
def test_mirror_is_used_first(reg, reg2, make_edgecri, key):
    repo = "mir/first" if key == "host" else "mir/star"
    img = pushed(reg2, repo)
    push(reg.url, repo, img, tag="v1")  # the upstream has it too
    with Proxy(reg) as up, Proxy(reg2) as mp:
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host if key == "host" else "*", f"http://{mp.host}"))
        assert pull(e, f"{up.host}/{repo}:v1") == img.config_digest
        assert mp.manifest_stats(repo, "v1").gets().count == 1
        assert blob_gets(mp, repo, img) == 2
        assert up.requests == [], "the upstream was not needed"
        st = status(e, f"{up.host}/{repo}:v1").image
        assert list(st.repo_tags) == [f"{up.host}/{repo}:v1"], "named after the reference, not the mirror"
        assert list(st.repo_digests) == [f"{up.host}/{repo}@{img.manifest_digest}"]


def test_mirror_down_falls_back_to_upstream(reg, reg2, make_edgecri):
    img = pushed(reg, "mir/down")
    with Proxy(reg) as up, Proxy(reg2) as mp:
        mp.stop()
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, f"http://{mp.host}"))
        t0 = time.monotonic()
        assert pull(e, f"{up.host}/mir/down:v1") == img.config_digest
        took = time.monotonic() - t0
        assert blob_gets(up, "mir/down", img) == 2
        assert f"http://{mp.host}" in e.log(), "the dead mirror was tried first"
        # Regression (fixed): a refused connection to a mirror is retried like a transient
        # error (5 attempts, backoff 0.25+1+4+16 s) before the next endpoint
        # is tried, so a dead mirror adds ~21 s to every pull (containerd moves
        # on to the next host at once).
        assert took < 10, f"the fallback from a dead mirror took {took:.1f}s"


def test_mirror_rewrite(reg, reg2, make_edgecri):
    img = pushed(reg2, "mirrored/rw/app")
    push(reg.url, "rw/app", img, tag="v1")
    with Proxy(reg) as up, Proxy(reg2) as mp:
        e = start_daemon(make_edgecri, registries=mirror_yaml(
            up.host, f"http://{mp.host}", rewrite={"^rw/(.*)$": "mirrored/rw/$1"}))
        assert pull(e, f"{up.host}/rw/app:v1") == img.config_digest
        assert mp.manifest_stats("mirrored/rw/app", "v1").gets().count == 1
        assert blob_gets(mp, "mirrored/rw/app", img) == 2
        assert mp.count(r"^/v2/rw/") == 0
        assert up.requests == []
        assert list(status(e, f"{up.host}/rw/app:v1").image.repo_tags) == [f"{up.host}/rw/app:v1"]


def test_mirror_404_falls_back(reg, reg2, make_edgecri):
    img = pushed(reg, "mir/notthere")
    with Proxy(reg) as up, Proxy(reg2) as mp:
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, f"http://{mp.host}"))
        assert pull(e, f"{up.host}/mir/notthere:v1") == img.config_digest
        assert mp.manifest_stats("mir/notthere", "v1").statuses == [404]
        assert mp.count(r"/blobs/") == 0
        assert blob_gets(up, "mir/notthere", img) == 2


def test_not_found_anywhere_lists_every_endpoint(reg, reg2, make_edgecri):
    with Proxy(reg) as up, Proxy(reg2) as mp:
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, f"http://{mp.host}"))
        err = pull_error(e, f"{up.host}/mir/nowhere:v1")
        assert err.code() == grpc.StatusCode.NOT_FOUND, err
        msg = err.details()
        m, u = msg.find(f"http://{mp.host}"), msg.find(f"http://{up.host}")
        assert 0 <= m < u, f"both endpoints, mirror first: {msg}"
        assert msg.count("not found") >= 2 or msg.count("404") >= 2, msg


def test_credentials_reach_a_mirror_only_when_server_address_names_it(reg, reg2, make_edgecri):
    a = pushed(reg2, "mir/creds", "a")
    b = pushed(reg2, "mir/creds", "b")
    for img, tag in ((a, "a"), (b, "b")):
        push(reg.url, "mir/creds", img, tag=tag)
    with Proxy(reg) as up, Proxy(reg2, auth="bearer", username="alice", password=PASSWORD) as mp:
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, f"http://{mp.host}"))
        # No server_address: the credentials are the upstream's, the mirror
        # gets none, refuses, and the upstream serves the image.
        assert pull(e, f"{up.host}/mir/creds:a", auth=auth_config("alice", PASSWORD)) == a.config_digest
        assert mp.token_requests and all(t.user is None and not t.granted for t in mp.token_requests)
        assert blob_gets(up, "mir/creds", a) == 2
        # server_address names the mirror: it gets them.
        mp.reset_stats()
        up.reset_stats()
        assert pull(e, f"{up.host}/mir/creds:b", auth=auth_config("alice", PASSWORD, server=mp.host)) == \
            b.config_digest
        assert any(t.user == "alice" and t.granted for t in mp.token_requests), mp.token_requests
        assert blob_gets(mp, "mir/creds", b) == 2
        assert up.count(r"/blobs/") == 0
    assert_secret_not_logged(e, PASSWORD)


def _low_free_port():
    """A free port below 6554, so that "<port>1" is a valid port as well."""
    import socket
    for port in range(4311, 6553, 7):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free low port")


def test_credentials_for_another_registry_do_not_reach_a_mirror(reg, make_edgecri):
    """server_address 127.0.0.1:<M>1 names another registry than the mirror
    at 127.0.0.1:<M>: its credentials must not be sent to the mirror."""
    port = _low_free_port()
    img = tiny_image("mir/prefix:v1")
    push(reg.url, "mir/prefix", img, tag="v1")
    with Registry(port=port, htpasswd={"carol": "Carol-Pw-1"}) as mreg, Proxy(reg) as up:
        push(mreg.url, "mir/prefix", img, tag="v1", auth=("carol", "Carol-Pw-1"))
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, mreg.url))
        other = f"127.0.0.1:{port}1"
        assert pull(e, f"{up.host}/mir/prefix:v1",
                    auth=auth_config("carol", "Carol-Pw-1", server=other)) == img.config_digest
        # Regression (fixed): src/registry/registry.c endpoint_credentials() matches
        # server_address with strstr(), so "127.0.0.1:<M>1" "names" the mirror
        # 127.0.0.1:<M>: the credentials go to it and it serves the pull.
        assert blob_gets(up, "mir/prefix", img) == 2, \
            "the upstream did not serve the image: the mirror accepted credentials meant for another registry"
    assert_secret_not_logged(e, "Carol-Pw-1")


def test_sighup_reload_changes_the_mirror(reg2, make_edgecri):
    one = pushed(reg2, "mir/reload", "one")
    two = pushed(reg2, "mir/reload", "two")
    three = pushed(reg2, "mir/reload", "three")
    with Proxy(reg2) as up, Proxy(reg2) as ma, Proxy(reg2) as mb:
        e = start_daemon(make_edgecri, registries=mirror_yaml(up.host, f"http://{ma.host}"))
        assert pull(e, f"{up.host}/mir/reload:one") == one.config_digest
        assert blob_gets(ma, "mir/reload", one) == 2 and mb.requests == []

        with open(e.registries_path, "w") as f:
            f.write(mirror_yaml(up.host, f"http://{mb.host}"))
        e.send_signal(signal.SIGHUP)
        wait_log(e, "registry configuration reloaded")
        ma.reset_stats()
        assert pull(e, f"{up.host}/mir/reload:two") == two.config_digest
        assert blob_gets(mb, "mir/reload", two) == 2
        assert ma.requests == [] and up.requests == []

        # A broken file on SIGHUP keeps the running configuration.
        with open(e.registries_path, "w") as f:
            f.write("mirrors:\n  bogus_key_here: [\n")
        n = e.log().count("keeping the running registry configuration")
        e.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while e.log().count("keeping the running registry configuration") == n:
            assert time.monotonic() < deadline, e.log()[-2000:]
            time.sleep(0.02)
        mb.reset_stats()
        assert pull(e, f"{up.host}/mir/reload:three") == three.config_digest
        assert blob_gets(mb, "mir/reload", three) == 2
        assert ma.requests == [] and up.requests == []


def test_sighup_during_a_tls_pull(reg, reg2, make_edgecri):
    """A reload while a pull is under way: the pull keeps the TLS settings it
    started with (sessions keep what they resolved)."""
    img = pushed(reg, "sec/reload")
    with Proxy(reg2) as up, Proxy(reg, tls=True) as px:
        e = start_daemon(make_edgecri, registries=tls_setup(up, px, [f"ca_file: {px.ca_file}"]))
        # The config blob fails once: its retry (250 ms later) starts after the reload.
        fault = px.set_fault(r"/blobs/" + img.config_digest, "status", code=503, times=1)
        waiter = e.images().PullImage.future(
            pb.PullImageRequest(image=pb.ImageSpec(image=f"{up.host}/sec/reload:v1")), timeout=60)
        deadline = time.monotonic() + 10
        while fault.hits == 0:
            assert time.monotonic() < deadline, "the config blob was never requested"
            time.sleep(0.005)
        e.send_signal(signal.SIGHUP)
        # Regression (fixed): registry.c endpoint_credentials() borrows the ca_file (and
        # cert_file/key_file) pointers of the registries.yaml config, and
        # SIGHUP frees that config (registry_client_set_config): the retry the
        # session starts after the reload hands freed memory to libcurl as the
        # CA file ("error setting certificate file: <garbage>"; under ASan a
        # heap-use-after-free).
        try:
            ref = waiter.result().image_ref
        except grpc.RpcError as err:
            raise AssertionError(f"the pull failed after a SIGHUP: {err.code()}: {err.details()}") from None
        assert ref == img.config_digest
        wait_log(e, "registry configuration reloaded")
        assert px.blob_stats("sec/reload", img.config_digest).statuses == [503, 200]


# -- CDN redirects and digests ------------------------------------------------------

def test_blob_redirect_to_cdn_without_credentials(reg, make_edgecri):
    img = pushed(reg, "cdn/app")
    with Proxy(reg, auth="bearer", username="alice", password=PASSWORD) as px:
        px.set_fault(r"/blobs/", "redirect", methods=["GET"])
        e = start_daemon(make_edgecri)
        assert pull(e, f"{px.host}/cdn/app:v1", auth=auth_config("alice", PASSWORD)) == img.config_digest
        for d in [img.config_digest] + [l.digest for l in img.layers]:
            assert px.blob_stats("cdn/app", d).gets().statuses == [307], px.blob_stats("cdn/app", d)
            assert px.cdn_stats("cdn/app", d).gets().statuses == [200]
        cdn = [r for r in px.requests if r.listener == "cdn"]
        assert len(cdn) == 2
        assert px.cdn_authorization_seen == []
        assert all(r.authorization is None for r in cdn)
    assert_secret_not_logged(e, PASSWORD)


def test_pull_by_digest(reg, make_edgecri):
    img = pushed(reg, "dig/app")
    with Proxy(reg, auth="bearer", anonymous_pull=True) as px:
        e = start_daemon(make_edgecri)
        ref = f"{px.host}/dig/app@{img.manifest_digest}"
        assert pull(e, ref) == img.config_digest
        assert px.manifest_stats("dig/app", img.manifest_digest).gets().statuses[-1] == 200
        assert px.manifest_stats("dig/app", "v1").count == 0
        st = status(e, ref).image
        assert st.id == img.config_digest
        assert list(st.repo_digests) == [f"{px.host}/dig/app@{img.manifest_digest}"]
        assert list(st.repo_tags) == []


def test_pull_by_wrong_digest_is_refused(reg, make_edgecri):
    img = pushed(reg, "dig/wrong")
    other = pushed(reg, "dig/other")
    with Proxy(reg) as px:
        e = start_daemon(make_edgecri)
        # A digest the registry does not have.
        missing = "sha256:" + "0123456789abcdef" * 4
        err = pull_error(e, f"{px.host}/dig/wrong@{missing}")
        assert err.code() == grpc.StatusCode.NOT_FOUND, err
        # A registry answering a digest with other bytes.
        px.set_fault(r"/manifests/" + img.manifest_digest, "body", data=other.manifest)
        err = pull_error(e, f"{px.host}/dig/wrong@{img.manifest_digest}")
        assert err.code() == grpc.StatusCode.DATA_LOSS, err
        assert img.manifest_digest in err.details() and other.manifest_digest in err.details(), err.details()
        assert px.count(r"/blobs/") == 0, "nothing of the wrong manifest may be fetched"
        assert list_images(e) == []
        assert image_records(e) == []

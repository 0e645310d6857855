"""A small Registry HTTP API v2 client on urllib (push, and reads for tests).

    c = Client("http://127.0.0.1:5000", auth=("user", "pass"))
    c.push("library/busybox", image, tag="1.35")
    r = c.manifest("library/busybox", "1.35")      # Response
    r = c.blob("library/busybox", digest, range="bytes=100-")

Authentication follows the server's WWW-Authenticate challenge: Basic
credentials are sent when the challenge is Basic; for Bearer the token is
fetched from the challenge's realm (with the Basic credentials, if any) for
the challenge's service and scope, cached per scope and used for the retry.
The Authorization header is added as an "unredirected" header, so it is not
forwarded when a blob GET is redirected (to a CDN) — as a real client must.

Never uses environment proxies: every request goes straight to the URL
given, which must be loopback in these tests.
"""
import base64
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .tls import client_context

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ALL_MANIFESTS = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in _LOOPBACK:
        raise ValueError(f"refusing non-loopback URL {url!r}")


def opener(context=None, follow_redirects=True):
    """A urllib opener that ignores *_proxy environment variables."""
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def parse_challenge(value):
    """'Bearer realm="x",service="y",scope="a:b:c,d"' -> ("bearer", {...})."""
    if not value:
        return None, {}
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)', rest):
        v = m.group(3) if m.group(3) is not None else m.group(2)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", v)
    return scheme.lower(), params


class Response:
    """An HTTP answer read to the end (or as far as the server sent it)."""

    def __init__(self, status, headers, body, url, complete=True, error=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url  # final URL, after redirects
        self.complete = complete  # False: the connection ended before Content-Length
        self.error = error

    def header(self, name, default=None):
        return self.headers.get(name, default) if self.headers is not None else default

    @property
    def content_type(self):
        return self.header("Content-Type")

    @property
    def digest(self):
        return self.header("Docker-Content-Digest")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {len(self.body)} bytes complete={self.complete} {self.url}>"


class RegistryError(Exception):
    def __init__(self, what, response):
        super().__init__(f"{what}: HTTP {response.status}: {response.body[:500]!r}")
        self.response = response


def _read_all(resp):
    chunks = []
    try:
        while True:
            b = resp.read(1 << 16)
            if not b:
                break
            chunks.append(b)
    except http.client.IncompleteRead as e:
        chunks.append(e.partial)
        return b"".join(chunks), False, e
    except (ConnectionError, ssl.SSLError, OSError) as e:
        return b"".join(chunks), False, e
    length = resp.headers.get("Content-Length")
    body = b"".join(chunks)
    if length is not None and resp.status != 204 and getattr(resp, "_method", "GET") != "HEAD":
        try:
            if len(body) < int(length):
                return body, False, None
        except ValueError:
            pass
    return body, True, None


class Client:
    def __init__(self, base_url, auth=None, ca_file=None, cert=None, timeout=60, context=None):
        check_loopback(base_url)
        self.base = base_url.rstrip("/")
        self.auth = auth  # None or (user, password)
        self.timeout = timeout
        if context is None and self.base.startswith("https:"):
            context = client_context(ca_file, cert)
        self.context = context
        self._opener = opener(context)
        self._tokens = {}  # scope -> "Bearer xyz"
        self._basic = False  # server asked for Basic once
        self.token_fetches = 0

    # -- core ---------------------------------------------------------------
    def _basic_header(self):
        user, password = self.auth
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @staticmethod
    def _repo_of(path):
        m = re.match(r"/v2/(.+?)/(manifests|blobs|tags)/", path)
        return m.group(1) if m else None

    def _auth_for(self, path, method):
        if self._basic and self.auth:
            return self._basic_header()
        repo = self._repo_of(path)
        writing = method not in ("GET", "HEAD")
        for scope, hdr in self._tokens.items():
            if repo is None and scope == "":
                return hdr
            if repo is not None and scope.startswith(f"repository:{repo}:"):
                actions = scope.rsplit(":", 1)[1].split(",")
                if "*" in actions or ("push" in actions if writing else "pull" in actions):
                    return hdr
        return None

    def fetch_token(self, realm, service=None, scope=None):
        check_loopback(realm)
        q = {}
        if service:
            q["service"] = service
        if scope:
            q["scope"] = scope
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q) if q else realm
        req = urllib.request.Request(url)
        if self.auth:
            req.add_unredirected_header("Authorization", self._basic_header())
        self.token_fetches += 1
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RegistryError("token request", Response(e.code, e.headers, e.read(), url)) from None
        return doc.get("token") or doc.get("access_token")

    def raw(self, method, url, data=None, headers=None, follow_redirects=True):
        """One request, no auth handling; HTTP errors are returned, not raised."""
        check_loopback(url)
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in (headers or {}).items():
            if k.lower() == "authorization":
                req.add_unredirected_header(k, v)
            else:
                req.add_header(k, v)
        op = self._opener if follow_redirects else opener(self.context, follow_redirects=False)
        try:
            resp = op.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            resp = e
        with resp:
            body, complete, err = _read_all(resp)
            return Response(resp.status if hasattr(resp, "status") else resp.code, resp.headers, body,
                            resp.geturl(), complete, err)

    def request(self, method, path, data=None, headers=None, follow_redirects=True):
        """A request to base+path with the auth dance; returns a Response."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        upath = urllib.parse.urlsplit(url).path
        headers = dict(headers or {})
        hdr = self._auth_for(upath, method)
        if hdr:
            headers["Authorization"] = hdr
        r = self.raw(method, url, data, headers, follow_redirects)
        if r.status != 401:
            return r
        scheme, params = parse_challenge(r.header("WWW-Authenticate"))
        if scheme == "basic" and self.auth:
            self._basic = True
            headers["Authorization"] = self._basic_header()
        elif scheme == "bearer" and "realm" in params:
            scope = params.get("scope", "")
            token = self.fetch_token(params["realm"], params.get("service"), scope or None)
            self._tokens[scope] = "Bearer " + token
            headers["Authorization"] = "Bearer " + token
        else:
            return r
        return self.raw(method, url, data, headers, follow_redirects)

    # -- reads --------------------------------------------------------------
    def ping(self):
        return self.request("GET", "/v2/")

    def manifest(self, name, ref, accept=ALL_MANIFESTS, method="GET"):
        return self.request(method, f"/v2/{name}/manifests/{ref}", headers={"Accept": ", ".join(accept)})

    def blob(self, name, digest, range=None, method="GET", headers=None, follow_redirects=True):
        h = dict(headers or {})
        if range is not None:
            h["Range"] = range if isinstance(range, str) else f"bytes={range[0]}-{'' if range[1] is None else range[1]}"
        return self.request(method, f"/v2/{name}/blobs/{digest}", headers=h, follow_redirects=follow_redirects)

    def tags(self, name):
        r = self.request("GET", f"/v2/{name}/tags/list")
        if r.status != 200:
            raise RegistryError("tags list", r)
        return r.json().get("tags") or []

    def delete_manifest(self, name, digest):
        return self.request("DELETE", f"/v2/{name}/manifests/{digest}")

    def delete_blob(self, name, digest):
        return self.request("DELETE", f"/v2/{name}/blobs/{digest}")

    # -- writes -------------------------------------------------------------
    def has_blob(self, name, digest):
        return self.request("HEAD", f"/v2/{name}/blobs/{digest}").status == 200

    def push_blob(self, name, data, digest):
        """Monolithic upload: POST to start, PUT ?digest= with the content."""
        if self.has_blob(name, digest):
            return False
        r = self.request("POST", f"/v2/{name}/blobs/uploads/", data=b"", headers={"Content-Length": "0"})
        if r.status != 202:
            raise RegistryError(f"start upload of {digest}", r)
        loc = r.header("Location")
        if not loc:
            raise RegistryError("upload without Location", r)
        loc = urllib.parse.urljoin(self.base + "/", loc)
        loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest)
        r = self.request("PUT", loc, data=data, headers={"Content-Type": "application/octet-stream"})
        if r.status != 201:
            raise RegistryError(f"upload of {digest}", r)
        return True

    def push_manifest(self, name, ref, data, media_type):
        r = self.request("PUT", f"/v2/{name}/manifests/{ref}", data=data, headers={"Content-Type": media_type})
        if r.status != 201:
            raise RegistryError(f"manifest {name}:{ref}", r)
        return r.header("Docker-Content-Digest")

    def push(self, name, obj, tag="latest"):
        """Pushes an Image or an Index (children by digest first); returns the top digest."""
        for child in getattr(obj, "images", ()):
            self._push_image(name, child, child.manifest_digest)
        if hasattr(obj, "images"):
            for t in _tags(tag) or [obj.manifest_digest]:
                self.push_manifest(name, t, obj.manifest, obj.manifest_media_type)
            return obj.manifest_digest
        self._push_image(name, obj, None)
        for t in _tags(tag) or [obj.manifest_digest]:
            self.push_manifest(name, t, obj.manifest, obj.manifest_media_type)
        return obj.manifest_digest

    def _push_image(self, name, image, ref):
        for digest, data in image.blobs().items():
            self.push_blob(name, data, digest)
        if ref:
            self.push_manifest(name, ref, image.manifest, image.manifest_media_type)


def _tags(tag):
    if tag is None:
        return []
    return [tag] if isinstance(tag, str) else list(tag)


def push(registry_url, name, image_or_index, tag="latest", auth=None, ca_file=None, cert=None):
    """Pushes an Image or Index to ``registry_url`` as ``name:tag`` (tag may be
    a list, or None to push by digest only); returns the manifest digest.
    ``auth`` is (user, password): Basic or Bearer, whichever the server asks."""
    return Client(registry_url, auth=auth, ca_file=ca_file, cert=cert).push(name, image_or_index, tag)

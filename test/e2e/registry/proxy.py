"""A fault-injecting HTTP/1.1 reverse proxy in front of a Registry.

    with Registry() as reg, Proxy(reg, auth="bearer", username="u", password="p") as px:
        push(px.url, "library/busybox", image, auth=("u", "p"))
        px.set_fault(r"/blobs/" + layer.digest, "cut", after=100_000, times=1)
        ... pull through px.url ...
        st = px.stats[f"/v2/library/busybox/blobs/{layer.digest}"]
        assert st.count == 2 and st.ranges == [None, "bytes=100000-"]

Listeners (threads, 127.0.0.1 only):
  main  ``.url``/``.host``: forwards /v2/... to the upstream registry; with
        ``auth="bearer"`` also serves the token realm at /token (GET with
        Basic credentials, or the OAuth2 POST form), with ``auth="basic"``
        checks Basic credentials itself.
  cdn   ``.cdn_url``: serves /cdn/<upstream path> without any auth; blob GETs
        are sent there by a "redirect" fault. It records the Authorization
        header it receives (a client must not leak credentials to it).

Both share the optional TLS setting (certs from the test CA; with
``require_client_cert`` a client certificate from the CA is mandatory).

Faults (``set_fault(pattern, action, times=None, methods=None, listener=None,
**params)``; ``pattern`` is a regex searched in the request path, without
the query; ``times`` None = every matching request, else that many; the
returned Fault counts ``hits``). Actions:

  "status"    answer ``code`` (default 503) with a registry-style JSON error
              (or ``body``) and extra ``headers`` (e.g. {"Retry-After": "1"}).
  "drop"      close the connection without answering.
  "delay"     wait ``seconds`` before handling (``stop()`` ends the wait);
              "stall" = delay for ``seconds`` (default 3600): a hung server.
  "redirect"  answer ``code`` (default 307) Location: the cdn listener (main
              listener only; meant for blob GETs).
  "cut"       send ``after`` body bytes, then close (``reset=True``: RST).
  "throttle"  send the body at ``rate`` bytes/s.
  "corrupt"   flip one byte (XOR 0xff) of the body at entity ``offset``
              (default: the middle; for a 206 the offset is into the whole
              blob, so the same byte is corrupted whatever the range).
  "body"      replace the upstream body by ``data`` (status/headers kept).
  "headers"   ``set`` {name: value} / ``remove`` [names] in the answer.
  "chunked"   send the body with Transfer-Encoding: chunked (no length).

Body actions (cut, throttle, corrupt, body, headers, chunked) combine; the
others end the request. By default faults are checked after authentication
(an unauthenticated request gets its 401 and does not consume a fault);
``before_auth=True`` changes that.

Bookkeeping: ``.requests`` (every request, in order), ``.stats[path]``
(count, methods, ranges, statuses, bytes_sent, authorization, incomplete),
``.token_requests``, ``.tls_errors``, ``.errors`` (the proxy's own bugs);
``reset_stats()``.
"""
import base64
import http.client
import http.server
import json
import re
import secrets
import socket
import socketserver
import ssl
import struct
import threading
import time
import urllib.parse

from .tls import default_ca

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length", "expect"}
TERMINAL = ("status", "drop", "redirect")
BODY = ("cut", "throttle", "corrupt", "body", "headers", "chunked")
ACTIONS = TERMINAL + BODY + ("delay", "stall")

_REPO = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)(/|$)")


class Fault:
    def __init__(self, pattern, action, times=None, methods=None, listener=None, before_auth=False, **params):
        if action not in ACTIONS:
            raise ValueError(f"unknown fault action {action!r}; one of {ACTIONS}")
        self.pattern = pattern
        self.regex = re.compile(pattern)
        self.action = action
        self.remaining = times
        self.methods = {m.upper() for m in methods} if methods else None
        self.listener = listener
        self.before_auth = before_auth
        self.params = params
        self.hits = 0

    def matches(self, listener, method, path):
        return ((self.remaining is None or self.remaining > 0)
                and (self.listener is None or self.listener == listener)
                and (self.methods is None or method in self.methods)
                and self.regex.search(path) is not None)

    def __repr__(self):
        return f"<Fault {self.action} {self.pattern!r} hits={self.hits} remaining={self.remaining} {self.params}>"


class RequestRecord:
    """One request as the proxy saw it."""

    def __init__(self, listener, method, target, headers, client_cert=None):
        u = urllib.parse.urlsplit(target)
        self.listener = listener
        self.method = method
        self.path = u.path
        self.query = u.query
        self.headers = headers  # list of (name, value) as received
        self.range = _hget(headers, "range")
        self.authorization = _hget(headers, "authorization")
        self.client_cert = client_cert
        self.status = None
        self.bytes_sent = 0
        self.complete = True
        self.faults = []
        self.start = time.monotonic()
        self.duration = None

    def header(self, name):
        return _hget(self.headers, name)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return (f"<{self.listener} {self.method} {self.path} range={self.range} -> {self.status} "
                f"{self.bytes_sent}B{'' if self.complete else ' CUT'} {self.faults}>")


class PathStats:
    def __init__(self, records=()):
        self.records = list(records)

    count = property(lambda self: len(self.records))
    methods = property(lambda self: [r.method for r in self.records])
    ranges = property(lambda self: [r.range for r in self.records])
    statuses = property(lambda self: [r.status for r in self.records])
    bytes_sent = property(lambda self: sum(r.bytes_sent for r in self.records))
    authorization = property(lambda self: [r.authorization for r in self.records])
    incomplete = property(lambda self: sum(1 for r in self.records if not r.complete))

    def gets(self):
        """Only the GET requests (a HEAD is not a download)."""
        return PathStats(r for r in self.records if r.method == "GET")

    def __repr__(self):
        return f"<PathStats count={self.count} statuses={self.statuses} ranges={self.ranges} bytes={self.bytes_sent}>"


class Stats(dict):
    """path -> PathStats; unknown paths give an empty PathStats."""

    def __missing__(self, key):
        return PathStats()


class TokenRequest:
    def __init__(self, method, service, scopes, user, granted, grant_type=None, client_id=None):
        self.method, self.service, self.scopes, self.user = method, service, scopes, user
        self.granted, self.grant_type, self.client_id = granted, grant_type, client_id

    def __repr__(self):
        return f"<TokenRequest {self.method} user={self.user} scopes={self.scopes} granted={self.granted}>"


def _hget(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _error_body(code, message, detail=None):
    e = {"code": code, "message": message}
    if detail is not None:
        e["detail"] = detail
    return json.dumps({"errors": [e]}).encode()


def _parse_scopes(values):
    """["repository:a/b:pull,push", ...] -> {(type, name): {actions}}."""
    out = {}
    for v in values:
        for s in v.split(" "):
            if not s:
                continue
            parts = s.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            out.setdefault((typ, name), set()).update(a for a in actions.split(",") if a)
    return out


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, proxy, listener, ssl_context):
        self.proxy = proxy
        self.listener = listener
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, not in the accept loop.
        self.proxy._track(request, True)
        try:
            if self.ssl_context is not None:
                request.settimeout(10)
                try:
                    request = self.ssl_context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.proxy._tls_error(self.listener, e)
                    return
                self.proxy._track(request, True)
                request.settimeout(None)
            super().finish_request(request, client_address)
        finally:
            self.proxy._track(request, False)

    def handle_error(self, request, client_address):
        pass  # client went away etc.: nothing to report


class _Cut(Exception):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edgecri-test-proxy"
    timeout = 300

    def log_message(self, *a):
        pass

    def _dispatch(self):
        self.server.proxy._handle(self, self.server.listener)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


class Proxy:
    def __init__(self, upstream, auth=None, username="user", password="pass", tls=False, ca=None,
                 require_client_cert=False, upstream_ca_file=None, upstream_cert=None,
                 service="edgecri-test-registry", token_expires_in=300, anonymous_pull=False,
                 realm=None, start=True):
        if hasattr(upstream, "url"):  # a Registry
            upstream_ca_file = upstream_ca_file or getattr(upstream, "ca_file", None)
            upstream_cert = upstream_cert or getattr(upstream, "client_cert", None)
            upstream = upstream.url
        u = urllib.parse.urlsplit(upstream)
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream must be loopback, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._up_scheme, self._up_host, self._up_port = u.scheme, u.hostname, u.port
        self._up_ctx = None
        if u.scheme == "https":
            self._up_ctx = ssl.create_default_context(cafile=upstream_ca_file)
            if upstream_cert:
                self._up_ctx.load_cert_chain(*upstream_cert)
        if auth not in (None, "bearer", "basic"):
            raise ValueError("auth must be None, 'bearer' or 'basic'")
        self.auth = auth
        self.username, self.password = username, password
        self.service = service
        self.token_expires_in = token_expires_in
        self.anonymous_pull = anonymous_pull
        self.tls = tls
        self.ca = (ca or default_ca()) if tls else None
        self.ca_file = self.ca.ca_file if self.ca else None
        self.require_client_cert = require_client_cert
        self.client_cert = self.ca.client_cert() if (tls and require_client_cert) else None
        self._realm_override = realm

        self._lock = threading.Lock()
        self._faults = []
        self._tokens = {}  # token -> (grants, expiry, user)
        self._refresh = {}
        self._conns = set()
        self._stopping = threading.Event()
        self.requests = []
        self.token_requests = []
        self.tls_errors = []
        self.errors = []  # exceptions inside the proxy itself (should stay empty)
        self._servers = {}
        self._threads = []
        if start:
            self.start()

    # -- lifecycle ----------------------------------------------------------
    def _ssl_context(self):
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        pair = self.ca.issue()
        ctx.load_cert_chain(pair.cert_file, pair.key_file)
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca_file)
        return ctx

    def start(self):
        ctx = self._ssl_context()
        scheme = "https" if self.tls else "http"
        for name in ("main", "cdn"):
            srv = _Server(self, name, ctx)
            self._servers[name] = srv
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                 name=f"proxy-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.port = self._servers["main"].server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{scheme}://{self.host}"
        self.cdn_port = self._servers["cdn"].server_address[1]
        self.cdn_host = f"127.0.0.1:{self.cdn_port}"
        self.cdn_url = f"{scheme}://{self.cdn_host}"
        self.realm = self._realm_override or self.url + "/token"
        return self

    def stop(self):
        """Stops both listeners and closes every open connection."""
        self._stopping.set()
        for srv in self._servers.values():
            srv.shutdown()
            srv.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._servers = {}

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _track(self, sock, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def _tls_error(self, listener, e):
        with self._lock:
            self.tls_errors.append((listener, repr(e)))

    # -- configuration ------------------------------------------------------
    def set_fault(self, pattern, action, times=None, methods=None, listener=None, before_auth=False, **params):
        f = Fault(pattern, action, times, methods, listener, before_auth, **params)
        with self._lock:
            self._faults.append(f)
        return f

    def clear_faults(self):
        with self._lock:
            self._faults = []

    @property
    def faults(self):
        with self._lock:
            return list(self._faults)

    def expire_tokens(self):
        """Invalidates every token issued so far (the next request gets a 401)."""
        with self._lock:
            self._tokens.clear()

    def reset_stats(self):
        with self._lock:
            self.requests = []
            self.token_requests = []
            self.tls_errors = []

    @property
    def stats(self):
        out = Stats()
        with self._lock:
            reqs = list(self.requests)
        for r in reqs:
            out.setdefault(r.path, PathStats()).records.append(r)
        return out

    def blob_stats(self, name, digest):
        return self.stats[f"/v2/{name}/blobs/{digest}"]

    def cdn_stats(self, name, digest):
        return self.stats[f"/cdn/v2/{name}/blobs/{digest}"]

    def manifest_stats(self, name, ref):
        return self.stats[f"/v2/{name}/manifests/{ref}"]

    def count(self, pattern, method=None, listener=None):
        rx = re.compile(pattern)
        with self._lock:
            return sum(1 for r in self.requests if rx.search(r.path) and (method is None or r.method == method)
                       and (listener is None or r.listener == listener))

    @property
    def cdn_authorization_seen(self):
        """Authorization headers the cdn listener received (should be [])."""
        with self._lock:
            return [r.authorization for r in self.requests if r.listener == "cdn" and r.authorization]

    # -- request handling -----------------------------------------------------
    def _take(self, listener, method, path, phase):
        """Matching active faults for a phase ("pre" or "post" auth), consuming one use each."""
        out = []
        with self._lock:
            for f in self._faults:
                if f.before_auth != (phase == "pre"):
                    continue
                if f.action == "redirect" and listener != "main":
                    continue
                if f.matches(listener, method, path):
                    if f.remaining is not None:
                        f.remaining -= 1
                    f.hits += 1
                    out.append(f)
        return out

    def _handle(self, h, listener):
        peer = None
        if isinstance(h.connection, ssl.SSLSocket):
            c = h.connection.getpeercert()
            if c:
                peer = dict(x[0] for x in c.get("subject", ())).get("commonName")
        rec = RequestRecord(listener, h.command, h.path, list(h.headers.items()), peer)
        with self._lock:
            self.requests.append(rec)
        try:
            body = self._read_body(h)
            self._serve(h, listener, rec, body)
        except _Cut:
            rec.complete = False
            h.close_connection = True
        except (ConnectionError, ssl.SSLError, socket.timeout):
            rec.complete = False
            h.close_connection = True
        except Exception as e:  # a bug in the proxy: make it visible
            rec.complete = False
            rec.faults.append(f"proxy error: {e!r}")
            with self._lock:
                self.errors.append((rec, e))
            h.close_connection = True
        finally:
            rec.duration = time.monotonic() - rec.start

    @staticmethod
    def _read_body(h):
        te = (h.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = h.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(h.rfile.read(size))
                h.rfile.readline(65537)
            return b"".join(parts)
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _serve(self, h, listener, rec, body):
        path = rec.path
        faults = self._take(listener, rec.method, path, "pre")
        if self._apply_pre(h, rec, faults):
            return
        if listener == "main" and path == "/token" and self.auth == "bearer":
            # No auth needed here, so "after auth" faults apply at once (a failing token server).
            if self._apply_pre(h, rec, self._take(listener, rec.method, path, "post")):
                return
            return self._token(h, rec, body)
        if listener == "main" and self.auth and not self._authorized(h, rec):
            return
        if listener == "cdn":
            if not path.startswith("/cdn/"):
                return self._send(h, rec, 404, {"Content-Type": "text/plain"}, b"not a cdn path\n")
        faults = [f for f in faults if f.action in BODY + ("redirect",)]
        faults += self._take(listener, rec.method, path, "post")
        if self._apply_pre(h, rec, faults):
            return
        for f in faults:
            if f.action == "redirect":
                rec.faults.append("redirect")
                target = self.cdn_url + "/cdn" + h.path
                return self._send(h, rec, f.params.get("code", 307), {"Location": target}, b"")
        upstream_target = h.path[len("/cdn"):] if listener == "cdn" else h.path
        self._forward(h, listener, rec, body, upstream_target, [f for f in faults if f.action in BODY])

    def _apply_pre(self, h, rec, faults):
        """delay/stall/drop/status; True when the request is finished."""
        for f in faults:
            if f.action in ("delay", "stall"):
                rec.faults.append(f.action)
                self._stopping.wait(f.params.get("seconds", 3600 if f.action == "stall" else 1))
                if self._stopping.is_set():
                    raise _Cut()
        for f in faults:
            if f.action == "drop":
                rec.faults.append("drop")
                rec.status = 0
                self._abort(h, f.params.get("reset", False))
                raise _Cut()
            if f.action == "status":
                rec.faults.append(f"status {f.params.get('code', 503)}")
                code = f.params.get("code", 503)
                data = f.params.get("body")
                if data is None:
                    data = self._default_error(code, rec.path)
                elif isinstance(data, str):
                    data = data.encode()
                hdrs = {"Content-Type": "application/json; charset=utf-8",
                        "Docker-Distribution-API-Version": "registry/2.0"}
                hdrs.update(f.params.get("headers") or {})
                self._send(h, rec, code, hdrs, data)
                return True
        return False

    @staticmethod
    def _default_error(code, path):
        if code == 404:
            if "/blobs/" in path:
                return _error_body("BLOB_UNKNOWN", "blob unknown to registry")
            return _error_body("MANIFEST_UNKNOWN", "manifest unknown")
        if code == 429:
            return _error_body("TOOMANYREQUESTS", "too many requests")
        if code in (401, 403):
            return _error_body("DENIED", "requested access to the resource is denied")
        return _error_body("UNAVAILABLE", f"injected {code}")

    def _send(self, h, rec, code, headers, data):
        h.send_response_only(code)
        has_len = False
        for k, v in headers.items():
            h.send_header(k, v)
            has_len = has_len or k.lower() == "content-length"
        if not has_len:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if rec.method != "HEAD" and data:
            # Counted before the write: a client that has read the last byte
            # may look at the stats before this thread runs again.
            rec.bytes_sent += len(data)
            try:
                h.wfile.write(data)
            except Exception:
                rec.bytes_sent -= len(data)
                raise
        rec.status = code

    def _counted_write(self, h, rec, sent, piece, chunked):
        """Writes piece and counts it in rec.bytes_sent before the write, for
        the same reason as in _send; a failed write is not counted."""
        rec.bytes_sent = sent + len(piece)
        try:
            self._write(h, piece, chunked)
        except Exception:
            rec.bytes_sent = sent
            raise

    @staticmethod
    def _abort(h, reset):
        try:
            if reset:
                raw = h.connection
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()
            else:
                h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.close_connection = True

    # -- auth -----------------------------------------------------------------
    def _basic_ok(self, value):
        if not value or not value.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(value[6:].strip()).decode().partition(":")
        except Exception:
            return None
        return user if (user == self.username and pw == self.password) else False

    def _needed(self, rec):
        m = _REPO.match(rec.path)
        if not m:
            return None, None
        action = "pull" if rec.method in ("GET", "HEAD") else ("delete" if rec.method == "DELETE" else "push")
        return m.group(1), action

    def _challenge(self, h, rec, error=None):
        repo, action = self._needed(rec)
        if self.auth == "basic":
            www = 'Basic realm="edgecri-test-registry"'
        else:
            www = f'Bearer realm="{self.realm}",service="{self.service}"'
            if repo:
                actions = "pull" if action == "pull" else f"pull,{action}"
                www += f',scope="repository:{repo}:{actions}"'
            if error:
                www += f',error="{error}"'
        rec.faults.append("challenge")
        self._send(h, rec, 401, {"WWW-Authenticate": www, "Content-Type": "application/json; charset=utf-8",
                                 "Docker-Distribution-API-Version": "registry/2.0"},
                   _error_body("UNAUTHORIZED", "authentication required",
                               [{"Type": "repository", "Name": repo, "Action": action}] if repo else None))

    def _authorized(self, h, rec):
        value = rec.authorization or ""
        if self.auth == "basic":
            if self._basic_ok(value):
                return True
            self._challenge(h, rec)
            return False
        if not value.lower().startswith("bearer "):
            self._challenge(h, rec)
            return False
        token = value[7:].strip()
        with self._lock:
            t = self._tokens.get(token)
        if t is None or t[1] < time.monotonic():
            self._challenge(h, rec, "invalid_token")
            return False
        repo, action = self._needed(rec)
        if repo is None:
            return True
        grants = t[0].get(("repository", repo), set())
        if "*" in grants or action in grants or (action == "delete" and "push" in grants):
            return True
        self._challenge(h, rec, "insufficient_scope")
        return False

    def _token(self, h, rec, body):
        rec.listener = "token"
        q = urllib.parse.parse_qs(rec.query, keep_blank_values=True)
        grant_type = client_id = None
        user = None
        if rec.method == "POST":
            form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
            grant_type = (form.get("grant_type") or [""])[0]
            client_id = (form.get("client_id") or [None])[0]
            service = (form.get("service") or [None])[0]
            scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
            if grant_type == "password":
                ok = (form.get("username") or [""])[0] == self.username and \
                    (form.get("password") or [""])[0] == self.password
                user = self.username if ok else False
            elif grant_type == "refresh_token":
                with self._lock:
                    user = self._refresh.get((form.get("refresh_token") or [""])[0], False)
            else:
                user = False
        else:
            service = (q.get("service") or [None])[0]
            scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
            client_id = (q.get("client_id") or [None])[0]
            user = self._basic_ok(rec.authorization) if rec.authorization else None
        if user is False or (user is None and not self.anonymous_pull):
            with self._lock:
                self.token_requests.append(TokenRequest(rec.method, service, scopes, None, False, grant_type,
                                                        client_id))
            return self._send(h, rec, 401, {"Content-Type": "application/json",
                                            "WWW-Authenticate": 'Basic realm="edgecri-test-token"'},
                              json.dumps({"details": "incorrect username or password"}).encode())
        grants = _parse_scopes(scopes)
        if user is None:  # anonymous: pull only
            grants = {k: v & {"pull"} for k, v in grants.items()}
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = (grants, time.monotonic() + self.token_expires_in, user)
            self.token_requests.append(TokenRequest(rec.method, service, scopes, user, True, grant_type, client_id))
        doc = {"token": token, "access_token": token, "expires_in": self.token_expires_in,
               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if rec.method == "POST":
            doc = {"access_token": token, "expires_in": self.token_expires_in, "scope": " ".join(scopes),
                   "issued_at": doc["issued_at"]}
            if user:
                refresh = secrets.token_hex(16)
                with self._lock:
                    self._refresh[refresh] = user
                doc["refresh_token"] = refresh
        self._send(h, rec, 200, {"Content-Type": "application/json"}, json.dumps(doc).encode())

    # -- forwarding -------------------------------------------------------------
    def _upstream_conn(self):
        if self._up_scheme == "https":
            return http.client.HTTPSConnection(self._up_host, self._up_port, timeout=120, context=self._up_ctx)
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=120)

    def _forward(self, h, listener, rec, body, target, faults):
        scheme = "https" if self.tls else "http"
        my_host = self.host if listener == "main" else self.cdn_host
        headers = []
        for k, v in h.headers.items():  # a list: repeated headers (Accept) must all pass
            lk = k.lower()
            if lk in HOP_BY_HOP or lk.startswith("x-forwarded-"):
                continue
            if lk == "authorization" and (self.auth or listener == "cdn"):
                continue
            headers.append((k, v))
        headers += [("Host", my_host), ("X-Forwarded-Proto", scheme), ("X-Forwarded-For", h.client_address[0])]
        if body or rec.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        conn = self._upstream_conn()
        try:
            try:
                conn.putrequest(rec.method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                rec.faults.append(f"upstream: {e!r}")
                return self._send(h, rec, 502, {"Content-Type": "application/json"},
                                  _error_body("UNAVAILABLE", f"upstream unreachable: {e}"))
            self._relay(h, rec, resp, faults, my_host, scheme)
        finally:
            conn.close()

    def _relay(self, h, rec, resp, faults, my_host, scheme):
        out_headers = []
        length = None
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP_BY_HOP:
                if lk == "content-length":
                    length = int(v)
                continue
            if lk == "location" and v.startswith(self.upstream):
                v = f"{scheme}://{my_host}" + v[len(self.upstream):]
            out_headers.append((k, v))
        no_body = rec.method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        data = None
        if not no_body and length is None:
            data = resp.read()  # upstream was chunked: buffer it
            length = len(data)
        entity_start = 0
        m = re.match(r"bytes (\d+)-", dict((k.lower(), v) for k, v in out_headers).get("content-range", ""))
        if m:
            entity_start = int(m.group(1))

        cut = throttle = corrupt = None
        chunked = False
        for f in faults:
            rec.faults.append(f.action)
            p = f.params
            if f.action == "cut":
                cut = (p.get("after", 0), p.get("reset", False))
            elif f.action == "throttle":
                throttle = p["rate"]
            elif f.action == "corrupt":
                corrupt = p.get("offset")
            elif f.action == "body":
                d = p["data"]
                data = d.encode() if isinstance(d, str) else d
                length = len(data)
                resp.read()
            elif f.action == "headers":
                remove = {x.lower() for x in p.get("remove", ())}
                sets = p.get("set") or {}
                setl = {k.lower() for k in sets}
                out_headers = [(k, v) for k, v in out_headers if k.lower() not in remove | setl]
                out_headers += list(sets.items())
                if "content-length" in remove:
                    chunked = not no_body
            elif f.action == "chunked":
                chunked = not no_body
        if corrupt is None and any(f.action == "corrupt" for f in faults):
            total = length
            cr = re.search(r"/(\d+)$", dict((k.lower(), v) for k, v in out_headers).get("content-range", ""))
            if cr:
                total = int(cr.group(1))
            corrupt = (total or 1) // 2

        h.send_response_only(resp.status, resp.reason)
        for k, v in out_headers:
            h.send_header(k, v)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            h.send_header("Content-Length", str(length))
        elif no_body and rec.method == "HEAD":
            pass
        h.end_headers()
        rec.status = resp.status
        if no_body:
            return

        sent = 0
        t0 = time.monotonic()
        source = _chunks(data, resp)
        for chunk in source:
            if corrupt is not None and entity_start + sent <= corrupt < entity_start + sent + len(chunk):
                i = corrupt - entity_start - sent
                chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
            pieces = [chunk]
            if throttle:
                step = max(1, min(16384, throttle // 20))
                pieces = [chunk[i:i + step] for i in range(0, len(chunk), step)]
            for piece in pieces:
                if cut is not None and sent + len(piece) > cut[0]:
                    piece = piece[:cut[0] - sent]
                    if piece:
                        self._counted_write(h, rec, sent, piece, chunked)
                        sent += len(piece)
                    rec.complete = False
                    self._abort(h, cut[1])
                    raise _Cut()
                self._counted_write(h, rec, sent, piece, chunked)
                sent += len(piece)
                if throttle:
                    wait = t0 + sent / throttle - time.monotonic()
                    if wait > 0 and self._stopping.wait(wait):
                        raise _Cut()
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
        elif length is not None and sent < length:
            # The upstream sent less than it announced (docker-registry's 416s do): close, as it did,
            # instead of leaving a keep-alive client waiting for the rest.
            rec.complete = False
            rec.faults.append("upstream body short")
            self._abort(h, False)
            raise _Cut()

    @staticmethod
    def _write(h, piece, chunked):
        if chunked:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        else:
            h.wfile.write(piece)

    def __repr__(self):
        return f"Proxy({self.url} -> {self.upstream}, auth={self.auth})"


def _chunks(data, resp, size=1 << 16):
    if data is not None:
        for i in range(0, len(data), size):
            yield data[i:i + size]
        return
    while True:
        b = resp.read(size)
        if not b:
            return
        yield b

"""A real Docker registry (Debian's docker-registry 2.8) on 127.0.0.1.

    with Registry() as reg:            # http://127.0.0.1:PORT
        push(reg.url, "library/busybox", image)
    with Registry(tls=True) as reg:    # https, reg.ca_file is the trust anchor
        ...

The registry listens on loopback only, stores blobs in a private temp
directory (deleted at ``close()``) and has deletes enabled. ``stop()`` kills
it (a dead mirror); ``restart()`` brings it back on the same port and
storage; ``pause()``/``resume()`` SIGSTOP/SIGCONT it (connections are accepted
by the kernel but never answered — a hung registry).
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from .tls import client_context, default_ca

REGISTRY_BIN = "/usr/bin/docker-registry"

_live = set()


@atexit.register
def _kill_leftovers():
    for r in list(_live):
        try:
            r.close()
        except Exception:
            pass


def _command(argv):
    """argv wrapped so the child dies with the test process (SIGKILL when the
    thread that started it exits), via util-linux's setpriv: no preexec_fn,
    which is unsafe once the proxy's threads exist."""
    if os.path.exists("/usr/bin/setpriv"):
        return ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] + argv
    return argv


def free_port():
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry serving on 127.0.0.1:<free port>.

    Options:
      tls               serve https with a cert from the test CA (``ca``, default
                        the process-wide ``default_ca()``); ``.ca_file``.
      require_client_cert  with tls: only clients with a cert from the CA.
      htpasswd          {user: password}: the registry's own Basic auth
                        (bcrypt htpasswd file made with apache2-utils).
      mirror_of         URL (must be loopback) of an upstream registry: run as a
                        pull-through cache (read only) — a real mirror.
      mirror_auth       (user, password) for the upstream of a mirror.
      extra_config      dict merged into the YAML (JSON) configuration.
    """

    def __init__(self, tls=False, ca=None, require_client_cert=False, htpasswd=None, mirror_of=None,
                 mirror_auth=None, mirror_ca_file=None, extra_config=None, port=None, start=True,
                 log_level="warn"):
        self.dir = tempfile.mkdtemp(prefix="edgecri-registry-")
        self.storage = os.path.join(self.dir, "storage")
        os.makedirs(self.storage)
        self.config_file = os.path.join(self.dir, "config.yml")
        self.log_path = os.path.join(self.dir, "registry.log")
        self.tls = tls
        self.ca = (ca or default_ca()) if tls else None
        self.ca_file = self.ca.ca_file if self.ca else None
        self.require_client_cert = require_client_cert
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.proc = None
        self._log = None
        self.client_cert = self.ca.client_cert() if (tls and require_client_cert) else None

        cfg = {
            "version": 0.1,
            "log": {"level": log_level, "accesslog": {"disabled": True}, "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": self.storage},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "edgecri-test-secret",
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "health": {"storagedriver": {"enabled": False}},
        }
        if tls:
            pair = self.ca.issue()
            cfg["http"]["tls"] = {"certificate": pair.cert_file, "key": pair.key_file}
            if require_client_cert:
                cfg["http"]["tls"]["clientcas"] = [self.ca_file]
        if htpasswd:
            path = os.path.join(self.dir, "htpasswd")
            lines = []
            for user, password in htpasswd.items():
                out = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                                     capture_output=True, text=True).stdout.strip()
                lines.append(out)
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            cfg["auth"] = {"htpasswd": {"realm": "edgecri-registry", "path": path}}
        if mirror_of:
            host = mirror_of.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise ValueError(f"mirror_of must be a loopback URL, not {mirror_of!r}")
            cfg["proxy"] = {"remoteurl": mirror_of}
            if mirror_auth:
                cfg["proxy"]["username"], cfg["proxy"]["password"] = mirror_auth
        self.mirror_ca_file = mirror_ca_file
        for k, v in (extra_config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.config = cfg
        with open(self.config_file, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML
        _live.add(self)
        if start:
            self.start()

    # -- process ------------------------------------------------------------
    def start(self, timeout=20):
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._log = open(self.log_path, "ab")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir, "TMPDIR": self.dir}
        if self.mirror_ca_file:
            env["SSL_CERT_FILE"] = self.mirror_ca_file
        self.proc = subprocess.Popen(_command([REGISTRY_BIN, "serve", self.config_file]), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        ctx = None
        if self.tls:
            ctx = client_context(self.ca_file, self.client_cert)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2, context=ctx).close()
                return
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth enabled: it is serving
                    return
                last = e
            except OSError as e:
                last = e
            time.sleep(0.02)
        raise RuntimeError(f"docker-registry not serving after {timeout}s ({last}):\n{self.log()[-4000:]}")

    def stop(self, sig=signal.SIGKILL):
        """Kills the registry (SIGKILL by default): connections are refused after."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        """Stop, then start again on the same port and storage."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:  # the port may take a moment to be bindable again
            try:
                return self.start()
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pause(self):
        """SIGSTOP: the kernel still accepts connections, nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def close(self):
        self.stop()
        _live.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------
    def ssl_context(self):
        """Client ssl context for this registry (None for plain http)."""
        return client_context(self.ca_file, self.client_cert) if self.tls else None

    def client(self, auth=None):
        from .client import Client
        return Client(self.url, auth=auth, ca_file=self.ca_file, cert=self.client_cert)

    def blob_files(self):
        """Digests of the blobs in the storage directory."""
        base = os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256")
        out = []
        for root, _dirs, files in os.walk(base):
            if "data" in files:
                out.append("sha256:" + os.path.basename(root))
        return sorted(out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Registry({self.url}, running={self.running})"

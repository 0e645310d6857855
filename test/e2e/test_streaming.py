"""Exec, Attach and PortForward end to end: the real daemon, busybox
containers in host-network pods, and clients written from the protocol
specifications (spdyclient.py for SPDY/3.1, python3-websocket for
WebSocket). Port-forward targets listen on 127.0.0.1 only."""
import hashlib
import json
import os
import socket
import struct
import threading
import time

import grpc
import pytest
import websocket

import api_pb2 as pb
from ctrtest import container_config, create, pod_config, run_pod, start, wait_state
from spdyclient import Exec, HTTPError, SpdyClient, http_request


@pytest.fixture
def daemon(make_edgecri):
    return start(make_edgecri)


@pytest.fixture
def pod(daemon, workdir):
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(daemon, cfg)
    yield pid, cfg, log_dir
    if daemon.proc is not None:
        rt = daemon.runtime()
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def running(daemon, pod, name, command, **kw):
    pid, cfg, _ = pod
    cid = create(daemon, pid, cfg, container_config(name, command=command, log_path=f"{name}.log", **kw))
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
    wait_state(daemon, cid, pb.CONTAINER_RUNNING)
    return cid


@pytest.fixture
def sleeper(daemon, pod):
    return running(daemon, pod, "sleeper", ["sleep", "3600"])


def exec_url(daemon, cid, cmd, stdin=False, stdout=True, stderr=True, tty=False):
    return daemon.runtime().Exec(pb.ExecRequest(container_id=cid, cmd=cmd, stdin=stdin, stdout=stdout,
                                                stderr=stderr, tty=tty), timeout=10).url


def status_of(err_bytes):
    return json.loads(err_bytes) if err_bytes else None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- Exec over SPDY ------------------------------------------------------------------

def test_exec_stdin_to_stdout(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["cat"], stdin=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    e = Exec(url, stdin=True)
    assert e.c.protocol == "v4.channel.k8s.io"
    e.write(b"hello\nworld\n", fin=True)
    out, err, status = e.wait()
    e.close()
    assert out == b"hello\nworld\n"
    assert err == b""
    assert status_of(status) == {"metadata": {}, "status": "Success"}


def test_exec_stderr_apart_and_exit_code(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sh", "-c", "echo out-line; echo err-line >&2; exit 3"])
    e = Exec(url)
    out, err, status = e.wait()
    e.close()
    assert out == b"out-line\n"
    assert err == b"err-line\n"
    st = status_of(status)
    assert st["status"] == "Failure"
    assert st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert st["message"].startswith("command terminated with non-zero exit code: ")


def test_exec_older_protocols(daemon, sleeper):
    # v2 (no resize, text errors): a failure is the message, success nothing.
    url = exec_url(daemon, sleeper, ["sh", "-c", "exit 4"])
    e = Exec(url, protocol=["v2.channel.k8s.io"])
    assert e.c.protocol == "v2.channel.k8s.io"
    out, err, status = e.wait()
    e.close()
    assert status.startswith(b"command terminated with non-zero exit code: ")
    url = exec_url(daemon, sleeper, ["true"])
    e = Exec(url, protocol=["v9.channel.k8s.io", "v3.channel.k8s.io"])
    assert e.c.protocol == "v3.channel.k8s.io"
    assert e.wait()[2] == b""
    e.close()


def test_exec_tty_resize(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sh", "-c", "read x; /bin/busybox stty size; [ -t 0 ] && echo stdin-is-a-tty"], stdin=True,
                   tty=True, stderr=False)
    e = Exec(url, stdin=True, tty=True)
    assert e.resize is not None and e.stderr is None
    e.set_size(100, 40)
    time.sleep(0.2)
    e.write(b"go\n")
    out, _, status = e.wait()
    e.close()
    text = out.decode(errors="replace")
    assert "40 100" in text, text
    assert "stdin-is-a-tty" in text, text
    assert status_of(status)["status"] == "Success"


def test_exec_ten_mib_through_stdin_and_stdout(daemon, sleeper):
    data = os.urandom(10 << 20)
    url = exec_url(daemon, sleeper, ["cat"], stdin=True, stderr=False)
    e = Exec(url, stdin=True, stderr=False)
    t0 = time.monotonic()
    w = threading.Thread(target=e.write, args=(data, True))
    w.start()
    out, _, status = e.wait(timeout=120)
    w.join()
    e.close()
    assert len(out) == len(data)
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    assert status_of(status)["status"] == "Success"
    print(f"10 MiB round trip in {time.monotonic() - t0:.2f}s")


def test_exec_client_gone_kills_process(daemon, sleeper):
    marker = f"{1000 + os.getpid() % 1000}.{int(time.time() * 1000) % 100000}"
    url = exec_url(daemon, sleeper, ["sh", "-c", f"echo started; exec sleep {marker}"])
    e = Exec(url)
    e.c.wait(lambda: b"started" in e.stdout.data)
    e.close()
    # The exec'd sleep is killed once its client is gone.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        procs = [p for p in os.listdir("/proc") if p.isdigit()]
        alive = []
        for p in procs:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if f.read() == f"sleep\0{marker}\0".encode():
                        alive.append(p)
            except OSError:
                pass
        if not alive:
            break
        time.sleep(0.1)
    assert not alive


# --- URLs, tokens, handshakes ----------------------------------------------------------

def test_token_single_use_and_unknown(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["true"])
    e = Exec(url)
    e.wait()
    e.close()
    with pytest.raises(HTTPError) as exc:
        Exec(url)
    assert exc.value.status == 404
    base = url.rsplit("/", 1)[0]
    status, _, _ = http_request(base + "/" + "A" * 43)
    assert status == 404
    status, _, _ = http_request(url.split("/exec/")[0] + "/nothing/here")
    assert status == 404


def test_handshake_errors(daemon, sleeper):
    # Not an upgrade: 400 (and the token is spent, as with kubelet).
    url = exec_url(daemon, sleeper, ["true"])
    status, _, body = http_request(url)
    assert status == 400 and b"upgrade" in body
    # No common protocol: 403 with the server's list.
    url = exec_url(daemon, sleeper, ["true"])
    with pytest.raises(HTTPError) as exc:
        SpdyClient(url, ["v99.channel.k8s.io"])
    assert exc.value.status == 403
    assert "v4.channel.k8s.io" in exc.value.headers["x-accepted-stream-protocol-versions"]
    # No protocol header at all: 400.
    url = exec_url(daemon, sleeper, ["true"])
    with pytest.raises(HTTPError) as exc:
        SpdyClient(url, [])
    assert exc.value.status == 400


def test_cri_validation(daemon, sleeper):
    rt = daemon.runtime()
    cases = [
        (pb.ExecRequest(container_id=sleeper, cmd=["true"], stdout=True, stderr=True, tty=True),
         grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExecRequest(container_id=sleeper, cmd=["true"]), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExecRequest(container_id=sleeper, cmd=[], stdout=True), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExecRequest(container_id="", cmd=["true"], stdout=True), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExecRequest(container_id="f" * 64, cmd=["true"], stdout=True), grpc.StatusCode.NOT_FOUND),
    ]
    for req, code in cases:
        with pytest.raises(grpc.RpcError) as exc:
            rt.Exec(req, timeout=10)
        assert exc.value.code() == code, req
    with pytest.raises(grpc.RpcError) as exc:
        rt.PortForward(pb.PortForwardRequest(pod_sandbox_id="f" * 64, port=[80]), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_frames_close_only_that_session(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["cat"], stdin=True)
    e = Exec(url, stdin=True)
    # A control frame of an unknown version, then garbage.
    e.c.write(struct.pack(">HHI", 0x8000 | 2, 1, 10) + b"\0" * 10 + os.urandom(64))
    e.c.wait_closed()
    e.close()
    # The daemon serves the next session as before.
    url = exec_url(daemon, sleeper, ["echo", "fine"])
    e = Exec(url)
    out, _, status = e.wait()
    e.close()
    assert out == b"fine\n"


def test_ping_answered(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sleep", "1"])
    e = Exec(url)
    e.c.ping(7)
    e.c.wait(lambda: 7 in e.c.pings)
    e.wait()
    e.close()


def test_slow_reader_keeps_memory_bounded(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["yes", "a-rather-long-line-of-output-to-fill-the-pipe-quickly"])
    e = Exec(url, stderr=False)
    # Stop reading: the reader thread holds its socket but never reads again.
    e.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pid = daemon.proc.pid
    base = rss_kib(pid)
    time.sleep(0.5)
    # Let the reader fall behind by blocking it on the condition lock.
    with e.c.cond:
        time.sleep(3)
        grown = rss_kib(pid) - base
    e.close()
    assert grown < 16 * 1024, f"daemon grew by {grown} KiB behind a slow client"


# --- WebSocket ---------------------------------------------------------------------

def ws_url(url):
    return "ws://" + url.split("://", 1)[1]


def ws_connect(url, protocol):
    return websocket.create_connection(ws_url(url), subprotocols=[protocol] if protocol else None, timeout=20)


def ws_collect(ws, until_close=True):
    chans = {}
    while True:
        try:
            op, data = ws.recv_data()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        if data:
            chans.setdefault(data[0], bytearray()).extend(data[1:])
    return chans


def test_websocket_exec_v5(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sh", "-c", "cat; echo bye >&2; exit 3"], stdin=True)
    ws = ws_connect(url, "v5.channel.k8s.io")
    assert ws.getsubprotocol() == "v5.channel.k8s.io"
    ws.send_binary(b"\x00hello ws\n")
    ws.send_binary(b"\xff\x00")  # v5: close stdin
    chans = ws_collect(ws)
    ws.close()
    assert bytes(chans.get(1, b"")) == b"hello ws\n"
    assert bytes(chans.get(2, b"")) == b"bye\n"
    st = json.loads(bytes(chans[3]))
    assert st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"][0]["message"] == "3"


def test_websocket_exec_v4_tty(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sh", "-c", "read x; /bin/busybox stty size"], stdin=True, tty=True,
                   stderr=False)
    ws = ws_connect(url, "v4.channel.k8s.io")
    ws.send_binary(b"\x04" + b'{"Width":81,"Height":25}')
    time.sleep(0.2)
    ws.send_binary(b"\x00go\n")
    chans = ws_collect(ws)
    ws.close()
    assert "25 81" in bytes(chans.get(1, b"")).decode(errors="replace")
    assert json.loads(bytes(chans[3]))["status"] == "Success"


def test_websocket_base64(daemon, sleeper):
    import base64
    url = exec_url(daemon, sleeper, ["sh", "-c", "head -c 5; echo; echo e >&2"], stdin=True)
    ws = ws_connect(url, "v4.base64.channel.k8s.io")
    assert ws.getsubprotocol() == "v4.base64.channel.k8s.io"
    for junk in ("0====", "0abc", "0", "9AAAA"):  # bad base64, no payload, no such channel: ignored
        ws.send(junk)
    ws.send("0" + base64.b64encode(b"\x00\xffab\n").decode())
    out = {}
    while True:
        try:
            op, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        assert op == websocket.ABNF.OPCODE_TEXT
        out.setdefault(chr(data[0]), b"")
        out[chr(data[0])] += base64.b64decode(data[1:])
    ws.close()
    assert out["1"] == b"\x00\xffab\n\n"
    assert out["2"] == b"e\n"
    assert json.loads(out["3"])["status"] == "Success"


def test_websocket_unsupported_protocol(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["true"])
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        ws_connect(url, "v9.channel.k8s.io")
    assert exc.value.status_code == 403


# --- PortForward ------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def httpd(daemon, pod):
    port = free_port()
    running(daemon, pod, "web", ["sh", "-c", f"mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html"
                                               f" && exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h /tmp/www"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return port


def pf_url(daemon, pod_id, ports=()):
    return daemon.runtime().PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id, port=list(ports)),
                                        timeout=10).url


def http_get_over(c, port, rid):
    err = c.open({"streamtype": "error", "port": str(port), "requestid": str(rid)})
    data = c.open({"streamtype": "data", "port": str(port), "requestid": str(rid)})
    c.send(data, b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n", fin=True)
    c.wait(lambda: data.fin or data.reset is not None or c.closed, 20)
    return bytes(data.data), err


def test_portforward_spdy_parallel(daemon, pod, httpd):
    pid = pod[0]
    url = pf_url(daemon, pid, [httpd])
    assert "/portforward/" in url
    c = SpdyClient(url, ["portforward.k8s.io"])
    assert c.protocol == "portforward.k8s.io"
    results = [None] * 20
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, http_get_over(c, httpd, i)))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for body, err in results:
        assert b"200 OK" in body and b"hello-from-pod" in body, body
        assert bytes(err.data) == b""
    c.close()


def test_portforward_client_half_closes_last(daemon, pod, httpd):
    """The pod's side ends first and the client's FIN comes after: the pair
    ends inside the FIN callback, which freed the stream under the session's
    feet once (a use-after-free the ASan suite caught)."""
    url = pf_url(daemon, pod[0], [httpd])
    c = SpdyClient(url, ["portforward.k8s.io"])
    for rid in range(5):
        err = c.open({"streamtype": "error", "port": str(httpd), "requestid": str(rid)})
        data = c.open({"streamtype": "data", "port": str(httpd), "requestid": str(rid)})
        c.send(data, b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        c.wait(lambda: data.fin or data.reset is not None or c.closed, 20)
        assert b"hello-from-pod" in bytes(data.data)
        c.send(data, b"", fin=True)
        c.send(err, b"", fin=True)
    # The session still serves a new pair afterwards.
    body, err = http_get_over(c, httpd, 99)
    assert b"hello-from-pod" in body and not c.closed
    c.close()


def test_portforward_spdy_refused_port_reports_error(daemon, pod):
    url = pf_url(daemon, pod[0])
    c = SpdyClient(url, ["portforward.k8s.io"])
    port = free_port()
    err = c.open({"streamtype": "error", "port": str(port), "requestid": "1"})
    c.open({"streamtype": "data", "port": str(port), "requestid": "1"})
    c.wait(lambda: err.fin or c.closed)
    assert b"error forwarding port" in bytes(err.data)
    # Bad headers are refused with RST_STREAM.
    bad = c.open({"streamtype": "data", "port": "0", "requestid": "2"})
    assert bad.reset is not None
    c.close()


def test_portforward_websocket(daemon, pod, httpd):
    url = pf_url(daemon, pod[0], [httpd])
    ws = websocket.create_connection(ws_url(url), subprotocols=["v4.channel.k8s.io"], timeout=20)
    # Each channel starts with the port, little endian.
    first = {}
    while len(first) < 2:
        data = ws.recv()
        first[data[0]] = data[1:]
    assert first == {0: struct.pack("<H", httpd), 1: struct.pack("<H", httpd)}
    ws.send_binary(b"\x00GET /index.html HTTP/1.0\r\n\r\n")
    chans = ws_collect(ws)
    ws.close()
    assert b"hello-from-pod" in bytes(chans.get(0, b""))


# --- Attach --------------------------------------------------------------------------

def test_attach_output_and_stdin(daemon, pod):
    cid = running(daemon, pod, "talker", ["sh", "-c", "while read line; do echo got:$line; echo err:$line >&2; done"],
                  stdin=True)
    url = daemon.runtime().Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True),
                                  timeout=10).url
    assert "/attach/" in url
    a = Exec(url, stdin=True)
    b = Exec(daemon.runtime().Attach(pb.AttachRequest(container_id=cid, stdout=True), timeout=10).url,
             stderr=False)
    a.write(b"one\n")
    a.c.wait(lambda: b"got:one" in a.stdout.data and b"err:one" in a.stderr.data)
    b.c.wait(lambda: b"got:one" in b.stdout.data)
    # The container ends: both sessions end with success.
    a.write(b"", fin=False)
    daemon.runtime().StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
    for s in (a, b):
        s.c.wait(lambda s=s: s.error.fin or s.c.closed)
        assert status_of(bytes(s.error.data)) == {"metadata": {}, "status": "Success"}
        s.close()


# --- limits --------------------------------------------------------------------------

def test_session_cap(make_edgecri, workdir):
    d = start(make_edgecri, config="streaming:\n  max_sessions: 1\n")
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(d, cfg)
    cid = running(d, (pid, cfg, log_dir), "s", ["sleep", "3600"])
    first = Exec(exec_url(d, cid, ["sleep", "30"]))
    url = exec_url(d, cid, ["true"])
    with pytest.raises(HTTPError) as exc:
        Exec(url)
    assert exc.value.status == 503
    first.close()
    # The refused URL was not spent: it works once the first session is gone.
    deadline = time.monotonic() + 10
    while True:
        try:
            e = Exec(url)
            break
        except HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    e.wait()
    e.close()
    rt = d.runtime()
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


# --- kubectl's own SPDY library ------------------------------------------------------

@pytest.fixture(scope="session")
def go_spdyclient(tmp_path_factory):
    """test/go/spdyclient built against Debian's moby/spdystream (GOPATH
    mode, offline)."""
    import subprocess
    out = tmp_path_factory.mktemp("spdyclient")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "go", "spdyclient", "main.go")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=str(out / "cache"))
    proc = subprocess.run(["go", "build", "-o", str(out / "spdyclient"), src], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    yield str(out / "spdyclient")
    subprocess.run(["chmod", "-R", "u+w", str(out)])


def run_go(client, *args, stdin=b"", env=None):
    import subprocess
    proc = subprocess.run([client, *args], input=stdin, capture_output=True, timeout=60,
                          env=dict(os.environ, **(env or {})))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_spdystream_exec(daemon, sleeper, go_spdyclient):
    url = exec_url(daemon, sleeper, ["sh", "-c", "cat; echo to-stderr >&2; exit 7"], stdin=True)
    out = run_go(go_spdyclient, "exec", url, stdin=b"from spdystream\n" * 1000)
    assert out["protocol"] == "v4.channel.k8s.io"
    assert out["stdout"] == "from spdystream\n" * 1000
    assert out["stderr"] == "to-stderr\n"
    st = json.loads(out["error"])
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"][0]["message"] == "7"


def test_spdystream_portforward(daemon, pod, httpd, go_spdyclient):
    url = pf_url(daemon, pod[0], [httpd])
    out = run_go(go_spdyclient, "portforward", url, str(httpd), stdin=b"GET /index.html HTTP/1.0\r\n\r\n")
    assert out["protocol"] == "portforward.k8s.io"
    assert "hello-from-pod" in out["data"]
    assert out["error"] == ""


def test_tls_and_idle_timeout(make_edgecri, workdir, go_spdyclient):
    from registry import TestCA
    os.makedirs(os.path.join(workdir, "ca"))
    ca = TestCA(os.path.join(workdir, "ca"))
    cert, key = ca.issue(cn="127.0.0.1")
    d = start(make_edgecri, config=f"streaming:\n  tls_cert_file: {cert}\n  tls_key_file: {key}\n"
                                   "  idle_timeout: 1s\n")
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(d, cfg)
    cid = running(d, (pid, cfg, log_dir), "s", ["sleep", "3600"])
    url = exec_url(d, cid, ["sh", "-c", "cat; echo over-tls"], stdin=True)
    assert url.startswith("https://127.0.0.1:")
    out = run_go(go_spdyclient, "exec", url, stdin=b"x\n", env={"SPDYCLIENT_CA": ca.ca_file})
    assert out["stdout"] == "x\nover-tls\n"
    assert json.loads(out["error"])["status"] == "Success"
    # A session with no traffic is closed after streaming.idle_timeout.
    url = exec_url(d, cid, ["sleep", "30"])
    c = SpdyClient(url, ["v4.channel.k8s.io"], ssl_context=ca.client_context())
    c.open({"streamtype": "error"})
    c.open({"streamtype": "stdout"})
    c.open({"streamtype": "stderr"})
    t0 = time.monotonic()
    c.wait_closed(timeout=10)
    assert time.monotonic() - t0 < 5
    c.close()
    rt = d.runtime()
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def test_hostile_requests(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["true"])
    base = url.split("/exec/")[0]
    host, port = base.split("//")[1].split(":")
    port = int(port)

    def raw(data, read=True):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(data)
        out = b""
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    assert raw(b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /exec/x HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw(b"DELETE /exec/abc HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    # WebSocket garbage after a good handshake: only that connection ends.
    ws = ws_connect(exec_url(daemon, sleeper, ["sleep", "5"], stdin=True), "v4.channel.k8s.io")
    ws.sock.sendall(os.urandom(256))
    ws_collect(ws)
    ws.close()
    e = Exec(exec_url(daemon, sleeper, ["echo", "still-fine"]))
    assert e.wait()[0] == b"still-fine\n"
    e.close()


def test_shutdown_with_open_sessions(make_edgecri, workdir):
    d = start(make_edgecri)
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir)
    pid = run_pod(d, cfg)
    cid = running(d, (pid, cfg, log_dir), "s", ["sleep", "3600"])
    e = Exec(exec_url(d, cid, ["sh", "-c", "echo up; exec sleep 600"]))
    e.c.wait(lambda: b"up" in e.stdout.data)
    c = SpdyClient(pf_url(d, pid), ["portforward.k8s.io"])
    c.open({"streamtype": "error", "port": "9", "requestid": "1"})
    # SIGTERM ends every session and the daemon exits 0.
    assert d.stop() == 0
    e.c.wait_closed(timeout=10)
    c.wait_closed(timeout=10)
    e.close()
    c.close()
    d.start()
    rt = d.runtime()
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def test_attach_websocket_and_tty(daemon, pod):
    cid = running(daemon, pod, "term", ["sh", "-c", "while read line; do echo got:$line; /bin/busybox stty size; done"],
                  stdin=True, tty=True)
    rt = daemon.runtime()
    with pytest.raises(grpc.RpcError) as exc:
        rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True), timeout=10)  # tty mismatch
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    url = rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, tty=True), timeout=10).url
    ws = ws_connect(url, "v5.channel.k8s.io")
    ws.send_binary(b"\x04" + b'{"Width":90,"Height":30}\n')
    time.sleep(0.2)
    ws.send_binary(b"\x00hi\n")
    got = b""
    deadline = time.monotonic() + 10
    while b"30 90" not in got and time.monotonic() < deadline:
        data = ws.recv()
        if data and data[0] == 1:
            got += data[1:]
    assert b"got:hi" in got and b"30 90" in got, got
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
    chans = ws_collect(ws)
    ws.close()
    assert json.loads(bytes(chans[3]))["status"] == "Success"


def test_portforward_into_pod_network_namespace(daemon, workdir, go_spdyclient):
    """A pod with its own network namespace: the target listens on the pod's
    loopback, which the host cannot reach; port-forward gets there."""
    log_dir = os.path.join(workdir, "netlogs")
    os.makedirs(log_dir, exist_ok=True)
    cfg = pod_config(log_dir=log_dir, host_network=False)
    pid = run_pod(daemon, cfg)
    try:
        port = free_port()
        running(daemon, (pid, cfg, log_dir), "web", ["sh", "-c", "mkdir -p /tmp/www && echo inside-netns > "
                                                                  "/tmp/www/index.html && exec /bin/busybox httpd -f "
                                                                  f"-p 127.0.0.1:{port} -h /tmp/www"])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        deadline = time.monotonic() + 10
        while True:
            out = run_go(go_spdyclient, "portforward", pf_url(daemon, pid, [port]), str(port),
                         stdin=b"GET /index.html HTTP/1.0\r\n\r\n")
            if "inside-netns" in out["data"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # httpd may not listen yet
        assert "inside-netns" in out["data"], out
    finally:
        rt = daemon.runtime()
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)

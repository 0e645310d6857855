"""The edgecri process: flags, configuration errors, the socket's rules,
single instance, SIGTERM and SIGHUP."""
import os
import signal
import socket
import stat
import subprocess
import time

import grpc
import pytest

import api_pb2 as pb
from conftest import BIN


def run(*args, timeout=10):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# -- command line and configuration ---------------------------------------------------

def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    for word in ["--config", "--socket", "--root", "--state", "--log-level", "/run/edgecri/edgecri.sock",
                 "grpc.max_recv_message_size", "cgroup_driver", "shutdown_timeout"]:
        assert word in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("edgecri 0.1.0")


def test_unknown_flag_exits_2():
    r = run("--no-such-flag")
    assert r.returncode == 2
    assert "Usage" in r.stderr


@pytest.mark.parametrize("text, words", [
    ("sockt: /run/x.sock\n", ["config.yaml:1", "unknown key sockt"]),
    ("log_level: info\ngrpc:\n  max_recv_message_size: lots\n", ["config.yaml:3", "grpc.max_recv_message_size", "lots"]),
    ("root: relative/dir\n", ["config.yaml:1", "root", "absolute"]),
    ("cgroup_driver: cgroupfs\ncgroup_driver: systemd\n", ["config.yaml:2", "given twice"]),
    ("log_level: info\nsocket: \"/unterminated\n", ["config.yaml:", "invalid YAML"]),
    ("log_level: &a info\nsocket: *a\n", ["config.yaml:2", "aliases"]),
    ("- socket\n- root\n", ["config.yaml:1", "mapping of keys"]),
])
def test_config_errors_name_file_line_and_key(workdir, text, words):
    cfg = write(os.path.join(workdir, "config.yaml"), text)
    r = run("--config", cfg, "--socket", os.path.join(workdir, "s.sock"), "--root", os.path.join(workdir, "r"),
            "--state", os.path.join(workdir, "st"))
    assert r.returncode == 2, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    # Nothing started half-configured.
    assert not os.path.exists(os.path.join(workdir, "s.sock"))
    assert not os.path.exists(os.path.join(workdir, "r"))


def test_explicit_missing_config_is_an_error(workdir):
    r = run("--config", os.path.join(workdir, "nope.yaml"), "--socket", os.path.join(workdir, "s.sock"))
    assert r.returncode == 2
    assert "nope.yaml" in r.stderr and "No such file" in r.stderr


def test_bad_flag_value_is_an_error(workdir):
    r = run("--log-level", "loud", "--socket", os.path.join(workdir, "s.sock"))
    assert r.returncode == 2
    assert "--log-level" in r.stderr and "loud" in r.stderr


def test_config_file_values_are_used(make_edgecri, workdir):
    e = make_edgecri()
    cfg = write(os.path.join(workdir, "config.yaml"),
                f"# edgecri test config\nsocket: {e.socket}\nlog_level: warn\nshutdown_timeout: 3s\n")
    # --log-level debug from the harness wins over the file.
    e.start(config=cfg)
    e.runtime().Version(pb.VersionRequest(), timeout=5)
    assert "rpc=Version" in e.log()


# -- the socket ---------------------------------------------------------------------------

def test_socket_mode_and_directory(edgecri):
    st = os.stat(edgecri.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_IMODE(os.stat(os.path.dirname(edgecri.socket)).st_mode) & 0o022 == 0


def test_world_writable_socket_directory_is_refused(make_edgecri, workdir):
    e = make_edgecri()
    d = os.path.join(workdir, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    e.socket = os.path.join(d, "cri.sock")
    e.expected_exit = 1
    e.start(wait=False)
    assert e.proc.wait(timeout=10) == 1
    assert "writable by group or others" in e.log()
    assert not os.path.exists(e.socket)


def test_stale_socket_is_replaced(make_edgecri):
    e = make_edgecri()
    os.makedirs(os.path.dirname(e.socket), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(e.socket)  # bound but never listening, then abandoned: a stale file
    s.close()
    assert os.path.exists(e.socket)
    e.start()
    assert e.runtime().Version(pb.VersionRequest(), timeout=5).runtime_name == "edgecri"


def test_socket_path_that_is_not_a_socket_is_left_alone(make_edgecri):
    e = make_edgecri()
    write(e.socket, "precious")
    e.expected_exit = 1
    e.start(wait=False)
    assert e.proc.wait(timeout=10) == 1
    assert "not a socket" in e.log()
    assert open(e.socket).read() == "precious"


def test_second_instance_is_refused(make_edgecri):
    first = make_edgecri("a").start()
    # Same directories: refused by the lock, naming the holder.
    second = make_edgecri("a")
    second.log_path = os.path.join(first.workdir, "second.log")
    second.expected_exit = 1
    second.start(wait=False)
    assert second.proc.wait(timeout=10) == 1
    assert "in use by another edgecri" in second.log()
    assert f"pid {first.proc.pid}" in second.log()
    # Other directories but the same socket: refused because it is served.
    third = make_edgecri("b")
    third.socket = first.socket
    third.expected_exit = 1
    third.start(wait=False)
    assert third.proc.wait(timeout=10) == 1
    assert "already serving" in third.log()
    # The first one is untouched.
    assert first.runtime().Version(pb.VersionRequest(), timeout=5).runtime_name == "edgecri"


# -- signals ---------------------------------------------------------------------------------

def test_sigterm_stops_cleanly(edgecri):
    edgecri.runtime().Version(pb.VersionRequest(), timeout=5)
    assert edgecri.stop(signal.SIGTERM) == 0
    assert not os.path.exists(edgecri.socket), "the socket is removed on the way out"
    assert "stopped" in edgecri.log()


def test_sigint_stops_cleanly(edgecri):
    assert edgecri.stop(signal.SIGINT) == 0


def test_sigterm_ends_open_streams_with_unavailable(edgecri):
    stream = edgecri.runtime().GetContainerEvents(pb.GetEventsRequest())
    time.sleep(0.3)
    t0 = time.monotonic()
    edgecri.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.RpcError) as e:
        next(stream)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in e.value.details()
    code = edgecri.proc.wait(timeout=10)
    assert code == 0
    # Long-lived streams must not hold the shutdown up for the grace period.
    assert time.monotonic() - t0 < 5


def test_new_connections_refused_while_stopping(make_edgecri, workdir):
    e = make_edgecri()
    cfg = write(os.path.join(workdir, "c.yaml"), "shutdown_timeout: 2s\n")
    e.start(config=cfg)
    stub = e.runtime()
    stub.Version(pb.VersionRequest(), timeout=5)
    e.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(e.socket)
    assert e.proc.wait(timeout=10) == 0


def test_sighup_reloads_configuration(make_edgecri, workdir):
    e = make_edgecri()
    cfg = write(os.path.join(workdir, "config.yaml"), "grpc:\n  max_recv_message_size: 16MiB\n")
    e.start(config=cfg)
    stub = e.runtime(e.channel(**{"grpc.max_send_message_length": 8 << 20}))
    big = pb.VersionRequest(version="v" * (2 << 20))
    assert stub.Version(big, timeout=10).runtime_name == "edgecri"

    write(cfg, "grpc:\n  max_recv_message_size: 1MiB\ncgroup_driver: systemd\n")
    e.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reloaded" not in e.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "configuration reloaded" in e.log()
    assert "cgroup_driver changed; that takes a restart" in e.log()
    r = e.runtime().RuntimeConfig(pb.RuntimeConfigRequest(), timeout=5)
    assert r.linux.cgroup_driver == pb.CGROUPFS
    with pytest.raises(grpc.RpcError) as err:
        stub.Version(big, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # A broken file on reload is reported and the running configuration stays.
    write(cfg, "grpc:\n  max_recv_message_size: [oops]\n")
    e.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "keeping the running configuration" not in e.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "config.yaml:2" in e.log()
    with pytest.raises(grpc.RpcError):
        stub.Version(big, timeout=10)
    assert stub.Version(pb.VersionRequest(), timeout=5).runtime_name == "edgecri"


def test_debug_log_lines_name_the_rpc_status_and_duration(edgecri):
    edgecri.runtime().Version(pb.VersionRequest(), timeout=5)
    with pytest.raises(grpc.RpcError):
        edgecri.runtime().RunPodSandbox(pb.RunPodSandboxRequest(), timeout=5)
    log = edgecri.log()
    assert any("rpc=Version" in l and "status=OK" in l and "duration=" in l for l in log.splitlines())
    assert any("rpc=RunPodSandbox" in l and "status=INVALID_ARGUMENT" in l for l in log.splitlines())


def test_journald_format_when_stderr_is_the_journal(make_edgecri):
    e = make_edgecri()
    e.logfile = open(e.log_path, "ab")
    st = os.fstat(e.logfile.fileno())
    env = e.env()
    env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    e.proc = subprocess.Popen(e.command(), stdout=e.logfile, stderr=subprocess.STDOUT, env=env)
    e.wait_ready()
    e.runtime().Version(pb.VersionRequest(), timeout=5)
    e.stop()
    lines = [l for l in e.log().splitlines() if l and not l.startswith("=")]
    assert lines and all(l.startswith("<") and l[1] in "3467" and l[2] == ">" for l in lines), lines[:5]

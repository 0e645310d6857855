"""The gRPC server under correct, odd and hostile clients: limits, encodings,
deadlines, cancellation, garbage on the socket, floods and concurrency."""
import concurrent.futures
import gzip
import json
import os
import socket
import struct
import threading
import time

import grpc
import h2.exceptions
import h2.settings
import pytest

import api_pb2 as pb
from rawh2 import RawH2, grpc_frame, grpc_status

VERSION = "/runtime.v1.RuntimeService/Version"
EVENTS = "/runtime.v1.RuntimeService/GetContainerEvents"
MiB = 1 << 20


def raw_unary(ch, path):
    return ch.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


def active_calls(e):
    r = e.runtime().Status(pb.StatusRequest(verbose=True), timeout=5)
    return json.loads(r.info["runtime"])["activeCalls"]


def wait_active_calls(e, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        n = active_calls(e)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def assert_serving(e):
    assert e.runtime().Version(pb.VersionRequest(), timeout=5).runtime_name == "edgecri"


# -- message size limits ---------------------------------------------------------

def test_message_just_under_the_limit_is_accepted(edgecri):
    ch = edgecri.channel(**{"grpc.max_send_message_length": 32 * MiB})
    big = "v" * (16 * MiB - 16)
    r = edgecri.runtime(ch).Version(pb.VersionRequest(version=big), timeout=30)
    assert r.runtime_name == "edgecri"


def test_oversized_message_is_resource_exhausted(edgecri):
    ch = edgecri.channel(**{"grpc.max_send_message_length": 64 * MiB})
    with pytest.raises(grpc.RpcError) as e:
        raw_unary(ch, VERSION)(b"\x0a" + b"x" * (17 * MiB), timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in e.value.details()
    # The connection and the server are fine afterwards.
    assert edgecri.runtime(ch).Version(pb.VersionRequest(), timeout=5).runtime_name == "edgecri"
    assert_serving(edgecri)


def test_announced_length_over_limit_is_resource_exhausted(edgecri):
    # A prefix claiming 1 GiB on a small body: refused from the prefix alone.
    c = RawH2(edgecri.socket)
    st = c.call(VERSION, struct.pack(">BI", 0, 1 << 30) + b"abc")
    assert grpc_status(st)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    c.close()


def test_send_limit_from_config(make_edgecri, workdir):
    # A long root path makes the verbose Status answer exceed a 1 KiB send limit.
    e = make_edgecri()
    e.root = os.path.join(workdir, *(["r" * 120] * 8))
    cfg = os.path.join(workdir, "config.yaml")
    with open(cfg, "w") as f:
        f.write("grpc:\n  max_send_message_size: 1KiB\n")
    e.start(config=cfg)
    stub = e.runtime()
    assert stub.Status(pb.StatusRequest(), timeout=5).status.conditions
    with pytest.raises(grpc.RpcError) as err:
        stub.Status(pb.StatusRequest(verbose=True), timeout=5)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "send limit" in err.value.details()


# -- malformed requests -----------------------------------------------------------

def test_undecodable_message_is_invalid_argument_naming_the_rpc(edgecri):
    ch = edgecri.channel()
    with pytest.raises(grpc.RpcError) as e:
        raw_unary(ch, VERSION)(b"\xff\xff\xff\xff\x0f", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Version" in e.value.details()
    assert "runtime.v1.VersionRequest" in e.value.details()
    assert_serving(edgecri)


@pytest.mark.parametrize("body, words", [
    (b"", "no message"),
    (b"\x00\x00", "truncated message prefix"),
    (b"\x00\x00\x00\x00\x10abc", "truncated message"),
    (grpc_frame(b"") + grpc_frame(b""), "exactly one message"),
    (b"\x07\x00\x00\x00\x00", "invalid message flags"),
])
def test_bad_framing_is_invalid_argument(edgecri, body, words):
    c = RawH2(edgecri.socket)
    code, msg = grpc_status(c.call(VERSION, body))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert words in msg and "Version" in msg
    c.close()
    assert_serving(edgecri)


def test_gzip_compressed_request_is_accepted(edgecri):
    ch = grpc.insecure_channel(f"unix://{edgecri.socket}", compression=grpc.Compression.Gzip)
    edgecri.channels.append(ch)
    r = edgecri.runtime(ch).Version(pb.VersionRequest(version="x" * 1000), timeout=5)
    assert r.runtime_name == "edgecri"
    # And checked by hand, so the test cannot pass by the client not compressing.
    c = RawH2(edgecri.socket)
    payload = gzip.compress(pb.VersionRequest(version="v1").SerializeToString())
    st = c.call(VERSION, grpc_frame(payload, compressed=True), headers=[("grpc-encoding", "gzip")])
    assert grpc_status(st)[0] == 0
    assert pb.VersionResponse.FromString(st["data"][5:]).runtime_name == "edgecri"
    c.close()


def test_gzip_bomb_is_resource_exhausted(edgecri):
    c = RawH2(edgecri.socket)
    bomb = gzip.compress(b"\x0a" + b"\x00" * (64 * MiB))
    st = c.call(VERSION, grpc_frame(bomb, compressed=True), headers=[("grpc-encoding", "gzip")], timeout=30)
    code, msg = grpc_status(st)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], msg
    c.close()


def test_unsupported_encoding_is_unimplemented(edgecri):
    c = RawH2(edgecri.socket)
    st = c.call(VERSION, grpc_frame(b""), headers=[("grpc-encoding", "snappy")])
    code, msg = grpc_status(st)
    assert code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert "snappy" in msg
    assert (st["trailers"] or {}).get("grpc-accept-encoding") or st["headers"].get("grpc-accept-encoding")
    c.close()


def test_compressed_flag_without_encoding_is_internal(edgecri):
    c = RawH2(edgecri.socket)
    code, msg = grpc_status(c.call(VERSION, grpc_frame(b"", compressed=True)))
    assert code == grpc.StatusCode.INTERNAL.value[0]
    assert "grpc-encoding" in msg
    c.close()


def test_non_grpc_requests_get_http_errors(edgecri):
    c = RawH2(edgecri.socket)
    st = c.call(VERSION, grpc_frame(b""), headers=[("content-type", "text/plain")])
    assert st["headers"][":status"] == "415"
    st = c.call(VERSION, headers=[(":method", "GET")])
    assert st["headers"][":status"] == "405"
    c.close()
    assert_serving(edgecri)


def test_grpc_message_is_percent_encoded(edgecri):
    c = RawH2(edgecri.socket)
    req = pb.UpdateRuntimeConfigRequest(runtime_config=pb.RuntimeConfig(
        network_config=pb.NetworkConfig(pod_cidr="caf\u00e9/8\n100%")))
    st = c.call("/runtime.v1.RuntimeService/UpdateRuntimeConfig", grpc_frame(req.SerializeToString()))
    raw = (st["trailers"] or st["headers"])["grpc-message"]
    assert all(0x20 <= ord(ch) <= 0x7e for ch in raw), raw
    assert "%C3%A9" in raw and "%0A" in raw and "%25" in raw
    code, msg = grpc_status(st)
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "caf\u00e9/8\n100%" in msg
    c.close()


# -- deadlines and cancellation ----------------------------------------------------

def test_server_enforces_grpc_timeout(edgecri):
    # The events stream never ends by itself: only the deadline can end it.
    c = RawH2(edgecri.socket)
    t0 = time.monotonic()
    st = c.call(EVENTS, grpc_frame(b""), headers=[("grpc-timeout", "300m")], timeout=10)
    elapsed = time.monotonic() - t0
    code, msg = grpc_status(st)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], msg
    assert elapsed >= 0.29
    c.close()
    assert wait_active_calls(edgecri, 1) == 1


@pytest.mark.parametrize("value", ["", "5", "S", "123456789S", "5x", "-1S"])
def test_malformed_grpc_timeout_is_rejected(edgecri, value):
    c = RawH2(edgecri.socket)
    code, msg = grpc_status(c.call(EVENTS, grpc_frame(b""), headers=[("grpc-timeout", value)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "grpc-timeout" in msg
    c.close()


def test_client_deadline_on_stream(edgecri):
    with pytest.raises(grpc.RpcError) as e:
        list(edgecri.runtime().GetContainerEvents(pb.GetEventsRequest(), timeout=0.3))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_active_calls(edgecri, 1) == 1


def test_cancelled_streams_free_their_calls(edgecri):
    stub = edgecri.runtime()
    streams = [stub.GetContainerEvents(pb.GetEventsRequest()) for _ in range(20)]
    assert wait_active_calls(edgecri, 21) == 21
    for s in streams:
        s.cancel()
    assert wait_active_calls(edgecri, 1) == 1
    assert "status=CANCELLED" in edgecri.log()


def test_stream_reset_by_raw_client_frees_the_call(edgecri):
    c = RawH2(edgecri.socket)
    sid = c.request(EVENTS, grpc_frame(b""))
    assert wait_active_calls(edgecri, 2) == 2
    c.conn.reset_stream(sid)
    c.flush()
    assert wait_active_calls(edgecri, 1) == 1
    c.close()


def test_connection_dropped_mid_request_and_mid_stream(edgecri):
    # Half a request body, then the client vanishes.
    c = RawH2(edgecri.socket)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", VERSION),
                              (":authority", "x"), ("content-type", "application/grpc")])
    c.conn.send_data(sid, b"\x00\x00\x00\x10\x00abc")
    c.flush()
    c.close()
    # An open stream, then the client vanishes.
    c = RawH2(edgecri.socket)
    c.request(EVENTS, grpc_frame(b""))
    assert wait_active_calls(edgecri, 2) == 2
    c.close()
    assert wait_active_calls(edgecri, 1) == 1
    assert_serving(edgecri)


# -- garbage and floods --------------------------------------------------------------

def raw_socket(e):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(e.socket)
    return s


def read_until_closed(s, limit=1 << 20):
    got = b""
    try:
        while len(got) < limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def test_http1_request_is_refused_and_server_keeps_serving(edgecri):
    s = raw_socket(edgecri)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = read_until_closed(s)
    s.close()
    # h2o answers a bad preface with a GOAWAY (type 7) and closes.
    assert b"\x07" in got[:16] or got == b""
    assert_serving(edgecri)


def test_truncated_preface_and_idle_garbage(edgecri):
    lingering = raw_socket(edgecri)
    lingering.sendall(b"PRI * HTTP/2.0\r\n")  # and then nothing
    s = raw_socket(edgecri)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM")
    s.close()
    s = raw_socket(edgecri)
    s.sendall(os.urandom(4096))
    read_until_closed(s)
    s.close()
    assert_serving(edgecri)
    lingering.close()
    assert_serving(edgecri)


def test_frame_floods_leave_the_server_serving(edgecri):
    # PINGs, SETTINGS and WINDOW_UPDATEs as fast as we can write them.
    for make in ("ping", "settings", "window"):
        c = RawH2(edgecri.socket)
        try:
            for i in range(20000):
                if make == "ping":
                    c.conn.ping(struct.pack(">Q", i))
                elif make == "settings":
                    c.conn.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384 + (i % 1000)})
                else:
                    c.conn.increment_flow_control_window(1)
                if i % 500 == 0:
                    c.flush()
            c.flush()
        except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
            pass  # the server may drop a flooding connection: fine
        c.close()
        assert_serving(edgecri)


def test_rapid_reset_flood(edgecri):
    c = RawH2(edgecri.socket)
    try:
        for _ in range(5000):
            sid = c.request(EVENTS, grpc_frame(b""))
            c.conn.reset_stream(sid)
            c.flush()
    except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    c.close()
    assert_serving(edgecri)
    assert wait_active_calls(edgecri, 1) == 1


def test_random_frames_after_preface(edgecri):
    import random
    rng = random.Random(1234)
    for _ in range(50):
        s = raw_socket(edgecri)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        frames = b""
        for _ in range(20):
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
            frames += struct.pack(">I", len(payload))[1:] + bytes([rng.randrange(0, 12), rng.getrandbits(8)])
            frames += struct.pack(">I", rng.getrandbits(31)) + payload
        try:
            s.sendall(frames)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.close()
    assert_serving(edgecri)


# -- concurrency -----------------------------------------------------------------------

def test_200_concurrent_unary_calls(edgecri):
    ch = edgecri.channel()
    stub = edgecri.runtime(ch)
    barrier = threading.Barrier(200)

    def one(i):
        barrier.wait()
        return stub.Version(pb.VersionRequest(version=str(i)), timeout=30).runtime_name

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        names = list(pool.map(one, range(200)))
    assert names == ["edgecri"] * 200


def test_hundreds_of_concurrent_streams(edgecri):
    # h2o allows 100 streams per connection: spread 300 over 4 connections.
    stubs = [edgecri.runtime(edgecri.channel()) for _ in range(4)]
    streams = [stubs[i % 4].GetContainerEvents(pb.GetEventsRequest()) for i in range(300)]
    assert wait_active_calls(edgecri, 301, timeout=30) == 301
    assert_serving(edgecri)
    for s in streams:
        s.cancel()
    assert wait_active_calls(edgecri, 1, timeout=30) == 1

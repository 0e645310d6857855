"""A raw HTTP/2 client (python3-h2) for what a well-behaved gRPC library will
not send: malformed headers, bad prefixes, floods, odd encodings."""
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events


def grpc_frame(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


class RawH2:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def request(self, path, body=b"", headers=None, end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                ("content-type", "application/grpc"), ("te", "trailers")]
        for k, v in headers or []:
            for i, (name, _) in enumerate(hdrs):
                if name == k:
                    hdrs[i] = (k, v)
                    break
            else:
                hdrs.append((k, v))
        self.conn.send_headers(sid, hdrs, end_stream=end_stream and not body)
        if body:
            # respect flow control: send in chunks as windows allow
            view = memoryview(body)
            while view:
                window = self.conn.local_flow_control_window(sid)
                size = min(len(view), window, self.conn.max_outbound_frame_size)
                if size <= 0:
                    self.flush()
                    self.pump_once()
                    continue
                last = size == len(view)
                self.conn.send_data(sid, bytes(view[:size]), end_stream=end_stream and last)
                view = view[size:]
                self.flush()
        self.flush()
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "reset": None, "ended": False}
        return sid

    def pump_once(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the server")
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for ev in events:
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.TrailersReceived) and st is not None:
                st["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived) and st is not None:
                st["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                st["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and st is not None:
                st["reset"] = ev.error_code
                st["ended"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()
        return events

    def wait(self, sid, timeout=10):
        deadline = time.monotonic() + timeout
        st = self.streams[sid]
        while not st["ended"]:
            if self.closed:
                raise ConnectionError("connection closed before the stream ended")
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {sid} did not end")
            self.pump_once()
        return st

    def call(self, path, body=b"", headers=None, timeout=10):
        """Sends one request and returns (response headers, data, trailers)."""
        sid = self.request(path, body, headers)
        st = self.wait(sid, timeout)
        return st


def grpc_status(st):
    """The (code, message) a finished stream carried, trailers-only or not."""
    src = st["trailers"] or st["headers"] or {}
    from urllib.parse import unquote
    code = src.get("grpc-status")
    return (int(code) if code is not None else None, unquote(src.get("grpc-message", "")))

"""A small SPDY/3.1 client for the streaming tests, written from the SPDY/3
specification (draft 3): the HTTP/1.1 upgrade, frames, and name/value header
blocks compressed with zlib and the specification's dictionary. It behaves
like kubectl's SPDY library: it opens the streams, waits for each SYN_REPLY,
and does no flow control of its own.

    c = SpdyClient(url, ["v4.channel.k8s.io"])
    err = c.open({"streamtype": "error"})
    ...
"""
import socket
import struct
import threading
import time
import urllib.parse
import zlib

# The SPDY/3 dictionary: length-prefixed words, then plain text.
_WORDS = ["options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
          "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
          "content-base", "content-encoding", "content-language", "content-length", "content-location",
          "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
          "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
          "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
          "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
          "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
          "public", "set-cookie", "keep-alive", "origin"]
_TEXT = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TEXT.encode()

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 1


class HTTPError(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f"HTTP {status}: {body!r}")
        self.status, self.headers, self.body = status, headers, body


def read_response_head(sock, timeout=10):
    """Reads an HTTP/1.1 response head; returns (status, headers, rest)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed during the response head: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers, rest


def read_body(sock, headers, rest, timeout=10):
    n = int(headers.get("content-length", ["0"])[0])
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return rest[:n]


def http_request(url, method="POST", headers=None, timeout=10):
    """A plain request on a fresh connection: (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        req = f"{method} {path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
        for k, v in (headers or []):
            req += f"{k}: {v}\r\n"
        s.sendall((req + "\r\n").encode())
        status, hdrs, rest = read_response_head(s, timeout)
        return status, hdrs, read_body(s, hdrs, rest, timeout)
    finally:
        s.close()


class Stream:
    def __init__(self, sid, headers):
        self.id = sid
        self.headers = headers
        self.data = bytearray()
        self.fin = False       # the server half-closed it
        self.reset = None      # RST_STREAM status
        self.replied = False


class SpdyClient:
    def __init__(self, url, protocols, method="POST", timeout=10, extra_headers=(), ssl_context=None):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        if u.scheme == "https":
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=u.hostname)
        path = u.path + ("?" + u.query if u.query else "")
        req = (f"{method} {path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n")
        for p in protocols:
            req += f"X-Stream-Protocol-Version: {p}\r\n"
        for k, v in extra_headers:
            req += f"{k}: {v}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        status, headers, rest = read_response_head(self.sock, timeout)
        if status != 101:
            body = read_body(self.sock, headers, rest)
            self.sock.close()
            raise HTTPError(status, headers, body)
        self.protocol = headers.get("x-stream-protocol-version", [""])[0]
        self.response_headers = headers
        self.zout = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                     DICTIONARY)
        self.zin = zlib.decompressobj(zdict=DICTIONARY)
        self.buf = rest
        self.streams = {}
        self.next_id = 1
        self.goaway = None
        self.closed = False
        self.pings = []
        self.window_updates = 0
        self.cond = threading.Condition()
        self.wlock = threading.Lock()
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    # -- frames --------------------------------------------------------------------
    def _header_block(self, headers):
        raw = struct.pack(">I", len(headers))
        for k, v in headers.items():
            raw += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return self.zout.compress(raw) + self.zout.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def control(ftype, flags, payload):
        return struct.pack(">HHI", 0x8000 | 3, ftype, (flags << 24) | len(payload)) + payload

    def write(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def open(self, headers, fin=False, wait=True, timeout=10):
        # Ids must increase on the wire and the compression context is
        # shared: allocate, compress and send under one lock.
        with self.wlock:
            with self.cond:
                sid = self.next_id
                self.next_id += 2
                st = self.streams[sid] = Stream(sid, headers)
            payload = struct.pack(">IIBB", sid, 0, 0, 0) + self._header_block(headers)
            self.sock.sendall(self.control(SYN_STREAM, FLAG_FIN if fin else 0, payload))
        if wait:
            self.wait(lambda: st.replied or st.reset is not None or self.closed, timeout)
        return st

    def send(self, st, data, fin=False):
        # Frames of at most 32 KiB, as io.Copy writes them.
        view = memoryview(data)
        while True:
            chunk = view[:32768]
            view = view[32768:]
            last = len(view) == 0
            self.write(struct.pack(">II", st.id, ((FLAG_FIN if fin and last else 0) << 24) | len(chunk)) +
                       bytes(chunk))
            if last:
                return

    def rst(self, st, status=5):
        self.write(self.control(RST_STREAM, 0, struct.pack(">II", st.id, status)))

    def ping(self, pid):
        self.write(self.control(PING, 0, struct.pack(">I", pid)))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- reading ------------------------------------------------------------------
    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_loop(self):
        try:
            while True:
                hdr = self._recv_exact(8)
                w1, w2 = struct.unpack(">II", hdr)
                flags, length = w2 >> 24, w2 & 0xffffff
                payload = self._recv_exact(length)
                with self.cond:
                    if w1 & 0x80000000:
                        self._control((w1 & 0xffff), flags, payload)
                    else:
                        st = self.streams.get(w1 & 0x7fffffff)
                        if st is not None:
                            st.data += payload
                            if flags & FLAG_FIN:
                                st.fin = True
                    self.cond.notify_all()
        except (EOFError, OSError):
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _control(self, ftype, flags, payload):
        if ftype in (SYN_REPLY, HEADERS):
            sid = struct.unpack(">I", payload[:4])[0] & 0x7fffffff
            self.zin.decompress(payload[4:])
            st = self.streams.get(sid)
            if st is not None:
                st.replied = True
                if flags & FLAG_FIN:
                    st.fin = True
        elif ftype == RST_STREAM:
            sid, status = struct.unpack(">II", payload)
            st = self.streams.get(sid & 0x7fffffff)
            if st is not None:
                st.reset = status
        elif ftype == GOAWAY:
            self.goaway = struct.unpack(">II", payload)
        elif ftype == PING:
            self.pings.append(struct.unpack(">I", payload)[0])
        elif ftype == WINDOW_UPDATE:
            self.window_updates += 1

    def wait(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("SPDY client: condition not met in time")
                self.cond.wait(left)

    def wait_closed(self, timeout=20):
        self.wait(lambda: self.closed, timeout)


class Exec:
    """kubectl's remotecommand client over SPDY: an error stream first, then
    the stdio streams the request asked for, then resize for a TTY."""

    def __init__(self, url, stdin=False, stdout=True, stderr=True, tty=False, protocol="v4.channel.k8s.io",
                 method="POST"):
        self.c = SpdyClient(url, [protocol] if isinstance(protocol, str) else protocol, method=method)
        self.error = self.c.open({"streamtype": "error"})
        self.stdin = self.c.open({"streamtype": "stdin"}) if stdin else None
        self.stdout = self.c.open({"streamtype": "stdout"}) if stdout else None
        self.stderr = self.c.open({"streamtype": "stderr"}) if stderr and not tty else None
        self.resize = self.c.open({"streamtype": "resize"}) if tty and self.c.protocol not in (
            "v2.channel.k8s.io", "channel.k8s.io") else None

    def write(self, data, fin=False):
        self.c.send(self.stdin, data, fin)

    def set_size(self, width, height):
        self.c.send(self.resize, f'{{"Width":{width},"Height":{height}}}\n'.encode())

    def wait(self, timeout=30):
        """Waits for the end (the error stream's FIN or the connection's
        close) and returns (stdout, stderr, error bytes)."""
        self.c.wait(lambda: self.error.fin or self.error.reset is not None or self.c.closed, timeout)
        streams = [s for s in (self.stdout, self.stderr) if s]
        self.c.wait(lambda: all(s.fin or s.reset is not None for s in streams) or self.c.closed, timeout)
        out = bytes(self.stdout.data) if self.stdout else b""
        err = bytes(self.stderr.data) if self.stderr else b""
        return out, err, bytes(self.error.data)

    def close(self):
        self.c.close()

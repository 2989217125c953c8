"""RESP plumbing: hiredis-parsed connections to the upstream Redis, byte-exact reply
relaying, and a tiny encoder for the replies the stand-in itself produces (RG.*).

Parsing is always hiredis' job.  To relay an upstream reply byte for byte we only need to
know where it ends: every RESP reply ends with CRLF, so we feed hiredis one CRLF-terminated
piece at a time and the first piece after which ``gets()`` yields a reply is its last one.
"""
import contextlib
import socket

import hiredis


class ReplyError(Exception):
    """An error reply as parsed by hiredis (also used nested inside arrays)."""


class Status(str):
    """A simple-string reply (``+OK``)."""


class Err(object):
    """An error reply the stand-in sends (written verbatim after ``-``)."""

    def __init__(self, msg):
        self.msg = msg

    def __repr__(self):
        return "Err(%r)" % self.msg


class Double(float):
    """A module ``ReplyWithDouble``: a bulk string under RESP2, a double under RESP3."""


def format_double(d):
    # Redis 7.0 addReplyDouble uses "%.17g" (inf/-inf spelled out)
    if d != d:
        return "nan"
    if d in (float("inf"), float("-inf")):
        return "inf" if d > 0 else "-inf"
    return "%.17g" % d


def _b(s):
    if isinstance(s, (bytes, bytearray)):
        return bytes(s)
    return str(s).encode("utf-8")


def encode(obj, resp3=False):
    """Encode a reply built from None/Status/Err/Double/int/str/bytes/list."""
    out = []
    _encode(obj, resp3, out)
    return b"".join(out)


def _encode(obj, resp3, out):
    if obj is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif isinstance(obj, Err):
        msg = obj.msg.replace("\r", " ").replace("\n", " ")
        out.append(b"-" + msg.encode("utf-8") + b"\r\n")
    elif isinstance(obj, Status):
        out.append(b"+" + obj.encode("utf-8") + b"\r\n")
    elif isinstance(obj, bool):
        out.append(b":%d\r\n" % int(obj))
    elif isinstance(obj, int):
        out.append(b":%d\r\n" % obj)
    elif isinstance(obj, float):
        s = format_double(obj).encode()
        if resp3:
            out.append(b"," + s + b"\r\n")
        else:
            out.append(b"$%d\r\n%s\r\n" % (len(s), s))
    elif isinstance(obj, (list, tuple)):
        out.append(b"*%d\r\n" % len(obj))
        for item in obj:
            _encode(item, resp3, out)
    else:
        data = _b(obj)
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))


def pack_command(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = _b(a)
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ReplyStream(object):
    """Reads whole replies from a socket, returning (raw_bytes, parsed)."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.buf = b""
        self.pos = 0
        self.current = []

    def read(self):
        while True:
            while self.pos < len(self.buf):
                end = self.buf.find(b"\r\n", self.pos)
                end = len(self.buf) if end < 0 else end + 2
                piece = self.buf[self.pos:end]
                self.pos = end
                self.reader.feed(piece)
                self.current.append(piece)
                reply = self.reader.gets()
                if reply is not False:
                    raw = b"".join(self.current)
                    self.current = []
                    return raw, reply
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("upstream closed the connection")
            self.buf = data
            self.pos = 0


class Conn(object):
    """A plain request/response connection to the upstream (RESP2 unless HELLO says else)."""

    def __init__(self, host, port, password=None, username=None, timeout=None):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = ReplyStream(self.sock)
        if password:
            args = ["AUTH", username, password] if username else ["AUTH", password]
            reply = self.call(*args)
            if isinstance(reply, ReplyError):
                raise ConnectionError("upstream AUTH failed: %s" % reply)

    def send(self, *commands):
        self.sock.sendall(b"".join(pack_command(c) for c in commands))

    def read(self):
        return self.stream.read()[1]

    def call(self, *args):
        self.send(args)
        return self.read()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

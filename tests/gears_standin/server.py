"""Client connections: one thread per client, each with its own upstream connection.

Commands are parsed with hiredis; RG.* ones the engine knows are answered here (RESP2 or
RESP3, as the client chose with HELLO), everything else is forwarded and upstream's reply
bytes are relayed unchanged, in pipeline order.  SUBSCRIBE-like commands and MONITOR turn
the connection into a raw byte pipe.
"""
import contextlib
import logging
import socket
import threading

import hiredis

from . import commands as introspection
from .resp import Conn, Err, ReplyError, encode, pack_command

log = logging.getLogger("gears_standin.server")

RAW_AFTER = {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR", b"SYNC", b"PSYNC"}
FENCE_TIMEOUT = 120


class ClientHandler(object):
    def __init__(self, engine, sock):
        self.engine = engine
        self.sock = sock
        self.resp3 = False
        self.in_multi = False
        self.up = None

    def run(self):
        try:
            self.up = self.engine.connect()
            self._serve()
        except (OSError, ConnectionError) as e:
            log.debug("client connection ended: %s", e)
        except Exception:
            log.exception("client handler crashed")
        finally:
            for s in (self.sock, self.up.sock if self.up else None):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _serve(self):
        reader = hiredis.Reader()
        while True:
            data = self.sock.recv(262144)
            if not data:
                return
            reader.feed(data)
            commands = []
            while True:
                try:
                    cmd = reader.gets()
                except hiredis.ProtocolError as e:
                    self.sock.sendall(encode(Err("ERR Protocol error: %s" % e)))
                    return
                if cmd is False:
                    break
                commands.append(cmd)
            if not self._handle(commands):
                return

    def _handle(self, commands):
        out = []
        segment = []
        for i, cmd in enumerate(commands):
            if not isinstance(cmd, list) or not cmd:
                continue
            name = cmd[0].upper() if isinstance(cmd[0], bytes) else b""
            if name in RAW_AFTER:
                out.append(self._forward(segment))
                self.sock.sendall(b"".join(out))
                self._pipe(commands[i:])
                return False
            if not self.in_multi and introspection.is_command_introspection(cmd):
                out.append(self._forward(segment))
                segment = []
                out.append(introspection.patched(cmd, lambda c: self._forward([c]), self.resp3))
                continue
            reply = None
            if name.startswith(b"RG.") and not self.in_multi:
                reply = self.engine.command(cmd)
            if reply is None:
                segment.append(cmd)
                continue
            out.append(self._forward(segment))
            segment = []
            out.append(encode(reply, self.resp3))
        out.append(self._forward(segment))
        self.sock.sendall(b"".join(out))
        return True

    def _forward(self, segment):
        if not segment:
            return b""
        fence = None
        payload = [pack_command(c) for c in segment]
        for c in segment:
            n = c[0].upper()
            if n == b"MULTI":
                self.in_multi = True
            elif n in (b"EXEC", b"DISCARD", b"RESET"):
                self.in_multi = False
        # a PUBLISH inside MULTI would be queued: fence once the transaction is over
        if not self.in_multi and self.engine.fence_needed():
            fence = self.engine.new_fence()
            payload.append(pack_command(["PUBLISH", self.engine.fence_channel, fence[0]]))
        self.up.sock.sendall(b"".join(payload))
        raws = []
        for c in segment:
            raw, parsed = self.up.stream.read()
            raws.append(raw)
            self._track(c, parsed)
        if fence is not None:
            self.up.stream.read()  # PUBLISH's reply, not the client's
            if not fence[1].wait(FENCE_TIMEOUT):
                log.error("sync registrations did not catch up within %ss", FENCE_TIMEOUT)
        return b"".join(raws)

    def _track(self, cmd, parsed):
        name = cmd[0].upper()
        if isinstance(parsed, ReplyError):
            return
        if name == b"HELLO" and len(cmd) > 1:
            self.resp3 = cmd[1] == b"3"
        elif name == b"RESET":
            self.resp3 = False

    def _pipe(self, commands):
        """Raw passthrough from here on (pub/sub, MONITOR)."""
        self.up.sock.sendall(b"".join(pack_command(c) for c in commands))
        pending = self.up.stream.buf[self.up.stream.pos:]
        if pending:
            self.sock.sendall(pending)
        stop = threading.Event()

        def pump(src, dst):
            try:
                while not stop.is_set():
                    data = src.recv(262144)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                stop.set()
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        t = threading.Thread(target=pump, args=(self.up.sock, self.sock), daemon=True)
        t.start()
        pump(self.sock, self.up.sock)
        t.join()


def serve(engine, host, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(128)
    log.info("gears stand-in listening on %s:%d", host, srv.getsockname()[1])
    while True:
        sock, _addr = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handler = ClientHandler(engine, sock)
        threading.Thread(target=handler.run, name="client", daemon=True).start()


__all__ = ["serve", "ClientHandler", "Conn"]

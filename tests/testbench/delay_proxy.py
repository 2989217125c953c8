"""A loopback TCP proxy that delays every chunk it forwards: a slow MongoDB, on demand.

    with DelayProxy("127.0.0.1", 27017) as proxy:     # listens on 127.0.0.1:<proxy.port>
        proxy.delay = 0.3                             # each chunk waits 0.3 s, both ways
        ...
        proxy.delay = 0                               # back to full speed (also mid-wait)
        proxy.down()                                  # Mongo unreachable: cut and refuse
        proxy.up()

Threaded and bounded: at most `max_connections` client connections (more are closed at
once), two pump threads each; `close()` cuts everything and waits for the threads. Bytes are
forwarded in order and unchanged; the delay only holds them back (each chunk `delay` seconds
after the proxy read it). A chunk held for a connection that was cut meanwhile is dropped,
never delivered late.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024


class DelayProxy:
    """Forward LOOPBACK:<port> to (host, port), holding each chunk `delay` seconds."""

    def __init__(self, host: str, port: int, delay: float = 0.0,
                 max_connections: int = 32) -> None:
        self.target = (host, port)
        self.max_connections = max_connections
        self._delay = delay
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._refusing = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.connections = 0  # accepted so far
        self.refused = 0  # closed at once: down(), over max_connections, target unreachable
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._spawn(self._accept, "delay-proxy-accept")

    # --- the knob -------------------------------------------------------------------------
    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        with self._changed:
            self._delay = max(0.0, float(seconds))
            self._changed.notify_all()  # chunks already waiting see the new delay

    # --- plumbing -------------------------------------------------------------------------
    def _spawn(self, target, name: str, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                full = len(self._sockets) >= 2 * self.max_connections or self._refusing
            upstream = None
            if not full:
                with contextlib.suppress(OSError):
                    upstream = socket.create_connection(self.target, timeout=10)
            if upstream is None:
                self.refused += 1
                client.close()
                continue
            upstream.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            self._spawn(self._pump, "delay-proxy-up", client, upstream)
            self._spawn(self._pump, "delay-proxy-down", upstream, client)

    def _hold(self, received: float) -> None:
        """Wait until `delay` seconds after `received` (re-read whenever the delay changes)."""
        with self._changed:
            while not self._closed.is_set():
                left = received + self._delay - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                self._hold(time.monotonic())
                with self._lock:
                    cut = dst not in self._sockets or src not in self._sockets
                if cut:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            for s in sockets:
                self._sockets.discard(s)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def down(self) -> None:
        """Cut every open connection and refuse new ones (as if Mongo went away)."""
        with self._lock:
            self._refusing = True
            sockets = list(self._sockets)
        self._drop(*sockets)
        with self._changed:
            self._changed.notify_all()

    def up(self) -> None:
        """Accept connections again."""
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        """Stop listening, cut every connection, wait for the threads."""
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        self._drop(*sockets)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def proxied_mongo_url(url: str, port: int) -> str:
    """`url` (mongodb://, one host) pointed at LOOPBACK:`port`, credentials and options kept,
    with directConnection=true so the driver never goes around the proxy to other members."""
    scheme, sep, rest = url.partition("://")
    if scheme != "mongodb" or not sep:
        raise ValueError(f"not a mongodb:// URL: {scheme}://...")
    netloc, slash, path = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    if "," in hosts:
        raise ValueError("a MongoDB URL with several hosts cannot go through one proxy")
    path = path if slash else ""
    joiner = "&" if "?" in path else "?"
    return (f"mongodb://{credentials}{at}{LOOPBACK}:{port}/{path}{joiner}"
            "directConnection=true")


def mongo_host_port(url: str) -> tuple[str, int]:
    """The one (host, port) of a mongodb:// URL."""
    from pymongo.uri_parser import parse_uri

    nodes = parse_uri(url)["nodelist"]
    if len(nodes) != 1:
        raise ValueError("a MongoDB URL with several hosts cannot go through one proxy")
    host, port = nodes[0]
    return host, int(port)

"""A TCP proxy in front of MongoDB that the bench can take down and bring back.

Recipes reach Mongo through it, so Mongo's outages touch neither the server nor its data:
- `pause()`: Mongo is down. The listening socket closes (new connections are refused) and
  every open connection is cut, as when mongod stops; clients fail and retry.
- `stall()`: Mongo is frozen (as under SIGSTOP). Connections are accepted, but no byte is
  forwarded either way; clients wait, within their timeouts, and carry on once it resumes.
- `resume()`: back to forwarding (listening again on the same port after a pause).
The bench's own Mongo client bypasses it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

CHUNK = 256 * 1024


class PausableProxy:
    """Forward 127.0.0.1:<port> to (target_host, target_port); pause() = refuse and cut."""

    def __init__(self, target_host: str, target_port: int, bind: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.bind = bind
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._listen(port)
        self.port = self._listener.getsockname()[1]  # type: ignore[union-attr]
        self.connections_accepted = 0

    @property
    def paused(self) -> bool:
        return self._listener is None

    def _listen(self, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind, port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="bench-proxy-accept").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by pause()/close()
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # paused meanwhile
                    client.close()
                    upstream.close()
                    continue
                self._conns.update((client, upstream))
                self.connections_accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name="bench-proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._conns.discard(s)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def pause(self) -> None:
        """Refuse new connections and cut the open ones (Mongo is 'down')."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns = list(self._conns)
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone may not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._drop(*conns)

    def stall(self) -> None:
        """Hold every byte in both directions until resume() (Mongo is frozen)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again; after a pause, listen again on the same port."""
        self._flowing.set()
        with self._lock:
            if self._listener is not None:
                return
        self._listen(self.port)

    def close(self) -> None:
        self._flowing.set()
        self.pause()

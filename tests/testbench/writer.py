"""Steady application writes from a second thread, remembering each key's final state."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from .targets import app_client

KEYS = [f"k{i}" for i in range(50)]
PREFIX = "MovieEntity"


class Writer(threading.Thread):
    """Keeps JSON.SETting and DELeting `<prefix>:<key>` for `keys` until stopped.

    `final` maps each key id written to what Mongo should end with (the document plus its
    `movieId`, or None once deleted); a write counts only once Redis answered it.
    `paused()` holds the writes (e.g. while Redis restarts) and reconnects afterwards.
    """

    def __init__(self, url: str, keys: Sequence[str] = KEYS, seed: int = 7,
                 interval: float = 0.002, prefix: str = PREFIX) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.client = app_client(url, socket_timeout=30)
        self.keys = list(keys)
        self.prefix = prefix
        self.seed = seed
        self.interval = interval
        self.stop_event = threading.Event()
        self.final: dict[str, dict[str, Any] | None] = {}
        self.writes = 0
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._go.set()
        self._idle = threading.Event()

    def run(self) -> None:
        rng = random.Random(self.seed)
        try:
            while not self.stop_event.is_set():
                if not self._go.is_set():
                    self._idle.set()
                    self._go.wait(0.05)
                    continue
                self._idle.clear()
                key_id = rng.choice(self.keys)
                key = f"{self.prefix}:{key_id}"
                if rng.random() < 0.15:
                    self.client.delete(key)
                    self.final[key_id] = None
                else:
                    document = {"n": self.writes, "title": f"It's #{self.writes}"}
                    self.client.execute_command("JSON.SET", key, "$", json.dumps(document))
                    self.final[key_id] = {**document, "movieId": key_id}
                self.writes += 1
                time.sleep(self.interval)
        except BaseException as e:  # surfaced by finish()
            self.error = e
        finally:
            self._idle.set()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No write in flight inside the block; the next writes use new connections."""
        self._idle.clear()
        self._go.clear()
        self._idle.wait(30)
        try:
            yield
        finally:
            if isinstance(self.client, redis.RedisCluster):
                self.client.close()  # a new one rediscovers the nodes
                self.client = app_client(self.url, socket_timeout=30)
            else:
                self.client.connection_pool.disconnect()
            self._go.set()

    def finish(self) -> dict[str, dict[str, Any] | None]:
        """Stop writing; the final state of every key written."""
        self.stop_event.set()
        self._go.set()
        self.join(30)
        assert not self.is_alive(), "the writer did not stop"
        assert self.error is None, self.error
        self.client.close()
        return self.final


def redis_documents(client: redis.Redis, key_ids: Sequence[str],
                    prefix: str = PREFIX) -> dict[str, dict[str, Any] | None]:
    """What Redis holds now for each key id, as Mongo should mirror it (None: no key)."""
    out: dict[str, dict[str, Any] | None] = {}
    for key_id in key_ids:
        text = client.execute_command("JSON.GET", f"{prefix}:{key_id}")
        out[key_id] = None if text is None else {**json.loads(text), "movieId": key_id}
    return out

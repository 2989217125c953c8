"""What tests get: the RedisGears and MongoDB a run uses, whichever way they were provided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pymongo
import redis


class Restartable(Protocol):
    """A server the bench can stop and start again (a local process or a container)."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


def redis_client(url: str, **overrides: Any) -> redis.Redis:
    """redis-py speaking RESP2 with str replies, as the team's tests expect.

    The socket timeout leaves room for an RG.PYEXECUTE that pip-installs its REQUIREMENTS.
    """
    options: dict[str, Any] = {"decode_responses": True, "protocol": 2, "socket_timeout": 120}
    options.update(overrides)
    return redis.Redis.from_url(url, **options)


def app_client(url: str, **overrides: Any) -> redis.Redis | redis.RedisCluster:
    """What an application would use at `url`: a cluster client for a node of a cluster
    (keyed commands go to their shard), else a plain client. str replies, RESP2."""
    probe = redis_client(url, socket_timeout=10)
    try:
        clustered = str(probe.info("cluster").get("cluster_enabled", "0")) == "1"
    finally:
        probe.close()
    if not clustered:
        return redis_client(url, **overrides)
    options: dict[str, Any] = {"decode_responses": True, "protocol": 2, "socket_timeout": 120}
    options.update(overrides)
    return redis.RedisCluster.from_url(url, **options)


@dataclass
class GearsTarget:
    """A Redis with RedisGears 1.2 + RedisJSON; kind is 'real', 'testcontainers' or 'standin'."""

    url: str
    kind: str
    description: str

    def client(self, **overrides: Any) -> redis.Redis:
        return redis_client(self.url, **overrides)


class MongoTarget:
    """A MongoDB-wire server: `url` for this process, `url_from_redis` for a recipe in Redis."""

    def __init__(
        self,
        kind: str,
        description: str,
        url: str | None = None,
        url_from_redis: str | None = None,
        server: Restartable | None = None,
    ) -> None:
        if (url is None) == (server is None):
            raise ValueError("give exactly one of url and server")
        self.kind = kind
        self.description = description
        self._url = url
        self._url_from_redis = url_from_redis
        self._server = server
        self.running = True

    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else str(self._url)

    @property
    def url_from_redis(self) -> str:
        return self._url_from_redis or self.url

    @property
    def can_restart(self) -> bool:
        return self._server is not None

    def _require_server(self) -> Restartable:
        if self._server is None:
            raise NotImplementedError(f"the bench cannot stop or start a {self.kind} MongoDB")
        return self._server

    def stop(self) -> None:
        """Stop the server (fault injection); its data is kept for start()."""
        self._require_server().stop()
        self.running = False

    def start(self) -> None:
        """Start it again on the same address and wait until it accepts connections."""
        self._require_server().start()
        self.running = True

    def ensure_running(self) -> None:
        """Start it again if a test stopped it and did not restart it."""
        if not self.running:
            self.start()

    def client(self, **overrides: Any) -> pymongo.MongoClient[dict[str, Any]]:
        options: dict[str, Any] = {"serverSelectionTimeoutMS": 10_000}
        options.update(overrides)
        return pymongo.MongoClient(self.url, **options)

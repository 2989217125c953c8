"""One Bench per pytest run: starts servers on first use, knows their logs, stops them all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import selection
from .cluster import GearsCluster, StandinCluster, discover_primaries
from .containers import MONGO_ALIAS, Containers
from .servers import HOST, ServerProcess, mongo_wire_server, redis_server, stop_popen, tail, track
from .standin import Standin, load_launcher
from .targets import GearsTarget, MongoTarget


class Bench:
    """Starts servers on first use; `close()` stops all of them, newest first."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.env = env
        self._root: Path | None = None
        self._made: dict[str, tuple[Any, Exception | None]] = {}
        self._logs: dict[str, Callable[[int], str]] = {}
        self._closers: list[Callable[[], None]] = []
        self._containers: Containers | None = None

    @property
    def root(self) -> Path:
        """This run's folder of server logs and data (kept after the run)."""
        if self._root is None:
            parent = self.env.get("WBLOAD_TEST_LOG_DIR") or None
            if parent:
                Path(parent).mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix="wbload-bench-", dir=parent))
        return self._root

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        """make() on first call; later calls return its result or re-raise its failure."""
        if key not in self._made:
            try:
                self._made[key] = (make(), None)
            except Exception as exc:
                self._made[key] = (None, exc)
                raise
        value, error = self._made[key]
        if error is not None:
            raise RuntimeError(f"bench: {key} failed to start earlier: {error}") from error
        return value

    def started(self, key: str) -> bool:
        """True once `key` (e.g. 'gears cluster') was started without error."""
        return key in self._made and self._made[key][1] is None

    def _local(self, server: ServerProcess) -> ServerProcess:
        server.start()
        self._closers.append(server.stop)
        self._logs[server.name] = server.log_tail
        return server

    def _docker(self) -> Containers:
        if self._containers is None:
            self._containers = Containers()
            self._closers.append(self._containers.close)
        return self._containers

    @property
    def gears_kind(self) -> str:
        return self._once("gears selection", lambda: selection.gears_kind(self.env))

    @property
    def gears(self) -> GearsTarget:
        return self._once("gears", self._start_gears)

    @property
    def gears_cluster(self) -> GearsCluster:
        """The session's 3-master RedisGears cluster, started on first use."""
        return self._once("gears cluster", self._start_cluster)

    @property
    def mongo(self) -> MongoTarget:
        return self._once("mongo", self._start_mongo)

    @property
    def plain_redis(self) -> ServerProcess:
        return self._once("plain redis", lambda: self.redis("plain-redis", appendonly=False))

    def redis(
        self, name: str, appendonly: bool = True, workdir: Path | None = None, json: bool = True
    ) -> ServerProcess:
        """An extra Redis + RedisJSON (AOF by default; `json=False`: no modules), stopped with
        the bench."""
        return self._local(
            redis_server(name, workdir or self.root / name, appendonly=appendonly, json=json)
        )

    def standin(self, upstream: ServerProcess) -> Standin:
        """A RedisGears stand-in (started) in front of `upstream`, e.g. a `redis()` with AOF,
        without RedisJSON or a replica; stopped with the bench."""
        standin = Standin(upstream, self.root / "standin" / f"standin-{upstream.name}.log")
        standin.start()
        self._closers.append(standin.stop)
        self._logs[f"gears stand-in for {upstream.name}"] = standin.log_tail
        return standin

    def _start_gears(self) -> GearsTarget:
        kind = self.gears_kind
        if kind == "real":
            url = self.env[selection.REDIS_URL]
            described = f"RedisGears at {selection.redact(url)} ({selection.REDIS_URL})"
            return GearsTarget(url, kind, described)
        if kind == "testcontainers":
            server = self._docker().gears()
            self._logs["gears container"] = server.log_tail
            described = f"container {server.container.image} at {server.url}"
            return GearsTarget(server.url, kind, described)
        upstream = self.redis("gears-upstream-redis", appendonly=False)
        log = self.root / "standin" / "standin.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        # Returns once the stand-in answers PING.
        url, proc = load_launcher().start_standin(HOST, upstream.port, str(log))
        track(proc)
        self._closers.append(lambda: stop_popen(proc))
        self._logs["gears stand-in"] = lambda n: tail(log, n)
        return GearsTarget(url, kind, f"RedisGears stand-in at {url} in front of {upstream.url}")

    def _start_cluster(self) -> GearsCluster:
        url = self.env.get(selection.CLUSTER_URL)
        if url:
            nodes = discover_primaries(url)
            described = (f"RedisGears cluster at {selection.redact(url)} ({selection.CLUSTER_URL}),"
                         f" {len(nodes)} primaries")
            return GearsCluster(nodes, "real", described,
                                restart_command=self.env.get(selection.RESTART_CMD) or None)
        cluster = StandinCluster(self.root / "cluster")
        self._closers.append(cluster.stop)
        self._logs.update(cluster.log_readers())
        cluster.start()
        described = (f"3 redis-server primaries in cluster mode, each behind a RedisGears "
                     f"stand-in at {', '.join(cluster.urls)} "
                     f"(started in {cluster.started_in:.1f}s)")
        return GearsCluster(cluster.urls, "standin", described, cluster)

    def _start_mongo(self) -> MongoTarget:
        env, source = self.env, selection.mongo_source(self.gears_kind, self.env)
        from_redis = env.get(selection.MONGO_URL_FROM_REDIS) or None
        if source == "external":
            url = env[selection.MONGO_URL]
            described = f"MongoDB at {selection.redact(url)} ({selection.MONGO_URL})"
            return MongoTarget("external", described, url=url, url_from_redis=from_redis)
        if source == "testcontainers":
            server = self._docker().mongo()
            self._logs["mongo container"] = server.log_tail
            from_redis = from_redis or f"mongodb://{MONGO_ALIAS}:27017"
            described = f"container {server.container.image} at {server.url} ({from_redis} in-net)"
            return MongoTarget(source, described, url_from_redis=from_redis, server=server)
        # File-backed, so that mongo.stop() / .start() (fault injection) keep the data.
        local = self._local(mongo_wire_server("mongo", self.root / "mongo", persistent=True))
        described = f"{local.kind} at {local.url}"
        return MongoTarget(local.kind, described, url_from_redis=from_redis, server=local)

    def log_tails(self, lines: int = 40) -> list[tuple[str, str]]:
        """(server name, last lines of its log) for every server started so far."""
        out = []
        for name, read in self._logs.items():
            try:
                out.append((name, read(lines)))
            except Exception as exc:  # a log we cannot read must not hide the test's failure
                out.append((name, f"<log unavailable: {exc}>"))
        return out

    def close(self) -> None:
        while self._closers:
            try:
                self._closers.pop()()
            except Exception as exc:
                print(f"bench: error while stopping a server: {exc}")


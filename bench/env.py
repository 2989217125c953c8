"""The servers a bench run uses, and what they are.

Given URLs are used as they are. Without them the bench starts its own, with the test
bench's helpers (`tests/testbench/servers.py`, `tests/gears_standin/launch.py`), loaded from
their files only then: `bench` imports nothing from the test suite otherwise.

Every figure is labelled with `describe_redis()` / `describe_mongo()`: a real RedisGears
lists module `rg` in MODULE LIST; the stand-in answers RG.PYSTATS but lists no `rg`; Mongo
says what it is in buildInfo (nx-27017 reports `process: nx_27017`). On a Redis Cluster,
`describe_cluster()` describes every primary and labels the whole with its node count.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Union
from urllib.parse import urlsplit

import pymongo
import redis

REPO = Path(__file__).resolve().parents[1]
TEST_SERVERS = REPO / "tests" / "testbench" / "servers.py"
STANDIN_LAUNCH = REPO / "tests" / "gears_standin" / "launch.py"
TESTBENCH = REPO / "tests" / "testbench"

# one node, or a cluster client (keyed commands routed to the shard that owns the key)
Client = Union[redis.Redis, redis.RedisCluster]


def _load(path: Path, name: str) -> ModuleType:
    """A module from its file, without putting tests/ on sys.path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the bench starts its servers with it")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and friends look themselves up here
    spec.loader.exec_module(module)
    return module


def load_test_helper(name: str) -> ModuleType:
    """A module of tests/testbench/ (stdlib and redis only) by file, e.g. "gears_ops"."""
    return _load(REPO / "tests" / "testbench" / f"{name}.py", f"wbload_testbench_{name}")


def _load_testbench(module: str) -> ModuleType:
    """A module of tests/testbench/ that imports its siblings (e.g. "cluster"), with the
    package loaded under its own name, without putting tests/ on sys.path."""
    package = "wbload_bench_testbench"
    if package not in sys.modules:
        init = TESTBENCH / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(TESTBENCH)])
        if spec is None or spec.loader is None or not init.is_file():
            raise FileNotFoundError(f"{init} is missing: the bench starts its cluster with it")
        sys.modules[package] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[package])
    return importlib.import_module(f"{package}.{module}")


def redis_client(url: str, **overrides: Any) -> redis.Redis:
    options: dict[str, Any] = {"decode_responses": True, "protocol": 2, "socket_timeout": 300}
    options.update(overrides)
    return redis.Redis.from_url(url, **options)


def cluster_client(url: str, **overrides: Any) -> redis.RedisCluster:
    """A cluster client that finds every shard from `url` (any node)."""
    options: dict[str, Any] = {"decode_responses": True, "protocol": 2, "socket_timeout": 300}
    options.update(overrides)
    return redis.RedisCluster.from_url(url, **options)


def cluster_enabled(url: str) -> bool:
    with redis_client(url, socket_timeout=10) as client:
        return str(client.info("cluster").get("cluster_enabled", "0")) == "1"


def primaries(client: Client) -> list[redis.Redis]:
    """A plain client per primary (the client itself for one node), in slot order."""
    if isinstance(client, redis.Redis):
        return [client]
    nodes = sorted(client.get_primaries(), key=lambda n: _min_slot(client, n.name))
    return [client.get_redis_connection(node) for node in nodes]


def _min_slot(client: redis.RedisCluster, name: str) -> int:
    slots = [slot for slot, owners in client.nodes_manager.slots_cache.items()
             if owners and owners[0].name == name]
    return min(slots, default=16384)


def slot_map(url: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each primary's URL (scheme and credentials of `url`) with its slot ranges, in slot
    order (CLUSTER SLOTS)."""
    parts = urlsplit(url)
    creds = parts.netloc.rpartition("@")[0]
    by_node: dict[str, list[tuple[int, int]]] = {}
    with redis_client(url, socket_timeout=10) as client:
        for entry in client.execute_command("CLUSTER", "SLOTS"):
            host, port = entry[2][0], entry[2][1]
            netloc = f"{creds}@{host}:{port}" if creds else f"{host}:{port}"
            by_node.setdefault(parts._replace(netloc=netloc).geturl(), []).append(
                (int(entry[0]), int(entry[1])))
    return sorted(((u, sorted(r)) for u, r in by_node.items()), key=lambda x: x[1][0][0])


class OwnServers:
    """redis-server + RedisJSON behind the RedisGears stand-in, and nx-27017 (or mongod)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="wbload-perf-"))
        self._stop: list[Any] = []
        self.redis_url: str | None = None
        self.mongo_url: str | None = None

    def start_gears(self) -> str:
        servers = _load(TEST_SERVERS, "wbload_perf_test_servers")
        launch = _load(STANDIN_LAUNCH, "wbload_perf_standin_launch")
        upstream = servers.redis_server("gears-upstream-redis", self.root / "redis")
        upstream.start()
        self._stop.append(upstream.stop)
        log = self.root / "standin.log"
        url, proc = launch.start_standin(servers.HOST, upstream.port, str(log))
        servers.track(proc)
        self._stop.append(lambda: servers.stop_popen(proc))
        self.redis_url = url
        return url

    def start_cluster(self) -> str:
        """The test bench's stand-in cluster: 3 redis-server primaries in cluster mode, each
        behind a RedisGears stand-in (tests/testbench/cluster.py); the URL of its first node."""
        cluster = _load_testbench("cluster").StandinCluster(self.root / "cluster")
        self._stop.append(cluster.stop)
        cluster.start()
        self.redis_url = cluster.urls[0]
        return cluster.urls[0]

    def start_mongo(self) -> str:
        servers = _load(TEST_SERVERS, "wbload_perf_test_servers")
        mongo = servers.mongo_wire_server("mongo", self.root / "mongo")
        mongo.start()
        self._stop.append(mongo.stop)
        self.mongo_url = mongo.url
        return mongo.url

    def close(self) -> None:
        while self._stop:
            with contextlib.suppress(Exception):
                self._stop.pop()()


def host_port(mongo_url: str) -> tuple[str, int]:
    """(host, port) of a single-host mongodb:// URL."""
    parts = urlsplit(mongo_url)
    if parts.scheme != "mongodb" or "," in (parts.netloc or ""):
        raise ValueError(f"need a single-host mongodb:// URL, got {mongo_url!r}")
    return parts.hostname or "127.0.0.1", parts.port or 27017


def with_host_port(mongo_url: str, host: str, port: int) -> str:
    """The same URL (credentials, path, options) pointing at host:port."""
    parts = urlsplit(mongo_url)
    creds = parts.netloc.rpartition("@")[0]
    netloc = f"{creds}@{host}:{port}" if creds else f"{host}:{port}"
    return parts._replace(netloc=netloc).geturl()


def _pairs(flat: Any) -> dict[str, Any]:
    return flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))


def describe_redis(url: str) -> dict[str, Any]:
    """kind 'redisgears' (module rg loaded) or 'standin' (RG.* answered, no rg module)."""
    client = redis_client(url, socket_timeout=10)
    try:
        version = client.info("server").get("redis_version", "?")
        modules = {str(m["name"]): m.get("ver") for m in map(_pairs, client.execute_command(
            "MODULE", "LIST"))}
        if "rg" in modules:
            kind = "redisgears"
        else:
            try:
                client.execute_command("RG.PYSTATS")
                kind = "standin"
            except redis.ResponseError:
                kind = "no-gears"
    finally:
        client.close()
    rg = modules.get("rg")
    if kind == "redisgears":
        rg_text = f"{rg // 10000}.{rg // 100 % 100}.{rg % 100}" if isinstance(rg, int) else rg
        label = f"RedisGears {rg_text} (real) on redis {version}"
    elif kind == "standin":
        label = f"RedisGears stand-in (Python proxy) on redis {version}"
    else:
        label = f"redis {version} WITHOUT RedisGears"
    return {"kind": kind, "label": label, "redis_version": version,
            "modules": {k: v for k, v in modules.items()}}


def describe_cluster(url: str) -> dict[str, Any]:
    """describe_redis() of every primary, labelled as one cluster with its node count."""
    nodes = [{"url": u, "slots": [list(r) for r in ranges], **describe_redis(u)}
             for u, ranges in slot_map(url)]
    kinds = {n["kind"] for n in nodes}
    labels = sorted({n["label"] for n in nodes})
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    label = f"Redis Cluster of {len(nodes)} primaries, each {' / '.join(labels)}"
    return {"kind": kind, "topology": "cluster", "node_count": len(nodes), "label": label,
            "redis_version": " / ".join(sorted({n["redis_version"] for n in nodes})),
            "modules": nodes[0]["modules"] if nodes else {}, "nodes": nodes}


def describe_mongo(url: str) -> dict[str, Any]:
    """What buildInfo says: mongod ('MongoDB x.y') or another wire server (nx-27017)."""
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=10_000)
    try:
        info = client.admin.command("buildInfo")
    finally:
        client.close()
    version = info.get("version", "?")
    process = info.get("process")
    if process:
        kind = str(process).replace("_", "-")
        label = f"{kind} (MongoDB-wire {version})"
    else:
        kind = "mongod"
        label = f"MongoDB {version}"
    return {"kind": kind, "label": label, "version": version}


def wait_for_ping(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with redis_client(url, socket_timeout=2) as client:
                client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

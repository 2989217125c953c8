"""A 3-master Redis OSS cluster for the bench: real redis-server processes in cluster mode, each
fronted by a RedisGears stand-in; or, with WBLOAD_TEST_CLUSTER_URL, a real RedisGears cluster.

Each redis-server announces its stand-in's port (`cluster-announce-port`), so CLUSTER SLOTS /
NODES / SHARDS and MOVED name the stand-ins, and cluster clients only ever talk to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from .servers import HOST, ServerProcess, free_port, redis_server
from .standin import Standin
from .targets import redis_client

SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
NODE_TIMEOUT_MS = 5000


class ClusterNode:
    """One primary: its redis-server (cluster mode, AOF) and its stand-in, on fixed ports."""

    def __init__(self, index: int, root: Path) -> None:
        self.index = index
        self.standin_port = free_port()
        self.bus_port = free_port()
        workdir = root / f"node{index}"
        # kept (not copied) by redis_server's argv: a re-announced port holds for restarts
        self._extra = [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-port", str(self.bus_port),
            "--cluster-announce-ip", HOST,
            "--cluster-announce-port", str(self.standin_port),
            "--cluster-announce-bus-port", str(self.bus_port),
        ]
        self.redis: ServerProcess = redis_server(
            f"cluster-redis-{index}", workdir, appendonly=True, extra_args=self._extra)
        self.standin = Standin(self.redis, workdir / f"standin-{index}.log", self.standin_port)

    def start_standin(self, attempts: int = 3) -> None:
        """Start the stand-in; if its port was taken meanwhile (the machine is shared), on
        another port that the redis-server then announces."""
        for attempt in range(attempts):
            try:
                self.standin.start()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
            self.standin_port = self.standin.port = free_port()
            self._extra[self._extra.index("--cluster-announce-port") + 1] = str(self.standin_port)
            client = self.direct()
            try:
                client.config_set("cluster-announce-port", self.standin_port)
            finally:
                client.close()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.standin_port}"

    def direct(self) -> redis.Redis:
        """A client of the redis-server itself (not through the stand-in)."""
        return redis.Redis(host=HOST, port=self.redis.port, decode_responses=True,
                           socket_timeout=10)


class StandinCluster:
    """Three primaries with slots 0-5460 / 5461-10922 / 10923-16383, stand-ins in front."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes = [ClusterNode(i, root) for i in range(len(SLOT_RANGES))]
        self.started_in: float | None = None

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        began = time.monotonic()
        for node in self.nodes:
            node.redis.start()
        self._form()
        self.wait_ok()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.start_standin(), self.nodes))
        self._wait_announced()
        for i in range(len(self.nodes)):
            self.refresh(i)
        self.started_in = time.monotonic() - began

    def _form(self) -> None:
        """Slots, config epochs and MEET, as `redis-cli --cluster create` does (first start)."""
        clients = [n.direct() for n in self.nodes]
        try:
            if int(_info(clients[0]).get("cluster_known_nodes", "1")) > 1:
                return  # restarted with its nodes.conf: already formed
            for i, (client, (first, last)) in enumerate(zip(clients, SLOT_RANGES)):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", HOST, node.standin_port,
                                           node.bus_port)
        finally:
            for c in clients:
                c.close()

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live redis-server says cluster_state:ok and knows every primary."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if not node.redis.running:
                    continue
                client = node.direct()
                try:
                    info = _info(client)
                    states.append(info.get("cluster_state") == "ok"
                                  and int(info.get("cluster_known_nodes", 0)) == len(self.nodes)
                                  and int(info.get("cluster_size", 0)) == len(self.nodes))
                except redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench cluster did not reach cluster_state:ok within "
                                   f"{timeout:.0f}s; logs in {self.root}")
            time.sleep(0.1)

    def _wait_announced(self, timeout: float = 30.0) -> None:
        """Until every node's CLUSTER NODES names the stand-ins' current ports."""
        want = {n.standin_port for n in self.nodes}

        def announced() -> bool:
            for node in self.nodes:
                client = node.direct()
                try:
                    text = str(client.execute_command("CLUSTER", "NODES"))
                finally:
                    client.close()
                if {int(f.split("@")[0].rsplit(":", 1)[1]) for f in text.split()
                        if "@" in f} != want:
                    return False
            return True

        deadline = time.monotonic() + timeout
        while not announced():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench cluster does not announce the stand-ins' ports "
                                   f"{sorted(want)}; logs in {self.root}")
            time.sleep(0.1)

    def refresh(self, index: int) -> None:
        """RG.REFRESHCLUSTER on one node's stand-in (what every start of a node needs)."""
        client = redis_client(self.nodes[index].url, socket_timeout=30)
        try:
            client.execute_command("RG.REFRESHCLUSTER")
        finally:
            client.close()

    def stop_node(self, index: int) -> None:
        """Stop one node's stand-in and redis-server (its AOF and nodes.conf stay)."""
        node = self.nodes[index]
        node.standin.stop()
        node.redis.stop()

    def start_node(self, index: int, refresh: bool = True) -> None:
        """Start a stopped node again on the same ports; once the cluster is ok again, its
        stand-in, unrefreshed (as a real node is after a start) unless `refresh`."""
        node = self.nodes[index]
        node.redis.start()
        self.wait_ok()
        node.standin.start()
        if refresh:
            self.refresh(index)

    def restart_node(self, index: int, refresh: bool = True) -> None:
        """stop_node() then start_node()."""
        self.stop_node(index)
        self.start_node(index, refresh)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.standin.stop()
            node.redis.stop()

    def log_readers(self) -> dict[str, Callable[[int], str]]:
        out: dict[str, Callable[[int], str]] = {}
        for node in self.nodes:
            out[f"cluster node {node.index} redis-server"] = node.redis.log_tail
            out[f"cluster node {node.index} gears stand-in"] = node.standin.log_tail
        return out


def _info(client: redis.Redis) -> dict[str, str]:
    """CLUSTER INFO as a dict of strings."""
    raw = client.execute_command("CLUSTER", "INFO")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def discover_primaries(url: str) -> list[str]:
    """URLs of every primary of the cluster that `url` (any node) belongs to, in slot order,
    with the scheme and credentials of `url`."""
    client = redis_client(url, socket_timeout=10)
    try:
        lines = client.execute_command("CLUSTER", "NODES")
    finally:
        client.close()
    text = lines.decode() if isinstance(lines, bytes) else str(lines)
    primaries: list[tuple[int, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2].split(",") or "fail" in fields[2]:
            continue
        slots = [int(s.split("-")[0]) for s in fields[8:] if s[:1].isdigit()]
        if not slots:
            continue
        hostport = fields[1].split("@")[0].split(",")[0]
        primaries.append((min(slots), hostport))
    parts = urlsplit(url)
    creds = parts.netloc.rpartition("@")[0]
    out = []
    for _slot, hostport in sorted(primaries):
        netloc = f"{creds}@{hostport}" if creds else hostport
        out.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return out


class GearsCluster:
    """A RedisGears cluster: `.url` (any node), `.nodes` (every primary's URL, slot order),
    `.kind` ('real' or 'standin'), `.description`, clients, and node restarts (bench only)."""

    def __init__(self, nodes: list[str], kind: str, description: str,
                 bench_cluster: StandinCluster | None = None,
                 restart_command: str | None = None) -> None:
        self.nodes = nodes
        self.url = nodes[0]
        self.kind = kind
        self.description = description
        self._bench = bench_cluster
        # a given cluster: WBLOAD_TEST_RESTART_CMD restarts one of its nodes ({port})
        self._restart_command = restart_command

    def client(self, **overrides: Any) -> redis.RedisCluster:
        """A cluster client (str replies, RESP2) that finds every shard from `.url`."""
        options: dict[str, Any] = {"decode_responses": True, "protocol": 2,
                                   "socket_timeout": 120}
        options.update(overrides)
        return redis.RedisCluster.from_url(self.url, **options)

    def node_client(self, index: int, **overrides: Any) -> redis.Redis:
        """A plain client of one primary (RG.* commands that report one shard)."""
        return redis_client(self.nodes[index], **overrides)

    def primary_clients(self, **overrides: Any) -> list[redis.Redis]:
        return [self.node_client(i, **overrides) for i in range(len(self.nodes))]

    @property
    def can_restart(self) -> bool:
        return self._bench is not None or bool(self._restart_command)

    @property
    def can_stop(self) -> bool:
        return self._bench is not None

    def _require_bench(self) -> StandinCluster:
        if self._bench is None:
            raise NotImplementedError(f"the bench cannot stop or start nodes of a {self.kind} "
                                      "cluster")
        return self._bench

    def restart_node(self, index: int, refresh: bool = True) -> None:
        """Restart one primary (Redis + its Gears) with its AOF; RG.REFRESHCLUSTER it after
        unless `refresh=False`."""
        if self._bench is None and self._restart_command:
            self._restart_given_node(index, refresh)
            return
        self._require_bench().restart_node(index, refresh)

    def _restart_given_node(self, index: int, refresh: bool) -> None:
        from .restart import run_restart_command, wait_ready

        url = self.nodes[index]
        port = str(urlsplit(url).port or 6379)
        assert self._restart_command is not None
        run_restart_command(self._restart_command.replace("{port}", port))
        wait_ready(url)
        deadline = time.monotonic() + 120
        for i in range(len(self.nodes)):  # every node: the others may still flag it FAIL
            with self.node_client(i) as node:
                while "cluster_state:ok" not in str(node.execute_command("CLUSTER", "INFO")):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{self.nodes[i]}: cluster not ok 120 s after "
                                             f"{url} restarted")
                    time.sleep(0.2)
        if refresh:
            with self.node_client(index) as node:
                node.execute_command("RG.REFRESHCLUSTER")

    def stop_node(self, index: int) -> None:
        """Stop one primary (the others soon answer CLUSTERDOWN); `start_node()` brings it back."""
        self._require_bench().stop_node(index)

    def start_node(self, index: int, refresh: bool = True) -> None:
        self._require_bench().start_node(index, refresh)

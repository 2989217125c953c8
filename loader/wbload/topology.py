"""Which Redis servers a deployment spans: one node, or every primary of a Redis Cluster.

Every command asks here rather than branching on the topology itself. RedisGears 1.2 in OSS
cluster mode spreads `RG.PYEXECUTE` and `RG.UNREGISTER` over the cluster from whichever node
gets them, so those go to the node the operator named (`Deployment.entry`). Everything else
it reports per shard (registrations' counters, requirements, its view of the cluster) and
every key a recipe makes lives on one shard, so those are read from each primary
(`Deployment.shards`), and a command on one key goes to the shard that owns it
(`Deployment.shard_of`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.crc import key_slot

from .connection import RedisTarget, connect
from .errors import RedisUnreachable, ServerUnsuitable
from .hashtags import tagged

REFRESH_HINT = (
    "RedisGears learns the cluster only from RG.REFRESHCLUSTER, needed after every start of "
    "every node: run `wbload refresh`"
)


@dataclass(frozen=True)
class Shard:
    """One primary: the keys of its slots, and Gears' counters for what ran there."""

    address: str  # host:port, as the cluster announces it (the URL's for a single node)
    client: redis.Redis
    slots: tuple[tuple[int, int], ...] = ((0, 16383),)

    @property
    def min_slot(self) -> int:
        """The lowest slot it owns: Gears' `hashtag()` there hashes to it."""
        return min(start for start, _ in self.slots)

    @property
    def node(self) -> tuple[str, int] | None:
        """(host, port) to reach it with another client; None for a unix socket."""
        host, _, port = self.address.rpartition(":")
        return (host, int(port)) if host and port.isdigit() else None

    def owns(self, key: str) -> bool:
        slot = key_slot(key.encode())
        return any(start <= slot <= end for start, end in self.slots)

    def tagged(self, name: str) -> str:
        """`name` with this shard's Gears hash tag appended, as recipe code names its keys."""
        return tagged(name, self.min_slot)

    def stream(self, pattern: str) -> str:
        """This shard's stream of a StreamReader watching `_..-stream-<uuid>-*`."""
        return self.tagged(pattern[:-1] if pattern.endswith("*") else pattern)


@dataclass
class Deployment:
    """The Redis a write-behind runs on, as one object whatever its topology."""

    target: RedisTarget
    entry: redis.Redis
    shards: list[Shard]
    is_cluster: bool = False
    problems: list[str] = field(default_factory=list)  # what makes Gears unfit, one line each

    @property
    def display(self) -> str:
        return self.target.display

    def shard_of(self, key: str) -> Shard:
        """The shard whose slots hold `key`."""
        for shard in self.shards:
            if shard.owns(key):
                return shard
        raise RedisUnreachable(
            f"no primary of the cluster at {self.display} serves the slot of {key!r} "
            "(cluster_state not ok?); check `redis-cli cluster info`"
        )

    def keyed(self, key: str) -> redis.Redis:
        """A client of the shard that owns `key`."""
        return self.shard_of(key).client

    def scan(self, match: str, type_: str | None = None, count: int = 1000) -> Iterator[str]:
        """Every key matching `match` on every shard (each key once)."""
        for shard in self.shards:
            seen = set()
            for key in shard.client.scan_iter(match=match, count=count, _type=type_):
                if key not in seen:
                    seen.add(key)
                    yield key

    def require_gears_ready(self) -> None:
        """Raise ServerUnsuitable when a shard's RedisGears cannot run a recipe now."""
        if self.problems:
            raise ServerUnsuitable(self.problems[0])

    def close(self) -> None:
        for client in {id(s.client): s.client for s in self.shards}.values():
            client.close()
        self.entry.close()


def open_deployment(target: RedisTarget, wait: float = 0.0) -> Deployment:
    """Connect to the named node and, on a cluster, to every primary."""
    entry = connect(target, wait=wait)
    if not _cluster_enabled(entry):
        return Deployment(target, entry, [Shard(target_address(target), entry)])
    shards, entry_is_primary = [], False
    myid = _text(entry.execute_command("CLUSTER", "MYID"))
    for (host, port, node_id), slots in _primaries(entry).items():
        client = entry if node_id == myid else target.client(address=(host, port))
        entry_is_primary = entry_is_primary or node_id == myid
        shards.append(Shard(f"{host}:{port}", client, tuple(slots)))
    shards.sort(key=lambda s: s.min_slot)
    if not entry_is_primary and shards:  # a replica named: Gears takes RG.* from a primary
        entry = shards[0].client
    deployment = Deployment(target, entry, shards, is_cluster=True)
    state = _cluster_state(entry)
    if state != "ok":
        deployment.problems.append(
            f"the Redis Cluster at {target.display} is not serving (cluster_state:{state}); "
            "bring every shard up (`redis-cli --cluster check`), then retry"
        )
    return deployment


def gears_cluster_problems(deployment: Deployment) -> list[str]:
    """One line per primary whose RedisGears does not know the cluster as Redis does.

    An unrefreshed node acts as a single shard: its KeysReaders cannot queue changes (the
    app's write still answers OK and the change never reaches Mongo), and a registration sent
    while it is unrefreshed hangs and registers nowhere.
    """
    if not deployment.is_cluster:
        return []
    primaries = {shard.address for shard in deployment.shards}
    problems = []
    for shard in deployment.shards:
        try:
            view = shard.client.execute_command("RG.INFOCLUSTER")
        except redis.ResponseError as e:
            problems.append(f"RedisGears on {shard.address} answers RG.INFOCLUSTER with {e}")
            continue
        known = _gears_view(view)
        if known is None:
            problems.append(
                f"RedisGears on {shard.address} does not know the cluster "
                f"(RG.INFOCLUSTER: {_text(view)}); {REFRESH_HINT}"
            )
        elif set(known) != primaries:
            problems.append(
                f"RedisGears on {shard.address} sees shards {', '.join(sorted(known))}, "
                f"Redis has {', '.join(sorted(primaries))}; {REFRESH_HINT}"
            )
        elif known[shard.address] != shard.min_slot:
            # its hashtag() (and so every key name its recipe code makes) follows Gears' view
            problems.append(
                f"RedisGears on {shard.address} has its lowest slot at {known[shard.address]}, "
                f"Redis at {shard.min_slot} (slots moved?); {REFRESH_HINT}"
            )
    return problems


def refresh(deployment: Deployment) -> list[str]:
    """RG.REFRESHCLUSTER on every node of the cluster (replicas too: one may be promoted);
    returns the nodes refreshed."""
    nodes = _all_nodes(deployment.entry) if deployment.is_cluster else []
    done = []
    for host, port in nodes:
        client = deployment.target.client(address=(host, port))
        try:
            client.execute_command("RG.REFRESHCLUSTER")
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise RedisUnreachable(
                f"cannot reach cluster node {host}:{port} to refresh it ({e}); "
                "start it, then run `wbload refresh` again"
            ) from None
        finally:
            client.close()
        done.append(f"{host}:{port}")
    return done


def _cluster_enabled(client: redis.Redis) -> bool:
    try:
        info = client.info("cluster")
    except redis.ResponseError:  # e.g. NOPERM for INFO: behave as before, a single node
        return False
    return str(info.get("cluster_enabled", "0")) == "1"


def _cluster_state(client: redis.Redis) -> str:
    reply = _text(client.execute_command("CLUSTER", "INFO"))
    for line in reply.splitlines():
        if line.startswith("cluster_state:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _slots_reply(client: redis.Redis) -> list[Any]:
    # Read raw: redis-py's parser for CLUSTER SLOTS differs between its versions.
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("CLUSTER", "SLOTS")
        reply = connection.read_response()
    finally:
        client.connection_pool.release(connection)
    return list(reply or [])


def _primaries(client: redis.Redis) -> dict[tuple[str, int, str], list[tuple[int, int]]]:
    """(host, port, node id) of each primary -> its slot ranges (CLUSTER SLOTS)."""
    primaries: dict[tuple[str, int, str], list[tuple[int, int]]] = {}
    for entry in _slots_reply(client):
        start, end, node = int(entry[0]), int(entry[1]), entry[2]
        host = _text(node[0]) or _entry_host(client)
        node_id = _text(node[2]) if len(node) > 2 else ""
        primaries.setdefault((host, int(node[1]), node_id), []).append((start, end))
    return primaries


def _all_nodes(client: redis.Redis) -> list[tuple[str, int]]:
    nodes: list[tuple[str, int]] = []
    for line in _text(client.execute_command("CLUSTER", "NODES")).splitlines():
        fields = line.split()
        if len(fields) < 3 or "fail" in fields[2].split(",") or "noaddr" in fields[2]:
            continue
        address = fields[1].split("@")[0]
        host, _, port = address.rpartition(":")
        nodes.append((host or _entry_host(client), int(port)))
    return sorted(set(nodes))


def _gears_view(reply: Any) -> dict[str, int] | None:
    """host:port -> lowest slot, of every shard in an RG.INFOCLUSTER reply; None for
    `no cluster mode`."""
    if not isinstance(reply, (list, tuple)) or len(reply) < 5:
        return None
    shards = {}
    for entry in reply[4] or []:
        fields = dict(zip(map(_text, entry[::2]), entry[1::2]))
        address = f"{_text(fields.get('ip'))}:{_text(fields.get('port'))}"
        shards[address] = int(_text(fields.get("minHslot", -1)))
    return shards


def _entry_host(client: redis.Redis) -> str:
    return str(client.connection_pool.connection_kwargs.get("host", "localhost"))


def target_address(target: RedisTarget) -> str:
    """host:port of the node a target names (no credentials)."""
    return target.display.split("@")[-1].split("://")[-1].split("/")[0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

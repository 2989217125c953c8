"""One object for a test that runs on one node and on the cluster: `deployment` fixture."""

from __future__ import annotations

from typing import Any

import redis
from redis.crc import key_slot

from . import gears_ops
from .cluster import GearsCluster
from .polling import wait_for
from .targets import GearsTarget

TOPOLOGIES = ("node", "cluster")


class Deployment:
    """Where a test deploys: `.topology` ('node' or 'cluster'), `.url` (the node, or any node of
    the cluster), `.client()` (redis.Redis, or redis.RedisCluster), `.primary_clients()` (one
    plain client per primary), `.target` (the GearsTarget or GearsCluster behind it)."""

    def __init__(self, topology: str, target: GearsTarget | GearsCluster) -> None:
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology {topology!r}: expected one of {TOPOLOGIES}")
        self.topology = topology
        self.target = target
        self.url = target.url
        self.kind = target.kind
        self.description = target.description

    @property
    def is_cluster(self) -> bool:
        return self.topology == "cluster"

    def client(self, **overrides: Any) -> redis.Redis | redis.RedisCluster:
        """str replies, RESP2; a cluster client routes keyed commands to their shard."""
        return self.target.client(**overrides)

    def primary_clients(self, **overrides: Any) -> list[redis.Redis]:
        if isinstance(self.target, GearsCluster):
            return self.target.primary_clients(**overrides)
        return [self.target.client(**overrides)]

    def spread_ids(self, prefix: str, stem: str, per_shard: int = 1) -> list[str]:
        """Key ids `<stem><n>` such that keys `<prefix>:<id>` land `per_shard` on each shard
        (on one node: `per_shard` ids)."""
        if not self.is_cluster:
            return [f"{stem}{n}" for n in range(per_shard)]
        with self.primary_clients()[0] as node:
            ranges = [(int(e[0]), int(e[1]), str(e[2][1])) for e in
                      node.execute_command("CLUSTER", "SLOTS")]
        wanted = {port: per_shard for _, _, port in ranges}
        ids, n = [], 0
        while any(wanted.values()):
            slot = key_slot(f"{prefix}:{stem}{n}".encode())
            port = next(p for start, end, p in ranges if start <= slot <= end)
            if wanted[port]:
                wanted[port] -= 1
                ids.append(f"{stem}{n}")
            n += 1
        return ids

    def reset(self) -> None:
        """Every node refreshed (cluster), every registration unregistered once, FLUSHALL on
        every primary, and no shard listing a registration any more."""
        clients = self.primary_clients(socket_timeout=60)
        try:
            if self.is_cluster:
                _refresh_unrefreshed(clients)
            gears_ops.unregister_all(clients)
            for client in clients:
                client.flushall()
        finally:
            for client in clients:
                client.close()



def _refresh_unrefreshed(clients: list[redis.Redis], timeout: float = 60.0) -> None:
    """RG.REFRESHCLUSTER on each node a test left restarted and unrefreshed, then wait until a
    cluster-wide run works from every node (right after a refresh the real engine's first one
    can still answer 'Execution max idle reached')."""
    stale = [c for c in clients if c.execute_command("RG.INFOCLUSTER") == "no cluster mode"]
    if not stale:
        return
    for client in stale:
        client.execute_command("RG.REFRESHCLUSTER")

    def every_node_runs() -> bool:
        for client in clients:
            try:
                results, _errors = client.execute_command(
                    "RG.PYEXECUTE", "GB('ShardsIDReader').run()")
            except redis.exceptions.ClusterDownError:  # the others have not seen it back yet
                return False
            if len(results) != len(clients):
                return False
        return True

    wait_for(every_node_runs, timeout, "a cluster-wide run from every node after RG.REFRESHCLUSTER")

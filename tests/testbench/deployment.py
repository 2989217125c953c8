"""One object for a test that runs on one node and on the cluster: `deployment` fixture."""

from __future__ import annotations

from typing import Any

import redis

from . import gears_ops
from .cluster import GearsCluster
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

    def reset(self) -> None:
        """Every node refreshed (cluster), every registration unregistered once, FLUSHALL on
        every primary, and no shard listing a registration any more."""
        clients = self.primary_clients(socket_timeout=60)
        try:
            if self.is_cluster:
                for client in clients:  # a test may have left a node restarted, unrefreshed
                    client.execute_command("RG.REFRESHCLUSTER")
            gears_ops.unregister_all(clients)
            for client in clients:
                client.flushall()
        finally:
            for client in clients:
                client.close()


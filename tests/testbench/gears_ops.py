"""Reading and resetting RedisGears 1.2 through its RG.* commands (RESP2 replies), on one node
(`redis.Redis`) or on a cluster (`redis.RedisCluster`: every primary is asked, since
RG.DUMPREGISTRATIONS reports the local shard only)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Union

import redis

# one node, a cluster client, or a plain client per primary
Client = Union[redis.Redis, redis.RedisCluster, Sequence[redis.Redis]]
COUNTERS = ("numTriggered", "numSuccess", "numFailures", "numAborted")


def pairs(flat: list[Any]) -> dict[str, Any]:
    """[k1, v1, k2, v2, ...] -> {k1: v1, ...} (RESP2 maps arrive flat)."""
    return dict(zip(flat[::2], flat[1::2]))


def primaries(client: Client) -> list[redis.Redis]:
    """A plain client per primary: the client itself for one node."""
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    if isinstance(client, redis.Redis):
        return [client]
    return list(client)


def _local_registrations(client: redis.Redis) -> list[dict[str, Any]]:
    out = []
    for flat in client.execute_command("RG.DUMPREGISTRATIONS"):
        reg = pairs(flat)
        reg["RegistrationData"] = pairs(reg.get("RegistrationData") or [])
        try:
            reg["name"] = json.loads(reg.get("desc") or "").get("name")
        except (ValueError, AttributeError):
            reg["name"] = None
        out.append(reg)
    return out


def _merged(per_shard: list[dict[str, Any]]) -> dict[str, Any]:
    """One registration as listed by several shards: counters summed, the first lastError
    and the first status other than OK; each shard's own dict under 'shards'."""
    reg = dict(per_shard[0])
    data = dict(reg["RegistrationData"])
    datas = [r["RegistrationData"] for r in per_shard]
    for counter in COUNTERS:
        if counter in data:
            data[counter] = sum(int(d.get(counter) or 0) for d in datas)
    data["lastError"] = next((d["lastError"] for d in datas if d.get("lastError")), None)
    if "status" in data:
        data["status"] = next((d["status"] for d in datas if d.get("status") != "OK"), "OK")
    reg["RegistrationData"] = data
    reg["shards"] = per_shard
    return reg


def registrations(client: Client) -> list[dict[str, Any]]:
    """RG.DUMPREGISTRATIONS as dicts; RegistrationData as a dict; `name` from a JSON desc.
    On a cluster: one dict per id over every primary (see `_merged`)."""
    if isinstance(client, redis.Redis):
        return _local_registrations(client)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for node in primaries(client):
        for reg in _local_registrations(node):
            reg["node"] = f"{node.get_connection_kwargs().get('host')}:" \
                          f"{node.get_connection_kwargs().get('port')}"
            by_id.setdefault(reg["id"], []).append(reg)
    return [_merged(regs) for regs in by_id.values()]


def registration_named(client: Client, name: str) -> dict[str, Any] | None:
    """The registration whose JSON desc says `name` (rgsync names them '<name>.StreamReader')."""
    return next((r for r in registrations(client) if r["name"] == name), None)


def unregister_all(client: Client, timeout: float = 30.0) -> None:
    """RG.UNREGISTER every registration (once per id, sent to a node that lists it; on a
    cluster that removes it everywhere), until no primary lists one; retried while executions
    are still finishing."""
    deadline = time.monotonic() + timeout
    while True:
        sent: set[str] = set()
        for node in primaries(client):
            for reg_id in [r["id"] for r in _local_registrations(node)]:
                if reg_id in sent:
                    continue
                sent.add(reg_id)
                try:
                    node.execute_command("RG.UNREGISTER", reg_id)
                except redis.ResponseError:
                    if time.monotonic() > deadline:
                        raise
        if not sent:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"registrations still listed after {timeout:.0f}s: {sorted(sent)}")
        time.sleep(0.05)


def reset(client: Client) -> None:
    """No registrations, no keys (FLUSHALL on every primary): where each gears test starts."""
    unregister_all(client)
    for node in primaries(client):
        node.flushall()

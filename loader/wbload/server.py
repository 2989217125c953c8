"""Is this Redis able to run a write-behind recipe? (RedisGears with Python, RedisJSON)."""

from __future__ import annotations

import time

import redis

from .connection import RedisTarget
from .errors import RedisUnreachable, ServerUnsuitable
from .topology import Deployment, gears_cluster_problems, open_deployment


def has_gears(client: redis.Redis) -> bool:
    """True when the server answers RedisGears' Python commands."""
    try:
        client.execute_command("RG.PYSTATS")
    except redis.ResponseError as e:
        if "unknown command" in str(e).lower():
            return False
        raise
    return True


def has_json(client: redis.Redis) -> bool:
    """True when RedisJSON's commands exist."""
    # Read the reply raw: redis-py's COMMAND parser raises TypeError on the nil that Redis
    # returns for an unknown command, i.e. exactly when RedisJSON is missing.
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("COMMAND", "INFO", "JSON.GET")
        info = connection.read_response()
    finally:
        client.connection_pool.release(connection)
    return bool(isinstance(info, (list, tuple)) and info and info[0])


def primary_of(client: redis.Redis) -> str | None:
    """'host:port' of this Redis's primary when it is a replica; None for a primary (or when
    the user may run neither ROLE nor INFO)."""
    try:
        role = client.execute_command("ROLE")
    except redis.ResponseError:  # e.g. NOPERM: an ACL user without @admin
        role = None
    if isinstance(role, (list, tuple)) and role:
        if _text(role[0]) not in ("slave", "replica"):
            return None
        return f"{_text(role[1])}:{_text(role[2])}" if len(role) > 2 else "its primary"
    try:
        info = client.info("replication")
    except redis.ResponseError:
        return None
    if _text(info.get("role")) not in ("slave", "replica"):
        return None
    return f"{_text(info.get('master_host'))}:{_text(info.get('master_port'))}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ready_deployment(target: RedisTarget, wait: float = 0.0, primary: bool = False) -> Deployment:
    """The deployment at `target`, every shard with RedisGears and RedisJSON, waiting up to
    `wait` seconds. Problems of a cluster's Gears (a node not refreshed) are in `.problems`.

    With `primary`, a single node that is a replica is refused: RedisGears on a replica
    answers RG.PYEXECUTE with OK and registers there only, where nothing triggers it and the
    next full sync drops it. (A cluster's shards are its primaries.)
    """
    deadline = time.monotonic() + wait
    deployment = open_deployment(target, wait=wait)
    if primary and not deployment.is_cluster:
        of = primary_of(deployment.entry)
        if of is not None:
            raise ServerUnsuitable(
                f"Redis at {target.display} is a read-only replica of {of}; deploy to its "
                "primary (RedisGears replicates registrations from there)"
            )
    for shard in deployment.shards:
        where = f"{target.display} ({shard.address})" if deployment.is_cluster else target.display
        _wait_for_modules(shard.client, where, deadline)
    deployment.problems.extend(gears_cluster_problems(deployment))
    return deployment


def _wait_for_modules(client: redis.Redis, where: str, deadline: float) -> None:
    while True:
        try:
            missing = _missing_modules(client)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if time.monotonic() >= deadline:
                raise RedisUnreachable(f"lost Redis at {where}: {e}") from None
            missing = ["a connection"]
        if not missing:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if "RedisGears" in missing:
        raise ServerUnsuitable(
            f"Redis at {where} has no RedisGears (RG.PYEXECUTE is an unknown command); "
            "load RedisGears 1.2 with its Python plugin (e.g. --loadmodule redisgears.so "
            "Plugin gears_python.so)"
        )
    raise ServerUnsuitable(
        f"Redis at {where} has no RedisJSON (JSON.GET is an unknown command); "
        "load RedisJSON 2 (--loadmodule rejson.so), the recipes read documents with JSON.GET"
    )


def _missing_modules(client: redis.Redis) -> list[str]:
    missing = []
    if not has_gears(client):
        missing.append("RedisGears")
    if not has_json(client):
        missing.append("RedisJSON")
    return missing

"""Is this Redis able to run a write-behind recipe? (RedisGears with Python, RedisJSON)."""

from __future__ import annotations

import time

import redis

from .connection import RedisTarget, connect
from .errors import RedisUnreachable, ServerUnsuitable


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
    info = client.execute_command("COMMAND", "INFO", "JSON.GET")
    if isinstance(info, dict):  # redis-py parses COMMAND INFO into a dict
        return bool(info.get("json.get") or info.get("JSON.GET"))
    return bool(info and info[0])


def ready_client(target: RedisTarget, wait: float = 0.0) -> redis.Redis:
    """A client to a Redis with RedisGears and RedisJSON, waiting up to `wait` seconds."""
    deadline = time.monotonic() + wait
    client = connect(target, wait=wait)
    while True:
        try:
            missing = _missing_modules(client)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if time.monotonic() >= deadline:
                raise RedisUnreachable(f"lost Redis at {target.display}: {e}") from None
            missing = ["a connection"]
        if not missing:
            return client
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if "RedisGears" in missing:
        raise ServerUnsuitable(
            f"Redis at {target.display} has no RedisGears (RG.PYEXECUTE is an unknown command); "
            "load RedisGears 1.2 with its Python plugin (e.g. --loadmodule redisgears.so "
            "Plugin gears_python.so)"
        )
    raise ServerUnsuitable(
        f"Redis at {target.display} has no RedisJSON (JSON.GET is an unknown command); "
        "load RedisJSON 2 (--loadmodule rejson.so), the recipes read documents with JSON.GET"
    )


def _missing_modules(client: redis.Redis) -> list[str]:
    missing = []
    if not has_gears(client):
        missing.append("RedisGears")
    if not has_json(client):
        missing.append("RedisJSON")
    return missing

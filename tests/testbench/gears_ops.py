"""Reading and resetting a RedisGears 1.2 server through its RG.* commands (RESP2 replies)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis


def pairs(flat: list[Any]) -> dict[str, Any]:
    """[k1, v1, k2, v2, ...] -> {k1: v1, ...} (RESP2 maps arrive flat)."""
    return dict(zip(flat[::2], flat[1::2]))


def registrations(client: redis.Redis) -> list[dict[str, Any]]:
    """RG.DUMPREGISTRATIONS as dicts; RegistrationData as a dict; `name` from a JSON desc."""
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


def registration_named(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """The registration whose JSON desc says `name` (rgsync names them '<name>.StreamReader')."""
    return next((r for r in registrations(client) if r["name"] == name), None)


def unregister_all(client: redis.Redis, timeout: float = 30.0) -> None:
    """RG.UNREGISTER every registration; retried while executions are still finishing."""
    deadline = time.monotonic() + timeout
    while True:
        ids = [r["id"] for r in registrations(client)]
        if not ids:
            return
        for reg_id in ids:
            try:
                client.execute_command("RG.UNREGISTER", reg_id)
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def reset(client: redis.Redis) -> None:
    """No registrations, no keys: the state each gears test starts from."""
    unregister_all(client)
    client.flushall()

"""Remove a write-behind's registrations, keeping any changes still waiting in its stream."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from .errors import NotDeployed
from .registrations import read_registrations, unregister, write_behinds
from .streams import backlog, stream_keys


@dataclass(frozen=True)
class UndeployOutcome:
    name: str
    unregistered: list[str]
    waiting: int
    kept_streams: list[str]


def undeploy(client: redis.Redis, name: str) -> UndeployOutcome:
    """Unregister `name`'s KeysReader first (no new changes), then its StreamReader."""
    current = write_behinds(read_registrations(client)).get(name)
    if current is None:
        raise NotDeployed(f"no write-behind named {name!r} is registered (see `wbload status`)")
    unregistered = []
    for registration in current.registrations:  # KeysReader before StreamReader
        unregister(client, registration)
        unregistered.append(registration.id)
    pattern = current.stream_reader.stream_pattern if current.stream_reader else None
    waiting = backlog(client, pattern)
    kept = stream_keys(client, pattern) if pattern and waiting else []
    return UndeployOutcome(name, unregistered, waiting, kept)

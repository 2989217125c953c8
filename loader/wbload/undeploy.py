"""Remove a write-behind's registrations, keeping any changes still waiting in its stream."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotDeployed
from .registrations import unregister, write_behind
from .streams import backlog_streams
from .topology import Deployment


@dataclass(frozen=True)
class UndeployOutcome:
    name: str
    unregistered: list[str]
    waiting: int
    kept_streams: list[str]


def undeploy(deployment: Deployment, name: str) -> UndeployOutcome:
    """Unregister `name`'s KeysReader first (no new changes), then its StreamReader; count
    what every shard's stream still holds."""
    current = write_behind(deployment, name)
    if current is None:
        raise NotDeployed(f"no write-behind named {name!r} is registered (see `wbload status`)")
    unregistered = []
    for registration in current.registrations:  # KeysReader before StreamReader
        unregister(deployment, registration)
        unregistered.append(registration.id)
    kept = []
    for registration in current.registrations:
        kept += backlog_streams(deployment, registration.stream_pattern)
    return UndeployOutcome(name, unregistered, sum(n for _, _, n in kept),
                           [stream for _, stream, _ in kept])

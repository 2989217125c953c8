"""Remove stored requirements that would install another pymongo over the pin at a restart.

RedisGears keeps every requirement it installed after the registrations that needed it are
gone, and reinstalls them all whenever Redis loads, in an order of its own. It has no command
to forget one; it drops one when the only session listing it is replaced (RG.PYEXECUTE ... ID
<session> UPGRADE). So, for each such requirement no session lists: register a placeholder in
a session of our own that lists it, replace that session by one that lists nothing, and
unregister the placeholder. Then the pin's own stored wheels are imported again
(RG.PYEXPORTREQ, RG.PYIMPORTREQ: no PyPI needed), so the pin is what is installed now and the
last install an AOF replays.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis

from .interpreter import StoredPymongo, restart_risks, running_pymongo
from .registrations import read_registrations, unregister
from .requirements import installed_requirements, pin, requirement_users
from .topology import Deployment, Shard

PLACEHOLDER = "GB('KeysReader').register(prefix='__wbload_prune__:*', mode='async_local')"


@dataclass(frozen=True)
class PruneOutcome:
    """What prune removed, what it had to keep (a session lists it), what it reinstalled."""

    removed: list[StoredPymongo]
    kept: list[StoredPymongo]
    reinstalled: str | None


def prune(deployment: Deployment, pinned_requirement: str,
          check_disk: bool = False) -> PruneOutcome:
    """Remove what could install another pymongo than `pinned_requirement` (`pymongo==X`),
    then install the pin's stored wheels again if something was removed (or, `check_disk`,
    if a shard has another pymongo on disk). Sends no RG.PYEXECUTE when there is nothing to
    do. On a cluster, every shard's store."""
    outcomes = [_prune_shard(deployment, shard, pinned_requirement, check_disk)
                for shard in deployment.shards]
    return PruneOutcome([r for o in outcomes for r in o.removed],
                        [r for o in outcomes for r in o.kept],
                        next((o.reinstalled for o in outcomes if o.reinstalled), None))


def _prune_shard(deployment: Deployment, shard: Shard, pinned_requirement: str,
                 check_disk: bool) -> PruneOutcome:
    client = shard.client
    pinned = pin(pinned_requirement)
    if pinned is None:
        raise ValueError(f"{pinned_requirement!r} is not a pin (package==version)")
    risks = restart_risks(installed_requirements(client), pinned[1], requirement_users(client))
    removed = [risk for risk in risks if not risk.used_by]
    for risk in removed:
        forget(deployment, client, risk.requirement)
    stored = {r.name for r in installed_requirements(client)}
    reinstalled = None
    if pinned_requirement in stored and (removed or check_disk and any(
            s.installed != pinned[1] for s in running_pymongo(deployment.entry))):
        raw = deployment.target.client(decode_responses=False, address=_address(shard))
        try:
            _meta, chunks = raw.execute_command("RG.PYEXPORTREQ", pinned_requirement)
            raw.execute_command("RG.PYIMPORTREQ", *chunks)
        finally:
            raw.close()
        reinstalled = pinned_requirement
    return PruneOutcome(removed, [r for r in risks if r.used_by], reinstalled)


def forget(deployment: Deployment, client: redis.Redis, requirement: str) -> None:
    """Make Gears drop `requirement`, which no session lists, from its store."""
    session = f"wbload-prune-{uuid.uuid4().hex[:12]}"
    try:
        client.execute_command("RG.PYEXECUTE", PLACEHOLDER, "ID", session,
                               "REQUIREMENTS", requirement)
        client.execute_command("RG.PYEXECUTE", PLACEHOLDER, "ID", session, "UPGRADE")
    finally:
        for registration in read_registrations(client):
            if registration.session == session:
                unregister(deployment, registration)


def _address(shard: Shard) -> tuple[str, int] | None:
    host, _, port = shard.address.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None

"""Remove stored requirements that would install another pymongo over the pin at a restart.

RedisGears keeps every requirement it installed after the registrations that needed it are
gone, and reinstalls them all whenever Redis loads, in an order of its own. It has no command
to forget one; it drops one when the only session listing it is replaced (RG.PYEXECUTE ... ID
<session> UPGRADE). So, for each such requirement no session lists: register a placeholder in
a session of our own that lists it, replace that session by one that lists nothing, and
unregister the placeholder. Then the pin's own stored wheels are imported again
(RG.PYEXPORTREQ, RG.PYIMPORTREQ: no PyPI needed), so the pin is what is installed now and the
last install an AOF replays. Last, the AOF is rewritten (or, without AOF, an RDB saved):
replaying the removal from the AOF's tail does not always remove it again (measured on
RedisGears 1.2.13 when the session that had listed it was unregistered just before), while
the rewritten AOF's RDB preamble stores only what is left.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace

import redis

from .errors import RecipeError
from .interpreter import StoredPymongo, restart_risks, running_pymongo
from .registrations import read_registrations, unregister
from .requirements import installed_requirements, pin, requirement_users
from .topology import Deployment, Shard

PLACEHOLDER = "GB('KeysReader').register(prefix='__wbload_prune__:*', mode='async_local')"


@dataclass(frozen=True)
class PruneOutcome:
    """What prune removed, what it had to keep (a session lists it), what it reinstalled,
    and how it made that last across restarts."""

    removed: list[StoredPymongo]
    kept: list[StoredPymongo]
    reinstalled: str | None
    persisted: str | None = None  # "rewrote the AOF" / "saved the RDB"
    persist_error: str | None = None


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
                        next((o.reinstalled for o in outcomes if o.reinstalled), None),
                        next((o.persisted for o in outcomes if o.persisted), None),
                        next((o.persist_error for o in outcomes if o.persist_error), None))


def _prune_shard(deployment: Deployment, shard: Shard, pinned_requirement: str,
                 check_disk: bool) -> PruneOutcome:
    client = shard.client
    pinned = pin(pinned_requirement)
    if pinned is None:
        raise RecipeError(f"{pinned_requirement!r} is not a pin (package==version)")
    risks = restart_risks(installed_requirements(client), pinned[1], requirement_users(client))
    removed = [risk for risk in risks if not risk.used_by]
    for risk in removed:
        forget(deployment, client, risk.requirement)
    stored = {r.name for r in installed_requirements(client)}
    reinstalled = None
    if pinned_requirement in stored and (removed or check_disk and any(
            s.installed != pinned[1] for s in running_pymongo(deployment.entry))):
        raw = deployment.target.client(decode_responses=False, address=shard.node)
        try:
            _meta, chunks = raw.execute_command("RG.PYEXPORTREQ", pinned_requirement)
            raw.execute_command("RG.PYIMPORTREQ", *chunks)
        finally:
            raw.close()
        reinstalled = pinned_requirement
    outcome = PruneOutcome(removed, [r for r in risks if r.used_by], reinstalled)
    if removed:
        try:
            return replace(outcome, persisted=persist(client))
        except redis.RedisError as e:
            return replace(outcome, persist_error=str(e))
    return outcome


def persist(client: redis.Redis, timeout: float = 120.0) -> str:
    """Rewrite the AOF (or, without AOF, save the RDB) and wait for it to finish."""
    aof = int(client.info("persistence").get("aof_enabled", 0)) == 1
    try:
        client.execute_command("BGREWRITEAOF" if aof else "BGSAVE")
    except redis.ResponseError as e:
        if "in progress" not in str(e) and "scheduled" not in str(e):
            raise
    busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled") if aof \
        else ("rdb_bgsave_in_progress",)
    deadline = time.monotonic() + timeout
    while any(int(client.info("persistence").get(k, 0)) for k in busy):
        if time.monotonic() > deadline:
            raise redis.TimeoutError(f"the {'AOF rewrite' if aof else 'RDB save'} did not "
                                     f"finish in {timeout:g}s")
        time.sleep(0.1)
    return "rewrote the AOF" if aof else "saved the RDB"


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


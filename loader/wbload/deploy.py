"""Carry out a deploy plan: push the recipe with RG.PYEXECUTE and confirm what registered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .errors import DeployFailed, RedisUnreachable, Refused
from .gears_errors import recipe_line, traceback_lines
from .handover import replace
from .plan import Action, Plan, plan_deploy
from .registrations import (
    WriteBehind,
    per_shard,
    read_registrations,
    unregister,
    write_behind,
)
from .render import RenderedRecipe
from .requirements import import_on_every_shard, installed_requirements
from .topology import Deployment


@dataclass(frozen=True)
class DeployOutcome:
    """What a deploy did: the plan, and the registrations that now exist."""

    plan: Plan
    registered: WriteBehind | None
    seconds: float
    imported: list[str] = field(default_factory=list)


def plan(deployment: Deployment, rendered: RenderedRecipe, force: bool = False) -> Plan:
    """The plan for `rendered` against what the deployment has registered and installed
    (requirements are each shard's own)."""
    installed = [r for shard in deployment.shards for r in installed_requirements(shard.client)]
    return plan_deploy(rendered, read_registrations(deployment.entry), force=force,
                       installed=installed)


def eviction_warning(deployment: Deployment) -> str | None:
    """A warning when Redis (any shard) may evict any key, the write-behind's streams
    included."""
    for shard in deployment.shards:
        try:
            reply = shard.client.config_get("maxmemory-policy") or {}
        except redis.ResponseError:  # CONFIG renamed or denied by an ACL: nothing to say
            continue
        policy = str(reply.get("maxmemory-policy", ""))
        if policy.startswith("allkeys-"):
            where = f" on {shard.address}" if deployment.is_cluster else ""
            return (f"warning: Redis' maxmemory-policy is {policy}{where}: under memory "
                    "pressure it can evict a write-behind stream with the changes waiting in "
                    "it; use noeviction or a volatile-* policy")
    return None


def pyexecute_args(rendered: RenderedRecipe) -> list[str]:
    """The arguments of the RG.PYEXECUTE call that deploys `rendered`."""
    args = ["RG.PYEXECUTE", rendered.text]
    if rendered.requirements:
        args += ["REQUIREMENTS", *rendered.requirements]
    return args


def apply(deployment: Deployment, deploy_plan: Plan, secret: tuple[str, str] | None = None,
          requirements_from: Path | None = None) -> DeployOutcome:
    """Execute `deploy_plan`; raise Refused/DeployFailed, leaving nothing half-registered.

    Only a plan that sends the recipe imports `requirements_from` (on every shard) and stores
    `secret` (key, Mongo URL); the secret's old value is put back if the recipe does not
    register.
    """
    started = time.monotonic()
    if deploy_plan.action is Action.REFUSE:
        raise Refused(deploy_plan.reason)
    if not deploy_plan.sends_recipe:
        return DeployOutcome(deploy_plan, deploy_plan.current, 0.0)
    deployment.require_gears_ready()
    imported = import_on_every_shard(deployment, requirements_from) if requirements_from else []
    previous = store_secret(deployment, *secret) if secret else []
    try:
        if deploy_plan.action is Action.REPLACE and deploy_plan.current is not None:
            registered = replace(deployment, deploy_plan,
                                 lambda: _push(deployment, deploy_plan))
        else:
            registered = _push(deployment, deploy_plan)
    except BaseException:
        for client, key, value in previous:
            _restore(client, key, value)
        raise
    return DeployOutcome(deploy_plan, registered, time.monotonic() - started, imported)


def store_secret(deployment: Deployment, key: str,
                 url: str) -> list[tuple[redis.Redis, str, object]]:
    """Store the Mongo URL where the sink reads it: `key` itself, and on a cluster a copy per
    shard (`key{<hashtag>}`), since recipe code can read only its own shard's keys. Returns
    what each key held before."""
    places = [(deployment.keyed(key), key)]
    if deployment.is_cluster:
        places += [(shard.client, shard.tagged(key)) for shard in deployment.shards]
    previous: list[tuple[redis.Redis, str, object]] = [
        (client, name, client.get(name)) for client, name in places]
    for client, name in places:
        client.set(name, url)
    return previous


def _restore(client: redis.Redis, key: str, value: object) -> None:
    if value is None:
        client.delete(key)
    else:
        client.set(key, value)  # type: ignore[arg-type]


def _push(deployment: Deployment, deploy_plan: Plan) -> WriteBehind:
    """RG.PYEXECUTE the recipe; the write-behind it registered (on every shard), or raise."""
    rendered = deploy_plan.rendered
    for registration in deploy_plan.unregister_first:
        unregister(deployment, registration)
    try:
        deployment.entry.execute_command(*pyexecute_args(rendered))
    except redis.ResponseError as e:
        _remove_half_registered(deployment, rendered)
        raise _explain(rendered, str(e)) from None
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise RedisUnreachable(
            f"lost Redis while it ran {rendered.name} ({e}); "
            "run `wbload status` to see what is registered, then deploy again"
        ) from None
    registered = write_behind(deployment, rendered.name)
    if registered is None or not registered.complete or registered.version != rendered.version:
        _remove_half_registered(deployment, rendered)
        raise DeployFailed(
            f"{rendered.name} {rendered.version}: RG.PYEXECUTE answered OK but the recipe did "
            "not register its readers (a KeysReader, and a StreamReader for write-behind); "
            "check that it calls JSONWriteBehind or JSONWriteThrough with NAME and VERSION"
        )
    missing = [shard.address for shard, wbs in per_shard(deployment)
               if not _has(wbs.get(rendered.name), registered)]
    if missing:
        raise DeployFailed(
            f"{rendered.name} {rendered.version}: registered, but shard(s) "
            f"{', '.join(missing)} do not list the new readers; run `wbload status`, "
            "`wbload refresh` if it names an unrefreshed node, then deploy again"
        )
    return registered


def _has(shard_view: WriteBehind | None, registered: WriteBehind) -> bool:
    ids = {r.id for r in shard_view.current} if shard_view else set()
    return {r.id for r in registered.current} <= ids


def _remove_half_registered(deployment: Deployment, rendered: RenderedRecipe) -> None:
    """Unregister what a failed run of this version managed to register."""
    current = write_behind(deployment, rendered.name)
    if current is None or current.complete:
        return
    for registration in current.current:
        if registration.version == rendered.version:
            unregister(deployment, registration)


def _explain(rendered: RenderedRecipe, reply: str) -> Exception:
    """One line saying why Redis refused the recipe, and what to do."""
    what = f"{rendered.name} {rendered.version}"
    reply = rendered.redact(reply)
    if "Could not satisfy requirements" in reply:
        return DeployFailed(
            f"{what}: Redis could not install the requirements "
            f"({' '.join(rendered.requirements)}); check their names and versions and that "
            "the Redis host can reach PyPI (the Redis log has pip's output)"
        )
    if "greater or equals current version" in reply:
        return Refused(
            f"{what}: rgsync found an equal or newer version registered "
            "(deployed meanwhile?); run `wbload status`, bump VERSION or use --force"
        )
    if reply.startswith("Error type: <class 'SyntaxError'>"):
        return DeployFailed(f"{what}: Gears' Python could not compile the recipe: {reply}")
    lines = traceback_lines(reply)
    if lines:
        line = recipe_line(lines)
        where = f" at line {line} of the rendered recipe (see `wbload render`)" if line else ""
        return DeployFailed(f"{what}: the recipe raised {lines[-1].strip()}{where}")
    return DeployFailed(f"{what}: Redis refused the recipe: {reply.splitlines()[0]}")

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
from .registrations import WriteBehind, read_registrations, unregister, write_behinds
from .render import RenderedRecipe
from .requirements import import_requirements, installed_requirements


@dataclass(frozen=True)
class DeployOutcome:
    """What a deploy did: the plan, and the registrations that now exist."""

    plan: Plan
    registered: WriteBehind | None
    seconds: float
    imported: list[str] = field(default_factory=list)


def plan(client: redis.Redis, rendered: RenderedRecipe, force: bool = False) -> Plan:
    """The plan for `rendered` against what `client`'s server has registered and installed."""
    return plan_deploy(rendered, read_registrations(client), force=force,
                       installed=installed_requirements(client))


def eviction_warning(client: redis.Redis) -> str | None:
    """A warning when Redis may evict any key, the write-behind's streams included."""
    try:
        policy = str((client.config_get("maxmemory-policy") or {}).get("maxmemory-policy", ""))
    except redis.ResponseError:  # CONFIG renamed or denied by an ACL: nothing to say
        return None
    if not policy.startswith("allkeys-"):
        return None
    return (f"warning: Redis' maxmemory-policy is {policy}: under memory pressure it can evict "
            "a write-behind stream with the changes waiting in it; use noeviction or a "
            "volatile-* policy")


def pyexecute_args(rendered: RenderedRecipe) -> list[str]:
    """The arguments of the RG.PYEXECUTE call that deploys `rendered`."""
    args = ["RG.PYEXECUTE", rendered.text]
    if rendered.requirements:
        args += ["REQUIREMENTS", *rendered.requirements]
    return args


def apply(client: redis.Redis, deploy_plan: Plan, secret: tuple[str, str] | None = None,
          requirements_from: Path | None = None) -> DeployOutcome:
    """Execute `deploy_plan`; raise Refused/DeployFailed, leaving nothing half-registered.

    Only a plan that sends the recipe imports `requirements_from` and stores `secret` (key,
    Mongo URL); the secret's old value is put back if the recipe does not register.
    """
    started = time.monotonic()
    if deploy_plan.action is Action.REFUSE:
        raise Refused(deploy_plan.reason)
    if not deploy_plan.sends_recipe:
        return DeployOutcome(deploy_plan, deploy_plan.current, 0.0)
    imported = import_requirements(client, requirements_from) if requirements_from else []
    previous_secret = client.get(secret[0]) if secret else None
    if secret:
        client.set(*secret)
    try:
        if deploy_plan.action is Action.REPLACE and deploy_plan.current is not None:
            registered = replace(client, deploy_plan, lambda: _push(client, deploy_plan))
        else:
            registered = _push(client, deploy_plan)
    except BaseException:
        if secret:
            _restore(client, secret[0], previous_secret)
        raise
    return DeployOutcome(deploy_plan, registered, time.monotonic() - started, imported)


def _restore(client: redis.Redis, key: str, value: object) -> None:
    if value is None:
        client.delete(key)
    else:
        client.set(key, value)  # type: ignore[arg-type]


def _push(client: redis.Redis, deploy_plan: Plan) -> WriteBehind:
    """RG.PYEXECUTE the recipe; the write-behind it registered, or raise."""
    rendered = deploy_plan.rendered
    for registration in deploy_plan.unregister_first:
        unregister(client, registration)
    try:
        client.execute_command(*pyexecute_args(rendered))
    except redis.ResponseError as e:
        _remove_half_registered(client, rendered)
        raise _explain(rendered, str(e)) from None
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise RedisUnreachable(
            f"lost Redis while it ran {rendered.name} ({e}); "
            "run `wbload status` to see what is registered, then deploy again"
        ) from None
    registered = write_behinds(read_registrations(client)).get(rendered.name)
    if registered is None or not registered.complete or registered.version != rendered.version:
        _remove_half_registered(client, rendered)
        raise DeployFailed(
            f"{rendered.name} {rendered.version}: RG.PYEXECUTE answered OK but the recipe did "
            "not register its readers (a KeysReader, and a StreamReader for write-behind); "
            "check that it calls JSONWriteBehind or JSONWriteThrough with NAME and VERSION"
        )
    return registered


def _remove_half_registered(client: redis.Redis, rendered: RenderedRecipe) -> None:
    """Unregister what a failed run of this version managed to register."""
    current = write_behinds(read_registrations(client)).get(rendered.name)
    if current is None or current.complete:
        return
    for registration in current.current:
        if registration.version == rendered.version:
            unregister(client, registration)


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

"""Decide what `wbload deploy` must do, from what is registered and what the recipe says."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .registrations import Registration, WriteBehind, write_behinds
from .render import RenderedRecipe
from .requirements import InstalledRequirement, version_changes
from .versions import version_key


class Action(str, enum.Enum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    UP_TO_DATE = "up to date"
    REFUSE = "refuse"
    REPLACE = "replace"  # --force, or repairing a half-registered pair


@dataclass(frozen=True)
class Plan:
    """What deploy will do for one recipe, and why."""

    action: Action
    rendered: RenderedRecipe
    current: WriteBehind | None
    reason: str
    unregister_first: list[Registration] = field(default_factory=list)

    @property
    def sends_recipe(self) -> bool:
        return self.action in (Action.INSTALL, Action.UPGRADE, Action.REPLACE)


def plan_deploy(
    rendered: RenderedRecipe,
    registrations: list[Registration],
    force: bool = False,
    installed: Sequence[InstalledRequirement] = (),
) -> Plan:
    """The plan for deploying `rendered` on a server with `registrations` and `installed`."""
    plan = _plan_versions(rendered, registrations, force)
    changes = version_changes(rendered.requirements, list(installed)) if plan.sends_recipe else []
    if changes:
        package, old, new = changes[0]
        return Plan(
            Action.REFUSE, rendered, plan.current,
            f"REQUIREMENTS change {package} {old} -> {new}, and a running RedisGears cannot "
            "swap a loaded C extension: `wbload undeploy` it, `wbload requirements prune` "
            "this recipe, restart Redis, deploy, then `wbload resync` the old stream (README: "
            "changing a requirement)",
        )
    return plan


def _plan_versions(
    rendered: RenderedRecipe, registrations: list[Registration], force: bool
) -> Plan:
    name, version = rendered.name, rendered.version
    clash = _name_clash(name, registrations)
    if clash is not None:
        return Plan(
            Action.REFUSE, rendered, None,
            f"registration {clash.name!r} contains the name {name!r}, and rgsync would "
            "unregister it as an old version; give this recipe another NAME",
        )
    current = write_behinds(registrations).get(name)
    if current is None:
        return Plan(Action.INSTALL, rendered, None, f"{name} is not registered")
    registered = current.version
    if not current.complete or registered is None and len(current.versions) > 1:
        return Plan(
            Action.REPLACE, rendered, current,
            f"{name} is half registered ({_describe(current)}); replacing it",
            unregister_first=current.current,
        )
    order = (version_key(version) > version_key(registered)) - (
        version_key(version) < version_key(registered)
    )
    if order == 0:
        if force:
            return Plan(Action.REPLACE, rendered, current, f"--force: re-registering {version}",
                        unregister_first=current.current)
        return Plan(Action.UP_TO_DATE, rendered, current, f"{name} {version} is registered")
    if order > 0:
        return Plan(Action.UPGRADE, rendered, current, f"{registered} -> {version}")
    if force:
        return Plan(Action.REPLACE, rendered, current,
                    f"--force: replacing {registered} with older {version}",
                    unregister_first=current.current)
    return Plan(
        Action.REFUSE, rendered, current,
        f"{name} {registered} is registered, newer than this recipe's {version}; "
        "bump VERSION, or pass --force to replace it",
    )


def _name_clash(name: str, registrations: list[Registration]) -> Registration | None:
    for registration in registrations:
        clashes = name in (registration.name or "")
        if clashes and registration.write_behind_name != name:
            return registration
    return None


def _describe(current: WriteBehind) -> str:
    parts = [f"{r.reader} {r.version}" for r in current.registrations]
    return ", ".join(parts) or "nothing"

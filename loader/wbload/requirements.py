"""The Python requirements a RedisGears server has installed (RG.PYDUMPREQS)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import redis

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*$")


@dataclass(frozen=True)
class InstalledRequirement:
    """One requirement as Gears installed it: the name it was asked for and its wheels."""

    name: str
    wheels: tuple[str, ...]


def installed_requirements(client: redis.Redis) -> list[InstalledRequirement]:
    """Every requirement the server has installed."""
    reply = client.execute_command("RG.PYDUMPREQS") or []
    result = []
    for entry in reply:
        fields = dict(zip(entry[::2], entry[1::2])) if isinstance(entry, list) else dict(entry)
        result.append(InstalledRequirement(str(fields.get("Name", "")),
                                           tuple(str(w) for w in fields.get("Wheels") or [])))
    return result


def pin(requirement: str) -> tuple[str, str] | None:
    """`('pymongo', '4.7.3')` for `pymongo==4.7.3`; None for an unpinned requirement."""
    match = _PIN.match(requirement)
    return (normalise(match.group(1)), match.group(2)) if match else None


def normalise(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def version_changes(
    wanted: list[str], installed: list[InstalledRequirement]
) -> list[tuple[str, str, str]]:
    """(package, installed version, wanted version) for each pin that would change a package
    the server already pinned: a running Gears cannot swap a loaded C extension."""
    pinned = {p[0]: p[1] for p in (pin(r.name) for r in installed) if p}
    changes = []
    for requirement in wanted:
        wanted_pin = pin(requirement)
        if wanted_pin and wanted_pin[0] in pinned and pinned[wanted_pin[0]] != wanted_pin[1]:
            changes.append((wanted_pin[0], pinned[wanted_pin[0]], wanted_pin[1]))
    return changes

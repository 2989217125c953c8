"""Which pymongo RedisGears' Python runs, next to the pin of what is deployed.

Gears keeps every requirement it ever installed (RG.PYDUMPREQS) after its registrations are
gone, and when Redis loads it reinstalls each one from its own wheels, in an order of its own:
a stored requirement that carries another pymongo (rgsync's carries 4.1.1) can end up
installed over the recipe's pin. Nothing fails at that moment; the StreamReader fails later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import redis

from .gears_errors import one_line
from .requirements import (
    InstalledRequirement,
    installed_requirements,
    pin,
    requirement_users,
)
from .topology import Deployment

PACKAGE = "pymongo"

# One record per shard; imports nothing new: an already imported pymongo is what runs,
# otherwise the one on disk is what the next import gets (importing it here would load its
# C extension, which a later deploy with another pin could not swap).
PROBE = """
import glob as _glob
import json as _json
import os as _os
import sys as _sys


def _wbload_pymongo(shard):
    module = _sys.modules.get('pymongo')
    loaded = getattr(module, 'version', None) if module is not None else None
    installed = []
    for folder in _sys.path:
        for info in _glob.glob(_os.path.join(folder or '.', 'pymongo-*.dist-info')):
            installed.append(_os.path.basename(info)[len('pymongo-'):-len('.dist-info')])
    return _json.dumps({'shard': shard, 'loaded': loaded,
                        'installed': installed[0] if installed else None})


GB('ShardsIDReader').map(_wbload_pymongo).run()
"""

_PYMONGO_WHEEL = re.compile(r"^pymongo-([^-]+)-.*\.whl$")


@dataclass(frozen=True)
class ShardPymongo:
    """The pymongo one shard's Gears Python runs."""

    shard: str
    loaded: str | None  # imported in the interpreter (None: not yet)
    installed: str | None  # on disk: what the next import gets

    @property
    def running(self) -> str | None:
        return self.loaded or self.installed


def running_pymongo(client: redis.Redis) -> list[ShardPymongo]:
    """Every shard's pymongo (one RG.PYEXECUTE of a batch run; registers nothing)."""
    reply = client.execute_command("RG.PYEXECUTE", PROBE)
    results, errors = (reply[0], reply[1]) if isinstance(reply, list) and len(reply) == 2 \
        else ([], [])
    if errors:
        raise redis.ResponseError(f"RedisGears could not report its pymongo: {errors[0]}")
    shards = []
    for result in results:
        found = json.loads(result.decode() if isinstance(result, bytes) else str(result))
        shards.append(ShardPymongo(str(found["shard"]), found["loaded"], found["installed"]))
    return sorted(shards, key=lambda s: s.shard)


def pin_requirement(requirements: Iterable[str]) -> str | None:
    """The requirement that pins pymongo (`pymongo==4.7.3`; the last one wins), if any."""
    found = None
    for requirement in requirements:
        pinned = pin(requirement)
        if pinned and pinned[0] == PACKAGE:
            found = requirement
    return found


def pinned_pymongo(requirements: Iterable[str]) -> str | None:
    """The pymongo version `requirements` pin, if any."""
    requirement = pin_requirement(requirements)
    pinned = pin(requirement) if requirement else None
    return pinned[1] if pinned else None


def pymongo_carried(requirement: InstalledRequirement) -> str | None:
    """The pymongo version among a stored requirement's wheels, if any."""
    for wheel in requirement.wheels:
        match = _PYMONGO_WHEEL.match(wheel)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class StoredPymongo:
    """A requirement Gears keeps whose wheels hold another pymongo than a pin."""

    requirement: str
    pymongo: str
    used_by: tuple[str, ...] = ()  # sessions that list it: it cannot be removed meanwhile


def restart_risks(
    installed: Sequence[InstalledRequirement], pinned: str,
    users: dict[str, list[str]] | None = None,
) -> list[StoredPymongo]:
    """Each requirement Gears keeps whose wheels hold another pymongo than `pinned`: when
    Redis loads, Gears may install that one over the pin."""
    risks = []
    for requirement in installed:
        carried = pymongo_carried(requirement)
        if carried is not None and carried != pinned:
            used_by = tuple((users or {}).get(requirement.name, ()))
            risks.append(StoredPymongo(requirement.name, carried, used_by))
    return risks


def fix_for(risks: Sequence[StoredPymongo]) -> str:
    """What to do, in one clause."""
    used = next((r for r in risks if r.used_by), None)
    if used is not None:
        return (f"`wbload undeploy` what lists {used.requirement} in its REQUIREMENTS, run "
                f"`wbload requirements prune`, restart Redis, deploy a recipe without it "
                f"(README: what a restart keeps)")
    return FIX


def mismatch_message(
    name: str, pinned: str, shard: ShardPymongo, risks: Sequence[StoredPymongo]
) -> str:
    """One line: what Gears runs instead of the pin, why, and what to do."""
    where = f" on shard {shard.shard}" if shard.shard not in ("", "1") else ""
    running = f"pymongo {shard.running}" if shard.running else "no pymongo at all"
    cause = ""
    if risks:
        cause = (f", installed when Redis loaded the stored requirement {risks[0].requirement} "
                 f"(it carries pymongo {risks[0].pymongo})")
    return (f"{name} pins pymongo {pinned} but Gears' Python runs {running}{where}{cause}; "
            f"{fix_for(risks)}")


FIX = ("run `wbload requirements prune`, then restart Redis (README: requirements after a "
       "restart)")


@dataclass(frozen=True)
class PinCheck:
    """Each shard's pymongo; an error per pin it is not, a warning per restart risk."""

    shards: list[ShardPymongo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_pins(deployment: Deployment, pins: dict[str, str]) -> PinCheck:
    """Compare what each shard runs with `pins` (write-behind name -> pymongo version)."""
    if not pins:
        return PinCheck()
    try:
        shards = running_pymongo(deployment.entry)
        installed = [r for shard in deployment.shards
                     for r in installed_requirements(shard.client)]
        users: dict[str, list[str]] = {}
        for shard in deployment.shards:
            for name, sessions in requirement_users(shard.client).items():
                users.setdefault(name, []).extend(sessions)
    except redis.ResponseError as e:
        return PinCheck(warnings=[
            f"could not ask RedisGears which pymongo it runs: {one_line(str(e))}"])
    check = PinCheck(shards)
    for name, pinned in pins.items():
        risks = restart_risks(installed, pinned, users)
        wrong = [shard for shard in shards if shard.running != pinned]
        if wrong:
            check.errors.append(mismatch_message(name, pinned, wrong[0], risks))
            continue
        check.warnings.extend(
            f"RedisGears keeps the requirement {risk.requirement}, which carries pymongo "
            f"{risk.pymongo}: a Redis restart may install it over {name}'s pin {pinned}; "
            f"{fix_for([risk])}" for risk in risks)
    return check

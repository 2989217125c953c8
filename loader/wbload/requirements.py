"""The Python requirements a RedisGears server has installed (RG.PYDUMPREQS)."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import redis
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import DeployFailed, UsageError
from .topology import Deployment


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


def requirement_users(client: redis.Redis) -> dict[str, list[str]]:
    """Requirement name -> the Gears sessions (RG.PYDUMPSESSIONS) that list it."""
    users: dict[str, list[str]] = {}
    for entry in client.execute_command("RG.PYDUMPSESSIONS") or []:
        fields = dict(zip(entry[::2], entry[1::2])) if isinstance(entry, list) else dict(entry)
        for name in fields.get("requirements") or []:
            users.setdefault(str(name), []).append(str(fields.get("ID", "")))
    return users


def parse(requirement: str) -> Requirement | None:
    """`requirement` as pip reads it (extras, markers, any specifier); None if pip could not."""
    try:
        return Requirement(requirement)
    except InvalidRequirement:
        return None


def pin(requirement: str) -> tuple[str, str] | None:
    """`('pymongo', '4.7.3')` for `pymongo==4.7.3` (also `pymongo[srv]==4.7.3; python_version
    >= "3"`, `===`); None unless the requirement names exactly one version."""
    parsed = parse(requirement)
    specifiers = list(parsed.specifier) if parsed else []
    if parsed is None or len(specifiers) != 1:
        return None
    (specifier,) = specifiers
    if specifier.operator not in ("==", "===") or specifier.version.endswith("*"):
        return None
    return canonicalize_name(parsed.name), specifier.version


def version_changes(
    wanted: list[str], installed: list[InstalledRequirement]
) -> list[tuple[str, str, str]]:
    """(package, installed version, wanted version or specifier) for each requirement that
    the version the server pinned does not satisfy: a running Gears cannot swap a loaded C
    extension."""
    pinned = dict(p for p in (pin(r.name) for r in installed) if p)
    changes: list[tuple[str, str, str]] = []
    for requirement in wanted:
        parsed = parse(requirement)
        name = canonicalize_name(parsed.name) if parsed else None
        if parsed is None or name not in pinned or parsed.url:
            continue
        old = pinned[name]
        if not parsed.specifier.contains(old, prereleases=True):
            exact = pin(requirement)
            changes.append((name, old, exact[1] if exact else str(parsed.specifier)))
    return changes


# Offline requirements, in gears-cli's format: one zip per requirement with MetaData.json
# (RG.PYEXPORTREQ's metadata) and Data.bin (its serialised wheels), plus requirements.txt
# with their order: Gears force-reinstalls each on import, so the last one wins.
META_DATA_FILE = "MetaData.json"
DATA_FILE = "Data.bin"
ORDER_FILE = "requirements.txt"
IMPORT_CHUNK = 10 * 1024 * 1024


def install_requirements(client: redis.Redis, requirements: list[str]) -> None:
    """Have the server pip-install `requirements`, registering nothing.

    Gears forgets the requirements of code that neither runs nor registers, so this runs
    the cheapest batch there is (one record per shard) to keep them exportable.
    """
    if requirements:
        client.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').run()",
                               "REQUIREMENTS", *requirements)


def export_requirement(raw: redis.Redis, requirement: str, directory: Path) -> Path:
    """Save an installed requirement as a gears-cli zip in `directory`; returns its path.

    `raw` must return bytes (decode_responses=False): the wheels are binary.
    """
    try:
        meta_reply, chunks = raw.execute_command("RG.PYEXPORTREQ", requirement)
    except redis.ResponseError as e:
        raise UsageError(f"cannot export requirement {requirement}: {e}") from None
    meta = {_str(k): _plain(v) for k, v in zip(meta_reply[::2], meta_reply[1::2])}
    name = "redisgears-requirement-v{}-{}-{}.zip".format(
        meta["GearReqVersion"], os.path.basename(str(meta["Name"])), meta["CompiledOs"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(META_DATA_FILE, json.dumps(meta, indent=4, sort_keys=True))
        archive.writestr(DATA_FILE, b"".join(chunks))
    return path


def write_order(directory: Path, requirements: list[str]) -> None:
    """Record the order requirements must be imported in (the recipe's)."""
    (directory / ORDER_FILE).write_text("".join(f"{r}\n" for r in requirements))


def import_requirements(client: redis.Redis, directory: Path) -> list[str]:
    """Send the requirement zips in `directory` to the server, in the recipe's order."""
    archives = {}
    for path in sorted(directory.glob("*.zip")):
        try:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(DATA_FILE)
                name = str(json.loads(archive.read(META_DATA_FILE)).get("Name", path.name))
        except (zipfile.BadZipFile, KeyError, ValueError) as e:
            raise UsageError(f"{path} is not a requirement zip: {e}") from None
        archives[name] = (path, data)
    if not archives:
        raise UsageError(f"no requirement zips in {directory} (make them with "
                         "`wbload requirements export`)")
    order_file = directory / ORDER_FILE
    if not order_file.is_file():
        raise UsageError(f"{order_file} is missing: it gives the order the requirements must "
                         "be installed in (`wbload requirements export` writes it)")
    order = [line.strip() for line in order_file.read_text().splitlines() if line.strip()]
    missing = [name for name in order if name not in archives]
    if missing:
        raise UsageError(f"{directory} has no zip for requirement {missing[0]}")
    imported = []
    for name in order:
        path, data = archives[name]
        chunks = [data[i : i + IMPORT_CHUNK] for i in range(0, len(data), IMPORT_CHUNK)]
        try:
            client.execute_command("RG.PYIMPORTREQ", *chunks)
        except redis.ResponseError as e:
            raise DeployFailed(f"Redis refused requirement {name} from {path}: {e}") from None
        imported.append(name)
    return imported


def import_on_every_shard(deployment: Deployment, directory: Path) -> list[str]:
    """`import_requirements` on every shard (Gears keeps requirements per shard)."""
    imported: list[str] = []
    for shard in deployment.shards:
        imported = import_requirements(shard.client, directory)
    return imported


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: object) -> object:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _str(value) if isinstance(value, bytes) else value

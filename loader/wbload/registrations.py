"""What RedisGears has registered, read from `RG.DUMPREGISTRATIONS` (RESP2 or RESP3)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import redis

from .topology import Deployment, Shard
from .versions import version_key

# A requirement in the session description (PD) RG.DUMPREGISTRATIONS shows with each one.
_PD_REQUIREMENT = re.compile(r"\{'name':'([^']*)', 'basePath':")
_PD_SESSION = re.compile(r"'sessionName':'([^']*)'")

KEYS_READER = "KeysReader"
STREAM_READER = "StreamReader"


@dataclass(frozen=True)
class Registration:
    """One Gears registration, with the name/version rgsync writes into its desc."""

    id: str
    reader: str
    name: str | None
    version: str | None
    mode: str
    triggered: int = 0
    success: int = 0
    failures: int = 0
    aborted: int = 0
    last_error: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    desc: dict[str, Any] = field(default_factory=dict)
    requirements: tuple[str, ...] = ()  # of the session that registered it (its REQUIREMENTS)
    session: str | None = None
    estimated_lag_ms: int = 0  # Gears' lastEstimatedLagMS: how old its last batch's changes were

    @property
    def write_behind_name(self) -> str | None:
        """`Movies` for a registration named `Movies.KeysReader` or `Movies.StreamReader`."""
        for suffix in (f".{KEYS_READER}", f".{STREAM_READER}"):
            if self.name and self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return None

    @property
    def key_pattern(self) -> str | None:
        return _text(self.args.get("regex"))

    @property
    def stream_pattern(self) -> str | None:
        return _text(self.args.get("stream"))

    @property
    def dead_letter_stream(self) -> str | None:
        """Where the recipe's sink puts changes Mongo rejected (our recipes say so in desc)."""
        return _text(self.desc.get("deadLetter"))


@dataclass(frozen=True)
class WriteBehind:
    """An rgsync write-behind: its KeysReader and StreamReader, and an older version's readers
    while they are retired (see recipes/common/registrations.py)."""

    name: str
    keys_reader: Registration | None
    stream_reader: Registration | None
    draining: tuple[Registration, ...] = ()

    @property
    def current(self) -> list[Registration]:
        """The current version's readers (KeysReader first)."""
        return [r for r in (self.keys_reader, self.stream_reader) if r is not None]

    @property
    def registrations(self) -> list[Registration]:
        """Every registration of the name, draining ones last."""
        return self.current + list(self.draining)

    @property
    def versions(self) -> set[str | None]:
        return {r.version for r in self.current}

    @property
    def version(self) -> str | None:
        """The version both current readers agree on (None if they differ or have none)."""
        versions = self.versions
        return versions.pop() if len(versions) == 1 else None

    @property
    def write_through(self) -> bool:
        """A write-through has a KeysReader only (recipes/common/json_write_through.py)."""
        return self.keys_reader is not None and self.keys_reader.desc.get("kind") == (
            "write-through")

    @property
    def complete(self) -> bool:
        if self.write_through:
            return True
        return self.keys_reader is not None and self.stream_reader is not None

    @property
    def key_prefix(self) -> str | None:
        pattern = self.keys_reader.key_pattern if self.keys_reader else None
        return pattern[:-2] if pattern and pattern.endswith(":*") else pattern


def read_registrations(client: redis.Redis) -> list[Registration]:
    """Every registration on the server, oldest id first."""
    reply = client.execute_command("RG.DUMPREGISTRATIONS")
    registrations = [_registration(entry) for entry in reply or []]
    return sorted(registrations, key=lambda r: _id_order(r.id))


def write_behind(deployment: Deployment, name: str) -> WriteBehind | None:
    """Write-behind `name` as the node that takes RG.* commands lists it (on a cluster every
    shard lists the same ids; their counters are each shard's own: see `per_shard`)."""
    return write_behinds(read_registrations(deployment.entry)).get(name)


def per_shard(deployment: Deployment) -> list[tuple[Shard, dict[str, WriteBehind]]]:
    """Every shard's write-behinds, with that shard's counters."""
    return [(shard, write_behinds(read_registrations(shard.client)))
            for shard in deployment.shards]


def unregister(deployment: Deployment, registration: Registration) -> None:
    """RG.UNREGISTER it (everywhere, on a cluster); one already gone (retired meanwhile by its
    successor) is fine."""
    try:
        deployment.entry.execute_command("RG.UNREGISTER", registration.id)
    except redis.ResponseError as e:
        if "not registered" not in str(e):
            raise


def write_behinds(registrations: list[Registration]) -> dict[str, WriteBehind]:
    """rgsync write-behinds by name. The newest KeysReader is current, with the StreamReader of
    its version. The name's other registrations belong to older versions being retired: a
    KeysReader until the new one is live, a StreamReader until it has written its stream."""
    grouped: dict[str, list[Registration]] = {}
    for registration in registrations:
        name = registration.write_behind_name
        if name is not None:
            grouped.setdefault(name, []).append(registration)
    result = {}
    for name, members in sorted(grouped.items()):
        keys = [r for r in members if r.reader == KEYS_READER]
        streams = [r for r in members if r.reader == STREAM_READER]
        keys_reader = max(keys, key=lambda r: version_key(r.version), default=None)
        version = keys_reader.version if keys_reader else None
        current = [r for r in streams if keys_reader is None or r.version == version]
        stream_reader = max(current, key=lambda r: version_key(r.version), default=None)
        draining = tuple(r for r in members if r is not keys_reader and r is not stream_reader)
        result[name] = WriteBehind(name, keys_reader, stream_reader, draining)
    return result


def _registration(entry: Any) -> Registration:
    top = _pairs(entry)
    data = _pairs(top.get("RegistrationData") or [])
    desc = _desc(_text(top.get("desc")))
    error = _text(data.get("lastError"))
    pd = _text(top.get("PD")) or ""
    session = _PD_SESSION.search(pd)
    return Registration(
        id=_text(top.get("id")) or "",
        reader=_text(top.get("reader")) or "",
        name=_text(desc.get("name")),
        version=_text(desc.get("version")),
        mode=_text(data.get("mode")) or "",
        triggered=_int(data.get("numTriggered")),
        success=_int(data.get("numSuccess")),
        failures=_int(data.get("numFailures")),
        aborted=_int(data.get("numAborted")),
        last_error=error or None,
        args=_pairs(data.get("args") or []),
        desc=desc,
        requirements=tuple(_PD_REQUIREMENT.findall(pd)),
        session=session.group(1) if session else None,
        estimated_lag_ms=_int(data.get("lastEstimatedLagMS")),
    )


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):  # a RESP3 client may already hand out a map
        return {_text(k) or "": v for k, v in flat.items()}
    items = list(flat)
    return {_text(items[i]) or "": items[i + 1] for i in range(0, len(items) - 1, 2)}


def _desc(text: str | None) -> dict[str, Any]:
    try:
        desc = json.loads(text) if text else {}
    except ValueError:
        return {}
    return desc if isinstance(desc, dict) else {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(float(_text(value) or 0))
    except ValueError:
        return 0


def _id_order(registration_id: str) -> tuple[str, int]:
    head, _, tail = registration_id.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (registration_id, 0)

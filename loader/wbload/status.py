"""Per write-behind health: versions, readers, counters, last error, backlog, dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import redis

from .gears_errors import one_line
from .interpreter import ShardPymongo, check_pins, pinned_pymongo
from .registrations import Registration, WriteBehind, read_registrations, write_behinds
from .streams import backlog, orphan_streams


@dataclass(frozen=True)
class ReaderStatus:
    """One reader of a write-behind, as an operator reads it."""

    id: str
    reader: str
    version: str | None
    mode: str
    triggered: int
    success: int
    failures: int
    aborted: int
    last_error: str | None
    backlog: int | None = None  # StreamReaders only

    @classmethod
    def of(cls, client: redis.Redis, registration: Registration) -> ReaderStatus:
        waiting = (
            backlog(client, registration.stream_pattern)
            if registration.reader == "StreamReader" else None
        )
        return cls(
            id=registration.id,
            reader=registration.reader,
            version=registration.version,
            mode=registration.mode,
            triggered=registration.triggered,
            success=registration.success,
            failures=registration.failures,
            aborted=registration.aborted,
            last_error=one_line(registration.last_error),
            backlog=waiting,
        )


@dataclass(frozen=True)
class WriteBehindStatus:
    """A write-behind: name, version, what it watches and how far behind it is."""

    name: str
    version: str | None
    key_prefix: str | None
    stream: str | None
    backlog: int
    readers: list[ReaderStatus]
    draining: list[ReaderStatus] = field(default_factory=list)
    dead_letter_stream: str | None = None
    dead_letters: int = 0
    complete: bool = True
    requirements: list[str] = field(default_factory=list)  # its session's REQUIREMENTS
    pymongo_pin: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """Everything `wbload status` shows."""

    write_behinds: list[WriteBehindStatus]
    orphan_streams: dict[str, int]  # stream -> changes no registered reader will write
    gears_pymongo: list[ShardPymongo] = field(default_factory=list)  # per shard
    errors: list[str] = field(default_factory=list)  # one line each, with the fix
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        report = asdict(self)
        for shard, entry in zip(self.gears_pymongo, report["gears_pymongo"]):
            entry["running"] = shard.running
        return report


def collect_status(client: redis.Redis) -> StatusReport:
    """The status of every write-behind on the server, of orphaned streams, and of the
    pymongo Gears runs against each write-behind's pin."""
    registrations = read_registrations(client)
    statuses = [status_of(client, wb) for wb in write_behinds(registrations).values()]
    live = [r.stream_pattern for r in registrations if r.stream_pattern]
    report = StatusReport(statuses, orphan_streams(client, live))
    check_pymongo(client, report)
    return report


def check_pymongo(client: redis.Redis, report: StatusReport) -> None:
    """Fill in the pymongo each shard runs, and what is wrong with it."""
    pins = {s.name: s.pymongo_pin for s in report.write_behinds if s.pymongo_pin}
    check = check_pins(client, pins)
    report.gears_pymongo.extend(check.shards)
    report.errors.extend(check.errors)
    report.warnings.extend(check.warnings)


def status_of(client: redis.Redis, wb: WriteBehind) -> WriteBehindStatus:
    readers = [ReaderStatus.of(client, r) for r in wb.current]
    requirements = wb.current[0].requirements if wb.current else ()
    stream_reader = wb.stream_reader
    dead_letter = stream_reader.dead_letter_stream if stream_reader else None
    return WriteBehindStatus(
        name=wb.name,
        version=wb.version,
        key_prefix=wb.key_prefix,
        stream=stream_reader.stream_pattern if stream_reader else None,
        backlog=sum(r.backlog or 0 for r in readers),
        readers=readers,
        draining=[ReaderStatus.of(client, r) for r in wb.draining],
        dead_letter_stream=dead_letter,
        dead_letters=int(client.xlen(dead_letter)) if dead_letter else 0,
        complete=wb.complete,
        requirements=list(requirements),
        pymongo_pin=pinned_pymongo(requirements),
    )

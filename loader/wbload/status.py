"""Per write-behind health: versions, readers, counters, last error, backlog, dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import redis

from .gears_errors import one_line
from .registrations import Registration, WriteBehind, read_registrations, write_behinds
from .streams import backlog, backlog_bytes, orphan_streams

TRIMMED_SUFFIX = ":trimmed"  # the sink counts dead letters trimmed away in <stream>:trimmed


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
    backlog_bytes: int | None = None

    @classmethod
    def of(cls, client: redis.Redis, registration: Registration) -> ReaderStatus:
        streams = registration.reader == "StreamReader"
        waiting = backlog(client, registration.stream_pattern) if streams else None
        size = backlog_bytes(client, registration.stream_pattern) if streams else None
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
            backlog_bytes=size,
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
    dead_letters_trimmed: int = 0  # dropped from the bounded dead-letter stream
    complete: bool = True
    backlog_bytes: int = 0


@dataclass(frozen=True)
class StatusReport:
    """Everything `wbload status` shows."""

    write_behinds: list[WriteBehindStatus]
    orphan_streams: dict[str, int]  # stream -> changes no registered reader will write

    def to_dict(self) -> dict:
        return asdict(self)


def collect_status(client: redis.Redis) -> StatusReport:
    """The status of every rgsync write-behind on the server, and of orphaned streams."""
    registrations = read_registrations(client)
    statuses = [status_of(client, wb) for wb in write_behinds(registrations).values()]
    live = [r.stream_pattern for r in registrations if r.stream_pattern]
    return StatusReport(statuses, orphan_streams(client, live))


def status_of(client: redis.Redis, wb: WriteBehind) -> WriteBehindStatus:
    readers = [ReaderStatus.of(client, r) for r in wb.current]
    stream_reader = wb.stream_reader
    dead_letter = stream_reader.dead_letter_stream if stream_reader else None
    return WriteBehindStatus(
        name=wb.name,
        version=wb.version,
        key_prefix=wb.key_prefix,
        stream=stream_reader.stream_pattern if stream_reader else None,
        backlog=sum(r.backlog or 0 for r in readers),
        backlog_bytes=sum(r.backlog_bytes or 0 for r in readers),
        readers=readers,
        draining=[ReaderStatus.of(client, r) for r in wb.draining],
        dead_letter_stream=dead_letter,
        dead_letters=int(client.xlen(dead_letter)) if dead_letter else 0,
        dead_letters_trimmed=int(client.get(dead_letter + TRIMMED_SUFFIX) or 0)
        if dead_letter else 0,
        complete=wb.complete,
    )

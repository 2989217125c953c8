"""Per write-behind health: versions, readers, counters, last error and backlog."""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass

import redis

from .registrations import Registration, WriteBehind, read_registrations, write_behinds
from .streams import backlog


@dataclass(frozen=True)
class ReaderStatus:
    """One reader of a write-behind, as an operator reads it."""

    id: str
    reader: str
    mode: str
    triggered: int
    success: int
    failures: int
    aborted: int
    last_error: str | None

    @classmethod
    def of(cls, registration: Registration) -> ReaderStatus:
        return cls(
            id=registration.id,
            reader=registration.reader,
            mode=registration.mode,
            triggered=registration.triggered,
            success=registration.success,
            failures=registration.failures,
            aborted=registration.aborted,
            last_error=one_line(registration.last_error),
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

    @property
    def complete(self) -> bool:
        return {r.reader for r in self.readers} == {"KeysReader", "StreamReader"}

    def to_dict(self) -> dict:
        return asdict(self)


def collect_status(client: redis.Redis) -> list[WriteBehindStatus]:
    """The status of every rgsync write-behind registered on the server."""
    return [status_of(client, wb) for wb in write_behinds(read_registrations(client)).values()]


def status_of(client: redis.Redis, wb: WriteBehind) -> WriteBehindStatus:
    stream = wb.stream_reader.stream_pattern if wb.stream_reader else None
    return WriteBehindStatus(
        name=wb.name,
        version=wb.version,
        key_prefix=wb.key_prefix,
        stream=stream,
        backlog=backlog(client, stream),
        readers=[ReaderStatus.of(r) for r in wb.registrations],
    )


def one_line(text: str | None, limit: int = 200) -> str | None:
    """The last meaningful line of an error (Gears keeps whole tracebacks), shortened."""
    if not text:
        return None
    try:
        parsed = ast.literal_eval(text)  # Gears' str() of a list of traceback lines
    except (ValueError, SyntaxError):
        parsed = None
    if isinstance(parsed, list) and parsed:
        text = "".join(str(line) for line in parsed)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[-1] if lines else str(text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."

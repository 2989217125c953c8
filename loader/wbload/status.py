"""Per write-behind health: versions, readers, counters, last error, backlog, dead letters.

On a cluster every figure is a total over the shards (each shard counts only what ran
there), the last error says which shard it came from, and `shards` has each one's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .dead_letters import TRIMMED_SUFFIX, dead_letter_streams
from .gears_errors import one_line
from .interpreter import ShardPymongo, check_pins, pinned_pymongo
from .registrations import Registration, WriteBehind, per_shard
from .streams import backlog, backlog_bytes, oldest_age, orphan_streams
from .topology import Deployment, Shard


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
    estimated_lag_ms: int = 0  # Gears' lastEstimatedLagMS (StreamReaders)
    oldest_age_s: float | None = None  # age of the oldest change waiting; None: none waits

    @classmethod
    def of(cls, shard: Shard, registration: Registration) -> ReaderStatus:
        streams = registration.reader == "StreamReader"
        waiting = backlog(shard, registration.stream_pattern) if streams else None
        size = backlog_bytes(shard, registration.stream_pattern) if streams else None
        age = oldest_age(shard, registration.stream_pattern) if streams and waiting else None
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
            estimated_lag_ms=registration.estimated_lag_ms,
            oldest_age_s=age,
        )


@dataclass(frozen=True)
class ShardStatus:
    """A write-behind on one shard: its readers' counters there, and its own streams."""

    shard: str
    readers: list[ReaderStatus]
    draining: list[ReaderStatus]
    backlog: int
    dead_letters: int
    complete: bool
    backlog_bytes: int = 0
    dead_letters_trimmed: int = 0  # dropped from the bounded dead-letter stream
    oldest_age_s: float | None = None  # the oldest change waiting here, draining ones too


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
    backlog_bytes: int = 0
    complete: bool = True
    shards: list[ShardStatus] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)  # its session's REQUIREMENTS
    pymongo_pin: str | None = None
    oldest_age_s: float | None = None  # the oldest change waiting on any shard (the true lag)


@dataclass(frozen=True)
class StatusReport:
    """Everything `wbload status` shows."""

    topology: str  # "node" or "cluster"
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


def collect_status(deployment: Deployment, pymongo: bool = True,
                   orphans: bool = True) -> StatusReport:
    """The status of every write-behind on every shard, and of orphaned streams.

    For callers that poll (`wbload monitor`, `status --watch`): `pymongo=False` skips asking
    Gears which pymongo it runs (a Python run on every shard), `orphans=False` the search for
    orphaned streams (a SCAN of every shard's keyspace: 10 million keys are thousands of
    round trips)."""
    shards = per_shard(deployment)
    names = sorted({name for _, wbs in shards for name in wbs})
    statuses = [_status_of(deployment, name, shards) for name in names]
    live = sorted({r.stream_pattern for _, wbs in shards for wb in wbs.values()
                   for r in wb.registrations if r.stream_pattern})
    report = StatusReport("cluster" if deployment.is_cluster else "node", statuses,
                          orphan_streams(deployment, live) if orphans else {},
                          errors=list(deployment.problems))
    for status in statuses:
        report.errors.extend(
            f"{status.name} on {s.shard} is missing a reader: deploy again to repair"
            for s in status.shards if not s.complete and deployment.is_cluster)
    if pymongo and not deployment.problems:  # a cluster-wide run would hang on an unrefreshed node
        check_pymongo(deployment, report)
    return report


def check_pymongo(deployment: Deployment, report: StatusReport) -> None:
    """Fill in the pymongo each shard runs, and what is wrong with it."""
    pins = {s.name: s.pymongo_pin for s in report.write_behinds if s.pymongo_pin}
    check = check_pins(deployment, pins)
    report.gears_pymongo.extend(check.shards)
    report.errors.extend(check.errors)
    report.warnings.extend(check.warnings)


def _status_of(deployment: Deployment, name: str,
               shards: list[tuple[Shard, dict[str, WriteBehind]]]) -> WriteBehindStatus:
    rows = []
    reference: WriteBehind | None = None
    for shard, wbs in shards:
        wb = wbs.get(name)
        if wb is None:
            rows.append(ShardStatus(shard.address, [], [], 0, 0, False))
            continue
        reference = reference or wb
        readers = [ReaderStatus.of(shard, r) for r in wb.current]
        draining = [ReaderStatus.of(shard, r) for r in wb.draining]
        dead = dead_letter_streams(deployment, wb, only=shard)
        rows.append(ShardStatus(
            shard=shard.address,
            readers=readers,
            draining=draining,
            backlog=sum(r.backlog or 0 for r in readers),
            dead_letters=sum(int(shard.client.xlen(stream)) for _, stream in dead),
            complete=wb.complete,
            backlog_bytes=sum(r.backlog_bytes or 0 for r in readers),
            dead_letters_trimmed=sum(int(shard.client.get(stream + TRIMMED_SUFFIX) or 0)
                                     for _, stream in dead),
            oldest_age_s=_oldest(readers + draining),
        ))
    assert reference is not None  # `name` came from some shard's registrations
    stream_reader = reference.stream_reader
    requirements = reference.current[0].requirements if reference.current else ()
    return WriteBehindStatus(
        name=name,
        version=reference.version,
        key_prefix=reference.key_prefix,
        stream=stream_reader.stream_pattern if stream_reader else None,
        backlog=sum(row.backlog for row in rows),
        readers=_totals([row.readers for row in rows], [row.shard for row in rows],
                        deployment.is_cluster),
        draining=_totals([row.draining for row in rows], [row.shard for row in rows],
                         deployment.is_cluster),
        dead_letter_stream=stream_reader.dead_letter_stream if stream_reader else None,
        dead_letters=sum(row.dead_letters for row in rows),
        dead_letters_trimmed=sum(row.dead_letters_trimmed for row in rows),
        backlog_bytes=sum(row.backlog_bytes for row in rows),
        complete=all(row.complete for row in rows),
        shards=rows,
        requirements=list(requirements),
        pymongo_pin=pinned_pymongo(requirements),
        oldest_age_s=_oldest(rows),
    )


def _oldest(items: Sequence[ReaderStatus | ShardStatus]) -> float | None:
    ages = [item.oldest_age_s for item in items if item.oldest_age_s is not None]
    return max(ages) if ages else None


def _totals(per_shard_readers: Sequence[list[ReaderStatus]], shard_names: Sequence[str],
            name_shard: bool) -> list[ReaderStatus]:
    """One ReaderStatus per registration id, counters summed over shards; the first shard's
    last error, saying which shard it came from on a cluster."""
    merged: dict[str, ReaderStatus] = {}
    for readers, shard in zip(per_shard_readers, shard_names):
        for r in readers:
            error = f"[{shard}] {r.last_error}" if r.last_error and name_shard else r.last_error
            seen = merged.get(r.id)
            if seen is None:
                merged[r.id] = ReaderStatus(**{**asdict(r), "last_error": error})
                continue
            merged[r.id] = ReaderStatus(
                id=r.id, reader=r.reader, version=r.version, mode=r.mode,
                triggered=seen.triggered + r.triggered, success=seen.success + r.success,
                failures=seen.failures + r.failures, aborted=seen.aborted + r.aborted,
                last_error=seen.last_error or error,
                backlog=None if r.backlog is None else (seen.backlog or 0) + r.backlog,
                backlog_bytes=None if r.backlog_bytes is None
                else (seen.backlog_bytes or 0) + r.backlog_bytes,
                estimated_lag_ms=max(seen.estimated_lag_ms, r.estimated_lag_ms),
                oldest_age_s=_oldest([seen, r]),
            )
    return list(merged.values())

"""Changes Mongo rejected for good, kept by the sink in a dead-letter stream per recipe.

Recipe code can only write keys of the shard it runs on, so each shard keeps its own:
`<stream>{<hashtag>}` (e.g. `wbload:dead-letter:MoviesWriteBehind{06S}`). Versions before
that wrote `<stream>` itself, which is still read where it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import NotDeployed, UsageError
from .registrations import WriteBehind, write_behind
from .resync import resync
from .streams import entries
from .topology import Deployment, Shard

DEFAULT_STREAM = "wbload:dead-letter:{name}"
CHUNK = 1000
TRIMMED_SUFFIX = ":trimmed"  # the sink's count of dead letters trimmed from a stream


@dataclass(frozen=True)
class DeadLetter:
    """One rejected change: which key, what document, why, and when."""

    id: str
    key: str
    operation: str
    document: str
    error: str
    time: str
    stream: str = ""


def dead_letter_streams(deployment: Deployment, wb: WriteBehind | None, name: str = "",
                        only: Shard | None = None) -> list[tuple[Shard, str]]:
    """(shard, stream) of every dead-letter stream of a write-behind that exists, or of
    `name`'s default stream when it is not registered."""
    declared = wb.stream_reader.dead_letter_stream if wb and wb.stream_reader else None
    base = declared or DEFAULT_STREAM.format(name=wb.name if wb else name)
    shards = [only] if only else deployment.shards
    found = [(shard, shard.tagged(base)) for shard in shards]
    legacy = deployment.shard_of(base)
    if legacy in shards:
        found.append((legacy, base))
    return [(shard, stream) for shard, stream in found if shard.client.exists(stream)]


def _streams(deployment: Deployment, name: str) -> list[tuple[Shard, str]]:
    wb = write_behind(deployment, name)
    streams = dead_letter_streams(deployment, wb, name)
    if wb is None and not streams:
        raise NotDeployed(f"no write-behind named {name!r} is registered and it has no "
                          "dead letters (see `wbload status`)")
    return streams


def list_dead_letters(deployment: Deployment, name: str, count: int | None = None,
                      after: str | None = None) -> list[DeadLetter]:
    """The rejected changes of `name`, oldest first (every shard's, by time); at most
    `count`, and only those after entry id `after` (to page through them)."""
    letters = []
    for shard, stream in _streams(deployment, name):
        start = f"({after}" if after else "-"
        for entry_id, fields in entries(shard.client, stream, start, count):
            letters.append(DeadLetter(
                id=entry_id,
                key=fields.get("key", ""),
                operation=fields.get("op", ""),
                document=fields.get("document", ""),
                error=fields.get("error", ""),
                time=fields.get("time", ""),
                stream=stream,
            ))
    letters.sort(key=lambda d: _id_order(d.id))
    return letters[:count] if count else letters


def retry_dead_letters(deployment: Deployment, name: str, ids: Sequence[str] = ()) -> int:
    """Queue the current state of the rejected keys through `name` again (after a fix), and
    drop their dead letters. Returns how many keys were queued."""
    letters = _chosen(deployment, name, ids)
    keys = list(dict.fromkeys(letter.key for letter in letters if letter.key))
    count = resync(deployment, name, keys).queued
    _drop(deployment, letters)
    return count


def purge_dead_letters(deployment: Deployment, name: str, ids: Sequence[str] = ()) -> int:
    """Drop dead letters (all, or those with `ids`); returns how many."""
    letters = _chosen(deployment, name, ids)
    _drop(deployment, letters)
    if not ids:
        for shard, stream in _streams(deployment, name):
            shard.client.delete(stream + TRIMMED_SUFFIX)
    return len(letters)


def _chosen(deployment: Deployment, name: str, ids: Sequence[str]) -> list[DeadLetter]:
    letters = list_dead_letters(deployment, name)
    if not ids:
        return letters
    wanted = set(ids)
    chosen = [letter for letter in letters if letter.id in wanted]
    unknown = sorted(wanted - {letter.id for letter in chosen})
    if unknown:
        raise UsageError(f"no dead letter {unknown[0]} for {name} (see `wbload dlq list {name}`)")
    return chosen


def _drop(deployment: Deployment, letters: list[DeadLetter]) -> None:
    by_stream: dict[str, list[str]] = {}
    for letter in letters:
        by_stream.setdefault(letter.stream, []).append(letter.id)
    for stream, ids in by_stream.items():
        client = deployment.keyed(stream)
        for start in range(0, len(ids), CHUNK):  # one XDEL of a million ids would block Redis
            client.xdel(stream, *ids[start:start + CHUNK])


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() else (0, 0)

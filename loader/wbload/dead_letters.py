"""Changes Mongo rejected for good, kept by the sink in a dead-letter stream per recipe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from .errors import NotDeployed, UsageError
from .registrations import read_registrations, write_behinds
from .resync import resync
from .streams import entries

DEFAULT_STREAM = "wbload:dead-letter:{name}"
TRIMMED_SUFFIX = ":trimmed"  # the sink's count of dead letters trimmed from the stream
DROP_CHUNK = 1000


@dataclass(frozen=True)
class DeadLetter:
    """One rejected change: which key, what document, why, and when."""

    id: str
    key: str
    operation: str
    document: str
    error: str
    time: str


def dead_letter_stream(client: redis.Redis, name: str) -> str:
    """The dead-letter stream of write-behind `name` (as its StreamReader declares it)."""
    wb = write_behinds(read_registrations(client)).get(name)
    declared = wb.stream_reader.dead_letter_stream if wb and wb.stream_reader else None
    if declared:
        return declared
    stream = DEFAULT_STREAM.format(name=name)
    if wb is None and not client.exists(stream):
        raise NotDeployed(f"no write-behind named {name!r} is registered and there is no "
                          f"{stream} (see `wbload status`)")
    return stream


def list_dead_letters(client: redis.Redis, name: str, count: int | None = None,
                      after: str | None = None) -> list[DeadLetter]:
    """The rejected changes of `name`, oldest first; with `after`, those after that id."""
    start = f"({after}" if after else "-"
    return [
        DeadLetter(
            id=entry_id,
            key=fields.get("key", ""),
            operation=fields.get("op", ""),
            document=fields.get("document", ""),
            error=fields.get("error", ""),
            time=fields.get("time", ""),
        )
        for entry_id, fields in entries(client, dead_letter_stream(client, name), start, count)
    ]


def retry_dead_letters(client: redis.Redis, name: str, ids: Sequence[str] = ()) -> int:
    """Queue the current state of the rejected keys through `name` again (after a fix), and
    drop their dead letters. Returns how many keys were queued."""
    letters = _chosen(client, name, ids)
    keys = list(dict.fromkeys(letter.key for letter in letters if letter.key))
    count = resync(client, name, keys)
    _drop(client, name, [letter.id for letter in letters])
    return count


def purge_dead_letters(client: redis.Redis, name: str, ids: Sequence[str] = ()) -> int:
    """Drop dead letters (all, or those with `ids`); returns how many."""
    letters = _chosen(client, name, ids)
    _drop(client, name, [letter.id for letter in letters])
    if not ids:
        client.delete(dead_letter_stream(client, name) + TRIMMED_SUFFIX)
    return len(letters)


def _chosen(client: redis.Redis, name: str, ids: Sequence[str]) -> list[DeadLetter]:
    letters = list_dead_letters(client, name)
    if not ids:
        return letters
    by_id = {letter.id: letter for letter in letters}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UsageError(f"no dead letter {unknown[0]} for {name} (see `wbload dlq list {name}`)")
    return [by_id[i] for i in ids]


def _drop(client: redis.Redis, name: str, ids: list[str]) -> None:
    stream = dead_letter_stream(client, name)
    for start in range(0, len(ids), DROP_CHUNK):
        client.xdel(stream, *ids[start : start + DROP_CHUNK])

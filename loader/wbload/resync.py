"""Send keys' current state through a write-behind again (orphaned streams, stuck upgrades)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

import redis

from .errors import NotDeployed, UsageError
from .registrations import read_registrations, unregister, write_behinds
from .streams import entries

ORIGINAL_KEY_FIELD = "_original_key"

# Rewrite each key as it is, so the write-behind's KeysReader queues its current state; a key
# that is gone is created empty and deleted, so it queues a delete; a key of another type (a
# Redis OM index, a plain string) is left alone and returned. Atomic per call: no app write
# can fall between reading a document and rewriting it.
_TOUCH = """
local skipped = {}
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'ReJSON-RL' then
    redis.call('JSON.SET', key, '$', redis.call('JSON.GET', key))
  elseif kind == 'none' then
    redis.call('JSON.SET', key, '$', '{}')
    redis.call('DEL', key)
  else
    skipped[#skipped + 1] = key
  end
end
return {#KEYS - #skipped, skipped}
"""


def keys_in_stream(client: redis.Redis, stream: str, chunk: int = 1000) -> list[str]:
    """The distinct keys a write-behind stream mentions, in first-seen order."""
    seen: dict[str, None] = {}
    start = "-"
    while True:
        chunk_entries = entries(client, stream, start, chunk)
        for _entry_id, fields in chunk_entries:
            key = fields.get(ORIGINAL_KEY_FIELD)
            if key:
                seen.setdefault(key, None)
        if len(chunk_entries) < chunk:
            return list(seen)
        start = "(" + chunk_entries[-1][0]


def keys_with_prefix(client: redis.Redis, prefix: str) -> Iterator[str]:
    """Every key under `<prefix>:`."""
    yield from client.scan_iter(match=f"{_glob_escape(prefix)}:*", count=1000)


def resync_prefix(client: redis.Redis, name: str) -> str:
    """The key prefix of registered write-behind `name`."""
    wb = write_behinds(read_registrations(client)).get(name)
    if wb is None or wb.keys_reader is None or not wb.key_prefix:
        raise NotDeployed(f"no write-behind named {name!r} is registered (see `wbload status`)")
    return wb.key_prefix


def resync(client: redis.Redis, name: str, keys: Iterable[str], chunk: int = 100,
           skipped: list[str] | None = None) -> int:
    """Queue the current state of `keys` through write-behind `name`; returns how many.

    Keys that are neither JSON documents nor gone are left alone, and added to `skipped`.
    """
    prefix = f"{resync_prefix(client, name)}:"
    touch = client.register_script(_TOUCH)
    total = 0
    batch: list[str] = []

    def send() -> int:
        count, left_alone = touch(keys=batch)
        if skipped is not None:
            skipped.extend(str(key) for key in left_alone)
        return int(count)

    for key in keys:
        if not key.startswith(prefix):
            raise UsageError(f"{key!r} is not under {name}'s key prefix {prefix!r}")
        batch.append(key)
        if len(batch) == chunk:
            total += send()
            batch = []
    if batch:
        total += send()
    return total


def resync_stream(client: redis.Redis, name: str, stream: str) -> int:
    """Resync the keys `stream` mentions through `name`, then delete `stream`.

    For an orphaned stream, or one an older version cannot finish: its reader (if any) is
    unregistered first, so nothing else writes those changes.
    """
    if not client.exists(stream):
        raise UsageError(f"no stream {stream!r}")
    wb = write_behinds(read_registrations(client)).get(name)
    for registration in wb.draining if wb else ():
        if registration.stream_pattern and fnmatchcase(stream, registration.stream_pattern):
            unregister(client, registration)
    if wb and wb.stream_reader and wb.stream_reader.stream_pattern and fnmatchcase(
        stream, wb.stream_reader.stream_pattern
    ):
        raise UsageError(f"{stream} is {name}'s live stream; its reader writes it already")
    count = resync(client, name, keys_in_stream(client, stream))
    client.delete(stream)
    return count


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

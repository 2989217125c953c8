"""Send keys' current state through a write-behind again (orphaned streams, stuck upgrades,
a Mongo restored from a backup)."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .errors import NotDeployed, UsageError
from .registrations import unregister, write_behind
from .streams import changed_keys
from .topology import Deployment, Shard

# Rewrite one key as it is, so the write-behind's KeysReader queues its current state (1). A
# key that is gone is created empty and deleted, so that it queues a delete, only when ARGV[1]
# is '1' (2: left alone). A key that is not a JSON document (Redis OM's index hashes, say) is
# left alone (0). Atomic: no app write can fall between reading the document and rewriting it.
# One key per call: on a cluster a script's keys must share a slot.
_TOUCH = """
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'ReJSON-RL' then
  redis.call('JSON.SET', key, '$', redis.call('JSON.GET', key))
  return 1
elseif kind == 'none' then
  if ARGV[1] ~= '1' then
    return 2
  end
  redis.call('JSON.SET', key, '$', '{}')
  redis.call('DEL', key)
  return 1
end
return 0
"""


@dataclass(frozen=True)
class ResyncOutcome:
    """How many keys were queued again; those skipped (not JSON documents); and how many were
    gone and left alone (nothing says the app deleted them: Mongo keeps them)."""

    queued: int
    skipped: list[str]
    gone: int = 0


def keys_with_prefix(deployment: Deployment, prefix: str) -> Iterator[str]:
    """Every key under `<prefix>:`, shard by shard (one SCAN of each shard's keyspace)."""
    yield from deployment.scan(f"{_glob_escape(prefix)}:*")


def resync_prefix(deployment: Deployment, name: str) -> str:
    """The key prefix of registered write-behind `name`."""
    wb = write_behind(deployment, name)
    if wb is None or wb.keys_reader is None or not wb.key_prefix:
        raise NotDeployed(f"no write-behind named {name!r} is registered (see `wbload status`)")
    return wb.key_prefix


def resync(deployment: Deployment, name: str, keys: Iterable[str],
           deletes: Container[str] = frozenset(), chunk: int = 500) -> ResyncOutcome:
    """Queue the current state of `keys` through write-behind `name`, each on its shard.

    A key that is gone queues a delete only if it is in `deletes` (the app deleted it last):
    Redis is the cache, and a key that expired, was evicted or just missed must not delete
    its Mongo document.
    """
    prefix = f"{resync_prefix(deployment, name)}:"
    pending: dict[int, tuple[Shard, list[str]]] = {}
    queued, gone = 0, 0
    skipped: list[str] = []

    def flush(shard: Shard, batch: list[str]) -> None:
        nonlocal queued, gone
        touch = shard.client.register_script(_TOUCH)
        with shard.client.pipeline(transaction=False) as pipe:
            for key in batch:
                touch(keys=[key], args=["1" if key in deletes else "0"], client=pipe)
            results = [int(n) for n in pipe.execute()]
        queued += results.count(1)
        gone += results.count(2)
        skipped.extend(key for key, done in zip(batch, results) if done == 0)
        batch.clear()

    for key in keys:
        if not key.startswith(prefix):
            raise UsageError(f"{key!r} is not under {name}'s key prefix {prefix!r}")
        shard = deployment.shard_of(key)
        _, batch = pending.setdefault(id(shard), (shard, []))
        batch.append(key)
        if len(batch) >= chunk:
            flush(shard, batch)
    for shard, batch in pending.values():
        if batch:
            flush(shard, batch)
    return ResyncOutcome(queued, skipped, gone)


def resync_stream(deployment: Deployment, name: str, stream: str) -> ResyncOutcome:
    """Resync the keys `stream` mentions through `name`, then delete `stream`.

    For an orphaned stream, or one an older version cannot finish: its reader (if any) is
    unregistered first, so nothing else writes those changes. On a cluster that unregisters
    it on every shard, so every shard's stream of that reader is resynced too.
    """
    shard = deployment.shard_of(stream)
    if not shard.client.exists(stream):
        raise UsageError(f"no stream {stream!r}")
    wb = write_behind(deployment, name)
    if wb and wb.stream_reader and wb.stream_reader.stream_pattern and fnmatchcase(
        stream, wb.stream_reader.stream_pattern
    ):
        raise UsageError(f"{stream} is {name}'s live stream; its reader writes it already")
    streams = [(shard, stream)]
    for registration in wb.draining if wb else ():
        pattern = registration.stream_pattern
        if pattern and fnmatchcase(stream, pattern):
            unregister(deployment, registration)
            streams += [(other, other.stream(pattern)) for other in deployment.shards
                        if other.stream(pattern) != stream]
    queued, gone = 0, 0
    skipped: list[str] = []
    for owner, name_ in streams:
        if not owner.client.exists(name_):
            continue
        changed = changed_keys(owner, name_)
        outcome = resync(deployment, name, changed, {k for k, delete in changed.items() if delete})
        owner.client.delete(name_)
        queued, gone = queued + outcome.queued, gone + outcome.gone
        skipped += outcome.skipped
    return ResyncOutcome(queued, skipped, gone)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

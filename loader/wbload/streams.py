"""The Redis Streams that carry changes from a KeysReader to its StreamReader, per shard."""

from __future__ import annotations

from fnmatch import fnmatchcase

import redis

from .topology import Deployment, Shard


def entries(
    client: redis.Redis, stream: str, start: str = "-", count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """Stream entries from `start` on (inclusive; "(id" excludes), as (id, fields) strings."""
    reply = client.xrange(stream, min=start, count=count) or []
    return [(str(entry_id), {str(k): str(v) for k, v in (fields or {}).items()})
            for entry_id, fields in reply]


ORIGINAL_KEY_FIELD = "_original_key"  # whole-document entries (older versions, stock rgsync)
KEY_FIELD, EVENT_FIELD = "k", "e"  # key-only entries (today's recipes); an empty key: a wake-up
# Deletes Redis does on its own (and a read that missed): they must not delete in Mongo.
HOUSEKEEPING_EVENTS = frozenset(["expired", "evicted", "keymiss"])
# Keyspace events of an app removing a key (DEL/UNLINK/GETDEL, JSON.DEL of the root, a RENAME
# or MOVE away), as the --force bridge records them.
APP_DELETE_EVENTS = frozenset(["del", "json.del", "rename_from", "move_from"])


def changed_keys(shard: Shard, stream: str, chunk: int = 1000) -> dict[str, bool]:
    """The distinct keys a write-behind stream mentions (first-seen order) -> whether its
    last change there was a delete by the app (ours and rgsync's `#` `~`, or an event the
    --force bridge recorded), not Redis' housekeeping. A key-only entry says which key
    changed, not how: gone means deleted unless the entry carries an expiry or eviction."""
    found: dict[str, bool] = {}
    start = "-"
    while True:
        chunk_entries = entries(shard.client, stream, start, chunk)
        for _entry_id, fields in chunk_entries:
            if fields.get(KEY_FIELD):
                found[fields[KEY_FIELD]] = fields.get(EVENT_FIELD) not in HOUSEKEEPING_EVENTS
                continue
            key = fields.get(ORIGINAL_KEY_FIELD)
            if key:
                event = fields.get("_event") or ""
                if "#" in fields:  # a queued change: ours (with its event) or rgsync's
                    found[key] = fields["#"] == "~" and event not in HOUSEKEEPING_EVENTS
                else:  # the --force bridge: the event only
                    found[key] = event in APP_DELETE_EVENTS
        if len(chunk_entries) < chunk:
            return found
        start = "(" + chunk_entries[-1][0]


def shard_stream(shard: Shard, pattern: str | None) -> str | None:
    """The stream a StreamReader watching `pattern` reads on `shard` (None without one).

    Recipe code names it `_<table>-stream-<uuid>-{<hashtag()>}` on each shard; the loader
    derives the same name, so no SCAN of the keyspace is needed.
    """
    return shard.stream(pattern) if pattern else None


def backlog(shard: Shard, pattern: str | None) -> int:
    """How many changes wait in `shard`'s stream of a StreamReader watching `pattern`."""
    stream = shard_stream(shard, pattern)
    return int(shard.client.xlen(stream)) if stream else 0


def total_backlog(deployment: Deployment, pattern: str | None) -> int:
    """Changes waiting in every shard's stream of `pattern`."""
    return sum(backlog(shard, pattern) for shard in deployment.shards)


def backlog_streams(deployment: Deployment, pattern: str | None) -> list[tuple[Shard, str, int]]:
    """(shard, stream, changes waiting) for each shard whose stream of `pattern` is not empty."""
    found = []
    for shard in deployment.shards:
        waiting = backlog(shard, pattern)
        if waiting:
            found.append((shard, shard.stream(str(pattern)), waiting))
    return found


def backlog_bytes(shard: Shard, pattern: str | None) -> int:
    """What `shard`'s stream of `pattern` costs in Redis memory (MEMORY USAGE, sampled)."""
    stream = shard_stream(shard, pattern)
    return int(shard.client.memory_usage(stream) or 0) if stream else 0


def oldest_age(shard: Shard, pattern: str | None) -> float | None:
    """Seconds since the oldest change still waiting in `shard`'s stream of `pattern` was
    queued (its entry id's milliseconds, against the shard's own clock); None when empty."""
    stream = shard_stream(shard, pattern)
    first = shard.client.xrange(stream, count=1) if stream else None
    if not first:
        return None
    queued_ms = int(str(first[0][0]).split("-")[0])
    seconds, micros = shard.client.time()
    return max(0.0, (int(seconds) * 1000 + int(micros) / 1000 - queued_ms) / 1000)


WRITE_BEHIND_STREAMS = "_*-stream-*"  # rgsync's stream names: _<table>-stream-<uuid>-{tag}


def orphan_streams(deployment: Deployment, live_patterns: list[str]) -> dict[str, int]:
    """Write-behind streams with changes waiting that no registered StreamReader reads.

    This one SCANs every shard's keyspace (an orphan's name cannot be derived).
    """
    orphans = {}
    for shard in deployment.shards:
        for key in sorted(set(shard.client.scan_iter(
                match=WRITE_BEHIND_STREAMS, count=1000, _type="stream"))):
            if any(fnmatchcase(key, pattern) for pattern in live_patterns):
                continue
            waiting = int(shard.client.xlen(key))
            if waiting:
                orphans[key] = waiting
    return orphans

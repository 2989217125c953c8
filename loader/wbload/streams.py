"""The Redis Streams that carry changes from a KeysReader to its StreamReader."""

from __future__ import annotations

from fnmatch import fnmatchcase

import redis


def stream_keys(client: redis.Redis, pattern: str) -> list[str]:
    """The stream keys matching a StreamReader's `stream` pattern."""
    keys = client.scan_iter(match=pattern, count=1000, _type="stream")
    return sorted(set(keys))  # SCAN may return a key more than once


def entries(
    client: redis.Redis, stream: str, start: str = "-", count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """Stream entries from `start` on (inclusive; "(id" excludes), as (id, fields) strings."""
    reply = client.xrange(stream, min=start, count=count) or []
    return [(str(entry_id), {str(k): str(v) for k, v in (fields or {}).items()})
            for entry_id, fields in reply]


def backlog(client: redis.Redis, pattern: str | None) -> int:
    """How many changes wait in the streams matching `pattern` (0 without a pattern)."""
    if not pattern:
        return 0
    keys = stream_keys(client, pattern)
    if not keys:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.xlen(key)
        return sum(int(n) for n in pipe.execute())


def backlog_bytes(client: redis.Redis, pattern: str | None) -> int:
    """What the streams matching `pattern` cost in Redis memory (MEMORY USAGE, sampled)."""
    keys = stream_keys(client, pattern) if pattern else []
    if not keys:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key)
        return sum(int(n or 0) for n in pipe.execute())


WRITE_BEHIND_STREAMS = "_*-stream-*"  # rgsync's stream names: _<table>-stream-<uuid>-{tag}


def orphan_streams(client: redis.Redis, live_patterns: list[str]) -> dict[str, int]:
    """Write-behind streams with changes waiting that no registered StreamReader reads."""
    orphans = {}
    for key in stream_keys(client, WRITE_BEHIND_STREAMS):
        if any(fnmatchcase(key, pattern) for pattern in live_patterns):
            continue
        waiting = int(client.xlen(key))
        if waiting:
            orphans[key] = waiting
    return orphans

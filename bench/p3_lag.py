"""P3 lag: a steady write rate for a fixed time; how long until each write is visible in Mongo.

One writer sends the documents on a fixed schedule (a small pipeline every `tick` seconds)
and notes when each was sent. Changes reach Mongo in stream order (one StreamReader, ordered
bulk writes, one writer), so Mongo always holds a prefix of them: a poller counts Mongo's
documents every `poll` seconds and the documents that count newly covers became visible in
that interval. Lag = visible - sent, so it includes the Redis write itself and up to one
poll interval of measurement error.

On a Redis Cluster each shard drains its own stream, so Mongo holds a prefix of each shard's
documents only: there every document carries `benchShard` (its shard's index), the poller
counts each shard's documents, and a count covers that shard's documents in sending order.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import redis

from . import docs
from .env import Client
from .p2_drain import _stats, warm_up
from .sinks import Sink, backlog, clean_up, deploy_clean, stream_reader_stats


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def lag(sink: Sink, run: Any, rate: float, seconds: float, poll: float = 0.01,
        tick: float = 0.01, batch_duration_ms: int = 100) -> dict:
    client, coll, _ = deploy_clean(sink, run, f"p3_{sink.label}")
    warm = warm_up(client, coll, timeout=120)

    n = max(1, int(rate * seconds))
    items, shard_of, shard_count = _items(client, n)
    # per shard: its documents' indexes in sending order
    order: list[list[int]] = [[j for j in range(n) if shard_of[j] == s]
                              for s in range(shard_count)]
    sent = [0.0] * n
    writer_error: list[BaseException] = []
    writer_client = run.redis()

    def write() -> None:
        try:
            start = time.monotonic()
            i = 0
            while i < n:
                due = min(n, int((time.monotonic() - start) * rate) + 1)
                if due > i:
                    pipe = writer_client.pipeline(transaction=False)
                    for key, text, _ in items[i:due]:
                        pipe.execute_command("JSON.SET", key, "$", text)
                    t = time.monotonic()
                    pipe.execute()
                    for j in range(i, due):
                        sent[j] = t
                    i = due
                time.sleep(tick)
        except BaseException as e:  # reported by the main thread
            writer_error.append(e)

    visible = [0.0] * n
    seen_per_shard = [0] * shard_count
    seen = 0
    writer = threading.Thread(target=write, daemon=True)
    started = time.monotonic()
    writer.start()
    deadline = started + seconds + max(60.0, seconds * 4)
    while seen < n:
        if shard_count == 1:
            counts = [min(n, coll.estimated_document_count() - warm)]
        else:
            counts = [min(len(order[s]), coll.count_documents({"benchShard": s}))
                      for s in range(shard_count)]
        now = time.monotonic()
        for s, count in enumerate(counts):
            for j in order[s][seen_per_shard[s]:count]:
                visible[j] = now
            seen_per_shard[s] = max(seen_per_shard[s], count)
        seen = sum(seen_per_shard)
        if writer_error:
            raise RuntimeError(f"P3 writer failed: {writer_error[0]}")
        if now > deadline:
            raise TimeoutError(f"{sink.label}: {seen}/{n} documents visible after "
                               f"{now - started:.0f}s")
        time.sleep(poll)
    writer.join(30)
    write_s = max(sent) - min(sent) if n > 1 else 0.0
    lags = [(visible[j] - sent[j]) * 1000 for j in range(n)]
    stats = stream_reader_stats(client) or {}
    left = backlog(client)
    writer_client.close()
    clean_up(client, coll)
    p99 = percentile(lags, 99)
    return {
        "rate_target": rate,
        "rate_achieved": (n - 1) / write_s if write_s > 0 else float("nan"),
        "n": n,
        "seconds": seconds,
        "lag_ms": {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "p99": p99,
                   "max": max(lags)},
        "batch_duration_ms": batch_duration_ms,
        "p99_over_2x_batch_duration": p99 / (2 * batch_duration_ms),
        "stream_reader": _stats(stats),
        "backlog_after": left,
        "poll_interval_s": poll,
        **({"docs_per_shard": [len(o) for o in order]} if shard_count > 1 else {}),
    }


def _items(client: Client, n: int
           ) -> tuple[list[tuple[str, str, dict[str, Any]]], list[int], int]:
    """The documents, each one's shard index and the number of shards: all 0 of 1 on one
    node (documents as in P2); on a cluster each document carries its shard's index as
    `benchShard`."""
    if isinstance(client, redis.Redis):
        return docs.movies(n), [0] * n, 1
    names = [node.name for node in client.get_primaries()]
    tpl = docs.templates()
    items, shard_of = [], []
    for i in range(n):
        shard = names.index(client.get_node_from_key(docs.key(i)).name)
        doc = docs.movie(i, tpl, benchShard=shard)
        items.append((docs.key(i), json.dumps(doc), doc))
        shard_of.append(shard)
    return items, shard_of, len(names)

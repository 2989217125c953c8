"""P2 drain: a backlog of N changes built while Mongo is paused, then drained when it is back.

For a sink: deploy it, sync one warm-up document (requirements imported, Mongo connected),
pause Mongo, JSON.SET N documents, check the stream holds N, resume Mongo, and poll until
the stream is empty and Mongo holds all N.

How Mongo is paused (`outage`):
- `stall` (default): the proxy holds every byte (Mongo frozen). The batch in flight waits
  and goes on at resume, so the drain starts at once. The pause must stay shorter than the
  sinks' timeouts (ours: 5 s), which it does when the fill takes a second or two;
  `pause_s` in the results says how long it was.
- `down`: the proxy refuses and cuts connections (Mongo stopped). The batch fails; ours
  retries after RETRY_INTERVAL_S (5 s), stock blocks in server selection (30 s) and goes on
  at once, so the time from resume includes that difference.
Two figures are reported:
- `docs_per_s`: N divided by the time from the last poll that saw none of them in Mongo to
  the first poll that saw the stream empty and all N in Mongo (the drain itself, without the
  retry wait; conservative by up to two poll intervals);
- `docs_per_s_from_resume`: N divided by the time from resume to done (what an operator
  waits).
The limit, `raw`, is pymongo's bulk_write of the same documents, as the same operations
(ReplaceOne by movieId, upsert, ordered, batches of the recipes' batch size) through the
same proxy to the same server.

On a Redis Cluster the same run spans every shard: the client is a RedisCluster, so the N
documents are queued on the shards that own their keys and each shard's StreamReader drains
its own stream; the warm-up puts one document on every shard, and `backlog_per_shard` says
how the backlog was spread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pymongo
import redis
from pymongo import ReplaceOne

from . import docs
from .env import Client, load_test_helper, primaries
from .sinks import (
    COLLECTION,
    STREAM_PATTERN,
    Sink,
    backlog,
    backlog_per_shard,
    clean_up,
    deploy_clean,
    stream_reader_stats,
)

_polling = load_test_helper("polling")

WARM_ID = 10_000_000  # outside the ids of the measured documents


def fill(client: Client, items: list[tuple[str, str, dict[str, Any]]],
         chunk: int = 200) -> float:
    """JSON.SET every item, pipelined; the seconds it took."""
    started = time.monotonic()
    for i in range(0, len(items), chunk):
        pipe = client.pipeline(transaction=False)
        for key, text, _ in items[i:i + chunk]:
            pipe.execute_command("JSON.SET", key, "$", text)
        for reply in pipe.execute():
            if reply not in (True, "OK", b"OK"):
                raise RuntimeError(f"JSON.SET answered {reply!r}")
    return time.monotonic() - started


def stream_bytes(client: Client) -> int | None:
    """Memory the write-behind streams take (MEMORY USAGE, every node sampled), over every
    shard."""
    try:
        return sum(int(node.memory_usage(k, samples=0) or 0) for node in primaries(client)
                   for k in node.scan_iter(STREAM_PATTERN, count=1000))
    except redis.RedisError:
        return None


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return _polling.wait_for(check, timeout, what, interval=0.05)


def warm_ids(client: Client) -> list[int]:
    """Ids of the warm-up documents: WARM_ID on one node, one id per shard on a cluster."""
    if isinstance(client, redis.Redis):
        return [WARM_ID]
    owners: dict[str, int] = {}
    i = WARM_ID
    while len(owners) < len(client.get_primaries()):
        owners.setdefault(client.get_node_from_key(docs.key(i)).name, i)
        i += 1
    return sorted(owners.values())


def warm_up(client: Client, coll: Any, timeout: float) -> int:
    """One document through the whole path (on every shard): requirements imported, Mongo
    client connected. Returns how many warm-up documents Mongo now holds."""
    ids = warm_ids(client)
    for i in ids:
        key, text, _ = docs.movies(1, start=i)[0]
        client.execute_command("JSON.SET", key, "$", text)
    wait(lambda: coll.count_documents({"movieId": {"$in": [str(i) for i in ids]}}) == len(ids),
         timeout, "the warm-up document(s) in Mongo")
    return len(ids)


def drain(sink: Sink, run: Any, n: int, outage: str = "stall", poll: float = 0.05,
          timeout: float = 600) -> dict:
    """Drain figures for `sink` (see the module doc)."""
    client, coll, deploy_s = deploy_clean(sink, run, f"p2_{sink.label}")
    warm = warm_up(client, coll, timeout=120)
    items = docs.movies(n)
    paused = time.monotonic()
    if outage == "stall":
        run.proxy.stall()
    else:
        run.proxy.pause()
    try:
        fill_s = fill(client, items)
        wait(lambda: backlog(client) >= n, 30, f"{n} changes in the stream")
        per_shard = backlog_per_shard(client)
        waiting = sum(per_shard)
        backlog_bytes = stream_bytes(client)
    finally:
        run.proxy.resume()
    resumed = time.monotonic()
    last_empty = resumed  # the last poll that saw none of the N in Mongo
    deadline = resumed + timeout
    while True:
        count = coll.estimated_document_count() - warm  # minus the warm-up document(s)
        left = backlog(client) if count >= n else None
        now = time.monotonic()
        if count <= 0:
            last_empty = now
        if count >= n and left == 0:
            break
        if now > deadline:
            raise TimeoutError(f"{sink.label}: {count}/{n} documents after {timeout}s")
        time.sleep(poll)
    done = time.monotonic()
    sample = coll.find_one({"movieId": str(n - 1)}, {"_id": 0})
    expected = items[n - 1][2]
    if sample is None or any(sample.get(k) != v for k, v in expected.items()):
        raise AssertionError(f"{sink.label}: document {n - 1} in Mongo differs from Redis")
    stats = stream_reader_stats(client) or {}
    clean_up(client, coll)
    return {
        "n": n,
        "deploy_s": round(deploy_s, 3),
        "fill_s": round(fill_s, 3),
        "backlog_before_resume": int(waiting),
        **({"backlog_per_shard": per_shard} if len(per_shard) > 1 else {}),
        "backlog_bytes_per_change": (round(backlog_bytes / waiting) if backlog_bytes and waiting
                                     else None),
        "outage": outage,
        "pause_s": round(resumed - paused, 3),
        "first_write_after_s": round(last_empty - resumed, 3),
        "drain_s": round(done - last_empty, 3),
        "drain_s_from_resume": round(done - resumed, 3),
        "docs_per_s": n / (done - last_empty),
        "docs_per_s_from_resume": n / (done - resumed),
        "stream_reader": _stats(stats),
        "poll_interval_s": poll,
    }


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    keep = ("numTriggered", "numSuccess", "numFailures", "avgRunDurationMS",
            "lastRunDurationMS", "lastError", "per_shard")
    return {k: stats.get(k) for k in keep if k in stats}


def raw(run: Any, n: int, batch: int = 100) -> dict:
    """pymongo bulk_write of the same documents through the same proxy: the limit."""
    database = run.database("p2_raw")
    mongo = run.mongo()
    mongo.drop_database(database)
    via_proxy = pymongo.MongoClient(run.mongo_url_via_proxy, serverSelectionTimeoutMS=10_000)
    try:
        coll = via_proxy[database][COLLECTION]
        warm = docs.movies(1, start=WARM_ID)[0][2]
        coll.replace_one({"movieId": warm["movieId"]}, warm, upsert=True)
        items = [json.loads(text) for _, text, _ in docs.movies(n)]
        started = time.monotonic()
        for i in range(0, n, batch):
            coll.bulk_write([ReplaceOne({"movieId": d["movieId"]}, d, upsert=True)
                             for d in items[i:i + batch]], ordered=True)
        seconds = time.monotonic() - started
        assert coll.estimated_document_count() == n + 1
    finally:
        via_proxy.close()
        mongo.drop_database(database)
    return {"n": n, "batch": batch, "seconds": round(seconds, 3), "docs_per_s": n / seconds}

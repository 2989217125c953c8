"""Backlog bytes per queued change: what each queued change costs in Redis while Mongo is out.

For each configuration: deploy with Mongo down (the proxy refuses), JSON.SET `n` documents,
then MEMORY USAGE of the write-behind streams (every entry sampled) divided by the entries
queued. The same documents as P1/P2 (~950 bytes of JSON each).
"""

from __future__ import annotations

from typing import Any

from . import docs
from .p2_drain import fill, stream_bytes
from .p5_burst import stream_state
from .sinks import Sink, reset


def backlog_bytes(sinks: list[Sink], run: Any, n: int) -> dict[str, Any]:
    if run.proxy is None:
        raise RuntimeError("needs the bench's Mongo proxy (no --mongo-url-from-redis)")
    client = run.redis()
    items = docs.movies(n)
    out: dict[str, Any] = {"n": n, "document_bytes": round(sum(len(t) for _, t, _ in items) / n)}
    for sink in sinks:
        database = run.database(f"backlog_{sink.label}")
        reset(client)
        run.proxy.pause()
        try:
            sink.deploy(run.redis_url, run.mongo_url_from_redis, database)
            fill(client, items)
            state = stream_state(client)
            total = stream_bytes(client) or 0
            queued = state["xlen"]
            out[sink.label] = {"entries": queued, "stream_bytes": total,
                               "bytes_per_change": round(total / queued) if queued else None}
        finally:
            reset(client)
            run.proxy.resume()
            run.mongo().drop_database(database)
        print(f"    {sink.label}: {out[sink.label]['bytes_per_change']} bytes per queued change "
              f"({queued} entries, {total} bytes)", flush=True)
    return out

"""P1 write path: JSON.SET throughput with nothing registered, with stock, with ours.

Several client processes each keep a pipeline of `depth` JSON.SET commands in flight on
their own connection, for a fixed time. The commands are encoded once, before the clock
starts, and replies are only counted and checked (`+OK`), so the clients cost little next
to the server: on a 2-core machine they still share the CPUs with it, which the report says.

While ours or stock is registered, Mongo is down (the proxy refuses): every write still
runs the KeysReader and lands in the stream, but the StreamReader does not compete for the
CPU with the writers. What is measured is the synchronous part, as the issue asks.

On a Redis Cluster (`shards` given: each primary's URL and slot ranges) every client
process opens one plain connection per primary and keeps a pipeline of `depth` JSON.SET of
that shard's keys in flight on each: all shards are busy at once and each command goes
straight to its owner (no MOVED, no client-side routing on the clock), so the sum is the
cluster's ops/s. redis-py's RedisCluster would route in Python and the clients, not the
servers, would set the pace on 2 CPUs.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from redis.crc import key_slot

from . import docs

# each primary's URL and its slot ranges (env.slot_map); None: one node
Shards = list[tuple[str, list[tuple[int, int]]]]


def _resp(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def encoded_batches(client_no: int, keys: int, depth: int) -> list[bytes]:
    """Pipelines of `depth` JSON.SET each, over `keys` keys of this client (ids disjoint)."""
    return encoded_batches_by_shard(client_no, keys, depth, None)[0]


def _owner(shards: Shards, key: str) -> int:
    slot = key_slot(key.encode())
    return next(n for n, (_, ranges) in enumerate(shards)
                if any(a <= slot <= b for a, b in ranges))


def encoded_batches_by_shard(client_no: int, keys: int, depth: int,
                             shards: Shards | None) -> list[list[bytes]]:
    """encoded_batches(), the keys split by the shard that owns them (one list per shard)."""
    tpl = docs.templates()
    first = client_no * keys
    commands: list[list[bytes]] = [[] for _ in (shards or [None])]
    for i in range(first, first + keys):
        text = json.dumps(docs.movie(i, tpl))
        owner = _owner(shards, docs.key(i)) if shards else 0
        commands[owner].append(_resp("JSON.SET", docs.key(i), "$", text))
    return [[b"".join(c[j:j + depth]) for j in range(0, len(c), depth)] for c in commands]


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    s = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                 timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if parts.password:
        user = parts.username or "default"
        s.sendall(_resp("AUTH", user, parts.password))
        if not s.recv(64).startswith(b"+OK"):
            raise RuntimeError("AUTH refused")
    return s


def _worker(url: str, client_no: int, keys: int, depth: int, start_at: float,
            warmup: float, seconds: float, out: Any, shards: Shards | None = None) -> None:
    """Send pipelines until start_at+warmup+seconds; report ops answered in the window. On a
    cluster, one pipeline per shard in flight at a time, each on that shard's connection."""
    all_batches = encoded_batches_by_shard(client_no, keys, depth, shards)
    urls = [u for u, _ in shards] if shards else [url]
    used = [n for n, batches in enumerate(all_batches) if batches]  # shards with keys here
    per_shard = [all_batches[n] for n in used]
    sizes = [[b.count(b"\r\n*") + 1 for b in batches] for batches in per_shard]
    socks = [_connect(urls[n]) for n in used]
    counted = errors = 0
    counted_per_shard = [0] * len(all_batches)
    first_error = ""
    while time.time() < start_at:
        time.sleep(0.001)
    window_start, window_end = start_at + warmup, start_at + warmup + seconds
    i = 0
    try:
        while True:
            now = time.time()
            if now >= window_end:
                break
            expects = []
            for s, batches, shard_sizes in zip(socks, per_shard, sizes):
                s.sendall(batches[i % len(batches)])
                expects.append(shard_sizes[i % len(batches)])
            i += 1
            for s, expect in zip(socks, expects):
                buf = b""
                while buf.count(b"\r\n") < expect:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    buf += chunk
                ok = buf.count(b"+OK\r\n")
                if ok != expect:
                    errors += expect - ok
                    first_error = first_error or buf.decode(errors="replace")[:200]
            if now >= window_start and time.time() <= window_end:
                counted += sum(expects)
                for n, expect in zip(used, expects):
                    counted_per_shard[n] += expect
    finally:
        for s in socks:
            s.close()
    out.put({"client": client_no, "ops": counted, "errors": errors,
             "first_error": first_error, "ops_per_shard": counted_per_shard})


def measure(url: str, clients: int, depth: int, seconds: float, warmup: float = 1.0,
            keys_per_client: int = 1000, shards: Shards | None = None) -> dict[str, Any]:
    """Total JSON.SET/s over `clients` processes, each `depth` deep (per shard on a
    cluster), for `seconds`."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 1.0 + 0.2 * clients  # every process spawned and connected
    procs = [ctx.Process(target=_worker, args=(url, n, keys_per_client, depth, start_at,
                                                warmup, seconds, out, shards),
                         daemon=True)
             for n in range(clients)]
    for p in procs:
        p.start()
    results = []
    deadline = start_at + warmup + seconds + 120
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"P1 client processes failed (exit codes {dead}); "
                                   "their traceback is above") from None
    for p in procs:
        p.join(30)
    ops = sum(r["ops"] for r in results)
    errors = sum(r["errors"] for r in results)
    first = next((r["first_error"] for r in results if r["first_error"]), "")
    if errors:
        raise RuntimeError(f"{errors} JSON.SET replies were not OK, e.g. {first!r}")
    out_: dict[str, Any] = {"ops": ops, "seconds": seconds, "ops_per_s": ops / seconds,
                            "clients": clients, "pipeline_depth": depth,
                            "keys": clients * keys_per_client}
    if shards:
        out_["ops_per_s_per_shard"] = [
            sum(r["ops_per_shard"][n] for r in results) / seconds for n in range(len(shards))]
        out_["connections"] = "one per shard per client, each pipelining that shard's keys"
    return out_


def measure_redis_benchmark(url: str, clients: int, depth: int, seconds: float,
                            keys: int = 1000) -> dict[str, Any]:
    """The same JSON.SET with Debian's redis-benchmark (-c clients, -P depth): its own
    request count sized to last about `seconds` (a 0.5 s probe first); ops/s as it reports."""
    import re
    import shutil
    import subprocess

    tool = shutil.which("redis-benchmark")
    if tool is None:
        raise FileNotFoundError("redis-benchmark not found (Debian package redis-tools)")
    parts = urlsplit(url)
    text = json.dumps(docs.movie(0, docs.templates()))
    base = [tool, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379),
            "-c", str(clients), "-P", str(depth), "-r", str(keys), "-q"]
    if parts.password:
        base += ["-a", parts.password]

    def run(n: int) -> float:
        done = subprocess.run([*base, "-n", str(n), "JSON.SET",
                               f"{docs.KEY_PREFIX}:__rand_int__", "$", text],
                              capture_output=True, text=True, timeout=600)
        # -q: "<command>: N requests per second, ..." (its --csv does not quote the command)
        rates = re.findall(r"([0-9.]+) requests per second", done.stdout)
        if done.returncode or not rates:
            raise RuntimeError(f"redis-benchmark failed: {done.stderr.strip()[-300:]}")
        return float(rates[-1])

    probe = run(max(1000, clients * depth * 50))
    n = max(1000, int(probe * seconds))
    rate = run(n)
    return {"ops": n, "seconds": n / rate, "ops_per_s": rate, "clients": clients,
            "pipeline_depth": depth, "keys": keys, "tool": "redis-benchmark"}

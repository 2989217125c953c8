"""Burst-then-silence: several bursts of pipelined writes from several clients, then nothing.

A write-behind must not leave a change waiting for a later write. RedisGears 1.2's
StreamReader decides whether to run from a count it keeps of XADD notifications minus what
each batch read (bench/README.md, "burst-then-silence"); when that count falls below the
entries really unread, they stay in the stream until the next write comes. This phase
writes `bursts` bursts (each: `clients` threads at once, each one pipeline of
`per_client` JSON.SET of keys never written before), then writes nothing for `silence_s`
and samples, every `sample_s`, what is still waiting:

- `unacked`: entries of the write-behind streams that no consumer group has acknowledged
  (XINFO GROUPS: lag + pending of the group that reads the most), i.e. changes not
  written yet, whoever trimmed what;
- `xlen`: entries in the streams (trimmed or not);
- `missing`: keys written in the round (and not deleted) that are not in Mongo, and
  `not_deleted`: keys deleted in the round that Mongo still has (a change trimmed unread
  is wrong in Mongo without being unacked: lost, not only late);
- the StreamReader's numTriggered / numSuccess / numFailures / lastError.

Every burst after the first also deletes some keys of the previous one: deletes are where a
StreamReader that reads documents can feed back into the KeysReader (keymiss).

`left` (the figure that must be 0) = unacked + missing + not_deleted at the end of the
silence (the streams are read first, then Mongo).

A sample is not atomic: a batch in flight when the streams are read may be written by the
time Mongo and Gears are asked. So each sample reads Gears' counters before and after, and
says `busy` when an execution ran meanwhile or is running (numTriggered above what ended).
After the silence the round goes on observing, up to `settle_s`, and tells the two ways a
non-zero `left` can end: `drained_after_s` (everything reached Mongo later: the drain was
slower than the silence, e.g. on a loaded machine) or `stranded` (entries unacknowledged
while Gears has nothing running for `idle_s`: they wait for a later write, the defect this
phase is about).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import redis

from . import docs
from .env import Client, cluster_client, primaries
from .p2_drain import warm_up
from .sinks import STREAM_PATTERN, Sink, clean_up, deploy_clean, stream_reader_stats

COUNTERS = ("numTriggered", "numSuccess", "numFailures", "numAborted")


def streams(client: Client) -> list[tuple[redis.Redis, str]]:
    """(the shard's client, stream) for every write-behind stream, shard by shard."""
    return [(shard, name) for shard in primaries(client)
            for name in sorted(shard.scan_iter(STREAM_PATTERN, count=1000, _type="STREAM"))]


def stream_state(client: Client) -> dict[str, Any]:
    """xlen, and per stream the groups' lag/pending/entries-read (Redis >= 7 has lag)."""
    out: dict[str, Any] = {"xlen": 0, "unacked": 0, "groups": {}}
    for shard, name in streams(client):
        out["xlen"] += int(shard.xlen(name))
        unacked = 0
        for group in shard.xinfo_groups(name):
            lag = group.get("lag")
            if lag is None:  # Redis 7 answers nil when it cannot tell (tombstones): count it
                lag = _undelivered(shard, name, group["last-delivered-id"])
            unacked = max(unacked, int(lag) + int(group["pending"]))
            out["groups"][f"{name} {group['name']}"] = {
                "lag": lag, "pending": group["pending"],
                "entries-read": group.get("entries-read"),
                "last-delivered-id": group["last-delivered-id"]}
        out["unacked"] += unacked
    return out


def _undelivered(client: redis.Redis, stream: str, last_id: str) -> int:
    return len(client.xrange(stream, f"({last_id}", "+"))


def _gears_stats(client: Client) -> dict[str, Any]:
    """The StreamReader's counters summed over the shards (each shard counts its own
    executions), `running` per shard, and the last errors."""
    per_shard = [stream_reader_stats(shard) or {} for shard in primaries(client)]
    out: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in per_shard) for k in COUNTERS}
    out["running"] = [_running(s) for s in per_shard]
    out["lastError"] = [s.get("lastError") for s in per_shard if s.get("lastError")] or None
    return out


def _running(stats: dict[str, Any]) -> bool:
    ended = sum(int(stats.get(k) or 0) for k in ("numSuccess", "numFailures", "numAborted"))
    return int(stats.get("numTriggered") or 0) > ended


def sample(client: Client, coll: Any, present: set[str], deleted: set[str],
           elapsed: float) -> dict[str, Any]:
    """What still waits, read as: Gears' counters, the streams, Mongo, the counters again."""
    before = _gears_stats(client)
    state = stream_state(client)  # before Mongo: a batch acked meanwhile is in it
    in_mongo = {d["movieId"] for d in coll.find({}, {"movieId": 1, "_id": 0})}
    after = _gears_stats(client)
    return {"t": round(elapsed, 2), "xlen": state["xlen"], "unacked": state["unacked"],
            "missing": len(present - in_mongo), "not_deleted": len(deleted & in_mongo),
            "busy": before != after or any(after["running"]), **after,
            "groups": state["groups"]}


def waiting(s: dict[str, Any]) -> int:
    """What a sample says still waits: entries unacknowledged, keys wrong in Mongo."""
    return s["unacked"] + s["missing"] + s["not_deleted"]


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k != "groups"}


def settle(client: Client, coll: Any, present: set[str], deleted: set[str],
           started: float, settle_s: float, idle_s: float) -> dict[str, Any]:
    """Observe after the silence until nothing waits, or entries wait with Gears idle for
    `idle_s` (stranded), or `settle_s` passed."""
    idle_since = None
    while True:
        now = time.monotonic()
        last = sample(client, coll, present, deleted, now - started)
        if not waiting(last):
            return {"drained_after_s": last["t"], "stranded": 0, "last": last}
        idle_since = None if last["busy"] else (idle_since or now)
        if idle_since is not None and now - idle_since >= idle_s:
            return {"drained_after_s": None, "stranded": waiting(last), "last": last}
        if now - started >= settle_s:
            return {"drained_after_s": None, "stranded": None, "last": last}
        time.sleep(0.25)


def write_bursts(url: str, first_id: int, bursts: int, clients: int, per_client: int,
                 gap_s: float, depth: int = 0, pace_s: float = 0.0,
                 delete_every: int = 7, cluster: bool = False) -> tuple[set[str], set[str]]:
    """`bursts` x `clients` concurrent writers of fresh keys; (ids that must be in Mongo,
    ids deleted). Each writer sends its `per_client` JSON.SET as one pipeline, or (depth > 0)
    as pipelines of `depth` with `pace_s` between them, and in each burst after the first
    also DELetes every `delete_every`-th key it wrote in the previous one (0: none)."""
    tpl = docs.templates()
    errors: list[BaseException] = []
    conns: list[Client] = [cluster_client(url) if cluster else redis.Redis.from_url(url, protocol=2)
                           for _ in range(clients)]
    written: set[str] = set()
    deleted: set[str] = set()

    def one(conn: Client, start: int, doomed: list[int]) -> None:
        try:
            step = depth or per_client
            for chunk in range(start, start + per_client, step):
                pipe = conn.pipeline(transaction=False)
                for i in range(chunk, min(chunk + step, start + per_client)):
                    pipe.execute_command("JSON.SET", docs.key(i), "$",
                                         json.dumps(docs.movie(i, tpl)))
                if chunk == start:
                    for i in doomed:
                        pipe.delete(docs.key(i))
                pipe.execute()
                if pace_s:
                    time.sleep(pace_s)
        except BaseException as e:  # reported below
            errors.append(e)

    try:
        next_id = first_id
        previous: list[int] = [-1] * clients
        for b in range(bursts):
            threads = []
            for c in range(clients):
                doomed = (list(range(previous[c], previous[c] + per_client, delete_every))
                          if b and delete_every else [])
                threads.append(threading.Thread(target=one, args=(conns[c], next_id, doomed)))
                written.update(str(i) for i in range(next_id, next_id + per_client))
                deleted.update(str(i) for i in doomed)
                previous[c] = next_id
                next_id += per_client
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise RuntimeError(f"burst writer failed: {errors[0]}")
            if b + 1 < bursts:
                time.sleep(gap_s)
    finally:
        for conn in conns:
            conn.close()
    return written - deleted, deleted


def one_round(sink: Sink, run: Any, round_no: int, bursts: int = 4, clients: int = 4,
              per_client: int = 100, gap_s: float = 0.3, silence_s: float = 10.0,
              sample_s: float = 1.0, depth: int = 0, pace_s: float = 0.0,
              around: Any = None, settle_s: float = 60.0,
              idle_s: float = 3.0) -> dict[str, Any]:
    """One deploy, the bursts, the silence. `around` (experiments): a context manager
    factory the bursts run inside (e.g. Mongo down, then back), called with the run."""
    client, coll, _ = deploy_clean(sink, run, f"burst_{sink.label}_{round_no}")
    try:
        warm_up(client, coll, timeout=120)
        with (around(run) if around else contextlib.nullcontext()):
            present, deleted = write_bursts(run.redis_url, 0, bursts, clients, per_client,
                                            gap_s, depth, pace_s, cluster=run.cluster)
        ended = time.monotonic()
        samples = []
        while True:
            elapsed = time.monotonic() - ended
            samples.append(sample(client, coll, present, deleted, elapsed))
            if elapsed >= silence_s:
                break
            time.sleep(min(sample_s, max(0.0, silence_s - elapsed)))
        last = samples[-1]
        wrong = last["missing"] + last["not_deleted"]
        left = waiting(last)
        after = (settle(client, coll, present, deleted, ended, silence_s + settle_s, idle_s)
                 if left else {"drained_after_s": None, "stranded": 0, "last": last})
        return {"writes": len(present) + 2 * len(deleted), "deletes": len(deleted),
                "left": left, "wrong_in_mongo": wrong,
                "unacked": last["unacked"], "missing": last["missing"],
                "not_deleted": last["not_deleted"], "xlen": last["xlen"],
                "busy_at_end": last["busy"], "drained_after_s": after["drained_after_s"],
                "stranded": after["stranded"], "groups": last["groups"],
                "samples": [_brief(x) for x in samples], "settled": _brief(after["last"])}
    finally:
        clean_up(client, coll)


def burst(sinks: list[Sink], run: Any, rounds: int, **kw: Any) -> dict[str, Any]:
    """Rounds of every sink, interleaved; `left` per round must be 0."""
    out: dict[str, Any] = {"config": {"rounds": rounds, **kw}}
    for sink in sinks:
        out[sink.label] = {"rounds": []}
    for round_no in range(rounds):
        for sink in sinks:
            res = one_round(sink, run, round_no, **kw)
            out[sink.label]["rounds"].append(res)
            print(f"    round {round_no + 1} {sink.label}: {res['writes']} writes, left after "
                  f"{kw.get('silence_s', 10.0):g}s: {res['left']} (unacked {res['unacked']}, "
                  f"wrong in Mongo {res['wrong_in_mongo']}, xlen {res['xlen']}){_fate(res)}",
                  flush=True)
    for sink in sinks:
        rounds_ = out[sink.label]["rounds"]
        lefts = [r["left"] for r in rounds_]
        out[sink.label]["left_per_round"] = lefts
        out[sink.label]["rounds_with_leftovers"] = sum(1 for x in lefts if x)
        out[sink.label]["stranded_per_round"] = [r["stranded"] for r in rounds_]
    return out


def _fate(res: dict[str, Any]) -> str:
    """What became of a round's leftovers after the silence."""
    if not res["left"]:
        return ""
    if res["drained_after_s"] is not None:
        return f"; all in Mongo after {res['drained_after_s']:g}s (a slow drain)"
    if res["stranded"]:
        return f"; STRANDED: {res['stranded']} waiting with Gears idle"
    return "; still draining when the bench stopped looking"

"""`python -m bench.ideas.drift`: pin down when RedisGears' StreamReader leaves changes behind.

Deploys each configuration in turn on a real RedisGears (EVERYTHING IS UNREGISTERED AND
FLUSHED), runs burst-then-silence rounds (bench/p5_burst.py) and prints, per round, what was
left after the silence, the StreamReader's counters, the consumer group's view, and the
lines RedisGears logged meanwhile (e.g. "Calculated stream length turned negative").

    python -m bench.ideas.drift --redis-url redis://127.0.0.1:6440 --log /tmp/g/redis.log \
        --variant lazy-read=/tmp/wbidea/movies.py --sinks ours --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import env, p5_burst
from ..cli import Run, sinks_from

GEARS = Path("/work/gears-real")  # the real-engine scripts (not part of the repository)


def log_lines(path: Path | None, since: int) -> tuple[list[str], int]:
    if path is None or not path.exists():
        return [], since
    data = path.read_bytes()
    lines = data[since:].decode(errors="replace").splitlines()
    return [x for x in lines if "<module>" in x or "warning" in x.lower()
            or "rg" in x.lower()], len(data)


@contextlib.contextmanager
def outage(run: Run, down_s: float = 7.0) -> Iterator[None]:
    """Mongo refused while the bursts are written and for `down_s` more: batches fail,
    Gears waits its retry interval and reads the stream again (scan, XLEN, pending)."""
    assert run.proxy is not None
    run.proxy.pause()
    try:
        yield
        time.sleep(down_s)
    finally:
        run.proxy.resume()


def restart(port: int, node_dir: Path) -> Any:
    """Mongo refused during the bursts; then the Redis node is restarted (AOF reload, Gears
    scans for streams), then Mongo comes back."""
    @contextlib.contextmanager
    def around(run: Run) -> Iterator[None]:
        assert run.proxy is not None
        run.proxy.pause()
        try:
            yield
            time.sleep(1.5)  # appendfsync everysec
            subprocess.run([str(GEARS / "stop-node.sh"), str(port)], check=True,
                           capture_output=True, timeout=120)
            subprocess.run(["nice", "-n", "10", str(GEARS / "start-node.sh"), str(port),
                            str(node_dir)], check=True, capture_output=True, timeout=600)
        finally:
            run.proxy.resume()
    return around


def cache_miss(sink: Any, run: Run) -> dict[str, Any]:
    """A document only in Mongo, then one application read of its (missing) Redis key:
    is the Mongo document still there two seconds later? (keymiss fires the KeysReader.)"""
    from ..p2_drain import warm_up
    from ..sinks import clean_up, deploy_clean

    client, coll, _ = deploy_clean(sink, run, f"miss_{sink.label}")
    try:
        warm_up(client, coll, timeout=120)
        coll.insert_one({"movieId": "only-in-mongo", "title": "x"})
        before = coll.count_documents({"movieId": "only-in-mongo"})
        client.execute_command("JSON.GET", "MovieEntity:only-in-mongo")
        time.sleep(2)
        return {"label": sink.label, "before_read": before,
                "after_read": coll.count_documents({"movieId": "only-in-mongo"})}
    finally:
        clean_up(client, coll)


def stranded(sink: Any, run: Run, wait_s: float = 6.0) -> dict[str, Any]:
    """Make Gears' pending count lower than the truth on purpose, and see who recovers.

    After the warm-up document, its Mongo copy is made stale, then one change of that key is
    put in the stream without an `xadd` notification: XADD to a scratch stream, the Gears
    group created on it at the real stream's last-delivered id, RENAME onto the real stream
    (a `rename_to` event, which Gears' StreamReader does not count). The entry carries both
    formats (ours' `_original_key`/`movieId`/`#`/document and key-queue's `k`). Nothing else is
    written: does the change reach Mongo within `wait_s`?"""
    from ..p2_drain import WARM_ID, warm_up
    from ..sinks import clean_up, deploy_clean

    client, coll, _ = deploy_clean(sink, run, f"stranded_{sink.label}")
    try:
        warm_up(client, coll, timeout=120)
        time.sleep(1.0)
        _shard, stream = p5_burst.streams(client)[0]  # one node: the shard is the client
        group = client.xinfo_groups(stream)[0]
        key = f"MovieEntity:{WARM_ID}"
        coll.update_one({"movieId": str(WARM_ID)}, {"$set": {"title": "stale"}})
        scratch = "wbscratch:" + stream  # outside the StreamReader's prefix, same hashtag
        client.delete(scratch)
        client.xadd(scratch, {"k": key, "_original_key": key, "movieId": str(WARM_ID),
                              "#": "=", "redisgears": client.execute_command("JSON.GET", key)})
        client.xgroup_create(scratch, group["name"], id=group["last-delivered-id"])
        client.rename(scratch, stream)
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < wait_s:
            state = p5_burst.stream_state(client)
            doc = coll.find_one({"movieId": str(WARM_ID)}) or {}
            samples.append({"t": round(time.monotonic() - started, 1),
                            "unacked": state["unacked"],
                            "mongo_stale": doc.get("title") == "stale"})
            time.sleep(0.5)
        return {"label": sink.label, "samples": samples,
                "recovered_after_s": next((x["t"] for x in samples
                                           if not x["unacked"] and not x["mongo_stale"]), None)}
    finally:
        clean_up(client, coll)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ideas.drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--mongo-url", help="default: start nx-27017")
    p.add_argument("--log", type=Path, help="the server's log file, to show what Gears said")
    p.add_argument("--sinks", default="ours")
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bursts", type=int, default=4)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--per-client", type=int, default=100)
    p.add_argument("--gap", type=float, default=0.3)
    p.add_argument("--depth", type=int, default=0, help="pipeline depth (0: one pipeline)")
    p.add_argument("--pace", type=float, default=0.0, help="seconds between pipelines")
    p.add_argument("--silence", type=float, default=10.0)
    p.add_argument("--scenario",
                   choices=("plain", "outage", "restart", "cache-miss", "stranded"),
                   default="plain",
                   help="cache-miss: does reading a missing key delete the Mongo document? "
                   "stranded: a change queued without an xadd notification (Gears' count too "
                   "low): does it reach Mongo? outage: Mongo down during the bursts and 7 s "
                   "after; restart: Mongo down, then the node restarted with "
                   "/work/gears-real/*-node.sh")
    p.add_argument("--node-dir", type=Path, help="the node's directory (for --scenario "
                   "restart)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sinks = sinks_from(args)
    around: Any = None
    if args.scenario == "outage":
        around = outage
    elif args.scenario == "restart":
        if args.node_dir is None:
            p.error("--scenario restart needs --node-dir")
        around = restart(env.host_port(args.redis_url.replace("redis", "mongodb", 1))[1],
                         args.node_dir)
    own = env.OwnServers()
    out: dict[str, Any] = {"server": env.describe_redis(args.redis_url), "rounds": [],
                           "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        mongo_url = args.mongo_url or own.start_mongo()
        out["mongo"] = env.describe_mongo(mongo_url)
        run = Run(args.redis_url, mongo_url, None)
        offset = args.log.stat().st_size if args.log and args.log.exists() else 0
        try:
            if args.scenario == "stranded":
                for round_no in range(args.rounds):
                    for sink in sinks:
                        res = stranded(sink, run)
                        res["round"] = round_no + 1
                        out["rounds"].append(res)
                        print(f"{sink.label} round {round_no + 1}: recovered after "
                              f"{res['recovered_after_s']} s; "
                              + " ".join(f"{x['t']}:{x['unacked']}{'S' if x['mongo_stale'] else ''}"
                                         for x in res["samples"]), flush=True)
                args.rounds = 0
            if args.scenario == "cache-miss":
                for sink in sinks:
                    res = cache_miss(sink, run)
                    out["rounds"].append(res)
                    print(f"{sink.label}: Mongo document before the read {res['before_read']}, "
                          f"2 s after {res['after_read']}", flush=True)
                args.rounds = 0
            for round_no in range(args.rounds):
                for sink in sinks:
                    res = p5_burst.one_round(sink, run, round_no, bursts=args.bursts,
                                             clients=args.clients, per_client=args.per_client,
                                             gap_s=args.gap, silence_s=args.silence,
                                             sample_s=1.0, depth=args.depth,
                                             pace_s=args.pace, around=around)
                    said, offset = log_lines(args.log, offset)
                    res.update(label=sink.label, round=round_no + 1, log=said)
                    out["rounds"].append(res)
                    first, last = res["samples"][0], res["samples"][-1]
                    print(f"{sink.label} round {round_no + 1}: {res['writes']} writes; at end "
                          f"of bursts unacked {first['unacked']} xlen {first['xlen']}; after "
                          f"{last['t']:.0f}s left {res['left']} (unacked {res['unacked']}, "
                          f"wrong in Mongo {res['wrong_in_mongo']}, xlen {res['xlen']}); triggered "
                          f"{last['numTriggered']} ok {last['numSuccess']} failed "
                          f"{last['numFailures']} lastError {last['lastError']}", flush=True)
                    print(f"    groups: {json.dumps(res['groups'])}")
                    for line in said[-8:]:
                        print(f"    log: {line}")
        finally:
            run.close()
    finally:
        own.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

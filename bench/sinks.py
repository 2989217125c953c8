"""What is registered while a phase runs: nothing (bare), the tutorial's stock recipe, ours.

`ours` is deployed the way users deploy it, with `wbload deploy recipes/movies.py`; extra
recipes given with `--variant LABEL=PATH` (e.g. an idea tried in a copy of recipes/) are
deployed the same way. `stock` is the write-behind tutorial's recipe, pushed with
RG.PYEXECUTE as the tutorial does, with only Mongo's address and database filled in.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from .env import (
    REPO,
    Client,
    cluster_client,
    cluster_enabled,
    load_test_helper,
    primaries,
    redis_client,
)

OURS_RECIPE = REPO / "recipes" / "movies.py"
COLLECTION = "movies"
STREAM_PATTERN = f"_{COLLECTION}-stream-*"
_stock = load_test_helper("stock_recipe")
STOCK_RECIPE, REQUIREMENTS = _stock.STOCK_RECIPE, _stock.STOCK_REQUIREMENTS
_gears_ops = load_test_helper("gears_ops")
registrations = _gears_ops.registrations


# The floor: what any write-behind built on a sync KeysReader pays per write at least.
NOOP_KEYSREADER = (
    "GB('KeysReader', desc='bench: sync KeysReader doing nothing').foreach(lambda r: None)"
    ".register(mode='sync', prefix='MovieEntity:*', readValue=False)"
)
NOOP_LABEL = "noop-keysreader"
# The floor of rgsync's model (a change must reach a stream): one XADD of the key, nothing else.
XADD_KEYSREADER = (
    "GB('KeysReader', desc='bench: sync KeysReader doing one XADD of the key')"
    ".foreach(lambda r: execute('XADD', '_bench-xadd-floor-{%s}' % hashtag(), '*', 'k',"
    " r['key'])).register(mode='sync', prefix='MovieEntity:*', readValue=False)"
)
XADD_LABEL = "xadd-keysreader"
FLOOR_LABELS = {NOOP_LABEL: NOOP_KEYSREADER, XADD_LABEL: XADD_KEYSREADER}


@dataclass(frozen=True)
class Sink:
    """One configuration of the Redis side: label, and the recipe that implements it."""

    label: str
    recipe: Path | None = None  # deployed with `wbload deploy`; None: bare or stock

    def deploy(self, redis_url: str, mongo_url_from_redis: str, database: str) -> float:
        """Register it (after reset()); the seconds the deploy took."""
        started = time.monotonic()
        if self.label == "bare":
            return 0.0
        cluster = cluster_enabled(redis_url)
        if self.label in FLOOR_LABELS:
            pyexecute(redis_url, FLOOR_LABELS[self.label])
        elif self.label == "stock":
            code = STOCK_RECIPE.format(url=mongo_url_from_redis, db=database)
            pyexecute(redis_url, code, "REQUIREMENTS", *REQUIREMENTS)
        else:
            recipe = self.recipe or OURS_RECIPE
            done = wbload_deploy(recipe, redis_url, mongo_url_from_redis, database)
            if done.returncode and cluster and "cluster is down" in done.stderr.lower():
                # see pyexecute(): the registration may be made all the same; once the cluster
                # serves again the same deploy says "up to date" or completes it
                print(f"    {self.label}: wbload deploy answered CLUSTERDOWN; waiting, then "
                      "deploying again", flush=True)
                wait_serving(redis_url, registered=False)
                done = wbload_deploy(recipe, redis_url, mongo_url_from_redis, database)
            if done.returncode:
                raise RuntimeError(f"wbload deploy failed ({done.returncode}): "
                                   f"{done.stderr.strip() or done.stdout.strip()}")
        if cluster:
            wait_serving(redis_url)
        return time.monotonic() - started


def pyexecute(redis_url: str, *args: str) -> None:
    """RG.PYEXECUTE once, on the node of `redis_url` (on a cluster Gears registers it on every
    shard). Installing requirements can block the node longer than cluster-node-timeout
    (seen on a real 1.2.13 cluster with stock's rgsync, reinstalled now and then), so the
    others mark it failed: the reply is CLUSTERDOWN though the registration goes on; then
    wait until it is listed on every shard and the cluster serves again."""
    with redis_client(redis_url) as client:
        try:
            client.execute_command("RG.PYEXECUTE", *args)
            return
        except redis.exceptions.ClusterDownError:
            print("    RG.PYEXECUTE answered CLUSTERDOWN; waiting for the cluster",
                  flush=True)
    wait_serving(redis_url)


def wait_serving(redis_url: str, registered: bool = True, timeout: float = 180) -> None:
    """Until every primary says cluster_state:ok (and, if `registered`, lists a
    registration)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with cluster_client(redis_url, socket_timeout=10) as cluster:
                if all("cluster_state:ok" in str(node.execute_command("CLUSTER", "INFO"))
                       and (not registered or node.execute_command("RG.DUMPREGISTRATIONS"))
                       for node in primaries(cluster)):
                    return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not serve (every primary ok"
                               f"{', the registration listed' if registered else ''}) within "
                               f"{timeout:.0f}s")
        time.sleep(1)


def ours() -> Sink:
    return Sink("ours", OURS_RECIPE)


def wbload_argv(recipe: Path, redis_url: str, mongo_url: str, database: str) -> list[str]:
    return ["deploy", str(recipe), "--redis-url", redis_url, "--mongo-url", mongo_url,
            "--param", f"MONGO_DATABASE={database}"]


def wbload_deploy(recipe: Path, redis_url: str, mongo_url: str, database: str,
                  check: bool = False) -> subprocess.CompletedProcess[str]:
    """`wbload deploy` in a subprocess, exactly as an operator runs it."""
    argv = [sys.executable, "-m", "wbload.cli", *wbload_argv(recipe, redis_url, mongo_url,
                                                            database)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise RuntimeError(f"wbload deploy failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done


# --- the Gears side -------------------------------------------------------------------------
def stream_reader_stats(client: Client) -> dict[str, Any] | None:
    """RegistrationData of the (one) StreamReader registered, if any. On a cluster: counters
    summed over shards, avgRunDurationMS their mean, each shard's figures in `per_shard`."""
    for reg in registrations(client):
        if reg.get("reader") == "StreamReader":
            data = dict(reg["RegistrationData"])
            if "shards" in reg:
                shards = [dict(r["RegistrationData"], node=r.get("node")) for r in reg["shards"]]
                runs = [float(d["avgRunDurationMS"]) for d in shards
                        if d.get("avgRunDurationMS") is not None]
                if runs:
                    data["avgRunDurationMS"] = sum(runs) / len(runs)
                data["per_shard"] = [
                    {k: d.get(k) for k in ("node", "numTriggered", "numSuccess", "numFailures",
                                           "avgRunDurationMS", "lastError")} for d in shards]
            return data
    return None


def reset(client: Client) -> None:
    """No registrations, no keys (the test bench's reset: FLUSHALL on every primary)."""
    _gears_ops.reset(client)


def deploy_clean(sink: Sink, run: Any, label: str) -> tuple[Client, Any, float]:
    """A measurement's clean start: nothing registered or stored in Redis, Mongo's database
    `label` (run-scoped) dropped, `sink` deployed into it. (Redis client, the collection,
    seconds the deploy took); `clean_up()` ends it."""
    client, mongo = run.redis(), run.mongo()
    database = run.database(label)
    reset(client)
    mongo.drop_database(database)
    deploy_s = sink.deploy(run.redis_url, run.mongo_url_from_redis, database)
    return client, mongo[database][COLLECTION], deploy_s


def clean_up(client: Client, coll: Any) -> None:
    """Undo deploy_clean(): nothing registered or stored in Redis, the database dropped."""
    reset(client)
    coll.database.client.drop_database(coll.database.name)


def backlog_per_shard(client: Client) -> list[int]:
    """Changes waiting in the write-behind streams of each primary (slot order)."""
    return [sum(int(node.xlen(k)) for k in node.scan_iter(STREAM_PATTERN, count=1000))
            for node in primaries(client)]


def backlog(client: Client) -> int:
    """Changes waiting in the write-behind streams (of every shard)."""
    return sum(backlog_per_shard(client))

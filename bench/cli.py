"""`python -m bench`: P1 write path, P2 drain, P3 lag, P4 redeploy -- stock vs ours, one run.

    python -m bench                                  # own servers: stand-in + nx-27017
    python -m bench --redis-url redis://127.0.0.1:6390 --mongo-url mongodb://127.0.0.1:27017
    python -m bench --smoke --json /tmp/smoke.json   # seconds, tiny N: does it still work?
    python -m bench --cluster-url redis://127.0.0.1:7601   # P1-P3 on a RedisGears cluster
    python -m bench --cluster                        # P1-P3 on the test bench's stand-in cluster

See bench/README.md for what each phase measures, the recorded figures and their caveats.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import pymongo
import redis

from . import env, p1_write, p2_drain, p3_lag, p4_redeploy, p5_burst, p6_backlog, p7_sink_cpu
from .proxy import PausableProxy
from .sinks import FLOOR_LABELS, Sink, ours, reset

PHASES = ("p1", "p2", "p3", "p4", "burst", "backlog", "sinkcpu")
CLUSTER_PHASES = ("p1", "p2", "p3", "burst")  # the phases that know a cluster's shards
BENCH_HOME = Path(os.environ.get("WBLOAD_BENCH_HOME", Path.home() / ".cache" / "wbload-bench"))
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


class Skipped(Exception):
    """A phase that cannot run with these servers (reported, not an error)."""


class Run:
    """The servers of this run and how to reach them; one per `python -m bench`."""

    def __init__(self, redis_url: str, mongo_url: str, mongo_url_from_redis: str | None,
                 cluster: bool = False) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.redis_url = redis_url
        self.cluster = cluster
        # each primary's URL and slots; None on one node
        self.shards = env.slot_map(redis_url) if cluster else None
        self.mongo_url = mongo_url
        self.proxy: PausableProxy | None = None
        if mongo_url_from_redis is None:
            host, port = env.host_port(mongo_url)
            self.proxy = PausableProxy(host, port)
            self.mongo_url_from_redis = env.with_host_port(mongo_url, "127.0.0.1",
                                                           self.proxy.port)
        else:
            self.mongo_url_from_redis = mongo_url_from_redis
        self.mongo_url_via_proxy = self.mongo_url_from_redis
        self._mongo: pymongo.MongoClient[Any] | None = None
        self._clients: list[env.Client] = []

    def redis(self) -> env.Client:
        """A client of the node, or a RedisCluster (keys routed to their shard)."""
        client: env.Client = (env.cluster_client(self.redis_url) if self.cluster
                              else env.redis_client(self.redis_url))
        self._clients.append(client)
        return client

    def mongo(self) -> pymongo.MongoClient[Any]:
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=10_000)
        return self._mongo

    def database(self, suffix: str) -> str:
        return f"wbbench_{self.id}_{suffix}"

    def close(self) -> None:
        for c in self._clients:
            c.close()
        if self._mongo is not None:
            self._mongo.close()
        if self.proxy is not None:
            self.proxy.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="Redis with RedisGears 1.2 + RedisJSON (default: start "
                   "the stand-in in front of a local redis-server). EVERY REGISTRATION IS "
                   "UNREGISTERED AND THE SERVER FLUSHED: use a throwaway server.")
    p.add_argument("--cluster-url", help="any node of a RedisGears 1.2 Redis Cluster: P1-P3 run "
                   "on the whole cluster (ALL REGISTRATIONS ARE UNREGISTERED AND EVERY PRIMARY "
                   "FLUSHED)")
    p.add_argument("--cluster", action="store_true", help="start the test bench's stand-in "
                   "cluster (3 primaries, tests/testbench/cluster.py) and run P1-P3 on it")
    p.add_argument("--mongo-url", help="MongoDB as this process reaches it (default: start "
                   "mongod if on PATH, else nx-27017)")
    p.add_argument("--mongo-url-from-redis", help="MongoDB as Redis reaches it, when Redis "
                   "cannot reach this machine's loopback (default: a pausable proxy on "
                   "127.0.0.1; without it P2 cannot take Mongo down and is skipped)")
    p.add_argument("--phases", help="comma list (default: all; on a cluster "
                   f"{','.join(CLUSTER_PHASES)})")
    p.add_argument("--sinks", default="stock,ours", help="compared in P1-P3 (default: "
                   "stock,ours; bare always runs in P1)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=RECIPE",
                   help="also compare this recipe file (deployed with wbload deploy); "
                   "repeatable")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for CI")
    p.add_argument("--p1-seconds", type=float, default=3.0)
    p.add_argument("--p1-clients", type=int, default=2, help="client processes (default 2: "
                   "more only steal the 2 CPUs of the reference machine from the server)")
    p.add_argument("--p1-depth", type=int, default=64, help="pipeline depth per client")
    p.add_argument("--p1-floor", action="store_true", help="P1 also with a sync KeysReader "
                   "that does nothing (the least any KeysReader-based recipe costs) and one "
                   "that only XADDs the key (the least rgsync's model costs)")
    p.add_argument("--p1-tool", choices=("own", "redis-benchmark"), default="own",
                   help="P1 clients: the bench's own (processes, raw sockets) or Debian's "
                   "redis-benchmark (-c CLIENTS -P DEPTH; e.g. 16 x 1 unpipelined)")
    p.add_argument("--p1-rounds", type=int, default=3, help="interleaved rounds; the median "
                   "is reported")
    p.add_argument("--p2-n", type=int, default=2000, help="backlog size (default 2000)")
    p.add_argument("--p2-rounds", type=int, default=2, help="interleaved rounds; the median "
                   "is reported")
    p.add_argument("--p2-outage", choices=("stall", "down"), default="stall",
                   help="how Mongo is paused: frozen (default) or down (see bench/p2_drain.py)")
    p.add_argument("--p3-seconds", type=float, default=10.0)
    p.add_argument("--p3-rate", type=float, help="writes/s (default: half of ours' P2 rate)")
    p.add_argument("--p4-repeats", type=int, default=3)
    p.add_argument("--burst-rounds", type=int, default=3, help="burst-then-silence rounds")
    p.add_argument("--burst-count", type=int, default=4, help="bursts per round")
    p.add_argument("--burst-clients", type=int, default=4, help="concurrent clients per burst")
    p.add_argument("--burst-writes", type=int, default=100, help="pipelined JSON.SET per "
                   "client per burst (fresh keys)")
    p.add_argument("--burst-gap", type=float, default=0.3, help="seconds between bursts")
    p.add_argument("--burst-silence", type=float, default=10.0, help="seconds of silence "
                   "after the last burst; what is not in Mongo then is 'left'")
    p.add_argument("--backlog-n", type=int, default=1000, help="changes queued to measure "
                   "backlog bytes per change")
    p.add_argument("--sinkcpu-n", type=int, default=100, help="documents per batch")
    p.add_argument("--sinkcpu-batches", type=int, default=20)
    p.add_argument("--sink-python", type=Path,
                   default=BENCH_HOME / "gears-py37" / "bin" / "python",
                   help="a Python 3.7 for the sink CPU phase (default: the stand-in's)")
    p.add_argument("--sink-packages", type=Path, default=BENCH_HOME / "sinkcpu-py37",
                   help="pip --target dir with pymongo 4.7.3 and rgsync 1.2.0 (no deps)")
    p.add_argument("--json", type=Path, help="results file (default: bench/results/"
                   "<redis kind>-<time>.json)")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="only print the tables of an earlier results file")
    args = p.parse_args(argv)
    if args.smoke:
        args.p1_seconds, args.p1_clients, args.p1_depth, args.p1_rounds = 0.5, 2, 8, 1
        args.p2_n, args.p2_rounds, args.p3_seconds, args.p4_repeats = 30, 1, 1.0, 1
        args.p3_rate = args.p3_rate or 20.0
        args.burst_rounds, args.burst_count, args.burst_clients = 1, 2, 2
        args.burst_writes, args.burst_gap, args.burst_silence = 10, 0.1, 3.0
        args.backlog_n, args.sinkcpu_n, args.sinkcpu_batches = 30, 10, 2
    if sum(map(bool, (args.redis_url, args.cluster_url, args.cluster))) > 1:
        p.error("--redis-url, --cluster-url and --cluster exclude each other")
    args.on_cluster = bool(args.cluster_url or args.cluster)
    if args.on_cluster and args.p1_tool == "redis-benchmark":
        p.error("--p1-tool redis-benchmark: not on a cluster (its keys would need {tag}s)")
    default = CLUSTER_PHASES if args.on_cluster else PHASES
    args.phases = [x for x in (args.phases or ",".join(default)).split(",") if x]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}")
    return args


def sinks_from(args: argparse.Namespace) -> list[Sink]:
    out = []
    for label in [s for s in args.sinks.split(",") if s]:
        if label == "ours":
            out.append(ours())
        elif label == "stock":
            out.append(Sink("stock"))
        else:
            raise SystemExit(f"unknown sink {label!r} (stock, ours; more with --variant)")
    for item in args.variant:
        label, sep, path = item.partition("=")
        if not sep or label in ("bare", "stock", "ours", *FLOOR_LABELS) or not Path(path).is_file():
            raise SystemExit(f"--variant {item!r}: want LABEL=RECIPE_FILE, a new label")
        out.append(Sink(label, Path(path).resolve()))
    return out


def code_version() -> dict[str, Any]:
    """Which commit was measured, and whether recipes/ or loader/ differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=env.REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "uncommitted_in_recipes_or_loader": bool(git("status", "--porcelain", "--",
                                                         "recipes", "loader"))}


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    sinks = sinks_from(args)
    own = env.OwnServers()
    try:
        if args.cluster:
            redis_url = own.start_cluster()
        else:
            redis_url = args.cluster_url or args.redis_url or own.start_gears()
        mongo_url = args.mongo_url or own.start_mongo()
        env.wait_for_ping(redis_url)
        if env.cluster_enabled(redis_url) != args.on_cluster:
            raise SystemExit(f"{redis_url}: a Redis Cluster node: use --cluster-url"
                             if not args.on_cluster else
                             f"{redis_url}: not a Redis Cluster node: use --redis-url")
        results: dict[str, Any] = {
            "bench": "wbload performance (issue 6)",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "code": code_version(),
            "servers": {
                "redis": (env.describe_cluster(redis_url) if args.on_cluster
                          else env.describe_redis(redis_url)),
                "mongo": env.describe_mongo(mongo_url),
                "started_by_bench": {"redis": not (args.redis_url or args.cluster_url),
                                     "mongo": args.mongo_url is None},
            },
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "errors": {},
        }
        servers = results["servers"]
        if servers["redis"]["kind"] == "no-gears":
            raise SystemExit(f"{redis_url}: no RedisGears (neither module rg nor RG.PYSTATS)")
        on = f"{servers['redis']['label']} + {servers['mongo']['label']}"
        results["on"] = on
        print(f"bench on: {on}; {results['machine']['cpus']} CPUs", flush=True)
        run = Run(redis_url, mongo_url, args.mongo_url_from_redis, cluster=args.on_cluster)
        results["servers"]["mongo_path_from_redis"] = (
            "pausable proxy on 127.0.0.1" if run.proxy else "given URL (no pause possible)")
        try:
            for phase in args.phases:
                print(f"--- {phase} ...", flush=True)
                t = time.monotonic()
                try:
                    if run.cluster and phase not in CLUSTER_PHASES:
                        raise Skipped(f"not on a cluster (only {', '.join(CLUSTER_PHASES)} "
                                      "know the shards)")
                    results[phase] = {"on": on, **PHASE_RUNNERS[phase](run, args, sinks, results)}
                except Skipped as e:
                    results[phase] = {"on": on, "skipped": str(e)}
                    print(f"    {phase} skipped: {e}", flush=True)
                except Exception as e:  # one phase failing must not hide the others
                    results["errors"][phase] = f"{type(e).__name__}: {e}"
                    traceback.print_exc()
                    with contextlib.suppress(Exception):
                        reset(run.redis())
                print(f"    {phase} took {time.monotonic() - t:.1f}s", flush=True)
        finally:
            run.close()
    finally:
        own.close()
    kind = results["servers"]["redis"]["kind"]
    path = args.json or DEFAULT_RESULTS / (
        f"{'cluster-' if args.on_cluster else ''}{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report(results))
    print(f"results: {path}")
    return 1 if results["errors"] else 0


# --- phases ---------------------------------------------------------------------------------
def run_p1(run: Run, args: argparse.Namespace, sinks: list[Sink], _: dict) -> dict:
    """Rounds of bare, then each sink, interleaved: slow drift (other load) hits all alike."""
    client = run.redis()
    out: dict[str, Any] = {"note": "Mongo down (proxy refusing) while a recipe is registered: "
                           "only the synchronous part is measured" if run.proxy else
                           "Mongo reachable: the drain runs meanwhile"}
    keys = 50 if args.smoke else 1000
    warmup = 0.2 if args.smoke else 1.0
    configs = [Sink("bare"), *([Sink(x) for x in FLOOR_LABELS] if args.p1_floor else []), *sinks]
    rounds: dict[str, list[dict[str, Any]]] = {s.label: [] for s in configs}
    for round_no in range(args.p1_rounds):
        for sink in configs:
            reset(client)
            database = run.database(f"p1_{sink.label}")
            if run.proxy:
                run.proxy.pause()
            try:
                sink.deploy(run.redis_url, run.mongo_url_from_redis, database)
                _reset_commandstats(env.primaries(client))
                if args.p1_tool == "redis-benchmark":
                    res = p1_write.measure_redis_benchmark(run.redis_url, args.p1_clients,
                                                           args.p1_depth, args.p1_seconds)
                else:
                    res = p1_write.measure(run.redis_url, args.p1_clients, args.p1_depth,
                                           args.p1_seconds, warmup=warmup,
                                           keys_per_client=keys, shards=run.shards)
                res["server_us_per_json_set"] = _json_set_usec(env.primaries(client))
            finally:
                reset(client)
                if run.proxy:
                    run.proxy.resume()
                run.mongo().drop_database(database)
            rounds[sink.label].append(res)
            print(f"    round {round_no + 1} {sink.label}: {res['ops_per_s']:.0f} JSON.SET/s",
                  flush=True)
    for label, results in rounds.items():
        rates = [r["ops_per_s"] for r in results]  # in the order measured
        out[label] = {**results[0], "ops_per_s": statistics.median(rates),
                      "best_ops_per_s": max(rates), "rounds": [round(r) for r in rates]}
        usec = [r["server_us_per_json_set"] for r in results if r.get("server_us_per_json_set")]
        out[label]["server_us_per_json_set"] = statistics.median(usec) if usec else None
        out[label]["server_us_rounds"] = [round(u, 1) for u in usec]
    out["ratio_to_bare"] = {s.label: _median_ratio(rounds[s.label], rounds["bare"], "ops_per_s")
                            for s in configs[1:]}
    return out


def _reset_commandstats(nodes: list[redis.Redis]) -> None:
    for node in nodes:
        with contextlib.suppress(redis.RedisError):
            node.config_resetstat()


def _json_set_usec(nodes: list[redis.Redis]) -> float | None:
    """Server-side microseconds per JSON.SET since the last CONFIG RESETSTAT (INFO
    commandstats): the command with the sync KeysReader it runs, less sensitive to the
    clients' share of the CPUs than ops/s. On a cluster: every primary's usec over all
    their calls."""
    usec = calls = 0.0
    try:
        for node in nodes:
            stats = node.info("commandstats").get("cmdstat_json.set") or {}
            if len(nodes) == 1:
                return float(stats["usec_per_call"]) if "usec_per_call" in stats else None
            usec += float(stats.get("usec", 0))
            calls += float(stats.get("calls", 0))
    except redis.RedisError:
        return None
    return usec / calls if calls else None


def _median_ratio(results: list[dict[str, Any]], reference: list[dict[str, Any]],
                  key: str) -> float:
    """Median over rounds of result / reference of the same round (drift cancels out)."""
    return statistics.median(r[key] / ref[key] if ref[key] else float("nan")
                             for r, ref in zip(results, reference))


def run_p2(run: Run, args: argparse.Namespace, sinks: list[Sink], _: dict) -> dict:
    """Rounds of raw, then each sink, interleaved; the median rate of each is reported."""
    if run.proxy is None:
        raise Skipped("Mongo can only be paused through the bench's proxy, which Redis "
                      "cannot reach when --mongo-url-from-redis is given")
    rounds: dict[str, list[dict[str, Any]]] = {"raw": [], **{s.label: [] for s in sinks}}
    for round_no in range(args.p2_rounds):
        rounds["raw"].append(p2_drain.raw(run, args.p2_n))
        print(f"    round {round_no + 1} raw: {rounds['raw'][-1]['docs_per_s']:.0f} docs/s",
              flush=True)
        for sink in sinks:
            res = p2_drain.drain(sink, run, args.p2_n, outage=args.p2_outage)
            rounds[sink.label].append(res)
            print(f"    round {round_no + 1} {sink.label}: {res['docs_per_s']:.0f} docs/s "
                  f"({res['drain_s_from_resume']:.1f}s from resume, paused "
                  f"{res['pause_s']:.1f}s)", flush=True)
    out: dict[str, Any] = {}
    for label, results in rounds.items():
        rates = [r["docs_per_s"] for r in results]  # in the order measured
        out[label] = {**results[0], "docs_per_s": statistics.median(rates),
                      "rounds": [round(r) for r in rates]}
        if "docs_per_s_from_resume" in results[0]:
            out[label]["docs_per_s_from_resume"] = statistics.median(
                r["docs_per_s_from_resume"] for r in results)
    out["ratio_to_raw"] = {s.label: _median_ratio(rounds[s.label], rounds["raw"], "docs_per_s")
                           for s in sinks}
    if "stock" in rounds:
        out["ratio_to_stock"] = {
            s.label: _median_ratio(rounds[s.label], rounds["stock"], "docs_per_s")
            for s in sinks if s.label != "stock"}
    return out


def run_p3(run: Run, args: argparse.Namespace, sinks: list[Sink], results: dict) -> dict:
    rate = args.p3_rate
    source = "--p3-rate"
    if rate is None:
        drained = results.get("p2", {}).get("ours", {}).get("docs_per_s")
        rate, source = (drained / 2, "half of ours' P2 rate") if drained else (50.0, "default")
    out: dict[str, Any] = {"rate": rate, "rate_from": source}
    for sink in sinks:
        out[sink.label] = p3_lag.lag(sink, run, rate, args.p3_seconds)
        lag = out[sink.label]["lag_ms"]
        print(f"    {sink.label}: p50 {lag['p50']:.0f} ms, p99 {lag['p99']:.0f} ms", flush=True)
    return out


def run_p4(run: Run, args: argparse.Namespace, _sinks: list[Sink], _: dict) -> dict:
    return p4_redeploy.redeploy(run, args.p4_repeats)


def run_burst(run: Run, args: argparse.Namespace, sinks: list[Sink], _: dict) -> dict:
    return p5_burst.burst(sinks, run, args.burst_rounds, bursts=args.burst_count,
                          clients=args.burst_clients, per_client=args.burst_writes,
                          gap_s=args.burst_gap, silence_s=args.burst_silence)


def run_backlog(run: Run, args: argparse.Namespace, sinks: list[Sink], _: dict) -> dict:
    if run.proxy is None:
        raise Skipped("Mongo can only be taken down through the bench's proxy")
    return p6_backlog.backlog_bytes(sinks, run, args.backlog_n)


def run_sinkcpu(run: Run, args: argparse.Namespace, _sinks: list[Sink], _: dict) -> dict:
    try:
        return p7_sink_cpu.sink_cpu(run, args.sink_python, args.sink_packages,
                                    args.sinkcpu_n, args.sinkcpu_batches)
    except FileNotFoundError as e:
        raise Skipped(str(e)) from None


PHASE_RUNNERS = {"p1": run_p1, "p2": run_p2, "p3": run_p3, "p4": run_p4, "burst": run_burst,
                 "backlog": run_backlog, "sinkcpu": run_sinkcpu}


# --- report ---------------------------------------------------------------------------------
def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _cluster_tag(results: dict[str, Any]) -> str:
    """' (cluster, N primaries)' for a table's title on a cluster, else ''."""
    redis_ = results.get("servers", {}).get("redis", {})
    if redis_.get("topology") != "cluster":
        return ""
    return f" (cluster, {redis_['node_count']} primaries)"


def report(results: dict[str, Any]) -> str:
    box = results["machine"]
    where = _cluster_tag(results)
    out = [f"== wbload bench on {results.get('on', '?')} "
           f"({box['cpus']} CPUs, load {box['loadavg_at_start'][0]:.2f} at start)"]
    for phase in PHASES:
        if "skipped" in results.get(phase, {}):
            out.append(f"\n{phase.upper()}: skipped: {results[phase]['skipped']}")
    p1 = results.get("p1")
    if p1 and "skipped" not in p1:
        rows = [["P1 write path" + where, "JSON.SET/s", "ratio to bare", "server us/JSON.SET",
                 "rounds"]]
        for label, res in p1.items():
            if isinstance(res, dict) and "ops_per_s" in res:
                ratio = p1["ratio_to_bare"].get(label)
                usec = res.get("server_us_per_json_set")
                rows.append([label, f"{res['ops_per_s']:.0f}",
                             "1.00" if label == "bare" else f"{ratio:.2f}",
                             f"{usec:.1f}" if usec else "-",
                             " ".join(str(r) for r in res.get("rounds", []))])
        per_shard = (" per shard (one connection per shard per client), JSON.SET/s of the "
                     "whole cluster" if where else "")
        out += ["", _table(rows), f"({p1['bare']['clients']} clients x pipeline "
                f"{p1['bare']['pipeline_depth']}{per_shard}, {p1['bare']['seconds']:g}s per "
                "round, median of rounds (listed in the order run), ratios = median of "
                f"per-round ratios; {p1['note']})"]
    p2 = results.get("p2")
    if p2 and "skipped" not in p2:
        rows = [["P2 drain" + where, "docs/s", "from resume", "ratio to raw", "ratio to stock",
                 "backlog B/change", "rounds"]]
        for label, res in p2.items():
            if not isinstance(res, dict) or "docs_per_s" not in res:
                continue
            rows.append([
                label, f"{res['docs_per_s']:.0f}",
                f"{res.get('docs_per_s_from_resume', res['docs_per_s']):.0f}",
                f"{p2['ratio_to_raw'][label]:.2f}" if label in p2.get("ratio_to_raw", {})
                else "1.00",
                f"{p2['ratio_to_stock'][label]:.2f}" if label in p2.get("ratio_to_stock", {})
                else "-",
                str(res.get("backlog_bytes_per_change") or "-"),
                " ".join(str(r) for r in res.get("rounds", [])),
            ])
        sample = next((v for v in p2.values() if isinstance(v, dict) and "outage" in v),
                      {"outage": "?", "pause_s": float("nan")})
        out += ["", _table(rows), f"(backlog of {p2['raw']['n']} built with Mongo paused "
                f"({sample['outage']}, ~{sample['pause_s']:.1f}s); median of rounds, ratios = "
                "median of per-round ratios; raw = pymongo bulk_write of the same ReplaceOne "
                "upserts, same batches, same path)"]
        spread = next((v["backlog_per_shard"] for v in p2.values()
                       if isinstance(v, dict) and "backlog_per_shard" in v), None)
        if spread:
            out.append(f"(backlog over the shards, e.g. {' + '.join(map(str, spread))}; every "
                       "shard's StreamReader drains its own stream)")
    p3 = results.get("p3")
    if p3 and "skipped" not in p3:
        rows = [["P3 lag" + where, "rate/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "p99/(2xBATCH_DURATION_MS)", "batch run ms", "p99/(2xbatch run)"]]
        for label, res in p3.items():
            if isinstance(res, dict) and "lag_ms" in res:
                lag = res["lag_ms"]
                run_ms = float(res["stream_reader"].get("avgRunDurationMS") or "nan")
                rows.append([label, f"{res['rate_achieved']:.0f}", f"{lag['p50']:.0f}",
                             f"{lag['p95']:.0f}", f"{lag['p99']:.0f}", f"{lag['max']:.0f}",
                             f"{res['p99_over_2x_batch_duration']:.2f}", f"{run_ms:.0f}",
                             f"{lag['p99'] / (2 * run_ms):.2f}" if run_ms > 0 else "-"])
        out += ["", _table(rows), f"(target {p3['rate']:.0f}/s = {p3['rate_from']}; "
                "BATCH_DURATION_MS = 100; batch run = the StreamReader's avgRunDurationMS; lag "
                "includes the write and <= 10 ms polling)"]
    p4 = results.get("p4")
    if p4 and "skipped" not in p4:
        server = p4["pyexecute_calls_server"]
        out += ["", _table([
            ["P4 redeploy when current", "value"],
            ["wall time (median of runs)", f"{p4['wall_s']['median']:.2f}s "
             f"(runs {', '.join(f'{w:.2f}' for w in p4['wall_s']['runs'])})"],
            ["RG.PYEXECUTE sent (client count)", str(p4["pyexecute_calls_client"])],
            ["RG.PYEXECUTE (server commandstats)", "n/a (stand-in)" if server is None
             else str(server)],
            ["first deploy (for reference)", f"{p4['first_deploy_s']:.2f}s"],
            ["output", p4["output"]],
        ])]
    burst = results.get("burst")
    if burst and "skipped" not in burst:
        rows = [["burst-then-silence", "writes/round", "left per round", "rounds with leftovers",
                 "stranded per round"]]
        for label, res in burst.items():
            if isinstance(res, dict) and "left_per_round" in res:
                rows.append([label, str(res["rounds"][0]["writes"]),
                             " ".join(str(x) for x in res["left_per_round"]),
                             str(res["rounds_with_leftovers"]),
                             " ".join("?" if x is None else str(x)
                                      for x in res.get("stranded_per_round", []))])
        cfg = burst["config"]
        out += ["", _table(rows), f"({cfg.get('bursts')} bursts x {cfg.get('clients')} clients "
                f"x {cfg.get('per_client')} pipelined JSON.SET of fresh keys, "
                f"{cfg.get('gap_s')}s apart, deleting some keys of the previous burst; left = "
                "entries unacknowledged + keys wrong in Mongo "
                f"{cfg.get('silence_s')}s after the last burst; stranded = still waiting "
                "with Gears idle, '?' = still draining when the bench stopped looking)"]
    backlog = results.get("backlog")
    if backlog and "skipped" not in backlog:
        rows = [["backlog", "bytes per queued change", "entries", "stream bytes"]]
        for label, res in backlog.items():
            if isinstance(res, dict) and "bytes_per_change" in res:
                rows.append([label, str(res["bytes_per_change"]), str(res["entries"]),
                             str(res["stream_bytes"])])
        out += ["", _table(rows), f"({backlog['n']} documents of ~{backlog['document_bytes']} "
                "bytes written with Mongo down; MEMORY USAGE ... SAMPLES 0 / XLEN)"]
    cpu = results.get("sinkcpu")
    if cpu and "skipped" not in cpu:
        rows = [["sink CPU (outside Gears)", "CPU us/doc", "wall ms/batch"]]
        for label in ("ours", "stock"):
            rows.append([label, f"{cpu[label]['cpu_us_per_doc']:.0f}",
                         f"{cpu[label]['wall_ms_per_batch']:.0f}"])
        out += ["", _table(rows), f"(WriteData of {cpu['n']} upserts, median of "
                f"{cpu['batches']} batches, Python {cpu['python']}, pymongo {cpu['pymongo']}; "
                f"ours/stock CPU {cpu['cpu_ratio_ours_to_stock']:.2f})"]
    for phase, error in results.get("errors", {}).items():
        out.append(f"\n{phase}: ERROR {error}")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

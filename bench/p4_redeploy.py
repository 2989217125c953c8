"""P4 redeploy when current: `wbload deploy` of the recipe that is already registered.

The recipe is first deployed once (that deploy's time is reported too); then the same
command runs `repeats` times as a subprocess, as an operator or a CI job runs it: wall time
includes starting Python. The commands it sent are counted client-side by running it under
`bench.deploy_probe` (redis-py's serializer wrapped); on a real RedisGears the server's own
count (`INFO commandstats`, cmdstat_rg.pyexecute) is compared as well.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis

from .sinks import OURS_RECIPE, reset, wbload_argv


def _pyexecute_calls(client: redis.Redis) -> int | None:
    """Server-side RG.PYEXECUTE count, where the server keeps one (a real Gears)."""
    try:
        stats = client.info("commandstats")
    except redis.RedisError:
        return None
    for name in ("cmdstat_rg.pyexecute", "cmdstat_RG.PYEXECUTE"):
        if name in stats:
            return int(stats[name]["calls"])
    return 0 if any(k.startswith("cmdstat_rg.") for k in stats) else None


def redeploy(run: Any, repeats: int = 3) -> dict:
    client = run.redis()
    database = run.database("p4")
    reset(client)
    argv = wbload_argv(OURS_RECIPE, run.redis_url, run.mongo_url_from_redis, database)
    wbload = [sys.executable, "-m", "wbload.cli", *argv]

    started = time.monotonic()
    first = subprocess.run(wbload, capture_output=True, text=True, timeout=600)
    first_s = time.monotonic() - started
    if first.returncode != 0:
        raise RuntimeError(f"first deploy failed: {first.stderr.strip()}")

    server_before = _pyexecute_calls(client)
    walls, outputs = [], []
    for _ in range(repeats):
        t = time.monotonic()
        done = subprocess.run(wbload, capture_output=True, text=True, timeout=120)
        walls.append(time.monotonic() - t)
        outputs.append(done.stdout.strip())
        if done.returncode != 0:
            raise RuntimeError(f"redeploy failed ({done.returncode}): {done.stderr.strip()}")
    server_after = _pyexecute_calls(client)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "probe.json")
        probe = [sys.executable, "-m", "bench.deploy_probe", *argv]
        env = dict(os.environ, BENCH_PROBE_OUT=out)
        t = time.monotonic()
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120, env=env,
                              cwd=str(OURS_RECIPE.parents[1]))
        probe_wall = time.monotonic() - t
        if done.returncode != 0:
            raise RuntimeError(f"probed redeploy failed: {done.stderr.strip()}")
        with open(out) as f:
            counted = json.load(f)
    reset(client)
    commands = counted["commands"]
    return {
        "first_deploy_s": round(first_s, 3),
        "first_deploy_output": first.stdout.strip(),
        "wall_s": {"median": statistics.median(walls), "max": max(walls),
                   "runs": [round(w, 3) for w in walls]},
        "output": outputs[-1],
        "pyexecute_calls_client": commands.get("RG.PYEXECUTE", 0),
        "pyexecute_calls_server": (None if server_before is None or server_after is None
                                   else server_after - server_before),
        "commands_sent": dict(sorted(commands.items())),
        "probe_wall_s": round(probe_wall, 3),
    }

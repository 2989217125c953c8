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

from .env import REPO, load_test_helper, redis_client

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
        if self.label == NOOP_LABEL:
            with redis_client(redis_url) as client:
                client.execute_command("RG.PYEXECUTE", NOOP_KEYSREADER)
            return time.monotonic() - started
        if self.label == "stock":
            code = STOCK_RECIPE.format(url=mongo_url_from_redis, db=database)
            with redis_client(redis_url) as client:
                client.execute_command("RG.PYEXECUTE", code, "REQUIREMENTS", *REQUIREMENTS)
        else:
            wbload_deploy(self.recipe or OURS_RECIPE, redis_url, mongo_url_from_redis,
                          database, check=True)
        return time.monotonic() - started


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
def stream_reader_stats(client: redis.Redis) -> dict[str, Any] | None:
    """RegistrationData of the (one) StreamReader registered, if any."""
    for reg in registrations(client):
        if reg.get("reader") == "StreamReader":
            return dict(reg["RegistrationData"])
    return None


def reset(client: redis.Redis) -> None:
    """No registrations, no keys (the test bench's reset)."""
    _gears_ops.reset(client)


def backlog(client: redis.Redis) -> int:
    """Changes waiting in the write-behind streams."""
    return sum(int(client.xlen(k)) for k in client.scan_iter(STREAM_PATTERN, count=1000))

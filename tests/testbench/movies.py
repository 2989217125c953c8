"""Deploying the movies recipe on the bench and checking that Mongo mirrors Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from pymongo.database import Database

from testbench import gears_ops
from testbench.cli import Run, wbload
from testbench.polling import wait_for

MOVIES = str(Path(__file__).resolve().parents[2] / "recipes" / "movies.py")
SYNC_TIMEOUT = 60


def deploy(gears_url: str, mongo_url: str, db: Database, *extra: str) -> Run:
    """`wbload deploy recipes/movies.py` into database `db`, with quick batches."""
    return wbload("deploy", MOVIES, "--redis-url", gears_url, "--mongo-url", mongo_url,
                  "--param", f"MONGO_DATABASE={db.name}", "--param", "BATCH_DURATION_MS=50",
                  *extra)


def wait_mirrored(db: Database, expected: dict[str, dict[str, Any] | None]) -> None:
    """Wait until Mongo holds exactly `expected` (None: no document) for each key id.

    Mongo's own `_id` is ignored unless the expected document has one.
    """

    def differences() -> list[str]:
        wrong = []
        for key_id, document in expected.items():
            keep_id = document is not None and "_id" in document
            found = [{k: v for k, v in d.items() if k != "_id" or keep_id}
                     for d in db.movies.find({"movieId": key_id})]
            if found != ([] if document is None else [document]):
                wrong.append(key_id)
        return wrong

    wait_for(lambda: not differences(), SYNC_TIMEOUT, "Mongo to mirror Redis")


def registration_ids(client: redis.Redis) -> list[str]:
    return sorted(r["id"] for r in gears_ops.registrations(client))


def status(gears_url: str) -> dict[str, Any]:
    """`wbload status --json`, parsed."""
    run = wbload("status", "--redis-url", gears_url, "--json")
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout)


def backlog(gears_url: str) -> int:
    """Changes still to write, by `wbload status --json`: every write-behind's backlog, older
    versions still draining and orphaned streams."""
    return _waiting(status(gears_url))


def _waiting(report: dict[str, Any]) -> int:
    waiting = sum(report["orphan_streams"].values())
    for wb in report["write_behinds"]:
        waiting += wb["backlog"] + sum(r["backlog"] or 0 for r in wb["draining"])
    return waiting


def wait_drained(gears_url: str, timeout: float = SYNC_TIMEOUT) -> None:
    """Wait until `wbload status --json` shows no change left to write (older versions still
    registered count with their streams)."""
    wait_for(lambda: backlog(gears_url) == 0, timeout,
             "the backlog to return to 0 (wbload status --json)")

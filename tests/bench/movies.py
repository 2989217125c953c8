"""Deploying the movies recipe on the bench and checking that Mongo mirrors Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from pymongo.database import Database

from bench import gears_ops
from bench.cli import Run, wbload
from bench.polling import wait_for

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

"""The bench behaves like the real RedisGears 1.2 + rgsync 1.2.0 (shared/gears/README.md).

The tutorial's stock recipe, unchanged but for Mongo's address and database, must sync a plain
document, and must stall on an apostrophe exactly as observed on the real engine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from pymongo.database import Database

from testbench import gears_ops
from testbench.data import load_demo_movies
from testbench.polling import wait_for
from testbench.stock_recipe import STOCK_RECIPE
from testbench.stock_recipe import STOCK_REQUIREMENTS as REQUIREMENTS
from testbench.targets import GearsTarget, MongoTarget

pytestmark = pytest.mark.e2e

STREAM_READER = "MoviesWriteBehind.StreamReader"
APOSTROPHE_ERROR = "'str' object has no attribute 'items'"
SYNC_DEADLINE = 30.0


def deploy_stock_recipe(gears: GearsTarget, mongo: MongoTarget, db: Database[Any]) -> None:
    code = STOCK_RECIPE.format(url=mongo.url_from_redis, db=db.name)
    # The first deploy on a machine pip-installs the requirements inside the server.
    with gears.client(socket_timeout=300) as client:
        assert client.execute_command("RG.PYEXECUTE", code, "REQUIREMENTS", *REQUIREMENTS) == "OK"


def plain_movies() -> list[dict[str, Any]]:
    """Demo movies whose JSON has no apostrophe (most plots have one: "boy's room")."""
    return [m for m in load_demo_movies() if "'" not in json.dumps(m)]


def json_set(client: redis.Redis, movie: dict[str, Any]) -> None:
    client.execute_command("JSON.SET", f"MovieEntity:{movie['movieId']}", "$", json.dumps(movie))


def stream_backlog(client: redis.Redis) -> int:
    return sum(client.xlen(key) for key in client.scan_iter("_movies-stream-*"))


def stream_reader_failed(client: redis.Redis, times: int) -> dict[str, Any] | None:
    """The StreamReader's RegistrationData once its numFailures reached `times`, else None."""
    reg = gears_ops.registration_named(client, STREAM_READER)
    assert reg is not None, f"no {STREAM_READER} registered"
    stats: dict[str, Any] = reg["RegistrationData"]
    return stats if stats["numFailures"] >= times else None


def test_stock_recipe_syncs_a_plain_document(
    gears: GearsTarget, gears_clean: redis.Redis, mongo: MongoTarget, mongo_db: Database[Any]
) -> None:
    deploy_stock_recipe(gears, mongo, mongo_db)
    movie = plain_movies()[0]
    json_set(gears_clean, movie)

    doc = wait_for(
        lambda: mongo_db.movies.find_one({"movieId": movie["movieId"]}),
        SYNC_DEADLINE, f"movie {movie['movieId']} in Mongo",
    )
    assert doc["title"] == movie["title"]
    assert doc["year"] == movie["year"]
    wait_for(lambda: stream_backlog(gears_clean) == 0, SYNC_DEADLINE, "the stream to be trimmed")


def test_stock_recipe_stalls_on_an_apostrophe(
    gears: GearsTarget, gears_clean: redis.Redis, mongo: MongoTarget, mongo_db: Database[Any]
) -> None:
    deploy_stock_recipe(gears, mongo, mongo_db)
    template, later = plain_movies()[:2]
    schindler = dict(template, movieId="424", title="Schindler's List")
    json_set(gears_clean, schindler)

    stats = wait_for(
        lambda: stream_reader_failed(gears_clean, 1), SYNC_DEADLINE, "the first failed batch"
    )
    assert APOSTROPHE_ERROR in str(stats["lastError"])

    json_set(gears_clean, later)
    failures = stats["numFailures"]
    # Retried every 5 s; two more failures prove the later document had time to arrive.
    stats = wait_for(
        lambda: stream_reader_failed(gears_clean, failures + 2),
        SYNC_DEADLINE, "the batch to be retried and fail twice more",
    )
    assert APOSTROPHE_ERROR in str(stats["lastError"])
    assert mongo_db.movies.find_one({"movieId": later["movieId"]}) is None
    assert mongo_db.movies.count_documents({}) == 0
    assert stream_backlog(gears_clean) > 0

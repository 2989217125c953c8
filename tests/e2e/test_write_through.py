"""The write-through recipe: Mongo first, then Redis, and an acknowledgement per write."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from testbench.cli import wbload

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes" / "movies_write_through.py")


def deploy(gears_url: str, mongo_url: str, db_name: str, *extra: str):
    return wbload("deploy", RECIPE, "--redis-url", gears_url, "--mongo-url", mongo_url,
                  "--param", f"MONGO_DATABASE={db_name}", *extra)


def write_through(client: redis.Redis, key: str, document: dict, uuid: str) -> dict:
    """Write as a write-through client does, and wait for the acknowledgement."""
    client.execute_command("JSON.SET", f"__{{{key}}}", "$", json.dumps(document))
    reply = client.xread({f"{{{key}}}{uuid}": "0-0"}, count=1, block=5000)
    assert reply, f"no acknowledgement for {key} {uuid}"
    return reply[0][1][0][1]


def test_write_through_acknowledges_and_mirrors(gears, mongo, mongo_db, gears_clean) -> None:
    client = gears_clean
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db.name)
    assert deployed.exit_code == 0, deployed.output
    document = {"title": "Schindler's List", "cast": [{"name": "Liam"}], "year": 1993}

    ack = write_through(client, "MovieEntity:tt:1", {"#": "=u1", **document}, "u1")
    assert ack == {"status": "done"}
    assert mongo_db.movies.find_one({"movieId": "tt:1"}, {"_id": 0}) == {
        **document, "movieId": "tt:1"}
    assert json.loads(client.execute_command("JSON.GET", "MovieEntity:tt:1")) == document
    assert not client.exists("__{MovieEntity:tt:1}")

    ack = write_through(client, "MovieEntity:tt:1", {"#": "~u2"}, "u2")
    assert ack == {"status": "done"}
    assert mongo_db.movies.count_documents({}) == 0
    assert not client.exists("MovieEntity:tt:1")

    status = json.loads(wbload("status", "--redis-url", gears.url, "--json").stdout)
    (wt,) = status["write_behinds"]
    assert wt["name"] == "MoviesWriteThrough" and wt["complete"]


def test_failed_write_through_is_reported_and_redis_untouched(gears, mongo_db,
                                                               gears_clean) -> None:
    client = gears_clean
    deployed = deploy(gears.url, "mongodb://127.0.0.1:1", mongo_db.name,
                      "--param", "MONGO_TIMEOUT_MS=200")
    assert deployed.exit_code == 0, deployed.output
    ack = write_through(client, "MovieEntity:9", {"#": "=u9", "title": "lost?"}, "u9")
    assert ack["status"] == "failed" and "127.0.0.1:1" in ack["error"]
    assert not client.exists("MovieEntity:9")
    assert not client.exists("__{MovieEntity:9}")

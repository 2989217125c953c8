"""The movies recipe on the bench: deploy, the demo catalogue reaches Mongo, redeploys."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import redis

from testbench import gears_ops
from testbench.cli import wbload
from testbench.data import load_demo_movies
from testbench.movies import deploy, registration_ids, wait_mirrored


@pytest.fixture
def deployed(deployment, mongo, mongo_db):
    """The movies recipe deployed, on one node and on the cluster: a client of it."""
    result = deploy(deployment.url, mongo.url_from_redis, mongo_db)
    assert result.exit_code == 0, result.output
    client = deployment.client()
    yield client
    client.close()


def test_catalogue_lifecycle(deployment, mongo, mongo_db, deployed) -> None:
    client = deployed
    movies = {m["movieId"]: m for m in load_demo_movies()}
    assert len(movies) == 51
    with client.pipeline(transaction=False) as pipe:
        for key_id, movie in movies.items():
            pipe.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$",
                                 json.dumps(movie, ensure_ascii=False))
        pipe.execute()
    wait_mirrored(mongo_db, movies)
    assert mongo_db.movies.count_documents({}) == 51

    # Update 10; two of them lose a field.
    expected: dict[str, dict[str, Any] | None] = copy.deepcopy(movies)  # type: ignore[arg-type]
    for i, key_id in enumerate(list(movies)[:10]):
        movie = expected[key_id]
        assert movie is not None
        movie["title"] = movie["title"] + " (Director's Cut)"
        movie["imdbRating"] = 9.9
        if i < 2:
            del movie["tagline"]
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$",
                               json.dumps(movie, ensure_ascii=False))
    # Delete 5, by DEL, UNLINK and JSON.DEL.
    for i, key_id in enumerate(list(movies)[10:15]):
        command = ("DEL", "UNLINK", "JSON.DEL")[i % 3]
        client.execute_command(command, f"MovieEntity:{key_id}")
        expected[key_id] = None
    wait_mirrored(mongo_db, expected)
    assert mongo_db.movies.count_documents({}) == 46


def test_redeploy_same_version_sends_nothing(deployment, mongo, mongo_db, deployed,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    before = registration_ids(deployed)
    sent: list[str] = []
    original = redis.Redis.execute_command

    def spy(self, *args, **kwargs):
        sent.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", spy)
    result = deploy(deployment.url, mongo.url_from_redis, mongo_db)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout
    assert "RG.PYEXECUTE" not in sent
    assert registration_ids(deployed) == before


def test_version_bump_upgrades_and_older_is_refused(deployment, mongo, mongo_db, deployed) -> None:
    client = deployed
    client.execute_command("JSON.SET", "MovieEntity:before", "$", json.dumps({"v": 1}))
    wait_mirrored(mongo_db, {"before": {"v": 1, "movieId": "before"}})

    bumped = deploy(deployment.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.1.0")
    assert bumped.exit_code == 0, bumped.output
    versions = {r["name"]: json.loads(r["desc"])["version"]
                for r in gears_ops.registrations(client)}
    assert versions == {"MoviesWriteBehind.KeysReader": "1.1.0",
                        "MoviesWriteBehind.StreamReader": "1.1.0"}
    client.execute_command("JSON.SET", "MovieEntity:after", "$", json.dumps({"v": 2}))
    wait_mirrored(mongo_db, {"after": {"v": 2, "movieId": "after"}})

    before = registration_ids(client)
    older = deploy(deployment.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.0.5")
    assert older.exit_code == 6, older.output
    assert "newer" in older.stderr and "--force" in older.stderr
    assert len(older.stderr.strip().splitlines()) == 1
    assert registration_ids(client) == before


def test_status_reports_the_pair(deployment, deployed) -> None:
    deployed.execute_command("JSON.SET", "MovieEntity:s1", "$", json.dumps({"v": 1}))
    result = wbload("status", "--redis-url", deployment.url, "--json")
    assert result.exit_code == 0, result.output
    (status,) = json.loads(result.stdout)["write_behinds"]
    assert status["name"] == "MoviesWriteBehind" and status["version"] == "1.0.0"
    assert status["key_prefix"] == "MovieEntity"
    assert {r["reader"]: r["mode"] for r in status["readers"]} == {
        "KeysReader": "sync", "StreamReader": "async_local"}
    table = wbload("status", "--redis-url", deployment.url)
    assert "MoviesWriteBehind" in table.stdout and "BACKLOG" in table.stdout


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_status_reads_resp2_and_resp3(deployment, deployed, protocol: str) -> None:
    result = wbload("status", "--redis-url", deployment.url, "--json", "--protocol", protocol)
    assert result.exit_code == 0, result.output
    statuses = json.loads(result.stdout)["write_behinds"]
    assert [s["name"] for s in statuses] == ["MoviesWriteBehind"]


def test_undeploy_removes_both_readers(deployment, deployed) -> None:
    result = wbload("undeploy", "MoviesWriteBehind", "--redis-url", deployment.url)
    assert result.exit_code == 0, result.output
    assert gears_ops.registrations(deployed) == []
    again = wbload("undeploy", "MoviesWriteBehind", "--redis-url", deployment.url)
    assert again.exit_code == 8 and "no write-behind named" in again.stderr

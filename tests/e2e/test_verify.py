"""`wbload verify`: a probe goes through insert, update and delete, or a clear reason why not."""

from __future__ import annotations

from testbench.cli import wbload
from testbench.movies import MOVIES, deploy


def verify(gears, mongo, mongo_db, *extra: str):
    return wbload("verify", MOVIES, "--redis-url", gears.url, "--mongo-url",
                  mongo.url_from_redis, "--check-mongo-url", mongo.url,
                  "--param", f"MONGO_DATABASE={mongo_db.name}", *extra)


def test_verify_reports_each_step_and_cleans_up(deployment, mongo, mongo_db) -> None:
    gears = deployment
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    for _ in range(4):  # a probe per shard each time, wherever the URL points
        result = verify(gears, mongo, mongo_db)
        assert result.exit_code == 0, result.output
        for step in ("insert", "update", "delete"):
            assert f"MoviesWriteBehind: {step} reached Mongo in " in result.stdout
        assert "MoviesWriteBehind: verified" in result.stdout
    assert list(deployment.client().scan_iter("MovieEntity:*")) == []
    assert mongo_db.movies.count_documents({}) == 0


def test_verify_without_deploy_says_so(deployment, mongo, mongo_db) -> None:
    gears = deployment
    result = verify(gears, mongo, mongo_db)
    assert result.exit_code == 8, result.output
    assert "MoviesWriteBehind is not deployed" in result.stderr


def test_verify_names_why_mongo_is_not_reached(deployment, mongo, mongo_db) -> None:
    gears = deployment
    unreachable = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"
    deployed = wbload("deploy", MOVIES, "--redis-url", gears.url, "--mongo-url", unreachable,
                      "--param", f"MONGO_DATABASE={mongo_db.name}",
                      "--param", "RETRY_INTERVAL_S=1")
    assert deployed.exit_code == 0, deployed.output
    result = verify(gears, mongo, mongo_db, "--timeout", "12")
    assert result.exit_code == 10, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "the probe's insert" in line and "did not reach Mongo in 12s" in line
    assert "stuck in the stream, last error:" in line and "127.0.0.1:1" in line
    assert list(deployment.client().scan_iter("MovieEntity:*")) == []


def test_verify_when_mongo_is_unreachable_from_here(deployment, mongo, mongo_db) -> None:
    gears = deployment
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    result = verify(gears, mongo, mongo_db, "--check-mongo-url",
                    "mongodb://user:S3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300")
    assert result.exit_code == 10, result.output
    assert "cannot reach Mongo at mongodb://user:****@127.0.0.1:1" in result.stderr
    assert "S3cret" not in result.output

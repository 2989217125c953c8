"""Every bad input: one line saying what and how, a documented exit code, nothing touched."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from testbench import gears_ops
from testbench.cli import Run, wbload
from testbench.movies import MOVIES, deploy, wait_mirrored

MONGO_PASSWORD = "Mongo-S3cret-pw"
REDIS_PASSWORD = "Redis-S3cret-pw"
HEADER = "NAME = 'Broken'\nVERSION = '1.0.0'\nREQUIREMENTS = {requirements}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_error(run: Run, code: int, *phrases: str) -> None:
    assert run.exit_code == code, run.output
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("wbload: error: ")
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert MONGO_PASSWORD not in run.output and REDIS_PASSWORD not in run.output


def recipe(tmp_path: Path, body: str, requirements: str = "[]") -> str:
    path = tmp_path / "broken.py"
    path.write_text(HEADER.format(requirements=requirements) + body)
    return str(path)


@pytest.fixture
def previous(gears, mongo, mongo_db, gears_clean):
    """A working deployment that no failing command may disturb; its registrations and db."""
    result = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert result.exit_code == 0, result.output
    return gears_clean, sorted(r["id"] for r in gears_ops.registrations(gears_clean)), mongo_db


def unchanged(previous) -> bool:
    """Still registered with the same ids, and still syncing: a new document reaches Mongo."""
    client, ids, db = previous
    if sorted(r["id"] for r in gears_ops.registrations(client)) != ids:
        return False
    key_id = f"after-{uuid.uuid4().hex[:8]}"
    client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$", '{"after": "failure"}')
    wait_mirrored(db, {key_id: {"after": "failure", "movieId": key_id}})
    return True


def test_unreachable_redis() -> None:
    run = wbload("deploy", MOVIES, "--redis-url",
                 f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}")
    assert_one_line_error(run, 4, "cannot connect to Redis", "--wait")


def test_wrong_password(gears, previous) -> None:
    host = gears.url.split("://", 1)[1].rsplit("@", 1)[-1]
    run = wbload("deploy", MOVIES, "--redis-url",
                 f"redis://nobody:{REDIS_PASSWORD}@{host}")
    assert_one_line_error(run, 4, "refused the login")
    assert unchanged(previous)


def test_no_redisgears(plain_redis) -> None:
    run = wbload("deploy", MOVIES, "--redis-url", plain_redis.url)
    assert_one_line_error(run, 5, "no RedisGears")


def test_unknown_url_scheme() -> None:
    run = wbload("status", "--redis-url", f"http://u:{REDIS_PASSWORD}@localhost:6379")
    assert_one_line_error(run, 2, "unsupported Redis URL", "redis://")


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["/nonexistent/recipe.py"], ["no such recipe file"]),
        ([MOVIES, "--param", "NOPE=1"], ["unknown parameter NOPE"]),
        ([MOVIES, "--param", "BATCH_SIZE=many"], ["BATCH_SIZE", "whole number"]),
    ],
)
def test_bad_recipe_input_touches_nothing(gears, previous, args, phrases) -> None:
    run = wbload("deploy", *args, "--redis-url", gears.url)
    assert_one_line_error(run, 3, *phrases)
    assert unchanged(previous)


def test_syntax_error_names_file_and_line(gears, previous, tmp_path: Path) -> None:
    path = recipe(tmp_path, "GB(.run()\n")
    run = wbload("deploy", path, "--redis-url", gears.url)
    assert_one_line_error(run, 3, f"{path}:4:")
    assert unchanged(previous)


def test_requirement_that_cannot_install(gears, previous, tmp_path: Path) -> None:
    path = recipe(tmp_path, "x = 1\n", "['this-package-does-not-exist-wbload==0.0.1']")
    run = wbload("deploy", path, "--redis-url", gears.url)
    assert_one_line_error(run, 7, "could not install the requirements",
                          "this-package-does-not-exist-wbload==0.0.1")
    assert unchanged(previous)


def test_recipe_that_raises(gears, previous, tmp_path: Path) -> None:
    path = recipe(tmp_path, "raise Exception('boom at import')\n")
    run = wbload("deploy", path, "--redis-url", gears.url)
    assert_one_line_error(run, 7, "raised Exception: boom at import", "line 4")
    assert unchanged(previous)


def test_recipe_that_registers_nothing(gears, previous, tmp_path: Path) -> None:
    path = recipe(tmp_path, "x = 1\n")
    run = wbload("deploy", path, "--redis-url", gears.url)
    assert_one_line_error(run, 7, "did not register its readers")
    assert unchanged(previous)


def test_mongo_password_never_printed(gears, mongo_db, gears_clean) -> None:
    url = f"mongodb://admin:{MONGO_PASSWORD}@127.0.0.1:1/admin"
    rendered = wbload("render", MOVIES, "--mongo-url", url)
    assert rendered.exit_code == 0
    assert MONGO_PASSWORD not in rendered.output and "admin:****@" in rendered.stdout
    dry = wbload("deploy", MOVIES, "--mongo-url", url, "--redis-url", gears.url, "--dry-run")
    assert dry.exit_code == 0 and MONGO_PASSWORD not in dry.output
    assert "would install" in dry.stdout
    assert gears_ops.registrations(gears_clean) == []


def test_secret_key_keeps_the_password_out_of_redis_texts(gears, mongo, mongo_db,
                                                          gears_clean) -> None:
    client = gears_clean
    key = "wbload:secret:movies"
    url = mongo.url_from_redis
    rendered = wbload("render", MOVIES, "--mongo-url", url, "--secret-key", key)
    assert f"MONGO_URL = 'redis:{key}'" in rendered.stdout
    assert url not in rendered.stdout
    deployed = deploy(gears.url, url, mongo_db, "--secret-key", key)
    assert deployed.exit_code == 0, deployed.output
    assert client.get(key) == url
    client.execute_command("JSON.SET", "MovieEntity:s", "$", '{"title": "secret"}')
    wait_mirrored(mongo_db, {"s": {"title": "secret", "movieId": "s"}})
    assert url not in str(client.execute_command("RG.DUMPREGISTRATIONS"))
    status = wbload("status", "--redis-url", gears.url)
    assert url not in status.output
    for other in client.scan_iter("*"):
        if other != key:
            assert url.encode() not in (client.dump(other) or b""), other

"""The bad-input suite: each bad input gives one line on stderr and the exit code `wbload --help`
documents, sends nothing half-done, and the recipe deployed before still runs: registered with
the same ids, and a document written after the failure reaches Mongo.

Covered elsewhere, not repeated here:
- tests/e2e/test_cli_errors.py: unreachable Redis, wrong password, no RedisGears, unknown URL
  scheme, missing recipe file, unknown --param, a whole-number --param given a word, syntax
  error, a requirement that cannot install, a recipe that raises at import, a recipe that
  registers nothing, secrets (its `unchanged()` checks the same "still registered and syncing");
- tests/e2e/test_verify.py::test_verify_names_why_mongo_is_not_reached: a Mongo URL Redis cannot
  reach deploys fine and `wbload verify` names the cause.

A RedisGears without RedisJSON exists only with the stand-in (a real one given by URL has it
loaded): skipped elsewhere, saying so.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis

from testbench import gears_ops, selection
from testbench.cli import Run, wbload
from testbench.movies import MOVIES, deploy, wait_mirrored
from testbench.polling import wait_for
from testbench.targets import redis_client

pytestmark = pytest.mark.e2e

TYPED = """\
NAME = 'Typed'
VERSION = '1.0.0'
REQUIREMENTS = []
COUNT = 3
RATIO = 0.5
ENABLED = True
FIELDS = ['title', 'year']
x = 1
"""


def assert_one_line_error(run: Run, code: int, *phrases: str) -> str:
    """Exit `code`, nothing on stdout but progress, exactly one `wbload: error:` line."""
    assert run.exit_code == code, run.output
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("wbload: error: "), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "Traceback" not in run.output
    return lines[0]


class Previous:
    """The movies recipe deployed before the bad input; `assert_still_running()` after it."""

    def __init__(self, client: redis.Redis, db) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.db = db
        self.ids = self._ids()

    def _ids(self) -> list[str]:
        return sorted(r["id"] for r in gears_ops.registrations(self.client))

    def assert_still_running(self) -> None:
        assert self._ids() == self.ids, "the registrations changed"
        key_id = f"after-{uuid.uuid4().hex[:8]}"
        document = {"title": "written after the failure"}
        self.client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$",
                                    json.dumps(document))
        wait_mirrored(self.db, {key_id: {**document, "movieId": key_id}})


@pytest.fixture
def previous(gears, mongo, mongo_db, gears_clean) -> Previous:
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert deployed.exit_code == 0, deployed.output
    return Previous(gears_clean, mongo_db)


# --- recipes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["", "\n\n", "# a recipe, some day\n", '"""Only a docstring."""\n'],
    ids=["empty", "blank-lines", "only-a-comment", "only-a-docstring"])
def test_empty_recipe(gears, previous, tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.py"
    path.write_text(text)
    run = wbload("deploy", str(path), "--redis-url", gears.url)
    assert_one_line_error(run, 3, str(path), "must set NAME, VERSION, REQUIREMENTS")
    previous.assert_still_running()


def test_recipe_that_is_not_text(gears, previous, tmp_path: Path) -> None:
    path = tmp_path / "binary.py"
    path.write_bytes(b"\xff\xfe\x00NAME = 1\x00")
    run = wbload("deploy", str(path), "--redis-url", gears.url)
    assert_one_line_error(run, 3, str(path))
    previous.assert_still_running()


@pytest.mark.parametrize(("assignment", "phrase"), [
    ("COUNT=1.5", "--param COUNT: expected a whole number, got '1.5'"),
    ("RATIO=fast", "--param RATIO: expected a number, got 'fast'"),
    ("RATIO=nan", "RATIO=nan cannot be written into the recipe as a Python literal"),
    ("ENABLED=maybe", "--param ENABLED: expected true or false, got 'maybe'"),
    ("FIELDS=title", "--param FIELDS: expected a Python literal like ['title', 'year']"),
    ("FIELDS='title'", "--param FIELDS: expected a list, got str"),
    ("FIELDS={'title': 1}", "--param FIELDS: expected a list, got dict"),
], ids=["int", "float", "float-nan", "bool", "list-not-a-literal", "list-given-str",
        "list-given-dict"])
def test_param_of_the_wrong_type(gears, previous, tmp_path: Path, assignment: str,
                                 phrase: str) -> None:
    path = tmp_path / "typed.py"
    path.write_text(TYPED)
    for command in ("render", "deploy"):
        args = [command, str(path), "--param", assignment]
        run = wbload(*args, *(["--redis-url", gears.url] if command == "deploy" else []))
        assert_one_line_error(run, 3, phrase)
    assert gears_ops.registration_named(previous.client, "Typed.KeysReader") is None
    previous.assert_still_running()


def test_requirements_param_of_the_wrong_type(gears, previous) -> None:
    run = wbload("deploy", MOVIES, "--redis-url", gears.url, "--param", "REQUIREMENTS=rgsync")
    assert_one_line_error(run, 3, "--param REQUIREMENTS")
    previous.assert_still_running()


# --- servers -------------------------------------------------------------------------------
def replica_of(redis_factory, primary_url: str):  # type: ignore[no-untyped-def]
    """A Redis + RedisJSON replicating `primary_url`, its link up."""
    replica = redis_factory(f"replica-{uuid.uuid4().hex[:8]}", appendonly=False)
    host_port = primary_url.split("://", 1)[1].rsplit("@", 1)[-1].split("/")[0]
    host, port = host_port.rsplit(":", 1)
    with redis_client(primary_url) as primary:
        primary.config_set("repl-diskless-sync-delay", 0)  # sync now, not in 5 s
    with redis_client(replica.url) as client:
        client.execute_command("REPLICAOF", host, port)
        wait_for(lambda: client.info("replication").get("master_link_status") == "up", 30,
                 "the replica's link to its primary")
    return replica


def test_read_only_replica(bench, gears, previous, redis_factory) -> None:
    # The replica's primary is a plain Redis: a replica without RedisGears cannot load a real
    # RedisGears primary's RDB (its module data), and a stand-in in front of a replica of the
    # stand-in's own Redis would resume the primary's registrations.
    primary = redis_factory(f"primary-{uuid.uuid4().hex[:8]}", appendonly=False)
    replica = replica_of(redis_factory, primary.url)
    try:
        # With the stand-in bench, RedisGears (the stand-in) in front of the replica, as an
        # operator would meet it; elsewhere the replica itself (the check comes first).
        target = bench.standin(replica) if bench.gears_kind == "standin" else None
        url = target.url if target is not None else replica.url
        run = wbload("deploy", MOVIES, "--redis-url", url)
        assert_one_line_error(run, 5, "read-only replica", "deploy to its primary",
                              f"{primary.port}")
        if target is not None:
            with redis_client(url) as client:
                assert gears_ops.registrations(client) == []
            target.stop()
    finally:
        replica.stop()
        primary.stop()
    previous.assert_still_running()


def test_redisgears_without_redisjson(bench, gears, previous, redis_factory) -> None:
    if bench.gears_kind != "standin":
        pytest.skip(f"environment: the bench's RedisGears ({gears.kind}, "
                    f"{selection.REDIS_URL if gears.kind == 'real' else 'a container'}) has "
                    "RedisJSON loaded; a RedisGears without it exists only with the stand-in")
    upstream = redis_factory(f"nojson-{uuid.uuid4().hex[:8]}", appendonly=False, json=False)
    standin = bench.standin(upstream)
    try:
        run = wbload("deploy", MOVIES, "--redis-url", standin.url)
        assert_one_line_error(run, 5, "no RedisJSON", "rejson.so")
        with redis_client(standin.url) as client:
            assert gears_ops.registrations(client) == []
    finally:
        standin.stop()
        upstream.stop()
    previous.assert_still_running()

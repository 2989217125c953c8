"""A Redis restart (AOF kept) keeps the write-behind syncing, with the recipe's pymongo.

When Redis loads, RedisGears reinstalls every requirement it keeps, each from its own wheels,
in an order of its own (on the real engine: its dictionary's, once the AOF has been rewritten).
A stored requirement carrying another pymongo, such as rgsync's 4.1.1, can end up installed
over the recipe's pin, and pymongo 4.1.1 cannot talk to MongoDB 6.0+. Our recipes need no
rgsync at run time; `wbload deploy` removes stored requirements that carry another pymongo
and that no session lists; `wbload status` shows the pymongo Gears runs next to the pin.

Runs on the stand-in, and on the WBLOAD_TEST_REDIS_URL server when WBLOAD_TEST_RESTART_CMD
says how to restart it (tests/README.md).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from pymongo.database import Database

from testbench import gears_ops
from testbench.cli import Run, wbload
from testbench.movies import MOVIES, deploy, status, wait_drained, wait_mirrored
from testbench.polling import wait_for
from testbench.restart import RestartableGears
from testbench.stock_recipe import STOCK_RECIPE, STOCK_REQUIREMENTS
from testbench.targets import redis_client

pytestmark = pytest.mark.e2e

NAME = "MoviesWriteBehind"
PIN = "4.7.3"
WITH_RGSYNC = "REQUIREMENTS=['rgsync', 'pymongo==4.7.3']"  # the recipe before this change
IMPORTED = "GB('ShardsIDReader').map(lambda x: __import__('pymongo').version).run()"


def imported_pymongo(client: redis.Redis) -> set[str]:
    """What `import pymongo` gives inside Gears (importing it if nothing has yet)."""
    versions, errors = client.execute_command("RG.PYEXECUTE", IMPORTED)
    assert not errors, errors
    return set(versions)


def rewrite_aof(client: redis.Redis) -> None:
    """Rewrite the AOF: the next load reads Gears' requirements from its RDB preamble, in
    Gears' own order, instead of replaying their installs in the order they happened."""
    client.bgrewriteaof()
    wait_for(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0
             and client.info("persistence")["aof_rewrite_scheduled"] == 0, 60,
             "the AOF rewrite to finish")


def write(client: redis.Redis, expected: dict[str, dict[str, Any] | None], changes: int,
          tag: str) -> None:
    """New keys, updates of old ones and deletes; `expected` becomes what Mongo must hold."""
    for i in range(changes):
        key_id = f"{tag}-{i}"
        document = {"title": f"movie {key_id}", "round": tag}
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$", json.dumps(document))
        expected[key_id] = {**document, "movieId": key_id}
    alive = [k for k, v in expected.items() if v is not None and not k.startswith(tag)]
    for key_id in alive[: changes // 2]:
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$.updated", json.dumps(tag))
        expected[key_id] = {**expected[key_id], "updated": tag}  # type: ignore[dict-item]
    for key_id in alive[changes // 2 : changes]:
        client.delete(f"MovieEntity:{key_id}")
        expected[key_id] = None


def pymongo_running(report: dict[str, Any]) -> set[str | None]:
    return {shard["running"] for shard in report["gears_pymongo"]}


def status_run(url: str) -> tuple[Run, dict[str, Any]]:
    run = wbload("status", "--redis-url", url, "--json")
    return run, json.loads(run.stdout)


def test_restarts_keep_the_pin_and_the_sync(restartable_gears: RestartableGears, mongo,
                                            mongo_db: Database[Any]) -> None:
    gears = restartable_gears
    client = redis_client(gears.url, socket_timeout=120)
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", "RETRY_INTERVAL_S=1")
    assert deployed.exit_code == 0, deployed.output
    expected: dict[str, dict[str, Any] | None] = {}
    write(client, expected, 20, "before")
    wait_mirrored(mongo_db, expected)
    for restart in ("first", "second"):
        if restart == "second":
            rewrite_aof(client)
        gears.restart()
        client.connection_pool.disconnect()
        report = status(gears.url)  # exit 0: no error
        (wb,) = [w for w in report["write_behinds"] if w["name"] == NAME]
        assert wb["pymongo_pin"] == PIN and wb["requirements"] == [f"pymongo=={PIN}"]
        assert pymongo_running(report) == {PIN}, report["gears_pymongo"]
        assert report["errors"] == []
        write(client, expected, 20, restart)
        wait_mirrored(mongo_db, expected)
        assert imported_pymongo(client) == {PIN}
    wait_drained(gears.url)
    client.close()


def test_a_server_that_ran_stock_rgsync_keeps_the_pin_across_restarts(
        restartable_gears: RestartableGears, mongo, mongo_db: Database[Any]) -> None:
    """The issue's server: the tutorial's recipe (REQUIREMENTS rgsync pymongo==4.7.3) was
    deployed once and is gone; rgsync stays stored. Deploying ours removes it."""
    gears = restartable_gears
    client = redis_client(gears.url, socket_timeout=300)
    stock = STOCK_RECIPE.format(url=mongo.url_from_redis, db=mongo_db.name)
    assert client.execute_command("RG.PYEXECUTE", stock, "REQUIREMENTS",
                                  *STOCK_REQUIREMENTS) == "OK"
    gears_ops.unregister_all(client)
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert deployed.exit_code == 0, deployed.output
    assert "removed the stored requirement rgsync (it carries pymongo 4.1.1" in deployed.stdout
    rewrite_aof(client)
    gears.restart()
    client.connection_pool.disconnect()
    report = status(gears.url)
    assert pymongo_running(report) == {PIN} and report["warnings"] == [], report
    expected: dict[str, dict[str, Any] | None] = {}
    write(client, expected, 10, "after")
    wait_mirrored(mongo_db, expected)
    client.close()


def test_status_says_which_pymongo_gears_runs_after_a_restart(
        restartable_gears: RestartableGears, mongo, mongo_db: Database[Any]) -> None:
    """With rgsync in REQUIREMENTS, as the recipe had it, whether a restart installs rgsync's
    pymongo over the pin depends on the engine's order (the stand-in: always; a real one: as
    its dictionary happens to order the names). What holds on both: status reports what
    Gears imports, fails exactly when that is not the pin, and its fix works."""
    gears = restartable_gears
    client = redis_client(gears.url, socket_timeout=120)
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", WITH_RGSYNC)
    assert deployed.exit_code == 0, deployed.output
    # rgsync carries pymongo 4.1.1 and the recipe's own session lists it: kept, with a warning.
    assert "rgsync carries pymongo 4.1.1" in deployed.stderr, deployed.output
    rewrite_aof(client)
    gears.restart()
    client.connection_pool.disconnect()

    run, report = status_run(gears.url)
    running = pymongo_running(report)
    verified = wbload("verify", MOVIES, "--redis-url", gears.url, "--param", WITH_RGSYNC,
                      "--param", f"MONGO_DATABASE={mongo_db.name}",
                      "--mongo-url", mongo.url_from_redis, "--check-mongo-url", mongo.url)
    assert running == imported_pymongo(client), (run.output, report["gears_pymongo"])
    if running == {PIN}:
        assert run.exit_code == 0 and verified.exit_code == 0, run.output + verified.output
    else:
        assert run.exit_code == 11, run.output
        (error,) = [line for line in run.stderr.splitlines() if "wbload: error:" in line]
        assert f"pins pymongo {PIN} but Gears' Python runs pymongo 4.1.1" in error
        assert "stored requirement rgsync" in error and "`wbload undeploy`" in error
        assert verified.exit_code == 11 and error in verified.stderr, verified.output

    # The fix the error gives: undeploy what lists rgsync, prune, restart, deploy without it.
    assert wbload("undeploy", NAME, "--redis-url", gears.url).exit_code == 0
    pruned = wbload("requirements", "prune", MOVIES, "--redis-url", gears.url)
    assert pruned.exit_code == 0, pruned.output
    assert "removed the stored requirement rgsync" in pruned.stdout, pruned.output
    gears.restart()
    client.connection_pool.disconnect()
    redeployed = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.0.1")
    assert redeployed.exit_code == 0, redeployed.output
    run, report = status_run(gears.url)
    assert run.exit_code == 0 and pymongo_running(report) == {PIN}, run.output
    expected: dict[str, dict[str, Any] | None] = {}
    write(client, expected, 10, "after-fix")
    wait_mirrored(mongo_db, expected)
    assert imported_pymongo(client) == {PIN}
    client.close()

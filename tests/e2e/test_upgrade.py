"""Version bumps under traffic lose nothing; orphaned streams can be resynced; a requirement
whose version changes is refused before anything is touched."""

from __future__ import annotations

import json
import time

import redis

from testbench import gears_ops
from testbench.cli import wbload
from testbench.movies import SYNC_TIMEOUT, deploy, registration_ids, wait_mirrored
from testbench.polling import wait_for
from testbench.writer import Writer


def streams_with_entries(client: redis.Redis) -> dict[str, int]:
    return {k: client.xlen(k) for k in client.scan_iter("_movies-stream-*", _type="stream")
            if client.xlen(k)}


def test_version_bump_under_writes_loses_nothing(deployment, mongo, mongo_db) -> None:
    client = deployment.client()
    gears = deployment
    # A long batch duration keeps changes waiting in the old stream when the upgrade comes.
    first = deploy(gears.url, mongo.url_from_redis, mongo_db,
                   "--param", "BATCH_DURATION_MS=3000", "--param", "BATCH_SIZE=100000")
    assert first.exit_code == 0, first.output
    writer = Writer(gears.url)
    writer.start()
    time.sleep(1.5)
    assert streams_with_entries(client), "the old version should have changes waiting"
    bumped = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.1.0",
                    "--param", "RETRY_INTERVAL_S=1", "--drain-timeout", "60")
    assert bumped.exit_code == 0, bumped.output
    time.sleep(1.0)
    final = writer.finish()
    assert writer.writes > 200
    wait_mirrored(mongo_db, final)
    wait_for(lambda: not streams_with_entries(client), SYNC_TIMEOUT,
             f"every stream to empty (they were {streams_with_entries(client)}; "
             f"{wbload('status', '--redis-url', gears.url).stdout})")
    names = sorted((r["name"], json.loads(r["desc"])["version"])
                   for r in gears_ops.registrations(client))
    assert names == [("MoviesWriteBehind.KeysReader", "1.1.0"),
                     ("MoviesWriteBehind.StreamReader", "1.1.0")]
    status = json.loads(wbload("status", "--redis-url", gears.url, "--json").stdout)
    assert status["orphan_streams"] == {}
    client.close()


def test_orphaned_stream_is_reported_and_resynced(deployment, mongo, mongo_db) -> None:
    client = deployment.client()
    gears = deployment
    first = deploy(gears.url, mongo.url_from_redis, mongo_db,
                   "--param", "BATCH_DURATION_MS=60000", "--param", "BATCH_SIZE=100000")
    assert first.exit_code == 0, first.output
    for i in range(5):
        client.execute_command("JSON.SET", f"MovieEntity:o{i}", "$", json.dumps({"i": i}))
    client.execute_command("JSON.SET", "MovieEntity:gone", "$", json.dumps({"x": 1}))
    client.delete("MovieEntity:gone")
    undeployed = wbload("undeploy", "MoviesWriteBehind", "--redis-url", gears.url)
    assert undeployed.exit_code == 0 and "7 change(s)" in undeployed.stderr, undeployed.output
    orphans = streams_with_entries(client)  # one per shard that holds some of the keys
    assert sum(orphans.values()) == 7

    again = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.0.1")
    assert again.exit_code == 0, again.output
    status = wbload("status", "--redis-url", gears.url)
    for orphan, waiting in orphans.items():
        assert f"orphan stream {orphan}: {waiting} change(s)" in status.stdout
    resynced_keys = 0
    for orphan in orphans:
        resynced = wbload("resync", "MoviesWriteBehind", "--stream", orphan,
                          "--redis-url", gears.url)
        assert resynced.exit_code == 0, resynced.output
        resynced_keys += int(resynced.stdout.split("resynced ")[1].split()[0])
    assert resynced_keys == 6
    expected = {f"o{i}": {"i": i, "movieId": f"o{i}"} for i in range(5)}
    wait_mirrored(mongo_db, {**expected, "gone": None})
    assert not any(client.exists(orphan) for orphan in orphans)
    client.close()


def test_changed_requirement_version_is_refused(gears, mongo, mongo_db, gears_clean) -> None:
    first = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert first.exit_code == 0, first.output
    before = registration_ids(gears_clean)
    changed = deploy(gears.url, mongo.url_from_redis, mongo_db, "--param", "VERSION=1.1.0",
                     "--param", "REQUIREMENTS=['pymongo==4.6.3']")
    assert changed.exit_code == 6, changed.output
    assert "pymongo 4.7.3 -> 4.6.3" in changed.stderr and "restart Redis" in changed.stderr
    assert registration_ids(gears_clean) == before

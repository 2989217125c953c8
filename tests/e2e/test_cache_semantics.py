"""Redis is the cache, Mongo the system of record: expiry and eviction leave Mongo alone, the
key field has a unique index, a rejected change is dead-lettered once into a bounded stream,
and the loader changes nothing before its plan acts."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from pymongo.database import Database

from testbench import gears_ops, selection
from testbench.cli import wbload
from testbench.movies import deploy, status, wait_drained, wait_mirrored
from testbench.polling import wait_for
from testbench.targets import app_client
from testbench.writer import Writer

pytestmark = pytest.mark.e2e

NAME = "MoviesWriteBehind"
QUICK_RETRY = ("--param", "RETRY_INTERVAL_S=1")


def write_movies(client: redis.Redis, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """JSON.SET one small document per id (pipelined); what Mongo must then hold."""
    with client.pipeline(transaction=False) as pipe:
        for key_id in ids:
            pipe.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$",
                                 json.dumps({"title": f"Movie {key_id}"}))
        pipe.execute()
    return {key_id: {"title": f"Movie {key_id}", "movieId": key_id} for key_id in ids}


def write_behind(gears_url: str) -> dict[str, Any]:
    (wb,) = [w for w in status(gears_url)["write_behinds"] if w["name"] == NAME]
    return wb


def stream_reader(gears_url: str) -> dict[str, Any]:
    (reader,) = [r for r in write_behind(gears_url)["readers"] if r["reader"] == "StreamReader"]
    return reader


def expire_and_wait_gone(client: redis.Redis, ids: list[str]) -> None:
    for key_id in ids:
        client.pexpire(f"MovieEntity:{key_id}", 300)
    wait_for(lambda: client.exists(*[f"MovieEntity:{k}" for k in ids]) == 0, 30,
             "the keys to expire in Redis")


def marker_written(client: redis.Redis, db: Database[Any], gears_url: str) -> None:
    """A change queued after everything before it: once it is in Mongo, so is the rest."""
    client.execute_command("JSON.SET", "MovieEntity:marker", "$", '{"m": 1}')
    wait_mirrored(db, {"marker": {"m": 1, "movieId": "marker"}})
    wait_drained(gears_url)


# --- expiry and eviction -------------------------------------------------------------------
def test_expired_keys_keep_their_mongo_documents_and_del_still_deletes(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    ids = [f"t{i}" for i in range(20)]
    expected = write_movies(client, ids)
    wait_mirrored(mongo_db, expected)
    expire_and_wait_gone(client, ids[:15])
    for i, key_id in enumerate(ids[15:]):
        client.execute_command(("DEL", "UNLINK", "JSON.DEL")[i % 3], f"MovieEntity:{key_id}")
        expected[key_id] = None
    marker_written(client, mongo_db, gears.url)
    wait_mirrored(mongo_db, expected)
    assert mongo_db.movies.count_documents({"movieId": {"$in": ids}}) == 15


def test_delete_on_expiry_true_mirrors_expiry(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db,
                      "--param", "DELETE_ON_EXPIRY=True")
    assert deployed.exit_code == 0, deployed.output
    ids = [f"e{i}" for i in range(5)]
    wait_mirrored(mongo_db, write_movies(client, ids))
    expire_and_wait_gone(client, ids)
    wait_mirrored(mongo_db, dict.fromkeys(ids))


def test_a_cache_miss_leaves_the_mongo_document_alone(deployment, mongo, mongo_db) -> None:
    """Reading a key that is only in Mongo (Gears' KeysReader sees the read as `keymiss`) is
    no change: the document stays."""
    gears, client = deployment, deployment.client()
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    mongo_db.movies.insert_one({"movieId": "cold", "title": "only in Mongo"})
    assert client.execute_command("JSON.GET", "MovieEntity:cold") is None
    assert client.exists("MovieEntity:cold") == 0
    marker_written(client, mongo_db, gears.url)
    assert mongo_db.movies.count_documents({"movieId": "cold"}) == 1


def test_a_change_whose_key_expired_before_it_was_written_keeps_the_document(
        deployment, mongo, mongo_db) -> None:
    """With Mongo down, a key is changed and then expires: once Mongo is back the document
    holds that last change (Redis is the cache: the expiry deletes nothing)."""
    gears, client = deployment, deployment.client()
    if not mongo.can_restart:
        pytest.skip(f"environment: MongoDB given by {selection.MONGO_URL} "
                    f"({mongo.description}); the bench cannot stop and start it")
    assert deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY,
                  "--param", "MONGO_TIMEOUT_MS=300").exit_code == 0
    wait_mirrored(mongo_db, write_movies(client, ["ttl"]))
    mongo.stop()
    try:
        client.execute_command("JSON.SET", "MovieEntity:ttl", "$", '{"title": "v2"}')
        expire_and_wait_gone(client, ["ttl"])
    finally:
        mongo.start()
    with mongo.client() as mongo_client:
        db = mongo_client[mongo_db.name]
        marker_written(client, db, gears.url)
        (document,) = db.movies.find({"movieId": "ttl"})
    assert document["title"] == "v2"


def test_deploy_warns_when_redis_may_evict_the_stream(gears, mongo, mongo_db,
                                                      gears_clean) -> None:
    before = gears_clean.config_get("maxmemory-policy")["maxmemory-policy"]
    gears_clean.config_set("maxmemory-policy", "allkeys-lru")
    try:
        deployed = deploy(gears.url, mongo.url_from_redis, mongo_db)
    finally:
        gears_clean.config_set("maxmemory-policy", before)
    assert deployed.exit_code == 0, deployed.output
    (warning,) = [line for line in deployed.stderr.splitlines() if "maxmemory-policy" in line]
    assert "allkeys-lru" in warning and "noeviction" in warning
    quiet = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert "maxmemory-policy" not in quiet.stderr


# --- the unique index ----------------------------------------------------------------------
def test_unique_index_on_the_key_field_after_the_first_batch(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    wait_mirrored(mongo_db, write_movies(client, ["i1"]))
    indexes = [i for i in mongo_db.movies.index_information().values()
               if i["key"] == [("movieId", 1)]]
    assert [i.get("unique") for i in indexes] == [True], mongo_db.movies.index_information()


def test_duplicates_refuse_the_index_in_one_line_and_nothing_is_lost(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    mongo_db.movies.insert_many([{"movieId": "d", "n": 1}, {"movieId": "d", "n": 2}])
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY)
    assert deployed.exit_code == 0, deployed.output
    expected = write_movies(client, ["after-dup"])
    error = wait_for(lambda: stream_reader(gears.url)["last_error"], 30,
                     "the StreamReader's last error")
    assert "duplicate" in error and "keep one per movieId" in error, error
    table = wbload("status", "--redis-url", gears.url).stdout
    (row,) = [line for line in table.splitlines() if "StreamReader" in line]
    assert "keep one per movieId" in row
    assert mongo_db.movies.count_documents({"movieId": "after-dup"}) == 0
    mongo_db.movies.delete_one({"movieId": "d", "n": 2})
    wait_mirrored(mongo_db, expected)
    wait_drained(gears.url)


# --- dead letters --------------------------------------------------------------------------
def dead_letters(gears_url: str) -> list[dict[str, Any]]:
    listed = wbload("dlq", "list", NAME, "--redis-url", gears_url, "--json", "--count", "1000")
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)


def test_poison_in_a_batch_retried_three_times_is_dead_lettered_once(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    if not mongo.can_restart:
        pytest.skip(f"environment: MongoDB given by {selection.MONGO_URL} "
                    f"({mongo.description}); the bench cannot stop and start it")
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY,
                      "--param", "MONGO_TIMEOUT_MS=300")
    assert deployed.exit_code == 0, deployed.output
    wait_mirrored(mongo_db, write_movies(client, ["before"]))
    failures = stream_reader(gears.url)["failures"]
    mongo.stop()
    try:
        # one batch: a poison document and a good one (one hash tag: one shard, one slot)
        with client.pipeline(transaction=True) as pipe:
            pipe.execute_command("JSON.SET", "MovieEntity:poison{b}", "$", "[1, 2]")
            pipe.execute_command("JSON.SET", "MovieEntity:good{b}", "$", '{"ok": 1}')
            pipe.execute()
        wait_for(lambda: stream_reader(gears.url)["failures"] >= failures + 3, 60,
                 "the batch to fail three times while Mongo is down")
    finally:
        mongo.start()
    with mongo.client() as mongo_client:
        wait_mirrored(mongo_client[mongo_db.name],
                      {"good{b}": {"ok": 1, "movieId": "good{b}"}})
    wait_drained(gears.url)
    letters = dead_letters(gears.url)
    assert [d["key"] for d in letters] == ["MovieEntity:poison{b}"], letters


def test_dead_letter_stream_stays_within_its_bound(gears, mongo, mongo_db, gears_clean) -> None:
    client = gears_clean
    bound, rejections = 1000, 10000
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db,
                      "--param", f"DEAD_LETTER_MAXLEN={bound}", "--param", "BATCH_SIZE=1000")
    assert deployed.exit_code == 0, deployed.output
    started = time.monotonic()
    with client.pipeline(transaction=False) as pipe:
        for i in range(rejections):
            pipe.execute_command("JSON.SET", f"MovieEntity:p{i}", "$", "[1]")
        pipe.execute()

    def counted() -> int:
        wb = write_behind(gears.url)
        return wb["dead_letters"] + wb["dead_letters_trimmed"]

    wait_for(lambda: counted() == rejections, 120, f"{rejections} dead letters counted")
    seconds = time.monotonic() - started
    wb = write_behind(gears.url)
    node = int(client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    assert bound <= wb["dead_letters"] <= bound + node, wb  # `MAXLEN ~` trims whole nodes
    assert f"{wb['dead_letters_trimmed']} older dead letter(s) trimmed" in wbload(
        "status", "--redis-url", gears.url).stdout
    first = wbload("dlq", "list", NAME, "--redis-url", gears.url, "--count", "10")
    assert first.exit_code == 0 and "more dead letters: --after" in first.stderr
    after = first.stderr.split("--after ")[1].split()[0]
    page = json.loads(wbload("dlq", "list", NAME, "--redis-url", gears.url, "--json",
                             "--count", "10", "--after", after).stdout)
    assert len(page) == 10 and page[0]["id"] > after
    purged = wbload("dlq", "purge", NAME, "--redis-url", gears.url)
    assert purged.exit_code == 0 and f"dropped {wb['dead_letters']}" in purged.stdout
    assert write_behind(gears.url)["dead_letters"] == 0
    print(f"{rejections} rejections dead-lettered and counted in {seconds:.1f}s")


# --- the loader ----------------------------------------------------------------------------
def test_a_deploy_that_does_not_push_leaves_the_secret_alone(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    key = "wbload:secret:movies"
    url = mongo.url_from_redis
    first = deploy(gears.url, url, mongo_db, "--secret-key", key, "--param", "VERSION=1.1.0")
    assert first.exit_code == 0, first.output
    other = "mongodb://nobody:pw@127.0.0.1:1/"
    refused = deploy(gears.url, other, mongo_db, "--secret-key", key)  # older: refused
    assert refused.exit_code == 6, refused.output
    same = deploy(gears.url, other, mongo_db, "--secret-key", key, "--param", "VERSION=1.1.0")
    assert same.exit_code == 0 and "up to date" in same.stdout, same.output
    assert client.get(key) == url
    wait_mirrored(mongo_db, write_movies(client, ["still-syncing"]))


class NewKeyWriter(threading.Thread):
    """JSON.SETs a new key (MovieEntity:n<i>) every couple of milliseconds, each key once: a
    write that reaches no stream is missing from Mongo for good."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = app_client(url, socket_timeout=30)
        self.stop_event = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.client.execute_command("JSON.SET", f"MovieEntity:n{self.written}", "$",
                                        json.dumps({"i": self.written}))
            self.written += 1
            time.sleep(0.002)

    def finish(self) -> int:
        self.stop_event.set()
        self.join(30)
        self.client.close()
        return self.written


def test_force_under_a_writer_loses_nothing(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    # A long batch duration keeps changes waiting in the stream when --force comes.
    first = deploy(gears.url, mongo.url_from_redis, mongo_db,
                   "--param", "BATCH_DURATION_MS=3000", "--param", "BATCH_SIZE=100000")
    assert first.exit_code == 0, first.output
    writer, new_keys = Writer(gears.url), NewKeyWriter(gears.url)
    writer.start()
    new_keys.start()
    try:
        wait_for(lambda: write_behind(gears.url)["backlog"] > 0, 30, "changes waiting")
        for _ in range(3):
            forced = deploy(gears.url, mongo.url_from_redis, mongo_db, "--force")
            assert forced.exit_code == 0, forced.output
            time.sleep(0.3)
    finally:
        final, written = writer.finish(), new_keys.finish()
    assert written > 100, f"only {written} new keys written"
    wait_mirrored(mongo_db, final)
    wait_drained(gears.url)
    found = {d["movieId"] for d in mongo_db.movies.find({}, {"movieId": 1})}
    lost = [i for i in range(written) if f"n{i}" not in found]
    assert not lost, f"{len(lost)} of {written} new keys never reached Mongo: n{lost[:20]}"
    assert sorted(r["name"] for r in gears_ops.registrations(client)) == [
        "MoviesWriteBehind.KeysReader", "MoviesWriteBehind.StreamReader"]
    assert status(gears.url)["orphan_streams"] == {}


def test_resync_all_skips_a_redis_om_index_key_and_mirrors_every_document(
        deployment, mongo, mongo_db) -> None:
    gears, client = deployment, deployment.client()
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    ids = [f"r{i}" for i in range(80)]
    expected = write_movies(client, ids)
    client.set("MovieEntity:index:hash", "a1b2c3")      # what Redis OM keeps under the prefix
    client.hset("MovieEntity:index:other", "k", "v")
    wait_mirrored(mongo_db, expected)
    wait_drained(gears.url)
    mongo_db.movies.delete_many({})                       # Mongo wiped (restored from nothing)
    resynced = wbload("resync", NAME, "--all", "--redis-url", gears.url)
    assert resynced.exit_code == 0, resynced.output
    assert f"resynced {len(ids)} key(s)" in resynced.stdout
    assert "skipped 2 key(s)" in resynced.stderr and "not JSON" in resynced.stderr
    wait_mirrored(mongo_db, expected)

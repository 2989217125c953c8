"""Poison documents never stall the stream: they go to the dead-letter stream with the reason,
later writes still arrive, and `wbload dlq` lists, retries and purges them."""

from __future__ import annotations

import json

from testbench.cli import wbload
from testbench.movies import deploy, wait_mirrored
from testbench.polling import wait_for

POISON = {
    "array": "[1, 2, 3]",                                         # not a JSON object
    "huge_int": json.dumps({"views": 2**63}),                      # above BSON's int64
    "dollar": json.dumps({"$set": {"title": "x"}}),                # read as an update operator
}


def test_poison_documents_are_dead_lettered_and_later_writes_arrive(
        deployment, mongo, mongo_db) -> None:
    client = deployment.client()
    gears_url = deployment.url
    mongo_db.movies.create_index("imdbId", unique=True)
    assert deploy(gears_url, mongo.url_from_redis, mongo_db).exit_code == 0
    client.execute_command("JSON.SET", "MovieEntity:first", "$", json.dumps({"imdbId": "1"}))
    # one poison document on every shard too: each shard dead-letters into its own stream
    spread = deployment.spread_ids("MovieEntity", "poison")
    poison = {**POISON, **{key_id: "[0]" for key_id in spread}}
    for key_id, text in poison.items():
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$", text)
    client.set("MovieEntity:plain", "not JSON at all")
    client.execute_command("JSON.SET", "MovieEntity:dup", "$", json.dumps({"imdbId": "1"}))
    client.execute_command("JSON.SET", "MovieEntity:last", "$",
                           json.dumps({"title": "Schindler's List", "imdbId": "2"}))
    wait_mirrored(mongo_db, {
        "first": {"imdbId": "1", "movieId": "first"},
        "last": {"title": "Schindler's List", "imdbId": "2", "movieId": "last"},
        **{key_id: None for key_id in [*poison, "dup", "plain"]},
    })
    rejected = len(poison) + 2

    def dead_letters() -> list[dict]:
        listed = wbload("dlq", "list", "MoviesWriteBehind", "--redis-url", gears_url, "--json")
        assert listed.exit_code == 0, listed.output
        return json.loads(listed.stdout)

    letters = wait_for(lambda: len(dead_letters()) == rejected and dead_letters(), 30,
                       f"{rejected} dead letters")
    by_key = {d["key"]: d for d in letters}
    assert set(by_key) == {f"MovieEntity:{k}" for k in [*poison, "dup", "plain"]}
    assert "not a JSON document" in by_key["MovieEntity:plain"]["error"]
    assert "not an object" in by_key["MovieEntity:array"]["error"]
    assert "8-byte" in by_key["MovieEntity:huge_int"]["error"]
    assert "duplicate" in by_key["MovieEntity:dup"]["error"].lower() or "11000" in by_key[
        "MovieEntity:dup"]["error"]
    assert by_key["MovieEntity:array"]["document"] == "[1,2,3]"
    status = json.loads(wbload("status", "--redis-url", gears_url, "--json").stdout)
    (wb,) = status["write_behinds"]
    assert wb["dead_letters"] == rejected and wb["backlog"] == 0
    assert sum(shard["dead_letters"] for shard in wb["shards"]) == rejected
    assert all(shard["dead_letters"] for shard in wb["shards"])
    table = wbload("status", "--redis-url", gears_url).stdout
    assert f"{rejected} change(s) rejected by Mongo" in table

    # Fix the cause (drop the unique index), then retry just that one.
    mongo_db.movies.drop_index("imdbId_1")
    dup_id = by_key["MovieEntity:dup"]["id"]
    retried = wbload("dlq", "retry", "MoviesWriteBehind", "--id", dup_id, "--redis-url", gears_url)
    assert retried.exit_code == 0 and "re-queued 1 key(s)" in retried.stdout, retried.output
    wait_mirrored(mongo_db, {"dup": {"imdbId": "1", "movieId": "dup"}})
    assert len(dead_letters()) == rejected - 1

    purged = wbload("dlq", "purge", "MoviesWriteBehind", "--redis-url", gears_url)
    assert purged.exit_code == 0 and f"dropped {rejected - 1}" in purged.stdout
    assert dead_letters() == []
    unknown = wbload("dlq", "retry", "MoviesWriteBehind", "--id", "1-1", "--redis-url", gears_url)
    assert unknown.exit_code == 2 and "no dead letter 1-1" in unknown.stderr
    client.close()

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
        gears, mongo, mongo_db, gears_clean) -> None:
    client = gears_clean
    mongo_db.movies.create_index("imdbId", unique=True)
    assert deploy(gears.url, mongo.url_from_redis, mongo_db).exit_code == 0
    client.execute_command("JSON.SET", "MovieEntity:first", "$", json.dumps({"imdbId": "1"}))
    for key_id, text in POISON.items():
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$", text)
    client.set("MovieEntity:plain", "not JSON at all")
    client.execute_command("JSON.SET", "MovieEntity:dup", "$", json.dumps({"imdbId": "1"}))
    client.execute_command("JSON.SET", "MovieEntity:last", "$",
                           json.dumps({"title": "Schindler's List", "imdbId": "2"}))
    wait_mirrored(mongo_db, {
        "first": {"imdbId": "1", "movieId": "first"},
        "last": {"title": "Schindler's List", "imdbId": "2", "movieId": "last"},
        **{key_id: None for key_id in [*POISON, "dup", "plain"]},
    })

    def dead_letters() -> list[dict]:
        listed = wbload("dlq", "list", "MoviesWriteBehind", "--redis-url", gears.url, "--json")
        assert listed.exit_code == 0, listed.output
        return json.loads(listed.stdout)

    letters = wait_for(lambda: len(dead_letters()) == 5 and dead_letters(), 30, "5 dead letters")
    by_key = {d["key"]: d for d in letters}
    assert set(by_key) == {f"MovieEntity:{k}" for k in [*POISON, "dup", "plain"]}
    assert "not a JSON document" in by_key["MovieEntity:plain"]["error"]
    assert "not an object" in by_key["MovieEntity:array"]["error"]
    assert "8-byte" in by_key["MovieEntity:huge_int"]["error"]
    assert "duplicate" in by_key["MovieEntity:dup"]["error"].lower() or "11000" in by_key[
        "MovieEntity:dup"]["error"]
    assert by_key["MovieEntity:array"]["document"] == "[1,2,3]"
    status = json.loads(wbload("status", "--redis-url", gears.url, "--json").stdout)
    (wb,) = status["write_behinds"]
    assert wb["dead_letters"] == 5 and wb["backlog"] == 0
    table = wbload("status", "--redis-url", gears.url).stdout
    assert "5 change(s) rejected by Mongo" in table

    # Fix the cause (drop the unique index), then retry just that one.
    mongo_db.movies.drop_index("imdbId_1")
    dup_id = by_key["MovieEntity:dup"]["id"]
    retried = wbload("dlq", "retry", "MoviesWriteBehind", "--id", dup_id, "--redis-url", gears.url)
    assert retried.exit_code == 0 and "re-queued 1 key(s)" in retried.stdout, retried.output
    wait_mirrored(mongo_db, {"dup": {"imdbId": "1", "movieId": "dup"}})
    assert len(dead_letters()) == 4

    purged = wbload("dlq", "purge", "MoviesWriteBehind", "--redis-url", gears.url)
    assert purged.exit_code == 0 and "dropped 4" in purged.stdout
    assert dead_letters() == []
    unknown = wbload("dlq", "retry", "MoviesWriteBehind", "--id", "1-1", "--redis-url", gears.url)
    assert unknown.exit_code == 2 and "no dead letter 1-1" in unknown.stderr

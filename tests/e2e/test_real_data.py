"""Documents stock rgsync's MongoConnector gets wrong arrive exactly with our sink."""

from __future__ import annotations

import json

import pytest

from testbench.movies import deploy, wait_mirrored
from testbench.polling import wait_for

HARD_DOCUMENTS = {
    "apostrophe": {"title": "Schindler's List", "plot": "It's 'quoted'"},
    "quotes": {"title": 'The "Best" Movie', "path": "C:\\movies\\n", "tab": "a\tb"},
    "unicode": {"title": "Amélie — 日本語 🎬", "lang": ["fr", "ja"]},
    "nested": {"cast": [{"name": "A", "roles": ["x", {"deep": [1, 2, None]}]}],
               "meta": {"a": {"b": {"c": True}}}, "empty": {}, "none": []},
    "numbers": {"small": -7, "big": 2**53 + 1, "above_int32": 2**31 + 5, "rating": 8.25,
                "zero": 0, "neg_float": -0.5},
    "booleans_nulls": {"yes": True, "no": False, "nothing": None},
    "tt:99": {"title": "An id with a colon"},
}


@pytest.fixture
def deployed(deployment, mongo, mongo_db):
    """The movies recipe deployed, on one node and on the cluster: a client of it."""
    result = deploy(deployment.url, mongo.url_from_redis, mongo_db)
    assert result.exit_code == 0, result.output
    client = deployment.client()
    yield client
    client.close()


def test_hard_documents_arrive_field_for_field(mongo_db, deployed) -> None:
    client = deployed
    for key_id, document in HARD_DOCUMENTS.items():
        client.execute_command("JSON.SET", f"MovieEntity:{key_id}", "$",
                               json.dumps(document, ensure_ascii=False))
    wait_mirrored(mongo_db, {k: {**d, "movieId": k} for k, d in HARD_DOCUMENTS.items()})


def test_key_id_wins_over_the_documents_own_id(mongo_db, deployed) -> None:
    client = deployed
    client.execute_command("JSON.SET", "MovieEntity:tt:7", "$",
                           json.dumps({"movieId": "something-else", "v": 1}))
    wait_mirrored(mongo_db, {"tt:7": {"movieId": "tt:7", "v": 1}})
    client.execute_command("JSON.SET", "MovieEntity:tt:7", "$", json.dumps({"v": 2}))
    wait_mirrored(mongo_db, {"tt:7": {"movieId": "tt:7", "v": 2}})
    assert mongo_db.movies.count_documents({}) == 1
    client.delete("MovieEntity:tt:7")
    wait_mirrored(mongo_db, {"tt:7": None})


def test_partial_json_commands_are_mirrored_and_expiry_keeps_the_document(
        mongo_db, deployed) -> None:
    client = deployed
    client.execute_command("JSON.SET", "MovieEntity:p", "$",
                           json.dumps({"title": "P", "tags": ["a"], "views": 1, "old": 1}))
    client.execute_command("JSON.ARRAPPEND", "MovieEntity:p", "$.tags", json.dumps("b"))
    client.execute_command("JSON.NUMINCRBY", "MovieEntity:p", "$.views", 41)
    client.execute_command("JSON.DEL", "MovieEntity:p", "$.old")
    wait_mirrored(mongo_db, {"p": {"title": "P", "tags": ["a", "b"], "views": 42,
                                   "movieId": "p"}})
    client.execute_command("JSON.SET", "MovieEntity:ttl", "$", json.dumps({"v": 1}))
    wait_mirrored(mongo_db, {"ttl": {"v": 1, "movieId": "ttl"}})
    client.pexpire("MovieEntity:ttl", 50)
    wait_for(lambda: client.exists("MovieEntity:ttl") == 0, 10, "the key to expire")
    client.execute_command("JSON.SET", "MovieEntity:after-ttl", "$", json.dumps({"v": 2}))
    # Queued after the expiry: once it is in Mongo, the expiry was handled, and kept the document.
    wait_mirrored(mongo_db, {"after-ttl": {"v": 2, "movieId": "after-ttl"},
                             "ttl": {"v": 1, "movieId": "ttl"}})


def test_a_later_write_is_not_blocked_by_an_apostrophe(mongo_db, deployed) -> None:
    client = deployed
    client.execute_command("JSON.SET", "MovieEntity:1", "$",
                           json.dumps({"title": "Schindler's List"}))
    client.execute_command("JSON.SET", "MovieEntity:2", "$", json.dumps({"title": "Plain"}))
    wait_mirrored(mongo_db, {"1": {"title": "Schindler's List", "movieId": "1"},
                             "2": {"title": "Plain", "movieId": "2"}})

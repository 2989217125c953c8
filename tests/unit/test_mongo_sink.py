"""The recipe-side Mongo sink's logic, with Gears and Mongo replaced by recorders.

End-to-end behaviour (on Gears' Python 3.7 with a real Mongo) is in tests/e2e; here each
rule of the sink is pinned down on its own.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

SINK = Path(__file__).resolve().parents[2] / "recipes" / "common" / "mongo_sink.py"


class FakeGears:
    def __init__(self) -> None:
        self.commands: list[tuple] = []
        self.logs: list[str] = []
        self.replies: dict[str, object] = {}  # command -> its reply
        self.tag = "06S"  # hashtag() of the shard the sink runs on

    def execute(self, *args: object) -> object:
        self.commands.append(args)
        return self.replies.get(str(args[0]))

    def xadds(self) -> list[dict]:
        return [dict(zip(c[3::2], c[4::2])) for c in self.commands if c[0] == "XADD"]

    def module(self) -> types.ModuleType:
        module = types.ModuleType("redisgears")
        module.executeCommand = self.execute  # type: ignore[attr-defined]
        module.log = lambda msg, level="notice": self.logs.append(msg)  # type: ignore[attr-defined]
        module.getMyHashTag = lambda: self.tag  # type: ignore[attr-defined]
        return module


class FakeCollection:
    def __init__(self, fail_with: list[Exception] | None = None,
                 index_fails_with: list[Exception] | None = None) -> None:
        self.calls: list[list] = []
        self.ordered: list[bool] = []
        self.indexes: list[tuple] = []
        self.fail_with = list(fail_with or [])
        self.index_fails_with = list(index_fails_with or [])

    def bulk_write(self, requests: list, ordered: bool = True) -> None:
        self.calls.append(list(requests))
        self.ordered.append(ordered)
        if self.fail_with:
            raise self.fail_with.pop(0)

    def create_index(self, keys: list, unique: bool = False) -> None:
        self.indexes.append((keys, unique))
        if self.index_fails_with:
            raise self.index_fails_with.pop(0)

    def aggregate(self, pipeline: list) -> list:
        return [{"_id": "7", "n": 2}]


@pytest.fixture
def gears(monkeypatch: pytest.MonkeyPatch) -> FakeGears:
    fake = FakeGears()
    monkeypatch.setitem(sys.modules, "redisgears", fake.module())
    return fake


@pytest.fixture
def sink_module(gears: FakeGears, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("mongo_sink_under_test", SINK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def make_sink(module: types.ModuleType, collection: FakeCollection, **options: object):
    sink = module.MongoSink("mongodb://u:pw@h:1", "db", "movies", "movieId",
                            dead_letter_stream="dlq", **options)
    sink._collection = lambda: collection
    return sink


def upsert(key_id: str, document: object, text: str | None = None) -> dict:
    return {"id": "1-0", "value": {
        "_original_key": f"MovieEntity:{key_id}", "movieId": key_id, "#": "=",
        "redisgears": text if text is not None else json.dumps(document, ensure_ascii=False)}}


def delete(key_id: str, event: str | None = None) -> dict:
    value = {"_original_key": f"MovieEntity:{key_id}", "movieId": key_id, "#": "~"}
    if event is not None:
        value["_event"] = event
    return {"id": "1-0", "value": value}


def write_errors(*errors: tuple[int, int, str]) -> BulkWriteError:
    return BulkWriteError({"writeErrors": [{"index": i, "code": code, "errmsg": message}
                                           for i, code, message in errors],
                           "writeConcernErrors": [], "nInserted": 0})


def test_documents_arrive_exactly_as_json(sink_module: types.ModuleType) -> None:
    collection = FakeCollection()
    document = {"title": "Schindler's List", "quote": 'say "hi"', "path": "C:\\x",
                "unicode": "é 日本 🎬", "nested": {"a": [1, {"b": None}]}, "big": 2**40,
                "rating": 8.9, "flags": [True, False], "none": None, "movieId": "other"}
    make_sink(sink_module, collection).WriteData([upsert("tt:99", document)], "redisgears")
    (request,) = collection.calls[0]
    assert request == ReplaceOne({"movieId": "tt:99"}, {**document, "movieId": "tt:99"},
                                 upsert=True)


def test_delete_and_last_change_per_key(sink_module: types.ModuleType) -> None:
    collection = FakeCollection()
    make_sink(sink_module, collection).WriteData(
        [upsert("1", {"v": 1}), upsert("2", {"v": 1}), delete("1"), upsert("2", {"v": 2})],
        "redisgears")
    assert collection.calls == [[DeleteOne({"movieId": "1"}),
                                 ReplaceOne({"movieId": "2"}, {"v": 2, "movieId": "2"},
                                            upsert=True)]]


@pytest.mark.parametrize(("text", "reason"), [("[1, 2]", "not an object"),
                                              ("{not json", "not valid JSON")])
def test_bad_documents_are_dead_lettered_and_the_rest_written(
        sink_module: types.ModuleType, gears: FakeGears, text: str, reason: str) -> None:
    collection = FakeCollection()
    make_sink(sink_module, collection).WriteData(
        [upsert("bad", None, text=text), upsert("good", {"ok": True})], "redisgears")
    assert collection.calls == [[ReplaceOne({"movieId": "good"}, {"ok": True, "movieId": "good"},
                                            upsert=True)]]
    xadd = gears.commands[0]
    (fields,) = gears.xadds()
    assert xadd[:3] == ("XADD", "dlq{06S}", "*")  # the shard's own stream
    assert fields["key"] == "MovieEntity:bad" and reason in fields["error"]
    assert fields["document"] == text


def test_one_unordered_write_and_every_rejection_dead_lettered_in_one_pass(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    rejected = write_errors((0, 11000, "E11000 duplicate key"), (2, 2, "bad field"))
    collection = FakeCollection(fail_with=[rejected])
    make_sink(sink_module, collection).WriteData(
        [upsert("1", {"v": 1}), upsert("2", {"v": 2}), upsert("3", {"v": 3})], "redisgears")
    assert len(collection.calls) == 1 and collection.ordered == [False]
    letters = gears.xadds()
    assert [d["key"] for d in letters] == ["MovieEntity:1", "MovieEntity:3"]
    assert "duplicate key" in letters[0]["error"] and "code 2" in letters[1]["error"]


def test_a_transient_write_error_retries_the_batch_and_dead_letters_nothing(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    mixed = write_errors((0, 11000, "E11000 duplicate key"), (1, 91, "shutdown in progress"))
    collection = FakeCollection(fail_with=[mixed])
    with pytest.raises(Exception, match="will retry.*shutdown in progress"):
        make_sink(sink_module, collection).WriteData(
            [upsert("1", {"v": 1}), upsert("2", {"v": 2})], "redisgears")
    assert gears.xadds() == []


def test_write_concern_error_retries_the_batch(sink_module: types.ModuleType,
                                               gears: FakeGears) -> None:
    failed = BulkWriteError({"writeErrors": [], "nInserted": 0, "writeConcernErrors": [
        {"code": 64, "errmsg": "waiting for replication timed out"}]})
    with pytest.raises(Exception, match="will retry"):
        make_sink(sink_module, FakeCollection(fail_with=[failed])).WriteData(
            [upsert("1", {"v": 1})], "redisgears")


def test_a_retried_batch_dead_letters_its_poison_once(sink_module: types.ModuleType,
                                                      gears: FakeGears) -> None:
    collection = FakeCollection(fail_with=[AutoReconnect("down"), AutoReconnect("down")])
    sink = make_sink(sink_module, collection)
    batch = [upsert("bad", None, text="[1]"), upsert("good", {"ok": 1})]
    for _ in range(2):
        with pytest.raises(AutoReconnect):
            sink.WriteData(batch, "redisgears")
    assert gears.xadds() == []
    sink.WriteData(batch, "redisgears")
    assert [d["key"] for d in gears.xadds()] == ["MovieEntity:bad"]


def test_dead_letter_stream_is_trimmed_and_the_trimmed_counted(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    gears.replies["XTRIM"] = 7
    make_sink(sink_module, FakeCollection(), dead_letter_maxlen=50).WriteData(
        [upsert("bad", None, text="[1]")], "redisgears")
    assert ("XTRIM", "dlq{06S}", "MAXLEN", "~", "50") in gears.commands
    assert gears.commands[-1] == ("INCRBY", "dlq{06S}:trimmed", "7")


def test_expiry_and_eviction_do_not_delete_unless_asked(sink_module: types.ModuleType) -> None:
    batch = [upsert("1", {"v": 1}), delete("1", "expired"), delete("2", "evicted"),
             delete("3", "del"), delete("4"), delete("1", "keymiss")]
    collection = FakeCollection()
    make_sink(sink_module, collection).WriteData(batch, "redisgears")
    assert collection.calls == [[ReplaceOne({"movieId": "1"}, {"v": 1, "movieId": "1"},
                                            upsert=True),
                                 DeleteOne({"movieId": "3"}), DeleteOne({"movieId": "4"})]]
    mirror = FakeCollection()
    make_sink(sink_module, mirror, delete_on_expiry=True).WriteData(batch, "redisgears")
    assert [r._filter for r in mirror.calls[0]] == [{"movieId": k} for k in "1234"]
    assert all(isinstance(r, DeleteOne) for r in mirror.calls[0])


def test_unique_index_created_once_per_connection(sink_module: types.ModuleType) -> None:
    collection = FakeCollection()
    sink = make_sink(sink_module, collection)
    for i in range(3):
        sink.WriteData([upsert(str(i), {"v": i})], "redisgears")
    assert collection.indexes == [([("movieId", 1)], True)]


def test_duplicates_refuse_the_index_in_one_line_and_nothing_is_written(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    duplicates = OperationFailure("E11000 duplicate key error collection: db.movies index: "
                                  "movieId_1 dup key: { movieId: \"7\" }", 11000)
    collection = FakeCollection(index_fails_with=[duplicates])
    sink = make_sink(sink_module, collection)
    with pytest.raises(Exception) as refused:
        sink.WriteData([upsert("1", {"v": 1})], "redisgears")
    message = str(refused.value)
    assert "\n" not in message and "duplicate" in message and "keep one per movieId" in message
    assert 'share a movieId (e.g. "7")' in message
    assert collection.calls == [] and gears.xadds() == []
    sink.WriteData([upsert("1", {"v": 1})], "redisgears")  # duplicates removed: next retry
    assert len(collection.calls) == 1 and len(collection.indexes) == 2


def test_a_refusal_without_e11000_still_names_the_duplicates(
        sink_module: types.ModuleType) -> None:
    refused = OperationFailure("UNIQUE constraint failed: index 'idx_movies_movieId'", 8)
    collection = FakeCollection(index_fails_with=[refused])
    with pytest.raises(Exception, match=r'documents share a movieId \(e.g. "7"\); delete'):
        make_sink(sink_module, collection).WriteData([upsert("1", {"v": 1})], "redisgears")


@pytest.mark.parametrize(("url", "expected"), [
    ("mongodb://h:1", {"w": "majority", "wtimeout": 15000}),
    ("mongodb://h:1/?wtimeoutMS=100", {"w": "majority", "wtimeout": 100}),
    ("mongodb://h:1/?w=1", {"w": 1}),
    ("mongodb://h:1/?journal=true", {"j": True}),
])
def test_write_concern_majority_unless_the_url_chooses(
        sink_module: types.ModuleType, url: str, expected: dict) -> None:
    from pymongo import MongoClient

    client = MongoClient(url, connect=False)
    try:
        sink = sink_module.MongoSink(url, "db", "movies", "movieId")
        assert sink._write_concern(client).document == expected
    finally:
        client.close()


def test_write_through_timeouts_all_follow_mongo_timeout_ms(
        sink_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import pymongo

    options: dict = {}

    class Client(pymongo.MongoClient):
        def __init__(self, url: str, **kwargs: object) -> None:
            options.update(kwargs)
            super().__init__(url, connect=False, **kwargs)

    monkeypatch.setattr(pymongo, "MongoClient", Client)
    sink = sink_module.MongoSink("mongodb://h:1", "db", "movies", "movieId", timeout_ms=800,
                                 socket_timeout_ms=800)
    collection = sink._collection()
    assert options == {"serverSelectionTimeoutMS": 800, "connectTimeoutMS": 800,
                       "socketTimeoutMS": 800}
    assert collection.write_concern.document == {"w": "majority", "wtimeout": 400}
    sink._reconnect_next_time()


def test_transient_failures_raise_for_a_retry(sink_module: types.ModuleType,
                                              gears: FakeGears) -> None:
    collection = FakeCollection(fail_with=[AutoReconnect("connection refused")])
    with pytest.raises(AutoReconnect):
        make_sink(sink_module, collection).WriteData([upsert("1", {"v": 1})], "redisgears")
    assert gears.commands == []  # nothing dead-lettered


def test_unencodable_document_is_dead_lettered(sink_module: types.ModuleType,
                                               gears: FakeGears) -> None:
    overflow = OverflowError("MongoDB can only handle up to 8-byte ints")
    collection = FakeCollection(fail_with=[overflow])
    make_sink(sink_module, collection).WriteData(
        [upsert("big", {"n": 2**70}), upsert("ok", {"n": 1})], "redisgears")
    assert [r._filter for r in collection.calls[-1]] == [{"movieId": "ok"}]
    (fields,) = gears.xadds()
    assert fields["key"] == "MovieEntity:big" and "8-byte" in fields["error"]


def test_client_is_not_pickled_and_password_not_shown(sink_module: types.ModuleType) -> None:
    import pickle

    sink = sink_module.MongoSink("mongodb://u:pw@h:1", "db", "movies", "movieId")
    sink._client = object()
    assert pickle.loads(pickle.dumps(sink))._client is None
    assert "pw" not in repr(sink)


def test_url_read_from_environment_or_key(sink_module: types.ModuleType, gears: FakeGears,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_TEST_MONGO_URL", "mongodb://u:from-env@h:1")
    assert sink_module.MongoSink("env:WB_TEST_MONGO_URL", "d", "c", "k").mongo_url() \
        == "mongodb://u:from-env@h:1"
    sink_module.execute = lambda *args: "mongodb://u:from-key@h:1" if args == (
        "GET", "wbload:secret:m") else None
    assert sink_module.MongoSink("redis:wbload:secret:m", "d", "c", "k").mongo_url() \
        == "mongodb://u:from-key@h:1"
    with pytest.raises(Exception, match="no MongoDB URL in the Redis key wbload:secret:x"):
        sink_module.MongoSink("redis:wbload:secret:x", "d", "c", "k").mongo_url()
    monkeypatch.delenv("WB_TEST_MONGO_URL")
    with pytest.raises(Exception, match="environment variable WB_TEST_MONGO_URL"):
        sink_module.MongoSink("env:WB_TEST_MONGO_URL", "d", "c", "k").mongo_url()


def test_one_client_per_registration_reused_across_batches(
        sink_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import pymongo

    created: list[str] = []

    class Client:
        def __init__(self, url: str, **options: object) -> None:
            created.append(url)

            self.write_concern = pymongo.WriteConcern()

        def __getitem__(self, name: str) -> types.SimpleNamespace:
            return types.SimpleNamespace(get_collection=lambda *a, **k: FakeCollection())

        def close(self) -> None:
            pass

    monkeypatch.setattr(pymongo, "MongoClient", Client)
    sink = sink_module.MongoSink("mongodb://h:1", "db", "movies", "movieId")
    for i in range(3):
        sink.WriteData([upsert(str(i), {"v": i})], "redisgears")
    assert created == ["mongodb://h:1"]


def test_each_shard_dead_letters_into_its_own_stream(sink_module: types.ModuleType,
                                                     gears: FakeGears) -> None:
    """Recipe code may touch only its shard's keys: the stream name carries the shard's tag,
    resolved when the dead letter is written (not when the sink was pickled)."""
    sink = make_sink(sink_module, FakeCollection())
    for tag in ("8M", "63n"):
        gears.tag = tag
        sink.WriteData([upsert("bad", None, text="[1]")], "redisgears")
    streams = [c[1] for c in gears.commands if c[0] == "XADD"]
    assert streams == ["dlq{8M}", "dlq{63n}"]


def test_a_redis_secret_is_read_from_the_shards_copy_when_the_key_is_elsewhere(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    def execute(*args: object) -> object:
        gears.commands.append(args)
        if args == ("GET", "wbload:secret"):
            raise RuntimeError("Operation not permitted")  # another shard's key
        return "mongodb://from-copy" if args == ("GET", "wbload:secret{8M}") else None

    gears.tag = "8M"
    sys.modules["redisgears"].executeCommand = execute  # type: ignore[attr-defined]
    sink_module.execute = execute
    sink = sink_module.MongoSink("redis:wbload:secret", "db", "movies", "movieId")
    assert sink.mongo_url() == "mongodb://from-copy"

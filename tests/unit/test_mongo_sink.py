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
from pymongo.errors import AutoReconnect, BulkWriteError

SINK = Path(__file__).resolve().parents[2] / "recipes" / "common" / "mongo_sink.py"


class FakeGears:
    def __init__(self) -> None:
        self.commands: list[tuple] = []
        self.logs: list[str] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("redisgears")
        module.executeCommand = lambda *args: self.commands.append(args)  # type: ignore[attr-defined]
        module.log = lambda msg, level="notice": self.logs.append(msg)  # type: ignore[attr-defined]
        return module


class FakeCollection:
    def __init__(self, fail_with: list[Exception] | None = None) -> None:
        self.calls: list[list] = []
        self.fail_with = list(fail_with or [])

    def bulk_write(self, requests: list, ordered: bool = True) -> None:
        assert ordered
        self.calls.append(list(requests))
        if self.fail_with:
            raise self.fail_with.pop(0)


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


def make_sink(module: types.ModuleType, collection: FakeCollection):
    sink = module.MongoSink("mongodb://u:pw@h:1", "db", "movies", "movieId",
                            dead_letter_stream="dlq")
    sink._collection = lambda: collection
    return sink


def upsert(key_id: str, document: object, text: str | None = None) -> dict:
    return {"id": "1-0", "value": {
        "_original_key": f"MovieEntity:{key_id}", "movieId": key_id, "#": "=",
        "redisgears": text if text is not None else json.dumps(document, ensure_ascii=False)}}


def delete(key_id: str) -> dict:
    return {"id": "1-0", "value": {"_original_key": f"MovieEntity:{key_id}",
                                   "movieId": key_id, "#": "~"}}


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
    (xadd,) = gears.commands
    fields = dict(zip(xadd[3::2], xadd[4::2]))
    assert xadd[:3] == ("XADD", "dlq", "*")
    assert fields["key"] == "MovieEntity:bad" and reason in fields["error"]
    assert fields["document"] == text


def test_rejected_write_is_dead_lettered_and_the_rest_retried(
        sink_module: types.ModuleType, gears: FakeGears) -> None:
    rejected = BulkWriteError({"writeErrors": [{"index": 1, "code": 11000,
                                                "errmsg": "E11000 duplicate key"}],
                               "writeConcernErrors": [], "nInserted": 0})
    collection = FakeCollection(fail_with=[rejected])
    make_sink(sink_module, collection).WriteData(
        [upsert("1", {"v": 1}), upsert("2", {"v": 2}), upsert("3", {"v": 3})], "redisgears")
    assert len(collection.calls) == 2
    assert [r._filter for r in collection.calls[1]] == [{"movieId": "3"}]
    assert gears.commands[0][1] == "dlq" and "duplicate key" in gears.commands[0][-3]


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
    fields = dict(zip(gears.commands[0][3::2], gears.commands[0][4::2]))
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

        def __getitem__(self, name: str) -> dict:
            return {"movies": FakeCollection()}

        def close(self) -> None:
            pass

    monkeypatch.setattr(pymongo, "MongoClient", Client)
    sink = sink_module.MongoSink("mongodb://h:1", "db", "movies", "movieId")
    for i in range(3):
        sink.WriteData([upsert(str(i), {"v": i})], "redisgears")
    assert created == ["mongodb://h:1"]

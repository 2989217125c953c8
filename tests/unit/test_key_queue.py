"""The write-behind's key queue (recipes/common/json_write_behind.py), with Gears replaced by a
small in-memory keyspace: what each event queues, what a batch writes, what is trimmed.

The same recipe against Gears' Python 3.7, a real Redis and Mongo is in tests/e2e.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "common" / "json_write_behind.py"
STREAM_KEY = "_movies-stream-u-{06S}"
MARKER = "wbload:expired:Movies{06S}"


class Shard:
    """The commands the recipe sends, answered from dicts (JSON documents, other keys)."""

    def __init__(self) -> None:
        self.json: dict[str, str] = {}
        self.other: dict[str, str] = {}  # key -> its TYPE
        self.hashes: dict[str, dict[str, str]] = {}
        self.stream: list[tuple[str, list]] = []
        self.ttl: dict[str, int] = {}  # key -> PTTL in ms, for keys that have one
        self.config = {"maxmemory-policy": "noeviction", "maxmemory": "0"}
        self.commands: list[tuple] = []
        self.atomic: list[tuple] = []  # the commands sent inside an atomicCtx block
        self.depth = 0
        self.moved: set[str] = set()  # keys of slots another shard owns now
        self.unregister_error = "execution is not registered"
        self.clock = 100

    @contextlib.contextmanager
    def atomic_block(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def execute(self, *args: Any) -> Any:
        self.commands.append(args)
        if self.depth:
            self.atomic.append(args)
        name, rest = args[0], list(args[1:])
        if name in ("JSON.GET", "JSON.MGET") and self.moved & set(rest):
            raise RuntimeError("Operation not permitted")
        if name == "JSON.GET":
            return self.json.get(rest[0])
        if name == "PTTL":
            return self.ttl.get(rest[0], -1) if rest[0] in self.json else -2
        if name == "CONFIG":
            assert rest[0] == "GET"
            return [rest[1], self.config[rest[1]]]
        if name == "JSON.MGET":
            return [self.json.get(k) for k in rest[:-1]]
        if name == "TYPE":
            return "ReJSON-RL" if rest[0] in self.json else self.other.get(rest[0], "none")
        if name == "XADD":
            self.clock += 1
            entry_id = f"{self.clock}-0"
            self.stream.append((entry_id, rest[2:]))
            return entry_id
        if name == "HSET":
            self.hashes.setdefault(rest[0], {})[rest[1]] = rest[2]
            return 1
        if name == "HMGET":
            return [self.hashes.get(rest[0], {}).get(f) for f in rest[1:]]
        if name == "HDEL":
            self.hashes.get(rest[0], {}).pop(rest[1], None)
            return 1
        if name == "XTRIM":
            assert rest[1] == "MINID"
            floor = tuple(int(x) for x in rest[2].split("-"))
            self.stream = [e for e in self.stream
                           if tuple(int(x) for x in e[0].split("-")) >= floor]
            return 0
        if name == "XLEN":
            return len(self.stream)
        if name == "RG.DUMPREGISTRATIONS":
            return []
        if name == "RG.UNREGISTER":
            raise RuntimeError(self.unregister_error)
        if name == "RG.INFOCLUSTER":
            return "no cluster mode"
        raise AssertionError(f"unexpected command {args}")

    def records(self) -> list[dict]:
        """The stream as the StreamReader's records."""
        return [{"key": STREAM_KEY, "id": entry_id,
                 "value": dict(zip(fields[::2], fields[1::2]))}
                for entry_id, fields in self.stream]


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.dead_letter_stream = "dead"

    def TableName(self) -> str:  # noqa: N802 (rgsync's connector interface)
        return "movies"

    def PrimaryKey(self) -> str:  # noqa: N802
        return "movieId"

    def WriteData(self, data: list[dict], dataKey: str) -> None:  # noqa: N802, N803
        self.batches.append([dict(r["value"]) for r in data])


class GB:
    """Records each registration's step and arguments."""

    registered: list[dict] = []

    def __init__(self, reader: str, desc: str) -> None:
        self.entry: dict[str, Any] = {"reader": reader, "desc": json.loads(desc), "steps": []}

    def foreach(self, step: Callable) -> GB:
        self.entry["steps"].append(step)
        return self

    def aggregate(self, *_args: Any) -> GB:
        return self

    def count(self) -> GB:
        return self

    def register(self, **args: Any) -> None:
        self.entry["args"] = args
        GB.registered.append(self.entry)


@pytest.fixture
def shard(monkeypatch: pytest.MonkeyPatch) -> Shard:
    return Shard()


@pytest.fixture
def recipe(shard: Shard, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    gears = types.ModuleType("redisgears")
    gears.executeCommand = shard.execute  # type: ignore[attr-defined]
    gears.getMyHashTag = lambda: "06S"  # type: ignore[attr-defined]
    gears.atomicCtx = shard.atomic_block  # type: ignore[attr-defined]
    gears.log = lambda *a: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "redisgears", gears)
    common = types.ModuleType("common")
    registrations = types.ModuleType("common.registrations")
    registrations.take_over = lambda name, version: []  # type: ignore[attr-defined]
    registrations.note = lambda *a: None  # type: ignore[attr-defined]
    registrations.predecessor_stream = lambda p: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "common", common)
    monkeypatch.setitem(sys.modules, "common.registrations", registrations)
    spec = importlib.util.spec_from_file_location("json_write_behind_under_test", RECIPE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.uuid, "uuid4", lambda: "u")
    return module


@pytest.fixture
def steps(recipe: types.ModuleType) -> tuple[Callable, Callable, Sink]:
    """(the KeysReader's step, the StreamReader's step, the sink) of one registration."""
    return register(recipe, Sink())


def register(recipe: types.ModuleType, sink: Sink) -> tuple[Callable, Callable, Sink]:
    GB.registered = []
    recipe.JSONWriteBehind(GB, keysPrefix="MovieEntity", connector=sink, name="Movies",
                           version="1.0.0")
    keys, streams = GB.registered
    return keys["steps"][0], streams["steps"][0], sink


def test_each_event_queues_only_its_key_and_a_missed_read_nothing(recipe) -> None:
    assert recipe.change_of({"key": "MovieEntity:1", "event": "json.set"}) == [
        "k", "MovieEntity:1"]
    assert recipe.change_of({"key": "MovieEntity:1", "event": "del"}) == ["k", "MovieEntity:1"]
    assert recipe.change_of({"key": "MovieEntity:1", "event": "expired"}) == [
        "k", "MovieEntity:1", "e", "expired"]
    assert recipe.change_of({"key": "MovieEntity:1", "event": "keymiss"}) is None


def test_registrations_keep_rgsync_names_and_let_only_the_reader_trim(steps) -> None:
    keys, streams = GB.registered
    assert keys["desc"]["name"] == "Movies.KeysReader" and keys["args"]["mode"] == "sync"
    assert keys["args"]["readValue"] is False
    assert streams["desc"]["name"] == "Movies.StreamReader"
    assert streams["args"]["trimStream"] is False
    assert streams["args"]["prefix"] == "_movies-stream-u-*"


def test_a_batch_writes_each_key_as_it_is_now(shard: Shard, steps) -> None:
    queue, write, sink = steps
    shard.json["MovieEntity:a"] = '{"v":1}'
    shard.other["MovieEntity:s"] = "string"
    for key, event in [("MovieEntity:a", "json.set"), ("MovieEntity:gone", "json.set"),
                       ("MovieEntity:a", "json.set"), ("MovieEntity:gone", "del"),
                       ("MovieEntity:s", "set"), ("MovieEntity:x", "keymiss")]:
        queue({"key": key, "event": event})
    assert len(shard.stream) == 5  # the missed read queued nothing
    write(shard.records())
    (batch,) = sink.batches
    assert batch == [
        {"_original_key": "MovieEntity:a", "movieId": "a", "#": "=", "redisgears": '{"v":1}'},
        {"_original_key": "MovieEntity:gone", "movieId": "gone", "#": "~", "_event": ""},
        {"_original_key": "MovieEntity:s", "movieId": "s", "#": "=",
         "_error": "not a JSON document (the key holds a string)"},
    ]
    assert [c[0] for c in shard.commands].count("JSON.MGET") == 1
    assert shard.stream == []  # written, then trimmed; nothing left behind: no wake-up


def test_an_expiry_is_a_housekeeping_delete_even_when_written_before_its_own_entry(
        shard: Shard, steps) -> None:
    queue, write, sink = steps
    queue({"key": "MovieEntity:t", "event": "json.set"})
    first = shard.records()
    # the key expires before that change is written: its expiry is queued after it
    queue({"key": "MovieEntity:t", "event": "expired"})
    write(first)
    assert sink.batches[-1] == [{"_original_key": "MovieEntity:t", "movieId": "t", "#": "~",
                                 "_event": "expired"}]
    assert len(shard.stream) == 2  # the expiry entry, and a wake-up after it
    write(shard.records())
    assert sink.batches[-1][0]["_event"] == "expired"
    assert shard.hashes[MARKER] == {} and shard.stream == []


def test_an_app_delete_after_an_old_expiry_is_a_delete(shard: Shard, steps) -> None:
    queue, write, sink = steps
    queue({"key": "MovieEntity:t", "event": "expired"})
    queue({"key": "MovieEntity:t", "event": "json.set"})
    queue({"key": "MovieEntity:t", "event": "del"})
    shard.hashes[MARKER]["MovieEntity:other"] = "1-0"
    write(shard.records())
    assert sink.batches[-1] == [{"_original_key": "MovieEntity:t", "movieId": "t", "#": "~",
                                 "_event": ""}]
    assert shard.hashes[MARKER] == {"MovieEntity:other": "1-0"}


def test_entries_left_behind_get_a_wake_up_and_nothing_unread_is_trimmed(
        shard: Shard, steps) -> None:
    queue, write, sink = steps
    for i in range(5):
        shard.json[f"MovieEntity:{i}"] = "{}"
        queue({"key": f"MovieEntity:{i}", "event": "json.set"})
    records = shard.records()
    write(records[:2])  # Gears delivered two; three wait
    assert [fields for _, fields in shard.stream] == [
        ["k", "MovieEntity:2"], ["k", "MovieEntity:3"], ["k", "MovieEntity:4"], ["k", ""]]
    write(shard.records())  # the wake-up is no change
    assert [len(b) for b in sink.batches] == [2, 3] and shard.stream == []


def test_a_failed_write_trims_nothing(shard: Shard, steps) -> None:
    queue, write, sink = steps
    queue({"key": "MovieEntity:1", "event": "del"})

    def refuse(data: list[dict], dataKey: str) -> None:  # noqa: N803
        raise RuntimeError("Mongo is down")

    sink.WriteData = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        write(shard.records())
    assert len(shard.stream) == 1


def expire(shard: Shard, queue: Callable, key: str) -> None:
    """Redis expires `key`: gone first, then the KeysReader sees `expired`."""
    shard.json.pop(key)
    shard.ttl.pop(key, None)
    queue({"key": key, "event": "expired"})


def test_a_key_with_a_ttl_that_expires_before_its_change_is_written_still_gets_it(
        shard: Shard, steps) -> None:
    queue, write, sink = steps
    shard.json["MovieEntity:t"] = '{"title": "v1"}'
    queue({"key": "MovieEntity:t", "event": "json.set"})  # no TTL yet: the key only
    shard.ttl["MovieEntity:t"] = 5000
    queue({"key": "MovieEntity:t", "event": "expire"})  # the TTL: copied from now on
    shard.json["MovieEntity:t"] = '{"title": "v2 \u00e9"}'
    queue({"key": "MovieEntity:t", "event": "json.set"})
    assert [fields for _, fields in shard.stream] == [
        ["k", "MovieEntity:t"], ["k", "MovieEntity:t", "d", '{"title": "v1"}'],
        ["k", "MovieEntity:t", "d", '{"title": "v2 \u00e9"}']]
    expire(shard, queue, "MovieEntity:t")  # Mongo was down: nothing written yet
    write(shard.records())
    assert sink.batches == [[
        {"_original_key": "MovieEntity:t", "movieId": "t", "#": "=",
         "redisgears": '{"title": "v2 \u00e9"}'},
        {"_original_key": "MovieEntity:t", "movieId": "t", "#": "~", "_event": "expired"},
    ]]


def test_a_copy_is_not_written_over_an_app_delete_or_a_live_key(shard: Shard, steps) -> None:
    queue, write, sink = steps
    for key in ("MovieEntity:d", "MovieEntity:live"):
        shard.json[key], shard.ttl[key] = '{"old": true}', 5000
        queue({"key": key, "event": "json.set"})
    del shard.json["MovieEntity:d"]
    queue({"key": "MovieEntity:d", "event": "del"})
    shard.json["MovieEntity:live"] = '{"new": true}'
    write(shard.records())
    assert sink.batches == [[  # keys in the order of their last change
        {"_original_key": "MovieEntity:live", "movieId": "live", "#": "=",
         "redisgears": '{"new": true}'},
        {"_original_key": "MovieEntity:d", "movieId": "d", "#": "~", "_event": ""},
    ]]


def test_when_redis_evicts_any_key_every_change_carries_a_copy(
        shard: Shard, steps, recipe) -> None:
    queue, write, sink = steps
    shard.config = {"maxmemory-policy": "allkeys-lru", "maxmemory": "1000000"}
    for i in range(3):
        shard.json[f"MovieEntity:{i}"] = f'{{"n": {i}}}'
        queue({"key": f"MovieEntity:{i}", "event": "json.set"})
    assert all(fields[2:] == ["d", f'{{"n": {i}}}']
               for i, (_, fields) in enumerate(shard.stream))
    # read once, not per write
    assert [c for c in shard.commands if c[0] == "CONFIG"] == [
        ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "maxmemory")]
    shard.json.pop("MovieEntity:1")
    queue({"key": "MovieEntity:1", "event": "evicted"})
    write(shard.records())
    assert sink.batches[-1][2:] == [
        {"_original_key": "MovieEntity:1", "movieId": "1", "#": "=", "redisgears": '{"n": 1}'},
        {"_original_key": "MovieEntity:1", "movieId": "1", "#": "~", "_event": "evicted"}]


def test_a_sink_that_mirrors_expiry_needs_no_copies(shard: Shard, recipe) -> None:
    sink = Sink()
    sink.delete_on_expiry = True  # type: ignore[attr-defined]
    queue, write, _ = register(recipe, sink)
    shard.json["MovieEntity:t"], shard.ttl["MovieEntity:t"] = "{}", 5000
    queue({"key": "MovieEntity:t", "event": "json.set"})
    assert shard.stream[0][1] == ["k", "MovieEntity:t"]
    assert not [c for c in shard.commands if c[0] in ("PTTL", "CONFIG", "JSON.GET")]


def test_a_batch_reads_its_keys_and_checks_markers_in_one_atomic_view(
        shard: Shard, steps) -> None:
    """Gears releases Redis between an async step's commands: a key read as gone must not be
    re-created (a false dead letter) before its TYPE, nor a newer expiry's marker dropped."""
    queue, write, sink = steps
    shard.json["MovieEntity:a"] = "{}"
    queue({"key": "MovieEntity:a", "event": "json.set"})
    queue({"key": "MovieEntity:g", "event": "expired"})
    write(shard.records())
    reads = [c[0] for c in shard.atomic]
    assert reads == ["JSON.MGET", "HMGET", "TYPE", "HMGET", "HDEL"]
    assert [c for c in shard.commands if c[0] in ("TYPE", "HDEL")] == [
        c for c in shard.atomic if c[0] in ("TYPE", "HDEL")]


def test_a_key_resharding_moved_away_is_left_to_its_new_shard(shard: Shard, steps) -> None:
    queue, write, sink = steps
    shard.json["MovieEntity:stay"] = '{"v": 1}'
    queue({"key": "MovieEntity:stay", "event": "json.set"})
    queue({"key": "MovieEntity:moved", "event": "del"})  # MIGRATE deletes it here
    shard.moved.add("MovieEntity:moved")
    write(shard.records())
    assert sink.batches == [[{"_original_key": "MovieEntity:stay", "movieId": "stay",
                              "#": "=", "redisgears": '{"v": 1}'}]]
    assert shard.stream == []  # written (by its new shard) is not ours to keep


def test_the_handover_retries_when_the_old_keysreader_cannot_be_unregistered(
        shard: Shard, recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    old = {"id": "0000-1", "version": "0.9.0"}
    registrations = sys.modules["common.registrations"]
    monkeypatch.setattr(registrations, "take_over", lambda name, version: [dict(old)])
    monkeypatch.setattr(recipe, "take_over", registrations.take_over, raising=False)
    queue, write, sink = register(recipe, Sink())
    shard.json["MovieEntity:1"] = "{}"
    queue({"key": "MovieEntity:1", "event": "json.set"})
    shard.unregister_error = "Cluster is down"
    with pytest.raises(RuntimeError, match="Cluster is down"):
        write(shard.records())
    assert sink.batches == [] and len(shard.stream) == 1  # nothing written, nothing trimmed
    shard.unregister_error = "execution is not registered"  # retired meanwhile: fine
    write(shard.records())
    assert len(sink.batches) == 1 and shard.stream == []

"""Which keys of a stream a resync may delete in Mongo when they are gone from Redis: only
those the app deleted last, never those Redis expired, evicted or that a read missed."""

from __future__ import annotations

from typing import Any

from wbload.streams import changed_keys
from wbload.topology import Shard


class FakeClient:
    def __init__(self, entries: list[dict[str, str]]) -> None:
        self.entries = [(f"{i + 1}-0", e) for i, e in enumerate(entries)]

    def xrange(self, stream: str, min: str = "-", count: Any = None) -> list:  # noqa: A002
        return self.entries if min == "-" else []


def keys_of(entries: list[dict[str, str]]) -> dict[str, bool]:
    return changed_keys(Shard("n:1", FakeClient(entries)), "s")  # type: ignore[arg-type]


def test_the_last_change_of_a_key_decides() -> None:
    assert keys_of([
        {"_original_key": "M:1", "#": "=", "redisgears": "{}"},
        {"_original_key": "M:1", "#": "~", "_event": "del"},
        {"_original_key": "M:2", "#": "~", "_event": "del"},
        {"_original_key": "M:2", "#": "=", "redisgears": "{}"},
    ]) == {"M:1": True, "M:2": False}


def test_housekeeping_deletes_never_delete_in_mongo() -> None:
    assert keys_of([
        {"_original_key": "M:e", "#": "~", "_event": "expired"},
        {"_original_key": "M:v", "#": "~", "_event": "evicted"},
        {"_original_key": "M:r", "#": "~", "_event": "keymiss"},
    ]) == {"M:e": False, "M:v": False, "M:r": False}


def test_stock_rgsync_deletes_and_force_bridge_events() -> None:
    assert keys_of([
        {"_original_key": "M:s", "#": "~"},                  # rgsync: no event recorded
        {"_original_key": "M:b", "_event": "del"},           # the --force bridge
        {"_original_key": "M:x", "_event": "expired"},
        {"_original_key": "M:w", "_event": "json.set"},     # gone later: not its to delete
        {"_original_key": "M:n", "_event": "rename_from"},
    ]) == {"M:s": True, "M:b": True, "M:x": False, "M:w": False, "M:n": True}

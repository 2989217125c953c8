"""The two lags status and monitor report: Gears' lastEstimatedLagMS, and the age of the oldest
change still waiting (the stream's first entry id against the shard's clock)."""

from __future__ import annotations

import json
from pathlib import Path

from wbload.registrations import _registration as parse_registration
from wbload.streams import oldest_age
from wbload.topology import Shard

TRANSCRIPTS = Path(__file__).resolve().parents[2].parent / "shared" / "gears" / "transcripts"


def test_last_estimated_lag_is_read_from_registration_data() -> None:
    reply = json.loads((TRANSCRIPTS / "dumpregistrations-rgsync-json-writebehind.json")
                       .read_text())["reply"]
    by_reader = {r.reader: r for r in map(parse_registration, reply)}
    assert by_reader["StreamReader"].estimated_lag_ms == 114  # as RedisGears 1.2.13 answered
    assert by_reader["KeysReader"].estimated_lag_ms == 0  # a KeysReader reports none


class FakeClient:
    def __init__(self, entries: list, now: tuple[int, int]) -> None:
        self.entries, self.now, self.asked = entries, now, []

    def xrange(self, stream: str, count: int) -> list:
        self.asked.append((stream, count))
        return self.entries[:count]

    def time(self) -> tuple[int, int]:
        return self.now


def test_oldest_age_is_the_shard_clock_minus_the_first_entry_id() -> None:
    client = FakeClient([("1000000-0", {}), ("1001000-3", {})], now=(1002, 500000))
    shard = Shard("h:1", client, ((0, 5460),))  # type: ignore[arg-type]
    assert oldest_age(shard, "_movies-stream-u-*") == 2.5
    assert client.asked == [("_movies-stream-u-{06S}", 1)]  # this shard's own stream, one entry


def test_oldest_age_of_an_empty_stream_is_none_and_never_negative() -> None:
    empty = Shard("h:1", FakeClient([], now=(5, 0)))  # type: ignore[arg-type]
    assert oldest_age(empty, "_s-*") is None
    ahead = Shard("h:1", FakeClient([("9000-0", {})], now=(5, 0)))  # type: ignore[arg-type]
    assert oldest_age(ahead, "_s-*") == 0.0  # an id from a clock ahead (a failover) is not < 0

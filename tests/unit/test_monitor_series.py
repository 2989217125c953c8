"""wbload monitor without a server: the series a report gives, and a failing collection."""

from __future__ import annotations

import logging

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wbload.connection import RedisTarget
from wbload.monitor import Exporter, Snapshot, families
from wbload.status import ReaderStatus, ShardStatus, StatusReport, WriteBehindStatus


def reader(kind: str, version: str, backlog: int | None = None, age: float | None = None,
           triggered: int = 0) -> ReaderStatus:
    return ReaderStatus(id=f"{kind}-{version}", reader=kind, version=version, mode="sync",
                        triggered=triggered, success=triggered, failures=1, aborted=0,
                        last_error=None, backlog=backlog, backlog_bytes=backlog and backlog * 10,
                        estimated_lag_ms=1500, oldest_age_s=age)


def report() -> StatusReport:
    shards = [
        ShardStatus("h:1", [reader("KeysReader", "2", triggered=5),
                            reader("StreamReader", "2", 7, 12.5, 3)],
                    [reader("StreamReader", "1", 4, 30.0)], 11, 2, True),
        ShardStatus("h:2", [reader("KeysReader", "2", triggered=1),
                            reader("StreamReader", "2", 0, None, 1)], [], 0, 1, True),
    ]
    wb = WriteBehindStatus("Movies", "2", "MovieEntity", "s*", 7, readers=[], shards=shards,
                           dead_letters=3)
    return StatusReport("cluster", [wb], {})


def samples(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Fixed:
        def collect(self):  # noqa: ANN202 - prometheus_client's Collector protocol
            return families(snapshot)

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_series_per_write_behind_version_and_shard() -> None:
    got = samples(Snapshot(report(), {"h:1": True, "h:2": True}, {}, 0.2, 1000.0))
    one = (("name", "Movies"), ("shard", "h:1"), ("version", "2"))
    two = (("name", "Movies"), ("shard", "h:2"), ("version", "2"))
    old = (("name", "Movies"), ("shard", "h:1"), ("version", "1"))
    assert got[("wbload_changes_waiting", one)] == 7
    assert got[("wbload_changes_waiting", two)] == 0
    assert got[("wbload_changes_waiting", old)] == 4  # the older version draining, own series
    assert got[("wbload_bytes_waiting", one)] == 70
    assert got[("wbload_oldest_change_age_seconds", one)] == 12.5
    assert got[("wbload_oldest_change_age_seconds", two)] == 0  # nothing waits
    assert got[("wbload_oldest_change_age_seconds", old)] == 30.0
    assert got[("wbload_gears_estimated_lag_seconds", one)] == 1.5
    assert got[("wbload_dead_letters", one)] == 2
    assert got[("wbload_dead_letters", two)] == 1
    assert got[("wbload_older_version_draining", one)] == 1
    assert got[("wbload_older_version_draining", two)] == 0
    keys = (("name", "Movies"), ("reader", "KeysReader"), ("shard", "h:1"), ("version", "2"))
    assert got[("wbload_reader_triggered_total", keys)] == 5  # a counter: Gears' only grow
    assert got[("wbload_reader_failures_total", keys)] == 1
    assert ("wbload_changes_waiting", keys) not in got  # a KeysReader has no stream
    assert got[("wbload_redis_up", (("shard", "h:1"),))] == 1
    assert got[("wbload_scrape_errors_total", (("shard", "h:2"),))] == 0


def test_failed_collection_is_a_metric_and_one_log_line_without_the_password(caplog) -> None:
    target = RedisTarget("redis://op:s3cret@127.0.0.1:1")

    def refuse(t: RedisTarget):  # noqa: ANN202
        raise redis.ConnectionError(f"Error 111 connecting to {t.url}. Connection refused.")

    exporter = Exporter(target, 5, connect=refuse, clock=lambda: 42.0)
    with caplog.at_level(logging.WARNING, logger="wbload.monitor"):
        exporter.collect_once()
        snapshot = exporter.collect_once()
    assert snapshot.report is None
    got = samples(snapshot)
    assert got[("wbload_redis_up", (("shard", "127.0.0.1:1"),))] == 0
    assert got[("wbload_scrape_errors_total", (("shard", "127.0.0.1:1"),))] == 2
    assert got[("wbload_last_collect_timestamp_seconds", ())] == 42.0
    assert len(caplog.records) == 2
    assert "s3cret" not in caplog.text and "Connection refused" in caplog.text


@pytest.mark.parametrize("error", [RuntimeError("bug"), redis.ResponseError("NOPERM")])
def test_any_collection_error_keeps_the_exporter_serving(error: Exception) -> None:
    def fail(_t: RedisTarget):  # noqa: ANN202
        raise error

    exporter = Exporter(RedisTarget("redis://127.0.0.1:1"), 5, connect=fail)
    exporter.collect_once()
    assert exporter.collect()  # a scrape still answers


class FakeShardClient:
    """A shard that answers (no registrations) or, once `down`, refuses every command."""

    def __init__(self) -> None:
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting. Connection refused.")

    def ping(self) -> bool:
        self._check()
        return True

    def execute_command(self, *args: object) -> list:
        self._check()
        assert args == ("RG.DUMPREGISTRATIONS",)
        return []

    def close(self) -> None:
        pass


def test_a_shard_that_does_not_answer_leaves_the_others_exported(caplog) -> None:
    from wbload.topology import Deployment, Shard

    clients = [FakeShardClient(), FakeShardClient(), FakeShardClient()]
    shards = [Shard(f"h:{i}", c, ((i * 5000, i * 5000 + 4999),))  # type: ignore[arg-type]
              for i, c in enumerate(clients)]
    connects = []

    def connect(target: RedisTarget) -> Deployment:
        connects.append(target)
        if clients[0].down:  # the named node is the one down: the topology cannot be read
            raise redis.ConnectionError("Connection refused")
        return Deployment(target, clients[0], shards, is_cluster=True)  # type: ignore[arg-type]

    exporter = Exporter(RedisTarget("redis://h:0"), 5, connect=connect)
    assert exporter.collect_once().report is not None and len(connects) == 1
    clients[0].down = True
    with caplog.at_level(logging.WARNING, logger="wbload.monitor"):
        snapshot = exporter.collect_once()
    assert snapshot.report is not None  # the other two were collected
    assert snapshot.up == {"h:0": False, "h:1": True, "h:2": True}
    got = samples(snapshot)
    assert got[("wbload_redis_up", (("shard", "h:1"),))] == 1
    assert got[("wbload_scrape_errors_total", (("shard", "h:0"),))] == 1
    assert got[("wbload_scrape_errors_total", (("shard", "h:1"),))] == 0
    assert "h:0 did not answer" in caplog.text
    # next time the topology is read again; the named node still down: the known shards
    with caplog.at_level(logging.WARNING, logger="wbload.monitor"):
        assert exporter.collect_once().up == {"h:0": False, "h:1": True, "h:2": True}
        assert len(connects) == 2
        assert caplog.text.count("did not answer") == 1  # said once, not every interval
        clients[0].down = False
        snapshot = exporter.collect_once()
        assert "every shard answers" in caplog.text
    assert snapshot.up == {"h:0": True, "h:1": True, "h:2": True}
    assert snapshot.errors == {"h:0": 2} and len(connects) == 3
    exporter.collect_once()
    assert len(connects) == 3  # all answered: the topology is kept

"""How `wbload status` adds up a cluster: each shard's Gears counts only what ran there."""

from __future__ import annotations

from wbload.status import ReaderStatus, _totals


def reader(triggered: int, error: str | None = None, backlog: int | None = 3,
           reader_id: str = "abc-1") -> ReaderStatus:
    return ReaderStatus(id=reader_id, reader="StreamReader", version="1.0.0",
                        mode="async_local", triggered=triggered, success=triggered - 1,
                        failures=1, aborted=0, last_error=error, backlog=backlog,
                        backlog_bytes=100 if backlog is not None else None)


def test_counters_backlogs_and_bytes_are_summed_per_registration() -> None:
    (total,) = _totals([[reader(5)], [reader(7)], [reader(1)]],
                       ["n1:7001", "n2:7002", "n3:7003"], name_shard=True)
    assert (total.triggered, total.success, total.failures) == (13, 10, 3)
    assert (total.backlog, total.backlog_bytes) == (9, 300)


def test_the_last_error_says_which_shard_it_came_from() -> None:
    (total,) = _totals([[reader(1)], [reader(1, "wire version 17")], [reader(1, "other")]],
                       ["n1:7001", "n2:7002", "n3:7003"], name_shard=True)
    assert total.last_error == "[n2:7002] wire version 17"


def test_a_single_node_error_is_shown_as_it_is() -> None:
    (total,) = _totals([[reader(1, "boom")]], ["localhost:6379"], name_shard=False)
    assert total.last_error == "boom"


def test_readers_of_different_registrations_stay_apart() -> None:
    totals = _totals([[reader(1), reader(2, reader_id="abc-2", backlog=None)]], ["n1:7001"],
                     name_shard=True)
    assert [(t.id, t.triggered, t.backlog) for t in totals] == [("abc-1", 1, 3), ("abc-2", 2, None)]

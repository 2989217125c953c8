"""`wbload status --watch` without a server: frames, the redraw loop, the LAG column."""

from __future__ import annotations

import io

import redis

from wbload.cli import status_frames, status_text
from wbload.connection import RedisTarget
from wbload.status import ReaderStatus, ShardStatus, StatusReport, WriteBehindStatus
from wbload.watch import HOME_AND_CLEAR, age, watch


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def report(waiting: int, oldest: float | None) -> StatusReport:
    readers = [
        ReaderStatus("1", "KeysReader", "1.0.0", "sync", 9, 9, 0, 0, None),
        ReaderStatus("2", "StreamReader", "1.0.0", "async_local", 3, 3, 0, 0, None,
                     backlog=waiting, backlog_bytes=2048, oldest_age_s=oldest),
    ]
    shard = ShardStatus("h:1", readers, [], waiting, 0, True, oldest_age_s=oldest)
    wb = WriteBehindStatus("MoviesWriteBehind", "1.0.0", "MovieEntity", "s*", waiting, readers,
                           shards=[shard], oldest_age_s=oldest)
    return StatusReport("node", [wb], {})


def test_age_reads_as_a_person_would() -> None:
    assert [age(None), age(0.4), age(59.9), age(125), age(3 * 3600 + 7 * 60 + 5)] == [
        "-", "0s", "59s", "2m05s", "3h07m"]


def test_lag_column_shows_the_oldest_waiting_change() -> None:
    lines = status_text(report(12, 125.0), by_shard=False).splitlines()
    header = lines[0].split()
    assert header[header.index("BACKLOG") + 1] == "LAG"
    stream_row = next(line for line in lines if "StreamReader" in line)
    assert "12 (2 KiB)" in stream_row and "2m05s" in stream_row
    keys_row = next(line for line in lines if "KeysReader" in line)
    assert "2m05s" not in keys_row
    drained = next(line for line in status_text(report(0, None), False).splitlines()
                   if "StreamReader" in line)
    assert " - " in drained  # nothing waits: no age


def test_watch_redraws_in_place_on_a_terminal_and_sleeps_between_frames() -> None:
    out, slept, texts = Terminal(), [], iter(["first", "second", "third"])
    drawn = watch(lambda: next(texts), 2.5, out, sleep=slept.append, frames=3)
    assert drawn == 3 and slept == [2.5, 2.5]
    assert out.getvalue() == "".join(f"{HOME_AND_CLEAR}{t}\n" for t in ("first", "second",
                                                                       "third"))


def test_watch_into_a_pipe_does_not_clear_and_ctrl_c_ends_it() -> None:
    out = io.StringIO()

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    assert watch(lambda: "frame", 1, out, sleep=interrupt) == 1
    assert out.getvalue() == "frame\n"


def test_frames_show_heading_status_and_recover_after_an_error() -> None:
    target = RedisTarget("redis://op:s3cret@127.0.0.1:6399")
    lost = redis.ConnectionError("lost redis://op:s3cret@127.0.0.1:6399")
    replies = [report(5, 61.0), lost, report(0, None)]
    connects = []

    class Held:
        is_cluster = False  # a single node: nothing to refresh between frames
        problems: list[str] = []

        def close(self) -> None:
            pass

    def connect(t: RedisTarget) -> Held:
        connects.append(t)
        return Held()

    def collect(_deployment: object) -> StatusReport:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    frame = status_frames(target, False, 2.0, clock=lambda: 3600 * 5 + 61,
                          collect=collect, connect=connect)  # type: ignore[arg-type]
    first, second, third = frame(), frame(), frame()
    assert first.startswith("wbload status  redis://op:****@127.0.0.1:6399  05:01:01 UTC")
    assert "1m01s" in first
    assert "wbload: error: lost" in second and "s3cret" not in second
    assert "MoviesWriteBehind" in third
    assert len(connects) == 2  # the error dropped the connection; the next frame reconnected

"""Reading RG.DUMPREGISTRATIONS as the real RedisGears 1.2.13 answers it (RESP2 and RESP3)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from wbload.gears_errors import one_line
from wbload.registrations import Registration, write_behinds
from wbload.registrations import _registration as parse_registration

TRANSCRIPTS = Path(__file__).resolve().parents[2].parent / "shared" / "gears" / "transcripts"


def transcript(name: str) -> dict:
    return json.loads((TRANSCRIPTS / name).read_text())


def parse(reply: list) -> list[Registration]:
    return [parse_registration(entry) for entry in reply]


def test_rgsync_pair_from_resp2_transcript() -> None:
    registrations = parse(transcript("dumpregistrations-rgsync-json-writebehind.json")["reply"])
    pairs = write_behinds(registrations)
    assert list(pairs) == ["MoviesWriteBehind"]
    wb = pairs["MoviesWriteBehind"]
    assert wb.complete and wb.version == "1.0.0"
    assert wb.key_prefix == "MovieEntity"
    assert wb.stream_reader is not None and wb.keys_reader is not None
    stream = "_movies-stream-be045468-b98a-4ed9-a53e-fd56b614a4fd-*"
    assert wb.stream_reader.stream_pattern == stream
    assert (wb.stream_reader.mode, wb.keys_reader.mode) == ("async_local", "sync")
    assert (wb.stream_reader.triggered, wb.stream_reader.success) == (2, 2)
    assert wb.stream_reader.last_error is None


@pytest.mark.parametrize("key", ["reply_repr_resp2", "reply_repr_resp3"])
def test_resp2_and_resp3_read_the_same(key: str) -> None:
    reply = ast.literal_eval(transcript("resp3-vs-resp2-dumpregistrations.json")[key])
    wb = write_behinds(parse(reply))["MoviesWriteBehind"]
    assert wb.version == "1.0.1"
    assert wb.stream_reader is not None and wb.stream_reader.triggered == 0
    assert wb.stream_reader.last_error is None


def test_generic_registrations_are_not_write_behinds() -> None:
    registrations = parse(transcript("dumpregistrations.json")["reply"])
    assert {r.name for r in registrations} == {"Probe.StreamReader", "Probe.KeysReader"}
    probe = write_behinds(registrations)["Probe"]
    # Its StreamReader has no version: an older one, left draining, not the current reader.
    assert probe.version == "1.0.0" and not probe.complete
    assert [r.name for r in probe.draining] == ["Probe.StreamReader"]


def test_an_upgrade_in_progress_has_a_draining_reader() -> None:
    def reader(kind: str, version: str, n: int) -> Registration:
        return Registration(id=f"x-{n}", reader=kind, name=f"M.{kind}", version=version,
                            mode="sync" if kind == "KeysReader" else "async_local")

    wb = write_behinds([reader("StreamReader", "1.0.0", 1), reader("KeysReader", "1.1.0", 2),
                        reader("StreamReader", "1.1.0", 3)])["M"]
    assert wb.complete and wb.version == "1.1.0"
    assert wb.stream_reader is not None and wb.stream_reader.id == "x-3"
    assert [r.id for r in wb.draining] == ["x-1"]


def test_last_error_is_one_line() -> None:
    error = (
        "['Traceback (most recent call last):\\n', '  File \"<string>\", line 5, in f\\n', "
        "\"AttributeError: 'str' object has no attribute 'items'\\n\"]"
    )
    assert one_line(error) == "AttributeError: 'str' object has no attribute 'items'"
    assert one_line("x" * 500).endswith("...") and len(one_line("x" * 500)) == 200

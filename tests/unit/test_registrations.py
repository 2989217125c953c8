"""Reading RG.DUMPREGISTRATIONS as the real RedisGears 1.2.13 answers it (RESP2 and RESP3)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from wbload.registrations import Registration, write_behinds
from wbload.registrations import _registration as parse_registration
from wbload.status import one_line

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
    pairs = write_behinds(registrations)
    # Probe has both readers by name but no shared version: still grouped, versions differ.
    assert pairs["Probe"].version is None and pairs["Probe"].complete


def test_last_error_is_one_line() -> None:
    error = (
        "['Traceback (most recent call last):\\n', '  File \"<string>\", line 5, in f\\n', "
        "\"AttributeError: 'str' object has no attribute 'items'\\n\"]"
    )
    assert one_line(error) == "AttributeError: 'str' object has no attribute 'items'"
    assert one_line("x" * 500).endswith("...") and len(one_line("x" * 500)) == 200

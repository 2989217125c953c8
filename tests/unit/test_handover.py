"""The bridge KeysReader `--force` registers while it swaps the pairs."""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Callable
from typing import Any

from wbload.handover import BRIDGE_NAME, bridge_recipe


def test_bridge_is_python_37_and_records_keys_under_the_prefix() -> None:
    text = bridge_recipe("Movies", "Movie'Entity", "_Movies-stream-force-1")
    ast.parse(text, feature_version=(3, 7))
    calls: dict[str, Any] = {}

    class GB:
        def __init__(self, reader: str, desc: str) -> None:
            calls["reader"], calls["desc"] = reader, desc

        def foreach(self, step: Callable[[dict], None]) -> GB:
            calls["step"] = step
            return self

        def register(self, **args: object) -> None:
            calls["register"] = args

    executed: list[tuple] = []
    gears = types.ModuleType("redisgears")
    gears.executeCommand = lambda *a: executed.append(a)  # type: ignore[attr-defined]
    gears.getMyHashTag = lambda: "06S"  # type: ignore[attr-defined]
    sys.modules["redisgears"] = gears
    try:
        exec(compile(text, "bridge", "exec"), {"GB": GB})
    finally:
        del sys.modules["redisgears"]
    assert calls["reader"] == "KeysReader" and BRIDGE_NAME in calls["desc"]
    assert calls["register"] == {"mode": "sync", "prefix": "Movie'Entity:*", "readValue": False}
    calls["step"]({"key": "Movie'Entity:1", "event": "json.set"})
    calls["step"]({"key": "Movie'Entity:2", "event": "keymiss"})  # a read: not recorded
    calls["step"]({"key": "Movie'Entity:3", "event": "expired"})
    assert executed == [
        ("XADD", "_Movies-stream-force-1-{06S}", "*", "_original_key", "Movie'Entity:1",
         "_event", "json.set"),
        ("XADD", "_Movies-stream-force-1-{06S}", "*", "_original_key", "Movie'Entity:3",
         "_event", "expired"),
    ]

"""Waiting for asynchronous effects (write-behind) with a deadline instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float = 10.0, what: str = "the condition",
    interval: float = 0.2,
) -> T:
    """Call `check` until it returns something truthy; at the deadline fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}; last saw {value!r}")
        time.sleep(interval)

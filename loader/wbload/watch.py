"""`wbload status --watch`: redraw a frame in place every few seconds (plain ANSI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

HOME_AND_CLEAR = "\x1b[H\x1b[2J"


def age(seconds: float | None) -> str:
    """`-` when nothing waits, else `4s`, `2m05s`, `3h07m`."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def watch(frame: Callable[[], str], interval: float, out: TextIO,
          sleep: Callable[[float], None] = time.sleep, frames: int | None = None) -> int:
    """Write `frame()` over the previous one every `interval` seconds, `frames` times (forever
    when None) or until Ctrl-C; returns the frames drawn. On a terminal the screen is cleared
    first; elsewhere (a pipe, a log) frames follow one another."""
    clear = HOME_AND_CLEAR if out.isatty() else ""
    drawn = 0
    try:
        while frames is None or drawn < frames:
            text = frame()
            out.write(clear + text + ("" if text.endswith("\n") else "\n"))
            out.flush()
            drawn += 1
            if frames is None or drawn < frames:
                sleep(interval)
    except KeyboardInterrupt:
        pass
    return drawn

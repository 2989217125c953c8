"""Gears' error texts, made readable: it often returns str() of a list of traceback lines."""

from __future__ import annotations

import ast
import re

_RECIPE_LINE = re.compile(r'File "<string>", line (\d+)')


def traceback_lines(text: str) -> list[str] | None:
    """The traceback lines inside Gears' `"['Traceback ...\\n', ...]"`, or None."""
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def recipe_line(lines: list[str]) -> str | None:
    """The innermost line number of the recipe (`<string>`) a traceback passes through."""
    numbers = [m.group(1) for text in lines for m in _RECIPE_LINE.finditer(text)]
    return numbers[-1] if numbers else None


def one_line(text: str | None, limit: int = 200) -> str | None:
    """The last meaningful line of an error (e.g. a whole traceback), shortened."""
    if not text:
        return None
    lines = traceback_lines(text)
    if lines:
        text = "".join(lines)
    meaningful = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = meaningful[-1] if meaningful else str(text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."

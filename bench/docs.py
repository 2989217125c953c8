"""Movie documents for the bench: the tutorial's demo movies, renumbered, no apostrophes.

rgsync's stock MongoConnector turns every `'` into `"` before json.loads and then stalls on
the document, so every document here is free of apostrophes: the stock sink can finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_MOVIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "demo-movies.json"
KEY_PREFIX = "MovieEntity"

_FALLBACK = {
    "title": "Toy Story", "year": {"low": 1995, "high": 0}, "imdbRating": 8.3,
    "languages": ["English"], "countries": ["USA"], "runtime": {"low": 81, "high": 0},
    "plot": "A cowboy doll is profoundly threatened and jealous when a new spaceman figure "
            "supplants him as top toy in a room.",
    "poster": "https://image.tmdb.org/t/p/w440_and_h660_face/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg",
    "released": "1995-11-22", "budget": {"low": 30000000, "high": 0},
}


def templates() -> list[dict[str, Any]]:
    """Demo movies whose JSON has no apostrophe (a built-in one when shared/ is absent)."""
    try:
        movies = json.loads(DEMO_MOVIES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        movies = [_FALLBACK]
    plain = [m for m in movies if "'" not in json.dumps(m)] or [_FALLBACK]
    for m in plain:
        m.pop("_id", None)  # the demo data carries Mongo ids; renumbered copies must not
    return plain


def movie(i: int, tpl: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Document number i: a template with movieId str(i) (the key id) and `extra` fields."""
    doc = dict(tpl[i % len(tpl)])
    doc["movieId"] = str(i)
    doc.update(extra)
    return doc


def key(i: int) -> str:
    return f"{KEY_PREFIX}:{i}"


def movies(n: int, start: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    """[(key, JSON text, document)] for ids start..start+n-1."""
    tpl = templates()
    out = []
    for i in range(start, start + n):
        doc = movie(i, tpl)
        text = json.dumps(doc)
        assert "'" not in text
        out.append((key(i), text, doc))
    return out

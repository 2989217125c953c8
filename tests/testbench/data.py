"""The tutorial's demo movies, from the shared/ folder beside the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# CI clones the repository into some folder with shared/ beside it, as in the workplace.
DEMO_MOVIES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "demo-movies.json"


def load_demo_movies() -> list[dict[str, Any]]:
    """The demo movie documents (fresh dicts on each call, safe to modify)."""
    if not DEMO_MOVIES.is_file():
        raise FileNotFoundError(f"no {DEMO_MOVIES} (shared/ is expected beside the repository)")
    movies = json.loads(DEMO_MOVIES.read_text(encoding="utf-8"))
    assert isinstance(movies, list)
    return movies

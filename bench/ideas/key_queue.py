"""`python -m bench.ideas.key_queue OUTDIR`: a copy of recipes/ with the key-queue write-behind.

recipes/common/json_write_behind.py is replaced by bench/ideas/key_queue_write_behind.py
(same class, same arguments: see its docstring for the design); everything else, the Mongo
sink included, is today's. Measure it beside ours with

    python -m bench.ideas.key_queue /tmp/wbkq
    python -m bench --variant key-queue=/tmp/wbkq/movies.py ...
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parents[1] / "recipes"
MODULE = HERE / "key_queue_write_behind.py"


def make(out: Path) -> Path:
    """Copy recipes/ to `out` with the key-queue module; the path of the movies recipe."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(RECIPES, out, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(MODULE, out / "common" / "json_write_behind.py")
    return out / "movies.py"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make(Path(sys.argv[1])))

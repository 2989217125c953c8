"""The sink's own cost: client-side CPU of WriteData for a batch, ours vs stock's MongoConnector.

Outside RedisGears, against the bench's Mongo (directly, not through the proxy), with the
interpreter and packages Gears runs them with: a Python 3.7 with pymongo 4.7.3 and rgsync
1.2.0 (`--sink-python`, `--sink-packages`; see bench/README.md for how to make them). Each
sink writes `batches` batches of `n` upserts (new documents, then updates of them); the
first batch connects and is not counted. CPU = time.process_time() around WriteData: JSON
parsing, building the requests, BSON encoding, pymongo's bookkeeping; Mongo's own time is
in the wall time only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from . import docs
from .env import REPO


def sink_cpu(run: Any, python: Path, packages: Path, n: int, batches: int) -> dict[str, Any]:
    rgsync_dir = next(packages.glob("**/rgsync/Connectors/mongo_connector.py"), None)
    if not python.is_file() or rgsync_dir is None:
        raise FileNotFoundError(
            f"need a Python 3.7 at {python} and pymongo 4.7.3 + rgsync 1.2.0 under {packages} "
            "(bench/README.md, 'sink CPU', says how to install them)")
    database = run.database("sinkcpu")
    spec = {"mongo_url": run.mongo_url, "database": database, "batches": batches,
            "mongo_sink": str(REPO / "recipes" / "common" / "mongo_sink.py"),
            "rgsync_dir": str(rgsync_dir.parents[1]),
            "docs": [text for _, text, _ in docs.movies(n)]}
    env = {"PYTHONPATH": str(packages), "PATH": "/usr/bin:/bin"}
    try:
        done = subprocess.run([str(python), str(REPO / "bench" / "sink_cpu_worker.py"),
                               json.dumps(spec)], capture_output=True, text=True, timeout=600,
                              env=env)
    finally:
        run.mongo().drop_database(database)
    if done.returncode:
        raise RuntimeError(f"sink CPU worker failed: {done.stderr.strip()[-800:]}")
    out: dict[str, Any] = {"n": n, "batches": batches, **json.loads(done.stdout)}
    for label in ("ours", "stock"):
        print(f"    {label}: {out[label]['cpu_us_per_doc']:.0f} us CPU per document, "
              f"{out[label]['wall_ms_per_batch']:.0f} ms per batch of {n}", flush=True)
    out["cpu_ratio_ours_to_stock"] = (out["ours"]["cpu_us_per_doc"]
                                      / out["stock"]["cpu_us_per_doc"])
    return out

"""--json of `wbload requirements export`: one JSON document on stdout, as README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbench.cli import wbload
from testbench.movies import MOVIES

pytestmark = pytest.mark.e2e


def test_requirements_export_json(gears, gears_clean, tmp_path: Path) -> None:
    exported = wbload("requirements", "export", MOVIES, "--to", str(tmp_path),
                      "--redis-url", gears.url, "--json")
    assert exported.exit_code == 0, exported.output
    shape = json.loads(exported.stdout)  # nothing else on stdout
    assert shape["name"] == "MoviesWriteBehind" and shape["version"] == "1.0.0"
    (saved,) = shape["requirements"]
    assert saved["requirement"] == "pymongo==4.7.3"
    assert Path(saved["path"]).is_file() and Path(saved["path"]).parent == tmp_path

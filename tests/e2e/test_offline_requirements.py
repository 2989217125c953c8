"""Offline requirements: export a recipe's requirements as zips, import them, deploy from them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from testbench.cli import wbload
from testbench.movies import MOVIES, deploy


def test_export_import_round_trip(gears, mongo, mongo_db, gears_clean, tmp_path: Path) -> None:
    exported = wbload("requirements", "export", MOVIES, "--to", str(tmp_path),
                      "--redis-url", gears.url)
    assert exported.exit_code == 0, exported.output
    zips = sorted(tmp_path.glob("*.zip"))
    assert len(zips) == 1
    # Gears reinstalls each on import and the last wins: the recipe's order is kept.
    assert (tmp_path / "requirements.txt").read_text().split() == ["pymongo==4.7.3"]
    names = set()
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            assert set(archive.namelist()) == {"MetaData.json", "Data.bin"}
            meta = json.loads(archive.read("MetaData.json"))
            names.add(meta["Name"])
            assert path.name == (f"redisgears-requirement-v{meta['GearReqVersion']}-"
                                 f"{meta['Name']}-{meta['CompiledOs']}.zip")
            assert archive.read("Data.bin")
    assert names == {"pymongo==4.7.3"}

    imported = wbload("requirements", "import", str(tmp_path), "--redis-url", gears.url)
    assert imported.exit_code == 0, imported.output
    assert "pymongo==4.7.3: imported" in imported.stdout
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db,
                      "--requirements-from", str(tmp_path))
    assert deployed.exit_code == 0, deployed.output
    reqs = gears_clean.execute_command("RG.PYDUMPREQS")
    assert {dict(zip(r[::2], r[1::2]))["Name"] for r in reqs} >= names
    # pymongo 4.7.3, the pin, is what the recipe uses.
    (version,), _ = gears_clean.execute_command(
        "RG.PYEXECUTE", "GB('ShardsIDReader').map(lambda x: __import__('pymongo').version).run()")
    assert version == "4.7.3"


def test_import_refuses_what_is_not_a_requirement(gears, gears_clean, tmp_path: Path) -> None:
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    (tmp_path / "requirements.txt").write_text("junk\n")
    result = wbload("requirements", "import", str(tmp_path), "--redis-url", gears.url)
    assert result.exit_code == 2, result.output
    assert "is not a requirement zip" in result.stderr

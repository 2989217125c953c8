"""`wbload new` makes a second write-behind that deploys and syncs next to movies, on one node
and on the cluster; the --json of deploy --dry-run and verify; NAME completion from the
server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbench.cli import wbload
from testbench.polling import wait_for

pytestmark = pytest.mark.e2e

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
WBLOAD = str(Path(sys.executable).with_name("wbload"))


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recipes/ folder with movies.py and common/, as cwd's recipes/."""
    shutil.copytree(RECIPES / "common", tmp_path / "recipes" / "common")
    shutil.copy(RECIPES / "movies.py", tmp_path / "recipes" / "movies.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "recipes"


def test_new_entity_deploys_and_syncs_next_to_movies(deployment, mongo, mongo_db,
                                                     recipes: Path) -> None:
    made = wbload("new", "users", "--prefix", "UserEntity", "--collection", "users",
                  "--key-field", "userId")
    assert made.exit_code == 0, made.output
    both = sorted(str(p) for p in recipes.glob("*.py"))  # recipes/*.py
    assert [Path(p).name for p in both] == ["movies.py", "users.py"]
    options = ["--redis-url", deployment.url, "--mongo-url", mongo.url_from_redis,
               "--param", f"MONGO_DATABASE={mongo_db.name}", "--param", "BATCH_DURATION_MS=50"]

    planned = wbload("deploy", *both, *options, "--dry-run", "--json")
    assert planned.exit_code == 0, planned.output
    plans = json.loads(planned.stdout)["plans"]
    assert [(p["name"], p["action"], p["registered_version"]) for p in plans] == [
        ("MoviesWriteBehind", "install", None), ("UsersWriteBehind", "install", None)]
    assert plans[0]["sends"][:2] == ["RG.PYEXECUTE", "<recipe>"]
    assert "REQUIREMENTS" in plans[0]["sends"]

    deployed = wbload("deploy", *both, *options)
    assert deployed.exit_code == 0, deployed.output
    client = deployment.client()
    for i in range(20):
        client.execute_command("JSON.SET", f"MovieEntity:{i}", "$", json.dumps({"t": i}))
        client.execute_command("JSON.SET", f"UserEntity:u{i}", "$", json.dumps({"n": i}))
    wait_for(lambda: mongo_db.users.count_documents({}) == 20
             and mongo_db.movies.count_documents({}) == 20, 60, "both entities in Mongo")
    assert mongo_db.users.find_one({"userId": "u7"}, {"_id": 0}) == {"n": 7, "userId": "u7"}

    report = json.loads(wbload("status", "--redis-url", deployment.url, "--json").stdout)
    by_name = {wb["name"]: wb for wb in report["write_behinds"]}
    assert set(by_name) == {"MoviesWriteBehind", "UsersWriteBehind"}
    assert by_name["UsersWriteBehind"]["dead_letter_stream"] == (
        "wbload:dead-letter:UsersWriteBehind")
    assert by_name["UsersWriteBehind"]["key_prefix"] == "UserEntity"

    again = json.loads(wbload("deploy", *both, *options, "--dry-run", "--json").stdout)
    assert [p["action"] for p in again["plans"]] == ["up to date", "up to date"]
    assert [p["sends"] for p in again["plans"]] == [None, None]

    verified = wbload("verify", str(recipes / "users.py"), *options, "--json")
    assert verified.exit_code == 0, verified.output
    shape: dict[str, Any] = json.loads(verified.stdout)
    (only,) = shape["verified"]
    assert only["name"] == "UsersWriteBehind" and only["version"] == "1.0.0"
    assert [s["step"] for s in only["steps"]] == ["insert", "update", "delete"]
    assert all(s["seconds"] >= 0 for s in only["steps"])

    # TAB after `wbload undeploy ` lists what the server in REDIS_URL has registered.
    completed = subprocess.run(
        [WBLOAD], capture_output=True, text=True, timeout=60,
        env={**os.environ, "REDIS_URL": deployment.url, "_WBLOAD_COMPLETE": "bash_complete",
             "COMP_WORDS": "wbload undeploy U", "COMP_CWORD": "2"})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["plain,UsersWriteBehind"]

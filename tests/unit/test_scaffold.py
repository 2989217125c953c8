"""`wbload new`: a recipe for another entity, laid out as recipes/movies.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testbench.cli import wbload
from wbload.completion import complete_write_behinds
from wbload.recipe import load_recipe, parse_gears_python

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(RECIPES / "common", tmp_path / "recipes" / "common")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "recipes"


def new_users(*extra: str):  # noqa: ANN201
    return wbload("new", "users", "--prefix", "UserEntity", "--collection", "users",
                  "--key-field", "userId", *extra)


def test_new_recipe_has_movies_parameters_and_renders(recipes: Path) -> None:
    made = new_users("--database", "app")
    assert made.exit_code == 0, made.output
    path = recipes / "users.py"
    parse_gears_python(path.read_text(), str(path))  # Python 3.7, as Gears runs it
    users, movies = load_recipe(path), load_recipe(RECIPES / "movies.py")
    assert list(users.parameters) == list(movies.parameters)  # the same template
    values = {n: p.default for n, p in users.parameters.items()}
    assert values["NAME"] == "UsersWriteBehind"
    assert values["DEAD_LETTER_STREAM"] == "wbload:dead-letter:UsersWriteBehind"
    assert (values["KEY_PREFIX"], values["MONGO_COLLECTION"], values["KEY_FIELD"],
            values["MONGO_DATABASE"]) == ("UserEntity", "users", "userId", "app")
    assert values["REQUIREMENTS"] == load_recipe(RECIPES / "movies.py").parameters[
        "REQUIREMENTS"].default
    rendered = wbload("render", str(path), "--mongo-url", "mongodb://m:27017")
    assert rendered.exit_code == 0, rendered.output
    assert "inlined common/mongo_sink.py" in rendered.stdout
    assert "connector=users" in rendered.stdout


def test_new_refuses_to_overwrite(recipes: Path) -> None:
    assert new_users().exit_code == 0
    before = (recipes / "users.py").read_text()
    again = new_users()
    assert again.exit_code == 3
    assert again.stderr.count("\n") == 1 and "exists; not overwritten" in again.stderr
    assert (recipes / "users.py").read_text() == before


@pytest.mark.parametrize("args", [
    ("new", "9users", "--prefix", "U", "--collection", "u", "--key-field", "id"),
    ("new", "users", "--prefix", "U:*", "--collection", "u", "--key-field", "id"),
    ("new", "users", "--prefix", "U", "--collection", "it's", "--key-field", "id"),
])
def test_new_refuses_values_that_do_not_fit(recipes: Path, args: tuple[str, ...]) -> None:
    run = wbload(*args)
    assert run.exit_code == 2 and run.stderr.startswith("wbload: error: bad ")
    assert not (recipes / "users.py").exists()


def test_name_completion_fails_silently_without_a_server(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")

    class Ctx:
        params: dict = {}

    assert complete_write_behinds(Ctx(), None, "Mo") == []  # type: ignore[arg-type]

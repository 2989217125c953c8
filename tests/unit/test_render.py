"""Rendering a recipe: parameters become Python literals, local modules are inlined."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wbload.errors import RecipeError
from wbload.parameters import parse_assignments, resolve
from wbload.recipe import load_recipe
from wbload.render import render

REPO = Path(__file__).resolve().parents[2]
MOVIES = REPO / "recipes" / "movies.py"

MINIMAL = "NAME = 'Probe'\nVERSION = '1.0.0'\nREQUIREMENTS = []\n"

HOSTILE = [
    "Schindler's List",
    'say "hi"',
    'triple """ quotes',
    "triple ''' quotes",
    "back\\slash\\",
    "new\nline\r\n",
    "'; import os; os.system('echo pwned') #",
    '"""\nimport os\n"""',
    "unicode: é 日本 🎬",
    "\\x00 and \\u0000 and \x7f",
]


def top_level_values(text: str) -> dict[str, object]:
    """The literal top-level assignments of a rendered recipe."""
    values = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def test_default_render_inlines_modules_and_is_python37() -> None:
    rendered = render(load_recipe(MOVIES), resolve(load_recipe(MOVIES), {}))
    ast.parse(rendered.text, feature_version=(3, 7))
    assert "from common." not in rendered.text
    assert "class MongoSink" in rendered.text
    assert "class JSONWriteBehind" in rendered.text
    assert rendered.text.count("class MongoSink") == 1
    assert rendered.requirements == ["pymongo==4.7.3"]
    # No rgsync at run time: its requirement carries pymongo 4.1.1 (README: REQUIREMENTS).
    assert "from rgsync" not in rendered.text and "import rgsync" not in rendered.text
    assert (rendered.name, rendered.version) == ("MoviesWriteBehind", "1.0.0")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_literals(value: str) -> None:
    recipe = load_recipe(MOVIES)
    rendered = render(recipe, resolve(recipe, {"MONGO_DATABASE": value, "MONGO_URL": value}))
    values = top_level_values(rendered.text)
    assert values["MONGO_DATABASE"] == value
    assert values["MONGO_URL"] == value
    # Nothing but those two values changed: same statements, same order.
    default = render(recipe, resolve(recipe, {}))
    assert len(ast.parse(rendered.text).body) == len(ast.parse(default.text).body)


def test_typed_parameters_are_converted() -> None:
    recipe = load_recipe(MOVIES)
    values = resolve(recipe, parse_assignments(["batch-size=7", "RETRY_INTERVAL_S=2"]))
    rendered = render(recipe, values)
    assert top_level_values(rendered.text)["BATCH_SIZE"] == 7
    assert top_level_values(rendered.text)["RETRY_INTERVAL_S"] == 2


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("BATCH_SIZE=ten", "expected a whole number"),
        ("NO_SUCH=1", "unknown parameter NO_SUCH"),
        ("VERSION=1.0", "MAJOR.MINOR.PATCH"),
        ("REQUIREMENTS=rgsync", "expected a Python literal"),
        ("REQUIREMENTS=[1]", "list of pip requirement strings"),
        ("NAME=bad name", "NAME must be"),
        ("KEY_PREFIX=", "non-empty key prefix"),
    ],
)
def test_bad_parameters_are_refused(assignment: str, message: str) -> None:
    recipe = load_recipe(MOVIES)
    with pytest.raises(RecipeError, match=message):
        render(recipe, resolve(recipe, parse_assignments([assignment])))


def test_password_is_masked_in_what_is_printed() -> None:
    recipe = load_recipe(MOVIES)
    url = "mongodb://admin:s3cr'et@db.example:27017/admin"
    rendered = render(recipe, resolve(recipe, {"MONGO_URL": url}))
    assert "s3cr" in rendered.text
    assert "s3cr" not in rendered.masked_text
    assert "mongodb://admin:****@db.example:27017/admin" in rendered.masked_text
    assert "s3cr" not in rendered.redact(f"error talking to {url!r}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.py")


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("NAME = 'x'\nGB(.run()\n", 2),
        ("NAME = 'x'\nVERSION = '1.0.0'\nif (n := 1):\n    pass\n", 3),  # walrus: 3.8+
        ("def f(a, /):\n    pass\n", 1),  # positional-only: 3.8+
    ],
)
def test_syntax_errors_name_file_and_line(tmp_path: Path, code: str, line: int) -> None:
    path = tmp_path / "bad.py"
    path.write_text(code)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_recipe_without_contract(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("")
    with pytest.raises(RecipeError, match="must set NAME, VERSION, REQUIREMENTS"):
        load_recipe(path)


def test_bundle_inlines_once_with_aliases(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.py").write_text("from lib.b import helper\nA = 1\n")
    (tmp_path / "lib" / "b.py").write_text("def helper():\n    return 2\n")
    (tmp_path / "r.py").write_text(
        "NAME = 'R'\nVERSION = '1.0.0'\nREQUIREMENTS = []\n"
        "from lib.a import A\nfrom lib.b import helper as h\nRESULT = (A, h())\n"
    )
    recipe = load_recipe(tmp_path / "r.py")
    text = render(recipe, resolve(recipe, {})).text
    assert text.count("def helper") == 1
    namespace: dict = {}
    exec(compile(text, "r", "exec"), namespace)
    assert namespace["RESULT"] == (1, 2)


@pytest.mark.parametrize("path", sorted((REPO / "recipes").rglob("*.py")), ids=lambda p: p.name)
def test_every_recipe_file_is_python_37(path: Path) -> None:
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))


@pytest.mark.parametrize("name", ["movies.py", "movies_write_through.py"])
def test_every_recipe_renders_to_python_37(name: str) -> None:
    recipe = load_recipe(REPO / "recipes" / name)
    ast.parse(render(recipe, resolve(recipe, {})).text, feature_version=(3, 7))


@pytest.mark.parametrize(("line", "name"), [
    ("t = 1", "t"), ("def loop():\n    pass", "loop"), ("class k:\n    pass", "k"),
    ("for v in range(3):\n    pass", "v"), ("from json import loads", "loads"),
    ("import json as io", "io"),
])
def test_a_recipe_binding_one_of_gears_own_names_is_refused(tmp_path, line: str,
                                                           name: str) -> None:
    """Gears' value of these names wins when a registration is unpickled (a global `t`
    makes RedisGears 1.2.13 abort at every start): refused before anything is sent."""
    path = tmp_path / "bad.py"
    path.write_text(MINIMAL + line + "\n")
    with pytest.raises(RecipeError, match=rf"bad.py:\d+: {name!r} is a name RedisGears"):
        render(load_recipe(path), resolve(load_recipe(path), {}))


def test_importing_gears_own_objects_is_fine(tmp_path) -> None:
    path = tmp_path / "ok.py"
    path.write_text(MINIMAL + "import sys\nfrom redisgears import executeCommand as execute\n")
    assert "import sys" in render(load_recipe(path), resolve(load_recipe(path), {})).text

"""A recipe file as wbload sees it: Python 3.7 source with literal parameters on top."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RecipeError

GEARS_PYTHON = (3, 7)
PARAMETER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
REGISTRATION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Parameter:
    """A top-level `NAME = <literal>` assignment of a recipe."""

    name: str
    default: Any
    first_line: int
    last_line: int
    value_end: int  # byte offset of the value's end on last_line (a comment may follow)


@dataclass(frozen=True)
class Recipe:
    """A recipe file, parsed and checked as Gears' Python would."""

    path: Path
    source: str
    parameters: dict[str, Parameter]

    @property
    def name(self) -> str:
        return str(self.parameters["NAME"].default)


def parse_gears_python(source: str, filename: str) -> ast.Module:
    """Parse `source` as Python 3.7; errors become `file:line: message`."""
    try:
        tree = ast.parse(source, filename=filename, feature_version=GEARS_PYTHON)
        compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise RecipeError(f"{filename}:{e.lineno or 0}: {e.msg}") from None
    except ValueError as e:  # e.g. NUL bytes
        raise RecipeError(f"{filename}: cannot compile: {e}") from None
    return tree


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file: Python 3.7 syntax and the parameters wbload needs."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read the recipe: {e}") from None
    tree = parse_gears_python(source, str(path))
    parameters = _parameters(tree)
    recipe = Recipe(path=path, source=source, parameters=parameters)
    check_contract(recipe.path, {n: p.default for n, p in parameters.items()})
    return recipe


def check_contract(path: Path, values: dict[str, Any]) -> None:
    """The parameters every deployable recipe must have, with values Gears can use."""
    missing = [n for n in ("NAME", "VERSION", "REQUIREMENTS") if n not in values]
    if missing:
        raise RecipeError(
            f"{path}: a recipe must set {', '.join(missing)} at the top "
            "(e.g. NAME = 'MoviesWriteBehind', VERSION = '1.0.0', REQUIREMENTS = ['rgsync'])"
        )
    if not isinstance(values["NAME"], str) or not REGISTRATION_NAME.match(values["NAME"]):
        raise RecipeError(f"{path}: NAME must be letters, digits, '_', '.' or '-'")
    if not isinstance(values["VERSION"], str) or not SEMVER.match(values["VERSION"]):
        raise RecipeError(
            f"{path}: VERSION must be MAJOR.MINOR.PATCH like '1.0.0' (rgsync compares them)"
        )
    requirements = values["REQUIREMENTS"]
    if not isinstance(requirements, (list, tuple)) or not all(
        isinstance(r, str) and r.strip() and not r.startswith("-") for r in requirements
    ):
        raise RecipeError(f"{path}: REQUIREMENTS must be a list of pip requirement strings")
    for name in ("KEY_PREFIX",):
        if name in values and (not values[name] or "*" in str(values[name])):
            raise RecipeError(f"{path}: {name} must be a non-empty key prefix without '*'")


def _parameters(tree: ast.Module) -> dict[str, Parameter]:
    parameters: dict[str, Parameter] = {}
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and PARAMETER_NAME.match(node.targets[0].id)
        ):
            continue
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue  # computed constants are code, not parameters
        name = node.targets[0].id
        parameters[name] = Parameter(
            name=name,
            default=value,
            first_line=node.lineno,
            last_line=node.end_lineno or node.lineno,
            value_end=node.value.end_col_offset or 0,
        )
    return parameters

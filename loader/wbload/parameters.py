"""Operator-given recipe parameters (`--param name=value`, WBLOAD_PARAM_NAME) as Python values."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import RecipeError
from .recipe import Parameter, Recipe

ENV_PREFIX = "WBLOAD_PARAM_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def normalise_name(name: str) -> str:
    """`batch-size`, `batch_size` and `BATCH_SIZE` all name BATCH_SIZE."""
    return name.strip().upper().replace("-", "_")


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`["name=value", ...]` -> `{"NAME": "value"}`; the last of a repeated name wins."""
    result: dict[str, str] = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise RecipeError(f"--param {name.strip() or text!r}: expected NAME=VALUE")
        result[normalise_name(name)] = value
    return result


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Parameters set as WBLOAD_PARAM_<NAME> environment variables."""
    return {
        normalise_name(k[len(ENV_PREFIX):]): v
        for k, v in environ.items()
        if k.startswith(ENV_PREFIX) and len(k) > len(ENV_PREFIX)
    }


def resolve(recipe: Recipe, given: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter's final value: the recipe's default unless `given` sets it."""
    unknown = sorted(set(given) - set(recipe.parameters))
    if unknown:
        raise RecipeError(
            f"unknown parameter {unknown[0]} for {recipe.path}; "
            f"it has {', '.join(sorted(recipe.parameters))}"
        )
    values = {name: p.default for name, p in recipe.parameters.items()}
    for name, text in given.items():
        values[name] = coerce(recipe.parameters[name], text)
    return values


def coerce(parameter: Parameter, text: str) -> Any:
    """`text` converted to the type of the parameter's default."""
    default = parameter.default
    name = parameter.name
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise RecipeError(f"--param {name}: expected true or false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text.strip())
        except ValueError:
            raise RecipeError(f"--param {name}: expected a whole number, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text.strip())
        except ValueError:
            raise RecipeError(f"--param {name}: expected a number, got {text!r}") from None
    if isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        if default is None:
            return text
        raise RecipeError(
            f"--param {name}: expected a Python literal like {default!r}, got {text!r}"
        ) from None
    if default is not None and type(value) is not type(default):
        raise RecipeError(
            f"--param {name}: expected a {type(default).__name__}, got {type(value).__name__}"
        )
    return value

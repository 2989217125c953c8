"""Turn a recipe plus parameters into the exact text `RG.PYEXECUTE` receives."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bundle import bundle
from .errors import RecipeError, UsageError
from .parameters import resolve
from .recipe import Recipe, check_contract, load_recipe, parse_gears_python
from .redact import mask_url, redact, url_password


@dataclass(frozen=True)
class RenderedRecipe:
    """What deploy pushes: the code, its requirements and what it will register."""

    text: str
    masked_text: str  # the same with every URL password masked: safe to print
    values: dict[str, Any]
    secrets: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.values["NAME"])

    @property
    def version(self) -> str:
        return str(self.values["VERSION"])

    @property
    def requirements(self) -> list[str]:
        return [str(r) for r in self.values["REQUIREMENTS"]]

    @property
    def key_prefix(self) -> str | None:
        prefix = self.values.get("KEY_PREFIX")
        return None if prefix is None else str(prefix)

    def masked_values(self) -> dict[str, Any]:
        return _masked(self.values)

    def redact(self, text: str) -> str:
        """`text` (e.g. a server reply) with this recipe's secrets masked."""
        return redact(text, self.secrets)


def render_files(
    paths: Sequence[str | Path],
    given: Mapping[str, str],
    environment: Mapping[str, str],
    mongo_url: str | None = None,
    secret_key: str | None = None,
) -> list[RenderedRecipe]:
    """Load, check and render every recipe before anything is sent anywhere.

    Precedence: `given` (--param) over `mongo_url` (sets MONGO_URL, or `redis:<secret_key>`)
    over `environment` (WBLOAD_PARAM_*) over the recipe's defaults. Every given name must be
    a parameter of at least one recipe; environment names a recipe lacks are ignored.
    """
    if secret_key is not None and not mongo_url:
        raise UsageError("--secret-key needs --mongo-url (or MONGODB_URL): the URL to store")
    recipes = [load_recipe(path) for path in paths]
    known = set().union(*(r.parameters for r in recipes))
    unknown = sorted(set(given) - known)
    if unknown:
        raise RecipeError(f"unknown parameter {unknown[0]}; the recipe has "
                          f"{', '.join(sorted(known))}")
    rendered = []
    for recipe in recipes:
        values = {k: v for k, v in environment.items() if k in recipe.parameters}
        if mongo_url is not None:
            if "MONGO_URL" not in recipe.parameters:
                raise RecipeError(f"{recipe.path} has no MONGO_URL parameter for --mongo-url")
            values["MONGO_URL"] = f"redis:{secret_key}" if secret_key else mongo_url
        values.update({k: v for k, v in given.items() if k in recipe.parameters})
        rendered.append(render(recipe, resolve(recipe, values)))
    return rendered


def render(recipe: Recipe, values: Mapping[str, Any]) -> RenderedRecipe:
    """The recipe with `values` written in as Python literals, its local modules inlined."""
    check_contract(recipe.path, dict(values))
    secrets = [p for v in values.values() if isinstance(v, str) and (p := url_password(v))]
    return RenderedRecipe(
        text=_compose(recipe, values),
        masked_text=_compose(recipe, _masked(values)),
        values=dict(values),
        secrets=secrets + [repr(s)[1:-1] for s in secrets if repr(s)[1:-1] != s],
    )


def _compose(recipe: Recipe, values: Mapping[str, Any]) -> str:
    text = _set_parameters(recipe, values)
    _check_only_values_changed(recipe, text, values)
    text = bundle(text, str(recipe.path), recipe.path.parent)
    parse_gears_python(text, f"{recipe.path} (rendered)")
    return text


def _masked(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: mask_url(v) if isinstance(v, str) else v for k, v in values.items()}


def _set_parameters(recipe: Recipe, values: Mapping[str, Any]) -> str:
    lines = recipe.source.splitlines(keepends=True)
    # Bottom-up, so earlier line numbers stay valid.
    for parameter in sorted(recipe.parameters.values(), key=lambda p: -p.first_line):
        value = values[parameter.name]
        if value == parameter.default and type(value) is type(parameter.default):
            continue
        last = lines[parameter.last_line - 1]
        tail = last.encode("utf-8")[parameter.value_end :].decode("utf-8")
        lines[parameter.first_line - 1 : parameter.last_line] = [
            f"{parameter.name} = {value!r}{tail if tail.strip() else chr(10)}"
        ]
    return "".join(lines)


def _check_only_values_changed(recipe: Recipe, text: str, values: Mapping[str, Any]) -> None:
    """Refuse a rendering whose code differs from the recipe's beyond parameter values."""
    names = set(recipe.parameters)
    before = _code_shape(parse_gears_python(recipe.source, str(recipe.path)), names)
    rendered = parse_gears_python(text, f"{recipe.path} (rendered)")
    written = {
        node.targets[0].id: node.value
        for node in rendered.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    for name in names:
        try:
            same = ast.literal_eval(written[name]) == values[name]
        except (KeyError, ValueError):
            same = False
        if not same:
            raise RecipeError(
                f"{recipe.path}: {name}={values[name]!r} cannot be written into the recipe as a "
                "Python literal (nan and inf cannot); give a finite value"
            )
    if before != _code_shape(rendered, names):
        raise RecipeError(f"{recipe.path}: a parameter value changed the recipe's code")


def _code_shape(tree: ast.Module, names: set[str]) -> str:
    """The recipe's syntax tree with the parameters' values blanked out."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in names
        ):
            node.value = ast.Constant(value=None)
    return ast.dump(tree, include_attributes=False)

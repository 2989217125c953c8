"""Inline a recipe's local modules: RedisGears executes one text, not a package."""

from __future__ import annotations

import ast
from pathlib import Path

from .errors import RecipeError
from .gears_globals import check_recipe_globals
from .recipe import parse_gears_python


def local_module(root: Path, node: ast.stmt) -> Path | None:
    """The file under `root` that a top-level `from x.y import z` names, if it is one."""
    if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
        return None
    candidate = root.joinpath(*node.module.split(".")).with_suffix(".py")
    return candidate if candidate.is_file() else None


def bundle(source: str, filename: str, root: Path, _seen: set[Path] | None = None) -> str:
    """`source` with each top-level import of a module under `root` replaced by its code.

    Each module is inlined once, at its first import; `as` aliases become assignments.
    """
    seen = _seen if _seen is not None else set()
    tree = parse_gears_python(source, filename)
    check_recipe_globals(tree, filename)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    position = 0
    for node in tree.body:
        path = local_module(root, node)
        if path is None:
            continue
        assert isinstance(node, ast.ImportFrom)
        start, end = node.lineno - 1, node.end_lineno or node.lineno
        out.extend(lines[position:start])
        position = end
        relative = path.relative_to(root).as_posix()
        if path not in seen:
            seen.add(path)
            module_source = path.read_text(encoding="utf-8")
            inlined = bundle(module_source, relative, root, seen)
            out.append(f"# ---- wbload: inlined {relative} ----\n")
            out.append(inlined if inlined.endswith("\n") else inlined + "\n")
            out.append(f"# ---- wbload: end of {relative} ----\n")
        for alias in node.names:
            if alias.name == "*":
                raise RecipeError(f"{filename}:{node.lineno}: 'import *' from {relative}")
            if alias.asname and alias.asname != alias.name:
                out.append(f"{alias.asname} = {alias.name}\n")
    out.extend(lines[position:])
    return "".join(out)

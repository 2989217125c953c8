"""Names RedisGears 1.2's Python already defines in every session's globals.

When Gears unpickles a registration (on every other shard at once, and on every node at each
restart) a recipe's global of the same name does not replace Gears' own: the step then sees
Gears' value (e.g. `k` is a string, `t` a Thread). With `t` the step cannot be pickled again
and Redis aborts, at every start, until the AOF is edited (seen on RedisGears 1.2.13). So a
recipe must not bind these names itself; importing the same object (`from redisgears import
executeCommand as execute`, `import sys`) is harmless.
"""

from __future__ import annotations

import ast

from .errors import RecipeError

# Read off a RedisGears 1.2.13 session (dunder names left out).
GEARS_GLOBALS = frozenset((
    "CloudPickler", "ConfigGet", "DEFAULT_PROTOCOL", "DELETE_GLOBAL", "EXTENDED_ARG", "Future",
    "GB", "GLOBAL_OPS", "GearsBuilder", "GearsConfigGet", "GearsFuture", "GearsSession",
    "HAVE_ARGUMENT", "LOAD_GLOBAL", "Log", "PY3", "Pickler", "PyFlatExecution", "STORE_GLOBAL",
    "StringIO", "Thread", "_BUILTIN_TYPE_CONSTRUCTORS", "_BUILTIN_TYPE_NAMES", "_builtin_type",
    "_cell_set_template_code", "_empty_cell_value", "_fill_function", "_gen_ellipsis",
    "_gen_not_implemented", "_get_cell_contents", "_get_dict_new", "_get_frozenset_new",
    "_get_list_new", "_get_object_new", "_get_set_new", "_get_tuple_new", "_is_dynamic",
    "_make__new__factory", "_make_cell_set_template_code", "_make_empty_cell",
    "_make_skel_func", "_rebuild_tornado_coroutine", "_rehydrate_skeleton_class",
    "_restore_attr", "_walk_global_ops", "asyncio", "atomic", "cProfile", "call_next",
    "cell_set", "configGet", "copy", "createDecorator", "createFuture", "createKeysOnlyReader",
    "dis", "dump", "dumps", "dynamic_subimport", "execute", "f", "flat_error",
    "gearsConfigGet", "gearsCtx", "gearsFuture", "genDeprecated", "getGearsSession",
    "get_command", "hashtag", "importlib", "instance", "io", "isAsyncAllow", "isInAtomicBlock",
    "is_tornado_coroutine", "islambda", "itertools", "k", "load", "loads", "log", "logging",
    "loop", "opcode", "operator", "override_reply", "partial", "pickle", "print_function",
    "profileGetInfo", "profileStart", "profileStop", "profilerCreate", "pstats", "redisgears",
    "registerGearsThread", "registerTE", "requested_base_globals", "rg", "runCoroutine",
    "setFutureException", "setFutureResults", "setGearsSession", "shardReaderCallback", "str",
    "string_types", "struct", "subimport", "sys", "t", "traceback", "types", "v", "weakref",
))


def check_recipe_globals(tree: ast.Module, filename: str) -> None:
    """Raise RecipeError at the first top-level binding of one of Gears' own names."""
    for node in tree.body:
        for name, line in _bound_names(node):
            if name in GEARS_GLOBALS:
                raise RecipeError(
                    f"{filename}:{line}: {name!r} is a name RedisGears' Python defines "
                    "itself; once the registration is unpickled (on other shards, after a "
                    "restart) Gears' value wins, and some names crash Redis: rename it"
                )


def _bound_names(node: ast.stmt) -> list[tuple[str, int]]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, node.lineno)]
    if isinstance(node, ast.Import):
        return [(a.asname, node.lineno) for a in node.names
                if a.asname and a.asname != a.name.split(".")[-1]]
    if isinstance(node, ast.ImportFrom):
        if node.module == "redisgears":
            return []
        return [(a.asname or a.name, node.lineno) for a in node.names]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
    return [(n.id, n.lineno) for t in targets for n in ast.walk(t)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]

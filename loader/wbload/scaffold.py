"""`wbload new`: a recipe for another entity, laid out as recipes/movies.py is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError, UsageError

_ENTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TEXT = re.compile(r"^[^'\\\n]+$")  # goes between single quotes in the recipe

TEMPLATE = '''\
"""Write-behind of {entity}: Redis JSON at {prefix}:<id> -> MongoDB `{collection}`.

Written by `wbload new {entity}`. Deploy with `wbload deploy recipes/{entity}.py --mongo-url
mongodb://...`; every parameter below can be set with `--param NAME=value` (or
WBLOAD_PARAM_NAME). wbload inlines the `common/` modules imported below, because RedisGears
executes a single text.
"""

# --- parameters ----------------------------------------------------------------------------
MONGO_URL = 'mongodb://localhost:27017'
MONGO_DATABASE = '{database}'
MONGO_COLLECTION = '{collection}'
KEY_FIELD = '{key_field}'
KEY_PREFIX = '{prefix}'
NAME = '{name}'
VERSION = '1.0.0'
BATCH_SIZE = 100
BATCH_DURATION_MS = 100
RETRY_INTERVAL_S = 5
DEAD_LETTER_STREAM = 'wbload:dead-letter:{name}'
# The dead-letter stream is trimmed to about this many entries (`wbload status` counts the rest).
DEAD_LETTER_MAXLEN = 100000
# Redis is a cache: a key that expires or is evicted leaves its Mongo document alone. True
# mirrors expiry and eviction as deletes too (a TTL mirror). DEL/UNLINK/RENAME always delete.
DELETE_ON_EXPIRY = False
# Connecting to Mongo gives up after this long (the batch is then retried).
MONGO_TIMEOUT_MS = 5000

# Installed by Gears before the code runs (no rgsync: see recipes/movies.py).
REQUIREMENTS = ['pymongo==4.7.3']

# --- sink ----------------------------------------------------------------------------------
from common.json_write_behind import JSONWriteBehind  # noqa: E402
from common.mongo_sink import MongoSink  # noqa: E402

{sink} = MongoSink(MONGO_URL, MONGO_DATABASE, MONGO_COLLECTION, KEY_FIELD,
{indent}dead_letter_stream=DEAD_LETTER_STREAM, dead_letter_maxlen=DEAD_LETTER_MAXLEN,
{indent}delete_on_expiry=DELETE_ON_EXPIRY, timeout_ms=MONGO_TIMEOUT_MS)

# --- registration --------------------------------------------------------------------------
JSONWriteBehind(GB, keysPrefix=KEY_PREFIX, connector={sink}, name=NAME,  # noqa: F821
                version=VERSION, batch=BATCH_SIZE, duration=BATCH_DURATION_MS,
                onFailedRetryInterval=RETRY_INTERVAL_S)
'''


@dataclass(frozen=True)
class NewRecipe:
    """What `wbload new` wrote."""

    path: Path
    name: str


def write_name(entity: str) -> str:
    """`UsersWriteBehind` for entity `users` (`user_ratings` -> `UserRatingsWriteBehind`)."""
    return "".join(part[:1].upper() + part[1:] for part in entity.split("_") if part) + \
        "WriteBehind"


def recipe_text(entity: str, prefix: str, collection: str, key_field: str,
                database: str = "dbSpeedMernDemo") -> str:
    """The recipe's source, after checking every value fits where it goes."""
    if not _ENTITY.match(entity):
        raise UsageError(f"bad ENTITY {entity!r}: letters, digits and _, starting with a letter "
                         "(it names recipes/<entity>.py and the write-behind)")
    for option, value in (("--prefix", prefix), ("--collection", collection),
                          ("--key-field", key_field), ("--database", database)):
        if not _TEXT.match(value):
            raise UsageError(f"bad {option} {value!r}: give a non-empty value without quotes, "
                             "backslashes or newlines")
    if prefix.endswith(":*") or prefix.endswith(":"):
        raise UsageError(f"bad --prefix {prefix!r}: give the key prefix without ':' "
                         f"(keys are {prefix.rstrip(':*')}:<id>)")
    # `<entity>_sink`, not `<entity>`: the inlined modules share the recipe's namespace, so
    # an entity called `json` or `time` would shadow a module the sink uses.
    sink = f"{entity.lower()}_sink"
    return TEMPLATE.format(entity=entity, prefix=prefix, collection=collection,
                           key_field=key_field, database=database, name=write_name(entity),
                           sink=sink, indent=" " * len(f"{sink} = MongoSink("))


def new_recipe(directory: Path, entity: str, prefix: str, collection: str, key_field: str,
               database: str = "dbSpeedMernDemo") -> NewRecipe:
    """Write `directory/<entity>.py`; an existing file is never overwritten."""
    text = recipe_text(entity, prefix, collection, key_field, database)
    path = directory / f"{entity}.py"
    if not (directory / "common").is_dir():
        raise UsageError(f"{directory} has no common/ (the modules a recipe imports); run "
                         "`wbload new` where recipes/ is, or give --dir")
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise RecipeError(f"{path} exists; not overwritten (remove it or pick another "
                          "ENTITY)") from None
    return NewRecipe(path, write_name(entity))

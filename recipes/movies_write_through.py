"""Write-through of the movie catalogue: Mongo first, then Redis, acknowledged per write.

The app writes `JSON.SET __{MovieEntity:<id>} $ '{"#": "=<uuid>", ...}'` and reads the
stream `{MovieEntity:<id>}<uuid>` for `status done` or `status failed` (README: write-through).
Every parameter can be set with `--param NAME=value`.
"""

# --- parameters ----------------------------------------------------------------------------
MONGO_URL = 'mongodb://localhost:27017'
MONGO_DATABASE = 'dbSpeedMernDemo'
MONGO_COLLECTION = 'movies'
KEY_FIELD = 'movieId'
KEY_PREFIX = 'MovieEntity'
THROUGH_PREFIX = '__'
NAME = 'MoviesWriteThrough'
VERSION = '1.0.0'
# Redis waits for Mongo on every write-through write: connecting and reading a reply each
# give up after this long (the majority acknowledgement after half). Too small and a slow
# Mongo fails writes; too large and Redis is blocked that long whenever Mongo is away.
MONGO_TIMEOUT_MS = 1000

REQUIREMENTS = ['pymongo==4.7.3']

# --- sink ----------------------------------------------------------------------------------
from common.json_write_through import JSONWriteThrough  # noqa: E402
from common.mongo_sink import MongoSink  # noqa: E402

movies = MongoSink(MONGO_URL, MONGO_DATABASE, MONGO_COLLECTION, KEY_FIELD,
                   timeout_ms=MONGO_TIMEOUT_MS, socket_timeout_ms=MONGO_TIMEOUT_MS)

# --- registration --------------------------------------------------------------------------
JSONWriteThrough(GB, keysPrefix=KEY_PREFIX, connector=movies, name=NAME, version=VERSION,  # noqa: F821
                 throughPrefix=THROUGH_PREFIX)

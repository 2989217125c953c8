"""Write-behind of the movie catalogue: Redis JSON at MovieEntity:<id> -> MongoDB `movies`.

Deploy with `wbload deploy recipes/movies.py --mongo-url mongodb://...`; every parameter
below can be set with `--param NAME=value` (or WBLOAD_PARAM_NAME). wbload inlines the
`common/` modules imported below, because RedisGears executes a single text.
"""

# --- parameters ----------------------------------------------------------------------------
MONGO_URL = 'mongodb://localhost:27017'
MONGO_DATABASE = 'dbSpeedMernDemo'
MONGO_COLLECTION = 'movies'
KEY_FIELD = 'movieId'
KEY_PREFIX = 'MovieEntity'
NAME = 'MoviesWriteBehind'
VERSION = '1.0.0'
BATCH_SIZE = 100
BATCH_DURATION_MS = 100
RETRY_INTERVAL_S = 5
DEAD_LETTER_STREAM = 'wbload:dead-letter:MoviesWriteBehind'
# The dead-letter stream is trimmed to about this many entries (`wbload status` counts the rest).
DEAD_LETTER_MAXLEN = 100000
# Redis is a cache: a key that expires or is evicted leaves its Mongo document alone. True
# mirrors expiry and eviction as deletes too (a TTL mirror). DEL/UNLINK/RENAME always delete.
DELETE_ON_EXPIRY = False
# Connecting to Mongo gives up after this long (the batch is then retried).
MONGO_TIMEOUT_MS = 5000

# Installed by Gears before the code runs. No rgsync: its requirement carries pymongo 4.1.1
# (which cannot talk to MongoDB 6.0+), and Gears may reinstall that over this pin when Redis
# restarts. `wbload status` shows the pymongo Gears runs next to this pin.
REQUIREMENTS = ['pymongo==4.7.3']

# --- sink ----------------------------------------------------------------------------------
from common.json_write_behind import JSONWriteBehind  # noqa: E402
from common.mongo_sink import MongoSink  # noqa: E402

movies = MongoSink(MONGO_URL, MONGO_DATABASE, MONGO_COLLECTION, KEY_FIELD,
                   dead_letter_stream=DEAD_LETTER_STREAM, dead_letter_maxlen=DEAD_LETTER_MAXLEN,
                   delete_on_expiry=DELETE_ON_EXPIRY, timeout_ms=MONGO_TIMEOUT_MS)

# --- registration --------------------------------------------------------------------------
JSONWriteBehind(GB, keysPrefix=KEY_PREFIX, connector=movies, name=NAME, version=VERSION,  # noqa: F821
                batch=BATCH_SIZE, duration=BATCH_DURATION_MS,
                onFailedRetryInterval=RETRY_INTERVAL_S)

"""Write the tutorial's demo movies to Redis and wait until the write-behind has them in Mongo.

docker-compose.yml's `demo` service runs it after the loader deployed recipes/movies.py.
Environment: REDIS_URL, MONGODB_URL (Mongo as this process reaches it), MONGO_DATABASE
(default dbSpeedMernDemo, as recipes/movies.py), DEMO_TIMEOUT seconds (default 120).
Exit 0 once every movie is in Mongo, 1 if they are not there in time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pymongo
import redis

MOVIES_FILE = Path(__file__).resolve().with_name("demo-movies.json")
KEY_PREFIX = "MovieEntity"


def main() -> int:
    movies = json.loads(MOVIES_FILE.read_text(encoding="utf-8"))
    ids = [str(m["movieId"]) for m in movies]
    client = redis.Redis.from_url(os.environ["REDIS_URL"], protocol=2)
    with client.pipeline(transaction=False) as pipe:
        for key_id, movie in zip(ids, movies):
            pipe.execute_command("JSON.SET", f"{KEY_PREFIX}:{key_id}", "$",
                                 json.dumps(movie, ensure_ascii=False))
        pipe.execute()
    print(f"demo: wrote {len(ids)} movies to Redis as {KEY_PREFIX}:<movieId>", flush=True)

    database = os.environ.get("MONGO_DATABASE", "dbSpeedMernDemo")
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(os.environ["MONGODB_URL"])
    collection = mongo[database]["movies"]
    deadline = time.monotonic() + float(os.environ.get("DEMO_TIMEOUT", "120"))
    arrived = -1
    while True:
        now = collection.count_documents({"movieId": {"$in": ids}})
        if now != arrived:
            print(f"demo: {now}/{len(ids)} in Mongo {database}.movies", flush=True)
            arrived = now
        if now == len(ids):
            return 0
        if time.monotonic() > deadline:
            print(f"demo: error: only {now} of {len(ids)} movies reached Mongo in time; "
                  "see `wbload status` for the write-behind's last error", file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
